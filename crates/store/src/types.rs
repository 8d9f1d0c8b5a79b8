//! Identifiers and records shared by every user of the store.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A user account. Allocated by the directory; the store keys all mail data by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub u64);

/// A mailbox, unique across the whole store and never reused (a re-created
/// mailbox gets a new id and a new UIDVALIDITY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MailboxId(pub u64);

/// IMAP UID (RFC 9051 §2.3.1.1): names one message in one mailbox.
///
/// Invariant: strictly increasing within one mailbox and UIDVALIDITY, and
/// never reused (an expunged message's UID is gone for good); real UIDs start
/// at 1. A newtype, not a `u32`, so a UID cannot be passed where a message
/// sequence number or a [`ModSeq`] is meant:
///
/// ```compile_fail
/// use coimail_store::{ModSeq, Uid};
/// fn since(_: ModSeq) {}
/// since(Uid(7));
/// ```
///
/// while the same call with a `ModSeq` compiles (so what fails above is the type):
///
/// ```
/// use coimail_store::ModSeq;
/// fn since(_: ModSeq) {}
/// since(ModSeq(7));
/// ```
///
/// Serialised as the bare number (`serde(transparent)`) and written into
/// keys as 4 big-endian bytes, as when it was a `u32`: existing data stays readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uid(pub u32);

impl Uid {
    /// The lowest UID a message can have.
    pub const MIN: Uid = Uid(1);
    pub const MAX: Uid = Uid(u32::MAX);

    /// The UID after this one; `None` once the UID space is exhausted.
    pub fn next(self) -> Option<Uid> {
        self.0.checked_add(1).map(Uid)
    }

    /// The UID after this one, or [`Uid::MAX`] (an exclusive bound one past
    /// the end, where the space is exhausted anyway).
    pub fn saturating_next(self) -> Uid {
        Uid(self.0.saturating_add(1))
    }

    /// The UID before this one; `None` for 0.
    pub fn prev(self) -> Option<Uid> {
        self.0.checked_sub(1).map(Uid)
    }

    /// The key encoding (`keys.rs`): big-endian, so keys sort in UID order.
    pub fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    pub fn from_be_bytes(b: [u8; 4]) -> Uid {
        Uid(u32::from_be_bytes(b))
    }
}

/// The number itself, for writing it out (the other way is explicit: `Uid(n)`).
impl From<Uid> for u32 {
    fn from(u: Uid) -> u32 {
        u.0
    }
}

impl std::fmt::Display for Uid {
    /// Decimal, as IMAP writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// RFC 7162 modification sequence: when a message (or the mailbox) last changed.
///
/// Invariant: strictly increasing per mailbox and never reused; every change
/// (append, flag change, expunge) takes the next one. Like [`Uid`], a
/// newtype so the two cannot be mixed, serialised as the bare number and
/// keyed as 8 big-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModSeq(pub u64);

impl ModSeq {
    pub const MAX: ModSeq = ModSeq(u64::MAX);

    /// The modseq after this one. A `u64` incremented once per change does
    /// not wrap in practice, so this saturates rather than fails.
    pub fn next(self) -> ModSeq {
        ModSeq(self.0.saturating_add(1))
    }

    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl std::fmt::Display for ModSeq {
    /// Decimal, as IMAP writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Special-use attributes (RFC 6154) of the mailboxes created for every new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecialUse {
    Drafts,
    Sent,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    /// The attribute as IMAP writes it, e.g. `\Sent`.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

/// What a mailbox looks like to a session at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    pub id: MailboxId,
    /// Full name with `/` as hierarchy separator; INBOX is always spelled `INBOX`.
    pub name: String,
    pub uid_validity: u32,
    /// The UID the next message will get. Every UID below it that still
    /// exists is durable and visible.
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    /// Number of messages in the mailbox.
    pub exists: u32,
}

/// A mailbox's counters, for STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxStatus {
    pub id: MailboxId,
    pub name: String,
    /// MESSAGES: every visible message.
    pub messages: u32,
    /// UNSEEN: messages without `\Seen`.
    pub unseen: u32,
    /// DELETED (RFC 9051): messages with `\Deleted`.
    pub deleted: u32,
    /// SIZE (RFC 8438): octets of all messages.
    pub size: u64,
    /// Octets of the messages with `\Deleted` (RFC 9208 DELETED-STORAGE, before rounding to KiB).
    pub deleted_size: u64,
    pub uid_next: Uid,
    pub uid_validity: u32,
    pub highest_modseq: ModSeq,
}

/// Message flags and keywords, stored as IMAP spells them (`\Seen`, `$Chat`).
/// System flags keep their canonical capitalisation; keywords compare as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags(pub BTreeSet<String>);

impl Flags {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn contains(&self, flag: &str) -> bool {
        self.0.contains(flag)
    }
    pub fn insert(&mut self, flag: impl Into<String>) -> bool {
        self.0.insert(flag.into())
    }
    pub fn remove(&mut self, flag: &str) -> bool {
        self.0.remove(flag)
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for Flags {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Flags(iter.into_iter().map(Into::into).collect())
    }
}

/// One message in one mailbox, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub mailbox: MailboxId,
    pub uid: Uid,
    /// Size of the message in octets (RFC822.SIZE).
    pub size: u64,
    /// Seconds since the Unix epoch (INTERNALDATE), with the sender's UTC offset in minutes.
    pub internal_date: i64,
    pub flags: Flags,
    pub modseq: ModSeq,
    /// The body file holding the message; shared by every copy of one delivery.
    pub blob: BlobId,
    /// Where the message starts in the body file (after its header).
    pub body_offset: u64,
}

/// Name of a body file. Time-ordered so a rebuild re-creates messages in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub String);

/// Where one delivered copy of a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub account: AccountId,
    /// The account's address at delivery time, so a rebuild can find the account
    /// again even if account ids were re-allocated.
    pub address: String,
    pub mailbox: String,
    pub flags: Flags,
}

/// The result of storing one placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid_validity: u32,
    pub uid: Uid,
}

/// What changed in an account, published on the change bus after the change is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New messages: every UID below `uid_next` in `mailbox` is now visible.
    Appended { mailbox: MailboxId, uid_next: Uid },
    /// Messages removed from `mailbox`.
    Expunged { mailbox: MailboxId, uids: Vec<Uid>, modseq: ModSeq },
    /// Flags of one message changed.
    FlagsChanged { mailbox: MailboxId, uid: Uid, flags: Flags, modseq: ModSeq },
    /// Mailboxes were created, deleted, renamed or (un)subscribed.
    MailboxesChanged,
    /// METADATA entries were set or removed in one commit (RFC 5464):
    /// `mailbox` is `None` for server-level entries; `entries` are the
    /// client-visible names (`/private/...`, `/shared/...`), lower-cased.
    /// Published to the owning account, and server-level `/shared/` ones to
    /// every account (they see them all).
    MetadataChanged { mailbox: Option<MailboxId>, entries: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;

    /// Data directories written while these were plain `u32`/`u64` must read
    /// back unchanged: the same JSON numbers, the same key bytes.
    #[test]
    fn uid_and_modseq_encode_as_the_numbers_they_were() {
        assert_eq!(serde_json::to_string(&(Uid(7), ModSeq(9))).unwrap(), "[7,9]");
        assert_eq!(serde_json::from_str::<Vec<Uid>>("[3,4]").unwrap(), [Uid(3), Uid(4)]);
        assert_eq!(keys::message(MailboxId(1), Uid(0x0102_0304)), [b'm', 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(keys::uid_of_message_key(&keys::message(MailboxId(1), Uid(9))), Some(Uid(9)));
        assert_eq!(keys::expunge_log(MailboxId(1), ModSeq(5))[9..], 5u64.to_be_bytes());
        assert_eq!((Uid(41).to_string(), ModSeq(42).to_string()), ("41".to_owned(), "42".to_owned()));
    }
}
