//! Slow and dribbling clients (issue 11): SMTP once had only a per-read
//! timeout, so a client sending a byte every few seconds held its slot for
//! hours. Each bound is tried the way an attacker would, with short
//! configured values, over real sockets from 127.0.0.2 while the normal
//! client is on 127.0.0.3.

use crate::util::imap::exists;
use crate::util::mailhost::base64;
use crate::util::slow::{Ending, Script, connect_from, dribble};
use crate::util::{ImapClient, PASSWORD, SmtpClient, TestServer, message};
use coimail_daemon::Config;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const ATTACKER: &str = "127.0.0.2";
const NORMAL: &str = "127.0.0.3";

/// Longest any slow connection is let run before the test calls it a failure.
const GIVE_UP: Duration = Duration::from_secs(40);
/// Slack for a loaded machine between a deadline and the client seeing the close.
const SLACK: Duration = Duration::from_secs(4);

/// Short bounds: a command line 3 s (the first 2 s), message data 6 s at
/// 200 octets/s after 2 s, a session 8 s, an IMAP login 3 × 2 s.
fn short(c: &mut Config) {
    c.smtp.command_timeout_secs = 3;
    c.smtp.first_command_timeout_secs = 2;
    c.smtp.session_timeout_secs = 8;
    c.smtp.data_timeout_secs = 6;
    c.smtp.min_data_rate = 200;
    c.smtp.min_data_rate_grace_secs = 2;
    c.imap.auth_timeout_secs = 2;
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// EHLO, MAIL and RCPT to alice, then the command that starts the data.
fn to_data(start: &str) -> String {
    format!("EHLO slow.test\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<{ALICE}>\r\n{start}\r\n")
}

/// The server closed the connection after `421 4.4.2 ...<why>...`, within `at_most`.
fn assert_cut(e: &Ending, why: &str, at_most: Duration) {
    assert!(e.closed, "never closed: {e:?}");
    assert!(e.last_line().starts_with("421 4.4.2") && e.last_line().contains(why), "{why}: {e:?}");
    assert!(e.lived <= at_most, "lived {:?} > {at_most:?}: {e:?}", e.lived);
}

#[tokio::test]
async fn a_silent_client_gets_the_shorter_first_command_timeout() {
    let srv = TestServer::start_with(&[ALICE], |c| {
        c.smtp.command_timeout_secs = 30;
        c.smtp.first_command_timeout_secs = 1;
    })
    .await;
    let silent = Script { prefix: Vec::new(), drip: Vec::new(), every: secs(1) };
    for addr in [srv.smtp(), srv.addrs().submission[0]] {
        let e = dribble(ATTACKER, addr, &silent, GIVE_UP).await;
        assert_cut(&e, "no complete command within 1 s", secs(1) + SLACK);
    }
    // After EHLO the ordinary command timeout applies: 2 s of silence is fine.
    let mut c = SmtpClient::on(connect_from(NORMAL, srv.smtp()).await).await;
    assert!(c.cmd("EHLO normal.test").await.starts_with("250"));
    tokio::time::sleep(secs(2)).await;
    assert!(c.cmd("NOOP").await.starts_with("250"));
}

/// A command line a byte every 300 ms never waits 3 s for one read, so
/// only a bound on the whole line ends it.
#[tokio::test]
async fn a_command_line_dribbled_a_byte_at_a_time_is_cut_off() {
    let srv = TestServer::start_with(&[ALICE], short).await;
    let script = Script::bytes("EHLO slow.test\r\n", "MAIL FROM:<someone.very.slow@remote.test>\r\n", ms(300));
    for addr in [srv.smtp(), srv.addrs().submission[0]] {
        let e = dribble(ATTACKER, addr, &script, GIVE_UP).await;
        assert_cut(&e, "no complete command within 3 s", secs(3) + SLACK);
        assert!(e.lived >= ms(2500), "cut before the line timeout: {e:?}");
    }
}

#[tokio::test]
async fn dribbled_message_data_is_cut_off_by_the_minimum_rate() {
    let srv = TestServer::start_with(&[ALICE], short).await;
    for start in ["DATA", "BDAT 1000 LAST"] {
        let script = Script::bytes(&to_data(start), "Subject: slow\r\n\r\nvery slow\r\n", ms(300));
        let e = dribble(ATTACKER, srv.smtp(), &script, GIVE_UP).await;
        // 2 s of grace plus what the few octets sent pay for.
        assert_cut(&e, "too slow", secs(2) + SLACK);
        assert!(e.said.contains("\r\n421 4.4.2 message data too slow (under 200 octets per second)"), "{e:?}");
    }
    // A message at a normal pace is not affected, in a session that began a while ago.
    let mut c = SmtpClient::on(connect_from(NORMAL, srv.smtp()).await).await;
    assert!(c.cmd("EHLO normal.test").await.starts_with("250"));
    tokio::time::sleep(secs(2)).await;
    let r = c.transaction("MAIL FROM:<x@remote.test>", &[&format!("RCPT TO:<{ALICE}>")], &message(1, ALICE)).await;
    assert!(r.starts_with("250"), "{r}");
}

/// 400 octets a second is over the minimum rate, but the message never ends.
#[tokio::test]
async fn endless_message_data_is_cut_off_by_the_data_deadline() {
    let srv = TestServer::start_with(&[ALICE], short).await;
    let mut line = vec![b'x'; 398];
    line.extend_from_slice(b"\r\n");
    for start in ["DATA", "BDAT 100000000 LAST"] {
        let script = Script::pieces(&to_data(start), &line, ms(1000));
        let e = dribble(ATTACKER, srv.smtp(), &script, GIVE_UP).await;
        assert_cut(&e, "message not received within 6 s", secs(6) + SLACK);
        assert!(e.lived >= ms(5500), "cut before the data deadline: {e:?}");
    }
}

#[tokio::test]
async fn a_busy_session_is_cut_off_by_the_session_deadline() {
    let srv = TestServer::start_with(&[ALICE], short).await;
    let script = Script::pieces("EHLO busy.test\r\n", b"NOOP\r\n", ms(500));
    let e = dribble(ATTACKER, srv.addrs().submission[0], &script, GIVE_UP).await;
    assert_cut(&e, "session time limit of 8 s reached", secs(8) + SLACK);
    assert!(e.lived >= ms(7500), "cut before the session deadline: {e:?}");
    assert!(e.said.matches("250 2.0.0 OK").count() >= 10, "the NOOPs were answered: {e:?}");
}

/// The kinds of dribbler the flood is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// EHLO a byte a second on MX.
    MxLine,
    /// DATA on MX, then the message a byte a second.
    MxData,
    /// A command line a byte a second on submission, after EHLO.
    SubmissionLine,
    /// Complete NOOPs twice a second on submission, for ever.
    SubmissionBusy,
    /// IMAP LOGIN a byte a second.
    ImapLogin,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 6 {
            0 => Kind::MxLine,
            1 => Kind::MxData,
            2 => Kind::SubmissionLine,
            3 => Kind::SubmissionBusy,
            _ => Kind::ImapLogin,
        }
    }

    fn script(self) -> Script {
        let sec = secs(1);
        match self {
            Kind::MxLine => Script::bytes("", "EHLO dribbler.test\r\n", sec),
            Kind::MxData => Script::bytes(&to_data("DATA"), "Subject: drip\r\n\r\ndrip drip drip\r\n", sec),
            Kind::SubmissionLine => Script::bytes("EHLO dribbler.test\r\n", "AUTH PLAIN AGFsaWNlAHBhc3M=\r\n", sec),
            Kind::SubmissionBusy => Script::pieces("EHLO dribbler.test\r\n", b"NOOP\r\n", ms(500)),
            Kind::ImapLogin => Script::bytes("", "a LOGIN alice@example.org guess\r\n", sec),
        }
    }

    /// What the server must have said last to an admitted dribbler, and by when.
    fn cut(self) -> (&'static str, Duration) {
        match self {
            Kind::MxLine => ("421 4.4.2 timeout: no complete command within 2 s", secs(2)),
            Kind::MxData => ("421 4.4.2 message data too slow", secs(2)),
            Kind::SubmissionLine => ("421 4.4.2 timeout: no complete command within 3 s", secs(3)),
            Kind::SubmissionBusy => ("421 4.4.2 session time limit", secs(8)),
            Kind::ImapLogin => ("* BYE Autologout; login took too long", secs(6)),
        }
    }
}

/// One round of normal use from 127.0.0.3: a message over MX and one over
/// submission to alice, then alice reads her INBOX over IMAP. Returns how
/// long the round took.
async fn normal_round(srv: &TestServer, round: usize) -> Duration {
    let start = Instant::now();
    let mut mx = SmtpClient::on(connect_from(NORMAL, srv.smtp()).await).await;
    let r = mx.send("friend@remote.test", &[ALICE], &message(round, ALICE)).await;
    assert!(r.starts_with("250"), "MX: {r}");
    let mut sub = SmtpClient::on(connect_from(NORMAL, srv.addrs().submission[0]).await).await;
    assert!(sub.cmd("EHLO laptop.test").await.starts_with("250"));
    let r = sub.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{BOB}\0{PASSWORD}").as_bytes()))).await;
    assert!(r.starts_with("235"), "{r}");
    let body = format!("From: <{BOB}>\r\nTo: <{ALICE}>\r\nSubject: round {round}\r\n\r\nhi\r\n");
    let r = sub.transaction(&format!("MAIL FROM:<{BOB}>"), &[&format!("RCPT TO:<{ALICE}>")], body.as_bytes()).await;
    assert!(r.starts_with("250"), "submission: {r}");
    let mut imap = ImapClient::on(connect_from(NORMAL, srv.imap()).await).await;
    let r = imap.command(&format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{}", r.status);
    let r = imap.command("SELECT INBOX").await;
    assert_eq!(exists(&r.text()), Some(2 * (round as u32 + 1)), "{}", r.text());
    let r = imap.command(&format!("FETCH {} BODY.PEEK[HEADER.FIELDS (SUBJECT)]", 2 * (round + 1))).await;
    assert!(r.text().contains(&format!("Subject: round {round}")), "{}", r.text());
    start.elapsed()
}

/// Issue 11's slow-client test: 200 connections from 127.0.0.2 dribbling a
/// byte a second over MX, submission and IMAP (and reconnecting whenever
/// they are closed or refused) do not keep a normal client on 127.0.0.3
/// from delivering mail and reading it, and every dribbler the caps let in
/// is cut off by its deadline. The caps are the defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dribblers_do_not_stop_a_normal_client() {
    let srv = Arc::new(
        TestServer::start_with(&[ALICE, BOB], |c| {
            short(c);
            let d = Config::default();
            c.smtp.mx_max_connections_per_ip = d.smtp.mx_max_connections_per_ip;
            c.smtp.submission_max_connections_per_ip = d.smtp.submission_max_connections_per_ip;
            c.imap.max_connections_per_ip = d.imap.max_connections_per_ip;
            c.imap.max_unauthenticated_per_ip = d.imap.max_unauthenticated_per_ip;
        })
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(Kind, Ending)>::new()));
    let mut dribblers = tokio::task::JoinSet::new();
    for i in 0..200 {
        let kind = Kind::of(i);
        let addr = match kind {
            Kind::MxLine | Kind::MxData => srv.smtp(),
            Kind::SubmissionLine | Kind::SubmissionBusy => srv.addrs().submission[0],
            Kind::ImapLogin => srv.imap(),
        };
        let (stop, seen) = (stop.clone(), seen.clone());
        dribblers.spawn(async move {
            let script = kind.script();
            while !stop.load(Ordering::Relaxed) {
                let e = dribble(ATTACKER, addr, &script, GIVE_UP).await;
                let refused = e.first_line().contains("Too many connections");
                seen.lock().unwrap().push((kind, e));
                if refused {
                    // Refused at once: try again a little later, as a flood would.
                    tokio::time::sleep(secs(1)).await;
                }
            }
        });
    }
    // Let the flood take every slot it can.
    tokio::time::sleep(ms(1500)).await;
    let mut rounds = Vec::new();
    for round in 0..3 {
        let took = normal_round(&srv, round).await;
        rounds.push(took);
        tokio::time::sleep(secs(3)).await;
    }
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(GIVE_UP, async { while dribblers.join_next().await.is_some() {} })
        .await
        .expect("a dribbler was never closed");
    eprintln!("normal rounds under the flood took {rounds:?}");
    for took in &rounds {
        assert!(*took < secs(5), "a normal round took {took:?}");
    }

    let seen = seen.lock().unwrap();
    let mut admitted = std::collections::HashMap::<&str, usize>::new();
    let mut refused = 0;
    for (kind, e) in seen.iter() {
        let first = e.first_line();
        if first.starts_with("421 4.7.0 Too many connections") || first == "* BYE Too many connections" {
            refused += 1;
            continue;
        }
        assert!(first.starts_with("220 ") || first.starts_with("* OK"), "{kind:?}: {e:?}");
        let (last, within) = kind.cut();
        assert!(e.closed && e.last_line().starts_with(last), "{kind:?} not cut off with {last:?}: {e:?}");
        assert!(e.lived <= within + SLACK, "{kind:?} lived {:?}: {e:?}", e.lived);
        *admitted.entry(last).or_default() += 1;
    }
    eprintln!("{} dribbler connections: {refused} refused at once, cut off: {admitted:?}", seen.len());
    assert!(refused > 100, "the per-address caps refused only {refused}");
    for kind in [Kind::MxLine, Kind::MxData, Kind::SubmissionLine, Kind::SubmissionBusy, Kind::ImapLogin] {
        let n = seen.iter().filter(|(k, e)| *k == kind && !e.first_line().contains("Too many")).count();
        assert!(n > 0, "no {kind:?} dribbler was ever admitted");
    }
}
