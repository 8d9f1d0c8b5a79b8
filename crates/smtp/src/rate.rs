//! Sliding-window message rates, one counter per key:
//! - per user on submission (issue 4: "the per-user limits on recipients
//!   and message rate apply"), keyed by account;
//! - on MX (issue 11), per peer (IPv4 address or IPv6 /64) and per local
//!   recipient account, so one sender cannot flood the server or one user.
//!
//! At most `limit` messages per key in any sliding window. Recipients per
//! message are capped separately (`SmtpConfig::max_recipients`, 452 4.5.3).
//!
//! - MAIL (RCPT for recipients) is refused with 450 4.7.1 while the key is
//!   at its limit, so a client learns before sending the data;
//! - the end of the message takes a slot atomically ([`RateLimit::try_take`]),
//!   so concurrent sessions of one user cannot overrun the limit together,
//!   and gives it back if the message is not accepted after all. MX counts
//!   with [`RateLimit::record`] once a message is accepted: the check at
//!   MAIL/RCPT is the limit there, so concurrent sessions may overshoot it by
//!   the messages they have in flight.
//!
//! Counts live in memory: a restart forgets them (a limit against runaway
//! clients, stolen passwords and floods, not an accounting system). Each
//! counter keeps one `Instant` per counted message, so memory is bounded by
//! `limit` per key and idle keys are swept.

use crate::SmtpListener;
use crate::session::Transaction;
use coimail_directory::{Account, peer_key};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window the limit counts over.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);

/// Accounts tracked before idle ones are swept.
const SWEEP_AT: usize = 1024;

pub(crate) struct RateLimit<K> {
    /// Messages per window; 0: no limit.
    limit: usize,
    window: Duration,
    /// Per key, when its counted messages were accepted, oldest first.
    sent: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Copy> RateLimit<K> {
    pub(crate) fn new(limit: usize, window: Duration) -> RateLimit<K> {
        RateLimit { limit, window, sent: Mutex::new(HashMap::new()) }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, HashMap<K, VecDeque<Instant>>> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops what left the window; returns how many remain.
    fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
            times.pop_front();
        }
        times.len()
    }

    /// May `key` start another message at `now`?
    pub(crate) fn allows(&self, key: K, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut sent = self.sent();
        sent.get_mut(&key).is_none_or(|t| Self::prune(t, now, self.window) < self.limit)
    }

    /// Counts one message for `key` if it is under its limit.
    pub(crate) fn try_take(&self, key: K, now: Instant) -> bool {
        self.count(key, now, true)
    }

    /// Counts one message for `key`, at its limit or not (the message is
    /// accepted already; the next [`RateLimit::allows`] says no).
    pub(crate) fn record(&self, key: K, now: Instant) {
        self.count(key, now, false);
    }

    fn count(&self, key: K, now: Instant, only_under_limit: bool) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut sent = self.sent();
        if sent.len() >= SWEEP_AT {
            let window = self.window;
            sent.retain(|_, t| Self::prune(t, now, window) > 0);
        }
        let times = sent.entry(key).or_default();
        let n = Self::prune(times, now, self.window);
        if n >= self.limit {
            if only_under_limit {
                return false;
            }
            // Keeps the memory per key bounded by the limit.
            times.pop_front();
        }
        times.push_back(now);
        true
    }

    /// Returns the slot [`RateLimit::try_take`] took at `at` (the message was not accepted).
    pub(crate) fn give_back(&self, key: K, at: Instant) {
        if self.limit == 0 {
            return;
        }
        if let Some(times) = self.sent().get_mut(&key)
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }
}

impl crate::session::Session {
    /// MX: may this peer start another message? (Always on submission.)
    pub(crate) fn mx_peer_allowed(&self) -> bool {
        self.kind != SmtpListener::Mx || self.ctx.mx_peer_rate.allows(peer_key(self.peer.ip()), Instant::now())
    }

    /// MX: may `account` get another message? An account already among
    /// the transaction's recipients (an alias) is not asked twice.
    pub(crate) fn mx_recipient_allowed(&self, account: &Account, tx: &Transaction) -> bool {
        self.kind != SmtpListener::Mx
            || tx.recipients.iter().any(|r| r.account.id == account.id)
            || self.ctx.mx_recipient_rate.allows(account.id, Instant::now())
    }

    /// Counts a message accepted over MX for its peer and each distinct
    /// recipient account.
    pub(crate) fn record_mx(&self, tx: &Transaction) {
        if self.kind != SmtpListener::Mx {
            return;
        }
        let now = Instant::now();
        self.ctx.mx_peer_rate.record(peer_key(self.peer.ip()), now);
        let mut accounts: Vec<_> = tx.recipients.iter().map(|r| r.account.id).collect();
        accounts.sort_unstable();
        accounts.dedup();
        for a in accounts {
            self.ctx.mx_recipient_rate.record(a, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_store::AccountId;

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

    #[test]
    fn record_counts_past_the_limit_without_growing() {
        let r = RateLimit::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let peer: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        r.record(peer, at(0));
        assert!(r.allows(peer, at(1)));
        for s in 1..10 {
            r.record(peer, at(s));
        }
        assert!(!r.allows(peer, at(10)));
        assert!(r.sent().get(&peer).is_some_and(|t| t.len() == 2), "one instant per allowed message, no more");
        // The window slides from the latest two (8 s and 9 s): one leaves it at 68 s.
        assert!(!r.allows(peer, at(67)));
        assert!(r.allows(peer, at(68)));
    }
}
