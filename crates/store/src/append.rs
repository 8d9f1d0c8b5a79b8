//! IMAP APPEND into the store: one command (`Store::append_many`, also
//! MULTIAPPEND, RFC 3502) or a run of commands a client pipelined
//! (`Store::append_batch`).
//!
//! A small message's body file is written without fsync: its octets go in
//! the commit's journal frame, and the commit's one flush makes them durable
//! (`body_sync.rs`), so an APPEND waits for one flush, not three in a row.
//!
//! A run is what makes one connection fast. In a run the body files of all
//! commands are written at once on several blocking threads (a large
//! message's fsyncs overlap on the device), the
//! commands are indexed one after another in command order (so UIDs follow
//! the commands, and each command is checked against the quota as it
//! stands after the ones before it), and ONE flush makes all of them
//! durable. Each command still succeeds or fails on its own and whole;
//! none is acknowledged, or visible, before that flush.

use crate::blob::BlobHeader;
use crate::index::{Applied, Indexer};
use crate::journal::Record;
use crate::message::check_flags;
use crate::names;
use crate::records::MessageRecord;
use crate::{AccountId, BlobId, MailboxId, ModSeq, NewMessage, Placement, Result, Store, StoreError, Stored};

/// One APPEND command: its messages go into `mailbox`, all of them or none.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub mailbox: String,
    pub messages: Vec<NewMessage>,
}

/// Body files written side by side. Each write mostly waits on two fsyncs,
/// so more writers than cores keep the device busy without costing CPU.
const PARALLEL_WRITES: usize = 8;

/// A request that passed its checks: where it goes and what to index.
struct Checked {
    /// Position in the run.
    index: usize,
    mailbox: MailboxId,
    /// One per message, without its body file yet.
    records: Vec<MessageRecord>,
}

/// A body file to write: its header and the message bytes.
type BodyFile = (BlobHeader, Vec<u8>);

/// One body file to write: which checked request it belongs to, its header
/// and the message bytes.
type Job = (usize, BlobHeader, Vec<u8>);

/// A body file written: its id, the message's offset in it, and the
/// journal's copy of it when it was written without fsync (encoded on the
/// writing thread, not under the index's write lock).
type Written = (BlobId, u64, Option<Record>);

impl Store {
    /// Multi-message APPEND (RFC 3502): every message or none. Each body
    /// gets its own file; all index entries go in ONE commit.
    pub async fn append_many(
        &self,
        account: AccountId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Stored>> {
        let request = AppendRequest { mailbox: mailbox.to_owned(), messages };
        self.append_batch(account, vec![request])
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Engine("append stored nothing".into())))
    }

    /// A run of APPEND commands, each as [`Store::append_many`] would store
    /// it, made durable by one commit. Returns one result per request, in
    /// order; an `Ok` means that request's messages are durable. UIDs are
    /// allocated in request order.
    pub async fn append_batch(&self, account: AccountId, requests: Vec<AppendRequest>) -> Vec<Result<Vec<Stored>>> {
        if self.check_space().is_err() {
            return requests.iter().map(|_| Err(StoreError::DiskFull)).collect();
        }
        let mut results: Vec<Option<Result<Vec<Stored>>>> = requests.iter().map(|_| None).collect();
        let address = match self.account_address(account) {
            Ok(Some(a)) => a,
            Ok(None) => {
                return requests.iter().map(|_| Err(StoreError::NotFound(format!("account {}", account.0)))).collect();
            }
            Err(e) => return requests.iter().map(|_| Err(StoreError::Engine(e.to_string()))).collect(),
        };
        let mut checked = Vec::with_capacity(requests.len());
        let mut jobs: Vec<Job> = Vec::new();
        for (index, request) in requests.into_iter().enumerate() {
            match self.check_append(account, &address, request) {
                Ok((mailbox, records, headers)) => {
                    jobs.extend(headers.into_iter().map(|(h, raw)| (checked.len(), h, raw)));
                    checked.push(Checked { index, mailbox, records });
                }
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        let mut written = self.write_bodies(jobs).await;
        let mut orphans: Vec<BlobId> = Vec::new();
        let mut applied = Vec::new();
        for (n, c) in checked.into_iter().enumerate() {
            let files: Vec<Result<Written>> = written.remove(&n).unwrap_or_default();
            let outcome = match files.iter().position(Result::is_err) {
                Some(_) => {
                    // All or nothing: the request's files that were written go.
                    let mut error = None;
                    for f in files {
                        match f {
                            Ok((blob, _, _)) => orphans.push(blob),
                            Err(e) => error = error.or(Some(e)),
                        }
                    }
                    Err(error.unwrap_or_else(|| StoreError::Engine("body file write failed".into())))
                }
                None => {
                    let mut files: Vec<Written> = files.into_iter().flatten().collect();
                    let indexed = self.index_append(account, c.mailbox, c.records, &mut files);
                    if indexed.is_err() {
                        // Nothing refers to the files: remove them so reconcile does not index them later.
                        orphans.extend(files.into_iter().map(|(b, _, _)| b));
                    }
                    indexed
                }
            };
            match outcome {
                Ok(done) => applied.push((c.index, done)),
                Err(e) => results[c.index] = Some(Err(e)),
            }
        }
        if !orphans.is_empty() {
            let _ = self.blocking(move |b| orphans.iter().try_for_each(|id| b.delete(id))).await;
        }
        if !applied.is_empty() {
            let flushed = self.flush().await;
            // In ticket order (the requests were indexed in this order).
            for (index, done) in applied {
                let stored = done.stored.clone();
                let files = done.pending.publish().await;
                self.delete_files_later(files);
                results[index] = Some(match &flushed {
                    Ok(()) => Ok(stored),
                    Err(e) => Err(StoreError::Engine(e.to_string())),
                });
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Engine("append lost a request".into()))))
            .collect()
    }

    /// Checks one request before any file is written: the mailbox exists,
    /// the flags are valid. Returns the mailbox, the records to index and
    /// the body files to write.
    fn check_append(
        &self,
        account: AccountId,
        address: &str,
        request: AppendRequest,
    ) -> Result<(MailboxId, Vec<MessageRecord>, Vec<BodyFile>)> {
        if request.messages.is_empty() {
            return Err(StoreError::Invalid("no messages to append".into()));
        }
        let mailbox = names::canonical(&request.mailbox)?;
        let id = self.mailbox(account, &mailbox)?.id;
        let mut records = Vec::with_capacity(request.messages.len());
        let mut files = Vec::with_capacity(request.messages.len());
        for m in request.messages {
            check_flags(&m.flags)?;
            records.push(MessageRecord {
                blob: String::new(),
                offset: 0,
                size: m.raw.len() as u64,
                internal_date: m.internal_date,
                flags: m.flags.clone(),
                modseq: ModSeq(0),
            });
            let placement =
                Placement { account, address: address.to_owned(), mailbox: mailbox.clone(), flags: m.flags };
            files.push((BlobHeader::new(m.internal_date, vec![placement]), m.raw));
        }
        Ok((id, records, files))
    }

    /// Writes every body file, [`PARALLEL_WRITES`] threads side by side.
    /// Returns the outcome of each job, grouped by its request, in job order.
    async fn write_bodies(&self, jobs: Vec<Job>) -> std::collections::BTreeMap<usize, Vec<Result<Written>>> {
        let per_task = jobs.len().div_ceil(PARALLEL_WRITES).max(1);
        let mut tasks = Vec::new();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let chunk: Vec<Job> = jobs.by_ref().take(per_task).collect();
            let this = self.clone();
            // Spawned now, not when awaited: the chunks run side by side.
            tasks.push(tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|(n, h, raw)| {
                        this.inner.space.charge(raw.len() as u64);
                        let written = this.inner.blobs.write_unsynced(&h, &raw);
                        (
                            n,
                            written.map(|(id, offset, file)| {
                                let body = file.map(|f| Record::body(&id, &f));
                                (id, offset, body)
                            }),
                        )
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut out: std::collections::BTreeMap<usize, Vec<Result<Written>>> = Default::default();
        for task in tasks {
            match task.await {
                Ok(done) => {
                    for (n, r) in done {
                        out.entry(n).or_default().push(r);
                    }
                }
                Err(e) => tracing::error!(error = %e, "body file writer failed"),
            }
        }
        out
    }

    /// Indexes one request's messages (their body files written) in one
    /// change under the write lock, after its quota check.
    fn index_append(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        records: Vec<MessageRecord>,
        files: &mut [Written],
    ) -> Result<Applied> {
        if files.len() != records.len() {
            return Err(StoreError::Engine("body file writer lost a message".into()));
        }
        let _g = self.lock();
        let bytes = records.iter().map(|r| r.size).sum();
        self.check_quota(account, bytes, records.len() as u64)?;
        let mut ix = Indexer::new(self);
        for (msg, (blob, offset, body)) in records.into_iter().zip(files) {
            ix.insert(mailbox, MessageRecord { blob: blob.0.clone(), offset: *offset, ..msg })?;
            if let Some(body) = body.take() {
                ix.body(body);
            }
        }
        ix.apply()
    }
}
