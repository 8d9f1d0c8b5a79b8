//! A bounded cache (CLOCK, near-LRU) of parsed message structures, keyed by body file
//! ([`BlobId`]), shared by every session of one [`crate::ImapContext`].
//!
//! Body files never change once written, so an entry is valid for as long
//! as its blob exists; the entry also records the message's offset and size
//! in the file and is ignored if they differ. Bounded by entries and by
//! the parts they hold (a message can have thousands of parts).
//!
//! One std mutex, held only for map operations (never across an await or
//! a parse): contention stays far below
//! the cost of a body read.

use super::structure::{Kind, Message, Part};
use coimail_store::{BlobId, MessageMeta};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default number of messages kept.
pub(crate) const DEFAULT_ENTRIES: usize = 10_000;
/// Default cap on the parts of all kept messages together.
pub(crate) const DEFAULT_PARTS: usize = 500_000;

/// Eviction is CLOCK (second chance), the usual cheap approximation of
/// LRU: a hit only sets a flag (no list to reorder under the lock), and
/// the hand sweeping the ring evicts the first entry not used since its
/// last pass.
pub(crate) struct Cache {
    max_entries: usize,
    max_parts: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Key -> index in `ring`.
    map: HashMap<BlobId, usize>,
    ring: Vec<Option<Slot>>,
    /// Empty places in `ring`.
    free: Vec<usize>,
    hand: usize,
    parts: usize,
}

struct Slot {
    key: BlobId,
    offset: u64,
    size: u64,
    parts: usize,
    /// Used since the hand last passed.
    used: bool,
    message: Arc<Message>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(DEFAULT_ENTRIES, DEFAULT_PARTS)
    }
}

impl Cache {
    pub(crate) fn new(max_entries: usize, max_parts: usize) -> Self {
        Cache { max_entries, max_parts, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps inconsistent in a way
        // that matters for a cache: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached structure of `meta`'s message, marked as recently used.
    pub(crate) fn get(&self, meta: &MessageMeta) -> Option<Arc<Message>> {
        self.lock().get(meta)
    }

    /// Keeps `message` as the structure of `meta`'s message.
    pub(crate) fn insert(&self, meta: &MessageMeta, message: Arc<Message>) {
        let parts = count_parts(&message.root);
        if self.max_entries == 0 || parts > self.max_parts {
            return;
        }
        let mut inner = self.lock();
        inner.remove(&meta.blob);
        while inner.map.len() >= self.max_entries || inner.parts + parts > self.max_parts {
            if !inner.evict_one() {
                break;
            }
        }
        let slot =
            Slot { key: meta.blob.clone(), offset: meta.body_offset, size: meta.size, parts, used: false, message };
        let index = inner.free.pop().unwrap_or(inner.ring.len());
        match inner.ring.get_mut(index) {
            Some(place) => *place = Some(slot),
            None => inner.ring.push(Some(slot)),
        }
        inner.map.insert(meta.blob.clone(), index);
        inner.parts += parts;
    }

    /// The structure of `meta`'s message, from the cache or parsed from
    /// `raw` (its bytes) and then cached.
    pub(crate) fn get_or_parse(&self, meta: &MessageMeta, raw: &[u8]) -> Arc<Message> {
        if let Some(m) = self.get(meta) {
            return m;
        }
        let m = Arc::new(super::structure::parse(raw));
        self.insert(meta, m.clone());
        m
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

impl Inner {
    fn get(&mut self, meta: &MessageMeta) -> Option<Arc<Message>> {
        let index = *self.map.get(&meta.blob)?;
        let slot = self.ring.get_mut(index)?.as_mut()?;
        if slot.offset != meta.body_offset || slot.size != meta.size {
            return None;
        }
        slot.used = true;
        Some(slot.message.clone())
    }

    fn remove(&mut self, key: &BlobId) {
        if let Some(index) = self.map.remove(key)
            && let Some(old) = self.ring.get_mut(index).and_then(Option::take)
        {
            self.parts -= old.parts;
            self.free.push(index);
        }
    }

    /// Advances the hand to the first entry not used since its last pass
    /// and evicts it. False when there is nothing to evict.
    fn evict_one(&mut self) -> bool {
        if self.map.is_empty() {
            return false;
        }
        // Two full turns always find one: the first clears every flag.
        for _ in 0..2 * self.ring.len() {
            self.hand = (self.hand + 1) % self.ring.len();
            let Some(Some(slot)) = self.ring.get_mut(self.hand) else { continue };
            if slot.used {
                slot.used = false;
                continue;
            }
            let key = slot.key.clone();
            self.remove(&key);
            return true;
        }
        false
    }
}

fn count_parts(p: &Part) -> usize {
    1 + match &p.kind {
        Kind::Leaf => 0,
        Kind::Multipart(children) => children.iter().map(count_parts).sum(),
        Kind::Message(m) => count_parts(&m.root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_store::{MailboxId, ModSeq, Uid};

    fn meta(blob: &str, size: u64) -> MessageMeta {
        MessageMeta {
            mailbox: MailboxId(1),
            uid: Uid(1),
            size,
            internal_date: 0,
            flags: Default::default(),
            modseq: ModSeq(1),
            blob: BlobId(blob.into()),
            body_offset: 0,
        }
    }

    #[test]
    fn least_recently_used_goes_first() {
        let cache = Cache::new(2, 100);
        let raw = b"Subject: x\r\n\r\nbody";
        for b in ["a", "b"] {
            cache.get_or_parse(&meta(b, raw.len() as u64), raw);
        }
        assert!(cache.get(&meta("a", raw.len() as u64)).is_some());
        cache.insert(&meta("c", raw.len() as u64), Arc::new(super::super::structure::parse(raw)));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&meta("b", raw.len() as u64)).is_none(), "b was least recently used");
        assert!(cache.get(&meta("a", raw.len() as u64)).is_some());
        // A different size is a different message: not served from the cache.
        assert!(cache.get(&meta("a", 1)).is_none());
    }

    #[test]
    fn bounded_by_parts() {
        let cache = Cache::new(100, 5);
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b--\r\n";
        for b in ["a", "b", "c"] {
            cache.get_or_parse(&meta(b, raw.len() as u64), raw);
        }
        assert_eq!(cache.len(), 1, "3 parts each, at most 5 in all");
    }
}
