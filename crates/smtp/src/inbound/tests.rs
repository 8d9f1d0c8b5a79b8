//! The verdict table ([`decide`]) and the own-domain rules, without DNS;
//! the checks themselves are tested end to end in `tests/inbound.rs`.

use super::*;

fn facts() -> Facts {
    Facts {
        dmarc: DmarcResult::None,
        policy: Policy::None,
        spf: SpfResult::None,
        spf_domain: "remote.test".into(),
        dkim_pass: Vec::new(),
        dkim_temporary: false,
    }
}

fn temp() -> Error {
    Error::Dns(mail_auth::DnsError::Resolver("timeout".into()))
}

#[test]
fn verdicts() {
    let fail = || DmarcResult::Fail(Error::NotAligned);
    let none: &[String] = &[];
    let ours = &["example.org".to_owned()];
    let cases: Vec<(&str, Facts, &[String], Verdict)> = vec![
        ("nothing published: delivered", facts(), none, Verdict::Deliver),
        (
            "dmarc reject",
            Facts { dmarc: fail(), policy: Policy::Reject, ..facts() },
            none,
            Verdict::Refuse(DMARC_REJECT),
        ),
        ("dmarc quarantine", Facts { dmarc: fail(), policy: Policy::Quarantine, ..facts() }, none, Verdict::Quarantine),
        ("dmarc p=none", Facts { dmarc: fail(), policy: Policy::None, ..facts() }, none, Verdict::Deliver),
        ("spf fail alone", Facts { spf: SpfResult::Fail, ..facts() }, none, Verdict::Refuse(SPF_FAIL)),
        (
            "spf fail, dkim pass (forwarded)",
            Facts { spf: SpfResult::Fail, dkim_pass: vec!["remote.test".into()], ..facts() },
            none,
            Verdict::Deliver,
        ),
        ("spf softfail", Facts { spf: SpfResult::SoftFail, ..facts() }, none, Verdict::Deliver),
        ("spf neutral", Facts { spf: SpfResult::Neutral, ..facts() }, none, Verdict::Deliver),
        ("spf permerror", Facts { spf: SpfResult::PermError, ..facts() }, none, Verdict::Deliver),
        ("spf temperror", Facts { spf: SpfResult::TempError, ..facts() }, none, Verdict::Refuse(TEMPORARY)),
        ("dkim temperror", Facts { dkim_temporary: true, ..facts() }, none, Verdict::Refuse(TEMPORARY)),
        (
            "dmarc temperror",
            Facts { dmarc: DmarcResult::TempError(temp()), ..facts() },
            none,
            Verdict::Refuse(TEMPORARY),
        ),
        (
            "a temperror beside a dmarc pass changes nothing",
            Facts { dmarc: DmarcResult::Pass, dkim_temporary: true, dkim_pass: vec!["remote.test".into()], ..facts() },
            none,
            Verdict::Deliver,
        ),
        ("own domain, nothing passes", facts(), ours, Verdict::Refuse(OWN_DOMAIN)),
        (
            "own domain, spf pass for another domain",
            Facts { spf: SpfResult::Pass, ..facts() },
            ours,
            Verdict::Refuse(OWN_DOMAIN),
        ),
        (
            "own domain, aligned spf pass",
            Facts { spf: SpfResult::Pass, spf_domain: "bounces.example.org".into(), ..facts() },
            ours,
            Verdict::Deliver,
        ),
        (
            "own domain, aligned dkim pass",
            Facts { dkim_pass: vec!["Example.ORG".into()], ..facts() },
            ours,
            Verdict::Deliver,
        ),
        (
            "own domain, unproven with a temperror: try later",
            Facts { spf: SpfResult::TempError, spf_domain: "example.org".into(), ..facts() },
            ours,
            Verdict::Refuse(TEMPORARY),
        ),
        (
            "dmarc reject beats everything",
            Facts { dmarc: fail(), policy: Policy::Reject, dkim_temporary: true, ..facts() },
            ours,
            Verdict::Refuse(DMARC_REJECT),
        ),
    ];
    for (name, f, claims, want) in cases {
        assert_eq!(decide(&f, claims), want, "{name}");
    }
}

#[test]
fn replies_have_the_codes_the_issue_asks_for() {
    for (e, code, enhanced) in [
        (DMARC_REJECT, 550, Enhanced(5, 7, 1)),
        (OWN_DOMAIN, 550, Enhanced(5, 7, 1)),
        (TEMPORARY, 451, Enhanced(4, 7, 1)),
        (SPF_FAIL, 550, Enhanced(5, 7, 23)),
    ] {
        assert_eq!((e.code, e.enhanced), (code, enhanced), "{e}");
    }
}

#[test]
fn own_claims_come_from_mail_from_and_from_including_subdomains() {
    let own = |d: &str| -> Result<bool, SmtpError> { Ok(d == "example.org") };
    let from = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(own_claims("", &from(&["a@remote.test"]), &own).unwrap(), Vec::<String>::new());
    assert_eq!(own_claims("x@Example.Org", &from(&[]), &own).unwrap(), ["example.org"]);
    assert_eq!(
        own_claims("x@remote.test", &from(&["a@mail.example.org", "b@example.org"]), &own).unwrap(),
        ["mail.example.org", "example.org"]
    );
    assert_eq!(own_claims("x@org", &from(&["nodomain"]), &own).unwrap(), Vec::<String>::new());
    let broken = |_: &str| -> Result<bool, SmtpError> { Err(crate::reply::LOCAL_ERROR) };
    assert!(own_claims("x@example.org", &[], &broken).is_err());
}

#[test]
fn alignment_is_relaxed_within_one_tree() {
    assert!(aligned("example.org", "EXAMPLE.org."));
    assert!(aligned("mail.example.org", "example.org"));
    assert!(aligned("example.org", "a.b.example.org"));
    assert!(!aligned("badexample.org", "example.org"));
    assert!(!aligned("example.org.evil", "example.org"));
}

/// Only DKIM and ARC fields make a staged message be read whole.
#[test]
fn the_body_is_needed_for_signatures_only() {
    let cases: &[(&[u8], bool)] = &[
        (b"From: a@b.test\r\nSubject: x\r\n\r\n", false),
        (b"From: a@b.test\r\ndkim-signature: v=1; d=b.test\r\n\r\n", true),
        (b"DKIM-Signature : v=1\r\n\r\n", true),
        (b"ARC-Seal: i=1\r\n\r\n", true),
        (b"arc-message-signature: i=1\r\n\r\n", true),
        (b"X-DKIM-Signature: no\r\nSubject: DKIM-Signature: no\r\n\tARC-Seal: folded, not a field\r\n\r\n", false),
        (b"ARC: not an ARC field\r\n\r\n", false),
    ];
    for (header, want) in cases {
        assert_eq!(needs_body(header), *want, "{}", String::from_utf8_lossy(header));
    }
}
