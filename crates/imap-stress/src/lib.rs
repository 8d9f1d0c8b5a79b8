//! A state-tracking IMAP stress tester.
//!
//! N clients share mailboxes on any IMAP4rev1 server (plain TCP, LOGIN) and
//! run a random, weighted mix of SELECT/EXAMINE, FETCH, STORE, APPEND,
//! EXPUNGE, COPY, MOVE, IDLE, NOOP, STATUS and LOGOUT/LOGIN, with CONDSTORE
//! or QRESYNC enabled on some sessions. Each client keeps a model of what the
//! server told it (`model.rs`), all clients share what the server created
//! and expunged (`global.rs`), and every response is checked against both
//! as it arrives. At the end all clients stop, poll, and compare their
//! models with the server's answer, and an auditor reads every mailbox
//! (`verify.rs`). Violations are reported with session, command and line.
//!
//! Runs are reproducible by seed as far as each client's choices go (one
//! PRNG stream per client); interleavings depend on timing.
//!
//! ```no_run
//! # async fn f() -> Result<(), coimail_imap_stress::Error> {
//! let cfg = coimail_imap_stress::Config::new("127.0.0.1:143".parse().unwrap(), vec![("u".into(), "p".into())]);
//! let report = coimail_imap_stress::run(cfg).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod client;
mod global;
mod model;
mod ops;
pub mod parse;
mod report;
mod rng;
mod transfer;
mod verify;
mod wire;

pub use report::{Findings, Histogram, Report, Stats, Violation};

use client::{Client, Cmd, MAILBOXES, OTHER, Shared};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// (user, password) pairs; every client logs in to one of them.
    pub accounts: Vec<(String, String)>,
    pub clients: usize,
    /// How long the load runs (set-up and final checks come on top).
    pub duration: Duration,
    pub seed: u64,
    /// LOGOUT and a new LOGIN in the mix.
    pub logout: bool,
    /// Messages appended to each account's INBOX at set-up.
    pub seed_messages: usize,
    /// The mix keeps each mailbox near this many messages (more EXPUNGE
    /// and `\Deleted` above it, more APPEND below a quarter of it).
    pub mailbox_target: usize,
    /// Longest wait for any response.
    pub timeout: Duration,
    /// Empty both mailboxes of every account first (so old messages without
    /// an `X-Stress-Id` do not count as this run's).
    pub clean: bool,
    /// Every command and response on stderr, prefixed with the session.
    pub trace: bool,
    /// How long an IDLE waits before DONE, in milliseconds (drawn uniformly).
    /// Closed-loop clients count an IDLE as one command, so long IDLEs cap
    /// commands/s whatever the server does: at the old 5-120 ms, the 3 % of
    /// steps that IDLE slept ~1.9 ms per step on average, more than the
    /// other commands took, and coimail and Dovecot measured the same.
    pub idle_millis: (u64, u64),
    /// Called with `true` when the load starts (set-up done) and `false` at
    /// its deadline, so a benchmark can measure what the server spent on
    /// the load alone (its CPU time, say).
    pub on_load: Option<fn(bool)>,
}

impl Config {
    pub fn new(addr: SocketAddr, accounts: Vec<(String, String)>) -> Config {
        Config {
            addr,
            accounts,
            clients: 10,
            duration: Duration::from_secs(10),
            seed: 1,
            logout: false,
            seed_messages: 20,
            mailbox_target: 60,
            timeout: Duration::from_secs(30),
            clean: true,
            trace: false,
            idle_millis: (1, 10),
            on_load: None,
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// Bad configuration (no accounts, no clients).
    Config(String),
    /// Set-up failed for an account: without it the run means nothing.
    Setup(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(s) => write!(f, "bad configuration: {s}"),
            Error::Setup(s) => write!(f, "set-up failed: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// How many accounts are set up (and audited) at once.
const SETUP_PARALLEL: usize = 4;

/// Runs the whole thing: set-up, load, final checks, audit.
pub async fn run(cfg: Config) -> Result<Report, Error> {
    if cfg.accounts.is_empty() || cfg.clients == 0 {
        return Err(Error::Config("need at least one account and one client".into()));
    }
    let run_id = format!("{:x}", rng::Rng::new(cfg.seed, 0).next_u64() & 0xffff_ffff);
    let shared = Arc::new(Shared { cfg: cfg.clone(), global: global::Global::default(), run_id });
    let mut findings = Findings::default();

    // Set-up: every account gets both mailboxes, emptied, and some messages.
    for chunk in (0..cfg.accounts.len()).collect::<Vec<_>>().chunks(SETUP_PARALLEL) {
        let tasks: Vec<_> = chunk.iter().map(|&i| tokio::spawn(setup(Arc::clone(&shared), i))).collect();
        for t in tasks {
            match t.await {
                Ok(Ok(f)) => findings.merge(f),
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(Error::Setup(format!("set-up task failed: {e}"))),
            }
        }
    }

    // Load: every client until the deadline; then all wait for each other
    // so the final checks see a mailbox nobody changes any more.
    let barrier = Arc::new(tokio::sync::Barrier::new(cfg.clients));
    let start = Instant::now();
    let deadline = start + cfg.duration;
    if let Some(hook) = cfg.on_load {
        hook(true);
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            hook(false);
        });
    }
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|id| {
            let (shared, barrier) = (Arc::clone(&shared), Arc::clone(&barrier));
            tokio::spawn(async move {
                let mut c = Client::new(id, shared);
                c.load(deadline).await;
                let stats = std::mem::take(&mut c.stats);
                barrier.wait().await;
                let view = c.finish().await;
                (stats, c.findings, view, c.pending)
            })
        })
        .collect();
    let mut report = Report { clients: cfg.clients, ..Report::default() };
    let mut views = Vec::new();
    let mut pending = Vec::new();
    for t in tasks {
        match t.await {
            Ok((stats, f, view, p)) => {
                report.stats.merge(&stats);
                findings.merge(f);
                views.extend(view);
                pending.extend(p);
            }
            Err(e) => findings.violation(Violation {
                kind: "tester-task-failed",
                session: "?".into(),
                command: String::new(),
                line: String::new(),
                detail: e.to_string(),
            }),
        }
    }
    report.elapsed = cfg.duration.max(deadline.saturating_duration_since(start));

    // Audit: a fresh session per account reads everything.
    let mut audit = Vec::new();
    for chunk in (0..cfg.accounts.len()).collect::<Vec<_>>().chunks(SETUP_PARALLEL) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let mut c = Client::new(usize::MAX - i, shared).with_accounts(vec![i]).plain();
                    let v = c.audit().await;
                    (v, c.findings)
                })
            })
            .collect();
        for t in tasks {
            if let Ok((v, f)) = t.await {
                audit.extend(v);
                findings.merge(f);
            }
        }
    }
    verify::judge(&shared.global, &audit, &views, pending, &mut findings);
    report.findings = findings;
    Ok(report)
}

/// Creates `Other`, empties both mailboxes, appends the seed messages.
async fn setup(shared: Arc<Shared>, account: usize) -> Result<Findings, Error> {
    let user = shared.cfg.accounts[account].0.clone();
    let fail = |what: &str, e: client::Broken| Error::Setup(format!("{user}: {what}: {}", e.0));
    let mut c = Client::new(usize::MAX - account, Arc::clone(&shared)).with_accounts(vec![account]).plain();
    c.connect(false).await.map_err(|e| fail("login", e))?;
    // NO when it exists already: fine.
    c.cmd(Cmd::new("CREATE", format!("CREATE {OTHER}"))).await.map_err(|e| fail("CREATE", e))?;
    if shared.cfg.clean {
        for mailbox in MAILBOXES {
            if !c.select(mailbox, false).await.map_err(|e| fail("SELECT", e))? {
                return Err(Error::Setup(format!("{user}: cannot select {mailbox}")));
            }
            if c.sel.as_ref().is_some_and(|s| !s.is_empty()) {
                c.cmd(Cmd::new("STORE", "STORE 1:* +FLAGS.SILENT (\\Deleted)")).await.map_err(|e| fail("STORE", e))?;
                c.cmd(Cmd::new("EXPUNGE", "EXPUNGE")).await.map_err(|e| fail("EXPUNGE", e))?;
            }
        }
    }
    for _ in 0..shared.cfg.seed_messages {
        c.seed_append().await.map_err(|e| fail("APPEND", e))?;
    }
    c.logout().await.map_err(|e| fail("LOGOUT", e))?;
    Ok(c.findings)
}

impl Client {
    /// The load loop: reconnect when the connection is gone, else one step.
    async fn load(&mut self, deadline: Instant) {
        while !Client::deadline_passed(deadline) {
            if !self.connected() {
                if let Err(e) = self.connect(false).await {
                    self.violation("connect-failed", "(connect)", "", e.0);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            }
            if let Err(e) = self.step().await {
                self.lost(e, "(load)");
            }
        }
    }
}
