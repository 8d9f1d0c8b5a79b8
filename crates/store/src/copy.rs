//! COPY and MOVE (RFC 3501 §6.4.7, RFC 6851) inside one account.
//!
//! A copy is a new index entry pointing at the same body file (its
//! reference count goes up): no message bytes are read or written. A move
//! is the copy and the removal of the original in ONE commit, so a crash
//! leaves either the original or the moved message, never both or neither.
//! Both are journaled with the index change (`journal.rs`), so a rebuild
//! from files alone keeps copies and finds moved messages where they went.

use crate::index::Indexer;
use crate::keys;
use crate::message::sorted_unique;
use crate::records::{MessageRecord, decode};
use crate::{AccountId, MailboxId, Result, Store, Uid};

impl Store {
    /// Copies the messages `uids` of `from` (those that exist) to the end of
    /// `to`, keeping flags and internal dates. Returns (source UID, new UID)
    /// pairs in increasing order, for UIDPLUS COPYUID (RFC 4315 §3).
    pub async fn copy_messages(
        &self,
        account: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>> {
        // A copy adds index entries (the body file is shared); a move only
        // re-points them, so MOVE still works below the reserve.
        self.check_space()?;
        self.transfer(account, from, uids, to, false, None).await
    }

    /// Moves the messages atomically: the copies and the removal of the
    /// originals are one commit. Publishes `Appended` for `to`, then
    /// `Expunged` for `from`.
    pub async fn move_messages(
        &self,
        account: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>> {
        self.transfer(account, from, uids, to, true, None).await
    }

    /// [`Store::move_messages`] of only those messages that still carry
    /// `flag` at the moment of the move (checked under the write lock), so a
    /// decision taken on flags read earlier cannot move a message whose
    /// flags changed since (COI's `seen` mover vs a concurrent `-FLAGS`).
    pub async fn move_messages_flagged(
        &self,
        account: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        flag: &str,
    ) -> Result<Vec<(Uid, Uid)>> {
        self.transfer(account, from, uids, to, true, Some(flag)).await
    }

    async fn transfer(
        &self,
        account: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        remove: bool,
        require: Option<&str>,
    ) -> Result<Vec<(Uid, Uid)>> {
        let mut pairs = Vec::new();
        let applied = {
            let _g = self.lock();
            let source = self.owned_mailbox(account, from)?;
            // Both mailboxes must be the account's own.
            self.owned_mailbox(account, to)?;
            let end = self.visible_uid_next(&source);
            let mut ix = Indexer::new(self);
            for uid in sorted_unique(uids).into_iter().filter(|u| *u < end) {
                let Some(v) = self.inner.mail.get(&keys::message(from, uid))? else { continue };
                let msg: MessageRecord = decode("message", &v)?;
                if require.is_some_and(|flag| !msg.flags.contains(flag)) {
                    continue;
                }
                if remove {
                    ix.remove(from, uid, &msg)?;
                }
                pairs.push((uid, ix.insert(to, msg)?.uid));
            }
            if pairs.is_empty() {
                return Ok(pairs);
            }
            self.check_quota_copy(account, from, &pairs, remove)?;
            ix.apply()?
        };
        self.finish(applied).await?;
        Ok(pairs)
    }
}
