//! The state-tracking IMAP stress tester (crates/imap-stress) against the
//! in-process daemon: many sessions on one shared mailbox and on several
//! accounts, every response checked against the sessions' models, the
//! mailboxes audited at the end. A short run; `benches/imap_load.rs` has
//! the long one and the comparison with Dovecot.

use crate::util::{DOMAIN, PASSWORD, TestServer};
use coimail_imap_stress::{Config, Report};
use std::time::Duration;

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("stress{i}@{DOMAIN}")).collect()
}

/// Runs the tester and fails, printing every kind of violation found with
/// examples, unless there were none.
async fn stress(users: &[String], clients: usize, logout: bool, seed: u64) -> Report {
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut server = TestServer::start(&names).await;
    let mut cfg = Config::new(server.imap(), users.iter().map(|u| (u.clone(), PASSWORD.to_owned())).collect());
    cfg.clients = clients;
    cfg.duration = Duration::from_secs(10);
    cfg.seed = seed;
    cfg.logout = logout;
    let report = coimail_imap_stress::run(cfg).await.expect("stress set-up");
    server.stop().await;
    println!("{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_clients_share_one_mailbox() {
    let report = stress(&users(1), 10, false, 1).await;
    assert!(report.commands() > 0);
    assert_eq!(report.violations(), 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_clients_over_ten_accounts_with_logins() {
    let report = stress(&users(10), 20, true, 2).await;
    assert!(report.commands() > 0);
    assert_eq!(report.violations(), 0, "{report}");
}
