//! Index records as stored in the `mail` tree (JSON values; keys in `keys.rs`).

use crate::error::{Result, StoreError};
use crate::types::{Flags, ModSeq, SpecialUse, Uid};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeSet;

/// The flag whose absence makes a message unseen (and gives it a key of its own, `keys::unseen`).
pub(crate) const SEEN: &str = "\\Seen";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MailboxRecord {
    pub id: u64,
    pub account: u64,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub special_use: Option<SpecialUse>,
    /// Where earlier versions kept the subscription. Subscriptions now have
    /// keys of their own (they outlive DELETE, `subscriptions.rs`); opening
    /// the store moves this one there and clears it, so it is `None` in
    /// every record written since.
    #[serde(default, rename = "subscribed", skip_serializing_if = "Option::is_none")]
    pub legacy_subscribed: Option<bool>,
    pub exists: u32,
    /// Counters STATUS reads in O(1). `None` in records written before they
    /// existed: readers then count from the messages, and reconcile fills them in.
    #[serde(default)]
    pub counts: Option<Counts>,
    /// Every keyword ever set on a message of the mailbox (SELECT's FLAGS
    /// and PERMANENTFLAGS, RFC 3501 §7.2.6), so SELECT need not read every
    /// message. It only grows, as Dovecot's keyword list does: a keyword
    /// stays "defined" once used. `None` in records written before it was
    /// kept; opening the store fills it in (`upgrade.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<BTreeSet<String>>,
}

impl MailboxRecord {
    /// Notes the keywords among `flags` (system flags start with a backslash).
    pub fn define_keywords(&mut self, flags: &Flags) {
        if let Some(k) = &mut self.keywords {
            for f in flags.iter().filter(|f| !f.starts_with('\\')) {
                if !k.contains(f) {
                    k.insert(f.to_owned());
                }
            }
        }
    }
}

/// Per-mailbox counters kept in step with every message change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    /// Messages without `\Seen`.
    pub unseen: u32,
    /// Messages with `\Deleted`.
    pub deleted: u32,
    /// Octets of all messages (STATUS SIZE, RFC 8438).
    pub size: u64,
    /// Octets of the messages with `\Deleted` (STATUS DELETED-STORAGE, RFC 9208).
    pub deleted_size: u64,
}

impl Counts {
    /// Counts one message in.
    pub fn add(&mut self, size: u64, flags: &Flags) {
        self.change(size, flags, true);
    }

    /// Counts one message out.
    pub fn remove(&mut self, size: u64, flags: &Flags) {
        self.change(size, flags, false);
    }

    /// A message's flags changed from `old` to `new`.
    pub fn reflag(&mut self, size: u64, old: &Flags, new: &Flags) {
        self.remove(size, old);
        self.add(size, new);
    }

    fn change(&mut self, size: u64, flags: &Flags, add: bool) {
        fn step32(v: &mut u32, add: bool) {
            *v = if add { v.saturating_add(1) } else { v.saturating_sub(1) };
        }
        fn step64(v: &mut u64, n: u64, add: bool) {
            *v = if add { v.saturating_add(n) } else { v.saturating_sub(n) };
        }
        if !flags.contains(SEEN) {
            step32(&mut self.unseen, add);
        }
        if flags.contains("\\Deleted") {
            step32(&mut self.deleted, add);
            step64(&mut self.deleted_size, size, add);
        }
        step64(&mut self.size, size, add);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MessageRecord {
    pub blob: String,
    pub offset: u64,
    pub size: u64,
    pub internal_date: i64,
    pub flags: Flags,
    pub modseq: ModSeq,
}

impl From<crate::types::MessageMeta> for MessageRecord {
    fn from(m: crate::types::MessageMeta) -> MessageRecord {
        MessageRecord {
            blob: m.blob.0,
            offset: m.body_offset,
            size: m.size,
            internal_date: m.internal_date,
            flags: m.flags,
            modseq: m.modseq,
        }
    }
}

/// Storage an account uses, for quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Engine(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
