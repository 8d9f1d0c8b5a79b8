//! What SELECT reads (`snapshot.rs`) and pipelined APPEND runs (`append.rs`).

use super::*;

const ALICE: AccountId = AccountId(1);

async fn store(dir: &Path) -> Store {
    let s = Store::open(dir, &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap();
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    s
}

fn flags(f: &[&str]) -> Flags {
    f.iter().copied().collect()
}

fn message(raw: &str, f: &[&str]) -> NewMessage {
    NewMessage { raw: raw.as_bytes().to_vec(), flags: flags(f), internal_date: 7 }
}

fn body_files(dir: &Path) -> usize {
    BlobStore::open(&dir.join("blobs")).unwrap().list().unwrap().len()
}

#[tokio::test]
async fn snapshot_follows_flags_expunges_and_copies() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let empty = s.mailbox_snapshot(ALICE, "inbox").unwrap();
    assert_eq!((empty.info.name.as_str(), empty.uids.len(), empty.first_unseen), ("INBOX", 0, None));
    assert!(empty.keywords.is_empty());
    let msgs = vec![message("1", &["\\Seen"]), message("2", &[]), message("3", &["$Chat"]), message("4", &["\\Seen"])];
    let id = s.append_many(ALICE, "INBOX", msgs).await.unwrap()[0].mailbox;
    let snap = s.mailbox_snapshot(ALICE, "INBOX").unwrap();
    assert_eq!(
        (snap.uids, snap.first_unseen, snap.keywords),
        (vec![Uid(1), Uid(2), Uid(3), Uid(4)], Some(Uid(2)), vec!["$Chat".to_owned()])
    );
    assert_eq!(snap.info.uid_next, Uid(5));
    // Reading 2 makes 3 the first unseen; a keyword removed stays defined.
    s.store_flags(ALICE, id, &[Uid(2)], FlagOp::Add, &flags(&["\\Seen", "$Work"])).await.unwrap();
    s.store_flags(ALICE, id, &[Uid(3)], FlagOp::Remove, &flags(&["$Chat"])).await.unwrap();
    let snap = s.mailbox_snapshot(ALICE, "INBOX").unwrap();
    assert_eq!(
        (snap.first_unseen, snap.keywords.clone()),
        (Some(Uid(3)), vec!["$Chat".to_owned(), "$Work".to_owned()])
    );
    s.expunge(ALICE, id, &[Uid(3)]).await.unwrap();
    let snap = s.mailbox_snapshot(ALICE, "INBOX").unwrap();
    assert_eq!((snap.uids, snap.first_unseen), (vec![Uid(1), Uid(2), Uid(4)], None));
    // Unseen again; a copy carries its flags and keywords along, a move takes them away.
    s.store_flags(ALICE, id, &[Uid(4)], FlagOp::Replace, &flags(&["$Moved"])).await.unwrap();
    assert_eq!(s.mailbox_snapshot(ALICE, "INBOX").unwrap().first_unseen, Some(Uid(4)));
    let trash = s.mailbox(ALICE, "Trash").unwrap().id;
    s.move_messages(ALICE, id, &[Uid(4)], trash).await.unwrap();
    assert_eq!(s.mailbox_snapshot(ALICE, "INBOX").unwrap().first_unseen, None);
    let t = s.mailbox_snapshot(ALICE, "Trash").unwrap();
    assert_eq!((t.uids, t.first_unseen, t.keywords), (vec![Uid(1)], Some(Uid(1)), vec!["$Moved".to_owned()]));
    // DELETE takes the unseen keys with it.
    s.create_mailbox(ALICE, "Tmp", None).await.unwrap();
    let tmp = s.mailbox(ALICE, "Tmp").unwrap().id;
    s.append_many(ALICE, "Tmp", vec![message("5", &[])]).await.unwrap();
    s.delete_mailbox(ALICE, "Tmp").await.unwrap();
    assert!(s.inner.mail.scan_prefix(&keys::unseen_of(tmp)).unwrap().is_empty());
    assert!(matches!(s.mailbox_snapshot(ALICE, "Tmp"), Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn reconcile_recounts_unseen_keys_and_keywords() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let st = s.append_many(ALICE, "INBOX", vec![message("1", &[]), message("2", &["$K"])]).await.unwrap();
    let id = st[0].mailbox;
    // The index lost its derived data (and a stray unseen key appeared).
    let mut b = kv::Batch::default();
    b.remove(keys::unseen(id, Uid(1)));
    b.insert(keys::unseen(id, Uid(9)), Vec::new());
    s.inner.mail.apply_unjournaled(b).unwrap();
    s.reconcile(true).await.unwrap();
    let unseen: Vec<_> = s.inner.mail.scan_prefix(&keys::unseen_of(id)).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(unseen, vec![keys::unseen(id, Uid(1)), keys::unseen(id, Uid(2))]);
    assert_eq!(s.mailbox_snapshot(ALICE, "INBOX").unwrap().keywords, ["$K"]);
}

#[tokio::test]
async fn a_pipelined_run_is_one_commit_with_errors_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    s.set_quota(ALICE, QuotaLimits { bytes: None, messages: Some(4) }).await.unwrap();
    let inbox = s.mailbox(ALICE, "INBOX").unwrap();
    let mut rx = s.subscribe(ALICE);
    let req = |mailbox: &str, msgs: Vec<NewMessage>| AppendRequest { mailbox: mailbox.into(), messages: msgs };
    let results = s
        .append_batch(
            ALICE,
            vec![
                req("INBOX", vec![message("a", &[])]),
                req("Nope", vec![message("b", &[])]),
                req("inbox", vec![message("c", &["\\Seen"]), message("d", &["\\Bogus"])]),
                req("Sent", vec![message("e", &[]), message("f", &[])]),
                req("INBOX", vec![]),
                // Over the message limit once the ones before it count: refused whole.
                req("INBOX", vec![message("g", &[]), message("h", &[])]),
                req("INBOX", vec![message("i", &[])]),
            ],
        )
        .await;
    let uids: Vec<Option<Vec<Uid>>> =
        results.iter().map(|r| r.as_ref().ok().map(|st| st.iter().map(|x| x.uid).collect())).collect();
    assert_eq!(uids, [Some(vec![Uid(1)]), None, None, Some(vec![Uid(1), Uid(2)]), None, None, Some(vec![Uid(2)])]);
    assert!(matches!(results[1], Err(StoreError::NotFound(_))));
    assert!(matches!(results[2], Err(StoreError::Invalid(_))));
    assert!(matches!(results[4], Err(StoreError::Invalid(_))));
    assert!(matches!(results[5], Err(StoreError::QuotaExceeded)));
    assert_eq!(results[0].as_ref().unwrap()[0].uid_validity, inbox.uid_validity);
    // Only the stored messages have body files; the refused ones' were removed.
    assert_eq!(body_files(dir.path()), 4);
    let bodies: Vec<Vec<u8>> = {
        let mut out = Vec::new();
        for m in s.messages(ALICE, inbox.id).unwrap() {
            out.push(s.read_message(&m).await.unwrap());
        }
        out
    };
    assert_eq!(bodies, [b"a".to_vec(), b"i".to_vec()]);
    // Published once durable, per mailbox.
    let mut seen = Vec::new();
    while let Ok(c) = rx.try_recv() {
        seen.push(c);
    }
    assert!(seen.contains(&Change::Appended { mailbox: inbox.id, uid_next: Uid(3) }), "{seen:?}");
    let sent = s.mailbox(ALICE, "Sent").unwrap().id;
    assert!(seen.contains(&Change::Appended { mailbox: sent, uid_next: Uid(3) }), "{seen:?}");
}
