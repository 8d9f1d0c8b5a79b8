//! The client TLS config for outbound STARTTLS, and the certificate check
//! MTA-STS asks for.
//!
//! Opportunistic TLS (RFC 3207, as every MTA does it without DANE or
//! MTA-STS): encrypt whenever the server offers STARTTLS, but do not
//! authenticate it — self-signed and mismatched certificates are accepted,
//! because refusing them would only push the message to plaintext.
//! Handshake signatures are still verified, so the session is bound to the
//! certificate the server sent. One explicit crypto provider (aws-lc-rs).
//!
//! Where a policy wants an authenticated server (MTA-STS, RFC 8461 §4.2),
//! the chain the server sent in that same handshake is checked afterwards
//! with [`Pki`] (the platform's web PKI roots plus `[queue]
//! tls_extra_roots`), before MAIL: the server has proven it holds the key
//! of that certificate, so checking it after the handshake is as strong as
//! refusing it during, and the result names exactly what was wrong for the
//! queue and the TLS report. [`Pki`] is also the verifier of the HTTPS
//! policy fetch.

use crate::DeliveryError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

#[derive(Debug)]
struct Opportunistic {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Opportunistic {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) fn opportunistic_connector() -> Result<TlsConnector, DeliveryError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Opportunistic { provider: provider.clone() });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Certificate checks against the web PKI: the platform's roots plus the
/// configured extra ones (a private CA, or the tests' own).
#[derive(Clone)]
pub(crate) struct Pki {
    verifier: Arc<rustls_platform_verifier::Verifier>,
    provider: Arc<CryptoProvider>,
}

/// Why a certificate is not valid for a host, in RFC 8460 §4.3.1's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertFailure {
    /// `certificate-host-mismatch`, `certificate-expired`,
    /// `certificate-not-trusted` or `validation-failure`.
    pub result_type: &'static str,
    pub detail: String,
}

impl Pki {
    /// `extra_roots`: a PEM file of CA certificates to trust besides the
    /// platform's; none when `None`.
    pub(crate) fn new(extra_roots: Option<&Path>) -> Result<Pki, DeliveryError> {
        let roots = match extra_roots {
            Some(path) => CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DeliveryError::Tls(format!("reading {}: {e}", path.display())))?,
            None => Vec::new(),
        };
        if extra_roots.is_some() && roots.is_empty() {
            return Err(DeliveryError::Tls("tls_extra_roots holds no certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone()).map_err(|e| {
                DeliveryError::Tls(format!(
                    "MTA-STS certificate checks: {e} (install the system's CA certificates, \
                     e.g. the ca-certificates package, or set [queue] mta_sts = false)"
                ))
            })?;
        Ok(Pki { verifier: Arc::new(verifier), provider })
    }

    /// A client config that refuses servers without a valid certificate.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, DeliveryError> {
        Ok(ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| DeliveryError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone())
            .with_no_client_auth())
    }

    /// Whether the chain `conn`'s server sent is valid for `host`.
    pub(crate) fn check(&self, conn: &ClientConnection, host: &str) -> Result<(), CertFailure> {
        let failure = |result_type, detail: String| CertFailure { result_type, detail };
        let Some((end_entity, intermediates)) = conn.peer_certificates().and_then(|c| c.split_first()) else {
            return Err(failure("validation-failure", "the server sent no certificate".into()));
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| failure("validation-failure", format!("{host} is not a host name: {e}")))?;
        match self.verifier.verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now()) {
            Ok(_) => Ok(()),
            Err(e) => Err(failure(result_type(&e), e.to_string())),
        }
    }
}

/// RFC 8460 §4.3.1 result type of a rustls verification error.
pub(crate) fn result_type(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate-host-mismatch"
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => "certificate-expired",
            CertificateError::UnknownIssuer | CertificateError::BadSignature | CertificateError::Revoked => {
                "certificate-not-trusted"
            }
            _ => "validation-failure",
        },
        _ => "validation-failure",
    }
}
