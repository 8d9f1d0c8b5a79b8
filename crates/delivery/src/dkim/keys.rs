//! DKIM keys on disk: one Ed25519 and one RSA-2048 key per *generation*,
//! per domain, and which generation is used for what.
//!
//! ```text
//! <data>/dkim/                      0700
//! <data>/dkim/<domain>/state.json   {"current":"20261207","next":null,"retiring":["20260901"]}
//! <data>/dkim/<domain>/ed-20261207.pem    PKCS#8, 0600
//! <data>/dkim/<domain>/rsa-20261207.pem   PKCS#8, 0600
//! ```
//!
//! A generation is named after the day it was made (`YYYYMMDD`, `-2`, `-3`
//! for more on one day); its selectors are `ed-<generation>` and
//! `rsa-<generation>`. Rotation publishes before it signs and keeps
//! publishing after it stops signing:
//! 1. `rotate` makes a `next` generation: published (`coimail dns` prints
//!    it), not used;
//! 2. `activate` (once DNS serves it) signs with `next` from then on; the
//!    old `current` becomes `retiring`: still published, so messages signed
//!    with it and still in flight or in transit keep verifying;
//! 3. `retire` (days later) deletes the retiring keys; their DNS records can go.
//!
//! Every write is temp file, fsync, rename, fsync the directory, and the
//! key files are written before the state that names them, so a crash
//! leaves at most an unused key file, never a state naming a missing key.

use super::DkimError;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The two algorithms every generation has (RFC 8463 asks signers to add
/// RSA next to Ed25519 while verifiers catch up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::Rsa];

    fn prefix(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed",
            Algorithm::Rsa => "rsa",
        }
    }

    /// The key record's `k=` tag.
    pub fn k_tag(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    /// `ed-20261207`, `rsa-20261207`.
    pub fn selector(self, generation: &str) -> String {
        format!("{}-{generation}", self.prefix())
    }
}

/// What a generation is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Signs outgoing mail.
    Current,
    /// Published ahead of `activate`; signs nothing yet.
    Next,
    /// Replaced; published until `retire` so mail it signed still verifies.
    Retiring,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Current => "current",
            Role::Next => "next",
            Role::Retiring => "retiring",
        }
    }
}

/// One public key as DNS publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub role: Role,
    /// `p=`: raw 32 bytes for Ed25519 (RFC 8463), SubjectPublicKeyInfo DER for RSA.
    pub public: Vec<u8>,
}

impl PublicKey {
    /// `<selector>._domainkey.<domain>`, without the final dot.
    pub fn name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record's text (RFC 6376 §3.6.1).
    pub fn txt(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm.k_tag(), BASE64.encode(&self.public))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    current: Option<String>,
    next: Option<String>,
    #[serde(default)]
    retiring: Vec<String>,
}

impl State {
    fn generations(&self) -> impl Iterator<Item = (&str, Role)> {
        let current = self.current.as_deref().map(|g| (g, Role::Current));
        let next = self.next.as_deref().map(|g| (g, Role::Next));
        current.into_iter().chain(next).chain(self.retiring.iter().map(|g| (g.as_str(), Role::Retiring)))
    }
}

/// A generation's private keys (PKCS#8 DER).
pub(crate) struct Generation {
    pub(crate) name: String,
    pub(crate) ed25519: Vec<u8>,
    pub(crate) rsa: Vec<u8>,
}

/// What a key operation did, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A generation was made, with the role it got.
    Created { generation: String, role: Role },
    /// `next` signs now; the former current (if any) is retiring.
    Activated { generation: String, retiring: Option<String> },
    /// These generations' keys were deleted.
    Retired(Vec<String>),
    /// The domain had keys already.
    Unchanged,
}

/// The key directory (`<data>/dkim`). Cheap to clone; holds no keys in memory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn domain_dir(&self, domain: &str) -> Result<PathBuf, DkimError> {
        // The directory's own check: lower-case labels of letters, digits
        // and hyphens, so the name is a safe single path component.
        let domain = coimail_directory::canonical_domain(domain).map_err(|_| DkimError::Domain(domain.to_owned()))?;
        Ok(self.dir.join(domain))
    }

    fn read_state(&self, domain: &str) -> Result<State, DkimError> {
        let path = self.domain_dir(domain)?.join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DkimError::State(path, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(DkimError::io(&path, e)),
        }
    }

    fn write_state(&self, domain: &str, state: &State) -> Result<(), DkimError> {
        let path = self.domain_dir(domain)?.join("state.json");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| DkimError::State(path.clone(), e.to_string()))?;
        write_atomically(&path, &bytes)
    }

    /// Gives `domain` a current generation if it has none (`init`, `domain add`).
    pub fn ensure(&self, domain: &str, now: i64) -> Result<Change, DkimError> {
        let mut state = self.read_state(domain)?;
        if state.current.is_some() {
            return Ok(Change::Unchanged);
        }
        let generation = self.generate(domain, &state, now)?;
        state.current = Some(generation.clone());
        self.write_state(domain, &state)?;
        Ok(Change::Created { generation, role: Role::Current })
    }

    /// Step 1 of a rotation: a `next` generation to publish. A domain
    /// without keys gets a current one instead (nothing to rotate from).
    pub fn rotate(&self, domain: &str, now: i64) -> Result<Change, DkimError> {
        let mut state = self.read_state(domain)?;
        if state.current.is_none() {
            return self.ensure(domain, now);
        }
        if let Some(next) = state.next {
            return Err(DkimError::NextExists(domain.to_owned(), next));
        }
        let generation = self.generate(domain, &state, now)?;
        state.next = Some(generation.clone());
        self.write_state(domain, &state)?;
        Ok(Change::Created { generation, role: Role::Next })
    }

    /// Step 2: `next` becomes current; the old current is kept, published, as retiring.
    pub fn activate(&self, domain: &str) -> Result<Change, DkimError> {
        let mut state = self.read_state(domain)?;
        let Some(next) = state.next.take() else {
            return Err(DkimError::NoNext(domain.to_owned()));
        };
        let retiring = state.current.replace(next.clone());
        if let Some(old) = &retiring {
            state.retiring.push(old.clone());
        }
        self.write_state(domain, &state)?;
        Ok(Change::Activated { generation: next, retiring })
    }

    /// Step 3: deletes the retiring generations' keys.
    pub fn retire(&self, domain: &str) -> Result<Change, DkimError> {
        let mut state = self.read_state(domain)?;
        if state.retiring.is_empty() {
            return Ok(Change::Unchanged);
        }
        let gone = std::mem::take(&mut state.retiring);
        // State first: a crash in between leaves unused files, not a state
        // that names deleted ones.
        self.write_state(domain, &state)?;
        let dir = self.domain_dir(domain)?;
        for generation in &gone {
            for alg in Algorithm::ALL {
                let path = dir.join(format!("{}.pem", alg.selector(generation)));
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(DkimError::io(&path, e)),
                }
            }
        }
        Ok(Change::Retired(gone))
    }

    /// Every published key of `domain` (current, next, retiring), in that order.
    pub fn public_keys(&self, domain: &str) -> Result<Vec<PublicKey>, DkimError> {
        let state = self.read_state(domain)?;
        let domain = &coimail_directory::canonical_domain(domain).map_err(|_| DkimError::Domain(domain.to_owned()))?;
        let mut out = Vec::new();
        for (generation, role) in state.generations() {
            for algorithm in Algorithm::ALL {
                let selector = algorithm.selector(generation);
                let der = self.read_key(domain, &selector)?;
                out.push(PublicKey {
                    domain: domain.to_owned(),
                    public: public_key(algorithm, &der).map_err(|e| DkimError::Key(selector.clone(), e))?,
                    selector,
                    algorithm,
                    role,
                });
            }
        }
        Ok(out)
    }

    /// The current generation of `domain`, if it has one.
    pub(crate) fn current(&self, domain: &str) -> Result<Option<Generation>, DkimError> {
        let Some(name) = self.read_state(domain)?.current else { return Ok(None) };
        let ed25519 = self.read_key(domain, &Algorithm::Ed25519.selector(&name))?;
        let rsa = self.read_key(domain, &Algorithm::Rsa.selector(&name))?;
        Ok(Some(Generation { name, ed25519, rsa }))
    }

    fn read_key(&self, domain: &str, selector: &str) -> Result<Vec<u8>, DkimError> {
        let path = self.domain_dir(domain)?.join(format!("{selector}.pem"));
        let pem = std::fs::read(&path).map_err(|e| DkimError::io(&path, e))?;
        let der =
            PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| DkimError::Key(selector.to_owned(), e.to_string()))?;
        Ok(der.secret_pkcs8_der().to_vec())
    }

    /// Makes both keys of a new generation named after today; returns its name.
    fn generate(&self, domain: &str, state: &State, now: i64) -> Result<String, DkimError> {
        let dir = self.domain_dir(domain)?;
        for d in [&self.dir, &dir] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d).map_err(|e| DkimError::io(d, e))?;
        }
        let day = day_stamp(now);
        let taken = |g: &str| {
            state.generations().any(|(t, _)| t == g)
                || Algorithm::ALL.iter().any(|a| dir.join(format!("{}.pem", a.selector(g))).exists())
        };
        let generation =
            std::iter::once(day.clone()).chain((2..).map(|n| format!("{day}-{n}"))).find(|g| !taken(g)).unwrap_or(day);
        for algorithm in Algorithm::ALL {
            let der = generate_key(algorithm).map_err(|e| DkimError::Key(algorithm.selector(&generation), e))?;
            let path = dir.join(format!("{}.pem", algorithm.selector(&generation)));
            write_atomically(&path, pem("PRIVATE KEY", &der).as_bytes())?;
        }
        Ok(generation)
    }

    /// Domains with a key directory.
    pub fn domains(&self) -> Result<Vec<String>, DkimError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DkimError::io(&self.dir, e)),
        };
        let mut out: Vec<String> =
            entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| !n.starts_with('.')).collect();
        out.sort();
        Ok(out)
    }
}

/// `YYYYMMDD` (UTC) of a Unix time.
fn day_stamp(now: i64) -> String {
    let d = mail_parser::DateTime::from_timestamp(now);
    format!("{:04}{:02}{:02}", d.year, d.month, d.day)
}

fn generate_key(algorithm: Algorithm) -> Result<Vec<u8>, String> {
    let e = |e: aws_lc_rs::error::Unspecified| e.to_string();
    Ok(match algorithm {
        Algorithm::Ed25519 => Ed25519KeyPair::generate().map_err(e)?.to_pkcs8v1().map_err(e)?.as_ref().to_vec(),
        Algorithm::Rsa => RsaKeyPair::generate(KeySize::Rsa2048).map_err(e)?.as_der().map_err(e)?.as_ref().to_vec(),
    })
}

/// The `p=` bytes of a PKCS#8 private key.
fn public_key(algorithm: Algorithm, pkcs8: &[u8]) -> Result<Vec<u8>, String> {
    Ok(match algorithm {
        Algorithm::Ed25519 => {
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| e.to_string())?.public_key().as_ref().to_vec()
        }
        // SubjectPublicKeyInfo, as `openssl rsa -pubout` writes it: what
        // every verifier reads (RFC 6376 §3.6.1 allows it).
        Algorithm::Rsa => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| e.to_string())?;
            pair.public_key().as_der().map_err(|e| e.to_string())?.as_ref().to_vec()
        }
    })
}

/// RFC 7468 text encoding, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<(), DkimError> {
    crate::files::write_atomically(path, data).map_err(|e| DkimError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const DAY: i64 = 1_796_601_600; // 2026-12-07 00:00:00 UTC

    #[test]
    fn ensure_rotate_activate_retire() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::new(dir.path().join("dkim"));
        assert!(keys.public_keys("example.org").unwrap().is_empty());
        assert_eq!(
            keys.ensure("Example.ORG", DAY).unwrap(),
            Change::Created { generation: "20261207".into(), role: Role::Current }
        );
        assert_eq!(keys.ensure("example.org", DAY).unwrap(), Change::Unchanged);
        let path = dir.path().join("dkim/example.org/rsa-20261207.pem");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let dkim_dir = std::fs::metadata(dir.path().join("dkim")).unwrap();
        assert_eq!(dkim_dir.permissions().mode() & 0o777, 0o700);

        let published = keys.public_keys("example.org").unwrap();
        let selectors: Vec<_> = published.iter().map(|k| (k.selector.as_str(), k.role)).collect();
        assert_eq!(selectors, [("ed-20261207", Role::Current), ("rsa-20261207", Role::Current)]);
        assert_eq!(published[0].public.len(), 32, "raw Ed25519 key");
        assert!(published[0].txt().starts_with("v=DKIM1; k=ed25519; p="));
        assert!(published[1].txt().starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        assert_eq!(published[1].name(), "rsa-20261207._domainkey.example.org");

        // Same day: the next generation gets a suffix.
        assert_eq!(
            keys.rotate("example.org", DAY).unwrap(),
            Change::Created { generation: "20261207-2".into(), role: Role::Next }
        );
        assert!(matches!(keys.rotate("example.org", DAY), Err(DkimError::NextExists(..))));
        assert_eq!(keys.current("example.org").unwrap().unwrap().name, "20261207", "next does not sign yet");
        assert_eq!(keys.public_keys("example.org").unwrap().len(), 4);

        assert_eq!(
            keys.activate("example.org").unwrap(),
            Change::Activated { generation: "20261207-2".into(), retiring: Some("20261207".into()) }
        );
        assert!(matches!(keys.activate("example.org"), Err(DkimError::NoNext(_))));
        assert_eq!(keys.current("example.org").unwrap().unwrap().name, "20261207-2");
        let roles: Vec<_> = keys.public_keys("example.org").unwrap().iter().map(|k| k.role).collect();
        assert_eq!(roles, [Role::Current, Role::Current, Role::Retiring, Role::Retiring]);

        assert_eq!(keys.retire("example.org").unwrap(), Change::Retired(vec!["20261207".into()]));
        assert!(!path.exists());
        assert_eq!(keys.public_keys("example.org").unwrap().len(), 2);
        assert_eq!(keys.retire("example.org").unwrap(), Change::Unchanged);
        assert_eq!(keys.domains().unwrap(), ["example.org"]);
    }

    #[test]
    fn a_domain_without_keys_gets_current_ones_from_rotate_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyStore::new(dir.path().join("dkim"));
        assert!(matches!(keys.rotate("b.test", DAY).unwrap(), Change::Created { role: Role::Current, .. }));
        for bad in ["../etc", "a/b", "", "."] {
            assert!(matches!(keys.ensure(bad, DAY), Err(DkimError::Domain(_))), "{bad:?}");
        }
        assert!(keys.current("nokeys.test").unwrap().is_none());
    }

    #[test]
    fn pem_wraps_at_64() {
        let text = pem("PRIVATE KEY", &[0u8; 100]);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PRIVATE KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END PRIVATE KEY-----"));
        let der = PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes()).unwrap();
        assert_eq!(der.secret_pkcs8_der(), &[0u8; 100][..]);
    }
}
