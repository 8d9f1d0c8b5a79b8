//! Password hashing (argon2id) and login throttling.

use crate::{Account, Address, Directory, DirectoryError};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("authentication failed")]
    Failed,
    #[error("too many failed logins; try again later")]
    Throttled,
    #[error("authentication unavailable: {0}")]
    Internal(String),
}

const MAX_PASSWORD: usize = 1024;

pub(crate) fn check_password(password: &str) -> Result<(), DirectoryError> {
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Err(DirectoryError::Invalid(format!("a password must be 1 to {MAX_PASSWORD} bytes")));
    }
    if password.chars().any(|c| c.is_control()) {
        return Err(DirectoryError::Invalid("a password cannot contain control characters".into()));
    }
    Ok(())
}

fn hash_blocking(password: &str) -> Result<String, DirectoryError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| DirectoryError::Hash(e.to_string()))
}

/// argon2id with the crate's default (OWASP) parameters, off the async workers.
pub(crate) async fn hash(password: &str) -> Result<String, DirectoryError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| DirectoryError::Hash(e.to_string()))?
}

/// A hash to verify against when the user does not exist, so an unknown
/// login costs the same time as a wrong password (no user enumeration).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("coimail-dummy-password").unwrap_or_default())
}

/// Failed logins per peer within a window; over the limit, logins from that
/// peer are refused without checking the password until the window ends.
#[derive(Debug, Clone)]
pub struct ThrottleOptions {
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions { max_failures: 10, window: Duration::from_secs(60) }
    }
}

pub(crate) struct Throttle {
    opts: ThrottleOptions,
    peers: HashMap<IpAddr, (u32, Instant)>,
}

/// IPv6 clients get a whole /64 each, so throttle by prefix.
pub(crate) fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Throttle {
    pub(crate) fn new(opts: ThrottleOptions) -> Self {
        Throttle { opts, peers: HashMap::new() }
    }

    fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        let window = self.opts.window;
        self.peers.retain(|_, (_, since)| now.duration_since(*since) < window);
        self.peers.get(&peer_key(ip)).is_some_and(|(n, _)| *n >= self.opts.max_failures)
    }

    fn fail(&mut self, ip: IpAddr, now: Instant) {
        let e = self.peers.entry(peer_key(ip)).or_insert((0, now));
        e.0 += 1;
    }

    fn succeed(&mut self, ip: IpAddr) {
        self.peers.remove(&peer_key(ip));
    }
}

impl Directory {
    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.inner.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a login (the user's address) and password.
    pub async fn authenticate(&self, login: &str, password: &str, peer: IpAddr) -> Result<Account, AuthError> {
        if self.throttle().blocked(peer, Instant::now()) {
            return Err(AuthError::Throttled);
        }
        let record = match Address::parse(login) {
            Ok(addr) => self.user_record(&addr).map_err(|e| AuthError::Internal(e.to_string()))?,
            Err(_) => None,
        };
        let hash = record.as_ref().map_or_else(|| dummy_hash().to_owned(), |r| r.hash.clone());
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
        })
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?;
        match record {
            Some(r) if ok => {
                self.throttle().succeed(peer);
                Ok(Self::account(r))
            }
            _ => {
                self.throttle().fail(peer, Instant::now());
                Err(AuthError::Failed)
            }
        }
    }
}

/// When a password may cross a connection without TLS. Shared by IMAP and
/// SMTP so the rule is the same on every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaintextAuth {
    /// Only over TLS (implicit or after STARTTLS).
    Never,
    /// Over TLS, or without it from a loopback peer (local tools, tests).
    #[default]
    Loopback,
    /// Always. Only for closed networks: passwords travel in clear text.
    Always,
}

impl PlaintextAuth {
    /// May a client on `peer` authenticate, given whether the connection is encrypted?
    pub fn allows(self, peer: IpAddr, tls: bool) -> bool {
        tls || match self {
            PlaintextAuth::Never => false,
            PlaintextAuth::Loopback => peer.is_loopback() || is_mapped_loopback(peer),
            PlaintextAuth::Always => true,
        }
    }
}

fn is_mapped_loopback(peer: IpAddr) -> bool {
    matches!(peer, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

#[cfg(test)]
mod plaintext_tests {
    use super::PlaintextAuth;
    use std::net::IpAddr;

    #[test]
    fn plaintext_policy() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(PlaintextAuth::Loopback.allows(lo, false));
        assert!(PlaintextAuth::Loopback.allows(mapped, false));
        assert!(!PlaintextAuth::Loopback.allows(remote, false));
        assert!(PlaintextAuth::Loopback.allows(remote, true));
        assert!(!PlaintextAuth::Never.allows(lo, false));
        assert!(PlaintextAuth::Always.allows(remote, false));
    }
}
