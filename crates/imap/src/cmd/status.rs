//! STATUS (RFC 3501 §6.3.10, RFC 9051 §6.3.11) with DELETED (RFC 9051),
//! SIZE (STATUS=SIZE, RFC 8438), HIGHESTMODSEQ (RFC 7162 §3.1.8) and
//! DELETED-STORAGE (RFC 9208 §5.1).
//!
//! Every figure but RECENT comes from counters the store keeps per mailbox,
//! so STATUS costs the same for ten messages as for a million. RECENT
//! counts the messages no session has claimed yet (store `recent.rs`).

use crate::encode;
use crate::error::ImapError;
use crate::session::{CmdResult, Done, Session};
use coimail_store::MailboxStatus;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::status::StatusDataItemName;

pub(crate) fn status(s: &mut Session, mailbox: &Mailbox<'_>, items: &[StatusDataItemName]) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let name = match mailbox {
        Mailbox::Inbox => "INBOX".to_owned(),
        Mailbox::Other(o) => s.mailbox_name(o.as_ref())?,
    };
    let st = s.ctx.store.mailbox_status(account, &name)?;
    write_status(s, &st, items)?;
    Ok(Done::ok("STATUS completed"))
}

/// `* STATUS "name" (items)`: for STATUS, and for LIST-STATUS (RFC 5819).
pub(crate) fn write_status(s: &mut Session, st: &MailboxStatus, items: &[StatusDataItemName]) -> Result<(), ImapError> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        parts.push(match item {
            StatusDataItemName::Messages => format!("MESSAGES {}", st.messages),
            StatusDataItemName::Recent => {
                let account = s.account().ok_or(ImapError::Closed)?.id;
                format!("RECENT {}", s.ctx.store.recent_count(account, st.id)?)
            }
            StatusDataItemName::UidNext => format!("UIDNEXT {}", st.uid_next),
            StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", st.uid_validity),
            StatusDataItemName::Unseen => format!("UNSEEN {}", st.unseen),
            StatusDataItemName::Deleted => format!("DELETED {}", st.deleted),
            // RFC 9208 §5.1: in units of the STORAGE resource, 1024 octets.
            StatusDataItemName::DeletedStorage => format!("DELETED-STORAGE {}", st.deleted_size.div_ceil(1024)),
            StatusDataItemName::Size => format!("SIZE {}", st.size),
            StatusDataItemName::HighestModSeq => {
                // RFC 7162 §3.1: a CONDSTORE-enabling command.
                s.enable_condstore();
                format!("HIGHESTMODSEQ {}", st.highest_modseq)
            }
        });
    }
    let utf8 = s.utf8;
    let out = s.conn.out();
    out.extend_from_slice(b"* STATUS ");
    encode::mailbox(out, &st.name, utf8);
    out.extend_from_slice(b" (");
    out.extend_from_slice(parts.join(" ").as_bytes());
    out.extend_from_slice(b")\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestServer, check};

    #[tokio::test]
    async fn status_items_in_the_order_asked() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: 1\r\n\r\n12345\r\n").await;
        srv.deliver(b"Subject: 2\r\n\r\n1\r\n").await;
        let info = srv.store.mailbox(srv.account.id, "INBOX").unwrap();
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            &format!(
                "C: a1 STORE 2 +FLAGS.SILENT (\\Seen \\Deleted)
                 S: a1 OK STORE completed
                 C: a2 STATUS inbox (UIDNEXT MESSAGES UNSEEN DELETED SIZE RECENT UIDVALIDITY DELETED-STORAGE)
                 S: * STATUS \"INBOX\" (UIDNEXT 3 MESSAGES 2 UNSEEN 1 DELETED 1 SIZE 38 RECENT 0 UIDVALIDITY {v} DELETED-STORAGE 1)
                 S: a2 OK STATUS completed
                 C: a3 STATUS Sent (MESSAGES UNSEEN SIZE)
                 S: * STATUS \"Sent\" (MESSAGES 0 UNSEEN 0 SIZE 0)
                 S: a3 OK STATUS completed
                 C: a4 STATUS Nope (MESSAGES)
                 S: a4 NO [NONEXISTENT] mailbox Nope does not exist
                 C: a5 STATUS INBOX ()
                 S: * STATUS \"INBOX\" ()
                 S: a5 OK STATUS completed
                 C: a6 STATUS INBOX (FROBS)
                 S: a6 BAD Syntax error in STATUS arguments",
                v = info.uid_validity
            ),
        )
        .await;
        let modseq = srv.store.mailbox(srv.account.id, "INBOX").unwrap().highest_modseq;
        check(
            &mut c,
            &format!(
                "C: a7 STATUS INBOX (HIGHESTMODSEQ)
                 S: * OK [HIGHESTMODSEQ {modseq}] Highest
                 S: * STATUS \"INBOX\" (HIGHESTMODSEQ {modseq})
                 S: a7 OK STATUS completed"
            ),
        )
        .await;
    }

    #[tokio::test]
    async fn status_names_follow_the_enabled_encoding() {
        let srv = TestServer::start().await;
        srv.store.create_mailbox(srv.account.id, "Entw\u{fc}rfe", None).await.unwrap();
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        check(
            &mut c,
            "C: a1 STATUS Entw&APw-rfe (MESSAGES)
             S: * STATUS \"Entw&APw-rfe\" (MESSAGES 0)
             S: a1 OK STATUS completed
             C: a2 ENABLE UTF8=ACCEPT
             S: * ENABLED UTF8=ACCEPT
             S: a2 OK ENABLE completed
             C: a3 STATUS \"Entw\u{fc}rfe\" (MESSAGES)
             S: * STATUS \"Entw\u{fc}rfe\" (MESSAGES 0)
             S: a3 OK STATUS completed",
        )
        .await;
    }
}
