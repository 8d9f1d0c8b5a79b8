//! The decoded message records of recently used mailboxes, so that a FETCH,
//! a SEARCH or a session's catching up reads them from memory instead of
//! walking the index and decoding each record again.
//!
//! Under the 10-client load benchmark, reading message records was an
//! eighth of the server's CPU: sled's iterator looks every key up from the
//! root (45% of it), then each JSON record is decoded (26%).
//!
//! # Kept in step with the index by construction
//! Every write to the `mail` tree passes [`crate::journal::JournaledTree::apply`],
//! which applies it to the index through [`Listings::apply`], under the
//! journal's lock and this cache's: the cache sees the writes in the
//! index's order, a reader never finds the index ahead of it, and no
//! operation can forget to tell it.
//!
//! A mailbox is loaded whole from the index the first time it is read. A
//! write may land while that load runs; every write counts in
//! [`Listings::writes`], and a load during which the count moved is used
//! once and not kept (a write's own update reaches only mailboxes already
//! cached).
//!
//! Mailbox records, which every message change rewrites and nearly every
//! command reads, are kept the same way.
//!
//! # Bounded
//! Mailboxes of more than [`MAX_MAILBOX`] messages are never cached (they
//! are read range by range from the index, as before), and at most
//! [`MAX_MESSAGES`] messages in all are: the least recently read mailbox
//! goes first.

use crate::error::Result;
use crate::keys;
use crate::kv::Batch;
use crate::message::meta_of;
use crate::records::{MailboxRecord, decode};
use crate::types::{MailboxId, MessageMeta, Uid};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Largest mailbox cached: loading one costs a scan of it.
pub(crate) const MAX_MAILBOX: u32 = 5_000;
/// Messages cached in all (a few hundred bytes each).
pub(crate) const MAX_MESSAGES: usize = 100_000;
/// Mailbox records cached; past it they are all dropped and read again.
const MAX_MAILBOX_RECORDS: usize = 10_000;

/// An entry of a batch this cache keeps: the value written (`None`: removed).
pub(crate) enum Change {
    Message(MailboxId, Uid, Option<Vec<u8>>),
    /// A mailbox's record: every message change rewrites it (UIDNEXT,
    /// HIGHESTMODSEQ, counters), and almost every command reads it.
    Mailbox(MailboxId, Option<Vec<u8>>),
}

struct Cached {
    messages: BTreeMap<Uid, MessageMeta>,
    last_read: u64,
}

#[derive(Default)]
struct State {
    cached: HashMap<MailboxId, Cached>,
    records: HashMap<MailboxId, MailboxRecord>,
    /// Batches that touched any message since the store opened.
    writes: u64,
    /// A clock for least-recently-read eviction.
    clock: u64,
    total: usize,
}

#[derive(Default)]
pub(crate) struct Listings {
    state: Mutex<State>,
}

impl Listings {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The message entries `batch` writes or removes (none for most batches
    /// that do not touch messages; those cost a scan of their keys).
    pub(crate) fn changes(batch: &Batch) -> Vec<Change> {
        batch
            .ops()
            .filter_map(|(k, v)| {
                let mailbox = MailboxId(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?));
                let value = v.map(<[u8]>::to_vec);
                match (k.first(), k.len()) {
                    (Some(&keys::MESSAGE), 13) => Some(Change::Message(mailbox, keys::uid_of_message_key(k)?, value)),
                    (Some(&keys::MAILBOX_BY_ID), 9) => Some(Change::Mailbox(mailbox, value)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Applies a batch to the index with `apply` and the batch's `changes`
    /// to the cache, as one step for readers: one that read a mailbox's
    /// record after the batch (it holds counters and UIDNEXT) finds the
    /// batch's messages here too. Call in the index's write order (under
    /// the journal's lock).
    pub(crate) fn apply(&self, changes: Vec<Change>, apply: impl FnOnce() -> Result<()>) -> Result<()> {
        if changes.is_empty() {
            return apply();
        }
        let mut st = self.state();
        apply()?;
        st.writes += 1;
        let mut dropped = Vec::new();
        for change in changes {
            let (mailbox, uid, value) = match change {
                Change::Message(mailbox, uid, value) => (mailbox, uid, value),
                Change::Mailbox(mailbox, value) => {
                    if let Some(cached) = st.records.get_mut(&mailbox) {
                        match value.map(|v| decode::<MailboxRecord>("mailbox", &v)) {
                            Some(Ok(rec)) => *cached = rec,
                            _ => {
                                st.records.remove(&mailbox);
                            }
                        }
                    }
                    continue;
                }
            };
            let Some(c) = st.cached.get_mut(&mailbox) else { continue };
            let before = c.messages.len();
            match value.map(|v| meta_of(mailbox, &keys::message(mailbox, uid), &v)) {
                Some(Ok(meta)) => {
                    c.messages.insert(uid, meta);
                }
                None => {
                    c.messages.remove(&uid);
                }
                // Not decodable: readers of the index will say so; this
                // mailbox is read from there from now on.
                Some(Err(_)) => dropped.push(mailbox),
            }
            let after = c.messages.len();
            if after > MAX_MAILBOX as usize {
                // Grown past what is cached: read from the index from now on.
                dropped.push(mailbox);
            }
            st.total = st.total + after - before;
        }
        for mailbox in dropped {
            st.forget(mailbox);
        }
        while st.total > MAX_MESSAGES {
            st.evict_one();
        }
        Ok(())
    }

    /// Applies a batch whose message entries are not looked at, and forgets
    /// everything cached.
    pub(crate) fn apply_and_forget(&self, apply: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut st = self.state();
        let result = apply();
        st.writes += 1;
        st.cached.clear();
        st.records.clear();
        st.total = 0;
        result
    }

    /// The record of mailbox `id`, from the cache or read by `load`.
    pub(crate) fn mailbox(
        &self,
        id: MailboxId,
        load: impl FnOnce() -> Result<Option<MailboxRecord>>,
    ) -> Result<Option<MailboxRecord>> {
        let writes = {
            let st = self.state();
            if let Some(rec) = st.records.get(&id) {
                return Ok(Some(rec.clone()));
            }
            st.writes
        };
        let rec = load()?;
        if let Some(rec) = &rec {
            let mut st = self.state();
            if st.writes == writes {
                if st.records.len() >= MAX_MAILBOX_RECORDS {
                    st.records.clear();
                }
                st.records.insert(id, rec.clone());
            }
        }
        Ok(rec)
    }

    /// The messages of `mailbox` in `spans` (sorted, disjoint, inclusive),
    /// from the cache, or loaded by `load` (the whole mailbox, in UID order)
    /// when `exists` is small enough to cache. `None`: read the index.
    pub(crate) fn messages_in(
        &self,
        mailbox: MailboxId,
        exists: u32,
        spans: &[(Uid, Uid)],
        load: impl FnOnce() -> Result<Vec<MessageMeta>>,
    ) -> Result<Option<Vec<MessageMeta>>> {
        let writes = {
            let mut st = self.state();
            st.clock += 1;
            let now = st.clock;
            if let Some(c) = st.cached.get_mut(&mailbox) {
                c.last_read = now;
                return Ok(Some(pick(&c.messages, spans)));
            }
            if exists > MAX_MAILBOX {
                return Ok(None);
            }
            st.writes
        };
        let messages: BTreeMap<Uid, MessageMeta> = load()?.into_iter().map(|m| (m.uid, m)).collect();
        let out = pick(&messages, spans);
        let mut st = self.state();
        if st.writes == writes && messages.len() <= MAX_MAILBOX as usize && !st.cached.contains_key(&mailbox) {
            while st.total + messages.len() > MAX_MESSAGES && !st.cached.is_empty() {
                st.evict_one();
            }
            st.total += messages.len();
            let last_read = st.clock;
            st.cached.insert(mailbox, Cached { messages, last_read });
        }
        Ok(Some(out))
    }

    #[cfg(test)]
    pub(crate) fn cached_messages(&self) -> usize {
        self.state().total
    }
}

impl State {
    fn forget(&mut self, mailbox: MailboxId) {
        if let Some(c) = self.cached.remove(&mailbox) {
            self.total -= c.messages.len();
        }
    }

    fn evict_one(&mut self) {
        match self.cached.iter().min_by_key(|(_, c)| c.last_read).map(|(m, _)| *m) {
            Some(oldest) => self.forget(oldest),
            None => self.total = 0,
        }
    }
}

fn pick(messages: &BTreeMap<Uid, MessageMeta>, spans: &[(Uid, Uid)]) -> Vec<MessageMeta> {
    let mut out = Vec::new();
    for &(a, b) in spans {
        out.extend(messages.range(a..=b).map(|(_, m)| m.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{MessageRecord, encode};
    use crate::types::{BlobId, Flags, ModSeq};

    fn meta(mailbox: MailboxId, uid: u32) -> MessageMeta {
        MessageMeta {
            mailbox,
            uid: Uid(uid),
            size: 1,
            internal_date: 0,
            flags: Flags::new(),
            modseq: ModSeq(1),
            blob: BlobId("00".into()),
            body_offset: 0,
        }
    }

    fn load(l: &Listings, mailbox: MailboxId, n: u32) -> Vec<MessageMeta> {
        let all: Vec<MessageMeta> = (1..=n).map(|u| meta(mailbox, u)).collect();
        l.messages_in(mailbox, n, &[(Uid::MIN, Uid::MAX)], || Ok(all)).unwrap().unwrap()
    }

    #[test]
    fn a_mailbox_grown_past_the_bound_is_read_from_the_index_again() {
        let l = Listings::default();
        let mb = MailboxId(1);
        assert_eq!(load(&l, mb, MAX_MAILBOX).len(), MAX_MAILBOX as usize);
        assert_eq!(l.cached_messages(), MAX_MAILBOX as usize);
        let record = MessageRecord::from(meta(mb, MAX_MAILBOX + 1));
        let change = Change::Message(mb, Uid(MAX_MAILBOX + 1), Some(encode(&record).unwrap()));
        l.apply(vec![change], || Ok(())).unwrap();
        assert_eq!(l.cached_messages(), 0);
    }

    #[test]
    fn past_the_total_the_least_recently_read_mailbox_goes() {
        let l = Listings::default();
        let full = MAX_MESSAGES / MAX_MAILBOX as usize;
        for m in 0..full as u64 {
            load(&l, MailboxId(m), MAX_MAILBOX);
        }
        assert_eq!(l.cached_messages(), MAX_MESSAGES);
        // Mailbox 0 read again: mailbox 1 is now the least recently read.
        l.messages_in(MailboxId(0), MAX_MAILBOX, &[(Uid(1), Uid(1))], || panic!("cached")).unwrap();
        load(&l, MailboxId(99), 10);
        assert_eq!(l.cached_messages(), MAX_MESSAGES - MAX_MAILBOX as usize + 10);
        l.messages_in(MailboxId(0), MAX_MAILBOX, &[(Uid(1), Uid(1))], || panic!("mailbox 0 went")).unwrap();
        let reloaded = std::cell::Cell::new(false);
        l.messages_in(MailboxId(1), MAX_MAILBOX, &[(Uid(1), Uid(1))], || {
            reloaded.set(true);
            Ok(Vec::new())
        })
        .unwrap();
        assert!(reloaded.get(), "mailbox 1 was kept");
    }
}
