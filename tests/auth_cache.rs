//! The login cache from outside: a real daemon, IMAP over loopback, and the
//! `coimail` CLI changing a password over the admin socket while it runs.

use crate::util::server::{cli, test_config};
use crate::util::{ImapClient, PASSWORD, TestServer};
use std::net::SocketAddr;
use std::path::Path;

const ALICE: &str = "alice@example.org";

/// LOGIN then LOGOUT on a fresh connection; the LOGIN's tagged status line.
async fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut c = ImapClient::connect(addr).await;
    let status = c.command(&format!("LOGIN \"{user}\" \"{password}\"")).await.status;
    let bye = c.command("LOGOUT").await;
    assert!(bye.ok(), "{}", bye.status);
    status
}

/// Runs the CLI off the runtime's workers (the daemon serves on them meanwhile).
async fn run_cli(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let config = config.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&config, &args, stdin.as_deref())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_through_the_cli_is_refused_at_once() {
    let mut server = TestServer::start(&[ALICE]).await;
    // The same config the server runs with, for the CLI to find its admin socket.
    let config = server.dir.path().join("coimail.toml");
    std::fs::write(&config, toml::to_string(&test_config(server.dir.path())).unwrap()).unwrap();
    let imap = server.imap();
    let stats = |s: &TestServer| s.running.as_ref().unwrap().directory().auth_stats();

    for _ in 0..3 {
        let status = login(imap, ALICE, PASSWORD).await;
        assert!(status.contains(" OK "), "{status}");
    }
    let s = stats(&server);
    assert_eq!((s.argon2_verifications, s.cache_hits), (1, 2), "argon2 once, then the cache");

    let (ok, out, err) = run_cli(&config, &["user", "passwd", ALICE], Some("a new password\n")).await;
    assert!(ok && out.contains("password of alice@example.org changed"), "{out}{err}");

    let status = login(imap, ALICE, PASSWORD).await;
    assert!(status.contains(" NO [AUTHENTICATIONFAILED]"), "the old password still works: {status}");
    for _ in 0..2 {
        let status = login(imap, ALICE, "a new password").await;
        assert!(status.contains(" OK "), "{status}");
    }
    let s = stats(&server);
    assert_eq!((s.argon2_verifications, s.cache_hits), (3, 3), "old refused by argon2, new verified then cached");

    let (ok, out, err) = run_cli(&config, &["user", "del", ALICE], None).await;
    assert!(ok, "{out}{err}");
    let status = login(imap, ALICE, "a new password").await;
    assert!(status.contains(" NO [AUTHENTICATIONFAILED]"), "a deleted user logged in: {status}");
    assert_eq!(stats(&server).cache_hits, 3);
    server.stop().await;
}
