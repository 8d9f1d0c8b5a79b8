//! TLS server setup: loading certificates and keys, and making self-signed ones.
//!
//! Three decisions shape this module (see `docs/deps.md`):
//!
//! * **Exactly one crypto provider, aws-lc-rs, passed explicitly.** Configs are built with
//!   [`rustls::ServerConfig::builder_with_provider`] instead of relying on a process-wide
//!   default provider, so it does not matter which features other crates enable on rustls.
//! * **Our own certificate resolver with a default certificate** ([`coimail_tls::Certs`]).
//!   rustls' `ResolvesServerCertUsingSni` sends no certificate when the client sends no server
//!   name (Postfix does not send SNI by default, and no client sends it when connecting by IP
//!   address), which aborts the handshake. Its certificates can be replaced while the daemon
//!   runs (SIGHUP, `coimail tls reload`, ACME renewals).
//! * **PEM via rustls-pki-types' [`PemObject`]**, not the archived rustls-pemfile
//!   (RUSTSEC-2025-0134). Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
//!
//! Every error names the file it concerns, so a misconfigured path is obvious from the log.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coimail_tls::{CertInfo, Certs, Served, Source, TlsAcceptor, provider};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why loading or writing TLS material failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("invalid PEM in {what} {}: {source}", path.display())]
    Pem {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM error.
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("no certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no PKCS#8, PKCS#1 or SEC1 private key.
    #[error("no private key in {}", .0.display())]
    NoPrivateKey(PathBuf),
    /// The private key could not be used (unsupported algorithm or malformed).
    #[error("unusable private key in {}: {source}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The end-entity certificate could not be parsed.
    #[error("invalid certificate in {}: {source}", path.display())]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The key does not belong to the (first) certificate.
    #[error("certificate and key do not match: {} / {}", cert.display(), key.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls rejected the configuration.
    #[error("TLS configuration error: {0}")]
    Config(#[from] rustls::Error),
    /// `write_self_signed` was given no host name.
    #[error("no host name given for the self-signed certificate")]
    NoHostnames,
    /// Certificate generation failed (for example an invalid host name).
    #[error("cannot generate self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// `write_self_signed` would overwrite an existing file.
    #[error("refusing to overwrite existing {}", .0.display())]
    Exists(PathBuf),
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_bytes = read("certificate", path)?;
    let certs = CertificateDer::pem_slice_iter(&pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what: "certificate", path: path.to_owned(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem_bytes = read("private key", path)?;
    match PrivateKeyDer::from_pem_slice(&pem_bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey(path.to_owned())),
        Err(source) => Err(TlsError::Pem { what: "private key", path: path.to_owned(), source }),
    }
}

/// Loads the chain and key and checks that the key belongs to the first certificate.
fn load_certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|source| TlsError::BadKey { path: key.to_owned(), source })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot report its public key; nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(TlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() })
        }
        Err(source) => Err(TlsError::BadCertificate { path: cert.to_owned(), source }),
    }
}

/// Loads a PEM chain + PEM key as a certificate to install in [`Certs`], with the names and
/// dates of its first certificate. Nothing is installed on error: the caller keeps serving
/// what it had.
pub fn load_served(cert: &Path, key: &Path, source: Source) -> Result<Served, TlsError> {
    let certified = load_certified_key(cert, key, &provider())?;
    let first = certified.cert.first().ok_or_else(|| TlsError::NoCertificate(cert.to_owned()))?;
    let info = CertInfo::from_der(first).map_err(|e| TlsError::BadCertificate {
        path: cert.to_owned(),
        source: rustls::Error::General(e.to_string()),
    })?;
    Ok(Served { key: Arc::new(certified), info, source })
}

/// Loads the certificate files of `[tls]` (for their source).
pub fn load_file_pair(cert: &Path, key: &Path) -> Result<Served, TlsError> {
    load_served(cert, key, Source::File { cert: cert.to_owned(), key: key.to_owned() })
}

/// Builds a server config (TLS 1.2 and 1.3, no client auth, no ALPN) serving the PEM chain in
/// `cert` with the PEM key in `key` (PKCS#8, PKCS#1 RSA or SEC1 EC) to every client, with or
/// without SNI.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(Arc::clone(load_acceptor(cert, key)?.config()))
}

/// Loads a PEM chain + PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC) and returns a ready acceptor
/// whose certificate can later be replaced through [`Certs`].
pub fn load_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs = Arc::new(Certs::new());
    certs.install(load_file_pair(cert, key)?);
    Ok(TlsAcceptor::new(certs)?)
}

/// Writes a self-signed certificate for `hostnames` (all become SANs, IP addresses as IP SANs;
/// the first is also the CN) and its PKCS#8 key as PEM. The key gets mode 0600, the
/// certificate 0644; missing parent directories are created. Existing files are left alone
/// ([`TlsError::Exists`]) unless `overwrite`, in which case each file is replaced atomically.
pub fn write_self_signed(hostnames: &[String], cert: &Path, key: &Path, overwrite: bool) -> Result<(), TlsError> {
    let first = hostnames.first().ok_or(TlsError::NoHostnames)?;
    if !overwrite {
        // Check both first so we never leave a key without its certificate behind.
        for path in [cert, key] {
            if path.symlink_metadata().is_ok() {
                return Err(TlsError::Exists(path.to_owned()));
            }
        }
    }
    let mut params = rcgen::CertificateParams::new(hostnames.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, first.as_str());
    let key_pair = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key_pair)?;

    write_file(key, key_pair.serialize_pem().as_bytes(), 0o600, overwrite)?;
    write_file(cert, certificate.pem().as_bytes(), 0o644, overwrite)?;
    Ok(())
}

/// Writes `data` to `path` with `mode`, creating parent directories. Without `overwrite` the
/// file is created exclusively; with it, a temporary sibling is written, synced and renamed
/// over `path`.
pub(crate) fn write_file(path: &Path, data: &[u8], mode: u32, overwrite: bool) -> Result<(), TlsError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let write_err = |p: &Path| {
        let p = p.to_owned();
        move |source| TlsError::Write { path: p, source }
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(write_err(parent))?;

    let target = if overwrite {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(format!(".tmp.{}", std::process::id()));
        parent.join(name)
    } else {
        path.to_owned()
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&target).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists && !overwrite {
            TlsError::Exists(path.to_owned())
        } else {
            TlsError::Write { path: target.clone(), source }
        }
    })?;
    let result = (|| {
        // The umask may have narrowed `mode`; a re-used temp file may have had another mode.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()
    })();
    drop(file);
    if let Err(source) = result {
        let _ = fs::remove_file(&target);
        return Err(TlsError::Write { path: target, source });
    }
    if overwrite && let Err(source) = fs::rename(&target, path) {
        let _ = fs::remove_file(&target);
        return Err(TlsError::Write { path: path.to_owned(), source });
    }
    // Make the new directory entry durable too.
    fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(write_err(parent))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rustls_pki_types::ServerName;
    use std::net::{IpAddr, Ipv4Addr};
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    struct Pair {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
    }

    fn self_signed(names: &[&str]) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls/cert.pem");
        let key = dir.path().join("tls/key.pem");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        write_self_signed(&names, &cert, &key, false).unwrap();
        Pair { _dir: dir, cert, key }
    }

    fn client_config(cert: &Path, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// Handshakes with a server using `acceptor`; returns the SNI the server saw and the
    /// negotiated protocol version.
    async fn handshake(
        acceptor: TlsAcceptor,
        client: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> (Option<String>, rustls::ProtocolVersion) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.shutdown().await.unwrap();
            sni
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = TlsConnector::from(client).connect(name, tcp).await.unwrap();
        let version = tls.get_ref().1.protocol_version().unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        (server.await.unwrap(), version)
    }

    #[tokio::test]
    async fn handshake_with_and_without_sni() {
        let pair = self_signed(&["localhost", "127.0.0.1"]);
        let acceptor = load_acceptor(&pair.cert, &pair.key).unwrap();

        let client = client_config(&pair.cert, rustls::DEFAULT_VERSIONS);
        let name = ServerName::try_from("localhost").unwrap();
        let (sni, version) = handshake(acceptor.clone(), client.clone(), name).await;
        assert_eq!(sni.as_deref(), Some("localhost"));
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);

        // rustls sends no SNI for an IP address: the default certificate must be served.
        let ip = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let (sni, _) = handshake(acceptor.clone(), client, ip.clone()).await;
        assert_eq!(sni, None);

        // TLS 1.2 is accepted too, also without SNI.
        let client12 = client_config(&pair.cert, &[&rustls::version::TLS12]);
        let (sni, version) = handshake(acceptor, client12, ip).await;
        assert_eq!(sni, None);
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    }

    #[test]
    fn self_signed_modes_and_names() {
        let pair = self_signed(&["mail.example.org", "example.org"]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&pair.key), 0o600);
        assert_eq!(mode(&pair.cert), 0o644);
        let pem = fs::read_to_string(&pair.cert).unwrap();
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        // SAN dNSNames and the CN are stored as plain ASCII in the DER.
        let bytes: &[u8] = der.as_ref();
        assert!(bytes.windows(16).any(|w| w == b"mail.example.org"));
        assert!(bytes.windows(11).any(|w| w == b"example.org"));
        assert!(server_config(&pair.cert, &pair.key).is_ok());
    }

    #[test]
    fn refuses_to_overwrite() {
        let pair = self_signed(&["localhost"]);
        let names = vec!["localhost".to_string()];
        let old_cert = fs::read(&pair.cert).unwrap();
        let old_key = fs::read(&pair.key).unwrap();

        let err = write_self_signed(&names, &pair.cert, &pair.key, false).unwrap_err();
        assert!(matches!(err, TlsError::Exists(ref p) if *p == pair.cert), "{err}");
        assert!(err.to_string().contains(&*pair.cert.to_string_lossy()), "{err}");
        assert_eq!(fs::read(&pair.cert).unwrap(), old_cert);
        assert_eq!(fs::read(&pair.key).unwrap(), old_key);

        // Only the key exists: still refused, and no certificate is written.
        let other_cert = pair.cert.with_file_name("other.pem");
        let err = write_self_signed(&names, &other_cert, &pair.key, false).unwrap_err();
        assert!(matches!(err, TlsError::Exists(ref p) if *p == pair.key), "{err}");
        assert!(!other_cert.exists());

        write_self_signed(&names, &pair.cert, &pair.key, true).unwrap();
        assert_ne!(fs::read(&pair.cert).unwrap(), old_cert);
        assert_ne!(fs::read(&pair.key).unwrap(), old_key);
        let mode = fs::metadata(&pair.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        server_config(&pair.cert, &pair.key).unwrap();
        let leftovers: Vec<_> =
            fs::read_dir(pair.cert.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");

        assert!(matches!(write_self_signed(&[], &other_cert, &pair.key, true), Err(TlsError::NoHostnames)));
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let a = self_signed(&["localhost"]);
        let b = self_signed(&["localhost"]);
        let err = server_config(&a.cert, &b.key).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("certificate and key do not match"), "{msg}");
        assert!(msg.contains(&*b.key.to_string_lossy()), "{msg}");
        assert!(msg.contains(&*a.cert.to_string_lossy()), "{msg}");
    }

    #[test]
    fn missing_files_are_named() {
        let pair = self_signed(&["localhost"]);
        let missing = pair.cert.with_file_name("nope.pem");
        let err = server_config(&missing, &pair.key).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("cannot read certificate {}: ", missing.display())), "{msg}");
        let Err(err) = load_acceptor(&pair.cert, &missing) else { panic!("missing key accepted") };
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("cannot read private key {}: ", missing.display())), "{msg}");
    }

    #[test]
    fn garbage_pem_is_rejected() {
        let pair = self_signed(&["localhost"]);
        let dir = pair.cert.parent().unwrap();
        let junk = dir.join("junk.pem");
        let broken = dir.join("broken.pem");
        fs::write(&junk, "hello, I am not PEM\n").unwrap();
        fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\n!!!not base64!!!\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let bad_der = dir.join("bad_der.pem");
        fs::write(
            &bad_der,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();

        let named = |err: TlsError, path: &Path| {
            let msg = err.to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
            err
        };
        let e = named(server_config(&junk, &pair.key).unwrap_err(), &junk);
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        let e = named(server_config(&pair.cert, &junk).unwrap_err(), &junk);
        assert!(matches!(e, TlsError::NoPrivateKey(_)), "{e}");
        assert!(e.to_string().starts_with("no private key in "), "{e}");
        // A certificate file is no key file.
        let e = named(server_config(&pair.cert, &pair.cert).unwrap_err(), &pair.cert);
        assert!(matches!(e, TlsError::NoPrivateKey(_)), "{e}");
        let e = named(server_config(&broken, &pair.key).unwrap_err(), &broken);
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");
        let e = named(server_config(&pair.cert, &broken).unwrap_err(), &broken);
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");
        let e = named(server_config(&pair.cert, &bad_der).unwrap_err(), &bad_der);
        assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
        let e = named(server_config(&bad_der, &pair.key).unwrap_err(), &bad_der);
        assert!(matches!(e, TlsError::BadCertificate { .. }), "{e}");
    }

    /// Splits one DER TLV off `der`: (tag, contents, rest). Short and long lengths only.
    fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1] as usize);
        let (len, start) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = der[2..2 + n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &der[start..start + len], &der[start + len..])
    }

    /// The inner key of a PKCS#8 PrivateKeyInfo: PKCS#1 for RSA, SEC1 for EC.
    fn unwrap_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let (_, info, _) = tlv(pkcs8); // SEQUENCE
        let (_, _, rest) = tlv(info); // version
        let (_, _, rest) = tlv(rest); // algorithm
        let (tag, inner, _) = tlv(rest); // OCTET STRING
        assert_eq!(tag, 0x04);
        inner.to_vec()
    }

    fn pem(label: &str, der: &[u8]) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in der.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        let body: Vec<&str> = out.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", body.join("\n"))
    }

    /// PKCS#1 (RSA) and SEC1 (EC) keys load, and serve a handshake.
    #[tokio::test]
    async fn pkcs1_and_sec1_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [(&rcgen::PKCS_RSA_SHA256, "RSA PRIVATE KEY"), (&rcgen::PKCS_ECDSA_P256_SHA256, "EC PRIVATE KEY")];
        for (alg, label) in cases {
            let key_pair = rcgen::KeyPair::generate_for(alg).unwrap();
            let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            let cert_pem = params.self_signed(&key_pair).unwrap().pem();
            let inner = unwrap_pkcs8(&key_pair.serialize_der());
            let cert = dir.path().join(format!("{label}.crt"));
            let key = dir.path().join(format!("{label}.key"));
            fs::write(&cert, cert_pem).unwrap();
            fs::write(&key, pem(label, &inner)).unwrap();

            let acceptor = load_acceptor(&cert, &key).unwrap();
            let client = client_config(&cert, rustls::DEFAULT_VERSIONS);
            let name = ServerName::try_from("localhost").unwrap();
            let (sni, _) = handshake(acceptor, client, name).await;
            assert_eq!(sni.as_deref(), Some("localhost"), "{label}");
        }
    }
}
