//! One IMAP session: the connection state machine, the wait for input
//! (raced against the change bus, shutdown and the inactivity timer), the
//! state check, and the ONE dispatch `match` over decoded commands.

use crate::capability::{CapabilityState, capabilities};
use crate::cmd::ext::Extended;
use crate::cmd::{any, append, auth, copy_move, expunge, fetch, idle, mailbox, select, status, store};
use crate::conn::{self, Conn, Event, Limits, Stream};
use crate::error::{Code, ImapError};
use crate::limits::CommandLimits;
use crate::selected::SelectedView;
use crate::{ImapContext, ImapListener};
use bytes::Bytes;
use coimail_directory::Account;
use coimail_store::names::MAX_NAME_BYTES;
use coimail_store::{Change, ChangeReceiver};
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{Command, CommandBody};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep_until};

/// Between commands the bus is drained after this long, then at doubling
/// intervals up to [`BUS_DRAIN_MAX`] while it stays empty: with the bus's
/// 1,024 places, a session lags only when its account changes more than
/// ~20,000 times a second (or bursts past 1,024 in a quiet stretch), and
/// then resyncs correctly at its next command.
const BUS_DRAIN_MIN: std::time::Duration = std::time::Duration::from_millis(50);
const BUS_DRAIN_MAX: std::time::Duration = std::time::Duration::from_millis(800);
use tokio_util::sync::CancellationToken;

/// Literals before login carry only a user name and password (LOGIN) or a
/// SASL response, never a message.
const PRE_LOGIN_LITERAL: u64 = 8 * 1024;
/// A client must log in within this many `auth_timeout`s of connecting,
/// however steadily it trickles input.
const LOGIN_DEADLINE_TIMEOUTS: u32 = 3;
/// The longest a mailbox name can be on the wire: modified UTF-7 takes at
/// most 2.5 bytes per byte of UTF-8 (a lone `ü` becomes `&APw-`).
pub(crate) const MAX_NAME_WIRE: usize = 3 * MAX_NAME_BYTES;

pub(crate) enum State {
    NotAuthenticated,
    Authenticated(Account),
    Selected(Account, Box<SelectedView>),
    Logout,
}

/// How a command ended well: the text (and code) of its tagged OK, and
/// what the connection does next.
pub(crate) struct Done {
    pub code: Option<String>,
    pub text: String,
    pub then: Then,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Then {
    Continue,
    /// Start the TLS handshake once the OK is on the wire.
    StartTls,
    /// Turn COMPRESS=DEFLATE on once the (uncompressed) OK is on the wire.
    Compress,
    /// Close once the OK is on the wire (LOGOUT).
    Close,
}

impl Done {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Done { code: None, text: text.into(), then: Then::Continue }
    }
    pub(crate) fn with_code(code: impl Into<String>, text: impl Into<String>) -> Self {
        Done { code: Some(code.into()), text: text.into(), then: Then::Continue }
    }
}

pub(crate) type CmdResult = Result<Done, ImapError>;

/// What ended a wait for input.
pub(crate) enum Wake {
    Input(Event),
    Shutdown,
    Timeout,
    Closed,
}

pub(crate) struct Session {
    pub ctx: Arc<ImapContext>,
    pub conn: Conn,
    pub state: State,
    pub peer: SocketAddr,
    pub kind: ImapListener,
    /// This session's own token, a child of the server's: cancelled by a
    /// shutdown, by the logged-in account's revocation (password changed,
    /// user deleted) and when the session ends.
    pub shutdown: CancellationToken,
    /// Set at login: fires when the account's password changes or it is deleted.
    pub revocation: Option<coimail_directory::Revocation>,
    /// The logged-in account's change bus; drained at each command, in IDLE
    /// and NOTIFY per change, and between commands by a timer (`wait`).
    pub changes: Option<ChangeReceiver>,
    /// The logged-in account's session slot (`max_connections_per_user`).
    pub user_permit: Option<coimail_directory::UserPermit>,
    /// The peer's slot for a session not logged in yet
    /// (`max_unauthenticated_per_ip`); dropped at login.
    pub unauth_permit: Option<coimail_directory::ConnectionPermit>,
    /// Mailbox names in UTF-8 on the wire (UTF8=ACCEPT or IMAP4rev2 enabled).
    pub utf8: bool,
    /// IMAP4rev2 enabled (RFC 9051 §6.3.1): no RECENT/UNSEEN, LIST in SELECT.
    pub rev2: bool,
    /// Until when the client may take to log in (a hard cap from connect).
    pub login_deadline: Instant,
    /// CONDSTORE is on (RFC 7162 §3.1: turned on by the first
    /// CONDSTORE-enabling command, e.g. STORE UNCHANGEDSINCE or STATUS
    /// HIGHESTMODSEQ, or by ENABLE): every FETCH response carries MODSEQ.
    pub condstore: bool,
    /// The saved search result (RFC 5182 SEARCHRES `$`), UIDs ascending;
    /// `None` is the empty set. Emptied when a mailbox is selected or closed.
    pub saved_search: Option<Vec<coimail_store::Uid>>,
    /// QRESYNC is on (RFC 7162 §3.2.3, only by ENABLE; implies CONDSTORE):
    /// expunges are reported as VANISHED.
    pub qresync: bool,
    /// What NOTIFY SET asked for (RFC 5465; `cmd/notify.rs`); `None` after NOTIFY NONE.
    pub notify: Option<Box<crate::cmd::notify::Notify>>,
    /// Input framed ahead of its turn: what ended a run of pipelined
    /// APPENDs (`cmd/append/pipeline.rs`). The next wait returns it first.
    pub stashed: Option<Event>,
    /// The command rate and the BAD count (`limits.rs`).
    pub limits: CommandLimits,
}

pub(crate) async fn run(
    ctx: Arc<ImapContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    kind: ImapListener,
    shutdown: CancellationToken,
    unauth_permit: coimail_directory::ConnectionPermit,
) {
    let login_deadline = Instant::now() + ctx.config.auth_timeout * LOGIN_DEADLINE_TIMEOUTS;
    let limits = Limits { max_line: ctx.config.max_line_bytes };
    let stream = match (kind, &ctx.tls) {
        (ImapListener::Starttls, _) => Stream::Plain(tcp),
        (ImapListener::ImplicitTls, Some(acceptor)) => {
            match tokio::time::timeout(ctx.config.auth_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            }
        }
        (ImapListener::ImplicitTls, None) => return,
    };
    let mut session = Session {
        limits: CommandLimits::new(&ctx.config, Instant::now()),
        ctx,
        conn: Conn::new(stream, limits),
        state: State::NotAuthenticated,
        peer,
        kind,
        shutdown: shutdown.child_token(),
        revocation: None,
        changes: None,
        user_permit: None,
        unauth_permit: Some(unauth_permit),
        utf8: false,
        rev2: false,
        login_deadline,
        condstore: false,
        saved_search: None,
        qresync: false,
        notify: None,
        stashed: None,
    };
    session.serve().await;
    // Ends the task watching the account's revocation, if any.
    session.shutdown.cancel();
    session.conn.shutdown().await;
}

impl Session {
    /// Turns CONDSTORE on for a CONDSTORE-enabling command (RFC 7162 §3.1).
    /// The first one issued while a mailbox is selected also reports that
    /// mailbox's HIGHESTMODSEQ (as this session knows it) in an untagged OK,
    /// ahead of the command's own responses and tagged OK.
    pub(crate) fn enable_condstore(&mut self) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let State::Selected(_, view) = &self.state {
            let line = format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", view.highest_modseq());
            self.conn.out().extend_from_slice(line.as_bytes());
        }
    }

    async fn serve(&mut self) {
        let caps = self.capabilities();
        let greeting = format!("* OK [CAPABILITY {caps}] {} coimail IMAP ready\r\n", self.ctx.config.hostname);
        self.conn.out().extend_from_slice(greeting.as_bytes());
        loop {
            if self.conn.flush().await.is_err() {
                return;
            }
            let wake = self.wait().await;
            // Each command the client sent takes a token, refused ones too
            // (continuations and IDLE's DONE are not commands).
            let command = matches!(
                &wake,
                Wake::Input(Event::Command(_) | Event::LiteralTooBig { .. } | Event::LineTooLong { .. })
            );
            if command && !self.pace().await {
                let _ = self.conn.flush().await;
                return;
            }
            let keep_going = match wake {
                Wake::Input(Event::Command(bytes)) => self.command(bytes).await,
                Wake::Input(Event::Continue) => {
                    self.conn.out().extend_from_slice(b"+ Ready for literal data\r\n");
                    true
                }
                Wake::Input(Event::LiteralTooBig { tag, sync }) => self.literal_too_big(tag.as_deref(), sync),
                Wake::Input(Event::CommandTooLong { tag }) => {
                    let _ = ImapError::bad("Command too long").write_tagged(self.conn.out(), tag.as_deref());
                    self.bye("Command too long; cannot find the next command");
                    false
                }
                Wake::Input(Event::LineTooLong { tag, literal_follows }) => {
                    if literal_follows {
                        self.bye("Line too long; cannot find the next command");
                        false
                    } else {
                        self.reply_error(&ImapError::bad("Line too long"), tag.as_deref())
                    }
                }
                Wake::Shutdown => {
                    self.bye(self.shutdown_reason());
                    false
                }
                Wake::Timeout if self.account().is_none() && Instant::now() >= self.login_deadline => {
                    self.bye("Autologout; login took too long");
                    false
                }
                Wake::Timeout => {
                    self.bye("Autologout; idle for too long");
                    false
                }
                Wake::Closed => false,
            };
            if !keep_going || matches!(self.state, State::Logout) {
                let _ = self.conn.flush().await;
                return;
            }
        }
    }

    fn literal_too_big(&mut self, tag: Option<&str>, sync: bool) -> bool {
        let max = self.literal_limit();
        if sync {
            // RFC 7888 §4 / RFC 9051 §7.1: refuse before the client sends it.
            self.reply_error(&ImapError::no(Code::TooBig, format!("Literal too big (at most {max} octets)")), tag)
        } else {
            // The client is already sending it; we cannot resynchronise.
            let _ = ImapError::bad(format!("[TOOBIG] Literal too big (at most {max} octets)"))
                .write_tagged(self.conn.out(), tag);
            self.bye("Literal too big");
            false
        }
    }

    /// The BYE text once `shutdown` fired.
    pub(crate) fn shutdown_reason(&self) -> &'static str {
        if self.revocation.as_ref().is_some_and(|r| r.is_revoked()) {
            "Account changed or deleted; log in again"
        } else {
            "Server shutting down"
        }
    }

    pub(crate) fn bye(&mut self, text: &str) {
        let out = self.conn.out();
        out.extend_from_slice(b"* BYE ");
        crate::error::push_text(out, text);
        out.extend_from_slice(b"\r\n");
    }

    pub(crate) fn capabilities(&self) -> String {
        let tls = self.conn.is_tls();
        capabilities(CapabilityState {
            authenticated: matches!(self.state, State::Authenticated(_) | State::Selected(..)),
            starttls: self.kind == ImapListener::Starttls && self.ctx.tls.is_some() && !tls,
            plaintext_login: self.ctx.config.plaintext_auth.allows(self.peer.ip(), tls),
            append_limit: self.ctx.config.max_literal_bytes,
            coi: self.ctx.coi.capabilities(),
            deltachat: self.ctx.deltachat.capabilities(),
            xchatmail: self.ctx.xchatmail,
        })
    }

    /// When a wait for input that starts now ends: the inactivity timeout,
    /// but never past the login deadline before login.
    pub(crate) fn deadline(&self) -> Instant {
        match self.state {
            State::NotAuthenticated => (Instant::now() + self.ctx.config.auth_timeout).min(self.login_deadline),
            _ => Instant::now() + self.ctx.config.idle_timeout,
        }
    }

    /// The cap on the literals of one command in the current state.
    pub(crate) fn literal_limit(&self) -> u64 {
        match self.state {
            State::NotAuthenticated => PRE_LOGIN_LITERAL.min(self.ctx.config.max_literal_bytes),
            _ => self.ctx.config.max_literal_bytes,
        }
    }

    /// Waits for the next framing event. Changes from the bus are not sent
    /// while waiting (RFC 3501 §7 allows no untagged response outside a
    /// command, except in IDLE) unless NOTIFY asked for them (RFC 5465 §5),
    /// so without NOTIFY the session does not wake for each one: the next
    /// command takes them all (`drain_changes`). Waking per change cost every
    /// other session on a busy account a task switch per change. A timer still
    /// drains now and then, so a session that sends nothing for a while does
    /// not fall `changes::CAPACITY` behind and need a full resync.
    async fn wait(&mut self) -> Wake {
        if let Some(event) = self.stashed.take() {
            return Wake::Input(event);
        }
        let mut deadline = self.deadline();
        let mut drain_every = BUS_DRAIN_MIN;
        let mut drain_at = Instant::now() + drain_every;
        loop {
            if let Some(event) = self.conn.next_event(self.literal_limit()) {
                return Wake::Input(event);
            }
            enum Got {
                Data,
                Eof,
                Change(Result<Change, RecvError>),
                Drain,
                Shutdown,
                Timeout,
            }
            let per_change = self.notify.is_some();
            let got = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Got::Shutdown,
                r = self.conn.fill() => if r.is_ok() { Got::Data } else { Got::Eof },
                c = recv(&mut self.changes), if per_change => Got::Change(c),
                _ = sleep_until(drain_at), if !per_change && self.changes.is_some() => Got::Drain,
                _ = sleep_until(deadline) => Got::Timeout,
            };
            match got {
                Got::Data => deadline = self.deadline(),
                Got::Eof => return Wake::Closed,
                Got::Change(c) => {
                    self.on_change(c);
                    // RFC 5465 §5: with NOTIFY, events go out between commands too.
                    if crate::cmd::notify::push(self).await.is_err() {
                        return Wake::Closed;
                    }
                }
                Got::Drain => {
                    let busy = self.changes.as_ref().is_some_and(|rx| !rx.is_empty());
                    self.drain_changes();
                    // A quiet account is looked at less and less often.
                    drain_every = if busy { BUS_DRAIN_MIN } else { (drain_every * 2).min(BUS_DRAIN_MAX) };
                    drain_at = Instant::now() + drain_every;
                }
                Got::Shutdown => return Wake::Shutdown,
                Got::Timeout => return Wake::Timeout,
            }
        }
    }

    /// Sends the pending unsolicited responses before a tagged response (`cmd/notify.rs`).
    pub(crate) async fn report_pending(&mut self, allow_expunge: bool) -> Result<(), ImapError> {
        crate::cmd::notify::report(self, crate::cmd::notify::At::Command { allow_expunge }).await
    }

    /// Decodes, checks and runs one command; writes its tagged response.
    /// Returns false when the connection must close.
    async fn command(&mut self, bytes: Bytes) -> bool {
        // APPEND, and the APPENDs pipelined right behind it, as one commit.
        if let Some(first) = crate::cmd::append::pipeline::first(self, &bytes) {
            return crate::cmd::append::pipeline::run(self, first).await;
        }
        // SEARCH, SORT and THREAD have their own grammar (cmd/search/parse.rs):
        // imap-codec lacks ESEARCH RETURN, SEARCHRES `$`, WITHIN and SORT=DISPLAY.
        if let Some((tag, req)) = crate::cmd::search::parse_extended(&bytes) {
            let allow_expunge = crate::cmd::search::allows_expunge(&req);
            let result = crate::cmd::search::run(self, &tag, req).await;
            return self.finish(&tag, true, allow_expunge, result).await;
        }
        // SEARCHRES: `$` as the set of FETCH, STORE, COPY, MOVE or UID EXPUNGE
        // becomes the saved messages before decoding (RFC 5182 §2.2, cmd/search/saved.rs).
        let bytes = match crate::cmd::search::expand_saved(self, bytes) {
            Ok(bytes) => bytes,
            Err((tag, done)) => return self.finish(&tag, true, false, Ok(done)).await,
        };
        let cmd = match CommandCodec::default().decode(&bytes) {
            Ok((&[], cmd)) => cmd,
            _ => {
                // Forms imap-codec cannot decode (MULTIAPPEND, CREATE ... (USE ...)).
                if let Some((tag, ext)) = crate::cmd::ext::decode(&bytes) {
                    let result = self.extended(ext).await;
                    return self.finish(&tag, true, true, result).await;
                }
                return self.reply_error(&ImapError::Bad(syntax_error(&bytes)), conn::command_tag(&bytes));
            }
        };
        let Command { tag, body } = cmd;
        let tag = tag.as_ref().to_owned();
        tracing::debug!(command = body.name(), "command");
        // RFC 3501 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH
        // (their UID forms are different commands and may carry one).
        let allow_expunge = !matches!(
            body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
        );
        // These either report themselves or leave the selected state.
        let reports = !matches!(
            body,
            CommandBody::Select { .. }
                | CommandBody::Examine { .. }
                | CommandBody::Unselect
                | CommandBody::Idle
                | CommandBody::Logout
        );
        if matches!(
            body,
            CommandBody::Select { .. } | CommandBody::Examine { .. } | CommandBody::Unselect | CommandBody::Close
        ) {
            // RFC 5182 §2.1: selecting or closing a mailbox empties the saved search result.
            self.saved_search = None;
        }
        let result = match check_state(&self.state, &body) {
            Ok(()) => self.dispatch(body, &tag).await,
            Err(e) => Err(e),
        };
        self.finish(&tag, reports, allow_expunge, result).await
    }

    /// Sends pending unsolicited responses (when `reports`), then the tagged
    /// response. Returns false when the connection must close.
    pub(crate) async fn finish(&mut self, tag: &str, reports: bool, allow_expunge: bool, result: CmdResult) -> bool {
        let result = match (reports, result) {
            (true, r @ (Ok(_) | Err(ImapError::Bad(_) | ImapError::No { .. }))) => {
                self.report_pending(allow_expunge).await.and(r)
            }
            (_, r) => r,
        };
        match result {
            Ok(done) => {
                let out = self.conn.out();
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b" OK ");
                if let Some(code) = &done.code {
                    out.push(b'[');
                    out.extend_from_slice(code.as_bytes());
                    out.extend_from_slice(b"] ");
                }
                crate::error::push_text(out, &done.text);
                out.extend_from_slice(b"\r\n");
                match done.then {
                    Then::Continue => true,
                    Then::Close => {
                        self.state = State::Logout;
                        false
                    }
                    Then::StartTls => self.start_tls().await,
                    Then::Compress => crate::cmd::compress::start(self).await,
                }
            }
            Err(e) => self.reply_error(&e, Some(tag)),
        }
    }

    async fn start_tls(&mut self) -> bool {
        let Some(acceptor) = self.ctx.tls.clone() else { return false };
        if self.conn.flush().await.is_err() {
            return false;
        }
        match tokio::time::timeout(self.ctx.config.auth_timeout, self.conn.start_tls(&acceptor)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "STARTTLS handshake failed");
                false
            }
            Err(_) => false,
        }
    }

    /// The one dispatch. The state was checked already (see [`check_state`]).
    async fn dispatch(&mut self, body: CommandBody<'_>, tag: &str) -> CmdResult {
        match body {
            CommandBody::Capability => any::capability(self),
            CommandBody::Noop => Ok(Done::ok("NOOP completed")),
            CommandBody::Logout => any::logout(self),
            CommandBody::Id { .. } => any::id(self),
            CommandBody::Enable { capabilities } => any::enable(self, capabilities.as_ref()),
            CommandBody::Namespace => any::namespace(self),
            CommandBody::StartTLS => auth::starttls(self),
            CommandBody::Compress { .. } => crate::cmd::compress::compress(self),
            CommandBody::Login { username, password } => auth::login(self, username.as_ref(), &password).await,
            CommandBody::Authenticate { mechanism, initial_response } => {
                auth::authenticate(self, &mechanism, initial_response).await
            }
            CommandBody::List { reference, mailbox_wildcard } => mailbox::list(self, &reference, &mailbox_wildcard),
            CommandBody::Select { mailbox, parameters } => select::select(self, &mailbox, &parameters, false),
            CommandBody::Examine { mailbox, parameters } => select::select(self, &mailbox, &parameters, true),
            CommandBody::Unselect => select::unselect(self),
            CommandBody::Fetch { sequence_set, macro_or_item_names, uid, modifiers } => {
                // RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.6 VANISHED.
                fetch::fetch_with(self, &sequence_set, macro_or_item_names, uid, &modifiers).await
            }
            CommandBody::Idle => idle::idle(self, tag).await,
            CommandBody::Create { mailbox } => {
                let name = mailbox::new_name_arg(self, &mailbox)?;
                mailbox::create(self, &name, &[]).await
            }
            CommandBody::Delete { mailbox } => {
                let name = mailbox::mailbox_arg(self, &mailbox)?;
                mailbox::delete(self, &name).await
            }
            CommandBody::Rename { from, to } => {
                let (from, to) = (mailbox::mailbox_arg(self, &from)?, mailbox::new_name_arg(self, &to)?);
                mailbox::rename(self, &from, &to).await
            }
            CommandBody::Subscribe { mailbox } => {
                let name = mailbox::mailbox_arg(self, &mailbox)?;
                mailbox::subscribe(self, &name, true).await
            }
            CommandBody::Unsubscribe { mailbox } => {
                let name = mailbox::mailbox_arg(self, &mailbox)?;
                mailbox::subscribe(self, &name, false).await
            }
            CommandBody::Lsub { reference, mailbox_wildcard } => mailbox::lsub(self, &reference, &mailbox_wildcard),
            CommandBody::Status { mailbox, item_names } => status::status(self, &mailbox, &item_names),
            CommandBody::Append { mailbox, flags, date, message } => {
                append::append(self, &mailbox, &flags, date.as_ref(), &message).await
            }
            CommandBody::Check => Ok(Done::ok("CHECK completed")),
            CommandBody::Close => select::close(self).await,
            CommandBody::Expunge => expunge::expunge(self, None).await,
            CommandBody::ExpungeUid { sequence_set } => expunge::expunge(self, Some(&sequence_set)).await,
            CommandBody::Store { sequence_set, kind, response, flags, uid, modifiers } => {
                let args =
                    store::StoreArgs { set: &sequence_set, kind, response, flags: &flags, uid, modifiers: &modifiers };
                store::store(self, args).await
            }
            CommandBody::Copy { sequence_set, mailbox, uid } => {
                copy_move::copy(self, &sequence_set, &mailbox, uid, false).await
            }
            CommandBody::Move { sequence_set, mailbox, uid } => {
                copy_move::copy(self, &sequence_set, &mailbox, uid, true).await
            }
            body @ (CommandBody::GetMetadata { .. } | CommandBody::SetMetadata { .. }) => {
                crate::cmd::metadata::run(self, body).await
            }
            body @ (CommandBody::GetQuota { .. } | CommandBody::GetQuotaRoot { .. } | CommandBody::SetQuota { .. }) => {
                crate::cmd::quota::run(self, body)
            }
            other => Err(ImapError::not_implemented(other.name())),
        }
    }

    /// Runs a command decoded by `cmd::ext` (forms imap-codec refuses).
    async fn extended(&mut self, ext: Extended) -> CmdResult {
        if self.account().is_none() {
            return Err(ImapError::bad(format!("{} is not valid before login", ext.name())));
        }
        match ext {
            Extended::Append { mailbox, messages } => append::multiappend(self, &mailbox, messages).await,
            Extended::Notify(request) => crate::cmd::notify::notify(self, request).await,
            Extended::Create { mailbox, special_use } => {
                let name = self.mailbox_name(&mailbox).map_err(mailbox::cannot_create)?;
                mailbox::create(self, &name, &special_use).await
            }
            Extended::List(args) => mailbox::list_extended(self, args),
            Extended::SetMetadata(args) => crate::cmd::metadata::set(self, args).await,
        }
    }

    pub(crate) fn account(&self) -> Option<&Account> {
        match &self.state {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            _ => None,
        }
    }

    /// Decodes a mailbox name from the wire: UTF-8 once enabled, otherwise
    /// modified UTF-7 (8-bit input that is valid UTF-8 is taken as UTF-8,
    /// as many clients send it regardless).
    pub(crate) fn mailbox_name(&self, wire: &[u8]) -> Result<String, ImapError> {
        self.decode_name(wire, MAX_NAME_WIRE)
    }

    /// [`Session::mailbox_name`] with a cap on the wire length, checked
    /// before any decoding (a name may arrive as a large literal).
    pub(crate) fn decode_name(&self, wire: &[u8], max_wire: usize) -> Result<String, ImapError> {
        if wire.len() > max_wire {
            return Err(ImapError::bad("Mailbox name too long"));
        }
        if self.utf8 || !wire.is_ascii() {
            return String::from_utf8(wire.to_vec()).map_err(|_| ImapError::bad("Mailbox name is not valid UTF-8"));
        }
        Ok(crate::mutf7::decode(wire)?)
    }
}

pub(crate) async fn recv(rx: &mut Option<ChangeReceiver>) -> Result<Change, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Which states a command is valid in (RFC 3501 §6, RFC 9051 §6).
fn check_state(state: &State, body: &CommandBody<'_>) -> Result<(), ImapError> {
    use CommandBody as C;
    enum Need {
        Any,
        NotAuthenticated,
        Authenticated,
        Selected,
    }
    let need = match body {
        C::Capability | C::Noop | C::Logout | C::Id { .. } => Need::Any,
        C::StartTLS | C::Authenticate { .. } | C::Login { .. } => Need::NotAuthenticated,
        C::Check
        | C::Close
        | C::Expunge
        | C::ExpungeUid { .. }
        | C::Search { .. }
        | C::Sort { .. }
        | C::Thread { .. }
        | C::Fetch { .. }
        | C::Store { .. }
        | C::Copy { .. }
        | C::Move { .. }
        | C::Unselect => Need::Selected,
        _ => Need::Authenticated,
    };
    let name = body.name();
    let logged_in = matches!(state, State::Authenticated(_) | State::Selected(..));
    match need {
        Need::Any => Ok(()),
        Need::NotAuthenticated if logged_in => Err(ImapError::bad(format!("{name} is not valid after login"))),
        Need::NotAuthenticated => Ok(()),
        _ if !logged_in => Err(ImapError::bad(format!("{name} is not valid before login"))),
        Need::Selected if !matches!(state, State::Selected(..)) => {
            Err(ImapError::bad(format!("{name} needs a selected mailbox")))
        }
        _ => Ok(()),
    }
}

/// Names of commands imap-codec knows, to tell "unknown command" from "bad arguments".
const KNOWN: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ENABLE",
    "ID",
    "NAMESPACE",
    "UNSELECT",
    "COMPRESS",
    "GETQUOTA",
    "GETQUOTAROOT",
    "SETQUOTA",
    "GETMETADATA",
    "SETMETADATA",
    "SORT",
    "THREAD",
    "NOTIFY",
];

fn syntax_error(bytes: &[u8]) -> String {
    let Some(tag) = conn::command_tag(bytes) else {
        return "Missing or invalid tag".into();
    };
    let rest = bytes.get(tag.len() + 1..).unwrap_or_default();
    let name: Vec<u8> =
        rest.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'-').map(u8::to_ascii_uppercase).collect();
    let name = String::from_utf8_lossy(&name).into_owned();
    if name.is_empty() {
        "Missing command".into()
    } else if KNOWN.contains(&name.as_str()) {
        format!("Syntax error in {name} arguments")
    } else {
        format!("Unknown command {name}")
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{PASSWORD, TestServer, USER, check};
    use std::time::Duration;

    #[tokio::test]
    async fn synchronising_literals_get_a_continuation() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.send(&format!("a1 LOGIN {{{}}}", USER.len())).await;
        assert_eq!(c.line().await, "+ Ready for literal data");
        // LITERAL+: no continuation for the second one.
        c.send(&format!("{USER} {{{}+}}", PASSWORD.len())).await;
        c.send(PASSWORD).await;
        let ok = c.line().await;
        assert!(ok.starts_with("a1 OK [CAPABILITY "), "{ok}");
    }

    #[tokio::test]
    async fn non_synchronising_literals_in_one_write() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        let cmd =
            format!("a1 LOGIN {{{}+}}\r\n{USER} {{{}+}}\r\n{PASSWORD}\r\na2 NOOP\r\n", USER.len(), PASSWORD.len());
        c.send_raw(cmd.as_bytes()).await;
        assert!(c.line().await.starts_with("a1 OK [CAPABILITY "));
        assert_eq!(c.line().await, "a2 OK NOOP completed");
    }

    #[tokio::test]
    async fn oversized_synchronising_literal_is_refused_before_it_is_sent() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: a1 APPEND INBOX {2000000}
             S: a1 NO [TOOBIG] Literal too big (at most 1048576 octets)
             C: a2 NOOP
             S: a2 OK NOOP completed",
        )
        .await;
    }

    #[tokio::test]
    async fn oversized_non_synchronising_literal_ends_the_session() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: a1 APPEND INBOX {2000000+}
             S: a1 BAD [TOOBIG] Literal too big (at most 1048576 octets)
             S: * BYE Literal too big",
        )
        .await;
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn literals_before_login_are_small() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        check(
            &mut c,
            "C: a1 LOGIN {9000}
             S: a1 NO [TOOBIG] Literal too big (at most 8192 octets)
             C: a2 LOGIN {9000+}
             S: a2 BAD [TOOBIG] Literal too big (at most 8192 octets)
             S: * BYE Literal too big",
        )
        .await;
        c.expect_closed().await;
        // After login the configured limit applies.
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(&mut c, "C: a1 APPEND INBOX {9000}\nS: + Ready for literal data").await;
    }

    #[tokio::test]
    async fn endless_literals_in_one_command_are_cut_off() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        let mut cmd = b"a1 LOGIN {0+}\r\n".to_vec();
        for _ in 0..100 {
            cmd.extend_from_slice(b"{0+}\r\n");
        }
        c.send_raw(&cmd).await;
        assert_eq!(c.line().await, "a1 BAD Command too long");
        assert_eq!(c.line().await, "* BYE Command too long; cannot find the next command");
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn line_bytes_around_literals_count_together() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        // Each line is under max_line_bytes (8192); together they are not.
        let pad = " ".repeat(5000);
        c.send_raw(format!("a1 LOGIN {{1+}}\r\nx{pad}{{1+}}\r\ny{pad}\r\n").as_bytes()).await;
        assert_eq!(c.line().await, "a1 BAD Command too long");
        assert_eq!(c.line().await, "* BYE Command too long; cannot find the next command");
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn trickling_client_must_still_log_in_in_time() {
        let srv = TestServer::start_with(|c| c.auth_timeout = Duration::from_secs(5), false).await;
        let mut c = srv.connect().await;
        c.line().await;
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        // Activity every 4 s keeps the idle timer (5 s) from firing...
        for i in 0..3 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            check(&mut c, &format!("C: n{i} NOOP\nS: n{i} OK NOOP completed")).await;
        }
        // ...but not the login deadline, 3 x 5 s after connecting.
        assert_eq!(c.line().await, "* BYE Autologout; login took too long");
        assert!(started.elapsed() < Duration::from_secs(16), "{:?}", started.elapsed());
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn overlong_line_gets_bad_and_the_session_goes_on() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.send(&format!("a1 NOOP {}", "x".repeat(20_000))).await;
        assert_eq!(c.line().await, "a1 BAD Line too long");
        // Just under the limit is still a command (and a syntax error here).
        c.send(&format!("a2 NOOP {}", "x".repeat(8000))).await;
        assert_eq!(c.line().await, "a2 BAD Syntax error in NOOP arguments");
        check(&mut c, "C: a3 NOOP\nS: a3 OK NOOP completed").await;
    }

    #[tokio::test]
    async fn overlong_line_announcing_a_literal_closes() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.send(&format!("a1 LOGIN {} {{5+}}", "x".repeat(20_000))).await;
        assert_eq!(c.line().await, "* BYE Line too long; cannot find the next command");
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn silent_client_is_logged_out() {
        let srv = TestServer::start_with(|c| c.auth_timeout = Duration::from_secs(5), false).await;
        let mut c = srv.connect().await;
        c.line().await;
        // Paused time advances to the next timer whenever every task waits.
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        assert_eq!(c.line().await, "* BYE Autologout; idle for too long");
        assert!(started.elapsed() >= Duration::from_secs(4));
        c.expect_closed().await;
    }
}
