//! Challenge responses: TLS-ALPN-01 certificates (RFC 8737) and the HTTP-01 token store
//! (RFC 8555 §8.3).

use super::AcmeError;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// The self-signed certificate a TLS-ALPN-01 validation of `name` must see (RFC 8737 §3): that
/// one name as its only SAN and the critical acmeIdentifier extension holding the SHA-256
/// digest of the key authorization. A fresh key each time; it never leaves memory.
pub fn tls_alpn01_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = coimail_tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| AcmeError::Other(format!("challenge key: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)))
}

/// Key authorizations of pending HTTP-01 challenges by token, for the HTTP listener to answer
/// `GET /.well-known/acme-challenge/{token}` on port 80. Cheap to clone; all clones share.
#[derive(Clone, Default)]
pub struct Http01Store {
    tokens: Arc<RwLock<HashMap<String, String>>>,
}

impl std::fmt::Debug for Http01Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key authorizations prove control of the account key's domains: not for logs.
        let n = self.tokens.read().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Http01Store").field("pending", &n).finish()
    }
}

impl Http01Store {
    /// The body to answer a request for `token` with (RFC 8555 §8.3), while its challenge is
    /// pending; `None` for unknown tokens (answer 404).
    pub fn key_authorization(&self, token: &str) -> Option<String> {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }

    pub(crate) fn insert(&self, token: &str, key_authorization: &str) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        tokens.insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(crate) fn remove(&self, token: &str) {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner).remove(token);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn http01_tokens_come_and_go() {
        let store = Http01Store::default();
        assert_eq!(store.key_authorization("tok"), None);
        let shared = store.clone();
        shared.insert("tok", "tok.thumbprint");
        assert_eq!(store.key_authorization("tok").as_deref(), Some("tok.thumbprint"));
        assert_eq!(store.key_authorization("other"), None);
        assert!(!format!("{store:?}").contains("thumbprint"));
        shared.remove("tok");
        assert_eq!(store.key_authorization("tok"), None);
    }

    #[test]
    fn alpn_certificate_has_one_name_and_the_critical_acme_identifier() {
        let digest = [7u8; 32];
        let key = tls_alpn01_certificate("mail.example.org", &digest).unwrap();
        let info = coimail_tls::CertInfo::from_der(&key.cert[0]).unwrap();
        assert_eq!(info.names, ["mail.example.org"]);
        // id-pe-acmeIdentifier 1.3.6.1.5.5.7.1.31, critical, OCTET STRING(32) of the digest.
        let der: &[u8] = key.cert[0].as_ref();
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der.windows(oid.len()).position(|w| w == oid).unwrap() + oid.len();
        assert_eq!(&der[at..at + 3], [0x01, 0x01, 0xff], "critical");
        assert_eq!(&der[at + 3..at + 7], [0x04, 0x22, 0x04, 0x20]);
        assert_eq!(&der[at + 7..at + 39], digest);
    }
}
