use super::number_set;
use crate::testing::{Client, TestServer, check};
use coimail_store::Uid;

async fn selected(srv: &TestServer, n: usize) -> Client {
    for i in 1..=n {
        srv.deliver(format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes()).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(srv).await;
    c.select("INBOX").await;
    c
}

fn validity(srv: &TestServer, name: &str) -> u32 {
    srv.store.mailbox(srv.account.id, name).unwrap().uid_validity
}

#[test]
fn number_sets() {
    assert_eq!(number_set::<u32>(&[]), "");
    assert_eq!(number_set(&[7u32]), "7");
    assert_eq!(number_set(&[1u32, 2, 3, 5, 8, 9]), "1:3,5,8:9");
    assert_eq!(number_set(&[u32::MAX - 1, u32::MAX]), format!("{}:{}", u32::MAX - 1, u32::MAX));
}

#[tokio::test]
async fn copy_answers_copyuid_and_keeps_flags() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 4).await;
    let v = validity(&srv, "Archive");
    check(
        &mut c,
        &format!(
            "C: a1 STORE 2 +FLAGS.SILENT (\\Flagged $Chat)
             S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Chat)
             S: * OK [PERMANENTFLAGS ...
             S: a1 OK STORE completed
             C: a2 COPY 2:3,1 Archive
             S: a2 OK [COPYUID {v} 1:3 1:3] COPY completed
             C: a3 UID COPY 4,2 Archive
             S: a3 OK [COPYUID {v} 2,4 4:5] COPY completed
             C: a4 UID COPY 10:20 Archive
             S: a4 OK COPY completed
             C: a5 COPY 1 Nowhere
             S: a5 NO [TRYCREATE] Mailbox Nowhere does not exist
             C: a6 COPY 9 Archive
             S: a6 BAD Invalid message sequence number
             C: a7 STATUS Archive (MESSAGES UIDNEXT)
             S: * STATUS \"Archive\" (MESSAGES 5 UIDNEXT 6)
             S: a7 OK STATUS completed"
        ),
    )
    .await;
    let archive = srv.store.mailbox(srv.account.id, "Archive").unwrap().id;
    let ms = srv.store.messages(srv.account.id, archive).unwrap();
    assert!(ms[1].flags.contains("$Chat") && ms[1].flags.contains("\\Flagged"));
    assert_eq!(srv.store.read_message(&ms[3]).await.unwrap(), b"Subject: 2\r\n\r\n2\r\n");
}

#[tokio::test]
async fn copy_into_the_selected_mailbox_reports_exists() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 2).await;
    let v = validity(&srv, "INBOX");
    check(
        &mut c,
        &format!(
            "C: a1 COPY 1:* INBOX
             S: * 4 EXISTS
             S: * 4 RECENT
             S: a1 OK [COPYUID {v} 1:2 3:4] COPY completed"
        ),
    )
    .await;
}

#[tokio::test]
async fn copy_fails_whole_when_a_message_was_expunged_elsewhere() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 3).await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, inbox, &[Uid(2)]).await.unwrap();
    check(
        &mut c,
        "C: a1 COPY 1:3 Archive
         S: * 2 EXPUNGE
         S: a1 NO [EXPUNGEISSUED] Some of the requested messages no longer exist
         C: a2 STATUS Archive (MESSAGES)
         S: * STATUS \"Archive\" (MESSAGES 0)
         S: a2 OK STATUS completed",
    )
    .await;
}

#[tokio::test]
async fn move_reports_copyuid_then_expunges() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 5).await;
    let v = validity(&srv, "Trash");
    check(
        &mut c,
        &format!(
            "C: a1 MOVE 2,4:5 Trash
             S: * OK [COPYUID {v} 2,4:5 1:3] Moved
             S: * 2 EXPUNGE
             S: * 3 EXPUNGE
             S: * 3 EXPUNGE
             S: a1 OK MOVE completed
             C: a2 UID MOVE 1:* trash
             S: a2 NO [TRYCREATE] Mailbox trash does not exist
             C: a3 UID MOVE 3 Trash
             S: * OK [COPYUID {v} 3 4] Moved
             S: * 2 EXPUNGE
             S: a3 OK MOVE completed
             C: a4 UID MOVE 99 Trash
             S: a4 OK MOVE completed
             C: a5 FETCH 1:* UID
             S: * 1 FETCH (UID 1)
             S: a5 OK FETCH completed"
        ),
    )
    .await;
    let trash = srv.store.mailbox(srv.account.id, "Trash").unwrap().id;
    let moved: Vec<_> = srv.store.messages(srv.account.id, trash).unwrap();
    assert_eq!(srv.store.read_message(&moved[3]).await.unwrap(), b"Subject: 3\r\n\r\n3\r\n");
}

#[tokio::test]
async fn move_within_the_selected_mailbox_and_from_a_read_only_one() {
    let srv = TestServer::start().await;
    let mut c = selected(&srv, 2).await;
    let v = validity(&srv, "INBOX");
    check(
        &mut c,
        &format!(
            "C: a1 MOVE 1 INBOX
             S: * OK [COPYUID {v} 1 3] Moved
             S: * 1 EXPUNGE
             S: * 2 EXISTS
             S: * 2 RECENT
             S: a1 OK MOVE completed
             C: a2 EXAMINE INBOX
             S: * OK [CLOSED] Previous mailbox closed
             S: * FLAGS ...
             S: * 2 EXISTS
             S: * 0 RECENT
             S: * OK [UNSEEN 1] ...
             S: * OK [UIDVALIDITY ...
             S: * OK [UIDNEXT 4] ...
             S: * OK [PERMANENTFLAGS ()] Read-only mailbox
             S: * OK [HIGHESTMODSEQ ...
             S: a2 OK [READ-ONLY] EXAMINE completed
             C: a3 MOVE 1 Trash
             S: a3 NO [CANNOT] Mailbox is read-only
             C: a4 COPY 1 Trash
             S: a4 OK [COPYUID ..."
        ),
    )
    .await;
}
