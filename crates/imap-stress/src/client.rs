//! One client task: its connection, its model, running a command and
//! checking every response against the model as it arrives.
//!
//! Responses are applied in the order they come: sequence numbers in an
//! untagged response refer to the view as left by the responses before it,
//! whatever command they arrive during. The workload (`ops.rs`) and the
//! final checks (`verify.rs`) are built on [`Client::cmd`].

use crate::Config;
use crate::global::{Global, MailboxKey};
use crate::model::{Memory, Problems, Removed, Selected};
use crate::parse::{self, Code, Response, Status, Untagged};
use crate::report::{Findings, Stats, Violation};
use crate::rng::Rng;
use crate::wire::{Conn, quote};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The second mailbox of every account (COPY/MOVE target, STATUS).
pub const OTHER: &str = "Other";
pub const MAILBOXES: [&str; 2] = ["INBOX", OTHER];

/// What all clients share.
pub struct Shared {
    pub cfg: Config,
    pub global: Global,
    /// Prefix of this run's `X-Stress-Id` values.
    pub run_id: String,
}

/// The connection is gone (or unusable); the client reconnects.
#[derive(Debug)]
pub struct Broken(pub String);

impl From<std::io::Error> for Broken {
    fn from(e: std::io::Error) -> Broken {
        Broken(e.to_string())
    }
}

/// The server's capabilities this tester uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub literal_plus: bool,
    pub condstore: bool,
    pub qresync: bool,
    pub uidplus: bool,
    pub moves: bool,
    pub idle: bool,
    pub enable: bool,
}

impl Caps {
    fn from(list: &[String]) -> Caps {
        let has = |c: &str| list.iter().any(|x| x.eq_ignore_ascii_case(c));
        Caps {
            literal_plus: has("LITERAL+"),
            condstore: has("CONDSTORE") || has("QRESYNC"),
            qresync: has("QRESYNC"),
            uidplus: has("UIDPLUS"),
            moves: has("MOVE"),
            idle: has("IDLE"),
            enable: has("ENABLE"),
        }
    }
}

/// How the responses of the running command are judged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx {
    /// FETCH/STORE/SEARCH by sequence number: no EXPUNGE may arrive
    /// (RFC 3501 §7.4.1, RFC 9051 §7.5.1).
    pub no_expunge: bool,
    /// A FETCH command: its FETCH responses are solicited.
    pub fetch: bool,
    /// A SELECT/EXAMINE: responses are collected and applied afterwards.
    pub select: bool,
    pub logout: bool,
    /// Read between commands: only EXISTS, FETCH, OK may come.
    pub between: bool,
    /// The command is meant to be refused: BAD is no violation.
    pub expect_fail: bool,
}

pub struct Cmd {
    pub name: &'static str,
    pub line: String,
    /// APPEND's message.
    pub literal: Option<Vec<u8>>,
    /// IDLE: how long before DONE.
    pub idle: Option<Duration>,
    pub ctx: Ctx,
}

impl Cmd {
    pub fn new(name: &'static str, line: impl Into<String>) -> Cmd {
        Cmd { name, line: line.into(), literal: None, idle: None, ctx: Ctx::default() }
    }

    pub fn ctx(mut self, ctx: Ctx) -> Cmd {
        self.ctx = ctx;
        self
    }
}

/// One untagged response as it arrived, with the UID a FETCH was about.
pub struct Seen {
    pub resp: Untagged,
    pub raw: String,
    pub uid: Option<u32>,
}

pub struct Answer {
    pub status: Status,
    pub code: Option<Code>,
    pub raw: String,
    pub untagged: Vec<Seen>,
    /// Global clock when the command was sent.
    pub sent: u64,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// Response codes of the tagged and untagged OK responses.
    pub fn codes(&self) -> impl Iterator<Item = &Code> {
        let untagged = self.untagged.iter().filter_map(|s| match &s.resp {
            Untagged::Cond { status: Status::Ok, code: Some(c), .. } => Some(c),
            _ => None,
        });
        self.code.iter().chain(untagged)
    }
}

/// A check that can only be decided at the end: a violation if `uid` is
/// still in `key` then (a STORE or FETCH that said nothing of a message
/// is fine only if the message was gone).
pub struct Pending {
    pub key: MailboxKey,
    pub uid: u32,
    pub violation: Violation,
}

pub struct Client {
    pub id: usize,
    pub conn_no: u32,
    pub rng: Rng,
    pub shared: Arc<Shared>,
    accounts: Vec<usize>,
    account_turn: usize,
    conn: Option<Conn>,
    pub caps: Caps,
    pub condstore: bool,
    pub qresync: bool,
    pub sel: Option<Selected>,
    pub mem: Memory,
    pub stats: Stats,
    pub findings: Findings,
    pub pending: Vec<Pending>,
    tag: u32,
    pub appended: u64,
    pub nil_tried: bool,
    plain_only: bool,
    /// The last FETCH to learn UIDs was refused: do something else first
    /// (a NOOP or any command may bring the EXPUNGE that explains it).
    pub skip_fill: bool,
}

impl Client {
    pub fn new(id: usize, shared: Arc<Shared>) -> Client {
        let n_accounts = shared.cfg.accounts.len().max(1);
        let clients = shared.cfg.clients.max(1);
        // Client i uses accounts i, i+clients, ... (mod the number of
        // accounts): with fewer accounts than clients several clients share
        // one, with more a client moves to its next one when it logs in again.
        let mut accounts: Vec<usize> = (0..n_accounts.div_ceil(clients).max(1))
            .map(|k| (id % n_accounts + (k * clients) % n_accounts) % n_accounts)
            .collect();
        accounts.dedup();
        let rng = Rng::new(shared.cfg.seed, (id as u64).wrapping_add(1));
        Client {
            id,
            conn_no: 0,
            rng,
            shared,
            accounts,
            account_turn: 0,
            conn: None,
            caps: Caps::default(),
            condstore: false,
            qresync: false,
            sel: None,
            mem: Memory::default(),
            stats: Stats::default(),
            findings: Findings::default(),
            pending: Vec::new(),
            tag: 0,
            appended: 0,
            nil_tried: false,
            plain_only: false,
            skip_fill: false,
        }
    }

    /// Only these accounts (set-up and audit sessions have one each).
    pub fn with_accounts(mut self, accounts: Vec<usize>) -> Client {
        if !accounts.is_empty() {
            self.accounts = accounts;
        }
        self
    }

    /// Never ENABLE anything.
    pub fn plain(mut self) -> Client {
        self.plain_only = true;
        self
    }

    /// `c<client>`; set-up and audit sessions are `aux<account>`.
    pub fn label(&self) -> String {
        if self.id > usize::MAX / 2 {
            return format!("aux{}", usize::MAX - self.id);
        }
        format!("c{}", self.id)
    }

    /// `<label>.<connection>`.
    pub fn session(&self) -> String {
        format!("{}.{}", self.label(), self.conn_no)
    }

    pub fn account(&self) -> &str {
        let i = self.accounts[self.account_turn % self.accounts.len()];
        &self.shared.cfg.accounts[i].0
    }

    pub fn key(&self, mailbox: &str) -> MailboxKey {
        (self.account().to_owned(), mailbox.to_owned())
    }

    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    pub fn violation(&mut self, kind: &'static str, command: &str, line: &str, detail: String) {
        let v = Violation { kind, session: self.session(), command: command.to_owned(), line: line.to_owned(), detail };
        self.findings.violation(v);
    }

    pub fn notice(&mut self, kind: &'static str, command: &str, line: &str, detail: String) {
        let v = Violation { kind, session: self.session(), command: command.to_owned(), line: line.to_owned(), detail };
        self.findings.notice(v);
    }

    fn problems(&mut self, problems: Problems, command: &str, line: &str) {
        for (kind, detail) in problems {
            self.violation(kind, command, line, detail);
        }
    }

    /// The connection was lost: note why (unless we asked for it) and drop it.
    pub fn lost(&mut self, why: Broken, command: &str) {
        self.violation("connection-lost", command, "", why.0);
        self.drop_connection();
    }

    pub fn drop_connection(&mut self) {
        self.conn = None;
        self.sel = None;
    }

    /// Connects, logs in to the next account, ENABLEs CONDSTORE or QRESYNC on
    /// some sessions; leaves the session authenticated, nothing selected.
    pub async fn connect(&mut self, next_account: bool) -> Result<(), Broken> {
        self.drop_connection();
        if next_account {
            self.account_turn += 1;
        }
        self.conn_no += 1;
        self.nil_tried = false;
        self.condstore = false;
        self.qresync = false;
        let cfg = &self.shared.cfg;
        let mut conn = Conn::connect(cfg.addr, cfg.timeout).await?;
        let raw = conn.read().await?;
        let greeting_caps = match parse::response(&raw) {
            Ok(Response::Untagged(Untagged::Cond { status: Status::Ok, code, .. })) => match code {
                Some(Code::Capability(c)) => Some(c),
                _ => None,
            },
            _ => {
                let line = parse::display(&raw);
                self.violation("bad-greeting", "(connect)", &line, "not * OK".into());
                return Err(Broken(format!("greeting: {line}")));
            }
        };
        self.conn = Some(conn);
        let i = self.accounts[self.account_turn % self.accounts.len()];
        let (user, pass) = self.shared.cfg.accounts[i].clone();
        let a = self.cmd(Cmd::new("LOGIN", format!("LOGIN {} {}", quote(&user), quote(&pass)))).await?;
        if !a.ok() {
            self.violation("login-failed", "LOGIN", &a.raw, format!("as {user}"));
            self.drop_connection();
            return Err(Broken(format!("login refused: {}", a.raw)));
        }
        let mut caps = match a.code {
            Some(Code::Capability(c)) => Some(c),
            _ => None,
        };
        if caps.is_none() {
            let c = self.cmd(Cmd::new("CAPABILITY", "CAPABILITY")).await?;
            caps = c.untagged.iter().find_map(|s| match &s.resp {
                Untagged::Capability(l) => Some(l.clone()),
                _ => None,
            });
        }
        self.caps = Caps::from(caps.or(greeting_caps).as_deref().unwrap_or(&[]));
        let mode = if self.plain_only { 0 } else { self.rng.below(10) };
        let want = if mode >= 7 && self.caps.qresync {
            Some("QRESYNC")
        } else if mode >= 4 && self.caps.condstore {
            Some("CONDSTORE")
        } else {
            None
        };
        if let Some(ext) = want.filter(|_| self.caps.enable) {
            let line = format!("ENABLE {ext}");
            let a = self.cmd(Cmd::new("ENABLE", line.clone())).await?;
            let enabled: Vec<String> = a
                .untagged
                .iter()
                .filter_map(|s| match &s.resp {
                    Untagged::Enabled(l) => Some(l.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            if a.ok() && enabled.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
                // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                self.condstore = true;
                self.qresync = ext == "QRESYNC";
            } else {
                self.violation("enable-refused", &line, &a.raw, format!("{ext} is advertised but was not enabled"));
            }
        }
        Ok(())
    }

    /// Sends one command, applies and checks every response until its
    /// tagged one. BAD and NO [SERVERBUG] are violations here; other NOs
    /// are for the caller to judge.
    pub async fn cmd(&mut self, cmd: Cmd) -> Result<Answer, Broken> {
        self.drain_between(&cmd.line).await?;
        self.tag += 1;
        let tag = format!("s{}", self.tag);
        let sent = self.shared.global.tick();
        let literal_plus = self.caps.literal_plus;
        let trace = self.shared.cfg.trace.then(|| self.session());
        let conn = self.conn.as_mut().ok_or_else(|| Broken("not connected".into()))?;
        let mut out = format!("{tag} {}", cmd.line).into_bytes();
        let mut literal = cmd.literal.as_deref();
        if let Some(lit) = literal {
            out.extend_from_slice(format!(" {{{}{}}}\r\n", lit.len(), if literal_plus { "+" } else { "" }).as_bytes());
            if literal_plus {
                out.extend_from_slice(lit);
                out.extend_from_slice(b"\r\n");
                literal = None;
            }
        } else {
            out.extend_from_slice(b"\r\n");
        }
        if let Some(t) = &trace {
            eprintln!("{t} C: {tag} {}", cmd.line);
        }
        let start = Instant::now();
        conn.send(&out).await?;
        let mut idle = cmd.idle;
        let mut idled = Duration::ZERO;
        let mut untagged = Vec::new();
        loop {
            let conn = self.conn.as_mut().ok_or_else(|| Broken("not connected".into()))?;
            let raw = conn.read().await?;
            if let Some(t) = &trace {
                eprintln!("{t} S: {}", parse::display(&raw));
            }
            let resp = match parse::response(&raw) {
                Ok(r) => r,
                Err(why) => {
                    self.violation("unparseable-response", &cmd.line, &parse::display(&raw), why);
                    continue;
                }
            };
            match resp {
                Response::Continuation => {
                    if let Some(lit) = literal.take() {
                        let mut bytes = lit.to_vec();
                        bytes.extend_from_slice(b"\r\n");
                        conn.send(&bytes).await?;
                    } else if let Some(d) = idle.take() {
                        // Responses sent while idling wait in the socket and are
                        // read, in order, after DONE.
                        tokio::time::sleep(d).await;
                        idled = d;
                        conn.send(b"DONE\r\n").await?;
                    } else {
                        self.violation("unexpected-continuation", &cmd.line, &parse::display(&raw), String::new());
                    }
                }
                Response::Tagged { tag: t, status, code, .. } if t == tag => {
                    self.stats.record(cmd.name, start.elapsed().saturating_sub(idled));
                    let raw = parse::display(&raw);
                    if status == Status::Bad && !cmd.ctx.expect_fail {
                        self.violation("bad", &cmd.line, &raw, "BAD for a valid command".into());
                    } else if code == Some(Code::ServerBug) {
                        self.violation("serverbug", &cmd.line, &raw, "NO [SERVERBUG]".into());
                    }
                    return Ok(Answer { status, code, raw, untagged, sent });
                }
                Response::Tagged { .. } => {
                    self.violation("unexpected-tag", &cmd.line, &parse::display(&raw), format!("waiting for {tag}"));
                }
                Response::Untagged(u) => {
                    let raw = parse::display(&raw);
                    let uid = if cmd.ctx.select { None } else { self.apply(&u, &raw, &cmd.line, cmd.ctx, sent) };
                    untagged.push(Seen { resp: u, raw, uid });
                }
            }
        }
    }

    /// Responses the server sent while no command was in progress.
    async fn drain_between(&mut self, next: &str) -> Result<(), Broken> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Ok(()) };
            if !conn.has_pending().await? {
                return Ok(());
            }
            let raw = conn.read().await?;
            let line = parse::display(&raw);
            if self.shared.cfg.trace {
                eprintln!("{} S: {line}", self.session());
            }
            match parse::response(&raw) {
                Ok(Response::Untagged(u)) => {
                    let sent = self.shared.global.tick();
                    let ctx = Ctx { between: true, ..Ctx::default() };
                    self.apply(&u, &line, &format!("(before {next})"), ctx, sent);
                }
                Ok(_) => self.violation(
                    "unexpected-response",
                    &format!("(before {next})"),
                    &line,
                    "no command in progress".into(),
                ),
                Err(why) => self.violation("unparseable-response", &format!("(before {next})"), &line, why),
            }
        }
    }

    /// Applies one untagged response to the model; returns the UID a FETCH was about.
    pub fn apply(&mut self, u: &Untagged, raw: &str, command: &str, ctx: Ctx, sent: u64) -> Option<u32> {
        let mut problems = Problems::new();
        let mut notices = Problems::new();
        let mut uid = None;
        let condstore = self.condstore;
        match u {
            Untagged::Cond { status: Status::Bye, .. } if !ctx.logout => {
                problems.push(("unexpected-bye", "BYE without LOGOUT".into()));
            }
            Untagged::Cond { status: Status::Ok, code: Some(code), .. } => self.apply_code(code, ctx, &mut problems),
            Untagged::Exists(_)
            | Untagged::Expunge(_)
            | Untagged::Fetch { .. }
            | Untagged::Vanished { .. }
            | Untagged::Flags(_)
                if self.sel.is_none() && !ctx.logout =>
            {
                problems.push(("mailbox-data-without-selection", "no mailbox is selected".into()));
            }
            Untagged::Exists(n) => {
                if let Some(sel) = self.sel.as_mut() {
                    sel.on_exists(*n, sent, &mut problems);
                }
            }
            Untagged::Flags(f) => {
                if let Some(sel) = self.sel.as_mut() {
                    sel.on_flags(f);
                }
            }
            Untagged::Expunge(n) => {
                if ctx.no_expunge {
                    problems.push((
                        "expunge-during-fetch-store",
                        format!("EXPUNGE {n} during FETCH/STORE by sequence number"),
                    ));
                } else if ctx.between {
                    problems.push(("expunge-outside-command", format!("EXPUNGE {n} with no command in progress")));
                }
                let removed = self.sel.as_mut().and_then(|s| s.on_expunge(*n, &mut problems));
                if let Some(r) = removed {
                    self.removed(r);
                }
            }
            Untagged::Vanished { earlier: true, .. } => {
                problems.push(("vanished-earlier-outside-select", "VANISHED (EARLIER) outside SELECT QRESYNC".into()));
            }
            Untagged::Vanished { earlier: false, uids } => {
                if !self.qresync {
                    problems.push(("vanished-without-qresync", "VANISHED but QRESYNC is not enabled".into()));
                }
                match parse::expand(uids, 1 << 20) {
                    Some(list) => {
                        let removed =
                            self.sel.as_mut().map(|s| s.on_vanished(&list, &mut problems)).unwrap_or_default();
                        for r in removed {
                            self.removed(r);
                        }
                    }
                    None => problems.push(("vanished-unknown-uid", "VANISHED of over a million UIDs".into())),
                }
            }
            Untagged::Fetch { seq, att } => {
                let sel = self.sel.as_mut()?;
                let key = sel.key.clone();
                let mem = self.mem.of(&key);
                let got = sel.on_fetch(*seq, att, mem, &mut problems);
                if let Some(f) = got {
                    let u = f.uid;
                    uid = Some(u);
                    let g = &self.shared.global;
                    // A SELECT opens the mailbox as it is: nothing some session
                    // saw expunged before it was sent. (A later EXISTS may
                    // announce a message already expunged elsewhere, its
                    // EXPUNGE to follow, e.g. when it comes during a FETCH.)
                    if f.learned
                        && f.from_select
                        && let Some(at) = g.expunged_before(&key, u, f.created)
                    {
                        problems.push((
                            "uid-reappeared",
                            format!(
                                "UID {u} was seen expunged (clock {at}) before the message was announced ({})",
                                f.created
                            ),
                        ));
                    }
                    if let Some(id) = &att.stress_id
                        && let Err(e) = g.observed(&key, u, id.as_deref())
                    {
                        problems.push(("wrong-message", e));
                    }
                }
                // RFC 7162 §3.1.4: once CONDSTORE is enabled, every FETCH
                // caused by STORE, by \Seen set by FETCH or by another agent
                // carries both UID and MODSEQ (FETCH commands that asked for
                // neither are exempt).
                if condstore && !ctx.fetch && !ctx.select && att.flags.is_some() {
                    if att.modseq.is_none() {
                        problems.push(("unsolicited-fetch-without-modseq", "CONDSTORE is enabled".into()));
                    }
                    if att.uid.is_none() {
                        problems.push(("unsolicited-fetch-without-uid", "CONDSTORE is enabled".into()));
                    }
                }
                if att.nil_body {
                    notices.push(("fetch-nil-body", format!("UID {uid:?}: body NIL")));
                }
            }
            _ => {}
        }
        self.problems(problems, command, raw);
        for (kind, detail) in notices {
            self.notice(kind, command, raw, detail);
        }
        uid
    }

    fn apply_code(&mut self, code: &Code, ctx: Ctx, problems: &mut Problems) {
        let Some(sel) = self.sel.as_mut() else { return };
        let key = sel.key.clone();
        let mem = self.mem.of(&key);
        match code {
            Code::HighestModSeq(m) => sel.on_highest_modseq(*m, ctx.select, mem, problems),
            Code::NoModSeq => sel.nomodseq = true,
            Code::PermanentFlags(f) => sel.permanent = crate::model::flag_set(f),
            Code::UidValidity(v) => {
                if let Some(old) = mem.uidvalidity.filter(|old| old != v) {
                    problems.push(("uidvalidity-changed", format!("UIDVALIDITY {v}, was {old}")));
                }
                mem.uidvalidity = Some(*v);
                sel.uidvalidity = Some(*v);
                if let Err(e) = self.shared.global.uidvalidity(&key, *v) {
                    problems.push(("uidvalidity-changed", e));
                }
            }
            Code::UidNext(n) if ctx.select => {
                if *n <= mem.max_uid_seen {
                    problems.push((
                        "uidnext-not-above-seen-uid",
                        format!("UIDNEXT {n}, but UID {} was seen", mem.max_uid_seen),
                    ));
                }
                sel.uidnext = Some(*n);
            }
            _ => {}
        }
    }

    /// A message left the session's view: remember it, globally too.
    fn removed(&mut self, r: Removed) {
        let Some(key) = self.sel.as_ref().map(|s| s.key.clone()) else { return };
        match r {
            Removed::Uid(u) => {
                self.mem.of(&key).expunged.insert(u);
                let t = self.shared.global.tick();
                self.shared.global.expunged(&key, u, t);
            }
            Removed::Unknown(lo, hi) => self.shared.global.unknown_expunge(&key, lo, hi),
        }
    }

    /// SELECT or EXAMINE `mailbox`, with CONDSTORE/QRESYNC parameters when
    /// enabled. Responses before a `[CLOSED]` belong to the previous mailbox
    /// (RFC 7162 §3.2.11) and are skipped.
    pub async fn select(&mut self, mailbox: &str, examine: bool) -> Result<bool, Broken> {
        let key = self.key(mailbox);
        let was_selected = self.sel.is_some();
        let verb = if examine { "EXAMINE" } else { "SELECT" };
        let mut line = format!("{verb} {}", quote(mailbox));
        let mut qresync_params = false;
        let mem = self.mem.of(&key);
        if self.qresync && mem.uidvalidity.is_some() && mem.highest_reported > 0 && self.rng.chance(80) {
            let (v, m) = (mem.uidvalidity.unwrap_or(0), mem.highest_reported);
            line.push_str(&format!(" (QRESYNC ({v} {m}))"));
            qresync_params = true;
        } else if self.condstore && self.rng.chance(50) {
            line.push_str(" (CONDSTORE)");
        }
        let ctx = Ctx { select: true, ..Ctx::default() };
        let a = self.cmd(Cmd::new(verb, line.clone()).ctx(ctx)).await?;
        let closed = a.untagged.iter().rposition(|s| matches!(s.resp, Untagged::Cond { code: Some(Code::Closed), .. }));
        if self.qresync && was_selected && closed.is_none() {
            self.violation("select-without-closed", &line, &a.raw, "QRESYNC is on and a mailbox was selected".into());
        }
        if !a.ok() {
            // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
            self.sel = None;
            self.violation("select-failed", &line, &a.raw, String::new());
            return Ok(false);
        }
        let read_only = examine || a.code == Some(Code::ReadOnly);
        self.sel = Some(Selected::new(key, read_only));
        for s in a.untagged.iter().skip(closed.map_or(0, |i| i + 1)) {
            if let Untagged::Vanished { earlier: true, uids } = &s.resp {
                if !qresync_params {
                    self.violation(
                        "vanished-earlier-outside-select",
                        &line,
                        &s.raw,
                        "SELECT had no QRESYNC parameter".into(),
                    );
                }
                self.vanished_earlier(uids);
                continue;
            }
            let ctx = Ctx { select: true, ..Ctx::default() };
            self.apply(&s.resp, &s.raw, &line, ctx, a.sent);
        }
        let Some(sel) = self.sel.as_ref() else { return Ok(false) };
        let mut missing = Vec::new();
        if !sel.has_exists() {
            missing.push("EXISTS");
        }
        if sel.uidvalidity.is_none() {
            missing.push("UIDVALIDITY");
        }
        if sel.uidnext.is_none() {
            missing.push("UIDNEXT");
        }
        if self.condstore && sel.highest_modseq.is_none() && !sel.nomodseq {
            missing.push("HIGHESTMODSEQ");
        }
        if !missing.is_empty() {
            self.violation("select-incomplete", &line, &a.raw, format!("no {}", missing.join(", ")));
        }
        Ok(true)
    }

    /// VANISHED (EARLIER) in a QRESYNC SELECT: those UIDs are gone for good;
    /// any of them turning up later is a violation. (Ranges may name UIDs
    /// that never existed, which is allowed and harmless here.)
    fn vanished_earlier(&mut self, uids: &[(u32, u32)]) {
        let Some(key) = self.sel.as_ref().map(|s| s.key.clone()) else { return };
        if let Some(list) = parse::expand(uids, 100_000) {
            let t = self.shared.global.tick();
            for u in list {
                self.mem.of(&key).expunged.insert(u);
                self.shared.global.expunged(&key, u, t);
            }
        }
    }

    /// Logs out; the server answers BYE and the tagged OK, then closes.
    pub async fn logout(&mut self) -> Result<(), Broken> {
        let ctx = Ctx { logout: true, ..Ctx::default() };
        let a = self.cmd(Cmd::new("LOGOUT", "LOGOUT").ctx(ctx)).await?;
        let bye = a.untagged.iter().any(|s| matches!(s.resp, Untagged::Cond { status: Status::Bye, .. }));
        if !a.ok() || !bye {
            self.violation("logout-without-bye", "LOGOUT", &a.raw, String::new());
        }
        self.drop_connection();
        Ok(())
    }

    /// The clock's now, for things learned outside a response.
    pub fn tick(&self) -> u64 {
        self.shared.global.tick()
    }

    pub fn deadline_passed(deadline: Instant) -> bool {
        Instant::now() >= deadline
    }
}
