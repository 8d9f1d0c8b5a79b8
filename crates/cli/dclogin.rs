//! `coimail user add --dclogin`: the `dclogin:` URI Delta Chat scans to set
//! an account up (chatmail core `src/qr/dclogin_scheme.rs`, version 1):
//! `dclogin:ADDR?p=PASSWORD&v=1&ih=HOST&ip=PORT&is=ssl|starttls&sh=HOST&sp=PORT&ss=ssl|starttls[&ic=3]`.
//! Host, ports and security come from the config: implicit TLS when that
//! listener is configured (Delta Chat's preference), else STARTTLS.

use anyhow::{Result, bail};
use coimail_daemon::Config;
use std::net::SocketAddr;

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// so any password survives the query string.
fn encode(text: &str) -> String {
    encode_keeping(text, b"")
}

fn encode_keeping(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The port and security Delta Chat should use: implicit TLS first.
fn pick(service: &str, tls: &[SocketAddr], starttls: &[SocketAddr]) -> Result<(u16, &'static str)> {
    let (addrs, security) = if tls.is_empty() { (starttls, "starttls") } else { (tls, "ssl") };
    match addrs.first().map(SocketAddr::port) {
        Some(0) => bail!("[listen] gives {service} port 0; a dclogin: URI needs the real port"),
        Some(port) => Ok((port, security)),
        None => bail!("no {service} listener configured"),
    }
}

pub fn uri(config: &Config, address: &str, password: &str, accept_invalid_certificates: bool) -> Result<String> {
    let l = &config.listen;
    let (imap_port, imap_security) = pick("IMAP", &l.imaps, &l.imap)?;
    let (smtp_port, smtp_security) = pick("submission", &l.submissions, &l.submission)?;
    let host = encode(&config.server.hostname);
    let mut uri = format!(
        "dclogin:{}?p={}&v=1&ih={host}&ip={imap_port}&is={imap_security}&sh={host}&sp={smtp_port}&ss={smtp_security}",
        // `@` stays readable; Delta Chat percent-decodes the address anyway.
        encode_keeping(address, b"@"),
        encode(password)
    );
    if accept_invalid_certificates {
        // `ic=3`: AcceptInvalidCertificates2, the value Delta Chat itself writes.
        uri.push_str("&ic=3");
    }
    Ok(uri)
}

/// The URI as a QR code drawn with Unicode half blocks (two rows a line).
pub fn qr(uri: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes())?;
    // Light modules on a dark terminal background need inverted colours to scan.
    let drawing = code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).build();
    Ok(format!("{drawing}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut c = Config::default();
        c.server.hostname = "mail.example.org".into();
        c.listen.imaps = vec![SocketAddr::from(([0, 0, 0, 0], 993))];
        c.listen.imap = vec![SocketAddr::from(([0, 0, 0, 0], 143))];
        c.listen.submissions = vec![];
        c.listen.submission = vec![SocketAddr::from(([0, 0, 0, 0], 587))];
        c
    }

    #[test]
    fn uri_has_our_servers() -> Result<()> {
        let u = uri(&config(), "alice@example.org", "p&ss w=rd%", false)?;
        assert_eq!(
            u,
            "dclogin:alice@example.org?p=p%26ss%20w%3Drd%25&v=1&ih=mail.example.org&ip=993&is=ssl\
             &sh=mail.example.org&sp=587&ss=starttls"
        );
        assert!(uri(&config(), "a@b", "x", true)?.ends_with("&ic=3"));
        let mut zero = config();
        zero.listen.imaps = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        assert!(uri(&zero, "a@b", "x", false).is_err());
        Ok(())
    }

    #[test]
    fn qr_code_is_drawn() -> Result<()> {
        let drawing = qr("dclogin:a%40b?p=x&v=1")?;
        assert!(drawing.lines().count() > 10);
        assert!(drawing.contains('\u{2580}') || drawing.contains('\u{2584}') || drawing.contains('\u{2588}'));
        Ok(())
    }
}
