//! A loopback Web Push service that also plays the phone (COI spec R31–R39).
//!
//! It listens on 127.0.0.1 port 0 and speaks just enough HTTP/1.1 (request
//! head, `Content-Length` body, one request per connection) to take the
//! pushes coimail sends. Each subscription path `/push/<name>` belongs to a
//! [`Phone`] holding RFC 8291 subscriber keys. Every request is checked the
//! way a real push service and a real phone would check it:
//! - `Authorization: vapid t=<JWT>, k=<key>`: `k` is the key coimail
//!   publishes as `/private/vendor/vendor.dovecot/webpush/vapid` (tell the
//!   service with [`PushService::expect_vapid`]), the JWT is ES256-signed by
//!   it, `aud` is `http://127.0.0.1`, `exp` is in the future, `sub` is there;
//! - `Content-Encoding: aes128gcm` and a numeric `TTL`;
//! - the body decrypts with the phone's keys to a JSON object.
//!
//! A request that fails a check is answered 400 and reaches the phone as an
//! error, so [`Phone::next`] fails the test with the reason. Otherwise the
//! path's scripted reply is sent (default 201; e.g. 410 for a gone
//! subscription, 429 with `Retry-After`). The phone is told about a push
//! before the reply is written, so the push's arrival time is always earlier
//! than anything coimail does after it got the answer.
//!
//! Dependencies: std, tokio, serde_json and coimail_coi only, so that the
//! `coi_latency` bench can include this file with `#[path]`.

use coimail_coi::webpush::{ece, vapid};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Largest request head and body the service reads.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024;

/// One HTTP request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request (head and body) had been read.
    pub arrived: Instant,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A push that passed every check, decrypted.
#[derive(Debug, Clone)]
pub struct Push {
    pub request: Request,
    /// The decrypted body.
    pub plaintext: Vec<u8>,
    /// The decrypted body as JSON (always an object).
    pub json: serde_json::Value,
    /// The verified VAPID JWT claims.
    pub claims: serde_json::Value,
    /// The status the service answered.
    pub status: u16,
}

/// What the service answers to a request on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
}

impl Reply {
    pub const CREATED: Reply = Reply { status: 201, retry_after: None };
    pub const GONE: Reply = Reply { status: 410, retry_after: None };

    pub fn status(status: u16) -> Reply {
        Reply { status, retry_after: None }
    }

    pub fn too_many(retry_after: u64) -> Reply {
        Reply { status: 429, retry_after: Some(retry_after) }
    }
}

struct PathState {
    keys: ece::SubscriberKeys,
    /// Replies used in order, before `default`.
    script: VecDeque<Reply>,
    default: Reply,
    /// Held back until this fires before the next reply is written.
    gate: Option<oneshot::Receiver<()>>,
    /// Never answers (a stalled push service): the connection stays open.
    stalled: bool,
    phone: mpsc::UnboundedSender<Result<Push, String>>,
}

#[derive(Default)]
struct State {
    paths: Mutex<HashMap<String, PathState>>,
    log: Mutex<Vec<Request>>,
    /// The raw VAPID point the server publishes.
    vapid: Mutex<Option<Vec<u8>>>,
}

/// The push service; stops when dropped.
pub struct PushService {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// One subscription's device: its keys and the pushes it received.
pub struct Phone {
    pub name: String,
    /// `http://127.0.0.1:<port>/push/<name>`.
    pub endpoint: String,
    pub keys: ece::SubscriberKeys,
    pushes: mpsc::UnboundedReceiver<Result<Push, String>>,
}

impl PushService {
    pub async fn start() -> PushService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &state).await;
                });
            }
        });
        PushService { addr, state, task }
    }

    /// Takes the PEM the server publishes (R31) and remembers its point as
    /// the only key a push may be signed with. Panics on a malformed PEM.
    pub fn expect_vapid(&self, pem: &str) {
        *self.state.vapid.lock().unwrap() = Some(vapid_point(pem));
    }

    /// A new phone with fresh keys, answered [`Reply::CREATED`] by default.
    pub fn phone(&self, name: &str) -> Phone {
        let keys = ece::SubscriberKeys::generate().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = PathState {
            keys: keys.clone(),
            script: VecDeque::new(),
            default: Reply::CREATED,
            gate: None,
            stalled: false,
            phone: tx,
        };
        self.state.paths.lock().unwrap().insert(name.to_owned(), state);
        let endpoint = format!("http://127.0.0.1:{}/push/{name}", self.addr.port());
        Phone { name: name.to_owned(), endpoint, keys, pushes: rx }
    }

    /// From now on, answer `reply` on the phone's path.
    pub fn answer(&self, phone: &str, reply: Reply) {
        self.path(phone, |p| p.default = reply);
    }

    /// Answer the next requests with `replies` in order, then the default.
    pub fn script(&self, phone: &str, replies: &[Reply]) {
        self.path(phone, |p| p.script.extend(replies.iter().copied()));
    }

    /// Holds the reply to the next request on the path until the returned
    /// sender fires (or is dropped). The phone still gets the push at once.
    pub fn hold(&self, phone: &str) -> oneshot::Sender<()> {
        let (tx, rx) = oneshot::channel();
        self.path(phone, |p| p.gate = Some(rx));
        tx
    }

    /// From now on, never answer on the phone's path: each request keeps its
    /// connection open, with no reply, until the push service is dropped.
    /// The phone still gets each push at once.
    pub fn stall(&self, phone: &str) {
        self.path(phone, |p| p.stalled = true);
    }

    /// Every request so far, in arrival order (unknown paths included).
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    fn path(&self, phone: &str, f: impl FnOnce(&mut PathState)) {
        let mut paths = self.state.paths.lock().unwrap();
        f(paths.get_mut(phone).unwrap_or_else(|| panic!("no phone {phone}")));
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Phone {
    /// The next push to this phone; fails the test on a timeout or on a
    /// push the service refused (bad VAPID, encoding, ...).
    pub async fn next(&mut self, within: Duration) -> Push {
        match tokio::time::timeout(within, self.pushes.recv()).await {
            Ok(Some(Ok(push))) => push,
            Ok(Some(Err(why))) => panic!("push to {} refused: {why}", self.name),
            Ok(None) => panic!("push service for {} stopped", self.name),
            Err(_) => panic!("no push to {} within {within:?}", self.name),
        }
    }

    /// The reason the service refused the next request to this phone (the
    /// harness's own checks at work); fails the test if it was accepted.
    pub async fn next_refusal(&mut self, within: Duration) -> String {
        match tokio::time::timeout(within, self.pushes.recv()).await {
            Ok(Some(Err(why))) => why,
            Ok(Some(Ok(push))) => panic!("push to {} accepted: {}", self.name, push.json),
            Ok(None) => panic!("push service for {} stopped", self.name),
            Err(_) => panic!("no push to {} within {within:?}", self.name),
        }
    }

    /// A push already received and not yet taken, if any.
    pub fn try_next(&mut self) -> Option<Push> {
        match self.pushes.try_recv() {
            Ok(Ok(push)) => Some(push),
            Ok(Err(why)) => panic!("push to {} refused: {why}", self.name),
            Err(_) => None,
        }
    }

    /// `p256dh` as a client registers it: base64url without padding.
    pub fn p256dh(&self) -> String {
        base64url(&self.keys.public)
    }

    /// `auth` as a client registers it: base64url without padding.
    pub fn auth(&self) -> String {
        base64url(&self.keys.auth)
    }

    /// The compact subscription JSON a COI client sends (C9), with
    /// `extra` members (e.g. `,"exclude_from":[...]`) appended at the top level.
    pub fn subscription(&self, client: &str, device: &str, msgtype: &str, extra: &str) -> String {
        let s = |v: &str| serde_json::Value::from(v).to_string();
        format!(
            "{{\"client\":{},\"device\":{},\"msgtype\":{}{extra},\"resource\":{{\"endpoint\":{},\"keys\":{{\"p256dh\":{},\"auth\":{}}}}}}}",
            s(client),
            s(device),
            s(msgtype),
            s(&self.endpoint),
            s(&self.p256dh()),
            s(&self.auth())
        )
    }
}

/// The raw 65-byte point of a P-256 SubjectPublicKeyInfo PEM: the last 65
/// bytes of the DER (the BIT STRING's content after its unused-bits octet).
pub fn vapid_point(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64_decode(&b64).unwrap_or_else(|| panic!("VAPID PEM is not base64: {pem}"));
    assert!(der.len() > 65, "VAPID DER too short: {der:?}");
    der[der.len() - 65..].to_vec()
}

async fn serve(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let request = match tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream)).await {
        Ok(Ok(Some(r))) => r,
        _ => return Ok(()),
    };
    state.log.lock().unwrap().push(request.clone());
    let name = request.path.strip_prefix("/push/").unwrap_or_default().to_owned();
    let mut gate = None;
    let mut stalled = false;
    let reply = {
        let mut paths = state.paths.lock().unwrap();
        match paths.get_mut(&name) {
            None => Reply::status(404),
            Some(path) => {
                let expected = state.vapid.lock().unwrap().clone();
                let checked = check(&request, &path.keys, expected.as_deref());
                let reply = match &checked {
                    Ok(_) => path.script.pop_front().unwrap_or(path.default),
                    Err(_) => Reply::status(400),
                };
                let _ = path.phone.send(checked.map(|(plaintext, json, claims)| Push {
                    request: request.clone(),
                    plaintext,
                    json,
                    claims,
                    status: reply.status,
                }));
                gate = path.gate.take();
                stalled = path.stalled;
                reply
            }
        }
    };
    if stalled {
        std::future::pending::<()>().await;
    }
    if let Some(gate) = gate {
        let _ = gate.await;
    }
    let mut head = format!("HTTP/1.1 {} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n", reply.status);
    if let Some(secs) = reply.retry_after {
        head.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.shutdown().await
}

/// `None` when the peer closed or sent something that is not HTTP.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else { return Ok(None) };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path)) = (first.next(), first.next()) else { return Ok(None) };
    let (method, path) = (method.to_owned(), path.to_owned());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return Ok(None);
    }
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request { method, path, headers, body: buf[head_end..head_end + len].to_vec(), arrived: Instant::now() }))
}

/// Everything a push service and the phone check; the decrypted body, its
/// JSON and the JWT claims, or why the request is refused.
fn check(
    req: &Request,
    keys: &ece::SubscriberKeys,
    expected_vapid: Option<&[u8]>,
) -> Result<(Vec<u8>, serde_json::Value, serde_json::Value), String> {
    if req.method != "POST" {
        return Err(format!("method {}", req.method));
    }
    if req.header("content-encoding") != Some("aes128gcm") {
        return Err(format!("Content-Encoding {:?}", req.header("content-encoding")));
    }
    if req.header("ttl").and_then(|t| t.parse::<u32>().ok()).is_none() {
        return Err(format!("TTL {:?}", req.header("ttl")));
    }
    let authorization = req.header("authorization").ok_or("no Authorization")?;
    let (token, k) =
        vapid::parse_authorization(authorization).ok_or_else(|| format!("Authorization {authorization:?}"))?;
    let expected = expected_vapid.ok_or("VAPID key unknown (expect_vapid not called)")?;
    if k != expected {
        return Err("k is not the published VAPID key".into());
    }
    let claims = vapid::verify_jwt(&token, &k).map_err(|e| e.to_string())?;
    if claims["aud"] != "http://127.0.0.1" {
        return Err(format!("aud {}", claims["aud"]));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err(format!("exp {} (now {now})", claims["exp"]));
    }
    if claims["sub"].as_str().is_none_or(str::is_empty) {
        return Err(format!("sub {}", claims["sub"]));
    }
    let plaintext = ece::decrypt(&req.body, &keys.private, &keys.auth).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&plaintext)
        .map_err(|e| format!("body is not JSON ({e}): {}", String::from_utf8_lossy(&plaintext)))?;
    if !json.is_object() {
        return Err(format!("body is not a JSON object: {json}"));
    }
    Ok((plaintext, json, claims))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// base64url without padding (RFC 4648 §5), as subscriptions carry keys.
pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            let c = ALPHABET[(n >> (18 - 6 * i) & 63) as usize];
            out.push(match c {
                b'+' => '-',
                b'/' => '_',
                c => c as char,
            });
        }
    }
    out
}

/// Standard or URL-safe base64, padding optional; `None` on anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'-' => 62,
            b'_' => 63,
            c => ALPHABET.iter().position(|&a| a == c)? as u32,
        };
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
