//! Key encoding for the `mail` tree, in one place. Every key starts with a
//! table byte; numbers are big-endian so range scans iterate in id/UID order.

use crate::types::{AccountId, MailboxId, ModSeq, Uid};

pub const ACCOUNT: u8 = b'A';
pub const MAILBOX_BY_NAME: u8 = b'M';
pub const MAILBOX_BY_ID: u8 = b'N';
pub const MESSAGE: u8 = b'm';
pub const BLOB_REFS: u8 = b'b';
pub const USAGE: u8 = b'Q';
pub const METADATA: u8 = b'D';
pub const EXPUNGE_LOG: u8 = b'X';
pub const COUNTER: u8 = b'C';
pub const QUOTA_LIMIT: u8 = b'L';
pub const SUBSCRIPTION: u8 = b'S';
pub const UNSEEN: u8 = b'U';

pub fn account(a: AccountId) -> Vec<u8> {
    let mut k = vec![ACCOUNT];
    k.extend_from_slice(&a.0.to_be_bytes());
    k
}

pub fn mailboxes_of(a: AccountId) -> Vec<u8> {
    let mut k = vec![MAILBOX_BY_NAME];
    k.extend_from_slice(&a.0.to_be_bytes());
    k
}

pub fn mailbox_by_name(a: AccountId, name: &str) -> Vec<u8> {
    let mut k = mailboxes_of(a);
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn mailbox_by_id(m: MailboxId) -> Vec<u8> {
    let mut k = vec![MAILBOX_BY_ID];
    k.extend_from_slice(&m.0.to_be_bytes());
    k
}

pub fn message(m: MailboxId, uid: Uid) -> Vec<u8> {
    let mut k = vec![MESSAGE];
    k.extend_from_slice(&m.0.to_be_bytes());
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

pub fn messages_of(m: MailboxId) -> Vec<u8> {
    let mut k = vec![MESSAGE];
    k.extend_from_slice(&m.0.to_be_bytes());
    k
}

/// The UID at the end of a message key.
pub fn uid_of_message_key(key: &[u8]) -> Option<Uid> {
    let tail: [u8; 4] = key.get(9..13)?.try_into().ok()?;
    Some(Uid::from_be_bytes(tail))
}

/// Every subscription of the account (`subscriptions.rs`).
pub fn subscriptions_of(a: AccountId) -> Vec<u8> {
    let mut k = vec![SUBSCRIPTION];
    k.extend_from_slice(&a.0.to_be_bytes());
    k
}

/// A subscribed name: independent of whether a mailbox of that name exists.
pub fn subscription(a: AccountId, name: &str) -> Vec<u8> {
    let mut k = subscriptions_of(a);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The subscribed name at the end of a subscription key.
pub fn name_of_subscription_key(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(9..)?).ok()
}

/// One message without `\Seen`: SELECT finds the first unseen message
/// with one seek instead of reading every message record. Kept in the same
/// batch as the message entry (`index.rs`, `message.rs`).
pub fn unseen(m: MailboxId, uid: Uid) -> Vec<u8> {
    let mut k = unseen_of(m);
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

pub fn unseen_of(m: MailboxId) -> Vec<u8> {
    let mut k = vec![UNSEEN];
    k.extend_from_slice(&m.0.to_be_bytes());
    k
}

pub fn blob_refs(blob: &str) -> Vec<u8> {
    let mut k = vec![BLOB_REFS];
    k.extend_from_slice(blob.as_bytes());
    k
}

pub fn usage(a: AccountId) -> Vec<u8> {
    let mut k = vec![USAGE];
    k.extend_from_slice(&a.0.to_be_bytes());
    k
}

/// Metadata scope: the owning account (0 for shared server entries) and the
/// mailbox (0 for server-level entries).
pub fn metadata_scope(owner: u64, mailbox: u64) -> Vec<u8> {
    let mut k = vec![METADATA];
    k.extend_from_slice(&owner.to_be_bytes());
    k.extend_from_slice(&mailbox.to_be_bytes());
    k
}

/// The account's quota limits (`quota.rs`), copied from the directory.
pub fn quota_limit(a: AccountId) -> Vec<u8> {
    let mut k = vec![QUOTA_LIMIT];
    k.extend_from_slice(&a.0.to_be_bytes());
    k
}

pub fn expunge_log(m: MailboxId, modseq: ModSeq) -> Vec<u8> {
    let mut k = vec![EXPUNGE_LOG];
    k.extend_from_slice(&m.0.to_be_bytes());
    k.extend_from_slice(&modseq.to_be_bytes());
    k
}

/// Every expunge-log key of the mailbox.
pub fn expunge_log_of(m: MailboxId) -> Vec<u8> {
    let mut k = vec![EXPUNGE_LOG];
    k.extend_from_slice(&m.0.to_be_bytes());
    k
}

pub fn counter(name: &str) -> Vec<u8> {
    let mut k = vec![COUNTER];
    k.extend_from_slice(name.as_bytes());
    k
}

/// Outbound queue entries (`spool.rs`), by queue id.
pub const SPOOL: u8 = b'O';

pub fn spool(id: u64) -> Vec<u8> {
    let mut k = vec![SPOOL];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The due-time index of the queue (`spool.rs`): one empty value per entry
/// with work left, keyed by when it is next due and its id, so the runner
/// reads only what is due instead of every entry.
pub const SPOOL_DUE: u8 = b'o';

/// Index key of entry `id`, due at `at` (Unix seconds; earlier than 1970 counts as 0).
pub fn spool_due(at: i64, id: u64) -> Vec<u8> {
    let mut k = spool_due_bound(at);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The first index key due at `at`: `[spool_due_bound(a), spool_due_bound(b))` is due in `a..b`.
pub fn spool_due_bound(at: i64) -> Vec<u8> {
    let mut k = vec![SPOOL_DUE];
    k.extend_from_slice(&u64::try_from(at).unwrap_or(0).to_be_bytes());
    k
}

/// Entry id and due time of an index key.
pub fn spool_due_parts(key: &[u8]) -> Option<(i64, u64)> {
    let at: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    let id: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    Some((i64::try_from(u64::from_be_bytes(at)).unwrap_or(i64::MAX), u64::from_be_bytes(id)))
}
