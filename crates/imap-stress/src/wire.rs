//! One IMAP connection over plain TCP: whole responses in, bytes out.
//!
//! A response is returned as one buffer: its lines and, after each line
//! ending in `{n}`, the n literal bytes, so `parse.rs` sees literals in
//! place. Every read has a timeout: a server that stops answering is a
//! finding, not a hang.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Largest literal accepted from the server (our messages are far smaller).
const MAX_LITERAL: usize = 64 << 20;
/// Longest response line (literals not counted).
const MAX_LINE: usize = 1 << 20;

pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "no response from the server in time")
}

impl Conn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr)).await.map_err(|_| timed_out())??;
        // Commands are small and each waits for its answer: Nagle would add
        // its delay to every round trip.
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Conn { reader: BufReader::with_capacity(64 << 10, r), writer: w, timeout })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(self.timeout, self.writer.write_all(bytes)).await.map_err(|_| timed_out())?
    }

    /// One whole response, literals included.
    pub async fn read(&mut self) -> io::Result<Vec<u8>> {
        tokio::time::timeout(self.timeout, self.read_inner()).await.map_err(|_| timed_out())?
    }

    async fn read_inner(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = (&mut self.reader).take(MAX_LINE as u64).read_until(b'\n', &mut out).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
            }
            if !out.ends_with(b"\n") {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "response line too long"));
            }
            match literal_len(&out[start..]) {
                Some(len) if len > MAX_LITERAL => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "literal too large"));
                }
                Some(len) => {
                    let at = out.len();
                    out.resize(at + len, 0);
                    self.reader.read_exact(&mut out[at..]).await?;
                }
                None => return Ok(out),
            }
        }
    }

    /// Whether the server has already sent something we have not read
    /// (looked at between commands, where nothing but EXISTS/FETCH may come).
    pub async fn has_pending(&mut self) -> io::Result<bool> {
        if !self.reader.buffer().is_empty() {
            return Ok(true);
        }
        // Polls the read once: data already in the socket is taken, nothing
        // is waited for. (A zero `tokio::time::timeout` would wait for the
        // timer's next millisecond tick whenever the socket is empty, and
        // add that to every command: the tester's own delay, not the server's.)
        let reader = &mut self.reader;
        let polled = std::future::poll_fn(|cx| match Pin::new(&mut *reader).poll_fill_buf(cx) {
            Poll::Ready(Ok(buf)) => Poll::Ready(Some(Ok(buf.is_empty()))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match polled {
            Some(Ok(true)) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
            Some(Ok(false)) => Ok(true),
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    }
}

/// `{n}` or `{n+}` at the end of a line.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let start = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[start + 1..]).ok()?.trim_end_matches('+').parse().ok()
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"a APPEND x {3+}\r\n"), Some(3));
        assert_eq!(literal_len(b"* OK {x}\r\n"), None);
        assert_eq!(literal_len(b"* OK done\r\n"), None);
        assert_eq!(quote("a\"b\\"), "\"a\\\"b\\\\\"");
    }

    /// Looking for unsolicited data between commands must not wait: with
    /// the clock paused, any timer it armed would move it.
    #[tokio::test(start_paused = true)]
    async fn has_pending_looks_without_waiting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut conn = Conn::connect(listener.local_addr().unwrap(), Duration::from_secs(5)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // Off the millisecond: a timer then rounds up to the next tick.
        tokio::time::advance(Duration::from_micros(300)).await;
        let before = tokio::time::Instant::now();
        for _ in 0..10 {
            assert!(!conn.has_pending().await.unwrap());
        }
        assert_eq!(tokio::time::Instant::now(), before, "has_pending waited for a timer");

        server.write_all(b"* 3 EXISTS\r\n").await.unwrap();
        let mut seen = false;
        for _ in 0..1000 {
            if conn.has_pending().await.unwrap() {
                seen = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(seen, "data the server sent was never noticed");
        assert_eq!(conn.read().await.unwrap(), b"* 3 EXISTS\r\n");
    }
}
