//! DKIM signatures as the receiving side sees them: two coimail instances
//! (a.test on 127.0.0.2, b.test on 127.0.0.3, as in the queue tests); a.test
//! has keys. What arrives at b.test is verified by dkimpy, an independent
//! implementation, with the key records exactly as `coimail dns a.test`
//! prints them; a changed copy must fail, so the check can fail.

use crate::util::SmtpClient;
use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::{MailHost, common_port, host_config};
use crate::util::server::cli;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ALICE: &str = "alice@a.test";
const BOB: &str = "bob@b.test";
const CAROL: &str = "carol@a.test";
const WAIT: Duration = Duration::from_secs(30);
const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Debian's interpreter, where `python3-dkim` and `python3-nacl` (Ed25519) live.
const PYTHON: &str = "/usr/bin/python3";

struct Pair {
    _dns: TestDns,
    a: MailHost,
    b: MailHost,
}

/// Where each host's MX is.
fn routes() -> Zone {
    Zone::default()
        .mx("a.test", 10, "mx.a.test")
        .a("mx.a.test", IP_A)
        .mx("b.test", 10, "mx.b.test")
        .a("mx.b.test", IP_B)
}

/// a.test with DKIM keys, b.test without.
async fn pair() -> Pair {
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_B)]);
    let dns = TestDns::start(routes()).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = host_config(da.path(), "a.test", IP_A.into(), port, dns.addr);
    let cb = host_config(db.path(), "b.test", IP_B.into(), port, dns.addr);
    // What `coimail domain add a.test` does besides adding the domain.
    let keys = coimail_delivery::dkim::KeyStore::new(ca.dkim_dir());
    keys.ensure("a.test", coimail_delivery::now()).unwrap();
    let a = MailHost::start(da, ca, "a.test", &[ALICE, CAROL]).await;
    let b = MailHost::start(db, cb, "b.test", &[BOB]).await;
    Pair { _dns: dns, a, b }
}

/// `coimail dns DOMAIN` against the running host (over its admin socket).
async fn published(host: &MailHost, domain: &str) -> String {
    let path = host.dir.path().join("coimail.toml");
    std::fs::write(&path, toml::to_string(&host.config).unwrap()).unwrap();
    let domain = domain.to_owned();
    let (ok, out, err) = tokio::task::spawn_blocking(move || cli(&path, &["dns", &domain], None)).await.unwrap();
    assert!(ok, "coimail dns: {err}");
    out
}

/// Whether dkimpy is there; required when COIMAIL_EXTERNAL=1 (tests/run.sh installs it).
fn dkimpy() -> bool {
    let ok =
        std::process::Command::new(PYTHON).args(["-c", "import dkim, nacl"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1"),
            "dkimpy is required with COIMAIL_EXTERNAL=1 (apt-get install python3-dkim python3-nacl)"
        );
        eprintln!("skipped: no dkimpy (apt-get install python3-dkim python3-nacl; tests/run.sh does it)");
    }
    ok
}

/// dkimpy's verdict on every signature of `message`: its output lines and
/// whether all passed.
fn verify(dir: &Path, zone: &str, message: &str) -> (bool, String) {
    let zone_file = dir.join("zone.txt");
    let message_file: PathBuf = dir.join("message.eml");
    std::fs::write(&zone_file, zone).unwrap();
    std::fs::write(&message_file, message).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/dkim_verify.py");
    let out = std::process::Command::new(PYTHON).arg(script).arg(&zone_file).arg(&message_file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn check_signed(dir: &Path, zone: &str, received: &str) {
    let header = received.split("\r\n\r\n").next().unwrap();
    assert_eq!(header.matches("DKIM-Signature:").count(), 2, "{received}");
    let (ok, out) = verify(dir, zone, received);
    assert!(ok, "dkimpy:\n{out}\n{received}");
    assert!(out.contains("pass ed25519-sha256 a.test ed-") && out.contains("pass rsa-sha256 a.test rsa-"), "{out}");
    // The same message with one body line changed no longer verifies.
    let (head, body) = received.split_once("\r\n\r\n").unwrap();
    let altered = format!("{head}\r\n\r\n{}", body.replacen('e', "3", 1));
    let (ok, out) = verify(dir, zone, &altered);
    assert!(!ok && out.matches("fail ").count() == 2, "an altered body must fail: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_mail_arrives_with_an_ed25519_and_an_rsa_signature_that_dkimpy_verifies() {
    let p = pair().await;
    let zone = published(&p.a, "a.test").await;
    let message = format!(
        "From: Alice <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: signed\r\nContent-Type: text/plain\r\n\r\n\
         Hello Bob,\r\n\r\nthis one is signed.  Twice.\r\n\r\n\r\n"
    );
    let r = p.a.submit(ALICE, &[BOB], message.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
    let received = p.b.wait_inbox(BOB, 1, WAIT).await.remove(0);
    assert!(received.contains("d=a.test;"), "{received}");
    // Oversigned: a second From/To/Subject/Date/Message-ID would break it.
    let h = received.split("h=").nth(1).unwrap().split(';').next().unwrap().replace(['\r', '\n', '\t', ' '], "");
    let names: Vec<String> = h.split(':').map(str::to_ascii_lowercase).collect();
    for name in ["from", "to", "subject", "date", "message-id"] {
        assert_eq!(names.iter().filter(|n| *n == name).count(), 2, "{name} in h={h}");
    }
    if !dkimpy() {
        return;
    }
    check_signed(p.a.dir.path(), &zone, &received);
}

/// bob@b.test writes over a.test's MX to alice and carol, whose mailbox is
/// too small for the message (no `SIZE=`, so RCPT could not tell), and asks
/// for a success report. alice gets the message; bob gets no success report
/// (over MX it would be backscatter: bob's address is only his say-so) but
/// one bounce for carol alone, header only, leaving a.test's queue from <>
/// and signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_leaving_through_the_queue_is_signed_and_mx_gets_no_success_report() {
    let p = pair().await;
    let zone = published(&p.a, "a.test").await;
    let running = p.a.running.as_ref().unwrap();
    let carol = running.directory().resolve_recipient(CAROL).unwrap().unwrap();
    let small = coimail_store::QuotaLimits { bytes: Some(2_000), messages: None };
    running.store().set_quota(carol.id, small).await.unwrap();
    let mut c = SmtpClient::connect(running.addrs().smtp[0]).await;
    assert!(c.cmd("EHLO mx.b.test").await.starts_with("250"));
    let body = "Did it arrive?\r\n".repeat(300);
    let message = format!("From: <{BOB}>\r\nTo: <{ALICE}>\r\nSubject: tell me\r\n\r\n{body}");
    let rcpts = [format!("RCPT TO:<{ALICE}> NOTIFY=SUCCESS"), format!("RCPT TO:<{CAROL}> NOTIFY=SUCCESS,FAILURE")];
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let r = c.transaction(&format!("MAIL FROM:<{BOB}> RET=FULL"), &rcpts, message.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(p.a.inbox(ALICE).await.len(), 1, "alice got it");
    assert!(p.a.inbox(CAROL).await.is_empty(), "carol's mailbox had no room");
    let report = p.b.wait_inbox(BOB, 1, WAIT).await.remove(0);
    assert!(report.contains("Final-Recipient: rfc822;carol@a.test\r\nAction: failed\r\nStatus: 5.2.2"), "{report}");
    assert!(report.contains("MAILER-DAEMON@mail.a.test") && report.contains("Subject: tell me"), "{report}");
    assert!(report.starts_with("Return-Path: <>\r\n"), "{report}");
    assert!(!report.contains("alice@a.test\r\nAction") && !report.contains("Did it arrive?"), "{report}");
    p.a.wait_queue_empty(WAIT).await;
    assert_eq!(p.b.inbox(BOB).await.len(), 1, "no success report, ever");
    if !dkimpy() {
        return;
    }
    check_signed(p.a.dir.path(), &zone, &report);
}

/// The whole way, as a domain going live would see it: a.test publishes what
/// `coimail dns a.test` prints, alice writes to bob@b.test, and b.test's MX
/// (inbound checks on, as by default) stores the message with SPF, DKIM and
/// DMARC passing; dkimpy still verifies the stored copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_between_two_instances_passes_spf_dkim_and_dmarc_at_the_receiver() {
    let p = pair().await;
    assert!(p.b.config.smtp.inbound_checks, "b.test must check what arrives");
    let printed = published(&p.a, "a.test").await;
    // Every record as printed but SPF's: printed SPF names a.test's MX
    // address, and the queue connects from 127.0.0.1 here.
    let records: String = printed.lines().filter(|l| !l.contains("v=spf1")).map(|l| format!("{l}\n")).collect();
    p._dns.set_zone(routes().with_printed(&records).txt("a.test", "v=spf1 ip4:127.0.0.0/8 -all"));
    // The zone's 1 s TTL: nothing of the old zone is cached past this.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let message = format!(
        "From: Alice <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: checked\r\nContent-Type: text/plain\r\n\r\nHello Bob.\r\n"
    );
    let r = p.a.submit(ALICE, &[BOB], message.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
    let received = p.b.wait_inbox(BOB, 1, WAIT).await.remove(0);
    let header = received.split("\r\n\r\n").next().unwrap();
    let results: Vec<&str> =
        header.split("\r\n").filter(|l| l.to_ascii_lowercase().starts_with("authentication-results:")).collect();
    assert_eq!(results.len(), 1, "{header}");
    // The header may be folded: take it with its continuation lines.
    let at = header.find(results[0]).unwrap();
    let folded: String = header[at..]
        .split("\r\n")
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with([' ', '\t']))
        .map(|(_, l)| l)
        .collect();
    for verdict in ["dkim=pass", "spf=pass", "dmarc=pass"] {
        assert!(folded.contains(verdict), "{verdict} missing: {folded}");
    }
    if !dkimpy() {
        return;
    }
    check_signed(p.a.dir.path(), &printed, &received);
}
