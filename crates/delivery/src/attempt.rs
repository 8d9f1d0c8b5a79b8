//! One attempt at one queue entry, in three durable steps:
//!
//! 1. Deliver every pending recipient, grouped by domain, through the
//!    [`Transport`]; a temporary failure past the entry's expiry becomes
//!    final (`4.4.7`). All results, the attempt and the next retry time are
//!    recorded in one flushed update ([`Store::spool_record`]).
//! 2. Bounce: recipients that failed and want a failure DSN (NOTIFY unset
//!    or containing FAILURE) get one RFC 3464 report in the sender's INBOX;
//!    then every final recipient is marked notified.
//! 3. An entry with nothing left to do is deleted with its message file.
//!
//! Each step starts from what the previous one recorded, so an attempt cut
//! off anywhere resumes at the right step. `now` is passed in: tests run
//! attempts on a made-up clock.

use crate::dsn::{self, Bounce};
use crate::retry::{Next, RetryPolicy};
use crate::{DeliveryError, local};
use coimail_directory::Directory;
use coimail_store::spool::{AttemptOutcome, RecipientState, SpoolEntry, SpoolRecipient, SpoolResult};
use coimail_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::future::Future;
use tracing::{error, info, warn};

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
}

/// Runs one attempt at `entry` (leased by the caller) at time `now`.
pub async fn run<T: Transport>(ctx: &Context<T>, entry: SpoolEntry, now: i64) -> Result<(), DeliveryError> {
    let entry = deliver_pending(ctx, entry, now).await?;
    let entry = bounce(ctx, entry, now).await?;
    if !entry.has_work() {
        ctx.store.spool_delete(entry.id).await?;
        info!(queue_id = entry.id, attempts = entry.attempts, "queue entry done");
    }
    Ok(())
}

fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map_or_else(String::new, |(_, d)| d.to_ascii_lowercase())
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
                });
            }
        }
        Err(e) => return Err(e.into()),
    }
    let next = match ctx.retry.next(entry.queued_at, entry.attempts.saturating_add(1), now) {
        Next::RetryAt(t) => t,
        Next::Expired => {
            expire(&mut results, entry.attempts.saturating_add(1));
            now
        }
    };
    Ok(ctx.store.spool_record(entry.id, now, &results, next).await?)
}

/// Temporary failures at expiry are final (RFC 3463 4.4.7).
fn expire(results: &mut [SpoolResult], attempts: u32) {
    for r in results.iter_mut().filter(|r| r.outcome == AttemptOutcome::Deferred) {
        r.outcome = AttemptOutcome::Failed;
        r.reply = format!("451 4.4.7 delivery time expired after {attempts} attempts; last error: {}", r.reply);
    }
}

fn wants_failure_dsn(r: &SpoolRecipient) -> bool {
    r.notify.is_none_or(|n| n.failure)
}

async fn bounce<T: Transport>(ctx: &Context<T>, entry: SpoolEntry, now: i64) -> Result<SpoolEntry, DeliveryError> {
    let done: Vec<String> = entry
        .recipients
        .iter()
        .filter(|r| r.state != RecipientState::Pending && !r.notified)
        .map(|r| r.address.clone())
        .collect();
    if done.is_empty() {
        return Ok(entry);
    }
    let failed: Vec<SpoolRecipient> = entry
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Failed && !r.notified && wants_failure_dsn(r))
        .cloned()
        .collect();
    if !failed.is_empty() && !entry.sender.is_empty() {
        let original = ctx.store.spool_read(entry.id).await.ok();
        let report = dsn::build(&Bounce {
            hostname: &ctx.hostname,
            entry: &entry,
            failed: &failed,
            original: original.as_deref(),
            now,
        })?;
        if local::deliver_to_sender(&ctx.store, &ctx.directory, &entry.sender, &report, now).await? {
            info!(queue_id = entry.id, sender = %entry.sender, failed = failed.len(), "bounce delivered");
        } else {
            warn!(queue_id = entry.id, sender = %entry.sender, "bounce dropped: sender has no mailbox here");
        }
    }
    Ok(ctx.store.spool_mark_notified(entry.id, &done).await?)
}

#[cfg(test)]
mod tests;
