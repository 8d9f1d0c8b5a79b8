//! The queue runner: one task that leases due entries and runs an attempt
//! for each (see `attempt.rs`), at most `concurrency` at once.
//!
//! Per destination: an entry is leased only while every domain it still has
//! to reach has fewer than `destination_concurrency` attempts in flight;
//! since an attempt opens one connection at a time per domain, no domain
//! ever sees more connections than that from us (Postfix's
//! `default_destination_concurrency_limit`, per domain). An entry left out
//! stays due, and the attempt that frees its destination wakes the runner.
//! An entry waiting for several busy domains can wait long under a steady
//! stream to one of them; in exchange no runner slot ever sits idle
//! waiting for a destination.
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
use std::collections::{BTreeSet, HashMap, HashSet};
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
    /// Attempts in flight per destination domain.
    destinations: Arc<Mutex<HashMap<String, usize>>>,
    tasks: TaskTracker,
}

/// Gives the destinations of an attempt back when it ends, however it ends.
struct Reserved {
    destinations: Arc<Mutex<HashMap<String, usize>>>,
    domains: BTreeSet<String>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let mut busy = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        for d in &self.domains {
            if let Some(n) = busy.get_mut(d) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    busy.remove(d);
                }
            }
        }
    }
}

impl<T: Transport> Runner<T> {
    pub fn new(ctx: Context<T>, queue: Queue, concurrency: usize) -> Runner<T> {
        Runner {
            ctx: Arc::new(ctx),
            queue,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: Arc::default(),
            destinations: Arc::default(),
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
        let now = now();
        // Due already and not leased: a running attempt holds the slot or
        // the destination it needs, and wakes us when it ends.
        let secs = match self.ctx.store.spool_next_due(now.saturating_add(1), now.saturating_add(MAX_SLEEP_SECS)) {
            Ok(Some(due)) => due.saturating_sub(now).clamp(1, MAX_SLEEP_SECS),
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
        let limit = self.ctx.destination_concurrency.max(1);
        // A snapshot: attempts ending meanwhile only free more.
        let mut busy = self.destinations.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let admit = |entry: &coimail_store::spool::SpoolEntry| {
            let domains = attempt::pending_domains(entry);
            if domains.iter().any(|d| busy.get(d).copied().unwrap_or(0) >= limit) {
                return false;
            }
            for d in domains {
                *busy.entry(d).or_default() += 1;
            }
            true
        };
        let entries = match self.ctx.store.spool_lease_where(now(), LEASE_SECS, free, admit) {
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
            let reserved =
                Reserved { destinations: self.destinations.clone(), domains: attempt::pending_domains(&entry) };
            {
                let mut busy = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
                for d in &reserved.domains {
                    *busy.entry(d.clone()).or_default() += 1;
                }
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
                drop(reserved);
                drop(permit);
                queue.wake();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;
    use coimail_directory::Directory;
    use coimail_store::Store;
    use coimail_store::spool::{AttemptOutcome, SpoolEntry, SpoolEnvelope, SpoolRecipient, SpoolResult};
    use std::collections::HashMap;

    /// Takes 100 ms per domain and counts deliveries in flight per domain.
    #[derive(Default)]
    struct Slow {
        now: Mutex<HashMap<String, usize>>,
        max: Mutex<HashMap<String, usize>>,
        /// Domains in the order their deliveries finished.
        done: Mutex<Vec<String>>,
    }

    impl Transport for Slow {
        async fn deliver(&self, domain: &str, _: &SpoolEntry, rcpts: &[SpoolRecipient], _: &[u8]) -> Vec<SpoolResult> {
            {
                let mut now = self.now.lock().unwrap();
                let n = now.entry(domain.to_owned()).or_default();
                *n += 1;
                let mut max = self.max.lock().unwrap();
                let m = max.entry(domain.to_owned()).or_default();
                *m = (*m).max(*n);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            *self.now.lock().unwrap().get_mut(domain).unwrap() -= 1;
            self.done.lock().unwrap().push(domain.to_owned());
            let ok = |r: &SpoolRecipient| SpoolResult {
                address: r.address.clone(),
                host: None,
                outcome: AttemptOutcome::Delivered,
                reply: "250 ok".into(),
                dsn_passed: false,
            };
            rcpts.iter().map(ok).collect()
        }
    }

    #[tokio::test]
    async fn no_destination_gets_more_than_its_limit_and_others_are_not_held_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let directory = Directory::open(&store, None).unwrap();
        let queue = Queue::new(store.clone());
        let envelope = |to: &str| SpoolEnvelope {
            sender: "alice@a.test".into(),
            env_id: None,
            ret: None,
            recipients: vec![SpoolRecipient::new(to, None, None)],
        };
        for i in 0..10 {
            queue.enqueue(envelope(&format!("u{i}@busy.test")), b"x\r\n").await.unwrap();
        }
        queue.enqueue(envelope("v@other.test"), b"x\r\n").await.unwrap();
        let ctx = Context {
            store: store.clone(),
            directory,
            transport: Slow::default(),
            retry: RetryPolicy::default(),
            hostname: "mail.a.test".into(),
            delay_warning: 0,
            destination_concurrency: 3,
            reports: crate::ReportLimit::default(),
            on_report_delivered: None,
        };
        let runner = Runner::new(ctx, queue, 16);
        let ctx = runner.ctx.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(runner.run(shutdown.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !store.spool_list().unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "queue not drained");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        let max = ctx.transport.max.lock().unwrap().clone();
        assert_eq!(max.get("busy.test"), Some(&3), "at most, and in fact, 3 at once: {max:?}");
        let done = ctx.transport.done.lock().unwrap().clone();
        assert_eq!(done.len(), 11);
        let other = done.iter().position(|d| d == "other.test").unwrap();
        assert!(other < 4, "other.test went in the first round, not after busy.test's queue: {done:?}");
    }
}
