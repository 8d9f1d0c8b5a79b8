//! A loopback stand-in for the Delta Chat notification proxy
//! (`notifications.delta.chat/notify`): plain HTTP/1.1 on 127.0.0.1 port 0,
//! keep-alive connections, `Content-Length` bodies. Every POST is recorded
//! (and announced) as soon as its body is read, then answered with the next
//! scripted status (default 200). [`NotifyProxy::stall`] holds every answer
//! back until the returned guard is dropped, as a hung proxy would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const MAX_REQUEST: usize = 64 * 1024;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Post {
    pub method: String,
    pub path: String,
    pub body: String,
    pub arrived: Instant,
}

struct State {
    script: Mutex<VecDeque<u16>>,
    stalled: watch::Sender<bool>,
    posts: mpsc::UnboundedSender<Post>,
}

pub struct NotifyProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    received: mpsc::UnboundedReceiver<Post>,
    task: tokio::task::JoinHandle<()>,
}

/// Holds the proxy's answers back until dropped.
pub struct Stall(Arc<State>);

impl Drop for Stall {
    fn drop(&mut self) {
        self.0.stalled.send_replace(false);
    }
}

impl NotifyProxy {
    pub async fn start() -> NotifyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let state =
            Arc::new(State { script: Mutex::new(VecDeque::new()), stalled: watch::channel(false).0, posts: tx });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &state).await;
                });
            }
        });
        NotifyProxy { addr, state, received, task }
    }

    /// The URL to set as `[deltachat] notify_url`.
    pub fn url(&self) -> String {
        format!("http://{}/notify", self.addr)
    }

    /// Statuses for the next requests, in order; then 200 again.
    pub fn script(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses);
    }

    pub fn stall(&self) -> Stall {
        self.state.stalled.send_replace(true);
        Stall(self.state.clone())
    }

    /// The next request, failing the test if none comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Post {
        tokio::time::timeout(within, self.received.recv())
            .await
            .expect("no request reached the notification proxy in time")
            .expect("proxy stopped")
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn none_for(&mut self, wait: Duration) {
        if let Ok(Some(post)) = tokio::time::timeout(wait, self.received.recv()).await {
            panic!("unexpected request at the notification proxy: {post:?}");
        }
    }
}

impl Drop for NotifyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_REQUEST {
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let path = request_line.next().unwrap_or_default().to_owned();
        let length: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        buf.drain(..head_end + length);
        let _ = state.posts.send(Post { method, path, body, arrived: Instant::now() });
        let mut stalled = state.stalled.subscribe();
        while *stalled.borrow_and_update() {
            if stalled.changed().await.is_err() {
                return Ok(());
            }
        }
        let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
        let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        stream.write_all(reply.as_bytes()).await?;
    }
}
