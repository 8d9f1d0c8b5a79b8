//! Abuse limits of issue 11, each tried the way an attacker would, over real
//! sockets: password guessing between logins to an account one owns,
//! sessions that outlive their user or password, control characters in
//! logged peer input, a world-readable data dir, quota defaults, sender
//! addresses that belong to another user, and PROXY protocol headers.

use crate::util::mailhost::base64;
use crate::util::{ImapClient, PASSWORD, SmtpClient, TestServer};

const OWNER: &str = "mallory@example.org";
const VICTIM: &str = "victim@example.org";

/// Guessing `VICTIM`'s password over IMAP LOGIN, with a good login to
/// `OWNER` after every guess: the guesses still add up, and after
/// `max_failures` of them the peer is refused (before, each good login
/// reset the peer's count, so guessing never stopped).
#[tokio::test]
async fn imap_guesses_between_good_logins_are_throttled() {
    let srv = TestServer::start_with(&[OWNER, VICTIM], |c| c.auth.max_failures = 3).await;
    let login = |user: &'static str, pw: String| {
        let addr = srv.imap();
        async move { ImapClient::connect(addr).await.command(&format!("LOGIN {user} \"{pw}\"")).await.status }
    };
    for guess in 0..3 {
        let r = login(VICTIM, format!("guess {guess}")).await;
        assert!(r.contains("NO [AUTHENTICATIONFAILED]"), "{r}");
        let r = login(OWNER, PASSWORD.into()).await;
        if guess < 2 {
            assert!(r.contains(" OK "), "{r}");
        } else {
            assert!(r.contains("NO [UNAVAILABLE]"), "the third failure throttles the peer: {r}");
        }
    }
    for pw in ["guess 3".to_owned(), PASSWORD.to_owned()] {
        let r = login(VICTIM, pw).await;
        assert!(r.contains("NO [UNAVAILABLE]"), "{r}");
    }
}

/// The same over SMTP AUTH PLAIN on the submission port, in one session.
#[tokio::test]
async fn smtp_auth_guesses_between_good_logins_are_throttled() {
    let srv = TestServer::start_with(&[OWNER, VICTIM], |c| c.auth.max_failures = 3).await;
    let plain = |user: &str, pw: &str| format!("AUTH PLAIN {}", base64(format!("\0{user}\0{pw}").as_bytes()));
    for guess in 0..3 {
        let mut c = SmtpClient::connect(srv.addrs().submission[0]).await;
        assert!(c.cmd("EHLO guesser.test").await.starts_with("250"));
        let r = c.cmd(&plain(VICTIM, &format!("guess {guess}"))).await;
        assert!(r.starts_with("535"), "{r}");
        let r = c.cmd(&plain(OWNER, PASSWORD)).await;
        assert!(r.starts_with(if guess < 2 { "235" } else { "454" }), "{guess}: {r}");
    }
    let mut c = SmtpClient::connect(srv.addrs().submission[0]).await;
    assert!(c.cmd("EHLO guesser.test").await.starts_with("250"));
    let r = c.cmd(&plain(VICTIM, "guess 3")).await;
    assert!(r.starts_with("454"), "{r}");
}

/// `alice+x@` is a user of its own: `alice` may no longer send as it (the
/// `+tag` rule gives her only tags that are nobody else's), neither in
/// `MAIL FROM` nor in the `From` header; other tags still work.
#[tokio::test]
async fn an_exact_user_wins_over_the_plus_tag_rule() {
    const ALICE: &str = "alice@example.org";
    const TAGGED: &str = "alice+x@example.org";
    let srv = TestServer::start(&[ALICE, TAGGED, OWNER]).await;
    let mut c = SmtpClient::connect(srv.addrs().submission[0]).await;
    assert!(c.cmd("EHLO laptop.test").await.starts_with("250"));
    let r = c.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{ALICE}\0{PASSWORD}").as_bytes()))).await;
    assert!(r.starts_with("235"), "{r}");
    let r = c.cmd(&format!("MAIL FROM:<{TAGGED}>")).await;
    assert!(r.starts_with("553 5.7.1"), "{r}");
    let forged = format!("From: <{TAGGED}>\r\nSubject: hi\r\n\r\nhi\r\n");
    let r = c.transaction(&format!("MAIL FROM:<{ALICE}>"), &[&format!("RCPT TO:<{OWNER}>")], forged.as_bytes()).await;
    assert!(r.starts_with("553 5.7.1"), "{r}");
    let own = "From: <alice+lists@example.org>\r\nSubject: hi\r\n\r\nhi\r\n";
    let r =
        c.transaction("MAIL FROM:<alice+lists@example.org>", &[&format!("RCPT TO:<{OWNER}>")], own.as_bytes()).await;
    assert!(r.starts_with("250"), "{r}");
}

/// A user created without a quota gets `accounts.default_quota_bytes`:
/// an APPEND past it is refused with `NO [OVERQUOTA]`, one under it is not.
#[tokio::test]
async fn new_users_get_the_default_quota() {
    let srv = TestServer::start_with(&[OWNER], |c| c.accounts.default_quota_bytes = 4000).await;
    let account = srv.running.as_ref().unwrap().directory().user(OWNER).unwrap().unwrap();
    assert_eq!(account.quota_bytes, Some(4000));
    let mut c = ImapClient::login(srv.imap(), OWNER, PASSWORD).await;
    let append = |size: usize| {
        let mut m = b"Subject: filler\r\n\r\n".to_vec();
        m.resize(size - 2, b'x');
        m.extend_from_slice(b"\r\n");
        m
    };
    for (size, expect) in [(3000, "OK"), (3000, "NO [OVERQUOTA]")] {
        let tag = c.tag();
        let m = append(size);
        c.send_raw(format!("{tag} APPEND INBOX {{{}}}\r\n", m.len()).as_bytes()).await;
        let cont = c.read_line().await;
        assert!(cont.starts_with(b"+"), "{}", String::from_utf8_lossy(&cont));
        c.send_raw(&m).await;
        c.send_raw(b"\r\n").await;
        let r = c.until_tagged(&tag).await;
        assert!(r.status.starts_with(&format!("{tag} {expect}")), "{}", r.status);
    }
}

/// A data dir made by hand with mode 0755: `coimail serve` makes it 0700
/// (and says so), and what it creates afterwards is for its user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_makes_the_data_dir_private() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    std::fs::DirBuilder::new().mode(0o755).create(dir.path().join("data")).unwrap();
    std::fs::set_permissions(dir.path().join("data"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = crate::util::ChildServer::spawn(dir.path());
    crate::util::server::add_user(&server, OWNER);
    let mut smtp = SmtpClient::connect(server.smtp()).await;
    assert!(smtp.send("x@remote.test", &[OWNER], &crate::util::message(1, OWNER)).await.starts_with("250"));
    assert!(server.terminate());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&server.data), 0o700);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("was mode 0755"), "{log}");
    let mut files = 0;
    let mut stack = vec![server.data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path) & 0o077, 0, "{} is open to others", path.display());
                stack.push(path);
            } else if !path.is_symlink() {
                files += 1;
                assert_eq!(mode(&path) & 0o077, 0, "{} is open to others", path.display());
            }
        }
    }
    assert!(files > 3, "the daemon wrote almost nothing?");
}

/// A login name carrying a newline and a terminal escape, over IMAP (as a
/// literal) and SMTP AUTH: the log shows them escaped, so no peer can start
/// a log line of its own or drive the admin's terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_strings_are_escaped_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::util::ChildServer::spawn_logging(dir.path(), "info");
    crate::util::server::add_user(&server, OWNER);
    let forged = "x\n2026-12-07T00:00:00Z  INFO FORGED logged in\x1b[31m";
    let mut c = ImapClient::connect(server.imap()).await;
    let tag = c.tag();
    c.send_raw(format!("{tag} LOGIN {{{}}}\r\n", forged.len()).as_bytes()).await;
    assert!(c.read_line().await.starts_with(b"+"));
    c.send_raw(format!("{forged} wrong\r\n").as_bytes()).await;
    let r = c.until_tagged(&tag).await;
    assert!(r.status.contains(" NO "), "{}", r.status);
    let mut s = SmtpClient::connect(server.addrs().submission[0]).await;
    assert!(s.cmd("EHLO x\x1b[2J.test").await.starts_with("250"));
    let r = s.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{forged}\0wrong").as_bytes()))).await;
    assert!(r.starts_with("535"), "{r}");
    assert!(server.terminate());
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(!log.contains('\x1b'), "a raw escape reached the log:\n{log}");
    assert!(!log.lines().any(|l| l.starts_with("2026-12-07T00:00:00Z")), "a forged line:\n{log}");
    let escaped = "x\\n2026-12-07T00:00:00Z  INFO FORGED logged in\\x1b[31m";
    let failures = log.lines().filter(|l| l.contains(escaped)).count();
    assert_eq!(failures, 2, "IMAP and SMTP failures, escaped:\n{log}");
}

/// A stolen password is changed, or the user deleted: the sessions logged
/// in with it end (IMAP `* BYE`, also in IDLE; SMTP 421 on submission),
/// while another user's session goes on.
#[tokio::test]
async fn changing_the_password_or_deleting_the_user_ends_their_sessions() {
    let srv = TestServer::start(&[OWNER, VICTIM]).await;
    let dir = srv.running.as_ref().unwrap().directory().clone();
    let mut thief = ImapClient::login(srv.imap(), VICTIM, PASSWORD).await;
    let mut idler = ImapClient::login(srv.imap(), VICTIM, PASSWORD).await;
    assert!(idler.command("SELECT INBOX").await.ok());
    idler.send_raw(b"I1 IDLE\r\n").await;
    assert!(idler.read_line().await.starts_with(b"+"));
    let mut bystander = ImapClient::login(srv.imap(), OWNER, PASSWORD).await;
    let mut smtp = SmtpClient::connect(srv.addrs().submission[0]).await;
    assert!(smtp.cmd("EHLO thief.test").await.starts_with("250"));
    let r = smtp.cmd(&format!("AUTH PLAIN {}", base64(format!("\0{VICTIM}\0{PASSWORD}").as_bytes()))).await;
    assert!(r.starts_with("235"), "{r}");

    dir.set_password(VICTIM, "a brand new password").await.unwrap();
    for c in [&mut thief, &mut idler] {
        let bye = String::from_utf8(c.read_line().await).unwrap();
        assert!(bye.starts_with("* BYE "), "{bye}");
        let mut rest = Vec::new();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 64];
            loop {
                match c.reader_mut().read(&mut buf).await {
                    Ok(0) | Err(_) => return rest.len(),
                    Ok(n) => rest.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("the connection stays open after BYE");
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&rest));
    }
    let r = smtp.reply().await;
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert!(bystander.command("NOOP").await.ok());
    // The new password works; deleting the user ends that session too.
    let mut again = ImapClient::login(srv.imap(), VICTIM, "a brand new password").await;
    dir.del_user(VICTIM).await.unwrap();
    let bye = String::from_utf8(again.read_line().await).unwrap();
    assert!(bye.starts_with("* BYE "), "{bye}");
    assert!(bystander.command("NOOP").await.ok());
}

/// A connection to `addr` that starts with `header`, as HAProxy sends it.
async fn proxied(addr: std::net::SocketAddr, header: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(header).await.unwrap();
    tcp
}

fn proxy_v2(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&25u16.to_be_bytes());
    h
}

/// Behind a balancer on 127.0.0.1 (trusted for SMTP MX and IMAP): the
/// client addresses of v1 and v2 headers reach the Received header, and the
/// login throttle counts per real client; a trusted connection without a
/// header is refused, and on a listener that trusts nobody a header is
/// just a bad command (never an address).
#[tokio::test]
async fn proxy_protocol_gives_the_real_client_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start_with(&[OWNER], |c| {
        c.listen.proxy_protocol_from.smtp = vec!["127.0.0.1/32".into()];
        c.listen.proxy_protocol_from.imap = vec!["127.0.0.0/8".into()];
        c.auth.max_failures = 2;
        // The clients are not on loopback any more, as far as coimail can tell.
        c.auth.plaintext = coimail_directory::PlaintextAuth::Always;
    })
    .await;
    let v1 = proxied(srv.smtp(), b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n").await;
    let mut c = SmtpClient::on(v1).await;
    assert!(c.send("a@remote.test", &[OWNER], &crate::util::message(1, OWNER)).await.starts_with("250"));
    let v2 = proxied(srv.smtp(), &proxy_v2([198, 51, 100, 9], 40001)).await;
    let mut c = SmtpClient::on(v2).await;
    assert!(c.send("b@remote.test", &[OWNER], &crate::util::message(2, OWNER)).await.starts_with("250"));

    // No header from a trusted source: closed without a greeting.
    let mut bare = tokio::net::TcpStream::connect(srv.smtp()).await.unwrap();
    bare.write_all(b"EHLO sneaky.test\r\n").await.unwrap();
    let mut got = Vec::new();
    // Closed with input unread, the socket may answer with a reset: refused either way.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), bare.read_to_end(&mut got)).await.unwrap();
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // Submission trusts nobody: a header there is no address, just a bad command.
    let mut sub = SmtpClient::on(proxied(srv.addrs().submission[0], b"").await).await;
    let r = sub.cmd("PROXY TCP4 203.0.113.99 127.0.0.1 1 587").await;
    assert!(r.starts_with('5'), "{r}");

    let imap = |client: &'static str| {
        let addr = srv.imap();
        async move {
            let header = format!("PROXY TCP4 {client} 127.0.0.1 40002 143\r\n");
            ImapClient::on(proxied(addr, header.as_bytes()).await).await
        }
    };
    let mut reader = imap("192.0.2.50").await;
    assert!(reader.command(&format!("LOGIN {OWNER} \"{PASSWORD}\"")).await.ok());
    assert!(reader.command("SELECT INBOX").await.ok());
    let headers = reader.command("FETCH 1:2 BODY.PEEK[HEADER.FIELDS (RECEIVED)]").await.text();
    assert!(headers.contains("[203.0.113.7]") && headers.contains("[198.51.100.9]"), "{headers}");
    assert!(!headers.contains("127.0.0.1"), "{headers}");

    for _ in 0..2 {
        let r = imap("203.0.113.7").await.command(&format!("LOGIN {OWNER} wrong")).await;
        assert!(r.status.contains("NO [AUTHENTICATIONFAILED]"), "{}", r.status);
    }
    let r = imap("203.0.113.7").await.command(&format!("LOGIN {OWNER} \"{PASSWORD}\"")).await;
    assert!(r.status.contains("NO [UNAVAILABLE]"), "the real client is throttled: {}", r.status);
    let r = imap("203.0.113.8").await.command(&format!("LOGIN {OWNER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "another client behind the same balancer is not: {}", r.status);
}
