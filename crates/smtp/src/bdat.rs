//! BDAT (RFC 3030 CHUNKING): the message in chunks of exactly the
//! announced size, with no dot-stuffing and no terminator.
//!
//! Invariants:
//! - The announced octets are always read, whatever the reply, so chunk
//!   data is never taken for commands (the concern behind SMTP smuggling).
//!   A chunk, or a message, larger than [`hang_up_after`] the limit ends the
//!   session instead.
//! - At most `max` octets of message are kept, the rest only counted: 552
//!   5.3.4 after the last chunk, like DATA.
//! - A bare CR or LF anywhere, also split across chunks, gets 554 5.6.0
//!   after the last chunk: what we store or relay uses CRLF only.
//! - A refused chunk resets the transaction (RFC 3030 §2: the client sends
//!   no more chunks after an error reply); later chunks get 503.
//! - DATA is refused once BDAT has started, and the last chunk goes the
//!   same way as DATA's message (`Session::end_message`).

use crate::data::{DataOutcome, NO_RECIPIENTS, hang_up_after};
use crate::io::{Conn, ConnError};
use crate::reply::{self, Enhanced, Reply};
use crate::session::Session;

/// The message of a BDAT transaction so far.
pub(crate) struct Chunks {
    id: String,
    now: i64,
    /// Octets of trace headers at the start of `buf`.
    head: usize,
    buf: Vec<u8>,
    max: usize,
    total: usize,
    pending_cr: bool,
    bad_ending: bool,
}

impl Chunks {
    fn new(id: String, now: i64, head: Vec<u8>, max: usize) -> Chunks {
        Chunks { id, now, head: head.len(), buf: head, max, total: 0, pending_cr: false, bad_ending: false }
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.pending_cr && b != b'\n' {
                self.bad_ending = true;
            }
            if b == b'\n' && !self.pending_cr {
                self.bad_ending = true;
            }
            self.pending_cr = b == b'\r';
        }
        self.total = self.total.saturating_add(bytes.len());
        let kept = self.buf.len() - self.head;
        let keep = bytes.len().min(self.max.saturating_sub(kept));
        if keep > 0 {
            // Grow by doubling, but never past the limit (as DATA does).
            let need = self.buf.len() + keep;
            if need > self.buf.capacity() {
                let target = need.max(self.buf.capacity().saturating_mul(2)).min(self.head + self.max);
                self.buf.reserve_exact(target - self.buf.len());
            }
            self.buf.extend_from_slice(&bytes[..keep]);
        }
    }

    fn finish(self) -> (String, i64, usize, DataOutcome) {
        let outcome = if self.bad_ending || self.pending_cr {
            DataOutcome::BareLineEnding
        } else if self.total > self.max {
            DataOutcome::TooBig
        } else {
            DataOutcome::Message(self.buf)
        };
        (self.id, self.now, self.head, outcome)
    }
}

/// Reads exactly `size` octets, into `chunks` if given.
async fn read_chunk(conn: &mut Conn, size: usize, mut chunks: Option<&mut Chunks>) -> Result<(), ConnError> {
    let mut left = size;
    while left > 0 {
        if conn.buffered().is_empty() {
            conn.fill().await?;
        }
        let avail = conn.buffered();
        let n = avail.len().min(left);
        if let Some(c) = chunks.as_deref_mut() {
            c.feed(&avail[..n]);
        }
        conn.consume(n);
        left -= n;
    }
    Ok(())
}

impl Session {
    /// `BDAT size [LAST]`.
    pub(crate) async fn cmd_bdat(&mut self, size: usize, last: bool) -> Result<(), ConnError> {
        let max = self.ctx.config.max_message_bytes;
        if size > hang_up_after(max) {
            self.conn.reply(reply::TOO_BIG);
            self.conn.close().await;
            return Err(ConnError::Eof);
        }
        let refusal = match self.tx.as_ref() {
            None => Some(reply::BAD_SEQUENCE),
            Some(tx) if tx.recipient_count() == 0 => Some(NO_RECIPIENTS),
            Some(_) => None,
        };
        if refusal.is_none() && self.tx.as_ref().is_some_and(|tx| tx.chunks.is_none()) {
            let started = self.begin_message().map(|(id, now, head)| Chunks::new(id, now, head, max));
            if let Some(tx) = self.tx.as_mut() {
                tx.chunks = started;
            }
        }
        let chunks = if refusal.is_none() { self.tx.as_mut().and_then(|t| t.chunks.as_mut()) } else { None };
        read_chunk(&mut self.conn, size, chunks).await?;
        if let Some(e) = refusal {
            self.tx = None;
            self.conn.reply(e);
            return Ok(());
        }
        let total = self.tx.as_ref().and_then(|t| t.chunks.as_ref()).map_or(0, |c| c.total);
        if total > hang_up_after(max) {
            self.conn.reply(reply::TOO_BIG);
            self.conn.close().await;
            return Err(ConnError::Eof);
        }
        if !last {
            self.conn.reply(Reply::new(250, Enhanced(2, 0, 0), format!("{size} octets received")));
            return Ok(());
        }
        let Some(mut tx) = self.tx.take() else { return Ok(()) };
        let Some(chunks) = tx.chunks.take() else { return Ok(()) };
        let (id, now, head, outcome) = chunks.finish();
        let reply = self.end_message(tx, &id, now, head, outcome).await;
        self.conn.reply(reply);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&[u8]], max: usize) -> DataOutcome {
        let mut c = Chunks::new("id".into(), 0, b"H: 1\r\n".to_vec(), max);
        for p in parts {
            c.feed(p);
        }
        c.finish().3
    }

    #[test]
    fn line_endings_are_checked_across_chunks() {
        assert_eq!(chunked(&[b"a\r", b"\nb\r\n"], 100), DataOutcome::Message(b"H: 1\r\na\r\nb\r\n".to_vec()));
        assert_eq!(chunked(&[b"a\n"], 100), DataOutcome::BareLineEnding);
        assert_eq!(chunked(&[b"a\r", b"b\r\n"], 100), DataOutcome::BareLineEnding);
        assert_eq!(chunked(&[b"a\r"], 100), DataOutcome::BareLineEnding);
        assert_eq!(chunked(&[b"no final line end"], 100), DataOutcome::Message(b"H: 1\r\nno final line end".to_vec()));
    }

    #[test]
    fn size_is_counted_and_the_buffer_bounded() {
        assert_eq!(chunked(&[b"0123\r\n", b"4567\r\n"], 11), DataOutcome::TooBig);
        let mut c = Chunks::new("id".into(), 0, Vec::new(), 1000);
        for _ in 0..100 {
            c.feed(&[b'x'; 100]);
        }
        assert!(c.buf.capacity() <= 1000, "{}", c.buf.capacity());
        assert_eq!(c.total, 10_000);
    }
}
