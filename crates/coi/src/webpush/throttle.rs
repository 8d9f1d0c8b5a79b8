//! Per-account serialisation and the validation rate limit (R39: the spec recommends throttling
//! clients that keep registering subscriptions). Both are in memory: they protect the running
//! server, and a restart forgetting them costs at most one more hour's worth of attempts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// Below this many entries a map is never pruned: pruning is a scan, and a few hundred idle
/// entries cost less than scanning on every call.
const PRUNE_FLOOR: usize = 256;

/// One async lock per account, so that the read-modify-write sequences of one account's
/// subscriptions (limit count and store, restore after a failed validation, validate, delete,
/// purge) never interleave. Accounts do not wait for each other.
#[derive(Default)]
pub struct AccountLocks {
    inner: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    map: HashMap<u64, Arc<tokio::sync::Mutex<()>>>,
    /// Size at which the next new account prunes the map (doubles with live entries).
    prune_at: usize,
}

impl AccountLocks {
    /// Waits for the account's lock. Hold it only around store operations, never across a push:
    /// a phone may answer the validation push over another connection before it returns.
    pub async fn lock(&self, account: u64) -> OwnedMutexGuard<()> {
        let lock = {
            // A panic elsewhere cannot leave the map inconsistent (every update is one call).
            let mut locks = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if !locks.map.contains_key(&account) && locks.map.len() >= locks.prune_at.max(PRUNE_FLOOR) {
                // Only the map holds an unused lock, and nobody can get it without the map.
                locks.map.retain(|_, lock| Arc::strong_count(lock) > 1);
                locks.prune_at = locks.map.len() * 2;
            }
            locks.map.entry(account).or_default().clone()
        };
        lock.lock_owned().await
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).map.len()
    }
}

/// A sliding-window count of validation attempts per account.
pub struct AttemptLog {
    limit: usize,
    window: Duration,
    inner: Mutex<Attempts>,
}

#[derive(Default)]
struct Attempts {
    map: HashMap<u64, VecDeque<Instant>>,
    prune_at: usize,
}

impl AttemptLog {
    /// At most `limit` attempts per account within any `window`.
    pub fn new(limit: usize, window: Duration) -> AttemptLog {
        AttemptLog { limit, window, inner: Mutex::default() }
    }

    /// Counts an attempt at `now`, or returns `false` (and counts nothing) when the account has
    /// made `limit` attempts within the window before `now`.
    pub fn try_record(&self, account: u64, now: Instant) -> bool {
        let window = self.window;
        let recent = |t: &Instant| now.saturating_duration_since(*t) < window;
        let mut attempts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !attempts.map.contains_key(&account) && attempts.map.len() >= attempts.prune_at.max(PRUNE_FLOOR) {
            attempts.map.retain(|_, times| times.back().is_some_and(recent));
            attempts.prune_at = attempts.map.len() * 2;
        }
        let times = attempts.map.entry(account).or_default();
        while times.front().is_some_and(|t| !recent(t)) {
            times.pop_front();
        }
        if times.len() >= self.limit {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_per_account_within_the_window() {
        let log = AttemptLog::new(3, Duration::from_secs(3600));
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert!(log.try_record(1, at(0)));
        assert!(log.try_record(1, at(10)));
        assert!(log.try_record(1, at(20)));
        assert!(!log.try_record(1, at(30)), "the fourth within the hour");
        assert!(!log.try_record(1, at(3599)), "refusals are not counted, but the window has not moved");
        assert!(log.try_record(2, at(30)), "other accounts are not affected");
        assert!(log.try_record(1, at(3600)), "the first attempt has left the window");
        assert!(!log.try_record(1, at(3601)));
        assert!(log.try_record(1, at(3610)));
    }

    #[test]
    fn the_attempt_map_is_pruned() {
        let log = AttemptLog::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for account in 0..1024 {
            assert!(log.try_record(account, t0));
        }
        let later = t0 + Duration::from_secs(120);
        assert!(log.try_record(5000, later));
        assert!(log.inner.lock().unwrap().map.len() <= 2, "old accounts forgotten");
        // A recent attempt survives a prune.
        assert!(!log.try_record(5000, later + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn one_account_is_serialised_and_others_are_not() {
        let locks = Arc::new(AccountLocks::default());
        let held = locks.lock(1).await;
        let other = tokio::time::timeout(Duration::from_millis(100), locks.lock(2)).await;
        assert!(other.is_ok(), "another account does not wait");
        drop(other);
        let same = tokio::time::timeout(Duration::from_millis(100), locks.lock(1)).await;
        assert!(same.is_err(), "the same account waits");
        drop(held);
        let _again = tokio::time::timeout(Duration::from_millis(100), locks.lock(1)).await.unwrap();
    }

    #[tokio::test]
    async fn unused_locks_are_pruned_and_held_ones_kept() {
        let locks = AccountLocks::default();
        let held = locks.lock(0).await;
        for account in 1..PRUNE_FLOOR as u64 {
            drop(locks.lock(account).await);
        }
        let _new = locks.lock(100_000).await;
        assert_eq!(locks.len(), 2, "only the held lock and the new one remain");
        drop(held);
    }
}
