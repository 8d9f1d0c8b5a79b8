//! RFC 5464 METADATA entries: server-level (mailbox `""`) or per mailbox,
//! private (`/private/...`, per account) or shared (`/shared/...`).
//!
//! Entry names are case-insensitive (RFC 5464 §3.2), so they are stored
//! lower-cased. Keys are `D, owner, mailbox, name` (`keys::metadata_scope`):
//! `owner` is the account for everything except server-level `/shared/`
//! entries, which every account sees (owner 0). Per-mailbox entries, private
//! and shared alike, sit under the owning account and the mailbox id, so
//! they follow RENAME (ids stay) and go with DELETE, and all of one
//! account's entries are one key range (for the per-account limit).
//!
//! Names not starting with `/` are internal: the IMAP layer only ever
//! addresses `/private/...` and `/shared/...`, so state kept under other
//! names (push secrets, say) is out of METADATA's reach (COI R10).
//! Syntax of names and per-entry size are the IMAP layer's to check; the
//! per-account entry count is checked here, under the write lock.

use crate::keys;
use crate::kv::Batch;
use crate::{AccountId, Change, MailboxId, Result, Store, StoreError};
use std::collections::BTreeMap;

/// Whose entries, and on what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataScope {
    /// The account asking; it owns every entry but server-level `/shared/` ones.
    pub account: AccountId,
    /// The mailbox (the account's own); `None` for server-level entries.
    pub mailbox: Option<MailboxId>,
}

/// Limits checked under the write lock by [`Store::set_metadata_entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Most client-visible entries one account may hold, over the server
    /// and all its mailboxes, private and shared.
    pub max_entries: usize,
}

fn is_shared(entry: &str) -> bool {
    entry.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("/shared"))
}

impl MetadataScope {
    fn owner(&self, entry: &str) -> u64 {
        if self.mailbox.is_none() && is_shared(entry) { 0 } else { self.account.0 }
    }

    fn prefix(&self, entry: &str) -> Vec<u8> {
        keys::metadata_scope(self.owner(entry), self.mailbox.map_or(0, |m| m.0))
    }

    fn key(&self, entry: &str) -> Vec<u8> {
        let mut k = self.prefix(entry);
        k.extend_from_slice(entry.to_ascii_lowercase().as_bytes());
        k
    }
}

/// The key prefix of every entry `account` owns.
fn account_prefix(account: AccountId) -> Vec<u8> {
    let mut k = keys::metadata_scope(account.0, 0);
    k.truncate(1 + 8);
    k
}

impl Store {
    /// Sets (`Some`) or removes (`None`) one entry, with no limit; durable on return.
    pub async fn set_metadata(&self, scope: MetadataScope, entry: &str, value: Option<&[u8]>) -> Result<()> {
        self.set_metadata_entries(scope, &[(entry.to_owned(), value.map(<[u8]>::to_vec))], None).await
    }

    /// Sets or removes several entries in ONE commit (RFC 5464 §4.3: all or
    /// none); durable on return. Errors: `NotFound` when the scope's mailbox
    /// is gone, `QuotaExceeded` when the account would hold more than
    /// `limits.max_entries` client-visible entries, `Invalid` for an empty name.
    pub async fn set_metadata_entries(
        &self,
        scope: MetadataScope,
        entries: &[(String, Option<Vec<u8>>)],
        limits: Option<MetadataLimits>,
    ) -> Result<()> {
        if entries.iter().any(|(name, _)| name.is_empty()) {
            return Err(StoreError::Invalid("empty metadata entry name".into()));
        }
        {
            let _g = self.lock();
            if let Some(mailbox) = scope.mailbox {
                // Checked under the lock: no entry outlives a concurrent DELETE.
                self.owned_mailbox(scope.account, mailbox)?;
            }
            // A name given twice counts once: the last value wins.
            let last: BTreeMap<Vec<u8>, (&str, &Option<Vec<u8>>)> =
                entries.iter().map(|(name, value)| (scope.key(name), (name.as_str(), value))).collect();
            let mut batch = Batch::default();
            let mut added = 0usize;
            let mut removed = 0usize;
            for (key, (name, value)) in last {
                let exists = self.inner.mail.get(&key)?.is_some();
                let counted = name.starts_with('/') && scope.owner(name) != 0;
                match value {
                    Some(v) => {
                        added += usize::from(!exists && counted);
                        batch.insert(key, v.clone());
                    }
                    None => {
                        removed += usize::from(exists && counted);
                        batch.remove(key);
                    }
                }
            }
            if let Some(limits) = limits
                && added > removed
                && self.metadata_count(scope.account)? + added - removed > limits.max_entries
            {
                return Err(StoreError::QuotaExceeded);
            }
            self.inner.mail.apply(batch)?;
        }
        self.flush().await?;
        self.publish_metadata(scope, entries);
        Ok(())
    }

    /// Tells sessions which client-visible entries changed, after the commit.
    fn publish_metadata(&self, scope: MetadataScope, entries: &[(String, Option<Vec<u8>>)]) {
        let (mut own, mut everyone) = (Vec::new(), Vec::new());
        for (name, _) in entries.iter().filter(|(n, _)| n.starts_with('/')) {
            let to = if scope.owner(name) == 0 { &mut everyone } else { &mut own };
            let name = name.to_ascii_lowercase();
            if !to.contains(&name) {
                to.push(name);
            }
        }
        let mailbox = scope.mailbox;
        if !own.is_empty() {
            self.inner.bus.publish(scope.account, Change::MetadataChanged { mailbox, entries: own });
        }
        if !everyone.is_empty() {
            self.inner.bus.publish_all(Change::MetadataChanged { mailbox, entries: everyone });
        }
    }

    pub fn get_metadata(&self, scope: MetadataScope, entry: &str) -> Result<Option<Vec<u8>>> {
        self.inner.mail.get(&scope.key(entry))
    }

    /// Entries whose (lower-cased) name starts with `prefix`, in name order.
    /// `prefix` must start with `/private` or `/shared` (or be internal), so
    /// one scope's private and shared entries never mix.
    pub fn list_metadata(&self, scope: MetadataScope, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let base = scope.prefix(prefix).len();
        self.inner
            .mail
            .scan_prefix(&scope.key(prefix))?
            .into_iter()
            .map(|(k, v)| {
                let name = k
                    .get(base..)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .ok_or_else(|| StoreError::Corrupt("metadata key".into()))?;
                Ok((name.to_owned(), v))
            })
            .collect()
    }

    /// Client-visible entries the account owns (server and every mailbox).
    pub fn metadata_count(&self, account: AccountId) -> Result<usize> {
        let name_at = account_prefix(account).len() + 8;
        let rows = self.inner.mail.scan_prefix(&account_prefix(account))?;
        Ok(rows.iter().filter(|(k, _)| k.get(name_at) == Some(&b'/')).count())
    }

    /// Adds the removal of the account's entries to `batch`: those of
    /// `mailbox`, or with `None` all of them (server-level and every
    /// mailbox's). The caller holds the write lock.
    pub(crate) fn remove_metadata(
        &self,
        batch: &mut Batch,
        account: AccountId,
        mailbox: Option<MailboxId>,
    ) -> Result<()> {
        let prefix = match mailbox {
            Some(m) => keys::metadata_scope(account.0, m.0),
            None => account_prefix(account),
        };
        for (k, _) in self.inner.mail.scan_prefix(&prefix)? {
            batch.remove(k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: AccountId = AccountId(1);
    const BOB: AccountId = AccountId(2);

    async fn store(dir: &std::path::Path) -> Store {
        let s = Store::open_memory(dir).unwrap();
        s.create_account(ALICE, "alice@x.org").await.unwrap();
        s.create_account(BOB, "bob@x.org").await.unwrap();
        s
    }

    fn set(name: &str, v: Option<&str>) -> (String, Option<Vec<u8>>) {
        (name.to_owned(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[tokio::test]
    async fn entries_are_scoped_and_case_insensitive() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let alice = MetadataScope { account: ALICE, mailbox: None };
        let bob = MetadataScope { account: BOB, mailbox: None };
        s.set_metadata(alice, "/private/vendor/vendor.dovecot/coi/config/enabled", Some(b"yes")).await.unwrap();
        s.set_metadata(alice, "/shared/comment", Some(b"hello")).await.unwrap();
        let got = s.get_metadata(alice, "/PRIVATE/vendor/vendor.dovecot/coi/config/ENABLED").unwrap();
        assert_eq!(got.as_deref(), Some(&b"yes"[..]));
        assert!(s.get_metadata(bob, "/private/vendor/vendor.dovecot/coi/config/enabled").unwrap().is_none());
        // Server-level shared entries are the same for every account.
        assert_eq!(s.get_metadata(bob, "/shared/comment").unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(s.list_metadata(alice, "/private/vendor/").unwrap().len(), 1);
        assert_eq!(s.list_metadata(alice, "/shared").unwrap().len(), 1);
        assert_eq!(s.metadata_count(ALICE).unwrap(), 1);
        s.set_metadata(bob, "/shared/comment", None).await.unwrap();
        assert!(s.get_metadata(alice, "/shared/comment").unwrap().is_none());
    }

    #[tokio::test]
    async fn mailbox_entries_follow_rename_and_go_with_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let id = s.create_mailbox(ALICE, "Chats", None).await.unwrap().id;
        let scope = MetadataScope { account: ALICE, mailbox: Some(id) };
        s.set_metadata_entries(scope, &[set("/private/a", Some("1")), set("/shared/b", Some("2"))], None)
            .await
            .unwrap();
        s.rename_mailbox(ALICE, "Chats", "Talk").await.unwrap();
        assert_eq!(s.list_metadata(scope, "/shared/").unwrap(), vec![("/shared/b".into(), b"2".to_vec())]);
        assert_eq!(s.metadata_count(ALICE).unwrap(), 2);
        s.delete_mailbox(ALICE, "Talk").await.unwrap();
        assert_eq!(s.metadata_count(ALICE).unwrap(), 0);
        let r = s.set_metadata_entries(scope, &[set("/private/a", Some("1"))], None).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))));
        // Another account's mailbox is out of reach.
        let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
        let r = s.set_metadata(MetadataScope { account: BOB, mailbox: Some(inbox) }, "/private/x", Some(b"1")).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))));
    }

    #[tokio::test]
    async fn entry_count_is_limited_per_account_and_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let server = MetadataScope { account: ALICE, mailbox: None };
        let limits = Some(MetadataLimits { max_entries: 2 });
        s.set_metadata_entries(server, &[set("/private/a", Some("1")), set("/private/b", Some("2"))], limits)
            .await
            .unwrap();
        // Replacing and removing are always fine; a third entry is not.
        s.set_metadata_entries(server, &[set("/private/a", Some("3"))], limits).await.unwrap();
        let third = [set("/private/c", Some("x")), set("/private/d", None)];
        assert!(matches!(s.set_metadata_entries(server, &third, limits).await, Err(StoreError::QuotaExceeded)));
        assert!(s.get_metadata(server, "/private/c").unwrap().is_none());
        let swap = [set("/private/c", Some("x")), set("/private/b", None)];
        s.set_metadata_entries(server, &swap, limits).await.unwrap();
        assert_eq!(s.metadata_count(ALICE).unwrap(), 2);
        // Internal names do not count and are not listed under /private.
        s.set_metadata_entries(server, &[set("pvt/secret", Some("k"))], limits).await.unwrap();
        assert_eq!(s.list_metadata(server, "/private").unwrap().len(), 2);
        assert_eq!(s.metadata_count(ALICE).unwrap(), 2);
    }
}
