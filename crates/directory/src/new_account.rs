//! Accounts with a random address and password, made for whoever asks: a
//! chatmail relay's `/new` (chatmaild `newemail.py`), which Delta Chat
//! POSTs to when it scans a `DCACCOUNT:https://<host>/new` QR code.
//!
//! Off unless [`Directory::set_random_accounts`] turns it on. The names
//! follow the creation-on-login rules ([`AutoCreate`]): a local part of
//! `local_max_chars` lower-case letters and digits (chatmail's
//! `username_max_length`), never `echo`. Each creation takes one from the
//! same per-peer hourly allowance as creation on login, so switching
//! between the two paths gives a peer no more accounts.
//!
//! Unlike chatmail, which only hands out credentials and lets the first
//! login create the account, the account is made here: the endpoint then
//! works whether or not creation on login is on, and the answer is only
//! sent for an account that exists.

use crate::auth::peer_key;
use crate::create::AutoCreate;
use crate::{Address, Directory, DirectoryError};
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

/// What a local part is made of (chatmail's `ALPHANUMERIC`).
const LOCAL_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Passwords: letters and digits only, so they survive every client's
/// input field, URI and JSON unescaped; the length gives the strength.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// 24 characters of 62: about 143 bits.
const PASSWORD_MIN_CHARS: usize = 24;
/// A random name that is taken (1 in 36^9 with chatmail's rules) is drawn
/// again this many times before giving up.
const ATTEMPTS: usize = 8;

/// A created account and its password. `Debug` leaves the password out.
pub struct NewAccount {
    pub address: String,
    pub password: String,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount").field("address", &self.address).field("password", &"<redacted>").finish()
    }
}

/// Why no account was made.
#[derive(Debug, thiserror::Error)]
pub enum NewAccountError {
    #[error("account creation is off")]
    Off,
    #[error("too many accounts created from this address; try again later")]
    Throttled,
    #[error("domain {0} is not served here")]
    UnknownDomain(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// `n` characters drawn uniformly from `alphabet` (rejection sampling: no
/// character is likelier than another).
fn random_string(alphabet: &[u8], n: usize) -> Result<String, DirectoryError> {
    // The largest multiple of the alphabet's size that fits in a byte.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| DirectoryError::Random)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == n {
                break;
            }
            if let Some(&c) = alphabet.get(usize::from(b) % alphabet.len()) {
                out.push(char::from(c));
            }
        }
    }
    Ok(out)
}

impl AutoCreate {
    /// A random local part these rules allow.
    fn random_local(&self) -> Result<String, DirectoryError> {
        loop {
            let local = random_string(LOCAL_ALPHABET, self.local_max_chars.max(1))?;
            if local != "echo" {
                return Ok(local);
            }
        }
    }

    fn random_password(&self) -> Result<String, DirectoryError> {
        random_string(PASSWORD_ALPHABET, self.password_min_chars.saturating_add(3).max(PASSWORD_MIN_CHARS))
    }
}

impl Directory {
    /// Turns random accounts ([`Directory::create_random_account`]) on
    /// (`Some`, with the rules for names and the per-peer allowance) or off.
    pub fn set_random_accounts(&self, rules: Option<AutoCreate>) {
        self.creation().random = rules;
    }

    /// Whether random accounts are on.
    pub fn random_accounts_enabled(&self) -> bool {
        self.creation().random.is_some()
    }

    /// Creates an account with a random address in `domain` and a random
    /// password, for `peer` (which spends one from its hourly allowance).
    pub async fn create_random_account(&self, domain: &str, peer: IpAddr) -> Result<NewAccount, NewAccountError> {
        let Some(rules) = self.creation().random.clone() else { return Err(NewAccountError::Off) };
        let domain = crate::address::domain(domain).map_err(|_| NewAccountError::UnknownDomain(domain.to_owned()))?;
        if !self.is_local_domain(&domain)? {
            return Err(NewAccountError::UnknownDomain(domain));
        }
        if !self.creation().take(peer, rules.per_peer_per_hour, Instant::now()) {
            tracing::warn!(peer = %peer_key(peer), "random account refused: too many from this peer");
            return Err(NewAccountError::Throttled);
        }
        let password = rules.random_password()?;
        for _ in 0..ATTEMPTS {
            let address = Address { local: rules.random_local()?, domain: domain.clone() }.key();
            match self.add_user(&address, &password, None).await {
                Ok(account) => {
                    // Counted as a login: an account nobody ever logs in to
                    // is then removed by the inactive-account expiry like any.
                    self.record_login(&account.address);
                    tracing::info!(user = %account.address, "random account created");
                    return Ok(NewAccount { address: account.address, password });
                }
                Err(DirectoryError::AlreadyExists(_)) => continue,
                Err(e) => {
                    self.creation().give_back(peer);
                    return Err(e.into());
                }
            }
        }
        self.creation().give_back(peer);
        Err(DirectoryError::Invalid(format!("no free random name in {domain} after {ATTEMPTS} attempts")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_store::Store;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn random_strings_use_only_the_alphabet_and_differ() {
        let a = random_string(LOCAL_ALPHABET, 9).unwrap();
        assert_eq!(a.len(), 9);
        assert!(a.bytes().all(|b| LOCAL_ALPHABET.contains(&b)), "{a}");
        let p = AutoCreate::default().random_password().unwrap();
        assert_eq!(p.len(), PASSWORD_MIN_CHARS);
        assert!(p.bytes().all(|b| PASSWORD_ALPHABET.contains(&b)));
        assert_ne!(p, AutoCreate::default().random_password().unwrap());
        let long = AutoCreate { password_min_chars: 40, ..AutoCreate::default() };
        assert_eq!(long.random_password().unwrap().len(), 43, "chatmail's min + 3 when longer");
    }

    #[tokio::test]
    async fn random_accounts_are_made_when_on_and_share_the_per_peer_allowance() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_memory(dir.path()).unwrap();
        let d = Directory::open(&store, None).unwrap();
        d.add_domain("example.org").await.unwrap();
        assert!(matches!(d.create_random_account("example.org", PEER).await, Err(NewAccountError::Off)));
        let rules = AutoCreate { per_peer_per_hour: 2, ..AutoCreate::default() };
        d.set_random_accounts(Some(rules.clone()));
        d.set_auto_create(Some(rules));
        assert!(matches!(d.create_random_account("example.net", PEER).await, Err(NewAccountError::UnknownDomain(_))));
        let made = d.create_random_account("Example.ORG", PEER).await.unwrap();
        let addr = Address::parse(&made.address).unwrap();
        assert_eq!((addr.local.len(), addr.domain.as_str()), (9, "example.org"));
        assert!(!format!("{made:?}").contains(&made.password), "Debug never shows the password");
        let account = d.authenticate(&made.address, &made.password, PEER).await.unwrap();
        assert_eq!(account.address, made.address);
        assert!(d.last_login_day(&made.address).unwrap().is_some(), "expires like any account");
        // The second creation of this hour is a login to an unknown address.
        d.authenticate("abcdefghi@example.org", "long password", PEER).await.unwrap();
        assert!(matches!(d.create_random_account("example.org", PEER).await, Err(NewAccountError::Throttled)));
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        d.create_random_account("example.org", other).await.unwrap();
        assert_eq!(d.list_users().unwrap().len(), 3);
    }
}
