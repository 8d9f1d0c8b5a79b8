//! `coimail queue list|flush|delete`: the outbound queue, through the
//! running daemon's admin socket (or the store directly when none runs).
//! `coimail queue tls-report` reads the TLS report records (RFC 8460) the
//! queue keeps in the data directory; no daemon is involved.

use anyhow::{Context, Result};
use clap::Subcommand;
use coimail_daemon::Config;
use coimail_daemon::admin::AdminRequest;
use coimail_delivery::tlsrpt;
use std::path::Path;

#[derive(Subcommand)]
pub enum QueueCmd {
    /// List queued messages with each recipient's state and last reply.
    List,
    /// Try every queued message now, or only message ID.
    Flush { id: Option<u64> },
    /// Drop queued message ID without a bounce.
    Delete { id: u64 },
    /// Show the TLS results of outbound sessions per domain and day (MTA-STS, RFC 8460 records).
    TlsReport {
        /// Only this recipient domain.
        domain: Option<String>,
    },
}

pub async fn run(config_path: &Path, cmd: QueueCmd) -> Result<()> {
    let req = match cmd {
        QueueCmd::List => AdminRequest::QueueList,
        QueueCmd::Flush { id } => AdminRequest::QueueFlush { id },
        QueueCmd::Delete { id } => AdminRequest::QueueDelete { id },
        QueueCmd::TlsReport { domain } => return tls_report(config_path, domain.as_deref()),
    };
    crate::admin_cmd::run(config_path, req).await
}

fn tls_report(config_path: &Path, domain: Option<&str>) -> Result<()> {
    let config = Config::load(config_path)?;
    let dir = config.server.data_dir.join(tlsrpt::DIR);
    let records = tlsrpt::load(&dir, domain).with_context(|| format!("reading {}", dir.display()))?;
    if records.is_empty() {
        println!("no TLS report records");
    }
    for line in tlsrpt::describe(&records) {
        println!("{line}");
    }
    Ok(())
}
