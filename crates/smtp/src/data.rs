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
//!   counted and the transaction gets 552 5.3.4 at the end. The buffer's
//!   capacity, not just its length, stays within the trace headers plus
//!   `max`, and nothing is reserved from what the client declares (MAIL
//!   `SIZE=` is only compared with the limit, in `mail.rs`).
//! - The trace headers are written into the buffer before the first octet
//!   of data, so the message is never copied to prepend them (one
//!   message-sized allocation per transaction). Like Postfix, the Received
//!   date is therefore the time DATA started.
//!
//! The end of every message (`end_message`, shared with BDAT LAST) runs the
//! submission checks on submission listeners and the inbound checks
//! (`inbound/`) on MX; the latter insert `Authentication-Results` in place
//! (one move of the buffer's tail, no second copy).

use crate::delivery::{self, Envelope};
use crate::inbound::{self, Checker, Peer, Verdict};
use crate::io::ConnError;
use crate::received::{Trace, trace_headers};
use crate::reply::{self, Enhanced, Reply, SmtpError};
use crate::session::{Session, Transaction};
use crate::{SmtpListener, submission};
use coimail_chatmail::Direction;
use coimail_delivery::SpoolRecipient;

pub(crate) const NO_RECIPIENTS: SmtpError = SmtpError::new(554, Enhanced(5, 5, 1), "no valid recipients");

/// What reading the data produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    Message(Vec<u8>),
    TooBig,
    BareLineEnding,
}

/// The first allocation for message data; grows by doubling from here.
const INITIAL_CAPACITY: usize = 8 * 1024;

#[derive(Debug)]
pub struct DataDecoder {
    /// The trace headers (`head` octets), then the message as decoded so far.
    buf: Vec<u8>,
    head: usize,
    max: usize,
    total: usize,
    line_start: bool,
    pending_cr: bool,
    /// The current line began with a dot (removed) and nothing followed yet.
    dot_line: bool,
    bad_ending: bool,
}

impl DataDecoder {
    /// A decoder whose output starts with `head` (the trace headers) and
    /// keeps at most `max` octets of message after it.
    pub fn new(head: Vec<u8>, max: usize) -> Self {
        DataDecoder {
            head: head.len(),
            buf: head,
            max,
            total: 0,
            line_start: true,
            pending_cr: false,
            dot_line: false,
            bad_ending: false,
        }
    }

    /// Octets of message seen so far, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len());
        let room = self.max.saturating_sub(self.buf.len() - self.head);
        let keep = bytes.len().min(room);
        if keep == 0 {
            return;
        }
        self.grow_for(keep);
        self.buf.extend_from_slice(&bytes[..keep]);
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
        } else if self.total > self.max {
            DataOutcome::TooBig
        } else {
            DataOutcome::Message(self.buf)
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
        let head_len = head.len();
        self.conn.reply(Reply::plain(354, "start mail input; end with <CRLF>.<CRLF>"));
        let max = self.ctx.config.max_message_bytes;
        let mut decoder = DataDecoder::new(head, max);
        loop {
            if let Some(n) = decoder.feed(self.conn.buffered()) {
                self.conn.consume(n);
                break;
            }
            let all = self.conn.buffered().len();
            self.conn.consume(all);
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
        let reply = self.end_message(tx, &id, now, head_len, decoder.finish()).await;
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
    /// refusals, submission checks, then delivery.
    pub(crate) async fn end_message(
        &mut self,
        tx: Transaction,
        id: &str,
        now: i64,
        head_len: usize,
        outcome: DataOutcome,
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
            DataOutcome::Message(mut message) => {
                if let Err(e) = self.encrypted_only(&tx, message.get(head_len..).unwrap_or_default()) {
                    tracing::info!(id = %id, "message refused: not encrypted (chatmail)");
                    return e.into();
                }
                let mut quarantine = false;
                if self.kind != SmtpListener::Mx {
                    let complete = submission::complete(&self.ctx, self.auth.as_ref(), &mut message, head_len, id, now);
                    if let Err(e) = complete {
                        tracing::info!(code = e.code, "message refused by submission checks");
                        return e.into();
                    }
                } else if let Some(checker) = self.ctx.inbound.clone() {
                    match self.check_inbound(&checker, &tx, &mut message, head_len).await {
                        Verdict::Deliver => {}
                        Verdict::Quarantine => quarantine = true,
                        Verdict::Refuse(e) => {
                            tracing::info!(id = %id, code = e.code, "message refused by inbound checks");
                            return e.into();
                        }
                    }
                }
                self.deliver(tx, id, now, &message, quarantine).await
            }
        }
    }

    /// Chatmail's encrypted-only rule, when on: outgoing on submission,
    /// incoming on MX. `message` is the client's, without our trace headers.
    fn encrypted_only(&self, tx: &Transaction, message: &[u8]) -> Result<(), SmtpError> {
        let Some(policy) = &self.ctx.chatmail else { return Ok(()) };
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
        match policy.check(direction, &tx.sender, &recipients, message) {
            Ok(_) => Ok(()),
            Err(refused) => Err(SmtpError::with_text(550, Enhanced(5, 7, 1), refused.to_string())),
        }
    }

    /// SPF/DKIM/ARC/DMARC/iprev on an MX message (`inbound/`), which gets
    /// our `Authentication-Results` unless refused.
    async fn check_inbound(
        &mut self,
        checker: &Checker,
        tx: &Transaction,
        message: &mut Vec<u8>,
        head_len: usize,
    ) -> Verdict {
        let directory = &self.ctx.directory;
        let own = |domain: &str| {
            directory.is_local_domain(domain).map_err(|e| {
                tracing::error!(error = %e, "directory lookup failed");
                reply::LOCAL_ERROR
            })
        };
        let helo = self.helo.as_ref().map_or("", |h| h.name.as_str());
        let peer = Peer { ip: self.peer.ip(), helo, mail_from: &tx.sender };
        inbound::apply(checker, &peer, &mut self.checks, message, head_len, &own).await
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
    async fn deliver(&mut self, tx: Transaction, id: &str, now: i64, message: &[u8], quarantine: bool) -> Reply {
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
        match delivery::accept(&self.ctx, &envelope, message, now).await {
            Ok(done) => {
                tracing::info!(id = %id, from = %coimail_directory::LogSafe(&tx.sender), recipients = tx.recipient_count(),
                    copies = done.copies, queue_id = ?done.queue_id, over_quota = done.over_quota.len(),
                    size = message.len(), quarantine, "accepted");
                self.report(&tx, &done.over_quota, message, now).await;
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

    fn decode(input: &[u8], max: usize) -> (Option<usize>, DataOutcome) {
        let mut d = DataDecoder::new(Vec::new(), max);
        let end = d.feed(input);
        (end, d.finish())
    }

    fn decode_split(input: &[u8]) -> (Option<usize>, DataOutcome) {
        // One byte at a time: the decoder must not depend on read boundaries.
        let mut d = DataDecoder::new(Vec::new(), 1000);
        for (i, b) in input.iter().enumerate() {
            if d.feed(std::slice::from_ref(b)).is_some() {
                return (Some(i + 1), d.finish());
            }
        }
        (None, d.finish())
    }

    #[test]
    fn decodes_terminator_and_dot_stuffing() {
        let cases: &[(&[u8], Option<usize>, DataOutcome)] = &[
            (b".\r\n", Some(3), DataOutcome::Message(vec![])),
            (b"a\r\n.\r\nQUIT\r\n", Some(6), DataOutcome::Message(b"a\r\n".to_vec())),
            (b"..x\r\n.\r\n", Some(8), DataOutcome::Message(b".x\r\n".to_vec())),
            (b"a\r\n..\r\n.\r\n", Some(10), DataOutcome::Message(b"a\r\n.\r\n".to_vec())),
            (b"a.b\r\n.\r\n", Some(8), DataOutcome::Message(b"a.b\r\n".to_vec())),
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
            assert_eq!(outcome, DataOutcome::BareLineEnding, "{input:?}");
            assert_eq!(decode_split(input), (Some(input.len()), DataOutcome::BareLineEnding));
        }
        assert_eq!(decode(b"a\n.\n", 1000), (None, DataOutcome::BareLineEnding));
    }

    #[test]
    fn size_is_enforced_after_reading_to_the_end() {
        let (end, outcome) = decode(b"0123456789\r\n.\r\n", 5);
        assert_eq!((end, outcome), (Some(15), DataOutcome::TooBig));
        assert_eq!(decode(b"0123\r\n.\r\n", 6), (Some(9), DataOutcome::Message(b"0123\r\n".to_vec())));
    }

    #[test]
    fn head_comes_first_and_the_buffer_never_outgrows_the_limit() {
        let head = b"Received: x\r\n".to_vec();
        let max = 100_000;
        // Exactly at the limit: kept whole, after the head, in a buffer no larger than head + max.
        let line = format!("{}\r\n", "y".repeat(998));
        let body = line.repeat(max / line.len());
        let mut d = DataDecoder::new(head.clone(), max);
        for chunk in body.as_bytes().chunks(16 * 1024) {
            assert_eq!(d.feed(chunk), None);
        }
        assert_eq!(d.feed(b".\r\n"), Some(3));
        assert!(d.buf.capacity() <= head.len() + max, "capacity {} over the limit", d.buf.capacity());
        let mut want = head.clone();
        want.extend_from_slice(body.as_bytes());
        assert_eq!(d.finish(), DataOutcome::Message(want));

        // Far over the limit: counted, not kept; capacity still bounded.
        let mut d = DataDecoder::new(head.clone(), max);
        for _ in 0..40 {
            assert_eq!(d.feed(body.as_bytes()), None);
        }
        assert_eq!(d.feed(b".\r\n"), Some(3));
        assert!(d.buf.len() <= head.len() + max);
        assert!(d.buf.capacity() <= head.len() + max, "capacity {} over the limit", d.buf.capacity());
        assert_eq!(d.total(), body.len() * 40);
        assert_eq!(d.finish(), DataOutcome::TooBig);

        // A tiny message allocates little, whatever the limit.
        let mut d = DataDecoder::new(head.clone(), usize::MAX / 2);
        assert_eq!(d.feed(b"hi\r\n.\r\n"), Some(7));
        assert!(d.buf.capacity() <= INITIAL_CAPACITY + head.len());
    }
}
