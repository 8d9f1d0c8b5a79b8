//! COI (Chat Over IMAP, `shared/docs/coi-server.md`) black box, part 1:
//! capabilities and the METADATA mechanics COI clients depend on (R1–R10),
//! Delta Chat's metadata use (D3, D4) and the OX COI client's commands
//! replayed byte for byte (C3, C4). Also the helpers the other `coi_*`
//! files share: a server with COI's WebPush off (its module is a stub for
//! now and would keep the daemon from starting), a strict `* METADATA`
//! parser, mailbox inspection and IDLE helpers.
//!
//! Every test names the requirement ids it covers.

use crate::util::imap::Response;
use crate::util::server::test_config;
use crate::util::{self, DOMAIN, ImapClient, SmtpClient, TestServer};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

pub(crate) const ALICE: &str = "alice@example.org";
pub(crate) const BOB: &str = "bob@example.org";
pub(crate) const CONFIG: &str = "/private/vendor/vendor.dovecot/coi/config";
pub(crate) const ENABLED: &str = "/private/vendor/vendor.dovecot/coi/config/enabled";
pub(crate) const FILTER: &str = "/private/vendor/vendor.dovecot/coi/config/message-filter";
pub(crate) const ROOT: &str = "/private/vendor/vendor.dovecot/coi/config/mailbox-root";
/// How long a "nothing arrives" check waits (only where the spec demands "not woken").
pub(crate) const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------- helpers

/// The test config with COI's WebPush off and the given COI root.
pub(crate) fn coi_config(dir: &Path, root: &str) -> coimail_daemon::Config {
    let mut c = test_config(dir);
    c.coi.webpush = false;
    c.coi.mailbox_root = root.to_owned();
    c
}

/// An in-process server (example.org, `users` with [`util::PASSWORD`]),
/// WebPush off: the COI behaviour under test does not depend on it, and
/// `coi_webpush.rs` tests it.
pub(crate) async fn start(users: &[&str]) -> TestServer {
    start_with(users, false).await
}

/// [`start`] with WebPush as configured by `webpush` (the default config has it on).
pub(crate) async fn start_with(users: &[&str], webpush: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = coi_config(dir.path(), "COI");
    config.coi.webpush = webpush;
    let running = coimail_daemon::start(config).await.unwrap();
    running.directory().add_domain(DOMAIN).await.unwrap();
    for u in users {
        running.directory().add_user(u, util::PASSWORD, None).await.unwrap();
    }
    TestServer { dir, running: Some(running) }
}

pub(crate) async fn login(server: &TestServer, user: &str) -> ImapClient {
    ImapClient::login(server.imap(), user, util::PASSWORD).await
}

pub(crate) fn assert_ok(r: &Response, what: &str) {
    assert!(r.ok(), "{what}: {} / {}", r.status, r.text());
}

/// `NO [CANNOT]` (R9).
pub(crate) fn assert_cannot(r: &Response, what: &str) {
    assert!(r.status.split_once(' ').is_some_and(|(_, rest)| rest.starts_with("NO [CANNOT]")), "{what}: {}", r.status);
}

/// A value as the server stores it, from a METADATA response.
pub(crate) type Value = Option<Vec<u8>>;

/// One `* METADATA` response: mailbox and (entry, value) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub mailbox: String,
    pub entries: Vec<(String, Value)>,
}

impl Metadata {
    pub(crate) fn get(&self, entry: &str) -> Option<&Value> {
        self.entries.iter().find(|(e, _)| e == entry).map(|(_, v)| v)
    }
}

/// Every `* METADATA` response in `data`, parsed strictly the way
/// imap-proto (OX COI and Delta Chat) does (R6): the mailbox a quoted
/// string, a non-empty list, values NIL / quoted / literal, UTF-8; entry
/// names in lower case.
pub(crate) fn metadata(data: &[u8]) -> Vec<Metadata> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos..].starts_with(b"* METADATA ") {
            let mut c = Cursor { buf: data, pos: pos + b"* METADATA ".len() };
            out.push(c.metadata_body());
            pos = c.pos;
        } else {
            pos = data[pos..].iter().position(|&b| b == b'\n').map_or(data.len(), |i| pos + i + 1);
        }
    }
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn context(&self) -> String {
        format!("at {} in {:?}", self.pos, String::from_utf8_lossy(self.buf))
    }

    fn peek(&self) -> u8 {
        *self.buf.get(self.pos).unwrap_or_else(|| panic!("METADATA response ends early {}", self.context()))
    }

    fn expect(&mut self, s: &[u8]) {
        assert!(self.buf[self.pos..].starts_with(s), "expected {:?} {}", String::from_utf8_lossy(s), self.context());
        self.pos += s.len();
    }

    fn quoted(&mut self) -> Vec<u8> {
        self.expect(b"\"");
        let mut out = Vec::new();
        loop {
            match self.peek() {
                b'"' => {
                    self.pos += 1;
                    return out;
                }
                b'\\' => {
                    self.pos += 1;
                    out.push(self.peek());
                }
                b'\r' | b'\n' => panic!("line end in a quoted string {}", self.context()),
                b => out.push(b),
            }
            self.pos += 1;
        }
    }

    fn literal(&mut self) -> Vec<u8> {
        self.expect(b"{");
        let end = self.buf[self.pos..].iter().position(|&b| b == b'}').unwrap() + self.pos;
        let n: usize = std::str::from_utf8(&self.buf[self.pos..end]).unwrap().parse().unwrap();
        self.pos = end + 1;
        self.expect(b"\r\n");
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        v
    }

    fn atom(&mut self) -> Vec<u8> {
        let start = self.pos;
        while self.pos < self.buf.len() && !b" ()\r\n\"{".contains(&self.buf[self.pos]) {
            self.pos += 1;
        }
        assert!(self.pos > start, "empty atom {}", self.context());
        self.buf[start..self.pos].to_vec()
    }

    fn astring(&mut self) -> Vec<u8> {
        match self.peek() {
            b'"' => self.quoted(),
            b'{' => self.literal(),
            _ => self.atom(),
        }
    }

    fn value(&mut self) -> Value {
        match self.peek() {
            b'"' => Some(self.quoted()),
            b'{' => Some(self.literal()),
            b'~' => {
                self.pos += 1;
                Some(self.literal())
            }
            _ => {
                let a = self.atom();
                assert_eq!(a, b"NIL", "a value is NIL, a string or a literal {}", self.context());
                None
            }
        }
    }

    fn metadata_body(&mut self) -> Metadata {
        assert_eq!(self.peek(), b'"', "R6: the METADATA mailbox must be a quoted string {}", self.context());
        let mailbox = String::from_utf8(self.quoted()).unwrap();
        self.expect(b" (");
        assert_ne!(self.peek(), b')', "R6: never an empty METADATA list {}", self.context());
        let mut entries = Vec::new();
        loop {
            let entry = String::from_utf8(self.astring()).unwrap();
            assert_eq!(entry, entry.to_ascii_lowercase(), "R6: entry names are answered in lower case");
            self.expect(b" ");
            let value = self.value();
            if let Some(v) = &value {
                assert!(std::str::from_utf8(v).is_ok(), "R6: values must be UTF-8 {}", self.context());
            }
            entries.push((entry, value));
            if self.peek() == b')' {
                self.pos += 1;
                break;
            }
            self.expect(b" ");
        }
        self.expect(b"\r\n");
        Metadata { mailbox, entries }
    }
}

/// `GETMETADATA <mailbox> <entry>` (depth 0): the one entry's value. The
/// entry must be answered even when missing (NIL, R8).
pub(crate) async fn get_entry(c: &mut ImapClient, mailbox: &str, entry: &str) -> Value {
    let r = c.command(&format!("GETMETADATA {mailbox} {entry}")).await;
    assert_ok(&r, "GETMETADATA");
    let m = metadata(&r.data);
    assert_eq!(m.len(), 1, "one METADATA response: {}", r.text());
    assert_eq!(m[0].entries.len(), 1, "{}", r.text());
    m[0].get(entry).unwrap_or_else(|| panic!("{entry} missing in {}", r.text())).clone()
}

/// The `enabled` entry as text (`None`: absent).
pub(crate) async fn enabled(c: &mut ImapClient) -> Option<String> {
    get_entry(c, "\"\"", ENABLED).await.map(|v| String::from_utf8(v).unwrap())
}

/// The `message-filter` entry as text (`None`: absent).
pub(crate) async fn filter(c: &mut ImapClient) -> Option<String> {
    get_entry(c, "\"\"", FILTER).await.map(|v| String::from_utf8(v).unwrap())
}

/// `SETMETADATA "" (<entry> <value>)`, expecting OK.
pub(crate) async fn set(c: &mut ImapClient, entry: &str, value: &str) {
    let r = c.command(&format!("SETMETADATA \"\" ({entry} {value})")).await;
    assert_ok(&r, &format!("SETMETADATA {entry} {value}"));
}

/// Turns COI on with `filter` (`none`, `active`, `seen`), as a COI client does.
pub(crate) async fn enable(c: &mut ImapClient, filter: &str) {
    let r = c.command(&format!("SETMETADATA \"\" ({ENABLED} yes {FILTER} {filter})")).await;
    assert_ok(&r, "enable COI");
}

/// Sends a command whose parts are separated by synchronising literals:
/// each part but the last ends in `{n}`; waits for `+` after each.
pub(crate) async fn command_with_literals(c: &mut ImapClient, parts: &[&[u8]]) -> Response {
    let tag = c.tag();
    for (i, part) in parts.iter().enumerate() {
        let mut bytes = if i == 0 { format!("{tag} ").into_bytes() } else { Vec::new() };
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
        c.send_raw(&bytes).await;
        if i + 1 < parts.len() {
            let cont = c.read_line().await;
            assert!(cont.starts_with(b"+"), "continuation expected: {}", String::from_utf8_lossy(&cont));
        }
    }
    c.until_tagged(&tag).await
}

/// `APPEND "<mailbox>" (flags) {n+}` of `msg` (LITERAL+); asserts the OK.
pub(crate) async fn append_flags(c: &mut ImapClient, mailbox: &str, flags: &str, msg: &[u8]) {
    let tag = c.tag();
    let mut bytes = format!("{tag} APPEND \"{mailbox}\" ({flags}) {{{}+}}\r\n", msg.len()).into_bytes();
    bytes.extend_from_slice(msg);
    bytes.extend_from_slice(b"\r\n");
    c.send_raw(&bytes).await;
    let r = c.until_tagged(&tag).await;
    assert_ok(&r, &format!("APPEND {mailbox}"));
}

pub(crate) async fn append(c: &mut ImapClient, mailbox: &str, msg: &[u8]) {
    append_flags(c, mailbox, "", msg).await;
}

/// The mailboxes a `LIST`/`LSUB` response names, with their attributes.
pub(crate) fn listed(text: &str, kind: &str) -> Vec<(String, String)> {
    let prefix = format!("* {kind} (");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (attrs, rest) = rest.split_once(") ")?;
            let (sep, name) = rest.split_once(' ')?;
            assert_eq!(sep, "\"/\"", "R17: separator / in {l}");
            Some((name.trim_matches('"').to_owned(), attrs.to_owned()))
        })
        .collect()
}

/// Mailbox names from `LIST "" "*"`, with attributes.
pub(crate) async fn list_all(c: &mut ImapClient) -> Vec<(String, String)> {
    let r = c.command("LIST \"\" \"*\"").await;
    assert_ok(&r, "LIST");
    listed(&r.text(), "LIST")
}

pub(crate) async fn has_mailbox(c: &mut ImapClient, name: &str) -> bool {
    list_all(c).await.iter().any(|(n, attrs)| n == name && !attrs.contains("\\Noselect"))
}

/// A message as one FETCH shows it.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub flags: Vec<String>,
    pub message_id: String,
}

impl Msg {
    pub(crate) fn chat(&self) -> bool {
        self.flags.iter().any(|f| f == "$Chat")
    }

    pub(crate) fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// The messages of `mailbox` (EXAMINE, so nothing changes), or `None` when
/// it does not exist. `c` loses its selected mailbox.
pub(crate) async fn contents(c: &mut ImapClient, mailbox: &str) -> Option<Vec<Msg>> {
    let r = c.command(&format!("EXAMINE \"{mailbox}\"")).await;
    if !r.ok() {
        return None;
    }
    if util::imap::exists(&r.text()) == Some(0) {
        return Some(Vec::new());
    }
    let r = c.command("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])").await;
    assert_ok(&r, "UID FETCH");
    Some(fetched(&r.text()))
}

/// FETCH responses carrying FLAGS and the Message-ID header. `\Recent`
/// is left out: it says which session was told first, not what COI stored.
pub(crate) fn fetched(text: &str) -> Vec<Msg> {
    let mut out = Vec::new();
    for chunk in format!("\r\n{text}").split("\r\n* ").skip(1) {
        let Some((_, items)) = chunk.split_once(" FETCH (") else { continue };
        let flags = items.split_once("FLAGS (").map(|(_, r)| {
            r.split_once(')')
                .unwrap()
                .0
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        let message_id = items.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("Message-ID").then(|| value.trim().to_owned())
        });
        out.push(Msg { flags: flags.unwrap_or_default(), message_id: message_id.unwrap_or_default() });
    }
    out
}

/// The message with Message-ID `<id>`.
pub(crate) fn find<'a>(msgs: &'a [Msg], id: &str) -> Option<&'a Msg> {
    msgs.iter().find(|m| m.message_id == format!("<{id}>"))
}

/// A message from the outside with Message-ID `<id>` and extra header lines.
pub(crate) fn mail(id: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@remote.test>\r\nTo: {ALICE}\r\nSubject: {id}\r\nMessage-ID: <{id}>\r\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\r\n{extra}\r\nHello.\r\n"
    )
    .into_bytes()
}

/// A chat message (`Chat-Version: 1.0`, `chat$` Message-ID) with id `chat$<id>@remote.test`.
pub(crate) fn chat(id: &str) -> (String, Vec<u8>) {
    let id = format!("chat${id}@remote.test");
    let m = mail(&id, "Chat-Version: 1.0\r\n");
    (id, m)
}

/// Delivers `msg` over the MX port to `to`; asserts the 250.
pub(crate) async fn deliver(server: &TestServer, to: &[&str], msg: &[u8]) {
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    let r = smtp.send("sender@remote.test", to, msg).await;
    assert!(r.starts_with("250"), "{r}");
}

/// Starts IDLE on the selected mailbox; returns the tag.
pub(crate) async fn idle(c: &mut ImapClient) -> String {
    let tag = c.tag();
    c.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
    let line = c.read_line().await;
    assert!(line.starts_with(b"+ "), "{}", String::from_utf8_lossy(&line));
    tag
}

/// Reads lines until one contains `needle` (each read times out after 30 s).
pub(crate) async fn wait_for(c: &mut ImapClient, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        let line = String::from_utf8_lossy(&c.read_line().await).into_owned();
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

/// Nothing arrives within [`QUIET`]; then IDLE is ended and its tagged
/// OK must not carry anything either. Returns what came with the OK.
pub(crate) async fn assert_not_woken(c: &mut ImapClient, tag: &str, what: &str) {
    if let Ok(line) = tokio::time::timeout(QUIET, c.read_line()).await {
        panic!("{what}: IDLE was woken: {}", String::from_utf8_lossy(&line));
    }
    c.send_raw(b"DONE\r\n").await;
    let r = c.until_tagged(tag).await;
    assert_ok(&r, "IDLE DONE");
    assert!(!r.text().contains("EXISTS"), "{what}: {}", r.text());
}

pub(crate) async fn idle_done(c: &mut ImapClient, tag: &str) -> Response {
    c.send_raw(b"DONE\r\n").await;
    let r = c.until_tagged(tag).await;
    assert_ok(&r, "IDLE DONE");
    r
}

fn caps(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The capability list of a `[CAPABILITY ...]` code in `line`.
fn cap_code(line: &str) -> Vec<String> {
    let (_, rest) = line.split_once("[CAPABILITY ").unwrap_or_else(|| panic!("no CAPABILITY code: {line}"));
    caps(rest.split_once(']').unwrap().0)
}

async fn capability_command(c: &mut ImapClient) -> Vec<String> {
    let r = c.command("CAPABILITY").await;
    assert_ok(&r, "CAPABILITY");
    let line = r.text().lines().find_map(|l| l.strip_prefix("* CAPABILITY ").map(str::to_owned)).unwrap();
    caps(&line)
}

// ---------------------------------------------------------------- R1–R3

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_r3_coi_and_metadata_only_after_login_and_login_ok_lists_them_all() {
    let server = start(&[ALICE]).await;
    // The greeting, read off the raw socket.
    let stream = TcpStream::connect(server.imap()).await.unwrap();
    let mut greeting = String::new();
    BufReader::new(stream).read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    for forbidden in ["COI", "WEBPUSH", "METADATA"] {
        assert!(!caps(&greeting.replace(['[', ']'], " ")).iter().any(|c| c == forbidden), "R1: {greeting}");
    }

    let mut c = ImapClient::connect(server.imap()).await;
    let before = capability_command(&mut c).await;
    for forbidden in ["COI", "WEBPUSH", "METADATA"] {
        assert!(!before.iter().any(|c| c == forbidden), "R1/R3: {forbidden} before login: {before:?}");
    }
    let r = c.command(&format!("LOGIN \"{ALICE}\" \"{}\"", util::PASSWORD)).await;
    assert_ok(&r, "LOGIN");
    let on_login = cap_code(&r.status);
    let after = capability_command(&mut c).await;
    assert_eq!(on_login, after, "R1: the LOGIN OK's CAPABILITY code is the complete post-auth list");
    assert!(after.iter().any(|c| c == "COI"), "R1: COI, upper case: {after:?}");
    assert!(after.iter().any(|c| c == "METADATA"), "R3: {after:?}");
    assert!(!after.iter().any(|c| c == "WEBPUSH"), "R2: no WEBPUSH while WebPush is off: {after:?}");

    // AUTHENTICATE PLAIN with SASL-IR: the same list on its OK.
    let mut c = ImapClient::connect(server.imap()).await;
    let ir = util::mailhost::base64(format!("\0{ALICE}\0{}", util::PASSWORD).as_bytes());
    let r = c.command(&format!("AUTHENTICATE PLAIN {ir}")).await;
    assert_ok(&r, "AUTHENTICATE");
    assert_eq!(cap_code(&r.status), after, "R1: AUTHENTICATE's OK carries the same list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_webpush_advertised_after_login_when_configured() {
    let server = start_with(&[ALICE], true).await;
    let mut c = ImapClient::connect(server.imap()).await;
    assert!(!capability_command(&mut c).await.iter().any(|c| c == "WEBPUSH"), "R2: not before login");
    let r = c.command(&format!("LOGIN \"{ALICE}\" \"{}\"", util::PASSWORD)).await;
    assert_ok(&r, "LOGIN");
    let code = cap_code(&r.status);
    assert!(code.iter().any(|c| c == "WEBPUSH") && code.iter().any(|c| c == "COI"), "R2: {code:?}");
}

// ---------------------------------------------------------------- R5–R10

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_r6_r8_r11_fresh_user_depth_1_shows_only_mailbox_root() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    let r = c.command(&format!("GETMETADATA (DEPTH 1) \"\" {CONFIG}")).await;
    assert_ok(&r, "GETMETADATA");
    let m = metadata(&r.data);
    assert_eq!(m.len(), 1, "{}", r.text());
    assert_eq!(m[0].mailbox, "");
    assert_eq!(m[0].entries, vec![(ROOT.to_owned(), Some(b"COI".to_vec()))], "R8/R11: only mailbox-root");
    assert!(r.text().starts_with("* METADATA \"\" ("), "R6: {}", r.text());

    // Missing entries at depth 0 answer NIL (R8), one line for all (R6).
    let r = c.command(&format!("GETMETADATA \"\" ({ENABLED} {FILTER} {ROOT})")).await;
    assert_ok(&r, "GETMETADATA");
    let m = metadata(&r.data);
    assert_eq!(m.len(), 1, "{}", r.text());
    assert_eq!(m[0].get(ENABLED), Some(&None), "{}", r.text());
    assert_eq!(m[0].get(FILTER), Some(&None), "{}", r.text());
    assert_eq!(m[0].get(ROOT), Some(&Some(b"COI".to_vec())), "{}", r.text());

    // Depth 1 of a name with nothing below it: no METADATA line, never `()` (R6).
    for q in [
        "GETMETADATA (DEPTH 1) \"\" (/private/nothing/here)",
        "GETMETADATA (DEPTH infinity) \"\" /private/nothing",
        "GETMETADATA (DEPTH 1) INBOX /private/comment",
    ] {
        let r = c.command(q).await;
        assert_ok(&r, q);
        assert!(metadata(&r.data).is_empty() && !r.text().contains("()"), "{q}: {}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_getmetadata_option_and_entry_forms() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "seen").await;
    let all = vec![
        (ENABLED.to_owned(), Some(b"yes".to_vec())),
        (ROOT.to_owned(), Some(b"COI".to_vec())),
        (FILTER.to_owned(), Some(b"seen".to_vec())),
    ];
    let sorted = |mut v: Vec<(String, Value)>| {
        v.sort();
        v
    };
    // DEPTH 1, alone or with MAXSIZE in either order; entry as atom, quoted, in a list.
    for q in [
        format!("GETMETADATA (DEPTH 1) \"\" {CONFIG}"),
        format!("GETMETADATA (DEPTH 1) \"\" \"{CONFIG}\""),
        format!("GETMETADATA (DEPTH 1) \"\" ({CONFIG})"),
        format!("GETMETADATA (DEPTH 1 MAXSIZE 1024) \"\" (\"{CONFIG}\")"),
        format!("GETMETADATA (MAXSIZE 1024 DEPTH 1) \"\" {CONFIG}"),
        format!("getmetadata (depth 1) \"\" {CONFIG}"),
    ] {
        let r = c.command(&q).await;
        assert_ok(&r, &q);
        let m = metadata(&r.data);
        assert_eq!(m.len(), 1, "{q}: {}", r.text());
        assert_eq!(sorted(m[0].entries.clone()), sorted(all.clone()), "{q}");
    }
    // DEPTH infinity from /private reaches the config (and nothing is lost on the way).
    let r = c.command("GETMETADATA (DEPTH infinity) \"\" (/private)").await;
    assert_ok(&r, "DEPTH infinity");
    let m = metadata(&r.data);
    assert_eq!(m.len(), 1, "{}", r.text());
    for (e, v) in &all {
        assert_eq!(m[0].get(e), Some(v), "{}", r.text());
    }
    // DEPTH 1 from /private does not reach three levels down.
    let r = c.command("GETMETADATA (DEPTH 1) \"\" /private").await;
    assert_ok(&r, "DEPTH 1 /private");
    assert!(metadata(&r.data).iter().all(|m| m.get(ENABLED).is_none()), "{}", r.text());
    // DEPTH 0 explicitly, and the default.
    for q in [format!("GETMETADATA (DEPTH 0) \"\" {ENABLED}"), format!("GETMETADATA \"\" ({ENABLED})")] {
        let r = c.command(&q).await;
        let m = metadata(&r.data);
        assert_eq!(m[0].entries, vec![(ENABLED.to_owned(), Some(b"yes".to_vec()))], "{q}");
    }
    // MAXSIZE holds back longer values and says how long the longest was (RFC 5464 §4.2.1).
    let r = c.command(&format!("GETMETADATA (MAXSIZE 3) \"\" ({ENABLED} {FILTER})")).await;
    assert!(r.ok() && r.status.contains("[METADATA LONGENTRIES 4]"), "{}", r.status);
    assert_eq!(metadata(&r.data)[0].entries, vec![(ENABLED.to_owned(), Some(b"yes".to_vec()))]);
    // Entries as a synchronising literal, alone and inside a list.
    let lit = format!("GETMETADATA \"\" {{{}}}", ENABLED.len());
    let r = command_with_literals(&mut c, &[lit.as_bytes(), ENABLED.as_bytes()]).await;
    assert_ok(&r, "literal entry");
    assert_eq!(metadata(&r.data)[0].entries, vec![(ENABLED.to_owned(), Some(b"yes".to_vec()))]);
    let lit = format!("GETMETADATA (DEPTH 0) \"\" ({ROOT} {{{}}}", FILTER.len());
    let rest = format!("{FILTER})");
    let r = command_with_literals(&mut c, &[lit.as_bytes(), rest.as_bytes()]).await;
    assert_ok(&r, "literal in a list");
    assert_eq!(
        metadata(&r.data)[0].entries,
        vec![(ROOT.to_owned(), Some(b"COI".to_vec())), (FILTER.to_owned(), Some(b"seen".to_vec()))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_setmetadata_value_forms_and_several_pairs() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    // Atoms, as OX sends; several pairs in one command.
    let r = c.command(&format!("SETMETADATA \"\" ({ENABLED} yes {FILTER} active)")).await;
    assert_ok(&r, "atom values");
    assert_eq!(enabled(&mut c).await.as_deref(), Some("yes"));
    assert_eq!(filter(&mut c).await.as_deref(), Some("active"));
    // Quoted.
    set(&mut c, FILTER, "\"seen\"").await;
    assert_eq!(filter(&mut c).await.as_deref(), Some("seen"));
    // Synchronising literal.
    let first = format!("SETMETADATA \"\" ({FILTER} {{4}}");
    let r = command_with_literals(&mut c, &[first.as_bytes(), b"none)"]).await;
    assert_ok(&r, "literal value");
    assert_eq!(filter(&mut c).await.as_deref(), Some("none"));
    // LITERAL+: no continuation.
    let tag = c.tag();
    c.send_raw(format!("{tag} SETMETADATA \"\" ({FILTER} {{6+}}\r\nactive)\r\n").as_bytes()).await;
    let r = c.until_tagged(&tag).await;
    assert_ok(&r, "{n+} value");
    assert!(!r.text().contains('+'), "no continuation for LITERAL+: {}", r.text());
    assert_eq!(filter(&mut c).await.as_deref(), Some("active"));
    // NIL removes; an ordinary entry and a COI entry in one command.
    let r = c.command(&format!("SETMETADATA \"\" (/private/comment \"a \\\"b\\\" \\\\ c\" {FILTER} NIL)")).await;
    assert_ok(&r, "mixed pairs");
    assert_eq!(filter(&mut c).await, None, "R14: NIL resets the filter");
    assert_eq!(get_entry(&mut c, "\"\"", "/private/comment").await.as_deref(), Some(&b"a \"b\" \\ c"[..]));
    // UTF-8 in a quoted value (R5) comes back intact (as a literal or quoted).
    let r = c.command("SETMETADATA \"\" (/private/comment \"Grüße ☺\")").await;
    assert_ok(&r, "UTF-8 value");
    assert_eq!(get_entry(&mut c, "\"\"", "/private/comment").await, Some("Grüße ☺".as_bytes().to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_r7_mailbox_quoted_names_lower_case_lookup_case_insensitive() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "active").await;
    // Case-insensitive lookup; the answer uses the canonical lower-case name.
    let r = c.command("GETMETADATA \"\" /PRIVATE/Vendor/vendor.dovecot/coi/config/ENABLED").await;
    assert_ok(&r, "upper-case lookup");
    assert!(r.text().starts_with(&format!("* METADATA \"\" ({ENABLED} ")), "R6/R7: {}", r.text());
    assert_eq!(metadata(&r.data)[0].entries, vec![(ENABLED.to_owned(), Some(b"yes".to_vec()))]);
    // Setting through a mixed-case name is the same entry.
    set(&mut c, "/Private/VENDOR/vendor.dovecot/coi/config/Message-Filter", "seen").await;
    assert_eq!(filter(&mut c).await.as_deref(), Some("seen"));
    // Mailbox entries: the mailbox is quoted, INBOX in any case answers "INBOX".
    let r = c.command("SETMETADATA inbox (/private/comment \"inbox note\")").await;
    assert_ok(&r, "SETMETADATA INBOX");
    for mailbox in ["INBOX", "inbox", "\"Inbox\""] {
        let r = c.command(&format!("GETMETADATA {mailbox} /private/comment")).await;
        assert_ok(&r, "GETMETADATA INBOX");
        assert!(r.text().starts_with("* METADATA \"INBOX\" (/private/comment "), "R6: {}", r.text());
        assert_eq!(metadata(&r.data)[0].entries, vec![("/private/comment".to_owned(), Some(b"inbox note".to_vec()))]);
    }
    // COI config is server scope only: on INBOX it is just another (absent) entry.
    assert_eq!(get_entry(&mut c, "INBOX", ENABLED).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_r10_internal_names_unreachable_and_errors_carry_cannot() {
    let server = start(&[ALICE]).await;
    let mut c = login(&server, ALICE).await;
    enable(&mut c, "none").await;
    for e in [
        "/private/vendor/vendor.dovecot/pvt/server/x",
        "/private/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/coi/config/enabled",
    ] {
        assert_eq!(get_entry(&mut c, "\"\"", e).await, None, "R10: {e}");
        let r = c.command(&format!("SETMETADATA \"\" ({e} x)")).await;
        assert_cannot(&r, e);
        assert_eq!(get_entry(&mut c, "\"\"", e).await, None, "R10: {e} not stored");
    }
    // Unknown COI config keys and WebPush entries (WebPush is off) are refused with CANNOT.
    for (e, v) in [
        (format!("{CONFIG}/other"), "x"),
        ("/private/vendor/vendor.dovecot/webpush/vapid".to_owned(), "x"),
        ("/private/vendor/vendor.dovecot/webpush/subscriptions/0123456789abcdef".to_owned(), "\"{}\""),
    ] {
        let r = c.command(&format!("SETMETADATA \"\" ({e} {v})")).await;
        assert_cannot(&r, &e);
    }
    // WebPush off: no VAPID entry, and the depth-1 webpush read has nothing.
    let r = c.command("GETMETADATA (DEPTH 1) \"\" (/private/vendor/vendor.dovecot/webpush)").await;
    assert_ok(&r, "webpush read");
    assert!(metadata(&r.data).is_empty(), "{}", r.text());
}
