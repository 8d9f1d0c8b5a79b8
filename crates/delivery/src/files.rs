//! Replacing a small file whole: temp file (mode 0600), fsync, rename,
//! fsync the directory, so a crash leaves the old file or the whole new
//! one. Used for DKIM keys and state and MTA-STS policies; TLS report
//! records, rewritten after every SMTP session, skip the fsyncs
//! ([`replace`]): losing the last counts to a power cut costs less than a
//! disk flush per session.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temp files of writers in this process (two attempts may
/// write the same domain's file at once).
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write(path, data, true)
}

/// Temp file and rename without fsync: readers see the old or the new
/// file, but a power cut may lose the new one.
pub(crate) fn replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write(path, data, false)
}

fn write(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}.{}", std::process::id(), TMP_SEQ.fetch_add(1, Ordering::Relaxed)));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(data)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
