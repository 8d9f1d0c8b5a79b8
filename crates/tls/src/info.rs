//! What `coimail tls status` shows of a certificate, and what renewal is scheduled from.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names and validity of an end-entity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    /// DNS names and IP addresses of the subjectAltName extension, lowercased.
    pub names: Vec<String>,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// The certificate could not be parsed as X.509.
#[derive(Debug, thiserror::Error)]
#[error("cannot parse the certificate: {0}")]
pub struct InfoError(String);

impl CertInfo {
    pub fn from_der(der: &CertificateDer<'_>) -> Result<CertInfo, InfoError> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| InfoError(e.to_string()))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => names.push(n.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            names.push(std::net::Ipv4Addr::from(v4).to_string());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            names.push(std::net::Ipv6Addr::from(v6).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            names,
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Whether the certificate is valid for `name` (exactly, or through a `*.` wildcard one
    /// label deep).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        self.names.iter().any(|n| *n == name || Some(n) == wildcard.as_ref())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["Mail.Example.org".into(), "*.example.net".into(), "127.0.0.1".into()])
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 4, 1);
        params.distinguished_name.push(rcgen::DnType::CommonName, "mail.example.org");
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_der(cert.der()).unwrap();
        assert_eq!(info.names, ["mail.example.org", "*.example.net", "127.0.0.1"]);
        assert!(info.subject.contains("CN=mail.example.org"), "{}", info.subject);
        assert_eq!(info.not_before, 1_767_225_600);
        assert_eq!(info.not_after, 1_775_001_600);
        assert!(info.covers("MAIL.example.org") && info.covers("autoconfig.example.net"));
        assert!(!info.covers("example.net") && !info.covers("a.b.example.net") && !info.covers("example.org"));
        assert!(CertInfo::from_der(&CertificateDer::from(vec![1, 2, 3])).is_err());
    }
}
