//! Bringing an index written by an earlier version up to date, once, when
//! the store is opened (the version is `C index-version` in the index).
//!
//! Version 1: subscriptions move out of the mailbox records into keys of
//! their own (`subscriptions.rs`); every mailbox gets its keyword list and
//! its unseen-message keys (`keys::unseen`), which SELECT reads instead of
//! every message record. One batch per mailbox, journaled like any other
//! change (the subscription records and the rewritten mailbox records),
//! and flushed before the store is used.

use crate::keys;
use crate::kv::Batch;
use crate::records::{MailboxRecord, MessageRecord, SEEN, decode, encode};
use crate::{AccountId, MailboxId, Result, Store};

const INDEX_VERSION: u64 = 1;

impl Store {
    /// Upgrades the index if an earlier version wrote it. Blocking; runs
    /// before anything else uses the store.
    pub(crate) fn upgrade_index(&self) -> Result<()> {
        let key = keys::counter("index-version");
        let mail = &self.inner.mail;
        let version = mail.get(&key)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_be_bytes);
        if version.is_some_and(|v| v >= INDEX_VERSION) {
            return Ok(());
        }
        let mut upgraded = 0usize;
        for (_, v) in mail.scan_prefix(&[keys::MAILBOX_BY_ID])? {
            let rec: MailboxRecord = decode("mailbox", &v)?;
            self.upgrade_mailbox(rec)?;
            upgraded += 1;
        }
        let mut batch = Batch::default();
        batch.insert(key, INDEX_VERSION.to_be_bytes().to_vec());
        mail.apply(batch)?;
        mail.journal().sync_blocking()?;
        self.inner.kv.flush_blocking()?;
        if upgraded > 0 {
            tracing::info!(mailboxes = upgraded, version = INDEX_VERSION, "index upgraded");
        }
        Ok(())
    }

    fn upgrade_mailbox(&self, mut rec: MailboxRecord) -> Result<()> {
        let id = MailboxId(rec.id);
        let mut batch = Batch::default();
        if rec.legacy_subscribed.take() == Some(true) {
            batch.insert(keys::subscription(AccountId(rec.account), &rec.name), Vec::new());
        }
        let mut keywords = rec.keywords.take().unwrap_or_default();
        for (k, v) in self.inner.mail.scan_prefix(&keys::messages_of(id))? {
            let msg: MessageRecord = decode("message", &v)?;
            keywords.extend(msg.flags.iter().filter(|f| !f.starts_with('\\')).map(str::to_owned));
            if !msg.flags.contains(SEEN)
                && let Some(uid) = keys::uid_of_message_key(&k)
            {
                batch.insert(keys::unseen(id, uid), Vec::new());
            }
        }
        rec.keywords = Some(keywords);
        batch.insert(keys::mailbox_by_id(id), encode(&rec)?);
        self.inner.mail.apply(batch)
    }
}
