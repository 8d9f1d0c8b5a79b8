use super::*;
use crate::testing::{Client, TestServer, check};
use coimail_store::Flags;

#[test]
fn base_subjects() {
    let cases = [
        ("Re: Hello world", "Hello world", true),
        ("Fwd: [list] Re: Subject (fwd)", "Subject", true),
        ("[fwd: Re: hello]", "hello", true),
        ("[PATCH] fix bug", "fix bug", false),
        ("[only blob]", "[only blob]", false),
        ("  Multiple   spaces\there  ", "Multiple spaces here", false),
        ("RE:re: FW: x", "x", true),
        ("Re [1]: x", "x", true),
        ("Reply to all", "Reply to all", false),
        ("Re:", "", true),
        ("", "", false),
        ("[a][b] Re: [c] FWD: [d]", "[d]", true),
        ("Re: [fwd: Re: deep (fwd)] (FWD)", "deep", true),
        ("Gr\u{fc}\u{df}e (fwd)", "Gr\u{fc}\u{df}e", true),
        ("Re: [list] Fwd: hello (fwd)", "hello", true),
        ("[fwd: Re: x]", "x", true),
        ("Re:re: RE: x", "x", true),
        ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", true),
        ("Re: [FWD: c]", "c", true),
        ("b (a)", "b (a)", false),
        ("b(fwd)", "b", true),
        // A blob is kept when removing it would leave nothing.
        ("[a] [b]", "[b]", false),
        ("Re: [xyz]", "[xyz]", true),
        // subj-refwd is "re", "fw" or "fwd", then optional WSP and blob, then ":".
        ("Fw : x", "x", true),
        ("fWd [1]:x", "x", true),
        ("Fwdd: x", "Fwdd: x", false),
        ("Rex: x", "Rex: x", false),
        ("Re [a] [b]: x", "Re [a] [b]: x", false),
        ("[fwd:]", "", true),
        ("[fwd: a] b", "b", false),
        // Step (1): tabs and folds are spaces; other Unicode spaces are text.
        ("Re:\ta \r\n\t b", "a b", true),
        ("a\u{a0}\u{a0}b", "a\u{a0}\u{a0}b", false),
        ("Re: caf\u{e9}", "caf\u{e9}", true),
    ];
    for (subject, base, reply) in cases {
        assert_eq!(base_subject(subject), (base.to_string(), reply), "{subject:?}");
    }
}

#[test]
fn fields_from_the_header() {
    let raw = b"Subject: =?utf-8?q?=C3=84pfel?=\r\nFrom: Amy <amy@a.org>\r\nFrom: second@x\r\n\
Date: Fri, 5 Jan 2024 10:00:00 +0100\r\nReferences: <a@x>\r\n <b@x>\r\nIn-Reply-To: <b@x>\r\n\r\nbody";
    let f = Fields::parse(raw);
    assert_eq!(f.subject, "\u{c4}pfel");
    let amy = Address { name: Some("Amy".into()), mailbox: "amy".into(), host: "a.org".into() };
    assert_eq!(f.from, Some(amy));
    assert_eq!(f.sent, Some(1_704_445_200));
    assert_eq!(f.references, vec!["a@x".to_string(), "b@x".to_string()]);
    assert_eq!(f.in_reply_to, vec!["b@x".to_string()]);
    assert_eq!(f.message_id, None);
    assert_eq!(f.sent_or(7), 1_704_445_200);
    assert_eq!(Fields::default().sent_or(7), 7);
}

const S1: &str = "From: Aaron <zed@b.org>\r\nTo: amy@x.org\r\nSubject: Re: banana\r\n\
Date: Wed, 3 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n";
const S2: &str = "From: Amy <amy@a.org>\r\nTo: zed@x.org\r\nCc: bob@x.org\r\nSubject: apple\r\n\
Date: Fri, 5 Jan 2024 10:00:00 +0000\r\n\r\na somewhat longer body than the others have\r\n";
const S3: &str = "From: bob@c.org\r\nTo: carl@x.org\r\nSubject: [fwd: Cherry]\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nmedium body\r\n";
const S4: &str = "Subject: =?utf-8?q?=C3=84pfel?=\r\n\r\nno sender, no date\r\n";

/// Sequence numbers 1..=4 are S1..S4 with UIDs 2..=5; arrival order 2 3 1 4.
async fn setup() -> (TestServer, Client) {
    let srv = TestServer::start().await;
    let add = |raw: &'static str, date: i64, flags: &'static [&'static str]| {
        let store = srv.store.clone();
        let account = srv.account.id;
        async move {
            let flags: Flags = flags.iter().copied().collect();
            store.append(account, "INBOX", raw.as_bytes(), flags, date).await.unwrap().uid
        }
    };
    let gone = add("Subject: gone\r\n\r\n", 0, &[]).await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    srv.store.expunge(srv.account.id, inbox, &[gone]).await.unwrap();
    add(S1, 1_705_017_600, &["\\Seen"]).await; // 12-Jan-2024
    add(S2, 1_704_844_800, &[]).await; // 10-Jan-2024
    add(S3, 1_704_931_200, &[]).await; // 11-Jan-2024
    add(S4, 1_706_745_600, &[]).await; // 1-Feb-2024 (also its sent date)
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    (srv, c)
}

#[tokio::test]
async fn sort_keys() {
    let (_srv, mut c) = setup().await;
    let sizes = [S1.len(), S2.len(), S3.len(), S4.len()];
    let mut by_size: Vec<usize> = (1..=4).collect();
    by_size.sort_by_key(|&i| (sizes[i - 1], i));
    let by_size: Vec<String> = by_size.iter().map(ToString::to_string).collect();
    let reverse_size: Vec<String> = by_size.iter().rev().cloned().collect();
    let rows = [
        ("(ARRIVAL)", "2 3 1 4".to_string()),
        ("(REVERSE ARRIVAL)", "4 1 3 2".to_string()),
        ("(DATE)", "3 1 2 4".to_string()),
        ("(SUBJECT)", "2 1 3 4".to_string()),
        ("(REVERSE SUBJECT)", "4 3 1 2".to_string()),
        ("(FROM)", "4 2 3 1".to_string()),
        ("(DISPLAYFROM)", "4 1 2 3".to_string()),
        ("(TO)", "4 1 3 2".to_string()),
        ("(DISPLAYTO)", "4 1 3 2".to_string()),
        ("(CC)", "1 3 4 2".to_string()),
        ("(REVERSE CC DATE)", "2 3 1 4".to_string()),
        ("(SIZE)", by_size.join(" ")),
        ("(REVERSE SIZE)", reverse_size.join(" ")),
    ];
    for (i, (criteria, want)) in rows.iter().enumerate() {
        let r = c.command(&format!("s{i}"), &format!("SORT {criteria} UTF-8 ALL")).await;
        assert_eq!(r, vec![format!("* SORT {want}"), format!("s{i} OK SORT completed")], "{criteria}");
    }
    check(
        &mut c,
        "C: u1 UID SORT (SUBJECT) US-ASCII ALL
         S: * SORT 3 2 4 5
         S: u1 OK UID SORT completed
         C: u2 SORT (DATE) UTF-8 UNSEEN
         S: * SORT 3 2 4
         S: u2 OK SORT completed
         C: u3 SORT (ARRIVAL) UTF-8 SUBJECT nothing
         S: * SORT
         S: u3 OK SORT completed
         C: u4 SORT (DATE) ISO-8859-1 ALL
         S: u4 NO [BADCHARSET (UTF-8 US-ASCII)] Only UTF-8 and US-ASCII are supported
         C: u5 SORT (DATE) ALL
         S: u5 BAD Syntax error in SORT arguments at end of line",
    )
    .await;
}

const R1: &str = "From: \"Zoe\" <b_x@z.org>\r\nTo: me@x.org\r\nCc: \"Carl\" <Carl@x.org>, a@x.org\r\n\
Subject: Re: [list] Fwd: hello (fwd)\r\nDate: Wed, 3 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n";
const R2: &str = "From: anna@a.org\r\nTo: \"Bea\" <z@x.org>\r\nCc: bob@x.org\r\nSubject: [fwd: Re: x]\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n";
const R3: &str = "From: =?utf-8?q?J=C3=B6rg?= <BZ@b.org>\r\nTo: \"\" <c@x.org>\r\nCc: undisclosed: b_x@x.org;\r\n\
Subject: Re:re: RE: x\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n";
const R4: &str = "From: \"zz top\"@q.org\r\nSubject: =?utf-8?q?Re:_caf=C3=A9?=\r\n\
Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n";
const R6: &str = "From: Amy <amy@a.org>\r\nCc: bz@x.org\r\nSubject: _under\r\n\
Date: Fri, 5 Jan 2024 10:00:00 +0000\r\n\r\nshort\r\n";

/// RFC 5256 §2.1 base subjects, RFC 5256 §3 address keys (i;ascii-casemap:
/// `_` sorts after `Z`), RFC 5957 display keys, and REVERSE on each key
/// alone: base subjects are `hello` (1, 5), `x` (2, 3), `café` (4) and
/// `_under` (6); 1 and 5 also share their date, and 5 is the larger.
#[tokio::test]
async fn reverse_each_key_and_rfc5256_subjects() {
    let r5 = format!(
        "Cc: =?utf-8?q?Zed?= <carl@y.org>\r\nSubject: hello\r\nDate: Wed, 3 Jan 2024 10:00:00 +0000\r\n\r\n{}\r\n",
        "x".repeat(300)
    );
    assert!(r5.len() > R1.len());
    let srv = TestServer::start().await;
    for raw in [R1, R2, R3, R4, &r5, R6] {
        srv.store.append(srv.account.id, "INBOX", raw.as_bytes(), Flags::default(), 1_704_067_200).await.unwrap();
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    let rows = [
        ("(SUBJECT)", "4 1 5 2 3 6"),
        ("(REVERSE SUBJECT)", "6 2 3 1 5 4"),
        ("(SUBJECT REVERSE DATE)", "4 1 5 3 2 6"),
        ("(REVERSE SUBJECT REVERSE DATE)", "6 3 2 1 5 4"),
        ("(REVERSE SUBJECT DATE)", "6 2 3 1 5 4"),
        ("(DATE SUBJECT)", "2 4 3 1 5 6"),
        ("(REVERSE DATE SUBJECT)", "6 1 5 4 3 2"),
        ("(REVERSE DATE REVERSE SUBJECT)", "6 1 5 3 4 2"),
        ("(REVERSE SUBJECT DATE REVERSE SIZE)", "6 2 3 5 1 4"),
        ("(REVERSE SUBJECT DATE SIZE)", "6 2 3 1 5 4"),
        // CC: "" BOB BZ B_X CARL CARL; a group's first member counts.
        ("(CC)", "4 2 6 3 1 5"),
        ("(REVERSE CC)", "1 5 3 6 2 4"),
        ("(CC REVERSE SIZE)", "4 2 6 3 5 1"),
        ("(REVERSE CC REVERSE SIZE)", "5 1 3 6 2 4"),
        // FROM: "" AMY ANNA BZ B_X ZZ TOP (the local part unquoted).
        ("(FROM)", "5 6 2 3 1 4"),
        ("(REVERSE FROM)", "4 1 3 2 6 5"),
        ("(TO)", "4 5 6 3 1 2"),
        // DISPLAYFROM: "" AMY ANNA@A.ORG J\u{d6}RG (decoded) ZOE ZZ TOP@Q.ORG.
        ("(DISPLAYFROM)", "5 6 2 3 1 4"),
        ("(REVERSE DISPLAYFROM)", "4 1 3 2 6 5"),
        // DISPLAYTO: an empty display name means the addr-spec.
        ("(DISPLAYTO)", "4 5 6 2 3 1"),
        ("(REVERSE DISPLAYTO)", "1 3 2 4 5 6"),
    ];
    for (i, (criteria, want)) in rows.iter().enumerate() {
        let r = c.command(&format!("r{i}"), &format!("SORT {criteria} UTF-8 ALL")).await;
        assert_eq!(r, vec![format!("* SORT {want}"), format!("r{i} OK SORT completed")], "{criteria}");
    }
}
