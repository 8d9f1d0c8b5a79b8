//! COI black box, part 5: what the real clients send, replayed byte for
//! byte — Delta Chat's metadata use (D3, D4) and the OX COI client's config
//! read and switch-on (C3, C4, C5), with and without WebPush. Helpers in
//! `coi.rs`.

use crate::coi::{
    ALICE, ENABLED, FILTER, ROOT, Value, assert_cannot, assert_ok, get_entry, login, metadata, start, start_with,
};
use crate::util::ImapClient;

// ---------------------------------------------------------------- D3, D4

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d3_delta_chat_server_metadata_read_answers_nil_for_each() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let entries = [
        "/shared/comment",
        "/shared/admin",
        "/shared/vendor/deltachat/irohrelay",
        "/shared/vendor/deltachat/turn",
        "/shared/vendor/deltachat/maxsmtprecipients",
        "/shared/vendor/deltachat/appversions",
    ];
    let r = c.command(&format!("GETMETADATA \"\" ({})", entries.join(" "))).await;
    assert_ok(&r, "D3");
    let m = metadata(&r.data);
    assert_eq!(m.len(), 1, "one METADATA line: {}", r.text());
    assert_eq!(r.text().lines().filter(|l| l.starts_with("* ")).count(), 1, "{}", r.text());
    assert_eq!(m[0].mailbox, "");
    assert_eq!(m[0].entries, entries.iter().map(|e| ((*e).to_owned(), None)).collect::<Vec<_>>(), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d4_devicetoken_on_inbox_stored_byte_identical() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let token = "openpgp:wV4DgYXa9r+/0ZMSAQdA3kAb/1x+Gy0P7m5Rj2eZy8uL0Kx3Q9c=Zz0zbD8fQ+Y1NQ==";
    let r = c.command(&format!("SETMETADATA \"INBOX\" (/private/devicetoken \"{token}\")")).await;
    assert_ok(&r, "D4");
    // Resent identically on every reconnect: still OK, still one value.
    let mut c2 = login(&server, ALICE).await;
    let r = c2.command(&format!("SETMETADATA \"INBOX\" (/private/devicetoken \"{token}\")")).await;
    assert_ok(&r, "D4 again");
    let r = c.command("GETMETADATA \"INBOX\" (/private/devicetoken)").await;
    assert_ok(&r, "D4 read");
    assert!(r.text().starts_with("* METADATA \"INBOX\" (/private/devicetoken "), "{}", r.text());
    assert_eq!(
        metadata(&r.data)[0].entries,
        vec![("/private/devicetoken".to_owned(), Some(token.as_bytes().to_vec()))]
    );
    // It is a mailbox entry, not a server one.
    assert_eq!(get_entry(&mut c, "\"\"", "/private/devicetoken").await, None);
}

// ---------------------------------------------------------------- C3, C4

/// C3 exactly as the OX core sends it (without WEBPUSH the client leaves the
/// webpush entry out, but sending it must not hurt either).
const C3: &str = "GETMETADATA (DEPTH 1) \"\" (\"/private/vendor/vendor.dovecot/coi/config\" \"/private/vendor/vendor.dovecot/webpush\")";

/// C3's answer as the OX client reads it: one or more `* METADATA ""` lines.
async fn c3(c: &mut ImapClient) -> Vec<(String, Value)> {
    let r = c.command(C3).await;
    assert_ok(&r, "C3");
    assert!(r.text().starts_with("* METADATA \"\" ("), "R6: {}", r.text());
    let m = metadata(&r.data);
    assert!(m.iter().all(|m| m.mailbox.is_empty()), "R6: {}", r.text());
    let mut out: Vec<_> = m.into_iter().flat_map(|m| m.entries).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_c4_ox_client_commands_replayed() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    assert_eq!(c3(&mut c).await, vec![(ROOT.to_owned(), Some(b"COI".to_vec()))], "C3 on a fresh account");

    let r = c.command("SETMETADATA \"\" (\"/private/vendor/vendor.dovecot/coi/config/enabled\" \"yes\")").await;
    assert_ok(&r, "C4 enabled");
    assert_eq!(
        c3(&mut c).await,
        vec![(ENABLED.to_owned(), Some(b"yes".to_vec())), (ROOT.to_owned(), Some(b"COI".to_vec()))],
        "C3 after enabling"
    );
    let r =
        c.command("SETMETADATA \"\" (\"/private/vendor/vendor.dovecot/coi/config/message-filter\" \"active\")").await;
    assert_ok(&r, "C4 message-filter");
    assert_eq!(
        c3(&mut c).await,
        vec![
            (ENABLED.to_owned(), Some(b"yes".to_vec())),
            (ROOT.to_owned(), Some(b"COI".to_vec())),
            (FILTER.to_owned(), Some(b"active".to_vec())),
        ],
        "C3 after the filter"
    );
    // C5: the folder the OX core builds as mailbox-root + "/Chats" exists and is selectable.
    let r = c.command("SELECT \"COI/Chats\"").await;
    assert_ok(&r, "C5 SELECT COI/Chats");
    // Turning off: NIL, then C3 no longer shows enabled.
    let r = c.command("SETMETADATA \"\" (\"/private/vendor/vendor.dovecot/coi/config/enabled\" NIL)").await;
    assert_ok(&r, "C4 off");
    let after = c3(&mut c).await;
    assert!(after.iter().all(|(e, _)| e != ENABLED), "{after:?}");
}

const VAPID: &str = "/private/vendor/vendor.dovecot/webpush/vapid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_r6_with_webpush_the_vapid_pem_comes_as_a_literal() {
    let server = start_with(&[ALICE], true).await;
    let mut c = login(&server, ALICE).await;
    let r = c.command(C3).await;
    assert_ok(&r, "C3");
    // A value with line ends must be a literal (R6); the parser in `c3` would refuse it quoted.
    assert!(r.text().contains(&format!("{VAPID} {{")), "R6: {}", r.text());
    let entries = c3(&mut c).await;
    let names: Vec<&str> = entries.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, vec![ROOT, VAPID], "C3 on a fresh account with WebPush");
    let pem = String::from_utf8(entries[1].1.clone().unwrap()).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----"), "{pem}");
    // Stable across sessions; read-only (R31 basics).
    let mut other = login(&server, ALICE).await;
    assert_eq!(get_entry(&mut other, "\"\"", VAPID).await, Some(pem.into_bytes()));
    assert_cannot(&c.command(&format!("SETMETADATA \"\" ({VAPID} \"x\")")).await, "R31: vapid read-only");
    // C4 then C3 again: config and key together.
    let r = c.command("SETMETADATA \"\" (\"/private/vendor/vendor.dovecot/coi/config/enabled\" \"yes\")").await;
    assert_ok(&r, "C4");
    let names: Vec<String> = c3(&mut c).await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(names, vec![ENABLED, ROOT, VAPID]);
}
