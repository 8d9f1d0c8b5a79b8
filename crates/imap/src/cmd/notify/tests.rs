//! NOTIFY (RFC 5465) over real sockets, and the pure parts of its state.

use super::*;
use crate::testing::{Client, TestServer, check};
use coimail_store::{FlagOp, Flags, NewMessage};
use std::time::Duration;

async fn connect(srv: &TestServer) -> Client {
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c
}

/// Nothing arrives unasked for a moment.
async fn quiet(c: &mut Client) {
    assert!(tokio::time::timeout(Duration::from_millis(50), c.line()).await.is_err());
}

fn validity(srv: &TestServer, name: &str) -> u32 {
    srv.store.mailbox(srv.account.id, name).unwrap().uid_validity
}

async fn append(srv: &TestServer, mailbox: &str) -> Uid {
    srv.store.append(srv.account.id, mailbox, b"Subject: x\r\n\r\nx\r\n", Flags::new(), 0).await.unwrap().uid
}

#[tokio::test]
async fn status_of_watched_mailboxes_arrives_between_commands() {
    let srv = TestServer::start().await;
    srv.store.create_mailbox(srv.account.id, "COI/Chats", None).await.unwrap();
    let (inbox, chats) = (validity(&srv, "INBOX"), validity(&srv, "COI/Chats"));
    let mut c = connect(&srv).await;
    check(
        &mut c,
        &format!(
            "C: n1 NOTIFY SET STATUS (mailboxes (inbox \"COI/Chats\") (MessageNew MessageExpunge))
             S: * STATUS \"COI/Chats\" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {chats})
             S: * STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY {inbox})
             S: n1 OK NOTIFY completed"
        ),
    )
    .await;
    // No command in progress: the STATUS comes anyway (RFC 5465 §5.2).
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    assert_eq!(c.line().await, format!("* STATUS \"INBOX\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {inbox})"));
    append(&srv, "COI/Chats").await;
    assert_eq!(c.line().await, format!("* STATUS \"COI/Chats\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {chats})"));
    // Not watched, and an event not asked for: nothing.
    append(&srv, "Sent").await;
    let id = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let seen: Flags = ["\\Seen"].into_iter().collect();
    srv.store.store_flags(srv.account.id, id, &[Uid(1)], FlagOp::Add, &seen).await.unwrap();
    quiet(&mut c).await;
    // With CONDSTORE, HIGHESTMODSEQ too (§5.3).
    check(&mut c, "C: n2 ENABLE CONDSTORE\nS: * ENABLED CONDSTORE\nS: n2 OK ENABLE completed").await;
    srv.store.expunge(srv.account.id, id, &[Uid(1)]).await.unwrap();
    let highest = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
    assert_eq!(
        c.line().await,
        format!("* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 2 UIDVALIDITY {inbox} HIGHESTMODSEQ {highest})")
    );
    check(&mut c, "C: n3 NOTIFY NONE\nS: n3 OK NOTIFY completed").await;
    srv.deliver(b"Subject: 2\r\n\r\n2\r\n").await;
    quiet(&mut c).await;
}

#[tokio::test]
async fn selected_mailbox_events_with_fetch_attributes() {
    let srv = TestServer::start().await;
    let mut c = connect(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: n1 NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge FlagChange))
         S: n1 OK NOTIFY completed",
    )
    .await;
    srv.deliver(b"Subject: hi\r\n\r\nbody\r\n").await;
    assert_eq!(c.line().await, "* 1 EXISTS");
    assert_eq!(c.line().await, "* 1 RECENT");
    let fetch = String::from_utf8(c.response().await).unwrap();
    assert_eq!(fetch, "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (Subject)] {15}\r\nSubject: hi\r\n\r\n)");
    let id = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let seen: Flags = ["\\Seen"].into_iter().collect();
    srv.store.store_flags(srv.account.id, id, &[Uid(1)], FlagOp::Add, &seen).await.unwrap();
    assert_eq!(c.line().await, "* 1 FETCH (FLAGS (\\Recent \\Seen) UID 1)");
    srv.store.expunge(srv.account.id, id, &[Uid(1)]).await.unwrap();
    assert_eq!(c.line().await, "* 1 EXPUNGE");

    // SELECTED-DELAYED: new mail at once, expunges only where a command allows them.
    check(&mut c, "C: n2 NOTIFY SET (selected-delayed (MessageNew MessageExpunge))\nS: n2 OK NOTIFY completed").await;
    srv.deliver(b"Subject: 2\r\n\r\n2\r\n").await;
    assert_eq!(c.line().await, "* 1 EXISTS");
    assert_eq!(c.line().await, "* 1 RECENT");
    srv.store.expunge(srv.account.id, id, &[Uid(2)]).await.unwrap();
    quiet(&mut c).await;
    check(&mut c, "C: n3 NOOP\nS: * 1 EXPUNGE\nS: n3 OK NOOP completed").await;
}

#[tokio::test]
async fn with_qresync_pushed_expunges_are_vanished() {
    let srv = TestServer::start().await;
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    let mut c = connect(&srv).await;
    check(&mut c, "C: q1 ENABLE QRESYNC\nS: * ENABLED QRESYNC\nS: q1 OK ENABLE completed").await;
    c.select("INBOX").await;
    check(&mut c, "C: n1 NOTIFY SET (selected (MessageExpunge MessageNew))\nS: n1 OK NOTIFY completed").await;
    let id = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, id, &[Uid(1)]).await.unwrap();
    assert_eq!(c.line().await, "* VANISHED 1");
}

#[tokio::test]
async fn mailbox_names_and_subscriptions() {
    let srv = TestServer::start().await;
    let a = srv.account.id;
    let mut c = connect(&srv).await;
    check(&mut c, "C: n1 NOTIFY SET (personal (MailboxName SubscriptionChange))\nS: n1 OK NOTIFY completed").await;
    srv.store.create_mailbox(a, "Lists", None).await.unwrap();
    assert_eq!(c.line().await, "* LIST () \"/\" \"Lists\"");
    srv.store.create_mailbox(a, "Lists/Rust", None).await.unwrap();
    assert_eq!(c.line().await, "* LIST () \"/\" \"Lists/Rust\"");
    srv.store.rename_mailbox(a, "Lists", "Groups").await.unwrap();
    assert_eq!(c.line().await, "* LIST () \"/\" \"Groups\" (\"OLDNAME\" (\"Lists\"))");
    assert_eq!(c.line().await, "* LIST () \"/\" \"Groups/Rust\" (\"OLDNAME\" (\"Lists/Rust\"))");
    srv.store.set_subscribed(a, "Groups", true).await.unwrap();
    assert_eq!(c.line().await, "* LIST (\\Subscribed) \"/\" \"Groups\"");
    srv.store.delete_mailbox(a, "Groups/Rust").await.unwrap();
    assert_eq!(c.line().await, "* LIST (\\NonExistent) \"/\" \"Groups/Rust\"");
    // Only a subtree: changes elsewhere are not told.
    check(&mut c, "C: n2 NOTIFY SET (subtree Groups (MailboxName))\nS: n2 OK NOTIFY completed").await;
    srv.store.create_mailbox(a, "Elsewhere", None).await.unwrap();
    srv.store.create_mailbox(a, "Groups/Go", None).await.unwrap();
    assert_eq!(c.line().await, "* LIST () \"/\" \"Groups/Go\"");
}

#[tokio::test]
async fn idle_sends_exactly_what_notify_asked_for() {
    let srv = TestServer::start().await;
    let sent = validity(&srv, "Sent");
    let mut c = connect(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: n1 NOTIFY SET (mailboxes Sent (MessageNew MessageExpunge))
         S: n1 OK NOTIFY completed
         C: i1 IDLE
         S: + idling",
    )
    .await;
    append(&srv, "Sent").await;
    assert_eq!(c.line().await, format!("* STATUS \"Sent\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {sent})"));
    // No SELECTED group means SELECTED NONE (§3.1): the selected mailbox waits for a command.
    srv.deliver(b"Subject: 1\r\n\r\n1\r\n").await;
    quiet(&mut c).await;
    check(
        &mut c,
        "C: DONE
         S: i1 OK IDLE terminated
         C: n2 NOOP
         S: * 1 EXISTS
         S: * 1 RECENT
         S: n2 OK NOOP completed",
    )
    .await;
}

#[tokio::test]
async fn refusals() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    c.line().await;
    check(&mut c, "C: n0 NOTIFY NONE\nS: n0 BAD NOTIFY is not valid before login").await;
    c.login(&srv).await;
    check(
        &mut c,
        &format!(
            "C: n1 NOTIFY SET (selected (MessageNew))
             S: n1 BAD MessageNew and MessageExpunge go together
             C: n2 NOTIFY SET (personal (FlagChange))
             S: n2 BAD FlagChange needs MessageNew and MessageExpunge
             C: n3 NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))
             S: n3 BAD Only one of SELECTED and SELECTED-DELAYED may be given
             C: n4 NOTIFY SET (selected (MailboxName))
             S: n4 BAD SELECTED takes message events only
             C: n5 NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange FlagChange))
             S: n5 NO [{BADEVENT}] Unsupported event
             C: n6 NOTIFY SET (inboxes (QuotaChange))
             S: n6 NO [{BADEVENT}] Unsupported event
             C: n7 NOTIFY SET (selected (MessageNew (FROB) MessageExpunge))
             S: n7 BAD Invalid fetch attributes after MessageNew
             C: n8 NOTIFY GET
             S: n8 BAD Syntax error in NOTIFY arguments"
        ),
    )
    .await;
}

#[tokio::test]
async fn a_bus_lag_ends_notify_with_overflow() {
    let srv = TestServer::start().await;
    let a = srv.account.id;
    // More messages than the bus holds changes (1024), all re-flagged in one commit.
    let many =
        (0..1100).map(|_| NewMessage { raw: b"x\r\n".to_vec(), flags: Flags::new(), internal_date: 0 }).collect();
    let uids: Vec<Uid> = srv.store.append_many(a, "Sent", many).await.unwrap().iter().map(|s| s.uid).collect();
    let mut c = connect(&srv).await;
    check(&mut c, "C: n1 NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))\nS: n1 OK NOTIFY completed")
        .await;
    let sent = srv.store.mailbox(a, "Sent").unwrap().id;
    let seen: Flags = ["\\Seen"].into_iter().collect();
    // The store publishes the 1100 changes without yielding to the session (one-thread runtime).
    srv.store.store_flags(a, sent, &uids, FlagOp::Add, &seen).await.unwrap();
    assert_eq!(c.line().await, "* OK [NOTIFICATIONOVERFLOW] Too many changes at once; NOTIFY is off");
    // As after NOTIFY NONE (§5.8).
    append(&srv, "Sent").await;
    quiet(&mut c).await;
}

#[test]
fn filters_match_names() {
    let subtree = Filter::Subtree(vec!["COI".into()]);
    assert!(subtree.matches("COI", false) && subtree.matches("COI/Chats", false));
    assert!(!subtree.matches("COIN", false) && !subtree.matches("INBOX", false));
    let exact = Filter::Mailboxes(vec!["INBOX".into(), "A*".into()]);
    assert!(exact.matches("INBOX", false) && exact.matches("A*", false) && !exact.matches("Ab", false));
    assert!(Filter::Subscribed.matches("x", true) && !Filter::Subscribed.matches("x", false));
    assert!(Filter::Inboxes.matches("INBOX", false) && !Filter::Inboxes.matches("Sent", true));
    assert!(Filter::Personal.matches("anything", false));
}

#[test]
fn changes_to_the_selected_or_unwatched_kinds_are_not_noted() {
    let groups = vec![Group { filter: Filter::Personal, events: Events::NEW.with(Events::EXPUNGE) }];
    let mut n = Notify::new(None, groups, &[]);
    let (m1, m2) = (MailboxId(1), MailboxId(2));
    n.note(&Change::Appended { mailbox: m1, uid_next: Uid(5) }, Some(m1));
    n.note(&Change::FlagsChanged { mailbox: m2, uid: Uid(1), flags: Flags::new(), modseq: ModSeq(3) }, Some(m1));
    assert!(n.dirty.is_empty());
    n.note(&Change::Expunged { mailbox: m2, uids: vec![Uid(1)], modseq: ModSeq(4) }, Some(m1));
    n.note(&Change::Appended { mailbox: m2, uid_next: Uid(5) }, Some(m1));
    assert_eq!(n.dirty.get(&m2), Some(&Events::NEW.with(Events::EXPUNGE)));
    n.note(&Change::MailboxesChanged, None);
    assert!(n.names_changed && !n.overflow);
    n.lagged();
    assert!(n.overflow);
}

/// RFC 5465 §5.6, §5.7: METADATA changes made by another session arrive
/// as `* METADATA "mailbox" (entries)` (RFC 5464 §4.4.2) for watched mailboxes,
/// and with mailbox `""` for server entries.
#[tokio::test]
async fn metadata_changes_from_another_session() {
    let srv = TestServer::start().await;
    let (mut a, mut b) = (connect(&srv).await, connect(&srv).await);
    check(
        &mut b,
        "C: n1 NOTIFY SET (mailboxes INBOX (MailboxMetadataChange)) (personal (ServerMetadataChange))
         S: n1 OK NOTIFY completed",
    )
    .await;
    check(
        &mut a,
        "C: a1 SETMETADATA INBOX (/private/Comment \"hi\" /shared/comment NIL)\nS: a1 OK SETMETADATA completed",
    )
    .await;
    assert_eq!(b.line().await, "* METADATA \"INBOX\" (/private/comment /shared/comment)");
    check(&mut a, "C: a2 SETMETADATA \"\" (/private/comment \"x\")\nS: a2 OK SETMETADATA completed").await;
    assert_eq!(b.line().await, "* METADATA \"\" (/private/comment)");
    // Server /shared entries are the administrator's: set through the store.
    let server = coimail_store::MetadataScope { account: srv.account.id, mailbox: None };
    srv.store.set_metadata(server, "/shared/motd", Some(b"x")).await.unwrap();
    assert_eq!(b.line().await, "* METADATA \"\" (/shared/motd)");
    // Archive is not watched for MailboxMetadataChange.
    check(&mut a, "C: a3 SETMETADATA Archive (/private/comment \"x\")\nS: a3 OK SETMETADATA completed").await;
    quiet(&mut b).await;
    check(
        &mut b,
        "C: n2 NOTIFY SET (selected (MessageNew MessageExpunge MailboxMetadataChange))
         S: n2 BAD SELECTED takes message events only
         C: n3 NOTIFY NONE
         S: n3 OK NOTIFY completed",
    )
    .await;
    check(&mut a, "C: a4 SETMETADATA INBOX (/private/comment \"y\")\nS: a4 OK SETMETADATA completed").await;
    quiet(&mut b).await;
}
