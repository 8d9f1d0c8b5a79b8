//! One file per command group, named after the RFC commands. Each handler
//! gets the session and the typed command arguments, writes its untagged
//! responses to the session's output and returns the tagged outcome.

pub(crate) mod any;
pub(crate) mod append;
pub(crate) mod auth;
pub(crate) mod compress;
pub(crate) mod copy_move;
pub(crate) mod expunge;
pub(crate) mod ext;
pub(crate) mod fetch;
pub(crate) mod idle;
pub(crate) mod mailbox;
pub(crate) mod metadata;
pub(crate) mod notify;
pub(crate) mod quota;
pub(crate) mod search;
pub(crate) mod select;
pub(crate) mod sort;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod thread;
