//! Durability over IMAP: several connections pipeline APPEND, MOVE or
//! STORE+EXPUNGE, the daemon is SIGKILLed at a seeded random moment (three
//! rounds on the same data), restarted, and every mailbox is read back and
//! compared with what the clients were told before the kill:
//! - an acknowledged APPEND is there exactly once, byte for byte, with the
//!   UID its APPENDUID named; an unanswered one at most once;
//! - an acknowledged MOVE left the message in the destination only; an
//!   unanswered one left it in exactly one of the two, its whole UID set
//!   together; a message no command touched did not move;
//! - an acknowledged EXPUNGE is gone and stays gone; nothing else is gone;
//! - UIDVALIDITY stays, UIDNEXT and HIGHESTMODSEQ never fall below what
//!   any client was shown, and the first change after the restart goes past
//!   them.
//!
//! `COIMAIL_CRASH_SEED=<n>` repeats a run; each test prints its numbers.

use crate::util::pipeline::{self, Mailbox, Rng, Seen, Shared, field, read_mailbox, total_oks};
use crate::util::{ChildServer, ImapClient, PASSWORD, server::add_user};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USER: &str = "erin@example.org";
const ROUNDS: usize = 3;
const CONNECTIONS: usize = 4;
/// Commands in flight per connection.
const WINDOW: usize = 8;

/// What the fault runs found, printed for docs/BENCHMARKS.md.
#[derive(Default)]
struct Faults {
    acknowledged: usize,
    unanswered: usize,
    unanswered_done: usize,
    lost: usize,
    duplicates: usize,
    restarts: Vec<Duration>,
}

impl Faults {
    fn print(&self, what: &str, seed: u64) {
        let ms: Vec<_> = self.restarts.iter().map(|d| d.as_millis()).collect();
        eprintln!(
            "{what} (seed {seed}, {ROUNDS} SIGKILLs): {} acknowledged, {} sent but unanswered ({} of them done), \
             {} lost, {} duplicates; restart → serving {ms:?} ms",
            self.acknowledged, self.unanswered, self.unanswered_done, self.lost, self.duplicates
        );
    }
}

/// A message of `n` with 0–40 lines of random printable filler, so a body
/// mixed up with another or cut short shows in the byte comparison.
fn message(n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut m = crate::util::message(n, USER);
    for _ in 0..rng.range(0, 40) {
        m.extend((0..70).map(|_| b'!' + (rng.next() % 94) as u8));
        m.extend_from_slice(b"\r\n");
    }
    m
}

fn append_command(tag: &str, mailbox: &str, flags: &str, msg: &[u8]) -> Vec<u8> {
    let mut cmd = format!("{tag} APPEND {mailbox} {flags}{{{}+}}\r\n", msg.len()).into_bytes();
    cmd.extend_from_slice(msg);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

/// `[APPENDUID <uidvalidity> <uid>]` of a tagged OK.
fn appenduid(status: &str) -> Option<(u64, u64)> {
    let rest = status.split("[APPENDUID ").nth(1)?;
    let mut words = rest.split([' ', ']']);
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Starts the daemon on `dir` again; the time until a client has logged in
/// and selected INBOX.
async fn restart(dir: &Path) -> (ChildServer, Duration) {
    let started = Instant::now();
    let server = ChildServer::spawn(dir);
    let mut c = ImapClient::login(server.imap(), USER, PASSWORD).await;
    assert!(c.command("SELECT INBOX").await.ok());
    (server, started.elapsed())
}

/// Waits until the clients have `lo..hi` (seeded) OKs between them, a few
/// more milliseconds (seeded), then SIGKILLs.
async fn kill_at_random(server: &mut ChildServer, records: &[Shared], rng: &mut Rng, lo: u64, hi: u64) {
    let threshold = rng.range(lo, hi) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total_oks(records) < threshold && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(rng.range(0, 10))).await;
    server.kill_hard();
    assert!(total_oks(records) >= threshold, "too little progress before the kill: {}", total_oks(records));
}

/// One fault of a storm: SIGKILL at a seeded moment (see [`kill_at_random`])
/// while `tasks` pipeline their commands, then both they and the status
/// poller run out, and the daemon starts again on the same data; the time
/// until it serves goes into `faults`.
async fn kill_and_restart(
    server: &mut ChildServer,
    dir: &Path,
    (records, tasks, poller): (&[Shared], Vec<tokio::task::JoinHandle<()>>, tokio::task::JoinHandle<()>),
    rng: &mut Rng,
    (lo, hi): (u64, u64),
    faults: &mut Faults,
) {
    kill_at_random(server, records, rng, lo, hi).await;
    for t in tasks {
        t.await.unwrap();
    }
    poller.await.unwrap();
    let (restarted, took) = restart(dir).await;
    *server = restarted;
    faults.restarts.push(took);
}

/// Counters after a restart against what clients saw before the kill.
fn check_counters(name: &str, seen: Option<Seen>, before: &Mailbox, now: &Mailbox) {
    assert_eq!(now.uidvalidity, before.uidvalidity, "{name}: UIDVALIDITY changed");
    assert!(now.uidnext >= before.uidnext, "{name}: UIDNEXT {} < {} before", now.uidnext, before.uidnext);
    assert!(now.highestmodseq >= before.highestmodseq, "{name}: HIGHESTMODSEQ went back");
    if let Some(seen) = seen {
        assert_eq!(now.uidvalidity, seen.uidvalidity, "{name}: UIDVALIDITY differs from the one shown");
        assert!(
            now.uidnext >= seen.uidnext,
            "{name}: UIDNEXT {} < {} shown before the kill",
            now.uidnext,
            seen.uidnext
        );
        assert!(
            now.highestmodseq >= seen.highestmodseq,
            "{name}: HIGHESTMODSEQ {} < {} shown before the kill",
            now.highestmodseq,
            seen.highestmodseq
        );
    }
    assert!(now.uidnext > now.max_uid(), "{name}: UIDNEXT {} not above UID {}", now.uidnext, now.max_uid());
}

/// The first change after the last restart goes past every counter shown before it.
async fn check_next_append(server: &ChildServer, last: &Mailbox) {
    let mut c = ImapClient::login(server.imap(), USER, PASSWORD).await;
    let msg = crate::util::message(999_999, USER);
    let tag = c.tag();
    c.send_raw(&append_command(&tag, "INBOX", "", &msg)).await;
    let r = c.until_tagged(&tag).await;
    let (uidvalidity, uid) = appenduid(&r.status).expect("APPENDUID");
    assert_eq!(uidvalidity, last.uidvalidity);
    assert!(uid >= last.uidnext, "UID {uid} reused: UIDNEXT was {}", last.uidnext);
    let r = c.command("STATUS INBOX (HIGHESTMODSEQ)").await;
    assert!(field(&r.text(), "HIGHESTMODSEQ").unwrap() > last.highestmodseq);
}

type SeenMap = Arc<Mutex<BTreeMap<String, Seen>>>;

fn start_poller(server: &ChildServer, mailboxes: &[&str]) -> (SeenMap, tokio::task::JoinHandle<()>) {
    let seen = SeenMap::default();
    let names = mailboxes.iter().map(|m| (*m).to_owned()).collect();
    (seen.clone(), tokio::spawn(pipeline::poll_status(server.imap(), USER.to_owned(), names, seen)))
}

fn seen(map: &SeenMap, mailbox: &str) -> Option<Seen> {
    map.lock().unwrap().get(mailbox).copied()
}

/// Appends `count` messages numbered from `first` over four connections
/// (no kill); returns their bytes.
async fn preload(server: &ChildServer, rng: &mut Rng, first: usize, count: usize) -> BTreeMap<usize, Vec<u8>> {
    let mut bodies = BTreeMap::new();
    let mut records = Vec::new();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let mut cmds = Vec::new();
        for n in (first + c..first + count).step_by(CONNECTIONS) {
            let msg = message(n, rng);
            cmds.push((format!("p{n}"), append_command(&format!("p{n}"), "INBOX", "", &msg)));
            bodies.insert(n, msg);
        }
        let rec = Shared::default();
        records.push(rec.clone());
        tasks.push(tokio::spawn(pipeline::run(server.imap(), USER, "INBOX", cmds, WINDOW, rec)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(total_oks(&records), count, "preload");
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_pipelined_appends_keeps_each_acknowledged_append_once() {
    let seed = pipeline::seed();
    let mut rng = Rng::new(seed ^ 0x00a9_9e4d);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::spawn(dir.path());
    add_user(&server, USER);
    let mut before = read_mailbox(&mut ImapClient::login(server.imap(), USER, PASSWORD).await, "INBOX").await;
    let mut bodies = BTreeMap::new();
    // Number → the UID its APPENDUID named (or, for an unanswered one found
    // after the restart, the UID it was found at: shown to a client now).
    let mut durable: BTreeMap<usize, u64> = BTreeMap::new();
    let mut faults = Faults::default();
    for round in 0..ROUNDS {
        let (seen_map, poller) = start_poller(&server, &["INBOX"]);
        let mut records = Vec::new();
        let mut tasks = Vec::new();
        let mut tags = Vec::new();
        for c in 0..CONNECTIONS {
            let mut cmds = Vec::new();
            let mut numbers = BTreeMap::new();
            for i in 0..400 {
                let n = round * 10_000 + c * 1_000 + i;
                let msg = message(n, &mut rng);
                let flags = if n % 2 == 0 { "(\\Seen) " } else { "" };
                let tag = format!("a{i}");
                cmds.push((tag.clone(), append_command(&tag, "INBOX", flags, &msg)));
                numbers.insert(tag, n);
                bodies.insert(n, msg);
            }
            let rec = Shared::default();
            records.push(rec.clone());
            tags.push(numbers);
            tasks.push(tokio::spawn(pipeline::run(server.imap(), USER, "INBOX", cmds, WINDOW, rec)));
        }
        kill_and_restart(&mut server, dir.path(), (&records, tasks, poller), &mut rng, (20, 200), &mut faults).await;

        let mut acked = BTreeMap::new();
        let mut unanswered = BTreeSet::new();
        for (rec, numbers) in records.iter().zip(&tags) {
            let rec = rec.lock().unwrap();
            for (tag, &n) in numbers {
                if rec.ok(tag) {
                    let (_, uid) = appenduid(&rec.answers[tag]).expect("APPENDUID in the OK");
                    acked.insert(n, uid);
                } else if let Some(status) = rec.answers.get(tag) {
                    panic!("APPEND {n} refused: {status}");
                } else if rec.sent.contains(tag) {
                    unanswered.insert(n);
                }
            }
        }
        faults.acknowledged += acked.len();
        faults.unanswered += unanswered.len();
        let inbox = read_mailbox(&mut ImapClient::login(server.imap(), USER, PASSWORD).await, "INBOX").await;
        check_counters("INBOX", seen(&seen_map, "INBOX"), &before, &inbox);
        let found = inbox.by_number();
        faults.duplicates += found.values().filter(|copies| copies.len() > 1).count();
        durable.extend(acked.iter().map(|(&n, &uid)| (n, uid)));
        let lost: Vec<_> = durable.keys().filter(|n| !found.contains_key(n)).collect();
        faults.lost += lost.len();
        assert!(lost.is_empty(), "round {round}: acknowledged or seen, then lost: {lost:?}");
        assert!(inbox.uidnext > acked.values().copied().max().unwrap_or(0));
        for (n, copies) in &found {
            let Some(body) = bodies.get(n) else { panic!("a message nobody appended: {n}") };
            assert_eq!(copies.len(), 1, "round {round}: message {n} is there {} times", copies.len());
            assert!(&copies[0].bytes == body, "round {round}: message {n} differs from what was appended");
            if let Some(&uid) = durable.get(n) {
                assert_eq!(copies[0].uid, uid, "message {n} is not at the UID APPENDUID named");
            } else {
                assert!(unanswered.contains(n), "message {n} was never sent in round {round}");
                faults.unanswered_done += 1;
                durable.insert(*n, copies[0].uid);
            }
            if n % 2 == 0 {
                assert!(copies[0].flags.contains("\\Seen"), "message {n} lost its flag: {}", copies[0].flags);
            }
        }
        before = inbox;
    }
    faults.print("SIGKILL during pipelined APPEND", seed);
    check_next_append(&server, &before).await;
}

/// Where each message is: `true` for the destination.
fn places(inbox: &Mailbox, archive: &Mailbox, bodies: &BTreeMap<usize, Vec<u8>>) -> BTreeMap<usize, bool> {
    let (i, a) = (inbox.by_number(), archive.by_number());
    let mut out = BTreeMap::new();
    for (n, body) in bodies {
        let copies: Vec<_> = i.get(n).into_iter().flatten().chain(a.get(n).into_iter().flatten()).collect();
        assert_eq!(
            copies.len(),
            1,
            "message {n}: {} in INBOX, {} in Archive",
            i.get(n).map_or(0, Vec::len),
            a.get(n).map_or(0, Vec::len)
        );
        assert!(&copies[0].bytes == body, "message {n} differs from what was appended");
        out.insert(*n, a.contains_key(n));
    }
    assert_eq!(inbox.messages.len() + archive.messages.len(), bodies.len(), "messages nobody appended");
    out
}

/// INBOX's messages as (number, UID), in a seeded order, cut into UID sets
/// of 1–3 for each connection.
fn groups(inbox: &Mailbox, rng: &mut Rng) -> Vec<Vec<Vec<(usize, u64)>>> {
    let mut all: Vec<_> = inbox.messages.iter().map(|m| (pipeline::number(&m.bytes).unwrap(), m.uid)).collect();
    rng.shuffle(&mut all);
    let mut out = vec![Vec::new(); CONNECTIONS];
    let mut rest = all.as_slice();
    let mut c = 0;
    while !rest.is_empty() {
        let take = (rng.range(1, 4) as usize).min(rest.len());
        out[c % CONNECTIONS].push(rest[..take].to_vec());
        rest = &rest[take..];
        c += 1;
    }
    out
}

fn uid_set(group: &[(usize, u64)]) -> String {
    group.iter().map(|(_, uid)| uid.to_string()).collect::<Vec<_>>().join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_pipelined_moves_leaves_each_message_in_exactly_one_mailbox() {
    let seed = pipeline::seed();
    let mut rng = Rng::new(seed ^ 0x3073);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::spawn(dir.path());
    add_user(&server, USER);
    let bodies = preload(&server, &mut rng, 0, 480).await;
    let mut c = ImapClient::login(server.imap(), USER, PASSWORD).await;
    let (mut inbox, mut archive) = (read_mailbox(&mut c, "INBOX").await, read_mailbox(&mut c, "Archive").await);
    let mut placed = places(&inbox, &archive, &bodies);
    let mut faults = Faults::default();
    for round in 0..ROUNDS {
        let (seen_map, poller) = start_poller(&server, &["INBOX", "Archive"]);
        let plan = groups(&inbox, &mut rng);
        let mut records = Vec::new();
        let mut tasks = Vec::new();
        for groups in &plan {
            let cmds = groups
                .iter()
                .enumerate()
                .map(|(i, g)| (format!("m{i}"), format!("m{i} UID MOVE {} Archive\r\n", uid_set(g)).into_bytes()))
                .collect();
            let rec = Shared::default();
            records.push(rec.clone());
            tasks.push(tokio::spawn(pipeline::run(server.imap(), USER, "INBOX", cmds, WINDOW, rec)));
        }
        kill_and_restart(&mut server, dir.path(), (&records, tasks, poller), &mut rng, (10, 50), &mut faults).await;
        let mut c = ImapClient::login(server.imap(), USER, PASSWORD).await;
        let (i2, a2) = (read_mailbox(&mut c, "INBOX").await, read_mailbox(&mut c, "Archive").await);
        check_counters("INBOX", seen(&seen_map, "INBOX"), &inbox, &i2);
        check_counters("Archive", seen(&seen_map, "Archive"), &archive, &a2);
        let now = places(&i2, &a2, &bodies);
        let mut touched = BTreeSet::new();
        for (groups, rec) in plan.iter().zip(&records) {
            let rec = rec.lock().unwrap();
            for (i, g) in groups.iter().enumerate() {
                let tag = format!("m{i}");
                let moved: Vec<bool> = g.iter().map(|(n, _)| now[n]).collect();
                touched.extend(g.iter().map(|(n, _)| *n));
                if rec.ok(&tag) {
                    faults.acknowledged += 1;
                    if moved.contains(&false) {
                        faults.lost += 1;
                    }
                    assert!(!moved.contains(&false), "round {round}: acknowledged MOVE of {g:?} undone: {moved:?}");
                } else if let Some(status) = rec.answers.get(&tag) {
                    panic!("MOVE {g:?} refused: {status}");
                } else if rec.sent.contains(&tag) {
                    faults.unanswered += 1;
                    faults.unanswered_done += usize::from(moved[0]);
                    assert!(moved.iter().all(|&m| m == moved[0]), "round {round}: half a MOVE of {g:?}: {moved:?}");
                } else {
                    assert!(!moved.contains(&true), "round {round}: MOVE never sent, yet {g:?} moved");
                }
            }
        }
        for (n, was) in &placed {
            if !touched.contains(n) {
                assert_eq!(now[n], *was, "round {round}: message {n} moved without a MOVE");
            }
        }
        (inbox, archive, placed) = (i2, a2, now);
    }
    faults.print("SIGKILL during pipelined UID MOVE (counted per command)", seed);
    check_next_append(&server, &inbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_pipelined_expunges_removes_exactly_what_was_acknowledged() {
    let seed = pipeline::seed();
    let mut rng = Rng::new(seed ^ 0xe4b0);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::spawn(dir.path());
    add_user(&server, USER);
    let bodies = preload(&server, &mut rng, 0, 480).await;
    let mut inbox = read_mailbox(&mut ImapClient::login(server.imap(), USER, PASSWORD).await, "INBOX").await;
    let mut gone: BTreeSet<usize> = BTreeSet::new();
    let mut faults = Faults::default();
    for round in 0..ROUNDS {
        let (seen_map, poller) = start_poller(&server, &["INBOX"]);
        let plan = groups(&inbox, &mut rng);
        let mut records = Vec::new();
        let mut tasks = Vec::new();
        for groups in &plan {
            let mut cmds = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                let set = uid_set(g);
                cmds.push((
                    format!("d{i}"),
                    format!("d{i} UID STORE {set} +FLAGS.SILENT (\\Deleted)\r\n").into_bytes(),
                ));
                cmds.push((format!("x{i}"), format!("x{i} UID EXPUNGE {set}\r\n").into_bytes()));
            }
            let rec = Shared::default();
            records.push(rec.clone());
            tasks.push(tokio::spawn(pipeline::run(server.imap(), USER, "INBOX", cmds, WINDOW, rec)));
        }
        kill_and_restart(&mut server, dir.path(), (&records, tasks, poller), &mut rng, (20, 100), &mut faults).await;
        let now = read_mailbox(&mut ImapClient::login(server.imap(), USER, PASSWORD).await, "INBOX").await;
        check_counters("INBOX", seen(&seen_map, "INBOX"), &inbox, &now);
        let found = now.by_number();
        faults.duplicates += found.values().filter(|copies| copies.len() > 1).count();
        let mut touched = BTreeSet::new();
        for (groups, rec) in plan.iter().zip(&records) {
            let rec = rec.lock().unwrap();
            for (i, g) in groups.iter().enumerate() {
                let (store, expunge) = (format!("d{i}"), format!("x{i}"));
                let present: Vec<bool> = g.iter().map(|(n, _)| found.contains_key(n)).collect();
                touched.extend(g.iter().map(|(n, _)| *n));
                for tag in [&store, &expunge] {
                    if let Some(status) = rec.answers.get(tag).filter(|s| !s.starts_with("OK")) {
                        panic!("{tag} for {g:?} refused: {status}");
                    }
                }
                if rec.ok(&expunge) {
                    faults.acknowledged += 1;
                    if present.contains(&true) {
                        faults.lost += 1;
                    }
                    assert!(
                        !present.contains(&true),
                        "round {round}: acknowledged EXPUNGE of {g:?} undone: {present:?}"
                    );
                } else {
                    if rec.sent.contains(&expunge) {
                        faults.unanswered += 1;
                        faults.unanswered_done += usize::from(!present[0]);
                        assert!(present.iter().all(|&p| p == present[0]), "round {round}: half an EXPUNGE of {g:?}");
                    } else {
                        assert!(!present.contains(&false), "round {round}: {g:?} gone without an EXPUNGE");
                    }
                    if rec.ok(&store) && present[0] {
                        for (n, _) in g {
                            assert!(found[n][0].flags.contains("\\Deleted"), "acknowledged \\Deleted lost on {n}");
                        }
                    }
                }
            }
        }
        for m in &inbox.messages {
            let n = pipeline::number(&m.bytes).unwrap();
            if !touched.contains(&n) {
                assert!(found.contains_key(&n), "round {round}: message {n} gone, no EXPUNGE named it");
            }
        }
        for (n, copies) in &found {
            assert!(!gone.contains(n), "round {round}: expunged message {n} came back");
            assert_eq!(copies.len(), 1, "round {round}: message {n} is there {} times", copies.len());
            assert!(copies[0].bytes == bodies[n], "message {n} differs from what was appended");
        }
        gone.extend(bodies.keys().filter(|n| !found.contains_key(n)));
        inbox = now;
    }
    faults.print("SIGKILL during pipelined UID STORE \\Deleted + UID EXPUNGE (counted per EXPUNGE)", seed);
    check_next_append(&server, &inbox).await;
}
