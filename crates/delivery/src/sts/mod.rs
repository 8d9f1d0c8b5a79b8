//! MTA-STS (RFC 8461): which policy applies to a recipient domain.
//!
//! Discovery (§3, §5.1), on every delivery to a domain:
//! 1. TXT `_mta-sts.<domain>`: one `v=STSv1; id=...` record says the domain
//!    has a policy, and its id names the version.
//! 2. A cached policy still within its `max_age` whose id equals the TXT
//!    record's is used as it is. A different id (or no fresh cached
//!    policy) fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt`
//!    (`fetch.rs`) and caches the result under the new id.
//! 3. When the record is missing, DNS fails, or the fetch or the parse
//!    fails, a fresh cached policy still applies (so an attacker who
//!    blocks DNS or HTTPS cannot switch enforcement off for a domain we
//!    have seen); without one, the domain is treated as having none.
//!    Failed fetches are reported (`sts-policy-fetch-error`,
//!    `sts-webpki-invalid`, `sts-policy-invalid`) through [`Lookup::problem`].
//!
//! The cache lives in memory and in `<data>/mta-sts/<domain>.json` (written
//! whole, fsync'd), so a restart keeps enforcing. Proactive refresh before
//! expiry (§5.1, optional) is not done: the next delivery after expiry
//! fetches again.

pub mod fetch;
pub mod policy;

use crate::dns::{Dns, RData, RecordType};
use crate::tlsrpt::file_safe;
use fetch::Fetcher;
pub use policy::{Mode, Policy, PolicyError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A policy as cached: the text it was parsed from (for TLS reports and
/// re-parsing after a restart), under the TXT id it was fetched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub id: String,
    pub fetched_at: i64,
    pub text: String,
    pub policy: Policy,
}

/// `<data>/mta-sts/<domain>.json`.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    fetched_at: i64,
    text: String,
}

impl Cached {
    fn fresh(&self, now: i64) -> bool {
        now < self.fetched_at.saturating_add(i64::from(self.policy.max_age))
    }
}

/// Something that went wrong finding the policy (for the TLS report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub result_type: &'static str,
    pub detail: String,
}

/// The outcome of discovery for one delivery.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The policy to apply, if any (its mode may be `none`).
    pub policy: Option<Arc<Cached>>,
    pub problem: Option<Problem>,
}

/// Policy discovery and its cache. Shared by all attempts.
pub struct Sts {
    dns: Arc<Dns>,
    fetcher: Fetcher,
    /// `<data>/mta-sts`.
    dir: PathBuf,
    /// Policies fetched or read from disk this run; `None`: none on disk.
    cache: Mutex<HashMap<String, Option<Arc<Cached>>>>,
}

impl Sts {
    pub(crate) fn new(dns: Arc<Dns>, fetcher: Fetcher, dir: PathBuf) -> Sts {
        Sts { dns, fetcher, dir, cache: Mutex::new(HashMap::new()) }
    }

    /// The policy for mail to `domain` (lower-case) at time `now`.
    pub async fn lookup(&self, domain: &str, now: i64) -> Lookup {
        if !file_safe(domain) {
            // Not a host name we could fetch a policy for.
            return Lookup::default();
        }
        let cached = self.cached(domain).filter(|c| c.fresh(now));
        let id = match self.dns.records(&format!("_mta-sts.{domain}"), RecordType::TXT).await {
            Ok(records) => policy::record_id(&joined(&records)).ok(),
            Err(e) => {
                tracing::debug!(domain, error = %e, "MTA-STS record lookup failed; using the cache");
                None
            }
        };
        let id = match (id, &cached) {
            (None, _) => return Lookup { policy: cached, problem: None },
            (Some(id), Some(c)) if c.id == id => return Lookup { policy: cached, problem: None },
            (Some(id), _) => id,
        };
        let problem = match self.fetcher.fetch(domain).await {
            Ok(text) => match Policy::parse(&text) {
                Ok(policy) => {
                    let fresh = Arc::new(Cached { id, fetched_at: now, text, policy });
                    self.store(domain, &fresh);
                    tracing::info!(domain, id = fresh.id, mode = %fresh.policy.mode, "MTA-STS policy fetched");
                    return Lookup { policy: Some(fresh), problem: None };
                }
                Err(e) => Problem { result_type: "sts-policy-invalid", detail: e.to_string() },
            },
            Err(e) => Problem { result_type: e.result_type, detail: e.detail },
        };
        tracing::warn!(domain, problem = problem.detail, cached = cached.is_some(), "MTA-STS policy unavailable");
        Lookup { policy: cached, problem: Some(problem) }
    }

    /// From memory, else from disk (once per run).
    fn cached(&self, domain: &str) -> Option<Arc<Cached>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.entry(domain.to_owned()).or_insert_with(|| self.read(domain)).clone()
    }

    fn path(&self, domain: &str) -> PathBuf {
        self.dir.join(format!("{domain}.json"))
    }

    fn read(&self, domain: &str) -> Option<Arc<Cached>> {
        let bytes = std::fs::read(self.path(domain)).ok()?;
        let stored: Stored = serde_json::from_slice(&bytes).ok()?;
        let policy = Policy::parse(&stored.text).ok()?;
        Some(Arc::new(Cached { id: stored.id, fetched_at: stored.fetched_at, text: stored.text, policy }))
    }

    fn store(&self, domain: &str, fresh: &Arc<Cached>) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(domain.to_owned(), Some(fresh.clone()));
        let stored = Stored { id: fresh.id.clone(), fetched_at: fresh.fetched_at, text: fresh.text.clone() };
        let path = self.path(domain);
        let write = serde_json::to_vec(&stored).map_err(std::io::Error::other).and_then(|json| {
            std::fs::create_dir_all(&self.dir)?;
            crate::files::write_atomically(&path, &json)
        });
        if let Err(e) = write {
            // Still used from memory; only a restart would forget it.
            tracing::warn!(path = %path.display(), error = %e, "saving the MTA-STS policy failed");
        }
    }
}

/// Each TXT record's character-strings joined (RFC 8461 §3.1).
fn joined(records: &[RData]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            RData::TXT(txt) => {
                Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect::<Vec<_>>().concat())
            }
            _ => None,
        })
        .collect()
}

impl Cached {
    /// The policy's lines, for the TLS report's `policy-string`.
    pub fn lines(&self) -> Vec<String> {
        self.text.lines().map(|l| l.trim_end_matches('\r').to_owned()).filter(|l| !l.is_empty()).collect()
    }
}
