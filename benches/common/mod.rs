//! What the daemon benchmarks share (`smtp_load`, `coi_latency`): a config
//! with every listener on 127.0.0.1 port 0, SMTP reply reading and
//! percentiles. Each bench includes it with `mod common;`.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;

/// A config whose listeners are all on 127.0.0.1 port 0, data under `dir`,
/// with a self-signed certificate.
pub fn loopback_config(dir: &std::path::Path) -> coimail_daemon::Config {
    let mut c = coimail_daemon::Config::default();
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
    // No DNS on the bench machine; `smtp_load` turns the checks on with its own DNS server.
    c.smtp.inbound_checks = false;
    coimail_daemon::tls::write_self_signed(&["localhost".into()], &c.tls.cert, &c.tls.key, false).unwrap();
    c
}

/// One whole SMTP reply (its last line).
pub async fn reply(r: &mut BufReader<OwnedReadHalf>) -> String {
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).await.unwrap() > 0, "server closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

/// The `p` quantile (0..=1) of an ascending list.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}
