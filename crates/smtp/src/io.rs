//! The connection: a plain or TLS stream, a read buffer with our own line
//! reader, and a reply buffer.
//!
//! Invariants:
//! - A command line ends in CRLF. A line whose LF is not preceded by CR, or
//!   that holds a CR elsewhere, is handed back as [`LineError::BareLineEnding`]
//!   (SMTP smuggling defence, RFC 5321 §2.3.8); it is never parsed.
//! - A line longer than the limit is discarded up to its LF and reported as
//!   [`LineError::TooLong`]; the buffer never grows past the limit.
//! - Replies are buffered and flushed before every socket read, so pipelined
//!   commands (RFC 2920) get their replies in one write and no reply waits
//!   for input.
//! - Every socket read, write and TLS handshake is bounded (RFC 5321
//!   §4.5.3.2 and issue 11, [`Timeouts`]): a whole command line by the
//!   command timeout (the first one, and an implicit-TLS handshake, by the
//!   shorter first-command timeout), each read of message data by the
//!   command timeout; the message data (DATA, or BDAT from the first chunk
//!   to the last) by the data deadline and the minimum rate; everything by
//!   the session deadline. A per-read timeout alone let a client that sends
//!   one byte every few minutes hold a connection slot for hours.
//!   All of this lives here, at the one place the session reads, so the
//!   DATA/BDAT readers need no clock of their own.

use crate::reply::Reply;
use coimail_tls::TlsAcceptor;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Read size per socket read.
const READ_CHUNK: usize = 16 * 1024;

/// `at + d`, or a time so far off it never comes when that is past what an
/// `Instant` holds (a configured bound in the billions of seconds).
fn later(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    at.checked_add(d).or_else(|| at.checked_add(FAR)).unwrap_or(at)
}

/// Bound on sending the last reply and closing, whatever deadline passed.
const CLOSE_WRITE: Duration = Duration::from_secs(10);

/// How long a client may take (issue 11). A zero duration or rate turns
/// that bound off, except `command` and `first_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A whole command line, and each read of message data.
    pub command: Duration,
    /// The first command line (EHLO) after the greeting, and the handshake
    /// of an implicit-TLS connection: a real client sends it at once.
    pub first_command: Duration,
    /// The whole session, from accept.
    pub session: Duration,
    /// The message data of one transaction: DATA's, or BDAT's from the first chunk to the last.
    pub data: Duration,
    /// Octets per second the message data must average, after the grace period.
    pub min_data_rate: u64,
    /// The start of the message data not held to the rate: a client must
    /// have sent `min_data_rate × (elapsed − grace)` octets at any time.
    pub min_data_rate_grace: Duration,
}

/// Which bound a client overran; each gets its own `421 4.4.2` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    /// No read or write of message data or a reply within the command timeout.
    Timeout,
    /// No whole command line within the command (or first-command) timeout, in seconds.
    Line(u64),
    Session,
    Data,
    MinRate,
}

impl Overrun {
    /// The name in logs and the reply that closes the session.
    pub fn describe(self, t: &Timeouts) -> (&'static str, Reply) {
        use crate::reply::{Enhanced, TIMEOUT};
        let text = |s: String| Reply::new(421, Enhanced(4, 4, 2), s);
        match self {
            Overrun::Timeout => ("timeout", TIMEOUT.into()),
            Overrun::Line(secs) => (
                "command line deadline",
                text(format!("timeout: no complete command within {secs} s, closing transmission channel")),
            ),
            Overrun::Session => (
                "session deadline",
                text(format!("session time limit of {} s reached, closing transmission channel", t.session.as_secs())),
            ),
            Overrun::Data => (
                "data deadline",
                text(format!("message not received within {} s, closing transmission channel", t.data.as_secs())),
            ),
            Overrun::MinRate => (
                "minimum data rate",
                text(format!(
                    "message data too slow (under {} octets per second), closing transmission channel",
                    t.min_data_rate
                )),
            ),
        }
    }
}

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client closed the connection")]
    Eof,
    #[error("client too slow: {0:?}")]
    Timeout(Overrun),
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// A command line that cannot be used; it has been consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    TooLong,
    BareLineEnding,
}

/// The negotiated TLS parameters, for the Received header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The message data being read: since when, and how much came.
struct DataPhase {
    started: Instant,
    received: u64,
}

pub struct Conn {
    /// `None` only while a TLS handshake owns the socket.
    stream: Option<Stream>,
    rbuf: Vec<u8>,
    /// Start of unread data in `rbuf`.
    rpos: usize,
    /// Discarding an over-long line up to its LF.
    discarding: bool,
    wbuf: Vec<u8>,
    timeouts: Timeouts,
    /// When the session began (accept).
    started: Instant,
    /// Command lines taken so far (the first one has its own timeout).
    lines: u64,
    /// Since when we wait for the command line being read; set at the
    /// first read that needs more of it, cleared when it is taken.
    line_wait: Option<Instant>,
    /// Set while message data is being read ([`Conn::begin_data`]).
    data: Option<DataPhase>,
    /// Permanent (5xx) replies sent so far: a client that keeps failing is
    /// cut off (see `session::MAX_ERRORS`).
    errors: u32,
}

impl Conn {
    pub fn new(stream: Stream, timeouts: Timeouts, started: Instant) -> Self {
        Conn {
            stream: Some(stream),
            rbuf: Vec::new(),
            rpos: 0,
            discarding: false,
            wbuf: Vec::new(),
            timeouts,
            started,
            lines: 0,
            line_wait: None,
            data: None,
            errors: 0,
        }
    }

    /// Message data starts (DATA, or the first BDAT chunk): from now on
    /// reads are held to the data deadline and the minimum rate. A phase
    /// already running (a later BDAT chunk) goes on.
    pub fn begin_data(&mut self) {
        if self.data.is_none() {
            self.data = Some(DataPhase { started: Instant::now(), received: 0 });
            self.line_wait = None;
        }
    }

    /// The message data is over (or the transaction was refused or reset).
    pub fn end_data(&mut self) {
        self.data = None;
    }

    pub fn in_data(&self) -> bool {
        self.data.is_some()
    }

    /// The bounds this connection is held to.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Until when the next read may wait, and which bound that is.
    fn read_deadline(&mut self, now: Instant) -> (Instant, Overrun) {
        let t = self.timeouts;
        let mut until = match &self.data {
            // A command line as a whole, not each read of it.
            None => {
                let since = *self.line_wait.get_or_insert(now);
                let limit = if self.lines == 0 { t.first_command } else { t.command };
                (later(since, limit), Overrun::Line(limit.as_secs()))
            }
            Some(_) => (later(now, t.command), Overrun::Timeout),
        };
        let mut earlier = |at: Instant, why: Overrun| {
            if at < until.0 {
                until = (at, why);
            }
        };
        if let Some(d) = &self.data {
            if !t.data.is_zero() {
                earlier(later(d.started, t.data), Overrun::Data);
            }
            // The octets received so far pay for this much time (a rate of 0: no bound).
            if let Some(paid) = d.received.saturating_mul(1000).checked_div(t.min_data_rate) {
                let wait = t.min_data_rate_grace.saturating_add(Duration::from_millis(paid));
                earlier(later(d.started, wait), Overrun::MinRate);
            }
        }
        if !t.session.is_zero() {
            earlier(later(self.started, t.session), Overrun::Session);
        }
        until
    }

    /// Until when a write or handshake may wait: the command timeout (the
    /// first-command one before any command), within the session deadline.
    fn write_deadline(&self, now: Instant) -> (Instant, Overrun) {
        let t = &self.timeouts;
        let limit = if self.lines == 0 { t.first_command } else { t.command };
        let (session, limit) = (later(self.started, t.session), later(now, limit));
        if !t.session.is_zero() && session < limit { (session, Overrun::Session) } else { (limit, Overrun::Timeout) }
    }

    /// Performs the server side of a TLS handshake on a plain connection
    /// (implicit TLS or STARTTLS). Unread plaintext is discarded first: bytes
    /// pipelined behind STARTTLS must not be read as if they came over TLS
    /// (RFC 3207 §4.2, CVE-2011-0411).
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> Result<TlsInfo, ConnError> {
        self.flush().await?;
        self.rbuf.clear();
        self.rpos = 0;
        self.discarding = false;
        let tcp = match self.stream.take() {
            Some(Stream::Plain(tcp)) => tcp,
            Some(tls @ Stream::Tls(_)) => {
                self.stream = Some(tls);
                return Err(ConnError::Handshake(io::Error::other("TLS already active")));
            }
            None => return Err(ConnError::Handshake(io::Error::other("connection lost"))),
        };
        let (until, why) = self.write_deadline(Instant::now());
        let tls = match tokio::time::timeout_at(until.into(), acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(ConnError::Handshake(e)),
            Err(_) => return Err(ConnError::Timeout(why)),
        };
        let (_, server) = tls.get_ref();
        let version = match server.protocol_version() {
            Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_owned(),
        };
        let cipher =
            server.negotiated_cipher_suite().map_or_else(|| "unknown".to_owned(), |s| format!("{:?}", s.suite()));
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(TlsInfo { version, cipher })
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    /// Queues a reply; it is sent at the next read or [`Conn::flush`].
    pub fn reply(&mut self, reply: impl Into<Reply>) {
        let reply = reply.into();
        if reply.code >= 500 {
            self.errors += 1;
        }
        reply.write_to(&mut self.wbuf);
    }

    /// Permanent errors this connection has been answered with.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Queues raw reply bytes (e.g. a `334` challenge built by the caller).
    pub fn reply_raw(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        let (until, why) = self.write_deadline(Instant::now());
        self.flush_until(until, why).await
    }

    async fn flush_until(&mut self, until: Instant, why: Overrun) -> Result<(), ConnError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(ConnError::Eof)?;
        let write = async {
            stream.write_all(&self.wbuf).await?;
            stream.flush().await
        };
        match tokio::time::timeout_at(until.into(), write).await {
            Ok(r) => r?,
            Err(_) => return Err(ConnError::Timeout(why)),
        }
        self.wbuf.clear();
        Ok(())
    }

    /// Flushes replies, then reads once from the socket into the buffer.
    /// Cancel-safe after the flush: a cancelled read loses no data.
    pub async fn fill(&mut self) -> Result<(), ConnError> {
        self.flush().await?;
        if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let (until, why) = self.read_deadline(Instant::now());
        let stream = self.stream.as_mut().ok_or(ConnError::Eof)?;
        let start = self.rbuf.len();
        self.rbuf.resize(start + READ_CHUNK, 0);
        let read = tokio::time::timeout_at(until.into(), stream.read(&mut self.rbuf[start..])).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.rbuf.truncate(start);
                return Err(e.into());
            }
            Err(_) => {
                self.rbuf.truncate(start);
                return Err(ConnError::Timeout(why));
            }
        };
        self.rbuf.truncate(start + n);
        if let Some(d) = self.data.as_mut() {
            d.received = d.received.saturating_add(n as u64);
        }
        if n == 0 {
            return Err(ConnError::Eof);
        }
        Ok(())
    }

    /// Takes the next complete command line (without its CRLF) from the
    /// buffer, or `None` if more input is needed.
    pub fn take_line(&mut self, max: usize) -> Option<Result<Vec<u8>, LineError>> {
        let unread = &self.rbuf[self.rpos..];
        let Some(lf) = unread.iter().position(|&b| b == b'\n') else {
            if unread.len() > max {
                self.discarding = true;
                self.rbuf.clear();
                self.rpos = 0;
            }
            return None;
        };
        let line = &unread[..lf];
        self.rpos += lf + 1;
        self.lines += 1;
        self.line_wait = None;
        if std::mem::take(&mut self.discarding) || line.len() + 1 > max {
            return Some(Err(LineError::TooLong));
        }
        let Some(text) = line.strip_suffix(b"\r") else {
            return Some(Err(LineError::BareLineEnding));
        };
        if text.contains(&b'\r') {
            return Some(Err(LineError::BareLineEnding));
        }
        Some(Ok(text.to_vec()))
    }

    /// Unread bytes, for the DATA decoder; mark what it used with [`Conn::consume`].
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.rpos = (self.rpos + n).min(self.rbuf.len());
    }

    /// Flushes and closes the write side.
    /// The last reply is sent even past the session deadline (it says why
    /// the session ends), within a short bound of its own.
    pub async fn close(&mut self) {
        let until = Instant::now() + self.timeouts.command.min(CLOSE_WRITE);
        if self.flush_until(until, Overrun::Timeout).await.is_ok()
            && let Some(s) = self.stream.as_mut()
        {
            let _ = tokio::time::timeout_at(until.into(), s.shutdown()).await;
        }
    }
}
