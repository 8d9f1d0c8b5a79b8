//! A minimal HTTP/1.1 client for push services: one POST per connection, TLS with real
//! certificate checks, the response head only, the whole exchange under one deadline. Where it may
//! connect is decided by [`super::addr`]: public addresses over https, and loopback (plain `http`
//! too) only for test push services when the configuration allows it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::ServerName;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::WebPushError;
use super::addr;

/// Push services answer with a few headers; anything larger is not one.
const MAX_HEAD: usize = 16 * 1024;

/// A push endpoint URL, split into what the request and the VAPID `aud` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 without brackets), lower-cased.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/path]`. Userinfo and fragments are refused.
    pub fn parse(url: &str) -> Result<Endpoint, WebPushError> {
        let bad = |why: &str| WebPushError::Endpoint(format!("{why}: {url}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("scheme must be http or https")),
        };
        if url.bytes().any(|b| !b.is_ascii_graphic()) || url.contains('#') {
            return Err(bad("invalid character"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let path = if path.starts_with('?') { format!("/{path}") } else { path };
        if authority.contains('@') {
            return Err(bad("userinfo is not allowed"));
        }
        // RFC 3986 `port = *DIGIT`: no sign, no spaces (u16's parser takes `+80`).
        let port_of = |p: &str| -> Result<u16, WebPushError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("invalid port"));
            }
            p.parse().map_err(|_| bad("invalid port"))
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed IPv6 literal"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => port_of(p)?,
                None if after.is_empty() => default_port,
                None => return Err(bad("invalid authority")),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                // A `:` left in the host is an IPv6 literal without brackets.
                Some((h, _)) if h.contains(':') => return Err(bad("IPv6 hosts need brackets")),
                Some((h, p)) => (h.to_owned(), port_of(p)?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Endpoint { scheme, host: host.to_ascii_lowercase(), port, path })
    }

    /// RFC 8292 `aud`: scheme and host, no port (what the OX push service checks).
    pub fn audience(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]", self.scheme, self.host)
        } else {
            format!("{}://{}", self.scheme, self.host)
        }
    }

    /// A loopback host by its name or literal (the resolved addresses are checked separately).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The `Host` header value: the port only when it is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default_port { host } else { format!("{host}:{}", self.port) }
    }
}

/// One push: the encrypted body and its headers' values.
#[derive(Clone)]
pub struct PushRequest {
    pub endpoint: Endpoint,
    /// The whole `Authorization` value (`vapid t=..., k=...`).
    pub authorization: String,
    /// The `aes128gcm` body.
    pub body: Vec<u8>,
    /// Seconds the push service may hold the message (`TTL`).
    pub ttl: u32,
    /// Send the empty `WebPush-Validation` header (validation push, R34).
    pub validation: bool,
}

impl std::fmt::Debug for PushRequest {
    // The JWT is a bearer credential for the push service until it expires, and the body is
    // ciphertext nobody needs in a log: neither is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRequest")
            .field("endpoint", &self.endpoint)
            .field("authorization", &"<redacted>")
            .field("body_len", &self.body.len())
            .field("ttl", &self.ttl)
            .field("validation", &self.validation)
            .finish()
    }
}

/// What the push service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResponse {
    pub status: u16,
    /// `Retry-After`, as delta-seconds or an HTTP date already in the past or future.
    pub retry_after: Option<Duration>,
}

/// Posts pushes. Cheap to share: holds only the TLS configuration and the address policy.
pub struct HttpClient {
    tls: TlsConnector,
    /// `coi.allow_loopback_push_endpoints`: loopback (and plain http to it) for test push services.
    allow_loopback: bool,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("allow_loopback", &self.allow_loopback).finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client that checks certificates against the platform's roots, with the aws-lc-rs
    /// provider. `allow_loopback` lets it reach push services on this machine (tests only).
    pub fn new(allow_loopback: bool) -> Result<HttpClient, WebPushError> {
        let tls_err = |e: rustls::Error| WebPushError::Http(format!("TLS setup: {e}"));
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(tls_err)?
                .with_platform_verifier()
                .map_err(tls_err)?
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpClient { tls: TlsConnector::from(Arc::new(config)), allow_loopback })
    }

    /// One POST on a fresh connection. Everything (DNS, connect, TLS, request, response head) is
    /// bounded by `timeout`; the response body is never read.
    pub async fn post(&self, req: &PushRequest, timeout: Duration) -> Result<PushResponse, WebPushError> {
        tokio::time::timeout(timeout, self.exchange(req)).await.map_err(|_| WebPushError::Timeout)?
    }

    async fn exchange(&self, req: &PushRequest) -> Result<PushResponse, WebPushError> {
        let ep = &req.endpoint;
        let https = ep.scheme == "https";
        // The fields are public; refuse anything that could split the request head.
        let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !clean(&ep.host) || !clean(&ep.path) || req.authorization.bytes().any(|b| b.is_ascii_control()) {
            return Err(WebPushError::Endpoint("invalid character in the request".into()));
        }
        let mut msg = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nTTL: {}\r\nContent-Encoding: aes128gcm\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\nAuthorization: {}\r\n",
            ep.path,
            ep.host_header(),
            req.ttl,
            req.body.len(),
            req.authorization
        )
        .into_bytes();
        if req.validation {
            msg.extend_from_slice(b"WebPush-Validation: \r\n");
        }
        msg.extend_from_slice(b"Connection: close\r\n\r\n");
        msg.extend_from_slice(&req.body);

        let net = |e: std::io::Error| WebPushError::Http(format!("{}: {e}", ep.host));
        // Resolved once and vetted; the connection goes to a vetted address, never to a fresh
        // resolution (which DNS rebinding could point elsewhere).
        let mut last_error = None;
        let mut connected = None;
        for addr in addr::resolve(ep, self.allow_loopback).await? {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    connected = Some(tcp);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let tcp = match (connected, last_error) {
            (Some(tcp), _) => tcp,
            (None, Some(e)) => return Err(net(e)),
            (None, None) => return Err(WebPushError::Http(format!("{}: no address", ep.host))),
        };
        let _ = tcp.set_nodelay(true);
        if https {
            // SNI and certificate check against the name in the URL, not the address.
            let name = ServerName::try_from(ep.host.clone())
                .map_err(|_| WebPushError::Endpoint(format!("not a valid TLS server name: {}", ep.host)))?;
            let tls = self.tls.connect(name, tcp).await.map_err(net)?;
            round_trip(tls, &msg).await
        } else {
            round_trip(tcp, &msg).await
        }
    }
}

async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    msg: &[u8],
) -> Result<PushResponse, WebPushError> {
    let io = |e: std::io::Error| WebPushError::Http(e.to_string());
    stream.write_all(msg).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some((consumed, response)) = parse_head(&buf)? {
            // Interim 1xx heads (e.g. an unasked-for 100 Continue) precede the real one.
            if (100..200).contains(&response.status) {
                buf.drain(..consumed);
                continue;
            }
            return Ok(response);
        }
        if buf.len() >= MAX_HEAD {
            return Err(WebPushError::Http("response head over 16 KiB".into()));
        }
        let want = chunk.len().min(MAX_HEAD - buf.len());
        let n = stream.read(&mut chunk[..want]).await.map_err(io)?;
        if n == 0 {
            return Err(WebPushError::Http("connection closed before a complete response head".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `Ok(None)` while the head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, PushResponse)>, WebPushError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let consumed = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WebPushError::Http(format!("malformed response: {e}"))),
    };
    let status = response.code.ok_or_else(|| WebPushError::Http("response without status".into()))?;
    let retry_after = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("retry-after"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(parse_retry_after);
    Ok(Some((consumed, PushResponse { status, retry_after })))
}

/// RFC 9110 `Retry-After`: delta-seconds, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
/// The obsolete date forms are ignored: the caller then uses its default delay.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_imf_fixdate(value)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(when.saturating_sub(now)))
}

fn parse_imf_fixdate(s: &str) -> Option<u64> {
    let mut it = s.split(' ');
    let (_weekday, day, month, year, time, zone) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || zone != "GMT" || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let year: u64 = year.parse().ok()?;
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok().filter(|_| p.len() == 2));
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant), shifted so March starts the year and leap days come last.
    let (y, mp) = if month > 2 { (year, month - 3) } else { (year - 1, month + 9) };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-connection server: returns the request head and body it got, answers `reply` raw.
    async fn serve_once(reply: &'static [u8]) -> (Endpoint, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map(|v| v.trim().parse().unwrap())
                .unwrap();
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            s.write_all(reply).await.unwrap();
            (head, buf[head_end..].to_vec())
        });
        (Endpoint::parse(&format!("http://127.0.0.1:{port}/push/abc?x=1")).unwrap(), task)
    }

    fn request(endpoint: Endpoint, validation: bool) -> PushRequest {
        PushRequest {
            endpoint,
            authorization: "vapid t=a.b.c, k=BBBB".into(),
            body: vec![1, 2, 3],
            ttl: 30,
            validation,
        }
    }

    #[tokio::test]
    async fn posts_and_reads_the_head() {
        let (ep, server) =
            serve_once(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Slow down\r\nRetry-After: 7\r\n\r\nbody").await;
        let client = HttpClient::new(true).unwrap();
        let resp = client.post(&request(ep.clone(), true), Duration::from_secs(5)).await.unwrap();
        assert_eq!(resp, PushResponse { status: 429, retry_after: Some(Duration::from_secs(7)) });
        let (head, body) = server.await.unwrap();
        assert_eq!(body, [1, 2, 3]);
        let expected = format!(
            "POST /push/abc?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nTTL: 30\r\nContent-Encoding: aes128gcm\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: 3\r\nAuthorization: vapid t=a.b.c, k=BBBB\r\n\
             WebPush-Validation: \r\nConnection: close\r\n\r\n",
            ep.port
        );
        assert_eq!(head, expected);

        let (ep, server) = serve_once(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n").await;
        let resp = client.post(&request(ep, false), Duration::from_secs(5)).await.unwrap();
        assert_eq!(resp, PushResponse { status: 201, retry_after: None });
        assert!(!server.await.unwrap().0.contains("WebPush-Validation"));
    }

    #[tokio::test]
    async fn bad_answers_are_errors() {
        let client = HttpClient::new(true).unwrap();
        let (ep, _server) = serve_once(b"HTTP/1.1 201 Cre").await;
        let err = client.post(&request(ep, false), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, WebPushError::Http(_)), "{err}");

        let (ep, _server) = serve_once(b"SMTP/1.0 220 hello\r\n\r\n").await;
        assert!(matches!(client.post(&request(ep, false), Duration::from_secs(5)).await, Err(WebPushError::Http(_))));

        let huge: &'static [u8] = Box::leak(
            format!("HTTP/1.1 201 Created\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD)).into_bytes().into_boxed_slice(),
        );
        let (ep, _server) = serve_once(huge).await;
        let err = client.post(&request(ep, false), Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains("16 KiB"), "{err}");
    }

    #[tokio::test]
    async fn silence_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint::parse(&format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port())).unwrap();
        let _hold = tokio::spawn(async move {
            let conn = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        });
        let client = HttpClient::new(true).unwrap();
        let started = std::time::Instant::now();
        let err = client.post(&request(ep, false), Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, WebPushError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        let client = HttpClient::new(true).unwrap();
        let ep = Endpoint::parse("http://push.example.com/x").unwrap();
        let err = client.post(&request(ep, false), Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, WebPushError::Endpoint(_)), "{err}");
        let mut ep = Endpoint::parse("http://127.0.0.1:9/x").unwrap();
        ep.path = "/x HTTP/1.1\r\nX: y".into();
        let err = client.post(&request(ep, false), Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, WebPushError::Endpoint(_)), "{err}");
    }

    /// A listener that counts the connections it accepts (and answers none).
    async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(s);
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn without_the_loopback_flag_nothing_local_is_contacted() {
        let (port, accepted) = counting_listener().await;
        let client = HttpClient::new(false).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/x"),
            format!("https://127.0.0.1:{port}/x"),
            format!("https://[::ffff:127.0.0.1]:{port}/x"),
            // A name: refused after resolution, before any connection.
            format!("https://localhost:{port}/x"),
            "https://10.0.0.1/x".to_owned(),
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            "https://[fe80::1]/x".to_owned(),
        ] {
            let err = client.post(&request(Endpoint::parse(&url).unwrap(), false), Duration::from_secs(2)).await;
            assert!(matches!(err, Err(WebPushError::Endpoint(_))), "{url}: {err:?}");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);

        // The flag lets loopback through, but still nothing private.
        let client = HttpClient::new(true).unwrap();
        let req = request(Endpoint::parse("https://10.0.0.1/x").unwrap(), false);
        let err = client.post(&req, Duration::from_secs(2)).await;
        assert!(matches!(err, Err(WebPushError::Endpoint(_))), "{err:?}");
        let ep = Endpoint::parse(&format!("http://localhost:{port}/x")).unwrap();
        let err = client.post(&request(ep, false), Duration::from_millis(300)).await;
        assert!(matches!(err, Err(WebPushError::Timeout)), "{err:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "connected to the vetted address");
    }

    #[test]
    fn debug_hides_the_token_and_body() {
        let mut req = request(Endpoint::parse("https://push.example.com/x").unwrap(), false);
        req.authorization = "vapid t=SECRET.JWT.TOKEN, k=BBBB".into();
        req.body = b"CIPHERTEXT".to_vec();
        let shown = format!("{req:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("CIPHERTEXT") && !shown.contains("[67,"), "{shown}");
        assert!(shown.contains("push.example.com") && shown.contains("body_len: 10"), "{shown}");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_imf_fixdate("Tue, 29 Feb 2028 23:59:59 GMT"), Some(1_835_481_599));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO), "a past date");
        let later = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT").unwrap();
        assert!(later > Duration::from_secs(365 * 86_400));
        for bad in [
            "",
            "-1",
            "soon",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 8:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_headers() {
        let h = |u: &str| Endpoint::parse(u).unwrap().host_header();
        assert_eq!(h("https://push.example.com/x"), "push.example.com");
        assert_eq!(h("https://push.example.com:8443/x"), "push.example.com:8443");
        assert_eq!(h("http://127.0.0.1:80/"), "127.0.0.1");
        assert_eq!(h("http://[::1]:8/"), "[::1]:8");
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://Push.Example.com/push/send/1?x=1").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("push.example.com", 443, "/push/send/1?x=1"));
        assert_eq!(e.audience(), "https://push.example.com");
        let e = Endpoint::parse("http://127.0.0.1:18080/push").unwrap();
        assert_eq!((e.port, e.audience().as_str(), e.is_loopback()), (18080, "http://127.0.0.1", true));
        let e = Endpoint::parse("http://[::1]:8/").unwrap();
        assert_eq!((e.host.as_str(), e.audience().as_str()), ("::1", "http://[::1]"));
        for bad in [
            "ftp://x/",
            "https://",
            "https://u@h/",
            "https://h:x/",
            "https://h/ a",
            "nourl",
            "https://h:+80/",
            "https://a:b:443/",
            "https://h:/",
            "https://[::1]:+1/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
