use super::*;
use crate::testing::{TestServer, check};

/// A message for the algorithm alone: number = sequence number = `n`.
fn m(n: u32, id: Option<&str>, refs: &[&str], reply_to: &[&str], subject: &str, sent: i64) -> Msg {
    let ids = |v: &[&str]| v.iter().map(ToString::to_string).collect();
    Msg {
        number: n,
        seq: SeqNum(n),
        sent,
        fields: Fields {
            subject: subject.into(),
            message_id: id.map(Into::into),
            references: ids(refs),
            in_reply_to: ids(reply_to),
            ..Fields::default()
        },
    }
}

fn render(f: &Forest, msgs: &[Msg]) -> String {
    let mut out = String::new();
    format(f, msgs, &mut out);
    out
}

const HOUR: i64 = 3600;

/// Meeting: 1 <- 2 <- 3 and 1 <- 8; Lunch: 4 and a reply 7 without
/// references; Party: 5 and 6 both refer to a message we do not have.
fn sample() -> Vec<Msg> {
    vec![
        m(1, Some("1@x"), &[], &[], "Meeting", 8 * HOUR),
        m(2, Some("2@x"), &[], &["1@x"], "Re: Meeting", 24 * HOUR),
        m(3, Some("3@x"), &["1@x", "2@x"], &[], "Re: Meeting", 48 * HOUR),
        m(4, Some("4@x"), &[], &[], "Lunch", 12 * HOUR),
        m(5, Some("5@x"), &["missing@x"], &[], "Re: Party", 72 * HOUR),
        m(6, Some("6@x"), &["missing@x"], &[], "Re: Party", 96 * HOUR),
        m(7, Some("7@x"), &[], &[], "Re: Lunch", 120 * HOUR),
        m(8, Some("8@x"), &["1@x"], &[], "Re: Meeting", 36 * HOUR),
    ]
}

#[test]
fn references_threads_as_rfc5256_says() {
    let msgs = sample();
    assert_eq!(render(&references(&msgs), &msgs), "(1 (2 3)(8))(4 7)((5)(6))");
}

#[test]
fn ordered_subject_threads() {
    let msgs = sample();
    assert_eq!(render(&ordered_subject(&msgs), &msgs), "(1 (2)(8)(3))(4 7)(5 6)");
}

#[test]
fn duplicates_missing_ids_and_loops() {
    let msgs = vec![
        // A and B claim each other as parent: the later link would loop.
        m(1, Some("a@x"), &["b@x"], &[], "one", 1),
        m(2, Some("b@x"), &["a@x"], &[], "two", 2),
        // A duplicate id and a missing one stand alone.
        m(3, Some("a@x"), &[], &[], "three", 3),
        m(4, None, &[], &[], "four", 4),
        // A message referring to itself.
        m(5, Some("self@x"), &["self@x"], &[], "five", 5),
    ];
    // Message 1 was linked below B first; message 2's reference back is dropped.
    assert_eq!(render(&references(&msgs), &msgs), "(2 1)(3)(4)(5)");
}

#[test]
fn subjects_merge_under_a_dummy_when_neither_is_a_reply() {
    let msgs = vec![
        m(1, Some("1@x"), &[], &[], "Status", 1),
        m(2, Some("2@x"), &[], &[], "status", 2),
        m(3, Some("3@x"), &["2@x"], &[], "Re: Status", 3),
        m(4, Some("4@x"), &[], &[], "", 4),
    ];
    assert_eq!(render(&references(&msgs), &msgs), "((1)(2 3))(4)");
}

#[test]
fn a_very_long_chain_does_not_recurse() {
    let n = 20_000;
    let msgs: Vec<Msg> = (1..=n)
        .map(|i| {
            let parent = format!("{}@x", i - 1);
            let refs: Vec<&str> = if i > 1 { vec![parent.as_str()] } else { vec![] };
            m(i, Some(&format!("{i}@x")), &refs, &[], "chain", i64::from(i))
        })
        .collect();
    let started = std::time::Instant::now();
    let text = render(&references(&msgs), &msgs);
    assert!(text.starts_with("(1 2 3 ") && text.ends_with(&format!(" {n})")), "{}", &text[..40]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(render(&ordered_subject(&msgs), &msgs).starts_with("(1 (2)(3)(4)"));
}

#[tokio::test]
async fn thread_commands_over_a_session() {
    let srv = TestServer::start().await;
    let raw = [
        "Message-ID: <1@x>\r\nSubject: Meeting\r\nDate: Mon, 1 Jan 2024 08:00:00 +0000\r\n\r\nx\r\n",
        "Message-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\nSubject: Re: Meeting\r\nDate: Tue, 2 Jan 2024 08:00:00 +0000\r\n\r\nx\r\n",
        "Message-ID: <3@x>\r\nSubject: Lunch\r\nDate: Mon, 1 Jan 2024 12:00:00 +0000\r\n\r\nx\r\n",
        "Message-ID: <4@x>\r\nReferences: <1@x>\r\n <2@x>\r\nSubject: Re: Meeting\r\nDate: Wed, 3 Jan 2024 08:00:00 +0000\r\n\r\nx\r\n",
    ];
    for r in raw {
        srv.deliver(r.as_bytes()).await;
    }
    let mut c = srv.connect().await;
    c.line().await;
    c.login(&srv).await;
    c.select("INBOX").await;
    check(
        &mut c,
        "C: t1 THREAD REFERENCES UTF-8 ALL
         S: * THREAD (1 2 4)(3)
         S: t1 OK THREAD completed
         C: t2 UID THREAD ORDEREDSUBJECT US-ASCII ALL
         S: * THREAD (1 (2)(4))(3)
         S: t2 OK UID THREAD completed
         C: t3 THREAD REFERENCES UTF-8 SUBJECT nothing
         S: * THREAD
         S: t3 OK THREAD completed
         C: t4 THREAD REFERENCES UTF-8 NOT 2
         S: * THREAD (1 4)(3)
         S: t4 OK THREAD completed
         C: t5 THREAD JWZ UTF-8 ALL
         S: t5 BAD Syntax error in THREAD arguments near ...",
    )
    .await;
}
