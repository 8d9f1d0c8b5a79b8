//! The integration test binary: every test starts a real coimail (in-process
//! or as a child process) on 127.0.0.1 port 0 with a temp data dir and talks
//! to it over real sockets, with our line clients or real third-party ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod acme;
mod auth_cache;
mod chatmail;
mod chatmail_new;
mod cli;
mod coi;
mod coi_clients;
mod coi_config;
mod coi_delivery;
mod coi_seen;
mod coi_webpush;
mod coi_webpush_limits;
mod crash;
mod crash_imap;
mod deltachat_push;
mod disk;
mod dkim;
mod external;
mod http;
mod imap_interop;
mod imap_stress;
mod inbound;
mod limits;
mod logging;
mod metrics;
mod peer_limits;
mod queue;
mod slow_clients;
mod smtp_interop;
mod smtp_large;
mod smtp_to_imap;
mod sts;
mod tidy;
mod tls_reload;
