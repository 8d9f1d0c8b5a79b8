//! Whole mail domains for queue tests: a coimail for one domain with all
//! its listeners on its own loopback address (127.0.0.2, 127.0.0.3, ...),
//! the MX listener on a port shared by every host (the queue's outbound
//! port), resolving through the test's DNS server.

use super::server::test_config;
use super::{PASSWORD, SmtpClient};
use coimail_daemon::{Config, Running};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A port free on every one of `ips`, for MX listeners that must share it.
pub fn common_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind(SocketAddr::new(ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Result<Vec<_>, _> = ips[1..].iter().map(|ip| TcpListener::bind(SocketAddr::new(*ip, port))).collect();
        if rest.is_ok() {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// The config of a host for `domain` on `ip`; retries after 1 s, then 2 s.
pub fn host_config(dir: &Path, domain: &str, ip: IpAddr, mx_port: u16, dns: SocketAddr) -> Config {
    let mut c = test_config(dir);
    c.server.hostname = format!("mail.{domain}");
    let any = SocketAddr::new(ip, 0);
    c.listen.imap = vec![any];
    c.listen.imaps = vec![];
    c.listen.smtp = vec![SocketAddr::new(ip, mx_port)];
    c.listen.submission = vec![any];
    c.listen.submissions = vec![];
    c.listen.https = vec![];
    c.listen.http = vec![];
    c.queue.resolvers = vec![dns];
    // Mail between the hosts is checked like any MX mail (no records: `none`).
    c.smtp.inbound_checks = true;
    c.queue.outbound_port = mx_port;
    c.queue.retry_initial_secs = 1;
    c.queue.retry_max_secs = 2;
    c.queue.connect_timeout_secs = 5;
    c.queue.command_timeout_secs = 20;
    c
}

pub struct MailHost {
    pub dir: TempDir,
    pub config: Config,
    pub running: Option<Running>,
}

impl MailHost {
    /// Starts the host and creates `domain` and `users` (password [`PASSWORD`]).
    pub async fn start(dir: TempDir, config: Config, domain: &str, users: &[&str]) -> MailHost {
        let mut host = MailHost { dir, config, running: None };
        host.restart().await;
        let running = host.running.as_ref().unwrap();
        running.directory().add_domain(domain).await.unwrap();
        for u in users {
            running.directory().add_user(u, PASSWORD, None).await.unwrap();
        }
        host
    }

    /// Starts it again on the same data and addresses.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "already running");
        self.running = Some(coimail_daemon::start(self.config.clone()).await.unwrap());
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("host is running")
    }

    pub fn submission(&self) -> SocketAddr {
        self.running().addrs().submission[0]
    }

    /// The messages in `user`'s INBOX, read through the store.
    pub async fn inbox(&self, user: &str) -> Vec<String> {
        let r = self.running();
        let account = r.directory().user(user).unwrap().unwrap();
        let inbox = r.store().mailbox(account.id, "INBOX").unwrap();
        let mut out = Vec::new();
        for m in r.store().messages(account.id, inbox.id).unwrap() {
            out.push(String::from_utf8(r.store().read_message(&m).await.unwrap()).unwrap());
        }
        out
    }

    /// Waits until `user`'s INBOX holds at least `n` messages.
    pub async fn wait_inbox(&self, user: &str, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let inbox = self.inbox(user).await;
            if inbox.len() >= n {
                return inbox;
            }
            assert!(Instant::now() < deadline, "{user} has {} of {n} messages after {within:?}", inbox.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the outbound queue is empty.
    pub async fn wait_queue_empty(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.running().store().spool_list().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "queue not empty: {:?}", self.running().store().spool_list());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Submits `message` as `user` (AUTH PLAIN) to `to`; returns the final reply.
    pub async fn submit(&self, user: &str, to: &[&str], message: &[u8]) -> String {
        submit(self.submission(), user, to, message).await
    }
}

/// RFC 4648 base64, for AUTH PLAIN.
pub fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One authenticated submission on `addr`.
pub async fn submit(addr: SocketAddr, user: &str, to: &[&str], message: &[u8]) -> String {
    let mut c = SmtpClient::connect(addr).await;
    let r = c.cmd("EHLO laptop.test").await;
    assert!(r.contains("AUTH PLAIN"), "{r}");
    let r = c.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{user}\0{PASSWORD}").as_bytes()))).await;
    assert!(r.starts_with("235"), "{r}");
    c.send(user, to, message).await
}
