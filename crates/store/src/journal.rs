//! The placement journal: where every message is, recorded apart from the
//! index, so that `coimail store rebuild` reproduces copies, moves,
//! renames, flags and expunges from files alone — not just where each body
//! file was first delivered (its header).
//!
//! # What is recorded
//! Every batch written to the `mail` tree goes through
//! [`JournaledTree::apply`], which derives the records from the batch
//! itself, so no operation can forget to journal:
//! - a message entry written: `Message` (mailbox id, UID, body file, flags).
//!   It is a full upsert: every record restates the whole placement;
//! - a message entry removed: `MessageGone`;
//! - a mailbox record whose identity (account, name, UIDVALIDITY, special
//!   use) changed: `Mailbox`; removed: `MailboxGone`;
//! - a subscription added or removed: `Subscribed`, `Unsubscribed`
//!   (subscriptions are names of their own and outlive their mailbox;
//!   journals of earlier versions carry them in `Mailbox` records instead,
//!   see [`MailboxEntry::subscribed`]);
//! - an account record written or removed: `Account`, `AccountGone`;
//! - a body file's last reference dropped: `BlobGone`, a tombstone, so an
//!   expunged message whose file outlived a crash is not resurrected.
//!
//! Counters, usage, METADATA, the spool and the expunge log are not
//! placements and are not journaled.
//!
//! # Order and durability
//! - A batch's records are ONE frame (length, CRC-32, JSON) handed to
//!   `write(2)` *before* the batch is applied to the index, under one mutex,
//!   so the journal's order is the index's order and a torn frame (a crash
//!   mid-write) belongs to a batch that was never applied.
//! - [`Journal::sync_blocking`] fsyncs the open segment. `Store::flush`
//!   runs it in the same group commit as the index flush (`group_commit.rs`)
//!   and returns when both are done, so every acknowledged change is durable
//!   in the journal. The journal adds one fdatasync per group, not per
//!   message; its pages start on their way to disk before the index is
//!   flushed ([`Journal::start_writeback`]), so the two waits overlap.
//! - After SIGKILL the journal holds every batch the index holds (the frame
//!   reached the page cache first). After a power loss the index may hold an
//!   unacknowledged batch whose frame was not fsync'd yet: the index is
//!   authoritative on restart, and a later rebuild errs toward the state
//!   before that change (for a copy: missing; for an expunge: kept) unless a
//!   later record restates the message.
//!
//! # Files
//! `<data>/journal/<epoch>-<seq>.log` (segments) and `<epoch>-<seq>.snap`
//! (snapshots), numbers in hex. Snapshot `N` is the state before segment
//! `N`; replay reads the newest snapshot, then the segments from its number
//! on, each up to its first torn or corrupt frame. A segment is never
//! appended to after a restart, so a torn tail stays a tail.
//!
//! Mailbox ids and UIDs are those of one index incarnation, its *epoch*
//! (stored in the index under `C journal-epoch`). A lost index gets a new
//! epoch; the older epoch's files stay until reconcile has put their
//! mailboxes and messages back by account address and mailbox name, then a
//! snapshot of the new index replaces every older file.
//!
//! # Compaction
//! When the open segment outgrows the last snapshot (and at least
//! [`MIN_COMPACT_BYTES`]), the journal switches to a new segment (one fsync,
//! the only moment writers wait) and a background thread folds the older
//! files into a snapshot — live placements plus tombstones of body files
//! still on disk — then deletes them. Rewriting is thus proportional to
//! what was appended.

use crate::blob::{BlobStore, sync_dir};
use crate::error::{Result, StoreError};
use crate::keys;
use crate::kv::{Batch, Tree};
use crate::listing::Listings;
use crate::types::BlobId;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Segments smaller than this are never compacted.
pub(crate) const MIN_COMPACT_BYTES: u64 = 32 << 20;
/// Records per frame in a snapshot.
const SNAPSHOT_FRAME: usize = 1024;
/// Zeros laid down ahead of the open segment's end. Frames are written over
/// them, so a group commit's fdatasync writes the frame's pages only:
/// appending past the end of the file changes its size, and then every
/// fdatasync also writes the inode, a second synchronous disk write per
/// commit (measured on the CI VM: 3 → 2 block requests and 146 → 97 µs per
/// fdatasync).
const ZEROED_AHEAD: u64 = 1 << 20;

mod records;

pub(crate) use records::{MailboxEntry, Placed, Projection, Record, body_octets};
use records::{projection_of_index, records_of, u64_of};

// ---- files ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Snapshot,
    Segment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Name {
    epoch: u64,
    seq: u64,
    kind: Kind,
}

impl Name {
    fn file(&self) -> String {
        let ext = match self.kind {
            Kind::Snapshot => "snap",
            Kind::Segment => "log",
        };
        format!("{:016x}-{:016x}.{ext}", self.epoch, self.seq)
    }

    fn parse(s: &str) -> Option<Name> {
        let (stem, ext) = s.split_once('.')?;
        let kind = match ext {
            "snap" => Kind::Snapshot,
            "log" => Kind::Segment,
            _ => return None,
        };
        let (epoch, seq) = stem.split_once('-')?;
        if epoch.len() != 16 || seq.len() != 16 {
            return None;
        }
        Some(Name { epoch: u64::from_str_radix(epoch, 16).ok()?, seq: u64::from_str_radix(seq, 16).ok()?, kind })
    }
}

/// Journal files in `dir`, sorted by (epoch, seq, kind).
fn list(dir: &Path) -> Result<Vec<Name>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Some(n) = entry?.file_name().to_str().and_then(Name::parse) {
            out.push(n);
        }
    }
    out.sort();
    Ok(out)
}

fn frame(records: &[Record]) -> Result<Vec<u8>> {
    let payload = serde_json::to_vec(records).map_err(|e| StoreError::Engine(e.to_string()))?;
    let len = u32::try_from(payload.len()).map_err(|_| StoreError::Invalid("journal frame over 4 GiB".into()))?;
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads into `buf` until it is full or the file ends; returns the count.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Feeds every record of every whole frame of `path` to `f`. Returns false
/// if it stopped at a torn or corrupt frame (the rest is ignored).
fn read_file(path: &Path, f: &mut impl FnMut(Record)) -> Result<bool> {
    let file = File::open(path)?;
    let mut left = file.metadata()?.len();
    let mut r = BufReader::new(file);
    loop {
        let mut head = [0u8; 8];
        match read_full(&mut r, &mut head)? {
            0 => return Ok(true),
            8 => {}
            _ => return Ok(false),
        }
        left = left.saturating_sub(8);
        if head == [0; 8] {
            // The zeros laid down ahead of the frames: nothing was written here.
            return Ok(true);
        }
        let [a, b, c, d, e, g, h, i] = head;
        let len = u64::from(u32::from_be_bytes([a, b, c, d]));
        if len > left {
            return Ok(false);
        }
        left -= len;
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut r, &mut payload)? as u64 != len
            || crc32fast::hash(&payload) != u32::from_be_bytes([e, g, h, i])
        {
            return Ok(false);
        }
        let Ok(records) = serde_json::from_slice::<Vec<Record>>(&payload) else { return Ok(false) };
        records.into_iter().for_each(&mut *f);
    }
}

/// The state of `epoch` before segment `upto` (all of it with `None`).
fn replay(dir: &Path, names: &[Name], epoch: u64, upto: Option<u64>, keep_bodies: bool) -> Result<Projection> {
    let files: Vec<&Name> = names.iter().filter(|n| n.epoch == epoch && upto.is_none_or(|u| n.seq < u)).collect();
    let base = files.iter().filter(|n| n.kind == Kind::Snapshot).map(|n| n.seq).max();
    let mut p = Projection { keep_bodies, ..Projection::default() };
    let mut apply = |r: Record| p.apply(r);
    for n in &files {
        let wanted = match (n.kind, base) {
            (Kind::Snapshot, Some(b)) => n.seq == b,
            (Kind::Snapshot, None) => false,
            (Kind::Segment, b) => n.seq >= b.unwrap_or(0),
        };
        // `files` is sorted by seq with the snapshot before the segment of the same number.
        if wanted && !read_file(&dir.join(n.file()), &mut apply)? {
            tracing::warn!(file = %n.file(), "journal file ends in a torn or corrupt frame; the rest is ignored");
        }
    }
    Ok(p)
}

/// Writes snapshot `seq` of `epoch` durably (temp → fsync → rename → fsync
/// directory); returns its size.
fn write_snapshot(dir: &Path, epoch: u64, seq: u64, p: &Projection, tombstones: &[&str]) -> Result<u64> {
    let name = Name { epoch, seq, kind: Kind::Snapshot }.file();
    let tmp = dir.join(format!("{name}.tmp"));
    let mut w = BufWriter::new(OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?);
    let mut bytes = 0u64;
    let gone = tombstones.iter().map(|b| Record::BlobGone { blob: (*b).to_owned() });
    let mut chunk = Vec::with_capacity(SNAPSHOT_FRAME);
    for r in p.records().chain(gone) {
        chunk.push(r);
        if chunk.len() == SNAPSHOT_FRAME {
            let f = frame(&chunk)?;
            w.write_all(&f)?;
            bytes += f.len() as u64;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        let f = frame(&chunk)?;
        w.write_all(&f)?;
        bytes += f.len() as u64;
    }
    let file = w.into_inner().map_err(|e| StoreError::from(e.into_error()))?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(&name))?;
    sync_dir(dir)?;
    Ok(bytes)
}

fn remove_files<'a>(dir: &Path, names: impl Iterator<Item = &'a Name>) -> Result<()> {
    for n in names {
        match fs::remove_file(dir.join(n.file())) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    sync_dir(dir)
}

fn create_segment(dir: &Path, epoch: u64, seq: u64) -> Result<File> {
    let path = dir.join(Name { epoch, seq, kind: Kind::Segment }.file());
    let f = OpenOptions::new().write(true).create_new(true).open(path)?;
    sync_dir(dir)?;
    Ok(f)
}

/// A segment of an earlier run that never got a frame: empty, or zeros only
/// where the first frame would start.
fn holds_no_frame(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else { return false };
    let mut head = [0u8; 8];
    match read_full(&mut f, &mut head) {
        Ok(0) => true,
        Ok(8) => head == [0; 8],
        _ => false,
    }
}

// ---- the live journal ----

/// The open segment.
struct Segment {
    seq: u64,
    file: Arc<File>,
    /// Where the next frame goes.
    bytes: u64,
    /// The file's length: zeros from `bytes` up to here (`ZEROED_AHEAD`).
    zeroed: u64,
    /// A failed write could not be cut off: switch segments before the next one.
    broken: bool,
    /// Mailbox identities already recorded in this epoch, so a delivery does
    /// not restate its mailbox every time.
    mailboxes: HashMap<u64, MailboxEntry>,
}

impl Segment {
    /// Lays down zeros so that a frame ending at `end` lands inside the
    /// file. Best effort: where it fails, the frame's write extends the file.
    fn zero_ahead(&mut self, end: u64) {
        let target = end.saturating_add(ZEROED_AHEAD);
        let zeros = vec![0u8; 64 << 10];
        let mut at = self.zeroed;
        while at < target {
            let n = (target - at).min(zeros.len() as u64);
            if self.file.write_all_at(&zeros[..n as usize], at).is_err() {
                return;
            }
            at += n;
        }
        self.zeroed = at;
    }

    /// Cuts the file back to the frames (a failed write, or the segment
    /// being closed); false if that failed too.
    fn cut_back(&mut self) -> bool {
        if self.file.set_len(self.bytes).is_err() {
            return false;
        }
        self.zeroed = self.bytes;
        true
    }

    /// `records` without mailbox records that restate what is recorded.
    fn novel(&self, mut records: Vec<Record>) -> Vec<Record> {
        records.retain(|r| match r {
            Record::Mailbox { id, mailbox } => self.mailboxes.get(id) != Some(mailbox),
            _ => true,
        });
        records
    }

    fn remember(&mut self, records: &[Record]) {
        for r in records {
            match r {
                Record::Mailbox { id, mailbox } => {
                    self.mailboxes.insert(*id, mailbox.clone());
                }
                Record::MailboxGone { id } => {
                    self.mailboxes.remove(id);
                }
                _ => {}
            }
        }
    }
}

/// The open segment and how much of it is durable, behind one lock.
struct Shared {
    segment: Mutex<Segment>,
    /// Frames written so far, and the number of them known durable.
    written: AtomicU64,
    synced: AtomicU64,
}

impl Shared {
    fn segment(&self) -> MutexGuard<'_, Segment> {
        self.segment.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fsyncs the open segment if anything was written since the last fsync.
    fn sync_blocking(&self) -> Result<()> {
        let (target, file) = {
            let seg = self.segment();
            (self.written.load(Ordering::Acquire), seg.file.clone())
        };
        if self.synced.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        file.sync_data()?;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }
}

/// The journal of one store (see the module doc).
pub(crate) struct Journal {
    dir: PathBuf,
    epoch: u64,
    shared: Shared,
    /// For tombstones: only body files still on disk need one.
    blobs: BlobStore,
    /// One compaction at a time.
    compaction: Mutex<()>,
    compacting: AtomicBool,
    min_compact: AtomicU64,
    /// Compact when the open segment grows past this.
    threshold: AtomicU64,
    /// The free-space reserve: no compaction while below it (a snapshot
    /// needs room the size of the live state before the old files go).
    space: std::sync::OnceLock<Arc<crate::space::Space>>,
    /// The store's body files, whose unsynced ones a compaction syncs first.
    bodies: std::sync::OnceLock<Arc<BlobStore>>,
}

/// What opening found.
pub(crate) struct Opened {
    pub journal: Arc<Journal>,
    /// The index had no epoch: it is new (or predates the journal).
    pub new_epoch: bool,
    /// No file of this epoch exists: an index with content needs a snapshot
    /// of itself before its changes can be replayed (it predates the
    /// journal, or the journal was deleted).
    pub without_history: bool,
    /// Files of other epochs exist: an earlier index's history to reconcile.
    pub older_epochs: bool,
}

impl Journal {
    /// Opens the journal in `dir` for the index `tree`, starting a new
    /// segment. Blocking.
    pub(crate) fn open(dir: &Path, tree: &Tree, blobs_root: &Path) -> Result<Opened> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
                fs::remove_file(entry.path())?;
            }
        }
        let mut names = list(dir)?;
        // Segments of earlier runs that never got a frame hold nothing.
        names.retain(|n| {
            let path = dir.join(n.file());
            let empty = n.kind == Kind::Segment && holds_no_frame(&path);
            !(empty && fs::remove_file(&path).is_ok())
        });
        let key = keys::counter("journal-epoch");
        let stored = tree.get(&key)?.map(|v| u64_of(&v)).transpose()?;
        let (epoch, new_epoch) = match stored {
            Some(e) => (e, false),
            None => {
                let e = names.iter().map(|n| n.epoch).max().unwrap_or(0).saturating_add(1);
                let mut b = Batch::default();
                b.insert(key, e.to_be_bytes().to_vec());
                tree.apply(b)?;
                (e, true)
            }
        };
        let older_epochs = names.iter().any(|n| n.epoch != epoch);
        let history = names.iter().any(|n| n.epoch == epoch);
        let seq = names.iter().filter(|n| n.epoch == epoch).map(|n| n.seq).max().map_or(1, |s| s.saturating_add(1));
        let file = create_segment(dir, epoch, seq)?;
        let shared = Shared {
            segment: Mutex::new(Segment {
                seq,
                file: Arc::new(file),
                bytes: 0,
                zeroed: 0,
                broken: false,
                mailboxes: HashMap::new(),
            }),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        };
        let snapshot = names.iter().rfind(|n| n.epoch == epoch && n.kind == Kind::Snapshot);
        let snapshot_bytes = match snapshot {
            Some(n) => fs::metadata(dir.join(n.file())).map(|m| m.len()).unwrap_or(0),
            None => 0,
        };
        let journal = Journal {
            dir: dir.to_owned(),
            epoch,
            shared,
            blobs: BlobStore::open(blobs_root)?,
            compaction: Mutex::new(()),
            compacting: AtomicBool::new(false),
            min_compact: AtomicU64::new(MIN_COMPACT_BYTES),
            threshold: AtomicU64::new(MIN_COMPACT_BYTES.max(snapshot_bytes)),
            space: std::sync::OnceLock::new(),
            bodies: std::sync::OnceLock::new(),
        };
        Ok(Opened { journal: Arc::new(journal), new_epoch, without_history: !history, older_epochs })
    }

    /// The store's body files: a compaction makes those written without
    /// fsync durable before it drops their frames.
    pub(crate) fn set_bodies(&self, blobs: Arc<BlobStore>) {
        let _ = self.bodies.set(blobs);
    }

    /// Ties compaction to the store's free-space reserve.
    pub(crate) fn set_space(&self, space: Arc<crate::space::Space>) {
        let _ = self.space.set(space);
    }

    /// True while the disk is below the reserve: compaction waits, as
    /// deletes must not need more space than the reserve keeps.
    fn low_on_space(&self) -> bool {
        self.space.get().is_some_and(|s| s.is_low())
    }

    /// Starts writing the frames not yet synced to disk, without waiting,
    /// so that the store's commit can flush the index meanwhile and the
    /// [`Journal::sync_blocking`] after it mostly finds the pages written.
    pub(crate) fn start_writeback(&self) {
        if self.shared.synced.load(Ordering::Acquire) >= self.shared.written.load(Ordering::Acquire) {
            return;
        }
        let file = self.segment().file.clone();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a descriptor `file` keeps open.
            // Only a hint: a failure leaves the work to the fdatasync.
            unsafe {
                libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
        #[cfg(not(target_os = "linux"))]
        drop(file);
    }

    /// Makes every record written so far durable; free when nothing was
    /// written since the last one. Blocking: the store's group commit
    /// (`Store::flush`) calls it, so concurrent writers share one fdatasync.
    pub(crate) fn sync_blocking(&self) -> Result<()> {
        self.shared.sync_blocking()
    }

    fn segment(&self) -> MutexGuard<'_, Segment> {
        self.shared.segment()
    }

    /// Appends one frame. On failure the file is cut back so no torn frame
    /// hides later ones.
    fn append(&self, seg: &mut Segment, records: &[Record]) -> Result<()> {
        if seg.broken {
            self.rotate(seg)?;
        }
        let frame = frame(records)?;
        let end = seg.bytes + frame.len() as u64;
        if end > seg.zeroed {
            seg.zero_ahead(end);
        }
        if let Err(e) = seg.file.write_all_at(&frame, seg.bytes) {
            if !seg.cut_back() {
                seg.broken = true;
            }
            return Err(e.into());
        }
        seg.bytes = end;
        seg.zeroed = seg.zeroed.max(end);
        self.shared.written.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Closes the open segment (fsync'd) and opens the next one.
    fn rotate(&self, seg: &mut Segment) -> Result<()> {
        let written = self.shared.written.load(Ordering::Acquire);
        // Its zeros are not needed any more (a failure leaves them, harmlessly).
        if !seg.broken {
            seg.cut_back();
        }
        match seg.file.sync_data() {
            Ok(()) => {
                self.shared.synced.fetch_max(written, Ordering::AcqRel);
            }
            // A broken segment's complete frames were fsync'd by earlier syncs
            // or are lost with it; its writers got errors.
            Err(e) if !seg.broken => return Err(e.into()),
            Err(_) => {}
        }
        let seq = seg.seq.saturating_add(1);
        let file = create_segment(&self.dir, self.epoch, seq)?;
        seg.seq = seq;
        seg.file = Arc::new(file);
        seg.bytes = 0;
        seg.zeroed = 0;
        seg.broken = false;
        Ok(())
    }

    fn compaction_lock(&self) -> MutexGuard<'_, ()> {
        self.compaction.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_threshold(&self, snapshot_bytes: u64) {
        let min = self.min_compact.load(Ordering::Relaxed);
        self.threshold.store(min.max(snapshot_bytes), Ordering::Relaxed);
    }

    /// Compact at a smaller size (tests).
    #[cfg(test)]
    pub(crate) fn set_min_compact(&self, bytes: u64) {
        self.min_compact.store(bytes, Ordering::Relaxed);
        self.threshold.store(bytes, Ordering::Relaxed);
    }

    /// Waits for a running background compaction (tests).
    #[cfg(test)]
    pub(crate) fn wait_for_compaction(&self) {
        while self.compacting.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(self.compaction_lock());
    }

    /// The journal directory (tests).
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Folds the files before segment `base` into snapshot `base`, in the background.
    fn spawn_compaction(self: &Arc<Self>, base: u64) {
        let j = self.clone();
        let rotated_at = std::time::Instant::now();
        let spawned = std::thread::Builder::new().name("journal-compact".into()).spawn(move || {
            if let Err(e) = j.compact_files(base, rotated_at) {
                tracing::error!(error = %e, "journal compaction failed; the journal keeps growing until the next one");
            }
            j.compacting.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start journal compaction");
            self.compacting.store(false, Ordering::Release);
        }
    }

    /// `rotated_at`: when segment `base` was opened; every frame before it
    /// was written earlier.
    fn compact_files(&self, base: u64, rotated_at: std::time::Instant) -> Result<()> {
        let _c = self.compaction_lock();
        let names = list(&self.dir)?;
        if names.iter().any(|n| n.epoch == self.epoch && n.kind == Kind::Snapshot && n.seq >= base) {
            return Ok(()); // a newer snapshot was written meanwhile
        }
        // The frames folded away may hold the only durable copy of a body
        // file written without fsync: those files are made durable first.
        if let Some(blobs) = self.bodies.get() {
            blobs.sync_before_compaction(rotated_at)?;
        }
        let p = replay(&self.dir, &names, self.epoch, Some(base), false)?;
        let tombstones: Vec<&str> =
            p.gone().into_iter().filter(|b| self.blobs.exists(&BlobId((*b).to_owned()))).collect();
        let bytes = write_snapshot(&self.dir, self.epoch, base, &p, &tombstones)?;
        self.set_threshold(bytes);
        remove_files(&self.dir, names.iter().filter(|n| n.epoch == self.epoch && n.seq < base))?;
        tracing::info!(snapshot_bytes = bytes, messages = p.messages.len(), "journal compacted");
        Ok(())
    }

    /// Replaces every journal file, of every epoch, with a snapshot of the
    /// index. Only while nothing else writes (startup, reconcile): the
    /// index must say everything the older files said. Blocking.
    pub(crate) fn compact_from_index(&self, tree: &Tree) -> Result<()> {
        let _c = self.compaction_lock();
        let (base, p) = {
            let mut seg = self.segment();
            self.rotate(&mut seg)?;
            (seg.seq, projection_of_index(tree)?)
        };
        let bytes = write_snapshot(&self.dir, self.epoch, base, &p, &[])?;
        self.set_threshold(bytes);
        let names = list(&self.dir)?;
        remove_files(&self.dir, names.iter().filter(|n| n.epoch != self.epoch || n.seq < base))?;
        Ok(())
    }

    /// Every epoch's history: the current epoch first, then older ones,
    /// newest first. Blocking; reads the files as they are now.
    pub(crate) fn histories(&self) -> Result<Vec<History>> {
        let names = list(&self.dir)?;
        let mut epochs: Vec<u64> = names.iter().map(|n| n.epoch).filter(|e| *e != self.epoch).collect();
        epochs.sort_unstable_by(|a, b| b.cmp(a));
        epochs.dedup();
        let mut out = vec![History { current: true, state: replay(&self.dir, &names, self.epoch, None, true)? }];
        for e in epochs {
            out.push(History { current: false, state: replay(&self.dir, &names, e, None, true)? });
        }
        Ok(out)
    }
}

/// One epoch's replayed journal.
pub(crate) struct History {
    /// The epoch of the open index: its ids are the index's ids.
    pub current: bool,
    pub state: Projection,
}

/// The `mail` tree with every write journaled first, and the message
/// listings cache told of it (`listing.rs`). Reads go straight to the tree.
#[derive(Clone)]
pub(crate) struct JournaledTree {
    tree: Tree,
    journal: Arc<Journal>,
    listings: Arc<Listings>,
}

impl JournaledTree {
    pub(crate) fn new(tree: Tree, journal: Arc<Journal>) -> JournaledTree {
        JournaledTree { tree, journal, listings: Arc::default() }
    }

    /// Decoded message records, kept in step with every [`JournaledTree::apply`].
    pub(crate) fn listings(&self) -> &Listings {
        &self.listings
    }

    pub(crate) fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The tree without the journal, for snapshots of it.
    pub(crate) fn raw(&self) -> &Tree {
        &self.tree
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tree.get(key)
    }

    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree.scan_prefix(prefix)
    }

    pub fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree.range(start, end)
    }

    pub fn increment(&self, key: &[u8]) -> Result<u64> {
        self.tree.increment(key)
    }

    pub fn visit_range(&self, start: &[u8], end: &[u8], f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        self.tree.visit_range(start, end, f)
    }

    /// Journals the batch's placement changes (one frame), then applies it.
    /// Neither is durable before `Store::flush`.
    pub fn apply(&self, batch: Batch) -> Result<()> {
        self.apply_with(batch, Vec::new())
    }

    /// [`JournaledTree::apply`], with `bodies` ([`Record::Body`], of files
    /// written without fsync) in the same frame.
    pub(crate) fn apply_with(&self, batch: Batch, bodies: Vec<Record>) -> Result<()> {
        let mut records = records_of(&batch)?;
        records.extend(bodies);
        let changes = Listings::changes(&batch);
        if records.is_empty() {
            return self.listings.apply(changes, || self.tree.apply(batch));
        }
        let j = &self.journal;
        let mut seg = j.segment();
        let records = seg.novel(records);
        let bytes_before = seg.bytes;
        let framed = !records.is_empty();
        if framed {
            j.append(&mut seg, &records)?;
        }
        // Under the segment lock: the cache learns writes in the index's order.
        if let Err(e) = self.listings.apply(changes, || self.tree.apply(batch)) {
            if framed {
                // The change never happened: its frame must not outlive it,
                // or a rebuild would replay it. No sync has seen the frame
                // (syncs read `written` under the segment lock we hold).
                j.shared.written.fetch_sub(1, Ordering::AcqRel);
                seg.bytes = bytes_before;
                if !seg.cut_back() {
                    seg.broken = true;
                }
            }
            return Err(e);
        }
        if framed {
            seg.remember(&records);
        }
        if seg.bytes > j.threshold.load(Ordering::Relaxed)
            && !j.low_on_space()
            && !j.compacting.swap(true, Ordering::AcqRel)
        {
            match j.rotate(&mut seg) {
                Ok(()) => {
                    let base = seg.seq;
                    drop(seg);
                    j.spawn_compaction(base);
                }
                Err(e) => {
                    j.compacting.store(false, Ordering::Release);
                    tracing::warn!(error = %e, "could not switch journal segments; compaction postponed");
                }
            }
        }
        Ok(())
    }

    /// Applies without journaling. Only for batches that move no message
    /// (reconcile's recount of counters, usage and reference counts).
    pub(crate) fn apply_unjournaled(&self, batch: Batch) -> Result<()> {
        self.listings.apply_and_forget(|| self.tree.apply(batch))
    }
}

#[cfg(test)]
mod tests;
