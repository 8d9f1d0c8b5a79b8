//! Buffered I/O for one connection: plain TCP or TLS, the STARTTLS swap,
//! and framing of client input into whole commands.
//!
//! Framing is sans-I/O: [`Conn::next_event`] looks only at bytes already
//! read, and [`Conn::fill`] is a single cancel-safe read. The session can
//! therefore race reading against the change bus and shutdown without ever
//! losing input. A command is handed out only when its line(s) and all its
//! literals are complete, so imap-codec always sees the whole command.
//!
//! Limits: one line (between literals) may be at most `max_line` bytes; a
//! literal, and all literals of one command together, at most
//! `max_literal`. An oversized literal is refused before any of it is read.

use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Output is written out once this much is queued, so a large FETCH does
/// not hold the whole response in memory.
pub(crate) const WRITE_CHUNK: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// A client that stops reading our output is dropped after this long, so a
/// stuck socket cannot hold a session (and shutdown) forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of an overlong line we remember, to see whether it announced a literal.
const TAIL: usize = 32;

pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the TLS handshake owns the socket (or after it failed).
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// What the framer found in the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// One complete command: its lines and literals, final CRLF included.
    Command(Bytes),
    /// A synchronising literal was announced and fits: the client waits for
    /// a continuation request before sending it.
    Continue,
    /// A literal over the limit: the command is dropped. A synchronising
    /// client sends nothing more for it; a non-synchronising one is already
    /// sending the literal, so the connection cannot be resynchronised.
    LiteralTooBig { tag: Option<String>, sync: bool },
    /// A line over the limit, read and thrown away up to its end. If it
    /// announced a literal we cannot tell literal data from commands any more.
    LineTooLong { tag: Option<String>, literal_follows: bool },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_line: usize,
    pub max_literal: u64,
}

/// Where the framer is within the current command (offsets into `rbuf`,
/// which always starts at the first byte of the current command).
#[derive(Debug, Default)]
struct Framer {
    /// Start of the line being scanned.
    line_start: usize,
    /// Next offset to look for LF at.
    scan: usize,
    /// While inside a literal: where it ends.
    literal_end: Option<usize>,
    /// Literal bytes accepted for this command so far.
    literal_total: u64,
    /// Throwing away the rest of an overlong line.
    discard: Option<Discard>,
}

#[derive(Debug)]
struct Discard {
    tag: Option<String>,
    tail: Vec<u8>,
}

pub(crate) struct Conn {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    framer: Framer,
    limits: Limits,
}

impl Conn {
    pub(crate) fn new(stream: Stream, limits: Limits) -> Self {
        Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(4096),
            framer: Framer::default(),
            limits,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The output buffer; responses are appended here and sent by [`Conn::flush`].
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Reads once. Cancel-safe: a dropped call loses no input.
    /// End of stream is an `UnexpectedEof` error.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        self.rbuf.reserve(READ_CHUNK);
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Sends everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let write = async {
            if !self.wbuf.is_empty() {
                self.stream.write_all(&self.wbuf).await?;
                self.wbuf.clear();
            }
            self.stream.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Sends queued output once there is a lot of it.
    pub(crate) async fn flush_if_large(&mut self) -> io::Result<()> {
        if self.wbuf.len() >= WRITE_CHUNK { self.flush().await } else { Ok(()) }
    }

    pub(crate) async fn shutdown(&mut self) {
        if self.flush().await.is_ok() {
            // TLS close_notify is a write too.
            let _ = tokio::time::timeout(WRITE_TIMEOUT, self.stream.shutdown()).await;
        }
    }

    /// STARTTLS (RFC 3501 §6.2.1): anything the client pipelined after the
    /// command was sent in the clear and is discarded, never executed
    /// (the CVE-2011-0411 class of injection). Queued output must have been flushed.
    pub(crate) async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.rbuf.clear();
        self.framer = Framer::default();
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("STARTTLS on a connection that is not plain text"));
        };
        let tls = acceptor.accept(tcp).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Takes one line (CRLF stripped) that is not part of a command: the
    /// IDLE `DONE` and SASL responses. `Some(Err(()))`: over `max_line`.
    pub(crate) fn take_line(&mut self) -> Option<Result<Bytes, ()>> {
        match self.rbuf.iter().position(|&b| b == b'\n') {
            Some(lf) if lf < self.limits.max_line => {
                let mut line = self.rbuf.split_to(lf + 1).freeze();
                let end = if line.ends_with(b"\r\n") { lf - 1 } else { lf };
                line.truncate(end);
                self.framer = Framer::default();
                Some(Ok(line))
            }
            Some(_) => Some(Err(())),
            None if self.rbuf.len() >= self.limits.max_line => Some(Err(())),
            None => None,
        }
    }

    /// Advances framing over the input read so far.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(d) = self.framer.discard.as_mut() {
                let lf = self.rbuf.iter().position(|&b| b == b'\n');
                let upto = lf.unwrap_or(self.rbuf.len());
                remember_tail(&mut d.tail, self.rbuf.get(..upto).unwrap_or_default());
                match lf {
                    None => {
                        self.rbuf.clear();
                        return None;
                    }
                    Some(lf) => {
                        self.rbuf.advance(lf + 1);
                        let tag = d.tag.take();
                        let literal_follows = literal_announcement(&d.tail).is_some();
                        self.framer = Framer::default();
                        return Some(Event::LineTooLong { tag, literal_follows });
                    }
                }
            }
            if let Some(end) = self.framer.literal_end {
                if self.rbuf.len() < end {
                    return None;
                }
                self.framer.literal_end = None;
                self.framer.line_start = end;
                self.framer.scan = end;
                continue;
            }
            let from = self.framer.scan;
            let Some(lf) = self.rbuf.get(from..).and_then(|r| r.iter().position(|&b| b == b'\n')).map(|p| p + from)
            else {
                self.framer.scan = self.rbuf.len();
                if self.rbuf.len() - self.framer.line_start > self.limits.max_line {
                    let tag = command_tag(&self.rbuf).map(str::to_owned);
                    let mut tail = Vec::new();
                    remember_tail(&mut tail, &self.rbuf);
                    self.rbuf.clear();
                    self.framer = Framer { discard: Some(Discard { tag, tail }), ..Framer::default() };
                    continue;
                }
                return None;
            };
            let line = self.rbuf.get(self.framer.line_start..=lf).unwrap_or_default();
            if line.len() > self.limits.max_line {
                let tag = command_tag(&self.rbuf).map(str::to_owned);
                let literal_follows = literal_announcement(line).is_some();
                self.rbuf.advance(lf + 1);
                self.framer = Framer::default();
                return Some(Event::LineTooLong { tag, literal_follows });
            }
            match literal_announcement(line) {
                None => {
                    let command = self.rbuf.split_to(lf + 1).freeze();
                    self.framer = Framer::default();
                    return Some(Event::Command(command));
                }
                Some((len, sync)) => {
                    let total = self.framer.literal_total.saturating_add(len);
                    let end = usize::try_from(len).ok().and_then(|l| l.checked_add(lf + 1));
                    match end {
                        Some(end) if total <= self.limits.max_literal => {
                            self.framer.literal_total = total;
                            self.framer.literal_end = Some(end);
                            self.rbuf.reserve(end.saturating_sub(self.rbuf.len()));
                            if sync {
                                return Some(Event::Continue);
                            }
                        }
                        _ => {
                            let tag = command_tag(&self.rbuf).map(str::to_owned);
                            self.rbuf.advance(lf + 1);
                            self.framer = Framer::default();
                            return Some(Event::LiteralTooBig { tag, sync });
                        }
                    }
                }
            }
        }
    }
}

fn remember_tail(tail: &mut Vec<u8>, more: &[u8]) {
    tail.extend_from_slice(more);
    if tail.len() > TAIL {
        tail.drain(..tail.len() - TAIL);
    }
}

/// `{n}` or `{n+}` (also `~{n}`, RFC 3516) right before the line end.
/// Returns the length and whether it is synchronising.
fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let spec = inner.get(open + 1..)?;
    let (digits, sync) = match spec.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (spec, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok().map(|n| (n, sync))
}

/// The tag of a command line, if it starts with a syntactically valid one
/// followed by a space (RFC 3501 §9 `tag`).
pub(crate) fn command_tag(input: &[u8]) -> Option<&str> {
    let end = input.iter().position(|&b| b == b' ')?;
    let tag = input.get(..end)?;
    let valid = !tag.is_empty() && tag.iter().all(|&b| (0x21..=0x7e).contains(&b) && !b"(){%*\"\\+".contains(&b));
    if valid { std::str::from_utf8(tag).ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_announcement(b"a LOGIN {5}\r\n"), Some((5, true)));
        assert_eq!(literal_announcement(b"a LOGIN {5+}\r\n"), Some((5, false)));
        assert_eq!(literal_announcement(b"a APPEND x ~{12}\r\n"), Some((12, true)));
        assert_eq!(literal_announcement(b"a LOGIN {}\r\n"), None);
        assert_eq!(literal_announcement(b"a LOGIN {x}\r\n"), None);
        assert_eq!(literal_announcement(b"a NOOP\r\n"), None);
        assert_eq!(literal_announcement(b"a {99999999999999999999}\r\n"), None);
    }

    #[test]
    fn tags() {
        assert_eq!(command_tag(b"a1 NOOP\r\n"), Some("a1"));
        assert_eq!(command_tag(b"a]1 NOOP\r\n"), Some("a]1"));
        assert_eq!(command_tag(b"a+1 NOOP\r\n"), None);
        assert_eq!(command_tag(b"* NOOP\r\n"), None);
        assert_eq!(command_tag(b"NOOP\r\n"), None);
        assert_eq!(command_tag(b" NOOP\r\n"), None);
    }
}
