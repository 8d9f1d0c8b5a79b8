//! Metrics and health (issue 12): `/metrics` read over HTTP by the
//! Prometheus project's own text parser (Python `prometheus_client`, which
//! `tests/run.sh` installs into its virtualenv; without it the parsing test
//! skips and says so), counters checked exactly as mail flows through a
//! daemon run as a child process (the recorder is per process, and other
//! tests share this one); `/healthz` 200 normally and 503, with the reason,
//! while the store cannot commit (tmpfs, root only, like tests/disk.rs).

use crate::disk::{Tmpfs, fill_to_the_brim};
use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::{base64, common_port};
use crate::util::server::{add_user, test_config};
use crate::util::smtp::{FakeMx, FakeState};
use crate::util::{self, ChildServer, ImapClient, SmtpClient, TestServer};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
/// The fake remote MX's own loopback address.
const REMOTE_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 61);
const WAIT: Duration = Duration::from_secs(60);

fn python() -> String {
    std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the parser cannot run here, if it cannot.
fn parser_missing() -> Option<String> {
    let ok = Command::new(python()).args(["-c", "import prometheus_client"]).output();
    match ok {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{} cannot import prometheus_client (run tests/run.sh, which installs it): {}",
            python(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )),
        Err(e) => Some(format!("no Python at {} ({e}); run tests/run.sh", python())),
    }
}

/// One `/metrics` as `prometheus_client` parsed it.
struct Scrape {
    /// Family name (as the parser names it) -> type.
    types: HashMap<String, String>,
    /// Family name -> help text.
    help: HashMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    async fn get(addr: SocketAddr) -> Scrape {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/prom_scrape.py");
        let out = tokio::process::Command::new(python())
            .arg(script)
            .arg(format!("http://{addr}/metrics"))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "prom_scrape.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ctype = v["content_type"].as_str().unwrap();
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "Content-Type {ctype}");
        let mut scrape = Scrape { types: HashMap::new(), help: HashMap::new(), samples: Vec::new() };
        for f in v["families"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap().to_owned();
            scrape.types.insert(name.clone(), f["type"].as_str().unwrap().to_owned());
            scrape.help.insert(name, f["help"].as_str().unwrap().to_owned());
            for s in f["samples"].as_array().unwrap() {
                let labels = s["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                scrape.samples.push((s["name"].as_str().unwrap().to_owned(), labels, s["value"].as_f64().unwrap()));
            }
        }
        scrape
    }

    /// The sum of the samples named `name` carrying all of `labels` (0 if none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The type of the family a metric named `name` in coimail belongs to
    /// (the parser names counter families without `_total`).
    fn type_of(&self, name: &str) -> Option<&str> {
        let family = name.strip_suffix("_total").unwrap_or(name);
        self.types.get(family).map(String::as_str)
    }
}

/// One HTTP/1.1 GET over a fresh connection: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Polls `/healthz` until `want(status, body)`; the last answer.
async fn healthz_until(addr: SocketAddr, want: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(addr, "/healthz").await;
        if want(status, &body) {
            return (status, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "/healthz stayed {status} {body:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Scrapes until `done` holds (the queue works in the background).
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = Scrape::get(addr).await;
        if done(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A message alice may submit (its From is hers).
fn from_alice(n: usize, to: &str) -> Vec<u8> {
    format!("From: {ALICE}\r\nTo: {to}\r\nSubject: out {n}\r\nMessage-ID: <out-{n}@example.org>\r\n\r\nHi.\r\n")
        .into_bytes()
}

async fn submission_client(addr: SocketAddr) -> SmtpClient {
    let mut c = SmtpClient::connect(addr).await;
    assert!(c.cmd("EHLO laptop.test").await.starts_with("250"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_mail_logins_and_idle_as_prometheus_client_parses_them() {
    if let Some(why) = parser_missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    // A remote domain whose MX is a fake server on its own loopback address.
    let fake_state = FakeState::new(&["8BITMIME"], Duration::ZERO);
    let port = common_port(&[REMOTE_MX.into()]);
    let fake = FakeMx::start(SocketAddr::new(REMOTE_MX.into(), port), fake_state.clone()).await;
    let dns =
        TestDns::start(Zone::default().mx("remote.test", 10, "mx.remote.test").a("mx.remote.test", REMOTE_MX)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.queue.resolvers = vec![dns.addr];
    config.queue.outbound_port = port;
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let server = ChildServer::spawn(dir.path());
    add_user(&server, ALICE);
    add_user(&server, BOB);
    let addrs = server.addrs().clone();
    let metrics = addrs.metrics[0];

    let before = Scrape::get(metrics).await;
    for &(name, kind, _) in coimail_daemon::metrics::METRICS {
        let want = match kind {
            coimail_daemon::metrics::Kind::Counter => "counter",
            coimail_daemon::metrics::Kind::Gauge => "gauge",
            coimail_daemon::metrics::Kind::Histogram => "histogram",
        };
        // Every metric is there from the start (counters at 0), typed and described.
        assert_eq!(before.type_of(name), Some(want), "{name}");
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(!before.help[family].is_empty(), "{name} has no HELP");
    }
    let delta =
        |after: &Scrape, name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);

    // IMAP: a failed and a good login, then IDLE.
    let mut imap = ImapClient::connect(addrs.imap[0]).await;
    let r = imap.command(&format!("LOGIN \"{ALICE}\" \"wrong password\"")).await;
    assert!(!r.ok(), "{}", r.status);
    let r = imap.command(&format!("LOGIN \"{ALICE}\" \"{}\"", util::PASSWORD)).await;
    assert!(r.ok(), "{}", r.status);
    assert!(imap.command("SELECT INBOX").await.ok());
    let tag = imap.tag();
    imap.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(imap.read_line().await.starts_with(b"+ "));
    let s = Scrape::get(metrics).await;
    assert_eq!(s.value("coimail_imap_idle_sessions", &[]), 1.0);
    assert_eq!(s.value("coimail_sessions", &[("protocol", "imap")]), 1.0);
    assert_eq!(delta(&s, "coimail_logins_total", &[("protocol", "imap"), ("result", "ok")]), 1.0);
    assert_eq!(delta(&s, "coimail_logins_total", &[("protocol", "imap"), ("result", "failed")]), 1.0);
    assert_eq!(delta(&s, "coimail_connections_total", &[("protocol", "imap"), ("listener", "imap")]), 1.0);

    // MX: one message for two local users; the IDLE session sees it.
    let mut mx = SmtpClient::connect(addrs.smtp[0]).await;
    let r = mx.send("someone@remote.test", &[ALICE, BOB], &util::message(1, ALICE)).await;
    assert!(r.starts_with("250"), "{r}");
    drop(mx);
    loop {
        let line = String::from_utf8_lossy(&imap.read_line().await).into_owned();
        if line.ends_with("EXISTS\r\n") {
            break;
        }
    }
    imap.send_raw(b"DONE\r\n").await;
    assert!(imap.until_tagged(&tag).await.ok());
    let r = imap.command("FETCH 1 BODY[]").await;
    assert!(r.ok() && r.text().contains("Hello 1."), "{}", r.status);

    // Submission: a failed and a good AUTH, then two messages out: the
    // remote server takes the first and refuses the second for good.
    let mut sub = submission_client(addrs.submission[0]).await;
    let r = sub.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{ALICE}\0nope").as_bytes()))).await;
    assert!(r.starts_with("535"), "{r}");
    let r = sub.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{ALICE}\0{}", util::PASSWORD).as_bytes()))).await;
    assert!(r.starts_with("235"), "{r}");
    let rcpt = |to: &str| format!("RCPT TO:<{to}>");
    let r = sub
        .transaction(&format!("MAIL FROM:<{ALICE}>"), &[&rcpt("ok@remote.test")], &from_alice(2, "ok@remote.test"))
        .await;
    assert!(r.starts_with("250"), "{r}");
    fake_state.wait_transactions(1, WAIT).await;
    *fake_state.rcpt_reply.lock().unwrap() = "550 5.1.1 no such user".into();
    let r = sub
        .transaction(&format!("MAIL FROM:<{ALICE}>"), &[&rcpt("gone@remote.test")], &from_alice(3, "gone@remote.test"))
        .await;
    assert!(r.starts_with("250"), "{r}");
    let s = scrape_until(metrics, "the queue sent one and bounced one, and emptied", |s| {
        s.value("coimail_queue_bounced_total", &[]) >= 1.0 && s.value("coimail_queue_size", &[]) == 0.0
    })
    .await;
    let (status, body) = http_get(metrics, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let expect = [
        ("coimail_connections_total", vec![("protocol", "smtp"), ("listener", "smtp")], 1.0),
        ("coimail_connections_total", vec![("protocol", "smtp"), ("listener", "submission")], 1.0),
        ("coimail_logins_total", vec![("protocol", "smtp"), ("result", "ok")], 1.0),
        ("coimail_logins_total", vec![("protocol", "smtp"), ("result", "failed")], 1.0),
        ("coimail_messages_received_total", vec![("via", "mx")], 1.0),
        ("coimail_messages_received_total", vec![("via", "submission")], 2.0),
        // Two recipients of the MX message; the bounce goes to alice's
        // INBOX from the queue, not through SMTP.
        ("coimail_messages_delivered_local_total", vec![], 2.0),
        ("coimail_queue_enqueued_total", vec![], 2.0),
        ("coimail_queue_sent_total", vec![], 1.0),
        ("coimail_queue_bounced_total", vec![], 1.0),
        ("coimail_queue_deferred_total", vec![], 0.0),
    ];
    for (name, labels, want) in &expect {
        assert_eq!(delta(&s, name, labels), *want, "{name} {labels:?}");
    }
    assert_eq!(s.value("coimail_imap_idle_sessions", &[]), 0.0, "IDLE ended");
    assert_eq!(s.value("coimail_sessions", &[("protocol", "smtp")]), 1.0, "the submission session is open");
    assert_eq!(s.value("coimail_queue_oldest_age_seconds", &[]), 0.0);
    assert!(s.value("coimail_disk_free_bytes", &[]) > 0.0);
    assert!(s.value("coimail_disk_reserve_bytes", &[]) > 0.0);
    // Every delivery, enqueue and queue record is a commit, each counted once in +Inf.
    let commits = delta(&s, "coimail_store_commit_seconds_count", &[]);
    assert!(commits >= 5.0, "{commits} commits");
    assert_eq!(delta(&s, "coimail_store_commit_seconds_bucket", &[("le", "+Inf")]), commits);
    assert!(delta(&s, "coimail_store_commit_seconds_sum", &[]) > 0.0);
    drop((sub, imap, fake));
}

/// The recorder is process-wide: daemons started in one process (as these
/// tests do) each serve it, and each says it is healthy. Needs no Python.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_in_one_process_share_the_recorder_and_answer_healthz() {
    let a = TestServer::start(&[ALICE]).await;
    let b = TestServer::start(&[BOB]).await;
    for server in [&a, &b] {
        let addr = server.addrs().metrics[0];
        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("# TYPE coimail_store_commit_seconds histogram"), "{body}");
        assert!(body.contains("coimail_store_commit_seconds_bucket{le=\"0.005\"}"), "{body}");
        assert!(body.contains("# TYPE coimail_queue_size gauge"), "{body}");
        assert_eq!(http_get(addr, "/healthz").await, (200, "ok\n".to_owned()));
        assert_eq!(http_get(addr, "/nothing").await.0, 404);
    }
}

/// `/healthz` on a data dir that fills up, and whose bodies cannot be written: 503 with the
/// reason while the store cannot take mail, 200 again once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_the_store_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("fs");
    let Some(_tmpfs) = Tmpfs::mount(&fs, "16m") else { return };
    let data = fs.join("data");
    let mut server = TestServer::start_with(&[ALICE], |c| c.server.data_dir = data.clone()).await;
    let addr = server.addrs().metrics[0];
    assert_eq!(http_get(addr, "/healthz").await, (200, "ok\n".to_owned()));

    // Below the free-space reserve: new mail is refused, so not healthy.
    let space = server.running.as_ref().unwrap().store().space().unwrap();
    let filler = fs.join("filler");
    std::fs::write(&filler, vec![0u8; (space.available - space.reserve / 2) as usize]).unwrap();
    let (status, body) = healthz_until(addr, |s, _| s == 503).await;
    assert!(body.contains("below the free-space reserve"), "{status} {body}");
    // What Docker's HEALTHCHECK runs says so too, and fails.
    let (ok, out, err) =
        util::server::cli(&dir.path().join("unused.toml"), &["health", "--addr", &addr.to_string()], None);
    assert!(!ok && err.contains("unhealthy (HTTP 503") && err.contains("below the free-space reserve"), "{out} {err}");
    std::fs::remove_file(&filler).unwrap();
    healthz_until(addr, |s, _| s == 200).await;

    // Bodies cannot be written: their directory read-only (a read-only bind
    // mount over it; the index's files stay open read-write, so the whole
    // filesystem cannot be remounted read-only under the daemon).
    let blobs = data.join("blobs");
    let bound = Command::new("mount").arg("--bind").arg(&blobs).arg(&blobs).status().unwrap();
    assert!(bound.success(), "mount --bind");
    let ro = Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&blobs).status().unwrap();
    assert!(ro.success(), "mount -o remount,bind,ro");
    let (_, body) = healthz_until(addr, |s, _| s == 503).await;
    assert!(body.starts_with("store cannot commit: ") && body.contains("Read-only"), "{body}");
    assert!(Command::new("umount").arg(&blobs).status().unwrap().success());
    healthz_until(addr, |s, _| s == 200).await;
    server.stop().await;
}

/// A disk that is truly full with the reserve turned off: the probe's own
/// write meets ENOSPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_on_a_full_disk_without_a_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("fs");
    let Some(_tmpfs) = Tmpfs::mount(&fs, "16m") else { return };
    let data = fs.join("data");
    let mut server = TestServer::start_with(&[ALICE], |c| {
        c.server.data_dir = data.clone();
        c.store.min_free_percent = 0;
    })
    .await;
    let addr = server.addrs().metrics[0];
    assert_eq!(http_get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    let filler = fill_to_the_brim(&fs.join("filler"));
    let (_, body) = healthz_until(addr, |s, _| s == 503).await;
    assert!(body.contains("full"), "{body}");
    std::fs::remove_file(&filler).unwrap();
    healthz_until(addr, |s, _| s == 200).await;
    server.stop().await;
}

/// docs/METRICS.md names every metric the daemon exports, and no other.
#[test]
fn the_metrics_doc_lists_every_metric() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/METRICS.md")).unwrap();
    let documented: Vec<&str> = doc.lines().filter_map(|l| l.strip_prefix("| `coimail_")?.split('`').next()).collect();
    let exported: Vec<String> =
        coimail_daemon::metrics::METRICS.iter().map(|(n, _, _)| n.trim_start_matches("coimail_").to_owned()).collect();
    assert_eq!(documented, exported, "docs/METRICS.md and metrics::METRICS differ (same order)");
}

/// WebPush outcomes, counted as the phone sees them (child process again:
/// other tests push too). The validation push of the subscription is not a
/// queued push and is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_counters_follow_webpush_deliveries() {
    use crate::coi_webpush::{UUID, VAPID, chat, enable_coi, get, subscribe};
    use crate::util::push_service::{PushService, Reply};
    if let Some(why) = parser_missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.coi.allow_loopback_push_endpoints = true;
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let server = ChildServer::spawn(dir.path());
    add_user(&server, ALICE);
    let metrics = server.addrs().metrics[0];
    let push = PushService::start().await;
    let mut imap = ImapClient::login(server.imap(), ALICE, util::PASSWORD).await;
    push.expect_vapid(&get(&mut imap, VAPID).await.unwrap());
    enable_coi(&mut imap).await;
    let mut phone = push.phone("phone");
    subscribe(&mut imap, &mut phone, UUID, "chat", "").await;
    let before = Scrape::get(metrics).await;
    let sent = |s: &Scrape| s.value("coimail_push_sent_total", &[]) - before.value("coimail_push_sent_total", &[]);
    let failed = |s: &Scrape, reason: &str| {
        let labels = [("reason", reason)];
        s.value("coimail_push_failed_total", &labels) - before.value("coimail_push_failed_total", &labels)
    };
    let mx = server.smtp();
    let deliver = |n| async move {
        let mut smtp = SmtpClient::connect(mx).await;
        let r = smtp.send("bob@remote.test", &[ALICE], chat(n).as_bytes()).await;
        assert!(r.starts_with("250"), "{r}");
    };

    deliver(1).await;
    assert_eq!(phone.next(WAIT).await.status, 201);
    let s = scrape_until(metrics, "one push sent", |s| sent(s) == 1.0).await;
    assert_eq!(failed(&s, "gone") + failed(&s, "error") + failed(&s, "dropped"), 0.0);

    push.answer("phone", Reply::GONE);
    deliver(2).await;
    assert_eq!(phone.next(WAIT).await.status, 410);
    let s = scrape_until(metrics, "one push gone", |s| failed(s, "gone") == 1.0).await;
    assert_eq!(sent(&s), 1.0);
    assert_eq!(failed(&s, "error"), 0.0);
}

/// `coimail health` (deploy/Dockerfile's HEALTHCHECK): finds `/healthz`
/// through the config (`[listen] metrics`), prints `ok` and exits 0 while
/// the daemon serves; exits non-zero, saying why, once none answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coimail_health_asks_the_daemon_its_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen.metrics = vec![SocketAddr::from(([127, 0, 0, 1], util::pebble::free_port()))];
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let mut server = ChildServer::spawn(dir.path());
    let (ok, out, err) = server.cli(&["health"], None);
    assert!(ok && out == "ok\n", "{out} {err}");
    assert!(server.terminate(), "coimail serve did not stop on SIGTERM");
    let (ok, out, err) = server.cli(&["health"], None);
    assert!(!ok && err.contains("cannot reach the daemon's /healthz"), "{out} {err}");
}
