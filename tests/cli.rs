//! The CLI as a new user meets it: init, config check, serve, user add while
//! the daemon runs, and clear errors for bad configs.

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
        if line.contains("[\"0.0.0.0:") {
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
