use super::*;
use crate::testing::{TestServer, check};

fn m(p: &str, n: &str) -> bool {
    matches(collapse_wildcards(p).as_bytes(), n.as_bytes())
}

#[test]
fn wildcards() {
    assert!(m("*", "a/b/c"));
    assert!(m("%", "abc") && !m("%", "a/b"));
    assert!(m("a/%", "a/b") && !m("a/%", "a/b/c"));
    assert!(m("a*c", "a/b/c") && !m("a%c", "a/b/c") && m("a%c", "abbc"));
    assert!(m("%/%", "a/b") && !m("%/%", "a"));
    assert!(m("INBOX", "INBOX") && !m("INBOX", "INBOX/x"));
    assert!(m("*x", "xx") && !m("x", "xx"));
    assert!(m("Entw\u{fc}*", "Entw\u{fc}rfe"));
    assert_eq!(canonical_inbox("inbox/%"), "INBOX/%");
    assert_eq!(canonical_inbox("inboxes"), "inboxes");
}

#[test]
fn wildcard_runs_collapse() {
    assert_eq!(collapse_wildcards("a**%b%%c%*%/"), "a*b%c*/");
    assert_eq!(collapse_wildcards(&"*%".repeat(3000)), "*");
    assert!(!m(&format!("{}b", "%a".repeat(500)), &"a".repeat(600)));
}

#[tokio::test]
async fn list_pattern_and_name_lengths_are_bounded() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    // Collapses to `*`: everything, cheaply.
    let r = c.command("a1", &format!("LIST \"\" \"{}\"", "*%".repeat(3000))).await;
    assert_eq!(r.len(), 7, "{r:?}");
    assert_eq!(r.last().unwrap(), "a1 OK LIST completed");
    check(
        &mut c,
        &format!(
            "C: a2 LIST \"\" \"{}\"
             S: a2 BAD LIST pattern too long
             C: a3 SELECT \"{}\"
             S: a3 BAD Mailbox name too long",
            "%a".repeat(1100),
            "a".repeat(4000),
        ),
    )
    .await;
}

#[tokio::test]
async fn list_patterns_and_attributes() {
    let srv = TestServer::start().await;
    srv.store.create_mailbox(srv.account.id, "Archive/2024", None).await.unwrap();
    srv.store.create_mailbox(srv.account.id, "Lists/rust", None).await.unwrap();
    srv.store.create_mailbox(srv.account.id, "Entw\u{fc}rfe & Co", None).await.unwrap();
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    check(
        &mut c,
        "C: a1 LIST \"\" \"\"
         S: * LIST (\\Noselect) \"/\" \"\"
         S: a1 OK LIST completed
         C: a2 LIST \"\" *
         S: * LIST (\\HasChildren \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren) \"/\" \"Archive/2024\"
         S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe &- Co\"
         S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
         S: a2 OK LIST completed
         C: a3 LIST \"\" %
         S: * LIST (\\HasChildren \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe &- Co\"
         S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
         S: a3 OK LIST completed
         C: a4 LIST Lists/ %
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: a4 OK LIST completed
         C: a5 LIST \"\" inbox
         S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
         S: a5 OK LIST completed
         C: a6 LIST \"\" \"Entw&APw-*\"
         S: * LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe &- Co\"
         S: a6 OK LIST completed
         C: a7 LIST \"\" nothing*
         S: a7 OK LIST completed
         C: a8 ENABLE UTF8=ACCEPT
         S: * ENABLED UTF8=ACCEPT
         S: a8 OK ENABLE completed
         C: a9 LIST \"\" \"Entw\u{fc}*\"
         S: * LIST (\\HasNoChildren) \"/\" \"Entw\u{fc}rfe & Co\"
         S: a9 OK LIST completed",
    )
    .await;
}

async fn logged_in(srv: &TestServer) -> crate::testing::Client {
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c
}

#[tokio::test]
async fn create_delete_and_their_edge_cases() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 CREATE Projects/coimail/
         S: a1 OK CREATE completed
         C: a2 CREATE projects
         S: a2 OK CREATE completed
         C: a3 CREATE inbox
         S: a3 NO [ALREADYEXISTS] mailbox INBOX already exists
         C: a4 CREATE Projects/coimail
         S: a4 NO [ALREADYEXISTS] mailbox Projects/coimail already exists
         C: a5 CREATE \"a%b\"
         S: a5 NO Invalid mailbox name: '*' and '%' are not allowed
         C: a6 CREATE Entw&APw-rfe
         S: a6 OK CREATE completed
         C: a7 LIST \"\" P*
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Projects\"
         S: * LIST (\\HasNoChildren) \"/\" \"Projects/coimail\"
         S: a7 OK LIST completed
         C: a8 DELETE Projects
         S: a8 NO [HASCHILDREN] Projects has inferior hierarchical names and no messages
         C: a9 DELETE INBOX
         S: a9 NO [CANNOT] INBOX cannot be deleted
         C: b1 DELETE Nope
         S: b1 NO [NONEXISTENT] mailbox Nope does not exist
         C: b2 DELETE Projects/coimail
         S: b2 OK DELETE completed
         C: b3 DELETE Entw&APw-rfe
         S: b3 OK DELETE completed
         C: b4 LIST \"\" %rojects
         S: * LIST (\\HasNoChildren) \"/\" \"projects\"
         S: b4 OK LIST completed",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_parent_keeps_its_children() {
    let srv = TestServer::start().await;
    srv.store.create_mailbox(srv.account.id, "Lists", None).await.unwrap();
    srv.store.create_mailbox(srv.account.id, "Lists/rust", None).await.unwrap();
    srv.store.append(srv.account.id, "Lists", b"x\r\n", Default::default(), 0).await.unwrap();
    let mut c = logged_in(&srv).await;
    // RFC 3501 §6.3.4: its messages go, the name stays as \Noselect.
    check(
        &mut c,
        "C: a1 DELETE Lists
         S: a1 OK DELETE completed
         C: a2 LIST \"\" Lists*
         S: * LIST (\\Noselect \\HasChildren) \"/\" \"Lists\"
         S: * LIST (\\HasNoChildren) \"/\" \"Lists/rust\"
         S: a2 OK LIST completed
         C: a3 DELETE Lists
         S: a3 NO [HASCHILDREN] Lists has inferior hierarchical names and no messages",
    )
    .await;
}

#[tokio::test]
async fn create_special_use() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 CREATE MySent (USE (\\Sent))
         S: a1 OK CREATE completed
         C: a2 CREATE Bin (use (\\trash))
         S: a2 OK CREATE completed
         C: a3 CREATE Everything (USE (\\All))
         S: a3 NO [USEATTR] Special use \\All is not supported
         C: a4 CREATE Two (USE (\\Sent \\Junk))
         S: a4 NO [USEATTR] A mailbox can have one special use
         C: a5 CREATE Plain (USE ())
         S: a5 OK CREATE completed
         C: a6 CREATE Odd (FOO)
         S: a6 BAD Syntax error in CREATE arguments
         C: a7 LIST \"\" %
         S: * LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"
         S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Bin\"
         S: * LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"
         S: * LIST (\\HasNoChildren) \"/\" \"INBOX\"
         S: * LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"MySent\"
         S: * LIST (\\HasNoChildren) \"/\" \"Plain\"
         S: * LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"
         S: * LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"
         S: a7 OK LIST completed",
    )
    .await;
    assert!(srv.store.mailbox(srv.account.id, "Everything").is_err());
}

#[tokio::test]
async fn rename_with_children_and_inbox() {
    let srv = TestServer::start().await;
    srv.store.create_mailbox(srv.account.id, "a/b", None).await.unwrap();
    srv.store.create_mailbox(srv.account.id, "a/b/c", None).await.unwrap();
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    let before = srv.store.mailbox(srv.account.id, "a/b/c").unwrap();
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 RENAME a/b x
         S: a1 OK RENAME completed
         C: a2 LIST \"\" x*
         S: * LIST (\\HasChildren) \"/\" \"x\"
         S: * LIST (\\HasNoChildren) \"/\" \"x/c\"
         S: a2 OK LIST completed
         C: a3 RENAME x x/y
         S: a3 NO [CANNOT] cannot rename x to itself or into its own hierarchy
         C: a4 RENAME x Sent
         S: a4 NO [ALREADYEXISTS] mailbox Sent already exists
         C: a5 RENAME nope y
         S: a5 NO [NONEXISTENT] mailbox nope does not exist
         C: a6 RENAME INBOX \"Old mail\"
         S: a6 OK RENAME completed
         C: a7 STATUS \"Old mail\" (MESSAGES)
         S: * STATUS \"Old mail\" (MESSAGES 1)
         S: a7 OK STATUS completed
         C: a8 STATUS INBOX (MESSAGES UIDNEXT)
         S: * STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 2)
         S: a8 OK STATUS completed",
    )
    .await;
    let after = srv.store.mailbox(srv.account.id, "x/c").unwrap();
    assert_eq!((after.id, after.uid_validity), (before.id, before.uid_validity));
}

#[tokio::test]
async fn selected_inbox_renamed_away_reports_expunges() {
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    srv.deliver(b"Subject: 2\r\n\r\n2\r\n").await;
    let mut c = logged_in(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: a1 RENAME INBOX Saved
         S: * 1 EXPUNGE
         S: * 1 EXPUNGE
         S: a1 OK RENAME completed",
    )
    .await;
}

#[tokio::test]
async fn subscribe_unsubscribe_and_lsub() {
    let srv = TestServer::start().await;
    for name in ["Lists", "Lists/rust", "Lists/go", "Work/2024/q1"] {
        srv.store.create_mailbox(srv.account.id, name, None).await.unwrap();
    }
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 SUBSCRIBE Lists/rust
         S: a1 OK SUBSCRIBE completed
         C: a2 SUBSCRIBE Work/2024/q1
         S: a2 OK SUBSCRIBE completed
         C: a3 SUBSCRIBE Nope
         S: a3 NO [NONEXISTENT] mailbox Nope does not exist
         C: a4 UNSUBSCRIBE Junk
         S: a4 OK UNSUBSCRIBE completed
         C: a5 LSUB \"\" %
         S: * LSUB () \"/\" \"Archive\"
         S: * LSUB () \"/\" \"Drafts\"
         S: * LSUB () \"/\" \"INBOX\"
         S: * LSUB (\\Noselect) \"/\" \"Lists\"
         S: * LSUB () \"/\" \"Sent\"
         S: * LSUB () \"/\" \"Trash\"
         S: * LSUB (\\Noselect) \"/\" \"Work\"
         S: a5 OK LSUB completed
         C: a6 LSUB Lists/ *
         S: * LSUB () \"/\" \"Lists/rust\"
         S: a6 OK LSUB completed
         C: a7 LSUB \"\" Work/%
         S: * LSUB (\\Noselect) \"/\" \"Work/2024\"
         S: a7 OK LSUB completed
         C: a8 LSUB \"\" *q1
         S: * LSUB () \"/\" \"Work/2024/q1\"
         S: a8 OK LSUB completed
         C: a9 LSUB \"\" \"\"
         S: * LSUB (\\Noselect) \"/\" \"\"
         S: a9 OK LSUB completed
         C: b1 UNSUBSCRIBE Lists/rust
         S: b1 OK UNSUBSCRIBE completed
         C: b2 LSUB \"\" Lists*
         S: b2 OK LSUB completed",
    )
    .await;
}

/// A name that is not modified UTF-7 cannot name a mailbox: the command is
/// well formed, so the answer is NO (or an empty LIST), never BAD.
#[tokio::test]
async fn names_that_are_not_modified_utf7_name_nothing() {
    let srv = TestServer::start().await;
    srv.store.create_mailbox(srv.account.id, "foo", None).await.unwrap();
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: n1 SELECT \"foo&'\"
         S: n1 NO [NONEXISTENT] ...
         C: n2 EXAMINE foo&AGE
         S: n2 NO [NONEXISTENT] ...
         C: n3 STATUS \"foo&'\" (MESSAGES)
         S: n3 NO [NONEXISTENT] ...
         C: n4 DELETE \"foo&'\"
         S: n4 NO [NONEXISTENT] ...
         C: n5 RENAME \"foo&'\" bar
         S: n5 NO [NONEXISTENT] ...
         C: n6 CREATE \"foo&'\"
         S: n6 NO [CANNOT] ...
         C: n7 CREATE \"&AC8-x\"
         S: n7 NO [CANNOT] ...
         C: n8 RENAME foo \"foo&'\"
         S: n8 NO [CANNOT] ...
         C: n9 LIST \"\" \"foo&'\"
         S: n9 OK LIST completed
         C: n10 LIST \"\" \"*&'*\"
         S: n10 OK LIST completed
         C: n11 LIST \"foo&'\" *
         S: n11 OK LIST completed
         C: n12 LIST (SUBSCRIBED) \"\" (\"foo&'\" foo)
         S: n12 OK LIST completed
         C: n13 LSUB \"\" \"foo&'\"
         S: n13 OK LSUB completed
         C: n14 APPEND \"foo&'\" {1+}
         C: x
         S: n14 NO [NONEXISTENT] ...
         C: n15 SUBSCRIBE \"foo&'\"
         S: n15 NO [NONEXISTENT] ...
         C: n16 LIST \"\" foo
         S: * LIST (\\HasNoChildren) \"/\" \"foo\"
         S: n16 OK LIST completed",
    )
    .await;
}
