//! The placement journal end to end: a rebuild from files alone reproduces
//! what COPY, MOVE, RENAME, STORE and EXPUNGE did, not just first deliveries.

use super::*;
use std::collections::BTreeMap;

const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);
const ACCOUNTS: [(AccountId, &str); 2] = [(ALICE, "alice@example.org"), (BOB, "bob@example.org")];

fn open(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap()
}

/// What `coimail store rebuild` does: accounts back from the directory
/// snapshot, then a forced reconcile.
async fn restore_and_rebuild(dir: &Path) -> (Store, ReconcileReport) {
    let s = open(dir);
    for (id, address) in ACCOUNTS {
        s.create_account(id, address).await.unwrap();
    }
    let report = s.reconcile(true).await.unwrap();
    (s, report)
}

/// A mailbox as a client sees it: subscription, and each message's bytes and flags in UID order.
type View = BTreeMap<(u64, String), (bool, Vec<(String, Vec<String>)>)>;

async fn view(s: &Store) -> View {
    let mut out = View::new();
    for (account, _) in ACCOUNTS {
        for mb in s.list_mailboxes(account).unwrap() {
            let mut msgs = Vec::new();
            for m in s.messages(account, mb.id).unwrap() {
                let body = String::from_utf8(s.read_message(&m).await.unwrap()).unwrap();
                msgs.push((body, m.flags.iter().map(str::to_owned).collect()));
            }
            out.insert((account.0, mb.name), (mb.subscribed, msgs));
        }
    }
    out
}

fn flags(f: &[&str]) -> Flags {
    f.iter().copied().collect()
}

fn wipe_index(dir: &Path) {
    std::fs::remove_dir_all(dir.join("index")).unwrap();
}

fn blob_path(dir: &Path, id: &BlobId) -> std::path::PathBuf {
    let shard = id.0.bytes().fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b));
    dir.join("blobs").join(format!("{shard:02x}")).join(&id.0)
}

/// Deliveries, COPY, MOVE, RENAME (of a hierarchy and of INBOX), STORE,
/// EXPUNGE, subscriptions and a mailbox deletion, on two accounts.
async fn busy_store(dir: &Path) -> Store {
    let s = open(dir);
    for (id, address) in ACCOUNTS {
        s.create_account(id, address).await.unwrap();
    }
    s.create_mailbox(ALICE, "Projects/a", None).await.unwrap();
    s.create_mailbox(ALICE, "Empty", None).await.unwrap();
    s.create_mailbox(ALICE, "Doomed", None).await.unwrap();
    s.set_subscribed(ALICE, "Junk", false).await.unwrap();
    let both = vec![
        Placement { account: ALICE, address: "alice@example.org".into(), mailbox: "INBOX".into(), flags: Flags::new() },
        Placement { account: BOB, address: "bob@example.org".into(), mailbox: "INBOX".into(), flags: Flags::new() },
    ];
    s.deliver(b"m0 to both\r\n", 100, both).await.unwrap();
    for i in 1..=5 {
        s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), Flags::new(), 100 + i).await.unwrap();
    }
    s.append(ALICE, "Doomed", b"doomed\r\n", Flags::new(), 7).await.unwrap();
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let archive = s.mailbox(ALICE, "Archive").unwrap().id;
    let projects = s.mailbox(ALICE, "Projects/a").unwrap().id;
    // UIDs: m0=1, m1=2 .. m5=6.
    s.store_flags(ALICE, inbox, &[Uid(2)], FlagOp::Add, &flags(&["\\Seen"])).await.unwrap();
    s.store_flags(ALICE, inbox, &[Uid(3)], FlagOp::Add, &flags(&["\\Seen", "\\Flagged", "$Chat"])).await.unwrap();
    s.store_flags(ALICE, inbox, &[Uid(4)], FlagOp::Add, &flags(&["\\Deleted"])).await.unwrap();
    s.copy_messages(ALICE, inbox, &[Uid(2), Uid(3)], archive).await.unwrap();
    s.copy_messages(ALICE, inbox, &[Uid(2)], inbox).await.unwrap(); // a second copy in the same mailbox: UID 7
    s.move_messages(ALICE, inbox, &[Uid(5)], projects).await.unwrap();
    s.expunge(ALICE, inbox, &[Uid(4)]).await.unwrap();
    s.store_flags(ALICE, archive, &[Uid(1)], FlagOp::Remove, &flags(&["\\Seen"])).await.unwrap();
    s.store_flags(ALICE, inbox, &[Uid(7)], FlagOp::Replace, &flags(&["$Later"])).await.unwrap();
    s.rename_mailbox(ALICE, "Projects", "Work").await.unwrap();
    s.delete_mailbox(ALICE, "Doomed").await.unwrap();
    // Bob files his copy away and reads it.
    s.rename_mailbox(BOB, "INBOX", "Old Mail").await.unwrap();
    let old = s.mailbox(BOB, "Old Mail").unwrap().id;
    s.store_flags(BOB, old, &[Uid(1)], FlagOp::Add, &flags(&["\\Seen"])).await.unwrap();
    s
}

#[tokio::test]
async fn rebuild_reproduces_copies_moves_renames_flags_and_expunges() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = busy_store(dir.path()).await;
        let v = view(&s).await;
        s.close().await.unwrap();
        v
    };
    // The fixture did what it says.
    let inbox = &before[&(1, "INBOX".to_owned())].1;
    let bodies: Vec<_> = inbox.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["m0 to both\r\n", "m1\r\n", "m2\r\n", "m5\r\n", "m1\r\n"]);
    assert!(before.contains_key(&(1, "Work/a".to_owned())) && !before.contains_key(&(1, "Doomed".to_owned())));

    wipe_index(dir.path());
    let (s, report) = restore_and_rebuild(dir.path()).await;
    assert_eq!(view(&s).await, before);
    // m0 (2 copies), m1 (3), m2 (2), m4 (1), m5 (1); m3 and "doomed" went with their files.
    assert_eq!((report.files_reindexed, report.messages_reindexed, report.files_from_header), (5, 9, 0));
    assert!(report.mailboxes_created >= 3, "{report:?}"); // Work/a, Empty, Old Mail
    let st = s.mailbox_status(ALICE, "INBOX").unwrap();
    assert_eq!((st.messages, st.unseen), (5, 3));
    assert_eq!(s.usage(ALICE).unwrap().messages, 8);

    // The rebuilt index journals under its own epoch: a second loss rebuilds the same again.
    let archive = s.mailbox(ALICE, "Archive").unwrap().id;
    s.expunge(ALICE, archive, &[Uid(2)]).await.unwrap();
    let again = view(&s).await;
    s.close().await.unwrap();
    drop(s);
    wipe_index(dir.path());
    let (s, _) = restore_and_rebuild(dir.path()).await;
    assert_eq!(view(&s).await, again);
}

#[tokio::test]
async fn expunged_file_that_outlived_a_crash_is_not_resurrected() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    let st = s.append(ALICE, "INBOX", b"gone\r\n", Flags::new(), 0).await.unwrap();
    s.append(ALICE, "INBOX", b"kept\r\n", Flags::new(), 0).await.unwrap();
    let meta = s.messages(ALICE, st.mailbox).unwrap().remove(0);
    let path = blob_path(dir.path(), &meta.blob);
    let saved = std::fs::read(&path).unwrap();
    s.expunge(ALICE, st.mailbox, &[Uid(1)]).await.unwrap();
    assert!(!path.exists());
    // The crash came between the index commit and the file's removal.
    std::fs::write(&path, saved).unwrap();
    let r = s.reconcile(true).await.unwrap();
    assert_eq!((r.files_expunged, r.files_reindexed), (1, 0));
    assert!(!path.exists());
    assert_eq!(s.mailbox(ALICE, "INBOX").unwrap().exists, 1);
}

#[tokio::test]
async fn unreferenced_files_are_placed_by_the_journal_else_by_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    let trash = s.mailbox(ALICE, "Trash").unwrap().id;
    let st = s.append(ALICE, "INBOX", b"moved\r\n", Flags::new(), 0).await.unwrap();
    s.move_messages(ALICE, st.mailbox, &[Uid(1)], trash).await.unwrap();
    s.store_flags(ALICE, trash, &[Uid(1)], FlagOp::Add, &flags(&["\\Seen"])).await.unwrap();
    // The index lost the entry (a commit that the journal holds and sled
    // does not): the journal puts it back where it was, flags and all.
    let mut b = kv::Batch::default();
    b.remove(keys::message(trash, Uid(1)));
    s.inner.mail.apply_unjournaled(b).unwrap();
    // A file with no journal record at all (its frame never made it): its header decides.
    let header = blob::BlobHeader {
        internal_date: 5,
        placements: vec![Placement {
            account: ALICE,
            address: "alice@example.org".into(),
            mailbox: "Drafts".into(),
            flags: flags(&["\\Draft"]),
        }],
        id: None,
        crc: None,
    };
    s.inner.blobs.write(&header, b"draft\r\n").unwrap();
    let r = s.reconcile(true).await.unwrap();
    assert_eq!((r.files_reindexed, r.files_from_header, r.messages_reindexed), (2, 1, 2), "{r:?}");
    let t = s.messages(ALICE, trash).unwrap();
    assert_eq!((t.len(), t[0].flags.clone()), (1, flags(&["\\Seen"])));
    assert!(s.messages(ALICE, st.mailbox).unwrap().is_empty());
    let drafts = s.mailbox(ALICE, "Drafts").unwrap().id;
    assert_eq!(s.messages(ALICE, drafts).unwrap()[0].flags, flags(&["\\Draft"]));
}

#[tokio::test]
async fn compaction_keeps_the_journal_small_and_the_rebuild_exact() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = busy_store(dir.path()).await;
        let journal = s.inner.mail.journal().clone();
        journal.set_min_compact(2048);
        let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
        for round in 0..40 {
            s.append(ALICE, "INBOX", format!("n{round}\r\n").as_bytes(), Flags::new(), 0).await.unwrap();
            let op = if round % 2 == 0 { FlagOp::Add } else { FlagOp::Remove };
            s.store_flags(ALICE, inbox, &[Uid(2)], op, &flags(&["$Toggled"])).await.unwrap();
            journal.wait_for_compaction();
        }
        let files: Vec<String> =
            std::fs::read_dir(journal.dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(files.iter().any(|f| f.ends_with(".snap")), "{files:?}");
        assert!(files.len() <= 4, "old segments were not removed: {files:?}");
        let v = view(&s).await;
        s.close().await.unwrap();
        v
    };
    wipe_index(dir.path());
    let (s, _) = restore_and_rebuild(dir.path()).await;
    assert_eq!(view(&s).await, before);
}

#[tokio::test]
async fn a_torn_journal_tail_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = busy_store(dir.path()).await;
        let v = view(&s).await;
        s.close().await.unwrap();
        v
    };
    // The crash cut the last frame short (and that batch never reached the index).
    let journal = dir.path().join("journal");
    let last = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&last).unwrap();
    std::io::Write::write_all(&mut f, &[0, 0, 1, 0, 0xde, 0xad, b'[', b'{']).unwrap();
    drop(f);
    wipe_index(dir.path());
    let (s, _) = restore_and_rebuild(dir.path()).await;
    assert_eq!(view(&s).await, before);
}

#[tokio::test]
async fn an_index_from_before_the_journal_is_snapshotted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = busy_store(dir.path()).await;
        let v = view(&s).await;
        // Forget the journal: as if this index predated it.
        let mut b = kv::Batch::default();
        b.remove(keys::counter("journal-epoch"));
        s.inner.mail.raw().apply(b).unwrap();
        s.close().await.unwrap();
        v
    };
    std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
    {
        let s = open(dir.path());
        assert!(!s.was_unclean());
        s.close().await.unwrap();
    }
    wipe_index(dir.path());
    let (s, report) = restore_and_rebuild(dir.path()).await;
    assert_eq!(report.files_from_header, 0);
    assert_eq!(view(&s).await, before);
}

#[tokio::test]
async fn an_older_index_journal_forces_reconcile_even_after_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = busy_store(dir.path()).await;
        s.close().await.unwrap();
    }
    wipe_index(dir.path());
    let s = open(dir.path());
    assert!(s.was_unclean(), "the old epoch's placements must be carried over");
}

/// A damaged index (here: sled's config file overwritten, which sled reports
/// as "Read corrupted data at file offset None", as after a kill on a full
/// disk) is moved aside at open and a new one is built from the files.
#[tokio::test]
async fn a_damaged_index_is_set_aside_and_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let s = busy_store(dir.path()).await;
        let v = view(&s).await;
        s.close().await.unwrap();
        v
    };
    std::fs::write(dir.path().join("index/conf"), b"garbage where sled keeps its settings").unwrap();
    let (s, _) = restore_and_rebuild(dir.path()).await;
    let aside = s.healed_from().expect("the damaged index was replaced").to_owned();
    assert!(aside.file_name().unwrap().to_str().unwrap().starts_with("index.broken-"), "{}", aside.display());
    assert!(aside.join("conf").exists(), "the old index is kept for inspection");
    assert!(s.was_unclean());
    assert_eq!(view(&s).await, before);
    s.close().await.unwrap();
    drop(s);
    // The rebuilt index is an ordinary one: the next open uses it as it is.
    let s = open(dir.path());
    assert!(s.healed_from().is_none());
    assert_eq!(view(&s).await, before);
}

/// Below the reserve nothing new goes in, and everything that frees space
/// or changes flags still works.
#[tokio::test]
async fn below_the_reserve_new_mail_is_refused_and_deletes_work() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.create_account(ALICE, "alice@example.org").await.unwrap();
        for i in 0..3 {
            s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), Flags::new(), 100).await.unwrap();
        }
        s.close().await.unwrap();
    }
    // A reserve of the whole filesystem: always below it.
    let full = StoreOptions { cache_bytes: 8 << 20, reserve: Reserve { percent: 100, max_bytes: u64::MAX } };
    let s = Store::open(dir.path(), &full).unwrap();
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let archive = s.mailbox(ALICE, "Archive").unwrap().id;
    assert!(matches!(s.check_space(), Err(StoreError::DiskFull)));
    assert!(matches!(s.append(ALICE, "INBOX", b"new\r\n", Flags::new(), 1).await, Err(StoreError::DiskFull)));
    let msgs = vec![NewMessage { raw: b"n\r\n".to_vec(), flags: Flags::new(), internal_date: 1 }];
    assert!(matches!(s.append_many(ALICE, "INBOX", msgs).await, Err(StoreError::DiskFull)));
    assert!(matches!(s.copy_messages(ALICE, inbox, &[Uid(1)], archive).await, Err(StoreError::DiskFull)));
    let envelope = spool::SpoolEnvelope {
        sender: "alice@example.org".into(),
        env_id: None,
        ret: None,
        recipients: vec![spool::SpoolRecipient::new("x@remote.test", None, None)],
    };
    assert!(matches!(s.spool_enqueue(envelope, b"out\r\n", 1).await, Err(StoreError::DiskFull)));
    s.store_flags(ALICE, inbox, &[Uid(1), Uid(2)], FlagOp::Add, &flags(&["\\Deleted"])).await.unwrap();
    assert_eq!(s.expunge(ALICE, inbox, &[Uid(1)]).await.unwrap(), vec![Uid(1)]);
    s.move_messages(ALICE, inbox, &[Uid(2)], archive).await.unwrap();
    s.create_mailbox(ALICE, "Old", None).await.unwrap();
    s.delete_mailbox(ALICE, "Old").await.unwrap();
    assert_eq!(s.messages(ALICE, inbox).unwrap().len(), 1);
}
