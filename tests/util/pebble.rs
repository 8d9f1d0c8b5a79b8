//! Pebble, Let's Encrypt's test ACME server (Debian package `pebble`), on loopback for a test:
//! its own HTTPS certificate from a CA made here (the package ships none), validations sent to
//! our ports and its DNS lookups to a [`TestDns`](super::dns::TestDns).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

pub const PEBBLE: &str = "/usr/bin/pebble";

/// Whether Pebble can run here; prints why not.
pub fn available() -> bool {
    let ok = Path::new(PEBBLE).exists();
    if !ok {
        eprintln!("SKIPPED: {PEBBLE} is missing (apt-get install pebble; tests/run.sh installs it)");
    }
    ok
}

/// A free loopback port (bound and released: Pebble's config needs numbers up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Pebble {
    pub directory: String,
    /// The CA Pebble's own HTTPS certificate comes from (for `tls.acme.directory_ca`).
    pub ca_file: PathBuf,
    ca: CertificateDer<'static>,
    management: SocketAddr,
    child: Child,
}

impl Pebble {
    /// Starts Pebble validating TLS-ALPN-01 on `tls_port` and HTTP-01 on `http_port` of
    /// whatever `dns` says the names are, and waits until its directory answers.
    pub fn start(dir: &Path, tls_port: u16, http_port: u16, dns: SocketAddr) -> Pebble {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "pebble test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let ca_file = dir.join("pebble-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();

        let (listen, management) = (free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&config_file)
            .arg("-dnsserver")
            .arg(dns.to_string())
            // No random waits before validating, no nonces refused on purpose, and every order
            // validated afresh (so a renewal proves the names again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut pebble = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_file,
            ca: ca_cert.der().clone(),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [listen, management] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = pebble.child.try_wait().unwrap() {
                    panic!("pebble exited: {status}; see {}", dir.join("pebble.log").display());
                }
                assert!(Instant::now() < deadline, "pebble did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        pebble
    }

    /// The root Pebble issues under (from its management interface, `/roots/0`).
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let body = self.get("/roots/0").await;
        CertificateDer::from_pem_slice(&body).unwrap()
    }

    async fn get(&self, path: &str) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let tls = client(roots);
        let tcp = TcpStream::connect(self.management).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let body = response[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") { dechunk(&body) } else { body }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}

/// A TLS client config trusting `roots` only.
pub fn client(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Connects to `addr` over TLS as `name`, checking the certificate against `root`; returns the
/// stream and the end-entity certificate the server sent.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, CertificateDer<'static>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(client(roots))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await?;
    let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
    Ok((stream, leaf))
}
