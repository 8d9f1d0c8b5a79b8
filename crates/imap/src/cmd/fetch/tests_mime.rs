//! FETCH of the MIME items over a real socket: ENVELOPE, BODY,
//! BODYSTRUCTURE, every BODY[section] form, BINARY, MODSEQ, and the
//! structure cache.

use crate::testing::{Client, TestServer, check};

const MULTI: &str = "From: Alice <alice@example.org>\r\nTo: bob@example.org, Team: c@example.org;\r\n\
Subject: =?utf-8?q?caf=C3=A9?=\r\nDate: Tue, 14 Nov 2023 23:13:20 +0100\r\nMessage-ID: <m1@example.org>\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--b1\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n";

const ENVELOPE: &str = "(\"Tue, 14 Nov 2023 23:13:20 +0100\" \"=?utf-8?q?caf=C3=A9?=\" \
((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) \
((\"Alice\" NIL \"alice\" \"example.org\")) \
((NIL NIL \"bob\" \"example.org\")(NIL NIL \"Team\" NIL)(NIL NIL \"c\" \"example.org\")(NIL NIL NIL NIL)) \
NIL NIL NIL \"<m1@example.org>\")";

const BODY: &str = "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1)\
(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4) \"MIXED\")";

const BODYSTRUCTURE: &str = "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1 NIL NIL NIL NIL)\
(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 4 NIL NIL NIL NIL) \"MIXED\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)";

/// A literal as `check` shows it: `{n}` then the bytes, CR and LF escaped.
fn lit(data: &str) -> String {
    format!("{{{}}}\\r\\n{}", data.len(), data.replace('\r', "\\r").replace('\n', "\\n"))
}

async fn session(msgs: &[&[u8]]) -> (TestServer, Client) {
    let srv = TestServer::start().await;
    for m in msgs {
        srv.deliver(m).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    (srv, c)
}

#[tokio::test]
async fn envelope_body_and_bodystructure() {
    let (_srv, mut c) = session(&[MULTI.as_bytes()]).await;
    check(
        &mut c,
        &format!(
            "C: a1 FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)
             S: * 1 FETCH (ENVELOPE {ENVELOPE} BODY {BODY} BODYSTRUCTURE {BODYSTRUCTURE})
             S: a1 OK FETCH completed
             C: a2 FETCH 1 ALL
             S: * 1 FETCH (FLAGS (\\Recent) INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE {size} ENVELOPE {ENVELOPE})
             S: a2 OK FETCH completed
             C: a3 FETCH 1 FULL
             S: * 1 FETCH (FLAGS (\\Recent) INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE {size} ENVELOPE {ENVELOPE} BODY {BODY})
             S: a3 OK FETCH completed
             C: a4 UID FETCH 1 (MODSEQ)
             S: * OK [HIGHESTMODSEQ ...
             S: * 1 FETCH (UID 1 MODSEQ (...
             S: a4 OK FETCH completed",
            size = MULTI.len()
        ),
    )
    .await;
}

#[tokio::test]
async fn every_body_section_form() {
    let (_srv, mut c) = session(&[MULTI.as_bytes()]).await;
    let mime1 = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n";
    let header_end = MULTI.find("\r\n\r\n").unwrap() + 4;
    check(
        &mut c,
        &format!(
            "C: a1 FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2]<1.2> BODY.PEEK[3] BODY.PEEK[1.1])
             S: * 1 FETCH (BODY[1] {} BODY[1.MIME] {} BODY[2]<1> {} BODY[3] NIL BODY[1.1] NIL)
             S: a1 OK FETCH completed
             C: a2 FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject MESSAGE-ID)] BODY.PEEK[1.HEADER] BODY.PEEK[TEXT]<0.4>)
             S: * 1 FETCH (BODY[HEADER.FIELDS (Subject MESSAGE-ID)] {} BODY[1.HEADER] NIL BODY[TEXT]<0> {})
             S: a2 OK FETCH completed
             C: a3 FETCH 1 (BODY.PEEK[HEADER]<{header_end}.10> RFC822.HEADER)
             S: * 1 FETCH (BODY[HEADER]<{header_end}> {} RFC822.HEADER {})
             S: a3 OK FETCH completed
             C: a4 FETCH 1 (FLAGS)
             S: * 1 FETCH (FLAGS (\\Recent))
             S: a4 OK FETCH completed
             C: a5 FETCH 1 BODY[1]
             S: * 1 FETCH (BODY[1] {} FLAGS (\\Recent \\Seen))
             S: a5 OK FETCH completed",
            lit("caf=C3=A9"),
            lit(mime1),
            lit("AE"),
            lit("Subject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m1@example.org>\r\n\r\n"),
            lit("--b1"),
            lit(""),
            lit(&MULTI[..header_end]),
            lit("caf=C3=A9"),
        ),
    )
    .await;
}

#[tokio::test]
async fn binary_and_binary_size() {
    let unknown = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n";
    let (_srv, mut c) = session(&[MULTI.as_bytes(), unknown]).await;
    check(
        &mut c,
        &format!(
            "C: a1 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[7] BINARY.PEEK[1]<1.2> BINARY.PEEK[4])
             S: * 1 FETCH (BINARY[1] {} BINARY.SIZE[1] 5 BINARY.SIZE[2] 3 BINARY.SIZE[7] 0 BINARY[1]<1> {} BINARY[4] NIL)
             S: a1 OK FETCH completed
             C: a2 FETCH 1 BINARY.SIZE[]
             S: * 1 FETCH (BINARY.SIZE[] {})
             S: a2 OK FETCH completed
             C: a3 FETCH 2 BINARY.PEEK[1]
             S: a3 NO [UNKNOWN-CTE] Cannot decode the Content-Transfer-Encoding of this part
             C: a4 FETCH 2 (BODY.PEEK[1] BINARY.SIZE[])
             S: * 2 FETCH (BODY[1] {} BINARY.SIZE[] {})
             S: a4 OK FETCH completed",
            lit("caf\u{e9}"),
            lit("af"),
            MULTI.len(),
            lit("begin 644 x\r\n"),
            unknown.len(),
        ),
    )
    .await;
    // NUL in decoded content: literal8 (RFC 3516 §4.2); BINARY sets \Seen.
    c.send("b1 FETCH 1 BINARY[2]").await;
    assert_eq!(c.response().await, b"* 1 FETCH (BINARY[2] ~{3}\r\n\x00\x01\x02 FLAGS (\\Recent \\Seen))");
    assert_eq!(c.line().await, "b1 OK FETCH completed");
}

#[tokio::test]
async fn empty_and_headerless_messages() {
    let (_srv, mut c) = session(&[b"", b"just a body line\r\n"]).await;
    check(
        &mut c,
        "C: a1 FETCH 1:2 (RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1])
         S: * 1 FETCH (RFC822.SIZE 0 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) \
BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL) \
BODY[] {0}\\r\\n BODY[HEADER] {0}\\r\\n BODY[TEXT] {0}\\r\\n BODY[1] {0}\\r\\n)
         S: * 2 FETCH (RFC822.SIZE 18 ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) \
BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 18 1 NIL NIL NIL NIL) \
BODY[] {18}\\r\\njust a body line\\r\\n BODY[HEADER] {0}\\r\\n BODY[TEXT] {18}\\r\\njust a body line\\r\\n \
BODY[1] {18}\\r\\njust a body line\\r\\n)
         S: a1 OK FETCH completed",
    )
    .await;
}

#[tokio::test]
async fn eight_bit_headers_are_literals_until_utf8_is_enabled() {
    let msg = "From: J\u{fc}rgen <j@example.org>\r\nSubject: gr\u{fc}n \"quoted\"\r\n\r\nx\r\n";
    let (srv, mut c) = session(&[msg.as_bytes()]).await;
    check(
        &mut c,
        "C: a1 FETCH 1 ENVELOPE
         S: * 1 FETCH (ENVELOPE (NIL {14}\\r\\ngr\u{fc}n \"quoted\" (({7}\\r\\nJ\u{fc}rgen NIL \"j\" \"example.org\")) ...
         S: a1 OK FETCH completed",
    )
    .await;
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    check(
        &mut c,
        "C: a2 ENABLE UTF8=ACCEPT
         S: * ENABLED UTF8=ACCEPT
         S: a2 OK ENABLE completed",
    )
    .await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: a3 FETCH 1 ENVELOPE
         S: * 1 FETCH (ENVELOPE (NIL \"gr\u{fc}n \\\"quoted\\\"\" ((\"J\u{fc}rgen\" NIL \"j\" \"example.org\")) ...
         S: a3 OK FETCH completed",
    )
    .await;
}

#[tokio::test]
async fn warm_structure_items_read_no_file() {
    let (srv, mut c) = session(&[MULTI.as_bytes()]).await;
    check(&mut c, "C: a1 FETCH 1 ENVELOPE\nS: * 1 FETCH (ENVELOPE ...\nS: a1 OK FETCH completed").await;
    let inbox = srv.store.mailbox(srv.account.id, "INBOX").unwrap().id;
    let meta = srv.store.messages(srv.account.id, inbox).unwrap().remove(0);
    coimail_store::blob::BlobStore::open(&srv.data_dir().join("blobs")).unwrap().delete(&meta.blob).unwrap();
    check(
        &mut c,
        &format!(
            "C: a2 FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)
             S: * 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE {} ENVELOPE {ENVELOPE} BODYSTRUCTURE {BODYSTRUCTURE})
             S: a2 OK FETCH completed
             C: a3 FETCH 1 BODY.PEEK[1]
             S: a3 NO [SERVERBUG] ...",
            MULTI.len()
        ),
    )
    .await;
}

#[tokio::test]
async fn many_messages_cold_and_warm_come_in_order() {
    let n = 150; // more than one batch and more than the read-ahead window
    let msgs: Vec<Vec<u8>> = (1..=n).map(|i| format!("Subject: m{i}\r\n\r\nbody {i}\r\n").into_bytes()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let (_srv, mut c) = session(&refs).await;
    for (tag, items) in [("a1", "(ENVELOPE BODY.PEEK[TEXT])"), ("a2", "(ENVELOPE BODY.PEEK[TEXT])"), ("a3", "ENVELOPE")]
    {
        let r = c.command(tag, &format!("FETCH 1:* {items}")).await;
        assert_eq!(r.len(), n + 1, "{r:?}");
        for (i, line) in r.iter().take(n).enumerate() {
            let i = i + 1;
            let expected = format!("* {i} FETCH (ENVELOPE (NIL \"m{i}\" NIL NIL NIL NIL NIL NIL NIL NIL)");
            assert!(line.starts_with(&expected), "{line}");
            if items.contains("TEXT") {
                assert!(line.ends_with(&format!("body {i}\r\n)")), "{line}");
            }
        }
        assert_eq!(r[n], format!("{tag} OK FETCH completed"));
    }
}

#[tokio::test]
async fn binary_is_advertised_after_login() {
    let (_srv, mut c) = session(&[]).await;
    let r = c.command("a1", "CAPABILITY").await;
    assert!(r[0].starts_with("* CAPABILITY ") && r[0].split(' ').any(|c| c == "BINARY"), "{r:?}");
}
