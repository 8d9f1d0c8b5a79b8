//! Buffered I/O for one connection: plain TCP or TLS, the STARTTLS swap,
//! COMPRESS=DEFLATE (RFC 4978) on top of either, and framing of client
//! input into whole commands.
//!
//! Framing is sans-I/O: [`Conn::next_event`] looks only at bytes already
//! read, and [`Conn::fill`] is a single cancel-safe read. The session can
//! therefore race reading against the change bus and shutdown without ever
//! losing input. A command is handed out only when its line(s) and all its
//! literals are complete, so imap-codec always sees the whole command.
//!
//! Limits: the non-literal bytes of one command (all its lines together)
//! may be at most `max_line`, and it may carry at most [`MAX_LITERALS`]
//! literals; a literal, and all literals of one command together, at most
//! the `max_literal` the session passes for its state. An oversized literal
//! is refused before any of it is read, and no literal is allocated ahead
//! of its data.
//!
//! COMPRESS: once on, [`Conn::fill`] inflates at most [`READ_CHUNK`] bytes
//! per call into the same input buffer the framer reads, so the caps above
//! apply to the decompressed bytes and a small "zip bomb" costs no more than
//! the same bytes sent in the clear. Every [`Conn::flush`] ends with a
//! deflate sync flush: whatever the session sends (a tagged response, a
//! continuation request, an IDLE `EXISTS`) reaches the client whole, with no
//! further input needed (the stall that makes mox ship COMPRESS disabled).

use bytes::{Buf, Bytes, BytesMut};
use coimail_tls::TlsAcceptor;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Output is written out once this much is queued, so a large FETCH does
/// not hold the whole response in memory.
pub(crate) const WRITE_CHUNK: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// What an idle connection keeps for input and output: buffers that grew
/// past this (a big FETCH, an APPEND literal) are given back once empty, so
/// thousands of IDLE connections cost little (docs/BENCHMARKS.md).
const IDLE_BUF: usize = 4 * 1024;
/// A client that stops reading our output is dropped after this long, so a
/// stuck socket cannot hold a session (and shutdown) forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of an overlong line we remember, to see whether it announced a literal.
const TAIL: usize = 32;
/// Most literals one command may carry (MULTIAPPEND and SEARCH need a few).
pub(crate) const MAX_LITERALS: u32 = 64;
/// At most this much buffer is reserved when a literal is announced.
const LITERAL_RESERVE: usize = 64 * 1024;
/// Compressed output is written in pieces of at most this size.
const DEFLATE_OUT: usize = 32 * 1024;

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
    /// The command as a whole went over the limits after a literal (too many
    /// literals, or too many line bytes around them). The command is dropped
    /// and the rest of its input cannot be told from the next command.
    CommandTooLong { tag: Option<String> },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_line: usize,
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
    /// Literals accepted for this command so far.
    literals: u32,
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
    /// COMPRESS=DEFLATE state once the client turned it on (boxed: the
    /// compressor's tables are large, and most connections never use it).
    deflate: Option<Box<Deflate>>,
}

/// Raw DEFLATE (RFC 1951, no zlib header) both ways (RFC 4978 §3).
struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    /// Compressed input read from the socket and not inflated yet.
    input: BytesMut,
    /// Compressed output not written yet; never over [`DEFLATE_OUT`].
    output: Vec<u8>,
    /// The compressor may hold data back: the last write had no sync flush.
    unflushed: bool,
}

/// COMPRESS was asked for while it is already on.
#[derive(Debug)]
pub(crate) struct CompressionActive;

fn deflate_error(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Deflate {
    /// Inflates buffered input into `out`: at most [`READ_CHUNK`] bytes, so
    /// the framer sees (and caps) decompressed input as it does plain input.
    /// Returns how many bytes were added; 0 when more input is needed.
    fn inflate_into(&mut self, out: &mut BytesMut) -> io::Result<usize> {
        let start = out.len();
        out.resize(start + READ_CHUNK, 0);
        let mut produced = 0;
        let result = loop {
            if self.input.is_empty() || produced == READ_CHUNK {
                break Ok(());
            }
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let space = out.get_mut(start + produced..).unwrap_or_default();
            let status = match self.inflate.decompress(&self.input, space, FlushDecompress::None) {
                Ok(s) => s,
                Err(e) => break Err(deflate_error(e)),
            };
            let used = usize::try_from(self.inflate.total_in() - in0).unwrap_or(usize::MAX);
            let made = usize::try_from(self.inflate.total_out() - out0).unwrap_or(usize::MAX);
            self.input.advance(used.min(self.input.len()));
            produced += made;
            if status == Status::StreamEnd {
                // The client ended the DEFLATE stream: nothing can follow it.
                break Err(io::Error::new(io::ErrorKind::InvalidData, "compressed stream ended"));
            }
            if used == 0 && made == 0 {
                break Ok(()); // an incomplete block: wait for more input
            }
        };
        out.truncate(start + produced);
        result.map(|()| produced)
    }

    /// Compresses `data` and writes it. With `sync`, ends with a DEFLATE
    /// sync flush, so the peer can inflate everything sent so far.
    async fn write(&mut self, stream: &mut Stream, mut data: &[u8], sync: bool) -> io::Result<()> {
        let flush = if sync { FlushCompress::Sync } else { FlushCompress::None };
        loop {
            if self.output.len() == self.output.capacity() {
                stream.write_all(&self.output).await?;
                self.output.clear();
            }
            let before = self.deflate.total_in();
            self.deflate.compress_vec(data, &mut self.output, flush).map_err(deflate_error)?;
            let used = usize::try_from(self.deflate.total_in() - before).unwrap_or(usize::MAX);
            data = data.get(used..).unwrap_or_default();
            // zlib's rule: a flush is complete once a call leaves output space unused.
            if data.is_empty() && self.output.len() < self.output.capacity() {
                break;
            }
        }
        if !self.output.is_empty() {
            stream.write_all(&self.output).await?;
            self.output.clear();
        }
        self.unflushed = !sync;
        Ok(())
    }
}

impl Conn {
    pub(crate) fn new(stream: Stream, limits: Limits) -> Self {
        Conn {
            stream,
            rbuf: BytesMut::with_capacity(IDLE_BUF),
            wbuf: Vec::with_capacity(IDLE_BUF),
            framer: Framer::default(),
            limits,
            deflate: None,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The output buffer; responses are appended here and sent by [`Conn::flush`].
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Whether COMPRESS=DEFLATE is on.
    pub(crate) fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Reads once (with COMPRESS: until some input inflates, at most
    /// [`READ_CHUNK`] bytes of it). Cancel-safe: a dropped call loses no
    /// input, since the only await is one socket read into a buffer.
    /// End of stream is an `UnexpectedEof` error.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        // Inflating needs READ_CHUNK of room each time (see `Deflate::inflate_into`).
        let keep = if self.deflate.is_some() { READ_CHUNK } else { IDLE_BUF };
        if self.rbuf.is_empty() && self.rbuf.capacity() > keep {
            // Nothing pending: wait with a small buffer (an idle session
            // mostly reads `DONE` or short commands); it grows as data comes.
            self.rbuf = BytesMut::with_capacity(keep);
        } else {
            // Never read into a full buffer: a 0-byte read would look like EOF.
            self.rbuf.reserve(if self.rbuf.is_empty() { IDLE_BUF } else { READ_CHUNK });
        }
        let Some(z) = self.deflate.as_mut() else {
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            return if n == 0 { Err(io::ErrorKind::UnexpectedEof.into()) } else { Ok(()) };
        };
        loop {
            if z.inflate_into(&mut self.rbuf)? > 0 {
                return Ok(());
            }
            z.input.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut z.input).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Sends everything queued. With COMPRESS, this is where the DEFLATE
    /// sync flush happens: every flush, so nothing the session meant to send
    /// waits in the compressor.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.send(true).await?;
        if self.wbuf.capacity() > 4 * IDLE_BUF {
            // The end of a batch: a big response's buffer is not kept for the idle time after it.
            self.wbuf = Vec::with_capacity(IDLE_BUF);
        }
        Ok(())
    }

    /// Sends queued output once there is a lot of it (mid-response: no sync
    /// flush, the compressor may keep a little for the next block).
    pub(crate) async fn flush_if_large(&mut self) -> io::Result<()> {
        if self.wbuf.len() >= WRITE_CHUNK { self.send(false).await } else { Ok(()) }
    }

    async fn send(&mut self, sync: bool) -> io::Result<()> {
        let write = async {
            match self.deflate.as_mut() {
                Some(z) if !self.wbuf.is_empty() || (sync && z.unflushed) => {
                    z.write(&mut self.stream, &self.wbuf, sync).await?;
                    self.wbuf.clear();
                }
                None if !self.wbuf.is_empty() => {
                    self.stream.write_all(&self.wbuf).await?;
                    self.wbuf.clear();
                }
                Some(_) | None => {}
            }
            self.stream.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Turns COMPRESS=DEFLATE on (RFC 4978 §3). Queued output (the tagged
    /// OK) must have been flushed: it goes out uncompressed. Input the client
    /// sent after the COMPRESS command is already compressed, so it moves to
    /// the compressed side rather than being framed as it is.
    pub(crate) fn start_deflate(&mut self) -> Result<(), CompressionActive> {
        if self.deflate.is_some() {
            return Err(CompressionActive);
        }
        let mut input = BytesMut::new();
        input.extend_from_slice(&self.rbuf);
        self.rbuf.clear();
        self.framer = Framer::default();
        self.deflate = Some(Box::new(Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::default(), false),
            input,
            output: Vec::with_capacity(DEFLATE_OUT),
            unflushed: false,
        }));
        Ok(())
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

    /// Advances framing over the input read so far. `max_literal` caps each
    /// literal and all literals of one command together; the session passes
    /// a small one before login.
    pub(crate) fn next_event(&mut self, max_literal: u64) -> Option<Event> {
        loop {
            if self.framer.discard.is_some() {
                return self.discard_line();
            }
            if let Some(end) = self.framer.literal_end {
                if self.rbuf.len() < end {
                    return None;
                }
                self.framer.literal_end = None;
                self.framer.line_start = end;
                self.framer.scan = end;
            }
            let from = self.framer.scan;
            let Some(lf) = self.rbuf.get(from..).and_then(|r| r.iter().position(|&b| b == b'\n')).map(|p| p + from)
            else {
                self.framer.scan = self.rbuf.len();
                if self.line_bytes(self.rbuf.len()) > self.limits.max_line {
                    return self.overlong_partial_line();
                }
                return None;
            };
            if self.line_bytes(lf + 1) > self.limits.max_line {
                return Some(self.overlong_line(lf));
            }
            let line = self.rbuf.get(self.framer.line_start..=lf).unwrap_or_default();
            match literal_announcement(line) {
                None => {
                    let command = self.rbuf.split_to(lf + 1).freeze();
                    self.framer = Framer::default();
                    return Some(Event::Command(command));
                }
                Some((len, sync)) => {
                    if let Some(event) = self.literal(lf, len, sync, max_literal) {
                        return Some(event);
                    }
                }
            }
        }
    }

    /// Bytes of the current command up to `end` that are not literal data:
    /// all of it is capped by `max_line`, however many lines it spans.
    fn line_bytes(&self, end: usize) -> usize {
        let literal = usize::try_from(self.framer.literal_total).unwrap_or(usize::MAX);
        end.saturating_sub(literal)
    }

    /// A literal `{len}` announced by the line ending at `lf`: accept it, or
    /// refuse it (or the whole command). `None`: keep framing.
    fn literal(&mut self, lf: usize, len: u64, sync: bool, max_literal: u64) -> Option<Event> {
        if self.framer.literals >= MAX_LITERALS {
            return Some(self.command_too_long());
        }
        let total = self.framer.literal_total.saturating_add(len);
        let end = usize::try_from(len).ok().and_then(|l| l.checked_add(lf + 1));
        let Some(end) = end.filter(|_| total <= max_literal) else {
            let tag = command_tag(&self.rbuf).map(str::to_owned);
            self.rbuf.advance(lf + 1);
            self.framer = Framer::default();
            return Some(Event::LiteralTooBig { tag, sync });
        };
        self.framer.literal_total = total;
        self.framer.literals += 1;
        self.framer.literal_end = Some(end);
        // The buffer grows as data arrives; an announcement alone buys little memory.
        self.rbuf.reserve(end.saturating_sub(self.rbuf.len()).min(LITERAL_RESERVE));
        sync.then_some(Event::Continue)
    }

    /// Over `max_line` with no line end yet. In the first line of a command
    /// the rest of the line is thrown away as it arrives; after a literal the
    /// command is hopeless.
    fn overlong_partial_line(&mut self) -> Option<Event> {
        if self.framer.literals > 0 {
            return Some(self.command_too_long());
        }
        let tag = command_tag(&self.rbuf).map(str::to_owned);
        let mut tail = Vec::new();
        remember_tail(&mut tail, &self.rbuf);
        self.rbuf.clear();
        self.framer = Framer { discard: Some(Discard { tag, tail }), ..Framer::default() };
        None
    }

    /// A whole line that takes the command over `max_line`.
    fn overlong_line(&mut self, lf: usize) -> Event {
        if self.framer.literals > 0 {
            return self.command_too_long();
        }
        let tag = command_tag(&self.rbuf).map(str::to_owned);
        let line = self.rbuf.get(..=lf).unwrap_or_default();
        let literal_follows = literal_announcement(line).is_some();
        self.rbuf.advance(lf + 1);
        self.framer = Framer::default();
        Event::LineTooLong { tag, literal_follows }
    }

    fn command_too_long(&mut self) -> Event {
        let tag = command_tag(&self.rbuf).map(str::to_owned);
        self.rbuf.clear();
        self.framer = Framer::default();
        Event::CommandTooLong { tag }
    }

    /// Throws away input up to the end of an overlong line.
    fn discard_line(&mut self) -> Option<Event> {
        let d = self.framer.discard.as_mut()?;
        let lf = self.rbuf.iter().position(|&b| b == b'\n');
        let upto = lf.unwrap_or(self.rbuf.len());
        remember_tail(&mut d.tail, self.rbuf.get(..upto).unwrap_or_default());
        let Some(lf) = lf else {
            self.rbuf.clear();
            return None;
        };
        self.rbuf.advance(lf + 1);
        let tag = d.tag.take();
        let literal_follows = literal_announcement(&d.tail).is_some();
        self.framer = Framer::default();
        Some(Event::LineTooLong { tag, literal_follows })
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

/// Frames `input` arriving in pieces cut at `cuts` (offsets into `input`,
/// clamped), with COMPRESS=DEFLATE on when `compressed` (then `input` is
/// the raw DEFLATE stream, inflated as a session does). Returns the events
/// in order, or the inflate error that would end the session. The framer's
/// entry point for the property tests (`conn_props.rs`) and fuzz targets.
#[cfg(any(test, fuzzing))]
pub(crate) fn frame(
    input: &[u8],
    cuts: &[usize],
    compressed: bool,
    max_line: usize,
    max_literal: u64,
) -> io::Result<Vec<Event>> {
    let mut conn = Conn::new(Stream::Gone, Limits { max_line });
    if compressed {
        let _ = conn.start_deflate();
    }
    let mut events = Vec::new();
    let mut at = 0;
    for cut in cuts.iter().copied().chain([input.len()]) {
        let cut = cut.clamp(at, input.len());
        let piece = input.get(at..cut).unwrap_or_default();
        at = cut;
        let Some(z) = conn.deflate.as_mut() else {
            conn.rbuf.extend_from_slice(piece);
            events.extend(std::iter::from_fn(|| conn.next_event(max_literal)));
            continue;
        };
        z.input.extend_from_slice(piece);
        loop {
            let made = match conn.deflate.as_mut() {
                Some(z) => z.inflate_into(&mut conn.rbuf)?,
                None => 0,
            };
            events.extend(std::iter::from_fn(|| conn.next_event(max_literal)));
            if made == 0 {
                break;
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
#[path = "conn_props.rs"]
mod props;

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
    fn announced_literal_is_not_allocated_ahead() {
        let mut conn = Conn::new(Stream::Gone, Limits { max_line: 8192 });
        conn.rbuf.extend_from_slice(b"a1 APPEND INBOX {50000000}\r\n");
        assert_eq!(conn.next_event(64 << 20), Some(Event::Continue));
        assert!(conn.rbuf.capacity() <= 1 << 20, "reserved {} bytes", conn.rbuf.capacity());
        // The data still frames as it arrives.
        conn.rbuf.extend_from_slice(&vec![b'x'; 50_000_000]);
        conn.rbuf.extend_from_slice(b"\r\n");
        assert!(matches!(conn.next_event(64 << 20), Some(Event::Command(c)) if c.len() == 28 + 50_000_000 + 2));
    }

    #[test]
    fn literal_count_per_command_is_capped() {
        let mut conn = Conn::new(Stream::Gone, Limits { max_line: 8192 });
        conn.rbuf.extend_from_slice(b"a1 X {0+}\r\n");
        for _ in 1..MAX_LITERALS {
            conn.rbuf.extend_from_slice(b"{0+}\r\n");
        }
        assert_eq!(conn.next_event(1000), None, "{MAX_LITERALS} literals are fine");
        conn.rbuf.extend_from_slice(b"{0+}\r\n");
        assert_eq!(conn.next_event(1000), Some(Event::CommandTooLong { tag: Some("a1".into()) }));
    }

    /// A loopback socket pair: (server side as a [`Stream`], client side).
    async fn pair() -> (Stream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Stream::Plain(server), client)
    }

    #[tokio::test]
    async fn inflated_input_is_framed_and_capped_as_it_arrives() {
        let (stream, mut client) = pair().await;
        let mut conn = Conn::new(stream, Limits { max_line: 8192 });
        conn.start_deflate().unwrap();
        assert!(conn.start_deflate().is_err(), "a second COMPRESS is refused");
        // 16 MB that deflates to ~16 KB: an overlong line, then a command.
        let mut plain = b"a1 NOOP ".to_vec();
        plain.resize(16 << 20, b'x');
        plain.extend_from_slice(b"\r\na2 NOOP\r\n");
        let mut z = Compress::new(Compression::default(), false);
        let mut wire = Vec::with_capacity(1 << 20);
        z.compress_vec(&plain, &mut wire, FlushCompress::Sync).unwrap();
        assert!(wire.len() < 100_000, "{}", wire.len());
        let writer = tokio::spawn(async move {
            client.write_all(&wire).await.unwrap();
            client
        });
        let mut events = Vec::new();
        let mut peak = 0;
        while events.len() < 2 {
            conn.fill().await.unwrap();
            peak = peak.max(conn.rbuf.capacity());
            while let Some(e) = conn.next_event(1 << 20) {
                events.push(e);
            }
        }
        assert_eq!(events[0], Event::LineTooLong { tag: Some("a1".into()), literal_follows: false });
        assert_eq!(events[1], Event::Command(Bytes::from_static(b"a2 NOOP\r\n")));
        assert!(peak <= 4 * READ_CHUNK, "input buffer grew to {peak} bytes");
        // Output is sync-flushed: the peer inflates all of it without more data.
        let mut client = writer.await.unwrap();
        conn.out().extend_from_slice(b"a2 OK NOOP completed\r\n");
        conn.flush().await.unwrap();
        let mut got = vec![0; 256];
        let n = client.read(&mut got).await.unwrap();
        let mut d = Decompress::new(false);
        let mut text = Vec::with_capacity(256);
        d.decompress_vec(&got[..n], &mut text, FlushDecompress::Sync).unwrap();
        assert_eq!(text, b"a2 OK NOOP completed\r\n");
    }

    #[tokio::test]
    async fn grown_buffers_are_given_back_when_idle() {
        let (stream, mut client) = pair().await;
        let mut conn = Conn::new(stream, Limits { max_line: 8192 });
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            client.read_to_end(&mut sink).await.unwrap();
            sink.len()
        });
        // A big response: the buffer grows while it is built, and is not kept after the flush.
        conn.out().resize(600_000, b'x');
        conn.flush_if_large().await.unwrap();
        conn.out().extend_from_slice(b"\r\n");
        conn.flush().await.unwrap();
        assert!(conn.wbuf.capacity() <= IDLE_BUF, "{}", conn.wbuf.capacity());
        // A big literal came and went: waiting for input again uses a small buffer.
        conn.rbuf.reserve(1 << 20);
        assert!(conn.rbuf.capacity() >= 1 << 20);
        let fill = tokio::time::timeout(Duration::from_millis(20), conn.fill()).await;
        assert!(fill.is_err(), "no input yet");
        assert!(conn.rbuf.capacity() <= IDLE_BUF, "{}", conn.rbuf.capacity());
        conn.shutdown().await;
        drop(conn);
        assert_eq!(reader.await.unwrap(), 600_002);
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
