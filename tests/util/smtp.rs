//! A minimal SMTP client for tests that need to see every reply.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl SmtpClient {
    pub async fn connect(addr: SocketAddr) -> SmtpClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        let mut c = SmtpClient { reader: BufReader::new(r), writer: w };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220"), "greeting: {greeting}");
        c
    }

    /// Reads a whole (possibly multi-line) reply.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
                .await
                .expect("SMTP read timed out")
                .unwrap();
            assert!(n > 0, "SMTP server closed the connection after {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }

    /// EHLO .. DATA for one message; returns the reply to the final dot.
    pub async fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        let r = self.cmd("EHLO client.test").await;
        assert!(r.starts_with("250"), "{r}");
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(r.starts_with("250"), "{r}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert!(r.starts_with("250"), "{r}");
        }
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354"), "{r}");
        let mut body = Vec::new();
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                body.push(b'.');
            }
            body.extend_from_slice(line);
        }
        body.extend_from_slice(b".\r\n");
        self.writer.write_all(&body).await.unwrap();
        self.reply().await
    }
}
