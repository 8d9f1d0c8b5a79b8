//! The notifier's queue: bounded, fair per account, never blocking.
//!
//! - [`PushQueue::offer`] never waits: a notification the queue has no room
//!   for is dropped (and counted), so a stalled proxy can never hold up a
//!   delivery. A job counts against the bounds from the moment it is
//!   offered until it is done, including while it waits for a retry, so
//!   retries cannot grow past them either.
//! - No account may hold more than `per_account` jobs, and workers take
//!   jobs round-robin over the accounts that have some waiting: one busy
//!   account gets its share and no more.
//! - A token already waiting (not yet sent) is not queued twice: the push
//!   only wakes the device, which then fetches everything new.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// One token to send for one account.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub account: u64,
    pub token: String,
    /// When the delivery asked for it (the retry deadline counts from here).
    pub first: Instant,
    /// Attempts made so far.
    pub attempts: u32,
}

#[derive(Default)]
struct State {
    waiting: HashMap<u64, VecDeque<Job>>,
    /// Accounts with waiting jobs, in the order workers serve them.
    ring: VecDeque<u64>,
    /// Jobs offered and not yet done, per account and in all.
    held: HashMap<u64, usize>,
    held_total: usize,
}

pub(crate) struct PushQueue {
    state: Mutex<State>,
    ready: tokio::sync::Notify,
    capacity: usize,
    per_account: usize,
}

/// Why [`PushQueue::offer`] did not take a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The same token is already waiting to be sent.
    Duplicate,
    /// The account holds its share already.
    AccountFull,
    /// The whole queue is full.
    Full,
}

impl PushQueue {
    pub(crate) fn new(capacity: usize, per_account: usize) -> PushQueue {
        PushQueue {
            state: Mutex::new(State::default()),
            ready: tokio::sync::Notify::new(),
            capacity: capacity.max(1),
            per_account: per_account.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves consistent counters: every
        // update below is completed before anything can panic.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new job from a delivery; returns at once.
    pub(crate) fn offer(&self, job: Job) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.waiting.get(&job.account).is_some_and(|q| q.iter().any(|j| j.token == job.token)) {
            return Err(Refused::Duplicate);
        }
        if s.held_total >= self.capacity {
            return Err(Refused::Full);
        }
        let held = s.held.entry(job.account).or_default();
        if *held >= self.per_account {
            return Err(Refused::AccountFull);
        }
        *held += 1;
        s.held_total += 1;
        Self::push(&mut s, job);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// A job that is already held (a retry whose wait is over).
    pub(crate) fn requeue(&self, job: Job) {
        let mut s = self.lock();
        Self::push(&mut s, job);
        drop(s);
        self.ready.notify_one();
    }

    fn push(s: &mut State, job: Job) {
        let account = job.account;
        let q = s.waiting.entry(account).or_default();
        q.push_back(job);
        if q.len() == 1 {
            s.ring.push_back(account);
        }
    }

    /// The next job, round-robin over accounts, if any is waiting.
    pub(crate) fn try_next(&self) -> Option<Job> {
        let mut s = self.lock();
        let account = s.ring.pop_front()?;
        let q = s.waiting.get_mut(&account)?;
        let job = q.pop_front();
        if q.is_empty() {
            s.waiting.remove(&account);
        } else {
            s.ring.push_back(account);
        }
        job
    }

    /// Waits for the next job.
    pub(crate) async fn next(&self) -> Job {
        loop {
            let notified = self.ready.notified();
            if let Some(job) = self.try_next() {
                return job;
            }
            notified.await;
        }
    }

    /// A job is finished (sent, given up or dropped): its place is free.
    pub(crate) fn done(&self, account: u64) {
        let mut s = self.lock();
        s.held_total = s.held_total.saturating_sub(1);
        if let Some(held) = s.held.get_mut(&account) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                s.held.remove(&account);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn job(account: u64, token: &str) -> Job {
        Job { account, token: token.to_owned(), first: Instant::now(), attempts: 0 }
    }

    #[test]
    fn accounts_take_turns() {
        let q = PushQueue::new(100, 10);
        for i in 0..5 {
            q.offer(job(1, &format!("busy{i}"))).unwrap();
        }
        q.offer(job(2, "quiet")).unwrap();
        q.offer(job(3, "other")).unwrap();
        let order: Vec<(u64, String)> = std::iter::from_fn(|| q.try_next()).map(|j| (j.account, j.token)).collect();
        let accounts: Vec<u64> = order.iter().map(|(a, _)| *a).collect();
        assert_eq!(accounts, vec![1, 2, 3, 1, 1, 1, 1]);
        assert_eq!(order[3].1, "busy1", "one account's jobs stay in order");
    }

    #[test]
    fn bounds_hold_until_done() {
        let q = PushQueue::new(3, 2);
        q.offer(job(1, "a")).unwrap();
        q.offer(job(1, "b")).unwrap();
        assert_eq!(q.offer(job(1, "c")), Err(Refused::AccountFull));
        q.offer(job(2, "d")).unwrap();
        assert_eq!(q.offer(job(3, "e")), Err(Refused::Full));
        // Taken by a worker but not done (in flight or waiting to retry): still held.
        let taken = q.try_next().unwrap();
        assert_eq!(q.offer(job(3, "e")), Err(Refused::Full));
        q.done(taken.account);
        q.offer(job(3, "e")).unwrap();
    }

    #[test]
    fn a_waiting_token_is_not_queued_twice() {
        let q = PushQueue::new(10, 10);
        q.offer(job(1, "t")).unwrap();
        assert_eq!(q.offer(job(1, "t")), Err(Refused::Duplicate));
        q.offer(job(2, "t")).unwrap();
        // Once sent, a new delivery needs a new push.
        let j = q.try_next().unwrap();
        q.offer(job(j.account, "t")).unwrap();
    }

    #[tokio::test]
    async fn next_wakes_on_offer() {
        let q = std::sync::Arc::new(PushQueue::new(10, 10));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await.token }
        });
        tokio::task::yield_now().await;
        q.offer(job(1, "x")).unwrap();
        assert_eq!(waiter.await.unwrap(), "x");
    }
}
