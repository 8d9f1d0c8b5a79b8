//! A message as it arrives (DATA or BDAT), with bounded memory per session.
//!
//! [`MessageBuf`] takes the decoded octets. Our trace headers and the start
//! of the message stay in memory (the *prefix*); once the prefix holds
//! [`SPILL_AT`] octets and the whole header section, further octets go to
//! its *tail*, which the session writes to a staged file in the store
//! ([`Spill`], `coimail_store::StagedBody`) whenever [`WRITE_CHUNK`] octets
//! are waiting. So a session holds about `SPILL_AT + WRITE_CHUNK` octets of
//! a large message, never the message; a small one never touches the disk.
//!
//! The header section is kept whole in the prefix because everything that
//! reads or edits a message before it is stored looks at headers only
//! (`submission.rs`, `inbound/` edits, COI filing, DSN headers); only DKIM
//! and ARC verification and the outbound queue's DKIM signing read the
//! whole message, once, from the file ([`Body::whole`]). A header section
//! longer than [`MAX_HEADER_SECTION`] is not kept whole: such a message is
//! refused when it is spilled (Exim's `header_maxsize` is the same 1 MiB).
//!
//! Invariants of [`MessageBuf`] (fuzzed and property-tested):
//! - prefix ++ every tail taken == the first `max` octets pushed;
//! - the prefix's capacity stays within `head + max` and, once spilling,
//!   the prefix no longer grows.

use coimail_store::{StagedBody, Store, StoreError};

/// In-memory octets of message before the rest is staged on disk.
pub const SPILL_AT: usize = 256 * 1024;
/// Staged octets are written in chunks of about this size.
pub const WRITE_CHUNK: usize = 256 * 1024;
/// The longest header section a spilled message may have.
pub const MAX_HEADER_SECTION: usize = 1 << 20;

/// The first allocation for message data; grows by doubling from here.
const INITIAL_CAPACITY: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuf {
    /// Trace headers (`head` octets), then the message's prefix.
    buf: Vec<u8>,
    head: usize,
    max: usize,
    spill_at: usize,
    /// Message octets seen, kept or not.
    total: usize,
    /// Message octets kept (prefix and tail, written or not), at most `max`.
    kept: usize,
    /// Where the header section ends in the message (after its blank line).
    header_end: Option<usize>,
    /// Where the search for that blank line goes on.
    scan: usize,
    spilling: bool,
    /// Octets after the prefix not yet taken by the caller.
    tail: Vec<u8>,
}

impl MessageBuf {
    /// A message after `head` (our trace headers) keeping at most `max`
    /// octets, of which the first `spill_at` or so in memory.
    pub fn new(head: Vec<u8>, max: usize, spill_at: usize) -> Self {
        MessageBuf {
            head: head.len(),
            buf: head,
            max,
            spill_at,
            total: 0,
            kept: 0,
            header_end: None,
            scan: 0,
            spilling: false,
            tail: Vec::new(),
        }
    }

    /// Octets of message seen so far, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// More than `max` octets were seen.
    pub fn too_big(&self) -> bool {
        self.total > self.max
    }

    /// Whether octets past the prefix go to the tail.
    #[cfg(any(test, fuzzing))]
    pub fn spilling(&self) -> bool {
        self.spilling
    }

    /// The message octets in memory (after the trace headers).
    #[cfg(any(test, fuzzing))]
    pub fn prefix(&self) -> &[u8] {
        self.buf.get(self.head..).unwrap_or_default()
    }

    /// Octets past the prefix not yet written; write them and clear it.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    /// Trace headers, prefix and the tail not yet taken, as one buffer (tests, fuzzing).
    #[cfg(any(test, fuzzing))]
    pub fn contents(&self) -> Vec<u8> {
        let mut all = self.buf.clone();
        all.extend_from_slice(&self.tail);
        all
    }

    /// Capacity of the in-memory buffers, for tests of the memory bound.
    #[cfg(any(test, fuzzing))]
    pub fn capacity(&self) -> usize {
        self.buf.capacity() + self.tail.capacity()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len());
        let keep = bytes.len().min(self.max.saturating_sub(self.kept));
        let Some(bytes) = bytes.get(..keep).filter(|b| !b.is_empty()) else { return };
        self.kept += keep;
        if self.spilling {
            self.tail.extend_from_slice(bytes);
            return;
        }
        self.grow_for(keep);
        self.buf.extend_from_slice(bytes);
        self.find_header_end();
        let prefix = self.buf.len() - self.head;
        if prefix >= self.spill_at && (self.header_end.is_some() || prefix >= MAX_HEADER_SECTION) {
            self.spilling = true;
        }
    }

    /// Makes room for `more` octets, doubling like `Vec` does but never past
    /// `head + max` (plain `Vec` growth could reach twice the limit).
    fn grow_for(&mut self, more: usize) {
        let need = self.buf.len() + more;
        if need <= self.buf.capacity() {
            return;
        }
        let ceiling = (self.head + self.max).max(need);
        let target = need.max(self.buf.capacity().saturating_mul(2)).max(INITIAL_CAPACITY).min(ceiling);
        self.buf.reserve_exact(target - self.buf.len());
    }

    /// RFC 5322 §2.1: the header section ends at the first empty line.
    fn find_header_end(&mut self) {
        if self.header_end.is_some() {
            return;
        }
        let message = self.buf.get(self.head..).unwrap_or_default();
        if message.starts_with(b"\r\n") {
            self.header_end = Some(2);
            return;
        }
        let from = self.scan.saturating_sub(3);
        match message.get(from..).and_then(|m| m.windows(4).position(|w| w == b"\r\n\r\n")) {
            Some(i) => self.header_end = Some(from + i + 4),
            None => self.scan = message.len(),
        }
    }

    /// The prefix, with the staged rest (if any), for the end of the message.
    pub(crate) fn into_body(self, staged: Option<StagedBody>) -> Body {
        Body { buf: self.buf, head: self.head, header_end: self.header_end, staged }
    }
}

/// Writes what a [`MessageBuf`] spills to a staged file. A failure (disk
/// full) is kept for the reply at the end of the data; the rest of the
/// message is then only read and dropped.
#[derive(Default)]
pub(crate) struct Spill {
    staged: Option<StagedBody>,
    failed: Option<StoreError>,
}

impl Spill {
    /// Writes the tail once a chunk's worth waits, or all of it when `last`.
    pub async fn drain(&mut self, store: &Store, msg: &mut MessageBuf, last: bool) {
        let waiting = msg.tail().len();
        if waiting == 0 || (waiting < WRITE_CHUNK && !last) {
            return;
        }
        if self.failed.is_some() {
            msg.tail.clear();
            return;
        }
        if self.staged.is_none() {
            match store.stage(msg.buf.len()).await {
                Ok(s) => self.staged = Some(s),
                Err(e) => {
                    self.fail(e);
                    msg.tail.clear();
                    return;
                }
            }
        }
        if let Some(staged) = self.staged.as_mut()
            && let Err(e) = staged.append(&mut msg.tail).await
        {
            msg.tail.clear();
            self.fail(e);
        }
    }

    fn fail(&mut self, e: StoreError) {
        tracing::error!(error = %e, "staging a large message failed; reading on to the end of it");
        self.staged = None;
        self.failed = Some(e);
    }

    /// The staged file, or the error that stopped staging.
    pub fn finish(self) -> Result<Option<StagedBody>, StoreError> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.staged),
        }
    }
}

/// A complete message: our trace headers and the message's prefix in
/// memory, the rest (of a large one) in a staged file.
pub(crate) struct Body {
    /// Trace headers, then the prefix; edited in place before storing.
    pub buf: Vec<u8>,
    pub head: usize,
    header_end: Option<usize>,
    pub staged: Option<StagedBody>,
}

impl Body {
    /// Octets of the whole message, trace headers included.
    pub fn len(&self) -> usize {
        let staged = self.staged.as_ref().map_or(0, |s| usize::try_from(s.len()).unwrap_or(usize::MAX));
        self.buf.len().saturating_add(staged)
    }

    /// Whether the whole header section is in `buf` (always when nothing is staged).
    pub fn headers_in_memory(&self) -> bool {
        self.staged.is_none() || self.header_end.is_some()
    }

    /// The client's message (without our trace headers) as far as it is in memory.
    pub fn message_start(&self) -> &[u8] {
        self.buf.get(self.head..).unwrap_or_default()
    }

    /// The client's header section, when it is in memory.
    pub fn header_section(&self) -> Option<&[u8]> {
        let message = self.message_start();
        match (self.header_end, &self.staged) {
            (Some(end), _) => message.get(..end),
            (None, None) => Some(message),
            (None, Some(_)) => None,
        }
    }

    /// The whole message from `buf[from..]` on, read from the staged file
    /// when there is one: one message-sized allocation, for checks that
    /// hash the body. Borrowed when nothing is staged.
    pub async fn whole(&self, from: usize) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
        let start = self.buf.get(from..).unwrap_or_default();
        let Some(staged) = &self.staged else { return Ok(start.into()) };
        let mut out = Vec::with_capacity(self.len().saturating_sub(from));
        out.extend_from_slice(start);
        staged.read_into(&mut out).await?;
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `parts`, taking the tail after each like a session would.
    fn run(head: &[u8], parts: &[Vec<u8>], max: usize, spill_at: usize) -> (MessageBuf, Vec<u8>) {
        let mut m = MessageBuf::new(head.to_vec(), max, spill_at);
        let mut spilled = Vec::new();
        for p in parts {
            m.push(p);
            spilled.append(m.tail());
        }
        (m, spilled)
    }

    #[test]
    fn small_messages_stay_in_memory_and_large_ones_spill_after_the_header() {
        let (m, spilled) = run(b"R: 1\r\n", &[b"Subject: x\r\n\r\nhello\r\n".to_vec()], 1000, 16);
        assert!(m.spilling(), "past spill_at with the header section whole");
        assert!(spilled.is_empty(), "the push that crossed spill_at stays in the prefix");
        let (m, _) = run(b"", &[b"Subject: x\r\n\r\nhi\r\n".to_vec()], 1000, 100);
        assert!(!m.spilling());
        let body = m.into_body(None);
        assert_eq!(body.header_section(), Some(&b"Subject: x\r\n\r\n"[..]));
        // A header section longer than spill_at keeps the prefix growing until it ends.
        let long = format!("X: {}\r\n", "a".repeat(50)).repeat(10);
        let parts: Vec<Vec<u8>> = long.as_bytes().chunks(7).map(<[u8]>::to_vec).chain([b"\r\nbody".to_vec()]).collect();
        let (m, spilled) = run(b"", &parts, 10_000, 16);
        assert_eq!(m.prefix(), format!("{long}\r\nbody").as_bytes());
        assert!(spilled.is_empty());
        let body = m.into_body(None);
        assert_eq!(body.header_section(), Some(format!("{long}\r\n").as_bytes()));
    }

    proptest! {
        /// prefix ++ tails == the first `max` octets, whatever the pieces,
        /// and the header section is found where a whole-buffer search finds it.
        #[test]
        fn prefix_and_tail_are_the_message(
            parts in proptest::collection::vec(proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a')], 0..40), 0..40),
            max in 0usize..600,
            spill_at in 0usize..200,
        ) {
            let (m, spilled) = run(b"H\r\n", &parts, max, spill_at);
            let all: Vec<u8> = parts.concat();
            let kept = &all[..all.len().min(max)];
            let mut got = m.prefix().to_vec();
            got.extend_from_slice(&spilled);
            prop_assert_eq!(&got[..], kept);
            prop_assert_eq!(m.total(), all.len());
            prop_assert_eq!(m.too_big(), all.len() > max);
            prop_assert!(m.buf.capacity() <= 3 + max);
            let prefix = m.prefix().to_vec();
            let want_end = if prefix.starts_with(b"\r\n") { Some(2) }
                else { prefix.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) };
            prop_assert_eq!(m.header_end, want_end);
        }
    }
}
