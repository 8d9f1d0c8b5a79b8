//! Body file ids, and the body files written without an fsync of their own.
//!
//! An IMAP APPEND of a small message used to wait for three cache flushes
//! in a row: its body file, the file's directory, then the commit (journal
//! and index). Now the message's file octets also travel in the commit's
//! journal frame (`Record::Body`), which the commit's one fdatasync makes
//! durable, and the file is written to the page cache only. Most chat
//! messages are deleted within a second and never cost an fsync at all;
//! the files that outlive [`MIN_AGE`] are fsync'd, with their directories,
//! by a *checkpoint* ([`crate::blob::BlobStore::sync_unsynced`], every
//! [`TICK`] on a thread of its own), and every file before the journal
//! compacts away the frames that hold its octets, and at a clean close.
//!
//! The contract, kept in `<blobs>/synced-before` (hexadecimal nanoseconds):
//! every body file whose id's time is below it is durable. Ids are issued
//! in strictly increasing time, never below that bound (the clock may step
//! back), and an id written without fsync stays *pending* from the moment
//! it is issued until a checkpoint synced its file; the bound only moves up
//! to the oldest pending id. So after a power loss only files at or above
//! the bound can be torn, missing, or hold a spare's earlier octets.
//! Reconcile checks exactly those (the header names the file's own id and
//! carries a CRC of the message), restores from the journal the ones a
//! surviving frame holds, and drops an index entry whose file is bad and
//! whose frame was lost: that APPEND was never answered OK, because the
//! frame is fsync'd before the answer.

use crate::blob::sync_dir;
use crate::error::Result;
use crate::types::BlobId;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The file holding the bound, in the body file root.
const BOUND_FILE: &str = "synced-before";
/// How often the checkpoint thread looks for files to sync.
pub(crate) const TICK: Duration = Duration::from_millis(500);
/// Files younger than this are left to be deleted first (chat messages
/// mostly are): syncing them would cost what the journal frame saved.
pub(crate) const MIN_AGE: Duration = Duration::from_secs(1);

/// An id written without fsync, not yet synced.
struct Pending {
    id: BlobId,
    /// When its file was written (renamed into place); `None` while it is
    /// being written.
    written: Option<Instant>,
}

struct State {
    /// The time part of the last id issued.
    last: u64,
    /// By id time.
    pending: BTreeMap<u64, Pending>,
}

/// Issues id times and tracks the unsynced files (see the module doc).
pub(crate) struct Ids {
    state: Mutex<State>,
    bound_path: PathBuf,
    /// What the bound file says now.
    recorded: AtomicU64,
    /// What it said when the store was opened: where reconcile starts checking.
    opened_with: u64,
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The time part of a body file id (`<nanos hex>-<pid>-<counter>`).
pub(crate) fn id_time(id: &BlobId) -> Option<u64> {
    let head = id.0.split('-').next()?;
    u64::from_str_radix(head, 16).ok()
}

/// Writes the bound durably: temp file, fsync, rename, directory fsync.
fn record_bound(path: &Path, bound: u64) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    f.write_all(format!("{bound:016x}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

impl Ids {
    /// Reads the bound in `root`. Without a bound file (a new store, or one
    /// from a version that fsync'd every body file) everything there is
    /// durable: the bound starts at now.
    pub(crate) fn open(root: &Path) -> Result<Ids> {
        let bound_path = root.join(BOUND_FILE);
        let bound = match fs::read_to_string(&bound_path) {
            Ok(s) => u64::from_str_radix(s.trim(), 16).unwrap_or_else(|_| {
                // Unreadable: a bound of zero would check every file at the next unclean start,
                // which is slow but safe; now would trust files that may not be durable.
                tracing::warn!(path = %bound_path.display(), "unreadable body sync bound; checking every body file");
                0
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = now_nanos();
                record_bound(&bound_path, now)?;
                now
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Ids {
            state: Mutex::new(State { last: bound.saturating_sub(1), pending: BTreeMap::new() }),
            bound_path,
            recorded: AtomicU64::new(bound),
            opened_with: bound,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next id time, above every earlier one and the bound. `make`
    /// builds the id from it; with `unsynced` the id is pending from now on.
    pub(crate) fn issue(&self, unsynced: bool, make: impl FnOnce(u64) -> BlobId) -> BlobId {
        let mut s = self.state();
        let t = now_nanos().max(s.last.saturating_add(1));
        s.last = t;
        let id = make(t);
        if unsynced {
            s.pending.insert(t, Pending { id: id.clone(), written: None });
        }
        id
    }

    /// The pending id's file is in place (or its write failed and it is gone).
    pub(crate) fn written(&self, id: &BlobId) {
        if let Some(t) = id_time(id)
            && let Some(p) = self.state().pending.get_mut(&t)
        {
            p.written = Some(Instant::now());
        }
    }

    /// Pending files written at `cutoff` or before.
    pub(crate) fn due(&self, cutoff: Instant) -> Vec<(u64, BlobId)> {
        self.state()
            .pending
            .iter()
            .filter(|(_, p)| p.written.is_some_and(|w| w <= cutoff))
            .map(|(t, p)| (*t, p.id.clone()))
            .collect()
    }

    /// Whether any pending file was written at `cutoff` or before.
    pub(crate) fn any_due(&self, cutoff: Instant) -> bool {
        self.state().pending.values().any(|p| p.written.is_some_and(|w| w <= cutoff))
    }

    /// `synced` are durable now: forgets them and records the new bound.
    pub(crate) fn synced(&self, synced: &[(u64, BlobId)]) -> Result<()> {
        self.synced_through(synced, 0)
    }

    /// [`Ids::synced`], and every file whose id's time is up to `through`
    /// is durable too (found on disk, not issued by this process): the
    /// bound, and the ids issued from now on, go past it.
    pub(crate) fn synced_through(&self, synced: &[(u64, BlobId)], through: u64) -> Result<()> {
        let bound = {
            let mut s = self.state();
            s.last = s.last.max(through);
            for (t, _) in synced {
                s.pending.remove(t);
            }
            match s.pending.keys().next() {
                Some(oldest) => *oldest,
                None => s.last.saturating_add(1),
            }
        };
        if bound > self.recorded.load(Ordering::Acquire) {
            record_bound(&self.bound_path, bound)?;
            self.recorded.fetch_max(bound, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Ids whose time is at or above this may be torn after a power loss
    /// (the bound as the store was opened).
    pub(crate) fn unsure_from(&self) -> u64 {
        self.opened_with
    }

    /// Files written without fsync and not synced yet.
    pub(crate) fn pending(&self) -> usize {
        self.state().pending.len()
    }
}

/// Runs the checkpoint every [`TICK`] on a thread of its own until the
/// store is dropped.
pub(crate) fn spawn_checkpoints(blobs: std::sync::Weak<crate::blob::BlobStore>) {
    let spawned = std::thread::Builder::new().name("body-sync".into()).spawn(move || {
        loop {
            std::thread::sleep(TICK);
            let Some(blobs) = blobs.upgrade() else { return };
            let cutoff = Instant::now().checked_sub(MIN_AGE).unwrap_or_else(Instant::now);
            if let Err(e) = blobs.sync_unsynced(cutoff) {
                // The files stay pending and are tried again; the journal
                // frames keep their octets durable meanwhile.
                tracing::error!(error = %e, "could not sync body files written without fsync");
            }
        }
    });
    if let Err(e) = spawned {
        // Without the thread, compaction and close still sync every file.
        tracing::error!(error = %e, "could not start the body file checkpoint thread");
    }
}

/// Fsyncs `files` (those still there) and then their directories.
pub(crate) fn sync_files(paths: impl Iterator<Item = PathBuf>) -> Result<()> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for path in paths {
        match File::open(&path) {
            Ok(f) => f.sync_all()?,
            // Deleted before its checkpoint: nothing to make durable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
        if let Some(dir) = path.parent()
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_owned());
        }
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: u64) -> BlobId {
        BlobId(format!("{t:020x}-00001-00000000"))
    }

    #[test]
    fn ids_increase_and_the_bound_stops_at_the_oldest_pending_file() {
        let dir = tempfile::tempdir().unwrap();
        let ids = Ids::open(dir.path()).unwrap();
        let start = ids.unsure_from();
        assert!(start > 0, "a new store's bound is now");
        let a = ids.issue(true, id);
        let b = ids.issue(false, id);
        let c = ids.issue(true, id);
        let (ta, tb, tc) = (id_time(&a).unwrap(), id_time(&b).unwrap(), id_time(&c).unwrap());
        assert!(start <= ta && ta < tb && tb < tc, "{start} {ta} {tb} {tc}");
        assert_eq!(ids.pending(), 2);
        assert!(ids.due(Instant::now()).is_empty(), "nothing is due before its file is written");

        let before = Instant::now();
        ids.written(&c);
        let due = ids.due(Instant::now());
        assert_eq!(due, vec![(tc, c.clone())]);
        assert!(ids.due(before).is_empty() && !ids.any_due(before), "written after the cutoff");
        ids.synced(&due).unwrap();
        // `a` is still being written: the bound may not pass it.
        let reopened = Ids::open(dir.path()).unwrap();
        assert_eq!(reopened.unsure_from(), ta.max(start));

        ids.written(&a);
        ids.synced(&ids.due(Instant::now())).unwrap();
        let reopened = Ids::open(dir.path()).unwrap();
        assert_eq!(reopened.unsure_from(), tc + 1, "nothing pending: everything issued is durable");
        let d = reopened.issue(true, id);
        assert!(id_time(&d).unwrap() > tc, "ids after a restart stay above the bound");
    }

    #[test]
    fn an_unreadable_bound_checks_everything() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(BOUND_FILE), b"garbage").unwrap();
        assert_eq!(Ids::open(dir.path()).unwrap().unsure_from(), 0);
    }
}
