//! Inbound checks on the MX listener (SPF, DKIM, ARC, DMARC, iprev) end to
//! end: the real daemon with checks on, resolving through the test's DNS
//! server (`util::dns`), mail from 127.0.0.1 with our line client. Records:
//! - `*.test` senders publish SPF records of every kind (pass, fail, ...),
//!   `temp.test` answers SERVFAIL; 127.0.0.1 has a PTR whose name
//!   resolves back (iprev pass);
//! - DMARC `p=reject` / `p=quarantine` domains;
//! - DKIM keys made and messages signed by dkimpy (Debian `python3-dkim`:
//!   `dknewkey`, `dkimsign`, `arcsign`), an independent implementation.
//!
//! Each stored message is read back and its `Authentication-Results`
//! (authserv-id `mail.example.org`) checked.

use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::{MailHost, host_config};
use crate::util::{ImapClient, PASSWORD, SmtpClient, imap::exists};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ALICE: &str = "alice@example.org";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn base_zone() -> Zone {
    Zone::default()
        .ttl(60)
        .ptr(LOCALHOST, "client.pass.test")
        .a("client.pass.test", Ipv4Addr::LOCALHOST)
        .txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.pass.test", "v=DMARC1; p=reject")
        .txt("fail.test", "v=spf1 -all")
        .txt("softfail.test", "v=spf1 ~all")
        .txt("neutral.test", "v=spf1 ?all")
        // RFC 7208 §5.2: include of a domain without SPF record is a permerror.
        .txt("perm.test", "v=spf1 include:nospf.test -all")
        .txt("none.test", "something else")
        .servfail("temp.test")
        .txt("_dmarc.reject.test", "v=DMARC1; p=reject")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        // Authenticated mail of our own: a sending host of ours with SPF.
        .txt("relay.example.org", "v=spf1 ip4:127.0.0.1 -all")
}

/// example.org with ALICE, checks on, resolving through `dns`.
async fn mx(dns: &TestDns) -> MailHost {
    let dir = tempfile::tempdir().unwrap();
    let mut config = host_config(dir.path(), "example.org", LOCALHOST, 0, dns.addr);
    config.queue.outbound_port = 25; // nothing is sent out here
    assert!(config.smtp.inbound_checks);
    MailHost::start(dir, config, "example.org", &[ALICE]).await
}

fn smtp_addr(host: &MailHost) -> SocketAddr {
    host.running.as_ref().unwrap().addrs().smtp[0]
}

fn imap_addr(host: &MailHost) -> SocketAddr {
    host.running.as_ref().unwrap().addrs().imap[0]
}

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!("From: <{from}>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@test>\r\n\r\nHello.\r\n")
        .into_bytes()
}

/// Sends over MX; the reply to the end of the data.
async fn send(host: &MailHost, mail_from: &str, message: &[u8]) -> String {
    SmtpClient::connect(smtp_addr(host)).await.send(mail_from, &[ALICE], message).await
}

/// The last message in ALICE's INBOX and its `Authentication-Results` of ours.
async fn last(host: &MailHost) -> (String, String) {
    let inbox = host.inbox(ALICE).await;
    let m = inbox.last().expect("a message in INBOX").clone();
    (m.clone(), our_results(&m))
}

/// Our one `Authentication-Results` field, unfolded.
fn our_results(m: &str) -> String {
    let ours: Vec<&str> = m
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\nAuthentication-Results: ")
        .skip(1)
        .filter(|f| f.starts_with("mail.example.org;"))
        .collect();
    assert_eq!(ours.len(), 1, "exactly one Authentication-Results of ours:\n{m}");
    let field = ours[0];
    let end = field.find("\r\n").map(|mut i| {
        // Continuation lines start with whitespace.
        while field[i + 2..].starts_with([' ', '\t']) {
            i += 2 + field[i + 2..].find("\r\n").unwrap();
        }
        i
    });
    field[..end.unwrap_or(field.len())].replace("\r\n\t", " ").replace("\r\n ", " ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_pass_fail_softfail_neutral_none_temperror_permerror() {
    let dns = TestDns::start(base_zone()).await;
    let host = mx(&dns).await;
    for (domain, reply, spf) in [
        ("pass.test", "250 ", Some("spf=pass")),
        ("fail.test", "550 5.7.23 ", None),
        ("softfail.test", "250 ", Some("spf=softfail")),
        ("neutral.test", "250 ", Some("spf=neutral")),
        ("none.test", "250 ", Some("spf=none")),
        ("nxdomain.test", "250 ", Some("spf=none")),
        ("temp.test", "451 4.7.1 ", None),
        ("perm.test", "250 ", Some("spf=permerror")),
    ] {
        let from = format!("someone@{domain}");
        let r = send(&host, &from, &message(&from, domain)).await;
        assert!(r.starts_with(reply), "{domain}: {r}");
        let Some(spf) = spf else { continue };
        let (m, results) = last(&host).await;
        assert!(m.contains(&format!("Subject: {domain}\r\n")), "{domain}: {m}");
        assert!(results.contains(&format!("{spf} (")), "{domain}: {results}");
        assert!(results.contains(&format!("smtp.mailfrom={from}")), "{domain}: {results}");
        assert!(results.contains("iprev=pass policy.iprev=127.0.0.1"), "{domain}: {results}");
        assert!(results.contains("spf=none") && results.contains("smtp.helo=client.test"), "{domain}: {results}");
        assert!(results.contains("dkim=none") && results.contains("arc=none"), "{domain}: {results}");
        let dmarc = if domain == "pass.test" { "dmarc=pass header.from=pass.test" } else { "dmarc=none" };
        assert!(results.contains(dmarc), "{domain}: {results}");
        // Authentication-Results comes right after Return-Path, before Received.
        assert!(m.starts_with(&format!("Return-Path: <{from}>\r\nAuthentication-Results: mail.example.org;")), "{m}");
    }
    assert_eq!(host.inbox(ALICE).await.len(), 6);
    // A burst from one sender is answered from the caches: the SPF record was asked for once.
    let asked = |q: &str| dns.queries.lock().unwrap().iter().filter(|x| x.as_str() == q).count();
    let before = asked("pass.test. TXT");
    let mut c = SmtpClient::connect(smtp_addr(&host)).await;
    for n in 0..5 {
        let r = c.send("x@pass.test", &[ALICE], &message("x@pass.test", &format!("burst{n}"))).await;
        assert!(r.starts_with("250"), "{r}");
    }
    assert_eq!(asked("pass.test. TXT"), before, "{:?}", dns.queries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_reject_is_refused_at_the_end_of_data_and_of_bdat() {
    let dns = TestDns::start(base_zone()).await;
    let host = mx(&dns).await;
    // SPF passes for pass.test, which does not align with reject.test.
    let spoof = message("ceo@reject.test", "spoofed");
    let r = send(&host, "x@pass.test", &spoof).await;
    assert!(r.starts_with("550 5.7.1 "), "{r}");

    let mut c = SmtpClient::connect(smtp_addr(&host)).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    assert!(c.cmd("MAIL FROM:<x@pass.test>").await.starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{ALICE}>")).await.starts_with("250"));
    let r = c.cmd(&format!("BDAT {} LAST\r\n{}", spoof.len(), String::from_utf8(spoof.clone()).unwrap())).await;
    // `cmd` added a CRLF after the chunk: the server reads it as an empty command line.
    assert!(r.starts_with("550 5.7.1 "), "{r}");
    assert!(host.inbox(ALICE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_quarantine_goes_to_a_junk_mailbox_made_on_demand() {
    let dns = TestDns::start(base_zone()).await;
    let host = mx(&dns).await;
    let mut imap = ImapClient::login(imap_addr(&host), ALICE, PASSWORD).await;
    assert!(imap.command("DELETE Junk").await.ok());

    let r = send(&host, "x@pass.test", &message("news@quarantine.test", "suspicious")).await;
    assert!(r.starts_with("250 "), "{r}");
    assert!(host.inbox(ALICE).await.is_empty(), "not in INBOX");

    let list = imap.command("LIST \"\" \"*\"").await.text();
    let junk = list.lines().find(|l| l.contains("\\Junk")).unwrap_or_else(|| panic!("no \\Junk mailbox: {list}"));
    let name = junk.rsplit(' ').next().unwrap().trim_matches('"').to_owned();
    assert_eq!(name, "Junk", "{junk}");
    let r = imap.command(&format!("SELECT {name}")).await;
    assert_eq!(exists(&r.text()), Some(1), "{}", r.text());
    let m = imap.command("FETCH 1 BODY.PEEK[]").await.text();
    assert!(m.contains("Subject: suspicious"), "{m}");
    let results = our_results(&m[m.find("Return-Path").unwrap()..]);
    assert!(results.contains("dmarc=fail (") && results.contains("policy.dmarc=quarantine"), "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_claiming_our_own_domain_needs_authentication() {
    let dns = TestDns::start(base_zone()).await;
    let host = mx(&dns).await;
    let r = send(&host, "ceo@example.org", &message("ceo@example.org", "envelope")).await;
    assert!(r.starts_with("550 5.7.1 "), "MAIL FROM ours: {r}");
    let r = send(&host, "x@pass.test", &message("ceo@example.org", "header")).await;
    assert!(r.starts_with("550 5.7.1 "), "From: ours: {r}");
    let r = send(&host, "", &message("ceo@example.org", "bounce")).await;
    assert!(r.starts_with("550 5.7.1 "), "From: ours with <>: {r}");
    assert!(host.inbox(ALICE).await.is_empty());
    // One of our hosts with an SPF record of ours, in an aligned domain: accepted.
    let r = send(&host, "cron@relay.example.org", &message("cron@example.org", "aligned")).await;
    assert!(r.starts_with("250 "), "{r}");
    let (_, results) = last(&host).await;
    assert!(results.contains("spf=pass") && results.contains("smtp.mailfrom=cron@relay.example.org"), "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_results_of_our_authserv_id_are_removed_and_others_kept() {
    let dns = TestDns::start(base_zone()).await;
    let host = mx(&dns).await;
    let forged = b"Authentication-Results: mail.example.org; dkim=pass header.d=bank.test;\r\n\tdmarc=pass\r\n\
        Authentication-Results: upstream.test; spf=pass smtp.mailfrom=x@pass.test\r\n\
        authentication-results: MAIL.EXAMPLE.ORG (forged); spf=pass\r\n\
        From: <x@pass.test>\r\nTo: <alice@example.org>\r\nSubject: forged\r\n\r\nHello.\r\n";
    let r = send(&host, "x@pass.test", forged).await;
    assert!(r.starts_with("250 "), "{r}");
    let (m, results) = last(&host).await;
    assert!(!m.contains("header.d=bank.test") && !m.contains("(forged)"), "{m}");
    assert!(m.contains("\r\nAuthentication-Results: upstream.test; spf=pass smtp.mailfrom=x@pass.test\r\n"), "{m}");
    assert!(results.contains("dkim=none") && results.contains("dmarc=pass"), "{results}");
}

/// A Debian python3-dkim tool, or `None` (skipping) when missing outside CI.
fn dkimpy(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1"),
        "{name} missing (tests/run.sh installs python3-dkim)"
    );
    eprintln!("skipped: {name} is not installed (Debian python3-dkim; tests/run.sh installs it)");
    None
}

/// A key made by dknewkey in `dir`: (private key file, DNS TXT text).
fn new_key(dir: &Path, name: &str, ktype: &str) -> (PathBuf, String) {
    let ok = Command::new(dkimpy("dknewkey").unwrap())
        .args(["--ktype", ktype, name])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "dknewkey failed");
    let txt = std::fs::read_to_string(dir.join(format!("{name}.dns"))).unwrap();
    (dir.join(format!("{name}.key")), txt.trim().to_owned())
}

/// Runs a dkimpy tool with `message` on stdin; its output with CRLF line ends.
fn run_dkimpy(tool: &str, args: &[&str], message: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(dkimpy(tool).unwrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signatures_by_dkimpy_pass_and_altered_messages_fail() {
    if dkimpy("dkimsign").is_none() || dkimpy("dknewkey").is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (rsa_key, rsa_txt) = new_key(keys.path(), "rsa", "rsa");
    let (ed_key, ed_txt) = new_key(keys.path(), "ed", "ed25519");
    let zone = base_zone()
        .txt("rsa._domainkey.signer.test", &rsa_txt)
        .txt("ed._domainkey.signer.test", &ed_txt)
        .txt("_dmarc.signer.test", "v=DMARC1; p=none")
        .servfail("gone._domainkey.signer.test");
    let dns = TestDns::start(zone).await;
    let host = mx(&dns).await;
    let plain = message("news@signer.test", "signed");
    let rsa_key = rsa_key.to_str().unwrap();
    let ed_key = ed_key.to_str().unwrap();

    for (selector, key, alg) in [("rsa", rsa_key, "rsa-sha256"), ("ed", ed_key, "ed25519-sha256")] {
        let signed = run_dkimpy("dkimsign", &["--signalg", alg, selector, "signer.test", key], &plain);
        assert!(signed.starts_with(b"DKIM-Signature:"), "{}", String::from_utf8_lossy(&signed));
        // No SPF record for signer.test: DKIM alone carries DMARC.
        let r = send(&host, "news@signer.test", &signed).await;
        assert!(r.starts_with("250 "), "{alg}: {r}");
        let (_, results) = last(&host).await;
        assert!(results.contains("dkim=pass header.i=@signer.test header.s="), "{alg}: {results}");
        assert!(results.contains("dmarc=pass header.from=signer.test"), "{alg}: {results}");

        let altered = String::from_utf8(signed).unwrap().replace("Hello.", "Hello, altered.");
        let r = send(&host, "news@signer.test", altered.as_bytes()).await;
        assert!(r.starts_with("250 "), "p=none delivers: {r}");
        let (m, results) = last(&host).await;
        assert!(m.contains("Hello, altered."), "{m}");
        assert!(results.contains("dkim=fail"), "{alg} altered: {results}");
        assert!(
            results.contains("dmarc=fail (") && results.contains("header.from=signer.test policy.dmarc=none"),
            "{results}"
        );
    }
    // A large message is staged on disk as it arrives (smtp/src/body.rs);
    // its signature is still checked over the whole body, which is read back
    // from the file once. A change 700 KB in must fail it.
    let mut large = message("news@signer.test", "large");
    for i in 0..20_000 {
        large.extend_from_slice(format!("line {i:06} of a large signed message, and some more text.\r\n").as_bytes());
    }
    let signed = run_dkimpy("dkimsign", &["--signalg", "ed25519-sha256", "ed", "signer.test", ed_key], &large);
    assert!(signed.len() > 1 << 20);
    let r = send(&host, "news@signer.test", &signed).await;
    assert!(r.starts_with("250 "), "large: {r}");
    let (m, results) = last(&host).await;
    assert!(results.contains("dkim=pass header.i=@signer.test header.s=ed"), "large: {results}");
    assert!(m.ends_with(std::str::from_utf8(&signed[signed.len() - 1000..]).unwrap()), "the stored end differs");
    let altered = String::from_utf8(signed).unwrap().replace("line 012345 of", "line 012345 0f");
    let r = send(&host, "news@signer.test", altered.as_bytes()).await;
    assert!(r.starts_with("250 "), "p=none delivers: {r}");
    let (_, results) = last(&host).await;
    assert!(results.contains("dkim=fail"), "large altered: {results}");

    // A key that cannot be fetched right now: try again later, not a pass.
    let signed = run_dkimpy("dkimsign", &["gone", "signer.test", rsa_key], &plain);
    let r = send(&host, "news@signer.test", &signed).await;
    assert!(r.starts_with("451 4.7.1 "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arc_chain_sealed_by_dkimpy_verifies() {
    if dkimpy("arcsign").is_none() || dkimpy("dknewkey").is_none() {
        return;
    }
    // arcsign needs the authres module (Debian python3-authres).
    let authres = Command::new("/usr/bin/python3").args(["-c", "import authres"]).status();
    if !authres.is_ok_and(|s| s.success()) {
        assert!(std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1"), "python3-authres missing (tests/run.sh)");
        eprintln!("skipped: arcsign needs python3-authres (tests/run.sh installs it)");
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (key, txt) = new_key(keys.path(), "arc", "rsa");
    let dns = TestDns::start(base_zone().txt("arc._domainkey.forwarder.test", &txt)).await;
    let host = mx(&dns).await;
    let mut forwarded = b"Authentication-Results: forwarder.test; spf=pass smtp.mailfrom=x@pass.test\r\n".to_vec();
    forwarded.extend_from_slice(&message("x@pass.test", "forwarded"));
    // arcsign prints the message with the ARC set on top.
    let sealed = run_dkimpy("arcsign", &["arc", "forwarder.test", key.to_str().unwrap(), "forwarder.test"], &forwarded);
    assert!(sealed.starts_with(b"ARC-Seal: i=1;"), "{}", String::from_utf8_lossy(&sealed));
    assert!(sealed.ends_with(&forwarded));
    let r = send(&host, "x@pass.test", &sealed).await;
    assert!(r.starts_with("250 "), "{r}");
    let (_, results) = last(&host).await;
    assert!(results.contains("arc=pass smtp.remote-ip=127.0.0.1"), "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_verdict_is_logged_in_the_session_span() {
    let dns = TestDns::start(base_zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::util::server::test_config(dir.path());
    config.smtp.inbound_checks = true;
    config.queue.resolvers = vec![dns.addr];
    config.log.format = coimail_daemon::config::LogFormat::Json;
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let mut server = crate::util::ChildServer::spawn_logging(dir.path(), "warn,coimail_smtp=info");
    crate::util::server::add_user(&server, ALICE);
    let mut c = SmtpClient::connect(server.smtp()).await;
    assert!(c.send("x@pass.test", &[ALICE], &message("x@pass.test", "logged")).await.starts_with("250"));
    let r = c.send("x@pass.test", &[ALICE], &message("ceo@reject.test", "refused")).await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(server.terminate());

    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let checks: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.contains("\"message\":\"inbound checks\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(checks.len(), 2, "{log}");
    let field = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let text = |v: &serde_json::Value| v.to_string();
    assert_eq!(field(&checks[0], "spf_mail_from"), "Pass", "{}", text(&checks[0]));
    assert_eq!(field(&checks[0], "iprev"), "pass", "{}", text(&checks[0]));
    assert_eq!(field(&checks[0], "dmarc"), "pass", "{}", text(&checks[0]));
    assert_eq!(field(&checks[0], "verdict"), "deliver", "{}", text(&checks[0]));
    assert!(field(&checks[1], "verdict").starts_with("refuse 550 5.7.1"), "{}", text(&checks[1]));
    assert!(field(&checks[1], "dmarc").starts_with("fail"), "{}", text(&checks[1]));
    for v in &checks {
        assert!(text(v).contains("session_id") && text(v).contains("127.0.0.1"), "not in the session span: {v}");
    }
}
