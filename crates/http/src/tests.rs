//! The listeners over real loopback sockets: plain HTTP (HTTPS is the same
//! router behind the daemon's TLS acceptor; `tests/http.rs` drives it).

use super::*;
use coimail_store::Store;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

struct Tokens(HashMap<String, String>);

impl Http01Responder for Tokens {
    fn key_authorization(&self, token: &str) -> Option<String> {
        self.0.get(token).cloned()
    }
}

async fn start(http01: Option<Arc<dyn Http01Responder>>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_memory(dir.path()).unwrap();
    let directory = Directory::open(&store, None).unwrap();
    directory.add_domain("example.org").await.unwrap();
    let config = HttpConfig {
        hostname: "mail.example.org".into(),
        services: MailServices::new(Some(993), Some(143), Some(465), Some(587)),
        mta_sts_policy: "version: STSv1\r\nmode: testing\r\nmx: mail.example.org\r\nmax_age: 86400\r\n".into(),
        https_port: Some(8443),
        max_connections: 10,
        max_connections_per_ip: 10,
    };
    let mut ctx = HttpContext::new(directory, None, config);
    if let Some(r) = http01 {
        ctx = ctx.with_http01(r);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(serve(listener, HttpListener::Http, Arc::new(ctx), shutdown.clone(), tracker.clone()));
    Server { addr, shutdown, tracker, _dir: dir }
}

/// (status, headers lower-cased, body) of one request on a fresh connection.
async fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn plain_http_serves_autoconfig_for_our_domains_only() {
    let srv = start(None).await;
    let (status, head, body) = get(srv.addr, "autoconfig.example.org", "/mail/config-v1.1.xml").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: application/xml"), "{head}");
    assert!(body.contains("<hostname>mail.example.org</hostname>"), "{body}");
    let (status, ..) = get(srv.addr, "autoconfig.example.net", "/mail/config-v1.1.xml").await;
    assert_eq!(status, 404);
    let (status, ..) = get(srv.addr, "x", "/mail/config-v1.1.xml?emailaddress=a%40example.net").await;
    assert_eq!(status, 404);
    let (status, _, body) = get(srv.addr, "x", "/mail/config-v1.1.xml?emailaddress=a%40Example.org").await;
    assert_eq!(status, 200);
    assert!(body.contains("<domain>example.org</domain>"), "{body}");
}

#[tokio::test]
async fn everything_else_on_plain_http_moves_to_https() {
    let srv = start(None).await;
    let (status, head, _) = get(srv.addr, "mta-sts.example.org", "/.well-known/mta-sts.txt?x=1").await;
    assert_eq!(status, 308, "{head}");
    assert!(head.contains("location: https://mta-sts.example.org:8443/.well-known/mta-sts.txt?x=1"), "{head}");
    let (status, ..) = get(srv.addr, "bad_host!", "/").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn acme_challenges_are_answered_by_the_responder() {
    let srv = start(None).await;
    let (status, ..) = get(srv.addr, "example.org", "/.well-known/acme-challenge/abc").await;
    assert_eq!(status, 404, "no ACME client: nothing to answer");

    let tokens = Tokens(HashMap::from([("tok-EN_1".to_owned(), "tok-EN_1.thumbprint".to_owned())]));
    let srv = start(Some(Arc::new(tokens))).await;
    let (status, head, body) = get(srv.addr, "mail.example.org", "/.well-known/acme-challenge/tok-EN_1").await;
    assert_eq!((status, body.as_str()), (200, "tok-EN_1.thumbprint"), "{head}");
    let (status, ..) = get(srv.addr, "mail.example.org", "/.well-known/acme-challenge/other").await;
    assert_eq!(status, 404);
    let (status, ..) = get(srv.addr, "mail.example.org", "/.well-known/acme-challenge/a.b").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn shutdown_stops_the_listener_and_idle_connections() {
    let srv = start(None).await;
    // A kept-alive connection that has sent nothing.
    let mut idle = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (status, ..) = get(srv.addr, "autoconfig.example.org", "/mail/config-v1.1.xml").await;
    assert_eq!(status, 200);
    srv.shutdown.cancel();
    srv.tracker.close();
    tokio::time::timeout(Duration::from_secs(10), srv.tracker.wait()).await.expect("connections and listener end");
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).await.unwrap_or(0), 0);
    assert!(tokio::net::TcpStream::connect(srv.addr).await.is_err(), "the listener is closed");
}
