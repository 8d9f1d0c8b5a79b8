//! `coimail health`: asks the running daemon's `/healthz` (on the metrics
//! listener, loopback by default) whether it can take mail, and exits 0 only
//! on `200`. What Docker's `HEALTHCHECK` (deploy/Dockerfile) and other
//! supervisors run; `/healthz` itself is `crates/daemon/src/metrics.rs`.

use anyhow::{Context, Result, bail};
use coimail_daemon::Config;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// For connecting, and for the answer: `/healthz` waits a few seconds at
/// most for its probe commit.
const TIMEOUT: Duration = Duration::from_secs(15);
/// More than any `/healthz` answer; a bigger one is not ours.
const MAX_ANSWER: u64 = 64 * 1024;

pub fn run(config_path: &Path, addr: Option<SocketAddr>) -> Result<()> {
    let addr = match addr {
        Some(a) => a,
        None => from_config(&Config::load(config_path)?)?,
    };
    let (status, body) = get(addr).with_context(|| format!("cannot reach the daemon's /healthz at {addr}"))?;
    if status != 200 {
        bail!("unhealthy (HTTP {status} from {addr}): {}", body.trim());
    }
    print!("{body}");
    Ok(())
}

/// The first metrics listener, as a client reaches it.
fn from_config(config: &Config) -> Result<SocketAddr> {
    let Some(mut addr) = config.listen.metrics.first().copied() else {
        bail!("no metrics listener ([listen] metrics), which is where /healthz is served");
    };
    if addr.port() == 0 {
        bail!("[listen] metrics gives port 0; pass --addr with the port the daemon bound");
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) });
    }
    Ok(addr)
}

/// One `GET /healthz`: the status code and the body.
fn get(addr: SocketAddr) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
    parse(&answer)
}

fn parse(answer: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { bail!("not an HTTP answer") };
    let status = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 ")))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .context("not an HTTP status line")?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_wildcard_listeners_are_reached_on_loopback() {
        let ok = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").unwrap();
        assert_eq!(ok, (200, "ok\n".to_owned()));
        let bad = parse(b"HTTP/1.1 503 Service Unavailable\r\n\r\nstore cannot commit: x").unwrap();
        assert_eq!(bad.0, 503);
        assert!(parse(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse(b"HTTP/1.1 2\r\n\r\n").is_err());

        let mut config: Config = toml::from_str("").unwrap();
        config.listen.metrics = vec!["0.0.0.0:9425".parse().unwrap()];
        assert_eq!(from_config(&config).unwrap(), "127.0.0.1:9425".parse().unwrap());
        config.listen.metrics = vec!["[::]:9425".parse().unwrap()];
        assert_eq!(from_config(&config).unwrap(), "[::1]:9425".parse().unwrap());
        config.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
        assert!(from_config(&config).unwrap_err().to_string().contains("--addr"));
        config.listen.metrics = vec![];
        assert!(from_config(&config).unwrap_err().to_string().contains("[listen] metrics"));
    }
}
