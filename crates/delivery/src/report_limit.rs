//! A cap on the delivery reports (DSNs) we generate, so nobody can use us
//! to flood a mailbox with reports: at most `per_address` reports to one
//! address and `total` reports overall in each hour. A report over either
//! cap is dropped with a warning (the delivery itself, and its record in
//! `coimail queue list` and the log, are unaffected).
//!
//! The windows are fixed hours counted from the first report in them, not
//! sliding: coarse, but it bounds the table to `total` addresses per hour
//! (only a report that was allowed adds an address). Counts live in memory;
//! a restart forgets them, like the submission rate limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(3600);

/// Default reports per hour to one address.
pub const DEFAULT_PER_ADDRESS: usize = 30;
/// Default reports per hour over all addresses.
pub const DEFAULT_TOTAL: usize = 1000;

/// Shared by the queue runner and the SMTP sessions (cheap to clone).
#[derive(Clone)]
pub struct ReportLimit {
    per_address: usize,
    total: usize,
    counts: Arc<Mutex<Counts>>,
}

struct Counts {
    /// Start of the overall window and the reports counted in it.
    total: (Instant, usize),
    /// Per lowercased address: start of its window, reports in it.
    per_address: HashMap<String, (Instant, usize)>,
}

impl Default for ReportLimit {
    fn default() -> Self {
        ReportLimit::new(DEFAULT_PER_ADDRESS, DEFAULT_TOTAL)
    }
}

impl ReportLimit {
    /// `0` for either: no cap of that kind.
    pub fn new(per_address: usize, total: usize) -> ReportLimit {
        let counts = Counts { total: (Instant::now(), 0), per_address: HashMap::new() };
        ReportLimit { per_address, total, counts: Arc::new(Mutex::new(counts)) }
    }

    /// Counts one report to `address` at `now` if both caps allow it.
    pub fn try_take(&self, address: &str, now: Instant) -> bool {
        // A panic elsewhere while holding the lock leaves plain counters behind: still usable.
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(c.total.0) >= WINDOW {
            c.total = (now, 0);
            c.per_address.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        if self.total != 0 && c.total.1 >= self.total {
            return false;
        }
        let key = address.to_ascii_lowercase();
        let entry = c.per_address.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if self.per_address != 0 && entry.1 >= self.per_address {
            return false;
        }
        entry.1 += 1;
        c.total.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_overall_then_forgets_after_an_hour() {
        let limit = ReportLimit::new(2, 3);
        let t0 = Instant::now();
        assert!(limit.try_take("victim@x.test", t0));
        assert!(limit.try_take("Victim@X.test", t0), "addresses compare without case");
        assert!(!limit.try_take("victim@x.test", t0), "third report to one address in the hour");
        assert!(limit.try_take("other@x.test", t0));
        assert!(!limit.try_take("third@x.test", t0), "overall cap");
        let later = t0 + WINDOW;
        assert!(limit.try_take("victim@x.test", later), "a new hour");
        assert!(ReportLimit::new(0, 0).try_take("a@b", t0), "0: no cap");
    }
}
