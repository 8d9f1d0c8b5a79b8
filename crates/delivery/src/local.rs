//! Handing a DSN to the message's sender.
//!
//! A sender of ours gets it in the INBOX through the store, like any local
//! delivery (one `Store::deliver`, durable on return). Queue entries only
//! ever have our own users as senders (submission checks that), so the
//! queue's reports never leave the server, and `delivered` reports
//! ([`report_delivered`]) are made only for authenticated senders, who are
//! ours too. The one report that can be owed to a sender elsewhere is the
//! bounce of a message SMTP took over MX but could not store for one of its
//! recipients (mailbox full at the end of the data, [`report_failed`]): it
//! goes out through the queue from the null sender with NOTIFY=NEVER, so it
//! can never cause another report (and, like all that leaves through the
//! queue, DKIM-signed, here for the domain of our host name's
//! `MAILER-DAEMON`). Every report here and in `notify.rs` first takes a slot
//! of the [`ReportLimit`], and returns only the original's header fields
//! (`dsn::header_section`).

use crate::dsn::{self, Action, Report};
use crate::{DeliveryError, Queue, ReportLimit};
use coimail_directory::Directory;
use coimail_store::spool::{DsnNotify, DsnRet, RecipientState, SpoolEntry, SpoolEnvelope, SpoolRecipient};
use coimail_store::{Flags, Placement, Store, StoreError};
use tracing::{info, warn};

/// Delivers `message` to the local user `sender`, then tells `hook`.
/// `Ok(false)` when there is no such user any more, or the user's quota is
/// full (the report is then dropped: retrying would not make room).
pub(crate) async fn deliver_to_sender(
    store: &Store,
    directory: &Directory,
    hook: Option<&crate::DeliveredHook>,
    sender: &str,
    message: &[u8],
    now: i64,
) -> Result<bool, DeliveryError> {
    let Some(account) = directory.resolve_recipient(sender)? else {
        return Ok(false);
    };
    let placement =
        Placement { account: account.id, address: account.address, mailbox: "INBOX".to_owned(), flags: Flags::new() };
    match store.deliver(message, now, vec![placement.clone()]).await {
        Ok(stored) => {
            if let Some(hook) = hook {
                let copies: Vec<_> = stored.into_iter().map(|s| (s, &placement)).collect();
                hook(&copies, message);
            }
            Ok(true)
        }
        Err(StoreError::QuotaExceeded) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What SMTP's reports need: where they go and the cap on them.
#[derive(Clone, Copy)]
pub struct Reporter<'a> {
    pub store: &'a Store,
    pub directory: &'a Directory,
    /// For reports to senders elsewhere; without it they are dropped.
    pub queue: Option<&'a Queue>,
    pub limit: &'a ReportLimit,
    /// Our host name (Reporting-MTA, `MAILER-DAEMON@`).
    pub hostname: &'a str,
}

/// A message SMTP has just taken, with the local recipients a report
/// speaks of (their DSN requests, RFC 3461 §4.1, and for a failure the
/// reply that explains it).
pub struct Delivered<'a> {
    /// Reverse path; nothing is sent for the null sender.
    pub sender: &'a str,
    pub env_id: Option<&'a str>,
    pub recipients: &'a [SpoolRecipient],
    /// The message as stored (only its header is returned).
    pub message: &'a [u8],
    pub now: i64,
}

/// Sends the `Action: delivered` report for `d` (RFC 3464) into the
/// sender's INBOX. SMTP asks for it only for authenticated senders, whose
/// address is always one of ours; a sender elsewhere gets nothing (a
/// success report on the say-so of an unauthenticated client is
/// backscatter: the reverse path may be anybody's).
pub async fn report_delivered(to: &Reporter<'_>, d: &Delivered<'_>) -> Result<(), DeliveryError> {
    let recipients: Vec<SpoolRecipient> =
        d.recipients.iter().map(|r| SpoolRecipient { state: RecipientState::Delivered, ..r.clone() }).collect();
    let here_only = Reporter { queue: None, ..*to };
    report(&here_only, Action::Delivered, d, &recipients).await
}

/// Sends the bounce (`Action: failed`, header only) for local recipients
/// SMTP had to leave out after the data (their mailbox filled up), to those
/// that did not ask for NOTIFY without FAILURE: into the sender's INBOX when
/// the sender is ours, else through `queue` from the null sender, as any
/// MTA that accepted a message owes its sender (RFC 5321 §6.1).
pub async fn report_failed(to: &Reporter<'_>, d: &Delivered<'_>) -> Result<(), DeliveryError> {
    let recipients: Vec<SpoolRecipient> = d
        .recipients
        .iter()
        .filter(|r| r.notify.is_none_or(|n| n.failure))
        .map(|r| SpoolRecipient { state: RecipientState::Failed, ..r.clone() })
        .collect();
    report(to, Action::Failed, d, &recipients).await
}

async fn report(
    to: &Reporter<'_>,
    action: Action,
    d: &Delivered<'_>,
    recipients: &[SpoolRecipient],
) -> Result<(), DeliveryError> {
    let Reporter { store, directory, queue, limit, hostname } = *to;
    if d.sender.is_empty() || recipients.is_empty() {
        return Ok(());
    }
    if !limit.try_take(d.sender, std::time::Instant::now()) {
        warn!(sender = %d.sender, ?action, "delivery report dropped: report rate limit reached");
        return Ok(());
    }
    let entry = SpoolEntry {
        id: 0,
        sender: d.sender.to_owned(),
        env_id: d.env_id.map(str::to_owned),
        ret: Some(DsnRet::Headers),
        queued_at: d.now,
        size: d.message.len() as u64,
        recipients: Vec::new(),
        attempts: 0,
        next_attempt: d.now,
        lease_until: 0,
        history: Vec::new(),
    };
    let report = dsn::build(&Report {
        hostname,
        action,
        entry: &entry,
        recipients,
        original: Some(d.message),
        now: d.now,
        retry_until: None,
    })?;
    let domain = d.sender.rsplit_once('@').map_or("", |(_, domain)| domain);
    if directory.is_local_domain(domain)? {
        if deliver_to_sender(store, directory, None, d.sender, &report, d.now).await? {
            info!(sender = %d.sender, ?action, recipients = recipients.len(), "delivery report delivered");
        } else {
            warn!(sender = %d.sender, ?action, "delivery report dropped: sender has no mailbox here");
        }
        return Ok(());
    }
    let Some(queue) = queue else {
        warn!(sender = %d.sender, ?action, "delivery report dropped: not sent to senders elsewhere");
        return Ok(());
    };
    let never = Some(DsnNotify::default());
    let envelope = SpoolEnvelope {
        sender: String::new(),
        env_id: None,
        ret: None,
        recipients: vec![SpoolRecipient::new(d.sender, None, never)],
    };
    queue.enqueue(envelope, &report).await?;
    Ok(())
}
