//! Subscriptions (RFC 3501 §6.3.6-7, RFC 9051 §6.3.7-8): per account, a
//! set of mailbox names, one key each (`keys::subscription`). They are not
//! part of the mailboxes: a subscription outlives DELETE, so LSUB and
//! `LIST (SUBSCRIBED)` can still show the name (RFC 3501 §6.3.4) and
//! re-creating the mailbox finds it subscribed. RENAME takes the
//! subscriptions of the renamed names along (`rename.rs`), as the mailbox
//! flag used to and as Dovecot does.
//!
//! Every change goes through the journaled tree, which records it
//! (`journal.rs`), so `coimail store rebuild` restores subscriptions too.

use crate::keys;
use crate::kv::Batch;
use crate::names;
use crate::{AccountId, Change, Result, Store, StoreError};
use std::collections::BTreeSet;

impl Store {
    /// Subscribes or unsubscribes `name`. Only an existing mailbox can be
    /// subscribed (RFC 3501 §6.3.6 lets the server check); a name that is
    /// subscribed can always be unsubscribed, whether or not it exists.
    pub async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = names::canonical(name)?;
        {
            let _g = self.lock();
            let key = keys::subscription(account, &name);
            let exists = self.mailbox_record(account, &name)?.is_some();
            let mut batch = Batch::default();
            if subscribed {
                if !exists {
                    return Err(StoreError::NotFound(format!("mailbox {name}")));
                }
                batch.insert(key, Vec::new());
            } else {
                if !exists && self.inner.mail.get(&key)?.is_none() {
                    return Err(StoreError::NotFound(format!("mailbox {name}")));
                }
                batch.remove(key);
            }
            self.inner.mail.apply(batch)?;
        }
        self.flush().await?;
        self.inner.bus.publish(account, Change::MailboxesChanged);
        Ok(())
    }

    /// Every subscribed name of the account, in name order, whether or not
    /// a mailbox of that name exists.
    pub fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        Ok(self.subscribed_names(account)?.into_iter().collect())
    }

    pub(crate) fn subscribed_names(&self, account: AccountId) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for (k, _) in self.inner.mail.scan_prefix(&keys::subscriptions_of(account))? {
            let name =
                keys::name_of_subscription_key(&k).ok_or_else(|| StoreError::Corrupt("subscription key".into()))?;
            out.insert(name.to_owned());
        }
        Ok(out)
    }

    pub(crate) fn is_subscribed(&self, account: AccountId, name: &str) -> Result<bool> {
        Ok(self.inner.mail.get(&keys::subscription(account, name))?.is_some())
    }

    /// Adds to `batch` the move of every subscription of `from` or a name
    /// under it to the same place under `to` (RENAME). A name that would
    /// become invalid (too long, too deep) keeps its old subscription.
    /// The caller holds the write lock.
    pub(crate) fn move_subscriptions(&self, batch: &mut Batch, account: AccountId, from: &str, to: &str) -> Result<()> {
        let mut moved = Vec::new();
        for name in self.subscribed_names(account)? {
            let Some(suffix) = name.strip_prefix(from).filter(|s| s.is_empty() || s.starts_with(names::SEPARATOR))
            else {
                continue;
            };
            if let Ok(new) = names::canonical(&format!("{to}{suffix}")) {
                moved.push((name.clone(), new));
            }
        }
        // Every old name goes before any new one is written: a new name may be an old one.
        for (old, _) in &moved {
            batch.remove(keys::subscription(account, old));
        }
        for (_, new) in &moved {
            batch.insert(keys::subscription(account, new), Vec::new());
        }
        Ok(())
    }
}
