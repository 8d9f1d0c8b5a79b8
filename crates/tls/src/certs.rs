//! [`Certs`]: the certificate resolver of every TLS listener, with certificates that can be
//! replaced while the daemon runs.
//!
//! Two slots: the certificate from the files named in `[tls]` and the one ACME issued. The ACME
//! one, once there, is the default and serves its names; the file one serves the rest (a client
//! without SNI included: Postfix sends none, and rustls' own SNI resolver would send no
//! certificate at all). Installing replaces an `Arc` under a lock: handshakes already past
//! certificate selection keep the key they got, new ones see the new certificate.
//!
//! TLS-ALPN-01 (RFC 8737 §3): a ClientHello offering `acme-tls/1` is answered with the
//! challenge certificate of its server name, and never with a real certificate; with no
//! challenge pending for that name the handshake fails.

use crate::{ACME_TLS_ALPN, CertInfo};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

/// Where a served certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// PEM files (`[tls] cert` and `key`), reloaded on SIGHUP and `coimail tls reload`.
    File { cert: PathBuf, key: PathBuf },
    /// Issued by the ACME CA and kept in the data dir.
    Acme { cert: PathBuf },
}

impl Source {
    fn is_acme(&self) -> bool {
        matches!(self, Source::Acme { .. })
    }
}

/// One certificate being served.
#[derive(Debug, Clone)]
pub struct Served {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    pub source: Source,
}

#[derive(Default)]
struct State {
    file: Option<Arc<Served>>,
    acme: Option<Arc<Served>>,
    /// Derived from the two slots on each change: lowercased SAN → key.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl State {
    fn rebuild(&mut self) {
        self.by_name.clear();
        // ACME last, so its names win over the file certificate's.
        for served in [&self.file, &self.acme].into_iter().flatten() {
            for name in &served.info.names {
                self.by_name.insert(name.clone(), Arc::clone(&served.key));
            }
        }
        self.default = self.acme.as_ref().or(self.file.as_ref()).map(|s| Arc::clone(&s.key));
    }
}

/// The certificates every listener serves. Share it as `Arc<Certs>`; it is the rustls
/// certificate resolver of the configs [`crate::TlsAcceptor::new`] builds.
#[derive(Default)]
pub struct Certs {
    state: RwLock<State>,
    /// TLS-ALPN-01 challenge certificates by lowercased name.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: never key material.
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Certs").field("names", &state.by_name.keys().collect::<Vec<_>>()).finish()
    }
}

impl Certs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `served` from now on in the slot of its source, replacing what was there.
    pub fn install(&self, served: Served) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let slot = if served.source.is_acme() { &mut state.acme } else { &mut state.file };
        *slot = Some(Arc::new(served));
        state.rebuild();
    }

    /// The certificates being served: the file one first, then the ACME one.
    pub fn served(&self) -> Vec<Arc<Served>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        [&state.file, &state.acme].into_iter().flatten().cloned().collect()
    }

    /// The ACME certificate being served, if any.
    pub fn acme(&self) -> Option<Arc<Served>> {
        self.state.read().unwrap_or_else(PoisonError::into_inner).acme.clone()
    }

    /// Whether any certificate is installed (implicit TLS and STARTTLS need one).
    pub fn is_empty(&self) -> bool {
        self.state.read().unwrap_or_else(PoisonError::into_inner).default.is_none()
    }

    /// Answers TLS-ALPN-01 validations of `name` with `key` until [`Certs::clear_challenge`].
    pub fn set_challenge(&self, name: &str, key: Arc<CertifiedKey>) {
        let mut map = self.challenges.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(name.to_ascii_lowercase(), key);
    }

    pub fn clear_challenge(&self, name: &str) {
        let mut map = self.challenges.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(&name.to_ascii_lowercase());
    }

    fn challenge(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.challenges.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// The certificate for a ClientHello naming `server_name` (lowercased), not a validation.
    fn for_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = server_name {
            if let Some(key) = state.by_name.get(name) {
                return Some(Arc::clone(key));
            }
            let wildcard = name.split_once('.').and_then(|(_, rest)| state.by_name.get(&format!("*.{rest}")));
            if let Some(key) = wildcard {
                return Some(Arc::clone(key));
            }
        }
        state.default.clone()
    }
}

/// Whether a ClientHello is an ACME TLS-ALPN-01 validation.
pub(crate) fn is_validation(hello: &ClientHello<'_>) -> bool {
    hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        if is_validation(&hello) {
            return name.and_then(|n| self.challenge(&n));
        }
        self.for_name(name.as_deref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A self-signed certificate for `names`, ready to install.
    pub(crate) fn served(names: &[&str], source: Source) -> Served {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = crate::provider().key_provider.load_private_key(der).unwrap();
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let info = CertInfo::from_der(&chain[0]).unwrap();
        Served { key: Arc::new(CertifiedKey::new(chain, signing)), info, source }
    }

    pub(crate) fn file() -> Source {
        Source::File { cert: "c.pem".into(), key: "k.pem".into() }
    }

    #[test]
    fn acme_names_win_and_the_file_certificate_serves_the_rest() {
        let certs = Certs::new();
        assert!(certs.is_empty() && certs.for_name(Some("x")).is_none());
        let f = served(&["localhost", "mail.example.org"], file());
        let f_key = Arc::clone(&f.key);
        certs.install(f);
        assert!(Arc::ptr_eq(&certs.for_name(None).unwrap(), &f_key));
        let a = served(&["mail.example.org", "*.example.org"], Source::Acme { cert: "a.pem".into() });
        let a_key = Arc::clone(&a.key);
        certs.install(a);
        assert!(Arc::ptr_eq(&certs.for_name(Some("mail.example.org")).unwrap(), &a_key));
        assert!(Arc::ptr_eq(&certs.for_name(Some("autoconfig.example.org")).unwrap(), &a_key));
        assert!(Arc::ptr_eq(&certs.for_name(Some("localhost")).unwrap(), &f_key));
        // No SNI, or a name nobody has: the ACME certificate is the default once there.
        assert!(Arc::ptr_eq(&certs.for_name(None).unwrap(), &a_key));
        assert!(Arc::ptr_eq(&certs.for_name(Some("other.test")).unwrap(), &a_key));
        assert_eq!(certs.served().len(), 2);
        // A reload replaces only its own slot.
        let f2 = served(&["localhost"], file());
        let f2_key = Arc::clone(&f2.key);
        certs.install(f2);
        assert!(Arc::ptr_eq(&certs.for_name(Some("localhost")).unwrap(), &f2_key));
        assert!(Arc::ptr_eq(&certs.acme().unwrap().key, &a_key));
    }
}
