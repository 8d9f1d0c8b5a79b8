//! Reconciling body files with the index. Runs at startup after an unclean
//! stop, and with `force` for `coimail store rebuild` on an empty index.
//!
//! Rules:
//! - an index entry whose body file is gone is removed (the mail is lost and
//!   we say so in the log; the index must not promise what it cannot serve);
//! - a body file no entry refers to is indexed again from its header into the
//!   mailboxes it names, creating missing mailboxes. Such a file is either a
//!   delivery whose index commit did not become durable (its sender got no
//!   250 and may send it again: a duplicate beats a loss) or a message whose
//!   index was lost;
//! - reference counts, mailbox message counts and counters (unseen,
//!   deleted, size) and usage are recomputed.

use crate::blob::BlobInfo;
use crate::keys;
use crate::kv::Batch;
use crate::message::Target;
use crate::records::{Counts, MailboxRecord, MessageRecord, Usage, decode, encode};
use crate::{AccountId, BlobId, MailboxId, Result, Store, StoreError};
use std::collections::{BTreeMap, HashMap, HashSet};
use tracing::{error, info, warn};

/// What reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub messages_checked: u64,
    pub entries_without_body: u64,
    pub files_reindexed: u64,
    pub messages_reindexed: u64,
    pub files_without_owner: u64,
    pub temp_files_removed: u64,
}

impl Store {
    /// Reconciles when the last stop was unclean, or always with `force`.
    pub async fn reconcile(&self, force: bool) -> Result<ReconcileReport> {
        if !force && !self.was_unclean() {
            return Ok(ReconcileReport::default());
        }
        let this = self.clone();
        let (report, stored) = tokio::task::spawn_blocking(move || this.reconcile_blocking())
            .await
            .map_err(|e| StoreError::Engine(format!("reconcile task failed: {e}")))??;
        self.flush().await?;
        for s in stored {
            self.publish_appended(std::slice::from_ref(&s));
        }
        info!(?report, "store reconciled");
        Ok(report)
    }

    fn reconcile_blocking(&self) -> Result<(ReconcileReport, Vec<crate::Stored>)> {
        let mut report =
            ReconcileReport { temp_files_removed: self.inner.blobs.clear_tmp()? as u64, ..Default::default() };
        let mail = &self.inner.mail;

        // 1. Index entries must point at existing body files.
        let mut refs: BTreeMap<String, u64> = BTreeMap::new();
        let mut present: HashMap<String, bool> = HashMap::new();
        let mut dangling = Batch::default();
        for (k, v) in mail.scan_prefix(&[keys::MESSAGE])? {
            report.messages_checked += 1;
            let msg: MessageRecord = decode("message", &v)?;
            let exists =
                *present.entry(msg.blob.clone()).or_insert_with(|| self.inner.blobs.exists(&BlobId(msg.blob.clone())));
            if exists {
                *refs.entry(msg.blob).or_default() += 1;
            } else {
                error!(blob = %msg.blob, "index entry without body file: removing it");
                report.entries_without_body += 1;
                dangling.remove(k);
            }
        }
        mail.apply(dangling)?;

        // 2. Body files nobody refers to are indexed again from their headers.
        let addresses: HashMap<String, AccountId> =
            self.accounts()?.into_iter().map(|(id, addr)| (addr.to_ascii_lowercase(), id)).collect();
        let mut stored = Vec::new();
        for id in self.inner.blobs.list()? {
            if refs.contains_key(&id.0) {
                continue;
            }
            let info = match self.inner.blobs.info(&id) {
                Ok(i) => i,
                Err(e) => {
                    warn!(blob = %id.0, error = %e, "unreadable body file left in place");
                    continue;
                }
            };
            let targets = self.targets_for(&info, &addresses)?;
            if targets.is_empty() {
                // Every owner was deleted: the mail went with its account.
                warn!(blob = %id.0, "body file without a living owner: removing it");
                self.inner.blobs.delete(&id)?;
                report.files_without_owner += 1;
                continue;
            }
            let s =
                self.index_locked(&id, info.body_offset, info.body_len, info.header.internal_date, &targets, true)?;
            report.files_reindexed += 1;
            report.messages_reindexed += s.len() as u64;
            *refs.entry(id.0.clone()).or_default() += s.len() as u64;
            stored.extend(s);
        }

        // 3. Recompute reference counts, message counts and usage.
        self.recount(&refs)?;
        Ok((report, stored))
    }

    fn targets_for(&self, info: &BlobInfo, addresses: &HashMap<String, AccountId>) -> Result<Vec<Target>> {
        let mut targets = Vec::new();
        for p in &info.header.placements {
            let account = match addresses.get(&p.address.to_ascii_lowercase()) {
                Some(a) => *a,
                None if self.account_address(p.account)?.is_some() => p.account,
                None => continue,
            };
            targets.push(Target { account, mailbox: p.mailbox.clone(), flags: p.flags.clone() });
        }
        Ok(targets)
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
            for (_, m) in &msgs {
                let m: MessageRecord = decode("message", m)?;
                u.bytes += m.size;
                u.messages += 1;
                counts.add(m.size, &m.flags);
            }
            if rec.exists as usize != msgs.len() || rec.counts != Some(counts) {
                rec.exists = msgs.len() as u32;
                rec.counts = Some(counts);
                batch.insert(keys::mailbox_by_id(MailboxId(rec.id)), encode(&rec)?);
            }
        }
        for (account, u) in usage {
            batch.insert(keys::usage(AccountId(account)), encode(&u)?);
        }
        mail.apply(batch)
    }
}
