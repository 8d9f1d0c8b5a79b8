use super::*;
use std::time::Duration;

const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);

async fn store_with_accounts(dir: &Path) -> Store {
    let s = Store::open(dir, &StoreOptions { cache_bytes: 8 << 20 }).unwrap();
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
        assert_eq!(msgs[0].uid, 1);
        assert_eq!(s.read_message(&msgs[0]).await.unwrap(), raw);
        assert_eq!(s.usage(acct).unwrap(), Usage { bytes: raw.len() as u64, messages: 1 });
    }
    assert_eq!(s.expunge(ALICE, stored[0].mailbox, &[1]).await.unwrap(), vec![1]);
    assert_eq!(body_files(dir.path()), 1, "bob still holds a copy");
    s.expunge(BOB, stored[1].mailbox, &[1]).await.unwrap();
    assert_eq!(body_files(dir.path()), 0);
    assert_eq!(s.mailbox(BOB, "INBOX").unwrap().exists, 0);
    assert_eq!(s.expunged_since(BOB, stored[1].mailbox, 0).unwrap(), vec![1]);
}

#[tokio::test]
async fn another_account_cannot_reach_a_mailbox_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let alice_inbox = s.mailbox(ALICE, "INBOX").unwrap().id;
    assert!(matches!(s.messages(BOB, alice_inbox), Err(StoreError::NotFound(_))));
    assert!(s.expunge(BOB, alice_inbox, &[1]).await.is_err());
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
    assert_eq!(uids, (1..=64).collect::<Vec<_>>());
    let mb = s.mailbox(ALICE, "INBOX").unwrap();
    assert_eq!((mb.exists, mb.uid_next), (64, 65));
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
    assert_eq!(got, Change::Appended { mailbox: st.mailbox, uid_next: 2 });
    let seen = Flags::from_iter(["\\Seen"]);
    let res = s.store_flags(ALICE, st.mailbox, &[1], FlagOp::Add, &seen).await.unwrap();
    assert_eq!(res[0].1, seen);
    assert!(matches!(rx.recv().await.unwrap(), Change::FlagsChanged { uid: 1, .. }));
    // Unchanged flags get no new modseq and no event.
    let again = s.store_flags(ALICE, st.mailbox, &[1], FlagOp::Add, &seen).await.unwrap();
    assert_eq!(again[0].2, res[0].2);
    s.expunge(ALICE, st.mailbox, &[1]).await.unwrap();
    assert!(matches!(rx.recv().await.unwrap(), Change::Expunged { .. }));
    assert!(s.store_flags(ALICE, st.mailbox, &[1], FlagOp::Add, &Flags::from_iter(["bad flag"])).await.is_err());
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
    s.expunge(BOB, bob.id, &[1]).await.unwrap();
    let a = s.mailbox(ALICE, "INBOX").unwrap();
    s.expunge(ALICE, a.id, &[1]).await.unwrap();
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

#[tokio::test]
async fn metadata_entries_are_scoped_and_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_accounts(dir.path()).await;
    let private = MetadataScope { owner: Some(ALICE), mailbox: None };
    let shared = MetadataScope { owner: None, mailbox: None };
    s.set_metadata(private, "/private/vendor/vendor.dovecot/coi/config/enabled", Some(b"yes")).await.unwrap();
    s.set_metadata(shared, "/shared/comment", Some(b"hello")).await.unwrap();
    assert_eq!(
        s.get_metadata(private, "/PRIVATE/vendor/vendor.dovecot/coi/config/ENABLED").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    assert!(
        s.get_metadata(
            MetadataScope { owner: Some(BOB), mailbox: None },
            "/private/vendor/vendor.dovecot/coi/config/enabled"
        )
        .unwrap()
        .is_none()
    );
    assert_eq!(s.list_metadata(private, "/private/vendor/").unwrap().len(), 1);
    s.set_metadata(shared, "/shared/comment", None).await.unwrap();
    assert!(s.get_metadata(shared, "/shared/comment").unwrap().is_none());
}
