//! Emptied body files kept for the next write instead of unlinked.
//!
//! Creating a file is the dearest step of storing a small message: ext4
//! searches the inode bitmap for a free inode, and on a filesystem without
//! a journal it must also skip every inode freed in the last minute or more
//! (`recently_deleted`), so with steady APPEND/EXPUNGE churn each create
//! steps over thousands of inode-table entries. A body file nothing refers
//! to any more is therefore renamed to a spare name in its shard directory
//! and the next [`crate::blob::BlobStore::write`] overwrites it in place,
//! fsyncs it and renames it to its new id: no inode is freed or allocated,
//! and a small message usually reuses the blocks too.
//!
//! Reuse must never let a reader see another message's bytes. A reader that
//! opened the file before it was retired may still be reading through its
//! descriptor, so a retired spare becomes reusable only after the *gate*
//! was taken exclusively once: readers hold it shared from `open` to their
//! last `read`, so taking it exclusively waits out every reader that could
//! have opened a file before its retirement. Readers that come after the
//! rename cannot open it by its old name at all (as after an unlink).
//!
//! Spares are named `.spare-<id>`: never listed as bodies, removed at the
//! next start by `BlobStore::clear_tmp`. How many are kept, and how large
//! each may be, is bounded so they hold little disk space.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// Names of spare files start with this.
pub(crate) const SPARE_PREFIX: &str = ".spare-";
/// Files larger than this are unlinked, not kept.
pub(crate) const MAX_SPARE_LEN: u64 = 256 << 10;
/// At most this many spares at once ...
const MAX_SPARES: usize = 4096;
/// ... holding at most this many octets.
const MAX_SPARE_BYTES: u64 = 32 << 20;

/// A spare body file: where it is and how long it is.
#[derive(Debug)]
pub(crate) struct Spare {
    pub path: PathBuf,
    pub len: u64,
}

#[derive(Default)]
struct State {
    /// Retired after the gate was last taken exclusively: a reader may still
    /// have one open.
    retired: Vec<Spare>,
    /// No reader can have these open.
    ready: Vec<Spare>,
    bytes: u64,
}

#[derive(Default)]
pub(crate) struct Spares {
    gate: RwLock<()>,
    state: Mutex<State>,
}

impl Spares {
    fn state(&self) -> MutexGuard<'_, State> {
        // Plain lists: a panic elsewhere leaves them usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Held by a reader from opening a body file until its last read.
    pub(crate) fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a file of `len` octets may be kept; if so its space is
    /// counted from now on and the caller must [`Spares::retired`] it
    /// or [`Spares::forget`] it.
    pub(crate) fn reserve(&self, len: u64) -> bool {
        let mut s = self.state();
        let room =
            len <= MAX_SPARE_LEN && s.retired.len() + s.ready.len() < MAX_SPARES && s.bytes + len <= MAX_SPARE_BYTES;
        if room {
            s.bytes += len;
        }
        room
    }

    /// A reserved file now has its spare name.
    pub(crate) fn retired(&self, spare: Spare) {
        self.state().retired.push(spare);
    }

    /// A reserved or taken spare that is gone (or never became one).
    pub(crate) fn forget(&self, len: u64) {
        let mut s = self.state();
        s.bytes = s.bytes.saturating_sub(len);
    }

    /// A spare no reader can have open, if there is one. The caller owns
    /// it: it must rename it to a body or remove it, then [`Spares::forget`] it.
    pub(crate) fn take(&self) -> Option<Spare> {
        {
            let mut s = self.state();
            if let Some(spare) = s.ready.pop() {
                return Some(spare);
            }
            if s.retired.is_empty() {
                return None;
            }
        }
        // Every reader that opened a file before it was retired is done once
        // this is granted; new readers cannot open retired files by name.
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let mut s = self.state();
        let retired = std::mem::take(&mut s.retired);
        s.ready.extend(retired);
        s.ready.pop()
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize, u64) {
        let s = self.state();
        (s.retired.len(), s.ready.len(), s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn spare(n: u64) -> Spare {
        Spare { path: PathBuf::from(format!("/x/{SPARE_PREFIX}{n}")), len: n }
    }

    #[test]
    fn a_retired_spare_waits_for_readers_that_came_before() {
        let spares = Arc::new(Spares::default());
        assert!(spares.take().is_none());
        let reader = spares.reading();
        assert!(spares.reserve(10));
        spares.retired(spare(10));
        let taker = {
            let spares = Arc::clone(&spares);
            std::thread::spawn(move || spares.take().map(|s| s.len))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!taker.is_finished(), "a spare was handed out while a reader from before its retirement ran");
        drop(reader);
        assert_eq!(taker.join().unwrap(), Some(10));
        assert_eq!(spares.counts(), (0, 0, 10), "taken, not yet forgotten");
        spares.forget(10);
        assert_eq!(spares.counts(), (0, 0, 0));
    }

    #[test]
    fn spares_are_bounded_in_size_count_and_bytes() {
        let spares = Spares::default();
        assert!(!spares.reserve(MAX_SPARE_LEN + 1));
        let per = MAX_SPARE_LEN;
        let mut kept = 0u64;
        while spares.reserve(per) {
            kept += 1;
            spares.retired(spare(per));
        }
        assert_eq!(kept * per, MAX_SPARE_BYTES);
        assert!(spares.reserve(0), "count still has room");
        spares.forget(0);
        let small = Spares::default();
        let mut n = 0;
        while small.reserve(1) {
            small.retired(spare(1));
            n += 1;
        }
        assert_eq!(n, MAX_SPARES);
    }
}
