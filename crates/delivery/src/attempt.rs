//! One attempt at one queue entry, in four durable steps:
//!
//! 1. Deliver every pending recipient, grouped by domain, through the
//!    [`Transport`]; a temporary failure past the entry's expiry becomes
//!    final (`4.4.7`). All results, the attempt and the next retry time are
//!    recorded in one flushed update ([`Store::spool_record`]). The next
//!    attempt comes no later than a delay report falls due.
//! 2. Final reports (`notify.rs`): a bounce for the failed recipients that
//!    want one, a `relayed` report for NOTIFY=SUCCESS recipients a server
//!    without DSN took; then every final recipient is marked notified.
//! 3. Delay reports: one per recipient still pending past the delay warning.
//! 4. An entry with nothing left to do is deleted with its message file.
//!
//! Each step starts from what the previous one recorded, so an attempt cut
//! off anywhere resumes at the right step. `now` is passed in: tests run
//! attempts on a made-up clock.

use crate::retry::{Next, RetryPolicy};
use crate::{DeliveryError, QueueConfig, notify};
use coimail_directory::Directory;
use coimail_store::spool::{AttemptOutcome, RecipientState, SpoolEntry, SpoolRecipient, SpoolResult};
use coimail_store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use tracing::{error, info};

/// Carries one domain's recipients to their servers. The seam between the
/// queue logic and the network: [`crate::Outbound`] in production.
pub trait Transport: Send + Sync + 'static {
    /// One result per recipient (missing ones stay pending).
    fn deliver(
        &self,
        domain: &str,
        entry: &SpoolEntry,
        rcpts: &[SpoolRecipient],
        message: &[u8],
    ) -> impl Future<Output = Vec<SpoolResult>> + Send;
}

/// What an attempt needs.
pub struct Context<T> {
    pub store: Store,
    pub directory: Directory,
    pub transport: T,
    pub retry: RetryPolicy,
    /// Our host name, for bounces.
    pub hostname: String,
    /// [`QueueConfig::delay_warning`].
    pub delay_warning: i64,
    /// [`QueueConfig::destination_concurrency`] (the runner keeps it).
    pub destination_concurrency: usize,
    /// The cap on reports, shared with SMTP's reports.
    pub reports: crate::ReportLimit,
    /// Told of each report filed into a sender's mailbox here.
    pub on_report_delivered: Option<crate::DeliveredHook>,
}

impl<T> Context<T> {
    pub fn new(store: Store, directory: Directory, transport: T, config: &QueueConfig) -> Context<T> {
        Context {
            store,
            directory,
            transport,
            retry: config.retry,
            hostname: config.hostname.clone(),
            delay_warning: config.delay_warning,
            destination_concurrency: config.destination_concurrency,
            reports: crate::ReportLimit::new(config.reports_per_address_per_hour, config.reports_per_hour),
            on_report_delivered: None,
        }
    }
}

/// Runs one attempt at `entry` (leased by the caller) at time `now`.
pub async fn run<T: Transport>(ctx: &Context<T>, entry: SpoolEntry, now: i64) -> Result<(), DeliveryError> {
    let entry = deliver_pending(ctx, entry, now).await?;
    let entry = notify::final_reports(ctx, entry, now).await?;
    let entry = notify::delay_reports(ctx, entry, now).await?;
    if !entry.has_work() {
        ctx.store.spool_delete(entry.id).await?;
        info!(queue_id = entry.id, attempts = entry.attempts, "queue entry done");
    }
    Ok(())
}

fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map_or_else(String::new, |(_, d)| d.to_ascii_lowercase())
}

/// The domains an attempt at `entry` will connect to.
pub fn pending_domains(entry: &SpoolEntry) -> BTreeSet<String> {
    entry.recipients.iter().filter(|r| r.state == RecipientState::Pending).map(|r| domain_of(&r.address)).collect()
}

async fn deliver_pending<T: Transport>(
    ctx: &Context<T>,
    entry: SpoolEntry,
    now: i64,
) -> Result<SpoolEntry, DeliveryError> {
    let mut by_domain: BTreeMap<String, Vec<SpoolRecipient>> = BTreeMap::new();
    for r in entry.recipients.iter().filter(|r| r.state == RecipientState::Pending) {
        by_domain.entry(domain_of(&r.address)).or_default().push(r.clone());
    }
    if by_domain.is_empty() {
        return Ok(entry);
    }
    let mut results = Vec::new();
    match ctx.store.spool_read(entry.id).await {
        Ok(message) => {
            for (domain, rcpts) in &by_domain {
                results.extend(ctx.transport.deliver(domain, &entry, rcpts, &message).await);
            }
        }
        Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            error!(queue_id = entry.id, "queued message file is missing; failing its recipients");
            for r in by_domain.values().flatten() {
                results.push(SpoolResult {
                    address: r.address.clone(),
                    host: None,
                    outcome: AttemptOutcome::Failed,
                    reply: "554 5.3.0 the queued message was lost on the server".to_owned(),
                    dsn_passed: false,
                });
            }
        }
        Err(e) => return Err(e.into()),
    }
    let next = match ctx.retry.next(entry.queued_at, entry.attempts.saturating_add(1), now) {
        // The delay report is sent by an attempt, so one must come when it is due.
        Next::RetryAt(t) => notify::delay_due(&entry, ctx.delay_warning).filter(|&d| d > now).map_or(t, |d| t.min(d)),
        Next::Expired => {
            expire(&mut results, entry.attempts.saturating_add(1));
            now
        }
    };
    let recorded = ctx.store.spool_record(entry.id, now, &results, next).await?;
    count_results(&results);
    Ok(recorded)
}

/// Recipients' results of one recorded attempt, in the queue's counters.
fn count_results(results: &[SpoolResult]) {
    let count = |outcome| results.iter().filter(|r| r.outcome == outcome).count() as u64;
    metrics::counter!("coimail_queue_sent_total").increment(count(AttemptOutcome::Delivered));
    metrics::counter!("coimail_queue_deferred_total").increment(count(AttemptOutcome::Deferred));
    metrics::counter!("coimail_queue_bounced_total").increment(count(AttemptOutcome::Failed));
}

/// Temporary failures at expiry are final (RFC 3463 4.4.7).
fn expire(results: &mut [SpoolResult], attempts: u32) {
    for r in results.iter_mut().filter(|r| r.outcome == AttemptOutcome::Deferred) {
        r.outcome = AttemptOutcome::Failed;
        r.reply = format!("451 4.4.7 delivery time expired after {attempts} attempts; last error: {}", r.reply);
    }
}

#[cfg(test)]
mod tests;
