//! The DSNs an attempt owes the sender (RFC 3461 §4.1, RFC 3464), decided
//! from what the spool entry has recorded:
//!
//! - `failed`: a recipient refused for good or expired, unless its NOTIFY
//!   leaves out FAILURE (no NOTIFY means FAILURE, RFC 3461 §4.1);
//! - `relayed`: a NOTIFY=SUCCESS recipient taken by a server that did not
//!   offer DSN. A server that offered it got the NOTIFY from us and reports
//!   itself, so we stay silent (RFC 3461 §5);
//! - `delayed`: a recipient still pending once the entry is older than the
//!   delay warning, if its NOTIFY includes DELAY or there is no NOTIFY
//!   (RFC 3461 §4.1 lets an MTA send delay reports by default, as Postfix
//!   does after `delay_warning_time`). One per recipient, ever: the flag is
//!   recorded in the entry, so a restart sends no second one.
//!
//! NOTIFY=NEVER suppresses all three. Every report takes a slot of the
//! shared [`crate::ReportLimit`] first; one over it is dropped and logged. A report goes out first and is
//! recorded after, so a crash in between sends it twice rather than never.

use crate::attempt::{Context, Transport};
use crate::dsn::{self, Action, Report};
use crate::{DeliveryError, local};
use coimail_store::spool::{RecipientState, SpoolEntry, SpoolRecipient};
use tracing::{info, warn};

fn wants_failure(r: &SpoolRecipient) -> bool {
    r.notify.is_none_or(|n| n.failure)
}

fn wants_relayed(r: &SpoolRecipient) -> bool {
    r.notify.is_some_and(|n| n.success) && !r.dsn_passed
}

fn wants_delay(r: &SpoolRecipient) -> bool {
    r.notify.is_none_or(|n| n.delay)
}

/// When the entry's delay reports fall due, if it still owes one.
pub fn delay_due(entry: &SpoolEntry, delay_warning: i64) -> Option<i64> {
    if delay_warning <= 0 || entry.sender.is_empty() {
        return None;
    }
    let owed =
        entry.recipients.iter().any(|r| r.state == RecipientState::Pending && !r.delay_notified && wants_delay(r));
    owed.then(|| entry.queued_at.saturating_add(delay_warning))
}

/// Builds the report and puts it into the sender's INBOX.
async fn send<T: Transport>(
    ctx: &Context<T>,
    entry: &SpoolEntry,
    action: Action,
    recipients: &[SpoolRecipient],
    now: i64,
) -> Result<(), DeliveryError> {
    if !ctx.reports.try_take(&entry.sender, std::time::Instant::now()) {
        warn!(queue_id = entry.id, sender = %entry.sender, ?action, "DSN dropped: report rate limit reached");
        return Ok(());
    }
    let original = ctx.store.spool_read(entry.id).await.ok();
    let retry_until = (action == Action::Delayed).then(|| entry.queued_at.saturating_add(ctx.retry.expire));
    let report = dsn::build(&Report {
        hostname: &ctx.hostname,
        action,
        entry,
        recipients,
        original: original.as_deref(),
        now,
        retry_until,
    })?;
    let hook = ctx.on_report_delivered.as_ref();
    if local::deliver_to_sender(&ctx.store, &ctx.directory, hook, &entry.sender, &report, now).await? {
        info!(queue_id = entry.id, sender = %entry.sender, ?action, recipients = recipients.len(), "DSN delivered");
    } else {
        warn!(queue_id = entry.id, sender = %entry.sender, ?action, "DSN dropped: sender has no mailbox here");
    }
    Ok(())
}

/// Reports on recipients whose fate is final (failed, relayed), then marks
/// every final recipient notified.
pub(crate) async fn final_reports<T: Transport>(
    ctx: &Context<T>,
    entry: SpoolEntry,
    now: i64,
) -> Result<SpoolEntry, DeliveryError> {
    let done: Vec<&SpoolRecipient> =
        entry.recipients.iter().filter(|r| r.state != RecipientState::Pending && !r.notified).collect();
    if done.is_empty() {
        return Ok(entry);
    }
    if !entry.sender.is_empty() {
        let failed: Vec<SpoolRecipient> = done
            .iter()
            .filter(|r| r.state == RecipientState::Failed && wants_failure(r))
            .map(|r| (*r).clone())
            .collect();
        let relayed: Vec<SpoolRecipient> = done
            .iter()
            .filter(|r| r.state == RecipientState::Delivered && wants_relayed(r))
            .map(|r| (*r).clone())
            .collect();
        for (action, rcpts) in [(Action::Failed, failed), (Action::Relayed, relayed)] {
            if !rcpts.is_empty() {
                send(ctx, &entry, action, &rcpts, now).await?;
            }
        }
    }
    let addresses: Vec<String> = done.iter().map(|r| r.address.clone()).collect();
    Ok(ctx.store.spool_mark_notified(entry.id, &addresses).await?)
}

/// Sends the one `delayed` report of each recipient that has waited past
/// the delay warning and still is pending.
pub(crate) async fn delay_reports<T: Transport>(
    ctx: &Context<T>,
    entry: SpoolEntry,
    now: i64,
) -> Result<SpoolEntry, DeliveryError> {
    if delay_due(&entry, ctx.delay_warning).is_none_or(|due| now < due) {
        return Ok(entry);
    }
    let late: Vec<SpoolRecipient> = entry
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending && !r.delay_notified && wants_delay(r))
        .cloned()
        .collect();
    send(ctx, &entry, Action::Delayed, &late, now).await?;
    let addresses: Vec<String> = late.into_iter().map(|r| r.address).collect();
    Ok(ctx.store.spool_mark_delayed(entry.id, &addresses).await?)
}
