//! `coimail queue list|flush|delete`: the outbound queue, through the
//! running daemon's admin socket (or the store directly when none runs).

use clap::Subcommand;
use coimail_daemon::admin::AdminRequest;

#[derive(Subcommand)]
pub enum QueueCmd {
    /// List queued messages with each recipient's state and last reply.
    List,
    /// Try every queued message now, or only message ID.
    Flush { id: Option<u64> },
    /// Drop queued message ID without a bounce.
    Delete { id: u64 },
}

impl QueueCmd {
    pub fn into_request(self) -> AdminRequest {
        match self {
            QueueCmd::List => AdminRequest::QueueList,
            QueueCmd::Flush { id } => AdminRequest::QueueFlush { id },
            QueueCmd::Delete { id } => AdminRequest::QueueDelete { id },
        }
    }
}
