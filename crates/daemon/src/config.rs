//! The whole TOML schema as typed structs. Every field has a default, so an
//! empty file is a valid config; unknown keys are refused (a typo must not
//! silently fall back to a default). `config/coimail.toml` documents every
//! key; a test keeps it in step with these structs.
//!
//! Relative paths are resolved against the directory of the config file,
//! so a data dir made by `coimail init` keeps working wherever it is started from.

mod deltachat;

pub use deltachat::{DELTA_CHAT_NOTIFY_URL, DeltaChatConfig};

use coimail_directory::{PlaintextAuth, TrustedProxies};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub accounts: AccountsConfig,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    pub queue: QueueConfig,
    pub dkim: DkimConfig,
    pub dns: DnsConfig,
    pub store: StoreConfig,
    pub coi: CoiConfig,
    pub http: HttpConfig,
    pub mta_sts: MtaStsConfig,
    pub deltachat: DeltaChatConfig,
    pub chatmail: crate::chatmail::ChatmailConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Host name in greetings, Received headers and the self-signed certificate.
    pub hostname: String,
    /// Where the index, message bodies, directory snapshot and admin socket live.
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { hostname: "localhost".into(), data_dir: PathBuf::from("data") }
    }
}

/// Addresses to listen on, per service. An empty list turns a service off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// IMAP with STARTTLS (production: 143).
    pub imap: Vec<SocketAddr>,
    /// IMAP over implicit TLS (production: 993).
    pub imaps: Vec<SocketAddr>,
    /// SMTP MX receiver, no AUTH (production: 25).
    pub smtp: Vec<SocketAddr>,
    /// Submission with STARTTLS and AUTH (production: 587).
    pub submission: Vec<SocketAddr>,
    /// Submission over implicit TLS (production: 465).
    pub submissions: Vec<SocketAddr>,
    /// HTTPS: client autoconfiguration and the MTA-STS policy (production: 443).
    pub https: Vec<SocketAddr>,
    /// Plain HTTP: ACME HTTP-01, autoconfig, else a redirect to HTTPS (production: 80).
    pub http: Vec<SocketAddr>,
    /// HTTP: Prometheus metrics at `/metrics`, health at `/healthz`. No
    /// TLS and no login: keep it on loopback or a private network.
    pub metrics: Vec<SocketAddr>,
    /// Per service, the load balancers (`addr/len` networks) whose
    /// connections begin with a PROXY protocol header (v1 or v2).
    pub proxy_protocol_from: ProxyProtocolFrom,
}

/// Trusted PROXY protocol sources per service; empty: no PROXY protocol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyProtocolFrom {
    pub imap: Vec<String>,
    pub imaps: Vec<String>,
    pub smtp: Vec<String>,
    pub submission: Vec<String>,
    pub submissions: Vec<String>,
    pub https: Vec<String>,
    pub http: Vec<String>,
}

impl ProxyProtocolFrom {
    /// The parsed networks of imap, imaps, smtp, submission and submissions, in that order.
    pub fn parsed(&self) -> Result<[TrustedProxies; 5], ConfigError> {
        let parse = |key: &'static str, list: &[String]| {
            TrustedProxies::parse(list).map_err(|message| ConfigError::Invalid { key, message })
        };
        Ok([
            parse("listen.proxy_protocol_from.imap", &self.imap)?,
            parse("listen.proxy_protocol_from.imaps", &self.imaps)?,
            parse("listen.proxy_protocol_from.smtp", &self.smtp)?,
            parse("listen.proxy_protocol_from.submission", &self.submission)?,
            parse("listen.proxy_protocol_from.submissions", &self.submissions)?,
        ])
    }

    /// The parsed networks of https and http, in that order.
    pub fn parsed_http(&self) -> Result<[TrustedProxies; 2], ConfigError> {
        let parse = |key: &'static str, list: &[String]| {
            TrustedProxies::parse(list).map_err(|message| ConfigError::Invalid { key, message })
        };
        Ok([
            parse("listen.proxy_protocol_from.https", &self.https)?,
            parse("listen.proxy_protocol_from.http", &self.http)?,
        ])
    }
}

/// Loopback only: the counters tell who is busy and the health probe
/// writes to disk, so they are for the host's own Prometheus (or an SSH
/// tunnel) unless the admin opens them up.
const DEFAULT_METRICS: &str = "127.0.0.1:9425";

fn addrs(s: &str) -> Vec<SocketAddr> {
    s.parse().map(|a| vec![a]).unwrap_or_default()
}

impl Default for ListenConfig {
    /// High ports, so a first run needs no root.
    fn default() -> Self {
        ListenConfig {
            imap: addrs("0.0.0.0:1143"),
            imaps: addrs("0.0.0.0:1993"),
            smtp: addrs("0.0.0.0:2525"),
            submission: addrs("0.0.0.0:1587"),
            submissions: addrs("0.0.0.0:1465"),
            https: addrs("0.0.0.0:1443"),
            http: addrs("0.0.0.0:1080"),
            metrics: addrs(DEFAULT_METRICS),
            proxy_protocol_from: ProxyProtocolFrom::default(),
        }
    }
}

impl ListenConfig {
    pub fn needs_tls(&self) -> bool {
        !self.imaps.is_empty() || !self.submissions.is_empty() || !self.https.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Without the file, implicit-TLS listeners cannot
    /// start and STARTTLS is not offered.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Certificates from an ACME CA (Let's Encrypt), issued and renewed by the daemon.
    pub acme: AcmeConfig,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::from("tls/cert.pem"),
            key: PathBuf::from("tls/key.pem"),
            acme: AcmeConfig::default(),
        }
    }
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// How the ACME CA checks that this server answers for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AcmeChallenge {
    /// RFC 8737: a TLS handshake on port 443 of the name.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.3: an HTTP request on port 80 of the name.
    #[serde(rename = "http-01")]
    Http01,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// Get and renew certificates by ACME (RFC 8555). They are served instead of the `cert`
    /// file for their names, and to clients that send no name; the file still serves others.
    pub enabled: bool,
    /// The CA's directory URL. Let's Encrypt staging (for trying it out):
    /// https://acme-staging-v02.api.letsencrypt.org/directory
    pub directory: String,
    /// Address the CA may write to about the certificates (expiry, policy changes); empty: none.
    pub contact: String,
    /// "tls-alpn-01" (port 443 must reach this server) or "http-01" (port 80).
    pub challenge: AcmeChallenge,
    /// Names of the certificate; empty: server.hostname, and autoconfig.<domain> and
    /// mta-sts.<domain> of every domain served. Every name must resolve to this server.
    pub names: Vec<String>,
    /// Renew this many days before the certificate expires, or after two thirds of its
    /// lifetime if that comes later (short-lived certificates).
    pub renew_before_days: u64,
    /// A PEM CA certificate the directory's HTTPS is checked against instead of the system's
    /// roots (a test CA such as Pebble's); empty: the system's.
    pub directory_ca: PathBuf,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: false,
            directory: LETS_ENCRYPT.to_owned(),
            contact: String::new(),
            challenge: AcmeChallenge::TlsAlpn01,
            names: Vec::new(),
            renew_before_days: 30,
            directory_ca: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// When passwords may be sent without TLS: "never", "loopback" or "always".
    pub plaintext: PlaintextAuth,
    /// Failed logins from one peer (IPv6: one /64), against any accounts,
    /// before it is refused for a while. A success clears only that peer's
    /// failures against the account that succeeded.
    pub max_failures: u32,
    /// Failed logins against one account, from all peers together, before
    /// new logins to it are refused for a while (logins the cache knows
    /// still pass); 0: no limit.
    pub max_account_failures: u32,
    /// How long failures are remembered, in seconds.
    pub failure_window_secs: u64,
    /// How long a login argon2 accepted is remembered (same user, same
    /// password, unchanged user record), in seconds; 0 turns the cache off.
    pub cache_ttl_secs: u64,
    /// Most logins remembered at once; 0 turns the cache off.
    pub cache_max_entries: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let cache = coimail_directory::CacheOptions::default();
        AuthConfig {
            plaintext: PlaintextAuth::Loopback,
            max_failures: 10,
            max_account_failures: 30,
            failure_window_secs: 60,
            cache_ttl_secs: cache.ttl.as_secs(),
            cache_max_entries: cache.max_entries,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// Quota, in bytes, of a user created without one (`coimail user add`
    /// without `--quota`); 0: no quota. Users that exist keep theirs.
    pub default_quota_bytes: u64,
}

/// Cached logins never outlive a change to the user (entries are bound to
/// its record); the TTL bounds how long a password goes without argon2 and
/// its HMAC stays in memory, so a day at most.
const MAX_AUTH_CACHE_TTL_SECS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// Inactivity limit before login, in seconds; login must also finish
    /// within three times this from connecting.
    pub auth_timeout_secs: u64,
    /// Inactivity limit after login, IDLE included, in seconds (RFC 9051: at least 30 minutes).
    pub idle_timeout_secs: u64,
    /// Longest command accepted, in bytes: all its lines together, literals not counted.
    pub max_line_bytes: usize,
    /// Largest literal (APPEND message) accepted, in bytes.
    pub max_literal_bytes: u64,
    /// Most IMAP sessions at once, all listeners together (0: no limit).
    pub max_connections: usize,
    /// Most IMAP sessions from one IP address (IPv6: one /64) (0: no limit).
    pub max_connections_per_ip: usize,
    /// Most IMAP sessions from one IP address (IPv6: one /64) that have not
    /// logged in yet (0: no limit).
    pub max_unauthenticated_per_ip: usize,
    /// Most logged-in IMAP sessions of one user, all devices together (0: no limit).
    pub max_connections_per_user: usize,
    /// Commands per second one session may keep up, with bursts of five times
    /// this; faster clients are slowed down, and one kept over it for 30 s is
    /// closed (0: no limit).
    pub max_commands_per_second: u32,
    /// BAD answers after which a session is closed (0: no limit).
    pub max_bad_commands: u32,
    /// Largest METADATA value (SETMETADATA) accepted, in bytes.
    pub metadata_max_entry_bytes: usize,
    /// Most METADATA entries one user may keep, server and mailboxes together.
    pub metadata_max_entries: usize,
}

/// `imap.max_commands_per_second` bounds. Below 10 a client's ordinary sync
/// would wait; above a million the time per command rounds to nothing.
const MIN_IMAP_COMMAND_RATE: u32 = 10;
const MAX_IMAP_COMMAND_RATE: u32 = 1_000_000;
/// An IMAP session's burst is this many seconds' worth of its rate.
const IMAP_BURST_SECONDS: u32 = 5;
/// `imap.max_bad_commands` floor: clients probing for extensions get the odd BAD.
const MIN_IMAP_BAD_COMMANDS: u32 = 5;

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            auth_timeout_secs: 60,
            idle_timeout_secs: 30 * 60,
            max_line_bytes: 64 * 1024,
            max_literal_bytes: 64 << 20,
            max_connections: 1000,
            max_connections_per_ip: 20,
            max_unauthenticated_per_ip: 10,
            max_connections_per_user: 50,
            max_commands_per_second: 1000,
            max_bad_commands: 50,
            metadata_max_entry_bytes: 64 * 1024,
            metadata_max_entries: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_bytes: usize,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// How long a client may take to send a whole command line, and each
    /// read of message data, in seconds (RFC 5321 §4.5.3.2: 5 minutes).
    pub command_timeout_secs: u64,
    /// How long a client may take to send its first command (EHLO) after
    /// the greeting, or its implicit-TLS handshake, in seconds.
    pub first_command_timeout_secs: u64,
    /// Longest SMTP session, in seconds, however busy (0: no limit).
    pub session_timeout_secs: u64,
    /// Longest time to receive one message (DATA, or BDAT from the first
    /// chunk to the last), in seconds (0: no limit).
    pub data_timeout_secs: u64,
    /// Slowest message data accepted, in bytes per second averaged from
    /// the start of the data, after the grace period (0: no limit).
    pub min_data_rate: u64,
    /// Seconds at the start of the message data not held to `min_data_rate`.
    pub min_data_rate_grace_secs: u64,
    /// Most sessions at once on the MX listener (0: no limit).
    #[serde(alias = "max_connections")]
    pub mx_max_connections: usize,
    /// Most MX sessions from one IP address (IPv6: one /64) (0: no limit).
    #[serde(alias = "max_connections_per_ip")]
    pub mx_max_connections_per_ip: usize,
    /// Most sessions at once on the submission listeners, 587 and 465
    /// together; a pool apart from MX's (0: no limit).
    pub submission_max_connections: usize,
    /// Most submission sessions from one IP address (IPv6: one /64) (0: no limit).
    pub submission_max_connections_per_ip: usize,
    /// Most messages one user may submit per hour (sliding window; counted in memory) (0: no limit).
    pub max_messages_per_hour: usize,
    /// Most messages one IP address (IPv6: one /64) may deliver over MX
    /// per hour (sliding window; counted in memory) (0: no limit).
    pub mx_messages_per_peer_per_hour: usize,
    /// Most messages one local user may receive over MX per hour (sliding
    /// window; counted in memory) (0: no limit).
    pub mx_messages_per_recipient_per_hour: usize,
    /// Check mail arriving on the MX port: SPF, DKIM, ARC, DMARC, reverse DNS
    /// (through `queue.resolvers`). Off only on private networks without DNS.
    pub inbound_checks: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            max_message_bytes: 50 << 20,
            max_recipients: 100,
            command_timeout_secs: 300,
            first_command_timeout_secs: 60,
            session_timeout_secs: 1800,
            data_timeout_secs: 900,
            min_data_rate: 1024,
            min_data_rate_grace_secs: 30,
            mx_max_connections: 200,
            mx_max_connections_per_ip: 10,
            submission_max_connections: 200,
            submission_max_connections_per_ip: 10,
            max_messages_per_hour: 1000,
            mx_messages_per_peer_per_hour: 3600,
            mx_messages_per_recipient_per_hour: 1000,
            inbound_checks: true,
        }
    }
}

/// The outbound queue: mail from our users to other domains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// First retry after a temporary failure, in seconds; each later wait doubles.
    pub retry_initial_secs: u64,
    /// Longest wait between two attempts, in seconds.
    pub retry_max_secs: u64,
    /// Give up and bounce to the sender after this long in the queue, in seconds.
    pub expire_secs: u64,
    /// DNS servers for every lookup (outbound MX and addresses, the MX
    /// listener's SPF/DKIM/DMARC checks), as "ip:port"; empty: those of /etc/resolv.conf.
    pub resolvers: Vec<SocketAddr>,
    /// Port of remote mail servers (25 on the internet; tests use others).
    pub outbound_port: u16,
    /// Deliveries in progress at once.
    pub concurrency: usize,
    /// Deliveries in progress at once to one destination domain (connections to its servers).
    pub destination_concurrency: usize,
    /// Seconds a message may wait before its sender gets one "delayed" notice (RFC 3464); 0: never.
    pub delay_warning_secs: u64,
    /// How long to wait for a remote server to accept a connection, in seconds.
    pub connect_timeout_secs: u64,
    /// How long to wait for each reply of a remote server, in seconds (RFC 5321 §4.5.3.2: minutes).
    pub command_timeout_secs: u64,
    /// Apply the MTA-STS policies (RFC 8461) of recipient domains: fetched over HTTPS, cached in
    /// `<data>/mta-sts/`; `enforce` mode defers rather than send without verified TLS.
    pub mta_sts: bool,
    /// Port of the MTA-STS policy hosts' HTTPS servers (443 on the internet; tests use others).
    pub mta_sts_port: u16,
    /// A PEM file of CA certificates to trust for MTA-STS besides the system's (a private CA);
    /// empty: none.
    pub tls_extra_roots: PathBuf,
    /// Deliver to loopback, private (RFC 1918, fc00::/7), link-local and other special-purpose
    /// addresses an MX resolves to. Off: such addresses are skipped, and a domain with no other
    /// address fails with 5.4.4. For tests and mail servers on a LAN only.
    pub allow_private_destinations: bool,
    /// Delivery reports (bounces, delay and success notices) per hour to one address; 0: no cap.
    pub reports_per_address_per_hour: usize,
    /// Delivery reports per hour in all; 0: no cap.
    pub reports_per_hour: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retry_initial_secs: 5 * 60,
            retry_max_secs: 4 * 60 * 60,
            expire_secs: 5 * 24 * 60 * 60,
            resolvers: Vec::new(),
            outbound_port: 25,
            concurrency: 16,
            destination_concurrency: 4,
            delay_warning_secs: 4 * 60 * 60,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            mta_sts: true,
            mta_sts_port: 443,
            tls_extra_roots: PathBuf::new(),
            allow_private_destinations: false,
            reports_per_address_per_hour: coimail_delivery::report_limit::DEFAULT_PER_ADDRESS,
            reports_per_hour: coimail_delivery::report_limit::DEFAULT_TOTAL,
        }
    }
}

/// DKIM signing of mail that leaves through the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkimConfig {
    /// Sign with the keys in `<data>/dkim/` (made by `init` and `domain add`);
    /// a domain without keys is sent unsigned.
    pub sign: bool,
}

impl Default for DkimConfig {
    fn default() -> Self {
        DkimConfig { sign: true }
    }
}

/// What `coimail dns` needs to know beyond the rest of the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// This server's public addresses, for the A/AAAA and SPF records; empty:
    /// SPF says `mx` and the A/AAAA records are left for the operator to fill in.
    pub public_addresses: Vec<std::net::IpAddr>,
}

/// The HTTP(S) listeners (`listen.https`, `listen.http`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Most HTTP(S) connections at once, both listeners together (0: no limit).
    pub max_connections: usize,
    /// Most HTTP(S) connections from one IP address (IPv6: one /64) (0: no limit).
    pub max_connections_per_ip: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { max_connections: 200, max_connections_per_ip: 20 }
    }
}

/// The MTA-STS policy (RFC 8461) served at `https://mta-sts.<domain>/.well-known/mta-sts.txt`
/// for every domain, naming `server.hostname` as the one MX; `coimail dns` prints the
/// `_mta-sts` record whose id follows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtaStsConfig {
    /// "testing" (senders report failures but deliver anyway), "enforce" (senders
    /// deliver only over TLS with a valid certificate for the MX), or "none" (withdraws it).
    pub mode: coimail_delivery::sts::Mode,
    /// How long senders may cache the policy, in seconds (at most 31557600, a year).
    pub max_age_secs: u32,
}

impl Default for MtaStsConfig {
    fn default() -> Self {
        MtaStsConfig { mode: coimail_delivery::sts::Mode::Testing, max_age_secs: 604_800 }
    }
}

/// Upper bound of `coi.validation_window_secs`: one day.
const MAX_VALIDATION_WINDOW_SECS: u64 = 86_400;

/// Chat Over IMAP. COI stays off for every user until a COI client turns
/// it on for that user; these are the server-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoiConfig {
    /// Folder under which chats are filed ("<root>/Chats", "<root>/Contacts").
    pub mailbox_root: String,
    /// Offer WebPush notifications (the WEBPUSH capability) to COI clients.
    pub webpush: bool,
    /// Push subscriptions one user may hold, unvalidated ones included.
    pub subscription_limit: usize,
    /// How long a new push subscription may stay unvalidated, in seconds (at most 86400).
    pub validation_window_secs: u64,
    /// Push subscription requests one user may make per hour (replacements and
    /// failed ones too); each sends a validation push.
    pub validation_attempts_per_hour: usize,
    /// Allow push services on this machine (127.0.0.1, ::1), over plain http too.
    /// For tests and benchmarks only: it lets users make the server POST to loopback.
    pub allow_loopback_push_endpoints: bool,
    /// How long to wait for a push service to answer, in milliseconds.
    pub push_timeout_ms: u64,
    /// Retries of a push the service answered 429/5xx (or did not answer).
    pub push_retries: u32,
    /// Pushes waiting to be sent at most; beyond that new ones are dropped (and logged).
    pub push_queue: usize,
    /// Push requests in flight at once.
    pub push_workers: usize,
    /// Pushes of one account waiting to be sent at most; beyond that its new ones are dropped,
    /// so one account's stalled push endpoints cannot fill the queue for everyone.
    pub push_queue_per_account: usize,
    /// Push requests of one account in flight (or waiting to retry) at once; at most
    /// `push_workers`, and below it so other accounts always find a worker free.
    pub push_workers_per_account: usize,
    /// Contact sent to push services in the VAPID token (RFC 8292 "sub");
    /// empty: mailto:postmaster@<server.hostname>.
    pub vapid_subject: String,
}

impl Default for CoiConfig {
    fn default() -> Self {
        CoiConfig {
            mailbox_root: "COI".to_owned(),
            webpush: true,
            subscription_limit: 10,
            validation_window_secs: 300,
            validation_attempts_per_hour: 20,
            allow_loopback_push_endpoints: false,
            push_timeout_ms: 2000,
            push_retries: 1,
            push_queue: 1024,
            push_workers: 4,
            push_queue_per_account: 64,
            push_workers_per_account: 2,
            vapid_subject: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Index page cache, in MiB.
    pub cache_mb: u64,
    /// Free space kept on the data dir's filesystem: this percent of its
    /// size, but at most `min_free_mb`. Below it new mail is refused.
    pub min_free_percent: u8,
    pub min_free_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let reserve = coimail_store::Reserve::default();
        StoreConfig { cache_mb: 128, min_free_percent: reserve.percent, min_free_mb: reserve.max_bytes >> 20 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// "human" or "json".
    pub format: LogFormat,
    /// Filter in RUST_LOG syntax, e.g. "info" or "info,coimail_imap=debug".
    /// The RUST_LOG environment variable overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Human, level: "info".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long SIGTERM waits for sessions to finish what they are doing, in seconds.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_secs: 30 }
    }
}

impl Config {
    /// Reads, parses, resolves relative paths and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config =
            Config::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; the message names the offending key and line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        // `[deltachat] chatmail = true` is the short way to `[chatmail] enabled = true`.
        config.chatmail.enabled |= config.deltachat.chatmail;
        Ok(config)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for roots in [&mut self.queue.tls_extra_roots, &mut self.tls.acme.directory_ca] {
            if roots.is_relative() && !roots.as_os_str().is_empty() {
                *roots = base.join(&*roots);
            }
        }
        for p in [&mut self.server.data_dir, &mut self.tls.cert, &mut self.tls.key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks values serde cannot: ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_owned() });
        let h = &self.server.hostname;
        if h.is_empty() || h.len() > 253 || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return invalid("server.hostname", "must be a DNS name like mail.example.org");
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return invalid("server.data_dir", "must not be empty");
        }
        self.listen.proxy_protocol_from.parsed()?;
        self.validate_acme()?;
        self.listen.proxy_protocol_from.parsed_http()?;
        if self.mta_sts.max_age_secs > coimail_delivery::sts::policy::MAX_AGE_LIMIT {
            return invalid("mta_sts.max_age_secs", "must be at most 31557600 (RFC 8461 §3.2)");
        }
        if self.imap.auth_timeout_secs == 0 {
            return invalid("imap.auth_timeout_secs", "must be at least 1");
        }
        if self.imap.idle_timeout_secs < 60 {
            return invalid("imap.idle_timeout_secs", "must be at least 60 (RFC 9051 asks for 30 minutes)");
        }
        if self.imap.max_line_bytes < 1024 {
            return invalid("imap.max_line_bytes", "must be at least 1024");
        }
        if self.imap.max_literal_bytes == 0 {
            return invalid("imap.max_literal_bytes", "must be at least 1");
        }
        let rate = self.imap.max_commands_per_second;
        if rate > MAX_IMAP_COMMAND_RATE || (1..MIN_IMAP_COMMAND_RATE).contains(&rate) {
            return invalid("imap.max_commands_per_second", "must be 0 (no limit) or between 10 and 1000000");
        }
        if (1..MIN_IMAP_BAD_COMMANDS).contains(&self.imap.max_bad_commands) {
            return invalid("imap.max_bad_commands", "must be 0 (no limit) or at least 5");
        }
        if self.smtp.max_message_bytes < 1024 {
            return invalid("smtp.max_message_bytes", "must be at least 1024");
        }
        if self.smtp.max_recipients == 0 {
            return invalid("smtp.max_recipients", "must be at least 1 (RFC 5321 asks for 100)");
        }
        if self.smtp.command_timeout_secs == 0 {
            return invalid("smtp.command_timeout_secs", "must be at least 1");
        }
        if self.smtp.first_command_timeout_secs == 0 {
            return invalid("smtp.first_command_timeout_secs", "must be at least 1");
        }
        let s = &self.smtp;
        if s.session_timeout_secs != 0 && s.data_timeout_secs != 0 && s.session_timeout_secs < s.data_timeout_secs {
            return invalid("smtp.session_timeout_secs", "must be 0 (no limit) or at least smtp.data_timeout_secs");
        }
        let q = &self.queue;
        if q.retry_initial_secs == 0 {
            return invalid("queue.retry_initial_secs", "must be at least 1");
        }
        if q.retry_max_secs < q.retry_initial_secs {
            return invalid("queue.retry_max_secs", "must be at least queue.retry_initial_secs");
        }
        if q.expire_secs == 0 || i64::try_from(q.expire_secs).is_err() {
            return invalid("queue.expire_secs", "must be at least 1");
        }
        if q.outbound_port == 0 {
            return invalid("queue.outbound_port", "must be a port number (25)");
        }
        if q.mta_sts_port == 0 {
            return invalid("queue.mta_sts_port", "must be a port number (443)");
        }
        if q.concurrency == 0 {
            return invalid("queue.concurrency", "must be at least 1");
        }
        if q.destination_concurrency == 0 {
            return invalid("queue.destination_concurrency", "must be at least 1");
        }
        if q.connect_timeout_secs == 0 || q.command_timeout_secs == 0 {
            return invalid("queue.command_timeout_secs", "timeouts must be at least 1");
        }
        if self.auth.max_failures == 0 {
            return invalid("auth.max_failures", "must be at least 1");
        }
        if self.auth.cache_ttl_secs > MAX_AUTH_CACHE_TTL_SECS {
            return invalid("auth.cache_ttl_secs", "must be between 0 (no cache) and 86400");
        }
        if self.store.cache_mb == 0 {
            return invalid("store.cache_mb", "must be at least 1");
        }
        if self.store.min_free_percent > 50 {
            return invalid("store.min_free_percent", "must be between 0 (no reserve) and 50");
        }
        let c = &self.coi;
        if coimail_store::names::canonical(&c.mailbox_root).is_err() || c.mailbox_root.eq_ignore_ascii_case("INBOX") {
            return invalid("coi.mailbox_root", "must be a valid mailbox name other than INBOX, like COI");
        }
        if c.subscription_limit == 0 {
            return invalid("coi.subscription_limit", "must be at least 1");
        }
        // A day is far beyond what any client needs (the spec recommends 5 minutes), and the cap
        // keeps the window a sane number of seconds however it is converted.
        if !(1..=MAX_VALIDATION_WINDOW_SECS).contains(&c.validation_window_secs) {
            return invalid("coi.validation_window_secs", "must be between 1 and 86400");
        }
        if c.validation_attempts_per_hour == 0 {
            return invalid("coi.validation_attempts_per_hour", "must be at least 1");
        }
        if c.push_timeout_ms == 0 || c.push_queue == 0 || c.push_workers == 0 {
            return invalid("coi.push_timeout_ms", "push timeout, queue and workers must be at least 1");
        }
        if c.push_queue_per_account == 0
            || c.push_workers_per_account == 0
            || c.push_workers_per_account > c.push_workers
        {
            return invalid(
                "coi.push_workers_per_account",
                "per-account queue and workers: at least 1, workers at most push_workers",
            );
        }
        let subject = &c.vapid_subject;
        if !(subject.is_empty() || subject.starts_with("mailto:") || subject.starts_with("https:")) {
            return invalid("coi.vapid_subject", "must be a mailto: or https: URL (RFC 8292)");
        }
        self.deltachat.validate()?;
        self.chatmail.validate()?;
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError::Invalid { key: "log.level", message: e.to_string() });
        }
        Ok(())
    }

    fn validate_acme(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_owned() });
        let a = &self.tls.acme;
        if !a.directory.starts_with("https://") {
            return invalid("tls.acme.directory", "must be an https:// URL");
        }
        if a.renew_before_days == 0 {
            return invalid("tls.acme.renew_before_days", "must be at least 1");
        }
        let dns_name = |n: &str| {
            n.contains('.') && n.len() <= 253 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        if let Some(bad) = a.names.iter().find(|n| !dns_name(n)) {
            return Err(ConfigError::Invalid {
                key: "tls.acme.names",
                message: format!("{bad:?} is not a DNS name like mail.example.org"),
            });
        }
        if a.enabled && a.names.is_empty() && !dns_name(&self.server.hostname) {
            return invalid("server.hostname", "must be this server's public DNS name for ACME (tls.acme)");
        }
        Ok(())
    }

    /// Where ACME accounts and certificates live.
    pub fn acme_dir(&self) -> PathBuf {
        self.server.data_dir.join("acme")
    }

    /// The MTA-STS policy this server publishes for each of its domains.
    pub fn mta_sts_policy(&self) -> coimail_delivery::sts::Policy {
        coimail_delivery::sts::Policy {
            mode: self.mta_sts.mode,
            mx: vec![self.server.hostname.trim_end_matches('.').to_ascii_lowercase()],
            max_age: self.mta_sts.max_age_secs,
        }
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.server.data_dir.join("admin.sock")
    }

    /// Where the DKIM keys live (`coimail_delivery::dkim::keys`).
    pub fn dkim_dir(&self) -> PathBuf {
        self.server.data_dir.join("dkim")
    }

    pub fn directory_snapshot(&self) -> PathBuf {
        self.server.data_dir.join("directory.json")
    }

    /// The COI settings as the coi crate takes them.
    pub fn coi(&self) -> coimail_coi::CoiSettings {
        let c = &self.coi;
        let subject = if c.vapid_subject.is_empty() {
            format!("mailto:postmaster@{}", self.server.hostname)
        } else {
            c.vapid_subject.clone()
        };
        let webpush = c.webpush.then(|| coimail_coi::WebPushSettings {
            vapid_key_file: self.server.data_dir.join("vapid.p8"),
            subscription_limit: c.subscription_limit,
            validation_window: Duration::from_secs(c.validation_window_secs.min(MAX_VALIDATION_WINDOW_SECS)),
            validation_attempts_per_hour: c.validation_attempts_per_hour,
            allow_loopback_endpoints: c.allow_loopback_push_endpoints,
            sender: coimail_coi::webpush::sender::SenderSettings {
                queue: c.push_queue,
                workers: c.push_workers,
                queue_per_account: c.push_queue_per_account,
                workers_per_account: c.push_workers_per_account,
                timeout: Duration::from_millis(c.push_timeout_ms),
                max_retries: c.push_retries,
                default_retry_delay: Duration::from_secs(1),
                subject,
            },
        });
        coimail_coi::CoiSettings { mailbox_root: c.mailbox_root.clone(), webpush }
    }

    /// The queue settings as the delivery crate takes them.
    pub fn delivery(&self) -> coimail_delivery::QueueConfig {
        let q = &self.queue;
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        coimail_delivery::QueueConfig {
            hostname: self.server.hostname.clone(),
            retry: coimail_delivery::RetryPolicy {
                initial: secs(q.retry_initial_secs),
                max: secs(q.retry_max_secs),
                expire: secs(q.expire_secs),
            },
            resolvers: q.resolvers.clone(),
            port: q.outbound_port,
            concurrency: q.concurrency,
            destination_concurrency: q.destination_concurrency,
            delay_warning: secs(q.delay_warning_secs),
            connect_timeout: Duration::from_secs(q.connect_timeout_secs),
            command_timeout: Duration::from_secs(q.command_timeout_secs),
            data_dir: self.server.data_dir.clone(),
            mta_sts: q.mta_sts,
            mta_sts_port: q.mta_sts_port,
            tls_extra_roots: (!q.tls_extra_roots.as_os_str().is_empty()).then(|| q.tls_extra_roots.clone()),
            allow_private_destinations: q.allow_private_destinations,
            reports_per_address_per_hour: q.reports_per_address_per_hour,
            reports_per_hour: q.reports_per_hour,
        }
    }

    /// Login throttle and cache; argon2 runs once per CPU at a time.
    /// The store's tuning: index cache and free-space reserve.
    pub fn store_options(&self) -> coimail_store::StoreOptions {
        coimail_store::StoreOptions {
            cache_bytes: self.store.cache_mb << 20,
            reserve: coimail_store::Reserve {
                percent: self.store.min_free_percent,
                max_bytes: self.store.min_free_mb.saturating_mul(1 << 20),
            },
        }
    }

    pub fn auth_options(&self) -> coimail_directory::AuthOptions {
        coimail_directory::AuthOptions {
            throttle: coimail_directory::ThrottleOptions {
                max_failures: self.auth.max_failures,
                max_account_failures: self.auth.max_account_failures,
                window: Duration::from_secs(self.auth.failure_window_secs),
            },
            cache: coimail_directory::CacheOptions {
                ttl: Duration::from_secs(self.auth.cache_ttl_secs),
                max_entries: self.auth.cache_max_entries,
            },
            ..coimail_directory::AuthOptions::default()
        }
    }

    /// The quota of a user created without one; `None`: no quota.
    pub fn default_quota(&self) -> Option<u64> {
        (self.accounts.default_quota_bytes != 0).then_some(self.accounts.default_quota_bytes)
    }

    /// The SMTP session bounds (`coimail_smtp::Timeouts`).
    pub fn smtp_timeouts(&self) -> coimail_smtp::Timeouts {
        let s = &self.smtp;
        coimail_smtp::Timeouts {
            command: Duration::from_secs(s.command_timeout_secs),
            first_command: Duration::from_secs(s.first_command_timeout_secs),
            session: Duration::from_secs(s.session_timeout_secs),
            data: Duration::from_secs(s.data_timeout_secs),
            min_data_rate: s.min_data_rate,
            min_data_rate_grace: Duration::from_secs(s.min_data_rate_grace_secs),
        }
    }

    pub fn imap_timeouts(&self) -> (Duration, Duration) {
        (Duration::from_secs(self.imap.auth_timeout_secs), Duration::from_secs(self.imap.idle_timeout_secs))
    }

    /// Commands an IMAP session may send at once before its rate applies:
    /// room for a pipelining client's batch (a sync's FETCHes, STOREs or
    /// APPENDs) without waiting.
    pub fn imap_command_burst(&self) -> u32 {
        self.imap.max_commands_per_second.saturating_mul(IMAP_BURST_SECONDS).max(1)
    }
}

#[cfg(test)]
mod tests;
