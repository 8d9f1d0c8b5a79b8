//! The per-user message rate on submission (issue 4: "the per-user limits
//! on recipients and message rate apply"): at most `limit` messages per
//! account in any sliding window of one hour. Recipients per message are
//! capped separately (`SmtpConfig::max_recipients`, 452 4.5.3).
//!
//! - MAIL is refused with 450 4.7.1 while the account is at its limit, so a
//!   client learns before sending the data;
//! - the end of the message takes a slot atomically ([`RateLimit::try_take`]),
//!   so concurrent sessions of one user cannot overrun the limit together,
//!   and gives it back if the message is not accepted after all.
//!
//! Counts live in memory: a restart forgets them (a limit against runaway
//! clients and stolen passwords, not an accounting system).

use coimail_store::AccountId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the limit counts over.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);

/// Accounts tracked before idle ones are swept.
const SWEEP_AT: usize = 1024;

pub(crate) struct RateLimit {
    /// Messages per window; 0: no limit.
    limit: usize,
    window: Duration,
    /// Per account, when its counted messages were accepted, oldest first.
    sent: Mutex<HashMap<AccountId, VecDeque<Instant>>>,
}

impl RateLimit {
    pub(crate) fn new(limit: usize, window: Duration) -> RateLimit {
        RateLimit { limit, window, sent: Mutex::new(HashMap::new()) }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, VecDeque<Instant>>> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops what left the window; returns how many remain.
    fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
            times.pop_front();
        }
        times.len()
    }

    /// May the account start another message at `now`?
    pub(crate) fn allows(&self, account: AccountId, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut sent = self.sent();
        sent.get_mut(&account).is_none_or(|t| Self::prune(t, now, self.window) < self.limit)
    }

    /// Counts one message for the account if it is under its limit.
    pub(crate) fn try_take(&self, account: AccountId, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut sent = self.sent();
        if sent.len() >= SWEEP_AT {
            let window = self.window;
            sent.retain(|_, t| Self::prune(t, now, window) > 0);
        }
        let times = sent.entry(account).or_default();
        if Self::prune(times, now, self.window) >= self.limit {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Returns the slot [`RateLimit::try_take`] took at `at` (the message was not accepted).
    pub(crate) fn give_back(&self, account: AccountId, at: Instant) {
        if self.limit == 0 {
            return;
        }
        if let Some(times) = self.sent().get_mut(&account)
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_per_account() {
        let r = RateLimit::new(2, Duration::from_secs(60));
        let (a, b) = (AccountId(1), AccountId(2));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(r.allows(a, at(0)) && r.try_take(a, at(0)));
        assert!(r.try_take(a, at(10)));
        assert!(!r.allows(a, at(20)) && !r.try_take(a, at(20)));
        assert!(r.try_take(b, at(20)), "accounts are counted apart");
        // The first message leaves the window after 60 s.
        assert!(!r.allows(a, at(59)));
        assert!(r.allows(a, at(60)) && r.try_take(a, at(60)));
        assert!(!r.try_take(a, at(65)));
        // A message that was not accepted after all does not count.
        r.give_back(a, at(60));
        assert!(r.try_take(a, at(66)));
        let unlimited = RateLimit::new(0, Duration::from_secs(60));
        assert!((0..1000).all(|_| unlimited.try_take(a, at(0))));
    }
}
