//! IMAP interop: COMPRESS=DEFLATE over TLS and after STARTTLS with a
//! flate2 client, a full session with Python's imaplib, and mbsync syncing
//! a Maildir both ways. All against the in-process server over loopback.

use crate::util::{self, TestServer};
use coimail_store::Placement;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const USER: &str = "interop@example.org";
const WAIT: Duration = Duration::from_secs(30);

/// The interpreter with the test clients (`tests/run.sh` sets it).
fn python() -> String {
    std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The server's self-signed certificate (for "localhost").
fn cert_path(server: &TestServer) -> PathBuf {
    server.dir.path().join("tls/cert.pem")
}

fn connector(server: &TestServer) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(cert_path(server)).unwrap()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn deliver(server: &TestServer, subject: &str) {
    let running = server.running.as_ref().unwrap();
    let account = running.directory().user(USER).unwrap().unwrap();
    let p = Placement { account: account.id, address: USER.into(), mailbox: "INBOX".into(), flags: Default::default() };
    let raw = format!("From: a@example.net\r\nSubject: {subject}\r\n\r\n{subject}\r\n");
    running.store().deliver(raw.as_bytes(), 1_700_000_000, vec![p]).await.unwrap();
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A line client that can switch to TLS and then to DEFLATE (sync flush per write).
struct ZClient {
    io: Io,
    /// Read and not yet inflated (or, uncompressed, not yet consumed).
    raw: Vec<u8>,
    buf: Vec<u8>,
    z: Option<(Compress, Decompress)>,
}

impl ZClient {
    async fn write(&mut self, data: &[u8]) {
        let bytes = match self.z.as_mut() {
            None => data.to_vec(),
            Some((c, _)) => {
                let mut out = Vec::with_capacity(data.len() + 64);
                let mut input = data;
                loop {
                    out.reserve(4096);
                    let before = c.total_in();
                    c.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
                    input = &input[(c.total_in() - before) as usize..];
                    if input.is_empty() && out.len() < out.capacity() {
                        break out;
                    }
                }
            }
        };
        match &mut self.io {
            Io::Plain(s) => s.write_all(&bytes).await.unwrap(),
            Io::Tls(s) => {
                s.write_all(&bytes).await.unwrap();
                s.flush().await.unwrap();
            }
        }
    }

    async fn read(&mut self) -> usize {
        let read = match &mut self.io {
            Io::Plain(s) => tokio::time::timeout(WAIT, s.read_buf(&mut self.raw)).await,
            Io::Tls(s) => tokio::time::timeout(WAIT, s.read_buf(&mut self.raw)).await,
        };
        read.expect("server did not answer in time").unwrap_or(0)
    }

    /// One line without CRLF. Uncompressed, nothing past it is consumed.
    async fn line(&mut self) -> String {
        loop {
            let src = if self.z.is_some() { &mut self.buf } else { &mut self.raw };
            if let Some(p) = src.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = src.drain(..p + 2).take(p).collect();
                return String::from_utf8(line).unwrap();
            }
            if let Some((_, d)) = self.z.as_mut()
                && !self.raw.is_empty()
            {
                let mut out = Vec::with_capacity(64 * 1024);
                let before = d.total_in();
                d.decompress_vec(&self.raw, &mut out, FlushDecompress::None).unwrap();
                self.raw.drain(..(d.total_in() - before) as usize);
                self.buf.extend_from_slice(&out);
                if !out.is_empty() {
                    continue;
                }
            }
            assert!(self.read().await > 0, "connection closed");
        }
    }

    async fn command(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        self.write(format!("{tag} {cmd}\r\n").as_bytes()).await;
        let mut all = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            all.push(line);
            if done {
                return all;
            }
        }
    }

    async fn ok(&mut self, tag: &str, cmd: &str) -> Vec<String> {
        let r = self.command(tag, cmd).await;
        assert!(r.last().unwrap().starts_with(&format!("{tag} OK")), "{cmd}: {r:?}");
        r
    }

    /// Logs in, turns COMPRESS on, then checks commands and an IDLE EXISTS
    /// that must arrive while the client sends nothing.
    async fn compressed_session(mut self, server: &TestServer) {
        let r = self.ok("l", &format!("LOGIN {USER} \"{}\"", util::PASSWORD)).await;
        assert!(r.last().unwrap().contains("COMPRESS=DEFLATE"), "{r:?}");
        assert_eq!(self.command("z", "COMPRESS DEFLATE").await, ["z OK DEFLATE active"]);
        assert!(self.raw.is_empty(), "uncompressed bytes after the OK: {:?}", self.raw);
        self.z = Some((Compress::new(Compression::default(), false), Decompress::new(false)));
        let r = self.ok("s", "SELECT INBOX").await;
        assert!(r.contains(&"* 0 EXISTS".to_string()), "{r:?}");
        self.write(b"i IDLE\r\n").await;
        assert_eq!(self.line().await, "+ idling");
        let started = Instant::now();
        deliver(server, "during compressed idle").await;
        let exists = tokio::time::timeout(Duration::from_secs(2), self.line()).await;
        assert_eq!(exists.expect("IDLE EXISTS under COMPRESS needs no client input"), "* 1 EXISTS");
        assert_eq!(self.line().await, "* 1 RECENT");
        println!("compressed IDLE EXISTS after {:?}", started.elapsed());
        self.write(b"DONE\r\n").await;
        assert_eq!(self.line().await, "i OK IDLE terminated");
        let r = self.ok("f", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])").await;
        assert!(r[0].starts_with("* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {"), "{r:?}");
        assert_eq!(r[1], "Subject: during compressed idle");
        let r = self.command("z2", "COMPRESS DEFLATE").await;
        assert_eq!(r, ["z2 NO [COMPRESSIONACTIVE] DEFLATE is already active"]);
        let r = self.ok("o", "LOGOUT").await;
        assert_eq!(r[0], "* BYE Logging out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_after_starttls() {
    let server = TestServer::start(&[USER]).await;
    let tcp = TcpStream::connect(server.imap()).await.unwrap();
    let mut c = ZClient { io: Io::Plain(tcp), raw: Vec::new(), buf: Vec::new(), z: None };
    assert!(c.line().await.starts_with("* OK"));
    assert_eq!(c.command("t", "STARTTLS").await, ["t OK Begin TLS negotiation now"]);
    let Io::Plain(tcp) = c.io else { unreachable!() };
    let tls = connector(&server).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let c = ZClient { io: Io::Tls(Box::new(tls)), raw: Vec::new(), buf: Vec::new(), z: None };
    c.compressed_session(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_over_implicit_tls() {
    let server = TestServer::start(&[USER]).await;
    let tcp = TcpStream::connect(server.addrs().imaps[0]).await.unwrap();
    let tls = connector(&server).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let mut c = ZClient { io: Io::Tls(Box::new(tls)), raw: Vec::new(), buf: Vec::new(), z: None };
    assert!(c.line().await.starts_with("* OK"));
    c.compressed_session(&server).await;
}

/// Runs `script` with `args`; panics with its output unless it exits 0 and prints `expect`.
async fn run_script(script: &str, args: &[String], expect: &str, limit: Duration) -> String {
    let path = format!("{}/tests/external/{script}", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new(python()).arg(&path).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{script} took over {limit:?}"))
        .expect("python3 must be installed (tests/run.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(expect), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_imaplib_full_session() {
    let server = TestServer::start(&[USER]).await;
    let args = [
        server.imap().port().to_string(),
        USER.to_string(),
        util::PASSWORD.to_string(),
        cert_path(&server).display().to_string(),
    ];
    let out = run_script("imaplib_session.py", &args, "imaplib session ok", Duration::from_secs(120)).await;
    println!("{out}");
}

/// mbsync (Debian package `isync`, installed by `tests/run.sh`). Required
/// when COIMAIL_EXTERNAL=1; otherwise skipped with a message if missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_syncs_a_maildir_both_ways() {
    let found = std::process::Command::new("mbsync").arg("-v").output().is_ok();
    if !found {
        assert!(
            std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1"),
            "mbsync is required with COIMAIL_EXTERNAL=1 (apt-get install isync; tests/run.sh does it)"
        );
        eprintln!("skipped: mbsync not installed (apt-get install isync, or run tests/run.sh)");
        return;
    }
    let server = TestServer::start(&[USER]).await;
    let work = tempfile::tempdir().unwrap();
    let args = [
        server.imap().port().to_string(),
        USER.to_string(),
        util::PASSWORD.to_string(),
        cert_path(&server).display().to_string(),
        work.path().display().to_string(),
    ];
    run_script("mbsync_sync.py", &args, "mbsync sync ok", Duration::from_secs(300)).await;
}
