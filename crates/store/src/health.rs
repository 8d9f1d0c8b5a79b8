//! The health probe: can the store take new mail right now?
//!
//! It goes through each thing a delivery needs, cheapest first: free space
//! above the reserve (`space.rs`), a file written and fsync'd where bodies
//! are written, and an index write made durable by a real commit (the same
//! group commit and journal fsync every acknowledged write waits for). A
//! probe that passes means a delivery made now would not fail for the disk;
//! one that fails names why. The index write goes to a tree of its own, one
//! key overwritten each time, so probing never grows the index or touches
//! mail (the journal, which only follows the `mail` tree, has nothing to add).

use crate::Store;
use crate::error::Result;
use crate::kv::Batch;

/// The tree the probe writes to; nothing reads it.
const HEALTH_TREE: &str = "health";

impl Store {
    /// `Ok` when a write made now would be durable: [`Store::check_space`]
    /// (so `StoreError::DiskFull` while below the reserve, and then nothing is
    /// written: the reserve is kept for deletes), a body-directory file
    /// written and fsync'd, and an index write committed.
    pub async fn probe(&self) -> Result<()> {
        self.check_space()?;
        self.blocking(|blobs| blobs.probe()).await?;
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut batch = Batch::default();
        batch.insert(b"probe".to_vec(), stamp.to_be_bytes().to_vec());
        self.inner.kv.tree(HEALTH_TREE)?.apply(batch)?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use crate::{Reserve, Store, StoreError, StoreOptions};

    #[tokio::test]
    async fn probe_passes_and_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let before = store.inner.blobs.list().unwrap();
        store.probe().await.unwrap();
        store.probe().await.unwrap();
        assert_eq!(store.inner.blobs.list().unwrap(), before);
        assert_eq!(store.inner.blobs.clear_tmp().unwrap(), 0, "the probe file was removed");
    }

    #[tokio::test]
    async fn probe_fails_below_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { cache_bytes: 16 << 20, reserve: Reserve { percent: 100, max_bytes: u64::MAX } };
        let store = Store::open(dir.path(), &options).unwrap();
        assert!(matches!(store.probe().await, Err(StoreError::DiskFull)));
    }

    #[tokio::test]
    async fn probe_fails_when_bodies_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        // The shards are made at open; without them no body (and no probe) can be written.
        std::fs::rename(dir.path().join("blobs"), dir.path().join("blobs.gone")).unwrap();
        let err = store.probe().await.unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
    }
}
