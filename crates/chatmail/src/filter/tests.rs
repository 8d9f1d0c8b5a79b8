//! Real Delta Chat messages (`samples/`: deltachat-rpc-server 2.65 through
//! coimail, saved by tests/chatmail.rs with COIMAIL_CHATMAIL_SAMPLES, our
//! trace headers cut off), messages in the shapes older clients send, and
//! the ones filtermail's tests refuse.

use super::*;
use base64::Engine;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// A real Delta Chat message (Alice to Bob, after Secure-Join).
const DC_ENCRYPTED: &[u8] = include_bytes!("samples/deltachat-encrypted.eml");
/// A real Delta Chat Secure-Join request (the QR code's first message). Since
/// Secure-Join v3 it is encrypted with a key from the QR code (SKESK v6 +
/// SEIPD v2), so it passes as encrypted; the cleartext `vc-request` of older
/// clients is tested below.
const DC_SECUREJOIN: &[u8] = include_bytes!("samples/deltachat-securejoin-request.eml");

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn armored(packets: &[u8], header: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(packets);
    let lines: Vec<String> = b64.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!("-----BEGIN PGP MESSAGE-----\n{header}\n{}\n=njUN\n-----END PGP MESSAGE-----\n", lines.join("\n"))
}

/// RFC 3156 §4 around `payload` (with `control` as the first part's body).
fn pgp_mime(control: &str, payload: &str) -> Vec<u8> {
    crlf(&format!(
        "From: {ALICE}\nTo: {BOB}\nSubject: [...]\nChat-Version: 1.0\nMIME-Version: 1.0\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\n\n\
         --b1\nContent-Description: PGP/MIME version identification\nContent-Type: application/pgp-encrypted\n\n{control}\n\n\
         --b1\nContent-Description: OpenPGP encrypted message\nContent-Disposition: inline; filename=\"encrypted.asc\";\n\
         Content-Type: application/octet-stream; name=\"encrypted.asc\"\n\n{payload}\n--b1--\n"
    ))
}

/// PKESK, SKESK, then a SEIPD: what an encrypted Delta Chat message holds.
const GOOD_PACKETS: [u8; 14] = [0xC1, 3, 3, 1, 2, 0xC3, 2, 4, 4, 0xD2, 3, 1, 9, 9];

fn outgoing(message: &[u8], to: &[&str]) -> Result<Kind, Refused> {
    FilterPolicy::default().check(Direction::Outgoing, ALICE, to, message)
}

fn incoming(message: &[u8]) -> Result<Kind, Refused> {
    FilterPolicy::default().check(Direction::Incoming, "someone@elsewhere.example", &[BOB], message)
}

#[test]
fn real_deltachat_messages_pass_both_ways() {
    assert_eq!(outgoing(DC_ENCRYPTED, &[BOB]), Ok(Kind::Encrypted));
    assert_eq!(incoming(DC_ENCRYPTED), Ok(Kind::Encrypted));
    assert_eq!(outgoing(DC_SECUREJOIN, &[BOB]), Ok(Kind::Encrypted));
    assert_eq!(incoming(DC_SECUREJOIN), Ok(Kind::Encrypted));
    // The same message with its payload's packets cut short is refused.
    let text = String::from_utf8_lossy(DC_ENCRYPTED).into_owned();
    let start = text.find("-----BEGIN PGP MESSAGE-----\r\n\r\n").unwrap() + 31;
    let mut cut = text.clone();
    cut.replace_range(start..start + 65, "");
    assert_eq!(outgoing(cut.as_bytes(), &[BOB]), Err(Refused));
    // With the ciphertext swapped for cleartext under the same structure: refused.
    let end = text.find("-----END PGP MESSAGE-----").unwrap();
    let mut fake = text.clone();
    fake.replace_range(start..end, "hello, this is not encrypted\r\n");
    assert_eq!(incoming(fake.as_bytes()), Err(Refused));
}

#[test]
fn rfc3156_structure_is_required() {
    let good = pgp_mime("Version: 1", &armored(&GOOD_PACKETS, ""));
    assert_eq!(outgoing(&good, &[BOB]), Ok(Kind::Encrypted));
    // Armor headers: accepted from elsewhere, refused from our users.
    let versioned = pgp_mime("Version: 1", &armored(&GOOD_PACKETS, "Version: GnuPG v2\n"));
    assert_eq!(incoming(&versioned), Ok(Kind::Encrypted));
    assert_eq!(outgoing(&versioned, &[BOB]), Err(Refused));
    // Wrong control text, a plaintext "armor", a literal-data packet (the fake-encrypted case).
    assert_eq!(outgoing(&pgp_mime("Version: 2", &armored(&GOOD_PACKETS, "")), &[BOB]), Err(Refused));
    assert_eq!(outgoing(&pgp_mime("Version: 1", "hello, this is not encrypted"), &[BOB]), Err(Refused));
    let literal = [0xCB, 5, b'b', 0, 0, 0, b'x'];
    assert_eq!(outgoing(&pgp_mime("Version: 1", &armored(&literal, "")), &[BOB]), Err(Refused));
    // A third part smuggling cleartext next to the encrypted ones.
    let three = String::from_utf8(good.clone())
        .unwrap()
        .replace("--b1--", "--b1\r\nContent-Type: application/octet-stream\r\n\r\nread me\r\n--b1--");
    assert_eq!(outgoing(three.as_bytes(), &[BOB]), Err(Refused));
    // The right parts under multipart/mixed are not encrypted mail.
    let mixed = String::from_utf8(good).unwrap().replace("multipart/encrypted", "multipart/mixed");
    assert_eq!(outgoing(mixed.as_bytes(), &[BOB]), Err(Refused));
}

#[test]
fn plain_mail_is_refused_both_ways() {
    let plain = crlf(&format!("From: {ALICE}\nTo: {BOB}\nSubject: hi\n\nhello\n"));
    assert_eq!(outgoing(&plain, &[BOB]), Err(Refused));
    assert_eq!(incoming(&plain), Err(Refused));
    assert_eq!(outgoing(b"\xff\xfe not even a message", &[BOB]), Err(Refused));
}

fn securejoin(header: &str, body: &str, extra_part: bool) -> Vec<u8> {
    let extra = if extra_part { "--sj\nContent-Type: text/plain\n\nhello\n" } else { "" };
    crlf(&format!(
        "From: <{ALICE}>\nTo: <{BOB}>\nSubject: Message from {ALICE}\nChat-Version: 1.0\nSecure-Join: {header}\n\
         Secure-Join-Invitenumber: RANDOMTOKEN\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"sj\"\n\n\n\
         --sj\nContent-Type: text/plain; charset=utf-8\n\n{body}\n\n{extra}--sj--\n"
    ))
}

#[test]
fn only_the_cleartext_securejoin_requests_pass() {
    assert_eq!(incoming(&securejoin("vc-request", "Secure-Join: vc-request", false)), Ok(Kind::SecureJoin));
    assert_eq!(outgoing(&securejoin("vg-request", "secure-join: VG-REQUEST", false), &[BOB]), Ok(Kind::SecureJoin));
    // Later steps are encrypted; in cleartext they are refused.
    assert_eq!(incoming(&securejoin("vc-auth-required", "Secure-Join: vc-auth-required", false)), Err(Refused));
    // The header alone is not enough: the body must be the request and nothing else.
    assert_eq!(incoming(&securejoin("vc-request", "Secure-Join: vc-request\nbuy now", false)), Err(Refused));
    assert_eq!(incoming(&securejoin("vc-request", "Secure-Join: vc-request", true)), Err(Refused));
}

fn setup_message(from: &str) -> Vec<u8> {
    crlf(&format!(
        "From: {from}\nTo: {from}\nSubject: Autocrypt Setup Message\nAutocrypt-Setup-Message: v1\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"asm\"\n\n--asm\nContent-Type: text/plain\n\nThis is the Autocrypt Setup Message.\n\n\
         --asm\nContent-Type: application/autocrypt-setup\nContent-Disposition: attachment; filename=\"autocrypt-setup-message.html\"\n\n\
         <html>-----BEGIN PGP MESSAGE-----</html>\n--asm--\n"
    ))
}

#[test]
fn autocrypt_setup_message_passes_only_to_oneself() {
    let asm = setup_message(ALICE);
    assert_eq!(outgoing(&asm, &[ALICE]), Ok(Kind::AutocryptSetup));
    assert_eq!(outgoing(&asm, &["Alice@Example.org"]), Ok(Kind::AutocryptSetup));
    assert_eq!(outgoing(&asm, &[BOB]), Err(Refused));
    assert_eq!(outgoing(&asm, &[ALICE, BOB]), Err(Refused));
    assert_eq!(incoming(&asm), Err(Refused));
}

#[test]
fn bounces_pass_incoming_only() {
    let bounce = crlf(
        "From: Mail Delivery System <MAILER-DAEMON@elsewhere.example>\nTo: bob@example.org\nSubject: Undelivered\n\
         Auto-Submitted: auto-replied\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n\
         --r\nContent-Type: text/plain\n\nYour message could not be delivered.\n--r\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; elsewhere.example\n\nFinal-Recipient: rfc822; x@elsewhere.example\nAction: failed\nStatus: 5.1.1\n--r--\n",
    );
    assert_eq!(incoming(&bounce), Ok(Kind::Bounce));
    assert_eq!(outgoing(&bounce, &[BOB]), Err(Refused));
    // Without Auto-Submitted, or from someone else, it is plain mail.
    let text = String::from_utf8(bounce).unwrap();
    assert_eq!(incoming(text.replace("Auto-Submitted: auto-replied\r\n", "").as_bytes()), Err(Refused));
    assert_eq!(incoming(text.replace("MAILER-DAEMON@", "postmaster@").as_bytes()), Err(Refused));
}

#[test]
fn passthrough_senders_and_recipients() {
    let plain = crlf(&format!("From: {ALICE}\nTo: x\nSubject: hi\n\nhello\n"));
    let policy = FilterPolicy {
        passthrough_senders: vec!["bot@example.org".into()],
        passthrough_recipients: vec!["support@elsewhere.example".into(), "@relay.example".into()],
    };
    let check = |from: &str, to: &[&str]| policy.check(Direction::Outgoing, from, to, &plain);
    assert_eq!(check("bot@example.org", &[BOB]), Ok(Kind::Cleartext));
    assert_eq!(check(ALICE, &["support@elsewhere.example"]), Ok(Kind::Cleartext));
    assert_eq!(check(ALICE, &["anyone@relay.example", "Support@Elsewhere.example"]), Ok(Kind::Cleartext));
    assert_eq!(check(ALICE, &["anyone@relay.example", BOB]), Err(Refused), "every recipient must be exempt");
    assert_eq!(check(ALICE, &["anyone@sub.relay.example"]), Err(Refused), "@domain is that domain only");
    assert_eq!(check(ALICE, &["anyone@notrelay.example"]), Err(Refused));
    // Incoming mail has no passthrough (filtermail's incoming filter has none).
    assert_eq!(policy.check(Direction::Incoming, "bot@example.org", &[BOB], &plain), Err(Refused));
}
