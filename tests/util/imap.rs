//! A minimal IMAP client: send a tagged command, collect the response lines
//! (literals included) until the tagged status.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub struct ImapClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_tag: u32,
}

/// One response: the untagged/continuation data as raw bytes, and the tagged status line.
#[derive(Debug)]
pub struct Response {
    pub data: Vec<u8>,
    pub status: String,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
    pub fn ok(&self) -> bool {
        self.status.split(' ').nth(1) == Some("OK")
    }
}

impl ImapClient {
    pub async fn connect(addr: SocketAddr) -> ImapClient {
        Self::on(TcpStream::connect(addr).await.unwrap()).await
    }

    /// A client on a connection already open (e.g. after a PROXY header).
    pub async fn on(stream: TcpStream) -> ImapClient {
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        let mut c = ImapClient { reader: BufReader::new(r), writer: w, next_tag: 1 };
        let greeting = c.read_line().await;
        assert!(greeting.starts_with(b"* OK"), "greeting: {}", String::from_utf8_lossy(&greeting));
        c
    }

    /// A client on a connection whose greeting has been read already.
    pub fn on_greeted(stream: TcpStream) -> ImapClient {
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        ImapClient { reader: BufReader::new(r), writer: w, next_tag: 1 }
    }

    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> ImapClient {
        let mut c = Self::connect(addr).await;
        let r = c.command(&format!("LOGIN \"{user}\" \"{password}\"")).await;
        assert!(r.ok(), "login failed: {}", r.status);
        c
    }

    /// Reads one line including CRLF; with a trailing `{n}` literal, the literal and the rest too.
    pub async fn read_line(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_until(b'\n', &mut line))
                .await
                .expect("IMAP read timed out")
                .unwrap();
            assert!(n > 0, "IMAP server closed the connection; so far: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&line);
            match literal_len(&line) {
                Some(len) => {
                    let mut lit = vec![0; len];
                    self.reader.read_exact(&mut lit).await.unwrap();
                    out.extend_from_slice(&lit);
                }
                None => return out,
            }
        }
    }

    /// The raw read side, e.g. to see the connection close.
    pub fn reader_mut(&mut self) -> &mut BufReader<OwnedReadHalf> {
        &mut self.reader
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    pub fn tag(&mut self) -> String {
        let t = format!("A{:03}", self.next_tag);
        self.next_tag += 1;
        t
    }

    pub async fn command(&mut self, cmd: &str) -> Response {
        let tag = self.tag();
        self.send_raw(format!("{tag} {cmd}\r\n").as_bytes()).await;
        self.until_tagged(&tag).await
    }

    pub async fn until_tagged(&mut self, tag: &str) -> Response {
        let mut data = Vec::new();
        loop {
            let line = self.read_line().await;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                let status = String::from_utf8_lossy(&line).trim_end().to_owned();
                return Response { data, status };
            }
            data.extend_from_slice(&line);
        }
    }
}

pub fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?;
    let line = line.strip_suffix(b"}")?;
    let start = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[start + 1..]).ok()?.trim_end_matches('+').parse().ok()
}

/// `* N EXISTS` in a response, if any.
pub fn exists(text: &str) -> Option<u32> {
    text.lines().rev().find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
}
