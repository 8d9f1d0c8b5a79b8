//! Server responses, parsed just far enough to check them (RFC 3501 §7,
//! RFC 9051 §7, RFC 7162 §3.1.2/§3.2.10, RFC 4315 §3).
//!
//! A response arrives as one buffer with its literals inline
//! (`{n}\r\n` followed by the n bytes, see `wire.rs`); the value reader
//! takes them as it meets them, so a literal may sit in the middle of a
//! FETCH. What the checker does not look at is kept as `Other` rather than
//! refused: the tester has to work against any IMAP4rev1 server.

/// One value of the response grammar.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Atoms and numbers, `\Flags`, and items like `BODY[HEADER.FIELDS (A)]`.
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

impl Value {
    fn atom(&self) -> Option<&str> {
        match self {
            Value::Atom(a) => Some(a),
            _ => None,
        }
    }

    fn number<T: std::str::FromStr>(&self) -> Option<T> {
        self.atom()?.parse().ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Bye,
    Preauth,
}

/// The response codes the checker uses; anything else is `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    UidValidity(u32),
    UidNext(u32),
    HighestModSeq(u64),
    NoModSeq,
    PermanentFlags(Vec<String>),
    /// RFC 4315: one UID, or a set for MULTIAPPEND.
    AppendUid {
        validity: u32,
        uids: Vec<(u32, u32)>,
    },
    /// RFC 4315: the i-th source UID became the i-th destination UID.
    CopyUid {
        validity: u32,
        src: Vec<(u32, u32)>,
        dst: Vec<(u32, u32)>,
    },
    /// RFC 7162 §3.1.3: messages that failed UNCHANGEDSINCE.
    Modified(Vec<(u32, u32)>),
    /// RFC 7162 §3.2.11: the previous mailbox ends here.
    Closed,
    ExpungeIssued,
    ServerBug,
    ReadOnly,
    ReadWrite,
    Capability(Vec<String>),
    Other(String),
}

/// The FETCH items the checker follows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchAtt {
    pub uid: Option<u32>,
    pub flags: Option<Vec<String>>,
    pub modseq: Option<u64>,
    /// `Some(id)` when a header section or the whole message came back:
    /// the `X-Stress-Id` it holds, `None` inside when it has none.
    pub stress_id: Option<Option<String>>,
    /// `BODY[]` (the whole message) was among the items.
    pub whole_body: bool,
    /// A body section came back as NIL.
    pub nil_body: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Untagged {
    Exists(u32),
    Expunge(u32),
    Recent(u32),
    Fetch { seq: u32, att: FetchAtt },
    Flags(Vec<String>),
    Vanished { earlier: bool, uids: Vec<(u32, u32)> },
    Cond { status: Status, code: Option<Code>, text: String },
    Capability(Vec<String>),
    Enabled(Vec<String>),
    Status { mailbox: String, items: Vec<(String, u64)> },
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Continuation,
    Tagged { tag: String, status: Status, code: Option<Code>, text: String },
    Untagged(Untagged),
}

/// Parses one response (its literals inline). `Err` carries why it is not IMAP.
pub fn response(raw: &[u8]) -> Result<Response, String> {
    let line = raw.strip_suffix(b"\r\n").ok_or("response does not end in CRLF")?;
    if line.first() == Some(&b'+') {
        return Ok(Response::Continuation);
    }
    let mut c = Cursor { b: line, i: 0 };
    let tag = c.word().ok_or("empty response")?;
    if tag == "*" {
        return untagged(&mut c).map(Response::Untagged);
    }
    let word = c.word().ok_or("tagged response without status")?;
    let status = match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        _ => return Err(format!("tagged response with status {word:?}")),
    };
    let (code, text) = resp_text(&mut c)?;
    Ok(Response::Tagged { tag, status, code, text })
}

fn untagged(c: &mut Cursor) -> Result<Untagged, String> {
    let first = c.word().ok_or("untagged response without data")?;
    if let Ok(n) = first.parse::<u32>() {
        let what = c.word().ok_or("number without keyword")?.to_ascii_uppercase();
        return Ok(match what.as_str() {
            "EXISTS" => Untagged::Exists(n),
            "EXPUNGE" => Untagged::Expunge(n),
            "RECENT" => Untagged::Recent(n),
            "FETCH" => Untagged::Fetch { seq: n, att: fetch_att(c)? },
            _ => Untagged::Other(format!("{n} {what}")),
        });
    }
    let upper = first.to_ascii_uppercase();
    let status = match upper.as_str() {
        "OK" => Some(Status::Ok),
        "NO" => Some(Status::No),
        "BAD" => Some(Status::Bad),
        "BYE" => Some(Status::Bye),
        "PREAUTH" => Some(Status::Preauth),
        _ => None,
    };
    if let Some(status) = status {
        let (code, text) = resp_text(c)?;
        return Ok(Untagged::Cond { status, code, text });
    }
    Ok(match upper.as_str() {
        "FLAGS" => Untagged::Flags(flag_list(&c.value().ok_or("FLAGS without list")?)?),
        "CAPABILITY" => Untagged::Capability(c.rest_words()),
        "ENABLED" => Untagged::Enabled(c.rest_words()),
        "VANISHED" => {
            let mut earlier = false;
            c.skip_spaces();
            if c.peek() == Some(b'(') {
                let tagged = c.value().ok_or("VANISHED tag list")?;
                earlier = matches!(&tagged, Value::List(l) if l.iter().any(|v| v.atom().is_some_and(|a| a.eq_ignore_ascii_case("EARLIER"))));
            }
            let set = c.word().ok_or("VANISHED without UIDs")?;
            Untagged::Vanished { earlier, uids: parse_set(&set).ok_or(format!("bad VANISHED set {set:?}"))? }
        }
        "STATUS" => {
            let mailbox = match c.value() {
                Some(Value::Atom(a)) => a,
                Some(Value::Str(s)) => String::from_utf8_lossy(&s).into_owned(),
                _ => return Err("STATUS without mailbox".into()),
            };
            let Some(Value::List(l)) = c.value() else { return Err("STATUS without item list".into()) };
            let mut items = Vec::new();
            for pair in l.chunks(2) {
                if let [Value::Atom(k), v] = pair {
                    items.push((k.to_ascii_uppercase(), v.number().ok_or("STATUS item not a number")?));
                }
            }
            Untagged::Status { mailbox, items }
        }
        _ => Untagged::Other(upper),
    })
}

/// `[code args] text`.
fn resp_text(c: &mut Cursor) -> Result<(Option<Code>, String), String> {
    c.skip_spaces();
    if c.peek() != Some(b'[') {
        return Ok((None, c.rest()));
    }
    c.i += 1;
    let start = c.i;
    while c.peek().is_some_and(|b| b != b' ' && b != b']') {
        c.i += 1;
    }
    let name = String::from_utf8_lossy(&c.b[start..c.i]).to_ascii_uppercase();
    let mut args = Vec::new();
    loop {
        c.skip_spaces();
        match c.peek() {
            Some(b']') => {
                c.i += 1;
                break;
            }
            None => return Err("response code without ]".into()),
            _ => match c.value().ok_or("bad response code argument")? {
                // An atom argument took the closing bracket with it (`[UIDNEXT 5]`).
                Value::Atom(a) if a.ends_with(']') => {
                    args.push(Value::Atom(a.trim_end_matches(']').to_owned()));
                    break;
                }
                v => args.push(v),
            },
        }
    }
    let n = |i: usize| args.get(i).and_then(|v: &Value| v.number::<u64>());
    let set = |i: usize| args.get(i).and_then(|v: &Value| parse_set(v.atom()?));
    let bad = || format!("bad [{name}] arguments");
    let code = match name.as_str() {
        "UIDVALIDITY" => Code::UidValidity(n(0).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad)?),
        "UIDNEXT" => Code::UidNext(n(0).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad)?),
        "HIGHESTMODSEQ" => Code::HighestModSeq(n(0).ok_or_else(bad)?),
        "NOMODSEQ" => Code::NoModSeq,
        "PERMANENTFLAGS" => Code::PermanentFlags(flag_list(args.first().ok_or_else(bad)?)?),
        "APPENDUID" => Code::AppendUid {
            validity: n(0).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad)?,
            uids: set(1).ok_or_else(bad)?,
        },
        "COPYUID" => Code::CopyUid {
            validity: n(0).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad)?,
            src: set(1).ok_or_else(bad)?,
            dst: set(2).ok_or_else(bad)?,
        },
        "MODIFIED" => Code::Modified(set(0).ok_or_else(bad)?),
        "CLOSED" => Code::Closed,
        "EXPUNGEISSUED" => Code::ExpungeIssued,
        "SERVERBUG" => Code::ServerBug,
        "READ-ONLY" => Code::ReadOnly,
        "READ-WRITE" => Code::ReadWrite,
        "CAPABILITY" => Code::Capability(args.iter().filter_map(|a| a.atom().map(str::to_owned)).collect()),
        _ => Code::Other(name),
    };
    Ok((Some(code), c.rest()))
}

fn fetch_att(c: &mut Cursor) -> Result<FetchAtt, String> {
    let Some(Value::List(items)) = c.value() else { return Err("FETCH without item list".into()) };
    let mut att = FetchAtt::default();
    for pair in items.chunks(2) {
        let [Value::Atom(name), value] = pair else { return Err("FETCH item list is not name/value pairs".into()) };
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "UID" => att.uid = Some(value.number().ok_or("UID not a number")?),
            "FLAGS" => att.flags = Some(flag_list(value)?),
            "MODSEQ" => match value {
                Value::List(l) if l.len() == 1 => att.modseq = Some(l[0].number().ok_or("MODSEQ not a number")?),
                _ => return Err("MODSEQ is not (n)".into()),
            },
            _ if upper.starts_with("BODY[") => {
                if upper.starts_with("BODY[]") {
                    att.whole_body = true;
                }
                match value {
                    Value::Str(b) => att.stress_id = Some(stress_id(b)),
                    // RFC 2180 §4.1.3: NIL for a message expunged meanwhile.
                    _ => att.nil_body = true,
                }
            }
            _ => {}
        }
    }
    Ok(att)
}

/// The `X-Stress-Id` field of a header (or of a whole message's header).
pub fn stress_id(message: &[u8]) -> Option<String> {
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        let Some((name, value)) = line.split_at_checked(12) else { continue };
        if name.eq_ignore_ascii_case(b"x-stress-id:") {
            return Some(String::from_utf8_lossy(value).trim().to_owned());
        }
    }
    None
}

fn flag_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::List(l) => l
            .iter()
            .map(|f| match f {
                Value::Atom(a) => Ok(a.clone()),
                // How a server that took a keyword named NIL shows it.
                Value::Nil => Ok("NIL".to_owned()),
                _ => Err("flag is not an atom".to_owned()),
            })
            .collect(),
        _ => Err("flags are not a list".into()),
    }
}

/// `1:3,7,9:8` as ascending ranges (`*` is not a server's to send).
pub fn parse_set(s: &str) -> Option<Vec<(u32, u32)>> {
    s.split(',')
        .map(|part| {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
            Some((a.min(b), a.max(b)))
        })
        .collect()
}

/// The UIDs of a set, in order; `None` above `limit` values (a hostile or
/// broken range must not make the checker allocate gigabytes).
pub fn expand(set: &[(u32, u32)], limit: usize) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for &(a, b) in set {
        if out.len() + (b - a) as usize >= limit {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// The next space-separated word.
    fn word(&mut self) -> Option<String> {
        self.skip_spaces();
        let start = self.i;
        while self.peek().is_some_and(|b| b != b' ') {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.b[start..self.i]).into_owned())
    }

    fn rest(&mut self) -> String {
        self.skip_spaces();
        let s = String::from_utf8_lossy(&self.b[self.i..]).into_owned();
        self.i = self.b.len();
        s
    }

    fn rest_words(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.word()).collect()
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_spaces();
        match self.peek()? {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek()? {
                        b')' => {
                            self.i += 1;
                            return Some(Value::List(items));
                        }
                        _ => items.push(self.value()?),
                    }
                }
            }
            b'"' => {
                self.i += 1;
                let mut s = Vec::new();
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.i += 1;
                            return Some(Value::Str(s));
                        }
                        b'\\' => {
                            s.push(*self.b.get(self.i + 1)?);
                            self.i += 2;
                        }
                        b => {
                            s.push(b);
                            self.i += 1;
                        }
                    }
                }
            }
            b'{' => {
                let close = self.i + self.b[self.i..].iter().position(|&b| b == b'}')?;
                let n: usize =
                    std::str::from_utf8(&self.b[self.i + 1..close]).ok()?.trim_end_matches('+').parse().ok()?;
                let start = close + 3; // "}\r\n"
                let bytes = self.b.get(start..start.checked_add(n)?)?;
                self.i = start + n;
                Some(Value::Str(bytes.to_vec()))
            }
            _ => {
                let start = self.i;
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'[' => depth += 1,
                        b']' if depth > 0 => depth -= 1,
                        // Inside `[...]` a section may hold spaces and parentheses.
                        b' ' | b'(' | b')' | b'"' if depth == 0 => break,
                        b']' => {
                            // Ends a response code: keep it so the caller sees where.
                            self.i += 1;
                            break;
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                let a = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
                if a.is_empty() {
                    return None;
                }
                Some(if a.eq_ignore_ascii_case("NIL") { Value::Nil } else { Value::Atom(a) })
            }
        }
    }
}

/// A response for a report: lossy UTF-8, literals cut short, at most ~300 characters.
pub fn display(raw: &[u8]) -> String {
    // Every response line is kept for reports: the usual short line of one
    // text, without a literal inside, costs one copy.
    let line = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    let plain_end = line.last().is_some_and(|b| b.is_ascii() && !b.is_ascii_whitespace());
    if line.len() <= 300
        && plain_end
        && !line.contains(&b'\r')
        && let Ok(s) = std::str::from_utf8(line)
    {
        return s.to_owned();
    }
    display_slow(raw)
}

fn display_slow(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_end();
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out.replace("\r\n", "\\r\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_takes_the_short_way_only_where_it_gives_the_same() {
        let long = format!("* OK {}\r\n", "x".repeat(400));
        let samples: [&[u8]; 9] = [
            b"* 3 FETCH (FLAGS (\\Seen) UID 7)\r\n",
            b"a1 OK done  \r\n",
            b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n",
            b"no line end",
            b"\xff\xfe bytes\r\n",
            "* OK caf\u{e9}\u{a0}\r\n".as_bytes(),
            b"tab\t\r\n",
            b"",
            long.as_bytes(),
        ];
        for raw in samples {
            assert_eq!(display(raw), display_slow(raw), "{raw:?}");
        }
    }

    fn u(raw: &str) -> Untagged {
        match response(raw.as_bytes()).unwrap() {
            Response::Untagged(u) => u,
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn fetch_with_literal_in_the_middle() {
        let raw = "* 3 FETCH (UID 17 BODY[HEADER.FIELDS (X-STRESS-ID)] {22}\r\nX-Stress-Id: ab-1\r\n\r\n FLAGS (\\Seen $K) MODSEQ (12))\r\n";
        let Untagged::Fetch { seq, att } = u(raw) else { panic!() };
        assert_eq!(seq, 3);
        assert_eq!(att.uid, Some(17));
        assert_eq!(att.stress_id, Some(Some("ab-1".into())));
        assert_eq!(att.flags, Some(vec!["\\Seen".into(), "$K".into()]));
        assert_eq!(att.modseq, Some(12));
    }

    #[test]
    fn codes() {
        let r = response(b"a1 OK [COPYUID 5 1:2,7 10:12] done\r\n").unwrap();
        let Response::Tagged { code: Some(Code::CopyUid { validity, src, dst }), .. } = r else { panic!() };
        assert_eq!((validity, src, dst), (5, vec![(1, 2), (7, 7)], vec![(10, 12)]));
        let Untagged::Cond { code, .. } = u("* OK [UIDNEXT 5] next\r\n") else { panic!() };
        assert_eq!(code, Some(Code::UidNext(5)));
        let Untagged::Cond { code, .. } = u("* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\n") else { panic!() };
        assert_eq!(code, Some(Code::PermanentFlags(vec!["\\Seen".into(), "\\*".into()])));
        let Untagged::Cond { code, .. } = u("* OK [CLOSED] x\r\n") else { panic!() };
        assert_eq!(code, Some(Code::Closed));
        let r = response(b"a2 OK [MODIFIED 7,9] Conditional STORE failed\r\n").unwrap();
        assert!(matches!(r, Response::Tagged { code: Some(Code::Modified(m)), .. } if m == vec![(7, 7), (9, 9)]));
        let r = response(b"a3 NO [EXPUNGEISSUED] gone\r\n").unwrap();
        assert!(matches!(r, Response::Tagged { status: Status::No, code: Some(Code::ExpungeIssued), .. }));
    }

    #[test]
    fn vanished_and_status() {
        assert_eq!(
            u("* VANISHED (EARLIER) 3:5,9\r\n"),
            Untagged::Vanished { earlier: true, uids: vec![(3, 5), (9, 9)] }
        );
        assert_eq!(u("* VANISHED 4\r\n"), Untagged::Vanished { earlier: false, uids: vec![(4, 4)] });
        assert_eq!(
            u("* STATUS \"Other\" (MESSAGES 3 UIDNEXT 9 HIGHESTMODSEQ 40)\r\n"),
            Untagged::Status {
                mailbox: "Other".into(),
                items: vec![("MESSAGES".into(), 3), ("UIDNEXT".into(), 9), ("HIGHESTMODSEQ".into(), 40)]
            }
        );
    }

    #[test]
    fn whole_body_and_nil() {
        let raw = "* 1 FETCH (UID 2 BODY[] {34}\r\nSubject: x\r\nX-stress-id: q-9\r\n\r\nhi FLAGS ())\r\n";
        let Untagged::Fetch { att, .. } = u(raw) else { panic!() };
        assert!(att.whole_body);
        assert_eq!(att.stress_id, Some(Some("q-9".into())));
        let Untagged::Fetch { att, .. } = u("* 1 FETCH (UID 2 BODY[HEADER.FIELDS (X-Stress-Id)] NIL)\r\n") else {
            panic!()
        };
        assert_eq!(att.stress_id, None);
        assert!(att.nil_body);
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(response(b"* 1 FETCH (UID)\r\n").is_err());
        assert!(response(b"a1 MAYBE\r\n").is_err());
        assert!(response(b"* OK no crlf").is_err());
    }
}
