//! SEARCH transcripts over a real socket (see `testing.rs`).

use crate::testing::{Client, TestServer, check};
use coimail_store::{Flags, ModSeq, Uid};

const M1: &str = "From: Alice Example <alice@example.org>\r\nTo: bob@example.org\r\nCc: carol@example.net\r\n\
Subject: Hello world\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n\
The quick brown fox jumps over the lazy dog.\r\n";

const M2: &str = "From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.com>\r\nTo: alice@example.org\r\n\
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\nDate: Thu, 15 Feb 2024 23:30:00 -0500\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Der K=E4se ist gut.\r\n";

const M3: &str = "From: bob@example.org\r\nTo: alice@example.org\r\nBcc: dave@example.org\r\n\
Subject: Re: Hello world\r\nDate: Fri, 1 Mar 2024 09:00:00 +0100\r\nX-Custom: Special\r\n Value\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
VW5pcXVlIHplYnJhIGNyb3NzaW5nDQo=\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Unique <b>zebra</b> crossing</p>\r\n--b1--\r\n";

const M4: &str =
    "From: carol@example.net\r\nTo: bob@example.org\r\nSubject: [list] Fwd: Report\r\n\r\nnothing to see\r\n";

const M5: &str = "From: erin@example.org\r\nTo: alice@example.org\r\nSubject: Forwarded message\r\n\
Date: Sun, 10 Mar 2024 08:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n\
--inner\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--inner--\r\n\
--outer\r\nContent-Type: message/rfc822\r\n\r\n\
From: mallory@example.org\r\nSubject: Inner secret\r\n\r\ndeep text here\r\n--outer--\r\n";

/// (message, internal date, flags). Sequence numbers 1..=5 get UIDs 2..=6:
/// UID 1 is expunged before the session starts.
const MESSAGES: [(&str, i64, &[&str]); 5] = [
    (M1, 1_704_196_800, &["\\Seen"]),                  // 2-Jan-2024 12:00 UTC
    (M2, 1_708_057_800, &["\\Flagged", "\\Answered"]), // 16-Feb-2024 04:30 UTC
    (M3, 1_709_251_200, &["\\Deleted", "$Chat"]),      // 1-Mar-2024 00:00 UTC
    (M4, 1_709_683_199, &["\\Draft"]),                 // 5-Mar-2024 23:59:59 UTC
    (M5, 1_710_057_600, &[]),                          // 10-Mar-2024 08:00 UTC
];

pub(crate) async fn append(srv: &TestServer, raw: &str, date: i64, flags: &[&str]) -> Uid {
    let flags: Flags = flags.iter().copied().collect();
    srv.store.append(srv.account.id, "INBOX", raw.as_bytes(), flags, date).await.unwrap().uid
}

/// A server holding [`MESSAGES`], and a client with INBOX selected.
async fn setup() -> (TestServer, Client) {
    let srv = TestServer::start().await;
    let gone = append(&srv, "Subject: gone\r\n\r\nx\r\n", 0, &[]).await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, inbox, &[gone]).await.unwrap();
    for (raw, date, flags) in MESSAGES {
        append(&srv, raw, date, flags).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    (srv, c)
}

/// Runs `SEARCH criteria` for each row and checks the result.
async fn table(c: &mut Client, command: &str, rows: &[(&str, &str)]) {
    for (i, (criteria, want)) in rows.iter().enumerate() {
        let r = c.command(&format!("t{i}"), &format!("{command} {criteria}")).await;
        let want = if want.is_empty() { "* SEARCH".to_string() } else { format!("* SEARCH {want}") };
        assert_eq!(r, vec![want, format!("t{i} OK {command} completed")], "{command} {criteria}");
    }
}

#[tokio::test]
async fn flags_dates_sizes_and_sets() {
    let (_srv, mut c) = setup().await;
    let size = |i: usize| MESSAGES[i].0.len();
    let seqs = |keep: &dyn Fn(usize) -> bool| {
        (0..5).filter(|&i| keep(i)).map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(" ")
    };
    let (larger, bigger) = (format!("LARGER {}", size(3)), seqs(&|i| size(i) > size(3)));
    let (smaller, tinier) = (format!("SMALLER {}", size(3)), seqs(&|i| size(i) < size(3)));
    let rows: Vec<(&str, &str)> = vec![
        ("ALL", "1 2 3 4 5"),
        ("ANSWERED", "2"),
        ("UNANSWERED", "1 3 4 5"),
        ("DELETED", "3"),
        ("UNDELETED", "1 2 4 5"),
        ("DRAFT", "4"),
        ("UNDRAFT", "1 2 3 5"),
        ("FLAGGED", "2"),
        ("UNFLAGGED", "1 3 4 5"),
        ("SEEN", "1"),
        ("UNSEEN", "2 3 4 5"),
        ("KEYWORD $Chat", "3"),
        ("KEYWORD $chat", "3"),
        ("UNKEYWORD $Chat", "1 2 4 5"),
        // This session selected first: every message is recent for it.
        ("RECENT", "1 2 3 4 5"),
        ("NEW", "2 3 4 5"),
        ("OLD", ""),
        ("BEFORE 16-Feb-2024", "1"),
        ("ON 16-Feb-2024", "2"),
        ("SINCE 1-Mar-2024", "3 4 5"),
        ("SINCE \"5-Mar-2024\" BEFORE 6-Mar-2024", "4"),
        (&larger, &bigger),
        (&smaller, &tinier),
        ("2:3", "2 3"),
        ("*", "5"),
        ("4:2", "2 3 4"),
        ("*:4", "4 5"),
        ("1,3,5 SEEN", "1"),
        ("1:9", "1 2 3 4 5"),
        ("UID 3:4", "2 3"),
        ("UID 100:*", "5"),
        ("UID *:5", "4 5"),
        ("OR SEEN (FLAGGED ANSWERED)", "1 2"),
        ("NOT (OR DELETED DRAFT)", "1 2 5"),
        ("OR (NOT SEEN) KEYWORD $Chat", "2 3 4 5"),
        ("NOT NOT NOT SEEN", "2 3 4 5"),
        ("(((SEEN)))", "1"),
        ("OLDER 3600", "1 2 3 4 5"),
        ("YOUNGER 3600", ""),
    ];
    table(&mut c, "SEARCH", &rows).await;
    // RFC 7162 §3.1: the first CONDSTORE-enabling command reports HIGHESTMODSEQ.
    check(&mut c, "C: m0 SEARCH MODSEQ 99999999\nS: * OK [HIGHESTMODSEQ ...\nS: * SEARCH\nS: m0 OK SEARCH completed")
        .await;
    table(&mut c, "UID SEARCH", &[("ALL", "2 3 4 5 6"), ("UID 3:4", "3 4"), ("2:3", "3 4"), ("UID 1", "")]).await;
}

#[tokio::test]
async fn headers_and_bodies_decoded_and_case_insensitive() {
    let (_srv, mut c) = setup().await;
    let rows: Vec<(&str, &str)> = vec![
        ("BCC dave", "3"),
        ("CC CAROL", "1"),
        ("FROM alice", "1"),
        ("FROM \"J\u{f6}rg\"", "2"),
        ("FROM \"J\u{d6}RG\"", "2"),
        ("TO alice@example.org", "2 3 5"),
        ("SUBJECT \"hello world\"", "1 3"),
        ("SUBJECT \"GR\u{dc}\u{df}E aus\"", "2"),
        ("SUBJECT report", "4"),
        ("SUBJECT \"\"", "1 2 3 4 5"),
        ("HEADER X-Custom \"special value\"", "3"),
        ("HEADER x-custom \"\"", "3"),
        ("HEADER Message-ID m1@", "1"),
        ("HEADER X-Missing \"\"", ""),
        ("BODY zebra", "3"),
        ("BODY \"K\u{c4}SE\"", "2"),
        ("BODY \"deep text\"", "5"),
        // The text of an attached message is searched; its header fields are not.
        ("BODY \"inner secret\"", ""),
        ("BODY \"<b>\"", ""),
        ("BODY \"hello world\"", ""),
        ("TEXT \"hello world\"", "1 3"),
        ("TEXT \"x-custom: special\"", "3"),
        ("TEXT zebra", "3"),
        ("BODY fox SEEN", "1"),
        ("BODY fox UNSEEN", ""),
        ("OR BODY zebra SUBJECT report", "3 4"),
        ("NOT BODY e", ""),
        ("SENTON 15-Feb-2024", "2"),
        ("SENTON 1-Mar-2024", "3"),
        ("SENTBEFORE 1-Jan-2024", ""),
        ("SENTBEFORE 2-Jan-2024", "1"),
        ("SENTSINCE 5-Mar-2024", "4 5"),
    ];
    table(&mut c, "SEARCH", &rows).await;
    check(
        &mut c,
        "C: l1 SEARCH CHARSET UTF-8 SUBJECT {7+}
         C: Gr\u{fc}\u{df}e
         S: * SEARCH 2
         S: l1 OK SEARCH completed
         C: l2 SEARCH CHARSET US-ASCII BODY quick
         S: * SEARCH 1
         S: l2 OK SEARCH completed
         C: l3 SEARCH CHARSET ISO-8859-1 BODY quick
         S: l3 NO [BADCHARSET (UTF-8 US-ASCII)] Only UTF-8 and US-ASCII are supported",
    )
    .await;
    c.send_raw(b"l4 SEARCH BODY {2+}\r\n\xff\xfe\r\n").await;
    assert_eq!(c.line().await, "l4 BAD Search string is not valid UTF-8");
}

#[tokio::test]
async fn esearch_return_options() {
    let (_srv, mut c) = setup().await;
    check(
        &mut c,
        "C: e1 SEARCH RETURN (MIN MAX ALL COUNT) UNSEEN
         S: * ESEARCH (TAG \"e1\") MIN 2 MAX 5 ALL 2:5 COUNT 4
         S: e1 OK SEARCH completed
         C: e2 UID SEARCH RETURN () NOT DELETED
         S: * ESEARCH (TAG \"e2\") UID ALL 2:3,5:6
         S: e2 OK UID SEARCH completed
         C: e3 UID SEARCH RETURN (COUNT MIN) KEYWORD nothing
         S: * ESEARCH (TAG \"e3\") UID COUNT 0
         S: e3 OK UID SEARCH completed
         C: e4 SEARCH RETURN (MAX) MODSEQ 1
         S: * OK [HIGHESTMODSEQ ...
         S: * ESEARCH (TAG \"e4\") MAX 5 MODSEQ ...
         S: e4 OK SEARCH completed
         C: e5 SEARCH RETURN (BOGUS) ALL
         S: e5 BAD Syntax error in SEARCH arguments near ...",
    )
    .await;
    let r = c.command("m1", "SEARCH MODSEQ 1").await;
    assert!(r[0].starts_with("* SEARCH 1 2 3 4 5 (MODSEQ "), "{r:?}");
    // RFC 7162 §3.1: MODSEQ in a search turned CONDSTORE on.
    check(
        &mut c,
        "C: m2 STORE 1 +FLAGS (\\Flagged)\nS: * 1 FETCH (FLAGS (\\Flagged \\Recent \\Seen) UID 2 MODSEQ (9))\nS: m2 OK ...",
    )
    .await;
}

#[tokio::test]
async fn searchres_saves_and_reuses() {
    let (_srv, mut c) = setup().await;
    check(
        &mut c,
        "C: r1 SEARCH $
         S: * SEARCH
         S: r1 OK SEARCH completed
         C: r2 SEARCH RETURN (SAVE) OR FLAGGED DRAFT
         S: r2 OK SEARCH completed
         C: r3 SEARCH $
         S: * SEARCH 2 4
         S: r3 OK SEARCH completed
         C: r4 UID SEARCH UID $ ALL
         S: * SEARCH 3 5
         S: r4 OK UID SEARCH completed
         C: r5 UID SEARCH RETURN (SAVE MIN) NOT $
         S: * ESEARCH (TAG \"r5\") UID MIN 2
         S: r5 OK UID SEARCH completed
         C: r6 SEARCH $
         S: * SEARCH 1
         S: r6 OK SEARCH completed
         C: r7 SEARCH RETURN (SAVE COUNT MAX) UNSEEN
         S: * ESEARCH (TAG \"r7\") MAX 5 COUNT 4
         S: r7 OK SEARCH completed
         C: r8 SEARCH $ SUBJECT report
         S: * SEARCH 4
         S: r8 OK SEARCH completed
         C: r9 SEARCH RETURN (SAVE) CHARSET KOI8-R ALL
         S: r9 NO [BADCHARSET (UTF-8 US-ASCII)] ...
         C: r10 SEARCH $
         S: * SEARCH
         S: r10 OK SEARCH completed
         C: r11 SEARCH RETURN (SAVE) ALL
         S: r11 OK SEARCH completed",
    )
    .await;
    // RFC 5182 §2.1: selecting a mailbox empties the saved result.
    c.select("INBOX").await;
    check(&mut c, "C: r12 SEARCH $\nS: * SEARCH\nS: r12 OK SEARCH completed").await;
}

#[tokio::test]
async fn imap4rev2_answers_with_esearch() {
    let srv = TestServer::start().await;
    for (raw, date, flags) in MESSAGES {
        append(&srv, raw, date, flags).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    check(&mut c, "C: v1 ENABLE IMAP4rev2\nS: * ENABLED IMAP4rev2\nS: v1 OK ENABLE completed").await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: v2 SEARCH UNSEEN
         S: * ESEARCH (TAG \"v2\") ALL 2:5
         S: v2 OK SEARCH completed
         C: v3 UID SEARCH KEYWORD nothing
         S: * ESEARCH (TAG \"v3\") UID
         S: v3 OK UID SEARCH completed
         C: v4 SEARCH RETURN (COUNT) ALL
         S: * ESEARCH (TAG \"v4\") COUNT 5
         S: v4 OK SEARCH completed",
    )
    .await;
}

#[tokio::test]
async fn states_and_syntax() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    c.line().await;
    check(&mut c, "C: a1 SEARCH ALL\nS: a1 BAD SEARCH is not valid before login").await;
    c.login(&srv).await;
    check(
        &mut c,
        "C: a2 UID SEARCH ALL
         S: a2 BAD SEARCH needs a selected mailbox
         C: a3 SORT (DATE) UTF-8 ALL
         S: a3 BAD SORT needs a selected mailbox",
    )
    .await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: a4 SEARCH ALL
         S: * SEARCH
         S: a4 OK SEARCH completed
         C: a5 SEARCH *
         S: * SEARCH
         S: a5 OK SEARCH completed
         C: a6 SEARCH FROB
         S: a6 BAD Syntax error in SEARCH arguments near \"FROB\"
         C: a7 SEARCH
         S: a7 BAD Syntax error in SEARCH arguments at end of line
         C: a8 NOOP
         S: a8 OK NOOP completed",
    )
    .await;
}

#[tokio::test]
async fn within_uses_the_clock() {
    let srv = TestServer::start().await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    append(&srv, "Subject: old\r\n\r\nx\r\n", now - 7200, &[]).await;
    append(&srv, "Subject: new\r\n\r\nx\r\n", now - 60, &[]).await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    table(&mut c, "SEARCH", &[("YOUNGER 3600", "2"), ("OLDER 3600", "1"), ("OLDER 10 YOUNGER 100000", "1 2")]).await;
}

#[tokio::test]
async fn expunges_by_others_wait_until_after_search() {
    let (srv, mut c) = setup().await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, inbox, &[Uid(3)]).await.unwrap();
    // RFC 3501 §7.4.1: no EXPUNGE during SEARCH; the expunged message no
    // longer matches but keeps its number until the next allowed point.
    let r = c.command("x1", "SEARCH ALL").await;
    assert_eq!(r, vec!["* SEARCH 1 3 4 5", "x1 OK SEARCH completed"]);
    let r = c.command("x2", "UID SEARCH ALL").await;
    assert_eq!(r, vec!["* SEARCH 2 4 5 6", "* 2 EXPUNGE", "x2 OK UID SEARCH completed"]);
}

/// FROM, TO, CC and BCC match the addresses (RFC 3501 §6.4.4: "the
/// envelope structure's FROM field"), display names decoded, whatever
/// comments, folds or quoting the field's text has around them.
#[tokio::test]
async fn address_keys_match_the_addresses() {
    let srv = TestServer::start().await;
    let messages = [
        "From: user-from@domain.org\r\nTo: user-to@domain.org\r\nCc: user-cc@domain.org\r\nBcc: user-bcc@domain.org\r\n\r\n1\r\n",
        "From: \"User From\" <user-from@domain.org>\r\nTo: RealTo <user-to@domain.org>\r\n\r\n2\r\n",
        "From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to@\r\n domain.org>\r\n\
Cc: <user-cc (c)@domain.org>\r\nBcc: user-bcc @ domain.org\r\n\r\n3\r\n",
        "From: user-from@domain.org (RealFrom)\r\n\r\n4\r\n",
        "From: =?utf-8?q?J=C3=B6rg?= <joerg@x.org>\r\nTo: \"john doe\"@x.org\r\n\r\n5\r\n",
        "To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: groupuser3@domain.org;\r\n\r\n6\r\n",
    ];
    for raw in messages {
        append(&srv, raw, 1_704_196_800, &[]).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    let rows: Vec<(&str, &str)> = vec![
        ("FROM user-from@domain.org", "1 2 3 4"),
        ("FROM USER-FROM@DOMAIN.ORG", "1 2 3 4"),
        ("TO user-to@domain.org", "1 2 3"),
        ("CC user-cc@domain.org", "1 3"),
        ("BCC user-bcc@domain.org", "1 3"),
        ("FROM ser-fro", "1 2 3 4"),
        ("FROM \"user from\"", "2"),
        ("FROM \"user from <user-from@\"", "2"),
        ("TO realto", "2"),
        // The comment of a bare address is its name; others are no part of it.
        ("FROM realfrom", "4"),
        ("FROM comment", ""),
        ("HEADER FROM comment", "3"),
        ("FROM \"J\u{f6}rg\"", "5"),
        ("FROM \"j\u{d6}rg <joerg@x.org>\"", "5"),
        ("FROM joerg@x.org", "5"),
        ("FROM =?utf-8?", ""),
        ("TO \"john doe@x.org\"", "5"),
        ("TO groupname2", "6"),
        ("TO groupuser3", "6"),
        ("TO groupuser4", ""),
        ("FROM \"\"", "1 2 3 4 5"),
        ("BCC \"\"", "1 3"),
    ];
    table(&mut c, "SEARCH", &rows).await;
    check(
        &mut c,
        "C: u1 SEARCH CHARSET UTF-8 FROM {5+}
         C: J\u{f6}rg
         S: * SEARCH 5
         S: u1 OK SEARCH completed",
    )
    .await;
}

/// RFC 7162 §3.1.5: ESEARCH's MODSEQ is the highest mod-sequence of the
/// messages returned: MIN's, MAX's, the higher of the two, or every
/// match's with ALL or COUNT.
#[tokio::test]
async fn esearch_modseq_is_that_of_what_is_returned() {
    let srv = TestServer::start().await;
    for i in 1..=4 {
        append(&srv, &format!("Subject: {i}\r\n\r\nx\r\n"), 1_704_196_800, &[]).await;
    }
    // \Seen in the order 1, 3, 2, 4: mod-sequences rise in that order.
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let seen: Flags = ["\\Seen"].into_iter().collect();
    for uid in [1, 3, 2, 4].map(Uid) {
        srv.store.store_flags(srv.account.id, inbox, &[uid], coimail_store::FlagOp::Add, &seen).await.unwrap();
    }
    let modseq: Vec<ModSeq> = srv.store.messages(srv.account.id, inbox).unwrap().iter().map(|m| m.modseq).collect();
    let [m1, m2, m3, m4] = modseq[..] else { panic!("{modseq:?}") };
    assert!(m1 < m3 && m3 < m2 && m2 < m4);
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        &format!(
            "C: c1 SEARCH RETURN (MIN) 1:3 MODSEQ \"/flags/\\\\seen\" all 1
             S: * OK [HIGHESTMODSEQ {m4}]...
             S: * ESEARCH (TAG \"c1\") MIN 1 MODSEQ {m1}
             S: c1 OK SEARCH completed
             C: c2 SEARCH RETURN (MAX) 1:3 MODSEQ 1
             S: * ESEARCH (TAG \"c2\") MAX 3 MODSEQ {m3}
             S: c2 OK SEARCH completed
             C: c3 SEARCH RETURN () 1:3 MODSEQ 1
             S: * ESEARCH (TAG \"c3\") ALL 1:3 MODSEQ {m2}
             S: c3 OK SEARCH completed
             C: c4 SEARCH RETURN (MIN MAX) 2:3 MODSEQ 1
             S: * ESEARCH (TAG \"c4\") MIN 2 MAX 3 MODSEQ {m2}
             S: c4 OK SEARCH completed
             C: c5 SEARCH RETURN (MIN MAX) 1,3 MODSEQ 1
             S: * ESEARCH (TAG \"c5\") MIN 1 MAX 3 MODSEQ {m3}
             S: c5 OK SEARCH completed
             C: c6 UID SEARCH RETURN (MIN COUNT) 1:3 MODSEQ 1
             S: * ESEARCH (TAG \"c6\") UID MIN 1 COUNT 3 MODSEQ {m2}
             S: c6 OK UID SEARCH completed
             C: c7 SEARCH RETURN (ALL) 2:3 MODSEQ {m2}
             S: * ESEARCH (TAG \"c7\") ALL 2 MODSEQ {m2}
             S: c7 OK SEARCH completed
             C: c8 SEARCH RETURN (MIN) 1:3 MODSEQ {m4}
             S: * ESEARCH (TAG \"c8\")
             S: c8 OK SEARCH completed
             C: c9 SEARCH 1:3 MODSEQ 1
             S: * SEARCH 1 2 3 (MODSEQ {m2})
             S: c9 OK SEARCH completed"
        ),
    )
    .await;
}
