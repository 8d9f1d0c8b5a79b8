//! COMPRESS (RFC 4978): DEFLATE both ways for the rest of the connection.
//!
//! The command only decides; `conn` does the compressing (see its module
//! doc for the sync-flush rule and the caps on decompressed input). The
//! tagged OK goes out uncompressed, and compression starts right after its
//! CRLF (§3), which is why the switch happens in `Session::finish`, as for
//! STARTTLS. Valid only after login (the `command-auth` grammar, checked by
//! the session's state check), and over TLS too: DEFLATE sits on top of it.

use crate::error::ImapError;
use crate::session::{CmdResult, Done, Session, Then};

pub(crate) fn compress(s: &mut Session) -> CmdResult {
    // imap-codec only decodes `COMPRESS DEFLATE`; any other algorithm is BAD (§3).
    if s.conn.is_compressed() {
        // §3: NO with COMPRESSIONACTIVE when this layer is already compressed.
        return Err(ImapError::No { code: None, text: "[COMPRESSIONACTIVE] DEFLATE is already active".into() });
    }
    Ok(Done { code: None, text: "DEFLATE active".into(), then: Then::Compress })
}

/// Sends the OK (uncompressed) and turns DEFLATE on. False: the connection is gone.
pub(crate) async fn start(s: &mut Session) -> bool {
    if s.conn.flush().await.is_err() {
        return false;
    }
    // `compress` refused a second COMPRESS already, so this cannot fail.
    s.conn.start_deflate().is_ok()
}

#[cfg(test)]
mod tests {
    use crate::testing::{PASSWORD, TestServer, USER};
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const WAIT: Duration = Duration::from_secs(10);

    /// A client that turns COMPRESS on, then deflates what it sends (sync
    /// flush per write, as real clients do) and inflates what it reads.
    struct ZClient {
        tcp: TcpStream,
        /// Bytes read from the socket not yet inflated (or, before COMPRESS, not yet consumed).
        raw: Vec<u8>,
        /// Inflated input not yet consumed.
        buf: Vec<u8>,
        z: Option<(Compress, Decompress)>,
    }

    impl ZClient {
        /// Connects, logs in and (if `select`) selects INBOX, all uncompressed.
        async fn login(srv: &TestServer, select: bool) -> ZClient {
            let tcp = TcpStream::connect(srv.addr).await.unwrap();
            let mut c = ZClient { tcp, raw: Vec::new(), buf: Vec::new(), z: None };
            assert!(c.plain_line().await.starts_with("* OK"));
            assert!(c.command("l", &format!("LOGIN {USER} {PASSWORD}")).await.last().unwrap().starts_with("l OK"));
            if select {
                assert!(c.command("s", "SELECT INBOX").await.last().unwrap().starts_with("s OK"));
            }
            c
        }

        /// `COMPRESS DEFLATE`, then compression on.
        async fn compress(&mut self) {
            let r = self.command("z", "COMPRESS DEFLATE").await;
            assert_eq!(r.last().unwrap(), "z OK DEFLATE active", "{r:?}");
            self.start();
        }

        fn start(&mut self) {
            assert!(self.buf.is_empty(), "uncompressed data after the OK: {:?}", self.buf);
            self.z = Some((Compress::new(Compression::default(), false), Decompress::new(false)));
        }

        fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
            let (c, _) = self.z.as_mut().unwrap();
            let mut out = Vec::with_capacity(data.len() + 64);
            let mut input = data;
            loop {
                out.reserve(4096);
                let before = c.total_in();
                c.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
                input = &input[(c.total_in() - before) as usize..];
                if input.is_empty() && out.len() < out.capacity() {
                    return out;
                }
            }
        }

        async fn send_raw(&mut self, data: &[u8]) {
            let bytes = if self.z.is_some() { self.deflate(data) } else { data.to_vec() };
            self.tcp.write_all(&bytes).await.unwrap();
        }

        async fn send(&mut self, line: &str) {
            self.send_raw(format!("{line}\r\n").as_bytes()).await;
        }

        /// Makes more input available in `buf`; false at end of stream.
        async fn more(&mut self) -> bool {
            loop {
                if let Some((_, d)) = self.z.as_mut()
                    && !self.raw.is_empty()
                {
                    let mut out = Vec::with_capacity(64 * 1024);
                    let before = d.total_in();
                    d.decompress_vec(&self.raw, &mut out, FlushDecompress::None).unwrap();
                    self.raw.drain(..(d.total_in() - before) as usize);
                    if !out.is_empty() {
                        self.buf.extend_from_slice(&out);
                        return true;
                    }
                } else if self.z.is_none() && !self.raw.is_empty() {
                    self.buf.append(&mut self.raw);
                    return true;
                }
                let n = tokio::time::timeout(WAIT, self.tcp.read_buf(&mut self.raw))
                    .await
                    .expect("server did not answer in time")
                    .unwrap_or(0);
                if n == 0 {
                    return false;
                }
            }
        }

        async fn line(&mut self) -> String {
            loop {
                if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = self.buf.drain(..p + 2).take(p).collect();
                    return String::from_utf8_lossy(&line).into_owned();
                }
                assert!(self.more().await, "closed; unread: {:?}", String::from_utf8_lossy(&self.buf));
            }
        }

        /// Before COMPRESS, only what the server sent uncompressed may be
        /// consumed: a line is taken from `raw` without reading ahead.
        async fn plain_line(&mut self) -> String {
            loop {
                if let Some(p) = self.raw.windows(2).position(|w| w == b"\r\n") {
                    let line: Vec<u8> = self.raw.drain(..p + 2).take(p).collect();
                    return String::from_utf8_lossy(&line).into_owned();
                }
                let n = tokio::time::timeout(WAIT, self.tcp.read_buf(&mut self.raw)).await.unwrap().unwrap();
                assert!(n > 0);
            }
        }

        /// A whole response with any literals inline.
        async fn response(&mut self) -> String {
            let mut out = self.line().await;
            while let Some(n) =
                out.strip_suffix('}').and_then(|s| s.rsplit_once('{')).and_then(|(_, n)| n.parse::<usize>().ok())
            {
                while self.buf.len() < n {
                    assert!(self.more().await, "closed inside a literal");
                }
                let lit: Vec<u8> = self.buf.drain(..n).collect();
                out.push_str("\r\n");
                out.push_str(&String::from_utf8_lossy(&lit));
                out.push_str(&self.line().await);
            }
            out
        }

        async fn command(&mut self, tag: &str, cmd: &str) -> Vec<String> {
            self.send(&format!("{tag} {cmd}")).await;
            let mut all = Vec::new();
            loop {
                let r = if self.z.is_none() { self.plain_line().await } else { self.response().await };
                let done = r.starts_with(&format!("{tag} "));
                all.push(r);
                if done {
                    return all;
                }
            }
        }
    }

    #[tokio::test]
    async fn commands_and_idle_exists_arrive_without_further_input() {
        let srv = TestServer::start().await;
        srv.deliver(b"Subject: one\r\n\r\nfirst message\r\n").await;
        let mut c = ZClient::login(&srv, true).await;
        c.compress().await;
        assert_eq!(c.command("a1", "NOOP").await, ["a1 OK NOOP completed"]);
        let r = c.command("a2", "FETCH 1 (BODY.PEEK[TEXT])").await;
        assert_eq!(r, ["* 1 FETCH (BODY[TEXT] {15}\r\nfirst message\r\n)", "a2 OK FETCH completed"]);

        c.send("a3 IDLE").await;
        assert_eq!(c.line().await, "+ idling");
        // The bug that makes mox ship COMPRESS disabled: the EXISTS sits in
        // the compressor until the client sends something. Here the client
        // sends nothing at all and must still see it at once.
        srv.deliver(b"Subject: two\r\n\r\n2\r\n").await;
        let exists = tokio::time::timeout(Duration::from_millis(500), c.line()).await;
        assert_eq!(exists.expect("EXISTS within 500 ms with no client input"), "* 2 EXISTS");
        assert_eq!(c.line().await, "* 2 RECENT");
        srv.deliver(b"Subject: three\r\n\r\n3\r\n").await;
        assert_eq!(tokio::time::timeout(Duration::from_millis(500), c.line()).await.unwrap(), "* 3 EXISTS");
        assert_eq!(c.line().await, "* 3 RECENT");
        c.send("DONE").await;
        assert_eq!(c.line().await, "a3 OK IDLE terminated");
        let r = c.command("a4", "LOGOUT").await;
        assert_eq!(r.last().unwrap(), "a4 OK LOGOUT completed", "{r:?}");
        assert!(!c.more().await, "connection closed after LOGOUT");
    }

    #[tokio::test]
    async fn second_compress_is_refused_and_bad_forms_are_bad() {
        let srv = TestServer::start().await;
        let tcp = TcpStream::connect(srv.addr).await.unwrap();
        let mut c = ZClient { tcp, raw: Vec::new(), buf: Vec::new(), z: None };
        c.plain_line().await;
        // Only after login (RFC 4978 §5: command-auth).
        assert_eq!(c.command("a1", "COMPRESS DEFLATE").await, ["a1 BAD COMPRESS is not valid before login"]);
        c.command("l", &format!("LOGIN {USER} {PASSWORD}")).await;
        assert_eq!(c.command("a2", "COMPRESS LZMA").await, ["a2 BAD Syntax error in COMPRESS arguments"]);
        c.compress().await;
        assert_eq!(c.command("a3", "COMPRESS DEFLATE").await, ["a3 NO [COMPRESSIONACTIVE] DEFLATE is already active"]);
        assert_eq!(c.command("a4", "NOOP").await, ["a4 OK NOOP completed"]);
    }

    #[tokio::test]
    async fn input_pipelined_after_compress_is_inflated() {
        let srv = TestServer::start().await;
        let mut c = ZClient::login(&srv, false).await;
        // COMPRESS and, in the same write, a compressed command behind it
        // (the client's DEFLATE stream starts right after the COMPRESS line).
        c.z = Some((Compress::new(Compression::default(), false), Decompress::new(false)));
        let mut bytes = b"z COMPRESS DEFLATE\r\n".to_vec();
        bytes.extend(c.deflate(b"n1 NOOP\r\n"));
        c.tcp.write_all(&bytes).await.unwrap();
        assert_eq!(c.plain_line().await, "z OK DEFLATE active");
        // Everything after the OK is compressed; `raw` keeps what followed it.
        assert_eq!(c.line().await, "n1 OK NOOP completed");
        assert_eq!(c.command("n2", "NOOP").await, ["n2 OK NOOP completed"]);
    }

    #[tokio::test]
    async fn large_responses_and_literals_survive_compression() {
        let srv = TestServer::start().await;
        // Over WRITE_CHUNK, so part of it goes out without a sync flush.
        let mut big = b"Subject: big\r\n\r\n".to_vec();
        let mut n = 0u64;
        while big.len() < 700_000 {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            big.extend_from_slice(format!("{:016x} line {}\r\n", n, big.len()).as_bytes());
        }
        srv.deliver(&big).await;
        let mut c = ZClient::login(&srv, true).await;
        c.compress().await;
        let r = c.command("f", "FETCH 1 BODY.PEEK[]").await;
        let expected = format!("* 1 FETCH (BODY[] {{{}}}\r\n{})", big.len(), String::from_utf8_lossy(&big));
        assert!(r[0] == expected, "FETCH BODY[] differs ({} vs {} bytes)", r[0].len(), expected.len());
        // A synchronising literal through the compressed stream (APPEND).
        let msg = "Subject: appended\r\n\r\nhello\r\n";
        c.send(&format!("a APPEND INBOX {{{}}}", msg.len())).await;
        assert_eq!(c.line().await, "+ Ready for literal data");
        c.send(msg).await;
        let ok = c.line().await;
        assert!(ok.starts_with("* 2 EXISTS") || ok.starts_with("a OK"), "{ok}");
    }

    #[tokio::test]
    async fn decompressed_input_is_held_to_the_line_and_literal_caps() {
        let srv = TestServer::start().await;
        let mut c = ZClient::login(&srv, true).await;
        c.compress().await;
        // 8 MB of one overlong line deflates to ~8 KB: it must be thrown
        // away as it inflates, and the session goes on.
        let mut bomb = b"a1 NOOP ".to_vec();
        bomb.resize(8 << 20, b'x');
        bomb.extend_from_slice(b"\r\n");
        c.send_raw(&bomb).await;
        assert_eq!(c.line().await, "a1 BAD Line too long");
        // A literal over the cap is refused before its data.
        c.send("a2 APPEND INBOX {2000000}").await;
        assert_eq!(c.line().await, "a2 NO [TOOBIG] Literal too big (at most 1048576 octets)");
        assert_eq!(c.command("a3", "NOOP").await, ["a3 OK NOOP completed"]);
    }
}
