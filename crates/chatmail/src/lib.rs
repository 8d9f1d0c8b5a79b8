//! coimail-chatmail: what makes coimail a chatmail relay for Delta Chat
//! users (`[chatmail]` in the config; docs/chatmail.md).
//!
//! chatmail relays (github.com/chatmail/relay) are Dovecot and Postfix plus
//! a few Python services; this crate holds the rules of those services that
//! are not plain mail-server features, with their behaviour kept:
//! - `filter.rs` — encrypted-only mail (filtermail.py): which messages a
//!   relay accepts on submission (outgoing) and over MX (incoming). Pure:
//!   bytes in, verdict out; the SMTP crate calls it at the end of DATA/BDAT.
//! - `expiry.rs` — the background task that deletes old messages and
//!   accounts unused for long (expire.py, delete_inactive_users). The store
//!   and the directory do the deleting; this only decides when.
//!
//! Account creation on first login (doveauth.py) lives in the directory
//! (`coimail_directory::AutoCreate`), where every login is checked, and
//! `XCHATMAIL` in the IMAP capability list.

pub mod expiry;
pub mod filter;
mod openpgp;

pub use expiry::{ExpiryOptions, ExpiryReport};
pub use filter::{Direction, FilterPolicy, Kind, Refused, classify};
