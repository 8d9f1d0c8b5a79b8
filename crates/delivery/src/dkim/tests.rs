use super::*;

const MESSAGE: &[u8] = b"Received: from laptop by mail.a.test\r\nFrom: Alice <alice@a.test>\r\nTo: bob@b.test\r\n\
Subject: hi\r\nList-Id: <x.a.test>\r\nX-Mailer: test\r\n\r\nHello.\r\n";

fn dkim() -> (tempfile::TempDir, Dkim) {
    let dir = tempfile::tempdir().unwrap();
    let dkim = Dkim::new(KeyStore::new(dir.path().join("dkim")));
    (dir, dkim)
}

/// The tag list of each `DKIM-Signature` field in `headers`, unfolded.
fn signatures(headers: &[u8]) -> Vec<HashMap<String, String>> {
    let text = String::from_utf8(headers.to_vec()).unwrap();
    let unfolded = text.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .map(|line| {
            let value = line.strip_prefix("DKIM-Signature: ").unwrap();
            value
                .split(';')
                .filter_map(|t| t.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.split_whitespace().collect::<String>()))
                .collect()
        })
        .collect()
}

#[test]
fn present_headers_are_signed_and_the_key_ones_oversigned() {
    let h = signed_headers(MESSAGE);
    assert_eq!(
        h,
        ["From", "Subject", "To", "List-Id", "From", "To", "Subject", "Date", "Message-ID"],
        "Received and X-Mailer are not signed; absent ones only where oversigned"
    );
}

#[test]
fn both_algorithms_sign_for_the_from_domain() {
    let (_dir, dkim) = dkim();
    assert_eq!(dkim.sign(MESSAGE, "alice@a.test").unwrap(), None, "no keys, no signature");
    dkim.ensure("a.test").unwrap();
    let headers = dkim.sign(MESSAGE, "alice@a.test").unwrap().unwrap();
    assert!(headers.ends_with(b";\r\n"), "{}", String::from_utf8_lossy(&headers));
    for line in String::from_utf8_lossy(&headers).split("\r\n") {
        // mail-auth folds near 78; its first line runs a few over, far below 998.
        assert!(line.len() <= 100, "folded: {line:?}");
    }
    let sigs = signatures(&headers);
    assert_eq!(sigs.len(), 2);
    let generation = dkim.keys().current("a.test").unwrap().unwrap().name;
    for (sig, (a, s)) in sigs.iter().zip([("ed25519-sha256", "ed"), ("rsa-sha256", "rsa")]) {
        assert_eq!(sig["a"], a);
        assert_eq!(sig["s"], format!("{s}-{generation}"));
        assert_eq!(sig["d"], "a.test");
        assert_eq!(sig["c"], "relaxed/relaxed");
        // Every occurrence bottom-up, then the oversigned extra ones.
        assert_eq!(sig["h"], "List-Id:Subject:To:From:From:To:Subject:Date:Message-ID");
    }
}

#[test]
fn the_signing_domain_falls_back_to_parents_and_the_envelope() {
    let (_dir, dkim) = dkim();
    dkim.ensure("a.test").unwrap();
    let dsn = b"From: Mail Delivery System <MAILER-DAEMON@mail.a.test>\r\nTo: x@b.test\r\n\r\nreport\r\n";
    let d = |h: Option<Vec<u8>>| signatures(&h.unwrap())[0]["d"].clone();
    assert_eq!(d(dkim.sign(dsn, "").unwrap()), "a.test", "host name under our domain");
    let foreign = b"From: alice@elsewhere.test\r\n\r\nx\r\n";
    assert_eq!(d(dkim.sign(foreign, "alice@a.test").unwrap()), "a.test", "envelope sender's domain");
    assert_eq!(dkim.sign(foreign, "").unwrap(), None);
    assert_eq!(dkim.sign(b"From: x@test\r\n\r\n", "").unwrap(), None, "never a top-level domain");
}

#[test]
fn activation_switches_the_selector_at_once() {
    let (_dir, dkim) = dkim();
    dkim.ensure("a.test").unwrap();
    let before = signatures(&dkim.sign(MESSAGE, "").unwrap().unwrap())[0]["s"].clone();
    let Change::Created { generation, .. } = dkim.rotate("a.test").unwrap() else { panic!() };
    let during = signatures(&dkim.sign(MESSAGE, "").unwrap().unwrap())[0]["s"].clone();
    assert_eq!(before, during, "next does not sign");
    dkim.activate("a.test").unwrap();
    let after = signatures(&dkim.sign(MESSAGE, "").unwrap().unwrap())[0]["s"].clone();
    assert_eq!(after, format!("ed-{generation}"));
}
