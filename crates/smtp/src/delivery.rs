//! Where an accepted message goes, and storing it.
//!
//! [`placements`] is the one routing decision for local mail: today every
//! distinct recipient account gets one copy in its INBOX with no flags. The
//! COI issue extends exactly this function (chat messages to their folder,
//! `$Chat` keyword) from the envelope and the raw message it is handed.
//!
//! [`deliver`] makes ONE `Store::deliver` call for all placements (one body
//! file shared by every copy) and returns only after the store reports the
//! message durable; the caller replies 250 only on `Ok`. On error nothing is
//! acknowledged and the client is told to retry (4xx).
//!
//! Remote recipients are refused at RCPT time with 554 5.3.3 until the
//! outbound queue exists ([`remote_recipient`]); that is the seam the queue
//! replaces.

use crate::SmtpListener;
use crate::reply::{self, Enhanced, SmtpError};
use coimail_directory::Account;
use coimail_store::{Flags, Placement, Store, StoreError, Stored};

/// A recipient in one of our domains, as accepted at RCPT time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecipient {
    /// The forward path as the client gave it.
    pub address: String,
    pub account: Account,
}

/// The transaction's envelope once DATA has been received.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub listener: SmtpListener,
    /// Reverse path; empty for the null sender.
    pub sender: &'a str,
    pub recipients: &'a [LocalRecipient],
    pub authenticated: Option<&'a Account>,
}

/// The placement hook: one copy per distinct account, in INBOX, no flags.
/// Recipients that resolve to the same account (aliases, `+tags`) share a copy.
pub fn placements(envelope: &Envelope<'_>, _message: &[u8]) -> Vec<Placement> {
    let mut out: Vec<Placement> = Vec::with_capacity(envelope.recipients.len());
    for r in envelope.recipients {
        if out.iter().any(|p| p.account == r.account.id) {
            continue;
        }
        out.push(Placement {
            account: r.account.id,
            address: r.account.address.clone(),
            mailbox: "INBOX".to_owned(),
            flags: Flags::new(),
        });
    }
    out
}

/// What to do with a permitted recipient outside our domains. No outbound
/// queue yet, so it is refused.
pub fn remote_recipient(_rcpt: &str) -> Result<(), SmtpError> {
    Err(reply::REMOTE_DISABLED)
}

/// Stores `message` (trace headers already prepended) for every placement.
pub async fn deliver(
    store: &Store,
    envelope: &Envelope<'_>,
    message: &[u8],
    now_unix: i64,
) -> Result<Vec<Stored>, SmtpError> {
    let placements = placements(envelope, message);
    store.deliver(message, now_unix, placements).await.map_err(|e| match e {
        StoreError::QuotaExceeded => {
            tracing::info!("delivery refused: quota exceeded");
            SmtpError::new(452, Enhanced(4, 2, 2), "mailbox full")
        }
        e => {
            tracing::error!(error = %e, "delivery failed");
            reply::LOCAL_ERROR
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_store::AccountId;

    fn rcpt(address: &str, id: u64, account: &str) -> LocalRecipient {
        LocalRecipient {
            address: address.into(),
            account: Account { id: AccountId(id), address: account.into(), quota_bytes: None },
        }
    }

    #[test]
    fn one_inbox_copy_per_account() {
        let rcpts = [rcpt("a@x.org", 1, "a@x.org"), rcpt("alias@x.org", 1, "a@x.org"), rcpt("b@x.org", 2, "b@x.org")];
        let env = Envelope { listener: SmtpListener::Mx, sender: "", recipients: &rcpts, authenticated: None };
        let p = placements(&env, b"");
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].account, p[0].mailbox.as_str()), (AccountId(1), "INBOX"));
        assert_eq!((p[1].account, p[1].address.as_str()), (AccountId(2), "b@x.org"));
        assert!(p.iter().all(|p| p.flags == Flags::new()));
    }
}
