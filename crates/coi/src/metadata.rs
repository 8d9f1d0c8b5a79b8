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

    /// Checks a SETMETADATA of one COI entry without applying anything, so
    /// the IMAP crate can refuse a command with several pairs before any
    /// of them is applied (RFC 5464 §4.3; R12, R14: a refused value leaves
    /// the state unchanged). What only the push flow can judge (the JSON,
    /// the validation secret, the limit) is still checked by [`Coi::set_entry`].
    pub fn check_entry(&self, name: &str, value: Option<&[u8]>) -> Result<(), CoiError> {
        match name {
            ENABLED => match value {
                Some(b"yes") | None => Ok(()),
                Some(_) => Err(CoiError::Cannot("Invalid enabled value. Must be yes or NIL".to_owned())),
            },
            MESSAGE_FILTER => match value.map(MessageFilter::parse) {
                // NIL resets to `none` (§6; Dovecot crashes here).
                None | Some(Some(_)) => Ok(()),
                Some(None) => Err(CoiError::Cannot("Invalid message-filter value".to_owned())),
            },
            MAILBOX_ROOT | VAPID => Err(read_only(name)),
            n if n.starts_with(CONFIG_PREFIX) => {
                Err(CoiError::Cannot(format!("Unknown COI configuration entry {name}")))
            }
            n if n.starts_with(WEBPUSH_PREFIX) => {
                if self.inner.push.is_none() {
                    // Deleting stays possible, so subscriptions made while WebPush was on can be removed.
                    if matches!((subscription_path(n), value), (Some((_, None)), None)) {
                        return Ok(());
                    }
                    return Err(CoiError::Cannot("WebPush is not enabled on this server".to_owned()));
                }
                match (subscription_path(n), value) {
                    (Some((_, None)), _) | (Some((_, Some("validate"))), Some(_)) => Ok(()),
                    (Some((_, Some("validate"))), None) => {
                        Err(CoiError::Cannot("Subscription with matching validation not found".to_owned()))
                    }
                    // `subscriptions/a/b`: an id with `/` (Dovecot's wording).
                    (Some((id, Some(_))), _) => {
                        let bad = format!("{id}/");
                        Err(CoiError::Cannot(
                            crate::webpush::subscription::check_id(&bad)
                                .err()
                                .map_or_else(|| format!("Unknown WebPush entry {name}"), |e| e.to_string()),
                        ))
                    }
                    (None, _) => Err(CoiError::Cannot(format!("Unknown WebPush entry {name}"))),
                }
            }
            _ => Err(CoiError::Cannot(format!("Unknown COI entry {name}"))),
        }
    }

    /// Whether applying this entry can still fail after [`Coi::check_entry`]
    /// passed: a push subscription or its validation (the JSON, the limit,
    /// the push service). The IMAP crate applies such an entry first, and
    /// only one per command, so a refusal leaves nothing applied.
    pub fn may_fail_late(name: &str, value: Option<&[u8]>) -> bool {
        value.is_some() && subscription_path(name).is_some()
    }

    /// SETMETADATA of one COI entry; `value` `None` is NIL.
    pub async fn set_entry(&self, account: AccountId, name: &str, value: Option<&[u8]>) -> Result<(), CoiError> {
        self.check_entry(name, value)?;
        let scope = config::server_scope(account);
        match name {
            ENABLED if value.is_some() => self.enable(account).await,
            ENABLED => self.disable(account).await,
            MESSAGE_FILTER => {
                self.store().set_metadata(scope, MESSAGE_FILTER, value).await?;
                // R15: a filter that files into Chats needs the folder now.
                let filter = value.and_then(MessageFilter::parse).unwrap_or_default();
                if filter != MessageFilter::None && self.config(account)?.enabled {
                    self.ensure_chats(account).await?;
                }
                Ok(())
            }
            _ => {
                // check_entry let only WebPush subscription entries through (without WebPush, a NIL).
                let Some((id, sub)) = subscription_path(name) else {
                    return Err(CoiError::Cannot(format!("Unknown COI entry {name}")));
                };
                let Some(push) = &self.inner.push else {
                    return crate::push::remove_subscription(self.store(), account, id).await;
                };
                match (sub, value) {
                    (None, Some(json)) => push.subscribe(account, id, json).await,
                    (None, None) => push.unsubscribe(account, id).await,
                    (Some(_), Some(secret)) => push.validate(account, id, secret).await,
                    (Some(_), None) => {
                        Err(CoiError::Cannot("Subscription with matching validation not found".to_owned()))
                    }
                }
            }
        }
    }
}

/// `.../subscriptions/<id>` → `(id, None)`, `.../subscriptions/<id>/<rest>` → `(id, Some(rest))`.
fn subscription_path(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix(SUBSCRIPTIONS)?.strip_prefix('/')?;
    Some(rest.split_once('/').map_or((rest, None), |(id, sub)| (id, Some(sub))))
}

fn read_only(name: &str) -> CoiError {
    CoiError::Cannot(format!("The {name} attribute cannot be changed"))
}
