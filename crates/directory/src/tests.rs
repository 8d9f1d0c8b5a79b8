use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

async fn setup(dir: &Path) -> (Store, Directory) {
    let store = Store::open_memory(dir).unwrap();
    let d = Directory::open_with(
        &store,
        Some(dir.join("directory.json")),
        ThrottleOptions { max_failures: 3, window: std::time::Duration::from_secs(60) },
    )
    .unwrap();
    d.add_domain("Example.org").await.unwrap();
    (store, d)
}

#[tokio::test]
async fn users_authenticate_and_get_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, d) = setup(dir.path()).await;
    let a = d.add_user("alice@EXAMPLE.org", "s3cret pass", Some(1000)).await.unwrap();
    assert_eq!(a.address, "alice@example.org");
    assert!(store.mailbox(a.id, "INBOX").is_ok());
    // The store enforces the quota, so it gets the limit too.
    assert_eq!(store.quota(a.id).unwrap(), coimail_store::QuotaLimits { bytes: Some(1000), messages: None });
    assert_eq!(d.authenticate("alice@example.org", "s3cret pass", PEER).await.unwrap(), a);
    assert!(matches!(d.authenticate("alice@example.org", "wrong", PEER).await, Err(AuthError::Failed)));
    assert!(matches!(d.authenticate("Alice@example.org", "s3cret pass", PEER).await, Err(AuthError::Failed)));
    assert!(matches!(d.authenticate("nobody@example.org", "x", PEER).await, Err(AuthError::Failed)));
    assert!(matches!(d.add_user("alice@example.org", "x", None).await, Err(DirectoryError::AlreadyExists(_))));
    assert!(matches!(d.add_user("bob@other.org", "x", None).await, Err(DirectoryError::UnknownDomain(_))));
    assert!(d.add_user("bob@example.org", "", None).await.is_err());
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    d.add_user("alice@example.org", "pw", None).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(d.authenticate("alice@example.org", "no", PEER).await, Err(AuthError::Failed)));
    }
    // Even the right password is refused while throttled...
    assert!(matches!(d.authenticate("alice@example.org", "pw", PEER).await, Err(AuthError::Throttled)));
    // ...but only for that peer.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    assert!(d.authenticate("alice@example.org", "pw", other).await.is_ok());
}

#[tokio::test]
async fn recipients_resolve_through_aliases_subaddresses_and_catch_all() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    let alice = d.add_user("alice@example.org", "pw", None).await.unwrap();
    let bob = d.add_user("bob@example.org", "pw", None).await.unwrap();
    d.add_alias("postmaster@example.org", "alice@example.org").await.unwrap();
    let id = |r: Option<Account>| r.map(|a| a.id);
    assert_eq!(id(d.resolve_recipient("alice@EXAMPLE.ORG").unwrap()), Some(alice.id));
    assert_eq!(id(d.resolve_recipient("postmaster@example.org").unwrap()), Some(alice.id));
    assert_eq!(id(d.resolve_recipient("bob+lists@example.org").unwrap()), Some(bob.id));
    assert_eq!(d.resolve_recipient("carol@example.org").unwrap(), None);
    assert_eq!(d.resolve_recipient("alice@elsewhere.org").unwrap(), None);
    assert_eq!(d.resolve_recipient("not an address").unwrap(), None);
    d.set_catch_all("example.org", Some("bob@example.org")).await.unwrap();
    assert_eq!(id(d.resolve_recipient("carol@example.org").unwrap()), Some(bob.id));
    assert!(d.is_local_domain("EXAMPLE.org").unwrap());
    assert!(!d.is_local_domain("elsewhere.org").unwrap());
    d.del_user("bob@example.org").await.unwrap();
    assert_eq!(d.resolve_recipient("carol@example.org").unwrap(), None, "catch-all went with its user");
    assert!(d.del_domain("example.org").await.is_err(), "domain still has alice");
}

#[tokio::test]
async fn snapshot_restores_users_with_their_ids_and_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    let alice = d.add_user("alice@example.org", "pw", Some(5000)).await.unwrap();
    d.add_alias("a@example.org", "alice@example.org").await.unwrap();
    let snap = dir.path().join("directory.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777, 0o600);

    let fresh = tempfile::tempdir().unwrap();
    let store2 = Store::open_memory(fresh.path()).unwrap();
    assert_eq!(Directory::restore(&store2, &snap).await.unwrap(), 1);
    let d2 = Directory::open(&store2, None).unwrap();
    assert_eq!(d2.authenticate("alice@example.org", "pw", PEER).await.unwrap().id, alice.id);
    assert_eq!(d2.resolve_recipient("a@example.org").unwrap().map(|a| a.id), Some(alice.id));
    assert!(store2.mailbox(alice.id, "INBOX").is_ok());
    assert_eq!(store2.quota(alice.id).unwrap().bytes, Some(5000));
    let carol = d2.add_user("carol@example.org", "pw", None).await.unwrap();
    assert!(carol.id.0 > alice.id.0, "ids are never reused");
}
