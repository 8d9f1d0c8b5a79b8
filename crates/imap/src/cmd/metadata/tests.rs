//! GETMETADATA / SETMETADATA transcripts over a real socket. COI spec
//! requirement ids (R5–R10, D3) name the cases the COI issue builds on.

use crate::testing::{Client, TestServer, check};

async fn logged_in(srv: &TestServer) -> Client {
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c
}

#[tokio::test]
async fn delta_chat_server_reads_get_nil_d3_r8() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 GETMETADATA \"\" /shared/comment
         S: * METADATA \"\" (/shared/comment NIL)
         S: a1 OK GETMETADATA completed
         C: a2 GETMETADATA \"\" (/shared/comment /shared/admin)
         S: * METADATA \"\" (/shared/comment NIL /shared/admin NIL)
         S: a2 OK GETMETADATA completed",
    )
    .await;
    // Shared server entries are the administrator's: readable by all, not writable.
    srv.store
        .set_metadata(
            coimail_store::MetadataScope { account: srv.account.id, mailbox: None },
            "/shared/admin",
            Some(b"mailto:postmaster@example.org"),
        )
        .await
        .unwrap();
    check(
        &mut c,
        "C: a3 GETMETADATA \"\" (/shared/comment /shared/admin)
         S: * METADATA \"\" (/shared/comment NIL /shared/admin \"mailto:postmaster@example.org\")
         S: a3 OK GETMETADATA completed
         C: a4 SETMETADATA \"\" (/shared/comment \"hi\")
         S: a4 NO [NOPERM] Server /shared entries are set by the administrator",
    )
    .await;
}

#[tokio::test]
async fn coi_config_round_trip_r5_r6_r7() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    // R5: atoms as values (imap-codec wants nstring; cmd::ext takes these), several pairs at once.
    // R11: mailbox-root is answered by COI, read-only.
    check(
        &mut c,
        "C: a4 SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled yes /private/vendor/vendor.dovecot/coi/config/message-filter active)
         S: a4 OK SETMETADATA completed
         C: a5 SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/mailbox-root \"COI\")
         S: a5 NO [CANNOT] The /private/vendor/vendor.dovecot/coi/config/mailbox-root attribute cannot be changed
         C: a16 GETMETADATA (DEPTH 1) \"\" (/private/vendor/vendor.dovecot/coi/config)
         S: * METADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled \"yes\" /private/vendor/vendor.dovecot/coi/config/mailbox-root \"COI\" /private/vendor/vendor.dovecot/coi/config/message-filter \"active\")
         S: a16 OK GETMETADATA completed
         C: a17 GETMETADATA \"\" /PRIVATE/Vendor/vendor.dovecot/coi/config/ENABLED
         S: * METADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled \"yes\")
         S: a17 OK GETMETADATA completed
         C: a18 SETMETADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled NIL)
         S: a18 OK SETMETADATA completed
         C: a19 GETMETADATA \"\" /private/vendor/vendor.dovecot/coi/config/enabled
         S: * METADATA \"\" (/private/vendor/vendor.dovecot/coi/config/enabled NIL)
         S: a19 OK GETMETADATA completed",
    )
    .await;
}

#[tokio::test]
async fn depth_maxsize_and_missing_roots() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 SETMETADATA \"\" (/private/a \"1\" /private/a/b \"22\" /private/a/b/c \"333\" /private/z \"4444\")
         S: a1 OK SETMETADATA completed
         C: a2 GETMETADATA (DEPTH 0) \"\" /private/a
         S: * METADATA \"\" (/private/a \"1\")
         S: a2 OK GETMETADATA completed
         C: a3 GETMETADATA (DEPTH 1) \"\" /private/a
         S: * METADATA \"\" (/private/a \"1\" /private/a/b \"22\")
         S: a3 OK GETMETADATA completed
         C: a4 GETMETADATA (DEPTH infinity) \"\" /private/a
         S: * METADATA \"\" (/private/a \"1\" /private/a/b \"22\" /private/a/b/c \"333\")
         S: a4 OK GETMETADATA completed
         C: a5 GETMETADATA (MAXSIZE 2 DEPTH infinity) \"\" (/private)
         S: * METADATA \"\" (/private/a \"1\" /private/a/b \"22\")
         S: a5 OK [METADATA LONGENTRIES 4] GETMETADATA completed
         C: a6 GETMETADATA (DEPTH 1) \"\" (/private/nothing /shared)
         S: a6 OK GETMETADATA completed
         C: a7 GETMETADATA (MAXSIZE 0) \"\" /private/z
         S: a7 OK [METADATA LONGENTRIES 4] GETMETADATA completed
         C: a8 GETMETADATA (DEPTH infinity) \"\" (/private/a /private/a/b)
         S: * METADATA \"\" (/private/a \"1\" /private/a/b \"22\" /private/a/b/c \"333\")
         S: a8 OK GETMETADATA completed
         C: a9 GETMETADATA (DEPTH 2) \"\" /private/a
         S: a9 BAD Syntax error in GETMETADATA arguments",
    )
    .await;
}

#[tokio::test]
async fn values_as_literals_literal8_and_utf8_r6() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 SETMETADATA \"\" (/private/pem {6+}
         C: ab
         C: cd /private/nul ~{3+}
         C: x\u{0}y /private/utf \"caf\u{e9}\" /private/empty \"\")
         S: a1 OK SETMETADATA completed
         C: a2 GETMETADATA \"\" (/private/pem /private/nul /private/utf /private/empty)
         S: * METADATA \"\" (/private/pem {6}\\r\\nab\\r\\ncd /private/nul ~{3}\\r\\nx\u{0}y /private/utf {5}\\r\\ncaf\u{e9} /private/empty \"\")
         S: a2 OK GETMETADATA completed",
    )
    .await;
}

#[tokio::test]
async fn mailbox_entries_follow_rename_and_go_with_delete() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 SETMETADATA INBOX (/private/devicetoken \"tok\" /shared/comment \"mine\")
         S: a1 OK SETMETADATA completed
         C: a2 GETMETADATA \"inbox\" (/private/devicetoken /shared/comment)
         S: * METADATA \"INBOX\" (/private/devicetoken \"tok\" /shared/comment \"mine\")
         S: a2 OK GETMETADATA completed
         C: a3 GETMETADATA \"\" /private/devicetoken
         S: * METADATA \"\" (/private/devicetoken NIL)
         S: a3 OK GETMETADATA completed
         C: a4 CREATE Chats
         S: a4 OK CREATE completed
         C: a5 SETMETADATA Chats (/private/x \"1\")
         S: a5 OK SETMETADATA completed
         C: a6 RENAME Chats Talk
         S: a6 OK RENAME completed
         C: a7 GETMETADATA Talk /private/x
         S: * METADATA \"Talk\" (/private/x \"1\")
         S: a7 OK GETMETADATA completed
         C: a8 DELETE Talk
         S: a8 OK DELETE completed
         C: a9 CREATE Talk
         S: a9 OK CREATE completed
         C: a10 GETMETADATA Talk /private/x
         S: * METADATA \"Talk\" (/private/x NIL)
         S: a10 OK GETMETADATA completed
         C: a11 GETMETADATA Nope /private/x
         S: a11 NO [NONEXISTENT] mailbox Nope does not exist
         C: a12 SETMETADATA Nope (/private/x \"1\")
         S: a12 NO [NONEXISTENT] mailbox Nope does not exist",
    )
    .await;
}

#[tokio::test]
async fn entry_names_are_checked() {
    let srv = TestServer::start().await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 SETMETADATA \"\" (/private \"x\")
         S: a1 BAD Invalid metadata entry name: an entry must be below /private or /shared
         C: a2 SETMETADATA \"\" (/other/x \"x\")
         S: a2 BAD Invalid metadata entry name: must start with /private/ or /shared/
         C: a3 GETMETADATA \"\" \"/private/a*\"
         S: a3 BAD Invalid metadata entry name: '*' and '%' are not allowed
         C: a4 GETMETADATA \"\" /private//a
         S: a4 BAD Invalid metadata entry name: empty component
         C: a5 SETMETADATA \"\" (/private/a/ \"x\")
         S: a5 BAD Invalid metadata entry name: empty component
         C: a6 SETMETADATA \"\" (\"/private/caf\u{e9}\" \"x\")
         S: a6 BAD Invalid metadata entry name: only printable ASCII is allowed
         C: a7 SETMETADATA \"\" (/private/ok \"x\" /bad \"y\")
         S: a7 BAD Invalid metadata entry name: must start with /private/ or /shared/
         C: a8 GETMETADATA \"\" /private/ok
         S: * METADATA \"\" (/private/ok NIL)
         S: a8 OK GETMETADATA completed",
    )
    .await;
}

#[tokio::test]
async fn limits_answer_maxsize_and_toomany() {
    let srv = TestServer::start_with(
        |c| {
            c.metadata_max_entry_bytes = 4;
            c.metadata_max_entries = 2;
        },
        false,
    )
    .await;
    let mut c = logged_in(&srv).await;
    check(
        &mut c,
        "C: a1 SETMETADATA \"\" (/private/a \"12345\")
         S: a1 NO [METADATA MAXSIZE 4] Value too long
         C: a2 SETMETADATA INBOX (/private/a \"1234\" /shared/b \"1\")
         S: a2 OK SETMETADATA completed
         C: a3 SETMETADATA \"\" (/private/c \"1\")
         S: a3 NO [METADATA TOOMANY] Too many metadata entries
         C: a4 SETMETADATA INBOX (/private/a \"9\" /shared/b NIL /private/c \"3\")
         S: a4 OK SETMETADATA completed
         C: a5 GETMETADATA (DEPTH infinity) INBOX (/private /shared)
         S: * METADATA \"INBOX\" (/private/a \"9\" /private/c \"3\")
         S: a5 OK GETMETADATA completed",
    )
    .await;
}

#[tokio::test]
async fn metadata_needs_login() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    c.line().await;
    check(
        &mut c,
        "C: a1 GETMETADATA \"\" /shared/comment
         S: a1 BAD GETMETADATA is not valid before login
         C: a2 SETMETADATA \"\" (/private/a yes)
         S: a2 BAD SETMETADATA is not valid before login",
    )
    .await;
}
