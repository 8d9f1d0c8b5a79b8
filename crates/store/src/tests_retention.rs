//! Publication order and ghosts (`publish.rs`, `retention.rs`).

use super::*;
use crate::publish::{Pending, Publication};
use std::time::Duration;

const ALICE: AccountId = AccountId(1);

async fn store(dir: &Path) -> Store {
    let s = Store::open(dir, &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap();
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    s
}

fn inbox() -> Placement {
    Placement { account: ALICE, address: "alice@example.org".into(), mailbox: "INBOX".into(), flags: Flags::new() }
}

fn body_files(dir: &Path) -> usize {
    blob::BlobStore::open(&dir.join("blobs")).unwrap().list().unwrap().len()
}

/// Deletions of files run on the blocking pool after the call that freed them.
async fn eventually_files(dir: &Path, n: usize) {
    for _ in 0..200 {
        if body_files(dir) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(body_files(dir), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_reach_the_bus_in_modseq_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let mut uids = Vec::new();
    for i in 0..8 {
        uids.push(s.deliver(format!("m{i}\r\n").as_bytes(), 1, vec![inbox()]).await.unwrap()[0]);
    }
    let mailbox = uids[0].mailbox;
    let mut rx = s.subscribe(ALICE);
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let (s, uids) = (s.clone(), uids.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..40u32 {
                let st = uids[((t + round) % 8) as usize];
                let flag: Flags = [format!("k{}", round % 3)].into_iter().collect();
                let op = if round % 2 == 0 { FlagOp::Add } else { FlagOp::Remove };
                s.store_flags(ALICE, st.mailbox, &[st.uid], op, &flag).await.unwrap();
                if round % 10 == 9 {
                    let msg = s.deliver(b"new\r\n", 1, vec![inbox()]).await.unwrap()[0];
                    s.expunge(ALICE, msg.mailbox, &[msg.uid]).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut last = ModSeq(0);
    let mut seen = 0;
    while let Ok(c) = rx.try_recv() {
        let modseq = match c {
            Change::FlagsChanged { mailbox: m, modseq, .. } | Change::Expunged { mailbox: m, modseq, .. }
                if m == mailbox =>
            {
                modseq
            }
            _ => continue,
        };
        assert!(modseq > last, "modseq {modseq} published after {last}");
        last = modseq;
        seen += 1;
    }
    assert!(seen > 100, "{seen}");
    assert_eq!(last, s.mailbox(ALICE, "INBOX").unwrap().highest_modseq);
}

#[tokio::test]
async fn an_expunged_message_stays_readable_for_a_pinned_session() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let a = s.deliver(b"Subject: a\r\n\r\nkept\r\n", 1, vec![inbox()]).await.unwrap()[0];
    let b = s.deliver(b"Subject: b\r\n\r\nother\r\n", 1, vec![inbox()]).await.unwrap()[0];
    let mut pin = s.pin_view(a.mailbox);
    let mut rx = s.subscribe(ALICE);
    s.expunge(ALICE, a.mailbox, &[a.uid]).await.unwrap();
    assert!(s.messages(ALICE, a.mailbox).unwrap().iter().all(|m| m.uid != a.uid));
    // The pinned session has not told its client: the message is still readable.
    let ghosts = s.ghosts(ALICE, a.mailbox, &[a.uid, b.uid, Uid(99)]);
    assert_eq!(ghosts.iter().map(|m| m.uid).collect::<Vec<_>>(), [a.uid]);
    assert_eq!(s.read_message(&ghosts[0]).await.unwrap(), b"Subject: a\r\n\r\nkept\r\n");
    assert!(s.ghosts(AccountId(2), a.mailbox, &[a.uid]).is_empty(), "only the owner sees ghosts");
    assert_eq!(body_files(dir.path()), 2);
    // A mark read before the drain that found the expunge releases it.
    let mark = s.change_mark();
    assert!(matches!(rx.try_recv(), Ok(Change::Expunged { .. })));
    pin.advance(mark);
    assert!(s.ghosts(ALICE, a.mailbox, &[a.uid]).is_empty());
    eventually_files(dir.path(), 1).await;
    // Without a pin, nothing is kept.
    s.expunge(ALICE, b.mailbox, &[b.uid]).await.unwrap();
    drop(pin);
    eventually_files(dir.path(), 0).await;
}

#[tokio::test]
async fn a_pin_taken_after_the_expunge_keeps_nothing_and_dropping_a_pin_frees() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let a = s.deliver(b"a\r\n", 1, vec![inbox()]).await.unwrap()[0];
    let b = s.deliver(b"b\r\n", 1, vec![inbox()]).await.unwrap()[0];
    s.expunge(ALICE, a.mailbox, &[a.uid]).await.unwrap();
    let late = s.pin_view(a.mailbox);
    assert!(s.ghosts(ALICE, a.mailbox, &[a.uid]).is_empty());
    assert_eq!(body_files(dir.path()), 1);
    // Two pins: the file goes when the last one that predates the expunge does.
    let other = s.pin_view(a.mailbox);
    s.expunge(ALICE, b.mailbox, &[b.uid]).await.unwrap();
    assert_eq!(s.ghosts(ALICE, b.mailbox, &[b.uid]).len(), 1);
    drop(late);
    assert_eq!(s.ghosts(ALICE, b.mailbox, &[b.uid]).len(), 1);
    drop(other);
    assert!(s.ghosts(ALICE, b.mailbox, &[b.uid]).is_empty());
    eventually_files(dir.path(), 0).await;
}

#[tokio::test]
async fn close_removes_files_kept_for_ghosts() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let a = s.deliver(b"a\r\n", 1, vec![inbox()]).await.unwrap()[0];
    let pin = s.pin_view(a.mailbox);
    s.expunge(ALICE, a.mailbox, &[a.uid]).await.unwrap();
    assert_eq!(body_files(dir.path()), 1);
    std::mem::forget(pin); // a session that never ended
    s.close().await.unwrap();
    assert_eq!(body_files(dir.path()), 0);
}

/// A STORE that finds a message gone which its session still shows returns
/// only once every earlier commit is published, so the session's receiver
/// holds the expunge when it answers (RFC 2180 §4.2: no stale FETCH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_change_on_a_message_gone_waits_for_earlier_commits_to_be_published() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let a = s.deliver(b"Subject: a\r\n\r\na\r\n", 1, vec![inbox()]).await.unwrap()[0];
    s.expunge(ALICE, a.mailbox, &[a.uid]).await.unwrap();
    // A commit still in flight (reserved, not published), as an expunge by
    // another session would be between its index change and its flush.
    let in_flight = {
        let _g = s.lock();
        Pending::new(&s, Publication::default())
    };
    let flags: Flags = ["\\Seen"].into_iter().map(String::from).collect();
    let t = tokio::spawn({
        let s = s.clone();
        let flags = flags.clone();
        async move { s.store_flags_if(ALICE, a.mailbox, &[a.uid], FlagOp::Add, &flags, None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!t.is_finished(), "answered before the earlier commit was published");
    assert!(in_flight.publish().await.is_empty());
    let r = tokio::time::timeout(Duration::from_secs(5), t).await.unwrap().unwrap().unwrap();
    assert!(r.updated.is_empty() && r.changed.is_empty());
    // One that finds every message and changes nothing does not wait.
    let b = s.deliver(b"Subject: b\r\n\r\nb\r\n", 1, vec![inbox()]).await.unwrap()[0];
    s.store_flags_if(ALICE, b.mailbox, &[b.uid], FlagOp::Add, &flags, None).await.unwrap();
    let _in_flight = {
        let _g = s.lock();
        Pending::new(&s, Publication::default())
    };
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        s.store_flags_if(ALICE, b.mailbox, &[b.uid], FlagOp::Add, &flags, None),
    )
    .await;
    assert!(r.unwrap().unwrap().changed.is_empty());
}
