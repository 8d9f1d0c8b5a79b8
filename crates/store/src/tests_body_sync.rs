//! Body files written without fsync (`body_sync.rs`) across a power cut:
//! what the disk may hold afterwards is simulated by hand (a torn file, a
//! spare's earlier octets under the new name, a journal frame that never
//! reached the disk while the index did), then the store is opened again
//! without a clean close, as after a crash.

use super::*;
use std::time::Instant;

const ALICE: AccountId = AccountId(1);

fn open(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap()
}

/// A store in `dir` with Alice's account.
async fn with_alice(dir: &Path) -> Store {
    let s = open(dir);
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    s
}

fn blob_path(dir: &Path, id: &BlobId) -> std::path::PathBuf {
    let shard = id.0.bytes().fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b));
    dir.join("blobs").join(format!("{shard:02x}")).join(&id.0)
}

/// An APPEND as IMAP does it (`append_many`, the path that skips the fsyncs).
async fn append(s: &Store, body: &str) -> Uid {
    let m = NewMessage { raw: body.as_bytes().to_vec(), flags: Flags::new(), internal_date: 1 };
    s.append_many(ALICE, "INBOX", vec![m]).await.unwrap()[0].uid
}

async fn bodies(s: &Store) -> Vec<(Uid, String)> {
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let mut out = Vec::new();
    for m in s.messages(ALICE, inbox).unwrap() {
        out.push((m.uid, String::from_utf8(s.read_message(&m).await.unwrap()).unwrap()));
    }
    out
}

fn files(s: &Store, dir: &Path) -> Vec<std::path::PathBuf> {
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    s.messages(ALICE, inbox).unwrap().iter().map(|m| blob_path(dir, &m.blob)).collect()
}

/// The open journal segment (the newest `.log`).
fn segment(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap()
}

#[tokio::test]
async fn appended_bodies_torn_by_a_power_cut_come_back_from_their_journal_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let s = with_alice(dir.path()).await;
        append(&s, "Subject: a\r\n\r\nfirst message\r\n").await;
        append(&s, "Subject: b\r\n\r\nsecond message\r\n").await;
        assert!(s.inner.blobs.unsynced() > 0, "the APPENDs' files were not fsync'd");
        let f = files(&s, dir.path());
        (f[0].clone(), f[1].clone())
    };
    // The power cut: `a`'s name survived but its octets are a spare's
    // earlier message (here: b's), and `b` was written only halfway.
    let b_octets = std::fs::read(&b).unwrap();
    std::fs::write(&a, &b_octets).unwrap();
    std::fs::write(&b, &b_octets[..b_octets.len() / 2]).unwrap();

    let s = open(dir.path());
    let report = s.reconcile(false).await.unwrap();
    assert_eq!((report.bodies_restored, report.entries_without_body), (2, 0), "{report:?}");
    let got = bodies(&s).await;
    assert_eq!(
        got,
        vec![
            (Uid(1), "Subject: a\r\n\r\nfirst message\r\n".to_owned()),
            (Uid(2), "Subject: b\r\n\r\nsecond message\r\n".to_owned())
        ]
    );
}

#[tokio::test]
async fn an_entry_whose_frame_was_lost_is_dropped_not_served_with_other_octets() {
    let dir = tempfile::tempdir().unwrap();
    let kept = "Subject: kept\r\n\r\nacknowledged\r\n";
    let (a, b) = {
        let s = with_alice(dir.path()).await;
        append(&s, kept).await;
        // The second APPEND's frame never reaches the disk, though the index
        // change did (sled writes its buffers when they fill): the segment
        // goes back to what it held before, and that APPEND got no OK.
        let seg = segment(dir.path());
        let before = std::fs::read(&seg).unwrap();
        append(&s, "Subject: lost\r\n\r\nnever acknowledged\r\n").await;
        s.flush().await.unwrap();
        std::fs::write(&seg, &before).unwrap();
        let f = files(&s, dir.path());
        (f[0].clone(), f[1].clone())
    };
    // Its file holds a spare's earlier octets: the first message's.
    std::fs::copy(&a, &b).unwrap();

    let s = open(dir.path());
    let report = s.reconcile(false).await.unwrap();
    assert_eq!(report.entries_without_body, 1, "{report:?}");
    assert_eq!(report.torn_files_removed, 1, "{report:?}");
    assert_eq!(bodies(&s).await, vec![(Uid(1), kept.to_owned())], "nothing served under the lost message's UID");
    assert!(!b.exists());
}

#[tokio::test]
async fn checkpoints_and_a_clean_close_make_every_file_durable_and_move_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_alice(dir.path()).await;
    let before = Instant::now();
    append(&s, "Subject: a\r\n\r\none\r\n").await;
    let first = s.messages(ALICE, s.mailbox(ALICE, "INBOX").unwrap().id).unwrap()[0].blob.clone();
    let t = body_sync::id_time(&first).unwrap();
    // Written after the cutoff: not yet; then due.
    assert_eq!(s.inner.blobs.sync_unsynced(before).unwrap(), 0);
    assert_eq!(s.inner.blobs.sync_unsynced(Instant::now()).unwrap(), 1);
    assert_eq!(s.inner.blobs.unsynced(), 0);
    assert!(blob::BlobStore::open(&dir.path().join("blobs")).unwrap().unsure_from() > t);

    append(&s, "Subject: b\r\n\r\ntwo\r\n").await;
    assert_eq!(s.inner.blobs.unsynced(), 1);
    s.close().await.unwrap();
    assert_eq!(s.inner.blobs.unsynced(), 0, "a clean start checks no file, so close syncs them all");
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.reconcile(false).await.unwrap(), ReconcileReport::default(), "clean: nothing checked");
    assert_eq!(bodies(&s).await.len(), 2);
}

#[tokio::test]
async fn an_unreferenced_file_under_another_files_name_is_removed_not_placed() {
    // A spare renamed across shard directories whose rename did not
    // survive: the old name holds a newer message's octets.
    let dir = tempfile::tempdir().unwrap();
    let s = with_alice(dir.path()).await;
    append(&s, "Subject: a\r\n\r\none\r\n").await;
    let a = files(&s, dir.path()).remove(0);
    let stray = blob_path(dir.path(), &BlobId("00000000000000000001-00001-00000000".into()));
    std::fs::copy(&a, &stray).unwrap();
    let report = s.reconcile(true).await.unwrap();
    assert_eq!((report.torn_files_removed, report.files_from_header), (1, 0), "{report:?}");
    assert_eq!(bodies(&s).await.len(), 1);
    assert!(!stray.exists());
}

#[tokio::test]
async fn a_torn_body_comes_back_when_the_index_was_lost_with_the_power() {
    let dir = tempfile::tempdir().unwrap();
    let body = "Subject: a\r\n\r\nkept through both\r\n";
    let a = {
        let s = with_alice(dir.path()).await;
        append(&s, body).await;
        files(&s, dir.path()).remove(0)
    };
    std::fs::write(&a, b"").unwrap();
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();

    // What `coimail store rebuild` does: the account back from the directory, then reconcile.
    let s = with_alice(dir.path()).await;
    let report = s.reconcile(true).await.unwrap();
    assert_eq!(report.bodies_restored, 1, "{report:?}");
    assert_eq!(bodies(&s).await, vec![(Uid(1), body.to_owned())]);
}

#[tokio::test]
async fn files_a_crash_left_intact_are_synced_before_reconcile_drops_their_journal_copies() {
    let dir = tempfile::tempdir().unwrap();
    let t = {
        let s = with_alice(dir.path()).await;
        append(&s, "Subject: a\r\n\r\nin the page cache only\r\n").await;
        let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
        body_sync::id_time(&s.messages(ALICE, inbox).unwrap()[0].blob).unwrap()
        // SIGKILL: no close, the file intact but never fsync'd.
    };
    let s = open(dir.path());
    assert!(s.inner.blobs.unsure_from() <= t);
    let report = s.reconcile(false).await.unwrap();
    assert_eq!((report.bodies_restored, report.entries_without_body), (0, 0), "{report:?}");
    // The snapshot replaced the frames holding its copy: the file must be
    // durable now, and the next unclean start need not check it.
    assert!(blob::BlobStore::open(&dir.path().join("blobs")).unwrap().unsure_from() > t);
    assert_eq!(bodies(&s).await.len(), 1);
}

#[tokio::test]
async fn a_compaction_makes_the_files_of_the_frames_it_drops_durable_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_alice(dir.path()).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let body = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
        append(&s, &body).await;
        sent.push(body);
    }
    // The next change (one without a body) finds the segment over the
    // threshold: the segment with the 20 frames is compacted away.
    s.inner.mail.journal().set_min_compact(1);
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    s.store_flags(ALICE, inbox, &[Uid(1)], FlagOp::Add, &Flags::from_iter(["\\Seen"])).await.unwrap();
    s.inner.mail.journal().wait_for_compaction();
    assert_eq!(s.inner.blobs.unsynced(), 0, "every file whose frame was compacted away is synced");
    // So a power cut now cannot take them: the bound is past them all.
    let last = files(&s, dir.path()).pop().unwrap();
    let t = body_sync::id_time(&BlobId(last.file_name().unwrap().to_str().unwrap().to_owned())).unwrap();
    assert!(blob::BlobStore::open(&dir.path().join("blobs")).unwrap().unsure_from() > t);
    let got: Vec<String> = bodies(&s).await.into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, sent);
}
