//! coimail-coi: Chat Over IMAP, the server side (spec digest:
//! `shared/docs/coi-server.md`, requirement ids R1–R44 cited below).
//!
//! The IMAP and SMTP crates call into this crate through a few explicit
//! hooks on [`Coi`]; no COI rule lives in them:
//! - METADATA (`metadata.rs`): the configuration entries (R11–R15) and the
//!   WebPush entries (R31–R35) are checked and applied here; `mailbox-root`
//!   and the VAPID key are answered read-only without being stored.
//! - Folder operations (`folders.rs`): enabling creates `<root>/Chats` and
//!   `<root>/Contacts` (R13); CREATE/DELETE/RENAME of Chats switch COI on
//!   and off (R18–R21).
//! - Delivery (`filing.rs`): which mailbox a delivered message goes to and
//!   whether it gets `$Chat` (R22–R30), decided before the store commit;
//!   after the commit, WebPush notifications (R36–R39, `push.rs`).
//! - `\Seen` transitions (`mover.rs`): the `seen` filter's move (R28).
//!
//! COI is off for every account until a client turns it on (D6).

pub mod config;
pub mod detect;
mod filing;
mod folders;
mod metadata;
mod mover;
mod push;
pub mod webpush;

pub use config::{CoiConfig, MessageFilter};
pub use filing::Filing;
pub use folders::RenameCheck;
pub use push::WebPushSettings;

use coimail_store::{AccountId, Flags, Store, StoreError, Stored};
use std::sync::Arc;

/// The keyword delivered chat messages carry (R24).
pub const CHAT_KEYWORD: &str = "$Chat";

/// Why a COI hook refused a request; IMAP maps each to its response code (R9).
#[derive(Debug, thiserror::Error)]
pub enum CoiError {
    /// Invalid value or operation not allowed: `NO [CANNOT]`.
    #[error("{0}")]
    Cannot(String),
    /// Too many subscriptions: `NO [LIMIT]`.
    #[error("{0}")]
    Limit(String),
    /// The push service failed: `NO [UNAVAILABLE]`.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("webpush: {0}")]
    WebPush(#[from] webpush::WebPushError),
}

/// Server-wide COI settings (the `[coi]` config section).
#[derive(Debug, Clone)]
pub struct CoiSettings {
    /// The COI root folder of every account (R11, R17), e.g. `COI`.
    pub mailbox_root: String,
    /// `None`: no WebPush (and no `WEBPUSH` capability, R2).
    pub webpush: Option<WebPushSettings>,
}

impl Default for CoiSettings {
    fn default() -> Self {
        CoiSettings { mailbox_root: "COI".to_owned(), webpush: None }
    }
}

/// The COI service: cheap to clone, shared by every protocol session.
#[derive(Clone)]
pub struct Coi {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    root: String,
    push: Option<push::Push>,
}

impl Coi {
    /// Starts COI on `store`. With WebPush configured this loads (or creates)
    /// the VAPID key and starts the push workers, so it needs a Tokio runtime.
    pub fn start(store: Store, settings: CoiSettings) -> Result<Coi, CoiError> {
        let root = coimail_store::names::canonical(&settings.mailbox_root)
            .map_err(|e| CoiError::Cannot(format!("invalid COI mailbox root: {e}")))?;
        let push = match settings.webpush {
            // Mail must flow even when push cannot (no CA certificates, an
            // unreadable key file): COI runs without WEBPUSH, loudly.
            Some(ws) => match push::Push::start(store.clone(), ws) {
                Ok(push) => Some(push),
                Err(e) => {
                    tracing::error!(error = %e, "coi: WebPush disabled: it cannot start");
                    None
                }
            },
            None => None,
        };
        Ok(Coi { inner: Arc::new(Inner { store, root, push }) })
    }

    /// COI with the default settings and no WebPush; needs no runtime.
    pub fn new(store: Store) -> Coi {
        Coi { inner: Arc::new(Inner { store, root: "COI".to_owned(), push: None }) }
    }

    /// Capabilities to add after login (R1, R2); METADATA is the IMAP crate's own.
    pub fn capabilities(&self) -> &'static str {
        if self.inner.push.is_some() { "COI WEBPUSH" } else { "COI" }
    }

    /// The account's configuration as it is now (R16: never cached).
    pub fn config(&self, account: AccountId) -> Result<CoiConfig, CoiError> {
        Ok(config::read(&self.inner.store, account, &self.inner.root)?)
    }

    /// Configuration and subscriptions as JSON, for `coimail coi status`.
    pub fn status(&self, account: AccountId) -> Result<serde_json::Value, CoiError> {
        let cfg = self.config(account)?;
        // Read from the store, so the offline CLI (no push workers) sees them too.
        let subscriptions = push::status(&self.inner.store, account)?;
        Ok(serde_json::json!({
            "enabled": cfg.enabled,
            "message_filter": cfg.filter.as_str(),
            "mailbox_root": cfg.root,
            "chats": cfg.chats(),
            "webpush": self.inner.push.is_some(),
            "subscriptions": subscriptions,
        }))
    }

    /// After a delivery is durable: WebPush for each stored copy, given the
    /// flags it was stored with (R36). Returns at once; sending is async.
    pub fn delivered(&self, copies: &[(Stored, &Flags)], raw: &[u8]) {
        if let Some(push) = &self.inner.push {
            push.delivered(copies, raw);
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }
}
