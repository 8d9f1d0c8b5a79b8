//! Group commit: many concurrent "make my write durable" requests served by
//! one flush at a time.
//!
//! Why not sled's own `flush_async`: each call parks a thread of sled's
//! small I/O pool until its LSN is stable, and the write that would make it
//! stable is queued on that same pool. With as many concurrent deliveries as
//! pool threads, every thread waits and none writes: the store hangs (seen
//! under load in the SIGKILL storm test, all `sled-io-*` threads parked in
//! `make_stable_inner`). So only one blocking flush runs at a time, and every
//! request registered while it runs is served by the next one.
//!
//! The flusher is a blocking-pool task that stays while requests keep
//! coming: after a flush it waits up to [`LINGER`] for the next request
//! before it ends. Starting one task per flush cost a pool hand-off (its
//! queue's mutex, a condition variable, the task) for each of the ~2,000
//! flushes a second under load, the largest single source of futex calls;
//! a thread of its own for good would keep a paused test clock from ever
//! advancing by itself and a runtime from shutting down.

use crate::error::{Result, StoreError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How long an idle flusher waits for the next request before it ends.
const LINGER: Duration = Duration::from_millis(20);

/// What the flusher has finished: every request numbered up to `done` is
/// durable, unless `failed` names an error for requests up to that number.
#[derive(Debug, Clone, Default)]
struct Progress {
    done: u64,
    /// The last failure: up to which ticket, what, and whether it was a full
    /// disk (which callers answer as such, not as a server fault).
    failed: Option<(u64, String, bool)>,
}

#[derive(Default)]
struct State {
    requested: u64,
    /// A flusher task exists (flushing or lingering).
    running: bool,
    /// It is lingering: a new request must wake it.
    idle: bool,
    /// The handle is gone: end now.
    stop: bool,
}

/// The engine's blocking "make everything applied so far durable".
pub(crate) type FlushFn = Box<dyn Fn() -> Result<()> + Send + Sync>;

struct Shared {
    /// Taken out by the handle's `Drop` once no flusher runs, so what it
    /// holds (the database, whose file sled locks) goes with the store
    /// even while the ended task still holds `Shared` for a moment.
    flush: Mutex<Option<FlushFn>>,
    state: Mutex<State>,
    /// Wakes a lingering flusher; tells a dropping handle the flusher ended.
    wake: Condvar,
    ended: Condvar,
    progress: watch::Sender<Progress>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The flusher: flushes while requests are outstanding, lingers, ends.
    fn run(&self) {
        loop {
            let target = {
                let mut st = self.state();
                loop {
                    if self.progress.borrow().done < st.requested {
                        break st.requested;
                    }
                    if st.stop || st.idle {
                        // Stopped, or lingered in vain.
                        st.running = false;
                        st.idle = false;
                        self.ended.notify_all();
                        return;
                    }
                    st.idle = true;
                    st = self.wake.wait_timeout(st, LINGER).unwrap_or_else(|e| e.into_inner()).0;
                    // Still `idle` if nobody woke it: the check above ends it.
                }
            };
            // Every request up to `target` was registered after its write was
            // applied, and this flush starts after all of them.
            let result = match &*self.flush.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(flush) => flush(),
                None => Err(StoreError::Engine("the store is closed".into())),
            };
            self.progress.send_modify(|p| {
                p.done = target;
                if let Err(e) = result {
                    tracing::error!(error = %e, "index flush failed");
                    p.failed = Some((target, e.to_string(), matches!(e, StoreError::DiskFull)));
                }
            });
        }
    }
}

/// Serialises the store's flushes (index and journal) and lets concurrent
/// callers share them.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
}

impl GroupCommit {
    pub(crate) fn new(flush: FlushFn) -> Arc<GroupCommit> {
        Arc::new(GroupCommit {
            shared: Arc::new(Shared {
                flush: Mutex::new(Some(flush)),
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                ended: Condvar::new(),
                progress: watch::channel(Progress::default()).0,
            }),
        })
    }

    /// Returns once a flush that started after this call has completed, so
    /// every write applied before the call is durable.
    pub(crate) async fn flush(&self) -> Result<()> {
        let mut progress = self.shared.progress.subscribe();
        let (ticket, start) = {
            let mut st = self.shared.state();
            st.requested += 1;
            let start = !st.running;
            if start {
                st.running = true;
            } else if st.idle {
                // Only a lingering flusher needs waking (a busy one looks at
                // `requested` before it lingers); notifying costs a syscall.
                st.idle = false;
                self.shared.wake.notify_one();
            }
            (st.requested, start)
        };
        if start {
            // Outside the lock: a runtime shutting down drops the task at
            // once, and `Launch`'s drop takes the lock.
            let mut launch = Launch(Some(Arc::clone(&self.shared)));
            tokio::task::spawn_blocking(move || {
                if let Some(shared) = launch.0.take() {
                    shared.run();
                }
            });
        }
        let seen = progress
            .wait_for(|p| p.done >= ticket)
            .await
            .map_err(|_| StoreError::Engine("the flusher stopped".into()))?
            .clone();
        match seen.failed {
            Some((upto, _, true)) if ticket <= upto => Err(StoreError::DiskFull),
            Some((upto, msg, false)) if ticket <= upto => Err(StoreError::Engine(format!("flush failed: {msg}"))),
            _ => Ok(()),
        }
    }
}

/// A flusher task not yet started. A runtime shutting down drops such
/// tasks unrun; then no flusher runs after all, and the handle's `Drop`
/// must not wait for one.
struct Launch(Option<Arc<Shared>>);

impl Drop for Launch {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.state().running = false;
            shared.ended.notify_all();
        }
    }
}

impl Drop for GroupCommit {
    /// Ends a lingering flusher and waits for it (at most one flush), so
    /// the database its flush function holds is released with the store.
    fn drop(&mut self) {
        let mut st = self.shared.state();
        st.stop = true;
        self.shared.wake.notify_one();
        while st.running {
            st = self.shared.ended.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        drop(st);
        self.shared.flush.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_share_flushes_and_errors_reach_waiters() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let (f, fail) = (flushes.clone(), failing.clone());
        let gc = GroupCommit::new(Box::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            if fail.load(Ordering::SeqCst) { Err(StoreError::Engine("disk on fire".into())) } else { Ok(()) }
        }));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let gc = gc.clone();
            tasks.push(tokio::spawn(async move { gc.flush().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "64 requests took {n} flushes");

        failing.store(true, Ordering::SeqCst);
        let err = gc.flush().await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
        // A later request gets a fresh flush, not the old error.
        failing.store(false, Ordering::SeqCst);
        gc.flush().await.unwrap();
    }

    /// A runtime that is shutting down drops a new blocking task unrun;
    /// dropping the handle afterwards must not wait for that flusher.
    #[test]
    fn a_flusher_the_runtime_never_ran_is_not_waited_for() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let handle = rt.handle().clone();
        rt.shutdown_timeout(std::time::Duration::ZERO);
        let gc = GroupCommit::new(Box::new(|| Ok(())));
        {
            let _in_runtime = handle.enter();
            let mut flush = Box::pin(gc.flush());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(flush.as_mut().poll(&mut cx).is_pending(), "no flusher ran");
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(gc);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok(), "dropping the handle hung");
    }

    #[tokio::test]
    async fn dropping_it_stops_the_flusher_and_releases_what_it_flushes() {
        let engine = Arc::new(());
        let held = Arc::clone(&engine);
        let gc = GroupCommit::new(Box::new(move || {
            let _ = &held;
            Ok(())
        }));
        gc.flush().await.unwrap();
        // The flusher sleeps now; a request still wakes it.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        gc.flush().await.unwrap();
        assert_eq!(Arc::strong_count(&engine), 2);
        drop(gc);
        assert_eq!(Arc::strong_count(&engine), 1, "the flusher thread still holds the engine");
    }
}
