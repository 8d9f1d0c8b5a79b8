//! coimail-tls: the certificates every TLS listener serves, swappable while the daemon runs.
//!
//! # Layout
//! * [`certs`]: [`Certs`], the one certificate resolver shared by IMAP, SMTP and HTTPS. It holds
//!   a certificate from files and one from ACME; installing a new one affects only handshakes
//!   that start afterwards (a connection keeps the `Arc<CertifiedKey>` it was given). It also
//!   answers ACME TLS-ALPN-01 validations (RFC 8737) with the challenge certificate of the name.
//! * [`acceptor`]: [`TlsAcceptor`], what the protocol crates accept connections with. It reads
//!   the ClientHello first so that a validation connection gets the `acme-tls/1` protocol
//!   negotiated and is closed right after its handshake, while every other client keeps the
//!   ordinary config (no ALPN is imposed on mail clients).
//! * [`info`]: names and dates of a certificate, for `coimail tls status` and renewal.
//!
//! Exactly one crypto provider, aws-lc-rs, passed explicitly ([`provider`]); enabling ring as
//! well makes rustls panic when a config is built.

pub mod acceptor;
pub mod certs;
pub mod info;

pub use acceptor::{AcmeValidation, TlsAcceptor};
pub use certs::{Certs, Served, Source};
pub use info::CertInfo;

use std::sync::Arc;

/// The ALPN protocol of TLS-ALPN-01 validation connections (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The one crypto provider we use.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
