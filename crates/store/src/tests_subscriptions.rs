//! Subscriptions as names of their own: they outlive DELETE, follow
//! RENAME, survive a rebuild, and an index from before they had keys of
//! their own is upgraded when opened.

use super::*;

const ALICE: AccountId = AccountId(1);

fn open(dir: &Path) -> Store {
    Store::open(dir, &StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap()
}

async fn store(dir: &Path) -> Store {
    let s = open(dir);
    s.create_account(ALICE, "alice@example.org").await.unwrap();
    s
}

fn flags(f: &[&str]) -> Flags {
    f.iter().copied().collect()
}

#[tokio::test]
async fn a_subscription_outlives_delete_and_comes_back_with_create() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    assert_eq!(s.subscriptions(ALICE).unwrap(), ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]);
    s.create_mailbox(ALICE, "x", None).await.unwrap();
    assert!(!s.mailbox(ALICE, "x").unwrap().subscribed);
    s.set_subscribed(ALICE, "x", true).await.unwrap();
    assert!(s.mailbox(ALICE, "x").unwrap().subscribed);
    s.delete_mailbox(ALICE, "x").await.unwrap();
    assert!(s.subscriptions(ALICE).unwrap().contains(&"x".to_owned()));
    assert!(s.list_mailboxes(ALICE).unwrap().iter().all(|m| m.name != "x"));
    // Only existing mailboxes can be subscribed; a subscribed name can always be unsubscribed.
    assert!(matches!(s.set_subscribed(ALICE, "nope", true).await, Err(StoreError::NotFound(_))));
    assert!(matches!(s.set_subscribed(ALICE, "nope", false).await, Err(StoreError::NotFound(_))));
    let created = s.create_mailbox(ALICE, "x", None).await.unwrap();
    assert!(created.subscribed, "re-created mailbox is subscribed");
    assert!(s.list_mailboxes(ALICE).unwrap().iter().any(|m| m.name == "x" && m.subscribed));
    s.delete_mailbox(ALICE, "x").await.unwrap();
    s.set_subscribed(ALICE, "x", false).await.unwrap();
    assert!(!s.subscriptions(ALICE).unwrap().contains(&"x".to_owned()));
    // INBOX in any case is INBOX.
    s.set_subscribed(ALICE, "inbox", false).await.unwrap();
    assert!(!s.mailbox(ALICE, "INBOX").unwrap().subscribed);
}

#[tokio::test]
async fn rename_moves_subscriptions_of_the_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    for name in ["a", "a/b", "a/c", "ab"] {
        s.create_mailbox(ALICE, name, None).await.unwrap();
        s.set_subscribed(ALICE, name, true).await.unwrap();
    }
    s.create_mailbox(ALICE, "a/gone", None).await.unwrap();
    s.set_subscribed(ALICE, "a/gone", true).await.unwrap();
    s.delete_mailbox(ALICE, "a/gone").await.unwrap();
    s.set_subscribed(ALICE, "a/c", false).await.unwrap();
    s.rename_mailbox(ALICE, "a", "z").await.unwrap();
    let subs = s.subscriptions(ALICE).unwrap();
    for moved in ["z", "z/b", "z/gone", "ab"] {
        assert!(subs.contains(&moved.to_owned()), "{moved} in {subs:?}");
    }
    for gone in ["a", "a/b", "a/gone", "z/c"] {
        assert!(!subs.contains(&gone.to_owned()), "{gone} in {subs:?}");
    }
    // RENAME INBOX leaves INBOX (and its subscription) where it is; the new mailbox is not subscribed.
    s.rename_mailbox(ALICE, "INBOX", "Old").await.unwrap();
    assert!(s.mailbox(ALICE, "INBOX").unwrap().subscribed);
    assert!(!s.mailbox(ALICE, "Old").unwrap().subscribed);
}

#[tokio::test]
async fn deleting_the_account_drops_its_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    s.delete_account(ALICE).await.unwrap();
    assert!(s.subscriptions(ALICE).unwrap().is_empty());
}

#[tokio::test]
async fn rebuild_restores_subscriptions_of_deleted_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path()).await;
        s.create_mailbox(ALICE, "Doomed", None).await.unwrap();
        s.set_subscribed(ALICE, "Doomed", true).await.unwrap();
        s.delete_mailbox(ALICE, "Doomed").await.unwrap();
        s.set_subscribed(ALICE, "Junk", false).await.unwrap();
        s.close().await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let s = store(dir.path()).await;
    s.reconcile(true).await.unwrap();
    assert_eq!(s.subscriptions(ALICE).unwrap(), ["Archive", "Doomed", "Drafts", "INBOX", "Sent", "Trash"]);
}

/// Turns every mailbox record back into what earlier versions wrote: the
/// subscription as a flag in the record, no keyword list, no unseen keys,
/// no subscription keys, no index version; and no journal (as if the index
/// predated it too).
fn make_legacy(s: &Store, unsubscribed: &str) {
    let raw = s.inner.mail.raw();
    let mut b = kv::Batch::default();
    for (k, v) in raw.scan_prefix(&[keys::MAILBOX_BY_ID]).unwrap() {
        let mut rec: serde_json::Value = serde_json::from_slice(&v).unwrap();
        let obj = rec.as_object_mut().unwrap();
        let on = obj["name"] != unsubscribed;
        obj.insert("subscribed".into(), on.into());
        obj.remove("keywords");
        b.insert(k, serde_json::to_vec(&rec).unwrap());
    }
    for table in [keys::SUBSCRIPTION, keys::UNSEEN] {
        for (k, _) in raw.scan_prefix(&[table]).unwrap() {
            b.remove(k);
        }
    }
    b.remove(keys::counter("index-version"));
    b.remove(keys::counter("journal-epoch"));
    raw.apply(b).unwrap();
}

#[tokio::test]
async fn an_older_index_is_upgraded_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path()).await;
        s.create_mailbox(ALICE, "Lists", None).await.unwrap();
        for f in [&["\\Seen", "$Chat"][..], &[], &["$Later"]] {
            s.append(ALICE, "INBOX", b"x\r\n", flags(f), 0).await.unwrap();
        }
        make_legacy(&s, "Junk");
        s.close().await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
    {
        let s = open(dir.path());
        assert_eq!(s.subscriptions(ALICE).unwrap(), ["Archive", "Drafts", "INBOX", "Lists", "Sent", "Trash"]);
        let snap = s.mailbox_snapshot(ALICE, "INBOX").unwrap();
        assert_eq!(
            (snap.uids, snap.first_unseen, snap.keywords),
            (vec![Uid(1), Uid(2), Uid(3)], Some(Uid(2)), vec!["$Chat".into(), "$Later".into()])
        );
        let id = s.mailbox(ALICE, "INBOX").unwrap().id;
        let rec = s.inner.mail.get(&keys::mailbox_by_id(id)).unwrap().unwrap();
        assert!(!String::from_utf8(rec).unwrap().contains("subscribed"), "the old flag is gone");
        // Deleting a mailbox whose subscription was upgraded keeps the subscription.
        s.delete_mailbox(ALICE, "Lists").await.unwrap();
        s.close().await.unwrap();
    }
    // The journal (a snapshot of the legacy index, then the upgrade) rebuilds the same.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let s = store(dir.path()).await;
    s.reconcile(true).await.unwrap();
    assert_eq!(s.subscriptions(ALICE).unwrap(), ["Archive", "Drafts", "INBOX", "Lists", "Sent", "Trash"]);
    let snap = s.mailbox_snapshot(ALICE, "INBOX").unwrap();
    assert_eq!((snap.uids.len(), snap.first_unseen), (3, Some(Uid(2))));
}
