//! The push queue, shared fairly between accounts. Each account may have
//! at most `per_account` pushes waiting and `account_workers` taken out
//! (sending, or sleeping before a retry) at once, and waiting accounts take
//! turns. So one account's stalled push endpoints, which hold each of its
//! pushes for the whole timeout and its retries, can take neither the whole
//! queue (another account's pushes would be dropped) nor every worker
//! (they would wait behind it): issue 11.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    QueueFull,
    AccountShareFull,
    Closed,
}

impl Refused {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refused::QueueFull => "queue full",
            Refused::AccountShareFull => "the account's share of the queue is full",
            Refused::Closed => "shut down",
        }
    }
}

/// Anything with an account: the queue does not look inside jobs otherwise.
pub(crate) trait Owned {
    fn account(&self) -> u64;
}

struct State<J> {
    waiting: HashMap<u64, VecDeque<J>>,
    /// Accounts with waiting jobs, in turn order.
    turns: VecDeque<u64>,
    /// Per account: jobs taken out and not yet [`FairQueue::done`].
    running: HashMap<u64, usize>,
    queued: usize,
    closed: bool,
}

pub(crate) struct FairQueue<J> {
    state: Mutex<State<J>>,
    wake: Notify,
    capacity: usize,
    per_account: usize,
    account_workers: usize,
}

impl<J: Owned> FairQueue<J> {
    pub(crate) fn new(capacity: usize, per_account: usize, account_workers: usize) -> Self {
        FairQueue {
            state: Mutex::new(State {
                waiting: HashMap::new(),
                turns: VecDeque::new(),
                running: HashMap::new(),
                queued: 0,
                closed: false,
            }),
            wake: Notify::new(),
            capacity: capacity.max(1),
            per_account: per_account.max(1),
            account_workers: account_workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` unless the queue or its account's share is full; never waits.
    pub(crate) fn push(&self, job: J) -> Result<(), (Refused, J)> {
        let mut s = self.lock();
        if s.closed {
            return Err((Refused::Closed, job));
        }
        if s.queued >= self.capacity {
            return Err((Refused::QueueFull, job));
        }
        let account = job.account();
        let mine = s.waiting.entry(account).or_default();
        if mine.len() >= self.per_account {
            return Err((Refused::AccountShareFull, job));
        }
        let first = mine.is_empty();
        mine.push_back(job);
        s.queued += 1;
        if first {
            s.turns.push_back(account);
        }
        drop(s);
        self.wake.notify_one();
        Ok(())
    }

    /// The next job, taking accounts in turn and skipping those at their
    /// worker share; `None` once closed and empty.
    pub(crate) async fn next(&self) -> Option<J> {
        loop {
            // Made before looking, so a push or `done` in between still wakes us.
            let woken = self.wake.notified();
            {
                let mut s = self.lock();
                if let Some(job) = self.take(&mut s) {
                    return Some(job);
                }
                if s.closed && s.queued == 0 {
                    return None;
                }
            }
            woken.await;
        }
    }

    fn take(&self, s: &mut State<J>) -> Option<J> {
        for _ in 0..s.turns.len() {
            let account = s.turns.pop_front()?;
            if s.running.get(&account).copied().unwrap_or(0) >= self.account_workers {
                s.turns.push_back(account);
                continue;
            }
            let mine = s.waiting.get_mut(&account)?;
            let job = mine.pop_front()?;
            if mine.is_empty() {
                s.waiting.remove(&account);
            } else {
                s.turns.push_back(account);
            }
            s.queued -= 1;
            *s.running.entry(account).or_default() += 1;
            return Some(job);
        }
        None
    }

    /// A job [`FairQueue::next`] gave out has ended: its account may have another.
    pub(crate) fn done(&self, account: u64) {
        let mut s = self.lock();
        if let Some(n) = s.running.get_mut(&account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.running.remove(&account);
            }
        }
        drop(s);
        self.wake.notify_one();
    }

    /// No more pushes; what waits is still handed out.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Job(u64, u32);

    impl Owned for Job {
        fn account(&self) -> u64 {
            self.0
        }
    }

    #[tokio::test]
    async fn accounts_take_turns_and_keep_to_their_shares() {
        let q = FairQueue::new(10, 3, 2);
        for i in 0..3 {
            q.push(Job(1, i)).unwrap();
        }
        let (why, _) = q.push(Job(1, 3)).unwrap_err();
        assert_eq!(why, Refused::AccountShareFull, "account 1 has its 3");
        q.push(Job(2, 0)).unwrap();
        q.push(Job(2, 1)).unwrap();
        // Turns: 1, 2, 1, 2; then account 1 is at its two workers and 2 is empty.
        assert_eq!(q.next().await, Some(Job(1, 0)));
        assert_eq!(q.next().await, Some(Job(2, 0)));
        assert_eq!(q.next().await, Some(Job(1, 1)));
        assert_eq!(q.next().await, Some(Job(2, 1)));
        assert!(q.take(&mut q.lock()).is_none(), "account 1 is at its worker share");
        q.done(1);
        assert_eq!(q.next().await, Some(Job(1, 2)));
    }

    #[tokio::test]
    async fn the_whole_queue_is_bounded_too() {
        let q = FairQueue::new(4, 3, 1);
        for (account, n) in [(1, 0), (1, 1), (2, 0), (3, 0)] {
            q.push(Job(account, n)).unwrap();
        }
        assert_eq!(q.push(Job(4, 0)).unwrap_err().0, Refused::QueueFull);
        q.close();
        assert_eq!(q.push(Job(5, 0)).unwrap_err().0, Refused::Closed);
        // Closed, the waiting jobs still come out; then None.
        let mut out = Vec::new();
        while let Some(job) = q.next().await {
            q.done(job.0);
            out.push(job);
        }
        assert_eq!(out, [Job(1, 0), Job(2, 0), Job(3, 0), Job(1, 1)]);
    }
}
