//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and the SPECIAL-USE
//! options (RFC 6154 §3) over a real socket. The RFC 3501 form is covered
//! in `mailbox/tests.rs`.

use super::{join_reference, reference_root};
use crate::testing::{Client, TestServer, check};

/// Default mailboxes (all subscribed), plus `Fruit/Banana` and
/// `Fruit/Peach` (subscribed, under a `Fruit` that does not exist) and
/// `Lists/rust` (not subscribed).
async fn setup() -> (TestServer, Client) {
    let srv = TestServer::start().await;
    let id = srv.account.id;
    for name in ["Fruit/Banana", "Fruit/Peach", "Lists/rust"] {
        srv.store.create_mailbox(id, name, None).await.unwrap();
    }
    for name in ["Fruit/Banana", "Fruit/Peach"] {
        srv.store.set_subscribed(id, name, true).await.unwrap();
    }
    srv.deliver(b"Subject: 1\r\n\r\nx\r\n").await;
    srv.deliver(b"Subject: 2\r\n\r\ny\r\n").await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    (srv, c)
}

#[tokio::test]
async fn subscribed_selection_and_recursivematch() {
    let (_srv, mut c) = setup().await;
    check(
        &mut c,
        "C: a1 LIST (SUBSCRIBED) \"\" *
         S: * LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Banana\"
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Peach\"
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Junk) \"/\" \"Junk\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" \"Trash\"
         S: a1 OK LIST completed
         C: a2 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %
         S: * LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Fruit\" (\"CHILDINFO\" (\"SUBSCRIBED\"))
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Junk) \"/\" \"Junk\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" \"Trash\"
         S: a2 OK LIST completed
         C: a3 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Fruit Lists)
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Fruit\" (\"CHILDINFO\" (\"SUBSCRIBED\"))
         S: a3 OK LIST completed
         C: a4 LIST (SUBSCRIBED) \"\" Fruit/%
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Banana\"
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Peach\"
         S: a4 OK LIST completed
         C: a5 LIST (RECURSIVEMATCH) \"\" %
         S: a5 BAD RECURSIVEMATCH needs a base selection option
         C: a6 LIST (FOO) \"\" %
         S: a6 BAD Syntax error in LIST arguments",
    )
    .await;
}

#[tokio::test]
async fn return_options_and_several_patterns() {
    let (_srv, mut c) = setup().await;
    check(
        &mut c,
        "C: b1 LIST () \"\" % RETURN (CHILDREN)
         S: * LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Fruit\"
         S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Lists\"
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
         S: b1 OK LIST completed
         C: b2 LIST \"\" (Lists/* Fruit/B* inbox) RETURN (SUBSCRIBED)
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Banana\"
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: b2 OK LIST completed
         C: b3 LIST Lists/ (% nothing) RETURN ()
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: b3 OK LIST completed
         C: b4 LIST () \"\" \"\"
         S: * LIST (\\Noselect) \"/\" \"\"
         S: b4 OK LIST completed",
    )
    .await;
}

#[tokio::test]
async fn list_status_follows_each_selectable_mailbox() {
    let (_srv, mut c) = setup().await;
    check(
        &mut c,
        "C: c1 LIST \"\" (INBOX Sent Fruit) RETURN (STATUS (MESSAGES UNSEEN SIZE))
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Fruit\"
         S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
         S: * STATUS \"INBOX\" (MESSAGES 2 UNSEEN 2 SIZE 34)
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
         S: * STATUS \"Sent\" (MESSAGES 0 UNSEEN 0 SIZE 0)
         S: c1 OK LIST completed
         C: c2 LIST (SUBSCRIBED) \"\" Fruit/P% RETURN (CHILDREN STATUS (UIDNEXT))
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Peach\"
         S: * STATUS \"Fruit/Peach\" (UIDNEXT 1)
         S: c2 OK LIST completed
         C: c3 LIST \"\" % RETURN (STATUS ())
         S: c3 BAD Syntax error in LIST arguments",
    )
    .await;
}

#[tokio::test]
async fn special_use_selection_and_return() {
    let (_srv, mut c) = setup().await;
    check(
        &mut c,
        "C: d1 LIST (SPECIAL-USE) \"\" * RETURN (SPECIAL-USE)
         S: * LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
         S: d1 OK LIST completed
         C: d2 CREATE Lists/Bin (USE (\\Junk))
         S: d2 OK CREATE completed
         C: d3 LIST (SPECIAL-USE RECURSIVEMATCH) \"\" L%
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Lists\" (\"CHILDINFO\" (\"SPECIAL-USE\"))
         S: d3 OK LIST completed",
    )
    .await;
}

#[tokio::test]
async fn a_deleted_mailbox_stays_subscribed() {
    let srv = TestServer::start().await;
    srv.store.create_mailbox(srv.account.id, "Lists/old", None).await.unwrap();
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    // RFC 3501 §6.3.4 / RFC 9051 §6.3.4: DELETE leaves the subscription alone.
    check(
        &mut c,
        "C: a1 CREATE x
         S: a1 OK CREATE completed
         C: a2 SUBSCRIBE x
         S: a2 OK SUBSCRIBE completed
         C: a3 SUBSCRIBE Lists/old
         S: a3 OK SUBSCRIBE completed
         C: a4 DELETE x
         S: a4 OK DELETE completed
         C: a5 DELETE Lists/old
         S: a5 OK DELETE completed
         C: a6 LSUB \"\" *
         S: * LSUB () \"/\" \"Archive\"
         S: * LSUB () \"/\" \"Drafts\"
         S: * LSUB () \"/\" \"INBOX\"
         S: * LSUB () \"/\" \"Junk\"
         S: * LSUB (\\Noselect) \"/\" \"Lists/old\"
         S: * LSUB () \"/\" \"Sent\"
         S: * LSUB () \"/\" \"Trash\"
         S: * LSUB (\\Noselect) \"/\" \"x\"
         S: a6 OK LSUB completed
         C: a7 LSUB \"\" %
         S: * LSUB () \"/\" \"Archive\"
         S: * LSUB () \"/\" \"Drafts\"
         S: * LSUB () \"/\" \"INBOX\"
         S: * LSUB () \"/\" \"Junk\"
         S: * LSUB (\\Noselect) \"/\" \"Lists\"
         S: * LSUB () \"/\" \"Sent\"
         S: * LSUB () \"/\" \"Trash\"
         S: * LSUB (\\Noselect) \"/\" \"x\"
         S: a7 OK LSUB completed
         C: a8 LIST (SUBSCRIBED) \"\" \"[xL]*\"
         S: a8 OK LIST completed
         C: a9 LIST (SUBSCRIBED) \"\" *
         S: * LIST (\\HasNoChildren \\Subscribed \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Junk) \"/\" \"Junk\"
         S: * LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" \"Lists/old\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" \"Trash\"
         S: * LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" \"x\"
         S: a9 OK LIST completed
         C: b1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" L%
         S: * LIST (\\NonExistent \\HasNoChildren) \"/\" \"Lists\" (\"CHILDINFO\" (\"SUBSCRIBED\"))
         S: b1 OK LIST completed
         C: b2 LIST \"\" x
         S: b2 OK LIST completed
         C: b3 LIST \"\" x RETURN (SUBSCRIBED)
         S: b3 OK LIST completed
         C: b4 CREATE x
         S: b4 OK CREATE completed
         C: b5 LIST \"\" x RETURN (SUBSCRIBED)
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"x\"
         S: b5 OK LIST completed
         C: b6 LSUB \"\" x
         S: * LSUB () \"/\" \"x\"
         S: b6 OK LSUB completed
         C: b7 UNSUBSCRIBE Lists/old
         S: b7 OK UNSUBSCRIBE completed
         C: b8 UNSUBSCRIBE Lists/old
         S: b8 NO [NONEXISTENT] mailbox Lists/old does not exist
         C: b9 LSUB \"\" L*
         S: b9 OK LSUB completed",
    )
    .await;
}

#[test]
fn reference_and_pattern_join() {
    assert_eq!(join_reference("", "%").as_deref(), Some("%"));
    assert_eq!(join_reference("foo/", "bar").as_deref(), Some("foo/bar"));
    assert_eq!(join_reference("foo", "/bar").as_deref(), Some("foo/bar"));
    assert_eq!(join_reference("foo/", "/bar").as_deref(), Some("foo/bar"));
    assert_eq!(join_reference("foo", "bar").as_deref(), Some("foobar"));
    assert_eq!(join_reference("#news.", "comp.*"), None);
    assert_eq!(reference_root(""), "");
    assert_eq!(reference_root("foo"), "");
    assert_eq!(reference_root("foo/bar/baz"), "foo/");
    assert_eq!(reference_root("#x/y"), "#x/");
}

#[tokio::test]
async fn list_reference_argument() {
    let srv = TestServer::start().await;
    for name in ["Lists/rust", "Lists/go/old", "Listserv", "#notes"] {
        srv.store.create_mailbox(srv.account.id, name, None).await.unwrap();
    }
    srv.store.set_subscribed(srv.account.id, "Lists/rust", true).await.unwrap();
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    // RFC 3501 §6.3.8: the reference and the pattern are one name; the
    // responses carry full names.
    check(
        &mut c,
        "C: a1 LIST Lists/ %
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists/go\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: a1 OK LIST completed
         C: a2 LIST Lists /%
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists/go\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: a2 OK LIST completed
         C: a3 LIST Lists/ /rust
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: a3 OK LIST completed
         C: a4 LIST Lists *
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists/go\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/go/old\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: * LIST (\\HasNoChildren) \"/\" \"Listserv\"
         S: a4 OK LIST completed
         C: a5 LIST Lists/go/ *
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/go/old\"
         S: a5 OK LIST completed
         C: a6 LIST \"\" \"\"
         S: * LIST (\\Noselect) \"/\" \"\"
         S: a6 OK LIST completed
         C: a7 LIST Lists/go \"\"
         S: * LIST (\\Noselect) \"/\" \"Lists/\"
         S: a7 OK LIST completed
         C: a8 LIST \"#news.\" *
         S: a8 OK LIST completed
         C: a9 LIST #x \"\"
         S: * LIST (\\Noselect) \"/\" \"\"
         S: a9 OK LIST completed
         C: b1 LIST \"\" #*
         S: * LIST (\\HasNoChildren) \"/\" \"#notes\"
         S: b1 OK LIST completed
         C: b2 LIST inbox/ %
         S: b2 OK LIST completed
         C: b3 LSUB Lists/ %
         S: * LSUB () \"/\" \"Lists/rust\"
         S: b3 OK LSUB completed
         C: b4 LSUB Lists /r*
         S: * LSUB () \"/\" \"Lists/rust\"
         S: b4 OK LSUB completed
         C: b5 LSUB #x *
         S: b5 OK LSUB completed
         C: b6 LSUB Lists/rust \"\"
         S: * LSUB (\\Noselect) \"/\" \"Lists/\"
         S: b6 OK LSUB completed
         C: b7 LIST (SUBSCRIBED) Lists/ % RETURN (CHILDREN)
         S: * LIST (\\HasNoChildren \\Subscribed) \"/\" \"Lists/rust\"
         S: b7 OK LIST completed
         C: b8 LIST () Lists (/r* /g%) RETURN (STATUS (MESSAGES))
         S: * LIST (\\NonExistent \\HasChildren) \"/\" \"Lists/go\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: * STATUS \"Lists/rust\" (MESSAGES 0)
         S: b8 OK LIST completed
         C: b9 LIST () \"#x\" (* %)
         S: b9 OK LIST completed",
    )
    .await;
}
