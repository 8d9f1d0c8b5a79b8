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
        Self::on(TcpStream::connect(addr).await.unwrap()).await
    }

    /// A client on a connection already open (e.g. after a PROXY header).
    pub async fn on(stream: TcpStream) -> SmtpClient {
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

    /// Writes `bytes` as they are (BDAT chunks); read the reply with [`SmtpClient::reply`].
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }

    /// EHLO .. DATA for one message; returns the reply to the final dot.
    pub async fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        let r = self.cmd("EHLO client.test").await;
        assert!(r.starts_with("250"), "{r}");
        let rcpts: Vec<String> = to.iter().map(|r| format!("RCPT TO:<{r}>")).collect();
        let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        self.transaction(&format!("MAIL FROM:<{from}>"), &rcpts, message).await
    }

    /// MAIL and RCPT as given (with parameters), each expecting 250, then
    /// the message; returns the reply to the final dot.
    pub async fn transaction(&mut self, mail: &str, rcpts: &[&str], message: &[u8]) -> String {
        let r = self.cmd(mail).await;
        assert!(r.starts_with("250"), "{mail}: {r}");
        for rcpt in rcpts {
            let r = self.cmd(rcpt).await;
            assert!(r.starts_with("250"), "{rcpt}: {r}");
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

/// A scriptable remote mail server for queue tests: advertises the
/// extensions it is given, answers RCPT with `rcpt_reply`, waits `delay`
/// before answering the end of the data (a slow server), and records what
/// it was sent. Several servers may share one [`FakeState`], so they count
/// connections together (one destination domain with two MX hosts).
pub struct FakeMx {
    task: tokio::task::JoinHandle<()>,
}

/// One transaction as the fake server saw it.
#[derive(Debug, Clone, Default)]
pub struct FakeTransaction {
    /// The server's address (which MX host got it).
    pub server: Option<SocketAddr>,
    pub mail: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

pub struct FakeState {
    /// Extension lines after the EHLO greeting, e.g. "DSN", "8BITMIME".
    pub extensions: Vec<&'static str>,
    pub delay: Duration,
    pub rcpt_reply: std::sync::Mutex<String>,
    pub open: std::sync::atomic::AtomicUsize,
    pub max_open: std::sync::atomic::AtomicUsize,
    pub transactions: std::sync::Mutex<Vec<FakeTransaction>>,
}

impl FakeState {
    pub fn new(extensions: &[&'static str], delay: Duration) -> std::sync::Arc<FakeState> {
        std::sync::Arc::new(FakeState {
            extensions: extensions.to_vec(),
            delay,
            rcpt_reply: std::sync::Mutex::new("250 2.1.5 ok".into()),
            open: Default::default(),
            max_open: Default::default(),
            transactions: Default::default(),
        })
    }

    pub fn max_open(&self) -> usize {
        self.max_open.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn transactions(&self) -> Vec<FakeTransaction> {
        self.transactions.lock().unwrap().clone()
    }

    /// Waits until `n` transactions have been accepted.
    pub async fn wait_transactions(&self, n: usize, within: Duration) -> Vec<FakeTransaction> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let t = self.transactions();
            if t.len() >= n {
                return t;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} of {n} transactions: {t:?}", t.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl FakeMx {
    pub async fn start(addr: SocketAddr, state: std::sync::Arc<FakeState>) -> FakeMx {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let open = state.open.fetch_add(1, SeqCst) + 1;
                    state.max_open.fetch_max(open, SeqCst);
                    let _ = fake_session(stream, addr, &state).await;
                    state.open.fetch_sub(1, SeqCst);
                });
            }
        });
        FakeMx { task }
    }
}

impl Drop for FakeMx {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_session(stream: TcpStream, addr: SocketAddr, state: &FakeState) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 fake.test ESMTP\r\n").await?;
    let mut tx = FakeTransaction { server: Some(addr), ..Default::default() };
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => {
                let mut s = String::from("250-fake.test\r\n");
                for ext in &state.extensions {
                    s.push_str(&format!("250-{ext}\r\n"));
                }
                s.push_str("250 PIPELINING\r\n");
                s
            }
            "MAIL" => {
                tx = FakeTransaction { server: Some(addr), mail: line.trim_end().to_owned(), ..Default::default() };
                "250 2.1.0 ok\r\n".into()
            }
            "RCPT" => {
                let reply = state.rcpt_reply.lock().unwrap().clone();
                if reply.starts_with('2') {
                    tx.rcpts.push(line.trim_end().to_owned());
                }
                format!("{reply}\r\n")
            }
            "DATA" => {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    data.extend_from_slice(l.strip_prefix(b".").filter(|_| l.starts_with(b"..")).unwrap_or(&l));
                }
                tokio::time::sleep(state.delay).await;
                tx.data = data;
                state.transactions.lock().unwrap().push(std::mem::take(&mut tx));
                "250 2.0.0 queued here\r\n".into()
            }
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "250 2.0.0 ok\r\n".into(),
        };
        w.write_all(reply.as_bytes()).await?;
    }
}
