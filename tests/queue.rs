//! The outbound queue end to end: two coimail instances, a.test on
//! 127.0.0.2 and b.test on 127.0.0.3, with MX records from the test's own
//! DNS server. Submission to the other domain travels port to port; a
//! server that is down is retried until it is back; an unknown user
//! bounces into the sender's INBOX; `coimail queue` shows and drives it;
//! SIGKILL loses nothing that was acknowledged.
//!
//! Against fake remote servers (`util::smtp::FakeMx`, on 127.0.0.4 and
//! 127.0.0.5): the per-destination connection limit, `relayed` and
//! `delayed` DSNs, and no SMTPUTF8/8BITMIME downgrade.

use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::{MailHost, common_port, host_config};
use crate::util::server::cli;
use crate::util::smtp::{FakeMx, FakeState};
use crate::util::{self, ChildServer, SmtpClient};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ALICE: &str = "alice@a.test";
const BOB: &str = "bob@b.test";
const WAIT: Duration = Duration::from_secs(30);
const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Fake remote servers.
const IP_F1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const IP_F2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

struct Pair {
    dns: TestDns,
    a: MailHost,
    b: MailHost,
}

fn zone() -> Zone {
    Zone::default()
        .mx("a.test", 10, "mx.a.test")
        .a("mx.a.test", IP_A)
        .mx("b.test", 10, "mx.b.test")
        .a("mx.b.test", IP_B)
        // SPF, which the receiving host's inbound checks evaluate.
        .txt("a.test", "v=spf1 ip4:127.0.0.0/8 -all") // outbound connections come from 127.0.0.1
        .txt("b.test", "v=spf1 ip4:127.0.0.0/8 -all")
        // RFC 7505 null MX, and a domain with only an A record (implicit MX).
        .mx("null.test", 0, "")
        .a("implicit.test", IP_B)
        // A cloud metadata endpoint and a unique local IPv6 address as MX.
        .mx("metadata.test", 10, "mx1.metadata.test")
        .mx("metadata.test", 20, "mx2.metadata.test")
        .a("mx1.metadata.test", Ipv4Addr::new(169, 254, 169, 254))
        .aaaa("mx2.metadata.test", "fd00::25".parse().unwrap())
}

async fn pair() -> Pair {
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_B)]);
    let dns = TestDns::start(zone()).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = host_config(da.path(), "a.test", IP_A.into(), port, dns.addr);
    let cb = host_config(db.path(), "b.test", IP_B.into(), port, dns.addr);
    let a = MailHost::start(da, ca, "a.test", &[ALICE]).await;
    let b = MailHost::start(db, cb, "b.test", &[BOB]).await;
    Pair { dns, a, b }
}

fn message(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello from {from}.\r\n.dot line\r\n")
        .into_bytes()
}

/// Writes the host's config where the `coimail` CLI can read it.
fn config_file(host: &MailHost) -> PathBuf {
    let path = host.dir.path().join("coimail.toml");
    std::fs::write(&path, toml::to_string(&host.config).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_one_domain_mails_a_user_of_the_other_and_back() {
    let p = pair().await;
    let r = p.a.submit(ALICE, &[BOB], &message(ALICE, BOB, "over the wire")).await;
    assert!(r.starts_with("250 2.0.0 OK, queued as"), "{r}");
    let inbox = p.b.wait_inbox(BOB, 1, WAIT).await;
    let m = &inbox[0];
    // B's inbound checks: SPF passes for a.test (nothing is DKIM-signed yet).
    assert!(m.starts_with("Return-Path: <alice@a.test>\r\nAuthentication-Results: mail.b.test;"), "{m}");
    assert!(m.contains("spf=pass (mail.b.test: domain of alice@a.test designates 127.0.0.1"), "{m}");
    assert!(m.contains("\r\nReceived: from mail.a.test ("), "{m}");
    assert!(m.contains("by mail.b.test with ESMTPS id"), "opportunistic STARTTLS: {m}");
    assert!(m.contains("by mail.a.test with ESMTPA id"), "the submission hop: {m}");
    assert!(m.contains("\r\nMessage-ID: <") && m.contains("\r\nDate: "), "added on submission: {m}");
    assert!(m.ends_with("Subject: over the wire\r\n\r\nHello from alice@a.test.\r\n.dot line\r\n"), "{m:?}");
    assert_eq!(m.matches("Return-Path:").count(), 1, "{m}");
    p.a.wait_queue_empty(WAIT).await;
    assert!(p.dns.queries.lock().unwrap().iter().any(|q| q == "b.test. MX"), "{:?}", p.dns.queries);

    let r = p.b.submit(BOB, &[ALICE], &message(BOB, ALICE, "and back")).await;
    assert!(r.starts_with("250"), "{r}");
    let inbox = p.a.wait_inbox(ALICE, 1, WAIT).await;
    assert!(inbox[0].contains("Subject: and back\r\n"), "{}", inbox[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_remote_user_bounces_into_the_senders_inbox() {
    let p = pair().await;
    let r = p.a.submit(ALICE, &["nobody@b.test", BOB], &message(ALICE, BOB, "half of it")).await;
    assert!(r.starts_with("250"), "{r}");
    assert!(p.b.wait_inbox(BOB, 1, WAIT).await[0].contains("Subject: half of it"));
    let bounce = p.a.wait_inbox(ALICE, 1, WAIT).await.remove(0);
    for expected in [
        "Return-Path: <>\r\n",
        "Subject: Undelivered Mail Returned to Sender",
        "report-type=\"delivery-status\"",
        "Reporting-MTA: dns; mail.a.test\r\n",
        "Final-Recipient: rfc822;nobody@b.test\r\n",
        "Action: failed\r\n",
        "Status: 5.1.1\r\n",
        "Remote-MTA: dns; mx.b.test\r\n",
        "Diagnostic-Code: smtp; 550 5.1.1 no such user here\r\n",
        "Subject: half of it",
    ] {
        assert!(bounce.contains(expected), "bounce lacks {expected:?}:\n{bounce}");
    }
    assert!(!bounce.contains("Final-Recipient: rfc822;bob@b.test"), "{bounce}");
    p.a.wait_queue_empty(WAIT).await;
    assert_eq!(p.a.inbox(ALICE).await.len(), 1, "exactly one bounce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_decide_the_route_and_the_bounce_says_why() {
    let p = pair().await;
    let rcpts = ["x@nxdomain.test", "y@null.test", "z@implicit.test"];
    let r = p.a.submit(ALICE, &rcpts, &message(ALICE, "x@nxdomain.test", "routes")).await;
    assert!(r.starts_with("250"), "{r}");
    let bounce = p.a.wait_inbox(ALICE, 1, WAIT).await.remove(0);
    for expected in [
        "Final-Recipient: rfc822;x@nxdomain.test\r\nAction: failed\r\nStatus: 5.1.2\r\n",
        "Final-Recipient: rfc822;y@null.test\r\nAction: failed\r\nStatus: 5.1.10\r\n",
        // No MX: the domain's own A record (b.test's server, which is no relay).
        "Final-Recipient: rfc822;z@implicit.test\r\nAction: failed\r\nStatus: 5.7.1\r\nRemote-MTA: dns; implicit.test\r\n",
    ] {
        assert!(bounce.contains(expected), "bounce lacks {expected:?}:\n{bounce}");
    }
    p.a.wait_queue_empty(WAIT).await;
    assert_eq!(p.a.inbox(ALICE).await.len(), 1, "one bounce for all three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_far_side_down_it_is_retried_and_delivered_when_it_comes_back() {
    let mut p = pair().await;
    p.b.stop().await;
    let r = p.a.submit(ALICE, &[BOB], &message(ALICE, BOB, "patience")).await;
    assert!(r.starts_with("250"), "{r}");
    let config = config_file(&p.a);
    // Two failed attempts (1 s apart), visible in `coimail queue list`.
    let deadline = tokio::time::Instant::now() + WAIT;
    let listing = loop {
        let (ok, out, err) = cli(&config, &["queue", "list"], None);
        assert!(ok, "{err}");
        if out.contains(" 2 attempts") {
            break out;
        }
        assert!(tokio::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let refused = "    bob@b.test  pending  451 4.4.1 mx.b.test[127.0.0.3]: ";
    assert!(listing.contains(" from alice@a.test ") && listing.contains(refused), "{listing}");
    p.b.restart().await;
    let inbox = p.b.wait_inbox(BOB, 1, WAIT).await;
    assert!(inbox[0].contains("Subject: patience"), "{}", inbox[0]);
    p.a.wait_queue_empty(WAIT).await;
    let (ok, out, _) = cli(&config, &["queue", "list"], None);
    assert!(ok && out.contains("the queue is empty"), "{out}");
    assert!(p.a.inbox(ALICE).await.is_empty(), "no bounce");
    assert_eq!(p.b.inbox(BOB).await.len(), 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_cli_flushes_and_deletes_and_the_queue_survives_restart() {
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_B)]);
    let dns = TestDns::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = host_config(dir.path(), "a.test", IP_A.into(), port, dns.addr);
    config.queue.retry_initial_secs = 3600;
    config.queue.retry_max_secs = 3600;
    let mut a = MailHost::start(dir, config, "a.test", &[ALICE]).await;
    let r = a.submit(ALICE, &[BOB], &message(ALICE, BOB, "nowhere to go")).await;
    assert!(r.starts_with("250"), "{r}");
    let attempts = |a: &MailHost| {
        let entries = a.running.as_ref().unwrap().store().spool_list().unwrap();
        entries.first().map(|e| (e.id, e.attempts))
    };
    let wait_attempts = |n: u32| {
        let a = &a;
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while attempts(a).unwrap().1 < n {
                assert!(tokio::time::Instant::now() < deadline, "attempt {n} never happened");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_attempts(1).await;
    let config = config_file(&a);
    let (ok, out, err) = cli(&config, &["queue", "flush"], None);
    assert!(ok && out.contains("1 queued message(s) will be tried now"), "{out} {err}");
    wait_attempts(2).await;
    // Restart: the entry and its history are still there.
    a.stop().await;
    let (ok, out, _) = cli(&config, &["queue", "list"], None);
    assert!(ok && out.contains(" 2 attempts "), "offline listing: {out}");
    a.restart().await;
    let (id, n) = attempts(&a).unwrap();
    assert_eq!(n, 2);
    let (ok, _, err) = cli(&config, &["queue", "delete", "999999"], None);
    assert!(!ok && err.contains("no queued message 999999"), "{err}");
    let (ok, out, err) = cli(&config, &["queue", "delete", &id.to_string()], None);
    assert!(ok && out.contains(&format!("queued message {id} deleted")), "{out} {err}");
    assert!(attempts(&a).is_none());
    assert!(a.inbox(ALICE).await.is_empty(), "deleting does not bounce");
}

/// Submits numbered messages to bob@b.test until the connection breaks;
/// records each number acknowledged with 250.
async fn submit_storm(addr: SocketAddr, client: usize, acked: Arc<Mutex<BTreeSet<usize>>>) {
    let Ok(stream) = TcpStream::connect(addr).await else { return };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line);
            }
        }
    }
    let auth = crate::util::mailhost::base64(format!("\0{ALICE}\0{}", util::PASSWORD).as_bytes());
    for line in ["".to_owned(), "EHLO storm.test\r\n".to_owned(), format!("AUTH PLAIN {auth}\r\n")] {
        if w.write_all(line.as_bytes()).await.is_err() || reply(&mut r).await.is_none() {
            return;
        }
    }
    for i in 0.. {
        let n = client * 100_000 + i;
        let tx = format!("MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n");
        if w.write_all(tx.as_bytes()).await.is_err() {
            return;
        }
        for expect in ["250", "250", "354"] {
            match reply(&mut r).await {
                Some(l) if l.starts_with(expect) => {}
                _ => return,
            }
        }
        let body = String::from_utf8(util::message(n, BOB)).unwrap().replace("sender@remote.test", ALICE);
        let data = format!("{}.\r\n", body.replace("\r\n.", "\r\n.."));
        if w.write_all(data.as_bytes()).await.is_err() {
            return;
        }
        match reply(&mut r).await {
            Some(l) if l.starts_with("250") => {
                acked.lock().unwrap().insert(n);
            }
            _ => return,
        }
    }
}

/// Message numbers in bob's INBOX, and how many copies there are.
async fn delivered(b: &MailHost) -> (BTreeSet<usize>, usize) {
    let inbox = b.inbox(BOB).await;
    let found =
        inbox.iter().filter_map(|m| m.split("Message-ID: <msg-").nth(1)?.split('@').next()?.parse().ok()).collect();
    (found, inbox.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_queued_message() {
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_B)]);
    let dns = TestDns::start(zone()).await;
    let db = tempfile::tempdir().unwrap();
    let cb = host_config(db.path(), "b.test", IP_B.into(), port, dns.addr);
    let b = MailHost::start(db, cb, "b.test", &[BOB]).await;
    let da = tempfile::tempdir().unwrap();
    let ca = host_config(da.path(), "a.test", IP_A.into(), port, dns.addr);
    std::fs::write(da.path().join("coimail.toml"), toml::to_string(&ca).unwrap()).unwrap();
    let mut a = ChildServer::spawn(da.path());
    assert!(a.cli(&["domain", "add", "a.test"], None).0);
    assert!(a.cli(&["user", "add", ALICE], Some(&format!("{}\n", util::PASSWORD))).0);

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let addr = a.addrs().submission[0];
    let clients: Vec<_> = (0..8).map(|c| tokio::spawn(submit_storm(addr, c, acked.clone()))).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 40 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill_hard();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40, "the storm made too little progress: {}", acked.len());
    let _a = ChildServer::spawn(da.path());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (found, copies) = loop {
        let (found, copies) = delivered(&b).await;
        if acked.is_subset(&found) || tokio::time::Instant::now() > deadline {
            break (found, copies);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lost: Vec<_> = acked.difference(&found).collect();
    println!("queue SIGKILL: {} acknowledged, {} delivered ({copies} copies)", acked.len(), found.len());
    assert!(lost.is_empty(), "acknowledged but never delivered: {lost:?}");
}

/// a.test alone, with the fake servers' names in DNS; its MX port is the
/// one the fakes listen on.
struct WithFakes {
    _dns: TestDns,
    a: MailHost,
    port: u16,
}

async fn with_fakes(tweak: impl FnOnce(&mut coimail_daemon::Config)) -> WithFakes {
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_F1), IpAddr::V4(IP_F2)]);
    let zone = zone()
        // One destination, two servers of equal preference.
        .mx("slow.test", 10, "mx1.slow.test")
        .mx("slow.test", 10, "mx2.slow.test")
        .a("mx1.slow.test", IP_F1)
        .a("mx2.slow.test", IP_F2)
        // A server without DSN, SMTPUTF8 or 8BITMIME, and one with all three.
        .mx("plain.test", 10, "mx.plain.test")
        .a("mx.plain.test", IP_F1)
        .mx("modern.test", 10, "mx.modern.test")
        .a("mx.modern.test", IP_F2);
    let dns = TestDns::start(zone).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = host_config(dir.path(), "a.test", IP_A.into(), port, dns.addr);
    tweak(&mut config);
    let a = MailHost::start(dir, config, "a.test", &[ALICE]).await;
    WithFakes { _dns: dns, a, port }
}

impl WithFakes {
    async fn fake(&self, ip: Ipv4Addr, state: &Arc<FakeState>) -> FakeMx {
        FakeMx::start(SocketAddr::new(ip.into(), self.port), state.clone()).await
    }

    /// Submits as alice with MAIL and RCPT lines as given (DSN parameters, SMTPUTF8).
    async fn submit(&self, mail: &str, rcpts: &[&str], message: &[u8]) -> String {
        let mut c = SmtpClient::connect(self.a.submission()).await;
        assert!(c.cmd("EHLO laptop.test").await.starts_with("250"));
        let auth = crate::util::mailhost::base64(format!("\0{ALICE}\0{}", util::PASSWORD).as_bytes());
        let r = c.cmd(&format!("AUTH PLAIN {auth}")).await;
        assert!(r.starts_with("235"), "{r}");
        c.transaction(mail, rcpts, message).await
    }

    fn attempts(&self) -> u32 {
        let entries = self.a.running.as_ref().unwrap().store().spool_list().unwrap();
        entries.first().map_or(0, |e| e.attempts)
    }

    async fn wait_attempts(&self, n: u32) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.attempts() < n {
            assert!(tokio::time::Instant::now() < deadline, "attempt {n} never happened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_messages_to_one_slow_domain_use_at_most_the_destination_limit() {
    let h = with_fakes(|c| c.queue.destination_concurrency = 2).await;
    let state = FakeState::new(&["8BITMIME"], Duration::from_millis(500));
    let (_mx1, _mx2) = (h.fake(IP_F1, &state).await, h.fake(IP_F2, &state).await);
    for i in 0..10 {
        let to = format!("u{i}@slow.test");
        let r = h.a.submit(ALICE, &[&to], &message(ALICE, &to, &format!("slow {i}"))).await;
        assert!(r.starts_with("250"), "{r}");
    }
    let seen = state.wait_transactions(10, WAIT).await;
    h.a.wait_queue_empty(WAIT).await;
    assert_eq!(state.max_open(), 2, "two at once over both servers of the domain, never more");
    let on_mx1 = seen.iter().filter(|t| t.server.map(|s| s.ip()) == Some(IP_F1.into())).count();
    println!("slow.test: {on_mx1} of 10 on mx1, {} on mx2 (equal preference: random order)", 10 - on_mx1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_success_is_relayed_only_by_servers_without_dsn() {
    let h = with_fakes(|_| {}).await;
    let plain = FakeState::new(&[], Duration::ZERO);
    let modern = FakeState::new(&["DSN", "8BITMIME", "SMTPUTF8"], Duration::ZERO);
    let (_f1, _f2) = (h.fake(IP_F1, &plain).await, h.fake(IP_F2, &modern).await);
    let rcpts = [
        "RCPT TO:<x@plain.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;X@plain.test",
        "RCPT TO:<y@modern.test> NOTIFY=SUCCESS",
        "RCPT TO:<z@plain.test>",
    ];
    let r =
        h.submit(&format!("MAIL FROM:<{ALICE}> ENVID=e-1"), &rcpts, &message(ALICE, "x@plain.test", "tell me")).await;
    assert!(r.starts_with("250"), "{r}");
    h.a.wait_queue_empty(WAIT).await;
    let sent = modern.transactions();
    assert_eq!(sent[0].rcpts, ["RCPT TO:<y@modern.test> NOTIFY=SUCCESS"], "passed on to the DSN server");
    assert!(sent[0].mail.contains("ENVID=e-1"), "{:?}", sent[0].mail);
    assert_eq!(plain.transactions()[0].rcpts, ["RCPT TO:<x@plain.test>", "RCPT TO:<z@plain.test>"], "no DSN there");
    let inbox = h.a.wait_inbox(ALICE, 1, WAIT).await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let report = &inbox[0];
    for expected in [
        "Return-Path: <>\r\n",
        "Subject: Successful Mail Delivery Report",
        "Original-Envelope-Id: e-1\r\n",
        "Original-Recipient: rfc822;X@plain.test\r\nFinal-Recipient: rfc822;x@plain.test\r\nAction: relayed\r\n\
         Status: 2.0.0\r\nRemote-MTA: dns; mx.plain.test\r\n",
        "Subject: tell me",
    ] {
        assert!(report.contains(expected), "report lacks {expected:?}:\n{report}");
    }
    assert!(!report.contains("y@modern.test") && !report.contains("z@plain.test"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_downgrade_utf8_and_8bit_mail_bounce_where_the_extensions_are_missing() {
    let h = with_fakes(|_| {}).await;
    let plain = FakeState::new(&[], Duration::ZERO);
    let modern = FakeState::new(&["DSN", "8BITMIME", "SMTPUTF8"], Duration::ZERO);
    let (_f1, _f2) = (h.fake(IP_F1, &plain).await, h.fake(IP_F2, &modern).await);
    let utf8 = format!("From: <{ALICE}>\r\nSubject: Grüße\r\n\r\nHallo Jörg\r\n").into_bytes();
    let mail = format!("MAIL FROM:<{ALICE}> SMTPUTF8");
    let r = h.submit(&mail, &["RCPT TO:<jörg@plain.test>", "RCPT TO:<jörg@modern.test>"], &utf8).await;
    assert!(r.starts_with("250"), "{r}");
    let eight_bit = format!("From: <{ALICE}>\r\nSubject: body only\r\n\r\nK\u{f6}ln\r\n").into_bytes();
    let mail = format!("MAIL FROM:<{ALICE}> BODY=8BITMIME");
    let r = h.submit(&mail, &["RCPT TO:<k@plain.test>", "RCPT TO:<k@modern.test>"], &eight_bit).await;
    assert!(r.starts_with("250"), "{r}");
    h.a.wait_queue_empty(WAIT).await;

    let sent = modern.transactions();
    assert_eq!(sent.len(), 2, "{sent:?}");
    // The two messages are queued apart and may be delivered in either order.
    let utf8_sent: Vec<_> = sent.iter().filter(|t| t.mail.ends_with(" SMTPUTF8")).collect();
    assert!(utf8_sent.len() == 1 && utf8_sent[0].rcpts == ["RCPT TO:<jörg@modern.test>"], "{sent:?}");
    let eight_bit_sent: Vec<_> = sent.iter().filter(|t| !t.mail.contains("SMTPUTF8")).collect();
    assert!(
        eight_bit_sent.len() == 1
            && eight_bit_sent[0].mail.contains(" BODY=8BITMIME")
            && eight_bit_sent[0].rcpts == ["RCPT TO:<k@modern.test>"],
        "{sent:?}"
    );
    assert!(plain.transactions().is_empty(), "nothing downgraded: {:?}", plain.transactions());
    let bounces = h.a.wait_inbox(ALICE, 2, WAIT).await;
    let all = bounces.join("\n");
    for expected in [
        "Final-Recipient: rfc822;jörg@plain.test\r\nAction: failed\r\nStatus: 5.6.7\r\nRemote-MTA: dns; mx.plain.test\r\n",
        "Final-Recipient: rfc822;k@plain.test\r\nAction: failed\r\nStatus: 5.6.3\r\nRemote-MTA: dns; mx.plain.test\r\n",
    ] {
        assert!(all.contains(expected), "bounces lack {expected:?}:\n{all}");
    }
    assert!(!all.contains("@modern.test\r\nAction"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delayed_report_per_recipient_even_across_a_restart() {
    let mut h = with_fakes(|c| c.queue.delay_warning_secs = 1).await;
    let state = FakeState::new(&["8BITMIME"], Duration::ZERO);
    *state.rcpt_reply.lock().unwrap() = "451 4.3.0 try again later".into();
    let _f1 = h.fake(IP_F1, &state).await;
    let rcpts = ["RCPT TO:<late@plain.test>", "RCPT TO:<quiet@plain.test> NOTIFY=NEVER"];
    let r = h.submit(&format!("MAIL FROM:<{ALICE}>"), &rcpts, &message(ALICE, "late@plain.test", "eventually")).await;
    assert!(r.starts_with("250"), "{r}");
    let inbox = h.a.wait_inbox(ALICE, 1, WAIT).await;
    let report = &inbox[0];
    for expected in [
        "Subject: Delayed Mail (still being retried)",
        "Final-Recipient: rfc822;late@plain.test\r\nAction: delayed\r\nStatus: 4.3.0\r\n",
        "Diagnostic-Code: smtp; 451 4.3.0 try again later\r\n",
        "Will-Retry-Until: ",
    ] {
        assert!(report.contains(expected), "report lacks {expected:?}:\n{report}");
    }
    assert!(!report.contains("quiet@plain.test"), "NOTIFY=NEVER: {report}");
    let n = h.attempts();
    h.wait_attempts(n + 2).await;
    h.a.stop().await;
    h.a.restart().await;
    let n = h.attempts();
    h.wait_attempts(n + 2).await;
    assert_eq!(h.a.inbox(ALICE).await.len(), 1, "no second delay report, not even after a restart");
    *state.rcpt_reply.lock().unwrap() = "250 2.1.5 ok".into();
    h.a.wait_queue_empty(WAIT).await;
    assert_eq!(state.transactions().len(), 1);
    assert_eq!(h.a.inbox(ALICE).await.len(), 1, "delivered: no success report without NOTIFY=SUCCESS");
}

/// With `allow_private_destinations` off (the default outside tests), MX
/// records that point at loopback (a fake server listens there and must see
/// nothing), link-local or unique local addresses are never connected to:
/// the recipients fail for good with 5.4.4, and the bounce says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_records_pointing_at_private_addresses_are_never_connected_to() {
    let f = with_fakes(|c| c.queue.allow_private_destinations = false).await;
    let state = FakeState::new(&["8BITMIME"], Duration::ZERO);
    let _fake = f.fake(IP_F1, &state).await;
    let rcpts = ["RCPT TO:<x@plain.test>", "RCPT TO:<y@metadata.test>"];
    let r = f.submit(&format!("MAIL FROM:<{ALICE}>"), &rcpts, &message(ALICE, "x@plain.test", "ssrf")).await;
    assert!(r.starts_with("250"), "{r}");
    let bounce = f.a.wait_inbox(ALICE, 1, WAIT).await.remove(0);
    for expected in [
        "Final-Recipient: rfc822;x@plain.test\r\nAction: failed\r\nStatus: 5.4.4\r\n",
        "mx.plain.test resolves only to private or special-purpose addresses (127.0.0.4)",
        "Final-Recipient: rfc822;y@metadata.test\r\nAction: failed\r\nStatus: 5.4.4\r\n",
        "mx2.metadata.test resolves only to private or special-purpose addresses (fd00::25)",
    ] {
        assert!(bounce.contains(expected), "bounce lacks {expected:?}:\n{bounce}");
    }
    f.a.wait_queue_empty(WAIT).await;
    assert_eq!(state.max_open(), 0, "the loopback server was never connected to");
    assert!(state.transactions().is_empty());
}
