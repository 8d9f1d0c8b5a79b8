//! The retry schedule: a pure function of the entry's age, its attempt
//! count and the clock, so it is tested with made-up times.
//!
//! After the n-th failed attempt the next one waits `initial · 2^(n-1)`,
//! capped at `max` (defaults: 5 minutes doubling to 4 hours). No attempt is
//! scheduled after the entry's expiry (default 5 days after it was queued):
//! the last retry happens at the expiry time, and a temporary failure at or
//! after it is final.

/// When to try again, and when to give up. All durations in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: i64,
    pub max: i64,
    pub expire: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { initial: 5 * 60, max: 4 * 60 * 60, expire: 5 * 24 * 60 * 60 }
    }
}

/// What to do after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAt(i64),
    /// The entry is too old: fail the recipients and bounce.
    Expired,
}

impl RetryPolicy {
    /// The wait after `failed` failed attempts (1 for the first).
    pub fn delay(&self, failed: u32) -> i64 {
        let doublings = failed.saturating_sub(1).min(62);
        self.initial.max(1).saturating_mul(1i64 << doublings).min(self.max.max(1))
    }

    /// The decision at `now` for an entry queued at `queued_at` that has
    /// just failed its `failed`-th attempt.
    pub fn next(&self, queued_at: i64, failed: u32, now: i64) -> Next {
        let expiry = queued_at.saturating_add(self.expire);
        if now >= expiry {
            return Next::Expired;
        }
        Next::RetryAt(now.saturating_add(self.delay(failed)).min(expiry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn doubles_from_five_minutes_to_four_hours() {
        let p = RetryPolicy::default();
        let delays: Vec<i64> = (1..=8).map(|n| p.delay(n)).collect();
        assert_eq!(delays, [5 * MIN, 10 * MIN, 20 * MIN, 40 * MIN, 80 * MIN, 160 * MIN, 4 * HOUR, 4 * HOUR]);
        assert_eq!(p.delay(u32::MAX), 4 * HOUR, "no overflow");
        assert_eq!(p.delay(0), 5 * MIN);
    }

    /// A fake clock: every attempt fails, the clock jumps to each scheduled
    /// retry. The schedule ends with one attempt at the expiry time.
    #[test]
    fn a_message_that_never_goes_through_expires_after_five_days() {
        let p = RetryPolicy::default();
        let queued = 1_000_000;
        let mut clock = queued;
        let mut attempts = Vec::new();
        let mut failed = 0;
        loop {
            attempts.push(clock - queued);
            failed += 1;
            match p.next(queued, failed, clock) {
                Next::RetryAt(t) => {
                    assert!(t > clock, "time moves forward");
                    clock = t;
                }
                Next::Expired => break,
            }
            assert!(failed < 1000, "runaway schedule");
        }
        assert_eq!(&attempts[..4], &[0, 5 * MIN, 15 * MIN, 35 * MIN]);
        assert_eq!(*attempts.last().unwrap(), 5 * DAY, "last attempt exactly at expiry");
        // 0, 5m, 15m, 35m, 75m, 155m, 315m, then every 4 h until day 5.
        let every_four_hours = (5 * DAY - 315 * MIN) / (4 * HOUR);
        assert_eq!(attempts.len() as i64, 7 + every_four_hours + 1);
    }

    #[test]
    fn configurable_and_late_clocks_expire_at_once() {
        let p = RetryPolicy { initial: 1, max: 4, expire: 10 };
        assert_eq!(p.next(0, 1, 0), Next::RetryAt(1));
        assert_eq!(p.next(0, 3, 3), Next::RetryAt(7));
        assert_eq!(p.next(0, 9, 8), Next::RetryAt(10));
        assert_eq!(p.next(0, 1, 10), Next::Expired);
        assert_eq!(p.next(0, 1, 1_000), Next::Expired, "a daemon down past the expiry bounces at the next attempt");
    }
}
