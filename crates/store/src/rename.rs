//! RENAME (RFC 3501 §6.3.5, RFC 9051 §6.3.6): a mailbox and every mailbox
//! under it get new names in ONE commit, keeping their ids, UIDVALIDITY,
//! messages and METADATA; their subscriptions move to the new names.
//! Renaming INBOX instead moves its messages to a new mailbox and leaves
//! INBOX, empty (and subscribed as it was), where it is.
//!
//! Both are journaled (`journal.rs`: the renamed mailbox records, or the
//! moved messages), so a rebuild from files alone finds messages under their
//! new names, not where they were first delivered.

use crate::index::Indexer;
use crate::keys;
use crate::kv::Batch;
use crate::names::{self, SEPARATOR};
use crate::records::{MailboxRecord, MessageRecord, decode, encode};
use crate::{AccountId, Change, MailboxId, Result, Store, StoreError};
use std::collections::HashSet;

impl Store {
    /// Renames `from` and the mailboxes under it to `to`. Errors: `NotFound`
    /// (neither `from` nor anything under it exists), `AlreadyExists` (a new
    /// name is taken), `Invalid` (`to` is `from` or lies under it),
    /// `InvalidName`.
    pub async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let from = names::canonical(from)?;
        let to = names::canonical(to)?;
        if from == "INBOX" {
            return self.rename_inbox(account, &to).await;
        }
        if to == from || is_under(&to, &from) {
            return Err(StoreError::Invalid(format!("cannot rename {from} to itself or into its own hierarchy")));
        }
        {
            let _g = self.lock();
            let moving = self.subtree(account, &from)?;
            if moving.is_empty() {
                return Err(StoreError::NotFound(format!("mailbox {from}")));
            }
            let old: HashSet<&str> = moving.iter().map(|r| r.name.as_str()).collect();
            let mut renamed = Vec::with_capacity(moving.len());
            for rec in &moving {
                let suffix = rec.name.get(from.len()..).unwrap_or_default();
                let new = names::canonical(&format!("{to}{suffix}"))?;
                if !old.contains(new.as_str()) && self.mailbox_record(account, &new)?.is_some() {
                    return Err(StoreError::AlreadyExists(format!("mailbox {new}")));
                }
                renamed.push(MailboxRecord { name: new, ..rec.clone() });
            }
            // Every old name goes before any new one is written: a new name
            // may be an old one (`a/b` -> `a` turns `a/b/b` into `a/b`).
            let mut batch = Batch::default();
            for rec in &moving {
                batch.remove(keys::mailbox_by_name(account, &rec.name));
            }
            for rec in &renamed {
                batch.insert(keys::mailbox_by_name(account, &rec.name), rec.id.to_be_bytes().to_vec());
                batch.insert(keys::mailbox_by_id(MailboxId(rec.id)), encode(rec)?);
            }
            // The subscriptions go along (they used to be part of the mailbox records).
            self.move_subscriptions(&mut batch, account, &from, &to)?;
            self.inner.mail.apply(batch)?;
        }
        self.flush().await?;
        self.inner.bus.publish(account, Change::MailboxesChanged);
        Ok(())
    }

    /// RFC 3501 §6.3.5: renaming INBOX moves all its messages to a new
    /// mailbox `to` and leaves INBOX empty; mailboxes under INBOX stay.
    /// INBOX keeps its UIDVALIDITY and never reuses the UIDs it gave away.
    async fn rename_inbox(&self, account: AccountId, to: &str) -> Result<()> {
        let applied = {
            let _g = self.lock();
            if self.mailbox_record(account, to)?.is_some() {
                return Err(StoreError::AlreadyExists(format!("mailbox {to}")));
            }
            let inbox =
                self.mailbox_record(account, "INBOX")?.ok_or_else(|| StoreError::NotFound("mailbox INBOX".into()))?;
            let inbox = MailboxId(inbox.id);
            let target = self.new_mailbox_record(account, to, None)?;
            let target_id = MailboxId(target.id);
            let mut ix = Indexer::new(self);
            ix.created(target);
            // The whole index range, in-flight deliveries included: they move too.
            for (k, v) in self.inner.mail.scan_prefix(&keys::messages_of(inbox))? {
                let uid = keys::uid_of_message_key(&k).ok_or_else(|| StoreError::Corrupt("message key".into()))?;
                let msg: MessageRecord = decode("message", &v)?;
                ix.remove(inbox, uid, &msg)?;
                ix.insert(target_id, msg)?;
            }
            ix.apply()?
        };
        self.finish(applied).await?;
        self.inner.bus.publish(account, Change::MailboxesChanged);
        Ok(())
    }

    /// `name` and every mailbox under it, in name order; the caller holds the write lock.
    fn subtree(&self, account: AccountId, name: &str) -> Result<Vec<MailboxRecord>> {
        let mut out = Vec::new();
        for (_, id) in self.inner.mail.scan_prefix(&keys::mailbox_by_name(account, name))? {
            let id: [u8; 8] = id.as_slice().try_into().map_err(|_| StoreError::Corrupt("mailbox id".into()))?;
            if let Some(rec) = self.mailbox_record_by_id(MailboxId(u64::from_be_bytes(id)))?
                && (rec.name == name || is_under(&rec.name, name))
            {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// `name` lies somewhere below `parent` in the hierarchy.
fn is_under(name: &str, parent: &str) -> bool {
    name.strip_prefix(parent).is_some_and(|rest| rest.starts_with(SEPARATOR))
}

#[cfg(test)]
mod tests {
    use super::is_under;

    #[test]
    fn hierarchy() {
        assert!(is_under("a/b", "a") && is_under("a/b/c", "a/b"));
        assert!(!is_under("ab", "a") && !is_under("a", "a") && !is_under("b/a", "a"));
    }
}
