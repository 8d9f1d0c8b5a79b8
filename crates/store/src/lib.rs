//! coimail-store: the mailbox store every protocol shares.
//!
//! It owns all durable mail data — accounts' mailboxes, messages, flags and
//! keywords, UIDs and modseqs, subscriptions, METADATA entries, the expunge
//! log and quota usage — and the change bus that tells sessions about it.
//! Protocol crates see only the [`Store`] façade; the engine sits behind
//! [`kv`] (sled today) and message bodies are files ([`blob`]).
//!
//! # Guarantees
//! - A call that stores data returns `Ok` only once the data is durable: the
//!   body file is fsync'd and renamed, its directory fsync'd, and the index
//!   committed and flushed. Concurrent callers share flushes (group commit).
//!   A large message may arrive as a staged body (`staged.rs`), written to
//!   a temp file as it comes and renamed into place by the same rules.
//! - UIDs in a mailbox are allocated under one lock and are strictly
//!   increasing; a UID becomes visible to readers only once it is durable, so
//!   no client ever sees a UID that a crash could take back and reuse.
//! - Changes are published on the bus after they are durable, per account in
//!   commit order.
//! - A change touching several records (MOVE, MULTIAPPEND, RENAME, flags of
//!   many messages) is ONE batch under the write lock: all of it or none.
//!   COPY and MOVE share the body file (reference counted); no bytes move.
//! - Every batch that places, re-flags or removes a message, or creates,
//!   renames or deletes a mailbox, is first written to the placement journal
//!   as one frame, and fsync'd (group commit) alongside the index flush. So
//!   `coimail store rebuild` reproduces acknowledged changes (`journal.rs`).
//!
//! # Layout on disk
//! `<data>/index/` (sled), `<data>/blobs/<shard>/<id>` (bodies),
//! `<data>/journal/` (the placement journal: where every message is, kept
//! apart from the index so a rebuild from files reproduces copies, moves,
//! renames, flags and expunges; see `journal.rs`),
//! `<data>/clean-shutdown` (present only after an orderly close; without it
//! startup reconciles body files against the index).
//!
//! # Self-healing open
//! An index that sled cannot open, or that fails the startup check (every
//! page read after an unclean stop, every mailbox record decoded), is moved
//! aside to `<data>/index.broken-<unix time>` and a new one is built: the
//! caller (the daemon's `open_data`) restores users from the directory
//! snapshot and reconcile re-indexes every body file with the journal's
//! placements, exactly as `coimail store rebuild` does. Only damage heals
//! this way: I/O errors (a full disk, permissions, the lock of a running
//! daemon) are returned as they are.

mod append;
pub mod blob;
mod body_sync;
pub mod changes;
mod copy;
pub mod error;
mod expiry;
mod group_commit;
mod health;
mod index;
mod journal;
mod keys;
pub mod kv;
mod listing;
mod mailbox;
mod message;
mod metadata;
pub mod names;
mod publish;
mod quota;
mod recent;
mod reconcile;
mod records;
mod rename;
mod retention;
mod snapshot;
mod space;
mod spare;
pub mod spool;
mod staged;
mod subscriptions;
pub mod types;
mod upgrade;

pub use append::AppendRequest;
pub use changes::ChangeReceiver;
pub use error::{Result, StoreError};
pub use expiry::ExpiryRule;
pub use message::{FlagOp, FlagsUpdate, NewMessage};
pub use metadata::{MetadataLimits, MetadataScope};
pub use publish::ChangeMark;
pub use quota::QuotaLimits;
pub use reconcile::ReconcileReport;
pub use records::Usage;
pub use retention::ViewPin;
pub use snapshot::MailboxSnapshot;
pub use space::{Reserve, SpaceStatus};
pub use staged::StagedBody;
pub use types::*;

use blob::BlobStore;
use changes::ChangeBus;
use journal::{Journal, JournaledTree};
use kv::Kv;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Mailboxes every new account gets (RFC 6154 special-use), besides INBOX.
pub const DEFAULT_MAILBOXES: [(&str, SpecialUse); 5] = [
    ("Drafts", SpecialUse::Drafts),
    ("Sent", SpecialUse::Sent),
    ("Trash", SpecialUse::Trash),
    ("Junk", SpecialUse::Junk),
    ("Archive", SpecialUse::Archive),
];

const CLEAN_MARKER: &str = "clean-shutdown";

/// Tuning knobs; everything else is fixed by the on-disk format.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Free space to keep on the data dir's filesystem (`space.rs`).
    pub reserve: Reserve,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_bytes: 128 << 20, reserve: Reserve::default() }
    }
}

/// The store handle. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    kv: Kv,
    /// Makes the journal and the index durable for every writer waiting
    /// (`group_commit.rs`, [`Store::flush`]).
    commit: Arc<group_commit::GroupCommit>,
    /// The `mail` tree; every write is journaled first (`journal.rs`).
    mail: JournaledTree,
    blobs: Arc<BlobStore>,
    bus: ChangeBus,
    /// Message changes are published in the order they were committed (`publish.rs`).
    order: publish::CommitOrder,
    /// Expunged messages sessions may still show, and their body files (`retention.rs`).
    retention: retention::Retention,
    /// Which messages are still `\Recent` (`recent.rs`).
    recent: recent::RecentClaims,
    /// Serialises read-modify-write of index records (UID and modseq
    /// allocation). Held only around in-memory engine calls, never across I/O waits.
    write_lock: Mutex<()>,
    /// Per mailbox, the UID below which every message is durable. Absent
    /// means "everything in the index", which holds until a write is in flight.
    visible: Mutex<HashMap<MailboxId, Uid>>,
    data_dir: PathBuf,
    unclean_start: AtomicBool,
    /// The free-space reserve check (`space.rs`).
    space: Arc<space::Space>,
    /// Where a damaged index was moved when this open replaced it.
    healed: OnceLock<PathBuf>,
}

impl Store {
    /// Opens the store in `data_dir` (created if missing). Blocking.
    ///
    /// Call [`Store::reconcile`] before serving: after an unclean stop it
    /// re-checks body files against the index.
    ///
    /// A damaged index is moved aside and replaced by an empty one (see
    /// "Self-healing open" above; [`Store::healed_from`] says where it went).
    pub fn open(data_dir: &Path, options: &StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        let kv = match open_index(data_dir, options.cache_bytes) {
            Ok(kv) => kv,
            Err(damage) if is_damage(&damage) => {
                let aside = set_index_aside(data_dir, "broken")?.unwrap_or_else(|| data_dir.join("index"));
                tracing::error!(
                    error = %damage,
                    moved_to = %aside.display(),
                    "THE INDEX IS DAMAGED: moved it aside; building a new one from the body files and the journal"
                );
                let kv = open_index(data_dir, options.cache_bytes).map_err(|e| {
                    StoreError::Engine(format!(
                        "the index was damaged ({damage}) and was moved to {}, but a new one cannot be created \
                         ({e}); fix that (free space? permissions?), then run `coimail store rebuild`",
                        aside.display()
                    ))
                })?;
                let store = Store::with_kv(kv, data_dir, options.reserve)?;
                let _ = store.inner.healed.set(aside);
                return Ok(store);
            }
            Err(e) => return Err(e),
        };
        Store::with_kv(kv, data_dir, options.reserve)
    }

    /// A store on an in-memory index with body files under `data_dir`, for tests.
    pub fn open_memory(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)?;
        Store::with_kv(Kv::memory(), data_dir, Reserve::default())
    }

    /// Where a damaged index was moved when [`Store::open`] replaced it with
    /// a new, empty one; `None` when the index opened normally. The caller
    /// must then restore what lives only in the index (users) and reconcile.
    pub fn healed_from(&self) -> Option<&Path> {
        self.inner.healed.get().map(PathBuf::as_path)
    }

    fn with_kv(kv: Kv, data_dir: &Path, reserve: Reserve) -> Result<Store> {
        let tree = kv.tree("mail")?;
        let blobs = Arc::new(BlobStore::open(&data_dir.join("blobs"))?);
        let opened = Journal::open(&data_dir.join("journal"), &tree, &data_dir.join("blobs"))?;
        opened.journal.set_bodies(blobs.clone());
        body_sync::spawn_checkpoints(Arc::downgrade(&blobs));
        if opened.new_epoch {
            // The epoch must be durable before anything journaled under it.
            kv.flush_blocking()?;
        }
        if opened.without_history && !tree.scan_prefix(&[keys::ACCOUNT])?.is_empty() {
            // An index the journal never saw: its placements become the first snapshot.
            opened.journal.compact_from_index(&tree)?;
        }
        let space = Arc::new(space::Space::new(data_dir, reserve));
        opened.journal.set_space(space.clone());
        let commit = {
            let (journal, index) = (opened.journal.clone(), kv.clone());
            group_commit::GroupCommit::new(Box::new(move || {
                // One thread, both waits overlapping: the journal's pages are
                // on their way while the index's are written (one wake-up and
                // one hand-back per commit instead of one per file). The
                // order is part of durability: sled's flush only waits for
                // its writes to reach the device (`sync_file_range`), and the
                // journal's `fdatasync` after it flushes the device's cache
                // for both, so the two must not run side by side.
                journal.start_writeback();
                let index = index.flush_blocking();
                let journal = journal.sync_blocking();
                index.and(journal)
            }))
        };
        let mail = JournaledTree::new(tree, opened.journal);
        let marker = data_dir.join(CLEAN_MARKER);
        let marked = marker.exists();
        if marked {
            // From now on a crash must be noticed at the next start.
            std::fs::remove_file(&marker)?;
            blob::sync_dir(data_dir)?;
        }
        // Another index's journal is still there: reconcile must carry it over.
        let clean = marked && !opened.older_epochs;
        let store = Store {
            inner: Arc::new(Inner {
                kv,
                commit,
                mail,
                blobs,
                bus: ChangeBus::default(),
                order: publish::CommitOrder::default(),
                retention: retention::Retention::default(),
                recent: recent::RecentClaims::default(),
                write_lock: Mutex::new(()),
                visible: Mutex::new(HashMap::new()),
                data_dir: data_dir.to_owned(),
                unclean_start: AtomicBool::new(!clean),
                space,
                healed: OnceLock::new(),
            }),
        };
        store.upgrade_index()?;
        Ok(store)
    }

    /// The engine, for the directory's own trees in the same database.
    pub fn kv(&self) -> &Kv {
        &self.inner.kv
    }

    /// True when the last run did not close the store in order.
    pub fn was_unclean(&self) -> bool {
        self.inner.unclean_start.load(Ordering::Relaxed)
    }

    /// Subscribes to the account's changes.
    pub fn subscribe(&self, account: AccountId) -> ChangeReceiver {
        self.inner.bus.subscribe(account)
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<()> {
        // The placement journal's fsync and the index flush are one group
        // commit: its frames were written before the index changes they
        // describe (`journal.rs`), and a caller acknowledges only after both.
        let started = std::time::Instant::now();
        self.inner.commit.flush().await?;
        metrics::histogram!("coimail_store_commit_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Flushes and marks the store as cleanly closed, so the next start can
    /// skip reconciliation. Call once, after the last write.
    pub async fn close(&self) -> Result<()> {
        self.flush().await?;
        // A clean start checks no body file: every one must be durable.
        self.blocking(|b| b.sync_unsynced(std::time::Instant::now())).await?;
        // Files kept for sessions that are gone now; the next start is clean
        // and will not look for them.
        let kept = self.inner.retention.take_all();
        self.blocking(move |b| kept.iter().try_for_each(|id| b.delete(id))).await?;
        let marker = self.inner.data_dir.join(CLEAN_MARKER);
        std::fs::write(&marker, b"")?;
        blob::sync_dir(&self.inner.data_dir)?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn visible(&self) -> MutexGuard<'_, HashMap<MailboxId, Uid>> {
        self.inner.visible.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs blocking file I/O off the async workers.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&BlobStore) -> Result<T> + Send + 'static) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this.inner.blobs))
            .await
            .map_err(|e| StoreError::Engine(format!("blocking task failed: {e}")))?
    }
}

/// Opens the sled index of `data_dir` and checks it: every mailbox record
/// decodes, and after an unclean stop (the only time pages can be torn)
/// every page reads. A panic inside sled on a damaged file counts as damage.
fn open_index(data_dir: &Path, cache_bytes: u64) -> Result<Kv> {
    let unclean = !data_dir.join(CLEAN_MARKER).exists();
    let dir = data_dir.join("index");
    std::panic::catch_unwind(move || {
        let kv = Kv::open_sled(&dir, cache_bytes)?;
        let mail = kv.tree("mail")?;
        for (_, v) in mail.scan_prefix(&[keys::MAILBOX_BY_ID])? {
            records::decode::<records::MailboxRecord>("mailbox", &v)?;
        }
        if unclean {
            let pairs = kv.verify()?;
            tracing::debug!(pairs, "index pages checked after an unclean stop");
        }
        Ok(kv)
    })
    .unwrap_or_else(|panic| {
        let why =
            panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned());
        Err(StoreError::Corrupt(format!("the storage engine panicked opening the index: {}", why.unwrap_or_default())))
    })
}

/// Damage to the index's files, as opposed to a condition of the machine
/// (no space, no permission, another process holding the lock).
fn is_damage(e: &StoreError) -> bool {
    match e {
        StoreError::Engine(_) | StoreError::Corrupt(_) => true,
        StoreError::Io(io) => matches!(io.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData),
        _ => false,
    }
}

/// Renames `<data>/index` to `<data>/index.<label>-<unix time>` (the data
/// dir fsync'd), so a new index can be built while the old one is kept for
/// inspection. `None` when there is no index. Used by the self-healing open
/// and by `coimail store rebuild`.
pub fn set_index_aside(data_dir: &Path, label: &str) -> Result<Option<PathBuf>> {
    let index = data_dir.join("index");
    if !index.exists() {
        return Ok(None);
    }
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut aside = data_dir.join(format!("index.{label}-{secs}"));
    let mut n = 1;
    while aside.exists() {
        aside = data_dir.join(format!("index.{label}-{secs}.{n}"));
        n += 1;
    }
    std::fs::rename(&index, &aside)?;
    blob::sync_dir(data_dir)?;
    Ok(Some(aside))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_body_sync;
#[cfg(test)]
mod tests_journal;
#[cfg(test)]
mod tests_retention;
#[cfg(test)]
mod tests_select;
#[cfg(test)]
mod tests_subscriptions;
