//! Accounts and mailboxes: create, list, look up, delete. Subscriptions
//! are names of their own (`subscriptions.rs`), not part of a mailbox.

use crate::index::Indexer;
use crate::keys;
use crate::kv::Batch;
use crate::names;
use crate::records::{AccountRecord, Counts, MailboxRecord, decode, encode};
use crate::{
    AccountId, Change, DEFAULT_MAILBOXES, MailboxId, MailboxInfo, MailboxStatus, ModSeq, Result, SpecialUse, Store,
    StoreError, Uid,
};
use std::time::{SystemTime, UNIX_EPOCH};

impl MailboxRecord {
    pub(crate) fn info(&self, visible_uid_next: Option<Uid>, subscribed: bool) -> MailboxInfo {
        MailboxInfo {
            id: MailboxId(self.id),
            name: self.name.clone(),
            uid_validity: self.uid_validity,
            uid_next: visible_uid_next.unwrap_or(self.uid_next),
            highest_modseq: self.highest_modseq,
            special_use: self.special_use,
            subscribed,
            exists: self.exists,
        }
    }
}

impl Store {
    /// Creates the account's record and default mailboxes (INBOX plus the
    /// special-use set). Idempotent: existing mailboxes are kept.
    pub async fn create_account(&self, account: AccountId, address: &str) -> Result<()> {
        {
            let _g = self.lock();
            let mut batch = Batch::default();
            batch.insert(keys::account(account), encode(&AccountRecord { address: address.to_owned() })?);
            self.inner.mail.apply(batch)?;
            let defaults =
                std::iter::once(("INBOX", None)).chain(DEFAULT_MAILBOXES.iter().map(|(n, u)| (*n, Some(*u))));
            for (name, special_use) in defaults {
                if self.mailbox_record(account, name)?.is_none() {
                    self.create_mailbox_locked(account, name, special_use, true)?;
                }
            }
        }
        self.flush().await?;
        self.inner.bus.publish(account, Change::MailboxesChanged);
        Ok(())
    }

    /// The address the account was created with, if the account exists.
    pub fn account_address(&self, account: AccountId) -> Result<Option<String>> {
        match self.inner.mail.get(&keys::account(account))? {
            Some(v) => Ok(Some(decode::<AccountRecord>("account", &v)?.address)),
            None => Ok(None),
        }
    }

    /// Every account in the store, with its address.
    pub fn accounts(&self) -> Result<Vec<(AccountId, String)>> {
        let mut out = Vec::new();
        for (k, v) in self.inner.mail.scan_prefix(&[keys::ACCOUNT])? {
            let id: [u8; 8] =
                k.get(1..9).and_then(|b| b.try_into().ok()).ok_or_else(|| StoreError::Corrupt("account key".into()))?;
            out.push((AccountId(u64::from_be_bytes(id)), decode::<AccountRecord>("account", &v)?.address));
        }
        Ok(out)
    }

    /// Deletes the account and every message in it.
    pub async fn delete_account(&self, account: AccountId) -> Result<()> {
        for mb in self.list_mailboxes(account)? {
            self.delete_mailbox_inner(account, &mb.name, true).await?;
        }
        {
            let _g = self.lock();
            let mut batch = Batch::default();
            batch.remove(keys::account(account));
            batch.remove(keys::usage(account));
            batch.remove(keys::quota_limit(account));
            for (k, _) in self.inner.mail.scan_prefix(&keys::subscriptions_of(account))? {
                batch.remove(k);
            }
            self.remove_metadata(&mut batch, account, None)?;
            self.inner.mail.apply(batch)?;
        }
        self.flush().await
    }

    pub(crate) fn mailbox_record(&self, account: AccountId, name: &str) -> Result<Option<MailboxRecord>> {
        let Some(id) = self.inner.mail.get(&keys::mailbox_by_name(account, name))? else {
            return Ok(None);
        };
        let id: [u8; 8] = id.as_slice().try_into().map_err(|_| StoreError::Corrupt("mailbox id".into()))?;
        self.mailbox_record_by_id(MailboxId(u64::from_be_bytes(id)))
    }

    pub(crate) fn mailbox_record_by_id(&self, id: MailboxId) -> Result<Option<MailboxRecord>> {
        self.inner.mail.listings().mailbox(id, || match self.inner.mail.get(&keys::mailbox_by_id(id))? {
            Some(v) => Ok(Some(decode("mailbox", &v)?)),
            None => Ok(None),
        })
    }

    /// The record of `mailbox`, which must belong to `account`: a session can
    /// never reach another account's mailbox by guessing an id.
    pub(crate) fn owned_mailbox(&self, account: AccountId, mailbox: MailboxId) -> Result<MailboxRecord> {
        match self.mailbox_record_by_id(mailbox)? {
            Some(r) if r.account == account.0 => Ok(r),
            _ => Err(StoreError::NotFound(format!("mailbox {}", mailbox.0))),
        }
    }

    pub(crate) fn info_of(&self, rec: &MailboxRecord) -> Result<MailboxInfo> {
        let subscribed = self.is_subscribed(AccountId(rec.account), &rec.name)?;
        let visible = self.visible().get(&MailboxId(rec.id)).copied();
        Ok(rec.info(visible, subscribed))
    }

    /// Looks a mailbox up by name (validated; INBOX in any case).
    pub fn mailbox(&self, account: AccountId, name: &str) -> Result<MailboxInfo> {
        let name = names::canonical(name)?;
        match self.mailbox_record(account, &name)? {
            Some(r) => self.info_of(&r),
            None => Err(StoreError::NotFound(format!("mailbox {name}"))),
        }
    }

    /// The account's mailbox with special use `special_use` (RFC 6154),
    /// created as `name` when it has none: a user may have deleted Junk, and
    /// quarantined mail (SMTP's DMARC verdict) still needs a place. A
    /// mailbox already called `name` without the attribute is used as it is.
    pub async fn special_use_mailbox(
        &self,
        account: AccountId,
        special_use: SpecialUse,
        name: &str,
    ) -> Result<MailboxInfo> {
        if let Some(found) = self.list_mailboxes(account)?.into_iter().find(|m| m.special_use == Some(special_use)) {
            return Ok(found);
        }
        match self.create_mailbox(account, name, Some(special_use)).await {
            Err(StoreError::AlreadyExists(_)) => self.mailbox(account, name),
            other => other,
        }
    }

    /// Looks a mailbox up by id; it must belong to `account`.
    pub fn mailbox_by_id(&self, account: AccountId, mailbox: MailboxId) -> Result<MailboxInfo> {
        self.info_of(&self.owned_mailbox(account, mailbox)?)
    }

    /// What STATUS reports (RFC 3501 §6.3.10, RFC 9051 §6.3.11, RFC 8438
    /// SIZE), from the counters kept in the mailbox record: O(1) unless a
    /// write is in flight (its messages are counted but not yet visible) or
    /// the record predates the counters; then it counts the visible messages.
    pub fn mailbox_status(&self, account: AccountId, name: &str) -> Result<MailboxStatus> {
        let name = names::canonical(name)?;
        let rec =
            self.mailbox_record(account, &name)?.ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
        self.status_of(account, rec)
    }

    /// [`Store::mailbox_status`] by id; the mailbox must belong to `account`.
    pub fn mailbox_status_by_id(&self, account: AccountId, mailbox: MailboxId) -> Result<MailboxStatus> {
        let rec = self.owned_mailbox(account, mailbox)?;
        self.status_of(account, rec)
    }

    fn status_of(&self, account: AccountId, rec: MailboxRecord) -> Result<MailboxStatus> {
        let id = MailboxId(rec.id);
        let uid_next = self.visible_uid_next(&rec);
        let (messages, counts) = match rec.counts {
            Some(c) if uid_next >= rec.uid_next => (rec.exists, c),
            _ => {
                let msgs = self.messages(account, id)?;
                let mut c = Counts::default();
                msgs.iter().for_each(|m| c.add(m.size, &m.flags));
                (msgs.len() as u32, c)
            }
        };
        Ok(MailboxStatus {
            id,
            name: rec.name,
            messages,
            unseen: counts.unseen,
            deleted: counts.deleted,
            size: counts.size,
            deleted_size: counts.deleted_size,
            uid_next,
            uid_validity: rec.uid_validity,
            highest_modseq: rec.highest_modseq,
        })
    }

    /// Every mailbox of the account, sorted by name.
    pub fn list_mailboxes(&self, account: AccountId) -> Result<Vec<MailboxInfo>> {
        let subscribed = self.subscribed_names(account)?;
        let mut out = Vec::new();
        for (_, id) in self.inner.mail.scan_prefix(&keys::mailboxes_of(account))? {
            let id: [u8; 8] = id.as_slice().try_into().map_err(|_| StoreError::Corrupt("mailbox id".into()))?;
            if let Some(r) = self.mailbox_record_by_id(MailboxId(u64::from_be_bytes(id)))? {
                let visible = self.visible().get(&MailboxId(r.id)).copied();
                out.push(r.info(visible, subscribed.contains(&r.name)));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates a mailbox. Parents need not exist (RFC 3501 §6.3.3 lets the
    /// server create them; we keep the hierarchy implicit).
    pub async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxInfo> {
        let name = names::canonical(name)?;
        let info = {
            let _g = self.lock();
            if self.inner.mail.get(&keys::account(account))?.is_none() {
                return Err(StoreError::NotFound(format!("account {}", account.0)));
            }
            if self.mailbox_record(account, &name)?.is_some() {
                return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
            }
            self.create_mailbox_locked(account, &name, special_use, false)?
        };
        self.flush().await?;
        self.inner.bus.publish(account, Change::MailboxesChanged);
        Ok(info)
    }

    /// Creates a mailbox record, and with `subscribe` subscribes its name;
    /// the caller holds the write lock and flushes.
    pub(crate) fn create_mailbox_locked(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
        subscribe: bool,
    ) -> Result<MailboxInfo> {
        let rec = self.new_mailbox_record(account, name, special_use)?;
        let mut batch = Batch::default();
        batch.insert(keys::mailbox_by_name(account, name), rec.id.to_be_bytes().to_vec());
        batch.insert(keys::mailbox_by_id(MailboxId(rec.id)), encode(&rec)?);
        if subscribe {
            batch.insert(keys::subscription(account, name), Vec::new());
        }
        self.inner.mail.apply(batch)?;
        // A name subscribed before the mailbox existed (or while it was deleted) stays subscribed.
        let subscribed = subscribe || self.is_subscribed(account, name)?;
        Ok(rec.info(None, subscribed))
    }

    /// A new, empty mailbox record with a fresh id and UIDVALIDITY, not yet
    /// written (only the allocation counters are).
    pub(crate) fn new_mailbox_record(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxRecord> {
        Ok(MailboxRecord {
            id: self.inner.mail.increment(&keys::counter("mailbox"))?,
            account: account.0,
            name: name.to_owned(),
            uid_validity: self.next_uid_validity()?,
            uid_next: Uid::MIN,
            highest_modseq: ModSeq(1),
            special_use,
            legacy_subscribed: None,
            exists: 0,
            counts: Some(Counts::default()),
            keywords: Some(Default::default()),
        })
    }

    /// UIDVALIDITY must differ for every incarnation of a mailbox name
    /// (RFC 3501 §2.3.1.1). Seconds since the epoch, bumped past the last
    /// value handed out, survive both re-creation and an index rebuild.
    fn next_uid_validity(&self) -> Result<u32> {
        let key = keys::counter("uidvalidity");
        let last = self
            .inner
            .mail
            .get(&key)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let next = (now.min(u64::from(u32::MAX - 1)) as u32).max(last.saturating_add(1)).max(1);
        let mut batch = Batch::default();
        batch.insert(key, next.to_be_bytes().to_vec());
        self.inner.mail.apply(batch)?;
        Ok(next)
    }

    /// Deletes a mailbox and expunges its messages. INBOX cannot be deleted.
    /// A subscription to the name stays (RFC 3501 §6.3.6, RFC 9051 §6.3.4:
    /// subscriptions are independent of existence), so re-creating the
    /// mailbox finds it subscribed.
    pub async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = names::canonical(name)?;
        self.delete_mailbox_inner(account, &name, false).await
    }

    async fn delete_mailbox_inner(&self, account: AccountId, name: &str, allow_inbox: bool) -> Result<()> {
        if name == "INBOX" && !allow_inbox {
            return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
        }
        // ONE change under the write lock, so no delivery, COPY or MOVE can
        // slip an entry in between: every entry goes, in-flight ones too.
        let applied = {
            let _g = self.lock();
            let rec =
                self.mailbox_record(account, name)?.ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
            let id = MailboxId(rec.id);
            let mut ix = Indexer::new(self);
            ix.deleted(id)?;
            for (k, v) in self.inner.mail.scan_prefix(&keys::messages_of(id))? {
                let uid = keys::uid_of_message_key(&k).ok_or_else(|| StoreError::Corrupt("message key".into()))?;
                ix.remove(id, uid, &decode("message", &v)?)?;
            }
            let applied = ix.apply()?;
            // A late publish of an in-flight delivery finds no watermark and skips it.
            self.visible().remove(&id);
            applied
        };
        self.finish(applied).await?;
        self.inner.bus.publish(account, Change::MailboxesChanged);
        Ok(())
    }
}
