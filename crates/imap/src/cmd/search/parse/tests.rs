use super::*;
use Bound::{Num, Star};

fn ok(line: &str) -> Request {
    let (tag, r) = parse(format!("{line}\r\n").as_bytes()).expect("a SEARCH/SORT/THREAD line");
    assert_eq!(tag, "t");
    r.unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn bad(line: &str) -> String {
    let (_, r) = parse(format!("{line}\r\n").as_bytes()).expect("a SEARCH/SORT/THREAD line");
    match r {
        Err(ImapError::Bad(text)) => text,
        other => panic!("{line}: expected BAD, got {other:?}"),
    }
}

fn key(keys: &str) -> Key {
    ok(&format!("t SEARCH {keys}")).key
}

fn flag(name: &str, set: bool) -> Key {
    Key::Flag(name.into(), set)
}

fn day(year: i32, month: u8, day: u8) -> Day {
    Day { year, month, day }
}

#[test]
fn other_commands_are_not_ours() {
    assert!(parse(b"t FETCH 1 FLAGS\r\n").is_none());
    assert!(parse(b"t UID FETCH 1 FLAGS\r\n").is_none());
    assert!(parse(b"t SEARCHX ALL\r\n").is_none());
    assert!(parse(b"SEARCH\r\n").is_none());
}

#[test]
fn every_rfc3501_key() {
    let cases: Vec<(&str, Key)> = vec![
        ("ALL", Key::All),
        ("ANSWERED", flag("\\Answered", true)),
        ("BCC \"a b\"", Key::Address("bcc", b"a b".to_vec())),
        ("BEFORE 1-Feb-1994", Key::Internal(When::Before, day(1994, 2, 1))),
        ("BODY word", Key::Body(b"word".to_vec())),
        ("CC x", Key::Address("cc", b"x".to_vec())),
        ("DELETED", flag("\\Deleted", true)),
        ("DRAFT", flag("\\Draft", true)),
        ("FLAGGED", flag("\\Flagged", true)),
        ("FROM smith", Key::Address("from", b"smith".to_vec())),
        ("HEADER X-Mailer \"\"", Key::Header("X-Mailer".into(), Vec::new())),
        ("KEYWORD $Chat", flag("$Chat", true)),
        ("LARGER 5000000000", Key::Larger(5_000_000_000)),
        ("NEW", Key::And(vec![Key::Recent, flag("\\Seen", false)])),
        ("NOT SEEN", Key::Not(Box::new(flag("\\Seen", true)))),
        ("OLD", Key::Not(Box::new(Key::Recent))),
        ("ON \"29-Feb-2024\"", Key::Internal(When::On, day(2024, 2, 29))),
        ("OR SEEN FLAGGED", Key::Or(Box::new(flag("\\Seen", true)), Box::new(flag("\\Flagged", true)))),
        ("RECENT", Key::Recent),
        ("SEEN", flag("\\Seen", true)),
        ("SENTBEFORE 1-jan-2000", Key::Sent(When::Before, day(2000, 1, 1))),
        ("SENTON 01-Jan-2000", Key::Sent(When::On, day(2000, 1, 1))),
        ("SENTSINCE 31-Dec-1999", Key::Sent(When::Since, day(1999, 12, 31))),
        ("SINCE 1-Jan-2000", Key::Internal(When::Since, day(2000, 1, 1))),
        ("SMALLER 100", Key::Smaller(100)),
        ("SUBJECT {5}\r\nhello", Key::Header("subject".into(), b"hello".to_vec())),
        ("TEXT {3+}\r\na\"b", Key::Text(b"a\"b".to_vec())),
        ("TO \"q\\\"uote\"", Key::Address("to", b"q\"uote".to_vec())),
        ("UID 1:*", Key::Uid(SeqSet::Ranges(vec![(Num(1), Star)]))),
        ("UNANSWERED", flag("\\Answered", false)),
        ("UNDELETED", flag("\\Deleted", false)),
        ("UNDRAFT", flag("\\Draft", false)),
        ("UNFLAGGED", flag("\\Flagged", false)),
        ("UNKEYWORD Junk", flag("Junk", false)),
        ("UNSEEN", flag("\\Seen", false)),
        ("2,4:7,*:9", Key::Seq(SeqSet::Ranges(vec![(Num(2), Num(2)), (Num(4), Num(7)), (Star, Num(9))]))),
        ("$", Key::Seq(SeqSet::Saved)),
        ("UID $", Key::Uid(SeqSet::Saved)),
        ("OLDER 3600", Key::Older(3600)),
        ("YOUNGER 60", Key::Younger(60)),
        ("MODSEQ 620162338", Key::ModSeq(ModSeq(620_162_338))),
        ("MODSEQ \"/flags/\\\\draft\" all 620162338", Key::ModSeq(ModSeq(620_162_338))),
        ("seen", flag("\\Seen", true)),
    ];
    for (text, want) in cases {
        assert_eq!(key(text), want, "{text}");
    }
}

#[test]
fn lists_nesting_and_charset() {
    let r = ok("t UID SEARCH CHARSET UTF-8 (OR FROM a (TO b NOT CC c)) UNSEEN");
    assert!(r.uid);
    assert_eq!(r.charset.as_deref(), Some(&b"UTF-8"[..]));
    let want = Key::And(vec![
        Key::Or(
            Box::new(Key::Address("from", b"a".to_vec())),
            Box::new(Key::And(vec![
                Key::Address("to", b"b".to_vec()),
                Key::Not(Box::new(Key::Address("cc", b"c".to_vec()))),
            ])),
        ),
        flag("\\Seen", false),
    ]);
    assert_eq!(r.key, want);
    assert_eq!(ok("t search charset \"us-ascii\" all").charset.as_deref(), Some(&b"us-ascii"[..]));
    // 8-bit UTF-8 in a quoted string.
    assert_eq!(key("SUBJECT \"Gr\u{fc}\u{df}e\""), Key::Header("subject".into(), "Grüße".as_bytes().to_vec()));
}

#[test]
fn return_options() {
    let r = ok("t SEARCH RETURN (MIN MAX ALL COUNT SAVE) UNSEEN");
    use ReturnOpt::*;
    assert_eq!(r.kind, Kind::Search(Some(vec![Min, Max, All, Count, Save])));
    assert_eq!(ok("t UID SEARCH RETURN () ALL").kind, Kind::Search(Some(vec![])));
    assert_eq!(ok("t SEARCH RETURN (save) CHARSET UTF-8 ALL").kind, Kind::Search(Some(vec![Save])));
    assert_eq!(ok("t SEARCH ALL").kind, Kind::Search(None));
    assert!(bad("t SEARCH RETURN (PARTIAL 1:5) ALL").starts_with("Syntax error in SEARCH arguments"));
}

#[test]
fn sort_and_thread() {
    let r = ok("t UID SORT (REVERSE DATE subject DISPLAYFROM) UTF-8 SINCE 1-Jan-2020");
    assert!(r.uid);
    assert_eq!(
        r.kind,
        Kind::Sort(vec![(true, SortKey::Date), (false, SortKey::Subject), (false, SortKey::DisplayFrom)])
    );
    assert_eq!(r.charset.as_deref(), Some(&b"UTF-8"[..]));
    assert_eq!(ok("t THREAD REFERENCES US-ASCII ALL").kind, Kind::Thread(ThreadAlg::References));
    assert_eq!(ok("t THREAD orderedsubject UTF-8 ALL").kind, Kind::Thread(ThreadAlg::OrderedSubject));
    assert!(bad("t SORT (ARRIVAL) ALL").starts_with("Syntax error in SORT"));
    assert!(bad("t SORT () UTF-8 ALL").starts_with("Syntax error in SORT"));
    assert!(bad("t THREAD JWZ UTF-8 ALL").starts_with("Syntax error in THREAD"));
}

#[test]
fn syntax_errors_say_where() {
    assert_eq!(bad("t SEARCH"), "Syntax error in SEARCH arguments at end of line");
    assert_eq!(bad("t SEARCH FOO"), "Syntax error in SEARCH arguments near \"FOO\"");
    assert!(bad("t SEARCH BEFORE 30-Feb-2024").starts_with("Syntax error"));
    assert!(bad("t SEARCH BEFORE 1-Foo-2024").starts_with("Syntax error"));
    assert!(bad("t SEARCH 0").starts_with("Syntax error"));
    assert!(bad("t SEARCH 1,").starts_with("Syntax error"));
    assert!(bad("t SEARCH 1:2,$").starts_with("Syntax error"));
    assert!(bad("t SEARCH (ALL").starts_with("Syntax error"));
    assert!(bad("t SEARCH ALL  SEEN").starts_with("Syntax error"));
    assert!(bad("t SEARCH SUBJECT \"unterminated").starts_with("Syntax error"));
    assert!(bad("t SEARCH SUBJECT {10}\r\nshort").starts_with("Syntax error"));
    assert!(bad("t SEARCH OLDER 0").starts_with("Syntax error"));
    assert!(bad("t SEARCH 4294967296").starts_with("Syntax error"));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("t SEARCH {}ALL{}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(bad(&deep), "Search keys nested too deeply");
    let nots = format!("t SEARCH {}ALL", "NOT ".repeat(2000));
    assert_eq!(bad(&nots), "Search keys nested too deeply");
    // Well within the limit.
    let fine = format!("t SEARCH {}ALL{}", "(".repeat(30), ")".repeat(30));
    assert_eq!(key(&fine[9..]), Key::All);
}
