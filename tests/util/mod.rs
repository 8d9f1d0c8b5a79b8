//! Shared helpers: start a server in one line, talk IMAP and SMTP.

pub mod dns;
pub mod http;
pub mod imap;
pub mod mailhost;
pub mod namespace;
pub mod notify_proxy;
pub mod pebble;
pub mod pipeline;
pub mod push_service;
pub mod server;
pub mod slow;
pub mod smtp;
pub mod sts;

pub use imap::ImapClient;
pub use server::{ChildServer, TestServer};
pub use smtp::SmtpClient;

pub const DOMAIN: &str = "example.org";
pub const PASSWORD: &str = "correct horse battery";

/// A small RFC 5322 message with a unique Message-ID.
pub fn message(n: usize, to: &str) -> Vec<u8> {
    format!(
        "From: sender@remote.test\r\nTo: {to}\r\nSubject: test {n}\r\nMessage-ID: <msg-{n}@remote.test>\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n\r\nHello {n}.\r\n.leading dot stays\r\nBye.\r\n"
    )
    .into_bytes()
}
