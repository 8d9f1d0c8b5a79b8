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

use crate::error::{Result, StoreError};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

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
    running: bool,
}

/// The engine's blocking "make everything applied so far durable".
pub(crate) type FlushFn = Box<dyn Fn() -> Result<()> + Send + Sync>;

/// Serialises flushes of one database and lets concurrent callers share them.
pub(crate) struct GroupCommit {
    flush: FlushFn,
    state: Mutex<State>,
    progress: watch::Sender<Progress>,
}

impl GroupCommit {
    pub(crate) fn new(flush: FlushFn) -> Arc<GroupCommit> {
        Arc::new(GroupCommit {
            flush,
            state: Mutex::new(State::default()),
            progress: watch::channel(Progress::default()).0,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once a flush that started after this call has completed, so
    /// every write applied before the call is durable.
    pub(crate) async fn flush(self: &Arc<Self>) -> Result<()> {
        let mut progress = self.progress.subscribe();
        let ticket = {
            let mut st = self.state();
            st.requested += 1;
            if !st.running {
                st.running = true;
                let this = self.clone();
                tokio::task::spawn_blocking(move || this.run());
            }
            st.requested
        };
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

    /// The flusher: flushes until no request is outstanding.
    fn run(&self) {
        loop {
            let target = {
                let mut st = self.state();
                if self.progress.borrow().done >= st.requested {
                    st.running = false;
                    return;
                }
                st.requested
            };
            // Every request up to `target` was registered after its write was
            // applied, and this flush starts after all of them.
            let result = (self.flush)();
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
}
