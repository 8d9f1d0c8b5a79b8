//! Per-session limits on what a client sends: the command rate and the
//! number of BAD responses. Both end in a clear answer (`* BYE` with the
//! reason) rather than a silent close.
//!
//! The rate is a token bucket, kept as GCRA's "theoretical arrival time"
//! (one instant instead of a token count and a refill time). A client over
//! its rate is slowed down, not failed: the session waits for the next
//! token before running the command, so a pipelining client only sees
//! latency. Only a client that keeps the bucket empty for a long stretch
//! is closed (`* BYE Too many commands`); one that pauses is forgiven.
//!
//! What counts as a command: every command the framer hands the session,
//! also one refused for its length. A run of pipelined APPENDs
//! (`cmd/append/pipeline.rs`) is one store write and counts once: a bulk
//! upload over one connection (a migration) runs at disk speed. IDLE's `DONE`, SASL responses and literal
//! continuations are not commands: they are read with `Conn::take_line`
//! or never reach the session as one.

use crate::ImapConfig;
use crate::error::ImapError;
use crate::session::Session;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

/// A client throttled without a break for longer than this is closed. Long
/// enough that a client catching up after a pause never hits it (it gets
/// `command_burst` at once, then the rate).
const MAX_THROTTLED_STRETCH: Duration = Duration::from_secs(30);
/// ...or one that sent this many commands that had to wait, in one stretch
/// (reached first only at rates over ~330 commands per second).
const MAX_THROTTLED_COMMANDS: u32 = 10_000;

/// When a command may run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Now,
    /// Over the rate: at this instant, when its token is there.
    At(Instant),
    /// Over the rate for too long: the session ends.
    TooMany,
}

/// The token bucket of one session.
#[derive(Debug)]
struct Rate {
    /// Time per token (1 / rate).
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run before a
    /// command waits: `(burst - 1) * interval`.
    tolerance: Duration,
    /// When the next command would be due if every command so far had come
    /// exactly at the rate. At or before now: the bucket is full.
    tat: Instant,
    /// The current run of throttled commands, if the last command waited.
    stretch: Option<Stretch>,
}

#[derive(Debug)]
struct Stretch {
    since: Instant,
    commands: u32,
}

impl Rate {
    /// How long a command arriving at `now` must wait for its token.
    fn wait(&self, now: Instant) -> Duration {
        self.tat.max(now).saturating_duration_since(now).saturating_sub(self.tolerance)
    }

    /// Spends one token: the next one is due one interval later.
    fn spend(&mut self, now: Instant) {
        self.tat = self.tat.max(now) + self.interval;
    }
}

/// The command rate and the BAD count of one session.
#[derive(Debug)]
pub(crate) struct CommandLimits {
    /// `None`: no rate limit.
    rate: Option<Rate>,
    bad: u32,
    /// 0: no limit.
    max_bad: u32,
}

impl CommandLimits {
    pub(crate) fn new(config: &ImapConfig, now: Instant) -> Self {
        let rate = (config.max_commands_per_second > 0).then(|| {
            let interval = Duration::from_secs(1) / config.max_commands_per_second;
            let tolerance = interval.saturating_mul(config.command_burst.max(1) - 1);
            Rate { interval, tolerance, tat: now, stretch: None }
        });
        CommandLimits { rate, bad: 0, max_bad: config.max_bad_commands }
    }

    /// Takes a token for a command that arrived at `now`, or says when one
    /// is due. A command that has to wait continues the current throttled
    /// stretch (or starts one); one that does not ends it.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        let Some(rate) = &mut self.rate else { return Admit::Now };
        let wait = rate.wait(now);
        if wait.is_zero() {
            rate.stretch = None;
            rate.spend(now);
            return Admit::Now;
        }
        let at = now + wait;
        let stretch = rate.stretch.get_or_insert_with(|| {
            tracing::debug!("over the command rate; slowing down");
            Stretch { since: now, commands: 0 }
        });
        stretch.commands = stretch.commands.saturating_add(1);
        if stretch.commands > MAX_THROTTLED_COMMANDS
            || at.saturating_duration_since(stretch.since) > MAX_THROTTLED_STRETCH
        {
            return Admit::TooMany;
        }
        rate.spend(now);
        Admit::At(at)
    }

    /// Takes a token only if one is there now.
    #[cfg(test)]
    pub(crate) fn admit_now(&mut self, now: Instant) -> bool {
        match &self.rate {
            Some(rate) if !rate.wait(now).is_zero() => false,
            _ => self.admit(now) == Admit::Now,
        }
    }

    /// Counts one BAD response; true once the session has had too many.
    fn bad(&mut self) -> bool {
        self.bad = self.bad.saturating_add(1);
        self.max_bad > 0 && self.bad >= self.max_bad
    }
}

impl Session {
    /// Waits for the token of the command just taken from the input.
    /// Returns false when the session must end (`* BYE` already queued).
    pub(crate) async fn pace(&mut self) -> bool {
        match self.limits.admit(Instant::now()) {
            Admit::Now => true,
            Admit::At(at) => {
                // A throttled session must not hold up shutdown.
                tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => {
                        self.bye(self.shutdown_reason());
                        false
                    }
                    _ = sleep_until(at) => true,
                }
            }
            Admit::TooMany => {
                tracing::info!(
                    limit = self.ctx.config.max_commands_per_second,
                    "over the command rate for too long; closing"
                );
                self.bye("Too many commands");
                false
            }
        }
    }

    /// Writes the tagged (or untagged) response for `e`, counting BADs: a
    /// scanner or a broken client looping on bad input gets a BYE instead
    /// of answers forever. Returns false when the session must end.
    pub(crate) fn reply_error(&mut self, e: &ImapError, tag: Option<&str>) -> bool {
        if !e.write_tagged(self.conn.out(), tag) {
            return false;
        }
        if matches!(e, ImapError::Bad(_)) && self.limits.bad() {
            tracing::info!(bad = self.limits.bad, "too many invalid commands; closing");
            self.bye("Too many invalid commands");
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Client, PASSWORD, TestServer, USER, check};

    fn limits(per_second: u32, burst: u32) -> (CommandLimits, Instant) {
        let now = Instant::now();
        let config =
            ImapConfig { max_commands_per_second: per_second, command_burst: burst, ..crate::testing::config() };
        (CommandLimits::new(&config, now), now)
    }

    #[test]
    fn a_burst_runs_at_once_then_the_rate_applies() {
        let (mut l, t0) = limits(10, 3);
        let ms = Duration::from_millis;
        for _ in 0..3 {
            assert_eq!(l.admit(t0), Admit::Now);
        }
        // The fourth waits one interval, the fifth two.
        assert_eq!(l.admit(t0), Admit::At(t0 + ms(100)));
        assert_eq!(l.admit(t0 + ms(100)), Admit::At(t0 + ms(200)));
        assert!(!l.admit_now(t0 + ms(200)), "no token to spare yet");
        // A pause refills the bucket (up to the burst) and ends the stretch.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert!(l.admit_now(later));
        }
        assert_eq!(l.admit(later), Admit::At(later + ms(100)));
    }

    #[test]
    fn only_a_long_stretch_of_throttling_is_too_many() {
        let (mut l, t0) = limits(100, 1);
        let mut now = t0;
        let mut waited = 0;
        loop {
            match l.admit(now) {
                Admit::Now => {}
                Admit::At(at) => {
                    waited += 1;
                    now = at;
                }
                Admit::TooMany => break,
            }
        }
        // 30 s at 100 per second, then the next one is refused.
        assert_eq!(waited, 3000);
        // At a high rate the count is reached first.
        let (mut l, t0) = limits(1_000_000, 1);
        let n = (0..).take_while(|_| l.admit(t0) != Admit::TooMany).count();
        assert_eq!(n, 1 + MAX_THROTTLED_COMMANDS as usize);
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let (mut l, t0) = limits(0, 0);
        assert!((0..100_000).all(|_| l.admit(t0) == Admit::Now));
        l.max_bad = 0;
        assert!((0..1000).all(|_| !l.bad()));
    }

    /// Reads `n` tagged OKs in order, whatever untagged lines come between.
    async fn oks(c: &mut Client, prefix: &str, n: usize) {
        for i in 0..n {
            let line = c.line().await;
            assert_eq!(line, format!("{prefix}{i} OK NOOP completed"));
        }
    }

    #[tokio::test]
    async fn pipelined_commands_over_the_rate_are_slowed_not_failed() {
        let srv = TestServer::start_with(|c| (c.max_commands_per_second, c.command_burst) = (20, 20), false).await;
        let mut c = srv.connect().await;
        c.line().await;
        // Paused time advances to the next timer whenever every task waits:
        // the session's sleeps cost no real time, and are measured exactly.
        tokio::time::pause();
        let started = Instant::now();
        let batch: String = (0..100).map(|i| format!("n{i} NOOP\r\n")).collect();
        c.send_raw(batch.as_bytes()).await;
        oks(&mut c, "n", 100).await;
        // 20 at once, then 80 at 20 per second.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(3950) && took < Duration::from_secs(5), "{took:?}");
        // Still usable; and after a pause the burst is there again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        check(&mut c, "C: a1 NOOP\nS: a1 OK NOOP completed").await;
        assert!(started.elapsed() < Duration::from_millis(10));
    }

    #[tokio::test]
    async fn sustained_flood_gets_bye_too_many_commands() {
        let srv = TestServer::start_with(|c| (c.max_commands_per_second, c.command_burst) = (20, 20), false).await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        tokio::time::pause();
        // LOGIN took a token; a moment later the bucket is full again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let flood: String = (0..1000).map(|i| format!("f{i} NOOP\r\n")).collect();
        c.send_raw(flood.as_bytes()).await;
        let mut answered = 0;
        let bye = loop {
            let line = c.line().await;
            if line.starts_with("* ") {
                break line;
            }
            assert_eq!(line, format!("f{answered} OK NOOP completed"));
            answered += 1;
        };
        // The burst, then 30 s worth at the rate, all answered; then a clear
        // answer instead of more waiting.
        assert_eq!(bye, "* BYE Too many commands");
        assert!((610..=625).contains(&answered), "{answered}");
        c.expect_closed().await;
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(29) && took < Duration::from_secs(31), "{took:?}");
    }

    #[tokio::test]
    async fn fifty_bad_commands_get_bye() {
        let srv = TestServer::start().await;
        let mut c = srv.connect().await;
        c.line().await;
        // Garbage of every kind: no tag, unknown command, bad arguments, an overlong line.
        let mut garbage = String::new();
        for i in 0..49 {
            garbage.push_str(match i % 4 {
                0 => "\u{1}\u{2}\u{3}\r\n",
                1 => "x1 HELO there\r\n",
                2 => "x2 SELECT\r\n",
                _ => "GET / HTTP/1.1\r\n",
            });
        }
        garbage.push_str(&format!("x3 NOOP {}\r\n", "y".repeat(9000)));
        c.send_raw(garbage.as_bytes()).await;
        for _ in 0..50 {
            let line = c.line().await;
            assert!(line.contains(" BAD "), "{line}");
        }
        assert_eq!(c.line().await, "* BYE Too many invalid commands");
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn no_answers_do_not_count_and_zero_is_off() {
        let srv = TestServer::start_with(|c| c.max_bad_commands = 3, false).await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: b1 FROB
             S: b1 BAD Unknown command FROB
             C: b2 FROB
             S: b2 BAD Unknown command FROB",
        )
        .await;
        for i in 0..20 {
            let r = c.command(&format!("n{i}"), "SELECT Nonexistent").await;
            assert!(r.last().unwrap().starts_with(&format!("n{i} NO ")), "{r:?}");
        }
        check(
            &mut c,
            "C: b3 FROB
             S: b3 BAD Unknown command FROB
             S: * BYE Too many invalid commands",
        )
        .await;
        c.expect_closed().await;

        let srv = TestServer::start_with(|c| c.max_bad_commands = 0, false).await;
        let mut c = srv.connect().await;
        c.line().await;
        let garbage: String = (0..200).map(|i| format!("g{i} FROB\r\n")).collect();
        c.send_raw(garbage.as_bytes()).await;
        for i in 0..200 {
            assert_eq!(c.line().await, format!("g{i} BAD Unknown command FROB"));
        }
        check(&mut c, "C: a1 NOOP\nS: a1 OK NOOP completed").await;
    }

    /// A run of pipelined APPENDs is one store write and takes one token:
    /// with a burst of 4, six pipelined APPENDs are all answered at once.
    #[tokio::test]
    async fn a_pipelined_append_run_takes_one_token() {
        let srv = TestServer::start_with(|c| (c.max_commands_per_second, c.command_burst) = (10, 4), false).await;
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        tokio::time::pause();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let appends: String = (0..6).map(|i| format!("p{i} APPEND INBOX {{1+}}\r\n{i}\r\n")).collect();
        c.send_raw(appends.as_bytes()).await;
        for i in 0..6 {
            let line = c.line().await;
            assert!(line.starts_with(&format!("p{i} OK [APPENDUID ")), "{line}");
        }
        let took = started.elapsed();
        assert!(took < Duration::from_millis(100), "{took:?}");
        let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap();
        assert_eq!(srv.store.messages(srv.account.id, inbox.id).unwrap().len(), 6);
        // The burst is not used up: four NOOPs still run at once.
        let started = Instant::now();
        c.send_raw(b"n1 NOOP\r\nn2 NOOP\r\nn3 NOOP\r\n").await;
        for i in 1..=3 {
            assert_eq!(c.line().await, format!("n{i} OK NOOP completed"));
        }
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    /// STARTTLS is one command; what a client pipelined behind it in the
    /// clear is discarded unframed, so it takes no token either.
    #[tokio::test]
    async fn starttls_takes_one_token() {
        let srv = TestServer::start_with(|c| (c.max_commands_per_second, c.command_burst) = (1, 3), true).await;
        let mut c = srv.connect().await;
        c.line().await;
        tokio::time::pause();
        let started = Instant::now();
        c.send_raw(b"a1 STARTTLS\r\nx1 NOOP\r\nx2 NOOP\r\n").await;
        assert_eq!(c.line().await, "a1 OK Begin TLS negotiation now");
        let mut c = c.start_tls().await;
        c.login(&srv).await;
        check(&mut c, "C: a2 NOOP\nS: a2 OK NOOP completed").await;
        assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    }

    /// Literal continuations, IDLE's DONE and SASL responses take no token:
    /// with a burst of exactly the commands below, nothing waits.
    #[tokio::test]
    async fn a_normal_session_never_notices_the_limits() {
        let srv = TestServer::start_with(
            |c| (c.max_commands_per_second, c.command_burst, c.max_bad_commands) = (1, 7, 2),
            false,
        )
        .await;
        srv.deliver(b"Subject: one\r\n\r\n1\r\n").await;
        let mut c = srv.connect().await;
        c.line().await;
        tokio::time::pause();
        let started = Instant::now();
        // 1: LOGIN with two synchronising literals.
        c.send(&format!("a1 LOGIN {{{}}}", USER.len())).await;
        assert_eq!(c.line().await, "+ Ready for literal data");
        c.send(&format!("{USER} {{{}}}", PASSWORD.len())).await;
        assert_eq!(c.line().await, "+ Ready for literal data");
        c.send(PASSWORD).await;
        assert!(c.line().await.starts_with("a1 OK "));
        // 2-3: SELECT and FETCH.
        c.select("INBOX").await;
        check(&mut c, "C: a2 FETCH 1 (UID FLAGS)\nS: * 1 FETCH (UID 1 FLAGS (\\Recent))\nS: a2 OK FETCH completed")
            .await;
        // 4: IDLE, a delivery, DONE.
        check(&mut c, "C: a3 IDLE\nS: + idling").await;
        srv.deliver(b"Subject: two\r\n\r\n2\r\n").await;
        check(
            &mut c,
            "S: * 2 EXISTS\nC: DONE\nS: * 2 RECENT
                                               S: a3 OK IDLE terminated",
        )
        .await;
        // 5-7: the rest of the burst, one of them a NO.
        check(
            &mut c,
            "C: a4 SELECT Nonexistent
             S: * OK [CLOSED] Previous mailbox closed
             S: a4 NO [NONEXISTENT] mailbox Nonexistent does not exist
             C: a5 NOOP
             S: a5 OK NOOP completed
             C: a6 LOGOUT
             S: * BYE ...
             S: a6 OK LOGOUT completed",
        )
        .await;
        assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    }
}
