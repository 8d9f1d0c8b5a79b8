//! DATA (RFC 5321 §4.1.1.4): the message body decoder and the command.
//!
//! Invariants of [`DataDecoder`]:
//! - The data ends only at `CRLF . CRLF` (the first line may be `.CRLF`,
//!   since the DATA command ended in CRLF). `LF . LF`, `LF . CRLF`,
//!   `CR . CR` and the like do NOT end it: a server that ends data
//!   where another one does not is what SMTP smuggling exploits.
//! - A bare LF or bare CR anywhere in the data marks the message as bad. We
//!   read on to the real end, then reject the whole transaction with
//!   554 5.6.0 and reset it, so nothing hidden behind a bare line ending can
//!   be taken for a command or a second message.
//! - Dot-stuffing is undone (RFC 5321 §4.5.2).
//! - At most `max` octets of message are kept; beyond that the rest is only
//!   counted and the transaction gets 552 5.3.4 at the end. What is kept
//!   goes to a [`MessageBuf`] (`body.rs`): the start of the message in
//!   memory, the rest of a large one to a staged file on disk as it
//!   arrives, so a session holds a bounded amount of any message. Nothing
//!   is reserved from what the client declares (MAIL `SIZE=` is only
//!   compared with the limit, in `mail.rs`).
//! - The trace headers are written into the buffer before the first octet
//!   of data, so the message is never copied to prepend them. Like Postfix,
//!   the Received date is therefore the time DATA started.
//!
//! The end of every message (`end_message`, shared with BDAT LAST) runs the
//! submission checks on submission listeners and the inbound checks
//! (`inbound/`) on MX; the latter insert `Authentication-Results` in place
//! (a move within the in-memory prefix, no second copy).

use crate::body::{Body, MessageBuf, SPILL_AT, Spill};
use crate::delivery::{self, Envelope};
use crate::inbound::{self, Checker, Peer, Verdict};
use crate::io::ConnError;
use crate::received::{Trace, trace_headers};
use crate::reply::{self, Enhanced, Reply, SmtpError};
use crate::session::{Session, Transaction};
use crate::{SmtpListener, submission};
use coimail_chatmail::Direction;
use coimail_delivery::SpoolRecipient;
use coimail_store::StoreError;

pub(crate) const NO_RECIPIENTS: SmtpError = SmtpError::new(554, Enhanced(5, 5, 1), "no valid recipients");
/// A large message whose header section does not fit `body::MAX_HEADER_SECTION`.
const HEADER_TOO_BIG: SmtpError = SmtpError::new(552, Enhanced(5, 3, 4), "message header section too large");

/// What reading the data produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    Message(MessageBuf),
    TooBig,
    BareLineEnding,
}

impl DataOutcome {
    /// The message's octets (trace headers included) as far as they are
    /// held in memory, for tests and fuzzing.
    #[cfg(any(test, fuzzing))]
    pub fn contents(&self) -> Option<Vec<u8>> {
        match self {
            DataOutcome::Message(out) => Some(out.contents()),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct DataDecoder {
    /// The trace headers, then the message as decoded so far.
    out: MessageBuf,
    line_start: bool,
    pending_cr: bool,
    /// The current line began with a dot (removed) and nothing followed yet.
    dot_line: bool,
    bad_ending: bool,
}

impl DataDecoder {
    /// A decoder whose output starts with `head` (the trace headers) and
    /// keeps at most `max` octets of message after it, spilling past
    /// `spill_at` (`body.rs`).
    pub fn new(head: Vec<u8>, max: usize, spill_at: usize) -> Self {
        DataDecoder {
            out: MessageBuf::new(head, max, spill_at),
            line_start: true,
            pending_cr: false,
            dot_line: false,
            bad_ending: false,
        }
    }

    /// Octets of message seen so far, kept or not.
    pub fn total(&self) -> usize {
        self.out.total()
    }

    /// The output so far, to take its spilled tail.
    pub fn output(&mut self) -> &mut MessageBuf {
        &mut self.out
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.out.push(bytes);
    }

    /// Feeds input. Returns `Some(n)` when the end of data was found after
    /// `n` octets of `input` (the rest belongs to the next command), `None`
    /// when all of `input` was used and more is needed.
    pub fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    i += 1;
                    if self.dot_line {
                        return Some(i);
                    }
                    self.emit(b"\r\n");
                    self.line_start = true;
                    continue;
                }
                // CR not followed by LF.
                self.bad_ending = true;
                self.emit(b"\r");
                self.dot_line = false;
                self.line_start = false;
                continue; // handle `b` afresh
            }
            match b {
                b'\r' => {
                    self.pending_cr = true;
                    i += 1;
                }
                b'\n' => {
                    // Bare LF: not a line end (see the module doc).
                    self.bad_ending = true;
                    self.emit(b"\n");
                    self.dot_line = false;
                    self.line_start = false;
                    i += 1;
                }
                b'.' if self.line_start => {
                    self.dot_line = true;
                    self.line_start = false;
                    i += 1;
                }
                _ => {
                    self.dot_line = false;
                    self.line_start = false;
                    let run = input[i..].iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(input.len() - i);
                    let (start, end) = (i, i + run);
                    self.emit(&input[start..end]);
                    i = end;
                }
            }
        }
        None
    }

    pub fn finish(self) -> DataOutcome {
        if self.bad_ending {
            DataOutcome::BareLineEnding
        } else if self.out.too_big() {
            DataOutcome::TooBig
        } else {
            DataOutcome::Message(self.out)
        }
    }
}

/// Past this many octets beyond the limit we stop reading and hang up.
pub(crate) fn hang_up_after(max: usize) -> usize {
    max.saturating_mul(2).saturating_add(1 << 20)
}

impl Session {
    /// DATA: checks the state, reads the message and delivers it. Replies
    /// 250 only after the store has made the message durable.
    pub(crate) async fn cmd_data(&mut self) -> Result<(), ConnError> {
        let refusal = match self.tx.as_ref() {
            None => Some(reply::BAD_SEQUENCE),
            Some(tx) if tx.chunks.is_some() => Some(reply::BAD_SEQUENCE),
            Some(tx) if tx.recipient_count() == 0 => Some(NO_RECIPIENTS),
            // Below the disk reserve since RCPT: refuse before the client sends the message.
            Some(_) if self.ctx.store.check_space().is_err() => Some(reply::DISK_FULL),
            Some(_) => None,
        };
        if let Some(e) = refusal {
            self.conn.reply(e);
            return Ok(());
        }
        let Some((id, now, head)) = self.begin_message() else { return Ok(()) };
        self.conn.reply(Reply::plain(354, "start mail input; end with <CRLF>.<CRLF>"));
        let max = self.ctx.config.max_message_bytes;
        let mut decoder = DataDecoder::new(head, max, SPILL_AT);
        // Dropped with its temp file if the client goes away before the end.
        let mut spill = Spill::default();
        loop {
            if let Some(n) = decoder.feed(self.conn.buffered()) {
                self.conn.consume(n);
                break;
            }
            let all = self.conn.buffered().len();
            self.conn.consume(all);
            spill.drain(&self.ctx.store, decoder.output(), false).await;
            if decoder.total() > hang_up_after(max) {
                self.conn.reply(reply::TOO_BIG);
                self.conn.close().await;
                return Err(ConnError::Eof);
            }
            self.conn.fill().await?;
        }
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let reply = self.end_message(tx, &id, now, decoder.finish(), spill).await;
        self.conn.reply(reply);
        Ok(())
    }

    /// Starts reading a message for the current transaction: its id, the
    /// time, and the trace headers the message buffer starts with.
    pub(crate) fn begin_message(&mut self) -> Option<(String, i64, Vec<u8>)> {
        self.tx_count = self.tx_count.wrapping_add(1);
        let id = format!("{}.{}", self.id, self.tx_count);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let tx = self.tx.as_ref()?;
        let head = trace_headers(&self.trace(tx, &id, now));
        Some((id, now, head))
    }

    /// The reply to a complete message (DATA or the last BDAT chunk):
    /// refusals, submission checks, then delivery. `spill` holds what of
    /// the message is staged on disk (`body.rs`).
    pub(crate) async fn end_message(
        &mut self,
        tx: Transaction,
        id: &str,
        now: i64,
        outcome: DataOutcome,
        mut spill: Spill,
    ) -> Reply {
        match outcome {
            DataOutcome::TooBig => {
                tracing::info!(size = self.ctx.config.max_message_bytes, "message refused: too big");
                reply::TOO_BIG.into()
            }
            DataOutcome::BareLineEnding => {
                tracing::warn!("message refused: bare CR or LF in data");
                reply::BARE_LINE_ENDING_DATA.into()
            }
            DataOutcome::Message(mut out) => {
                spill.drain(&self.ctx.store, &mut out, true).await;
                let staged = match spill.finish() {
                    Ok(staged) => staged,
                    Err(StoreError::DiskFull) => return reply::DISK_FULL.into(),
                    Err(_) => return reply::LOCAL_ERROR.into(),
                };
                let mut body = out.into_body(staged);
                if !body.headers_in_memory() {
                    tracing::info!(id = %id, "message refused: header section too large");
                    return HEADER_TOO_BIG.into();
                }
                // A staged message the encryption check read back serves the
                // inbound checks too: read from its file once, not twice.
                let read_back = match self.encrypted_only(&tx, &body).await {
                    Ok(read_back) => read_back,
                    Err(e) => {
                        tracing::info!(id = %id, "message refused: not encrypted (chatmail)");
                        return e.into();
                    }
                };
                let mut quarantine = false;
                if self.kind != SmtpListener::Mx {
                    let complete =
                        submission::complete(&self.ctx, self.auth.as_ref(), &mut body.buf, body.head, id, now);
                    if let Err(e) = complete {
                        tracing::info!(code = e.code, "message refused by submission checks");
                        return e.into();
                    }
                } else if let Some(checker) = self.ctx.inbound.clone() {
                    match self.check_inbound(&checker, &tx, &mut body, read_back).await {
                        Verdict::Deliver => {}
                        Verdict::Quarantine => quarantine = true,
                        Verdict::Refuse(e) => {
                            tracing::info!(id = %id, code = e.code, "message refused by inbound checks");
                            return e.into();
                        }
                    }
                }
                self.deliver(tx, id, now, &mut body, quarantine).await
            }
        }
    }

    /// Chatmail's encrypted-only rule, when on: outgoing on submission,
    /// incoming on MX, on the client's message without our trace headers.
    /// The rule looks at the encrypted payload's packets, so a staged
    /// message is read whole (once; only in chatmail mode) and returned, for
    /// the inbound checks. Nothing is returned for a message in memory.
    async fn encrypted_only(&self, tx: &Transaction, body: &Body) -> Result<Option<Vec<u8>>, SmtpError> {
        let Some(policy) = &self.ctx.chatmail else { return Ok(None) };
        let message = body.whole(body.head).await.map_err(|e| {
            tracing::error!(error = %e, "reading a staged message for the encryption check failed");
            reply::LOCAL_ERROR
        })?;
        let direction = match self.kind {
            SmtpListener::Mx => Direction::Incoming,
            SmtpListener::Submission | SmtpListener::Submissions => Direction::Outgoing,
        };
        let recipients: Vec<&str> = tx
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .chain(tx.remote.iter().map(|r| r.address.as_str()))
            .collect();
        match policy.check(direction, &tx.sender, &recipients, &message) {
            Ok(_) if body.staged.is_some() => Ok(Some(message.into_owned())),
            Ok(_) => Ok(None),
            Err(refused) => Err(SmtpError::with_text(550, Enhanced(5, 7, 1), refused.to_string())),
        }
    }

    /// SPF/DKIM/ARC/DMARC/iprev on an MX message (`inbound/`), which gets
    /// our `Authentication-Results` unless refused. A staged message is read
    /// whole only when it has signatures to verify, unless `read_back` (the
    /// encryption check's read of it) already holds it.
    async fn check_inbound(
        &mut self,
        checker: &Checker,
        tx: &Transaction,
        body: &mut Body,
        read_back: Option<Vec<u8>>,
    ) -> Verdict {
        let whole = match body.header_section() {
            Some(header) if body.staged.is_some() && inbound::needs_body(header) => match read_back {
                Some(whole) => Some(whole),
                None => match body.whole(body.head).await {
                    Ok(whole) => Some(whole.into_owned()),
                    Err(e) => {
                        tracing::error!(error = %e, "reading a staged message for its checks failed");
                        return Verdict::Refuse(reply::LOCAL_ERROR);
                    }
                },
            },
            _ => None,
        };
        let directory = &self.ctx.directory;
        let own = |domain: &str| {
            directory.is_local_domain(domain).map_err(|e| {
                tracing::error!(error = %e, "directory lookup failed");
                reply::LOCAL_ERROR
            })
        };
        let helo = self.helo.as_ref().map_or("", |h| h.name.as_str());
        let peer = Peer { ip: self.peer.ip(), helo, mail_from: &tx.sender };
        inbound::apply(checker, &peer, &mut self.checks, &mut body.buf, body.head, whole.as_deref(), &own).await
    }

    /// The DSNs (RFC 3464) owed once the message is stored: `delivered` for
    /// local recipients that asked for NOTIFY=SUCCESS (authenticated
    /// sessions only: see `mail.rs`), `failed` for those left out for their
    /// quota. The message is stored already: a failure here is logged, and
    /// the client still hears 250.
    async fn report(&self, tx: &Transaction, over_quota: &[SpoolRecipient], message: &[u8], now: i64) {
        let ctx = &self.ctx;
        let to = coimail_delivery::Reporter {
            store: &ctx.store,
            directory: &ctx.directory,
            queue: ctx.queue.as_ref(),
            limit: &ctx.reports,
            hostname: &ctx.config.hostname,
        };
        let succeeded: Vec<SpoolRecipient> = tx
            .recipients
            .iter()
            .filter(|r| self.auth.is_some() && r.dsn.notify.is_some_and(|n| n.success))
            .filter(|r| !over_quota.iter().any(|o| o.address == r.dsn.address))
            .map(|r| r.dsn.clone())
            .collect();
        let report = |recipients| coimail_delivery::Delivered {
            sender: &tx.sender,
            env_id: tx.env_id.as_deref(),
            recipients,
            message,
            now,
        };
        if !succeeded.is_empty() {
            let d = report(&succeeded);
            if let Err(e) = coimail_delivery::report_delivered(&to, &d).await {
                tracing::error!(error = %e, "delivery report failed");
            }
        }
        if !over_quota.is_empty() {
            let d = report(over_quota);
            if let Err(e) = coimail_delivery::report_failed(&to, &d).await {
                tracing::error!(error = %e, "bounce for recipients over quota failed");
            }
        }
    }

    /// What the `Received` header says about this session and `tx`.
    fn trace<'a>(&'a self, tx: &'a Transaction, id: &'a str, now_unix: i64) -> Trace<'a> {
        Trace {
            helo: self.helo.as_ref().map_or("unknown", |h| h.name.as_str()),
            esmtp: self.helo.as_ref().is_some_and(|h| h.esmtp),
            peer_ip: (self.kind == SmtpListener::Mx).then(|| self.peer.ip()),
            by: &self.ctx.config.hostname,
            tls: self.tls.as_ref(),
            authenticated: self.auth.is_some(),
            smtputf8: tx.smtputf8,
            id,
            for_rcpt: tx.only_recipient(),
            sender: &tx.sender,
            now_unix,
        }
    }

    /// Stores and queues the message (trace headers included); the reply to send.
    async fn deliver(&mut self, tx: Transaction, id: &str, now: i64, body: &mut Body, quarantine: bool) -> Reply {
        // A submitted message takes one of its user's hourly slots (`rate.rs`).
        let slot = match (self.kind, &self.auth) {
            (SmtpListener::Mx, _) | (_, None) => None,
            (_, Some(account)) => {
                let at = std::time::Instant::now();
                if !self.ctx.rate.try_take(account.id, at) {
                    tracing::info!(id = %id, "message refused: rate limit");
                    return reply::RATE_LIMITED.into();
                }
                Some((account.id, at))
            }
        };
        let envelope = Envelope {
            listener: self.kind,
            sender: &tx.sender,
            recipients: &tx.recipients,
            remote: &tx.remote,
            env_id: tx.env_id.as_deref(),
            ret: tx.ret,
            authenticated: self.auth.as_ref(),
            quarantine,
        };
        match delivery::accept(&self.ctx, &envelope, body, now).await {
            Ok(done) => {
                tracing::info!(id = %id, from = %coimail_directory::LogSafe(&tx.sender), recipients = tx.recipient_count(),
                    copies = done.copies, queue_id = ?done.queue_id, over_quota = done.over_quota.len(),
                    size = body.len(), staged = body.staged.is_some(), quarantine, "accepted");
                self.record_mx(&tx);
                // Reports return the header only, which is in memory.
                self.report(&tx, &done.over_quota, &body.buf, now).await;
                let what = if done.queue_id.is_some() { "queued" } else { "delivered" };
                Reply::new(250, Enhanced(2, 0, 0), format!("OK, {what} as {id}"))
            }
            Err(e) => {
                if let Some((account, at)) = slot {
                    self.ctx.rate.give_back(account, at);
                }
                e.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a test compares: the message's bytes, or why there is none.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Got {
        Message(Vec<u8>),
        TooBig,
        BareLineEnding,
    }

    fn got(outcome: DataOutcome) -> Got {
        match outcome {
            DataOutcome::Message(m) => Got::Message(m.contents()),
            DataOutcome::TooBig => Got::TooBig,
            DataOutcome::BareLineEnding => Got::BareLineEnding,
        }
    }

    fn decode(input: &[u8], max: usize) -> (Option<usize>, Got) {
        let mut d = DataDecoder::new(Vec::new(), max, SPILL_AT);
        let end = d.feed(input);
        (end, got(d.finish()))
    }

    fn decode_split(input: &[u8]) -> (Option<usize>, Got) {
        // One byte at a time: the decoder must not depend on read boundaries.
        let mut d = DataDecoder::new(Vec::new(), 1000, SPILL_AT);
        for (i, b) in input.iter().enumerate() {
            if d.feed(std::slice::from_ref(b)).is_some() {
                return (Some(i + 1), got(d.finish()));
            }
        }
        (None, got(d.finish()))
    }

    #[test]
    fn decodes_terminator_and_dot_stuffing() {
        let cases: &[(&[u8], Option<usize>, Got)] = &[
            (b".\r\n", Some(3), Got::Message(vec![])),
            (b"a\r\n.\r\nQUIT\r\n", Some(6), Got::Message(b"a\r\n".to_vec())),
            (b"..x\r\n.\r\n", Some(8), Got::Message(b".x\r\n".to_vec())),
            (b"a\r\n..\r\n.\r\n", Some(10), Got::Message(b"a\r\n.\r\n".to_vec())),
            (b"a.b\r\n.\r\n", Some(8), Got::Message(b"a.b\r\n".to_vec())),
        ];
        for (input, end, outcome) in cases {
            assert_eq!(&decode(input, 1000), &(*end, outcome.clone()), "{input:?}");
            assert_eq!(&decode_split(input), &(*end, outcome.clone()), "{input:?} split");
        }
    }

    #[test]
    fn bare_line_endings_never_end_data_and_are_rejected() {
        for input in [
            &b"a\n.\nb\r\n.\r\n"[..],
            b"a\n.\r\nb\r\n.\r\n",
            b"a\r.\r\nb\r\n.\r\n",
            b"a\r\n.\nb\r\n.\r\n",
            b"a\rb\r\n.\r\n",
        ] {
            let (end, outcome) = decode(input, 1000);
            assert_eq!(end, Some(input.len()), "{input:?} must end only at the final CRLF.CRLF");
            assert_eq!(outcome, Got::BareLineEnding, "{input:?}");
            assert_eq!(decode_split(input), (Some(input.len()), Got::BareLineEnding));
        }
        assert_eq!(decode(b"a\n.\n", 1000), (None, Got::BareLineEnding));
    }

    #[test]
    fn size_is_enforced_after_reading_to_the_end() {
        let (end, outcome) = decode(b"0123456789\r\n.\r\n", 5);
        assert_eq!((end, outcome), (Some(15), Got::TooBig));
        assert_eq!(decode(b"0123\r\n.\r\n", 6), (Some(9), Got::Message(b"0123\r\n".to_vec())));
    }

    #[test]
    fn head_comes_first_and_memory_stays_bounded() {
        let head = b"Received: x\r\n".to_vec();
        let max = 100_000;
        let line = format!("{}\r\n", "y".repeat(998));
        let body = format!("Subject: t\r\n\r\n{}", line.repeat((max - 14) / line.len()));
        // Within the limit, spilling past 10 000 octets: the prefix and
        // the spilled tail are the message, after the head; taking the tail
        // as a session does keeps memory near the spill point.
        let mut d = DataDecoder::new(head.clone(), max, 10_000);
        let mut spilled = Vec::new();
        for chunk in body.as_bytes().chunks(16 * 1024) {
            assert_eq!(d.feed(chunk), None);
            spilled.append(d.output().tail());
            assert!(d.output().capacity() <= 3 * (10_000 + 16 * 1024), "{}", d.output().capacity());
        }
        assert_eq!(d.feed(b".\r\n"), Some(3));
        let mut all = d.finish().contents().unwrap();
        all.extend_from_slice(&spilled);
        let mut want = head.clone();
        want.extend_from_slice(body.as_bytes());
        assert_eq!(all, want);

        // Far over the limit: counted, not kept.
        let mut d = DataDecoder::new(head.clone(), max, usize::MAX);
        for _ in 0..40 {
            assert_eq!(d.feed(body.as_bytes()), None);
        }
        assert_eq!(d.feed(b".\r\n"), Some(3));
        assert!(d.output().capacity() <= head.len() + max, "capacity {} over the limit", d.output().capacity());
        assert_eq!(d.total(), body.len() * 40);
        assert_eq!(d.finish(), DataOutcome::TooBig);

        // A tiny message allocates little, whatever the limit.
        let mut d = DataDecoder::new(head.clone(), usize::MAX / 2, SPILL_AT);
        assert_eq!(d.feed(b"hi\r\n.\r\n"), Some(7));
        assert!(d.output().capacity() <= 8 * 1024 + head.len());
    }

    /// RFC 5321 §4.5.2 dot-stuffing of a message that ends in CRLF, plus the terminator.
    fn stuff(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() + 8);
        let mut line_start = true;
        for &b in message {
            if line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            line_start = b == b'\n';
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest! {
        /// Unstuffing inverts stuffing, whatever the reads look like, and
        /// the data ends exactly after the terminator.
        #[test]
        fn unstuffing_inverts_stuffing(
            lines in proptest::collection::vec(proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'a'), any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n')],
                0..20), 0..20),
            cuts in proptest::collection::vec(0usize..500, 0..6),
            spill_at in 0usize..200,
        ) {
            let message: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain(*b"\r\n")).collect();
            let mut wire = stuff(&message);
            let end = wire.len();
            wire.extend_from_slice(b"QUIT\r\n");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
            cuts.sort_unstable();
            let mut d = DataDecoder::new(Vec::new(), 10_000, spill_at);
            let mut spilled = Vec::new();
            let mut at = 0;
            let mut ended = None;
            for cut in cuts.into_iter().chain([wire.len()]) {
                let end = d.feed(&wire[at..cut]);
                spilled.append(d.output().tail());
                if let Some(n) = end {
                    ended = Some(at + n);
                    break;
                }
                at = cut;
            }
            prop_assert_eq!(ended, Some(end));
            let mut got = d.finish().contents().unwrap_or_default();
            got.extend_from_slice(&spilled);
            prop_assert_eq!(got, message);
        }

        /// Any input in any pieces matches the reference reader (`reader_check.rs`):
        /// where the data ends, unstuffing, bare line endings, the limit.
        #[test]
        fn any_input_matches_the_reference(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..6),
            max in 0usize..300,
            spill_at in 0usize..100,
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            crate::reader_check::check_data(&input, &cuts, max, spill_at);
        }

        /// The same with well-formed lines, so the data mostly ends and is kept.
        #[test]
        fn line_input_matches_the_reference(
            lines in proptest::collection::vec(prop_oneof![
                Just(b".\r\n".to_vec()), Just(b"..\r\n".to_vec()), Just(b".x\r\n".to_vec()),
                Just(b"\r\n".to_vec()), Just(b"abc\r\n".to_vec()), Just(b"a\n".to_vec()), Just(b"\r".to_vec()),
            ], 0..30),
            cuts in proptest::collection::vec(0usize..120, 0..6),
            max in 0usize..100,
            spill_at in 0usize..50,
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            crate::reader_check::check_data(&lines.concat(), &cuts, max, spill_at);
        }
    }
}
