//! Messages: deliver/append (UID and modseq allocation, group commit),
//! reading, flags, expunge, usage.

use crate::blob::BlobHeader;
use crate::keys;
use crate::kv::Batch;
use crate::names;
use crate::records::{MailboxRecord, MessageRecord, Usage, decode, encode};
use crate::{
    AccountId, BlobId, Change, Flags, MailboxId, MessageMeta, ModSeq, Placement, Result, Store, StoreError, Stored, Uid,
};
use std::collections::{BTreeMap, HashMap};

/// How STORE combines the given flags with the message's (RFC 3501 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// A flag is a system flag (canonical spelling) or a keyword atom (RFC 3501 §9 `flag-keyword`).
fn check_flags(flags: &Flags) -> Result<()> {
    for f in flags.iter() {
        let ok = if f.starts_with('\\') {
            SYSTEM_FLAGS.contains(&f)
        } else {
            !f.is_empty() && f.len() <= 255 && f.bytes().all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
        };
        if !ok {
            return Err(StoreError::Invalid(format!("invalid flag {f:?}")));
        }
    }
    Ok(())
}

/// One placement resolved to its mailbox, ready to be indexed.
pub(crate) struct Target {
    pub account: AccountId,
    pub mailbox: String,
    pub flags: Flags,
}

impl Store {
    /// Stores one message for every placement, with ONE body file shared by
    /// all of them. Returns once the message is durable; only then may the
    /// caller acknowledge it (SMTP 250, APPEND OK).
    pub async fn deliver(&self, raw: &[u8], internal_date: i64, placements: Vec<Placement>) -> Result<Vec<Stored>> {
        if placements.is_empty() {
            return Err(StoreError::Invalid("no recipients".into()));
        }
        let mut targets = Vec::with_capacity(placements.len());
        let mut canonical = placements;
        for p in &mut canonical {
            check_flags(&p.flags)?;
            p.mailbox = names::canonical(&p.mailbox)?;
            targets.push(Target { account: p.account, mailbox: p.mailbox.clone(), flags: p.flags.clone() });
        }
        let header = BlobHeader { internal_date, placements: canonical };
        let body = raw.to_vec();
        let (blob, offset) = self.blocking(move |b| b.write(&header, &body)).await?;
        let size = raw.len() as u64;
        let stored = match self.index_locked(&blob, offset, size, internal_date, &targets, false) {
            Ok(s) => s,
            Err(e) => {
                // Nothing refers to the file: remove it so reconcile does not deliver it later.
                let b = blob.clone();
                let _ = self.blocking(move |s| s.delete(&b)).await;
                return Err(e);
            }
        };
        self.flush().await?;
        self.publish_appended(&stored);
        Ok(stored)
    }

    /// IMAP APPEND: one message into one mailbox of the account.
    pub async fn append(
        &self,
        account: AccountId,
        mailbox: &str,
        raw: &[u8],
        flags: Flags,
        internal_date: i64,
    ) -> Result<Stored> {
        let address =
            self.account_address(account)?.ok_or_else(|| StoreError::NotFound(format!("account {}", account.0)))?;
        let placement = Placement { account, address, mailbox: mailbox.to_owned(), flags };
        let mut stored = self.deliver(raw, internal_date, vec![placement]).await?;
        stored.pop().ok_or_else(|| StoreError::Engine("append stored nothing".into()))
    }

    /// Indexes a written body file for `targets` under the write lock.
    /// `create_missing` creates absent mailboxes (used when re-indexing files).
    pub(crate) fn index_locked(
        &self,
        blob: &BlobId,
        offset: u64,
        size: u64,
        internal_date: i64,
        targets: &[Target],
        create_missing: bool,
    ) -> Result<Vec<Stored>> {
        let _g = self.lock();
        let mut records: HashMap<(AccountId, String), MailboxRecord> = HashMap::new();
        let mut usage: HashMap<AccountId, Usage> = HashMap::new();
        let mut batch = Batch::default();
        let mut stored = Vec::with_capacity(targets.len());
        for t in targets {
            let key = (t.account, t.mailbox.clone());
            if !records.contains_key(&key) {
                let rec = match self.mailbox_record(t.account, &t.mailbox)? {
                    Some(r) => r,
                    None if create_missing && self.inner.mail.get(&keys::account(t.account))?.is_some() => {
                        self.create_mailbox_locked(t.account, &t.mailbox, None, false)?;
                        self.mailbox_record(t.account, &t.mailbox)?
                            .ok_or_else(|| StoreError::Engine("created mailbox vanished".into()))?
                    }
                    None => return Err(StoreError::NotFound(format!("mailbox {}", t.mailbox))),
                };
                records.insert(key.clone(), rec);
            }
            let rec = records.get_mut(&key).ok_or_else(|| StoreError::Engine("mailbox record missing".into()))?;
            let uid = rec.uid_next;
            rec.uid_next =
                uid.checked_add(1).ok_or_else(|| StoreError::Invalid("mailbox UID space exhausted".into()))?;
            rec.highest_modseq += 1;
            rec.exists += 1;
            let msg = MessageRecord {
                blob: blob.0.clone(),
                offset,
                size,
                internal_date,
                flags: t.flags.clone(),
                modseq: rec.highest_modseq,
            };
            batch.insert(keys::message(MailboxId(rec.id), uid), encode(&msg)?);
            let u = match usage.get_mut(&t.account) {
                Some(u) => u,
                None => usage.entry(t.account).or_insert(self.usage(t.account)?),
            };
            u.bytes += size;
            u.messages += 1;
            stored.push(Stored { account: t.account, mailbox: MailboxId(rec.id), uid_validity: rec.uid_validity, uid });
        }
        let refs = self.blob_refs(blob)? + targets.len() as u64;
        batch.insert(keys::blob_refs(&blob.0), refs.to_be_bytes().to_vec());
        for (account, u) in &usage {
            batch.insert(keys::usage(*account), encode(u)?);
        }
        {
            // Hide the new UIDs until they are durable (see `publish_appended`).
            let mut visible = self.visible();
            for rec in records.values() {
                let first_new =
                    stored.iter().filter(|s| s.mailbox.0 == rec.id).map(|s| s.uid).min().unwrap_or(rec.uid_next);
                visible.entry(MailboxId(rec.id)).or_insert(first_new);
            }
        }
        for rec in records.values() {
            batch.insert(keys::mailbox_by_id(MailboxId(rec.id)), encode(rec)?);
        }
        self.inner.mail.apply(batch)?;
        Ok(stored)
    }

    /// After a flush: every UID allocated before the flush began is durable,
    /// so the watermark may move past ours (and any earlier in-flight ones).
    pub(crate) fn publish_appended(&self, stored: &[Stored]) {
        let mut visible = self.visible();
        for s in stored {
            let mark = visible.entry(s.mailbox).or_insert(0);
            if *mark <= s.uid {
                *mark = s.uid + 1;
                // Published under the watermark lock so subscribers see
                // watermarks in increasing order.
                self.inner.bus.publish(s.account, Change::Appended { mailbox: s.mailbox, uid_next: *mark });
            }
        }
    }

    fn blob_refs(&self, blob: &BlobId) -> Result<u64> {
        Ok(self
            .inner
            .mail
            .get(&keys::blob_refs(&blob.0))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Storage the account uses.
    pub fn usage(&self, account: AccountId) -> Result<Usage> {
        match self.inner.mail.get(&keys::usage(account))? {
            Some(v) => decode("usage", &v),
            None => Ok(Usage::default()),
        }
    }

    fn visible_uid_next(&self, rec: &MailboxRecord) -> Uid {
        self.visible().get(&MailboxId(rec.id)).copied().unwrap_or(rec.uid_next)
    }

    /// The mailbox's durable messages in UID order.
    pub fn messages(&self, account: AccountId, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        let rec = self.owned_mailbox(account, mailbox)?;
        let end = self.visible_uid_next(&rec);
        let rows = self.inner.mail.range(&keys::message(mailbox, 0), &keys::message(mailbox, end))?;
        rows.into_iter()
            .map(|(k, v)| {
                let uid = keys::uid_of_message_key(&k).ok_or_else(|| StoreError::Corrupt("message key".into()))?;
                let r: MessageRecord = decode("message", &v)?;
                Ok(MessageMeta {
                    mailbox,
                    uid,
                    size: r.size,
                    internal_date: r.internal_date,
                    flags: r.flags,
                    modseq: r.modseq,
                    blob: BlobId(r.blob),
                    body_offset: r.offset,
                })
            })
            .collect()
    }

    /// The message exactly as it was delivered.
    pub async fn read_message(&self, meta: &MessageMeta) -> Result<Vec<u8>> {
        let (blob, offset, size) = (meta.blob.clone(), meta.body_offset, meta.size);
        self.blocking(move |b| b.read(&blob, offset, size)).await
    }

    /// Changes flags of the given messages (RFC 3501 §6.4.6). Returns every
    /// addressed message that exists, with its flags and modseq afterwards;
    /// only real changes get a new modseq and are published.
    pub async fn store_flags(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> Result<Vec<(Uid, Flags, ModSeq)>> {
        check_flags(flags)?;
        let mut result = Vec::new();
        let mut changed = Vec::new();
        {
            let _g = self.lock();
            let mut rec = self.owned_mailbox(account, mailbox)?;
            let end = self.visible_uid_next(&rec);
            let mut batch = Batch::default();
            for &uid in uids {
                if uid >= end {
                    continue;
                }
                let key = keys::message(mailbox, uid);
                let Some(v) = self.inner.mail.get(&key)? else { continue };
                let mut msg: MessageRecord = decode("message", &v)?;
                let new: Flags = match op {
                    FlagOp::Add => msg.flags.0.union(&flags.0).cloned().collect(),
                    FlagOp::Remove => msg.flags.0.difference(&flags.0).cloned().collect(),
                    FlagOp::Replace => flags.clone(),
                };
                if new != msg.flags {
                    rec.highest_modseq += 1;
                    msg.flags = new;
                    msg.modseq = rec.highest_modseq;
                    batch.insert(key, encode(&msg)?);
                    changed.push((uid, msg.flags.clone(), msg.modseq));
                }
                result.push((uid, msg.flags, msg.modseq));
            }
            if !batch.is_empty() {
                batch.insert(keys::mailbox_by_id(mailbox), encode(&rec)?);
                self.inner.mail.apply(batch)?;
            }
        }
        if !changed.is_empty() {
            self.flush().await?;
            for (uid, flags, modseq) in changed {
                self.inner.bus.publish(account, Change::FlagsChanged { mailbox, uid, flags, modseq });
            }
        }
        Ok(result)
    }

    /// Removes messages; returns the UIDs that existed. Body files go when
    /// their last reference does, after the index change is durable.
    pub async fn expunge(&self, account: AccountId, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>> {
        let mut gone = Vec::new();
        let mut unreferenced = Vec::new();
        let modseq;
        {
            let _g = self.lock();
            let mut rec = self.owned_mailbox(account, mailbox)?;
            let end = self.visible_uid_next(&rec);
            let mut batch = Batch::default();
            let mut refs: BTreeMap<String, u64> = BTreeMap::new();
            let mut usage = self.usage(account)?;
            for &uid in uids {
                if uid >= end {
                    continue;
                }
                let key = keys::message(mailbox, uid);
                let Some(v) = self.inner.mail.get(&key)? else { continue };
                let msg: MessageRecord = decode("message", &v)?;
                batch.remove(key);
                let blob = BlobId(msg.blob);
                let n = match refs.get(&blob.0) {
                    Some(n) => *n,
                    None => self.blob_refs(&blob)?,
                };
                refs.insert(blob.0, n.saturating_sub(1));
                usage.bytes = usage.bytes.saturating_sub(msg.size);
                usage.messages = usage.messages.saturating_sub(1);
                gone.push(uid);
            }
            if gone.is_empty() {
                return Ok(gone);
            }
            for (blob, n) in refs {
                if n == 0 {
                    batch.remove(keys::blob_refs(&blob));
                    unreferenced.push(BlobId(blob));
                } else {
                    batch.insert(keys::blob_refs(&blob), n.to_be_bytes().to_vec());
                }
            }
            rec.highest_modseq += 1;
            modseq = rec.highest_modseq;
            rec.exists = rec.exists.saturating_sub(gone.len() as u32);
            // QRESYNC (RFC 7162 §3.2.10) needs to know what vanished since a modseq.
            batch.insert(keys::expunge_log(mailbox, modseq), encode(&gone)?);
            batch.insert(keys::mailbox_by_id(mailbox), encode(&rec)?);
            batch.insert(keys::usage(account), encode(&usage)?);
            self.inner.mail.apply(batch)?;
        }
        self.flush().await?;
        if !unreferenced.is_empty() {
            self.blocking(move |b| unreferenced.iter().try_for_each(|id| b.delete(id))).await?;
        }
        self.inner.bus.publish(account, Change::Expunged { mailbox, uids: gone.clone(), modseq });
        Ok(gone)
    }

    /// UIDs expunged from the mailbox after `modseq` (for QRESYNC VANISHED).
    pub fn expunged_since(&self, account: AccountId, mailbox: MailboxId, modseq: ModSeq) -> Result<Vec<Uid>> {
        self.owned_mailbox(account, mailbox)?;
        let rows = self
            .inner
            .mail
            .range(&keys::expunge_log(mailbox, modseq.saturating_add(1)), &keys::expunge_log(mailbox, u64::MAX))?;
        let mut out = Vec::new();
        for (_, v) in rows {
            out.extend(decode::<Vec<Uid>>("expunge log", &v)?);
        }
        out.sort_unstable();
        Ok(out)
    }
}
