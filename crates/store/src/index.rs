//! One atomic change to the message index: entries added (UIDs and modseqs
//! allocated) and removed, with everything they touch — mailbox records and
//! their counters and keywords, the unseen-message keys, quota usage,
//! body-file reference counts, the expunge log and the visibility
//! watermark — written in ONE batch.
//!
//! Protocol: take the write lock, build the change with [`Indexer`], call
//! [`Indexer::apply`] (which also takes the change's place in the
//! publication order, `publish.rs`, and records the ghosts of removed
//! entries, `retention.rs`), drop the lock, then [`Store::finish`] (flush,
//! then publish). A change either happens whole or not at all, and nothing
//! is published before it is durable.

use crate::journal::Record;
use crate::keys;
use crate::kv::Batch;
use crate::publish::{Pending, Publication};
use crate::records::{MailboxRecord, MessageRecord, SEEN, Usage, encode};
use crate::{AccountId, BlobId, Change, MailboxId, MessageMeta, Result, Store, StoreError, Stored, Uid};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Builds one index change. The caller holds the write lock throughout.
pub(crate) struct Indexer<'s> {
    store: &'s Store,
    mailboxes: BTreeMap<MailboxId, MailboxRecord>,
    usage: HashMap<AccountId, Usage>,
    /// New absolute reference count per body file touched.
    refs: BTreeMap<String, u64>,
    batch: Batch,
    stored: Vec<Stored>,
    expunged: BTreeMap<MailboxId, Vec<Uid>>,
    /// The removed entries as they were, for sessions that still show them.
    ghosts: Vec<(AccountId, MessageMeta)>,
    /// Mailboxes this change deletes: their records, names, METADATA and
    /// expunge log go, and nothing of theirs is written back.
    deleted: BTreeSet<MailboxId>,
    /// Octets of body files written without fsync, for the change's journal frame.
    bodies: Vec<Record>,
}

/// An applied change: what it stored, and its publication (see [`Store::finish`]).
pub(crate) struct Applied {
    pub stored: Vec<Stored>,
    pub pending: Pending,
}

impl<'s> Indexer<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Indexer {
            store,
            mailboxes: BTreeMap::new(),
            usage: HashMap::new(),
            refs: BTreeMap::new(),
            batch: Batch::default(),
            stored: Vec::new(),
            expunged: BTreeMap::new(),
            ghosts: Vec::new(),
            deleted: BTreeSet::new(),
            bodies: Vec::new(),
        }
    }

    /// Puts a body file's octets ([`Record::body`], of a file written
    /// without fsync, `body_sync.rs`) in this change's journal frame.
    pub(crate) fn body(&mut self, body: Record) {
        self.bodies.push(body);
    }

    /// The mailbox's record as this change leaves it so far.
    pub(crate) fn mailbox(&mut self, id: MailboxId) -> Result<&mut MailboxRecord> {
        if !self.mailboxes.contains_key(&id) {
            let rec = self
                .store
                .mailbox_record_by_id(id)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {}", id.0)))?;
            self.mailboxes.insert(id, rec);
        }
        self.mailboxes.get_mut(&id).ok_or_else(|| StoreError::Engine("mailbox record missing".into()))
    }

    /// A mailbox this change creates: its name entry goes into the same batch.
    pub(crate) fn created(&mut self, rec: MailboxRecord) {
        let id = MailboxId(rec.id);
        self.batch.insert(keys::mailbox_by_name(AccountId(rec.account), &rec.name), rec.id.to_be_bytes().to_vec());
        self.mailboxes.insert(id, rec);
    }

    /// Deletes the mailbox in this change. The caller removes its entries
    /// (all of them, in-flight ones included) with [`Indexer::remove`].
    pub(crate) fn deleted(&mut self, id: MailboxId) -> Result<()> {
        self.mailbox(id)?;
        self.deleted.insert(id);
        Ok(())
    }

    fn usage_mut(&mut self, account: AccountId) -> Result<&mut Usage> {
        if !self.usage.contains_key(&account) {
            let u = self.store.usage(account)?;
            self.usage.insert(account, u);
        }
        self.usage.get_mut(&account).ok_or_else(|| StoreError::Engine("usage missing".into()))
    }

    fn refs_mut(&mut self, blob: &str) -> Result<&mut u64> {
        if !self.refs.contains_key(blob) {
            let n = self.store.blob_refs(&BlobId(blob.to_owned()))?;
            self.refs.insert(blob.to_owned(), n);
        }
        self.refs.get_mut(blob).ok_or_else(|| StoreError::Engine("reference count missing".into()))
    }

    /// Adds `msg` to `mailbox` under the next UID, with a new modseq.
    /// Copies share the body file: its reference count goes up, no bytes move.
    pub(crate) fn insert(&mut self, mailbox: MailboxId, mut msg: MessageRecord) -> Result<Stored> {
        let rec = self.mailbox(mailbox)?;
        let uid = rec.uid_next;
        rec.uid_next = uid.next().ok_or_else(|| StoreError::Invalid("mailbox UID space exhausted".into()))?;
        rec.highest_modseq = rec.highest_modseq.next();
        rec.exists = rec.exists.saturating_add(1);
        if let Some(c) = &mut rec.counts {
            c.add(msg.size, &msg.flags);
        }
        rec.define_keywords(&msg.flags);
        msg.modseq = rec.highest_modseq;
        let stored = Stored { account: AccountId(rec.account), mailbox, uid_validity: rec.uid_validity, uid };
        let u = self.usage_mut(stored.account)?;
        u.bytes = u.bytes.saturating_add(msg.size);
        u.messages = u.messages.saturating_add(1);
        *self.refs_mut(&msg.blob)? += 1;
        if !msg.flags.contains(SEEN) {
            self.batch.insert(keys::unseen(mailbox, uid), Vec::new());
        }
        self.batch.insert(keys::message(mailbox, uid), encode(&msg)?);
        self.stored.push(stored);
        Ok(stored)
    }

    /// Removes the entry `uid` of `mailbox`, whose record the caller read as `msg`.
    pub(crate) fn remove(&mut self, mailbox: MailboxId, uid: Uid, msg: &MessageRecord) -> Result<()> {
        let rec = self.mailbox(mailbox)?;
        rec.exists = rec.exists.saturating_sub(1);
        if let Some(c) = &mut rec.counts {
            c.remove(msg.size, &msg.flags);
        }
        let account = AccountId(rec.account);
        let u = self.usage_mut(account)?;
        u.bytes = u.bytes.saturating_sub(msg.size);
        u.messages = u.messages.saturating_sub(1);
        let n = self.refs_mut(&msg.blob)?;
        *n = n.saturating_sub(1);
        if !msg.flags.contains(SEEN) {
            self.batch.remove(keys::unseen(mailbox, uid));
        }
        self.batch.remove(keys::message(mailbox, uid));
        self.expunged.entry(mailbox).or_default().push(uid);
        let meta = MessageMeta {
            mailbox,
            uid,
            size: msg.size,
            internal_date: msg.internal_date,
            flags: msg.flags.clone(),
            modseq: msg.modseq,
            blob: BlobId(msg.blob.clone()),
            body_offset: msg.offset,
        };
        self.ghosts.push((account, meta));
        Ok(())
    }

    /// Writes the whole change in one batch (not yet durable: see [`Store::finish`]).
    pub(crate) fn apply(mut self) -> Result<Applied> {
        let mut publication = Publication::default();
        for (mailbox, uids) in std::mem::take(&mut self.expunged) {
            let rec = self.mailbox(mailbox)?;
            rec.highest_modseq = rec.highest_modseq.next();
            let (account, modseq) = (AccountId(rec.account), rec.highest_modseq);
            if !self.deleted.contains(&mailbox) {
                // QRESYNC (RFC 7162 §3.2.10) needs to know what vanished since a modseq.
                self.batch.insert(keys::expunge_log(mailbox, modseq), encode(&uids)?);
            }
            publication.changes.push((account, Change::Expunged { mailbox, uids, modseq }));
        }
        for (blob, n) in &self.refs {
            if *n == 0 {
                self.batch.remove(keys::blob_refs(blob));
                publication.unreferenced.push(BlobId(blob.clone()));
            } else {
                self.batch.insert(keys::blob_refs(blob), n.to_be_bytes().to_vec());
            }
        }
        for (account, u) in &self.usage {
            self.batch.insert(keys::usage(*account), encode(u)?);
        }
        for rec in self.mailboxes.values() {
            let id = MailboxId(rec.id);
            if !self.deleted.contains(&id) {
                self.batch.insert(keys::mailbox_by_id(id), encode(rec)?);
                continue;
            }
            let account = AccountId(rec.account);
            self.batch.remove(keys::mailbox_by_name(account, &rec.name));
            self.batch.remove(keys::mailbox_by_id(id));
            self.store.remove_metadata(&mut self.batch, account, Some(id))?;
            for (k, _) in self.store.inner.mail.scan_prefix(&keys::expunge_log_of(id))? {
                self.batch.remove(k);
            }
        }
        {
            // Hide the new UIDs until they are durable (see `publish_appended`).
            // UIDs are allocated in increasing order, so the first one stored
            // per mailbox is its lowest.
            let mut visible = self.store.visible();
            for s in &self.stored {
                visible.entry(s.mailbox).or_insert(s.uid);
            }
        }
        // The ticket and the ghosts come before the index change: a session
        // that no longer finds an entry in the index finds its ghost.
        let mut pending = Pending::new(self.store, Publication::default());
        for (account, meta) in std::mem::take(&mut self.ghosts) {
            self.store.inner.retention.retain(account, meta, pending.ticket());
        }
        // Nothing is published for a batch the index refused (the dropped
        // ticket goes out empty; its ghosts shadow entries that still exist
        // and go at the next sweep).
        self.store.inner.mail.apply_with(self.batch, self.bodies)?;
        publication.stored = self.stored.clone();
        pending.set(publication);
        Ok(Applied { stored: self.stored, pending })
    }
}

impl Store {
    /// After [`Indexer::apply`], outside the write lock: makes the change
    /// durable, then publishes it in commit order (appends first, as in a
    /// MOVE the copy exists before the original goes), then deletes body
    /// files nothing refers to any more and no session still shows.
    pub(crate) async fn finish(&self, applied: Applied) -> Result<()> {
        self.flush().await?;
        let files = applied.pending.publish().await;
        if !files.is_empty() {
            // The change is committed and published: failing the call now
            // would tell the client it did not happen. Log instead.
            if let Err(e) = self.blocking(move |b| files.iter().try_for_each(|id| b.delete(id))).await {
                tracing::error!(error = %e, "could not delete unreferenced body files");
            }
        }
        Ok(())
    }

    /// Called in commit order (`publish.rs`), after the change is durable:
    /// the watermark moves past its UIDs; later changes' UIDs stay hidden.
    pub(crate) fn publish_appended(&self, stored: &[Stored]) {
        let mut last: BTreeMap<MailboxId, (AccountId, Uid)> = BTreeMap::new();
        for s in stored {
            let e = last.entry(s.mailbox).or_insert((s.account, s.uid));
            e.1 = e.1.max(s.uid);
        }
        let mut visible = self.visible();
        for (mailbox, (account, uid)) in last {
            // Every change that stores an entry sets the watermark first
            // (`Indexer::apply`); only a DELETE since then removes it.
            if !visible.contains_key(&mailbox) && !matches!(self.mailbox_record_by_id(mailbox), Ok(Some(_))) {
                continue;
            }
            let mark = visible.entry(mailbox).or_insert(Uid(0));
            if *mark <= uid {
                *mark = uid.saturating_next();
                // Published under the watermark lock so subscribers see
                // watermarks in increasing order.
                self.inner.bus.publish(account, Change::Appended { mailbox, uid_next: *mark });
            }
        }
    }

    pub(crate) fn blob_refs(&self, blob: &BlobId) -> Result<u64> {
        Ok(self
            .inner
            .mail
            .get(&keys::blob_refs(&blob.0))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }
}
