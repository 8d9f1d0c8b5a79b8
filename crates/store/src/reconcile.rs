//! Reconciling body files with the index. Runs at startup after an unclean
//! stop (or when an older index's journal is still on disk), and with
//! `force` for `coimail store rebuild` on an empty index.
//!
//! Rules:
//! - an index entry whose body file is gone is removed (the mail is lost and
//!   we say so in the log; the index must not promise what it cannot serve);
//! - the index is authoritative for every body file it refers to;
//! - a body file no entry refers to is placed again, by the first source
//!   that knows it:
//!   1. the placement journal (`journal.rs`) of the current index, then of
//!      older ones, newest first: its live placements — mailbox, flags and
//!      keywords, every copy — or, if the journal saw it and its last
//!      placement went, nothing: it was expunged and the file is deleted;
//!   2. the file's own header (where it was first delivered): a delivery
//!      whose index commit and journal frame never landed (its sender got
//!      no 250 and may send it again: a duplicate beats a loss), or a file
//!      from before the journal existed;
//! - mailboxes the journal knows and the index lacks are created (by
//!   account address and name; in the current index's journal a mailbox
//!   whose id and UIDVALIDITY the index has is that mailbox, renamed or not);
//! - messages re-placed in one mailbox keep their journal UID order, then
//!   arrival order;
//! - subscriptions older indexes' journals record are restored (names
//!   whose mailbox was deleted included);
//! - reference counts, mailbox message counts and counters (unseen,
//!   deleted, size), keywords, unseen-message keys and usage are recomputed;
//! - every mailbox's HIGHESTMODSEQ jumps by [`MODSEQ_GAP`] (see there);
//! - finally the journal is replaced by a snapshot of the reconciled index.

use crate::blob::BlobInfo;
use crate::index::Indexer;
use crate::journal::{History, Placed};
use crate::keys;
use crate::kv::Batch;
use crate::records::{Counts, MailboxRecord, MessageRecord, SEEN, Usage, decode, encode};
use crate::{AccountId, BlobId, Flags, MailboxId, ModSeq, Result, SpecialUse, Store, StoreError, Uid};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tracing::{error, info, warn};

/// Messages indexed per commit while re-placing files.
const REINDEX_BATCH: usize = 512;

/// What reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub messages_checked: u64,
    pub entries_without_body: u64,
    pub files_reindexed: u64,
    pub messages_reindexed: u64,
    /// Files placed from their header alone (the journal did not know them).
    pub files_from_header: u64,
    /// Files of expunged messages that outlived their last reference (removed).
    pub files_expunged: u64,
    pub files_without_owner: u64,
    pub mailboxes_created: u64,
    pub temp_files_removed: u64,
    /// Body files written without fsync that an unclean stop tore or lost,
    /// written again from the journal frame holding their octets.
    pub bodies_restored: u64,
    /// Body files that did not hold what their name says (torn, or a
    /// spare's earlier message under a new name): removed.
    pub torn_files_removed: u64,
}

/// How far every mailbox's HIGHESTMODSEQ jumps at a reconcile. A change
/// updates its mailbox record before the flush that makes it durable, and
/// sessions read records directly (STATUS, SELECT, FETCH MODSEQ), so a
/// client can be shown a modseq that a crash then takes back; the next
/// change would get it again, and a CONDSTORE/QRESYNC client
/// resynchronising from the number it was told would never see that change
/// (`tests/crash_imap.rs` found it: STATUS showed 551, after SIGKILL the
/// mailbox was at 550). Modseqs lost in one crash are at most those
/// allocated since the last flush, far fewer than 2^32; RFC 7162 allows
/// 63 bits, room for 2^31 unclean restarts. Hiding unflushed records from
/// readers instead (as UIDs are hidden) would leave HIGHESTMODSEQ below
/// MODSEQs a FETCH already showed.
pub(crate) const MODSEQ_GAP: u64 = 1 << 32;

/// The most RFC 7162 allows (mod-sequence-value is below 2^63).
const MODSEQ_MAX: u64 = (1 << 63) - 1;

/// One message to index again.
struct Item {
    mailbox: MailboxId,
    /// Sort order of the source: journal histories oldest first (0), header placements last.
    rank: usize,
    uid: Uid,
    blob: BlobId,
    offset: u64,
    size: u64,
    internal_date: i64,
    flags: Flags,
}

/// Maps journal and header placements onto the index, creating mailboxes.
struct Resolver<'a> {
    store: &'a Store,
    histories: &'a [History],
    addresses: HashMap<String, AccountId>,
    mailboxes: HashMap<(usize, u64), Option<MailboxId>>,
    created: u64,
}

impl Resolver<'_> {
    /// The account an address or id of history `h` belongs to now.
    fn account(&self, h: usize, id: u64) -> Result<Option<AccountId>> {
        let by_address = self
            .histories
            .get(h)
            .and_then(|hist| hist.state.accounts.get(&id))
            .and_then(|a| self.addresses.get(&a.to_ascii_lowercase()).copied());
        match by_address {
            Some(a) => Ok(Some(a)),
            // Account ids survive a rebuild (the directory snapshot keeps them).
            None if self.store.account_address(AccountId(id))?.is_some() => Ok(Some(AccountId(id))),
            None => Ok(None),
        }
    }

    /// The index mailbox for mailbox `id` of history `h`.
    fn mailbox(&mut self, h: usize, id: u64) -> Result<Option<MailboxId>> {
        if let Some(m) = self.mailboxes.get(&(h, id)) {
            return Ok(*m);
        }
        let hist = self.histories.get(h).ok_or_else(|| StoreError::Engine("journal history".into()))?;
        let resolved = match hist.state.mailboxes.get(&id) {
            None => None,
            Some(mb) => {
                let same = if hist.current {
                    self.store
                        .mailbox_record_by_id(MailboxId(id))?
                        .filter(|r| r.account == mb.account && r.uid_validity == mb.uid_validity)
                } else {
                    None
                };
                match same {
                    Some(r) => Some(MailboxId(r.id)),
                    // An older index's mailbox: its special use wins over the
                    // defaults a restored account got (its subscription too:
                    // `restore_subscriptions`).
                    None => match self.account(h, mb.account)? {
                        Some(account) => self.by_name(account, &mb.name, mb.special_use, !hist.current)?,
                        None => None,
                    },
                }
            }
        };
        self.mailboxes.insert((h, id), resolved);
        Ok(resolved)
    }

    /// The account's mailbox `name`, created if missing. With `adopt`, an
    /// existing mailbox takes `special_use`.
    fn by_name(
        &mut self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
        adopt: bool,
    ) -> Result<Option<MailboxId>> {
        let Ok(name) = crate::names::canonical(name) else {
            warn!(name, "invalid mailbox name in a journal or body file; using INBOX");
            return self.by_name(account, "INBOX", None, false);
        };
        let _g = self.store.lock();
        if let Some(mut r) = self.store.mailbox_record(account, &name)? {
            if adopt && r.special_use != special_use {
                r.special_use = special_use;
                let mut batch = Batch::default();
                batch.insert(keys::mailbox_by_id(MailboxId(r.id)), encode(&r)?);
                self.store.inner.mail.apply(batch)?;
            }
            return Ok(Some(MailboxId(r.id)));
        }
        if self.store.inner.mail.get(&keys::account(account))?.is_none() {
            return Ok(None);
        }
        self.created += 1;
        Ok(Some(self.store.create_mailbox_locked(account, &name, special_use, false)?.id))
    }

    /// Subscriptions as older indexes' journals left them, oldest first, so
    /// the newest wins: for every name such a journal knows for an account
    /// (as a mailbox or a subscription), whether it is subscribed. This
    /// overrides the defaults a restored account got (a default mailbox the
    /// user unsubscribed stays unsubscribed) and brings back subscriptions
    /// of names whose mailbox was deleted. The current index's own journal
    /// is not needed: the index has its subscriptions.
    fn restore_subscriptions(&mut self) -> Result<()> {
        for (h, hist) in self.histories.iter().enumerate().rev().filter(|(_, h)| !h.current) {
            let mut known: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
            for mb in hist.state.mailboxes.values() {
                known.entry(mb.account).or_default().insert(&mb.name);
            }
            for (account, name) in &hist.state.subscriptions {
                known.entry(*account).or_default().insert(name);
            }
            for (old_account, names) in known {
                let Some(account) = self.account(h, old_account)? else { continue };
                let _g = self.store.lock();
                let mut batch = Batch::default();
                for name in names {
                    let Ok(canonical) = crate::names::canonical(name) else { continue };
                    let key = keys::subscription(account, &canonical);
                    if hist.state.subscriptions.contains(&(old_account, name.to_owned())) {
                        batch.insert(key, Vec::new());
                    } else {
                        batch.remove(key);
                    }
                }
                self.store.inner.mail.apply(batch)?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Reconciles when the last stop was unclean, or always with `force`.
    pub async fn reconcile(&self, force: bool) -> Result<ReconcileReport> {
        if !force && !self.was_unclean() {
            return Ok(ReconcileReport::default());
        }
        let this = self.clone();
        let (report, applied) = tokio::task::spawn_blocking(move || this.reconcile_blocking())
            .await
            .map_err(|e| StoreError::Engine(format!("reconcile task failed: {e}")))??;
        self.flush().await?;
        // The snapshot below drops the journal's copies of body files
        // written without fsync: the files kept (intact after a crash that
        // was not a power loss, so in the page cache only) are made durable
        // first, and the bound moves past them (`body_sync.rs`).
        let unsure_from = self.inner.blobs.unsure_from();
        self.blocking(move |b| b.sync_from(unsure_from)).await?;
        // The index now says everything every journal file said.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.inner.mail.journal().compact_from_index(this.inner.mail.raw()))
            .await
            .map_err(|e| StoreError::Engine(format!("journal snapshot task failed: {e}")))??;
        for done in applied {
            let files = done.pending.publish().await;
            self.delete_files_later(files);
        }
        info!(?report, "store reconciled");
        Ok(report)
    }

    fn reconcile_blocking(&self) -> Result<(ReconcileReport, Vec<crate::index::Applied>)> {
        let mut report =
            ReconcileReport { temp_files_removed: self.inner.blobs.clear_tmp()? as u64, ..Default::default() };
        // Read before this pass writes anything.
        let histories = self.inner.mail.journal().histories()?;
        let mail = &self.inner.mail;

        // 0. Body files written without fsync (`body_sync.rs`) that the
        // stop tore or lost come back from the frames that hold them.
        let blobs = &self.inner.blobs;
        // Older indexes' journals too: an index lost with the power keeps
        // its epoch's frames.
        for hist in &histories {
            for (blob, file) in &hist.state.bodies {
                let id = BlobId(blob.clone());
                if blobs.verify(&id) {
                    continue;
                }
                match crate::journal::body_octets(file) {
                    Ok(octets) => {
                        warn!(blob = %blob, "body file torn or lost by the unclean stop: restored from the journal");
                        blobs.restore(&id, &octets)?;
                        report.bodies_restored += 1;
                    }
                    Err(e) => error!(blob = %blob, error = %e, "journal copy of a body file is not base64"),
                }
            }
        }
        // Only files at or above the bound can be torn; older ones were
        // synced, and reading them all would make a restart slow.
        let unsure_from = blobs.unsure_from();
        let intact = |id: &BlobId| match crate::body_sync::id_time(id) {
            Some(t) if t >= unsure_from => blobs.verify(id),
            _ => blobs.exists(id),
        };

        // 1. Index entries must point at existing, intact body files. A
        // file written without fsync that is not intact and had no frame
        // left to restore it from belongs to an APPEND that was never
        // answered OK (its frame is fsync'd first).
        let mut refs: BTreeMap<String, u64> = BTreeMap::new();
        let mut present: HashMap<String, bool> = HashMap::new();
        let mut dangling = Batch::default();
        for (k, v) in mail.scan_prefix(&[keys::MESSAGE])? {
            report.messages_checked += 1;
            let msg: MessageRecord = decode("message", &v)?;
            let exists = *present.entry(msg.blob.clone()).or_insert_with(|| intact(&BlobId(msg.blob.clone())));
            if exists {
                *refs.entry(msg.blob).or_default() += 1;
            } else {
                error!(blob = %msg.blob, "index entry without body file: removing it");
                report.entries_without_body += 1;
                dangling.remove(k);
            }
        }
        mail.apply(dangling)?;

        // 2. Mailboxes the journals know, oldest history first.
        let addresses: HashMap<String, AccountId> =
            self.accounts()?.into_iter().map(|(id, addr)| (addr.to_ascii_lowercase(), id)).collect();
        let mut resolver =
            Resolver { store: self, histories: &histories, addresses, mailboxes: HashMap::new(), created: 0 };
        for (h, hist) in histories.iter().enumerate().rev() {
            for id in hist.state.mailboxes.keys() {
                resolver.mailbox(h, *id)?;
            }
        }
        resolver.restore_subscriptions()?;

        // 3. Body files nobody refers to: journal, else header.
        let placed: Vec<_> = histories.iter().map(|h| h.state.by_blob()).collect();
        let mut items = Vec::new();
        for id in self.inner.blobs.list()? {
            if refs.contains_key(&id.0) {
                continue;
            }
            let known = histories.iter().position(|h| h.state.known.contains(&id.0));
            if let Some(h) = known
                && !placed.get(h).is_some_and(|p| p.contains_key(id.0.as_str()))
            {
                info!(blob = %id.0, "body file of an expunged message: removing it");
                self.inner.blobs.delete(&id)?;
                report.files_expunged += 1;
                continue;
            }
            let info = match self.inner.blobs.info(&id) {
                Ok(i) => i,
                Err(e) if !intact(&id) => {
                    warn!(blob = %id.0, error = %e, "torn body file written without fsync: removing it");
                    self.inner.blobs.delete(&id)?;
                    report.torn_files_removed += 1;
                    continue;
                }
                Err(e) => {
                    warn!(blob = %id.0, error = %e, "unreadable body file left in place");
                    continue;
                }
            };
            // A header naming another file: a spare's earlier octets under
            // this name (its rename or overwrite did not survive the stop).
            let misnamed = info.header.id.as_deref().is_some_and(|named| named != id.0);
            if misnamed || !intact(&id) {
                warn!(blob = %id.0, "body file does not hold what its name says: removing it");
                self.inner.blobs.delete(&id)?;
                report.torn_files_removed += 1;
                continue;
            }
            let before = items.len();
            match known {
                Some(h) => self.journal_items(&mut resolver, h, &info, placed.get(h), &mut items)?,
                None => {
                    self.header_items(&mut resolver, &info, &mut items)?;
                    report.files_from_header += u64::from(items.len() > before);
                }
            }
            if items.len() == before {
                // Every owner was deleted: the mail went with its account.
                warn!(blob = %id.0, "body file without a living owner: removing it");
                self.inner.blobs.delete(&id)?;
                report.files_without_owner += 1;
                continue;
            }
            report.files_reindexed += 1;
        }
        report.mailboxes_created = resolver.created;
        // Oldest history first, then by old UID, header placements last in arrival order.
        items.sort_by(|a, b| (a.mailbox, a.rank, a.uid, &a.blob).cmp(&(b.mailbox, b.rank, b.uid, &b.blob)));
        let mut applied = Vec::new();
        let mut reindexed = 0;
        for chunk in items.chunks(REINDEX_BATCH) {
            let _g = self.lock();
            let mut ix = Indexer::new(self);
            for it in chunk {
                let msg = MessageRecord {
                    blob: it.blob.0.clone(),
                    offset: it.offset,
                    size: it.size,
                    internal_date: it.internal_date,
                    flags: it.flags.clone(),
                    modseq: ModSeq(0),
                };
                ix.insert(it.mailbox, msg)?;
                *refs.entry(it.blob.0.clone()).or_default() += 1;
            }
            let done = ix.apply()?;
            reindexed += done.stored.len() as u64;
            applied.push(done);
        }
        report.messages_reindexed = reindexed;

        // 4. Recompute reference counts, message counts and usage.
        self.recount(&refs)?;
        Ok((report, applied))
    }

    /// The live placements history `h` records for the file.
    fn journal_items(
        &self,
        resolver: &mut Resolver<'_>,
        h: usize,
        info: &BlobInfo,
        placed: Option<&Placed<'_>>,
        items: &mut Vec<Item>,
    ) -> Result<()> {
        let Some(list) = placed.and_then(|p| p.get(info.id.0.as_str())) else { return Ok(()) };
        // Ranks count from the oldest history, so older placements sort first.
        let rank = resolver.histories.len() - 1 - h;
        for (mailbox, uid, flags) in list {
            let Some(target) = resolver.mailbox(h, *mailbox)? else { continue };
            items.push(Item {
                mailbox: target,
                rank,
                uid: *uid,
                blob: info.id.clone(),
                offset: info.body_offset,
                size: info.body_len,
                internal_date: info.header.internal_date,
                flags: (*flags).clone(),
            });
        }
        Ok(())
    }

    /// The placements the file's header names (where it was first delivered).
    fn header_items(&self, resolver: &mut Resolver<'_>, info: &BlobInfo, items: &mut Vec<Item>) -> Result<()> {
        for p in &info.header.placements {
            let account = match resolver.addresses.get(&p.address.to_ascii_lowercase()) {
                Some(a) => *a,
                None if self.account_address(p.account)?.is_some() => p.account,
                None => continue,
            };
            let Some(mailbox) = resolver.by_name(account, &p.mailbox, None, false)? else { continue };
            items.push(Item {
                mailbox,
                rank: resolver.histories.len(),
                uid: Uid::MAX,
                blob: info.id.clone(),
                offset: info.body_offset,
                size: info.body_len,
                internal_date: info.header.internal_date,
                flags: p.flags.clone(),
            });
        }
        Ok(())
    }

    fn recount(&self, refs: &BTreeMap<String, u64>) -> Result<()> {
        let _g = self.lock();
        let mail = &self.inner.mail;
        let mut batch = Batch::default();
        for (k, _) in mail.scan_prefix(&[keys::BLOB_REFS])? {
            let blob = k.get(1..).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default();
            if !refs.contains_key(blob) {
                batch.remove(k);
            }
        }
        for (blob, n) in refs {
            batch.insert(keys::blob_refs(blob), n.to_be_bytes().to_vec());
        }
        let mut usage: HashMap<u64, Usage> = HashMap::new();
        let mut seen_accounts = HashSet::new();
        for (_, v) in mail.scan_prefix(&[keys::MAILBOX_BY_ID])? {
            let mut rec: MailboxRecord = decode("mailbox", &v)?;
            let msgs = mail.scan_prefix(&keys::messages_of(MailboxId(rec.id)))?;
            let u = usage.entry(rec.account).or_default();
            seen_accounts.insert(rec.account);
            let mut counts = Counts::default();
            let mut keywords = rec.keywords.clone().unwrap_or_default();
            let mut unseen = BTreeSet::new();
            for (k, m) in &msgs {
                let m: MessageRecord = decode("message", m)?;
                u.bytes += m.size;
                u.messages += 1;
                counts.add(m.size, &m.flags);
                keywords.extend(m.flags.iter().filter(|f| !f.starts_with('\\')).map(str::to_owned));
                if !m.flags.contains(SEEN) {
                    unseen.extend(keys::uid_of_message_key(k));
                }
            }
            // Entries removed above (no body file) may have left unseen keys.
            let id = MailboxId(rec.id);
            for (k, _) in mail.scan_prefix(&keys::unseen_of(id))? {
                if !keys::uid_of_message_key(&k).is_some_and(|uid| unseen.remove(&uid)) {
                    batch.remove(k);
                }
            }
            for uid in unseen {
                batch.insert(keys::unseen(id, uid), Vec::new());
            }
            rec.exists = msgs.len() as u32;
            rec.counts = Some(counts);
            rec.keywords = Some(keywords);
            rec.highest_modseq = ModSeq(rec.highest_modseq.0.saturating_add(MODSEQ_GAP).min(MODSEQ_MAX));
            batch.insert(keys::mailbox_by_id(id), encode(&rec)?);
        }
        for (account, u) in usage {
            batch.insert(keys::usage(AccountId(account)), encode(&u)?);
        }
        // Counters and reference counts only: stale reference keys removed
        // here are not expunges, so they must not become journal tombstones.
        mail.apply_unjournaled(batch)
    }
}
