//! IDLE (RFC 2177, RFC 9051 §6.3.13).
//!
//! The session waits on the change bus itself, so an EXISTS is written as
//! soon as the store publishes the change: no polling. Changes arriving in
//! a burst are drained first and reported together. With NOTIFY on, IDLE
//! sends exactly the events NOTIFY asked for (RFC 5465 §4; `cmd/notify.rs`).

use crate::cmd::notify::{At, report};
use crate::error::ImapError;
use crate::session::{CmdResult, Done, Session, recv};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, sleep_until};

pub(crate) async fn idle(s: &mut Session, _tag: &str) -> CmdResult {
    let _idling = Idling::start();
    s.conn.out().extend_from_slice(b"+ idling\r\n");
    report(s, At::Idle).await?;
    s.conn.flush().await?;
    let mut deadline = Instant::now() + s.ctx.config.idle_timeout;
    loop {
        match s.conn.take_line() {
            Some(Ok(line)) if line.eq_ignore_ascii_case(b"DONE") => return Ok(Done::ok("IDLE terminated")),
            Some(Ok(_)) => return Err(ImapError::bad("Expected DONE")),
            Some(Err(())) => {
                s.bye("Line too long");
                return Err(ImapError::Closed);
            }
            None => {}
        }
        enum Got {
            Data,
            Change(Result<coimail_store::Change, RecvError>),
            Shutdown,
            Timeout,
        }
        let got = tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => Got::Shutdown,
            r = s.conn.fill() => { r?; Got::Data }
            c = recv(&mut s.changes) => Got::Change(c),
            _ = sleep_until(deadline) => Got::Timeout,
        };
        match got {
            Got::Data => deadline = Instant::now() + s.ctx.config.idle_timeout,
            Got::Change(c) => {
                s.on_change(c);
                report(s, At::Idle).await?;
                s.conn.flush().await?;
            }
            Got::Shutdown => {
                s.bye(s.shutdown_reason());
                return Err(ImapError::Closed);
            }
            Got::Timeout => {
                s.bye("Autologout; idle for too long");
                return Err(ImapError::Closed);
            }
        }
    }
}

/// Counts the session in `coimail_imap_idle_sessions` while it is in IDLE:
/// dropped on every way out, `?` and a cancelled session task included.
struct Idling(metrics::Gauge);

impl Idling {
    fn start() -> Idling {
        let gauge = metrics::gauge!("coimail_imap_idle_sessions");
        gauge.increment(1.0);
        Idling(gauge)
    }
}

impl Drop for Idling {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, check};
    use coimail_store::Uid;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn idle_reports_exists_flags_and_expunge_then_done() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: one\r\n\r\n1\r\n").await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(&mut c, "C: a1 IDLE\nS: + idling").await;

        let started = Instant::now();
        srv.deliver(b"Subject: two\r\n\r\n2\r\n").await;
        let delivered = started.elapsed();
        let line = tokio::time::timeout(Duration::from_millis(100), c.line()).await.expect("EXISTS within 100 ms");
        assert_eq!(line, "* 2 EXISTS");
        assert!(started.elapsed() - delivered < Duration::from_millis(100));
        assert_eq!(c.line().await, "* 2 RECENT");

        let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
        let seen: coimail_store::Flags = ["\\Seen"].into_iter().collect();
        srv.store.store_flags(srv.account.id, inbox, &[Uid(1)], coimail_store::FlagOp::Add, &seen).await.unwrap();
        assert_eq!(c.line().await, "* 1 FETCH (FLAGS (\\Recent \\Seen) UID 1)");
        srv.store.expunge(srv.account.id, inbox, &[Uid(1)]).await.unwrap();
        assert_eq!(c.line().await, "* 1 EXPUNGE");

        check(
            &mut c,
            "C: DONE
             S: a1 OK IDLE terminated
             C: a2 FETCH 1 UID
             S: * 1 FETCH (UID 2)
             S: a2 OK FETCH completed",
        )
        .await;
    }

    #[tokio::test]
    async fn noop_reports_what_arrived_between_commands() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        srv.deliver(b"Subject: one\r\n\r\n1\r\n").await;
        srv.deliver(b"Subject: two\r\n\r\n2\r\n").await;
        // Nothing is sent outside a command...
        assert!(tokio::time::timeout(Duration::from_millis(50), c.line()).await.is_err());
        // ...and a command reports it.
        check(
            &mut c,
            "C: a1 NOOP
             S: * 2 EXISTS
             S: * 2 RECENT
             S: a1 OK NOOP completed
             C: a2 NOOP
             S: a2 OK NOOP completed",
        )
        .await;
    }

    /// RFC 2180 §4.1: until the session is told of the expunge, the
    /// message is still there for it (its data is kept for the session).
    #[tokio::test]
    async fn no_expunge_during_fetch_but_during_uid_fetch() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: one\r\n\r\n1\r\n").await;
        srv.deliver(b"Subject: two\r\n\r\n2\r\n").await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
        srv.store.expunge(srv.account.id, inbox, &[Uid(1)]).await.unwrap();
        srv.deliver(b"Subject: three\r\n\r\n3\r\n").await;
        check(
            &mut c,
            "C: a1 FETCH 2 UID
             S: * 2 FETCH (UID 2)
             S: * 3 EXISTS
             S: * 3 RECENT
             S: a1 OK FETCH completed
             C: a2 FETCH 1 (UID RFC822.SIZE FLAGS)
             S: * 1 FETCH (UID 1 RFC822.SIZE 19 FLAGS (\\Recent))
             S: a2 OK FETCH completed
             C: a21 FETCH 1 BODY[TEXT]
             S: * 1 FETCH (BODY[TEXT] {3}\\r\\n1\\r\\n)
             S: a21 OK FETCH completed
             C: a3 UID FETCH 3 UID
             S: * 3 FETCH (UID 3)
             S: * 1 EXPUNGE
             S: a3 OK FETCH completed
             C: a4 FETCH 1:* UID
             S: * 1 FETCH (UID 2)
             S: * 2 FETCH (UID 3)
             S: a4 OK FETCH completed",
        )
        .await;
    }

    #[tokio::test]
    async fn done_without_selected_mailbox_and_bad_continuation() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: a1 IDLE
             S: + idling
             C: done
             S: a1 OK IDLE terminated
             C: a2 IDLE
             S: + idling
             C: a3 NOOP
             S: a2 BAD Expected DONE
             C: a4 NOOP
             S: a4 OK NOOP completed",
        )
        .await;
    }

    #[tokio::test]
    async fn shutdown_during_idle_sends_bye() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(&mut c, "C: a1 IDLE\nS: + idling").await;
        srv.shutdown.cancel();
        assert_eq!(c.line().await, "* BYE Server shutting down");
        c.expect_closed().await;
    }
}
