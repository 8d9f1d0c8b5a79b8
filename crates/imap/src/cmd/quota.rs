//! GETQUOTAROOT, GETQUOTA and SETQUOTA (RFC 9208 QUOTA, with the STORAGE
//! and MESSAGE resources).
//!
//! Every account has one quota root, `""`, over all its mailboxes, with the
//! limits the administrator gave the user (`coimail user add --quota`;
//! `coimail_store::quota`). A resource without a limit is not reported
//! (§5.1: a QUOTA response lists limited resources), and an account with no
//! limit at all has no quota root: GETQUOTAROOT then names none (§6.2 allows
//! zero roots) and GETQUOTA `""` is NO [NONEXISTENT] — an empty `()` list
//! is not valid `quota-list` syntax (§9).
//!
//! Enforcement is the store's (APPEND, COPY, SMTP delivery answer
//! `[OVERQUOTA]` / `452 4.2.2`); here only the reports. Users cannot raise
//! their own limits: SETQUOTA is NO [NOPERM] (§4.1.3; no QUOTASET).

use crate::cmd::mailbox::mailbox_arg;
use crate::encode;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session};
use coimail_store::QuotaLimits;
use imap_codec::imap_types::command::CommandBody;

/// Entry point from the session's dispatch.
pub(crate) fn run(s: &mut Session, body: CommandBody<'_>) -> CmdResult {
    match body {
        CommandBody::GetQuotaRoot { mailbox } => {
            let name = mailbox_arg(s, &mailbox)?;
            get_quota_root(s, &name)
        }
        CommandBody::GetQuota { root } => get_quota(s, root.as_ref()),
        CommandBody::SetQuota { .. } => Err(ImapError::no(Code::NoPerm, "Quota limits are set by the administrator")),
        other => Err(ImapError::Internal(format!("{} is not a QUOTA command", other.name()))),
    }
}

/// GETQUOTAROOT (§4.1.2): the mailbox's roots, then each root's QUOTA.
fn get_quota_root(s: &mut Session, name: &str) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let info = s.ctx.store.mailbox(account, name)?;
    let limits = s.ctx.store.quota(account)?;
    let utf8 = s.utf8;
    let out = s.conn.out();
    out.extend_from_slice(b"* QUOTAROOT ");
    encode::mailbox(out, &info.name, utf8);
    if !limits.is_unlimited() {
        out.extend_from_slice(b" \"\"");
    }
    out.extend_from_slice(b"\r\n");
    write_quota(s, limits)?;
    Ok(Done::ok("GETQUOTAROOT completed"))
}

/// GETQUOTA (§4.1.1): only the root `""` exists, and only with a limit.
fn get_quota(s: &mut Session, root: &[u8]) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let limits = s.ctx.store.quota(account)?;
    if !root.is_empty() || limits.is_unlimited() {
        return Err(ImapError::no(Code::NonExistent, "No such quota root"));
    }
    write_quota(s, limits)?;
    Ok(Done::ok("GETQUOTA completed"))
}

/// `* QUOTA "" (STORAGE used limit MESSAGE used limit)` with the limited
/// resources; STORAGE in units of 1024 octets (§5.1), usage rounded up.
fn write_quota(s: &mut Session, limits: QuotaLimits) -> Result<(), ImapError> {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    if limits.is_unlimited() {
        return Ok(());
    }
    let usage = s.ctx.store.usage(account)?;
    let mut resources = Vec::new();
    if let Some(bytes) = limits.bytes {
        resources.push(format!("STORAGE {} {}", usage.bytes.div_ceil(1024), bytes / 1024));
    }
    if let Some(messages) = limits.messages {
        resources.push(format!("MESSAGE {} {messages}", usage.messages));
    }
    let line = format!("* QUOTA \"\" ({})\r\n", resources.join(" "));
    s.conn.out().extend_from_slice(line.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, check};
    use coimail_store::QuotaLimits;

    #[tokio::test]
    async fn quota_roots_usage_and_limits() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        // No limit: no root, nothing to report.
        check(
            &mut c,
            "C: a1 GETQUOTAROOT inbox
             S: * QUOTAROOT \"INBOX\"
             S: a1 OK GETQUOTAROOT completed
             C: a2 GETQUOTA \"\"
             S: a2 NO [NONEXISTENT] No such quota root
             C: a3 GETQUOTAROOT Nope
             S: a3 NO [NONEXISTENT] mailbox Nope does not exist",
        )
        .await;
        srv.deliver(&[b'x'; 1500]).await;
        srv.store.set_quota(srv.account.id, QuotaLimits { bytes: Some(10 << 10), messages: None }).await.unwrap();
        check(
            &mut c,
            "C: b1 GETQUOTAROOT Sent
             S: * QUOTAROOT \"Sent\" \"\"
             S: * QUOTA \"\" (STORAGE 2 10)
             S: b1 OK GETQUOTAROOT completed
             C: b2 GETQUOTA \"\"
             S: * QUOTA \"\" (STORAGE 2 10)
             S: b2 OK GETQUOTA completed
             C: b3 GETQUOTA \"other\"
             S: b3 NO [NONEXISTENT] No such quota root
             C: b4 SETQUOTA \"\" (STORAGE 512)
             S: b4 NO [NOPERM] Quota limits are set by the administrator",
        )
        .await;
        srv.store.set_quota(srv.account.id, QuotaLimits { bytes: Some(10 << 10), messages: Some(5) }).await.unwrap();
        check(
            &mut c,
            "C: c1 GETQUOTA \"\"
             S: * QUOTA \"\" (STORAGE 2 10 MESSAGE 1 5)
             S: c1 OK GETQUOTA completed",
        )
        .await;
    }

    #[tokio::test]
    async fn append_and_copy_over_quota_are_refused_move_is_not() {
        let srv = TestServer::start().await;
        srv.deliver(&[b'x'; 1000]).await;
        srv.store.set_quota(srv.account.id, QuotaLimits { bytes: None, messages: Some(2) }).await.unwrap();
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: a1 APPEND INBOX {1+}
             C: y
             S: * 2 EXISTS
             S: * 2 RECENT
             S: a1 OK [APPENDUID ...
             C: a2 APPEND INBOX {1+}
             C: z
             S: a2 NO [OVERQUOTA] Quota exceeded
             C: a3 COPY 1 Trash
             S: a3 NO [OVERQUOTA] Quota exceeded
             C: a4 MOVE 2 Trash
             S: * OK [COPYUID ...
             S: * 2 EXPUNGE
             S: a4 OK MOVE completed
             C: a5 GETQUOTAROOT INBOX
             S: * QUOTAROOT \"INBOX\" \"\"
             S: * QUOTA \"\" (MESSAGE 2 2)
             S: a5 OK GETQUOTAROOT completed",
        )
        .await;
    }
}
