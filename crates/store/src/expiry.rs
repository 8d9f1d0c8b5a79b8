//! Deleting messages by age (chatmail relays' `delete_mails_after` and
//! `delete_large_after`, expire.py). The caller (coimail-chatmail's expiry
//! task) decides when; the store deletes through [`Store::expunge`], so
//! every open session hears of each message as it would of a client's
//! EXPUNGE, and body files go only when no session can still show them
//! (`retention.rs`).

use crate::Store;
use crate::error::{Result, StoreError};
use crate::types::{AccountId, Uid};

/// Which messages go: the age is the INTERNALDATE (arrival time for
/// delivered mail, as chatmail uses the file's mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryRule {
    /// Every message that arrived before this (Unix seconds) goes.
    pub before: i64,
    /// Messages larger than `large_bytes` go once older than this (Unix
    /// seconds); `i64::MIN`: no separate rule for large messages.
    pub large_before: i64,
    pub large_bytes: u64,
}

/// How many UIDs one expunge takes: one mailbox with years of mail must
/// not hold the store's write lock (which delivery waits on) for long.
const BATCH: usize = 512;

impl Store {
    /// Expunges the messages `rule` selects from every mailbox of every
    /// account; returns how many went. An account or mailbox deleted while
    /// this runs is skipped, not an error.
    pub async fn expire_messages(&self, rule: ExpiryRule) -> Result<u64> {
        let mut removed = 0u64;
        for (account, _) in self.accounts()? {
            removed += self.expire_account(account, rule).await?;
        }
        Ok(removed)
    }

    async fn expire_account(&self, account: AccountId, rule: ExpiryRule) -> Result<u64> {
        let mailboxes = match self.list_mailboxes(account) {
            Err(StoreError::NotFound(_)) => return Ok(0),
            other => other?,
        };
        let mut removed = 0u64;
        for mailbox in mailboxes {
            let old: Vec<Uid> = match self.messages(account, mailbox.id) {
                Err(StoreError::NotFound(_)) => continue,
                other => other?,
            }
            .into_iter()
            .filter(|m| {
                m.internal_date < rule.before || (m.size > rule.large_bytes && m.internal_date < rule.large_before)
            })
            .map(|m| m.uid)
            .collect();
            for chunk in old.chunks(BATCH) {
                match self.expunge(account, mailbox.id, chunk).await {
                    Ok(gone) => removed += gone.len() as u64,
                    Err(StoreError::NotFound(_)) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use crate::types::{AccountId, Change, Flags, Placement};
    use crate::{ExpiryRule, Store, StoreOptions};

    const ALICE: AccountId = AccountId(1);

    fn to(mailbox: &str) -> Placement {
        Placement { account: ALICE, address: "alice@example.org".into(), mailbox: mailbox.into(), flags: Flags::new() }
    }

    #[tokio::test]
    async fn old_and_old_large_messages_go_and_sessions_hear_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap();
        s.create_account(ALICE, "alice@example.org").await.unwrap();
        let big = vec![b'x'; 300];
        let old = [
            s.deliver(b"old\r\n", 100, vec![to("INBOX")]).await.unwrap()[0],
            s.deliver(b"old\r\n", 100, vec![to("Archive")]).await.unwrap()[0],
        ];
        let old_big = s.deliver(&big, 1_000, vec![to("INBOX")]).await.unwrap()[0];
        let recent = s.deliver(b"new\r\n", 5_000, vec![to("INBOX")]).await.unwrap()[0];
        let mut rx = s.subscribe(ALICE);
        let rule = ExpiryRule { before: 500, large_before: 2_000, large_bytes: 200 };
        assert_eq!(s.expire_messages(rule).await.unwrap(), 3);
        let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
        let left: Vec<_> = s.messages(ALICE, inbox).unwrap().into_iter().map(|m| m.uid).collect();
        assert_eq!(left, vec![recent.uid]);
        assert!(s.messages(ALICE, s.mailbox(ALICE, "Archive").unwrap().id).unwrap().is_empty());
        let mut expunged = Vec::new();
        while let Ok(c) = rx.try_recv() {
            if let Change::Expunged { mailbox, uids, .. } = c {
                expunged.extend(uids.into_iter().map(|u| (mailbox, u)));
            }
        }
        expunged.sort();
        let mut want = vec![(old[0].mailbox, old[0].uid), (old[1].mailbox, old[1].uid), (inbox, old_big.uid)];
        want.sort();
        assert_eq!(expunged, want);
        // Nothing left to expire: a second run removes nothing.
        assert_eq!(s.expire_messages(rule).await.unwrap(), 0);
    }
}
