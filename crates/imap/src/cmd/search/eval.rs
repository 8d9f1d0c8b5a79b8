//! Evaluating a bound query ([`Cond`]) over the selected mailbox.
//!
//! Two passes. The first uses only the index (flags, size, dates, UIDs,
//! mod-sequences) and settles most messages for most queries without
//! touching a file. The messages it cannot settle (their answer depends on
//! headers or body) are read and evaluated in parallel chunks: each chunk
//! reads its messages through the store (blocking file I/O runs on the
//! blocking pool), then decodes and matches them on a blocking thread, so
//! neither parsing nor file I/O ever runs on the async workers.

use super::doc::Doc;
use super::keys::{Cond, Day};
use crate::error::ImapError;
use crate::selected::SeqNum;
use coimail_store::{AccountId, MailboxId, MessageMeta, Store, Uid};
use std::sync::Arc;
use tokio::task::JoinSet;

/// A message that matched, with its sequence number in the session's view.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub seq: SeqNum,
    pub meta: MessageMeta,
}

/// The calendar day of a Unix time, in UTC (INTERNALDATE as we show it).
pub(crate) fn day_of(unix_secs: i64) -> Day {
    let t = mail_parser::DateTime::from_timestamp(unix_secs);
    Day { year: i32::from(t.year), month: t.month, day: t.day }
}

impl Cond {
    /// The answer from index data alone, or `None` when it needs content.
    pub(crate) fn quick(&self, seq: SeqNum, m: &MessageMeta) -> Option<bool> {
        Some(match self {
            Cond::Const(b) => *b,
            Cond::And(cs) => {
                let mut known = true;
                for c in cs {
                    match c.quick(seq, m) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => known = false,
                    }
                }
                return known.then_some(true);
            }
            Cond::Or(a, b) => match (a.quick(seq, m), b.quick(seq, m)) {
                (Some(true), _) | (_, Some(true)) => true,
                (Some(false), Some(false)) => false,
                _ => return None,
            },
            Cond::Not(c) => !c.quick(seq, m)?,
            Cond::Seq(set) => set.contains(seq),
            Cond::Uid(set) => set.contains(m.uid),
            // Flag names are case-insensitive (RFC 9051 §2.3.2).
            Cond::Flag(name, set) => m.flags.iter().any(|f| f.eq_ignore_ascii_case(name)) == *set,
            Cond::Larger(n) => m.size > *n,
            Cond::Smaller(n) => m.size < *n,
            Cond::Internal(when, day) => when.matches(day_of(m.internal_date), *day),
            Cond::InternalBefore(t) => m.internal_date < *t,
            Cond::InternalFrom(t) => m.internal_date >= *t,
            Cond::ModSeq(min) => m.modseq >= *min,
            Cond::Sent(..) | Cond::Header(..) | Cond::Address(..) | Cond::Body(_) | Cond::Text(_) => return None,
        })
    }

    /// The answer with the message's content at hand.
    pub(crate) fn full(&self, seq: SeqNum, m: &MessageMeta, doc: &Doc<'_>) -> bool {
        match self {
            Cond::And(cs) => cs.iter().all(|c| c.full(seq, m, doc)),
            Cond::Or(a, b) => a.full(seq, m, doc) || b.full(seq, m, doc),
            Cond::Not(c) => !c.full(seq, m, doc),
            // RFC 3501 §6.4.4 SENT*: the Date header's day. Without one we
            // use INTERNALDATE, as RFC 5256 §2.2 does for sorting.
            Cond::Sent(when, day) => when.matches(doc.sent_day().unwrap_or_else(|| day_of(m.internal_date)), *day),
            Cond::Header(name, needle) => doc.header_contains(name, needle),
            Cond::Address(name, needle) => doc.address_contains(name, needle),
            Cond::Body(needle) => doc.body_contains(needle),
            // RFC 3501 §6.4.4 TEXT: the header or the body.
            Cond::Text(needle) => doc.header_text_contains(needle) || doc.body_contains(needle),
            other => other.quick(seq, m).unwrap_or(false),
        }
    }
}

/// The messages of the view that match `cond`, in sequence number order.
/// Messages expunged meanwhile by another session do not match.
pub(crate) async fn matching(src: &Source<'_>, cond: Arc<Cond>) -> Result<Vec<Hit>, ImapError> {
    let mut hits = Vec::new();
    let mut unsettled = Vec::new();
    for &(seq, uid) in &src.view {
        let Ok(i) = src.listing.binary_search_by_key(&uid, |m| m.uid) else { continue };
        let Some(meta) = src.listing.get(i) else { continue };
        match cond.quick(seq, meta) {
            Some(true) => hits.push(Hit { seq, meta: meta.clone() }),
            Some(false) => {}
            None => unsettled.push(Hit { seq, meta: meta.clone() }),
        }
    }
    if unsettled.is_empty() {
        return Ok(hits);
    }
    let read = map_bodies(src.store, unsettled, move |seq, meta, raw| cond.full(seq, meta, &Doc::new(raw))).await?;
    let mut unreadable = Vec::new();
    for (hit, matched) in read {
        match matched {
            Some(true) => hits.push(hit),
            Some(false) => {}
            None => unreadable.push(hit.meta.uid),
        }
    }
    src.check_unreadable(&unreadable)?;
    hits.sort_unstable_by_key(|h| h.seq);
    Ok(hits)
}

/// Where a search looks: the session's view of the selected mailbox and
/// the store's listing of it.
pub(crate) struct Source<'a> {
    pub store: &'a Store,
    pub account: AccountId,
    pub mailbox: MailboxId,
    /// (sequence number, UID) of every message in the session's view.
    pub view: Vec<(SeqNum, Uid)>,
    /// The store's messages, UID order.
    pub listing: Vec<MessageMeta>,
}

impl Source<'_> {
    /// A message we could not read is fine if it was expunged meanwhile;
    /// otherwise the store is broken and the answer would be wrong.
    pub(crate) fn check_unreadable(&self, uids: &[Uid]) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let now = self.store.messages(self.account, self.mailbox)?;
        match uids.iter().find(|&&u| now.binary_search_by_key(&u, |m| m.uid).is_ok()) {
            Some(uid) => Err(ImapError::Internal(format!("message UID {uid} is listed but cannot be read"))),
            None => Ok(()),
        }
    }
}

/// Reads each message and runs `f` on it, in parallel chunks off the async
/// workers. Returns every input with `f`'s answer, or `None` when the
/// message could not be read. Order is not kept.
pub(crate) async fn map_bodies<T, F>(store: &Store, items: Vec<Hit>, f: F) -> Result<Vec<(Hit, Option<T>)>, ImapError>
where
    T: Send + 'static,
    F: Fn(SeqNum, &MessageMeta, &[u8]) -> T + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Enough chunks to keep every core busy while others wait on reads,
    // few enough that per-chunk costs stay small.
    let chunk_len = (items.len() / (workers * 16)).clamp(16, 256);
    let max_in_flight = workers * 8;
    let mut chunks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(chunk_len).collect::<Vec<_>>());
    }
    let mut chunks = chunks.into_iter();
    let mut set = JoinSet::new();
    let mut out = Vec::new();
    loop {
        while set.len() < max_in_flight {
            let Some(chunk) = chunks.next() else { break };
            set.spawn(run_chunk(store.clone(), chunk, f.clone()));
        }
        let Some(done) = set.join_next().await else { break };
        let done = done.map_err(|e| ImapError::Internal(format!("search task failed: {e}")))?;
        out.extend(done?);
    }
    Ok(out)
}

async fn run_chunk<T, F>(store: Store, chunk: Vec<Hit>, f: Arc<F>) -> Result<Vec<(Hit, Option<T>)>, ImapError>
where
    T: Send + 'static,
    F: Fn(SeqNum, &MessageMeta, &[u8]) -> T + Send + Sync + 'static,
{
    let work = move || {
        let raws = read_chunk(&store, &chunk);
        chunk
            .into_iter()
            .zip(raws)
            .map(|(hit, raw)| {
                let answer = raw.map(|raw| f(hit.seq, &hit.meta, &raw));
                (hit, answer)
            })
            .collect()
    };
    tokio::task::spawn_blocking(work).await.map_err(|e| ImapError::Internal(format!("search task failed: {e}")))
}

/// The chunk's messages, `None` for those that cannot be read.
///
/// Runs on `run_chunk`'s blocking thread: plain file reads, without the
/// per-message hop to the blocking pool of `Store::read_message` (that hop,
/// not the file I/O, was most of the cost: ~100 ms of CPU per 10,000 reads).
fn read_chunk(store: &Store, chunk: &[Hit]) -> Vec<Option<Vec<u8>>> {
    let mut raws = Vec::with_capacity(chunk.len());
    for hit in chunk {
        raws.push(store.read_message_blocking(&hit.meta).ok());
    }
    raws
}
