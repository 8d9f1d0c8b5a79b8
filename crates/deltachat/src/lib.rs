//! coimail-deltachat: what Delta Chat (chatmail core) expects of a server
//! beyond IMAP and SMTP, after chatmail's relay (`chatmaild`):
//!
//! - **Push** (`notifier.rs`, `queue.rs`): with `[deltachat] notify_url`
//!   set, IMAP advertises `XDELTAPUSH`; Delta Chat then stores its device
//!   token with `SETMETADATA "INBOX" (/private/devicetoken "openpgp:...")`,
//!   and every delivery into the user's INBOX (or into COI/Chats, where COI
//!   filed a chat) sends each of the user's tokens to the notification proxy,
//!   which wakes the phone. Sent after the delivery is durable, from a
//!   bounded queue fair per account, never blocking the delivery.
//! - **Device tokens** (`tokens.rs`): a set per account, one per device,
//!   in the store; `GETMETADATA "INBOX" /private/devicetoken` reads them
//!   back space-separated, as chatmail's dict proxy answers.
//! - **Server metadata** (`metadata.rs`): `/shared/vendor/deltachat/irohrelay`,
//!   `turn` and `maxsmtprecipients`, which Delta Chat reads with
//!   `GETMETADATA ""` after login, answered from the config.
//!
//! The IMAP crate calls [`DeltaChat::capabilities`], [`DeltaChat::owns_entry`]
//! / [`DeltaChat::set_entry`] / [`DeltaChat::mailbox_entries`] and
//! [`DeltaChat::server_entries`]; SMTP delivery calls [`DeltaChat::delivered`],
//! and so do the outbound queue's reports to a local sender (through the
//! delivery crate's `DeliveredHook`, which the daemon wires here).

mod metadata;
mod notifier;
mod queue;
pub mod tokens;

pub use metadata::{ServerMetadata, Turn};
pub use notifier::{PushSettings, check_notify_url};

use coimail_store::{AccountId, Placement, Store, StoreError, Stored};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// The mailbox-level entry Delta Chat stores its device token in (on INBOX).
pub const DEVICETOKEN: &str = "/private/devicetoken";
/// The keyword COI gives chats it files (COI R24); such a copy is a chat delivery.
const CHAT_KEYWORD: &str = "$Chat";

#[derive(Debug, thiserror::Error)]
pub enum DeltaChatError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Http(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Server-wide Delta Chat settings (the `[deltachat]` config section).
#[derive(Debug, Clone, Default)]
pub struct DeltaChatSettings {
    /// `None`: no push, no `XDELTAPUSH`.
    pub push: Option<PushSettings>,
    pub metadata: ServerMetadata,
}

/// Delta Chat's server side: cheap to clone, shared by IMAP and SMTP.
#[derive(Clone)]
pub struct DeltaChat {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metadata: ServerMetadata,
    push: Option<notifier::Notifier>,
}

/// The address of the message's first From field.
fn from_address(raw: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::default().parse_headers(raw)?;
    message.from()?.first()?.address().map(str::to_owned)
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0)
}

impl DeltaChat {
    /// Starts the push workers when `settings.push` is set (needs a Tokio
    /// runtime); they stop when `shutdown` is cancelled.
    pub fn start(
        store: Store,
        settings: DeltaChatSettings,
        shutdown: CancellationToken,
    ) -> Result<DeltaChat, DeltaChatError> {
        let push = match settings.push {
            Some(p) => Some(notifier::Notifier::start(store.clone(), p, shutdown)?),
            None => None,
        };
        Ok(DeltaChat { inner: Arc::new(Inner { store, metadata: settings.metadata, push }) })
    }

    /// No push and no server metadata; tokens are still kept. Needs no runtime.
    pub fn new(store: Store) -> DeltaChat {
        DeltaChat { inner: Arc::new(Inner { store, metadata: ServerMetadata::default(), push: None }) }
    }

    /// Capabilities to add after login: `XDELTAPUSH` only when pushes go out,
    /// so Delta Chat never registers against a server that would not use it.
    pub fn capabilities(&self) -> &'static str {
        if self.inner.push.is_some() { "XDELTAPUSH" } else { "" }
    }

    /// Whether a mailbox-level entry (lower-cased) on `mailbox` is ours.
    pub fn owns_entry(mailbox: &str, name: &str) -> bool {
        mailbox == "INBOX" && name == DEVICETOKEN
    }

    /// `SETMETADATA "INBOX" (/private/devicetoken value)`: adds the device's
    /// token to the account's set; NIL (or an empty value) removes them all.
    pub async fn set_entry(&self, account: AccountId, value: Option<&[u8]>) -> Result<(), DeltaChatError> {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => {
                let token = std::str::from_utf8(v)
                    .ok()
                    .filter(|t| t.bytes().all(|b| b.is_ascii_graphic()))
                    .ok_or_else(|| DeltaChatError::Config("a device token is printable ASCII".into()))?;
                if tokens::add(&self.inner.store, account, token, now_unix()).await? {
                    tracing::info!(account = account.0, token = %tokens::fingerprint(token), "deltachat: device token stored");
                }
            }
            None => tokens::clear(&self.inner.store, account).await?,
        }
        Ok(())
    }

    /// INBOX's entries answered without being stored as such: the device
    /// tokens, space-separated (chatmail's answer), when there are any.
    pub fn mailbox_entries(&self, account: AccountId) -> Result<Vec<(String, Vec<u8>)>, DeltaChatError> {
        let tokens = tokens::list(&self.inner.store, account, now_unix())?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![(DEVICETOKEN.to_owned(), tokens.join(" ").into_bytes())])
    }

    /// The server's read-only `/shared/vendor/deltachat/*` entries.
    pub fn server_entries(&self) -> Vec<(String, Vec<u8>)> {
        self.inner.metadata.entries(now_unix())
    }

    /// After a delivery is durable: a push for every device of every account
    /// that got a copy in INBOX, or in COI/Chats (a copy COI filed carries
    /// `$Chat`). Copies in Junk wake nobody, and neither does a message whose
    /// From is the recipient itself (chatmail's push hook: a device's own
    /// sent copies are no news). Returns at once.
    pub fn delivered(&self, copies: &[(Stored, &Placement)], raw: &[u8]) {
        let Some(push) = &self.inner.push else { return };
        let from = from_address(raw);
        let mut done: Vec<AccountId> = Vec::new();
        for (stored, placement) in copies {
            if done.contains(&stored.account)
                || from.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(&placement.address))
            {
                continue;
            }
            let wanted = placement.flags.contains(CHAT_KEYWORD)
                || self.inner.store.mailbox_by_id(stored.account, stored.mailbox).is_ok_and(|m| m.name == "INBOX");
            if !wanted {
                continue;
            }
            done.push(stored.account);
            match tokens::list(&self.inner.store, stored.account, now_unix()) {
                Ok(tokens) if !tokens.is_empty() => push.notify(stored.account, tokens),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "deltachat: device tokens unreadable, no push"),
            }
        }
    }
}
