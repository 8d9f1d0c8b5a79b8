//! IMAP for crash tests: connections that keep many tagged commands in
//! flight and record exactly which tagged responses arrived before the
//! daemon died, a STATUS poller that remembers the highest UIDNEXT and
//! HIGHESTMODSEQ any client was shown, and a full read-back of a mailbox
//! (UID, flags, bytes of every message) to compare with after a restart.

use super::imap::literal_len;
use super::{ImapClient, PASSWORD};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Semaphore;

/// splitmix64: the kill moments and workloads come from a seed so a failing
/// run can be repeated (`COIMAIL_CRASH_SEED=<n>`).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.range(0, i as u64 + 1) as usize);
        }
    }
}

/// The seed of this run: `COIMAIL_CRASH_SEED`, or a fixed default so CI is repeatable.
pub fn seed() -> u64 {
    std::env::var("COIMAIL_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11)
}

/// What one pipelined connection saw. A tag is in `sent` from just before
/// its bytes are written, so `sent` may hold a command the server never
/// read: such a command counts as uncertain, never as "certainly not done".
#[derive(Default, Debug)]
pub struct Record {
    pub sent: BTreeSet<String>,
    /// Tagged status lines by tag (`OK [APPENDUID 1 5] ...`, `NO ...`).
    pub answers: HashMap<String, String>,
}

impl Record {
    pub fn ok(&self, tag: &str) -> bool {
        self.answers.get(tag).is_some_and(|s| s.starts_with("OK"))
    }

    pub fn oks(&self) -> usize {
        self.answers.values().filter(|s| s.starts_with("OK")).count()
    }
}

pub type Shared = Arc<Mutex<Record>>;

/// OKs over all connections' records, for deciding when to kill.
pub fn total_oks(records: &[Shared]) -> usize {
    records.iter().map(|r| r.lock().unwrap().oks()).sum()
}

/// Reads one response line (with any literal in it); `None` at EOF or error.
async fn read_response(r: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        out.extend_from_slice(&line);
        match literal_len(&line) {
            Some(len) => {
                let mut lit = vec![0; len];
                r.read_exact(&mut lit).await.ok()?;
                out.extend_from_slice(&lit);
            }
            None => return Some(out),
        }
    }
}

/// Logs in as `user`, selects `mailbox`, then writes `commands` (tag, whole
/// command bytes including CRLF; literals must be LITERAL+) with at most
/// `window` unanswered at a time, recording every tagged answer in `rec`
/// as it arrives. Returns when all are answered or the connection breaks.
pub async fn run(
    addr: SocketAddr,
    user: &str,
    mailbox: &str,
    commands: Vec<(String, Vec<u8>)>,
    window: usize,
    rec: Shared,
) {
    let Ok(stream) = TcpStream::connect(addr).await else { return };
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    if read_response(&mut r).await.is_none() {
        return;
    }
    let setup = format!("s1 LOGIN \"{user}\" \"{PASSWORD}\"\r\ns2 SELECT \"{mailbox}\"\r\n");
    if w.write_all(setup.as_bytes()).await.is_err() {
        return;
    }
    loop {
        let Some(line) = read_response(&mut r).await else { return };
        if line.starts_with(b"s2 OK") {
            break;
        }
        if line.starts_with(b"s1 NO") || line.starts_with(b"s2 NO") || line.starts_with(b"s2 BAD") {
            panic!("setup refused: {}", String::from_utf8_lossy(&line));
        }
    }
    let permits = Arc::new(Semaphore::new(window.max(1)));
    let count = commands.len();
    let writer = {
        let (permits, rec) = (permits.clone(), rec.clone());
        async move {
            for (tag, bytes) in commands {
                let Ok(p) = permits.acquire().await else { break };
                p.forget();
                rec.lock().unwrap().sent.insert(tag);
                if w.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            // The write half stays open until the reader is done: closing it
            // would end the session before the last answers, and after a
            // failed write the reader still has answers to drain before EOF.
            std::future::pending::<()>().await;
        }
    };
    let reader = async move {
        let mut answered = 0;
        while answered < count {
            let Some(line) = read_response(&mut r).await else { return };
            if line.starts_with(b"* ") || line.starts_with(b"+ ") {
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let Some((tag, status)) = text.trim_end().split_once(' ') else { continue };
            rec.lock().unwrap().answers.insert(tag.to_owned(), status.to_owned());
            answered += 1;
            permits.add_permits(1);
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}

/// The highest values any client was shown for one mailbox.
#[derive(Default, Debug, Clone, Copy)]
pub struct Seen {
    pub uidvalidity: u64,
    pub uidnext: u64,
    pub highestmodseq: u64,
}

/// `NAME value` inside a STATUS or response-code text.
pub fn field(text: &str, name: &str) -> Option<u64> {
    let at = text.find(&format!("{name} "))? + name.len() + 1;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Asks STATUS for `mailboxes` over and over until the connection breaks,
/// keeping the highest UIDNEXT and HIGHESTMODSEQ it was told per mailbox.
pub async fn poll_status(
    addr: SocketAddr,
    user: String,
    mailboxes: Vec<String>,
    seen: Arc<Mutex<BTreeMap<String, Seen>>>,
) {
    let Ok(stream) = TcpStream::connect(addr).await else { return };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    if read_response(&mut r).await.is_none() {
        return;
    }
    if w.write_all(format!("l LOGIN \"{user}\" \"{PASSWORD}\"\r\n").as_bytes()).await.is_err() {
        return;
    }
    loop {
        let Some(line) = read_response(&mut r).await else { return };
        if line.starts_with(b"l ") {
            break;
        }
    }
    for i in 0u64.. {
        let mailbox = &mailboxes[i as usize % mailboxes.len()];
        let cmd = format!("p{i} STATUS \"{mailbox}\" (UIDNEXT UIDVALIDITY HIGHESTMODSEQ)\r\n");
        if w.write_all(cmd.as_bytes()).await.is_err() {
            return;
        }
        loop {
            let Some(line) = read_response(&mut r).await else { return };
            let text = String::from_utf8_lossy(&line);
            if text.starts_with("* STATUS") {
                let mut seen = seen.lock().unwrap();
                let s = seen.entry(mailbox.clone()).or_default();
                s.uidvalidity = field(&text, "UIDVALIDITY").unwrap_or(s.uidvalidity);
                s.uidnext = s.uidnext.max(field(&text, "UIDNEXT").unwrap_or(0));
                s.highestmodseq = s.highestmodseq.max(field(&text, "HIGHESTMODSEQ").unwrap_or(0));
            } else if text.starts_with(&format!("p{i} ")) {
                break;
            }
        }
    }
}

/// One message as read back.
#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u64,
    pub flags: String,
    pub bytes: Vec<u8>,
}

/// A whole mailbox as read back after a restart.
#[derive(Debug, Default)]
pub struct Mailbox {
    pub uidvalidity: u64,
    pub uidnext: u64,
    pub highestmodseq: u64,
    pub messages: Vec<Msg>,
}

/// The `msg-N` number of a test message (`util::message`).
pub fn number(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    text.split("Message-ID: <msg-").nth(1)?.split('@').next()?.parse().ok()
}

impl Mailbox {
    /// Messages by number; a number there twice is listed twice.
    pub fn by_number(&self) -> BTreeMap<usize, Vec<&Msg>> {
        let mut out: BTreeMap<usize, Vec<&Msg>> = BTreeMap::new();
        for m in &self.messages {
            out.entry(number(&m.bytes).unwrap_or(usize::MAX)).or_default().push(m);
        }
        out
    }

    /// The largest UID in the mailbox, 0 if empty.
    pub fn max_uid(&self) -> u64 {
        self.messages.iter().map(|m| m.uid).max().unwrap_or(0)
    }
}

/// STATUS, then every message's UID, flags and bytes, on a connection of its own.
pub async fn read_mailbox(c: &mut ImapClient, mailbox: &str) -> Mailbox {
    let r = c.command(&format!("STATUS \"{mailbox}\" (UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")).await;
    assert!(r.ok(), "{}", r.status);
    let text = r.text();
    let mut out = Mailbox {
        uidvalidity: field(&text, "UIDVALIDITY").unwrap(),
        uidnext: field(&text, "UIDNEXT").unwrap(),
        highestmodseq: field(&text, "HIGHESTMODSEQ").unwrap(),
        messages: Vec::new(),
    };
    let r = c.command(&format!("EXAMINE \"{mailbox}\"")).await;
    assert!(r.ok(), "{}", r.status);
    if super::imap::exists(&r.text()) == Some(0) {
        return out;
    }
    let tag = c.tag();
    c.send_raw(format!("{tag} UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\n").as_bytes()).await;
    loop {
        let line = c.read_line().await;
        if line.starts_with(format!("{tag} ").as_bytes()) {
            assert!(line.starts_with(format!("{tag} OK").as_bytes()), "{}", String::from_utf8_lossy(&line));
            return out;
        }
        if let Some(m) = parse_fetch(&line) {
            out.messages.push(m);
        }
    }
}

/// `* n FETCH (UID u FLAGS (...) BODY[] {len}\r\n<bytes>)` in any item order.
fn parse_fetch(line: &[u8]) -> Option<Msg> {
    let open = line.iter().position(|&b| b == b'{')?;
    let close = open + line[open..].iter().position(|&b| b == b'}')?;
    let len: usize = std::str::from_utf8(&line[open + 1..close]).ok()?.parse().ok()?;
    let start = close + 3;
    let bytes = line.get(start..start + len)?.to_vec();
    let around = format!(
        "{} {}",
        String::from_utf8_lossy(&line[..open]),
        String::from_utf8_lossy(line.get(start + len..).unwrap_or_default())
    );
    let uid = field(&around, "UID")?;
    let flags = around.split("FLAGS (").nth(1)?.split(')').next()?.to_owned();
    Some(Msg { uid, flags, bytes })
}
