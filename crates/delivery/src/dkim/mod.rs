//! DKIM signing (RFC 6376) of mail leaving through the queue, with an
//! Ed25519 (RFC 8463) and an RSA-2048 signature, by mail-auth's signer.
//!
//! [`Queue::enqueue`](crate::Queue::enqueue) signs once, before the message
//! is made durable: every retry sends the same bytes, the signatures survive
//! a restart, and a key rotated while the message waits does not matter
//! (the old key stays published while it is retiring, see [`keys`]).
//!
//! The signing domain is the From: domain when we have keys for it or for
//! a parent of it (a DSN from `MAILER-DAEMON@mail.example.org` is signed
//! for example.org, which DMARC's relaxed alignment accepts), else the
//! envelope sender's domain; a message for which neither has keys goes out
//! unsigned.

pub mod keys;

pub use keys::{Algorithm, Change, KeyStore, PublicKey, Role};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter as _, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not a domain name: {0:?}")]
    Domain(String),
    #[error("{0}: {1}")]
    State(PathBuf, String),
    #[error("DKIM key {0}: {1}")]
    Key(String, String),
    #[error("{0} has a next key ({1}) already: publish it, then `coimail dkim activate {0}`")]
    NextExists(String, String),
    #[error("{0} has no next key: `coimail dkim rotate {0}` makes one")]
    NoNext(String),
    #[error("signing: {0}")]
    Sign(String),
}

impl DkimError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DkimError {
        DkimError::Io { path: path.to_owned(), source }
    }
}

/// Signed when present (RFC 6376 §5.4.1's list, the MIME headers that
/// decide how the body reads, and Autocrypt, whose key a forger would
/// like to swap). Absent ones are not signed, so a list server may add
/// its List-* headers without breaking the signature.
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "Sender",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Autocrypt",
    "Chat-Version",
];

/// Listed once more than they occur (RFC 6376 §8.15): nobody can add a
/// second From:, To:, ... without breaking the signature, even when the
/// message had none.
const OVERSIGNED: &[&str] = &["From", "To", "Subject", "Date", "Message-ID"];

/// The `h=` list for `message`: the present ones of [`SIGNED`], plus
/// [`OVERSIGNED`] once more (mail-auth signs every occurrence of a listed
/// name and adds each further listing as an empty one).
fn signed_headers(message: &[u8]) -> Vec<&'static str> {
    let present: HashSet<String> = mail_parser::MessageParser::new()
        .parse_headers(message)
        .map(|m| m.headers().iter().map(|h| h.name().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let mut out: Vec<&'static str> =
        SIGNED.iter().copied().filter(|h| present.contains(&h.to_ascii_lowercase()) || *h == "From").collect();
    out.extend(OVERSIGNED);
    out
}

/// A key shared by every signer built from it (mail-auth's signer owns its key).
struct Shared<K>(Arc<K>);

impl<K: SigningKey> SigningKey for Shared<K> {
    type Hasher = K::Hasher;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

/// One domain's current keys, parsed.
struct DomainKeys {
    domain: String,
    generation: String,
    ed25519: Arc<Ed25519Key>,
    rsa: Arc<RsaKey<Sha256>>,
}

impl DomainKeys {
    fn load(keys: &KeyStore, domain: &str) -> Result<Option<DomainKeys>, DkimError> {
        let Some(keys::Generation { name: generation, ed25519: ed, rsa }) = keys.current(domain)? else {
            return Ok(None);
        };
        // "Maybe unchecked": our files are PKCS#8 v1, which holds no public
        // key to check the private one against (OpenSSL writes the same).
        let ed25519 = Ed25519Key::from_pkcs8_maybe_unchecked_der(&ed)
            .map_err(|e| DkimError::Key(Algorithm::Ed25519.selector(&generation), e.to_string()))?;
        let rsa = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(rsa)))
            .map_err(|e| DkimError::Key(Algorithm::Rsa.selector(&generation), e.to_string()))?;
        Ok(Some(DomainKeys { domain: domain.to_owned(), generation, ed25519: Arc::new(ed25519), rsa: Arc::new(rsa) }))
    }

    /// Both `DKIM-Signature` header fields, Ed25519 first.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let headers = signed_headers(message);
        let ed = sign_with(Shared(self.ed25519.clone()), self, Algorithm::Ed25519, &headers, message)?;
        let rsa = sign_with(Shared(self.rsa.clone()), self, Algorithm::Rsa, &headers, message)?;
        let mut out = ed.into_bytes();
        out.extend_from_slice(rsa.as_bytes());
        Ok(out)
    }
}

fn sign_with<K: SigningKey>(
    key: K,
    keys: &DomainKeys,
    algorithm: Algorithm,
    headers: &[&str],
    message: &[u8],
) -> Result<String, DkimError> {
    let signer = DkimSigner::from_key(key)
        .domain(keys.domain.clone())
        .selector(algorithm.selector(&keys.generation))
        .headers(headers.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed);
    let signature = signer.sign(message).map_err(|e| DkimError::Sign(e.to_string()))?;
    Ok(signature.to_header())
}

/// The signer the queue holds: the key store and the keys parsed so far.
/// Key changes made through it ([`Dkim::ensure`], [`Dkim::rotate`], ...)
/// take effect for the next message.
#[derive(Clone)]
pub struct Dkim {
    keys: KeyStore,
    /// Per domain: its current keys, or `None` when it has none.
    loaded: Arc<Mutex<HashMap<String, Option<Arc<DomainKeys>>>>>,
}

impl Dkim {
    pub fn new(keys: KeyStore) -> Dkim {
        Dkim { keys, loaded: Arc::default() }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Drops every parsed key: a change to one domain's keys can also
    /// change what its subdomains (cached as "parent's keys" or "none") use.
    fn forget(&self) {
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.clear();
        }
    }

    /// Keys for a new domain (`init`, `domain add`).
    pub fn ensure(&self, domain: &str) -> Result<Change, DkimError> {
        let change = self.keys.ensure(domain, crate::now());
        self.forget();
        change
    }

    pub fn rotate(&self, domain: &str) -> Result<Change, DkimError> {
        let change = self.keys.rotate(domain, crate::now());
        self.forget();
        change
    }

    pub fn activate(&self, domain: &str) -> Result<Change, DkimError> {
        let change = self.keys.activate(domain);
        self.forget();
        change
    }

    pub fn retire(&self, domain: &str) -> Result<Change, DkimError> {
        let change = self.keys.retire(domain);
        self.forget();
        change
    }

    /// The keys of `domain` or of its closest parent that has keys.
    fn keys_for(&self, domain: &str) -> Result<Option<Arc<DomainKeys>>, DkimError> {
        let mut name = domain.trim_end_matches('.').to_ascii_lowercase();
        loop {
            if coimail_directory::canonical_domain(&name).is_ok()
                && let Some(found) = self.cached(&name)?
            {
                return Ok(Some(found));
            }
            match name.split_once('.') {
                // Never climb to a top-level domain.
                Some((_, parent)) if parent.contains('.') => name = parent.to_owned(),
                _ => return Ok(None),
            }
        }
    }

    fn cached(&self, domain: &str) -> Result<Option<Arc<DomainKeys>>, DkimError> {
        let poisoned = || DkimError::Sign("key cache poisoned".into());
        if let Some(hit) = self.loaded.lock().map_err(|_| poisoned())?.get(domain) {
            return Ok(hit.clone());
        }
        let loaded = DomainKeys::load(&self.keys, domain)?.map(Arc::new);
        self.loaded.lock().map_err(|_| poisoned())?.insert(domain.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// The `DKIM-Signature` header fields to put on top of `message` from
    /// `sender` (the envelope's reverse path, empty for DSNs), or `None`
    /// when no domain of the message has keys. Blocking: file reads and
    /// two signatures over the whole body.
    pub fn sign(&self, message: &[u8], sender: &str) -> Result<Option<Vec<u8>>, DkimError> {
        let from = mail_parser::MessageParser::new()
            .parse_headers(message)
            .and_then(|m| m.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_owned));
        let domains = [from.as_deref(), Some(sender)]
            .into_iter()
            .flatten()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_owned()));
        for domain in domains {
            if let Some(keys) = self.keys_for(&domain)? {
                return keys.sign(message).map(Some);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
