//! Per-account quota (RFC 9208): the limits, and the check every change that
//! adds messages makes under the write lock, so two concurrent deliveries
//! cannot both slip under the limit.
//!
//! One quota root per account covers all its mailboxes, so MOVE (same
//! account, same root) never changes usage and is never refused: a user
//! over quota can always move mail to Trash and expunge it. Usage itself is
//! kept by `index.rs` in the same batch as the messages.
//!
//! The limits are a copy of the directory's (`quota_bytes` per user), set
//! when the user is created; the store cannot look the directory up (it sits
//! below it), and SMTP delivery must be refused without any session.

use crate::keys;
use crate::kv::Batch;
use crate::message::Target;
use crate::records::{MessageRecord, decode, encode};
use crate::{AccountId, MailboxId, Result, Store, StoreError, Uid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An account's limits; `None` is no limit for that resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// RFC 9208 STORAGE, in octets (IMAP reports it in KiB).
    pub bytes: Option<u64>,
    /// RFC 9208 MESSAGE: messages over all mailboxes.
    pub messages: Option<u64>,
}

impl QuotaLimits {
    /// True when no resource is limited.
    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.messages.is_none()
    }
}

impl Store {
    /// Sets the account's limits; durable on return. Existing mail is never
    /// removed: an account over a new, lower limit just cannot grow.
    pub async fn set_quota(&self, account: AccountId, limits: QuotaLimits) -> Result<()> {
        {
            let _g = self.lock();
            let mut batch = Batch::default();
            if limits.is_unlimited() {
                batch.remove(keys::quota_limit(account));
            } else {
                batch.insert(keys::quota_limit(account), encode(&limits)?);
            }
            self.inner.mail.apply(batch)?;
        }
        self.flush().await
    }

    /// The account's limits (unlimited when none were set).
    pub fn quota(&self, account: AccountId) -> Result<QuotaLimits> {
        match self.inner.mail.get(&keys::quota_limit(account))? {
            Some(v) => decode("quota", &v),
            None => Ok(QuotaLimits::default()),
        }
    }

    /// `QuotaExceeded` when adding `bytes` in `messages` messages would take
    /// the account over a limit. Call with the write lock held, before the
    /// change is applied. Also usable without the lock as an early answer
    /// (SMTP RCPT), which the locked check then confirms.
    pub fn check_quota(&self, account: AccountId, bytes: u64, messages: u64) -> Result<()> {
        let limits = self.quota(account)?;
        if limits.is_unlimited() || (bytes == 0 && messages == 0) {
            return Ok(());
        }
        let used = self.usage(account)?;
        let over_bytes = limits.bytes.is_some_and(|l| used.bytes.saturating_add(bytes) > l);
        let over_messages = limits.messages.is_some_and(|l| used.messages.saturating_add(messages) > l);
        if over_bytes || over_messages {
            return Err(StoreError::QuotaExceeded);
        }
        Ok(())
    }

    /// [`Store::check_quota`] for one message of `size` octets placed at
    /// every target (deliver, APPEND): each account is charged once per
    /// placement it gets. The caller holds the write lock.
    pub(crate) fn check_quota_targets(&self, targets: &[Target], size: u64) -> Result<()> {
        let mut per_account: BTreeMap<AccountId, u64> = BTreeMap::new();
        for t in targets {
            *per_account.entry(t.account).or_default() += 1;
        }
        for (account, n) in per_account {
            self.check_quota(account, size.saturating_mul(n), n)?;
        }
        Ok(())
    }

    /// [`Store::check_quota`] for a COPY of the `(source UID, new UID)`
    /// pairs out of `from`; a MOVE (`removes`) adds nothing and passes. The
    /// caller holds the write lock and has not applied the change yet.
    pub(crate) fn check_quota_copy(
        &self,
        account: AccountId,
        from: MailboxId,
        pairs: &[(Uid, Uid)],
        removes: bool,
    ) -> Result<()> {
        if removes || self.quota(account)?.is_unlimited() {
            return Ok(());
        }
        let mut bytes = 0u64;
        for (uid, _) in pairs {
            if let Some(v) = self.inner.mail.get(&keys::message(from, *uid))? {
                bytes = bytes.saturating_add(decode::<MessageRecord>("message", &v)?.size);
            }
        }
        self.check_quota(account, bytes, pairs.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use crate::{AccountId, Flags, Placement, QuotaLimits, Store, StoreError};

    const ALICE: AccountId = AccountId(1);
    const BOB: AccountId = AccountId(2);

    fn inbox(account: AccountId) -> Placement {
        Placement { account, address: format!("{}@x.org", account.0), mailbox: "INBOX".into(), flags: Flags::new() }
    }

    fn body_files(dir: &std::path::Path) -> usize {
        crate::blob::BlobStore::open(&dir.join("blobs")).unwrap().list().unwrap().len()
    }

    async fn store(dir: &std::path::Path) -> Store {
        let s = Store::open_memory(dir).unwrap();
        s.create_account(ALICE, "1@x.org").await.unwrap();
        s.create_account(BOB, "2@x.org").await.unwrap();
        s
    }

    #[tokio::test]
    async fn storage_limit_refuses_deliver_append_and_copy_but_not_move() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        assert!(s.quota(ALICE).unwrap().is_unlimited());
        s.set_quota(ALICE, QuotaLimits { bytes: Some(25), messages: None }).await.unwrap();
        assert_eq!(s.quota(ALICE).unwrap().bytes, Some(25));
        let first = s.deliver(&[b'x'; 10], 0, vec![inbox(ALICE)]).await.unwrap()[0];
        s.append(ALICE, "INBOX", &[b'y'; 10], Flags::new(), 0).await.unwrap();
        let before = body_files(dir.path());
        assert!(matches!(s.deliver(&[b'z'; 10], 0, vec![inbox(ALICE)]).await, Err(StoreError::QuotaExceeded)));
        // The refused body file is gone again.
        assert_eq!(body_files(dir.path()), before);
        assert!(matches!(s.append(ALICE, "INBOX", &[b'z'; 6], Flags::new(), 0).await, Err(StoreError::QuotaExceeded)));
        let trash = s.mailbox(ALICE, "Trash").unwrap().id;
        let copied = s.copy_messages(ALICE, first.mailbox, &[first.uid], trash).await;
        assert!(matches!(copied, Err(StoreError::QuotaExceeded)));
        assert_eq!(s.move_messages(ALICE, first.mailbox, &[first.uid], trash).await.unwrap().len(), 1);
        assert_eq!(s.usage(ALICE).unwrap().bytes, 20);
        // Other accounts are not limited; a multi-recipient delivery fails whole.
        assert!(s.deliver(&[b'z'; 10], 0, vec![inbox(BOB)]).await.is_ok());
        assert!(s.deliver(&[b'z'; 10], 0, vec![inbox(BOB), inbox(ALICE)]).await.is_err());
        // Lifting the limit lets mail in again.
        s.set_quota(ALICE, QuotaLimits::default()).await.unwrap();
        assert!(s.deliver(&[b'z'; 10], 0, vec![inbox(ALICE)]).await.is_ok());
    }

    #[tokio::test]
    async fn message_limit_counts_every_copy() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        s.set_quota(ALICE, QuotaLimits { bytes: None, messages: Some(2) }).await.unwrap();
        let two = vec![inbox(ALICE), Placement { mailbox: "Sent".into(), ..inbox(ALICE) }];
        s.deliver(b"a", 0, two.clone()).await.unwrap();
        assert!(matches!(s.deliver(b"b", 0, vec![inbox(ALICE)]).await, Err(StoreError::QuotaExceeded)));
        let msgs = vec![crate::NewMessage { raw: b"c".to_vec(), flags: Flags::new(), internal_date: 0 }];
        assert!(matches!(s.append_many(ALICE, "INBOX", msgs).await, Err(StoreError::QuotaExceeded)));
        assert_eq!(s.usage(ALICE).unwrap().messages, 2);
    }
}
