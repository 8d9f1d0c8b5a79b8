//! The storage-engine seam: a few ordered key-value trees with atomic
//! single-tree batches and a durable flush. This is the whole surface an
//! alternative engine (redb, a distributed store) has to provide; the mail
//! logic above it never sees sled.
//!
//! Backends are an enum, not a trait object, so dispatch stays in this one file.

use crate::error::{Result, StoreError};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// An opened database.
#[derive(Clone)]
pub struct Kv {
    inner: KvInner,
}

#[derive(Clone)]
enum KvInner {
    Sled(sled::Db),
    Memory(Arc<Mutex<BTreeMap<String, MemTree>>>),
}

type MemTree = Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>;

/// One named, ordered keyspace.
#[derive(Clone)]
pub struct Tree {
    inner: TreeInner,
}

#[derive(Clone)]
enum TreeInner {
    Sled(sled::Tree),
    Memory(MemTree),
}

/// Writes applied atomically to one tree: all or none survive a crash.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// The writes in order: key and new value (`None`: removed).
    pub fn ops(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.ops.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }
}

/// How often opening waits 20 ms for another handle's file lock to go.
const LOCK_RETRIES: u32 = 100;

fn engine(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::from(io),
        other => StoreError::Engine(other.to_string()),
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Engine("memory backend lock poisoned".into())
}

impl Kv {
    /// Opens (or creates) a sled database in `dir`.
    pub fn open_sled(dir: &Path, cache_bytes: u64) -> Result<Kv> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Our own group commit decides when to flush; sled's timer only adds
            // background writes.
            .flush_every_ms(None);
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                // A handle closed a moment ago may still hold the file lock
                // until its last flusher thread ends: wait briefly for it.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && attempts < LOCK_RETRIES =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r.map_err(engine)?,
            }
        };
        Ok(Kv { inner: KvInner::Sled(db) })
    }

    /// A volatile in-memory database, for tests.
    pub fn memory() -> Kv {
        Kv { inner: KvInner::Memory(Arc::default()) }
    }

    pub fn tree(&self, name: &str) -> Result<Tree> {
        let inner = match &self.inner {
            KvInner::Sled(db) => TreeInner::Sled(db.open_tree(name).map_err(engine)?),
            KvInner::Memory(trees) => {
                let mut trees = trees.lock().map_err(poisoned)?;
                TreeInner::Memory(trees.entry(name.to_owned()).or_default().clone())
            }
        };
        Ok(Tree { inner })
    }

    /// Reads every pair of every tree, so a damaged page shows at startup
    /// rather than as a failed command later (sled checks each page's CRC as
    /// it reads it). Returns the number of pairs. Blocking; proportional to
    /// the index's size.
    pub fn verify(&self) -> Result<u64> {
        match &self.inner {
            KvInner::Sled(db) => {
                let mut pairs = 0u64;
                for name in db.tree_names() {
                    let tree = db.open_tree(&name).map_err(engine)?;
                    for pair in tree.iter() {
                        pair.map_err(engine)?;
                        pairs += 1;
                    }
                }
                Ok(pairs)
            }
            KvInner::Memory(trees) => {
                let trees = trees.lock().map_err(poisoned)?;
                let mut pairs = 0u64;
                for t in trees.values() {
                    pairs += t.lock().map_err(poisoned)?.len() as u64;
                }
                Ok(pairs)
            }
        }
    }

    /// Makes every write applied before this call durable. Blocking: the
    /// store's group commit (`group_commit.rs`) calls it, one flush at a
    /// time, for all the writers waiting.
    pub fn flush_blocking(&self) -> Result<()> {
        match &self.inner {
            KvInner::Sled(db) => db.flush().map(|_| ()).map_err(engine),
            KvInner::Memory(_) => Ok(()),
        }
    }
}

impl Tree {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match &self.inner {
            TreeInner::Sled(t) => Ok(t.get(key).map_err(engine)?.map(|v| v.to_vec())),
            TreeInner::Memory(m) => Ok(m.lock().map_err(poisoned)?.get(key).cloned()),
        }
    }

    /// All pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match &self.inner {
            TreeInner::Sled(t) => {
                t.scan_prefix(prefix).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(engine)).collect()
            }
            TreeInner::Memory(m) => Ok(m
                .lock()
                .map_err(poisoned)?
                .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()),
        }
    }

    /// All pairs with `start <= key < end`, in key order.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match &self.inner {
            TreeInner::Sled(t) => {
                t.range(start..end).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(engine)).collect()
            }
            TreeInner::Memory(m) => Ok(m
                .lock()
                .map_err(poisoned)?
                .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()),
        }
    }

    /// Calls `f` with each pair with `start <= key < end`, in key order,
    /// without copying them, until it returns `false`. For long ranges read
    /// often (SELECT's UID list): [`Tree::range`] allocates two vectors per pair.
    /// `f` must not use the tree (the memory backend holds its lock meanwhile).
    pub fn visit_range(&self, start: &[u8], end: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        match &self.inner {
            TreeInner::Sled(t) => {
                for pair in t.range(start..end) {
                    let (k, v) = pair.map_err(engine)?;
                    if !f(&k, &v)? {
                        break;
                    }
                }
            }
            TreeInner::Memory(m) => {
                let m = m.lock().map_err(poisoned)?;
                for (k, v) in m.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end))) {
                    if !f(k, v)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies every write of `batch` atomically (not yet durable: see [`Kv::flush_blocking`]).
    pub fn apply(&self, batch: Batch) -> Result<()> {
        match &self.inner {
            TreeInner::Sled(t) => {
                let mut b = sled::Batch::default();
                for (k, v) in batch.ops {
                    match v {
                        Some(v) => b.insert(k, v),
                        None => b.remove(k),
                    }
                }
                t.apply_batch(b).map_err(engine)
            }
            TreeInner::Memory(m) => {
                let mut m = m.lock().map_err(poisoned)?;
                for (k, v) in batch.ops {
                    match v {
                        Some(v) => m.insert(k, v),
                        None => m.remove(&k),
                    };
                }
                Ok(())
            }
        }
    }

    /// Makes every later call on an in-memory tree fail (a poisoned lock),
    /// to test what happens when the engine refuses a write.
    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        if let TreeInner::Memory(m) = &self.inner {
            let m = m.clone();
            let _ = std::thread::spawn(move || {
                let _g = m.lock();
                panic!("poisoning the memory tree on purpose");
            })
            .join();
        }
    }

    /// Atomically adds one to the big-endian u64 counter at `key` and returns the new value.
    pub fn increment(&self, key: &[u8]) -> Result<u64> {
        let bump = |old: Option<&[u8]>| -> u64 {
            old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes).unwrap_or(0).saturating_add(1)
        };
        match &self.inner {
            TreeInner::Sled(t) => {
                let new = t.update_and_fetch(key, |old| Some(bump(old).to_be_bytes().to_vec())).map_err(engine)?;
                Ok(new.as_deref().and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes).unwrap_or(1))
            }
            TreeInner::Memory(m) => {
                let mut m = m.lock().map_err(poisoned)?;
                let n = bump(m.get(key).map(Vec::as_slice));
                m.insert(key.to_vec(), n.to_be_bytes().to_vec());
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract every backend must keep, run against each of them.
    fn conformance(kv: Kv) {
        let t = kv.tree("t").unwrap();
        let mut b = Batch::default();
        b.insert(b"a/1".to_vec(), b"x".to_vec());
        b.insert(b"a/2".to_vec(), b"y".to_vec());
        b.insert(b"b/1".to_vec(), b"z".to_vec());
        t.apply(b).unwrap();
        assert_eq!(t.get(b"a/2").unwrap().as_deref(), Some(&b"y"[..]));
        let keys: Vec<_> = t.scan_prefix(b"a/").unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
        assert_eq!(t.range(b"a/2", b"b/2").unwrap().len(), 2);
        let mut seen = Vec::new();
        t.visit_range(b"a/", b"c", |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            Ok(seen.len() < 2)
        })
        .unwrap();
        assert_eq!(seen, vec![(b"a/1".to_vec(), b"x".to_vec()), (b"a/2".to_vec(), b"y".to_vec())]);
        let mut b = Batch::default();
        b.remove(b"a/1".to_vec());
        t.apply(b).unwrap();
        assert_eq!(t.get(b"a/1").unwrap(), None);
        assert_eq!(t.increment(b"n").unwrap(), 1);
        assert_eq!(t.increment(b"n").unwrap(), 2);
        assert!(kv.tree("other").unwrap().get(b"a/2").unwrap().is_none());
    }

    #[test]
    fn memory_backend_keeps_the_contract() {
        conformance(Kv::memory());
    }

    #[test]
    fn sled_backend_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        conformance(Kv::open_sled(dir.path(), 1 << 20).unwrap());
    }
}
