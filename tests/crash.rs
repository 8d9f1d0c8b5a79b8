//! Durability: nothing acknowledged is lost when the daemon is SIGKILLed in
//! the middle of a delivery storm (twice), also while IMAP clients MOVE
//! messages, and the index can be rebuilt from the body files and the
//! placement journal after it is deleted — moved messages where they went.

use crate::util::{self, ChildServer, ImapClient, imap::exists, server::add_user};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USER: &str = "dora@example.org";

/// Sends messages until the connection breaks; records each number the server acknowledged with 250.
async fn storm_client(addr: SocketAddr, client: usize, acked: Arc<Mutex<BTreeSet<usize>>>) {
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
    for i in 0.. {
        let n = client * 100_000 + i;
        let msg = util::message(n, USER);
        let mut tx = format!("MAIL FROM:<s@remote.test>\r\nRCPT TO:<{USER}>\r\nDATA\r\n").into_bytes();
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
