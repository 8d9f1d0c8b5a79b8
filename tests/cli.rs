//! The CLI as a new user meets it: init, config check, serve, user add while
//! the daemon runs, clear errors for bad configs, and the DNS records to
//! publish (`coimail dns`, `dns check`, `dkim rotate|activate|retire`).

use crate::util::dns::{TestDns, Zone};
use crate::util::{
    self, ImapClient,
    server::{cli, coimail_bin},
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn version_is_printed() {
    let out = Command::new(coimail_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("coimail "));
}

#[test]
fn bad_configs_fail_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    for (text, key) in [
        ("[imap]\nidle_timeout = 5\n", "idle_timeout"),
        ("[smtp]\nmax_recipients = -1\n", "max_recipients"),
        ("[imap]\nidle_timeout_secs = 5\n", "imap.idle_timeout_secs"),
        ("[listen]\nsmtp = [\"localhost\"]\n", "smtp"),
    ] {
        std::fs::write(&path, text).unwrap();
        for cmd in [&["config", "check"][..], &["serve"][..]] {
            let (ok, _, err) = cli(&path, cmd, None);
            assert!(!ok, "{text:?} accepted by {cmd:?}");
            assert!(err.contains(key), "{cmd:?} on {text:?}: {err}");
        }
    }
    let (ok, _, err) = cli(&dir.path().join("missing.toml"), &["serve"], None);
    assert!(!ok && err.contains("missing.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_serve_then_user_add_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("coimail-data");
    let out =
        Command::new(coimail_bin()).args(["init", "--domain", "example.org", "--data"]).arg(&home).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = home.join("coimail.toml");
    assert!(home.join("tls/cert.pem").exists() && home.join("tls/key.pem").exists());
    let (ok, out, err) = cli(&config, &["config", "check"], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("mail.example.org"), "{out}");
    // init again changes nothing.
    let again =
        Command::new(coimail_bin()).args(["init", "--domain", "example.org", "--data"]).arg(&home).output().unwrap();
    assert!(again.status.success());

    // Same config, but on loopback port 0 so tests never collide.
    let text = std::fs::read_to_string(&config).unwrap();
    let mut patched = String::new();
    for line in text.lines() {
        if line.contains("[\"0.0.0.0:") || line.contains("[\"127.0.0.1:") {
            let key = line.split(" =").next().unwrap();
            patched.push_str(&format!("{key} = [\"127.0.0.1:0\"]\n"));
        } else {
            patched.push_str(line);
            patched.push('\n');
        }
    }
    std::fs::write(&config, patched).unwrap();

    let ready = dir.path().join("ready.json");
    let mut child = Command::new(coimail_bin())
        .arg("--config")
        .arg(&config)
        .args(["serve", "--ready-file"])
        .arg(&ready)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let addrs: coimail_daemon::BoundAddrs = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    assert!(home.join("data/admin.sock").exists());

    // The daemon holds the database: this goes over the admin socket.
    let (ok, out, err) = cli(&config, &["user", "add", "eve@example.org"], Some("s3cret-pass\n"));
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&config, &["user", "add", "eve@nowhere.test"], Some("s3cret-pass\n"));
    assert!(!ok && err.contains("nowhere.test"), "{err}");
    let (ok, out, _) = cli(&config, &["user", "list"], None);
    assert!(ok && out.contains("eve@example.org"), "{out}");
    let (ok, out, err) = cli(&config, &["alias", "add", "postmaster@example.org", "eve@example.org"], None);
    assert!(ok, "{out}{err}");

    let mut imap = ImapClient::login(addrs.imap[0], "eve@example.org", "s3cret-pass").await;
    let r = imap.command("LIST \"\" \"*\"").await;
    assert!(r.ok() && r.text().contains("INBOX") && r.text().contains("\\Sent"), "{}", r.text());
    let mut smtp = util::SmtpClient::connect(addrs.smtp[0]).await;
    let r = smtp.send("x@remote.test", &["postmaster@example.org"], &util::message(1, "postmaster@example.org")).await;
    assert!(r.starts_with("250"), "{r}");
    let r = imap.command("SELECT INBOX").await;
    assert_eq!(util::imap::exists(&r.text()), Some(1));
    // COI: what a client set shows in `coimail coi status` (over the admin socket).
    let (ok, out, err) = cli(&config, &["coi", "status", "eve@example.org"], None);
    assert!(ok && out.contains("\"enabled\": false") && out.contains("\"message_filter\": \"none\""), "{out}{err}");
    let r = imap
        .command("SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled yes /private/vendor/vendor.dovecot/coi/config/message-filter seen)")
        .await;
    assert!(r.ok(), "{}", r.text());
    let (ok, out, err) = cli(&config, &["coi", "status", "eve@example.org"], None);
    assert!(ok && out.contains("\"enabled\": true") && out.contains("\"message_filter\": \"seen\""), "{out}{err}");
    assert!(out.contains("\"chats\": \"COI/Chats\"") && out.contains("\"subscriptions\": []"), "{out}");
    let (ok, _, err) = cli(&config, &["coi", "status", "nobody@example.org"], None);
    assert!(!ok && err.contains("no user nobody@example.org"), "{err}");
    drop(imap);

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM must end serve with 0, got {status}");
    assert!(!home.join("data/admin.sock").exists());
    // With the daemon gone the CLI opens the store itself.
    let (ok, out, err) = cli(&config, &["user", "list"], None);
    assert!(ok && out.contains("eve@example.org"), "{out}{err}");
    let (ok, out, err) = cli(&config, &["coi", "status", "eve@example.org"], None);
    assert!(ok && out.contains("\"enabled\": true"), "offline coi status: {out}{err}");
}

/// A DNS zone serving exactly the records of `coimail dns` output.
fn zone_of(printed: &str) -> Zone {
    Zone::default().with_printed(printed)
}

/// `cli` off the async threads (the test's DNS server runs on them).
async fn cli_async(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let (config, args) = (config.to_owned(), args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&config, &args, None)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_prints_every_record_and_check_compares_them_with_dns() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("coimail-data");
    let out =
        Command::new(coimail_bin()).args(["init", "--domain", "example.org", "--data"]).arg(&home).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dns check"), "init points at `coimail dns`");
    let config = home.join("coimail.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("public_addresses = []", "public_addresses = [\"192.0.2.10\", \"2001:db8::10\"]");
    std::fs::write(&config, text).unwrap();

    let (ok, printed, err) = cli_async(&config, &["dns"]).await;
    assert!(ok, "{err}");
    for expected in [
        "example.org. 3600 IN MX 10 mail.example.org.\n",
        "mail.example.org. 3600 IN A 192.0.2.10\n",
        "mail.example.org. 3600 IN AAAA 2001:db8::10\n",
        "example.org. 3600 IN TXT \"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all\"\n",
        "._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=ed25519; p=",
        "._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=rsa; p=MIIB",
        "_dmarc.example.org. 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\"\n",
        "_mta-sts.example.org. 3600 IN TXT \"v=STSv1; id=",
        "_smtp._tls.example.org. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.org\"\n",
        "_imaps._tcp.example.org. 3600 IN SRV 0 1 1993 mail.example.org.\n",
        "_submission._tcp.example.org. 3600 IN SRV 10 1 1587 mail.example.org.\n",
        "autoconfig.example.org. 3600 IN CNAME mail.example.org.\n",
        "mta-sts.example.org. 3600 IN CNAME mail.example.org.\n",
    ] {
        assert!(printed.contains(expected), "lacks {expected:?}:\n{printed}");
    }
    let dkim: Vec<&str> = printed.lines().filter(|l| l.contains("._domainkey.")).collect();
    assert_eq!(dkim.len(), 2, "{printed}");
    assert!(dkim[0].starts_with("ed-20") && dkim[1].starts_with("rsa-20"), "dated selectors: {dkim:?}");
    let (ok, _, err) = cli_async(&config, &["dns", "nowhere.test"]).await;
    assert!(!ok && err.contains("not served here"), "{err}");

    // Published exactly as printed: all ok.
    let dns = TestDns::start(zone_of(&printed)).await;
    let resolver = dns.addr.to_string();
    let (ok, out, err) = cli_async(&config, &["dns", "check", "--resolver", &resolver]).await;
    assert!(ok, "{out}{err}");
    assert!(!out.contains("missing") && !out.contains("different"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.trim_start().starts_with("ok ")).count(),
        printed.lines().filter(|l| l.contains(" IN ")).count(),
        "{out}"
    );
    drop(dns);

    // DMARC not published, an old RSA key, an MX elsewhere: each named, exit status 1.
    let rsa_line = dkim[1];
    let mut broken =
        printed.replace(rsa_line, &format!("{} \"v=DKIM1; k=rsa; p=MIIBold\"", rsa_line.split(" \"").next().unwrap()));
    broken = broken.replace("MX 10 mail.example.org.", "MX 10 mx.elsewhere.test.");
    let broken: String = broken.lines().filter(|l| !l.starts_with("_dmarc.")).map(|l| format!("{l}\n")).collect();
    let dns = TestDns::start(zone_of(&broken)).await;
    let resolver = dns.addr.to_string();
    let (ok, out, err) = cli_async(&config, &["dns", "check", "example.org", "--resolver", &resolver]).await;
    assert!(!ok && err.contains("3 record(s)"), "{out}{err}");
    assert!(out.contains("  missing    _dmarc.example.org. 3600 IN TXT"), "{out}");
    assert!(out.contains("  different  rsa-") && out.contains("found: v=DKIM1; k=rsa; p=MIIBold"), "{out}");
    assert!(out.contains("  different  example.org. 3600 IN MX") && out.contains("mx.elsewhere.test"), "{out}");

    // Rotation: the next pair is published before it signs, the old one after.
    let (ok, out, err) = cli_async(&config, &["dkim", "rotate", "example.org"]).await;
    assert!(ok && out.contains("coimail dkim activate example.org"), "{out}{err}");
    let (ok, printed2, _) = cli_async(&config, &["dns", "example.org"]).await;
    assert!(ok && printed2.contains("; DKIM: the next keys"), "{printed2}");
    assert_eq!(printed2.lines().filter(|l| l.contains("._domainkey.")).count(), 4, "{printed2}");
    let dns = TestDns::start(zone_of(&printed)).await;
    let resolver = dns.addr.to_string();
    let (ok, out, _) = cli_async(&config, &["dns", "check", "--resolver", &resolver]).await;
    assert!(!ok && out.matches("  missing    ").count() == 2 && out.contains("-2._domainkey."), "the next pair: {out}");
    let (ok, out, err) = cli_async(&config, &["dkim", "activate", "example.org"]).await;
    assert!(ok && out.contains("coimail dkim retire example.org"), "{out}{err}");
    let (ok, out, _) = cli_async(&config, &["dkim", "list"]).await;
    let roles: Vec<&str> = out.lines().map(|l| l.rsplit("  ").next().unwrap()).collect();
    assert!(ok && roles == ["current", "current", "retiring", "retiring"], "{out}");
    let (ok, out, err) = cli_async(&config, &["dkim", "retire", "example.org"]).await;
    assert!(ok && out.contains("remove their DNS records"), "{out}{err}");
    let (_, printed3, _) = cli_async(&config, &["dns"]).await;
    let left: Vec<&str> = printed3.lines().filter(|l| l.contains("._domainkey.")).collect();
    assert_eq!(left.len(), 2, "{printed3}");
    assert!(left.iter().all(|l| l.contains("-2._domainkey.") && !printed.contains(*l)), "only the new pair: {left:?}");
}
