//! Durability: nothing acknowledged is lost when the daemon is SIGKILLed in
//! the middle of a delivery storm (twice), also while IMAP clients MOVE
//! messages, or while the outbound queue delivers to a remote server (each
//! acknowledged message arrives at least once; duplicates are counted), and
//! the index can be rebuilt from the body files and the placement journal
//! after it is deleted — moved messages where they went. The IMAP side
//! (pipelined APPEND, MOVE, EXPUNGE) is in `crash_imap.rs`.

use crate::util::dns::{TestDns, Zone};
use crate::util::mailhost::{base64, common_port, host_config};
use crate::util::pipeline::{self, Rng};
use crate::util::smtp::{FakeMx, FakeState};
use crate::util::{self, ChildServer, ImapClient, imap::exists, server::add_user};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USER: &str = "dora@example.org";

/// Sends messages until the connection breaks; records each number the server acknowledged with 250.
async fn storm_client(addr: SocketAddr, client: usize, acked: Arc<Mutex<BTreeSet<usize>>>) {
    let envelope = Envelope { from: "s@remote.test".into(), to: USER.into(), auth: None, count: usize::MAX };
    envelope_storm(addr, client, acked, envelope).await
}

/// Who a storm client sends as, to whom, and the AUTH PLAIN argument on submission ports.
#[derive(Clone)]
struct Envelope {
    from: String,
    to: String,
    auth: Option<String>,
    /// Messages to send at most.
    count: usize,
}

async fn envelope_storm(addr: SocketAddr, client: usize, acked: Arc<Mutex<BTreeSet<usize>>>, envelope: Envelope) {
    let Envelope { from, to, auth, count } = envelope;
    let Ok(stream) = TcpStream::connect(addr).await else { return };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line);
            }
        }
    }
    if reply(&mut r).await.is_none() {
        return;
    }
    if w.write_all(b"EHLO storm.test\r\n").await.is_err() || reply(&mut r).await.is_none() {
        return;
    }
    if let Some(auth) = auth {
        let line = format!("AUTH PLAIN {auth}\r\n");
        if w.write_all(line.as_bytes()).await.is_err() || !reply(&mut r).await.is_some_and(|l| l.starts_with("235")) {
            return;
        }
    }
    for i in 0..count {
        let n = client * 100_000 + i;
        let msg = String::from_utf8(util::message(n, &to)).unwrap().replace("sender@remote.test", &from).into_bytes();
        let mut tx = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n").into_bytes();
        if w.write_all(&tx).await.is_err() {
            return;
        }
        for _ in 0..3 {
            match reply(&mut r).await {
                Some(l) if l.starts_with('2') || l.starts_with('3') => {}
                other => {
                    eprintln!("storm client {client} stopped: {other:?}");
                    return;
                }
            }
        }
        tx.clear();
        tx.extend_from_slice(&msg);
        tx.extend_from_slice(b".\r\n");
        if w.write_all(&tx).await.is_err() {
            return;
        }
        match reply(&mut r).await {
            Some(l) if l.starts_with("250") => {
                acked.lock().unwrap().insert(n);
            }
            other => {
                eprintln!("storm client {client} stopped after DATA: {other:?}");
                return;
            }
        }
    }
}

/// Every Message-ID number in the user's INBOX, read over IMAP.
async fn inbox_numbers(imap: SocketAddr) -> (u32, BTreeSet<usize>) {
    mailbox_numbers(imap, "INBOX").await
}

/// Every Message-ID number in one of the user's mailboxes, read over IMAP.
async fn mailbox_numbers(imap: SocketAddr, mailbox: &str) -> (u32, BTreeSet<usize>) {
    let mut c = ImapClient::login(imap, USER, util::PASSWORD).await;
    let r = c.command(&format!("SELECT {mailbox}")).await;
    let count = exists(&r.text()).unwrap();
    let mut found = BTreeSet::new();
    if count > 0 {
        let r = c.command("FETCH 1:* BODY.PEEK[]").await;
        assert!(r.ok(), "{}", r.status);
        for part in r.text().split("Message-ID: <msg-").skip(1) {
            found.insert(part.split('@').next().unwrap().parse().unwrap());
        }
    }
    (count, found)
}

async fn storm_then_kill(server: &mut ChildServer, acked: &Arc<Mutex<BTreeSet<usize>>>, round: usize) {
    let addr = server.smtp();
    let before = acked.lock().unwrap().len();
    let clients: Vec<_> = (0..16).map(|c| tokio::spawn(storm_client(addr, round * 100 + c, acked.clone()))).collect();
    // Kill while deliveries are in flight: after a few dozen acknowledgements.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < before + 60 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill_hard();
    for c in clients {
        c.await.unwrap();
    }
    assert!(acked.lock().unwrap().len() >= before + 60, "the storm made too little progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_storm_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut server = ChildServer::spawn(dir.path());
    add_user(&server, USER);
    for round in 0..2 {
        storm_then_kill(&mut server, &acked, round).await;
        server = ChildServer::spawn(dir.path());
    }
    let (count, found) = inbox_numbers(server.imap()).await;
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<_> = acked.difference(&found).collect();
    println!(
        "SIGKILL storm: {} acknowledged, {} in INBOX ({count} messages), {} lost",
        acked.len(),
        found.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(count as usize, found.len(), "every message is whole and listed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_rebuild_restores_every_message_after_the_index_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::spawn(dir.path());
    add_user(&server, USER);
    let mut smtp = util::SmtpClient::connect(server.smtp()).await;
    for n in 0..25 {
        let r = smtp.send("s@remote.test", &[USER], &util::message(n, USER)).await;
        assert!(r.starts_with("250"), "{r}");
        smtp.cmd("RSET").await;
    }
    // Rebuild refuses while the daemon runs.
    let (ok, _, err) = server.cli(&["store", "rebuild"], None);
    assert!(!ok && err.contains("running"), "{err}");
    assert!(server.terminate(), "SIGTERM must exit 0");

    std::fs::remove_dir_all(server.data.join("index")).unwrap();
    let (ok, out, err) = server.cli(&["store", "rebuild"], None);
    assert!(ok, "rebuild failed: {out} {err}");
    assert!(out.contains("25 messages"), "{out}");

    let server = ChildServer::spawn(dir.path());
    let (count, found) = inbox_numbers(server.imap()).await;
    assert_eq!(count, 25);
    assert_eq!(found, (0..25).collect());
}

/// Moves the first few INBOX messages to Archive, again and again, until the
/// connection breaks; counts the MOVEs the server acknowledged.
async fn mover(imap: SocketAddr, moves: Arc<Mutex<usize>>) {
    let Ok(stream) = TcpStream::connect(imap).await else { return };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    /// Reads to the tagged reply; `None` when the connection broke.
    async fn tagged(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, tag: &str) -> Option<String> {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            if line.starts_with(tag) {
                return Some(line);
            }
        }
    }
    let login = format!("a LOGIN \"{USER}\" \"{}\"\r\nb SELECT INBOX\r\n", util::PASSWORD);
    if w.write_all(login.as_bytes()).await.is_err() || tagged(&mut r, "a ").await.is_none() {
        return;
    }
    if !tagged(&mut r, "b ").await.is_some_and(|l| l.starts_with("b OK")) {
        return;
    }
    for i in 0.. {
        let tag = format!("m{i} ");
        if w.write_all(format!("{tag}MOVE 1:3 Archive\r\n").as_bytes()).await.is_err() {
            return;
        }
        match tagged(&mut r, &tag).await {
            Some(l) if l.starts_with(&format!("{tag}OK")) => *moves.lock().unwrap() += 1,
            // An empty INBOX early on: try again shortly.
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_moving_then_rebuild_keeps_every_message_where_it_went() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let moves = Arc::new(Mutex::new(0));
    let mut server = ChildServer::spawn(dir.path());
    add_user(&server, USER);
    for round in 0..2 {
        let movers: Vec<_> = (0..2).map(|_| tokio::spawn(mover(server.imap(), moves.clone()))).collect();
        storm_then_kill(&mut server, &acked, round + 10).await;
        for m in movers {
            m.await.unwrap();
        }
        server = ChildServer::spawn(dir.path());
    }
    let (n_inbox, inbox) = mailbox_numbers(server.imap(), "INBOX").await;
    let (n_archive, archive) = mailbox_numbers(server.imap(), "Archive").await;
    let acked = acked.lock().unwrap().clone();
    let moves = *moves.lock().unwrap();
    println!(
        "SIGKILL storm with MOVEs: {} acknowledged, {moves} MOVEs acknowledged, {} in INBOX, {} in Archive",
        acked.len(),
        inbox.len(),
        archive.len()
    );
    assert!(moves > 0 && !archive.is_empty(), "no MOVE happened");
    let both: BTreeSet<_> = inbox.union(&archive).copied().collect();
    let lost: Vec<_> = acked.difference(&both).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(inbox.is_disjoint(&archive), "a moved message is in both mailboxes");
    assert_eq!((n_inbox as usize, n_archive as usize), (inbox.len(), archive.len()), "duplicates");

    // Lose the index: the rebuild puts every message back where it was, not where it arrived.
    assert!(server.terminate(), "SIGTERM must exit 0");
    std::fs::remove_dir_all(server.data.join("index")).unwrap();
    let (ok, out, err) = server.cli(&["store", "rebuild"], None);
    assert!(ok, "rebuild failed: {out} {err}");
    let server = ChildServer::spawn(dir.path());
    assert_eq!(mailbox_numbers(server.imap(), "INBOX").await.1, inbox);
    assert_eq!(mailbox_numbers(server.imap(), "Archive").await.1, archive);
}

const ALICE: &str = "alice@a.test";
const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The remote server the queue delivers to.
const IP_SINK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 16);

/// The `msg-N` numbers the sink received, with how many times each came.
fn received(sink: &FakeState) -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    for t in sink.transactions() {
        if let Some(n) = pipeline::number(&t.data) {
            *out.entry(n).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_queue_delivery_loses_no_acknowledged_message() {
    // Three clients submit 40 messages each to a remote domain while the
    // queue delivers to its server (a sink that takes 5 ms per message); SIGKILL at a seeded
    // random moment once the sink has some of them, three times; restart.
    // Every message acknowledged with 250 must arrive at least once.
    let seed = pipeline::seed();
    let mut rng = Rng::new(seed ^ 0x9e0e);
    let port = common_port(&[IpAddr::V4(IP_A), IpAddr::V4(IP_SINK)]);
    let dns = TestDns::start(Zone::default().mx("sink.test", 10, "mx.sink.test").a("mx.sink.test", IP_SINK)).await;
    let sink = FakeState::new(&["8BITMIME", "PIPELINING"], Duration::from_millis(5));
    let _mx = FakeMx::start(SocketAddr::new(IP_SINK.into(), port), sink.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = host_config(dir.path(), "a.test", IP_A.into(), port, dns.addr);
    std::fs::write(dir.path().join("coimail.toml"), toml::to_string(&config).unwrap()).unwrap();
    let mut server = ChildServer::spawn(dir.path());
    assert!(server.cli(&["domain", "add", "a.test"], None).0);
    assert!(server.cli(&["user", "add", ALICE], Some(&format!("{}\n", util::PASSWORD))).0);
    let envelope = Envelope {
        from: ALICE.into(),
        to: "u@sink.test".into(),
        auth: Some(base64(format!("\0{ALICE}\0{}", util::PASSWORD).as_bytes())),
        count: 40,
    };
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut restarts = Vec::new();
    for round in 0..3 {
        let addr = server.addrs().submission[0];
        let clients: Vec<_> = (0..3)
            .map(|c| tokio::spawn(envelope_storm(addr, round * 100 + c, acked.clone(), envelope.clone())))
            .collect();
        let threshold = sink.transactions().len() + rng.range(15, 60) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while sink.transactions().len() < threshold && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 10))).await;
        server.kill_hard();
        for c in clients {
            c.await.unwrap();
        }
        assert!(sink.transactions().len() >= threshold, "the queue delivered too little before the kill");
        let started = Instant::now();
        server = ChildServer::spawn(dir.path());
        let mut smtp = util::SmtpClient::connect(server.addrs().submission[0]).await;
        assert!(smtp.cmd("EHLO laptop.test").await.starts_with("250"));
        restarts.push(started.elapsed().as_millis());
    }
    let acked = acked.lock().unwrap().clone();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let got = loop {
        let got = received(&sink);
        if acked.iter().all(|n| got.contains_key(n)) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drained = started.elapsed();
    let lost: Vec<_> = acked.iter().filter(|n| !got.contains_key(n)).collect();
    let duplicates: usize = got.values().map(|copies| copies - 1).sum();
    let unacked_delivered = got.keys().filter(|n| !acked.contains(n)).count();
    eprintln!(
        "SIGKILL during queue delivery (seed {seed}, 3 SIGKILLs): {} acknowledged, {} delivered \
         ({unacked_delivered} of them unacknowledged), {} lost, {duplicates} duplicate deliveries; \
         restart → serving {restarts:?} ms, last restart → every acknowledged one delivered {drained:?}",
        acked.len(),
        got.len(),
        lost.len()
    );
    if !lost.is_empty() {
        let (_, queue, _) = server.cli(&["queue", "list"], None);
        panic!("acknowledged, never delivered: {lost:?}; the queue holds: {queue}");
    }
}
