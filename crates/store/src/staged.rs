//! Staged bodies: a large message written to disk as it arrives, so a
//! protocol session holds a bounded amount of it in memory, and stored by
//! renaming that file into place instead of writing the message again.
//!
//! A session keeps the start of the message in memory (its header section,
//! which checks read and edit: trace fields, `Authentication-Results`,
//! `Date`) and appends the rest here with [`StagedBody::append`]. The file
//! starts with a gap of `prefix_room` plus [`HEADROOM`] octets; storing it
//! ([`Store::deliver_staged`]) writes the body file header and the (edited)
//! prefix into that gap, fsyncs and renames (`blob.rs`,
//! `BlobStore::commit_staged`), so the durability contract of `blob.rs`
//! holds unchanged: fsync → rename → fsync directory → index.
//!
//! Cleanup: the file is a `.tmp-` file in a blob shard until it is stored.
//! Dropping a [`StagedBody`] that was not stored removes it (an aborted
//! transfer, RSET, a disconnect); after a crash `BlobStore::clear_tmp`
//! removes it at startup.

use crate::blob::BlobStore;
use crate::message::targets;
use crate::{BlobId, Placement, Result, Store, StoreError, Stored};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Room left in front of the staged octets for the body file header and
/// what the prefix grows by before it is stored (an
/// `Authentication-Results` field, `Date`, `Message-ID`). A header that does
/// not fit costs one in-kernel copy, not correctness.
pub const HEADROOM: usize = 16 * 1024;

/// Octets of a message staged in a temp file (see the module doc).
pub struct StagedBody {
    store: Store,
    id: BlobId,
    path: PathBuf,
    file: Arc<File>,
    /// Where the staged octets start in the file.
    data_at: u64,
    len: u64,
    /// The file is a body file now (or gone): nothing to remove on drop.
    stored: bool,
}

impl std::fmt::Debug for StagedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBody").field("path", &self.path).field("len", &self.len).finish()
    }
}

impl Store {
    /// Starts a staged body whose message will have at most about
    /// `prefix_room` octets in front of the staged ones when it is stored.
    pub async fn stage(&self, prefix_room: usize) -> Result<StagedBody> {
        self.check_space()?;
        let (id, path, file) = self.blocking(|b: &BlobStore| b.stage()).await?;
        Ok(StagedBody {
            store: self.clone(),
            id,
            path,
            file: Arc::new(file),
            data_at: prefix_room.saturating_add(HEADROOM) as u64,
            len: 0,
            stored: false,
        })
    }

    /// [`Store::deliver`] of the message `prefix` followed by `staged`'s
    /// octets. On success the staged file has become the body file; on an
    /// error it is unchanged and the call may be repeated (SMTP retries with
    /// fewer placements when some are over quota).
    pub async fn deliver_staged(
        &self,
        prefix: &[u8],
        staged: &mut StagedBody,
        internal_date: i64,
        placements: Vec<Placement>,
    ) -> Result<Vec<Stored>> {
        if staged.stored {
            return Err(StoreError::Invalid("staged body already stored".into()));
        }
        self.check_space()?;
        let (targets, header) = targets(placements, internal_date)?;
        let size = prefix.len() as u64 + staged.len;
        let (id, path, file, data_at) = (staged.id.clone(), staged.path.clone(), staged.file.clone(), staged.data_at);
        let head = prefix.to_vec();
        let (blob, offset, renamed) =
            self.blocking(move |b| b.commit_staged((&id, &path, &file), data_at, &header, &head)).await?;
        // Only the octets written here are new: the staged ones were charged as they came.
        self.inner.space.charge(prefix.len() as u64);
        let applied = match self.index_locked(&blob, offset, size, internal_date, &targets, false) {
            Ok(a) => a,
            Err(e) => {
                // Nothing refers to the file: back to staged, so reconcile does not deliver it later.
                let path = staged.path.clone();
                let undo = self.blocking(move |b| b.uncommit_staged(&blob, &path, renamed)).await;
                if let Err(u) = undo {
                    tracing::error!(error = %u, "a stored staged body could not be taken back");
                    staged.stored = true;
                }
                return Err(e);
            }
        };
        if renamed {
            staged.stored = true;
        }
        let stored = applied.stored.clone();
        self.finish(applied).await?;
        Ok(stored)
    }
}

impl StagedBody {
    /// Octets staged so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes` to the file and empties it (its capacity is kept, so
    /// a caller reuses one buffer). Not durable until stored.
    pub async fn append(&mut self, bytes: &mut Vec<u8>) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.store.check_space()?;
        let (file, at, data) = (self.file.clone(), self.data_at + self.len, std::mem::take(bytes));
        let mut data = self
            .store
            .blocking(move |_| {
                file.write_all_at(&data, at)?;
                Ok(data)
            })
            .await?;
        self.len += data.len() as u64;
        self.store.inner.space.charge(data.len() as u64);
        data.clear();
        *bytes = data;
        Ok(())
    }

    /// Appends every staged octet to `out` (for checks that need the whole
    /// message, such as DKIM's body hash). Reads the file once.
    pub async fn read_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let len = usize::try_from(self.len).map_err(|_| StoreError::Invalid("staged body too large".into()))?;
        let (file, at, mut buf) = (self.file.clone(), self.data_at, std::mem::take(out));
        let start = buf.len();
        buf.resize(start + len, 0);
        let buf = self
            .store
            .blocking(move |_| {
                file.read_exact_at(&mut buf[start..], at)?;
                Ok(buf)
            })
            .await?;
        *out = buf;
        Ok(())
    }
}

impl Drop for StagedBody {
    fn drop(&mut self) {
        if !self.stored {
            // An unlink, not worth a blocking thread; a failure is mended by clear_tmp at the next start.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, Flags};

    fn placement(mailbox: &str) -> Placement {
        Placement { account: AccountId(1), address: "a@x.org".into(), mailbox: mailbox.into(), flags: Flags::new() }
    }

    fn tmp_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .filter_map(|shard| std::fs::read_dir(shard.unwrap().path()).ok())
            .flatten()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".tmp-"))
            .count()
    }

    async fn stored_bytes(store: &Store, stored: &Stored) -> Vec<u8> {
        let metas = store.messages(stored.account, stored.mailbox).unwrap();
        let meta = metas.iter().find(|m| m.uid == stored.uid).unwrap();
        store.read_message(meta).await.unwrap()
    }

    #[tokio::test]
    async fn a_staged_body_is_stored_byte_identical_by_rename_or_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        store.create_account(AccountId(1), "a@x.org").await.unwrap();
        let rest: Vec<u8> = (0..300_000u32).map(|i| b"abcdefgh\r\n"[(i % 10) as usize]).collect();
        // A prefix within the room: the rename path; one larger than room and headroom: the copy path.
        for (room, prefix_len) in [(1024, 1000), (0, HEADROOM + 10)] {
            let mut prefix = format!("X-Pad: {}\r\n\r\n", "p".repeat(prefix_len - 11)).into_bytes();
            prefix.truncate(prefix_len);
            let mut want = prefix.clone();
            want.extend_from_slice(&rest);
            let mut staged = store.stage(room).await.unwrap();
            for chunk in rest.chunks(70_001) {
                let mut buf = chunk.to_vec();
                staged.append(&mut buf).await.unwrap();
                assert!(buf.is_empty());
            }
            assert_eq!(staged.len(), rest.len() as u64);
            let mut whole = prefix.clone();
            staged.read_into(&mut whole).await.unwrap();
            assert_eq!(whole, want);
            let stored = store.deliver_staged(&prefix, &mut staged, 1_700_000_000, vec![placement("INBOX")]).await;
            let stored = stored.unwrap();
            drop(staged);
            assert_eq!(stored_bytes(&store, &stored[0]).await, want, "room {room}");
            assert_eq!(tmp_files(dir.path()), 0, "room {room}: the staged file is gone or stored");
        }
    }

    #[tokio::test]
    async fn a_failed_store_keeps_the_staged_body_and_a_drop_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        store.create_account(AccountId(1), "a@x.org").await.unwrap();
        let mut staged = store.stage(100).await.unwrap();
        let mut buf = vec![b'x'; 10_000];
        staged.append(&mut buf).await.unwrap();
        assert_eq!(tmp_files(dir.path()), 1);
        let e = store.deliver_staged(b"S: 1\r\n\r\n", &mut staged, 0, vec![placement("Nowhere")]).await;
        assert!(matches!(e, Err(StoreError::NotFound(_))), "{e:?}");
        assert_eq!(tmp_files(dir.path()), 1, "still staged after the failure");
        let stored = store.deliver_staged(b"S: 1\r\n\r\n", &mut staged, 0, vec![placement("INBOX")]).await.unwrap();
        assert_eq!(stored_bytes(&store, &stored[0]).await.len(), 8 + 10_000);
        assert_eq!(tmp_files(dir.path()), 0);

        let mut aborted = store.stage(100).await.unwrap();
        let mut buf = vec![b'y'; 1000];
        aborted.append(&mut buf).await.unwrap();
        assert_eq!(tmp_files(dir.path()), 1);
        drop(aborted);
        assert_eq!(tmp_files(dir.path()), 0, "an abandoned staged body leaves no file");
    }
}
