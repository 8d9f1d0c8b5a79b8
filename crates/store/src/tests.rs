use super::*;
use std::time::Duration;

const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);

async fn store_with_accounts(dir: &Path) -> Store {
    let s = Store::open(dir, &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap();
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    s.create_account(BOB, "bob@example.org").await.unwrap();
    s
}

fn inbox(account: AccountId, address: &str) -> Placement {
    Placement { account, address: address.into(), mailbox: "INBOX".into(), flags: Flags::new() }
}

fn body_files(dir: &Path) -> usize {
    BlobStore::open(&dir.join("blobs")).unwrap().list().unwrap().len()
}

#[tokio::test]
async fn new_account_has_inbox_and_special_use_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let names: Vec<_> = s.list_mailboxes(ALICE).unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]);
    let sent = s.mailbox(ALICE, "Sent").unwrap();
    assert_eq!(sent.special_use, Some(SpecialUse::Sent));
    assert_eq!(s.mailbox(ALICE, "inbox").unwrap().name, "INBOX");
    // Idempotent.
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    assert_eq!(s.list_mailboxes(ALICE).unwrap().len(), 6);
}

/// Quarantined mail's place: the \Junk mailbox, made again when deleted.
#[tokio::test]
async fn special_use_mailbox_is_found_or_created_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    s.rename_mailbox(ALICE, "Junk", "Spam").await.unwrap();
    let found = s.special_use_mailbox(ALICE, SpecialUse::Junk, "Junk").await.unwrap();
    assert_eq!((found.name.as_str(), found.special_use), ("Spam", Some(SpecialUse::Junk)), "renamed keeps its use");
    s.delete_mailbox(ALICE, "Spam").await.unwrap();
    let made = s.special_use_mailbox(ALICE, SpecialUse::Junk, "Junk").await.unwrap();
    assert_eq!((made.name.as_str(), made.special_use), ("Junk", Some(SpecialUse::Junk)));
    assert_eq!(s.special_use_mailbox(ALICE, SpecialUse::Junk, "Junk").await.unwrap().id, made.id, "idempotent");
}

#[tokio::test]
async fn bad_mailbox_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    for bad in ["", "a//b", "../x", "a\r\nb"] {
        assert!(matches!(s.create_mailbox(ALICE, bad, None).await, Err(StoreError::InvalidName(_))));
    }
    assert!(matches!(s.create_mailbox(ALICE, "INBOX", None).await, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(s.mailbox(ALICE, "nope"), Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn one_body_file_for_many_recipients_until_the_last_copy_goes() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let raw = b"Subject: hi\r\n\r\nhello\r\n";
    let stored = s
        .deliver(raw, 1_700_000_000, vec![inbox(ALICE, "alice@example.org"), inbox(BOB, "bob@example.org")])
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(body_files(dir.path()), 1);
    for (acct, st) in [(ALICE, stored[0]), (BOB, stored[1])] {
        let msgs = s.messages(acct, st.mailbox).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].uid, Uid(1));
        assert_eq!(s.read_message(&msgs[0]).await.unwrap(), raw);
        assert_eq!(s.usage(acct).unwrap(), Usage { bytes: raw.len() as u64, messages: 1 });
    }
    assert_eq!(s.expunge(ALICE, stored[0].mailbox, &[Uid(1)]).await.unwrap(), vec![Uid(1)]);
    assert_eq!(body_files(dir.path()), 1, "bob still holds a copy");
    s.expunge(BOB, stored[1].mailbox, &[Uid(1)]).await.unwrap();
    assert_eq!(body_files(dir.path()), 0);
    assert_eq!(s.mailbox(BOB, "INBOX").unwrap().exists, 0);
    assert_eq!(s.expunged_since(BOB, stored[1].mailbox, ModSeq(0)).unwrap(), vec![Uid(1)]);
}

#[tokio::test]
async fn another_account_cannot_reach_a_mailbox_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let alice_inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    assert!(matches!(s.messages(BOB, alice_inbox), Err(StoreError::NotFound(_))));
    assert!(s.expunge(BOB, alice_inbox, &[Uid(1)]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_unique_increasing_uids() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let raw = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
            s.append(ALICE, "INBOX", raw.as_bytes(), Flags::new(), 0).await.unwrap().uid
        }));
    }
    let mut uids = Vec::new();
    for t in tasks {
        uids.push(t.await.unwrap());
    }
    uids.sort_unstable();
    assert_eq!(uids, (1..=64).map(Uid).collect::<Vec<_>>());
    let mb = s.mailbox(ALICE, "INBOX").unwrap();
    assert_eq!((mb.exists, mb.uid_next), (64, Uid(65)));
    let listed: Vec<_> = s.messages(ALICE, mb.id).unwrap().iter().map(|m| m.uid).collect();
    assert_eq!(listed, uids);
}

#[tokio::test]
async fn subscribers_hear_about_appends_flags_and_expunges() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let mut rx = s.subscribe(ALICE);
    let st = s.append(ALICE, "INBOX", b"a\r\n", Flags::new(), 0).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, Change::Appended { mailbox: st.mailbox, uid_next: Uid(2) });
    let seen = Flags::from_iter(["\\Seen"]);
    let res = s.store_flags(ALICE, st.mailbox, &[Uid(1)], FlagOp::Add, &seen).await.unwrap();
    assert_eq!(res[0].1, seen);
    assert!(matches!(rx.recv().await.unwrap(), Change::FlagsChanged { uid: Uid(1), .. }));
    // Unchanged flags get no new modseq and no event.
    let again = s.store_flags(ALICE, st.mailbox, &[Uid(1)], FlagOp::Add, &seen).await.unwrap();
    assert_eq!(again[0].2, res[0].2);
    s.expunge(ALICE, st.mailbox, &[Uid(1)]).await.unwrap();
    assert!(matches!(rx.recv().await.unwrap(), Change::Expunged { .. }));
    assert!(s.store_flags(ALICE, st.mailbox, &[Uid(1)], FlagOp::Add, &Flags::from_iter(["bad flag"])).await.is_err());
}

#[tokio::test]
async fn rebuild_restores_every_message_from_body_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store_with_accounts(dir.path()).await;
        s.create_mailbox(ALICE, "Projects/coimail", None).await.unwrap();
        s.append(ALICE, "Projects/coimail", b"one\r\n", Flags::from_iter(["\\Flagged"]), 5).await.unwrap();
        s.deliver(b"two\r\n", 6, vec![inbox(ALICE, "alice@example.org"), inbox(BOB, "bob@example.org")]).await.unwrap();
        s.close().await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let s = store_with_accounts(dir.path()).await;
    let report = s.reconcile(true).await.unwrap();
    assert_eq!((report.files_reindexed, report.messages_reindexed), (2, 3));
    let p = s.mailbox(ALICE, "Projects/coimail").unwrap();
    let msgs = s.messages(ALICE, p.id).unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].flags.contains("\\Flagged"));
    assert_eq!(msgs[0].internal_date, 5);
    assert_eq!(s.read_message(&msgs[0]).await.unwrap(), b"one\r\n");
    let bob = s.mailbox(BOB, "INBOX").unwrap();
    assert_eq!(bob.exists, 1);
    // Shared body: one file, two references; expunging both removes it.
    s.expunge(BOB, bob.id, &[Uid(1)]).await.unwrap();
    let a = s.mailbox(ALICE, "INBOX").unwrap();
    s.expunge(ALICE, a.id, &[Uid(1)]).await.unwrap();
    assert_eq!(body_files(dir.path()), 1);
}

#[tokio::test]
async fn reconcile_drops_entries_whose_body_vanished() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let st = s.append(ALICE, "INBOX", b"x\r\n", Flags::new(), 0).await.unwrap();
    let meta = s.messages(ALICE, st.mailbox).unwrap().remove(0);
    BlobStore::open(&dir.path().join("blobs")).unwrap().delete(&meta.blob).unwrap();
    let r = s.reconcile(true).await.unwrap();
    assert_eq!(r.entries_without_body, 1);
    assert!(s.messages(ALICE, st.mailbox).unwrap().is_empty());
    assert_eq!(s.mailbox(ALICE, "INBOX").unwrap().exists, 0);
}

#[tokio::test]
async fn clean_close_skips_reconcile_and_unclean_does_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store_with_accounts(dir.path()).await;
        s.close().await.unwrap();
    }
    {
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert!(!s.was_unclean());
        // Dropped without close: the next open must reconcile.
    }
    let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert!(s.was_unclean());
}

/// A modseq a client was shown before a crash (records are read before the
/// flush) is never handed to another change after it (`reconcile::MODSEQ_GAP`).
#[tokio::test]
async fn an_unclean_start_puts_new_modseqs_past_any_shown_before() {
    let dir = tempfile::tempdir().unwrap();
    let shown = {
        let s = store_with_accounts(dir.path()).await;
        let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
        s.append(ALICE, "INBOX", b"one\r\n", Flags::new(), 7).await.unwrap();
        s.store_flags(ALICE, inbox, &[Uid(1)], FlagOp::Add, &Flags::from_iter(["\\Seen"])).await.unwrap();
        s.mailbox_status(ALICE, "INBOX").unwrap().highest_modseq
        // Dropped without close, as by SIGKILL.
    };
    let s = Store::open(dir.path(), &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap();
    assert!(s.was_unclean());
    s.reconcile(false).await.unwrap();
    let after = s.mailbox_status(ALICE, "INBOX").unwrap().highest_modseq;
    assert_eq!(after.0, shown.0 + reconcile::MODSEQ_GAP);
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let changed = s.store_flags(ALICE, inbox, &[Uid(1)], FlagOp::Add, &Flags::from_iter(["\\Flagged"])).await.unwrap();
    assert!(changed[0].2 > after, "the next change goes on from there");
    assert_eq!(s.messages(ALICE, inbox).unwrap().len(), 1);
    // A clean stop and start leaves it alone.
    s.close().await.unwrap();
    drop(s);
    let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    s.reconcile(false).await.unwrap();
    assert_eq!(s.mailbox_status(ALICE, "INBOX").unwrap().highest_modseq, changed[0].2);
}

fn uids_of(s: &Store, account: AccountId, mailbox: MailboxId) -> Vec<Uid> {
    s.messages(account, mailbox).unwrap().iter().map(|m| m.uid).collect()
}

async fn next_change(rx: &mut ChangeReceiver) -> Change {
    tokio::time::timeout(Duration::from_secs(1), rx.recv()).await.unwrap().unwrap()
}

#[tokio::test]
async fn copy_shares_the_body_and_keeps_flags() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let archive = s.mailbox(ALICE, "Archive").unwrap().id;
    for i in 0..3 {
        s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), Flags::from_iter(["\\Seen"]), 7).await.unwrap();
    }
    s.expunge(ALICE, inbox, &[Uid(2)]).await.unwrap();
    let mut rx = s.subscribe(ALICE);
    // Missing (2) and future (9) UIDs are skipped; duplicates count once.
    let pairs = s.copy_messages(ALICE, inbox, &[Uid(3), Uid(1), Uid(2), Uid(9), Uid(3)], archive).await.unwrap();
    assert_eq!(pairs, vec![(Uid(1), Uid(1)), (Uid(3), Uid(2))]);
    assert_eq!(next_change(&mut rx).await, Change::Appended { mailbox: archive, uid_next: Uid(3) });
    assert_eq!(body_files(dir.path()), 2, "copies share body files");
    let copied = s.messages(ALICE, archive).unwrap();
    assert_eq!(s.read_message(&copied[1]).await.unwrap(), b"m2\r\n");
    assert!(copied.iter().all(|m| m.flags.contains("\\Seen") && m.internal_date == 7));
    assert_eq!(s.usage(ALICE).unwrap().messages, 4);
    // The original goes; the copy keeps the file alive.
    s.expunge(ALICE, inbox, &[Uid(1), Uid(3)]).await.unwrap();
    assert_eq!(body_files(dir.path()), 2);
    s.expunge(ALICE, archive, &[Uid(1), Uid(2)]).await.unwrap();
    assert_eq!(body_files(dir.path()), 0);
    assert_eq!(s.usage(ALICE).unwrap(), Usage::default());
    // Another account's mailbox is out of reach either way.
    let bob_inbox = s.mailbox(BOB, "INBOX").unwrap().id;
    assert!(matches!(s.copy_messages(ALICE, inbox, &[Uid(1)], bob_inbox).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.copy_messages(BOB, inbox, &[Uid(1)], bob_inbox).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn move_is_one_commit_published_as_append_then_expunge() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let trash = s.mailbox(ALICE, "Trash").unwrap().id;
    for i in 0..4 {
        s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), Flags::new(), 0).await.unwrap();
    }
    let before = s.mailbox(ALICE, "INBOX").unwrap().highest_modseq;
    let mut rx = s.subscribe(ALICE);
    let pairs = s.move_messages(ALICE, inbox, &[Uid(2), Uid(4)], trash).await.unwrap();
    assert_eq!(pairs, vec![(Uid(2), Uid(1)), (Uid(4), Uid(2))]);
    assert_eq!(next_change(&mut rx).await, Change::Appended { mailbox: trash, uid_next: Uid(3) });
    match next_change(&mut rx).await {
        Change::Expunged { mailbox, uids, modseq } => {
            assert_eq!((mailbox, uids), (inbox, vec![Uid(2), Uid(4)]));
            assert!(modseq > before);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(uids_of(&s, ALICE, inbox), [Uid(1), Uid(3)]);
    assert_eq!(uids_of(&s, ALICE, trash), [Uid(1), Uid(2)]);
    assert_eq!(s.expunged_since(ALICE, inbox, before).unwrap(), vec![Uid(2), Uid(4)]);
    assert_eq!(body_files(dir.path()), 4);
    assert_eq!(s.usage(ALICE).unwrap().messages, 4);
    assert_eq!(s.mailbox_status(ALICE, "INBOX").unwrap().messages, 2);
    // Nothing to move: no commit, no event.
    assert!(s.move_messages(ALICE, inbox, &[Uid(2)], trash).await.unwrap().is_empty());
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn a_flagged_move_takes_only_messages_that_still_carry_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let trash = s.mailbox(ALICE, "Trash").unwrap().id;
    let seen: Flags = ["\\Seen"].into_iter().collect();
    for i in 0..3 {
        s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), seen.clone(), 0).await.unwrap();
    }
    // Another session took \Seen off message 2 after the caller decided.
    let update = s.store_flags_if(ALICE, inbox, &[Uid(2)], FlagOp::Remove, &seen, None).await.unwrap();
    assert!(update.seen_gained.is_empty());
    let pairs = s.move_messages_flagged(ALICE, inbox, &[Uid(1), Uid(2), Uid(3)], trash, "\\Seen").await.unwrap();
    assert_eq!(pairs, vec![(Uid(1), Uid(1)), (Uid(3), Uid(2))]);
    assert_eq!(uids_of(&s, ALICE, inbox), [Uid(2)]);
    // The unseen -> seen transition is reported with the flags before it.
    let update = s.store_flags_if(ALICE, inbox, &[Uid(2)], FlagOp::Add, &seen, None).await.unwrap();
    assert_eq!(update.seen_gained, vec![(Uid(2), Flags::new())]);
}

#[tokio::test]
async fn rename_moves_the_hierarchy_and_keeps_identity() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    for name in ["a/b", "a/b/b", "a/b/c", "a/bc", "x"] {
        s.create_mailbox(ALICE, name, None).await.unwrap();
    }
    s.append(ALICE, "a/b/c", b"hi\r\n", Flags::new(), 0).await.unwrap();
    let before = s.mailbox(ALICE, "a/b/c").unwrap();
    s.rename_mailbox(ALICE, "a/b", "n/m").await.unwrap();
    let names: Vec<_> = s.list_mailboxes(ALICE).unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "a/bc", "n/m", "n/m/b", "n/m/c", "x"]);
    let after = s.mailbox(ALICE, "n/m/c").unwrap();
    assert_eq!((after.id, after.uid_validity, after.exists), (before.id, before.uid_validity, 1));
    // A level up: the new name of one is the old name of another.
    s.rename_mailbox(ALICE, "n/m", "n").await.unwrap();
    assert_eq!(s.mailbox(ALICE, "n/b").unwrap().name, "n/b");
    assert_eq!(s.mailbox(ALICE, "n/c").unwrap().id, before.id);
    // Errors.
    assert!(matches!(s.rename_mailbox(ALICE, "nope", "y").await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.rename_mailbox(ALICE, "x", "Sent").await, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(s.rename_mailbox(ALICE, "x", "inbox").await, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(s.rename_mailbox(ALICE, "n", "n/b/deeper").await, Err(StoreError::Invalid(_))));
    assert!(matches!(s.rename_mailbox(ALICE, "x", "x").await, Err(StoreError::Invalid(_))));
    assert!(matches!(s.rename_mailbox(ALICE, "x", "bad//name").await, Err(StoreError::InvalidName(_))));
    // A child's new name taken: nothing is renamed.
    s.create_mailbox(ALICE, "y/c", None).await.unwrap();
    assert!(matches!(s.rename_mailbox(ALICE, "n", "y").await, Err(StoreError::AlreadyExists(_))));
    assert_eq!(s.mailbox(ALICE, "n/c").unwrap().id, before.id);
    // Only an implicit parent exists: its children move.
    s.rename_mailbox(ALICE, "a", "z").await.unwrap();
    assert!(s.mailbox(ALICE, "z/bc").is_ok());
}

#[tokio::test]
async fn renaming_inbox_moves_its_messages_and_leaves_it_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    s.create_mailbox(ALICE, "INBOX/sub", None).await.unwrap();
    for i in 0..3 {
        let flags = if i == 1 { Flags::from_iter(["\\Seen"]) } else { Flags::new() };
        s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), flags, i).await.unwrap();
    }
    let inbox = s.mailbox(ALICE, "INBOX").unwrap();
    let mut rx = s.subscribe(ALICE);
    s.rename_mailbox(ALICE, "inbox", "Old Mail").await.unwrap();
    let old = s.mailbox(ALICE, "Old Mail").unwrap();
    assert!(matches!(next_change(&mut rx).await, Change::Appended { mailbox, uid_next: Uid(4) } if mailbox == old.id));
    assert!(
        matches!(next_change(&mut rx).await, Change::Expunged { uids, .. } if uids == vec![Uid(1), Uid(2), Uid(3)])
    );
    assert_eq!(next_change(&mut rx).await, Change::MailboxesChanged);
    let moved = s.messages(ALICE, old.id).unwrap();
    assert_eq!(
        moved.iter().map(|m| (m.uid, m.internal_date)).collect::<Vec<_>>(),
        [(Uid(1), 0), (Uid(2), 1), (Uid(3), 2)]
    );
    assert_eq!(s.read_message(&moved[2]).await.unwrap(), b"m2\r\n");
    let now = s.mailbox(ALICE, "INBOX").unwrap();
    assert_eq!((now.id, now.uid_validity, now.uid_next, now.exists), (inbox.id, inbox.uid_validity, Uid(4), 0));
    assert!(s.mailbox(ALICE, "INBOX/sub").is_ok(), "INBOX's children stay");
    let st = s.mailbox_status(ALICE, "Old Mail").unwrap();
    assert_eq!((st.messages, st.unseen), (3, 2));
    assert_eq!(s.mailbox_status(ALICE, "INBOX").unwrap().messages, 0);
    assert!(matches!(s.rename_mailbox(ALICE, "INBOX", "Sent").await, Err(StoreError::AlreadyExists(_))));
    // Into INBOX's own hierarchy is fine: INBOX itself stays.
    s.append(ALICE, "INBOX", b"again\r\n", Flags::new(), 0).await.unwrap();
    s.rename_mailbox(ALICE, "INBOX", "inbox/old").await.unwrap();
    assert_eq!(s.mailbox_status(ALICE, "INBOX/old").unwrap().messages, 1);
    // The next delivery gets a UID INBOX never gave out.
    assert_eq!(s.append(ALICE, "INBOX", b"new\r\n", Flags::new(), 0).await.unwrap().uid, Uid(5));
}

#[tokio::test]
async fn messages_in_reads_only_the_ranges_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    for _ in 0..6 {
        s.append(ALICE, "INBOX", b"x\r\n", Flags::new(), 0).await.unwrap();
    }
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    s.expunge(ALICE, inbox, &[Uid(3)]).await.unwrap();
    let get = |r: &[std::ops::RangeInclusive<Uid>]| -> Vec<Uid> {
        s.messages_in(ALICE, inbox, r).unwrap().iter().map(|m| m.uid).collect()
    };
    assert_eq!(get(&[Uid(2)..=Uid(4)]), [Uid(2), Uid(4)]);
    assert_eq!(get(&[Uid(5)..=Uid::MAX, Uid(1)..=Uid(1), Uid(4)..=Uid(5)]), [Uid(1), Uid(4), Uid(5), Uid(6)]);
    assert_eq!(get(&[Uid(7)..=Uid(100)]), Vec::<Uid>::new());
    let reversed = get(&[Uid(4)..=Uid(2)]);
    assert!(reversed.is_empty());
    assert!(get(&[]).is_empty());
    assert!(matches!(s.messages_in(BOB, inbox, &[Uid(1)..=Uid(2)]), Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn status_counters_follow_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    s.append(ALICE, "INBOX", b"12345\r\n", Flags::from_iter(["\\Seen"]), 0).await.unwrap();
    s.append(ALICE, "INBOX", b"1\r\n", Flags::from_iter(["\\Deleted"]), 0).await.unwrap();
    s.append(ALICE, "INBOX", b"12\r\n", Flags::new(), 0).await.unwrap();
    let check = |messages, unseen, deleted, size, deleted_size| {
        let st = s.mailbox_status(ALICE, "inbox").unwrap();
        assert_eq!(
            (st.messages, st.unseen, st.deleted, st.size, st.deleted_size),
            (messages, unseen, deleted, size, deleted_size)
        );
        assert_eq!(st.uid_next, Uid(4));
    };
    check(3, 2, 1, 14, 3);
    s.store_flags(ALICE, inbox, &[Uid(3)], FlagOp::Add, &Flags::from_iter(["\\Seen", "\\Deleted"])).await.unwrap();
    check(3, 1, 2, 14, 7);
    s.store_flags(ALICE, inbox, &[Uid(2)], FlagOp::Replace, &Flags::from_iter(["\\Seen"])).await.unwrap();
    check(3, 0, 1, 14, 4);
    s.expunge(ALICE, inbox, &[Uid(3)]).await.unwrap();
    check(2, 0, 0, 10, 0);
    // A record written before the counters existed is counted from its messages...
    let key = keys::mailbox_by_id(inbox);
    let mut rec: records::MailboxRecord =
        records::decode("mailbox", &s.inner.mail.get(&key).unwrap().unwrap()).unwrap();
    rec.counts = None;
    let mut b = kv::Batch::default();
    b.insert(key.clone(), records::encode(&rec).unwrap());
    s.inner.mail.apply(b).unwrap();
    check(2, 0, 0, 10, 0);
    // ...and reconcile fills them in.
    s.reconcile(true).await.unwrap();
    let rec: records::MailboxRecord = records::decode("mailbox", &s.inner.mail.get(&key).unwrap().unwrap()).unwrap();
    assert_eq!(rec.counts.map(|c| (c.unseen, c.size)), Some((0, 10)));
}

#[tokio::test]
async fn unchanged_since_leaves_newer_messages_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let a = s.append(ALICE, "INBOX", b"a\r\n", Flags::new(), 0).await.unwrap();
    s.append(ALICE, "INBOX", b"b\r\n", Flags::new(), 0).await.unwrap();
    let ms = s.messages(ALICE, a.mailbox).unwrap();
    let since = ms[0].modseq;
    assert!(ms[1].modseq > since);
    let flagged = Flags::from_iter(["\\Flagged"]);
    let up = s.store_flags_if(ALICE, a.mailbox, &[Uid(1), Uid(2)], FlagOp::Add, &flagged, Some(since)).await.unwrap();
    assert_eq!((up.modified, up.changed), (vec![Uid(2)], vec![Uid(1)]));
    assert_eq!(up.updated.len(), 1);
    assert!(up.updated[0].2 > ms[1].modseq);
    // RFC 7162 §3.1.3: UNCHANGEDSINCE 0 always fails.
    let up =
        s.store_flags_if(ALICE, a.mailbox, &[Uid(1), Uid(2)], FlagOp::Add, &flagged, Some(ModSeq(0))).await.unwrap();
    assert_eq!((up.modified, up.updated), (vec![Uid(1), Uid(2)], vec![]));
}

#[tokio::test]
async fn append_many_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let msg = |raw: &str, flags: &[&str]| NewMessage {
        raw: raw.as_bytes().to_vec(),
        flags: flags.iter().copied().collect(),
        internal_date: 42,
    };
    let bad = vec![msg("one\r\n", &[]), msg("two\r\n", &["bad flag"])];
    assert!(matches!(s.append_many(ALICE, "INBOX", bad).await, Err(StoreError::Invalid(_))));
    let missing = vec![msg("one\r\n", &[])];
    assert!(matches!(s.append_many(ALICE, "Nope", missing).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.append_many(ALICE, "INBOX", vec![]).await, Err(StoreError::Invalid(_))));
    assert_eq!(body_files(dir.path()), 0);
    let mut rx = s.subscribe(ALICE);
    let stored = s.append_many(ALICE, "INBOX", vec![msg("one\r\n", &["\\Seen"]), msg("two\r\n", &[])]).await.unwrap();
    assert_eq!(stored.iter().map(|s| s.uid).collect::<Vec<_>>(), [Uid(1), Uid(2)]);
    // One commit, one event.
    assert_eq!(next_change(&mut rx).await, Change::Appended { mailbox: stored[0].mailbox, uid_next: Uid(3) });
    assert!(rx.try_recv().is_err());
    let ms = s.messages(ALICE, stored[0].mailbox).unwrap();
    assert_eq!(s.read_message(&ms[1]).await.unwrap(), b"two\r\n");
    assert_eq!((ms[0].internal_date, ms[0].flags.contains("\\Seen")), (42, true));
    // Body files carry their placement, so a rebuild finds them again.
    s.close().await.unwrap();
}

/// Every index entry, reference count and expunge-log key of a deleted
/// mailbox goes with it, in-flight deliveries included.
fn assert_mailbox_gone(s: &Store, id: MailboxId) {
    assert!(s.mailbox_record_by_id(id).unwrap().is_none());
    assert!(s.inner.mail.scan_prefix(&keys::messages_of(id)).unwrap().is_empty(), "orphan entries");
    assert!(s.inner.mail.scan_prefix(&keys::expunge_log_of(id)).unwrap().is_empty(), "orphan expunge log");
    assert!(!s.visible().contains_key(&id), "stale watermark");
}

#[tokio::test]
async fn deleting_a_mailbox_takes_in_flight_deliveries_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let alice = "alice@example.org";
    let work = s.create_mailbox(ALICE, "Work", None).await.unwrap().id;
    let to = |mailbox: &str| Placement { mailbox: mailbox.into(), ..inbox(ALICE, alice) };
    let shared = s.deliver(b"shared\r\n", 1, vec![to("INBOX"), to("Work")]).await.unwrap();
    s.deliver(b"work only\r\n", 1, vec![to("Work")]).await.unwrap();
    s.deliver(b"expunged\r\n", 1, vec![to("Work")]).await.unwrap();
    s.expunge(ALICE, work, &[Uid(3)]).await.unwrap();
    let before = Usage { bytes: 8, messages: 1 };
    assert_eq!(s.usage(ALICE).unwrap().messages, 3);
    // A delivery indexed but not yet flushed or published: invisible to readers.
    let raw = b"in flight\r\n";
    let header = blob::BlobHeader::new(1, vec![to("Work")]);
    let (blob, offset) = s.inner.blobs.write(&header, raw).unwrap();
    let target = message::Target { account: ALICE, mailbox: "Work".into(), flags: Flags::new() };
    let in_flight = s.index_locked(&blob, offset, raw.len() as u64, 1, &[target], false).unwrap();
    assert_eq!(s.messages(ALICE, work).unwrap().len(), 2);

    // The delivery took its place in the publication order first: its
    // late publish (here, before the delete's own) leaves no watermark behind.
    let delete = tokio::spawn({
        let s = s.clone();
        async move { s.delete_mailbox(ALICE, "Work").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!delete.is_finished(), "the delete is published after the earlier delivery");
    // Whoever publishes deletes the files the published changes freed.
    for f in in_flight.pending.publish().await {
        s.inner.blobs.delete(&f).unwrap();
    }
    delete.await.unwrap().unwrap();
    assert!(!s.visible().contains_key(&work));
    assert_mailbox_gone(&s, work);
    assert_eq!(s.usage(ALICE).unwrap(), before);
    let inbox_msgs = s.messages(ALICE, shared[0].mailbox).unwrap();
    assert_eq!(inbox_msgs.len(), 1);
    assert_eq!(s.blob_refs(&inbox_msgs[0].blob).unwrap(), 1);
    assert_eq!(s.blob_refs(&blob).unwrap(), 0);
    assert_eq!(body_files(dir.path()), 1, "only the INBOX copy's body is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_racing_deliveries_leaves_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let alice = "alice@example.org";
    for round in 0..30u32 {
        let id = s.create_mailbox(ALICE, "Race", None).await.unwrap().id;
        let deliveries: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                let placement = Placement { mailbox: "Race".into(), ..inbox(ALICE, alice) };
                tokio::spawn(async move { s.deliver(format!("m{round}-{i}\r\n").as_bytes(), 1, vec![placement]).await })
            })
            .collect();
        if round % 2 == 1 {
            tokio::task::yield_now().await;
        }
        s.delete_mailbox(ALICE, "Race").await.unwrap();
        for d in deliveries {
            let _ = d.await.unwrap(); // NotFound when the mailbox went first
        }
        assert_mailbox_gone(&s, id);
        assert_eq!(s.usage(ALICE).unwrap(), Usage::default(), "round {round}");
        assert_eq!(body_files(dir.path()), 0, "round {round}");
    }
}

#[tokio::test]
async fn metadata_changes_reach_who_can_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let (mut alice, mut bob) = (s.subscribe(ALICE), s.subscribe(BOB));
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let on_inbox = MetadataScope { account: ALICE, mailbox: Some(inbox) };
    let entries = [("/Private/Comment".to_string(), Some(b"x".to_vec())), ("/shared/comment".into(), None)];
    s.set_metadata_entries(on_inbox, &entries, None).await.unwrap();
    let both = vec!["/private/comment".to_string(), "/shared/comment".to_string()];
    assert_eq!(next_change(&mut alice).await, Change::MetadataChanged { mailbox: Some(inbox), entries: both });
    // Server level: /private/ stays with its owner, /shared/ goes to everyone.
    let server = MetadataScope { account: ALICE, mailbox: None };
    s.set_metadata(server, "/private/x", Some(b"1")).await.unwrap();
    s.set_metadata(server, "/shared/motd", Some(b"hi")).await.unwrap();
    let private = Change::MetadataChanged { mailbox: None, entries: vec!["/private/x".into()] };
    let shared = Change::MetadataChanged { mailbox: None, entries: vec!["/shared/motd".into()] };
    assert_eq!(next_change(&mut alice).await, private);
    assert_eq!(next_change(&mut alice).await, shared);
    assert_eq!(next_change(&mut bob).await, shared);
    assert!(bob.try_recv().is_err());
    // Internal names (no leading `/`) are not announced.
    s.set_metadata(server, "push-secret", Some(b"s")).await.unwrap();
    assert!(alice.try_recv().is_err());
}

/// What the index itself holds for a mailbox, bypassing the listings cache.
fn indexed(s: &Store, mailbox: MailboxId) -> Vec<(Uid, Vec<String>, ModSeq, String)> {
    s.read_messages(mailbox, Uid::MIN, Uid::MAX)
        .unwrap()
        .into_iter()
        .map(|m| (m.uid, m.flags.iter().map(str::to_owned).collect(), m.modseq, m.blob.0))
        .collect()
}

fn listed(s: &Store, account: AccountId, mailbox: MailboxId) -> Vec<(Uid, Vec<String>, ModSeq, String)> {
    s.messages(account, mailbox)
        .unwrap()
        .into_iter()
        .map(|m| (m.uid, m.flags.iter().map(str::to_owned).collect(), m.modseq, m.blob.0))
        .collect()
}

/// The listings cache answers from memory after the first read, and every
/// kind of write keeps it equal to the index: APPEND, STORE, COPY, MOVE,
/// EXPUNGE, RENAME of INBOX and DELETE.
#[tokio::test]
async fn cached_listings_follow_every_kind_of_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let trash = s.mailbox(ALICE, "Trash").unwrap().id;
    for i in 0..5 {
        s.append(ALICE, "INBOX", format!("m{i}\r\n").as_bytes(), Flags::new(), 0).await.unwrap();
    }
    let cache = || s.inner.mail.listings().cached_messages();
    assert_eq!(cache(), 0);
    assert_eq!(listed(&s, ALICE, inbox), indexed(&s, inbox));
    assert_eq!(listed(&s, ALICE, trash), indexed(&s, trash));
    assert_eq!(cache(), 5, "both mailboxes are cached after one read");
    let same = |s: &Store| {
        for mb in [inbox, trash] {
            assert_eq!(listed(s, ALICE, mb), indexed(s, mb), "mailbox {mb:?}");
            // The mailbox's record, cached, as the index has it.
            let cached = s.mailbox_record_by_id(mb).unwrap().map(|r| records::encode(&r).unwrap());
            assert_eq!(cached, s.inner.mail.get(&keys::mailbox_by_id(mb)).unwrap(), "record of {mb:?}");
        }
    };
    s.append(ALICE, "INBOX", b"new\r\n", Flags::from_iter(["$New"]), 0).await.unwrap();
    same(&s);
    s.store_flags(ALICE, inbox, &[Uid(1), Uid(6)], FlagOp::Add, &Flags::from_iter(["\\Seen", "$K"])).await.unwrap();
    same(&s);
    s.copy_messages(ALICE, inbox, &[Uid(2), Uid(3)], trash).await.unwrap();
    same(&s);
    s.move_messages(ALICE, inbox, &[Uid(4)], trash).await.unwrap();
    same(&s);
    s.expunge(ALICE, inbox, &[Uid(1)]).await.unwrap();
    same(&s);
    assert_eq!(cache(), 4 + 3);
    // Ranges come from the cache as they came from the index.
    let uids: Vec<Uid> =
        s.messages_in(ALICE, inbox, &[Uid(5)..=Uid(9), Uid(2)..=Uid(3)]).unwrap().iter().map(|m| m.uid).collect();
    assert_eq!(uids, [Uid(2), Uid(3), Uid(5), Uid(6)]);
    s.rename_mailbox(ALICE, "INBOX", "Old").await.unwrap();
    same(&s);
    let old = s.mailbox(ALICE, "Old").unwrap().id;
    assert_eq!(listed(&s, ALICE, old), indexed(&s, old));
    assert!(listed(&s, ALICE, inbox).is_empty());
    s.delete_mailbox(ALICE, "Trash").await.unwrap();
    assert!(indexed(&s, trash).is_empty());
    // A write the cache is not told of item by item empties it.
    let mut b = kv::Batch::default();
    b.insert(keys::counter("test-only"), 1u64.to_be_bytes().to_vec());
    s.inner.mail.apply_unjournaled(b).unwrap();
    assert_eq!(cache(), 0);
    assert_eq!(listed(&s, ALICE, old), indexed(&s, old));
}

/// A write that lands while a mailbox is being loaded into the cache: the
/// load is answered but not kept, so the next read sees the write.
#[tokio::test]
async fn a_load_overtaken_by_a_write_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    s.append(ALICE, "INBOX", b"one\r\n", Flags::new(), 0).await.unwrap();
    let listings = s.inner.mail.listings();
    let stale = s.read_messages(inbox, Uid::MIN, Uid::MAX).unwrap();
    let got = listings
        .messages_in(inbox, 1, &[(Uid::MIN, Uid::MAX)], || {
            // The write lands between the load's read of the index and its
            // end (a bare index write: a store operation would load the
            // mailbox itself first).
            let mut seen = records::MessageRecord::from(stale[0].clone());
            seen.flags = Flags::from_iter(["\\Seen"]);
            let mut b = kv::Batch::default();
            b.insert(keys::message(inbox, Uid(1)), records::encode(&seen).unwrap());
            s.inner.mail.apply(b).unwrap();
            assert_eq!(listings.cached_messages(), 0);
            Ok(stale.clone())
        })
        .unwrap()
        .unwrap();
    assert!(!got[0].flags.contains("\\Seen"), "the load answers what it read");
    assert_eq!(listings.cached_messages(), 0, "but is not kept");
    assert!(s.messages(ALICE, inbox).unwrap()[0].flags.contains("\\Seen"));
}

/// Mailboxes too large to cache are read from the index, range by range.
#[tokio::test]
async fn large_mailboxes_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    let listings = s.inner.mail.listings();
    let loaded = listings
        .messages_in(inbox, crate::listing::MAX_MAILBOX + 1, &[(Uid::MIN, Uid::MAX)], || panic!("loaded"))
        .unwrap();
    assert!(loaded.is_none());
    assert_eq!(listings.cached_messages(), 0);
}
