//! COI WebPush end to end (spec `coi-server.md` R2, R31–R40, C9–C11): the
//! real daemon, a real IMAP client and SMTP client on loopback, and a
//! loopback push service that plays the phone (`util::push_service`): it
//! verifies each push's VAPID signature against the key the server
//! publishes and decrypts it with the subscription's own keys.

use crate::util::push_service::{Phone, Push, PushService, Reply};
use crate::util::server::test_config;
use crate::util::{DOMAIN, ImapClient, PASSWORD, SmtpClient, TestServer, imap::Response};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) const ALICE: &str = "alice@example.org";
pub(crate) const VAPID: &str = "/private/vendor/vendor.dovecot/webpush/vapid";
pub(crate) const WEBPUSH: &str = "/private/vendor/vendor.dovecot/webpush";
pub(crate) const SUBS: &str = "/private/vendor/vendor.dovecot/webpush/subscriptions";
pub(crate) const ENABLE: &str = "SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled yes \
                      /private/vendor/vendor.dovecot/coi/config/message-filter active)";
pub(crate) const NOT_FOUND: &str = "NO [CANNOT] Subscription with matching validation not found";
/// Generous bound for anything the server does asynchronously.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// The OX app's id for subscriptions: a UUIDv4 (C9).
pub(crate) const UUID: &str = "31754ee7-d3ee-4226-b112-6895ed26fcf8";
/// A device name as a phone reports it, non-ASCII included (C9).
pub(crate) const DEVICE: &str = "Jürgen’s Pixel 7 — 📱";

/// The test config with loopback push services allowed: the harness's push
/// service listens on 127.0.0.1 over plain http, which production refuses.
pub(crate) fn config(dir: &std::path::Path) -> coimail_daemon::Config {
    let mut config = test_config(dir);
    config.coi.allow_loopback_push_endpoints = true;
    config
}

/// A server with `tweak` applied to [`config`], and alice.
pub(crate) async fn start_with(tweak: impl FnOnce(&mut coimail_daemon::Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    tweak(&mut config);
    let running = coimail_daemon::start(config).await.unwrap();
    running.directory().add_domain(DOMAIN).await.unwrap();
    running.directory().add_user(ALICE, PASSWORD, None).await.unwrap();
    TestServer { dir, running: Some(running) }
}

/// A default server, a push service that knows its VAPID key, and alice logged in.
pub(crate) async fn setup() -> (TestServer, PushService, ImapClient) {
    let server = start_with(|_| {}).await;
    let push = PushService::start().await;
    let mut imap = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    push.expect_vapid(&get(&mut imap, VAPID).await.unwrap());
    (server, push, imap)
}

/// An IMAP quoted string: `"` and `\` escaped, everything else (UTF-8 too) as is.
pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(crate) fn sub_entry(id: &str) -> String {
    format!("{SUBS}/{id}")
}

/// The entries of every `* METADATA` response in `data`, in order:
/// `(name, value)` with `None` for NIL; values quoted, literal or literal8.
pub(crate) fn metadata(data: &[u8]) -> Vec<(String, Option<String>)> {
    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn eat(&mut self, s: &[u8]) {
            assert!(
                self.b[self.i..].starts_with(s),
                "expected {:?} at {:?}",
                s,
                String::from_utf8_lossy(&self.b[self.i..])
            );
            self.i += s.len();
        }
        fn string(&mut self) -> Option<Vec<u8>> {
            if self.b[self.i..].starts_with(b"NIL") {
                self.i += 3;
                return None;
            }
            if self.b[self.i] == b'~' {
                self.i += 1;
            }
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    let mut out = Vec::new();
                    loop {
                        match self.b[self.i] {
                            b'\\' => {
                                out.push(self.b[self.i + 1]);
                                self.i += 2;
                            }
                            b'"' => {
                                self.i += 1;
                                return Some(out);
                            }
                            c => {
                                out.push(c);
                                self.i += 1;
                            }
                        }
                    }
                }
                b'{' => {
                    let close = self.i + self.b[self.i..].iter().position(|&c| c == b'}').unwrap();
                    let n: usize = std::str::from_utf8(&self.b[self.i + 1..close]).unwrap().parse().unwrap();
                    self.i = close + 1;
                    self.eat(b"\r\n");
                    let v = self.b[self.i..self.i + n].to_vec();
                    self.i += n;
                    Some(v)
                }
                _ => {
                    let len = self.b[self.i..].iter().position(|&c| c == b' ' || c == b')').unwrap();
                    let v = self.b[self.i..self.i + len].to_vec();
                    self.i += len;
                    Some(v)
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut p = P { b: data, i: 0 };
    while let Some(at) = p.b[p.i..].windows(11).position(|w| w == b"* METADATA ") {
        p.i += at + 11;
        p.string().unwrap();
        p.eat(b" (");
        loop {
            let name = String::from_utf8(p.string().unwrap()).unwrap();
            p.eat(b" ");
            let value = p.string().map(|v| String::from_utf8(v).unwrap());
            out.push((name, value));
            if p.b[p.i] == b')' {
                p.i += 1;
                break;
            }
            p.eat(b" ");
        }
    }
    out
}

/// `GETMETADATA "" (entry)` at depth 0: the value, checked to be the only
/// and exactly named entry (C10).
pub(crate) async fn get(imap: &mut ImapClient, entry: &str) -> Option<String> {
    let r = imap.command(&format!("GETMETADATA \"\" ({})", quoted(entry))).await;
    assert!(r.ok(), "{r:?}");
    let entries = metadata(&r.data);
    assert_eq!(entries.len(), 1, "{}", r.text());
    assert_eq!(entries[0].0, entry, "C10: the first entry is the requested one");
    entries.into_iter().next().unwrap().1
}

/// The stored subscription as JSON, or `None` when it is gone.
pub(crate) async fn get_sub(imap: &mut ImapClient, id: &str) -> Option<serde_json::Value> {
    get(imap, &sub_entry(id)).await.map(|v| serde_json::from_str(&v).unwrap())
}

/// `GETMETADATA (DEPTH 1) "" (root)`: every entry listed.
pub(crate) async fn list(imap: &mut ImapClient, root: &str) -> Vec<(String, Option<String>)> {
    let r = imap.command(&format!("GETMETADATA (DEPTH 1) \"\" ({})", quoted(root))).await;
    assert!(r.ok(), "{r:?}");
    metadata(&r.data)
}

pub(crate) async fn set(imap: &mut ImapClient, entry: &str, value: &str) -> Response {
    imap.command(&format!("SETMETADATA \"\" ({} {value})", quoted(entry))).await
}

/// Sends a subscription request and takes the validation push the server
/// sends before it answers; returns the push, the tagged response and when
/// the response was read.
pub(crate) async fn subscribe_raw(
    imap: &mut ImapClient,
    phone: &mut Phone,
    id: &str,
    json: &str,
) -> (Push, Response, Instant) {
    let tag = imap.tag();
    let cmd = format!("{tag} SETMETADATA \"\" ({} {})\r\n", quoted(&sub_entry(id)), quoted(json));
    imap.send_raw(cmd.as_bytes()).await;
    let push = phone.next(WAIT).await;
    let r = imap.until_tagged(&tag).await;
    (push, r, Instant::now())
}

/// The secret of a validation push, with the push's shape checked (R34).
pub(crate) fn secret(push: &Push) -> String {
    assert!(push.request.header("webpush-validation").is_some(), "R34: WebPush-Validation header");
    let obj = push.json.as_object().unwrap();
    assert_eq!(obj.len(), 1, "{}", push.json);
    let secret = obj["validation"].as_str().unwrap().to_owned();
    assert!(!secret.is_empty() && secret.len() <= 1024, "{secret}");
    secret
}

/// A validated subscription `id` of `phone`; returns its validation secret.
pub(crate) async fn subscribe(
    imap: &mut ImapClient,
    phone: &mut Phone,
    id: &str,
    msgtype: &str,
    extra: &str,
) -> String {
    let json = phone.subscription("OX COI Messenger", DEVICE, msgtype, extra);
    let (push, r, _) = subscribe_raw(imap, phone, id, &json).await;
    assert!(r.ok(), "{r:?}");
    let secret = secret(&push);
    let r = set(imap, &format!("{}/validate", sub_entry(id)), &quoted(&secret)).await;
    assert!(r.ok(), "{r:?}");
    secret
}

/// COI on with the `active` filter (C4), so chats are filed into COI/Chats.
pub(crate) async fn enable_coi(imap: &mut ImapClient) {
    let r = imap.command(ENABLE).await;
    assert!(r.ok(), "{r:?}");
}

/// Delivers `message` to alice over the MX port.
pub(crate) async fn deliver(server: &TestServer, from: &str, message: &str) {
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let r = smtp.send(from, &[ALICE], message.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
}

/// A one-to-one chat message as Delta Chat / OX COI send it.
pub(crate) fn chat(n: u32) -> String {
    format!(
        "From: Bob Example <bob@remote.test>\r\nTo: {ALICE}\r\nSubject: Chat: message {n}\r\n\
         Message-ID: <chat$direct{n}.x@remote.test>\r\nChat-Version: 1.0\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n\r\nchat {n}\r\n"
    )
}

/// A plain email (not a chat).
pub(crate) fn email(n: u32, from: &str) -> String {
    format!(
        "From: {from}\r\nTo: {ALICE}\r\nSubject: Email {n}\r\nMessage-ID: <mail{n}@remote.test>\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n\r\nemail {n}\r\n"
    )
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `YYYY-MM-DDThh:mm:ss+00:00` → Unix seconds; panics on any other shape.
pub(crate) fn rfc3339_utc(s: &str) -> i64 {
    let b = s.as_bytes();
    assert_eq!(b.len(), 25, "{s}");
    for (i, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        assert_eq!(b[i], c, "{s}");
    }
    assert_eq!(&s[19..], "+00:00", "{s}");
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// UIDVALIDITY and the UIDs of a mailbox.
pub(crate) async fn uids(imap: &mut ImapClient, mailbox: &str) -> (u32, Vec<u32>) {
    let r = imap.command(&format!("SELECT {mailbox}")).await;
    assert!(r.ok(), "{r:?}");
    let text = r.text();
    let uidvalidity = text
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no UIDVALIDITY: {text}"));
    let r = imap.command("UID FETCH 1:* (UID)").await;
    assert!(r.ok(), "{r:?}");
    let uids = r.text().lines().filter_map(|l| l.split("(UID ").nth(1)?.trim_end_matches(')').parse().ok()).collect();
    (uidvalidity, uids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_capability_is_advertised_after_login_only() {
    // R2 with the default config (WebPush on).
    let server = TestServer::start(&[ALICE]).await;
    let mut imap = ImapClient::connect(server.imap()).await;
    let r = imap.command("CAPABILITY").await;
    assert!(r.ok(), "{r:?}");
    assert!(!r.text().contains("WEBPUSH") && !r.text().contains(" COI"), "before login: {}", r.text());
    let r = imap.command(&format!("LOGIN \"{ALICE}\" \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    // R1: a CAPABILITY code on the LOGIN OK must be the full post-login list.
    if r.status.contains("[CAPABILITY ") {
        assert!(r.status.contains(" WEBPUSH") && r.status.contains(" COI"), "{}", r.status);
    }
    let r = imap.command("CAPABILITY").await;
    let text = r.text();
    let caps: Vec<&str> = text.trim_end().split(' ').collect();
    for cap in ["COI", "WEBPUSH", "METADATA"] {
        assert!(caps.contains(&cap), "after login, {cap} missing: {}", r.text());
    }

    // `[coi] webpush = false`: COI stays, WEBPUSH and the VAPID key go.
    let server = start_with(|c| c.coi.webpush = false).await;
    let mut imap = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    let r = imap.command("CAPABILITY").await;
    assert!(r.text().contains(" COI") && !r.text().contains("WEBPUSH"), "{}", r.text());
    assert_eq!(get(&mut imap, VAPID).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_vapid_key_is_a_read_only_pem_that_survives_a_restart() {
    // R31.
    let mut server = start_with(|_| {}).await;
    let mut imap = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    let r = imap.command(&format!("GETMETADATA \"\" {VAPID}")).await;
    assert!(r.ok(), "{r:?}");
    // CR/LF in the value: it must travel as a literal (R6).
    assert!(r.text().contains(&format!("{VAPID} {{177}}\r\n-----BEGIN PUBLIC KEY-----\n")), "{}", r.text());
    let pem = get(&mut imap, VAPID).await.unwrap();
    let lines: Vec<&str> = pem.split('\n').collect();
    assert_eq!(lines.first(), Some(&"-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert_eq!(lines.last(), Some(&"-----END PUBLIC KEY-----"), "no trailing newline: {pem:?}");
    let body = &lines[1..lines.len() - 1];
    assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64) && body.last().unwrap().len() <= 64, "{pem}");
    let der = crate::util::push_service::base64_decode(&body.concat()).unwrap();
    // SPKI { id-ecPublicKey, prime256v1 }, BIT STRING of an uncompressed point.
    assert_eq!(der.len(), 91, "{der:?}");
    assert_eq!(&der[..2], &[0x30, 0x59]);
    let ec_public_key = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let prime256v1 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    assert!(der.windows(9).any(|w| w == ec_public_key) && der.windows(10).any(|w| w == prime256v1));
    assert_eq!(&der[23..27], &[0x03, 0x42, 0x00, 0x04], "65-byte uncompressed point");

    // Read-only.
    let r = set(&mut imap, VAPID, "\"x\"").await;
    assert!(r.status.contains("NO [CANNOT]"), "{r:?}");
    let r = set(&mut imap, VAPID, "NIL").await;
    assert!(r.status.contains("NO [CANNOT]"), "{r:?}");
    assert_eq!(get(&mut imap, VAPID).await.as_deref(), Some(pem.as_str()));
    // Depth 1 below webpush: only vapid, however many subscriptions exist.
    let push = PushService::start().await;
    push.expect_vapid(&pem);
    let mut phone = push.phone("p");
    subscribe(&mut imap, &mut phone, UUID, "chat", "").await;
    let entries = list(&mut imap, WEBPUSH).await;
    assert_eq!(entries, vec![(VAPID.to_owned(), Some(pem.clone()))]);
    // Case-insensitive names, answered lower-cased (R7).
    let r = imap.command("GETMETADATA \"\" /PRIVATE/Vendor/vendor.dovecot/WEBPUSH/VAPID").await;
    assert_eq!(metadata(&r.data), vec![(VAPID.to_owned(), Some(pem.clone()))]);

    // The same key after a restart on the same data directory.
    drop(imap);
    server.stop().await;
    assert!(server.dir.path().join("data/vapid.p8").exists());
    server.running = Some(coimail_daemon::start(config(server.dir.path())).await.unwrap());
    let mut imap = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    assert_eq!(get(&mut imap, VAPID).await, Some(pem), "R31: stable across restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_subscription_is_validated_by_the_round_trip() {
    // R32–R35 with the OX client's exact requests (C9, C10).
    let (_server, push, mut imap) = setup().await;
    let mut phone = push.phone("ox-1");
    let json = phone.subscription("OX COI Messenger", DEVICE, "chat", "");
    assert!(json.starts_with("{\"client\":\"OX COI Messenger\",\"device\":"), "{json}");
    let before = now_unix();
    let (validation, r, answered) = subscribe_raw(&mut imap, &mut phone, UUID, &json).await;
    assert!(r.ok(), "{r:?}");
    // R32: the validation push went out before the tagged OK.
    assert!(validation.request.arrived < answered);
    assert_eq!(validation.status, 201);
    assert_eq!(validation.request.path, "/push/ox-1");
    let secret = secret(&validation);
    assert_eq!(validation.claims["aud"], "http://127.0.0.1");

    // Unvalidated, as the client reads it back.
    let stored = get_sub(&mut imap, UUID).await.unwrap();
    assert_eq!(stored["validated"], false);

    // Anything but the right secret, for this id, once, is refused (R33).
    let validate = format!("{}/validate", sub_entry(UUID));
    for (entry, value) in [
        (validate.as_str(), quoted(&format!("{secret}x"))),
        (validate.as_str(), "\"\"".to_owned()),
        (validate.as_str(), "NIL".to_owned()),
        (&format!("{}/validate", sub_entry("0badc0de-0000-4000-8000-000000000000")), quoted(&secret)),
    ] {
        let r = set(&mut imap, entry, &value).await;
        assert!(r.status.ends_with(NOT_FOUND), "{entry} {value}: {r:?}");
    }
    assert_eq!(get_sub(&mut imap, UUID).await.unwrap()["validated"], false);
    let r = set(&mut imap, &validate, &quoted(&secret)).await;
    assert!(r.ok(), "{r:?}");
    let r = set(&mut imap, &validate, &quoted(&secret)).await;
    assert!(r.status.ends_with(NOT_FOUND), "a second validation: {r:?}");

    // R35: what the client reads back. Exactly the fields, no secret.
    let raw = get(&mut imap, &sub_entry(UUID)).await.unwrap();
    assert!(!raw.contains(&secret), "{raw}");
    let stored: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let expected = serde_json::json!({
        "created": stored["created"],
        "validated": true,
        "client": "OX COI Messenger",
        "device": DEVICE,
        "msgtype": "chat",
        "resource": {"endpoint": phone.endpoint, "keys": {"p256dh": phone.p256dh(), "auth": phone.auth()}},
    });
    assert_eq!(stored, expected);
    let created = rfc3339_utc(stored["created"].as_str().unwrap());
    assert!((before..=now_unix()).contains(&created), "created {created}, test started {before}");
    assert!(raw.starts_with("{\"created\":"), "Dovecot's key order: {raw}");
    // The secret is nowhere a client can read.
    let r = imap.command("GETMETADATA (DEPTH infinity) \"\" (/private /shared)").await;
    assert!(r.ok(), "{r:?}");
    assert!(!r.text().contains(&secret), "{}", r.text());
    assert!(r.text().contains(UUID), "{}", r.text());
    // Exactly one validation push.
    assert!(phone.try_next().is_none());
    assert_eq!(push.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_validation_may_come_back_before_the_subscribe_answer() {
    // R32: the subscription is stored before the validation push, so a phone
    // that answers at once (over another connection) is not refused.
    let (server, push, mut imap) = setup().await;
    let mut other = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    let mut phone = push.phone("fast");
    let release = push.hold("fast");
    let tag = imap.tag();
    let json = phone.subscription("OX COI Messenger", DEVICE, "chat", "");
    imap.send_raw(format!("{tag} SETMETADATA \"\" ({} {})\r\n", quoted(&sub_entry(UUID)), quoted(&json)).as_bytes())
        .await;
    let validation = phone.next(WAIT).await;
    let r = set(&mut other, &format!("{}/validate", sub_entry(UUID)), &quoted(&secret(&validation))).await;
    assert!(r.ok(), "{r:?}");
    release.send(()).unwrap();
    let r = imap.until_tagged(&tag).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(get_sub(&mut imap, UUID).await.unwrap()["validated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_subscription_requests_are_checked() {
    // R32 errors, R35 echo of msgtype, §6 (all five msgtype spellings).
    let (_server, push, mut imap) = setup().await;
    let phone = push.phone("checks");
    let good = phone.subscription("OX COI Messenger", "dev", "chat", "");
    let cases = [
        (format!("{SUBS}/a/b"), quoted(&good), "NO [CANNOT]"),
        (sub_entry("with space"), quoted(&good), "NO [CANNOT]"),
        (sub_entry(UUID), quoted("{\"client\":"), "NO [CANNOT] Invalid JSON"),
        (sub_entry(UUID), quoted("[1,2]"), "NO [CANNOT] Invalid JSON"),
        (
            sub_entry(UUID),
            quoted(&good.replace("\"client\":\"OX COI Messenger\",", "")),
            "NO [CANNOT] Invalid subscription",
        ),
        (sub_entry(UUID), quoted(&good.replace("\"chat\"", "\"sms\"")), "NO [CANNOT] Invalid JSON"),
        (sub_entry(UUID), quoted(&good.replace(&phone.auth(), "AAAA")), "NO [CANNOT] Invalid subscription"),
        (sub_entry(UUID), quoted(&good.replace("http://", "ftp://")), "NO [CANNOT] Invalid subscription"),
    ];
    for (entry, value, expected) in cases {
        let r = set(&mut imap, &entry, &value).await;
        assert!(r.status.contains(expected), "{entry} {value}: {r:?}");
    }
    // Nothing was stored, nothing pushed.
    assert_eq!(list(&mut imap, SUBS).await, vec![]);
    assert!(push.requests().is_empty(), "{:?}", push.requests());

    // Spec and Dovecot spellings are all accepted and echoed as sent.
    let mut phones = Vec::new();
    for (i, msgtype) in ["chat", "mail", "email", "all", "any"].into_iter().enumerate() {
        let mut phone = push.phone(&format!("type-{msgtype}"));
        let id = format!("msgtype-{i}-0000000000");
        subscribe(&mut imap, &mut phone, &id, msgtype, "").await;
        assert_eq!(get_sub(&mut imap, &id).await.unwrap()["msgtype"], msgtype);
        phones.push(phone);
    }
    // Unknown keys are dropped; exclude_from is kept (R32).
    let mut phone = push.phone("extra");
    let id = "extra-keys-000000000";
    subscribe(&mut imap, &mut phone, id, "chat", ",\"extra\":1,\"exclude_from\":[\"a@b.test\"]").await;
    let stored = get_sub(&mut imap, id).await.unwrap();
    assert_eq!(stored.get("extra"), None, "{stored}");
    assert_eq!(stored["exclude_from"], serde_json::json!(["a@b.test"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_eleventh_subscription_is_over_the_limit() {
    // R32: 10 per user, unvalidated ones counted.
    let (_server, push, mut imap) = setup().await;
    let mut phones = Vec::new();
    for i in 0..10 {
        let mut phone = push.phone(&format!("limit-{i}"));
        let json = phone.subscription("OX COI Messenger", "dev", "chat", "");
        let (_, r, _) = subscribe_raw(&mut imap, &mut phone, &format!("limit-{i:02}-000000000"), &json).await;
        assert!(r.ok(), "{i}: {r:?}");
        phones.push(phone);
    }
    let eleventh = push.phone("limit-10");
    let json = eleventh.subscription("OX COI Messenger", "dev", "chat", "");
    let r = set(&mut imap, &sub_entry("limit-10-000000000"), &quoted(&json)).await;
    assert!(r.status.contains("NO [LIMIT]"), "{r:?}");
    assert_eq!(push.requests().len(), 10, "no validation push for a refused subscription");
    assert_eq!(list(&mut imap, SUBS).await.len(), 10);
    // Re-setting an existing id is a replacement, not an 11th.
    let phone = &mut phones[3];
    let json = phone.subscription("OX COI Messenger", "renamed", "chat", "");
    let (_, r, _) = subscribe_raw(&mut imap, phone, "limit-03-000000000", &json).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(get_sub(&mut imap, "limit-03-000000000").await.unwrap()["device"], "renamed");
    // Deleting one makes room.
    assert!(set(&mut imap, &sub_entry("limit-00-000000000"), "NIL").await.ok());
    let mut eleventh = eleventh;
    let json = eleventh.subscription("OX COI Messenger", "dev", "chat", "");
    let (_, r, _) = subscribe_raw(&mut imap, &mut eleventh, "limit-10-000000000", &json).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_refused_validation_push_fails_the_subscription() {
    // R32: the push service answers 410 to the validation push.
    let (_server, push, mut imap) = setup().await;
    let mut phone = push.phone("gone");
    push.answer("gone", Reply::GONE);
    let json = phone.subscription("OX COI Messenger", DEVICE, "chat", "");
    let (validation, r, _) = subscribe_raw(&mut imap, &mut phone, UUID, &json).await;
    assert_eq!(validation.status, 410);
    // A fixed text: statuses and connect errors would make SETMETADATA a port scanner.
    assert!(r.status.ends_with("NO [UNAVAILABLE] Failed to start endpoint validation"), "{r:?}");
    assert_eq!(get_sub(&mut imap, UUID).await, None, "nothing stored");
    assert_eq!(list(&mut imap, SUBS).await, vec![]);
    let r = set(&mut imap, &format!("{}/validate", sub_entry(UUID)), &quoted(&secret(&validation))).await;
    assert!(r.status.ends_with(NOT_FOUND), "{r:?}");

    // A push service that is not there at all: the same.
    let dead = format!("http://127.0.0.1:{}/push/x", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let json = json.replace(&phone.endpoint, &dead);
    let r = set(&mut imap, &sub_entry(UUID), &quoted(&json)).await;
    assert!(r.status.ends_with("NO [UNAVAILABLE] Failed to start endpoint validation"), "{r:?}");
    assert_eq!(get_sub(&mut imap, UUID).await, None);

    // A push service that does not know the signing key refuses (400), the
    // same way: this also shows the harness really checks `k` (C11).
    push.expect_vapid(&coimail_coi::webpush::vapid::VapidKey::generate().unwrap().public_pem());
    let mut phone = push.phone("other-key");
    let json = phone.subscription("OX COI Messenger", DEVICE, "chat", "");
    let r = set(&mut imap, &sub_entry(UUID), &quoted(&json)).await;
    assert!(r.status.contains("NO [UNAVAILABLE]"), "{r:?}");
    assert_eq!(phone.next_refusal(WAIT).await, "k is not the published VAPID key");
    assert_eq!(get_sub(&mut imap, UUID).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_unvalidated_subscription_expires_after_the_window() {
    // R33 with a 1 s window.
    let server = start_with(|c| c.coi.validation_window_secs = 1).await;
    let push = PushService::start().await;
    let mut imap = ImapClient::login(server.imap(), ALICE, PASSWORD).await;
    push.expect_vapid(&get(&mut imap, VAPID).await.unwrap());
    let mut phone = push.phone("slow");
    let mut fast = push.phone("fast");
    let json = phone.subscription("OX COI Messenger", DEVICE, "chat", "");
    let (validation, r, _) = subscribe_raw(&mut imap, &mut phone, UUID, &json).await;
    assert!(r.ok(), "{r:?}");
    subscribe(&mut imap, &mut fast, "validated-in-time-00", "chat", "").await;
    // Time passing is the point here: `created` has one-second resolution,
    // so the window is over once two whole seconds have passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = set(&mut imap, &format!("{}/validate", sub_entry(UUID)), &quoted(&secret(&validation))).await;
    assert!(r.status.ends_with(NOT_FOUND), "{r:?}");
    assert_eq!(get_sub(&mut imap, UUID).await, None);
    let listed: Vec<String> = list(&mut imap, SUBS).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(listed, vec![sub_entry("validated-in-time-00")], "validated ones stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_subscriptions_are_listed_read_and_deleted() {
    // R35, C10.
    let (_server, push, mut imap) = setup().await;
    let ids = ["b-subscription-0001", "a-subscription-0002", UUID];
    let mut phones = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut phone = push.phone(&format!("list-{i}"));
        subscribe(&mut imap, &mut phone, id, "chat", "").await;
        phones.push(phone);
    }
    let listed = list(&mut imap, SUBS).await;
    let mut names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| sub_entry(id)).collect();
    expected.sort();
    assert_eq!(names, expected);
    for (name, value) in &listed {
        let json: serde_json::Value = serde_json::from_str(value.as_deref().unwrap()).unwrap();
        let i = ids.iter().position(|id| name.ends_with(id)).unwrap();
        assert_eq!(json["resource"]["endpoint"], phones[i].endpoint, "{name}");
        assert_eq!(json["validated"], true);
    }
    // Depth 0 on the subtree root: nothing stored there.
    assert_eq!(get(&mut imap, SUBS).await, None);
    // A single read answers the requested entry first, even among several.
    let r = imap
        .command(&format!("GETMETADATA (DEPTH 0) \"\" ({} {})", quoted(&sub_entry(UUID)), quoted(&sub_entry(ids[0]))))
        .await;
    let entries = metadata(&r.data);
    assert_eq!(entries[0].0, sub_entry(UUID), "{}", r.text());
    assert_eq!(entries.len(), 2);

    // NIL deletes; deleting again (or something never there) is fine.
    for _ in 0..2 {
        let r = set(&mut imap, &sub_entry(UUID), "NIL").await;
        assert!(r.ok(), "{r:?}");
    }
    assert!(set(&mut imap, &sub_entry("never-existed-000000"), "NIL").await.ok());
    assert_eq!(get_sub(&mut imap, UUID).await, None);
    assert_eq!(list(&mut imap, SUBS).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_chat_delivery_pushes_the_message_summary() {
    // R36–R38, C9 step 4, C11.
    let (server, push, mut imap) = setup().await;
    enable_coi(&mut imap).await;
    let mut phone = push.phone("chat");
    let secret = subscribe(&mut imap, &mut phone, UUID, "chat", "").await;
    phone.try_next();
    let message = "From: Bob Example <bob@remote.test>\r\nTo: alice@example.org\r\nSubject: Chat: Hello\r\n\
                   Message-ID: <chat$group.4321dcba1234.S2571BC@remote.test>\r\nChat-Version: 1.0\r\n\
                   Date: Wed, 04 Dec 2019 14:51:37 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello group\r\n";
    let sent = now_unix();
    deliver(&server, "bob@remote.test", message).await;
    let got = phone.next(WAIT).await;
    assert_eq!(got.status, 201);

    // The HTTP request (R38).
    let req = &got.request;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/push/chat"));
    assert_eq!(req.header("ttl"), Some("30"));
    assert_eq!(req.header("content-encoding"), Some("aes128gcm"));
    assert_eq!(req.header("webpush-validation"), None, "only the validation push has it");
    assert!(req.body.len() <= 4096, "{}", req.body.len());
    assert_eq!(u32::from_be_bytes(req.body[16..20].try_into().unwrap()), 4096, "record size");
    assert_eq!(req.body[20], 65, "key id: the ephemeral P-256 point");
    // The JWT, already verified against the published key by the push service (C11).
    let claims = &got.claims;
    assert_eq!(claims["aud"], "http://127.0.0.1");
    assert_eq!(claims["sub"], "mailto:postmaster@mail.example.org");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(iat >= sent - 5 && iat <= now_unix() + 5 && exp > now_unix() && exp <= iat + 86_400, "{claims}");

    // The payload (R37), field by field, against what IMAP shows.
    let (uidvalidity, uids) = uids(&mut imap, "COI/Chats").await;
    assert_eq!(uids.len(), 1, "filed into COI/Chats (active filter)");
    let p = got.json.as_object().unwrap();
    assert_eq!(p["folder"], "COI/Chats");
    assert_eq!(p["uidvalidity"], uidvalidity);
    assert_eq!(p["uid"], uids[0]);
    assert_eq!(p["date"], "2019-12-04T14:51:37+00:00");
    assert_eq!(p["from-email"], "bob@remote.test");
    assert_eq!(p["from-name"], "Bob Example");
    assert_eq!(p["subject"], "Chat: Hello");
    assert_eq!(p["msg-id"], "<chat$group.4321dcba1234.S2571BC@remote.test>");
    assert_eq!(p["group-id"], "4321dcba1234");
    assert_eq!(p["content"], "hello group\r\n");
    assert_eq!(p.get("content-type"), None, "text/plain; charset=utf-8 is the default");
    assert_eq!(p.get("content-encoding"), None);
    let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["content", "date", "folder", "from-email", "from-name", "group-id", "msg-id", "subject", "uid", "uidvalidity"]
    );
    // Dovecot's field order, which the OX client was built against.
    let text = String::from_utf8(got.plaintext.clone()).unwrap();
    assert!(text.starts_with("{\"folder\":\"COI/Chats\",\"uidvalidity\":"), "{text}");
    assert!(!text.contains(&secret));
    // One delivery, one push.
    assert!(phone.try_next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_msgtype_decides_which_subscription_is_pushed() {
    // R36: `chat` gets chats, `email`/`mail` get the rest, `any` gets both.
    let (server, push, mut imap) = setup().await;
    enable_coi(&mut imap).await;
    let mut chat_phone = push.phone("chat");
    let mut mail_phone = push.phone("mail");
    let mut any_phone = push.phone("any");
    subscribe(&mut imap, &mut chat_phone, "sub-chat-0000000000", "chat", "").await;
    subscribe(&mut imap, &mut mail_phone, "sub-email-000000000", "email", "").await;
    subscribe(&mut imap, &mut any_phone, "sub-any-00000000000", "any", "").await;

    deliver(&server, "carol@remote.test", &email(1, "Carol <carol@remote.test>")).await;
    let got = mail_phone.next(WAIT).await;
    assert_eq!(got.json["folder"], "INBOX");
    assert_eq!(got.json["msg-id"], "<mail1@remote.test>");
    assert_eq!(got.json["subject"], "Email 1");
    assert_eq!(any_phone.next(WAIT).await.json["msg-id"], "<mail1@remote.test>");

    // The chat that follows is the first thing the chat phone sees.
    deliver(&server, "bob@remote.test", &chat(2)).await;
    let got = chat_phone.next(WAIT).await;
    assert_eq!(got.json["msg-id"], "<chat$direct2.x@remote.test>", "the email was not pushed to a chat subscription");
    assert_eq!(got.json["folder"], "COI/Chats");
    assert_eq!(any_phone.next(WAIT).await.json["msg-id"], "<chat$direct2.x@remote.test>");

    // ...and the email phone's next push is the next email, not the chat.
    deliver(&server, "carol@remote.test", &email(3, "carol@remote.test")).await;
    let got = mail_phone.next(WAIT).await;
    assert_eq!(got.json["msg-id"], "<mail3@remote.test>", "the chat was not pushed to an email subscription");
    assert_eq!(got.json["from-email"], "carol@remote.test");
    assert_eq!(got.json.get("from-name"), None, "no display name, no from-name");
    assert_eq!(any_phone.next(WAIT).await.json["msg-id"], "<mail3@remote.test>");
    assert!(chat_phone.try_next().is_none() && mail_phone.try_next().is_none() && any_phone.try_next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_skips_disposition_notifications_and_excluded_senders() {
    // R36: no push for an MDN (multipart/report) or for an exclude_from sender.
    let (server, push, mut imap) = setup().await;
    enable_coi(&mut imap).await;
    let mut phone = push.phone("any");
    let exclude = ",\"exclude_from\":[\"alice@example.org\",\"noisy@remote.test\"]";
    subscribe(&mut imap, &mut phone, UUID, "all", exclude).await;

    let mdn = "From: Bob <bob@remote.test>\r\nTo: alice@example.org\r\nSubject: Receipt Notification\r\n\
               Message-ID: <chat$mdn1.x@remote.test>\r\nChat-Version: 1.0\r\nDate: Wed, 25 Nov 2026 08:00:00 +0000\r\n\
               MIME-Version: 1.0\r\nContent-Type: Multipart/Report; report-type=disposition-notification; boundary=\"b1\"\r\n\
               \r\n--b1\r\nContent-Type: text/plain\r\n\r\nread\r\n--b1\r\n\
               Content-Type: message/disposition-notification\r\n\r\nOriginal-Message-ID: <chat$direct1.x@example.org>\r\n\
               Disposition: manual-action/MDN-sent-automatically; displayed\r\n--b1--\r\n";
    deliver(&server, "bob@remote.test", mdn).await;
    deliver(&server, "noisy@remote.test", &email(2, "Noisy <noisy@remote.test>")).await;
    deliver(&server, "bob@remote.test", &chat(3)).await;
    let got = phone.next(WAIT).await;
    assert_eq!(got.json["msg-id"], "<chat$direct3.x@remote.test>", "neither the MDN nor the excluded sender pushed");
    // Both were delivered all the same.
    let (_, chats) = uids(&mut imap, "COI/Chats").await;
    let (_, inbox) = uids(&mut imap, "INBOX").await;
    assert_eq!(chats.len() + inbox.len(), 3);
    assert!(phone.try_next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_gone_subscription_is_deleted_after_a_push() {
    // R39: 410 to a message push deletes the subscription; others stay.
    let (server, push, mut imap) = setup().await;
    enable_coi(&mut imap).await;
    let mut phone = push.phone("gone");
    let mut keep = push.phone("keep");
    subscribe(&mut imap, &mut phone, UUID, "chat", "").await;
    subscribe(&mut imap, &mut keep, "still-here-00000000", "chat", "").await;
    push.answer("gone", Reply::GONE);
    deliver(&server, "bob@remote.test", &chat(1)).await;
    assert_eq!(phone.next(WAIT).await.status, 410);
    keep.next(WAIT).await;
    // The deletion is the server's asynchronous follow-up: poll for it, bounded.
    let deadline = Instant::now() + WAIT;
    while get_sub(&mut imap, UUID).await.is_some() {
        assert!(Instant::now() < deadline, "subscription still there after a 410");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(get_sub(&mut imap, "still-here-00000000").await.is_some());
    deliver(&server, "bob@remote.test", &chat(2)).await;
    assert_eq!(keep.next(WAIT).await.json["msg-id"], "<chat$direct2.x@remote.test>");
    assert!(phone.try_next().is_none(), "no push to a deleted subscription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_too_many_requests_is_retried() {
    // R39: 429 with Retry-After: 0, then 201.
    let (server, push, mut imap) = setup().await;
    enable_coi(&mut imap).await;
    let mut phone = push.phone("busy");
    subscribe(&mut imap, &mut phone, UUID, "chat", "").await;
    push.script("busy", &[Reply::too_many(0), Reply::CREATED]);
    deliver(&server, "bob@remote.test", &chat(1)).await;
    let first = phone.next(WAIT).await;
    let second = phone.next(WAIT).await;
    assert_eq!((first.status, second.status), (429, 201));
    assert_eq!(first.plaintext, second.plaintext, "the same notification");
    assert_ne!(first.request.body, second.request.body, "encrypted afresh");
    assert_eq!(second.json["msg-id"], "<chat$direct1.x@remote.test>");
    assert_eq!(get_sub(&mut imap, UUID).await.unwrap()["validated"], true, "a 429 keeps the subscription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_append_of_a_chat_does_not_push() {
    // R36: deliveries only, never APPEND.
    let (server, push, mut imap) = setup().await;
    enable_coi(&mut imap).await;
    let mut phone = push.phone("append");
    subscribe(&mut imap, &mut phone, UUID, "any", "").await;
    for mailbox in ["COI/Chats", "INBOX"] {
        let message = chat(1);
        let tag = imap.tag();
        imap.send_raw(format!("{tag} APPEND {mailbox} {{{}+}}\r\n{message}\r\n", message.len()).as_bytes()).await;
        let r = imap.until_tagged(&tag).await;
        assert!(r.ok(), "{r:?}");
    }
    deliver(&server, "bob@remote.test", &chat(2)).await;
    let got = phone.next(WAIT).await;
    assert_eq!(got.json["msg-id"], "<chat$direct2.x@remote.test>", "the APPENDs were not pushed");
    assert_eq!(got.json["uid"], 2, "after the appended one");
    assert!(phone.try_next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn webpush_chat_subscription_gets_nothing_while_coi_is_off() {
    // R40 and §6: without COI no `$Chat`, so a chat is mail to WebPush;
    // turning COI off keeps the subscriptions (Dovecot does not drop them).
    let (server, push, mut imap) = setup().await;
    let mut chat_phone = push.phone("chat");
    let mut mail_phone = push.phone("mail");
    subscribe(&mut imap, &mut chat_phone, "sub-chat-0000000000", "chat", "").await;
    subscribe(&mut imap, &mut mail_phone, "sub-mail-0000000000", "mail", "").await;

    deliver(&server, "bob@remote.test", &chat(1)).await;
    let got = mail_phone.next(WAIT).await;
    assert_eq!(
        (got.json["msg-id"].as_str(), got.json["folder"].as_str()),
        (Some("<chat$direct1.x@remote.test>"), Some("INBOX"))
    );

    enable_coi(&mut imap).await;
    deliver(&server, "bob@remote.test", &chat(2)).await;
    let got = chat_phone.next(WAIT).await;
    assert_eq!(got.json["msg-id"], "<chat$direct2.x@remote.test>", "chat 1 (COI off) was not pushed as a chat");
    assert_eq!(got.json["folder"], "COI/Chats");

    let r = set(&mut imap, "/private/vendor/vendor.dovecot/coi/config/enabled", "NIL").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(list(&mut imap, SUBS).await.len(), 2, "disabling COI keeps the subscriptions");
    deliver(&server, "bob@remote.test", &chat(3)).await;
    assert_eq!(mail_phone.next(WAIT).await.json["msg-id"], "<chat$direct3.x@remote.test>");
    assert!(chat_phone.try_next().is_none() && mail_phone.try_next().is_none());
}
