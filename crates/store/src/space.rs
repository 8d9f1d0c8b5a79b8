//! The free-space reserve: new mail is refused while the data dir's
//! filesystem has less free space than the reserve, so the store's own
//! writes never fill the disk. What is kept free is what deletes need: a
//! flag change, EXPUNGE, DELETE or MOVE writes a journal frame and an index
//! change (sled is log-structured: even a removal appends), and an index
//! or journal that hits ENOSPC is how a full disk turned into `SERVERBUG`
//! answers and, after a kill, an index that would not open.
//!
//! Only calls that add data check it ([`Store::check_space`]): deliver,
//! APPEND, COPY and the outbound spool. Everything that frees space or
//! changes flags does not.
//!
//! `statvfs` is one system call, but SMTP asks at every RCPT and DATA: the
//! answer is cached for [`CACHE_FOR`]. Within that second a fast sender can
//! store hundreds of messages, so every body the store writes is charged to
//! the cached figure at once ([`Space::charge`]): the cache never lets our
//! own writes run past the reserve. A crossing of the line, either way,
//! is logged once (an error going down, an info coming back), not per command.

use crate::Store;
use crate::error::{Result, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one `statvfs` answer is trusted.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// How much free space to keep: the smaller of a share of the filesystem
/// and a fixed size. Either at 0 turns the reserve off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// Percent of the filesystem's size.
    pub percent: u8,
    /// At most this many bytes.
    pub max_bytes: u64,
}

impl Default for Reserve {
    /// 5% or 1 GiB, whichever is smaller.
    fn default() -> Self {
        Reserve { percent: 5, max_bytes: 1 << 30 }
    }
}

impl Reserve {
    /// The bytes to keep free on a filesystem of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        (total / 100).saturating_mul(u64::from(self.percent.min(100))).min(self.max_bytes)
    }
}

/// One measurement of the data dir's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceStatus {
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    pub total: u64,
    /// The reserve, in bytes, on this filesystem.
    pub reserve: u64,
}

impl SpaceStatus {
    /// True when new data must be refused.
    pub fn low(&self) -> bool {
        self.available < self.reserve
    }
}

/// The cached check (one per store).
pub(crate) struct Space {
    dir: PathBuf,
    reserve: Reserve,
    cached: Mutex<Option<(Instant, SpaceStatus)>>,
    /// The last answer, for the transition log and for the journal, which
    /// must not start a compaction (it writes a whole snapshot) when low.
    low: AtomicBool,
}

impl Space {
    pub(crate) fn new(dir: &Path, reserve: Reserve) -> Space {
        Space { dir: dir.to_owned(), reserve, cached: Mutex::new(None), low: AtomicBool::new(false) }
    }

    /// True when the last measurement was below the reserve.
    pub(crate) fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// The filesystem now, or as measured less than [`CACHE_FOR`] ago.
    pub(crate) fn status(&self) -> Result<SpaceStatus> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, status)) = *cached
            && at.elapsed() < CACHE_FOR
        {
            return Ok(status);
        }
        let (available, total) = statvfs(&self.dir)?;
        let status = SpaceStatus { available, total, reserve: self.reserve.bytes(total) };
        *cached = Some((Instant::now(), status));
        drop(cached);
        let low = status.low();
        if self.low.swap(low, Ordering::Relaxed) != low {
            if low {
                tracing::error!(
                    dir = %self.dir.display(),
                    available = status.available,
                    reserve = status.reserve,
                    "DISK NEARLY FULL: free space is below the reserve; new mail and APPEND are refused \
                     (452 4.3.1 / NO [OVERQUOTA]) until space is freed (deleting mail still works)"
                );
            } else {
                tracing::info!(
                    available = status.available,
                    reserve = status.reserve,
                    "free space is above the reserve again; taking new mail"
                );
            }
        }
        Ok(status)
    }

    /// Takes `bytes` just written (rounded up to whole pages, plus one for
    /// the file's own metadata) off the cached free space.
    pub(crate) fn charge(&self, bytes: u64) {
        const PAGE: u64 = 4096;
        let used = bytes.div_ceil(PAGE).saturating_add(1).saturating_mul(PAGE);
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, status)) = cached.as_mut() {
            status.available = status.available.saturating_sub(used);
        }
    }

    /// `Err(StoreError::DiskFull)` while free space is below the reserve,
    /// and only that: a filesystem that cannot be measured does not stop mail
    /// (the writes themselves will say ENOSPC if it comes to that).
    pub(crate) fn check(&self) -> Result<()> {
        if self.reserve.percent == 0 || self.reserve.max_bytes == 0 {
            return Ok(());
        }
        match self.status() {
            Ok(s) if s.low() => Err(StoreError::DiskFull),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "cannot measure free space; not enforcing the reserve");
                Ok(())
            }
        }
    }
}

/// (available bytes, total bytes) of the filesystem holding `dir`.
fn statvfs(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| StoreError::Invalid(format!("data dir {} contains a NUL byte", dir.display())))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a valid, writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let frsize = st.f_frsize as u64;
    // `f_bavail`, not `f_bfree`: what is left for non-root, so a daemon run as
    // root does not count the filesystem's own root reserve as free.
    Ok(((st.f_bavail as u64).saturating_mul(frsize), (st.f_blocks as u64).saturating_mul(frsize)))
}

impl Store {
    /// `Err(StoreError::DiskFull)` while the data dir's free space is below
    /// the reserve ([`crate::StoreOptions::reserve`]); cheap (cached for a
    /// second). Store calls that add data check it themselves; protocol
    /// crates call it to refuse early (SMTP RCPT and DATA).
    pub fn check_space(&self) -> Result<()> {
        self.inner.space.check()
    }

    /// The data dir's filesystem as last measured (at most a second old).
    pub fn space(&self) -> Result<SpaceStatus> {
        self.inner.space.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_the_smaller_of_share_and_cap() {
        let r = Reserve::default();
        assert_eq!(r.bytes(12 << 20), (12 << 20) / 100 * 5);
        assert_eq!(r.bytes(1 << 40), 1 << 30);
        assert_eq!(Reserve { percent: 0, max_bytes: 1 << 30 }.bytes(1 << 40), 0);
    }

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let all = Space::new(dir.path(), Reserve { percent: 100, max_bytes: u64::MAX });
        assert!(matches!(all.check(), Err(StoreError::DiskFull)));
        assert!(all.is_low());
        let none = Space::new(dir.path(), Reserve { percent: 0, max_bytes: u64::MAX });
        none.check().unwrap();
        // Writes are charged to the cached figure until the next measurement.
        let half = Space::new(dir.path(), Reserve { percent: 0, max_bytes: 1 });
        let before = half.status().unwrap().available;
        half.charge(10_000);
        assert_eq!(half.status().unwrap().available, before.saturating_sub(4 * 4096));
        let status = all.status().unwrap();
        assert!(status.total > 0 && status.reserve >= status.available);
    }
}
