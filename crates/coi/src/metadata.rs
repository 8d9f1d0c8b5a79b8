//! COI's part of METADATA (R5–R15, R31–R35): the server-scope entries under
//! `/private/vendor/vendor.dovecot/` belong to COI. The IMAP crate routes a
//! SETMETADATA of such an entry here instead of storing it, merges
//! [`Coi::virtual_entries`] into GETMETADATA answers, and calls
//! [`Coi::before_read`] first so expired subscriptions are gone (R33).
//! Entry names arrive lower-cased (R7).

use crate::config::{self, CONFIG_PREFIX, ENABLED, MAILBOX_ROOT, MESSAGE_FILTER, MessageFilter};
use crate::push::{SUBSCRIPTIONS, VAPID, WEBPUSH_PREFIX};
use crate::{Coi, CoiError};
use coimail_store::AccountId;

/// The vendor tree COI owns (server scope only).
const VENDOR_PREFIX: &str = "/private/vendor/vendor.dovecot/";

impl Coi {
    /// Whether a server-scope entry (lower-cased) is COI's to set.
    pub fn owns_entry(name: &str) -> bool {
        name.starts_with(VENDOR_PREFIX)
    }

    /// Read-only entries of every account's server scope, answered without
    /// being stored: `mailbox-root` (R11) and, with WebPush, `vapid` (R31).
    pub fn virtual_entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(MAILBOX_ROOT.to_owned(), self.inner.root.clone().into_bytes())];
        if let Some(push) = &self.inner.push {
            out.push((VAPID.to_owned(), push.vapid_pem().into_bytes()));
        }
        out
    }

    /// Before answering GETMETADATA on the server scope.
    pub async fn before_read(&self, account: AccountId) -> Result<(), CoiError> {
        if let Some(push) = &self.inner.push {
            push.purge_expired(account).await?;
        }
        Ok(())
    }

    /// SETMETADATA of one COI entry; `value` `None` is NIL.
    pub async fn set_entry(&self, account: AccountId, name: &str, value: Option<&[u8]>) -> Result<(), CoiError> {
        let scope = config::server_scope(account);
        match name {
            ENABLED => match value {
                Some(b"yes") => self.enable(account).await,
                None => self.disable(account).await,
                Some(_) => Err(CoiError::Cannot("Invalid enabled value. Must be yes or NIL".to_owned())),
            },
            MESSAGE_FILTER => match value {
                // NIL resets to `none` (§6; Dovecot crashes here).
                None => Ok(self.store().set_metadata(scope, MESSAGE_FILTER, None).await?),
                Some(v) => {
                    let filter = MessageFilter::parse(v)
                        .ok_or_else(|| CoiError::Cannot("Invalid message-filter value".to_owned()))?;
                    self.store().set_metadata(scope, MESSAGE_FILTER, Some(v)).await?;
                    // R15: a filter that files into Chats needs the folder now.
                    if filter != MessageFilter::None && self.config(account)?.enabled {
                        self.ensure_chats(account).await?;
                    }
                    Ok(())
                }
            },
            MAILBOX_ROOT => Err(read_only(name)),
            n if n.starts_with(CONFIG_PREFIX) => {
                Err(CoiError::Cannot(format!("Unknown COI configuration entry {name}")))
            }
            VAPID => Err(read_only(name)),
            n if n.starts_with(WEBPUSH_PREFIX) => {
                let Some(push) = &self.inner.push else {
                    return Err(CoiError::Cannot("WebPush is not enabled on this server".to_owned()));
                };
                let rest = n.strip_prefix(SUBSCRIPTIONS).and_then(|r| r.strip_prefix('/'));
                match rest.map(|r| r.split_once('/').map_or((r, None), |(id, sub)| (id, Some(sub)))) {
                    Some((id, None)) => match value {
                        Some(json) => push.subscribe(account, id, json).await,
                        None => push.unsubscribe(account, id).await,
                    },
                    Some((id, Some("validate"))) => match value {
                        Some(secret) => push.validate(account, id, secret).await,
                        None => Err(CoiError::Cannot("Subscription with matching validation not found".to_owned())),
                    },
                    _ => Err(CoiError::Cannot(format!("Unknown WebPush entry {name}"))),
                }
            }
            _ => Err(CoiError::Cannot(format!("Unknown COI entry {name}"))),
        }
    }
}

fn read_only(name: &str) -> CoiError {
    CoiError::Cannot(format!("The {name} attribute cannot be changed"))
}
