//! Connection limits for the accept loops: a cap on concurrent sessions
//! over a set of listeners, and a cap per peer. A peer is an IPv4 address
//! or an IPv6 /64 (one customer's prefix), the same grouping the login
//! throttle uses (`auth::peer_key`).
//!
//! A [`ConnectionPermit`] is taken before a session is spawned and moved
//! into it; dropping it (the session task ends) gives the slot back.

use crate::auth::peer_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Concurrent-connection counters shared by every listener of one protocol.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    /// Only peers with at least one open connection.
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("too many connections")]
    Total,
    #[error("too many connections from this address")]
    PerIp,
}

/// One admitted connection; releases its slot when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    key: IpAddr,
}

impl ConnectionLimits {
    /// `max_total` sessions at once, `max_per_ip` of them from one peer.
    /// A cap of 0 means no cap.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits { max_total, max_per_ip, state: Mutex::new(State::default()) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, or says which cap it would exceed.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, LimitExceeded> {
        let key = peer_key(ip);
        let mut state = self.state();
        if self.max_total != 0 && state.total >= self.max_total {
            return Err(LimitExceeded::Total);
        }
        let n = state.per_ip.entry(key).or_insert(0);
        if self.max_per_ip != 0 && *n >= self.max_per_ip {
            // Never inserted a zero: the entry existed with n > 0.
            return Err(LimitExceeded::PerIp);
        }
        *n += 1;
        state.total += 1;
        Ok(ConnectionPermit { limits: Arc::clone(self), key })
    }

    /// Connections currently admitted (all peers).
    pub fn open(&self) -> usize {
        self.state().total
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut state = self.limits.state();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_ip.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.per_ip.remove(&self.key);
            }
        }
    }
}

/// Concurrent logged-in sessions per account (all its devices and clients
/// together), so one account cannot take every slot of the server.
#[derive(Debug)]
pub struct UserLimits {
    /// 0: no cap.
    max: usize,
    open: Mutex<HashMap<u64, usize>>,
}

/// A logged-in session's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct UserPermit {
    limits: Arc<UserLimits>,
    account: u64,
}

impl UserLimits {
    pub fn new(max: usize) -> Arc<UserLimits> {
        Arc::new(UserLimits { max, open: Mutex::new(HashMap::new()) })
    }

    fn open_map(&self) -> MutexGuard<'_, HashMap<u64, usize>> {
        // A panic while holding this lock leaves plain counters: still usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `account`, or `None` when it already has `max` sessions.
    pub fn try_acquire(self: &Arc<Self>, account: u64) -> Option<UserPermit> {
        let mut open = self.open_map();
        let n = open.entry(account).or_insert(0);
        if self.max != 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(UserPermit { limits: Arc::clone(self), account })
    }

    /// Sessions `account` has open now.
    pub fn open(&self, account: u64) -> usize {
        self.open_map().get(&account).copied().unwrap_or(0)
    }
}

impl Drop for UserPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open_map();
        if let Some(n) = open.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_cap_and_release_on_drop() {
        let limits = UserLimits::new(2);
        let a = limits.try_acquire(7).unwrap();
        let _b = limits.try_acquire(7).unwrap();
        assert!(limits.try_acquire(7).is_none());
        let _other = limits.try_acquire(8).unwrap();
        drop(a);
        assert_eq!(limits.open(7), 1);
        let _c = limits.try_acquire(7).unwrap();
        let unlimited = UserLimits::new(0);
        let many: Vec<_> = (0..100).map(|_| unlimited.try_acquire(1).unwrap()).collect();
        assert_eq!(unlimited.open(1), 100);
        drop(many);
        assert!(unlimited.open_map().is_empty(), "released accounts are forgotten");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_cap_and_release_on_drop() {
        let limits = ConnectionLimits::new(10, 2);
        let a = limits.try_acquire(ip("192.0.2.1")).unwrap();
        let _b = limits.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.try_acquire(ip("192.0.2.1")).unwrap_err(), LimitExceeded::PerIp);
        // The IPv4-mapped form is the same peer.
        assert_eq!(limits.try_acquire(ip("::ffff:192.0.2.1")).unwrap_err(), LimitExceeded::PerIp);
        let _other = limits.try_acquire(ip("192.0.2.2")).unwrap();
        drop(a);
        let _c = limits.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let limits = ConnectionLimits::new(10, 1);
        let _a = limits.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(limits.try_acquire(ip("2001:db8:1:2:ffff::9")).unwrap_err(), LimitExceeded::PerIp);
        let _b = limits.try_acquire(ip("2001:db8:1:3::1")).unwrap();
    }

    #[test]
    fn total_cap_and_bookkeeping() {
        let limits = ConnectionLimits::new(2, 0);
        let a = limits.try_acquire(ip("192.0.2.1")).unwrap();
        let b = limits.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.try_acquire(ip("192.0.2.3")).unwrap_err(), LimitExceeded::Total);
        drop((a, b));
        assert_eq!(limits.open(), 0);
        assert!(limits.state().per_ip.is_empty(), "released peers are forgotten");
        let _c = limits.try_acquire(ip("192.0.2.3")).unwrap();
    }
}
