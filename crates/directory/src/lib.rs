//! coimail-directory: who may receive and who may log in.
//!
//! Domains, users (address, argon2id hash, optional quota), aliases and
//! per-domain catch-alls, kept in the store's database in a tree of their
//! own. Every change is also written to an fsync'd JSON snapshot beside the
//! index, so `coimail store rebuild` can bring users back after the index is
//! lost (the body files then bring back their mail).
//!
//! Addresses compare case-insensitively in the domain and exactly in the
//! local part, as the user was created (RFC 5321 §2.4 lets the local part be
//! case-sensitive). Authentication hashes on a blocking thread (one argon2 per
//! CPU at a time), takes the same time for unknown users as for wrong
//! passwords, remembers verified logins for a few minutes (`auth_cache.rs`)
//! and throttles peers that keep failing.

mod address;
mod auth;
mod auth_cache;
mod create;
mod error;
mod limits;
mod log_safe;
mod new_account;
mod proxy;
mod snapshot;

pub use address::Address;
/// Validates a domain name and returns its canonical (lower-case) form.
pub use address::domain as canonical_domain;
pub use auth::{
    AuthError, AuthOptions, AuthStats, PlaintextAuth, Revocation, ThrottleOptions, count_login, cpu_count, peer_key,
};
pub use auth_cache::CacheOptions;
pub use create::AutoCreate;
pub use error::DirectoryError;
pub use limits::{ConnectionLimits, ConnectionPermit, LimitExceeded, UserLimits, UserPermit};
pub use log_safe::LogSafe;
pub use new_account::{NewAccount, NewAccountError};
pub use proxy::{ProxyError, TrustedProxies, read_header as read_proxy_header};

use coimail_store::kv::{Batch, Tree};
use coimail_store::{AccountId, QuotaLimits, Store};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A user as the rest of the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// The address as created (domain lower-cased).
    pub address: String,
    pub quota_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UserRecord {
    id: u64,
    address: String,
    hash: String,
    quota_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DomainRecord {
    /// Address of the user that receives mail for unknown local parts.
    catch_all: Option<String>,
}

/// The directory handle. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    tree: Tree,
    snapshot: Option<PathBuf>,
    /// Serialises mutations so the snapshot always matches the tree.
    write: tokio::sync::Mutex<()>,
    throttle: Mutex<auth::Throttle>,
    cache: auth_cache::AuthCache,
    argon2: auth::Argon2Gate,
    /// Quota of users created without one, in bytes; 0: none.
    default_quota: std::sync::atomic::AtomicU64,
    /// Per user address: what logged-in sessions watch to end when the
    /// password changes or the user goes (`auth::Revocation`).
    revocations: Mutex<std::collections::HashMap<String, tokio::sync::watch::Sender<bool>>>,
    /// Account creation on first login and last-login days (`create.rs`).
    creation: Mutex<create::Creation>,
}

const DOMAIN: &[u8] = b"d/";
const USER: &[u8] = b"u/";
const ALIAS: &[u8] = b"a/";
const ACCOUNT_COUNTER: &[u8] = b"c/account";

fn key(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, DirectoryError> {
    serde_json::to_vec(v).map_err(|e| DirectoryError::Corrupt(e.to_string()))
}

fn decode<T: for<'a> Deserialize<'a>>(v: &[u8]) -> Result<T, DirectoryError> {
    serde_json::from_slice(v).map_err(|e| DirectoryError::Corrupt(e.to_string()))
}

impl Directory {
    /// Opens the directory in the store's database. `snapshot` is the file
    /// every change is mirrored to (`None` for tests).
    pub fn open(store: &Store, snapshot: Option<PathBuf>) -> Result<Directory, DirectoryError> {
        Self::open_with(store, snapshot, AuthOptions::default())
    }

    pub fn open_with(store: &Store, snapshot: Option<PathBuf>, auth: AuthOptions) -> Result<Directory, DirectoryError> {
        let tree = store.kv().tree("directory")?;
        let cache = auth_cache::AuthCache::new(auth.cache).ok_or(DirectoryError::Random)?;
        Ok(Directory {
            inner: Arc::new(Inner {
                store: store.clone(),
                tree,
                snapshot,
                write: tokio::sync::Mutex::new(()),
                throttle: Mutex::new(auth::Throttle::new(auth.throttle)),
                cache,
                argon2: auth::Argon2Gate::new(auth.max_concurrent_argon2),
                default_quota: std::sync::atomic::AtomicU64::new(0),
                revocations: Mutex::default(),
                creation: Mutex::default(),
            }),
        })
    }

    async fn commit(&self, batch: Batch) -> Result<(), DirectoryError> {
        self.inner.tree.apply(batch)?;
        self.inner.store.flush().await?;
        if let Some(path) = &self.inner.snapshot {
            snapshot::write(path, &self.export()?)?;
        }
        Ok(())
    }

    // ---- domains ----

    pub async fn add_domain(&self, domain: &str) -> Result<(), DirectoryError> {
        let domain = address::domain(domain)?;
        let _g = self.inner.write.lock().await;
        if self.inner.tree.get(&key(DOMAIN, &domain))?.is_some() {
            return Err(DirectoryError::AlreadyExists(domain));
        }
        let mut b = Batch::default();
        b.insert(key(DOMAIN, &domain), encode(&DomainRecord::default())?);
        self.commit(b).await
    }

    /// Removes a domain that has no users or aliases left.
    pub async fn del_domain(&self, domain: &str) -> Result<(), DirectoryError> {
        let domain = address::domain(domain)?;
        let _g = self.inner.write.lock().await;
        if self.inner.tree.get(&key(DOMAIN, &domain))?.is_none() {
            return Err(DirectoryError::NotFound(domain));
        }
        let suffix = format!("@{domain}");
        let in_use = self.list_users()?.iter().any(|a| a.address.ends_with(&suffix))
            || self.list_aliases()?.iter().any(|(a, _)| a.ends_with(&suffix));
        if in_use {
            return Err(DirectoryError::Invalid(format!("domain {domain} still has users or aliases")));
        }
        let mut b = Batch::default();
        b.remove(key(DOMAIN, &domain));
        self.commit(b).await
    }

    pub fn list_domains(&self) -> Result<Vec<String>, DirectoryError> {
        self.inner
            .tree
            .scan_prefix(DOMAIN)?
            .into_iter()
            .map(|(k, _)| {
                String::from_utf8(k[DOMAIN.len()..].to_vec()).map_err(|e| DirectoryError::Corrupt(e.to_string()))
            })
            .collect()
    }

    pub fn is_local_domain(&self, domain: &str) -> Result<bool, DirectoryError> {
        let Ok(domain) = address::domain(domain) else { return Ok(false) };
        Ok(self.inner.tree.get(&key(DOMAIN, &domain))?.is_some())
    }

    fn domain_record(&self, domain: &str) -> Result<Option<DomainRecord>, DirectoryError> {
        self.inner.tree.get(&key(DOMAIN, domain))?.map(|v| decode(&v)).transpose()
    }

    /// Sets or clears the user receiving mail for unknown addresses of `domain`.
    pub async fn set_catch_all(&self, domain: &str, target: Option<&str>) -> Result<(), DirectoryError> {
        let domain = address::domain(domain)?;
        let _g = self.inner.write.lock().await;
        let mut rec = self.domain_record(&domain)?.ok_or_else(|| DirectoryError::NotFound(domain.clone()))?;
        rec.catch_all = match target {
            Some(t) => Some(
                self.user_record(&Address::parse(t)?)?.ok_or_else(|| DirectoryError::NotFound(t.to_owned()))?.address,
            ),
            None => None,
        };
        let mut b = Batch::default();
        b.insert(key(DOMAIN, &domain), encode(&rec)?);
        self.commit(b).await
    }

    // ---- users ----

    /// The user's record as stored (what a login cache entry is bound to).
    fn user_bytes(&self, addr: &Address) -> Result<Option<Vec<u8>>, DirectoryError> {
        Ok(self.inner.tree.get(&key(USER, &addr.key()))?)
    }

    fn user_record(&self, addr: &Address) -> Result<Option<UserRecord>, DirectoryError> {
        self.user_bytes(addr)?.map(|v| decode(&v)).transpose()
    }

    fn account(rec: UserRecord) -> Account {
        Account { id: AccountId(rec.id), address: rec.address, quota_bytes: rec.quota_bytes }
    }

    /// The quota [`Directory::add_user`] gives a user created without one
    /// (config `accounts.default_quota_bytes`); `None`: no quota.
    pub fn set_default_quota(&self, bytes: Option<u64>) {
        self.inner.default_quota.store(bytes.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// Creates a user and its mailboxes. The domain must exist. Without a
    /// quota, the user gets the default quota, if one is set.
    pub async fn add_user(
        &self,
        address: &str,
        password: &str,
        quota_bytes: Option<u64>,
    ) -> Result<Account, DirectoryError> {
        let addr = Address::parse(address)?;
        auth::check_password(password)?;
        let hash = self.inner.argon2.hash(password).await?;
        let _g = self.inner.write.lock().await;
        if !self.is_local_domain(&addr.domain)? {
            return Err(DirectoryError::UnknownDomain(addr.domain.clone()));
        }
        if self.user_record(&addr)?.is_some() || self.inner.tree.get(&key(ALIAS, &addr.key()))?.is_some() {
            return Err(DirectoryError::AlreadyExists(addr.key()));
        }
        let default = self.inner.default_quota.load(std::sync::atomic::Ordering::Relaxed);
        let quota_bytes = quota_bytes.or((default != 0).then_some(default));
        let id = self.inner.tree.increment(ACCOUNT_COUNTER)?;
        let rec = UserRecord { id, address: addr.key(), hash, quota_bytes };
        self.inner.store.create_account(AccountId(id), &rec.address).await?;
        // The store enforces the quota (under its write lock), so it keeps a copy of the limit.
        self.inner.store.set_quota(AccountId(id), QuotaLimits { bytes: quota_bytes, messages: None }).await?;
        let mut b = Batch::default();
        b.insert(key(USER, &addr.key()), encode(&rec)?);
        self.commit(b).await?;
        Ok(Self::account(rec))
    }

    /// Deletes a user, its aliases and all its mail.
    pub async fn del_user(&self, address: &str) -> Result<(), DirectoryError> {
        let addr = Address::parse(address)?;
        let _g = self.inner.write.lock().await;
        let rec = self.user_record(&addr)?.ok_or_else(|| DirectoryError::NotFound(addr.key()))?;
        let mut b = Batch::default();
        b.remove(key(USER, &addr.key()));
        for (alias, target) in self.list_aliases()? {
            if target == rec.address {
                b.remove(key(ALIAS, &alias));
            }
        }
        let mut domain = self.domain_record(&addr.domain)?.unwrap_or_default();
        if domain.catch_all.as_deref() == Some(rec.address.as_str()) {
            domain.catch_all = None;
            b.insert(key(DOMAIN, &addr.domain), encode(&domain)?);
        }
        self.commit(b).await?;
        // The cache entry could no longer match (it is bound to the record), but it goes now.
        self.inner.cache.forget(&addr.key());
        self.revoke(&addr.key());
        self.forget_login(&rec.address)?;
        self.inner.store.delete_account(AccountId(rec.id)).await?;
        Ok(())
    }

    pub async fn set_password(&self, address: &str, password: &str) -> Result<(), DirectoryError> {
        let addr = Address::parse(address)?;
        auth::check_password(password)?;
        let hash = self.inner.argon2.hash(password).await?;
        let _g = self.inner.write.lock().await;
        let mut rec = self.user_record(&addr)?.ok_or_else(|| DirectoryError::NotFound(addr.key()))?;
        rec.hash = hash;
        let mut b = Batch::default();
        b.insert(key(USER, &addr.key()), encode(&rec)?);
        self.commit(b).await?;
        // The old password already misses (the entry is bound to the old record); free it now.
        self.inner.cache.forget(&addr.key());
        // Sessions logged in with the old password end: it may be why it changed.
        self.revoke(&addr.key());
        Ok(())
    }

    pub fn list_users(&self) -> Result<Vec<Account>, DirectoryError> {
        self.inner.tree.scan_prefix(USER)?.into_iter().map(|(_, v)| Ok(Self::account(decode(&v)?))).collect()
    }

    pub fn user(&self, address: &str) -> Result<Option<Account>, DirectoryError> {
        Ok(self.user_record(&Address::parse(address)?)?.map(Self::account))
    }

    // ---- aliases ----

    /// Makes `alias` deliver to the user `target`.
    pub async fn add_alias(&self, alias: &str, target: &str) -> Result<(), DirectoryError> {
        let alias = Address::parse(alias)?;
        let target = Address::parse(target)?;
        let _g = self.inner.write.lock().await;
        if !self.is_local_domain(&alias.domain)? {
            return Err(DirectoryError::UnknownDomain(alias.domain.clone()));
        }
        let user = self.user_record(&target)?.ok_or_else(|| DirectoryError::NotFound(target.key()))?;
        if self.user_record(&alias)?.is_some() || self.inner.tree.get(&key(ALIAS, &alias.key()))?.is_some() {
            return Err(DirectoryError::AlreadyExists(alias.key()));
        }
        let mut b = Batch::default();
        b.insert(key(ALIAS, &alias.key()), user.address.into_bytes());
        self.commit(b).await
    }

    pub async fn del_alias(&self, alias: &str) -> Result<(), DirectoryError> {
        let alias = Address::parse(alias)?;
        let _g = self.inner.write.lock().await;
        if self.inner.tree.get(&key(ALIAS, &alias.key()))?.is_none() {
            return Err(DirectoryError::NotFound(alias.key()));
        }
        let mut b = Batch::default();
        b.remove(key(ALIAS, &alias.key()));
        self.commit(b).await
    }

    /// (alias, target user address) pairs.
    pub fn list_aliases(&self) -> Result<Vec<(String, String)>, DirectoryError> {
        self.inner
            .tree
            .scan_prefix(ALIAS)?
            .into_iter()
            .map(|(k, v)| {
                let a =
                    String::from_utf8(k[ALIAS.len()..].to_vec()).map_err(|e| DirectoryError::Corrupt(e.to_string()))?;
                let t = String::from_utf8(v).map_err(|e| DirectoryError::Corrupt(e.to_string()))?;
                Ok((a, t))
            })
            .collect()
    }

    // ---- lookups ----

    /// The account mail to `address` is delivered to: a user, an alias, the
    /// user without a `+tag` sub-address, or the domain's catch-all.
    /// `None` means no such recipient (SMTP 550 5.1.1).
    pub fn resolve_recipient(&self, address: &str) -> Result<Option<Account>, DirectoryError> {
        let Ok(addr) = Address::parse(address) else { return Ok(None) };
        let Some(domain) = self.domain_record(&addr.domain)? else { return Ok(None) };
        let mut candidates = vec![addr.clone()];
        if let Some((base, _tag)) = addr.local.split_once('+')
            && !base.is_empty()
        {
            candidates.push(Address { local: base.to_owned(), domain: addr.domain.clone() });
        }
        for c in &candidates {
            if let Some(rec) = self.user_record(c)? {
                return Ok(Some(Self::account(rec)));
            }
            if let Some(target) = self.inner.tree.get(&key(ALIAS, &c.key()))? {
                let target = String::from_utf8(target).map_err(|e| DirectoryError::Corrupt(e.to_string()))?;
                return Ok(self.user_record(&Address::parse(&target)?)?.map(Self::account));
            }
        }
        match domain.catch_all {
            Some(t) => Ok(self.user_record(&Address::parse(&t)?)?.map(Self::account)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
