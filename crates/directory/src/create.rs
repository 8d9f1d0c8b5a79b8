//! Accounts made by their first login, and when each account last logged
//! in: what a chatmail relay does in doveauth.py (an unknown address of a
//! served domain with a long enough password becomes an account) and its
//! `lastlogin` tracking (for deleting accounts nobody uses any more).
//!
//! Creation is off unless [`Directory::set_auto_create`] turns it on. It
//! applies to every login path (IMAP LOGIN/AUTHENTICATE, SMTP AUTH), since
//! all go through [`Directory::authenticate_session`]. A peer (IPv4
//! address or IPv6 /64) may create at most `per_peer_per_hour` accounts;
//! beyond that its logins to unknown addresses are throttled.

use crate::auth::{AuthError, peer_key};
use crate::{Account, Address, Directory, DirectoryError, Revocation};
use coimail_store::kv::Batch;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// doveauth's rules (chatmail.ini: `password_min_length`,
/// `username_min_length`, `username_max_length`; all 9 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoCreate {
    /// Shortest password that creates an account (characters).
    pub password_min_chars: usize,
    /// Length bounds of the local part (characters).
    pub local_min_chars: usize,
    pub local_max_chars: usize,
    /// Accounts one peer may create per hour; 0: none.
    pub per_peer_per_hour: u32,
}

impl Default for AutoCreate {
    fn default() -> Self {
        AutoCreate { password_min_chars: 9, local_min_chars: 9, local_max_chars: 9, per_peer_per_hour: 5 }
    }
}

const HOUR: Duration = Duration::from_secs(3600);
/// Peers remembered at most; a flood of peers past this is refused creation
/// until the oldest windows end (memory stays bounded).
const MAX_PEERS: usize = 100_000;

#[derive(Default)]
pub(crate) struct Creation {
    rules: Option<AutoCreate>,
    /// Rules of random accounts (`new_account.rs`); `None`: off.
    pub(crate) random: Option<AutoCreate>,
    /// Per peer: accounts made in the window, and when the window started.
    peers: HashMap<IpAddr, (u32, Instant)>,
    /// Per account: the last day (Unix days) a login was recorded, so the
    /// tree is written at most once a day per account.
    last_login: HashMap<String, u64>,
}

/// Key of an account's last-login day in the directory tree. Not part of
/// the snapshot: a restore starts every account's clock anew.
const LAST_LOGIN: &[u8] = b"l/";

fn unix_day(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400)
}

impl AutoCreate {
    /// Whether `addr` and `password` qualify, as doveauth's `is_allowed_to_create`.
    fn allows(&self, addr: &Address, password: &str) -> bool {
        let local = addr.local.chars().count();
        // Delta Chat's echo bot address is never a user.
        password.chars().count() >= self.password_min_chars
            && (self.local_min_chars..=self.local_max_chars).contains(&local)
            && addr.local != "echo"
    }
}

/// What [`Directory::create_on_login`] did.
pub(crate) enum Created {
    Yes(Account, Revocation),
    /// Not allowed (or creation is off): the login fails as for any unknown user.
    No,
    /// A concurrent login created it first: check the password against it.
    Raced,
}

impl Creation {
    /// Returns a creation `take` counted that did not happen.
    pub(crate) fn give_back(&mut self, peer: IpAddr) {
        if let Some((n, _)) = self.peers.get_mut(&peer_key(peer)) {
            *n = n.saturating_sub(1);
        }
    }

    /// Takes one creation from `peer`'s hourly allowance, if any is left.
    pub(crate) fn take(&mut self, peer: IpAddr, per_hour: u32, now: Instant) -> bool {
        self.peers.retain(|_, (_, since)| now.duration_since(*since) < HOUR);
        let key = peer_key(peer);
        if !self.peers.contains_key(&key) && self.peers.len() >= MAX_PEERS {
            return false;
        }
        let (n, _) = self.peers.entry(key).or_insert((0, now));
        if *n >= per_hour {
            return false;
        }
        *n += 1;
        true
    }
}

impl Directory {
    pub(crate) fn creation(&self) -> std::sync::MutexGuard<'_, Creation> {
        self.inner.creation.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns account creation on first login on (`Some`) or off.
    pub fn set_auto_create(&self, rules: Option<AutoCreate>) {
        self.creation().rules = rules;
    }

    /// The login of an unknown `login` with `password`: creates the account
    /// when creation is on and the rules allow it.
    pub(crate) async fn create_on_login(
        &self,
        login: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Created, AuthError> {
        let Some(rules) = self.creation().rules.clone() else { return Ok(Created::No) };
        let Ok(addr) = Address::parse(login) else { return Ok(Created::No) };
        let internal = |e: DirectoryError| AuthError::Internal(e.to_string());
        if !rules.allows(&addr, password) || !self.is_local_domain(&addr.domain).map_err(internal)? {
            return Ok(Created::No);
        }
        if !self.creation().take(peer, rules.per_peer_per_hour, Instant::now()) {
            tracing::warn!(peer = %peer_key(peer), "account creation refused: too many from this peer");
            return Err(AuthError::Throttled);
        }
        let account = match self.add_user(&addr.key(), password, None).await {
            Ok(a) => a,
            // Delta Chat logs in over IMAP and SMTP at once: the other login
            // made it, and this one is checked against it like any login.
            Err(DirectoryError::AlreadyExists(_)) => {
                self.creation().give_back(peer);
                return Ok(Created::Raced);
            }
            Err(DirectoryError::Invalid(_)) => return Ok(Created::No),
            Err(e) => return Err(internal(e)),
        };
        tracing::info!(user = %account.address, "account created on first login");
        let revocation = self.revocation(&addr.key());
        self.record_login(&account.address);
        Ok(Created::Yes(account, revocation))
    }

    /// Notes that `address` logged in today. Written without waiting for
    /// durability: a day lost in a crash only makes the account look older by a day.
    pub(crate) fn record_login(&self, address: &str) {
        let today = unix_day(SystemTime::now());
        {
            let mut c = self.creation();
            if c.last_login.get(address) == Some(&today) {
                return;
            }
            c.last_login.insert(address.to_owned(), today);
        }
        let mut b = Batch::default();
        b.insert(crate::key(LAST_LOGIN, address), today.to_be_bytes().to_vec());
        if let Err(e) = self.inner.tree.apply(b) {
            tracing::warn!(error = %e, "recording the last login failed");
        }
    }

    /// The day (Unix days) `address` last logged in, if recorded.
    pub fn last_login_day(&self, address: &str) -> Result<Option<u64>, DirectoryError> {
        let Some(v) = self.inner.tree.get(&crate::key(LAST_LOGIN, address))? else { return Ok(None) };
        Ok(<[u8; 8]>::try_from(v.as_slice()).ok().map(u64::from_be_bytes))
    }

    /// Sets the recorded last-login day of `address` (tests, and the admin's
    /// way to keep an account from expiring).
    pub async fn set_last_login_day(&self, address: &str, day: u64) -> Result<(), DirectoryError> {
        let addr = Address::parse(address)?.key();
        self.creation().last_login.insert(addr.clone(), day);
        let mut b = Batch::default();
        b.insert(crate::key(LAST_LOGIN, &addr), day.to_be_bytes().to_vec());
        self.inner.tree.apply(b)?;
        Ok(self.inner.store.flush().await?)
    }

    /// Deletes every user (and its mail) whose last recorded login is more
    /// than `days` days ago; returns their addresses. Users with no login
    /// recorded stay, as in chatmail (an account an admin made and nobody
    /// used yet is the admin's to remove).
    pub async fn remove_inactive(&self, days: u64) -> Result<Vec<String>, DirectoryError> {
        let cutoff = unix_day(SystemTime::now()).saturating_sub(days);
        let mut removed = Vec::new();
        for (k, v) in self.inner.tree.scan_prefix(LAST_LOGIN)? {
            let Some(day) = <[u8; 8]>::try_from(v.as_slice()).ok().map(u64::from_be_bytes) else { continue };
            if day >= cutoff {
                continue;
            }
            let address = String::from_utf8_lossy(&k[LAST_LOGIN.len()..]).into_owned();
            match self.del_user(&address).await {
                Ok(()) | Err(DirectoryError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            self.forget_login(&address)?;
            removed.push(address);
        }
        Ok(removed)
    }

    /// Drops the last-login record of a deleted user.
    pub(crate) fn forget_login(&self, address: &str) -> Result<(), DirectoryError> {
        self.creation().last_login.remove(address);
        let mut b = Batch::default();
        b.remove(crate::key(LAST_LOGIN, address));
        Ok(self.inner.tree.apply(b)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn doveauth_rules() {
        let r = AutoCreate::default();
        assert!(r.allows(&addr("abcdefghi@example.org"), "123456789"));
        assert!(!r.allows(&addr("abcdefghi@example.org"), "12345678"), "password too short");
        assert!(!r.allows(&addr("abcdefgh@example.org"), "123456789"), "local part too short");
        assert!(!r.allows(&addr("abcdefghij@example.org"), "123456789"), "local part too long");
        let loose = AutoCreate { local_min_chars: 1, local_max_chars: 64, ..r };
        assert!(!loose.allows(&addr("echo@example.org"), "123456789"), "the echo bot's name");
        assert!(loose.allows(&addr("échoéchoé@example.org"), "ü23456789"), "characters, not bytes");
    }

    #[test]
    fn creations_per_peer_per_hour() {
        let mut c = Creation::default();
        let now = Instant::now();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(c.take(a, 2, now) && c.take(a, 2, now));
        assert!(!c.take(a, 2, now));
        assert!(c.take(b, 2, now), "another peer has its own allowance");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let same64: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(c.take(v6, 1, now));
        assert!(!c.take(same64, 1, now), "one /64 is one peer");
        assert!(c.take(a, 2, now + HOUR), "the window ends");
        assert!(!c.take(a, 0, now + HOUR * 3), "0: no creations");
    }
}

#[cfg(test)]
mod login_tests {
    use super::*;
    use coimail_store::Store;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_logins_both_succeed_with_one_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let d = Directory::open(&store, None).unwrap();
        d.add_domain("example.org").await.unwrap();
        d.set_auto_create(Some(AutoCreate { per_peer_per_hour: 2, ..AutoCreate::default() }));
        // Delta Chat's IMAP and SMTP logins arrive together.
        let (a, b) = tokio::join!(
            d.authenticate("abcdefghi@example.org", "long password", PEER),
            d.authenticate("abcdefghi@example.org", "long password", PEER),
        );
        assert_eq!(a.unwrap().id, b.unwrap().id);
        assert_eq!(d.list_users().unwrap().len(), 1);
        // The loser's creation was given back: one more account fits this hour.
        d.authenticate("jklmnopqr@example.org", "long password", PEER).await.unwrap();
        assert!(matches!(
            d.authenticate("stuvwxyz1@example.org", "long password", PEER).await,
            Err(AuthError::Throttled)
        ));
        // A wrong password for the created account fails like any other.
        assert!(matches!(
            d.authenticate("abcdefghi@example.org", "wrong password", PEER).await,
            Err(AuthError::Failed)
        ));
        assert!(d.last_login_day("abcdefghi@example.org").unwrap().is_some());
    }
}
