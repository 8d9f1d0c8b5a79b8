//! Setup shared by the IMAP benchmarks: a real sled store with one user, and
//! the session settings they run under.

use coimail_directory::{Account, Directory, PlaintextAuth};
use coimail_imap::ImapConfig;
use coimail_store::{Store, StoreOptions};
use std::time::Duration;

/// A store in `dir` with the domain example.org and one user.
pub async fn store_with_user(dir: &std::path::Path, user: &str, password: &str) -> (Store, Directory, Account) {
    let store = Store::open(dir, &StoreOptions::default()).expect("open store");
    let directory = Directory::open(&store, None).expect("directory");
    directory.add_domain("example.org").await.expect("domain");
    let account = directory.add_user(user, password, None).await.expect("user");
    (store, directory, account)
}

/// Session settings for benchmarks: plaintext LOGIN on loopback, room for
/// the connections one benchmark client opens.
pub fn config() -> ImapConfig {
    ImapConfig {
        hostname: "bench.example.org".into(),
        plaintext_auth: PlaintextAuth::Loopback,
        auth_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(1800),
        max_line_bytes: 8192,
        max_literal_bytes: 1 << 20,
        max_connections: 100,
        max_connections_per_ip: 100,
        max_unauthenticated_per_ip: 0,
        max_connections_per_user: 100,
        // The production defaults (crates/daemon/src/config.rs), so the numbers
        // are what a default install gives.
        max_commands_per_second: 1000,
        command_burst: 5000,
        max_bad_commands: 50,
        metadata_max_entry_bytes: 64 << 10,
        metadata_max_entries: 1000,
    }
}
