//! `coimail chatmail invite`: the `DCACCOUNT:` URI (and its QR code) that
//! makes a new account on this relay when Delta Chat scans it, as the QR
//! code on a chatmail relay's front page does. Delta Chat POSTs to the URL
//! in it (`/new` on the HTTPS listener, `crates/http/src/new_account.rs`)
//! and sets up the account it gets back.

use anyhow::{Result, bail};
use coimail_daemon::Config;
use std::path::Path;

/// `DCACCOUNT:https://HOST[:PORT]/new`. `host` defaults to `server.hostname`,
/// the name every certificate of this server holds.
pub fn invite_uri(config: &Config, host: Option<&str>) -> Result<String> {
    let c = &config.chatmail;
    if !c.enabled || !c.new_account_endpoint {
        bail!("account creation through /new is off: set [chatmail] enabled = true (and new_account_endpoint = true)");
    }
    let port = match config.listen.https.first().map(|a| a.port()) {
        None => bail!("no HTTPS listener ([listen] https): Delta Chat reaches /new over HTTPS only"),
        Some(0) => bail!("[listen] gives https port 0; the URI needs the real port"),
        Some(443) => String::new(),
        Some(p) => format!(":{p}"),
    };
    let host = host.unwrap_or(&config.server.hostname).trim_end_matches('.').to_ascii_lowercase();
    // `_` too: Delta Chat takes a self-signed certificate for names that
    // start with it (chatmail core `src/net/tls/danger.rs`).
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
        bail!("{host:?} is not a host name");
    }
    Ok(format!("DCACCOUNT:https://{host}{port}/new"))
}

pub fn invite(config_path: &Path, host: Option<&str>) -> Result<()> {
    let config = Config::load(config_path)?;
    let uri = invite_uri(&config, host)?;
    eprintln!("Anyone who scans this in Delta Chat gets a new account here (limited per IP address and hour).");
    println!("{uri}");
    print!("{}", crate::dclogin::qr(&uri)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn the_uri_names_the_https_listener_and_needs_chatmail_mode() {
        let mut c = Config::default();
        c.server.hostname = "Mail.Example.org.".into();
        c.listen.https = vec![SocketAddr::from(([0, 0, 0, 0], 443))];
        assert!(invite_uri(&c, None).unwrap_err().to_string().contains("[chatmail] enabled"));
        c.chatmail.enabled = true;
        assert_eq!(invite_uri(&c, None).unwrap(), "DCACCOUNT:https://mail.example.org/new");
        assert_eq!(invite_uri(&c, Some("example.org")).unwrap(), "DCACCOUNT:https://example.org/new");
        assert!(invite_uri(&c, Some("a/b")).is_err());
        assert_eq!(invite_uri(&c, Some("_new.example.org")).unwrap(), "DCACCOUNT:https://_new.example.org/new");
        c.listen.https = vec![SocketAddr::from(([0, 0, 0, 0], 1443))];
        assert_eq!(invite_uri(&c, None).unwrap(), "DCACCOUNT:https://mail.example.org:1443/new");
        c.chatmail.new_account_endpoint = false;
        assert!(invite_uri(&c, None).is_err());
        c.chatmail.new_account_endpoint = true;
        c.listen.https.clear();
        assert!(invite_uri(&c, None).unwrap_err().to_string().contains("HTTPS"));
    }
}
