//! `coimail store rebuild`: re-creates the index from the body files and
//! the directory snapshot, for when the index is lost or corrupt.

use anyhow::{Result, bail};
use clap::Subcommand;
use coimail_daemon::Config;
use coimail_daemon::admin::{self, AdminRequest};
use std::path::Path;

#[derive(Subcommand)]
pub enum StoreCmd {
    /// Rebuild the index from message files (the daemon must be stopped).
    /// The old index is kept beside it as index.old-<time>.
    Rebuild,
}

pub async fn run(config_path: &Path, cmd: StoreCmd) -> Result<()> {
    let config = Config::load(config_path)?;
    match cmd {
        StoreCmd::Rebuild => rebuild(&config).await,
    }
}

async fn rebuild(config: &Config) -> Result<()> {
    if admin::call(&config.admin_socket(), &AdminRequest::Ping).await?.is_some() {
        bail!("coimail is running on this data dir; stop it before rebuilding the index");
    }
    let data = &config.server.data_dir;
    let snapshot = config.directory_snapshot();
    if !snapshot.exists() {
        bail!("{} is missing: without it users cannot be restored", snapshot.display());
    }
    if let Some(aside) = coimail_store::set_index_aside(data, "old")? {
        println!("moved the old index to {}", aside.display());
    }
    // An empty index with a snapshot present makes open_data restore users
    // and re-index every body file.
    let (store, directory) = coimail_daemon::open_data(config).await?;
    let mut messages = 0usize;
    for account in directory.list_users()? {
        for mailbox in store.list_mailboxes(account.id)? {
            messages += mailbox.exists as usize;
        }
    }
    println!("rebuilt: {} users, {messages} messages", directory.list_users()?.len());
    drop(directory);
    store.close().await?;
    Ok(())
}
