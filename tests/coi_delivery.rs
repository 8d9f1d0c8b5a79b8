//! COI black box, part 3: delivery over SMTP (R22–R27, R29, R30, R41, R16)
//! — where each message lands and whether it carries `$Chat`, per
//! recipient, checked over IMAP. The `seen` filter's move (R28) and R25
//! are in `coi_seen.rs`; helpers in `coi.rs`.

use crate::coi::{
    ALICE, BOB, ENABLED, FILTER, ROOT, assert_not_woken, assert_ok, chat, coi_config, contents, deliver, enable,
    enabled, find, get_entry, idle, idle_done, login, mail, set, start, wait_for,
};
use crate::util::{self, ImapClient, TestServer};

const CAROL: &str = "carol@example.org";

/// R22's observed matrix: (Message-ID, extra headers, is a chat). `tag`
/// keeps the ids of one test apart.
fn matrix(tag: &str) -> Vec<(String, String, bool)> {
    vec![
        (format!("{tag}-cv@remote.test"), "Chat-Version: garbage\r\n".into(), true),
        (format!("{tag}-ref1@remote.test"), "References: <chat$root@x.test> <plain@y.test>\r\n".into(), true),
        (format!("{tag}-ref2@remote.test"), "References: <plain@y.test> <chat$root@x.test>\r\n".into(), false),
        (format!("{tag}-irt@remote.test"), "In-Reply-To: <chat$root@x.test>\r\n".into(), false),
        (format!("Chat${tag}-upper@remote.test"), String::new(), false),
        (format!("chat${tag}-lower@remote.test"), String::new(), true),
        (format!("{tag}-plain@remote.test"), String::new(), false),
        // Header names are case-insensitive; folded References still count.
        (format!("{tag}-lc@remote.test"), "chat-version: 1.0\r\n".into(), true),
        (format!("{tag}-fold@remote.test"), "References:\r\n <chat$root@x.test>\r\n <b@y.test>\r\n".into(), true),
        // A Chat-Version line in the body is no header.
        (format!("{tag}-body@remote.test"), "X-Note: body follows\r\n\r\nChat-Version: 1.0\r\n".into(), false),
    ]
}

async fn deliver_matrix(server: &TestServer, tag: &str) -> Vec<(String, String, bool)> {
    let cases = matrix(tag);
    for (id, extra, _) in &cases {
        deliver(server, &[ALICE], &mail(id, extra)).await;
    }
    cases
}

// ---------------------------------------------------------------- R22, R24, R26

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_r24_r26_filter_none_tags_chats_in_inbox() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "none").await;
    let cases = deliver_matrix(&server, "none").await;
    let inbox = contents(&mut c, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), cases.len(), "R26: everything in INBOX: {inbox:?}");
    for (id, extra, is_chat) in &cases {
        let m = find(&inbox, id).unwrap_or_else(|| panic!("{id} in INBOX: {inbox:?}"));
        assert_eq!(m.chat(), *is_chat, "R22/R24: {id} with {extra:?}: {:?}", m.flags);
        if *is_chat {
            assert_eq!(m.flags, vec!["$Chat".to_owned()], "R24: only $Chat, not seen: {id}");
        } else {
            assert!(m.flags.is_empty(), "{id}: {:?}", m.flags);
        }
    }
    assert_eq!(contents(&mut c, "COI/Chats").await.unwrap().len(), 0, "R26: nothing filed");
    // R24: the keyword shows in FLAGS and PERMANENTFLAGS like any keyword.
    let r = c.command("SELECT INBOX").await;
    assert_ok(&r, "SELECT");
    let text = r.text();
    let flags = text.lines().find(|l| l.starts_with("* FLAGS (")).unwrap();
    assert!(flags.contains("$Chat"), "R24: {flags}");
    let perm = text.lines().find(|l| l.contains("[PERMANENTFLAGS (")).unwrap();
    assert!(perm.contains("$Chat"), "R24: {perm}");
    // A client can search for it.
    let r = c.command("UID SEARCH KEYWORD $Chat").await;
    assert_ok(&r, "SEARCH");
    let hits = r.text().lines().find_map(|l| l.strip_prefix("* SEARCH")).unwrap().split_whitespace().count();
    assert_eq!(hits, cases.iter().filter(|c| c.2).count(), "{}", r.text());
}

// ---------------------------------------------------------------- R27

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_active_files_chats_into_chats_without_waking_inbox_idle() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "active").await;
    let mut inbox_idle = login(&server, ALICE).await;
    assert_ok(&inbox_idle.command("SELECT INBOX").await, "SELECT INBOX");
    let mut chats_idle = login(&server, ALICE).await;
    assert_ok(&chats_idle.command("SELECT \"COI/Chats\"").await, "SELECT Chats");
    let inbox_tag = idle(&mut inbox_idle).await;
    let chats_tag = idle(&mut chats_idle).await;

    let (id, msg) = chat("active1");
    deliver(&server, &[ALICE], &msg).await;
    let woke = wait_for(&mut chats_idle, "EXISTS").await;
    assert!(woke.contains("* 1 EXISTS"), "R27: Chats watcher woken: {woke}");
    assert_not_woken(&mut inbox_idle, &inbox_tag, "R27: INBOX watcher").await;

    // The INBOX watcher does wake for mail that is not a chat.
    let inbox_tag = idle(&mut inbox_idle).await;
    deliver(&server, &[ALICE], &mail("active-plain@remote.test", "")).await;
    let woke = wait_for(&mut inbox_idle, "EXISTS").await;
    assert!(woke.contains("* 1 EXISTS"), "{woke}");
    idle_done(&mut inbox_idle, &inbox_tag).await;
    let r = idle_done(&mut chats_idle, &chats_tag).await;
    assert!(!r.text().contains("EXISTS"), "the plain message is not in Chats: {}", r.text());

    let chats = contents(&mut c, "COI/Chats").await.unwrap();
    assert_eq!(chats.len(), 1, "{chats:?}");
    assert_eq!(find(&chats, &id).unwrap().flags, vec!["$Chat".to_owned()], "R27: $Chat in Chats");
    let inbox = contents(&mut c, "INBOX").await.unwrap();
    assert!(find(&inbox, &id).is_none(), "R27: never in INBOX");
    assert!(find(&inbox, "active-plain@remote.test").is_some_and(|m| m.flags.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_r27_active_detection_matrix() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "active").await;
    let cases = deliver_matrix(&server, "act").await;
    let inbox = contents(&mut c, "INBOX").await.unwrap();
    let chats = contents(&mut c, "COI/Chats").await.unwrap();
    for (id, extra, is_chat) in &cases {
        let (here, other) = if *is_chat { (&chats, &inbox) } else { (&inbox, &chats) };
        let m = find(here, id).unwrap_or_else(|| panic!("R27: {id} ({extra:?}) misfiled: {inbox:?} / {chats:?}"));
        assert_eq!(m.chat(), *is_chat, "{id}");
        assert!(find(other, id).is_none(), "{id} stored once");
    }
    assert_eq!(inbox.len() + chats.len(), cases.len());
}

/// With `active`, a Chats folder that is missing at delivery time is
/// created (subscribed) rather than the message bounced or dropped (R27),
/// and a filter set while Chats is missing creates it at once (R15). The
/// only way to make Chats go missing while COI stays enabled is a change
/// of the server's `mailbox_root`; every IMAP path that removes Chats
/// also disables COI (R18, R19).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_r15_r27_r28_new_mailbox_root_chats_created_on_first_use() {
    let mut server = start(&[ALICE, BOB, CAROL]).await;
    for (user, f) in [(ALICE, "active"), (BOB, "none"), (CAROL, "seen")] {
        let mut c = login(&server, user).await;
        enable(&mut c, f).await;
    }
    server.stop().await;
    let running = coimail_daemon::start(coi_config(server.dir.path(), "Chatroot")).await.unwrap();
    server.running = Some(running);

    let mut alice = login(&server, ALICE).await;
    assert_eq!(get_entry(&mut alice, "\"\"", ROOT).await.as_deref(), Some(&b"Chatroot"[..]), "R11");
    assert_eq!(enabled(&mut alice).await.as_deref(), Some("yes"));
    assert!(contents(&mut alice, "Chatroot/Chats").await.is_none(), "not there yet");
    let (id, msg) = chat("newroot");
    deliver(&server, &[ALICE], &msg).await;
    let chats = contents(&mut alice, "Chatroot/Chats").await.expect("R27: Chats auto-created");
    assert!(find(&chats, &id).is_some_and(|m| m.chat()), "R27: {chats:?}");
    let r = alice.command("LSUB \"\" \"Chatroot/*\"").await;
    assert!(r.text().contains("Chatroot/Chats"), "R27: auto-created Chats is subscribed: {}", r.text());

    // R15: setting a filing filter while enabled creates Chats right away.
    let mut bob = login(&server, BOB).await;
    assert!(contents(&mut bob, "Chatroot/Chats").await.is_none());
    set(&mut bob, FILTER, "active").await;
    assert!(contents(&mut bob, "Chatroot/Chats").await.is_some(), "R15: created by SETMETADATA");

    // R28: the seen-mode move creates it too.
    let mut carol = login(&server, CAROL).await;
    let (id, msg) = chat("carol1");
    deliver(&server, &[CAROL], &msg).await;
    assert!(contents(&mut carol, "Chatroot/Chats").await.is_none());
    assert_ok(&carol.command("SELECT INBOX").await, "SELECT");
    assert_ok(&carol.command("STORE 1 +FLAGS (\\Seen)").await, "STORE");
    let r = carol.command("NOOP").await;
    assert!(r.text().contains("* 1 EXPUNGE"), "R28: {}", r.text());
    let chats = contents(&mut carol, "Chatroot/Chats").await.expect("R28: Chats auto-created");
    assert!(find(&chats, &id).is_some_and(|m| m.chat() && m.has("\\Seen")), "{chats:?}");
}

// ---------------------------------------------------------------- R29

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r29_disabled_means_no_chat_keyword_and_no_filing() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    // A filter stored while COI is off does nothing (R14, R29).
    set(&mut c, FILTER, "active").await;
    let cases = deliver_matrix(&server, "off").await;
    let inbox = contents(&mut c, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), cases.len(), "R29: all in INBOX");
    assert!(inbox.iter().all(|m| m.flags.is_empty()), "R29/§6: no $Chat while disabled: {inbox:?}");
    assert!(contents(&mut c, "COI/Chats").await.is_none(), "nothing created");

    // Enabled, then disabled again: the same.
    set(&mut c, ENABLED, "yes").await;
    set(&mut c, ENABLED, "NIL").await;
    let (id, msg) = chat("off-again");
    deliver(&server, &[ALICE], &msg).await;
    let inbox = contents(&mut c, "INBOX").await.unwrap();
    assert!(find(&inbox, &id).is_some_and(|m| m.flags.is_empty()), "R29: {inbox:?}");
    assert_eq!(contents(&mut c, "COI/Chats").await.unwrap().len(), 0);
}

// ---------------------------------------------------------------- R16 at delivery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_the_next_delivery_follows_a_change_at_once() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let mut inspect = login(&server, ALICE).await;
    enable(&mut c, "active").await;
    let (a, msg) = chat("r16-a");
    deliver(&server, &[ALICE], &msg).await;
    set(&mut c, FILTER, "none").await;
    let (b, msg) = chat("r16-b");
    deliver(&server, &[ALICE], &msg).await;
    set(&mut c, ENABLED, "NIL").await;
    let (d, msg) = chat("r16-d");
    deliver(&server, &[ALICE], &msg).await;
    set(&mut c, ENABLED, "yes").await;
    set(&mut c, FILTER, "active").await;
    let (e, msg) = chat("r16-e");
    deliver(&server, &[ALICE], &msg).await;

    let inbox = contents(&mut inspect, "INBOX").await.unwrap();
    let chats = contents(&mut inspect, "COI/Chats").await.unwrap();
    assert!(find(&chats, &a).is_some_and(|m| m.chat()), "active: {chats:?}");
    assert!(find(&inbox, &b).is_some_and(|m| m.chat()), "none: {inbox:?}");
    assert!(find(&inbox, &d).is_some_and(|m| !m.chat()), "disabled: {inbox:?}");
    assert!(find(&chats, &e).is_some_and(|m| m.chat()), "active again: {chats:?}");
    assert_eq!((inbox.len(), chats.len()), (2, 2));
}

// ---------------------------------------------------------------- per recipient

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_r27_one_transaction_two_recipients_each_by_their_own_config() {
    let server = start(&[ALICE, BOB, CAROL]).await;
    let mut alice = login(&server, ALICE).await;
    enable(&mut alice, "active").await;
    let mut carol = login(&server, CAROL).await;
    enable(&mut carol, "none").await;
    let (id, msg) = chat("multi");
    deliver(&server, &[ALICE, BOB, CAROL], &msg).await;

    let chats = contents(&mut alice, "COI/Chats").await.unwrap();
    assert!(find(&chats, &id).is_some_and(|m| m.flags == ["$Chat"]), "alice (active): {chats:?}");
    assert!(find(&contents(&mut alice, "INBOX").await.unwrap(), &id).is_none());

    let mut bob = login(&server, BOB).await;
    let inbox = contents(&mut bob, "INBOX").await.unwrap();
    assert!(find(&inbox, &id).is_some_and(|m| m.flags.is_empty()), "bob (COI off): {inbox:?}");
    assert!(contents(&mut bob, "COI/Chats").await.is_none());

    let inbox = contents(&mut carol, "INBOX").await.unwrap();
    assert!(find(&inbox, &id).is_some_and(|m| m.flags == ["$Chat"]), "carol (none): {inbox:?}");
}

// ---------------------------------------------------------------- R30, R41, R42

/// A Delta Chat style group message with odd but legal header spacing and folding.
fn group_message(from: &str, to: &str) -> (Vec<&'static str>, Vec<u8>) {
    let fields = vec![
        "Message-ID: <chat$group.4321dcba1234.S2571BC@example.org>\r\n",
        "References:  <chat$group.4321dcba1234.root@example.org>\r\n <plain.reply@other.test>\r\n\t<third@x.test>\r\n",
        "In-Reply-To:<plain.reply@other.test>\r\n",
        "Chat-Version: 1.0\r\n",
        "Chat-Group-ID: 4321dcba1234\r\n",
        "Chat-Group-Name: =?utf-8?q?Gr=C3=BCppe?=\r\n",
    ];
    let mut raw =
        format!("From: {from}\r\nTo: {to}\r\nSubject: Chat: hello group\r\nDate: Wed, 25 Nov 2026 08:00:00 +0000\r\n");
    for f in &fields {
        raw.push_str(f);
    }
    raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\nhello group\r\n");
    (fields, raw.into_bytes())
}

async fn header_of(c: &mut ImapClient, mailbox: &str) -> String {
    assert_ok(&c.command(&format!("EXAMINE \"{mailbox}\"")).await, "EXAMINE");
    let r = c.command("FETCH 1 BODY.PEEK[HEADER]").await;
    assert_ok(&r, "FETCH header");
    r.text()
}

fn assert_fields_kept(header: &str, fields: &[&str], path: &str) {
    for f in fields {
        assert!(header.contains(f), "R41 ({path}): {f:?} not byte-identical in {header}");
        let name = f.split(':').next().unwrap();
        let count =
            header.lines().filter(|l| l.split(':').next().is_some_and(|n| n.eq_ignore_ascii_case(name))).count();
        assert_eq!(count, 1, "R41 ({path}): one {name}: {header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r41_chat_headers_unchanged_through_submission_and_mx() {
    let server = start(&[ALICE, BOB]).await;
    // Submission (587, AUTH PLAIN) from alice to bob, who has COI off.
    let (fields, msg) = group_message(ALICE, BOB);
    let submission = server.addrs().submission[0];
    let r = util::mailhost::submit(submission, ALICE, &[BOB], &msg).await;
    assert!(r.starts_with("250"), "{r}");
    let mut bob = login(&server, BOB).await;
    assert_fields_kept(&header_of(&mut bob, "INBOX").await, &fields, "submission");

    // MX reception to alice with COI on: filed, and still unchanged.
    let mut alice = login(&server, ALICE).await;
    enable(&mut alice, "active").await;
    let (fields, msg) = group_message("dc@remote.test", ALICE);
    deliver(&server, &[ALICE], &msg).await;
    assert_fields_kept(&header_of(&mut alice, "COI/Chats").await, &fields, "MX");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r30_r42_own_chat_submitted_to_self_is_filed_like_any_other() {
    let server = start(&[ALICE, BOB]).await;
    let mut alice = login(&server, ALICE).await;
    enable(&mut alice, "active").await;
    // Delta Chat's "BCC self": one submission to the peer and to oneself.
    let (fields, msg) = group_message(ALICE, BOB);
    let r = util::mailhost::submit(server.addrs().submission[0], ALICE, &[BOB, ALICE], &msg).await;
    assert!(r.starts_with("250"), "{r}");
    let id = "chat$group.4321dcba1234.S2571BC@example.org";
    let chats = contents(&mut alice, "COI/Chats").await.unwrap();
    assert!(find(&chats, id).is_some_and(|m| m.chat()), "R30: self copy in Chats: {chats:?}");
    assert!(find(&contents(&mut alice, "INBOX").await.unwrap(), id).is_none());
    assert_fields_kept(&header_of(&mut alice, "COI/Chats").await, &fields, "self copy");
    let mut bob = login(&server, BOB).await;
    let inbox = contents(&mut bob, "INBOX").await.unwrap();
    assert!(find(&inbox, id).is_some_and(|m| m.flags.is_empty()), "bob has COI off: {inbox:?}");
}
