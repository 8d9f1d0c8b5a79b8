//! MTA-STS (RFC 8461) and TLS report records (RFC 8460) end to end: a.test
//! (127.0.0.2) sends to b.test (127.0.0.3), whose policy host
//! `mta-sts.b.test` (127.0.0.6, HTTPS on a test port) serves the policy the
//! test wants, with certificates from a test CA that a.test trusts through
//! `[queue] tls_extra_roots`. The test DNS server publishes
//! `_mta-sts.b.test`.

use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::{MailHost, common_port, host_config};
use crate::util::server::cli;
use crate::util::sts::{PolicyServer, TestCa};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@a.test";
const BOB: &str = "bob@b.test";
const WAIT: Duration = Duration::from_secs(30);
const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const IP_WEB: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

fn zone(id: &str) -> Zone {
    Zone::default()
        .mx("a.test", 10, "mx.a.test")
        .a("mx.a.test", IP_A)
        .mx("b.test", 10, "mx.b.test")
        .a("mx.b.test", IP_B)
        .txt("_mta-sts.b.test", &format!("v=STSv1; id={id};"))
        .a("mta-sts.b.test", IP_WEB)
}

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

struct Setup {
    dns: TestDns,
    ca: TestCa,
    web: PolicyServer,
    a: MailHost,
    b: MailHost,
}

/// b.test's MX presents a certificate for `mx_names`; its policy host
/// serves `policy` under TXT id 1.
async fn setup(policy: &str, mx_names: &[&str]) -> Setup {
    let ca = TestCa::new();
    let web = PolicyServer::start(IpAddr::V4(IP_WEB), &ca.leaf(&["mta-sts.b.test"]), policy).await;
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_B)]);
    let dns = TestDns::start(zone("1")).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ca_config = host_config(da.path(), "a.test", IP_A.into(), port, dns.addr);
    let roots = da.path().join("test-ca.pem");
    std::fs::write(&roots, ca.pem()).unwrap();
    ca_config.queue.tls_extra_roots = roots;
    ca_config.queue.mta_sts_port = web.addr.port();
    let cb = host_config(db.path(), "b.test", IP_B.into(), port, dns.addr);
    ca.leaf(mx_names).write(&cb.tls.cert, &cb.tls.key);
    let a = MailHost::start(da, ca_config, "a.test", &[ALICE]).await;
    let b = MailHost::start(db, cb, "b.test", &[BOB]).await;
    Setup { dns, ca, web, a, b }
}

fn message(subject: &str) -> Vec<u8> {
    format!("From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\n\r\nHello.\r\n").into_bytes()
}

/// Writes the host's config where the `coimail` CLI can read it.
fn config_file(host: &MailHost) -> PathBuf {
    let path = host.dir.path().join("coimail.toml");
    std::fs::write(&path, toml::to_string(&host.config).unwrap()).unwrap();
    path
}

fn coimail(host: &MailHost, args: &[&str]) -> String {
    let (ok, out, err) = cli(&config_file(host), args, None);
    assert!(ok, "coimail {args:?}: {err}");
    out
}

/// Waits until a queued recipient's last reply contains `needle`, then
/// returns `coimail queue list`.
async fn wait_deferred(host: &MailHost, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let entries = host.running.as_ref().unwrap().store().spool_list().unwrap();
        let replies: Vec<String> =
            entries.iter().flat_map(|e| &e.recipients).filter_map(|r| r.last_reply.clone()).collect();
        if replies.iter().any(|r| r.contains(needle)) {
            return coimail(host, &["queue", "list"]);
        }
        assert!(Instant::now() < deadline, "no reply with {needle:?} after {WAIT:?}: {replies:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_with_a_valid_certificate_delivers_over_verified_tls() {
    let s = setup(&policy("enforce", "mx.b.test"), &["mx.b.test"]).await;
    assert!(s.a.submit(ALICE, &[BOB], &message("verified")).await.starts_with("250"));
    let inbox = s.b.wait_inbox(BOB, 1, WAIT).await;
    assert!(inbox[0].contains("by mail.b.test with ESMTPS id"), "{}", inbox[0]);
    s.a.wait_queue_empty(WAIT).await;
    assert_eq!(s.web.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(s.dns.queries.lock().unwrap().iter().any(|q| q == "_mta-sts.b.test. TXT"), "{:?}", s.dns.queries);
    let cached = std::fs::read_to_string(s.a.config.server.data_dir.join("mta-sts/b.test.json")).unwrap();
    assert!(cached.contains("\"id\":\"1\"") && cached.contains("mode: enforce"), "{cached}");
    let report = coimail(&s.a, &["queue", "tls-report", "b.test"]);
    assert!(report.contains("  b.test  sts enforce  1 successful  0 failed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_defers_an_invalid_certificate_and_an_mx_not_in_the_policy() {
    let s = setup(&policy("enforce", "mx.b.test"), &["other.b.test"]).await;
    assert!(s.a.submit(ALICE, &[BOB], &message("not verified")).await.starts_with("250"));
    let list = wait_deferred(&s.a, "MTA-STS enforce").await;
    assert!(
        list.contains(
            "bob@b.test  pending  451 4.7.5 MTA-STS enforce: mx.b.test has no valid certificate for mx.b.test"
        ),
        "{list}"
    );
    let report = coimail(&s.a, &["queue", "tls-report"]);
    assert!(report.contains("b.test  sts enforce  0 successful  "), "{report}");
    assert!(report.contains("    certificate-host-mismatch  mx.b.test[127.0.0.3]  x"), "{report}");

    // A new policy (new TXT id) that lists another MX: refetched, and
    // mx.b.test is not even tried.
    *s.web.policy.lock().unwrap() = policy("enforce", "mx.elsewhere.test");
    s.dns.set_zone(zone("2"));
    let list = wait_deferred(&s.a, "is listed in its policy").await;
    assert!(
        list.contains("451 4.7.5 MTA-STS enforce: no MX host of b.test is listed in its policy (mx.b.test)"),
        "{list}"
    );
    assert_eq!(s.web.fetches.load(std::sync::atomic::Ordering::SeqCst), 2, "fetched again for id 2 only");
    let report = coimail(&s.a, &["queue", "tls-report", "b.test"]);
    assert!(report.contains("validation-failure  mx.b.test  x"), "{report}");
    assert!(s.b.inbox(BOB).await.is_empty(), "never sent without verified TLS");
    assert!(s.a.running.as_ref().unwrap().store().spool_list().unwrap()[0].attempts >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_mode_delivers_and_records_the_failure() {
    let s = setup(&policy("testing", "mx.b.test"), &["other.b.test"]).await;
    assert!(s.a.submit(ALICE, &[BOB], &message("testing")).await.starts_with("250"));
    let inbox = s.b.wait_inbox(BOB, 1, WAIT).await;
    assert!(inbox[0].contains("with ESMTPS id"), "still encrypted: {}", inbox[0]);
    s.a.wait_queue_empty(WAIT).await;
    let report = coimail(&s.a, &["queue", "tls-report", "b.test"]);
    assert!(report.contains("b.test  sts testing  0 successful  1 failed"), "{report}");
    assert!(report.contains("    certificate-host-mismatch  mx.b.test[127.0.0.3]  x1  "), "{report}");
    let day = std::fs::read_dir(s.a.config.server.data_dir.join("tls-reports")).unwrap().next().unwrap().unwrap();
    let json = std::fs::read_to_string(day.path().join("b.test.json")).unwrap();
    for field in ["\"policy-type\": \"sts\"", "\"result-type\": \"certificate-host-mismatch\"", "\"mode: testing\""] {
        assert!(json.contains(field), "{field} in {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_policy_applies_across_a_restart_while_the_policy_host_is_down() {
    let mut s = setup(&policy("enforce", "mx.b.test"), &["mx.b.test"]).await;
    assert!(s.a.submit(ALICE, &[BOB], &message("first")).await.starts_with("250"));
    s.b.wait_inbox(BOB, 1, WAIT).await;
    s.a.wait_queue_empty(WAIT).await;

    // The policy host goes away and the record changes (so a fetch is
    // tried and fails); a.test restarts (only the disk cache is left); and
    // b.test's MX now has a certificate for another name.
    s.web.stop();
    s.dns.set_zone(zone("2"));
    s.a.stop().await;
    s.a.restart().await;
    s.b.stop().await;
    s.ca.leaf(&["other.b.test"]).write(&s.b.config.tls.cert, &s.b.config.tls.key);
    s.b.restart().await;

    assert!(s.a.submit(ALICE, &[BOB], &message("second")).await.starts_with("250"));
    let list = wait_deferred(&s.a, "MTA-STS enforce").await;
    assert!(list.contains("MTA-STS enforce: mx.b.test has no valid certificate for mx.b.test"), "{list}");
    let report = coimail(&s.a, &["queue", "tls-report", "b.test"]);
    assert!(report.contains("    sts-policy-fetch-error  -  x"), "{report}");
    assert!(report.contains("https://mta-sts.b.test:"), "the failed fetch is named: {report}");
    assert_eq!(s.b.inbox(BOB).await.len(), 1, "the second message waits");
}
