//! Durability: nothing acknowledged is lost when the daemon is SIGKILLed in
//! the middle of a delivery storm (twice), and the index can be rebuilt from
//! the body files after it is deleted.

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
    let mut c = ImapClient::login(imap, USER, util::PASSWORD).await;
    let r = c.command("SELECT INBOX").await;
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
