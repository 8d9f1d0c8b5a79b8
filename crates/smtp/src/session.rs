//! One SMTP session: greeting, the command loop, the state checks and the
//! dispatch `match`, plus the small commands (EHLO/HELO, RSET, NOOP, VRFY,
//! HELP, QUIT, STARTTLS). MAIL/RCPT live in `mail.rs`, DATA in `data.rs`,
//! AUTH in `auth.rs`.
//!
//! State (RFC 5321 §4.1.4): `helo` is set by EHLO/HELO, `tx` by MAIL and
//! cleared by RSET, EHLO/HELO, STARTTLS and the end of DATA. STARTTLS also
//! forgets EHLO and authentication (RFC 3207 §4.2).
//!
//! Shutdown: while waiting for a command outside a transaction the session
//! answers 421 4.3.2 and closes; inside a transaction it keeps going (bounded
//! by the command timeout) until the transaction ends, then does the same.
//!
//! Slow clients: DATA and BDAT mark the message data for the connection
//! (`Conn::begin_data`/`end_data`, here around the dispatch), which holds
//! reads to the data deadline and minimum rate; a client over any bound
//! gets `421 4.4.2` naming it and is closed (`io.rs`, [`crate::io::Timeouts`]).

use crate::bdat::Chunks;
use crate::delivery::LocalRecipient;
use crate::io::{Conn, ConnError, LineError, Stream, TlsInfo};
use crate::reply::{self, Enhanced, Reply, SmtpError};
use crate::{SmtpContext, SmtpListener};
use coimail_delivery::{DsnRet, SpoolRecipient};
use coimail_directory::{Account, Revocation};
use smtp_proto::{Error as ParseError, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Command lines longer than this get 500 5.5.2. RFC 5321 §4.5.3.1.4 asks
/// for at least 512; extensions and AUTH initial responses need more.
pub(crate) const MAX_COMMAND_LINE: usize = 4096;

pub(crate) struct Helo {
    pub name: String,
    pub esmtp: bool,
}

/// A mail transaction between MAIL and the end of DATA.
pub(crate) struct Transaction {
    /// Reverse path; empty for `<>`.
    pub sender: String,
    pub smtputf8: bool,
    /// MAIL `SIZE=` (RFC 1870); 0 when not declared.
    pub declared_size: u64,
    /// Recipients in our domains.
    pub recipients: Vec<LocalRecipient>,
    /// Recipients elsewhere (authenticated submission only), for the queue.
    pub remote: Vec<SpoolRecipient>,
    /// DSN `ENVID` and `RET` (RFC 3461), kept for the queue.
    pub env_id: Option<String>,
    pub ret: Option<DsnRet>,
    /// The message so far, once BDAT has started (RFC 3030).
    pub chunks: Option<Chunks>,
}

impl Transaction {
    pub fn recipient_count(&self) -> usize {
        self.recipients.len() + self.remote.len()
    }

    /// The one recipient, if there is exactly one (for `Received: ... for`).
    pub fn only_recipient(&self) -> Option<&str> {
        match (self.recipients.as_slice(), self.remote.as_slice()) {
            ([one], []) => Some(one.address.as_str()),
            ([], [one]) => Some(one.address.as_str()),
            _ => None,
        }
    }
}

pub(crate) struct Session {
    pub ctx: Arc<SmtpContext>,
    pub kind: SmtpListener,
    pub peer: SocketAddr,
    pub id: String,
    pub conn: Conn,
    pub tls: Option<TlsInfo>,
    pub helo: Option<Helo>,
    pub auth: Option<Account>,
    /// Set with `auth`: fires when that account's password changes or it is
    /// deleted, which ends the session (421) before its next command.
    pub revocation: Option<Revocation>,
    pub tx: Option<Transaction>,
    /// Transactions completed or attempted, for message ids.
    pub tx_count: u32,
    /// Inbound-check results that hold for the whole session (iprev, HELO SPF).
    pub checks: crate::inbound::SessionChecks,
    shutdown: CancellationToken,
}

enum Flow {
    Continue,
    Quit,
}

/// Returns when the session's account is revoked; never without one.
async fn revoked(revocation: &mut Option<Revocation>) {
    match revocation {
        Some(r) => r.revoked().await,
        None => std::future::pending().await,
    }
}

/// Permanent errors (5xx replies) after which a session is closed with 421:
/// a client that keeps failing is probing (users, relays) or broken, and
/// should not hold a connection slot (Postfix's smtpd_hard_error_limit is 20).
pub(crate) const MAX_ERRORS: u32 = 20;

/// Runs a session to its end; errors end it and are logged here.
pub(crate) async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: SmtpListener,
    ctx: Arc<SmtpContext>,
    shutdown: CancellationToken,
    id: String,
) {
    let _ = tcp.set_nodelay(true);
    let timeouts = ctx.config.timeouts;
    let mut s = Session {
        ctx,
        kind,
        peer,
        id,
        conn: Conn::new(Stream::Plain(tcp), timeouts, std::time::Instant::now()),
        tls: None,
        helo: None,
        auth: None,
        revocation: None,
        tx: None,
        tx_count: 0,
        checks: Default::default(),
        shutdown,
    };
    tracing::debug!("connected");
    match s.serve().await {
        Ok(()) => tracing::debug!("closed"),
        Err(ConnError::Eof) => tracing::debug!("client went away"),
        Err(ConnError::Timeout(why)) => {
            let (limit, reply) = why.describe(s.conn.timeouts());
            tracing::info!(limit, in_data = s.conn.in_data(), "client too slow; closing");
            s.conn.reply(reply);
            s.conn.close().await;
        }
        Err(e) => tracing::info!(error = %e, "session ended"),
    }
}

impl Session {
    async fn serve(&mut self) -> Result<(), ConnError> {
        if self.kind == SmtpListener::Submissions {
            let Some(acceptor) = self.ctx.tls.clone() else {
                tracing::error!("implicit TLS listener without a TLS configuration");
                return Ok(());
            };
            self.tls = Some(self.conn.start_tls(&acceptor).await?);
        }
        if self.shutdown.is_cancelled() {
            self.conn.reply(reply::SHUTTING_DOWN);
            self.conn.close().await;
            return Ok(());
        }
        let greeting = format!("{} ESMTP coimail ready", self.ctx.config.hostname);
        self.conn.reply(Reply::plain(220, greeting));
        loop {
            if self.revocation.as_ref().is_some_and(Revocation::is_revoked) {
                return self.end_revoked().await;
            }
            let Some(line) = self.conn.take_line(MAX_COMMAND_LINE) else {
                if self.tx.is_some() {
                    self.conn.fill().await?;
                    continue;
                }
                tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => {
                        self.conn.reply(reply::SHUTTING_DOWN);
                        self.conn.close().await;
                        return Ok(());
                    }
                    _ = revoked(&mut self.revocation) => return self.end_revoked().await,
                    r = self.conn.fill() => r?,
                }
                continue;
            };
            if let Flow::Quit = self.command(line).await? {
                self.conn.close().await;
                return Ok(());
            }
            if self.conn.errors() >= MAX_ERRORS {
                tracing::info!(errors = self.conn.errors(), "too many errors; closing");
                self.conn.reply(reply::TOO_MANY_ERRORS);
                self.conn.close().await;
                return Ok(());
            }
        }
    }

    async fn end_revoked(&mut self) -> Result<(), ConnError> {
        tracing::info!("account changed or deleted; ending the session");
        self.conn.reply(SmtpError::new(421, Enhanced(4, 7, 0), "account changed or deleted; authenticate again"));
        self.conn.close().await;
        Ok(())
    }

    async fn command(&mut self, line: Result<Vec<u8>, LineError>) -> Result<Flow, ConnError> {
        let mut line = match line {
            Ok(l) => l,
            Err(LineError::TooLong) => {
                tracing::info!("command line too long");
                self.conn.reply(reply::LINE_TOO_LONG);
                return Ok(Flow::Continue);
            }
            Err(LineError::BareLineEnding) => {
                tracing::warn!("bare CR or LF in command line");
                self.conn.reply(reply::BARE_LINE_ENDING);
                return Ok(Flow::Continue);
            }
        };
        line.extend_from_slice(b"\r\n");
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => {
                tracing::debug!(error = ?e, "unparsable command");
                self.conn.reply(parse_error(e));
                return Ok(Flow::Continue);
            }
        };
        tracing::debug!(command = request.name());
        match request {
            Request::Ehlo { host } => self.cmd_hello(host, true),
            Request::Helo { host } => self.cmd_hello(host, false),
            Request::Mail { from } => self.cmd_mail(from),
            Request::Rcpt { to } => self.cmd_rcpt(to),
            Request::Data => {
                self.conn.begin_data();
                self.cmd_data().await?;
            }
            Request::Auth { mechanism, initial_response } => self.cmd_auth(mechanism, initial_response).await?,
            Request::StartTls => self.cmd_starttls().await?,
            Request::Rset => {
                self.tx = None;
                self.conn.reply(Reply::ok("OK"));
            }
            Request::Noop { .. } => self.conn.reply(Reply::ok("OK")),
            // RFC 5321 §3.5.3: we do not confirm addresses.
            Request::Vrfy { .. } => self.conn.reply(Reply::new(
                252,
                Enhanced(2, 5, 2),
                "cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.conn.reply(Reply::new(
                214,
                Enhanced(2, 0, 0),
                "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
            )),
            Request::Quit => {
                let bye = format!("{} closing connection", self.ctx.config.hostname);
                self.conn.reply(Reply::new(221, Enhanced(2, 0, 0), bye));
                return Ok(Flow::Quit);
            }
            Request::Lhlo { .. } => self.conn.reply(reply::UNKNOWN_COMMAND),
            Request::Bdat { chunk_size, is_last } => {
                self.conn.begin_data();
                self.cmd_bdat(chunk_size, is_last).await?;
            }
            Request::Expn { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.conn.reply(reply::NOT_IMPLEMENTED)
            }
        }
        // The message data ends with DATA's dot or BDAT LAST, or with a
        // refusal or reset; between BDAT chunks it goes on (`io.rs`).
        if self.tx.as_ref().is_none_or(|tx| tx.chunks.is_none()) {
            self.conn.end_data();
        }
        Ok(Flow::Continue)
    }

    /// EHLO/HELO (RFC 5321 §4.1.1.1): resets any transaction. No enhanced
    /// codes in the reply (RFC 2034 §3).
    fn cmd_hello(&mut self, host: String, esmtp: bool) {
        self.tx = None;
        let hostname = self.ctx.config.hostname.clone();
        let mut lines: Vec<std::borrow::Cow<'static, str>> = vec![hostname.into()];
        if esmtp {
            lines.push("PIPELINING".into());
            lines.push(format!("SIZE {}", self.ctx.config.max_message_bytes).into());
            lines.push("8BITMIME".into());
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push("SMTPUTF8".into());
            lines.push("CHUNKING".into());
            lines.push("DSN".into());
            if self.ctx.tls.is_some() && !self.conn.is_tls() {
                lines.push("STARTTLS".into());
            }
            if self.auth_offered() {
                lines.push("AUTH PLAIN LOGIN".into());
            }
        }
        self.conn.reply(Reply { code: 250, enhanced: None, lines });
        tracing::debug!(helo = %coimail_directory::LogSafe(&host), esmtp, "greeted");
        self.helo = Some(Helo { name: host, esmtp });
    }

    /// STARTTLS (RFC 3207): 220, handshake, then a fresh session state.
    async fn cmd_starttls(&mut self) -> Result<(), ConnError> {
        if self.conn.is_tls() {
            self.conn.reply(SmtpError::new(503, Enhanced(5, 5, 1), "TLS already active"));
            return Ok(());
        }
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.conn.reply(SmtpError::new(502, Enhanced(5, 5, 1), "STARTTLS not available"));
            return Ok(());
        };
        if self.tx.is_some() {
            self.conn.reply(reply::BAD_SEQUENCE);
            return Ok(());
        }
        self.conn.reply(Reply::new(220, Enhanced(2, 0, 0), "ready to start TLS"));
        let info = self.conn.start_tls(&acceptor).await?;
        tracing::debug!(version = %info.version, cipher = %info.cipher, "TLS started");
        self.tls = Some(info);
        self.helo = None;
        self.auth = None;
        self.revocation = None;
        self.tx = None;
        Ok(())
    }
}

/// Maps a smtp-proto parse error to its reply.
fn parse_error(e: ParseError) -> SmtpError {
    match e {
        ParseError::UnknownCommand => reply::UNKNOWN_COMMAND,
        ParseError::SyntaxError { syntax } => {
            SmtpError::with_text(501, Enhanced(5, 5, 2), format!("syntax error, expected: {syntax}"))
        }
        ParseError::InvalidSenderAddress => SmtpError::new(501, Enhanced(5, 1, 7), "invalid sender address"),
        ParseError::InvalidRecipientAddress => SmtpError::new(501, Enhanced(5, 1, 3), "invalid recipient address"),
        ParseError::InvalidParameter { param } => {
            SmtpError::with_text(501, Enhanced(5, 5, 4), format!("invalid value for parameter {param}"))
        }
        ParseError::UnsupportedParameter { .. } => SmtpError::new(555, Enhanced(5, 5, 4), "unsupported parameter"),
        _ => reply::SYNTAX,
    }
}
