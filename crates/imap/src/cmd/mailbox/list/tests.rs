//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and the SPECIAL-USE
//! options (RFC 6154 §3) over a real socket. The RFC 3501 form is covered
//! in `mailbox/tests.rs`.

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
