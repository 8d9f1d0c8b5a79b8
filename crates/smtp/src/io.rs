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
//! - Every socket read and the TLS handshake are bounded by the command
//!   timeout (RFC 5321 §4.5.3.2).

use crate::reply::Reply;
use coimail_tls::TlsAcceptor;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Read size per socket read.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client closed the connection")]
    Eof,
    #[error("client timed out")]
    Timeout,
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

pub struct Conn {
    /// `None` only while a TLS handshake owns the socket.
    stream: Option<Stream>,
    rbuf: Vec<u8>,
    /// Start of unread data in `rbuf`.
    rpos: usize,
    /// Discarding an over-long line up to its LF.
    discarding: bool,
    wbuf: Vec<u8>,
    timeout: Duration,
    /// Permanent (5xx) replies sent so far: a client that keeps failing is
    /// cut off (see `session::MAX_ERRORS`).
    errors: u32,
}

impl Conn {
    pub fn new(stream: Stream, timeout: Duration) -> Self {
        Conn {
            stream: Some(stream),
            rbuf: Vec::new(),
            rpos: 0,
            discarding: false,
            wbuf: Vec::new(),
            timeout,
            errors: 0,
        }
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
        let tls = match tokio::time::timeout(self.timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(ConnError::Handshake(e)),
            Err(_) => return Err(ConnError::Timeout),
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
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let stream = self.stream.as_mut().ok_or(ConnError::Eof)?;
        let write = async {
            stream.write_all(&self.wbuf).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(r) => r?,
            Err(_) => return Err(ConnError::Timeout),
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
        let stream = self.stream.as_mut().ok_or(ConnError::Eof)?;
        let start = self.rbuf.len();
        self.rbuf.resize(start + READ_CHUNK, 0);
        let read = tokio::time::timeout(self.timeout, stream.read(&mut self.rbuf[start..])).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.rbuf.truncate(start);
                return Err(e.into());
            }
            Err(_) => {
                self.rbuf.truncate(start);
                return Err(ConnError::Timeout);
            }
        };
        self.rbuf.truncate(start + n);
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
    pub async fn close(&mut self) {
        if self.flush().await.is_ok()
            && let Some(s) = self.stream.as_mut()
        {
            let _ = tokio::time::timeout(self.timeout, s.shutdown()).await;
        }
    }
}
