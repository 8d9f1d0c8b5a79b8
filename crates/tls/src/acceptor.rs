//! [`TlsAcceptor`]: the TLS handshake of every listener (implicit TLS and STARTTLS).
//!
//! rustls picks the ALPN protocol from the config alone, and a config that lists protocols
//! refuses clients offering none of them (`no_application_protocol`). Listing `acme-tls/1` in
//! the config every client gets would therefore break mail clients that offer `imap` or `smtp`.
//! So the ClientHello is read first: a validation connection (RFC 8737) gets a config that
//! negotiates `acme-tls/1`, finishes its handshake and is closed — it never reaches the
//! protocol; everyone else gets the ordinary config. Both configs resolve through the same
//! [`Certs`].

use crate::certs::is_validation;
use crate::{ACME_TLS_ALPN, Certs};
use rustls::ServerConfig;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

/// The error [`TlsAcceptor::accept`] ends a TLS-ALPN-01 validation connection with.
#[derive(Debug, thiserror::Error)]
#[error("ACME TLS-ALPN-01 validation answered; connection closed after the handshake")]
pub struct AcmeValidation;

/// Accepts TLS connections; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    /// Set when the certificates come from [`Certs`], which can answer validations.
    validation: Option<Arc<ServerConfig>>,
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    /// A plain acceptor over a fixed config (tests): no TLS-ALPN-01 answers.
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor { config, validation: None }
    }
}

impl TlsAcceptor {
    /// An acceptor serving `certs` (TLS 1.2 and 1.3, no client certificates, no ALPN), which
    /// also answers TLS-ALPN-01 validations with the challenge certificates in `certs`.
    pub fn new(certs: Arc<Certs>) -> Result<Self, rustls::Error> {
        let build = || -> Result<ServerConfig, rustls::Error> {
            Ok(ServerConfig::builder_with_provider(crate::provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone()))
        };
        let config = build()?;
        let mut validation = build()?;
        validation.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        Ok(TlsAcceptor { config: Arc::new(config), validation: Some(Arc::new(validation)) })
    }

    /// The same certificates, negotiating `protocols` with ordinary clients (HTTPS: `h2`,
    /// `http/1.1`); validations are still answered.
    pub fn with_alpn(&self, protocols: &[&[u8]]) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor { config: Arc::new(config), validation: self.validation.clone() }
    }

    /// The config ordinary clients get, for listeners that do their own handshakes; they do
    /// not answer validations, which need [`TlsAcceptor::accept`].
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Performs the server side of a handshake. A TLS-ALPN-01 validation connection is answered
    /// and closed, and comes back as an error ([`AcmeValidation`]) the caller treats like any
    /// failed handshake.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(validation) = &self.validation else {
            return tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config)).accept(io).await;
        };
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        if !is_validation(&start.client_hello()) {
            return start.into_stream(Arc::clone(&self.config)).await;
        }
        let name = start.client_hello().server_name().map(str::to_owned);
        let mut tls = start.into_stream(Arc::clone(validation)).await?;
        // The validation server only reads the certificate; nothing else is spoken here.
        let _ = tls.shutdown().await;
        tracing::info!(name = name.as_deref().unwrap_or(""), "answered an ACME TLS-ALPN-01 validation");
        Err(io::Error::new(io::ErrorKind::ConnectionAborted, AcmeValidation))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::certs::tests::{file, served};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Trusts nothing but records what the server sent.
    #[derive(Debug)]
    struct Record(Arc<std::sync::Mutex<Vec<rustls::pki_types::CertificateDer<'static>>>>);
    impl rustls::client::danger::ServerCertVerifier for Record {
        fn verify_server_cert(
            &self,
            end_entity: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            self.0.lock().unwrap().push(end_entity.clone().into_owned());
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            crate::provider().signature_verification_algorithms.supported_schemes()
        }
    }

    /// Connects with `alpn`; returns the certificate the server sent, the negotiated protocol,
    /// and what the server's accept returned.
    async fn connect(
        acceptor: &TlsAcceptor,
        alpn: &[&[u8]],
    ) -> (Option<Vec<u8>>, Option<Vec<u8>>, io::Result<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = acceptor.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await?;
            tls.write_all(b"hello").await?;
            tls.shutdown().await?;
            Ok(b"hello".to_vec())
        });
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut config = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Record(seen.clone())))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("mail.example.org").unwrap();
        let result = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await;
        let (cert, protocol) = match result {
            Ok(mut tls) => {
                let protocol = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                let mut buf = Vec::new();
                let _ = tls.read_to_end(&mut buf).await;
                (seen.lock().unwrap().first().map(|c| c.to_vec()), protocol)
            }
            Err(_) => (None, None),
        };
        (cert, protocol, server.await.unwrap())
    }

    #[tokio::test]
    async fn validations_get_the_challenge_certificate_and_are_closed() {
        let certs = Arc::new(Certs::new());
        let real = served(&["mail.example.org"], file());
        let real_der = real.key.cert[0].to_vec();
        certs.install(real);
        let acceptor = TlsAcceptor::new(certs.clone()).unwrap();

        // A mail client offering its own protocol is served, with no ALPN imposed.
        let (cert, protocol, accepted) = connect(&acceptor, &[b"imap"]).await;
        assert_eq!(cert.as_deref(), Some(&real_der[..]));
        assert_eq!(protocol, None);
        assert_eq!(accepted.unwrap(), b"hello");

        // A validation with no challenge pending fails: the real certificate is never sent.
        let (cert, _, accepted) = connect(&acceptor, &[ACME_TLS_ALPN]).await;
        assert_eq!(cert, None);
        assert!(accepted.is_err());

        let challenge = served(&["mail.example.org"], file());
        let challenge_der = challenge.key.cert[0].to_vec();
        certs.set_challenge("Mail.Example.org", challenge.key);
        let (cert, protocol, accepted) = connect(&acceptor, &[ACME_TLS_ALPN]).await;
        assert_eq!(cert.as_deref(), Some(&challenge_der[..]));
        assert_eq!(protocol.as_deref(), Some(ACME_TLS_ALPN));
        let err = accepted.unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<AcmeValidation>()), "{err}");

        // Ordinary clients still get the real one while a challenge is pending.
        let (cert, _, accepted) = connect(&acceptor, &[]).await;
        assert_eq!(cert.as_deref(), Some(&real_der[..]));
        assert!(accepted.is_ok());
        certs.clear_challenge("mail.example.org");
        let (cert, _, _) = connect(&acceptor, &[ACME_TLS_ALPN]).await;
        assert_eq!(cert, None);
    }

    #[tokio::test]
    async fn new_handshakes_get_a_swapped_certificate() {
        let certs = Arc::new(Certs::new());
        let first = served(&["mail.example.org"], file());
        let first_der = first.key.cert[0].to_vec();
        certs.install(first);
        let acceptor = TlsAcceptor::new(certs.clone()).unwrap();
        let (cert, _, _) = connect(&acceptor, &[]).await;
        assert_eq!(cert.as_deref(), Some(&first_der[..]));
        let second = served(&["mail.example.org"], file());
        let second_der = second.key.cert[0].to_vec();
        certs.install(second);
        let (cert, _, accepted) = connect(&acceptor, &[]).await;
        assert_eq!(cert.as_deref(), Some(&second_der[..]));
        assert!(accepted.is_ok());
    }

    #[tokio::test]
    async fn https_protocols_and_validations_on_one_acceptor() {
        let certs = Arc::new(Certs::new());
        certs.install(served(&["mail.example.org"], file()));
        let https = TlsAcceptor::new(certs.clone()).unwrap().with_alpn(&[b"h2", b"http/1.1"]);
        let (_, protocol, accepted) = connect(&https, &[b"http/1.1"]).await;
        assert_eq!(protocol.as_deref(), Some(&b"http/1.1"[..]));
        assert!(accepted.is_ok());
        let challenge = served(&["mail.example.org"], file());
        let challenge_der = challenge.key.cert[0].to_vec();
        certs.set_challenge("mail.example.org", challenge.key);
        let (cert, protocol, accepted) = connect(&https, &[ACME_TLS_ALPN]).await;
        assert_eq!((cert.as_deref(), protocol.as_deref()), (Some(&challenge_der[..]), Some(ACME_TLS_ALPN)));
        assert!(accepted.is_err());
    }
}
