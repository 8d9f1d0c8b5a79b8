//! Starting coimail for a test: `TestServer::start()` in-process,
//! `ChildServer::spawn()` as a real `coimail serve` process (for lifecycle
//! and crash tests).

use super::{DOMAIN, PASSWORD};
use coimail_daemon::{BoundAddrs, Config, Running};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A config whose listeners are all on 127.0.0.1 port 0, data under `dir`,
/// with a self-signed certificate.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.server.hostname = "mail.example.org".into();
    c.server.data_dir = dir.join("data");
    c.tls.cert = dir.join("tls/cert.pem");
    c.tls.key = dir.join("tls/key.pem");
    let lo: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
    c.listen.imap = lo.clone();
    c.listen.imaps = lo.clone();
    c.listen.smtp = lo.clone();
    c.listen.submission = lo.clone();
    c.listen.submissions = lo.clone();
    c.listen.https = lo.clone();
    c.listen.http = lo.clone();
    c.listen.metrics = lo;
    c.store.cache_mb = 16;
    // Load tests open many sessions from 127.0.0.1.
    c.smtp.mx_max_connections_per_ip = 100;
    c.smtp.submission_max_connections_per_ip = 100;
    c.imap.max_connections_per_ip = 100;
    c.imap.max_unauthenticated_per_ip = 100;
    // Load and crash tests send thousands of messages from 127.0.0.1 to a
    // few users; `tests/slow_clients.rs` turns these on.
    c.smtp.mx_messages_per_peer_per_hour = 0;
    c.smtp.mx_messages_per_recipient_per_hour = 0;
    c.shutdown.grace_secs = 5;
    // No DNS here: tests that check SPF/DKIM/DMARC turn this on with their
    // own DNS server (`tests/inbound.rs`, the queue's hosts).
    c.smtp.inbound_checks = false;
    // Test mail hosts (tests/util/mailhost.rs) are on 127.0.0.x.
    c.queue.allow_private_destinations = true;
    if !c.tls.cert.exists() {
        coimail_daemon::tls::write_self_signed(&["localhost".into()], &c.tls.cert, &c.tls.key, false).unwrap();
    }
    c
}

pub struct TestServer {
    pub dir: TempDir,
    pub running: Option<Running>,
}

impl TestServer {
    /// An in-process server with domain example.org and the given users (password [`PASSWORD`]).
    pub async fn start(users: &[&str]) -> TestServer {
        Self::start_with(users, |_| {}).await
    }

    /// [`TestServer::start`] with the test config changed by `edit` first.
    pub async fn start_with(users: &[&str], edit: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        edit(&mut config);
        let running = coimail_daemon::start(config).await.unwrap();
        running.directory().add_domain(DOMAIN).await.unwrap();
        for u in users {
            running.directory().add_user(u, PASSWORD, None).await.unwrap();
        }
        TestServer { dir, running: Some(running) }
    }

    pub fn addrs(&self) -> &BoundAddrs {
        self.running.as_ref().unwrap().addrs()
    }

    pub fn imap(&self) -> SocketAddr {
        self.addrs().imap[0]
    }

    pub fn smtp(&self) -> SocketAddr {
        self.addrs().smtp[0]
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// `coimail serve` as a child process.
pub struct ChildServer {
    pub config: PathBuf,
    pub data: PathBuf,
    child: Option<Child>,
    addrs: BoundAddrs,
}

pub fn coimail_bin() -> &'static str {
    env!("CARGO_BIN_EXE_coimail")
}

/// Runs a `coimail` CLI command against `config`; returns (success, stdout, stderr).
pub fn cli(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(coimail_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl ChildServer {
    /// Writes a loopback config into `dir` (kept by the caller so the data
    /// survives restarts) and starts `coimail serve` on it.
    pub fn spawn(dir: &Path) -> ChildServer {
        Self::spawn_logging(dir, "warn")
    }

    /// Like [`ChildServer::spawn`], with RUST_LOG set to `filter`. The log
    /// (stderr) goes to `<dir>/server.log`, appended across restarts.
    pub fn spawn_logging(dir: &Path, filter: &str) -> ChildServer {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        Self::spawn_with(dir, filter, log.into())
    }

    /// Like [`ChildServer::spawn_logging`], with the log (stderr) going to
    /// `stderr`. A `<dir>/coimail.toml` already there is used as it is.
    pub fn spawn_with(dir: &Path, filter: &str, stderr: Stdio) -> ChildServer {
        let config = dir.join("coimail.toml");
        if !config.exists() {
            let c = test_config(dir);
            std::fs::write(&config, toml::to_string(&c).unwrap()).unwrap();
        }
        let data = Config::load(&config).map(|c| c.server.data_dir).unwrap_or_else(|_| dir.join("data"));
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        // COIMAIL_SERVE_BIN runs another build as the server (a before/after measurement).
        let bin = std::env::var("COIMAIL_SERVE_BIN").unwrap_or_else(|_| coimail_bin().to_owned());
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .arg("--ready-file")
            .arg(&ready)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut server = ChildServer { config, data, child: Some(child), addrs: BoundAddrs::default() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(bytes) = std::fs::read(&ready) {
                server.addrs = serde_json::from_slice(&bytes).unwrap();
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("coimail serve exited early: {status}");
            }
            assert!(Instant::now() < deadline, "coimail serve did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn imap(&self) -> SocketAddr {
        self.addrs.imap[0]
    }

    pub fn smtp(&self) -> SocketAddr {
        self.addrs.smtp[0]
    }

    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        cli(&self.config, args, stdin)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The child process, e.g. to drop the read end of its stderr pipe.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                c.kill().unwrap();
                c.wait().unwrap();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Adds example.org (if needed) and a user through the CLI.
pub fn add_user(server: &ChildServer, address: &str) {
    let (ok, _, err) = server.cli(&["domain", "add", DOMAIN], None);
    assert!(ok || err.contains("already exists"), "{err}");
    let (ok, out, err) = server.cli(&["user", "add", address], Some(&format!("{PASSWORD}\n")));
    assert!(ok, "user add failed: {out} {err}");
}
