use super::*;

const TARGET: Target<'static> = Target { folder: "COI/Chats", uidvalidity: 1_795_582_462, uid: Uid(1) };

fn r37_message() -> Vec<u8> {
    concat!(
        "From: Alice Example <alice@example.test>\r\n",
        "To: bob@example.test\r\n",
        "Subject: Chat: Hello\r\n",
        "Message-ID: <chat$group.4321dcba1234.S2571BC@example.test>\r\n",
        "Date: Wed, 04 Dec 2019 14:51:37 +0000\r\n",
        "Chat-Version: 1.0\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "\r\n",
        "hello group\n"
    )
    .as_bytes()
    .to_vec()
}

fn build_str(raw: &[u8]) -> String {
    String::from_utf8(build(raw, &TARGET).unwrap()).unwrap()
}

fn build_json(raw: &[u8]) -> serde_json::Map<String, Value> {
    let out = build(raw, &TARGET).unwrap();
    assert!(out.len() <= MAX_PLAINTEXT);
    match serde_json::from_slice(&out).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn with_body(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!("From: a@example.test\r\nSubject: s\r\n{headers}\r\n").into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[test]
fn r37_observed_example() {
    let want = concat!(
        r#"{"folder":"COI/Chats","uidvalidity":1795582462,"uid":1,"date":"2019-12-04T14:51:37+00:00","#,
        r#""from-email":"alice@example.test","from-name":"Alice Example","subject":"Chat: Hello","#,
        r#""msg-id":"<chat$group.4321dcba1234.S2571BC@example.test>","group-id":"4321dcba1234","#,
        r#""content":"hello group\n"}"#
    );
    assert_eq!(build_str(&r37_message()), want);
    let lf = String::from_utf8(r37_message()).unwrap().replace("\r\n", "\n");
    assert_eq!(build_str(lf.as_bytes()), want);
}

#[test]
fn date_converted_to_utc_or_omitted() {
    let raw = String::from_utf8(r37_message()).unwrap();
    let no_date = raw.replace("Date: Wed, 04 Dec 2019 14:51:37 +0000\r\n", "");
    let map = build_json(no_date.as_bytes());
    assert!(!map.contains_key("date"));
    assert_eq!(map["uid"], 1);
    for bad in ["Date: yesterday", "Date:", "Date: \u{ff}\u{fe}", "Date: Wed, 04 Foo 2019 14:51:37 +0000"] {
        let map = build_json(raw.replace("Date: Wed, 04 Dec 2019 14:51:37 +0000", bad).as_bytes());
        assert!(!map.contains_key("date"), "{bad}");
    }
    let east = raw.replace("14:51:37 +0000", "16:51:37 +0200");
    assert_eq!(build_json(east.as_bytes())["date"], "2019-12-04T14:51:37+00:00");
    let west = raw.replace("Wed, 04 Dec 2019 14:51:37 +0000", "Tue, 03 Dec 2019 21:51:37 -1700");
    assert_eq!(build_json(west.as_bytes())["date"], "2019-12-04T14:51:37+00:00");
    let folded = raw.replace("Date: Wed, 04 Dec 2019", "Date: Wed,\r\n 04 Dec 2019");
    assert_eq!(build_json(folded.as_bytes())["date"], "2019-12-04T14:51:37+00:00");
}

#[test]
fn date_outside_four_digit_years_after_the_epoch_is_omitted() {
    let raw = String::from_utf8(r37_message()).unwrap();
    let date = |d: &str| {
        let map = build_json(raw.replace("Wed, 04 Dec 2019 14:51:37 +0000", d).as_bytes());
        map.get("date").map(|v| v.as_str().unwrap().to_owned())
    };
    // Year 0 (printed "-001-12-31T..." after a positive offset), year 10000 after the
    // conversion to UTC, and dates before the epoch.
    for bad in [
        "Sat, 01 Jan 0000 00:00:00 +0100",
        "Sat, 01 Jan 0000 12:00:00 +0000",
        "Fri, 31 Dec 9999 23:59:59 -0100",
        "Fri, 31 Dec 9999 23:59:60 +0000",
        "Thu, 01 Jan 1970 00:30:00 +0100",
        "Mon, 01 Jan 1900 00:00:00 +0000",
    ] {
        assert_eq!(date(bad), None, "{bad}");
    }
    assert_eq!(date("Thu, 01 Jan 1970 00:00:00 +0000").as_deref(), Some("1970-01-01T00:00:00+00:00"));
    assert_eq!(date("Fri, 31 Dec 9999 23:59:59 +0000").as_deref(), Some("9999-12-31T23:59:59+00:00"));
    assert_eq!(date("Sat, 01 Jan 10000 00:00:00 +0000"), None, "five-digit years do not parse");
    // Whatever the header, a present `date` is always RFC 3339 with a four-digit year.
    for d in ["Fri, 31 Dec 9999 23:59:59 +2359", "Thu, 01 Jan 1970 00:00:00 -2359"] {
        let got = date(d).unwrap();
        assert_eq!(got.len(), 25, "{got}");
        assert!(got.as_bytes()[..4].iter().all(u8::is_ascii_digit), "{got}");
    }
}

#[test]
fn date_forms() {
    let utc = |d: &str| parse_date(d.as_bytes()).map(rfc3339);
    let want = Some("2019-12-04T14:51:37+00:00".to_owned());
    for d in [
        "Wed, 04 Dec 2019 14:51:37 +0000",
        "Wed, 4 Dec 2019 14:51:37 +0000",
        "04 Dec 2019 14:51:37 +0000",
        "wed, 04 DEC 2019 14:51:37 -0000",
        "Wed, 04 Dec 2019 14:51:37 GMT",
        "Wed, 04 Dec 2019 14:51:37 UT",
        "Wed, 04 Dec 2019 14:51:37 Z",
        "Wed, 04 Dec 2019 14:51:37",
        "Wed, 04 Dec 19 14:51:37 +0000",
        "Wed, 04 Dec 119 14:51:37 +0000",
        "Wed, 04 Dec 2019 09:51:37 EST",
        "Wed, 04 Dec 2019 06:51:37 PST",
        "Wed, 04 Dec 2019 15:51:37 +0100 (CET)",
        "Wed (comment), 04 Dec 2019 14:51:37 +0000",
        "Wed,\r\n 04 Dec 2019 14:51:37 +0000",
        "Thu, 05 Dec 2019 00:21:37 +0930",
    ] {
        assert_eq!(utc(d), want, "{d}");
    }
    assert_eq!(utc("Wed, 04 Dec 2019 14:51 +0000").as_deref(), Some("2019-12-04T14:51:00+00:00"));
    assert_eq!(utc("Thu, 01 Jan 1970 00:00:00 +0000").as_deref(), Some("1970-01-01T00:00:00+00:00"));
    assert_eq!(utc("Thu, 01 Jan 1970 00:30:00 +0100").as_deref(), Some("1969-12-31T23:30:00+00:00"));
    assert_eq!(utc("Thu, 29 Feb 2024 12:00:00 +0000").as_deref(), Some("2024-02-29T12:00:00+00:00"));
    assert_eq!(utc("Sun, 31 Dec 2023 23:59:59 -0100").as_deref(), Some("2024-01-01T00:59:59+00:00"));
    for bad in [
        "",
        "yesterday",
        "Wed, 04 Foo 2019 14:51:37 +0000",
        "Wed, 31 Nov 2019 14:51:37 +0000",
        "Thu, 29 Feb 2023 12:00:00 +0000",
        "Wed, 00 Dec 2019 14:51:37 +0000",
        "Wed, 04 Dec 2019 24:00:00 +0000",
        "Wed, 04 Dec 2019 14:60:00 +0000",
        "Wed, 04 Dec 2019 14:51:37 +00",
        "Wed, 04 Dec 2019 14:51:37 +0060",
        "Wed, 04 Dec 2019 14:51:37:00 +0000",
        "Wed, 04 Dec 20190 14:51:37 +0000",
        "Wed, 04 Dec 2019 +0000",
        "Wed, 004 Dec 2019 14:51:37 +0000",
        "Wed, 04 Dec 2019 1451 +0000",
        "Wed, 04 Dec 2019 14:51:37 +x000",
        "Wed, 04 Dec 2019 14:51:37 +٠٠٠٠",
        "2019-12-04T14:51:37Z",
    ] {
        assert_eq!(utc(bad), None, "{bad}");
    }
}

#[test]
fn long_values_cut_with_ellipsis() {
    let raw = |subject: &str| format!("Subject: {subject}\r\n\r\n").into_bytes();
    let map = build_json(&raw(&"x".repeat(150)));
    assert_eq!(map["subject"], format!("{}…", "x".repeat(100)));
    let map = build_json(&raw(&"x".repeat(100)));
    assert_eq!(map["subject"], "x".repeat(100));
    let map = build_json(&raw(&"é".repeat(80)));
    assert_eq!(map["subject"], format!("{}…", "é".repeat(50)));
    let map = build_json(&raw(&format!("a{}", "é".repeat(80))));
    assert_eq!(map["subject"], format!("a{}…", "é".repeat(49)));
    let map = build_json(&raw(&"\"".repeat(60)));
    assert_eq!(map["subject"], format!("{}…", "\"".repeat(50)));
    let map = build_json(&raw(&format!("a{}", "\u{1}".repeat(30))));
    assert_eq!(map["subject"], format!("a{}…", "\u{1}".repeat(16)));
    let long_id = format!("<{}@x>", "i".repeat(200));
    let map = build_json(&with_body(&format!("Message-ID: {long_id}\r\n"), b""));
    assert_eq!(map["msg-id"], format!("{}…", &long_id[..100]));
    let long_name = "N".repeat(120);
    let map = build_json(format!("From: {long_name} <a@example.test>\r\n\r\n").as_bytes());
    assert_eq!(map["from-name"], format!("{}…", "N".repeat(100)));
}

#[test]
fn encoded_words_decoded() {
    let raw = concat!(
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.test>\r\n",
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?utf-8?q?_aus_K=C3=B6ln?=\r\n",
        "\r\n"
    );
    let map = build_json(raw.as_bytes());
    assert_eq!(map["from-name"], "Jürgen Müller");
    assert_eq!(map["from-email"], "juergen@example.test");
    assert_eq!(map["subject"], "Grüße aus Köln");
    let raw = "From: \"Quoted, Name\" <q@example.test>\r\nSubject: plain ä\r\n\r\n";
    let map = build_json(raw.as_bytes());
    assert_eq!(map["from-name"], "Quoted, Name");
    assert_eq!(map["subject"], "plain ä");
}

#[test]
fn from_variants() {
    let map = build_json(b"From: bare@example.test\r\n\r\n");
    assert_eq!(map["from-email"], "bare@example.test");
    assert!(!map.contains_key("from-name"));
    let map = build_json(b"From: <angle@example.test>\r\n\r\n");
    assert_eq!(map["from-email"], "angle@example.test");
    assert!(!map.contains_key("from-name"));
    let map = build_json(b"Subject: x\r\n\r\n");
    assert!(!map.contains_key("from-email") && !map.contains_key("from-name"));
    assert!(!map.contains_key("msg-id") && !map.contains_key("group-id"));
    let map = build_json(b"From: first@example.test\r\nFrom: second@example.test\r\n\r\n");
    assert_eq!(map["from-email"], "first@example.test");
    let map = build_json(b"From: Team: one@example.test, two@example.test;\r\n\r\n");
    assert_eq!(map["from-email"], "one@example.test");
    assert_eq!(from_email(&r37_message()).as_deref(), Some("alice@example.test"));
    assert_eq!(from_email(b"From: Bob <Bob@Example.Test>\n\n").as_deref(), Some("Bob@Example.Test"));
    assert_eq!(from_email(b"Subject: x\r\n\r\nFrom: body@example.test\r\n"), None);
    assert_eq!(from_email(b""), None);
    let map = build_json(b"Subject:   \r\n\r\n");
    assert!(!map.contains_key("subject"));
}

#[test]
fn body_conditions() {
    let map = build_json(&with_body("", b"caf\xe9\r\n"));
    assert!(!map.contains_key("content"), "Latin-1 body");
    let map = build_json(&with_body("Content-Type: text/html\r\n", b"a\0b"));
    assert!(!map.contains_key("content") && !map.contains_key("content-type"), "NUL in body");
    let big = vec![b'a'; 4097];
    let map = build_json(&with_body("Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n", &big));
    assert!(!map.contains_key("content"));
    assert!(!map.contains_key("content-type") && !map.contains_key("content-encoding"));
    assert_eq!(map["subject"], "s", "headers still there");
    let map = build_json(&with_body("", &vec![b'a'; 3500]));
    assert_eq!(map["content"].as_str().unwrap().len(), 3500);
    let map = build_json(b"Subject: only headers\r\n");
    assert_eq!(map["content"], "");
    let map = build_json(&with_body("", "grüße\r\n".as_bytes()));
    assert_eq!(map["content"], "grüße\r\n");
}

#[test]
fn content_type_and_encoding() {
    let get = |headers: &str| {
        let map = build_json(&with_body(headers, b"body"));
        assert_eq!(map["content"], "body");
        (map.get("content-type").cloned(), map.get("content-encoding").cloned())
    };
    assert_eq!(get(""), (None, None));
    for ct in [
        "text/plain",
        "TEXT/PLAIN; charset=us-ascii",
        "text/plain; charset=\"UTF-8\"",
        "text/plain; charset=utf8;",
        "text/plain (comment); charset=ascii",
        "",
    ] {
        assert_eq!(get(&format!("Content-Type: {ct}\r\n")).0, None, "{ct}");
    }
    for ct in [
        "text/html; charset=utf-8",
        "text/plain; charset=iso-8859-1",
        "text/plain; charset=utf-8; format=flowed",
        "multipart/alternative; boundary=\"a;b\"",
    ] {
        assert_eq!(get(&format!("Content-Type: {ct}\r\n")).0, Some(Value::String(ct.to_owned())), "{ct}");
    }
    assert_eq!(
        get("Content-Type: text/plain;\r\n charset=koi8-r\r\n").0,
        Some(Value::String("text/plain; charset=koi8-r".to_owned()))
    );
    assert_eq!(
        get("Content-Transfer-Encoding: quoted-printable\r\n").1,
        Some(Value::String("quoted-printable".to_owned()))
    );
    assert_eq!(get("Content-Transfer-Encoding: base64\r\n").1, Some(Value::String("base64".to_owned())));
    for cte in ["7bit", "8BIT", " 7Bit ", ""] {
        assert_eq!(get(&format!("Content-Transfer-Encoding: {cte}\r\n")).1, None, "{cte}");
    }
    let map = build_json(&with_body(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
        b"caf=C3=A9=\r\n",
    ));
    assert_eq!(map["content-encoding"], "quoted-printable");
    assert_eq!(map["content"], "caf=C3=A9=\r\n");
    // Field order: content-type, content-encoding, content last.
    let out = build_str(&with_body("Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n", b"PGI+"));
    assert!(out.ends_with(r#","content-type":"text/html","content-encoding":"base64","content":"PGI+"}"#), "{out}");
}

#[test]
fn never_over_limit_with_escapes() {
    let headers = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\
                   Message-ID: <chat$group.abcdefgh.xyz@example.test>\r\nDate: Wed, 04 Dec 2019 14:51:37 +0000\r\n";
    let pattern = b"\"\\\x01\x1f\n\ta\xc3\xa9";
    let mut sizes: Vec<usize> = (0..=MAX_BODY).step_by(61).collect();
    sizes.extend([1000, 1300, 1800, 1950, 2000, 3900, 3980, 3993, 4095, 4096, 4097]);
    for n in sizes {
        let mut body: Vec<u8> = pattern.iter().copied().cycle().take(n).collect();
        // Keep the body UTF-8 so that only the size decides.
        while std::str::from_utf8(&body).is_err() {
            body.pop();
        }
        let raw = with_body(headers, &body);
        let out = build(&raw, &Target { folder: &"F".repeat(200), uidvalidity: u32::MAX, uid: Uid::MAX }).unwrap();
        assert!(out.len() <= MAX_PLAINTEXT, "{n}: {}", out.len());
        let map: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        match map.get("content") {
            Some(c) => {
                assert_eq!(c.as_str().unwrap().as_bytes(), body.as_slice());
                assert!(map.contains_key("content-type") && map.contains_key("content-encoding"));
            }
            None => assert!(!map.contains_key("content-type") && !map.contains_key("content-encoding")),
        }
    }
    // Plain text of 4 KB fits byte for byte only if the rest is small; a body
    // just under the limit must still be taken.
    let raw = with_body("", &vec![b'a'; 3850]);
    assert!(build_json(&raw).contains_key("content"));
}

#[test]
fn folder_limits() {
    let raw = r37_message();
    let f200 = "f".repeat(200);
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(&build(&raw, &Target { folder: &f200, ..TARGET }).unwrap()).unwrap();
    assert_eq!(map["folder"], f200.as_str());
    let f201 = "f".repeat(201);
    let out = String::from_utf8(build(&raw, &Target { folder: &f201, ..TARGET }).unwrap()).unwrap();
    assert!(out.starts_with(r#"{"uidvalidity":1795582462,"uid":1,"#), "{out}");
    assert!(build(&raw, &Target { folder: &"f".repeat(1000), ..TARGET }).is_some());
    assert!(build(&raw, &Target { folder: &"f".repeat(1001), ..TARGET }).is_none());
    let map: serde_json::Map<String, Value> =
        serde_json::from_slice(&build(&raw, &Target { folder: "Dossier \"é\"", ..TARGET }).unwrap()).unwrap();
    assert_eq!(map["folder"], "Dossier \"é\"");
}

#[test]
fn group_id_field() {
    let map = build_json(&with_body("Message-ID: <plain@x>\r\nReferences: <chat$group.g1.x@y>\r\n", b""));
    assert_eq!(map["group-id"], "g1");
    assert_eq!(map["msg-id"], "<plain@x>");
    let g = "g".repeat(101);
    let map = build_json(&with_body(&format!("Message-ID: <chat$group.{g}.x@y>\r\n"), b""));
    assert!(!map.contains_key("group-id"), "over 100 bytes: omitted, not cut");
    let map = build_json(&with_body("Message-ID: <chat$m@x>\r\n", b""));
    assert!(!map.contains_key("group-id"));
}

#[test]
fn validation_payload() {
    assert_eq!(
        validation("B/ctyEELqG7Rwo3FL/kGaLkkCMatjzJzcjv1NmqDoAw="),
        br#"{"validation":"B/ctyEELqG7Rwo3FL/kGaLkkCMatjzJzcjv1NmqDoAw="}"#.to_vec()
    );
    assert_eq!(validation("a\"b"), br#"{"validation":"a\"b"}"#.to_vec());
}

#[test]
fn garbage_never_panics_and_stays_json() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for len in (0..6000usize).step_by(7) {
        let mut raw = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let b = match seed % 10 {
                0 => b'\n',
                1 => b'\r',
                2 => b':',
                3 => b' ',
                4 => b"=?<>()\"\\;@"[(seed >> 8) as usize % 10],
                5 => b"FromSubjectDate"[(seed >> 8) as usize % 15],
                _ => (seed >> 16) as u8,
            };
            raw.push(b);
        }
        let out = build(&raw, &TARGET).unwrap();
        assert!(out.len() <= MAX_PLAINTEXT);
        let _: Value = serde_json::from_slice(&out).unwrap();
        let _ = from_email(&raw);
    }
    for field in ["From", "Subject", "Date", "Content-Type", "Message-ID"] {
        for value in ["", "=?", "=?utf-8?", "=?utf-8?b?", "=?x?q?=ZZ?=", "<", "\"", "(", "\\", ";;;", ":"] {
            let raw = format!("{field}: {value}\r\n\r\nbody");
            let _: Value = serde_json::from_slice(&build(raw.as_bytes(), &TARGET).unwrap()).unwrap();
        }
    }
}

#[test]
fn helpers() {
    assert_eq!(limited(""), "");
    assert_eq!(escaped_len("a\"\\\n\u{1}é"), 1 + 2 + 2 + 2 + 6 + 2);
    for s in ["\u{0}\u{7f}\u{8}\u{c}\u{1f} x", "\"\\/", "日本語"] {
        assert_eq!(escaped_len(s) + 2, json_string(s).len(), "{s:?}");
    }
    assert_eq!(strip_comments("text/plain (a (nested) \\) c) ; x=\"(kept)\""), "text/plain  ; x=\"(kept)\"");
    assert_eq!(split_params("a; b=\"x;y\"; c"), vec!["a", " b=\"x;y\"", " c"]);
}
