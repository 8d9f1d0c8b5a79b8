use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

fn auth_options() -> AuthOptions {
    AuthOptions {
        throttle: ThrottleOptions { max_failures: 3, max_account_failures: 5, window: Duration::from_secs(60) },
        ..AuthOptions::default()
    }
}

async fn setup(dir: &Path) -> (Store, Directory) {
    setup_with(dir, auth_options()).await
}

async fn setup_with(dir: &Path, auth: AuthOptions) -> (Store, Directory) {
    let store = Store::open_memory(dir).unwrap();
    let d = Directory::open_with(&store, Some(dir.join("directory.json")), auth).unwrap();
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
    // A cached login is no way around the throttle.
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(d.authenticate("alice@example.org", "no", PEER).await, Err(AuthError::Failed)));
    }
    // Even the right password is refused while throttled...
    assert!(matches!(d.authenticate("alice@example.org", "pw", PEER).await, Err(AuthError::Throttled)));
    // ...but only for that peer.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    assert!(d.authenticate("alice@example.org", "pw", other).await.is_ok());
}

/// The attack of issue 11: log in to an account you own between guesses at
/// another's password, hoping each success clears the peer's count. It
/// clears only the failures against the account that succeeded.
#[tokio::test]
async fn a_success_does_not_reset_failures_against_other_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    d.add_user("mallory@example.org", "mine", None).await.unwrap();
    d.add_user("victim@example.org", "theirs", None).await.unwrap();
    let mut refused = None;
    for guess in 0..10 {
        match d.authenticate("victim@example.org", &format!("guess {guess}"), PEER).await {
            Err(AuthError::Failed) => {}
            Err(AuthError::Throttled) => {
                refused = Some(guess);
                break;
            }
            other => panic!("{other:?}"),
        }
        let _ = d.authenticate("mallory@example.org", "mine", PEER).await;
    }
    assert_eq!(refused, Some(3), "the 4th guess must be refused (max_failures = 3)");
    // Mistyping one's own password and then getting it right clears that slip.
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    for _ in 0..2 {
        assert!(matches!(d.authenticate("mallory@example.org", "typo", other).await, Err(AuthError::Failed)));
        d.authenticate("mallory@example.org", "mine", other).await.unwrap();
    }
    assert_eq!(d.throttle().peer_failures(other), 0);
}

/// Guesses at one account spread over many peers: past the per-account
/// limit, new logins to it are refused, while a client whose login the
/// cache knows keeps working and other accounts are not affected.
#[tokio::test]
async fn failures_are_counted_per_account_across_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    d.add_user("victim@example.org", "theirs", None).await.unwrap();
    d.add_user("bob@example.org", "pw", None).await.unwrap();
    let owner = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    d.authenticate("victim@example.org", "theirs", owner).await.unwrap();
    for i in 0..5u8 {
        let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, i));
        assert!(matches!(d.authenticate("victim@EXAMPLE.ORG", "guess", peer).await, Err(AuthError::Failed)));
    }
    let fresh = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 200));
    assert!(matches!(d.authenticate("victim@example.org", "guess", fresh).await, Err(AuthError::Throttled)));
    // Even the right password, unless the cache recognises it.
    let stats = d.auth_stats();
    assert!(d.authenticate("victim@example.org", "theirs", owner).await.is_ok());
    assert_eq!(d.auth_stats().cache_hits, stats.cache_hits + 1);
    d.authenticate("bob@example.org", "pw", fresh).await.unwrap();
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

// ---- the login cache and the argon2 bound ----

fn verifications(d: &Directory) -> u64 {
    d.auth_stats().argon2_verifications
}

#[tokio::test]
async fn a_repeated_login_skips_argon2() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    let alice = d.add_user("alice@example.org", "pw", None).await.unwrap();
    assert_eq!(d.auth_stats().argon2_hashes, 1);
    assert_eq!(d.authenticate("alice@example.org", "pw", PEER).await.unwrap(), alice);
    assert_eq!((verifications(&d), d.auth_stats().cache_hits), (1, 0));
    for _ in 0..5 {
        assert_eq!(d.authenticate("alice@EXAMPLE.org", "pw", PEER).await.unwrap(), alice);
    }
    assert_eq!((verifications(&d), d.auth_stats().cache_hits), (1, 5), "argon2 ran once");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_always_pay_for_argon2() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    d.add_user("alice@example.org", "pw", None).await.unwrap();
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    // Failures are not cached: the same wrong password twice is two verifications.
    for (login, password) in [("alice@example.org", "pW"), ("alice@example.org", "pW")] {
        let before = verifications(&d);
        assert!(matches!(d.authenticate(login, password, other).await, Err(AuthError::Failed)));
        assert_eq!(verifications(&d), before + 1, "{login} {password}");
    }
    let third = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    for (login, password) in [("nobody@example.org", "pw"), ("not an address", "pw"), ("Alice@example.org", "pw")] {
        let before = verifications(&d);
        assert!(matches!(d.authenticate(login, password, third).await, Err(AuthError::Failed)));
        assert_eq!(verifications(&d), before + 1, "{login} costs an argon2 verification");
    }
    assert_eq!(d.auth_stats().cache_hits, 0);
    // The good entry survived the wrong guesses.
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    assert_eq!(d.auth_stats().cache_hits, 1);
}

#[tokio::test]
async fn a_password_change_invalidates_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    d.add_user("alice@example.org", "old pw", None).await.unwrap();
    d.authenticate("alice@example.org", "old pw", PEER).await.unwrap();
    d.authenticate("alice@example.org", "old pw", PEER).await.unwrap();
    assert_eq!(d.auth_stats().cache_hits, 1);
    d.set_password("alice@example.org", "new pw").await.unwrap();
    assert!(matches!(d.authenticate("alice@example.org", "old pw", PEER).await, Err(AuthError::Failed)));
    let v = verifications(&d);
    d.authenticate("alice@example.org", "new pw", PEER).await.unwrap();
    assert_eq!(verifications(&d), v + 1, "the new password is verified by argon2 first");
    d.authenticate("alice@example.org", "new pw", PEER).await.unwrap();
    assert_eq!(verifications(&d), v + 1, "then cached");
}

#[tokio::test]
async fn a_change_through_another_handle_invalidates_too() {
    // Another Directory on the same database never told this one's cache:
    // the entry is bound to the stored record, so it misses anyway. This is
    // what makes every path safe (offline CLI, a restore, a racing login).
    let dir = tempfile::tempdir().unwrap();
    let (store, d) = setup(dir.path()).await;
    let other = Directory::open(&store, None).unwrap();
    d.add_user("alice@example.org", "old pw", None).await.unwrap();
    d.add_user("bob@example.org", "bob pw", None).await.unwrap();
    for login in ["alice@example.org", "bob@example.org"] {
        let pw = if login.starts_with("alice") { "old pw" } else { "bob pw" };
        d.authenticate(login, pw, PEER).await.unwrap();
        d.authenticate(login, pw, PEER).await.unwrap();
    }
    assert_eq!(d.auth_stats().cache_hits, 2);
    other.set_password("alice@example.org", "new pw").await.unwrap();
    other.del_user("bob@example.org").await.unwrap();
    let peer2 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    assert!(matches!(d.authenticate("alice@example.org", "old pw", peer2).await, Err(AuthError::Failed)));
    assert!(matches!(d.authenticate("bob@example.org", "bob pw", peer2).await, Err(AuthError::Failed)));
    d.authenticate("alice@example.org", "new pw", PEER).await.unwrap();
    assert_eq!(d.auth_stats().cache_hits, 2);
}

#[tokio::test]
async fn deleting_the_user_invalidates_even_if_re_created_with_the_same_password() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, d) = setup(dir.path()).await;
    d.add_user("alice@example.org", "pw", None).await.unwrap();
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    assert_eq!(d.inner.cache.len(), 1);
    d.del_user("alice@example.org").await.unwrap();
    assert_eq!(d.inner.cache.len(), 0, "dropped with the user");
    assert!(matches!(d.authenticate("alice@example.org", "pw", PEER).await, Err(AuthError::Failed)));
    let again = d.add_user("alice@example.org", "pw", None).await.unwrap();
    let v = verifications(&d);
    assert_eq!(d.authenticate("alice@example.org", "pw", PEER).await.unwrap(), again);
    assert_eq!((verifications(&d), d.auth_stats().cache_hits), (v + 1, 0), "a new user is a new record");
}

#[tokio::test]
async fn cached_logins_expire_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(200);
    let (_s, d) =
        setup_with(dir.path(), AuthOptions { cache: CacheOptions { ttl, max_entries: 10 }, ..auth_options() }).await;
    d.add_user("alice@example.org", "pw", None).await.unwrap();
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    assert_eq!((verifications(&d), d.auth_stats().cache_hits), (1, 1));
    tokio::time::sleep(ttl * 2).await;
    d.authenticate("alice@example.org", "pw", PEER).await.unwrap();
    assert_eq!((verifications(&d), d.auth_stats().cache_hits), (2, 1), "verified by argon2 again");
}

#[tokio::test]
async fn argon2_runs_at_most_the_configured_number_at_once() {
    async fn peak_with(permits: usize) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthOptions {
            cache: CacheOptions { ttl: Duration::ZERO, max_entries: 0 },
            max_concurrent_argon2: permits,
            ..auth_options()
        };
        let (_s, d) = setup_with(dir.path(), auth).await;
        d.add_user("alice@example.org", "pw", None).await.unwrap();
        let logins: Vec<_> = (0..6)
            .map(|_| {
                let d = d.clone();
                tokio::spawn(async move { d.authenticate("alice@example.org", "pw", PEER).await })
            })
            .collect();
        for l in logins {
            l.await.unwrap().unwrap();
        }
        assert_eq!(d.auth_stats().argon2_verifications, 6, "the cache is off");
        d.auth_stats().peak_concurrent_argon2
    }
    assert_eq!(peak_with(2).await, 2, "bounded, and the two did overlap");
    // Without a real bound the six overlap: the gauge would have caught a missing semaphore.
    assert!(peak_with(64).await > 2);
    assert!(AuthOptions::default().max_concurrent_argon2 == cpu_count() && cpu_count() >= 1);
}
