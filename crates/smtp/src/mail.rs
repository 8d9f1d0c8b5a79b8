//! MAIL (RFC 5321 §4.1.1.2) and RCPT (§4.1.1.3): envelope checks. Who may
//! send to whom is decided in `policy.rs`; this file checks sequence,
//! parameters and limits and records the transaction.
//!
//! A local recipient whose mailbox is full gets `452 4.2.2` at RCPT, so the
//! others still get the message and the sender retries that one later. The
//! check charges one message of the declared `SIZE=` (0 octets without
//! one); the store's check at the end of the data, under its write lock and
//! with the real size, stays the final word: when the message turns out
//! too big for some mailboxes only, the others get it (`delivery.rs`).
//!
//! RCPT `NOTIFY=SUCCESS` and `DELAY` count only in authenticated sessions;
//! on MX they are accepted and dropped, as a report would go to a reverse
//! path nobody checked (backscatter).

use crate::delivery::{self, LocalRecipient};
use crate::policy::{self, Recipient};
use crate::reply::{self, Enhanced, Reply, SmtpError};
use crate::session::{Session, Transaction};
use coimail_delivery::{DsnNotify, DsnRet, SpoolRecipient};
use coimail_directory::{Account, LogSafe};
use coimail_store::StoreError;
use smtp_proto::{
    MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, MailFrom, RCPT_NOTIFY_DELAY,
    RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RcptTo,
};

const RCPT_NOTIFY: u64 = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;

/// RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter.
const NEEDS_SMTPUTF8: SmtpError = SmtpError::new(553, Enhanced(5, 6, 7), "non-ASCII address requires SMTPUTF8");
const UNSUPPORTED_PARAMETER: SmtpError = SmtpError::new(555, Enhanced(5, 5, 4), "unsupported parameter");

/// MAIL parameters we advertise: SIZE (RFC 1870), BODY (RFC 6152),
/// SMTPUTF8 (RFC 6531), RET and ENVID (DSN, RFC 3461), AUTH (RFC 4954 §5,
/// accepted and ignored).
fn only_supported_parameters(from: &MailFrom<String>) -> bool {
    let supported = MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8 | MAIL_RET_FULL | MAIL_RET_HDRS;
    let rest = MailFrom {
        address: String::new(),
        flags: from.flags & !supported,
        size: 0,
        auth: None,
        env_id: None,
        ..from.clone()
    };
    rest == MailFrom::default()
}

fn ret_of(flags: u64) -> Option<DsnRet> {
    if flags & MAIL_RET_HDRS != 0 {
        Some(DsnRet::Headers)
    } else if flags & MAIL_RET_FULL != 0 {
        Some(DsnRet::Full)
    } else {
        None
    }
}

/// RCPT `NOTIFY` (RFC 3461 §4.1): `None` when absent; NEVER alone.
fn notify_of(flags: u64) -> Result<Option<DsnNotify>, SmtpError> {
    if flags & RCPT_NOTIFY == 0 {
        return Ok(None);
    }
    if flags & RCPT_NOTIFY_NEVER != 0 && flags & RCPT_NOTIFY != RCPT_NOTIFY_NEVER {
        return Err(SmtpError::new(501, Enhanced(5, 5, 4), "NOTIFY=NEVER cannot be combined with other values"));
    }
    Ok(Some(DsnNotify {
        success: flags & RCPT_NOTIFY_SUCCESS != 0,
        failure: flags & RCPT_NOTIFY_FAILURE != 0,
        delay: flags & RCPT_NOTIFY_DELAY != 0,
    }))
}

/// An accepted recipient, for the transaction; each carries its DSN request.
enum Accepted {
    Local(LocalRecipient),
    Remote(SpoolRecipient),
}

impl Session {
    pub(crate) fn cmd_mail(&mut self, from: MailFrom<String>) {
        if let Err(e) = self.check_mail(&from) {
            tracing::info!(from = %LogSafe(&from.address), code = e.code, "MAIL refused");
            self.conn.reply(e);
            return;
        }
        self.tx = Some(Transaction {
            sender: from.address,
            smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
            declared_size: u64::try_from(from.size).unwrap_or(u64::MAX),
            recipients: Vec::new(),
            remote: Vec::new(),
            env_id: from.env_id,
            ret: ret_of(from.flags),
            chunks: None,
        });
        self.conn.reply(Reply::new(250, Enhanced(2, 1, 0), "sender OK"));
    }

    fn check_mail(&self, from: &MailFrom<String>) -> Result<(), SmtpError> {
        let Some(helo) = &self.helo else {
            return Err(SmtpError::new(503, Enhanced(5, 5, 1), "send EHLO or HELO first"));
        };
        if self.tx.is_some() {
            return Err(SmtpError::new(503, Enhanced(5, 5, 1), "nested MAIL command"));
        }
        if self.kind != crate::SmtpListener::Mx {
            let Some(account) = &self.auth else {
                return Err(reply::AUTH_REQUIRED);
            };
            if !self.ctx.rate.allows(account.id, std::time::Instant::now()) {
                return Err(reply::RATE_LIMITED);
            }
        } else if !self.mx_peer_allowed() {
            return Err(reply::MX_PEER_RATE_LIMITED);
        }
        if !helo.esmtp && (from.flags != 0 || from.size != 0 || from.auth.is_some() || from.env_id.is_some()) {
            return Err(UNSUPPORTED_PARAMETER);
        }
        if !only_supported_parameters(from) {
            return Err(UNSUPPORTED_PARAMETER);
        }
        if from.size > self.ctx.config.max_message_bytes {
            return Err(reply::TOO_BIG);
        }
        if !from.address.is_ascii() && from.flags & MAIL_SMTPUTF8 == 0 {
            return Err(NEEDS_SMTPUTF8);
        }
        policy::check_sender(&self.ctx.directory, self.kind, self.auth.as_ref(), &from.address)
    }

    pub(crate) fn cmd_rcpt(&mut self, to: RcptTo<String>) {
        match self.check_rcpt(&to) {
            Ok(recipient) => {
                tracing::debug!(rcpt = %LogSafe(&to.address), "recipient accepted");
                if let Some(tx) = self.tx.as_mut() {
                    match recipient {
                        Accepted::Local(r) => tx.recipients.push(r),
                        Accepted::Remote(r) => tx.remote.push(r),
                    }
                }
                self.conn.reply(Reply::new(250, Enhanced(2, 1, 5), "recipient OK"));
            }
            Err(e) => {
                tracing::info!(rcpt = %LogSafe(&to.address), code = e.code, "recipient refused");
                self.conn.reply(e);
            }
        }
    }

    fn check_rcpt(&self, to: &RcptTo<String>) -> Result<Accepted, SmtpError> {
        let Some(tx) = &self.tx else {
            return Err(SmtpError::new(503, Enhanced(5, 5, 1), "send MAIL first"));
        };
        if tx.chunks.is_some() {
            return Err(reply::BAD_SEQUENCE);
        }
        let esmtp = self.helo.as_ref().is_some_and(|h| h.esmtp);
        let dsn_params = to.flags != 0 || to.orcpt.is_some();
        if to.flags & !RCPT_NOTIFY != 0 || to.rrvs != 0 || (dsn_params && !esmtp) {
            return Err(UNSUPPORTED_PARAMETER);
        }
        let mut notify = notify_of(to.flags)?;
        if self.auth.is_none()
            && let Some(n) = notify.as_mut()
        {
            // Backscatter: anyone may give any reverse path on MX, so a
            // success or delay notice requested there would go to whoever
            // the client names. The parameter is accepted (RFC 3461 lets
            // a server decline to send reports) and only FAILURE is kept.
            n.success = false;
            n.delay = false;
        }
        if tx.recipient_count() >= self.ctx.config.max_recipients {
            return Err(reply::TOO_MANY_RECIPIENTS);
        }
        if !to.address.is_ascii() && !tx.smtputf8 {
            return Err(NEEDS_SMTPUTF8);
        }
        if self.ctx.store.check_space().is_err() {
            return Err(reply::DISK_FULL);
        }
        let dir = &self.ctx.directory;
        let dsn = |address: &str| SpoolRecipient::new(address, to.orcpt.clone(), notify);
        // smtp-proto hands back `<postmaster>` (no domain) as "".
        if to.address.is_empty() {
            let account = policy::postmaster(dir)?;
            self.check_quota(&account, tx)?;
            let address = account.address.clone();
            return Ok(Accepted::Local(LocalRecipient { address: address.clone(), account, dsn: dsn(&address) }));
        }
        match policy::check_recipient(dir, self.kind, self.auth.as_ref(), &to.address)? {
            Recipient::Local(account) => {
                if !self.mx_recipient_allowed(&account, tx) {
                    return Err(reply::MX_RECIPIENT_RATE_LIMITED);
                }
                self.check_quota(&account, tx)?;
                Ok(Accepted::Local(LocalRecipient { address: to.address.clone(), account, dsn: dsn(&to.address) }))
            }
            Recipient::Remote => {
                delivery::remote_recipient(&self.ctx, &to.address)?;
                Ok(Accepted::Remote(SpoolRecipient::new(to.address.clone(), to.orcpt.clone(), notify)))
            }
        }
    }

    /// `452 4.2.2` when one more message of the declared size would take
    /// the account over its quota. An account that already has a copy in
    /// this transaction (an alias) is not charged twice.
    fn check_quota(&self, account: &Account, tx: &Transaction) -> Result<(), SmtpError> {
        if tx.recipients.iter().any(|r| r.account.id == account.id) {
            return Ok(());
        }
        match self.ctx.store.check_quota(account.id, tx.declared_size, 1) {
            Ok(()) => Ok(()),
            Err(StoreError::QuotaExceeded) => Err(reply::MAILBOX_FULL),
            Err(e) => {
                tracing::error!(error = %e, "quota check failed");
                Err(reply::LOCAL_ERROR)
            }
        }
    }
}
