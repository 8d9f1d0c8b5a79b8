//! Messages: deliver/append (UID and modseq allocation, group commit),
//! reading, flags, expunge, usage. Copy and move are in `copy.rs`; the
//! shared index-change machinery in `index.rs`.

use crate::blob::BlobHeader;
use crate::index::{Applied, Indexer};
use crate::keys;
use crate::kv::Batch;
use crate::names;
use crate::publish::{Pending, Publication};
use crate::records::{MailboxRecord, MessageRecord, SEEN, Usage, decode, encode};
use crate::{
    AccountId, BlobId, Change, Flags, MailboxId, MessageMeta, ModSeq, Placement, Result, Store, StoreError, Stored, Uid,
};
use std::collections::HashMap;
use std::ops::RangeInclusive;

/// How STORE combines the given flags with the message's (RFC 3501 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// A flag is a system flag (canonical spelling) or a keyword atom (RFC 3501 §9 `flag-keyword`).
pub(crate) fn check_flags(flags: &Flags) -> Result<()> {
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

/// The index targets of `placements` and the body file header naming them,
/// with mailbox names canonical and flags checked.
pub(crate) fn targets(placements: Vec<Placement>, internal_date: i64) -> Result<(Vec<Target>, BlobHeader)> {
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
    Ok((targets, BlobHeader::new(internal_date, canonical)))
}

/// One message of a multi-message APPEND (RFC 3502).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub raw: Vec<u8>,
    pub flags: Flags,
    /// INTERNALDATE, seconds since the Unix epoch.
    pub internal_date: i64,
}

/// The outcome of a conditional flag change (RFC 7162 §3.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsUpdate {
    /// Every addressed message that exists and passed the check, with its
    /// flags and modseq afterwards.
    pub updated: Vec<(Uid, Flags, ModSeq)>,
    /// The messages of `updated` whose flags really changed (and got a new modseq).
    pub changed: Vec<Uid>,
    /// Messages left alone because they changed after `unchanged_since`.
    pub modified: Vec<Uid>,
    /// The messages of `changed` that went from unseen to `\Seen`, with
    /// their flags BEFORE the change (COI's `seen` filter moves chat messages
    /// on exactly this transition, judged by the keywords they had: a
    /// `STORE FLAGS (\Seen)` that drops `$Chat` still moves the chat).
    pub seen_gained: Vec<(Uid, Flags)>,
    /// Every message of `updated` with its modseq BEFORE this change (the
    /// same as after when nothing changed): a session that knows that modseq
    /// knows every earlier change of the message.
    pub before: Vec<(Uid, ModSeq)>,
}

impl Store {
    /// Stores one message for every placement, with ONE body file shared by
    /// all of them. Returns once the message is durable; only then may the
    /// caller acknowledge it (SMTP 250, APPEND OK).
    pub async fn deliver(&self, raw: &[u8], internal_date: i64, placements: Vec<Placement>) -> Result<Vec<Stored>> {
        if placements.is_empty() {
            return Err(StoreError::Invalid("no recipients".into()));
        }
        self.check_space()?;
        let (targets, header) = targets(placements, internal_date)?;
        let body = raw.to_vec();
        let (blob, offset) = self.blocking(move |b| b.write(&header, &body)).await?;
        self.inner.space.charge(raw.len() as u64);
        let size = raw.len() as u64;
        let applied = match self.index_locked(&blob, offset, size, internal_date, &targets, false) {
            Ok(a) => a,
            Err(e) => {
                // Nothing refers to the file: remove it so reconcile does not deliver it later.
                let b = blob.clone();
                let _ = self.blocking(move |s| s.delete(&b)).await;
                return Err(e);
            }
        };
        let stored = applied.stored.clone();
        self.finish(applied).await?;
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
    ) -> Result<Applied> {
        let _g = self.lock();
        // Quota (quota.rs); re-indexing acknowledged files after a crash is never refused.
        if !create_missing {
            self.check_quota_targets(targets, size)?;
        }
        let mut ix = Indexer::new(self);
        let mut ids: HashMap<(AccountId, &str), MailboxId> = HashMap::new();
        for t in targets {
            let id = match ids.get(&(t.account, t.mailbox.as_str())) {
                Some(id) => *id,
                None => {
                    let id = self.target_mailbox(t, create_missing)?;
                    ids.insert((t.account, t.mailbox.as_str()), id);
                    id
                }
            };
            let msg = MessageRecord {
                blob: blob.0.clone(),
                offset,
                size,
                internal_date,
                flags: t.flags.clone(),
                modseq: ModSeq(0),
            };
            ix.insert(id, msg)?;
        }
        ix.apply()
    }

    /// The mailbox a placement names; the caller holds the write lock.
    fn target_mailbox(&self, t: &Target, create_missing: bool) -> Result<MailboxId> {
        match self.mailbox_record(t.account, &t.mailbox)? {
            Some(r) => Ok(MailboxId(r.id)),
            None if create_missing && self.inner.mail.get(&keys::account(t.account))?.is_some() => {
                Ok(self.create_mailbox_locked(t.account, &t.mailbox, None, false)?.id)
            }
            None => Err(StoreError::NotFound(format!("mailbox {}", t.mailbox))),
        }
    }

    /// Storage the account uses.
    pub fn usage(&self, account: AccountId) -> Result<Usage> {
        match self.inner.mail.get(&keys::usage(account))? {
            Some(v) => decode("usage", &v),
            None => Ok(Usage::default()),
        }
    }

    /// The UID below which every message of the mailbox is durable and visible.
    pub(crate) fn visible_uid_next(&self, rec: &MailboxRecord) -> Uid {
        self.visible().get(&MailboxId(rec.id)).copied().unwrap_or(rec.uid_next)
    }

    /// The mailbox's durable messages in UID order.
    pub fn messages(&self, account: AccountId, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        self.messages_in(account, mailbox, &[Uid::MIN..=Uid::MAX])
    }

    /// The mailbox's durable messages whose UIDs fall in `ranges`, in UID
    /// order without duplicates. Reads only those ranges of the index, so a
    /// session can look at a few messages of a large mailbox cheaply.
    pub fn messages_in(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        ranges: &[RangeInclusive<Uid>],
    ) -> Result<Vec<MessageMeta>> {
        let rec = self.owned_mailbox(account, mailbox)?;
        let Some(last) = self.visible_uid_next(&rec).prev() else { return Ok(Vec::new()) };
        let mut spans: Vec<(Uid, Uid)> =
            ranges.iter().map(|r| (*r.start(), (*r.end()).min(last))).filter(|(a, b)| a <= b).collect();
        spans.sort_unstable();
        // Disjoint, so no message is listed twice.
        let mut disjoint = Vec::with_capacity(spans.len());
        let mut next = Uid(0); // lowest UID not yet covered
        for (a, b) in spans {
            let a = a.max(next);
            if a <= b {
                disjoint.push((a, b));
                // `b <= last < Uid::MAX`, so `b + 1` cannot overflow (nor saturate).
                next = b.saturating_next();
            }
        }
        if let Some(listed) = self.cached_messages(mailbox, rec.exists, &disjoint)? {
            return Ok(listed);
        }
        let mut out = Vec::new();
        for (a, b) in disjoint {
            out.extend(self.read_messages(mailbox, a, b)?);
        }
        Ok(out)
    }

    /// The messages of `mailbox` in `spans` (sorted, disjoint) from the
    /// listings cache, which loads the whole mailbox on first use; `None`
    /// when the mailbox is too large to cache.
    fn cached_messages(
        &self,
        mailbox: MailboxId,
        exists: u32,
        spans: &[(Uid, Uid)],
    ) -> Result<Option<Vec<MessageMeta>>> {
        let whole = || self.read_messages(mailbox, Uid::MIN, Uid::MAX);
        self.inner.mail.listings().messages_in(mailbox, exists, spans, whole)
    }

    /// The index's records of `mailbox` from UID `a` to `b`, both included.
    pub(crate) fn read_messages(&self, mailbox: MailboxId, a: Uid, b: Uid) -> Result<Vec<MessageMeta>> {
        // The least key after `b`'s, also for `Uid::MAX`.
        let mut end = keys::message(mailbox, b);
        end.push(0);
        let mut out = Vec::new();
        self.inner.mail.visit_range(&keys::message(mailbox, a), &end, |k, v| {
            out.push(meta_of(mailbox, k, v)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The records of `uids` below `end` that exist, for a read-modify-write
    /// under the write lock: from the listings cache when the mailbox is
    /// in it (or small enough to load), else read one by one.
    fn records_at(
        &self,
        mailbox: MailboxId,
        exists: u32,
        uids: &[Uid],
        end: Uid,
    ) -> Result<std::collections::HashMap<Uid, MessageRecord>> {
        let wanted: Vec<(Uid, Uid)> = uids.iter().filter(|u| **u < end).map(|&u| (u, u)).collect();
        if let Some(listed) = self.cached_messages(mailbox, exists, &wanted)? {
            return Ok(listed.into_iter().map(|m| (m.uid, MessageRecord::from(m))).collect());
        }
        let mut out = std::collections::HashMap::new();
        for (uid, _) in wanted {
            if let Some(v) = self.inner.mail.get(&keys::message(mailbox, uid))? {
                out.insert(uid, decode("message", &v)?);
            }
        }
        Ok(out)
    }

    /// The message exactly as it was delivered.
    pub async fn read_message(&self, meta: &MessageMeta) -> Result<Vec<u8>> {
        let (blob, offset, size) = (meta.blob.clone(), meta.body_offset, meta.size);
        self.blocking(move |b| b.read(&blob, offset, size)).await
    }

    /// [`Store::read_message`] for a caller already on a blocking thread
    /// (inside `spawn_blocking`, say, reading many messages in a loop): a
    /// plain file read, without the hop to the blocking pool that
    /// `read_message` pays per message. It blocks the thread it runs on
    /// until the file is read: from an async task only for a few small
    /// files, which the page cache usually holds (IMAP FETCH does, up to
    /// 64 KiB a batch).
    pub fn read_message_blocking(&self, meta: &MessageMeta) -> Result<Vec<u8>> {
        self.inner.blobs.read(&meta.blob, meta.body_offset, meta.size)
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
        Ok(self.store_flags_if(account, mailbox, uids, op, flags, None).await?.updated)
    }

    /// [`Store::store_flags`] with CONDSTORE's UNCHANGEDSINCE (RFC 7162
    /// §3.1.3): a message whose modseq is above `unchanged_since` is left
    /// alone and reported in [`FlagsUpdate::modified`]. All changes are one commit.
    pub async fn store_flags_if(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagsUpdate> {
        check_flags(flags)?;
        let uids = sorted_unique(uids);
        let mut result = FlagsUpdate::default();
        let mut changed = Vec::new();
        // A visible UID no longer in the index: expunged, perhaps by a commit
        // not yet published (see the end).
        let mut gone = false;
        let pending = {
            let _g = self.lock();
            let mut rec = self.owned_mailbox(account, mailbox)?;
            let end = self.visible_uid_next(&rec);
            let mut batch = Batch::default();
            let current = self.records_at(mailbox, rec.exists, &uids, end)?;
            for &uid in &uids {
                if uid >= end {
                    continue;
                }
                let key = keys::message(mailbox, uid);
                let Some(mut msg) = current.get(&uid).cloned() else {
                    gone = true;
                    continue;
                };
                if unchanged_since.is_some_and(|since| msg.modseq > since) {
                    result.modified.push(uid);
                    continue;
                }
                let new: Flags = match op {
                    FlagOp::Add => msg.flags.0.union(&flags.0).cloned().collect(),
                    FlagOp::Remove => msg.flags.0.difference(&flags.0).cloned().collect(),
                    FlagOp::Replace => flags.clone(),
                };
                result.before.push((uid, msg.modseq));
                if new != msg.flags {
                    if new.contains("\\Seen") && !msg.flags.contains("\\Seen") {
                        result.seen_gained.push((uid, msg.flags.clone()));
                    }
                    rec.highest_modseq = rec.highest_modseq.next();
                    if let Some(c) = &mut rec.counts {
                        c.reflag(msg.size, &msg.flags, &new);
                    }
                    rec.define_keywords(&new);
                    match (msg.flags.contains(SEEN), new.contains(SEEN)) {
                        (true, false) => batch.insert(keys::unseen(mailbox, uid), Vec::new()),
                        (false, true) => batch.remove(keys::unseen(mailbox, uid)),
                        _ => {}
                    }
                    msg.flags = new;
                    msg.modseq = rec.highest_modseq;
                    batch.insert(key, encode(&msg)?);
                    changed.push((uid, msg.flags.clone(), msg.modseq));
                    result.changed.push(uid);
                }
                result.updated.push((uid, msg.flags, msg.modseq));
            }
            if batch.is_empty() {
                None
            } else {
                batch.insert(keys::mailbox_by_id(mailbox), encode(&rec)?);
                // Its place in the publication order is taken with the modseqs (`publish.rs`).
                let mut pending = Pending::new(self, Publication::default());
                self.inner.mail.apply(batch)?;
                let changes = std::mem::take(&mut changed)
                    .into_iter()
                    .map(|(uid, flags, modseq)| (account, Change::FlagsChanged { mailbox, uid, flags, modseq }))
                    .collect();
                pending.set(Publication { changes, ..Publication::default() });
                Some(pending)
            }
        };
        if let Some(pending) = pending {
            self.flush().await?;
            let files = pending.publish().await;
            self.delete_files_later(files);
        } else if gone {
            // Nothing of ours to publish, so nothing made us wait for the
            // expunge's publication: wait for it, so the session reports the
            // expunge (or at least no stale flags for that message) with
            // this answer (RFC 2180 §4.2).
            self.caught_up().await;
        }
        Ok(result)
    }

    /// Removes messages; returns the UIDs that existed. Body files go when
    /// their last reference does, after the index change is durable.
    pub async fn expunge(&self, account: AccountId, mailbox: MailboxId, uids: &[Uid]) -> Result<Vec<Uid>> {
        let mut gone = Vec::new();
        let applied = {
            let _g = self.lock();
            let rec = self.owned_mailbox(account, mailbox)?;
            let end = self.visible_uid_next(&rec);
            let mut ix = Indexer::new(self);
            for uid in sorted_unique(uids) {
                if uid >= end {
                    continue;
                }
                let Some(v) = self.inner.mail.get(&keys::message(mailbox, uid))? else { continue };
                ix.remove(mailbox, uid, &decode("message", &v)?)?;
                gone.push(uid);
            }
            if gone.is_empty() {
                return Ok(gone);
            }
            ix.apply()?
        };
        self.finish(applied).await?;
        Ok(gone)
    }

    /// UIDs expunged from the mailbox after `modseq` (for QRESYNC VANISHED).
    pub fn expunged_since(&self, account: AccountId, mailbox: MailboxId, modseq: ModSeq) -> Result<Vec<Uid>> {
        self.owned_mailbox(account, mailbox)?;
        let rows = self
            .inner
            .mail
            .range(&keys::expunge_log(mailbox, modseq.next()), &keys::expunge_log(mailbox, ModSeq::MAX))?;
        let mut out = Vec::new();
        for (_, v) in rows {
            out.extend(decode::<Vec<Uid>>("expunge log", &v)?);
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// A message entry as the index stores it, with the key it was found under.
pub(crate) fn meta_of(mailbox: MailboxId, key: &[u8], value: &[u8]) -> Result<MessageMeta> {
    let uid = keys::uid_of_message_key(key).ok_or_else(|| StoreError::Corrupt("message key".into()))?;
    let r: MessageRecord = decode("message", value)?;
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
}

/// The UIDs in increasing order, each once: a change must touch a message once.
pub(crate) fn sorted_unique(uids: &[Uid]) -> Vec<Uid> {
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}
