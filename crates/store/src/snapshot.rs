//! What SELECT and EXAMINE report about a mailbox (RFC 3501 §6.3.1, RFC
//! 9051 §6.3.2), read without decoding a single message record: the UIDs
//! come from the message keys alone, the first unseen message from the
//! unseen-message keys (`keys::unseen`, one seek), and the keywords from
//! the mailbox record (`MailboxRecord::keywords`). On 10,000 messages that
//! is a few milliseconds instead of decoding 10,000 records.

use crate::keys;
use crate::names;
use crate::records::{MessageRecord, decode};
use crate::{AccountId, MailboxId, MailboxInfo, Result, Store, StoreError, Uid, ViewPin};
use std::collections::BTreeSet;

/// A mailbox as SELECT sees it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSnapshot {
    pub info: MailboxInfo,
    /// Every visible message's UID, ascending.
    pub uids: Vec<Uid>,
    /// The lowest visible UID of a message without `\Seen`.
    pub first_unseen: Option<Uid>,
    /// The keywords defined in the mailbox (every keyword ever set on one
    /// of its messages), sorted.
    pub keywords: Vec<String>,
}

impl Store {
    /// The mailbox `name` (validated; INBOX in any case) as SELECT needs it.
    pub fn mailbox_snapshot(&self, account: AccountId, name: &str) -> Result<MailboxSnapshot> {
        Ok(self.pinned_snapshot(account, name)?.0)
    }

    /// [`Store::mailbox_snapshot`] for a session that selects the mailbox:
    /// with the pin that keeps the messages it lists readable after an
    /// expunge until the session has told its client (`retention.rs`),
    /// taken before the messages are read.
    pub fn pinned_snapshot(&self, account: AccountId, name: &str) -> Result<(MailboxSnapshot, ViewPin)> {
        let name = names::canonical(name)?;
        let rec =
            self.mailbox_record(account, &name)?.ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
        let pin = self.pin_view(MailboxId(rec.id));
        let info = self.info_of(&rec)?;
        let id = info.id;
        // `info.uid_next` is the visibility watermark: UIDs at or above it are not durable yet.
        let end = info.uid_next;
        let mut uids = Vec::with_capacity(rec.exists as usize);
        self.inner.mail.visit_range(&keys::message(id, Uid(0)), &keys::message(id, end), |k, _| {
            uids.push(keys::uid_of_message_key(k).ok_or_else(|| StoreError::Corrupt("message key".into()))?);
            Ok(true)
        })?;
        let mut first_unseen = None;
        self.inner.mail.visit_range(&keys::unseen(id, Uid(0)), &keys::unseen(id, end), |k, _| {
            let uid = keys::uid_of_message_key(k).ok_or_else(|| StoreError::Corrupt("unseen key".into()))?;
            // The two reads are not one snapshot: a message expunged in
            // between is skipped.
            if uids.binary_search(&uid).is_ok() {
                first_unseen = Some(uid);
                return Ok(false);
            }
            Ok(true)
        })?;
        let keywords = match rec.keywords {
            Some(k) => k.into_iter().collect(),
            None => self.keywords_in(id)?,
        };
        Ok((MailboxSnapshot { info, uids, first_unseen, keywords }, pin))
    }

    /// The keywords of the mailbox's messages, read from each of them (a
    /// record without its keyword list; opening the store adds the list).
    fn keywords_in(&self, id: MailboxId) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        for (_, v) in self.inner.mail.scan_prefix(&keys::messages_of(id))? {
            let msg: MessageRecord = decode("message", &v)?;
            out.extend(msg.flags.iter().filter(|f| !f.starts_with('\\')).map(str::to_owned));
        }
        Ok(out.into_iter().collect())
    }
}
