//! File certificates reloaded without a restart: SIGHUP and `coimail tls reload` on a real
//! `coimail serve`. New handshakes get the new certificate, a connection opened before keeps
//! working, and a broken file keeps the old certificate and says why.

use crate::util::pebble;
use crate::util::server::ChildServer;
use coimail_daemon::Config;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// Writes a new self-signed certificate for localhost over the configured files; returns it.
fn new_certificate(config: &Config) -> CertificateDer<'static> {
    coimail_daemon::tls::write_self_signed(&["localhost".into()], &config.tls.cert, &config.tls.key, true).unwrap();
    CertificateDer::from_pem_file(&config.tls.cert).unwrap()
}

/// The certificate the IMAPS listener serves to a new connection (trusting exactly `expect`
/// would fail on any other, so trust what is asked and compare).
async fn served(server: &ChildServer, trust: &CertificateDer<'static>) -> Option<Vec<u8>> {
    pebble::connect(server.addrs().imaps[0], "localhost", trust).await.ok().map(|(_, leaf)| leaf.to_vec())
}

/// Polls until IMAPS serves `cert` (a signal is handled asynchronously).
async fn wait_served(server: &ChildServer, cert: &CertificateDer<'static>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while served(server, cert).await.as_deref() != Some(cert.as_ref()) {
        assert!(Instant::now() < deadline, "the new certificate is not served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_tls_reload_swap_file_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::spawn(dir.path());
    let config = Config::load(&server.config).unwrap();
    let first = CertificateDer::from_pem_file(&config.tls.cert).unwrap();
    assert_eq!(served(&server, &first).await.as_deref(), Some(first.as_ref()));

    // A connection made with the first certificate, open across both swaps.
    let (stream, _) = pebble::connect(server.addrs().imaps[0], "localhost", &first).await.unwrap();
    let mut open = BufReader::new(stream);
    let mut line = String::new();
    open.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("* OK"), "{line}");

    let second = new_certificate(&config);
    // Not before the signal: the daemon does not watch the files.
    assert_eq!(served(&server, &first).await.as_deref(), Some(first.as_ref()));
    unsafe { libc::kill(server_pid(&mut server), libc::SIGHUP) };
    wait_served(&server, &second).await;

    // A broken file: refused, the old certificate stays and the error names the file.
    std::fs::write(&config.tls.cert, "not a certificate\n").unwrap();
    let (ok, _, err) = server.cli(&["tls", "reload"], None);
    assert!(!ok, "a broken certificate was accepted");
    assert!(err.contains(&config.tls.cert.display().to_string()) && err.contains("still serving"), "{err}");
    assert_eq!(served(&server, &second).await.as_deref(), Some(second.as_ref()));

    let third = new_certificate(&config);
    let (ok, out, err) = server.cli(&["tls", "reload"], None);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("reloaded {}: localhost", config.tls.cert.display())), "{out}");
    assert_eq!(served(&server, &third).await.as_deref(), Some(third.as_ref()));

    let (ok, out, err) = server.cli(&["tls", "status"], None);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("file  {}", config.tls.cert.display())), "{out}");
    assert!(out.contains("names      localhost") && out.contains("acme off"), "{out}");

    // The connection from before the swaps still speaks IMAP over its original session.
    open.get_mut().write_all(b"a1 NOOP\r\n").await.unwrap();
    line.clear();
    open.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("a1 OK"), "{line}");
    assert!(server.terminate());
}

fn server_pid(server: &mut ChildServer) -> i32 {
    server.child_mut().map(|c| c.id() as i32).unwrap()
}
