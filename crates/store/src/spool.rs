//! The outbound queue's durable records (the spool).
//!
//! One entry per accepted message with remote recipients: the envelope
//! (reverse path, the DSN parameters RET and ENVID, and per recipient NOTIFY
//! and ORCPT), each recipient's state and the attempt history. Entries live
//! in the `mail` tree under [`keys::SPOOL`]; the message is ONE file
//! `<data>/spool/<id>` shared by all its recipients. Spool files are not
//! mailbox body files: reconciliation never touches them.
//!
//! Invariants:
//! - [`Store::spool_enqueue`] writes the file (temp → fsync → rename → fsync
//!   directory), then commits the entry and flushes; only then may SMTP
//!   reply 250.
//! - Every recipient state change ([`Store::spool_record`],
//!   [`Store::spool_mark_notified`]) is flushed before the call returns, so
//!   after a restart no recipient whose delivery was recorded is sent again.
//! - Leases (`lease_until`) keep two runners from sending one entry at
//!   once. They are not flushed: one process owns the database, so at
//!   startup [`Store::spool_recover`] clears them all and removes files
//!   left by enqueues that never committed.
//!
//! - The due-time index ([`keys::SPOOL_DUE`]: `o <due> <id>`) holds one key
//!   per entry with work left, at [`SpoolEntry::due_at`], written in the
//!   same batch as the entry. Finding due work reads the index up to `now`
//!   and only those entries: O(due), not O(queue). [`Store::spool_recover`]
//!   rebuilds it from the entries at startup (databases from before it
//!   existed, and the unflushed lease moves of a crashed process).

use crate::blob::sync_dir;
use crate::keys;
use crate::kv::Batch;
use crate::records::{decode, encode};
use crate::{Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Attempts kept in an entry's history; older ones are dropped.
const MAX_HISTORY: usize = 100;

/// DSN `RET` (RFC 3461 §4.3): what a bounce returns of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DsnRet {
    Full,
    Headers,
}

/// DSN `NOTIFY` (RFC 3461 §4.1). All false is `NOTIFY=NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DsnNotify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientState {
    /// Not yet delivered; will be tried again.
    Pending,
    /// A remote server accepted it.
    Delivered,
    /// Refused permanently, or expired.
    Failed,
}

/// What one attempt did for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Delivered,
    /// Temporary failure: try again later.
    Deferred,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolRecipient {
    /// The forward path as accepted.
    pub address: String,
    /// DSN `ORCPT` address (type rfc822), decoded.
    pub orcpt: Option<String>,
    /// DSN `NOTIFY`; `None` when the client gave none.
    pub notify: Option<DsnNotify>,
    pub state: RecipientState,
    /// The last reply (or error) seen for this recipient.
    pub last_reply: Option<String>,
    /// The host that gave it.
    pub remote_host: Option<String>,
    /// The DSN for its final state has been delivered (or none was wanted).
    pub notified: bool,
    /// The server that took it offered DSN and got our NOTIFY/ORCPT: DSNs
    /// are its business from there (RFC 3461 §5), not ours.
    #[serde(default)]
    pub dsn_passed: bool,
    /// Its one "delayed" DSN has been delivered (RFC 3464 `Action: delayed`);
    /// kept durably so a restart does not send another.
    #[serde(default)]
    pub delay_notified: bool,
}

impl SpoolRecipient {
    pub fn new(address: impl Into<String>, orcpt: Option<String>, notify: Option<DsnNotify>) -> SpoolRecipient {
        SpoolRecipient {
            address: address.into(),
            orcpt,
            notify,
            state: RecipientState::Pending,
            last_reply: None,
            remote_host: None,
            notified: false,
            dsn_passed: false,
            delay_notified: false,
        }
    }
}

/// One line of an entry's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolAttempt {
    pub at: i64,
    pub address: String,
    pub host: Option<String>,
    pub outcome: AttemptOutcome,
    pub reply: String,
}

/// What is enqueued: the envelope of the accepted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEnvelope {
    /// Reverse path; empty for the null sender.
    pub sender: String,
    /// DSN `ENVID`, decoded.
    pub env_id: Option<String>,
    pub ret: Option<DsnRet>,
    pub recipients: Vec<SpoolRecipient>,
}

/// A queued message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolEntry {
    pub id: u64,
    pub sender: String,
    pub env_id: Option<String>,
    pub ret: Option<DsnRet>,
    /// When it was accepted (Unix seconds); expiry counts from here.
    pub queued_at: i64,
    pub size: u64,
    pub recipients: Vec<SpoolRecipient>,
    /// Delivery attempts so far.
    pub attempts: u32,
    pub next_attempt: i64,
    /// A runner holds the entry until then (0: nobody).
    pub lease_until: i64,
    pub history: Vec<SpoolAttempt>,
}

impl SpoolEntry {
    /// True while some recipient is pending or waits for its DSN.
    pub fn has_work(&self) -> bool {
        self.recipients.iter().any(|r| r.state == RecipientState::Pending || !r.notified)
    }

    /// When a runner may take it next.
    pub fn due_at(&self) -> i64 {
        self.next_attempt.max(self.lease_until)
    }
}

/// The result of an attempt for one recipient, for [`Store::spool_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolResult {
    pub address: String,
    pub host: Option<String>,
    pub outcome: AttemptOutcome,
    pub reply: String,
    /// The server offered DSN, so it got the recipient's NOTIFY/ORCPT.
    pub dsn_passed: bool,
}

/// What [`Store::spool_recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolRecovery {
    pub leases_released: usize,
    pub orphan_files_removed: usize,
}

fn file_name(id: u64) -> String {
    format!("{id:020}")
}

/// The entry's due-index key; `None` when it has nothing left to do.
fn due_key(entry: &SpoolEntry) -> Option<Vec<u8>> {
    entry.has_work().then(|| keys::spool_due(entry.due_at(), entry.id))
}

/// Writes `entry` and moves its due-index key from where `old` had it.
fn put(batch: &mut Batch, old: Option<&SpoolEntry>, entry: &SpoolEntry) -> Result<()> {
    let (was, is) = (old.and_then(due_key), due_key(entry));
    if was != is {
        if let Some(k) = was {
            batch.remove(k);
        }
        if let Some(k) = is {
            batch.insert(k, Vec::new());
        }
    }
    batch.insert(keys::spool(entry.id), encode(entry)?);
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Index keys and entries the due-work lookups touched on this thread:
    /// how the tests show they are O(due), not O(queue).
    static TOUCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn touched(n: usize) {
    #[cfg(test)]
    TOUCHED.with(|t| t.set(t.get() + n));
    #[cfg(not(test))]
    let _ = n;
}

impl Store {
    fn spool_dir(&self) -> PathBuf {
        self.inner.data_dir.join("spool")
    }

    /// Queues `message` for the envelope's recipients. Returns once the
    /// message file and the entry are durable.
    pub async fn spool_enqueue(&self, envelope: SpoolEnvelope, message: &[u8], now: i64) -> Result<SpoolEntry> {
        if envelope.recipients.is_empty() {
            return Err(StoreError::Invalid("no recipients".into()));
        }
        // The queue stops taking new mail below the reserve; its retries
        // and removals of what is queued go on.
        self.check_space()?;
        let id = self.inner.mail.increment(&keys::counter("spool"))?;
        let dir = self.spool_dir();
        let body = message.to_vec();
        self.blocking(move |_| write_file(&dir, id, &body)).await?;
        self.inner.space.charge(message.len() as u64);
        let entry = SpoolEntry {
            id,
            sender: envelope.sender,
            env_id: envelope.env_id,
            ret: envelope.ret,
            queued_at: now,
            size: message.len() as u64,
            recipients: envelope.recipients,
            attempts: 0,
            next_attempt: now,
            lease_until: 0,
            history: Vec::new(),
        };
        let mut batch = Batch::default();
        put(&mut batch, None, &entry)?;
        self.inner.mail.apply(batch)?;
        self.flush().await?;
        Ok(entry)
    }

    /// Every queued entry, oldest first.
    pub fn spool_list(&self) -> Result<Vec<SpoolEntry>> {
        self.inner.mail.scan_prefix(&[keys::SPOOL])?.into_iter().map(|(_, v)| decode("spool entry", &v)).collect()
    }

    pub fn spool_get(&self, id: u64) -> Result<Option<SpoolEntry>> {
        self.inner.mail.get(&keys::spool(id))?.map(|v| decode("spool entry", &v)).transpose()
    }

    /// Leases up to `max` entries due at `now` for `lease_secs`, most
    /// overdue first.
    pub fn spool_lease(&self, now: i64, lease_secs: i64, max: usize) -> Result<Vec<SpoolEntry>> {
        self.spool_lease_where(now, lease_secs, max, |_| true)
    }

    /// [`Store::spool_lease`] of the due entries `admit` accepts (the
    /// runner's per-destination limit); the others stay due as they are.
    /// Reads the due index up to `now` and those entries only.
    pub fn spool_lease_where(
        &self,
        now: i64,
        lease_secs: i64,
        max: usize,
        mut admit: impl FnMut(&SpoolEntry) -> bool,
    ) -> Result<Vec<SpoolEntry>> {
        let _g = self.lock();
        let mut batch = Batch::default();
        let mut leased = Vec::new();
        let due = self.inner.mail.range(&keys::spool_due_bound(0), &keys::spool_due_bound(now.saturating_add(1)))?;
        touched(due.len());
        for (key, _) in due {
            if leased.len() >= max {
                break;
            }
            let Some((_, id)) = keys::spool_due_parts(&key) else { continue };
            touched(1);
            let Some(old) = self.spool_get(id)? else {
                // A key outliving its entry cannot happen within one batch;
                // drop it rather than trip over it forever.
                batch.remove(key);
                continue;
            };
            if !old.has_work() || old.due_at() > now || !admit(&old) {
                continue;
            }
            let mut entry = old.clone();
            entry.lease_until = now.saturating_add(lease_secs);
            put(&mut batch, Some(&old), &entry)?;
            leased.push(entry);
        }
        self.inner.mail.apply(batch)?;
        Ok(leased)
    }

    /// The earliest time in `from..until` at which an entry with work left
    /// becomes due, from the due index alone (the runner asks about the
    /// next minute; what is due already it learns by leasing).
    pub fn spool_next_due(&self, from: i64, until: i64) -> Result<Option<i64>> {
        if until <= from {
            return Ok(None);
        }
        let keys = self.inner.mail.range(&keys::spool_due_bound(from), &keys::spool_due_bound(until))?;
        touched(keys.len());
        Ok(keys.first().and_then(|(k, _)| keys::spool_due_parts(k)).map(|(at, _)| at))
    }

    /// The queued message.
    pub async fn spool_read(&self, id: u64) -> Result<Vec<u8>> {
        let path = self.spool_dir().join(file_name(id));
        self.blocking(move |_| Ok(fs::read(path)?)).await
    }

    /// Records an attempt: each result updates its recipient and the
    /// history, the attempt is counted, the lease is released and the
    /// entry is next due at `next_attempt`. Durable on return.
    pub async fn spool_record(
        &self,
        id: u64,
        at: i64,
        results: &[SpoolResult],
        next_attempt: i64,
    ) -> Result<SpoolEntry> {
        self.spool_update(id, |entry| {
            for r in results {
                if let Some(rcpt) = entry.recipients.iter_mut().find(|x| x.address == r.address) {
                    rcpt.state = match r.outcome {
                        AttemptOutcome::Delivered => RecipientState::Delivered,
                        AttemptOutcome::Deferred => RecipientState::Pending,
                        AttemptOutcome::Failed => RecipientState::Failed,
                    };
                    rcpt.last_reply = Some(r.reply.clone());
                    rcpt.remote_host.clone_from(&r.host);
                    rcpt.dsn_passed = r.dsn_passed;
                }
                entry.history.push(SpoolAttempt {
                    at,
                    address: r.address.clone(),
                    host: r.host.clone(),
                    outcome: r.outcome,
                    reply: r.reply.clone(),
                });
            }
            let excess = entry.history.len().saturating_sub(MAX_HISTORY);
            entry.history.drain(..excess);
            entry.attempts = entry.attempts.saturating_add(1);
            entry.next_attempt = next_attempt;
            entry.lease_until = 0;
        })
        .await
    }

    /// Marks the recipients' DSNs as done. Durable on return.
    pub async fn spool_mark_notified(&self, id: u64, addresses: &[String]) -> Result<SpoolEntry> {
        self.spool_update(id, |entry| {
            for r in entry.recipients.iter_mut().filter(|r| addresses.contains(&r.address)) {
                r.notified = true;
            }
        })
        .await
    }

    /// Records that the recipients' "delayed" DSN went out. Durable on return.
    pub async fn spool_mark_delayed(&self, id: u64, addresses: &[String]) -> Result<SpoolEntry> {
        self.spool_update(id, |entry| {
            for r in entry.recipients.iter_mut().filter(|r| addresses.contains(&r.address)) {
                r.delay_notified = true;
            }
        })
        .await
    }

    /// Makes the entry due at `at` and releases its lease (`coimail queue
    /// flush`, or a runner giving an entry back after an error).
    pub async fn spool_reschedule(&self, id: u64, at: i64) -> Result<SpoolEntry> {
        self.spool_update(id, |entry| {
            entry.next_attempt = at;
            entry.lease_until = 0;
        })
        .await
    }

    async fn spool_update(&self, id: u64, change: impl FnOnce(&mut SpoolEntry)) -> Result<SpoolEntry> {
        let entry = {
            let _g = self.lock();
            let old = self.spool_get(id)?.ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
            let mut entry = old.clone();
            change(&mut entry);
            let mut batch = Batch::default();
            put(&mut batch, Some(&old), &entry)?;
            self.inner.mail.apply(batch)?;
            entry
        };
        self.flush().await?;
        Ok(entry)
    }

    /// Removes an entry and its message. Returns false if there was none.
    pub async fn spool_delete(&self, id: u64) -> Result<bool> {
        {
            let _g = self.lock();
            let Some(entry) = self.spool_get(id)? else {
                return Ok(false);
            };
            let mut batch = Batch::default();
            batch.remove(keys::spool(id));
            if let Some(k) = due_key(&entry) {
                batch.remove(k);
            }
            self.inner.mail.apply(batch)?;
        }
        self.flush().await?;
        let path = self.spool_dir().join(file_name(id));
        self.blocking(move |_| match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await?;
        Ok(true)
    }

    /// At startup, before any runner: releases every lease (their holder is
    /// gone), rebuilds the due index from the entries (the one full scan of
    /// the queue) and removes message files no entry refers to.
    pub async fn spool_recover(&self) -> Result<SpoolRecovery> {
        let mut report = SpoolRecovery::default();
        let mut ids = std::collections::HashSet::new();
        {
            let _g = self.lock();
            let mut batch = Batch::default();
            for (key, _) in self.inner.mail.scan_prefix(&[keys::SPOOL_DUE])? {
                batch.remove(key);
            }
            for mut entry in self.spool_list()? {
                ids.insert(file_name(entry.id));
                if entry.lease_until != 0 {
                    entry.lease_until = 0;
                    report.leases_released += 1;
                }
                put(&mut batch, None, &entry)?;
            }
            self.inner.mail.apply(batch)?;
        }
        let dir = self.spool_dir();
        report.orphan_files_removed = self.blocking(move |_| remove_orphans(&dir, &ids)).await?;
        Ok(report)
    }
}

/// Writes the message file durably: temp → fsync → rename → fsync dir.
fn write_file(dir: &Path, id: u64, message: &[u8]) -> Result<()> {
    let tmp_dir = dir.join("tmp");
    if !tmp_dir.exists() {
        fs::create_dir_all(&tmp_dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        sync_dir(dir)?;
    }
    let tmp = tmp_dir.join(file_name(id));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    f.write_all(message)?;
    f.sync_all()?;
    drop(f);
    // A file left by an enqueue whose entry never committed may hold this
    // id (the counter was not durable either): replacing it is right.
    fs::rename(&tmp, dir.join(file_name(id)))?;
    sync_dir(dir)
}

fn remove_orphans(dir: &Path, keep: &std::collections::HashSet<String>) -> Result<usize> {
    if !dir.exists() {
        return Ok(0);
    }
    let mut removed = 0;
    let tmp = dir.join("tmp");
    if tmp.exists() {
        for e in fs::read_dir(&tmp)? {
            fs::remove_file(e?.path())?;
            removed += 1;
        }
    }
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_file() && !keep.contains(&name) {
            tracing::warn!(file = %name, "spool file without a queue entry: removing it");
            fs::remove_file(e.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(rcpts: &[&str]) -> SpoolEnvelope {
        SpoolEnvelope {
            sender: "alice@example.org".into(),
            env_id: Some("env-1".into()),
            ret: Some(DsnRet::Headers),
            recipients: rcpts.iter().map(|r| SpoolRecipient::new(*r, None, None)).collect(),
        }
    }

    fn result(address: &str, outcome: AttemptOutcome) -> SpoolResult {
        SpoolResult {
            address: address.into(),
            host: Some("mx.remote.test".into()),
            outcome,
            reply: "250 ok".into(),
            dsn_passed: false,
        }
    }

    #[tokio::test]
    async fn enqueue_lease_record_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let e =
            store.spool_enqueue(envelope(&["a@x.test", "b@y.test"]), b"Subject: q\r\n\r\nhi\r\n", 100).await.unwrap();
        assert_eq!(store.spool_read(e.id).await.unwrap(), b"Subject: q\r\n\r\nhi\r\n");
        assert_eq!(store.spool_next_due(0, 1000).unwrap(), Some(100));
        assert_eq!(store.spool_next_due(101, 1000).unwrap(), None, "nothing later");
        assert!(store.spool_lease(99, 60, 10).unwrap().is_empty(), "not due yet");
        let leased = store.spool_lease(100, 60, 10).unwrap();
        assert_eq!(leased.len(), 1);
        assert!(store.spool_lease(120, 60, 10).unwrap().is_empty(), "leased");
        let results = [result("a@x.test", AttemptOutcome::Delivered), result("b@y.test", AttemptOutcome::Deferred)];
        let e = store.spool_record(e.id, 120, &results, 420).await.unwrap();
        assert_eq!((e.attempts, e.next_attempt, e.lease_until), (1, 420, 0));
        assert_eq!(store.spool_next_due(121, 10_000).unwrap(), Some(420), "the index followed the record");
        assert_eq!(e.recipients[0].state, RecipientState::Delivered);
        assert_eq!(e.recipients[1].state, RecipientState::Pending);
        assert_eq!(e.history.len(), 2);
        assert_eq!(store.spool_lease(419, 60, 10).unwrap().len(), 0);
        let e = store.spool_record(e.id, 420, &[result("b@y.test", AttemptOutcome::Failed)], 420).await.unwrap();
        assert!(e.has_work(), "failed recipient still needs its DSN");
        let e = store.spool_mark_notified(e.id, &["a@x.test".into(), "b@y.test".into()]).await.unwrap();
        assert!(!e.has_work());
        assert!(store.spool_lease(10_000, 60, 10).unwrap().is_empty());
        assert_eq!(store.spool_next_due(0, i64::MAX).unwrap(), None, "done entries leave the index");
        assert!(store.spool_delete(e.id).await.unwrap());
        assert!(!store.spool_delete(e.id).await.unwrap());
        assert!(store.spool_list().unwrap().is_empty());
        assert!(store.spool_read(e.id).await.is_err());
    }

    #[tokio::test]
    async fn survives_reopen_and_recovers_leases_and_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let store = Store::open(dir.path(), &Default::default()).unwrap();
            let e = store.spool_enqueue(envelope(&["a@x.test"]), b"x\r\n", 5).await.unwrap();
            store.spool_lease(5, 600, 10).unwrap();
            store.flush().await.unwrap();
            // A file whose entry never committed.
            std::fs::write(dir.path().join("spool").join(file_name(999)), b"lost").unwrap();
            e.id
        };
        // The group commit's flusher thread may still hold the database for a moment.
        let mut tries = 0;
        let store = loop {
            match Store::open(dir.path(), &Default::default()) {
                Err(_) if tries < 100 => tries += 1,
                other => break other.unwrap(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let report = store.spool_recover().await.unwrap();
        assert_eq!(report, SpoolRecovery { leases_released: 1, orphan_files_removed: 1 });
        let e = store.spool_get(id).unwrap().unwrap();
        assert_eq!(
            (e.sender.as_str(), e.env_id.as_deref(), e.ret),
            ("alice@example.org", Some("env-1"), Some(DsnRet::Headers))
        );
        assert_eq!(store.spool_lease(5, 60, 10).unwrap().len(), 1);
        assert_eq!(store.spool_read(id).await.unwrap(), b"x\r\n");
        let again = store.spool_enqueue(envelope(&["c@z.test"]), b"y\r\n", 6).await.unwrap();
        assert!(again.id > id, "ids are not reused");
    }

    #[tokio::test]
    async fn history_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let e = store.spool_enqueue(envelope(&["a@x.test"]), b"x\r\n", 0).await.unwrap();
        for i in 0..(MAX_HISTORY as i64 + 5) {
            store.spool_record(e.id, i, &[result("a@x.test", AttemptOutcome::Deferred)], i + 1).await.unwrap();
        }
        let e = store.spool_get(e.id).unwrap().unwrap();
        assert_eq!(e.history.len(), MAX_HISTORY);
        assert_eq!(e.history[0].at, 5);
        assert_eq!(e.attempts, MAX_HISTORY as u32 + 5);
    }

    fn touched_by(f: impl FnOnce()) -> usize {
        TOUCHED.with(|t| t.set(0));
        f();
        TOUCHED.with(std::cell::Cell::get)
    }

    /// A queue of 400 entries of which 3 are due: leasing reads the 3 (their
    /// index keys and entries), and asking for the next due time reads only
    /// the keys in the asked window.
    #[tokio::test]
    async fn finding_due_work_is_o_due_not_o_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        for _ in 0..400 {
            store.spool_enqueue(envelope(&["later@x.test"]), b"x\r\n", 5_000).await.unwrap();
        }
        let mut due = Vec::new();
        for t in [30, 10, 20] {
            due.push(store.spool_enqueue(envelope(&["now@y.test"]), b"y\r\n", t).await.unwrap().id);
        }
        let mut leased = Vec::new();
        let n = touched_by(|| leased = store.spool_lease(100, 60, 10).unwrap());
        assert_eq!(leased.iter().map(|e| e.id).collect::<Vec<_>>(), [due[1], due[2], due[0]], "most overdue first");
        assert_eq!(n, 6, "3 index keys and 3 entries, not 403");
        let n = touched_by(|| assert_eq!(store.spool_lease(100, 60, 10).unwrap().len(), 0));
        assert_eq!(n, 0, "leased entries moved to their lease's end");
        let mut next = None;
        let n = touched_by(|| next = store.spool_next_due(101, 1_000).unwrap());
        assert_eq!((next, n), (Some(160), 3), "the three leases end at 160");
        let n = touched_by(|| assert_eq!(store.spool_next_due(161, 4_000).unwrap(), None));
        assert_eq!(n, 0);
        // A filter leaves what it refuses due, untouched.
        let even = store.spool_lease_where(5_000, 60, 1_000, |e| e.id % 2 == 0).unwrap();
        let rest = store.spool_lease(5_000, 60, 1_000).unwrap();
        assert!(even.iter().all(|e| e.id % 2 == 0) && rest.iter().all(|e| e.id % 2 == 1));
        assert_eq!(even.len() + rest.len(), 403, "the refused ones stayed due");
    }

    #[tokio::test]
    async fn recovery_rebuilds_the_due_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let a = store.spool_enqueue(envelope(&["a@x.test"]), b"x\r\n", 10).await.unwrap();
        let b = store.spool_enqueue(envelope(&["b@x.test"]), b"x\r\n", 20).await.unwrap();
        // A database from before the index: entries only.
        let mut batch = Batch::default();
        for (k, _) in store.inner.mail.scan_prefix(&[keys::SPOOL_DUE]).unwrap() {
            batch.remove(k);
        }
        store.inner.mail.apply(batch).unwrap();
        assert!(store.spool_lease(100, 60, 10).unwrap().is_empty(), "invisible without the index");
        store.spool_recover().await.unwrap();
        let ids: Vec<u64> = store.spool_lease(100, 60, 10).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids, [a.id, b.id]);
        // Leases are released and the index follows.
        store.spool_recover().await.unwrap();
        assert_eq!(store.spool_next_due(0, 1_000).unwrap(), Some(10));
        assert!(store.spool_delete(a.id).await.unwrap());
        assert_eq!(store.spool_next_due(0, 1_000).unwrap(), Some(20), "deleting drops its key");
    }

    #[tokio::test]
    async fn delay_and_dsn_flags_are_durable_and_old_records_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let e = store.spool_enqueue(envelope(&["a@x.test"]), b"x\r\n", 0).await.unwrap();
        let e = store.spool_mark_delayed(e.id, &["a@x.test".into()]).await.unwrap();
        assert!(e.recipients[0].delay_notified && !e.recipients[0].notified);
        let passed = SpoolResult { dsn_passed: true, ..result("a@x.test", AttemptOutcome::Delivered) };
        let e = store.spool_record(e.id, 1, &[passed], 1).await.unwrap();
        assert!(e.recipients[0].dsn_passed);
        // A recipient written before these fields existed.
        let old = r#"{"address":"o@x.test","orcpt":null,"notify":null,"state":"Pending","last_reply":null,"remote_host":null,"notified":false}"#;
        let r: SpoolRecipient = serde_json::from_str(old).unwrap();
        assert!(!r.dsn_passed && !r.delay_notified);
    }
}
