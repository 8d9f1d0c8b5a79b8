//! Slow clients for the deadline tests: connections from a chosen loopback
//! address (all of 127/8 reaches a server on 127.0.0.1) that send a little
//! at a time and record how the server ended them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `addr` from `src` (e.g. "127.0.0.2").
pub async fn connect_from(src: &str, addr: SocketAddr) -> TcpStream {
    let src: IpAddr = src.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(src, 0)).unwrap();
    tokio::time::timeout(Duration::from_secs(10), socket.connect(addr)).await.expect("connect timed out").unwrap()
}

/// What a slow client sends: `prefix` at once, then one piece of `drip`
/// every `every`, round and round.
#[derive(Debug, Clone)]
pub struct Script {
    pub prefix: Vec<u8>,
    pub drip: Vec<Vec<u8>>,
    pub every: Duration,
}

impl Script {
    /// `prefix`, then `text` one byte at a time.
    pub fn bytes(prefix: &str, text: &str, every: Duration) -> Script {
        Script { prefix: prefix.into(), drip: text.bytes().map(|b| vec![b]).collect(), every }
    }

    /// `prefix`, then the whole of `piece` each time.
    pub fn pieces(prefix: &str, piece: &[u8], every: Duration) -> Script {
        Script { prefix: prefix.into(), drip: vec![piece.to_vec()], every }
    }
}

/// How the server ended a slow connection.
#[derive(Debug, Clone)]
pub struct Ending {
    /// Everything the server sent, lossily as text.
    pub said: String,
    /// From connected to closed by the server (or `limit`, if it never closed).
    pub lived: Duration,
    /// The server closed the connection before `limit`.
    pub closed: bool,
}

impl Ending {
    /// The first line the server sent (greeting or refusal).
    pub fn first_line(&self) -> &str {
        self.said.lines().next().unwrap_or("")
    }

    /// The last line the server sent before closing.
    pub fn last_line(&self) -> &str {
        self.said.lines().last().unwrap_or("")
    }
}

/// Connects from `src` and plays `script` until the server closes the
/// connection, or gives up after `limit`.
pub async fn dribble(src: &str, addr: SocketAddr, script: &Script, limit: Duration) -> Ending {
    let stream = connect_from(src, addr).await;
    let start = Instant::now();
    let (mut r, mut w) = stream.into_split();
    let read = async {
        let mut all = Vec::new();
        // A reset (we wrote to a closed socket) ends the read like a close.
        let closed = tokio::time::timeout(limit, r.read_to_end(&mut all)).await.is_ok();
        (all, closed)
    };
    let write = async {
        if w.write_all(&script.prefix).await.is_ok() {
            for piece in script.drip.iter().cycle() {
                tokio::time::sleep(script.every).await;
                if w.write_all(piece).await.is_err() {
                    break;
                }
            }
        }
        std::future::pending::<()>().await;
    };
    let (all, closed) = tokio::select! {
        r = read => r,
        _ = write => unreachable!(),
    };
    Ending { said: String::from_utf8_lossy(&all).into_owned(), lived: start.elapsed(), closed }
}
