//! Structure, sections and BODYSTRUCTURE on well-formed, nested and
//! malformed MIME (the cases mail-parser 0.11.9 gets wrong among them).

use super::bodystructure::write as write_body_structure;
use super::section::{self, Spec};
use super::structure::{self, Kind, MAX_DEPTH, MAX_PARTS, Message, Part};
use super::*;

fn bs(raw: &[u8], extended: bool) -> String {
    let mut out = Vec::new();
    write_body_structure(&mut out, &structure::parse(raw).root, Form { extended, utf8: false, rev2: false });
    String::from_utf8_lossy(&out).into_owned()
}

fn sec(raw: &[u8], path: &[u32], spec: Spec) -> Option<String> {
    let m = structure::parse(raw);
    section::body(raw, &m, path, &spec).map(|d| String::from_utf8_lossy(&d).into_owned())
}

fn part_count(m: &Message) -> usize {
    fn count(p: &Part) -> usize {
        1 + match &p.kind {
            Kind::Leaf => 0,
            Kind::Multipart(c) => c.iter().map(count).sum(),
            Kind::Message(m) => count(&m.root),
        }
    }
    count(&m.root)
}

pub(crate) const NESTED: &[u8] = b"From: a@x\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--inner\r\n\
Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--inner--\r\n--outer\r\nContent-Type: application/pdf; name=x.pdf\r\n\
Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"x.pdf\"\r\nContent-Language: en, de\r\n\
Content-Location: http://x/y\r\nContent-MD5: abc=\r\nContent-ID: <id@x>\r\nContent-Description: A file\r\n\r\n\
JVBERi0=\r\n--outer--\r\nepilogue\r\n";

#[test]
fn simple_text_message() {
    let raw = b"Subject: hi\r\n\r\nline 1\r\nline 2";
    assert_eq!(bs(raw, false), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 14 2)");
    assert_eq!(bs(raw, true), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 14 2 NIL NIL NIL NIL)");
    assert_eq!(sec(raw, &[1], Spec::Full).as_deref(), Some("line 1\r\nline 2"));
    assert_eq!(sec(raw, &[1], Spec::Mime).as_deref(), Some("Subject: hi\r\n\r\n"));
    assert_eq!(sec(raw, &[2], Spec::Full), None);
    assert_eq!(sec(raw, &[1, 1], Spec::Full), None);
    assert_eq!(sec(raw, &[1], Spec::Header), None, "HEADER after a part number needs message/rfc822");
}

#[test]
fn nested_multipart_structure_and_sections() {
    assert_eq!(
        bs(NESTED, true),
        "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1 NIL NIL NIL NIL)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 9 1 NIL NIL NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"x.pdf\") \"<id@x>\" \"A file\" \"BASE64\" 8 \"abc=\" (\"ATTACHMENT\" (\"FILENAME\" \"x.pdf\")) (\"en\" \"de\") \"http://x/y\") \
\"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)"
    );
    assert_eq!(
        bs(NESTED, false),
        "(((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 9 1)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 9 1) \"ALTERNATIVE\")\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"x.pdf\") \"<id@x>\" \"A file\" \"BASE64\" 8) \"MIXED\")"
    );
    assert_eq!(sec(NESTED, &[1, 1], Spec::Full).as_deref(), Some("caf=C3=A9"));
    assert_eq!(sec(NESTED, &[1, 2], Spec::Full).as_deref(), Some("<p>hi</p>"));
    assert_eq!(sec(NESTED, &[1, 2], Spec::Mime).as_deref(), Some("Content-Type: text/html\r\n\r\n"));
    assert_eq!(sec(NESTED, &[2], Spec::Full).as_deref(), Some("JVBERi0="));
    assert!(sec(NESTED, &[1], Spec::Full).unwrap().starts_with("--inner\r\n"));
    assert!(sec(NESTED, &[1], Spec::Full).unwrap().ends_with("--inner--"));
    assert_eq!(sec(NESTED, &[3], Spec::Full), None);
    assert_eq!(sec(NESTED, &[1, 3], Spec::Full), None);
    assert_eq!(sec(NESTED, &[1, 1, 1], Spec::Full), None);
    assert!(sec(NESTED, &[], Spec::Text).unwrap().starts_with("preamble\r\n--outer"));
    let m = structure::parse(NESTED);
    assert_eq!(binary(NESTED, &m, &[1, 1]).unwrap().unwrap().as_ref(), "caf\u{e9}".as_bytes());
    assert_eq!(binary(NESTED, &m, &[2]).unwrap().unwrap().as_ref(), b"%PDF-");
    assert_eq!(binary(NESTED, &m, &[9]).unwrap(), None);
}

/// mail-parser 0.11.9 lets the inner part swallow `--a` and loses "outer2".
#[test]
fn missing_inner_close_delimiter_keeps_the_outer_parts() {
    let raw = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\ninner1\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>inner2</p>\r\n\
--a\r\nContent-Type: text/plain\r\n\r\nouter2\r\n--a--\r\n";
    assert_eq!(sec(raw, &[1, 2], Spec::Full).as_deref(), Some("<p>inner2</p>"));
    assert_eq!(sec(raw, &[2], Spec::Full).as_deref(), Some("outer2"));
    let text: Vec<String> = ParsedMessage::parse(raw).text_parts().into_iter().map(|t| t.text).collect();
    assert_eq!(text, ["inner1", "<p>inner2</p>", "outer2"]);
}

#[test]
fn malformed_multiparts() {
    // No close-delimiter: the last part runs to the end.
    let raw = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\none\r\n--z\r\n\r\ntwo\r\n";
    assert_eq!(sec(raw, &[2], Spec::Full).as_deref(), Some("two\r\n"));
    // No delimiter at all: one part, the whole body.
    let raw = b"Content-Type: multipart/mixed; boundary=z\r\n\r\njust text\r\n";
    assert_eq!(sec(raw, &[1], Spec::Full).as_deref(), Some("just text\r\n"));
    assert!(
        bs(raw, false).starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 11 1) \"MIXED\")")
    );
    // Only a close-delimiter.
    let raw = b"Content-Type: multipart/alternative; boundary=e\r\n\r\n--e--\r\n";
    assert_eq!(
        bs(raw, false),
        "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) \"ALTERNATIVE\")"
    );
    // No boundary parameter: plain text.
    let raw = b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n";
    assert!(bs(raw, false).starts_with("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\")"));
    // A line that starts like a delimiter but goes on is text.
    let raw = b"Content-Type: multipart/mixed; boundary=uniq\r\n\r\n--uniq\r\nContent-Type: text/plain\r\n\r\n\
--uniq is mentioned here\r\n--uniq--\r\n";
    assert_eq!(sec(raw, &[1], Spec::Full).as_deref(), Some("--uniq is mentioned here"));
    // Transport padding after a delimiter is allowed; LF-only line ends work.
    let raw = b"Content-Type: multipart/mixed; boundary=p\n\n--p  \n\na\n--p\t\n\nb\n--p-- \n";
    assert_eq!(sec(raw, &[1], Spec::Full).as_deref(), Some("a"));
    assert_eq!(sec(raw, &[2], Spec::Full).as_deref(), Some("b"));
    // An empty part between two delimiters.
    let raw = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n--q\r\n\r\nx\r\n--q--";
    assert_eq!(sec(raw, &[1], Spec::Full).as_deref(), Some(""));
    assert_eq!(sec(raw, &[2], Spec::Full).as_deref(), Some("x"));
}

#[test]
fn bad_or_missing_content_types_default_to_text_plain() {
    for raw in [&b"Content-Type: garbage\r\n\r\nx"[..], b"Content-Type: text/\r\n\r\nx", b"\r\nx", b"x"] {
        assert!(
            bs(raw, false).starts_with("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1 1"),
            "{raw:?}"
        );
    }
    // RFC 2046 §5.1.5: in a digest, parts are messages by default.
    let raw = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: inner\r\n\r\nhello\r\n--d--\r\n";
    let out = bs(raw, false);
    assert!(
        out.starts_with(
            "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 23 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) "
        ),
        "{out}"
    );
}

#[test]
fn empty_messages() {
    assert_eq!(bs(b"", true), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0 NIL NIL NIL NIL)");
    for spec in [Spec::Full, Spec::Header, Spec::Text] {
        assert_eq!(sec(b"", &[], spec).as_deref(), Some(""));
    }
    assert_eq!(sec(b"", &[1], Spec::Full).as_deref(), Some(""));
    let fields = Spec::Fields { names: vec![b"Subject".to_vec()], not: false };
    assert_eq!(sec(b"", &[], fields.clone()).as_deref(), Some(""), "no body and no blank line: no blank line");
    assert_eq!(sec(b"Subject: x", &[], fields.clone()).as_deref(), Some("Subject: x\r\n"));
    assert_eq!(sec(b"Subject: x\r\n\r\n", &[], fields).as_deref(), Some("Subject: x\r\n\r\n"));
}

const ENCAPSULATED: &[u8] = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\r\nfirst\r\n\
--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: Inner <in@x>\r\nSubject: inner\r\n\
Content-Type: multipart/alternative; boundary=n\r\n\r\n--n\r\n\r\nplain\r\n--n\r\nContent-Type: text/html\r\n\r\n<b>h</b>\r\n--n--\r\n\
--m--\r\n";

#[test]
fn message_rfc822_parts() {
    let out = bs(ENCAPSULATED, false);
    let inner_len = sec(ENCAPSULATED, &[2], Spec::Full).unwrap().len();
    assert_eq!(inner_len, 148);
    assert!(
        out.contains(
            "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 148 (NIL \"inner\" ((\"Inner\" NIL \"in\" \"x\")) \
((\"Inner\" NIL \"in\" \"x\")) ((\"Inner\" NIL \"in\" \"x\")) NIL NIL NIL NIL NIL) \
((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 5 1)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 8 1) \"ALTERNATIVE\") 12)"
        ),
        "{out}"
    );
    assert_eq!(sec(ENCAPSULATED, &[2, 1], Spec::Full).as_deref(), Some("plain"));
    assert_eq!(sec(ENCAPSULATED, &[2, 2], Spec::Full).as_deref(), Some("<b>h</b>"));
    assert_eq!(sec(ENCAPSULATED, &[2, 2], Spec::Mime).as_deref(), Some("Content-Type: text/html\r\n\r\n"));
    assert_eq!(sec(ENCAPSULATED, &[2], Spec::Mime).as_deref(), Some("Content-Type: message/rfc822\r\n\r\n"));
    let h = sec(ENCAPSULATED, &[2], Spec::Header).unwrap();
    assert!(h.starts_with("From: Inner <in@x>\r\n") && h.ends_with("boundary=n\r\n\r\n"), "{h}");
    assert!(sec(ENCAPSULATED, &[2], Spec::Text).unwrap().starts_with("--n\r\n"));
    let f = Spec::Fields { names: vec![b"subject".to_vec()], not: false };
    assert_eq!(sec(ENCAPSULATED, &[2], f).as_deref(), Some("Subject: inner\r\n\r\n"));
    assert_eq!(sec(ENCAPSULATED, &[1], Spec::Header), None);
    assert_eq!(sec(ENCAPSULATED, &[2, 3], Spec::Full), None);
    // A single-part encapsulated message: 2.1 is its body.
    let raw = b"Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nbody";
    assert_eq!(sec(raw, &[1], Spec::Full).as_deref(), Some("Subject: s\r\n\r\nbody"));
    assert_eq!(sec(raw, &[1, 1], Spec::Full).as_deref(), Some("body"));
    assert_eq!(sec(raw, &[1, 1], Spec::Mime).as_deref(), Some("Subject: s\r\n\r\n"));
    assert_eq!(sec(raw, &[1], Spec::Text).as_deref(), Some("body"));
}

#[test]
fn hostile_nesting_and_part_counts_are_capped() {
    let mut raw = Vec::new();
    for i in 0..500 {
        raw.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\ndeep\r\n");
    let m = structure::parse(&raw);
    assert_eq!(part_count(&m), MAX_DEPTH as usize + 1);
    let out = bs(&raw, true);
    assert!(out.contains("\"APPLICATION\" \"OCTET-STREAM\""));

    let mut raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
    for _ in 0..(MAX_PARTS + 500) {
        raw.extend_from_slice(b"--x\r\n\r\n.\r\n");
    }
    let m = structure::parse(&raw);
    assert_eq!(part_count(&m), MAX_PARTS as usize);

    let mut raw = Vec::new();
    for _ in 0..200 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    assert_eq!(part_count(&structure::parse(&raw)), MAX_DEPTH as usize + 1);
}

#[test]
fn parsed_message_api() {
    let raw = "From: =?utf-8?q?J=C3=B6rg?= <joerg@x.de>, Team: b@y;\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n\
Date: Tue, 14 Nov 2023 23:13:20 +0100\r\nReferences: <a@x>\r\n <b@x>\r\nX-8bit: gr\u{fc}n\r\n\
Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nsch=F6n\r\n--z\r\nContent-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\r\nPHA+SGk8L3A+\r\n--z\r\nContent-Type: image/png\r\n\r\nxx\r\n--z--\r\n";
    let m = ParsedMessage::parse(raw.as_bytes());
    assert_eq!(m.header("subject").as_deref(), Some("caf\u{e9}"));
    assert_eq!(m.header("X-8BIT").as_deref(), Some("gr\u{fc}n"));
    assert_eq!(m.header("Nope"), None);
    assert_eq!(m.header_all("references").len(), 1);
    assert_eq!(m.message_ids("References"), ["a@x", "b@x"]);
    let from = m.addresses("From");
    assert_eq!(from.len(), 2);
    assert_eq!(from[0].name.as_deref(), Some("J\u{f6}rg"));
    assert_eq!((from[1].mailbox.as_str(), from[1].host.as_str()), ("b", "y"));
    assert_eq!(m.date().map(|d| d.to_timestamp()), Some(1_700_000_000));
    let parts = m.text_parts();
    assert_eq!(parts.len(), 2);
    assert_eq!((parts[0].subtype.as_str(), parts[0].text.as_str()), ("plain", "sch\u{f6}n"));
    assert_eq!(parts[1].text, "<p>Hi</p>");
    assert_eq!(parts[1].plain().trim(), "Hi");
    assert!(m.headers().iter().any(|(n, v)| n == "Subject" && v == "caf\u{e9}"));
    assert!(m.raw_header().ends_with(b"boundary=z\r\n\r\n"));
}

#[test]
fn address_lists_as_search_sees_them() {
    let raw = "From: =?utf-8?q?J=C3=B6rg?= <joerg@x.de>, Team: b@y, \"Q\" <c@z>;, undisclosed:;\r\n\
To: <user (comment)@ (comment) domain.org>\r\nTo: \"a b\"@x (Real\r\n Name), bare\r\nCc: (only a comment)\r\n\r\n";
    let m = ParsedMessage::parse(raw.as_bytes());
    assert_eq!(m.address_lists("from"), ["J\u{f6}rg <joerg@x.de>, Team: b@y, Q <c@z>;, undisclosed:;"]);
    assert_eq!(m.address_lists("TO"), ["user@domain.org", "Real Name <a b@x>, bare"]);
    assert_eq!(m.address_lists("Cc"), [""]);
    assert!(m.address_lists("Bcc").is_empty());
}

#[test]
fn unknown_transfer_encoding() {
    let raw = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n";
    let m = structure::parse(raw);
    assert!(binary(raw, &m, &[1]).is_err());
    assert!(check_binary(&m, &[1]).is_err());
    assert!(check_binary(&m, &[]).is_ok() && check_binary(&m, &[2]).is_ok());
    assert_eq!(binary(raw, &m, &[]).unwrap().unwrap().len(), raw.len());
    // SEARCH still sees the text as it is.
    assert_eq!(ParsedMessage::parse(raw).text_parts()[0].text, "begin 644 x\r\n");
}

#[test]
fn message_global_is_a_message_in_imap4rev2_only() {
    let raw = "Content-Type: message/global\r\n\r\nSubject: gr\u{fc}n\r\n\r\nx".as_bytes();
    let m = structure::parse(raw);
    let write = |rev2| {
        let mut out = Vec::new();
        write_body_structure(&mut out, &m.root, Form { extended: false, utf8: true, rev2 });
        String::from_utf8(out).unwrap()
    };
    assert_eq!(write(false), "(\"MESSAGE\" \"GLOBAL\" NIL NIL NIL \"7BIT\" 19)");
    assert_eq!(
        write(true),
        "(\"MESSAGE\" \"GLOBAL\" NIL NIL NIL \"7BIT\" 19 (NIL \"gr\u{fc}n\" NIL NIL NIL NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1 1) 3)"
    );
    assert_eq!(sec(raw, &[1, 1], Spec::Full).as_deref(), Some("x"));
}
