//! `\Recent` (RFC 3501 §2.3.2): a message is recent for the first session
//! told about it; a read-write session claims it, so no later session sees
//! it as recent, while a read-only (EXAMINE) session only looks.
//!
//! Kept in memory, per mailbox, as the first UID nobody has claimed (UIDs
//! only grow, so one number says it all). A mailbox not claimed since the
//! server started counts every message as recent: RFC 3501 says a message
//! SHOULD be considered recent when the server cannot tell, and IMAP4rev2
//! (RFC 9051) dropped the flag, so persisting it is not worth a write on
//! every SELECT.

use crate::{AccountId, MailboxId, Result, Store, Uid, keys};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct RecentClaims {
    first_unclaimed: Mutex<HashMap<MailboxId, Uid>>,
}

impl Store {
    /// For a session that now sees every UID below `upto` in `mailbox`:
    /// the first of them that is recent for it (none when `>= upto`).
    /// With `claim` (a read-write session) they stop being recent for
    /// everyone else.
    pub fn claim_recent(&self, mailbox: MailboxId, upto: Uid, claim: bool) -> Uid {
        let mut map = self.inner.recent.first_unclaimed.lock().unwrap_or_else(|e| e.into_inner());
        let from = map.get(&mailbox).copied().unwrap_or(Uid::MIN);
        if claim && upto > from {
            map.insert(mailbox, upto);
        }
        from
    }

    /// STATUS RECENT: messages no session has claimed.
    pub fn recent_count(&self, account: AccountId, mailbox: MailboxId) -> Result<u32> {
        let rec = self.owned_mailbox(account, mailbox)?;
        let from = self.claim_recent(mailbox, Uid(0), false);
        let end = self.visible_uid_next(&rec);
        let mut n = 0u32;
        if from < end {
            self.inner.mail.visit_range(&keys::message(mailbox, from), &keys::message(mailbox, end), |_, _| {
                n += 1;
                Ok(true)
            })?;
        }
        Ok(n)
    }
}
