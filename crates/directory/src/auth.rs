//! Password hashing (argon2id, at most one per CPU at a time), logins
//! (with the cache of `auth_cache.rs`) and login throttling.

use crate::auth_cache::CacheOptions;
use crate::create::Created;
use crate::{Account, Address, Directory, DirectoryError, UserRecord, decode};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{Semaphore, watch};

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("authentication failed")]
    Failed,
    #[error("too many failed logins; try again later")]
    Throttled,
    #[error("authentication unavailable: {0}")]
    Internal(String),
}

/// Counts one login attempt in `coimail_logins_total`: `protocol` is the
/// listener's protocol (`imap`, `smtp`), `result` ok, failed, throttled or
/// error. Here so IMAP and SMTP name the outcomes alike.
pub fn count_login<T>(protocol: &'static str, result: &Result<T, AuthError>) {
    let result = match result {
        Ok(_) => "ok",
        Err(AuthError::Failed) => "failed",
        Err(AuthError::Throttled) => "throttled",
        Err(AuthError::Internal(_)) => "error",
    };
    metrics::counter!("coimail_logins_total", "protocol" => protocol, "result" => result).increment(1);
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

/// A hash to verify against when the user does not exist, so an unknown
/// login costs the same time as a wrong password (no user enumeration).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("coimail-dummy-password").unwrap_or_default())
}

/// The number of CPUs this process may use (1 if unknown).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How a directory treats logins.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub throttle: ThrottleOptions,
    pub cache: CacheOptions,
    /// argon2 computations (verifications and new hashes) at once; more wait
    /// their turn. Each takes a core for ~28 ms and allocates 19 MiB.
    pub max_concurrent_argon2: usize,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            throttle: ThrottleOptions::default(),
            cache: CacheOptions::default(),
            max_concurrent_argon2: cpu_count(),
        }
    }
}

/// Login counters since the directory was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Passwords checked by argon2 (unknown users included).
    pub argon2_verifications: u64,
    /// Passwords hashed by argon2 (users added, passwords changed).
    pub argon2_hashes: u64,
    /// Logins accepted from the cache, without argon2.
    pub cache_hits: u64,
    /// The most argon2 computations that ever ran at once.
    pub peak_concurrent_argon2: usize,
}

#[derive(Default)]
struct Counters {
    verifications: AtomicU64,
    hashes: AtomicU64,
    cache_hits: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// Decrements the running count when an argon2 computation ends, also by panic.
struct Running<'a>(&'a Counters);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs argon2 on the blocking pool, at most `permits` at once. Without the
/// bound a login storm takes as many blocking threads as there are logins
/// (up to tokio's 512, each with its 19 MiB buffer): the cores go to argon2
/// while sessions' store reads wait for a blocking thread. With it, logins
/// queue (cheaply, as waiting tasks) and cache hits do not queue at all.
pub(crate) struct Argon2Gate {
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
}

impl Argon2Gate {
    pub(crate) fn new(permits: usize) -> Self {
        Argon2Gate { permits: Arc::new(Semaphore::new(permits.max(1))), counters: Arc::default() }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&Counters) -> T + Send + 'static) -> Result<T, String> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let counters = self.counters.clone();
        tokio::task::spawn_blocking(move || {
            // The permit goes with the thread: a caller that gives up (its
            // client went away) must not free the slot while argon2 still runs.
            let _permit = permit;
            let now = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
            counters.peak.fetch_max(now, Ordering::SeqCst);
            let _running = Running(&counters);
            work(&counters)
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Whether `password` matches `hash`; without a hash (no such user),
    /// checks it against a dummy hash so the answer takes as long.
    async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, String> {
        self.run(move |c| {
            c.verifications.fetch_add(1, Ordering::Relaxed);
            let hash: &str = match &hash {
                Some(h) => h,
                None => dummy_hash(),
            };
            Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
        })
        .await
    }

    /// argon2id with the crate's default (OWASP) parameters.
    pub(crate) async fn hash(&self, password: &str) -> Result<String, DirectoryError> {
        let password = password.to_owned();
        self.run(move |c| {
            c.hashes.fetch_add(1, Ordering::Relaxed);
            hash_blocking(&password)
        })
        .await
        .map_err(DirectoryError::Hash)?
    }

    fn count_cache_hit(&self) {
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> AuthStats {
        let c = &self.counters;
        AuthStats {
            argon2_verifications: c.verifications.load(Ordering::Relaxed),
            argon2_hashes: c.hashes.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            peak_concurrent_argon2: c.peak.load(Ordering::SeqCst),
        }
    }
}

/// Failed logins within a window, counted per peer and per account (see
/// [`Throttle`]); over either limit, logins are refused without checking
/// the password until the window ends.
#[derive(Debug, Clone)]
pub struct ThrottleOptions {
    /// Failures from one peer, against any accounts, before that peer is refused.
    pub max_failures: u32,
    /// Failures against one account, from any peers, before new logins to
    /// it are refused (logins the cache recognises still pass). 0: no limit.
    pub max_account_failures: u32,
    pub window: Duration,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions { max_failures: 10, max_account_failures: 30, window: Duration::from_secs(60) }
    }
}

/// The most accounts and (peer, account) pairs remembered at once: a flood
/// of made-up login names must not grow memory without bound. Past it, new
/// names are not counted per account, but every failure still counts for its peer.
const MAX_TRACKED: usize = 100_000;

/// Failure counts. A peer's count is the sum of its failures against each
/// login name, so a success clears only what that peer did against that
/// account: logging in to an account you own does not buy more guesses at
/// another one. An account's count (failures from all peers) catches
/// guessing spread over many addresses; it is cleared only by a success
/// for that account, which a guesser cannot produce.
pub(crate) struct Throttle {
    opts: ThrottleOptions,
    /// Per peer: failures per login name, and when the first one happened.
    peers: HashMap<IpAddr, HashMap<String, (u32, Instant)>>,
    /// Per login name: failures from all peers, and when the first one happened.
    accounts: HashMap<String, (u32, Instant)>,
}

/// IPv6 clients get a whole /64 each, so throttle by prefix.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The name a login's failures are counted under: the address as stored
/// when it parses (so case variants of the domain are one account), else
/// the raw name, capped so a huge name costs no more than a short one.
fn login_key(login: &str) -> String {
    match Address::parse(login) {
        Ok(addr) => addr.key(),
        Err(_) => login.chars().take(256).collect(),
    }
}

impl Throttle {
    pub(crate) fn new(opts: ThrottleOptions) -> Self {
        Throttle { opts, peers: HashMap::new(), accounts: HashMap::new() }
    }

    fn expire(&mut self, now: Instant) {
        let window = self.opts.window;
        let live = |(_, since): &(u32, Instant)| now.duration_since(*since) < window;
        self.accounts.retain(|_, e| live(e));
        self.peers.retain(|_, logins| {
            logins.retain(|_, e| live(e));
            !logins.is_empty()
        });
    }

    pub(crate) fn peer_failures(&self, peer: IpAddr) -> u32 {
        self.peers.get(&peer).map_or(0, |logins| logins.values().map(|(n, _)| *n).sum())
    }

    /// Whether a peer over its limit is refused (whatever the login).
    fn peer_blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.expire(now);
        self.peer_failures(peer_key(ip)) >= self.opts.max_failures
    }

    /// Whether `login` has failed too often from everywhere together.
    fn account_blocked(&self, login: &str) -> bool {
        self.opts.max_account_failures != 0
            && self.accounts.get(&login_key(login)).is_some_and(|(n, _)| *n >= self.opts.max_account_failures)
    }

    fn fail(&mut self, ip: IpAddr, login: &str, now: Instant) {
        let login = login_key(login);
        let tracked = self.accounts.len() + self.peers.values().map(HashMap::len).sum::<usize>();
        let room = tracked < MAX_TRACKED;
        if room || self.accounts.contains_key(&login) {
            self.accounts.entry(login.clone()).or_insert((0, now)).0 += 1;
        }
        let logins = self.peers.entry(peer_key(ip)).or_default();
        // Without room, a peer's failures still count, under one shared name.
        let key = if room || logins.contains_key(&login) { login } else { String::new() };
        logins.entry(key).or_insert((0, now)).0 += 1;
    }

    /// `login` succeeded from `ip`: forget what that peer did against that
    /// account and the account's count; the peer's failures against other
    /// accounts stay.
    fn succeed(&mut self, ip: IpAddr, login: &str) {
        let login = login_key(login);
        let peer = peer_key(ip);
        if let Some(logins) = self.peers.get_mut(&peer) {
            logins.remove(&login);
            if logins.is_empty() {
                self.peers.remove(&peer);
            }
        }
        self.accounts.remove(&login);
    }
}

impl Directory {
    pub(crate) fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.inner.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Login counters (argon2 runs, cache hits), for tests, benchmarks and metrics.
    pub fn auth_stats(&self) -> AuthStats {
        self.inner.argon2.stats()
    }

    /// Checks a login (the user's address) and password.
    ///
    /// A login argon2 accepted recently, with the same password against the
    /// same stored record, is accepted from the cache (`auth_cache.rs`).
    /// Everything else pays for argon2: unknown users (against a dummy hash)
    /// and wrong passwords always do, since failures are never cached.
    /// Dovecot can cache failures too (`auth_cache_negative_ttl`), to spare
    /// a slow passdb (SQL, LDAP) the lookup; ours is a local read, so there
    /// is nothing to spare, and a cached failure would make wrong guesses
    /// cheap (the point of argon2 is that each costs the full price) and an
    /// unknown user answer faster than a known one. A peer that keeps
    /// failing is refused by the throttle without argon2, cache or not.
    pub async fn authenticate(&self, login: &str, password: &str, peer: IpAddr) -> Result<Account, AuthError> {
        self.authenticate_session(login, password, peer).await.map(|(account, _)| account)
    }

    /// [`Directory::authenticate`] for a session that stays logged in: with
    /// the account comes a [`Revocation`] that fires when the user's password
    /// changes or the user is deleted, so the session can end. It is taken
    /// before the record is read, so a change committed after the read
    /// always fires it, and one committed before it made this login fail.
    pub async fn authenticate_session(
        &self,
        login: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(Account, Revocation), AuthError> {
        let (peer_blocked, account_blocked) = {
            let mut t = self.throttle();
            (t.peer_blocked(peer, Instant::now()), t.account_blocked(login))
        };
        if peer_blocked {
            return Err(AuthError::Throttled);
        }
        let internal = |e: DirectoryError| AuthError::Internal(e.to_string());
        // The login's cache key, the record's stored bytes (what a cache entry is bound to), the record.
        let mut revocation = None;
        let user = match Address::parse(login) {
            Ok(addr) => {
                revocation = Some(self.revocation(&addr.key()));
                match self.user_bytes(&addr).map_err(internal)? {
                    Some(raw) => Some((addr.key(), decode::<UserRecord>(&raw).map_err(internal)?, raw)),
                    None => None,
                }
            }
            Err(_) => None,
        };
        if user.is_none() {
            match self.create_on_login(login, password, peer).await? {
                Created::Yes(account, revocation) => {
                    self.throttle().succeed(peer, login);
                    return Ok((account, revocation));
                }
                // Once more, now that the user exists (the next round finds the record).
                Created::Raced => return Box::pin(self.authenticate_session(login, password, peer)).await,
                Created::No => {}
            }
        }
        if user.is_none()
            && let Some(r) = revocation.take()
        {
            self.forget_revocation(r);
        }
        if let Some((key, record, raw)) = &user
            && self.inner.cache.hit(key, raw, password, Instant::now())
        {
            self.inner.argon2.count_cache_hit();
            self.throttle().succeed(peer, login);
            self.record_login(key);
            let revocation = revocation.take().ok_or_else(|| AuthError::Internal("no revocation".into()))?;
            return Ok((Self::account(record.clone()), revocation));
        }
        // A login the cache recognised (the password was verified recently)
        // passed above: an account under attack still serves its own clients.
        if account_blocked {
            return Err(AuthError::Throttled);
        }
        let hash = user.as_ref().map(|(_, r, _)| r.hash.clone());
        let ok = self.inner.argon2.verify(hash, password.to_owned()).await.map_err(AuthError::Internal)?;
        match user {
            Some((key, record, raw)) if ok => {
                self.inner.cache.insert(&key, &raw, password, Instant::now());
                self.throttle().succeed(peer, login);
                self.record_login(&key);
                let revocation = revocation.ok_or_else(|| AuthError::Internal("no revocation".into()))?;
                Ok((Self::account(record), revocation))
            }
            _ => {
                self.throttle().fail(peer, login, Instant::now());
                Err(AuthError::Failed)
            }
        }
    }
}

/// Fires when the account a session logged in to has its password changed
/// or is deleted ([`Directory::authenticate_session`]).
#[derive(Debug, Clone)]
pub struct Revocation(watch::Receiver<bool>);

impl Revocation {
    pub fn is_revoked(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Returns once revoked (or when the directory is gone).
    pub async fn revoked(&mut self) {
        let _ = self.0.wait_for(|revoked| *revoked).await;
    }
}

impl Directory {
    /// The revocation of the user `key`, made on first use. Entries stay
    /// for users that logged in (one per user); those of names that turned
    /// out to be no user are dropped again ([`Directory::forget_revocation`]).
    pub(crate) fn revocation(&self, key: &str) -> Revocation {
        let mut map = self.revocations();
        let tx = map.entry(key.to_owned()).or_insert_with(|| watch::channel(false).0);
        Revocation(tx.subscribe())
    }

    fn forget_revocation(&self, r: Revocation) {
        drop(r);
        self.revocations().retain(|_, tx| tx.receiver_count() > 0);
    }

    /// Ends every session logged in to the user `key`; later logins get a new revocation.
    pub(crate) fn revoke(&self, key: &str) {
        if let Some(tx) = self.revocations().remove(key) {
            tx.send_replace(true);
        }
    }

    fn revocations(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<bool>>> {
        self.inner.revocations.lock().unwrap_or_else(|e| e.into_inner())
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
