//! BDAT (RFC 3030 CHUNKING): the message in chunks of exactly the
//! announced size, with no dot-stuffing and no terminator.
//!
//! Invariants:
//! - The announced octets are always read, whatever the reply, so chunk
//!   data is never taken for commands (the concern behind SMTP smuggling).
//!   A chunk, or a message, larger than [`hang_up_after`] the limit ends the
//!   session instead.
//! - At most `max` octets of message are kept, the rest only counted: 552
//!   5.3.4 after the last chunk, like DATA. What is kept goes where DATA's
//!   goes (`body.rs`): a large message to a staged file as it arrives.
//! - A bare CR or LF anywhere, also split across chunks, gets 554 5.6.0
//!   after the last chunk: what we store or relay uses CRLF only.
//! - A refused chunk resets the transaction (RFC 3030 §2: the client sends
//!   no more chunks after an error reply); later chunks get 503.
//! - DATA is refused once BDAT has started, and the last chunk goes the
//!   same way as DATA's message (`Session::end_message`).

use crate::body::{MessageBuf, SPILL_AT, Spill};
use crate::data::{DataOutcome, NO_RECIPIENTS, hang_up_after};
use crate::io::{Conn, ConnError};
use crate::reply::{self, Enhanced, Reply};
use crate::session::Session;
use coimail_store::Store;

/// The message of a BDAT transaction so far. Dropping it (RSET, a refused
/// chunk, the client going away) removes what was staged on disk.
pub(crate) struct Chunks {
    id: String,
    now: i64,
    reader: ChunkReader,
    spill: Spill,
}

/// BDAT's message reader without I/O: the line-ending check across
/// chunks and the size limit, into a [`MessageBuf`].
#[derive(Debug)]
pub struct ChunkReader {
    out: MessageBuf,
    pending_cr: bool,
    bad_ending: bool,
}

impl ChunkReader {
    /// Output starting with `head` (the trace headers), keeping at most
    /// `max` octets of message, spilling past `spill_at` (`body.rs`).
    pub fn new(head: Vec<u8>, max: usize, spill_at: usize) -> ChunkReader {
        ChunkReader { out: MessageBuf::new(head, max, spill_at), pending_cr: false, bad_ending: false }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.pending_cr && b != b'\n' {
                self.bad_ending = true;
            }
            if b == b'\n' && !self.pending_cr {
                self.bad_ending = true;
            }
            self.pending_cr = b == b'\r';
        }
        self.out.push(bytes);
    }

    /// Octets of message seen so far, kept or not.
    pub fn total(&self) -> usize {
        self.out.total()
    }

    /// The output so far, to take its spilled tail.
    pub fn output(&mut self) -> &mut MessageBuf {
        &mut self.out
    }

    pub fn finish(self) -> DataOutcome {
        if self.bad_ending || self.pending_cr {
            DataOutcome::BareLineEnding
        } else if self.out.too_big() {
            DataOutcome::TooBig
        } else {
            DataOutcome::Message(self.out)
        }
    }
}

impl Chunks {
    fn new(id: String, now: i64, head: Vec<u8>, max: usize) -> Chunks {
        Chunks { id, now, reader: ChunkReader::new(head, max, SPILL_AT), spill: Spill::default() }
    }
}

/// Reads exactly `size` octets, into `chunks` if given (staging what
/// spills over into `store`).
async fn read_chunk(
    conn: &mut Conn,
    store: &Store,
    size: usize,
    mut chunks: Option<&mut Chunks>,
) -> Result<(), ConnError> {
    let mut left = size;
    while left > 0 {
        if conn.buffered().is_empty() {
            conn.fill().await?;
        }
        let avail = conn.buffered();
        let n = avail.len().min(left);
        if let Some(c) = chunks.as_deref_mut() {
            c.reader.feed(&avail[..n]);
            c.spill.drain(store, c.reader.output(), false).await;
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
        read_chunk(&mut self.conn, &self.ctx.store, size, chunks).await?;
        if let Some(e) = refusal {
            self.tx = None;
            self.conn.reply(e);
            return Ok(());
        }
        let total = self.tx.as_ref().and_then(|t| t.chunks.as_ref()).map_or(0, |c| c.reader.total());
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
        let Chunks { id, now, reader, spill } = chunks;
        let reply = self.end_message(tx, &id, now, reader.finish(), spill).await;
        self.conn.reply(reply);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunked(parts: &[&[u8]], max: usize) -> DataOutcome {
        let mut c = ChunkReader::new(b"H: 1\r\n".to_vec(), max, SPILL_AT);
        for p in parts {
            c.feed(p);
        }
        c.finish()
    }

    #[test]
    fn line_endings_are_checked_across_chunks() {
        assert_eq!(chunked(&[b"a\r", b"\nb\r\n"], 100).contents(), Some(b"H: 1\r\na\r\nb\r\n".to_vec()));
        assert_eq!(chunked(&[b"a\n"], 100), DataOutcome::BareLineEnding);
        assert_eq!(chunked(&[b"a\r", b"b\r\n"], 100), DataOutcome::BareLineEnding);
        assert_eq!(chunked(&[b"a\r"], 100), DataOutcome::BareLineEnding);
        assert_eq!(chunked(&[b"no final line end"], 100).contents(), Some(b"H: 1\r\nno final line end".to_vec()));
        // BDAT 0 LAST after the data: an empty chunk changes nothing.
        assert_eq!(chunked(&[b"a\r\n", b""], 100).contents(), Some(b"H: 1\r\na\r\n".to_vec()));
    }

    #[test]
    fn size_is_counted_and_the_buffer_bounded() {
        assert_eq!(chunked(&[b"0123\r\n", b"4567\r\n"], 11), DataOutcome::TooBig);
        let mut c = ChunkReader::new(Vec::new(), 1000, SPILL_AT);
        for _ in 0..100 {
            c.feed(&[b'x'; 100]);
        }
        assert!(c.output().capacity() <= 1000, "{}", c.output().capacity());
        assert_eq!(c.total(), 10_000);
    }

    proptest! {
        /// Any input in any chunks matches the reference (`reader_check.rs`).
        #[test]
        fn any_chunks_match_the_reference(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..6),
            max in 0usize..500,
            spill_at in 0usize..100,
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            crate::reader_check::check_bdat(&input, &cuts, max, spill_at);
        }

        /// However a message is cut into chunks, the reader keeps it
        /// byte for byte and calls it bad exactly when a CR or LF stands
        /// outside a CRLF pair.
        #[test]
        fn chunking_never_changes_the_outcome(
            message in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
            spill_at in 0usize..300,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(message.len())).collect();
            cuts.sort_unstable();
            let mut reader = ChunkReader::new(b"H\r\n".to_vec(), 1000, spill_at);
            let mut spilled = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([message.len()]) {
                reader.feed(&message[at..cut]);
                spilled.append(reader.output().tail());
                at = cut;
            }
            let bare = message.iter().enumerate().any(|(i, &b)| {
                (b == b'\r' && message.get(i + 1) != Some(&b'\n')) || (b == b'\n' && (i == 0 || message[i - 1] != b'\r'))
            });
            match reader.finish() {
                DataOutcome::BareLineEnding => prop_assert!(bare),
                DataOutcome::Message(out) => {
                    prop_assert!(!bare);
                    let mut got = out.contents();
                    got.extend_from_slice(&spilled);
                    prop_assert_eq!(&got[3..], &message[..]);
                }
                DataOutcome::TooBig => prop_assert!(false, "within the limit"),
            }
        }
    }
}
