//! Message bodies as files. One file per delivery, shared by every recipient
//! (the index counts references). Each file starts with a small header naming
//! where the message was first delivered; what happened to it afterwards
//! (copies, moves, renames, flags, expunge) is in the placement journal
//! (`journal.rs`). Together they let the index be rebuilt from files alone;
//! the header alone covers a delivery whose journal frame never landed.
//!
//! Write order (the durability contract): temp file (or a spare, an
//! emptied body file kept for reuse: `spare.rs`) → fsync → rename → fsync
//! directory. Only then may the index point at it.
//! The exception: `BlobStore::write_unsynced` (IMAP APPEND of a small
//! message) skips both fsyncs, because its octets are made durable in the
//! commit's journal frame instead (`body_sync.rs`); its header names the
//! file's own id and a CRC, so reconcile can tell a torn one.
//!
//! Layout: `<root>/<shard>/<id>` with `<shard>` two hex digits derived from
//! the id. A file being written is `<root>/<shard>/.tmp-<id>`, in the
//! directory it is renamed within: concurrent writers spread over 256
//! directories instead of contending for one, and a rename within one
//! directory locks only it. The shards are created when the store is
//! opened, so no write pays for a `mkdir`. (`<root>/tmp/` held temp files
//! in earlier versions; [`BlobStore::clear_tmp`] still empties it.)

use crate::body_sync::{self, Ids};
use crate::error::{Result, StoreError};
use crate::spare::{MAX_SPARE_LEN, SPARE_PREFIX, Spare, Spares};
use crate::types::{BlobId, Placement};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

const MAGIC: &[u8] = b"COIMAIL-BLOB 1\n";
/// Names of files being written start with this.
const TMP_PREFIX: &str = ".tmp-";
/// Largest header we will parse; a bigger one means the file is not ours.
const MAX_HEADER: usize = 1 << 20;

/// What a body file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobHeader {
    pub internal_date: i64,
    pub placements: Vec<Placement>,
    /// The file's own id, so that a file whose name outlived a power loss
    /// but whose octets did not (a spare's earlier message under the new
    /// name) is told apart. Absent in files of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// CRC-32 of the message, in files written without fsync
    /// (`body_sync.rs`): a torn write shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc: Option<u32>,
}

impl BlobHeader {
    pub fn new(internal_date: i64, placements: Vec<Placement>) -> BlobHeader {
        BlobHeader { internal_date, placements, id: None, crc: None }
    }
}

/// A parsed body file: its header and where the message bytes start.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub id: BlobId,
    pub header: BlobHeader,
    pub body_offset: u64,
    pub body_len: u64,
}

pub struct BlobStore {
    root: PathBuf,
    counter: AtomicU32,
    /// Part of every id; `std::process::id` is a system call each time.
    pid: u32,
    /// Emptied body files for the next write (`spare.rs`).
    spares: Spares,
    /// Id times, and the files written without fsync (`body_sync.rs`).
    ids: Ids,
    /// One checkpoint at a time (the bound file has one writer).
    checkpoint: std::sync::Mutex<()>,
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<BlobStore> {
        fs::create_dir_all(root)?;
        let mut created = false;
        for shard in 0..=u8::MAX {
            let dir = root.join(format!("{shard:02x}"));
            if !dir.is_dir() {
                fs::create_dir(&dir)?;
                created = true;
            }
        }
        if created {
            sync_dir(root)?;
        }
        Ok(BlobStore {
            root: root.to_owned(),
            counter: AtomicU32::new(0),
            pid: std::process::id(),
            spares: Spares::default(),
            ids: Ids::open(root)?,
            checkpoint: std::sync::Mutex::new(()),
        })
    }

    fn new_id(&self) -> BlobId {
        self.ids.issue(false, |t| self.format_id(t))
    }

    fn format_id(&self, nanos: u64) -> BlobId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        BlobId(format!("{:020x}-{:05x}-{:08x}", nanos, self.pid, n))
    }

    fn path(&self, id: &BlobId) -> Result<PathBuf> {
        // Ids come from our own files or index; still, never let one escape the root.
        if id.0.is_empty() || !id.0.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StoreError::Corrupt(format!("bad blob id {:?}", id.0)));
        }
        let shard = id.0.bytes().fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b));
        Ok(self.root.join(format!("{shard:02x}")).join(&id.0))
    }

    /// Writes a body file durably and returns its id and the offset of the message.
    /// Blocking: call from a blocking thread.
    pub fn write(&self, header: &BlobHeader, message: &[u8]) -> Result<(BlobId, u64)> {
        let id = self.new_id();
        let (offset, _) = self.write_file(&id, header, None, message, true)?;
        Ok((id, offset))
    }

    /// Writes a small body file without fsync (`body_sync.rs`): the caller
    /// puts the returned file octets in the commit's journal frame. Returns
    /// the id, the message's offset and those octets; `None` for a message
    /// too large for that, which was written durably instead. Blocking.
    pub(crate) fn write_unsynced(&self, header: &BlobHeader, message: &[u8]) -> Result<(BlobId, u64, Option<Vec<u8>>)> {
        if message.len() > MAX_SPARE_LEN as usize {
            let (id, offset) = self.write(header, message)?;
            return Ok((id, offset, None));
        }
        let id = self.ids.issue(true, |t| self.format_id(t));
        let written = self.write_file(&id, header, Some(crc32fast::hash(message)), message, false);
        // Failed or not: a file left under the id is synced by the checkpoint (harmless).
        self.ids.written(&id);
        let (offset, file) = written?;
        Ok((id, offset, file))
    }

    /// Writes body file `id`; with `durable`, the file and the directory
    /// entry are fsync'd before it returns. Returns the message's offset,
    /// and the file's octets when the message was small (one buffer).
    fn write_file(
        &self,
        id: &BlobId,
        header: &BlobHeader,
        crc: Option<u32>,
        message: &[u8],
        durable: bool,
    ) -> Result<(u64, Option<Vec<u8>>)> {
        let final_path = self.path(id)?;
        let dir = final_path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        let header = BlobHeader { id: Some(id.0.clone()), crc, ..header.clone() };
        let head = serde_json::to_vec(&header).map_err(|e| StoreError::Invalid(e.to_string()))?;
        // One write for a small message, two for a large one (no copy of it).
        let small = message.len() <= MAX_SPARE_LEN as usize;
        let mut start = Vec::with_capacity(MAGIC.len() + 4 + head.len() + if small { message.len() } else { 0 });
        start.extend_from_slice(MAGIC);
        start.extend_from_slice(&(head.len() as u32).to_be_bytes());
        start.extend_from_slice(&head);
        let offset = start.len() as u64;
        let rest = if small {
            start.extend_from_slice(message);
            &[][..]
        } else {
            message
        };
        let total = start.len() as u64 + rest.len() as u64;
        // A spare that cannot be written over (gone, a failing disk) is
        // dropped; a new file then tells whether the disk takes writes at all.
        let reused = self.spares.take().and_then(|spare| self.write_over(spare, &start, rest, total, durable).ok());
        let written = match reused {
            Some(path) => path,
            None => {
                let tmp_path = dir.join(format!("{TMP_PREFIX}{}", id.0));
                let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp_path)?;
                f.write_all(&start)?;
                f.write_all(rest)?;
                if durable {
                    f.sync_all()?;
                }
                tmp_path
            }
        };
        fs::rename(&written, &final_path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok((offset, small.then_some(start)))
    }

    /// Is body file `id` what its writer wrote? Its header must name it
    /// and, where the header has a CRC, the message must match it. False
    /// for a missing or unreadable file, and for one of an earlier version
    /// (no id in its header): ask only about files that may not be durable
    /// (`body_sync.rs`). Blocking.
    pub(crate) fn verify(&self, id: &BlobId) -> bool {
        let Ok(info) = self.info(id) else { return false };
        if info.header.id.as_deref() != Some(id.0.as_str()) {
            return false;
        }
        match info.header.crc {
            None => true,
            Some(crc) => self.read(id, info.body_offset, info.body_len).is_ok_and(|b| crc32fast::hash(&b) == crc),
        }
    }

    /// Writes body file `id` durably from its octets (a journal frame's
    /// copy), replacing whatever is there. Blocking.
    pub(crate) fn restore(&self, id: &BlobId, file: &[u8]) -> Result<()> {
        let final_path = self.path(id)?;
        let dir = final_path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        let tmp_path = dir.join(format!("{TMP_PREFIX}{}", id.0));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp_path)?;
        f.write_all(file)?;
        f.sync_all()?;
        fs::rename(&tmp_path, &final_path)?;
        sync_dir(dir)
    }

    /// The checkpoint (`body_sync.rs`): fsyncs the files written without
    /// fsync at `cutoff` or before that still exist, and their
    /// directories, then records the new bound. Returns how many it
    /// covered. Blocking.
    pub(crate) fn sync_unsynced(&self, cutoff: Instant) -> Result<usize> {
        let _one = self.checkpoint.lock().unwrap_or_else(|e| e.into_inner());
        let due = self.ids.due(cutoff);
        if !due.is_empty() {
            let paths: Vec<PathBuf> = due.iter().filter_map(|(_, id)| self.path(id).ok()).collect();
            body_sync::sync_files(paths.into_iter())?;
            self.ids.synced(&due)?;
        }
        metrics::gauge!("coimail_store_unsynced_bodies").set(self.ids.pending() as f64);
        Ok(due.len())
    }

    /// Makes durable every file written without fsync at `cutoff` or
    /// before, for a journal compaction about to drop the frames holding
    /// their octets. It first gives the periodic checkpoint the time to
    /// reach them, by which most are deleted and need no fsync at all:
    /// syncing a second's worth of young files at once would queue
    /// hundreds of fsyncs in front of the commits. Blocking.
    pub(crate) fn sync_before_compaction(&self, cutoff: Instant) -> Result<usize> {
        let patience = body_sync::MIN_AGE + body_sync::TICK;
        while self.ids.any_due(cutoff) && cutoff.elapsed() < patience {
            std::thread::sleep(body_sync::TICK / 5);
        }
        self.sync_unsynced(cutoff)
    }

    /// Fsyncs every body file whose id's time is at least `from` (the
    /// files a crash may have left in the page cache only), and their
    /// directories, then records the bound past every id issued so far.
    /// For reconcile, before the journal's copies go. Blocking.
    pub(crate) fn sync_from(&self, from: u64) -> Result<()> {
        let _one = self.checkpoint.lock().unwrap_or_else(|e| e.into_inner());
        let recent: Vec<(u64, BlobId)> = self
            .list()?
            .into_iter()
            .filter_map(|id| Some((body_sync::id_time(&id)?, id)))
            .filter(|(t, _)| *t >= from)
            .collect();
        let through = recent.iter().map(|(t, _)| *t).max().unwrap_or(0);
        let paths: Vec<PathBuf> = recent.iter().filter_map(|(_, id)| self.path(id).ok()).collect();
        body_sync::sync_files(paths.into_iter())?;
        self.ids.synced_through(&[], through)
    }

    /// Ids whose time is at or above this may not be durable after an
    /// unclean stop (`body_sync.rs`).
    pub(crate) fn unsure_from(&self) -> u64 {
        self.ids.unsure_from()
    }

    /// Files written without fsync, not synced yet.
    #[cfg(test)]
    pub(crate) fn unsynced(&self) -> usize {
        self.ids.pending()
    }

    /// Overwrites a spare with a new body file's octets (fsync'd when
    /// `durable`); the caller renames it. On failure the spare is removed:
    /// it holds a torn write.
    fn write_over(
        &self,
        spare: Spare,
        start: &[u8],
        rest: &[u8],
        total: u64,
        durable: bool,
    ) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::FileExt;
        let done = (|| -> std::io::Result<()> {
            let f = OpenOptions::new().write(true).open(&spare.path)?;
            f.write_all_at(start, 0)?;
            f.write_all_at(rest, start.len() as u64)?;
            if spare.len > total {
                f.set_len(total)?;
            }
            if durable { f.sync_all() } else { Ok(()) }
        })();
        self.spares.forget(spare.len);
        if let Err(e) = done {
            let _ = fs::remove_file(&spare.path);
            return Err(e);
        }
        Ok(spare.path)
    }

    /// Writes, fsyncs and removes a small file where bodies are written, so
    /// a filesystem that turned read-only, full or unwritable shows before a
    /// delivery meets it (the health probe). Named like a temp file, so one
    /// left by a crash is removed by [`BlobStore::clear_tmp`]. Blocking.
    pub fn probe(&self) -> Result<()> {
        let id = self.new_id();
        let path = self.path(&id)?;
        let dir = path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        let tmp_path = dir.join(format!("{TMP_PREFIX}{}", id.0));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .and_then(|mut f| f.write_all(MAGIC).and_then(|()| f.sync_all()));
        let removed = fs::remove_file(&tmp_path);
        written?;
        Ok(removed?)
    }

    /// Creates an empty staged body (`staged.rs`): a temp file in the shard
    /// directory of the id it will be renamed to, so [`BlobStore::clear_tmp`]
    /// removes it after a crash and the rename stays within one directory.
    /// Blocking.
    pub(crate) fn stage(&self) -> Result<(BlobId, PathBuf, File)> {
        let id = self.new_id();
        let final_path = self.path(&id)?;
        let dir = final_path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        let tmp_path = dir.join(format!("{TMP_PREFIX}{}", id.0));
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp_path)?;
        Ok((id, tmp_path, f))
    }

    /// Makes a staged file durable as a body file: message octets `prefix`
    /// (still in memory) followed by what the file holds from `data_at` on.
    ///
    /// When the header and `prefix` fit in the `data_at` octets left free at
    /// the file's start, they are written there (the header's JSON padded
    /// with spaces, which its parser skips) and the staged file itself is
    /// renamed to `id`: the message is never copied. Otherwise the body goes
    /// to a new file, copied in the kernel (`copy_file_range`), and the
    /// staged file is left as it was. Returns the body file's id, the
    /// message's offset in it, and whether it is the renamed staged file.
    /// Blocking.
    pub(crate) fn commit_staged(
        &self,
        staged: (&BlobId, &Path, &File),
        data_at: u64,
        header: &BlobHeader,
        prefix: &[u8],
    ) -> Result<(BlobId, u64, bool)> {
        use std::os::unix::fs::FileExt;
        let (id, tmp_path, file) = staged;
        let named = |id: &BlobId| {
            let header = BlobHeader { id: Some(id.0.clone()), ..header.clone() };
            serde_json::to_vec(&header).map_err(|e| StoreError::Invalid(e.to_string()))
        };
        let json = named(id)?;
        let fixed = (MAGIC.len() + 4) as u64;
        // Octets left for the header's JSON (and its padding) in front of the prefix.
        let header_len = usize::try_from(data_at.saturating_sub(fixed + prefix.len() as u64)).unwrap_or(usize::MAX);
        if header_len >= json.len() && header_len <= MAX_HEADER {
            let mut start = Vec::with_capacity(data_at as usize);
            start.extend_from_slice(MAGIC);
            start.extend_from_slice(&(header_len as u32).to_be_bytes());
            start.extend_from_slice(&json);
            start.resize(fixed as usize + header_len, b' ');
            start.extend_from_slice(prefix);
            file.write_all_at(&start, 0)?;
            file.sync_all()?;
            let final_path = self.path(id)?;
            fs::rename(tmp_path, &final_path)?;
            sync_dir(final_path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?)?;
            return Ok((id.clone(), fixed + header_len as u64, true));
        }
        let new = self.new_id();
        let json = named(&new)?;
        let final_path = self.path(&new)?;
        let dir = final_path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
        let out_path = dir.join(format!("{TMP_PREFIX}{}", new.0));
        let written = (|| -> Result<()> {
            let mut out = OpenOptions::new().write(true).create_new(true).open(&out_path)?;
            out.write_all(MAGIC)?;
            out.write_all(&(json.len() as u32).to_be_bytes())?;
            out.write_all(&json)?;
            out.write_all(prefix)?;
            let mut from = file.try_clone()?;
            from.seek(SeekFrom::Start(data_at))?;
            std::io::copy(&mut from, &mut out)?;
            out.sync_all()?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&out_path);
            return Err(e);
        }
        fs::rename(&out_path, &final_path)?;
        sync_dir(dir)?;
        Ok((new, fixed + json.len() as u64, false))
    }

    /// Undoes a [`BlobStore::commit_staged`] whose index entry failed: the
    /// renamed staged file goes back to its temp name (the caller may try
    /// again), a copy is removed. Blocking.
    pub(crate) fn uncommit_staged(&self, blob: &BlobId, tmp_path: &Path, renamed: bool) -> Result<()> {
        if renamed { Ok(fs::rename(self.path(blob)?, tmp_path)?) } else { self.delete(blob) }
    }

    /// Reads `len` message bytes starting at `offset`. Blocking.
    pub fn read(&self, id: &BlobId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(id)?;
        let _reading = self.spares.reading();
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(len.min(64 << 20) as usize);
        f.take(len).read_to_end(&mut buf)?;
        if buf.len() as u64 != len {
            return Err(StoreError::Corrupt(format!("blob {} is truncated", id.0)));
        }
        Ok(buf)
    }

    /// Parses a body file's header. Blocking.
    pub fn info(&self, id: &BlobId) -> Result<BlobInfo> {
        let path = self.path(id)?;
        let _reading = self.spares.reading();
        let mut f = File::open(&path)?;
        let total = f.metadata()?.len();
        let mut magic = [0u8; MAGIC.len()];
        f.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(StoreError::Corrupt(format!("{} is not a coimail body file", path.display())));
        }
        let mut len = [0u8; 4];
        f.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_HEADER {
            return Err(StoreError::Corrupt(format!("{}: header too large", path.display())));
        }
        let mut head = vec![0u8; len];
        f.read_exact(&mut head)?;
        let header: BlobHeader =
            serde_json::from_slice(&head).map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        let body_offset = (MAGIC.len() + 4 + len) as u64;
        Ok(BlobInfo { id: id.clone(), header, body_offset, body_len: total.saturating_sub(body_offset) })
    }

    /// Removes a body file no message refers to any more: a small one is
    /// kept as a spare for the next write (`spare.rs`). Blocking.
    pub fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.path(id)?;
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if self.spares.reserve(len) {
            let dir = path.parent().ok_or_else(|| StoreError::Corrupt("blob path".into()))?;
            let spare = dir.join(format!("{SPARE_PREFIX}{}", self.new_id().0));
            match fs::rename(&path, &spare) {
                Ok(()) => {
                    self.spares.retired(Spare { path: spare, len });
                    return Ok(());
                }
                Err(e) => {
                    self.spares.forget(len);
                    if e.kind() == std::io::ErrorKind::NotFound {
                        return Ok(());
                    }
                }
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn exists(&self, id: &BlobId) -> bool {
        self.path(id).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Every body file, in id (= arrival) order. Blocking.
    pub fn list(&self) -> Result<Vec<BlobId>> {
        let mut ids = Vec::new();
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            let name = shard.file_name();
            let Some(name) = name.to_str() else { continue };
            if name == "tmp" || !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                if let Some(id) =
                    entry?.file_name().to_str().filter(|n| !n.starts_with(TMP_PREFIX) && !n.starts_with(SPARE_PREFIX))
                {
                    ids.push(BlobId(id.to_owned()));
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes half-written files left by a crash: nothing refers to them.
    /// Spares left by the last run go too (not counted). Called at start,
    /// before any write could take a spare.
    pub fn clear_tmp(&self) -> Result<usize> {
        let mut n = 0;
        let legacy = self.root.join("tmp");
        if legacy.is_dir() {
            for entry in fs::read_dir(&legacy)? {
                fs::remove_file(entry?.path())?;
                n += 1;
            }
        }
        for shard in fs::read_dir(&self.root)? {
            let shard = shard?;
            if shard.file_name() == "tmp" || !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TMP_PREFIX) {
                    fs::remove_file(entry.path())?;
                    n += 1;
                } else if name.starts_with(SPARE_PREFIX) {
                    fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(n)
    }
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AccountId, Flags};

    #[test]
    fn body_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let header = BlobHeader {
            internal_date: 1_700_000_000,
            placements: vec![Placement {
                account: AccountId(7),
                address: "a@example.org".into(),
                mailbox: "INBOX".into(),
                flags: Flags::from_iter(["\\Seen"]),
            }],
            id: None,
            crc: None,
        };
        let (id, off) = blobs.write(&header, b"Subject: x\r\n\r\nhi\r\n").unwrap();
        assert_eq!(blobs.read(&id, off, 18).unwrap(), b"Subject: x\r\n\r\nhi\r\n");
        let info = blobs.info(&id).unwrap();
        assert_eq!(info.header, BlobHeader { id: Some(id.0.clone()), ..header }, "the header names its file");
        assert_eq!(info.body_len, 18);
        assert_eq!(blobs.list().unwrap(), vec![id.clone()]);
        assert!(blobs.read(&id, off, 19).is_err(), "short read must be an error");
        blobs.delete(&id).unwrap();
        assert!(blobs.list().unwrap().is_empty());
        // A write a crash interrupted: never listed, removed by clear_tmp.
        std::fs::write(dir.path().join("7f").join(format!("{TMP_PREFIX}0001")), b"half").unwrap();
        assert!(blobs.list().unwrap().is_empty());
        assert_eq!(blobs.clear_tmp().unwrap(), 1);
        assert!(std::fs::read_dir(dir.path().join("7f")).unwrap().next().is_none());
    }

    #[test]
    fn a_deleted_body_file_is_written_over_by_the_next_message() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let header = BlobHeader::new(1, vec![]);
        let long = vec![b'x'; 5000];
        let (old, _) = blobs.write(&header, &long).unwrap();
        let inode = fs::metadata(blobs.path(&old).unwrap()).unwrap().ino();
        blobs.delete(&old).unwrap();
        assert!(!blobs.exists(&old));
        assert!(blobs.list().unwrap().is_empty(), "a spare is not a body");

        let (new, off) = blobs.write(&header, b"Subject: y\r\n\r\nshort\r\n").unwrap();
        assert_eq!(fs::metadata(blobs.path(&new).unwrap()).unwrap().ino(), inode, "the spare was reused");
        assert_eq!(blobs.read(&new, off, 21).unwrap(), b"Subject: y\r\n\r\nshort\r\n");
        assert_eq!(blobs.info(&new).unwrap().body_len, 21, "the old, longer content was cut off");
        assert_eq!(blobs.list().unwrap(), vec![new.clone()]);

        // A spare that vanished (clear_tmp at a restart) is skipped: a new file is made.
        blobs.delete(&new).unwrap();
        assert_eq!(blobs.clear_tmp().unwrap(), 0, "spares are not counted as torn writes");
        let (third, off) = blobs.write(&header, b"z").unwrap();
        assert_eq!(blobs.read(&third, off, 1).unwrap(), b"z");
        assert_eq!(blobs.list().unwrap(), vec![third]);
    }

    #[test]
    fn ids_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        assert!(blobs.read(&BlobId("../../etc/passwd".into()), 0, 1).is_err());
    }
}
