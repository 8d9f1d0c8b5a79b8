//! Submission listeners: AUTH, sender ownership, STARTTLS, implicit TLS.

use super::{Options, Server, plain};
use coimail_directory::PlaintextAuth;

#[tokio::test]
async fn mail_requires_auth() {
    let s = Server::start().await;
    let mut c = s.connect(s.submission).await;
    let ehlo = c.cmd("EHLO laptop", "250-mx.example.org").await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN") || ehlo.contains("250 AUTH PLAIN LOGIN"), "{ehlo}");
    c.cmd("MAIL FROM:<alice@example.org>", "530 5.7.0").await;
    c.cmd("RCPT TO:<bob@example.org>", "503 5.5.1").await;
}

#[tokio::test]
async fn auth_plain_good_and_bad() {
    let s = Server::start().await;
    let mut c = s.connect(s.submission).await;
    c.cmd("AUTH PLAIN", "503 5.5.1").await; // before EHLO
    c.cmd("EHLO laptop", "250").await;
    c.cmd(&format!("AUTH PLAIN {}", plain("alice@example.org", "wrong")), "535 5.7.8").await;
    c.cmd("AUTH CRAM-MD5", "504 5.5.4").await;
    // No initial response: empty challenge, then the response.
    c.cmd("AUTH PLAIN", "334").await;
    c.cmd("*", "501 5.0.0").await;
    c.cmd("AUTH PLAIN", "334").await;
    c.cmd("not base64!", "501 5.5.2").await;
    c.cmd("AUTH PLAIN", "334").await;
    c.cmd(&plain("alice@example.org", "alice-pw"), "235 2.7.0").await;
    c.cmd(&format!("AUTH PLAIN {}", plain("alice@example.org", "alice-pw")), "503 5.5.1").await;
    let r = c.send_mail("alice@example.org", &["bob@example.org"], "Subject: hi\r\n\r\nhi bob\r\n").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let raw = String::from_utf8(s.inbox(&s.bob).await.remove(0).1).unwrap();
    assert!(
        raw.starts_with(
            "Return-Path: <alice@example.org>\r\nReceived: from laptop\r\n\tby mx.example.org with ESMTPA id "
        ),
        "client IP omitted on submission: {raw}"
    );
    assert!(!raw.contains("127.0.0.1"), "{raw}");
}

#[tokio::test]
async fn auth_login() {
    let s = Server::start().await;
    let mut c = s.connect(s.submission).await;
    c.cmd("EHLO laptop", "250").await;
    c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.cmd(&crate::auth::base64_encode(b"bob@example.org"), "334 UGFzc3dvcmQ6").await;
    c.cmd(&crate::auth::base64_encode(b"bob-pw"), "235 2.7.0").await;
    // Initial response carries the user name.
    let mut c = s.connect(s.submission).await;
    c.cmd("EHLO laptop", "250").await;
    c.cmd(&format!("AUTH LOGIN {}", crate::auth::base64_encode(b"bob@example.org")), "334 UGFzc3dvcmQ6").await;
    c.cmd(&crate::auth::base64_encode(b"nope"), "535 5.7.8").await;
}

#[tokio::test]
async fn sender_must_belong_to_the_user() {
    let s = Server::start().await;
    let mut c = s.connect(s.submission).await;
    c.cmd("EHLO laptop", "250").await;
    c.cmd(&format!("AUTH PLAIN {}", plain("alice@example.org", "alice-pw")), "235").await;
    c.cmd("MAIL FROM:<bob@example.org>", "553 5.7.1").await;
    c.cmd("MAIL FROM:<>", "553 5.7.1").await;
    c.cmd("MAIL FROM:<someone@remote.example>", "553 5.7.1").await;
    c.cmd("MAIL FROM:<al@example.org>", "250").await; // alias of alice
    c.cmd("RSET", "250").await;
    c.cmd("MAIL FROM:<alice+lists@EXAMPLE.org>", "250").await;
    c.cmd("RCPT TO:<friend@remote.example>", "554 5.3.3").await;
    c.cmd("RCPT TO:<nobody@example.org>", "550 5.1.1").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
}

#[tokio::test]
async fn plaintext_auth_refused_without_tls_when_policy_says_never() {
    let s = Server::with(Options { plaintext_auth: PlaintextAuth::Never, ..Options::default() }).await;
    let mut c = s.connect(s.submission).await;
    let ehlo = c.cmd("EHLO laptop", "250").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    c.cmd(&format!("AUTH PLAIN {}", plain("alice@example.org", "alice-pw")), "538 5.7.11").await;
    c.cmd("MAIL FROM:<alice@example.org>", "530 5.7.0").await;
}

#[tokio::test]
async fn starttls_then_auth_and_send() {
    let s = Server::with(Options { plaintext_auth: PlaintextAuth::Never, ..Options::default() }).await;
    let mut c = s.connect(s.submission).await;
    c.cmd("EHLO laptop", "250").await;
    // Plaintext pipelined behind STARTTLS is discarded, not run over TLS.
    c.send(b"STARTTLS\r\nMAIL FROM:<alice@example.org>\r\n").await;
    c.expect("220 2.0.0").await;
    let mut c = c.upgrade(&s.tls_connector()).await;
    // State was reset: EHLO is needed again and the MAIL above never happened.
    c.cmd("MAIL FROM:<alice@example.org>", "503 5.5.1").await;
    let ehlo = c.cmd("EHLO laptop", "250-mx.example.org").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    c.cmd("STARTTLS", "503 5.5.1").await;
    c.cmd(&format!("AUTH PLAIN {}", plain("alice@example.org", "alice-pw")), "235").await;
    let r = c.send_mail("alice@example.org", &["bob@example.org"], "Subject: tls\r\n\r\nsecret\r\n").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let raw = String::from_utf8(s.inbox(&s.bob).await.remove(0).1).unwrap();
    assert!(raw.contains(" with ESMTPSA id "), "{raw}");
    assert!(raw.contains("\r\n\t(version=TLSv1.3 cipher=TLS13_"), "{raw}");
}

#[tokio::test]
async fn starttls_on_mx_and_not_offered_without_tls_config() {
    let s = Server::start().await;
    let mut c = s.connect(s.mx).await;
    c.cmd("EHLO client.example", "250").await;
    c.cmd("STARTTLS", "220").await;
    let mut c = c.upgrade(&s.tls_connector()).await;
    c.cmd("EHLO client.example", "250").await;
    let r = c.send_mail("x@remote.example", &["alice@example.org"], "Subject: s\r\n\r\nx\r\n").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let raw = String::from_utf8(s.inbox(&s.alice).await.remove(0).1).unwrap();
    assert!(raw.contains("([127.0.0.1])\r\n\tby mx.example.org with ESMTPS id "), "{raw}");

    let s = Server::with(Options { tls: false, ..Options::default() }).await;
    let mut c = s.connect(s.mx).await;
    let ehlo = c.cmd("EHLO client.example", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.cmd("STARTTLS", "502 5.5.1").await;
}

#[tokio::test]
async fn implicit_tls_listener() {
    let s = Server::with(Options { plaintext_auth: PlaintextAuth::Never, ..Options::default() }).await;
    let mut c = s.connect_tls().await;
    let ehlo = c.cmd("EHLO laptop", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    c.cmd(&format!("AUTH PLAIN {}", plain("bob@example.org", "bob-pw")), "235").await;
    let r = c.send_mail("bob@example.org", &["alice@example.org", "al@example.org"], "Subject: 465\r\n\r\nx\r\n").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(s.inbox(&s.alice).await.len(), 1);
    c.cmd("QUIT", "221").await;
}
