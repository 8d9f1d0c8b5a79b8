//! The queue runner: one task that leases due entries and runs an attempt
//! for each (see `attempt.rs`), at most `concurrency` at once.
//!
//! It sleeps until the earliest entry is due (at most a minute, so a clock
//! change or a missed wake-up costs little) or until woken by
//! [`Queue::enqueue`], [`Queue::flush`] or a finished attempt.
//!
//! Leases last an hour; within the process a set of entries in flight keeps
//! an entry whose lease ran out from being sent twice at once. An attempt
//! that fails on the server side (store or directory error) is retried a
//! minute later. On shutdown no new attempt starts and the ones running are
//! dropped where they are: nothing they did not record is lost, the next
//! start releases their leases (`Store::spool_recover`) and tries again.

use crate::attempt::{self, Context, Transport};
use crate::{Queue, now};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

const LEASE_SECS: i64 = 60 * 60;
const MAX_SLEEP_SECS: i64 = 60;
const RETRY_AFTER_ERROR_SECS: i64 = 60;

pub struct Runner<T> {
    ctx: Arc<Context<T>>,
    queue: Queue,
    permits: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<u64>>>,
    tasks: TaskTracker,
}

impl<T: Transport> Runner<T> {
    pub fn new(ctx: Context<T>, queue: Queue, concurrency: usize) -> Runner<T> {
        Runner {
            ctx: Arc::new(ctx),
            queue,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: Arc::default(),
            tasks: TaskTracker::new(),
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        info!("outbound queue running");
        loop {
            self.dispatch(&shutdown);
            let wait = self.wait_time();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.queue.woken().notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        info!("outbound queue stopped");
    }

    fn wait_time(&self) -> Duration {
        let secs = match self.ctx.store.spool_next_due() {
            Ok(Some(due)) => due.saturating_sub(now()).clamp(1, MAX_SLEEP_SECS),
            Ok(None) => MAX_SLEEP_SECS,
            Err(e) => {
                error!(error = %e, "reading the queue failed");
                MAX_SLEEP_SECS
            }
        };
        Duration::from_secs(secs.unsigned_abs())
    }

    /// Leases what is due and starts an attempt for each entry.
    fn dispatch(&self, shutdown: &CancellationToken) {
        let free = self.permits.available_permits();
        if free == 0 || shutdown.is_cancelled() {
            return;
        }
        let entries = match self.ctx.store.spool_lease(now(), LEASE_SECS, free) {
            Ok(e) => e,
            Err(e) => {
                error!(error = %e, "leasing queue entries failed");
                return;
            }
        };
        for entry in entries {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else { break };
            let id = entry.id;
            if !self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
                continue;
            }
            let (ctx, queue, in_flight, shutdown) =
                (self.ctx.clone(), self.queue.clone(), self.in_flight.clone(), shutdown.clone());
            self.tasks.spawn(async move {
                let outcome = tokio::select! {
                    _ = shutdown.cancelled() => Ok(()),
                    r = attempt::run(&ctx, entry, now()) => r,
                };
                if let Err(e) = outcome {
                    error!(queue_id = id, error = %e, "delivery attempt failed; retrying in a minute");
                    if let Err(e) = ctx.store.spool_reschedule(id, now() + RETRY_AFTER_ERROR_SECS).await {
                        error!(queue_id = id, error = %e, "rescheduling failed");
                    }
                }
                in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                drop(permit);
                queue.wake();
            });
        }
    }
}
