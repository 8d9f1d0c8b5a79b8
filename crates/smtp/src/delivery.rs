//! Where an accepted message goes, and storing it.
//!
//! [`placements`] is the one routing decision for local mail: every
//! distinct recipient account gets one copy, in the mailbox and with the
//! flags COI decides for that account (`Coi::file`: chat messages to
//! `COI/Chats` and `$Chat`, per the recipient's own settings), INBOX and no
//! flags otherwise. After the commit, `Coi::delivered` sends WebPush
//! notifications asynchronously; it never delays the 250.
//!
//! [`accept`] stores the local copies with ONE `Store::deliver` call for
//! all placements (one body file shared by every copy; `deliver_staged`,
//! which renames the staged file into place, for a large message that
//! `body.rs` put on disk as it arrived), then queues the
//! remote recipients as ONE spool entry (one message file) through
//! `coimail_delivery::Queue`, and returns only when both are durable; the
//! caller replies 250 only on `Ok`. On error the client is told to retry
//! (4xx). Local copies go first: if queueing then fails, the client's retry
//! duplicates a local copy rather than mail sent to the world. The queued
//! copy has no `Return-Path` (RFC 5321 §4.4: final delivery adds it). The
//! queue DKIM-signs what it takes, which hashes the whole message: a staged
//! message is read from its file for it, once.
//!
//! Remote recipients are accepted at RCPT time when the server has an
//! outbound queue, and refused with 554 5.3.3 otherwise
//! ([`remote_recipient`]).

use crate::body::Body;
use crate::reply::{self, Enhanced, SmtpError};
use crate::{SmtpContext, SmtpListener, received};
use coimail_delivery::{DsnRet, SpoolEnvelope, SpoolRecipient};
use coimail_directory::Account;
use coimail_store::{AccountId, Flags, Placement, SpecialUse, StoreError, Stored};

/// A recipient in one of our domains, as accepted at RCPT time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecipient {
    /// The forward path as the client gave it.
    pub address: String,
    pub account: Account,
    /// Its DSN request (NOTIFY, ORCPT), for the reports about it.
    pub dsn: SpoolRecipient,
}

/// The transaction's envelope once DATA has been received.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub listener: SmtpListener,
    /// Reverse path; empty for the null sender.
    pub sender: &'a str,
    pub recipients: &'a [LocalRecipient],
    /// Recipients elsewhere, for the queue.
    pub remote: &'a [SpoolRecipient],
    pub env_id: Option<&'a str>,
    pub ret: Option<DsnRet>,
    pub authenticated: Option<&'a Account>,
    /// DMARC said quarantine (`inbound/`): every copy goes to its
    /// account's `\Junk` mailbox, whatever COI would decide.
    pub quarantine: bool,
}

/// What [`accept`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accepted {
    /// Local copies stored (one per distinct account).
    pub copies: usize,
    /// The queue entry of the remote recipients.
    pub queue_id: Option<u64>,
    /// Local recipients left out because the message did not fit their
    /// quota, with the reply that says so (for the bounce).
    pub over_quota: Vec<SpoolRecipient>,
}

/// The placement hook: one copy per distinct account, where COI files it.
/// Recipients that resolve to the same account (aliases, `+tags`) share a copy.
///
/// COI R27 wants a failure to file a chat (the Chats folder cannot be
/// made) to be a temporary failure for that recipient, never a drop. SMTP
/// has one reply per message after DATA, so: when COI fails for every
/// recipient the message gets 451 4.2.0 and the sender retries; when others
/// succeed, the failing recipient's copy goes to its INBOX with `$Chat`
/// rather than holding everyone's mail back (logged as an error).
pub async fn placements(
    coi: &coimail_coi::Coi,
    envelope: &Envelope<'_>,
    message: &[u8],
) -> Result<Vec<Placement>, SmtpError> {
    let mut out: Vec<Placement> = Vec::with_capacity(envelope.recipients.len());
    let mut failed = 0usize;
    for r in envelope.recipients {
        if out.iter().any(|p| p.account == r.account.id) {
            continue;
        }
        let filing = match coi.file(r.account.id, message).await {
            Ok(filing) => filing,
            Err(e) => {
                tracing::error!(error = %e, account = r.account.id.0, "coi filing failed; this copy goes to INBOX");
                failed += 1;
                coimail_coi::Filing {
                    mailbox: "INBOX".to_owned(),
                    flags: [coimail_coi::CHAT_KEYWORD].into_iter().collect(),
                }
            }
        };
        out.push(Placement {
            account: r.account.id,
            address: r.account.address.clone(),
            mailbox: filing.mailbox,
            flags: filing.flags,
        });
    }
    if failed > 0 && failed == out.len() {
        return Err(SmtpError::new(451, Enhanced(4, 2, 0), "failed to save chat message, try again later"));
    }
    Ok(out)
}

/// One copy per distinct account, in its `\Junk` mailbox (created when the
/// account has none), without flags.
async fn junk_placements(ctx: &SmtpContext, envelope: &Envelope<'_>) -> Result<Vec<Placement>, SmtpError> {
    let mut out: Vec<Placement> = Vec::with_capacity(envelope.recipients.len());
    for r in envelope.recipients {
        if out.iter().any(|p| p.account == r.account.id) {
            continue;
        }
        let junk = ctx.store.special_use_mailbox(r.account.id, SpecialUse::Junk, "Junk").await.map_err(|e| {
            tracing::error!(error = %e, account = r.account.id.0, "no Junk mailbox for a quarantined message");
            reply::LOCAL_ERROR
        })?;
        out.push(Placement {
            account: r.account.id,
            address: r.account.address.clone(),
            mailbox: junk.name,
            flags: Flags::new(),
        });
    }
    Ok(out)
}

/// Where each copy goes: Junk when quarantined, else where COI files it.
async fn placements_for(
    ctx: &SmtpContext,
    envelope: &Envelope<'_>,
    message: &[u8],
) -> Result<Vec<Placement>, SmtpError> {
    if envelope.quarantine {
        junk_placements(ctx, envelope).await
    } else {
        placements(&ctx.coi, envelope, message).await
    }
}

/// Whether a permitted recipient outside our domains can be carried: only
/// with an outbound queue.
pub fn remote_recipient(ctx: &SmtpContext, _rcpt: &str) -> Result<(), SmtpError> {
    if ctx.queue.is_some() { Ok(()) } else { Err(reply::REMOTE_DISABLED) }
}

/// Stores the local copies and queues the remote recipients of `body`
/// (trace headers already prepended); durable on `Ok`.
pub(crate) async fn accept(
    ctx: &SmtpContext,
    envelope: &Envelope<'_>,
    body: &mut Body,
    now_unix: i64,
) -> Result<Accepted, SmtpError> {
    let mut done = Accepted::default();
    if !envelope.recipients.is_empty() {
        let (stored, full) = deliver(ctx, envelope, body, now_unix).await?;
        done.copies = stored.len();
        done.over_quota = envelope
            .recipients
            .iter()
            .filter(|r| full.contains(&r.account.id))
            .map(|r| SpoolRecipient { last_reply: Some(OVER_QUOTA.to_owned()), ..r.dsn.clone() })
            .collect();
    }
    if !envelope.remote.is_empty() {
        let queue = ctx.queue.as_ref().ok_or(reply::REMOTE_DISABLED)?;
        let spool = SpoolEnvelope {
            sender: envelope.sender.to_owned(),
            env_id: envelope.env_id.map(str::to_owned),
            ret: envelope.ret,
            recipients: envelope.remote.to_vec(),
        };
        let message = body.whole(0).await.map_err(|e| {
            tracing::error!(error = %e, "reading a staged message for the queue failed");
            reply::LOCAL_ERROR
        })?;
        let entry = queue.enqueue(spool, received::without_return_path(&message)).await.map_err(|e| match e {
            coimail_delivery::DeliveryError::Store(StoreError::DiskFull) => reply::DISK_FULL,
            e => {
                tracing::error!(error = %e, "queueing failed");
                reply::LOCAL_ERROR
            }
        })?;
        done.queue_id = Some(entry.id);
    }
    let via = if envelope.listener == SmtpListener::Mx { "mx" } else { "submission" };
    metrics::counter!("coimail_messages_received_total", "via" => via).increment(1);
    Ok(done)
}

/// The reply a recipient left out for its quota is bounced with: final,
/// as nothing here retries it (RFC 3463 X.2.2, mailbox full).
const OVER_QUOTA: &str = "552 5.2.2 mailbox full";

/// Stores `body` (trace headers already prepended) for every placement;
/// returns the stored copies and the accounts left out for their quota.
///
/// SMTP has one reply for the whole message after the data, so one full
/// mailbox must not cost every other recipient the message: when the store
/// refuses for quota, the accounts the message does not fit are left out
/// and the rest is stored (Postfix likewise delivers to the others and
/// bounces the one). Only when it fits nobody is it `452 4.2.2` for all,
/// and the sender retries.
pub(crate) async fn deliver(
    ctx: &SmtpContext,
    envelope: &Envelope<'_>,
    body: &mut Body,
    now_unix: i64,
) -> Result<(Vec<Stored>, Vec<AccountId>), SmtpError> {
    // COI filing and pushes read header fields, all of which are in memory.
    let mut placements = placements_for(ctx, envelope, &body.buf).await?;
    let mut full = Vec::new();
    let mut refiled = false;
    let stored = loop {
        let attempt = match body.staged.as_mut() {
            Some(staged) => ctx.store.deliver_staged(&body.buf, staged, now_unix, placements.clone()).await,
            None => ctx.store.deliver(&body.buf, now_unix, placements.clone()).await,
        };
        match attempt {
            // A target folder went away after filing (a concurrent DELETE of
            // COI/Chats, which also turns COI off, or of Junk): file again, once.
            Err(StoreError::NotFound(_)) if !refiled => {
                refiled = true;
                placements = placements_for(ctx, envelope, &body.buf).await?;
                placements.retain(|p| !full.contains(&p.account));
            }
            Err(StoreError::QuotaExceeded) if placements.len() > 1 => {
                // Ends: each round removes at least one placement or returns.
                let size = body.len() as u64;
                let over: Vec<AccountId> = placements
                    .iter()
                    .filter(|p| matches!(ctx.store.check_quota(p.account, size, 1), Err(StoreError::QuotaExceeded)))
                    .map(|p| p.account)
                    .collect();
                if over.is_empty() || over.len() == placements.len() {
                    break Err(StoreError::QuotaExceeded);
                }
                tracing::info!(accounts = ?over, "over quota: left out, the others get the message");
                placements.retain(|p| !over.contains(&p.account));
                full.extend(over);
            }
            other => break other,
        }
    };
    let stored = stored.map_err(|e| match e {
        StoreError::QuotaExceeded => {
            tracing::info!("delivery refused: quota exceeded");
            SmtpError::new(452, Enhanced(4, 2, 2), "mailbox full")
        }
        StoreError::DiskFull => reply::DISK_FULL,
        e => {
            tracing::error!(error = %e, "delivery failed");
            reply::LOCAL_ERROR
        }
    })?;
    // Durable now: pushes may go out (COI R36); one per stored copy.
    let copies: Vec<(Stored, &Flags)> = stored.iter().zip(&placements).map(|(s, p)| (*s, &p.flags)).collect();
    ctx.coi.delivered(&copies, &body.buf);
    let placed: Vec<(Stored, &Placement)> = stored.iter().copied().zip(&placements).collect();
    ctx.deltachat.delivered(&placed, &body.buf);
    metrics::counter!("coimail_messages_delivered_local_total").increment(stored.len() as u64);
    Ok((stored, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(address: &str, id: u64, account: &str) -> LocalRecipient {
        LocalRecipient {
            address: address.into(),
            account: Account { id: AccountId(id), address: account.into(), quota_bytes: None },
            dsn: SpoolRecipient::new(address, None, None),
        }
    }

    #[tokio::test]
    async fn one_inbox_copy_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let coi = coimail_coi::Coi::new(coimail_store::Store::open_memory(dir.path()).unwrap());
        let rcpts = [rcpt("a@x.org", 1, "a@x.org"), rcpt("alias@x.org", 1, "a@x.org"), rcpt("b@x.org", 2, "b@x.org")];
        let env = Envelope {
            listener: SmtpListener::Mx,
            sender: "",
            recipients: &rcpts,
            remote: &[],
            env_id: None,
            ret: None,
            authenticated: None,
            quarantine: false,
        };
        let p = placements(&coi, &env, b"").await.unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].account, p[0].mailbox.as_str()), (AccountId(1), "INBOX"));
        assert_eq!((p[1].account, p[1].address.as_str()), (AccountId(2), "b@x.org"));
        assert!(p.iter().all(|p| p.flags == Flags::new()));
    }

    /// COI R27: when filing a chat fails (here: Chats cannot be created, as
    /// account 1 has COI on but no account record to hold mailboxes), the
    /// message is never dropped: 451 4.2.0 when it fails for every
    /// recipient, else that copy goes to INBOX with `$Chat`.
    #[tokio::test]
    async fn a_failed_chat_filing_is_451_alone_and_inbox_with_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = coimail_store::Store::open_memory(dir.path()).unwrap();
        let scope = coimail_store::MetadataScope { account: AccountId(1), mailbox: None };
        let config = "/private/vendor/vendor.dovecot/coi/config";
        store.set_metadata(scope, &format!("{config}/enabled"), Some(b"yes")).await.unwrap();
        store.set_metadata(scope, &format!("{config}/message-filter"), Some(b"active")).await.unwrap();
        let coi = coimail_coi::Coi::new(store);
        let chat = b"Chat-Version: 1.0\r\nMessage-ID: <chat$1@x.org>\r\n\r\nhi\r\n";
        let alone = [rcpt("a@x.org", 1, "a@x.org")];
        let both = [rcpt("a@x.org", 1, "a@x.org"), rcpt("b@x.org", 2, "b@x.org")];
        let env = |recipients| Envelope {
            listener: SmtpListener::Mx,
            sender: "",
            recipients,
            remote: &[],
            env_id: None,
            ret: None,
            authenticated: None,
            quarantine: false,
        };
        let e = placements(&coi, &env(&alone), chat).await.unwrap_err();
        assert_eq!((e.code, e.enhanced), (451, Enhanced(4, 2, 0)), "{e:?}");
        let p = placements(&coi, &env(&both), chat).await.unwrap();
        assert_eq!((p[0].mailbox.as_str(), p[0].flags.contains("$Chat")), ("INBOX", true));
        assert_eq!((p[1].mailbox.as_str(), p[1].flags.clone()), ("INBOX", Flags::new()));
    }
}
