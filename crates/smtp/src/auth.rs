//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms, on
//! submission listeners only.
//!
//! Passwords travel in [`Secret`], whose `Debug` is redacted, and are never
//! logged; nor are the AUTH lines that carry them.

use crate::SmtpListener;
use crate::io::{ConnError, LineError};
use crate::reply::{self, Enhanced, Reply, SmtpError};
use crate::session::Session;
use coimail_directory::{AuthError, LogSafe};
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

/// RFC 4954 §4: AUTH lines may be up to 12288 octets.
const MAX_AUTH_LINE: usize = 12288;

/// A secret whose `Debug` shows nothing.
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

const AUTH_FAILED: SmtpError = SmtpError::new(535, Enhanced(5, 7, 8), "authentication credentials invalid");
const AUTH_CANCELLED: SmtpError = SmtpError::new(501, Enhanced(5, 0, 0), "authentication cancelled");
const BAD_BASE64: SmtpError = SmtpError::new(501, Enhanced(5, 5, 2), "cannot decode response");
const ENCRYPTION_REQUIRED: SmtpError =
    SmtpError::new(538, Enhanced(5, 7, 11), "encryption required for requested authentication mechanism");
const UNKNOWN_MECHANISM: SmtpError = SmtpError::new(504, Enhanced(5, 5, 4), "unrecognized authentication type");
const AUTH_LINE_TOO_LONG: SmtpError =
    SmtpError::new(500, Enhanced(5, 5, 6), "authentication exchange line is too long");

/// Outcome of reading one client response in the exchange.
enum Step {
    Response(Secret),
    Refused(SmtpError),
}

impl Session {
    /// Whether AUTH is offered (and accepted) on this connection now.
    pub(crate) fn auth_offered(&self) -> bool {
        self.kind != SmtpListener::Mx && self.ctx.config.plaintext_auth.allows(self.peer.ip(), self.conn.is_tls())
    }

    pub(crate) async fn cmd_auth(&mut self, mechanism: u64, initial: String) -> Result<(), ConnError> {
        let initial = Secret(initial);
        let refusal = if self.kind == SmtpListener::Mx {
            Some(reply::NOT_IMPLEMENTED)
        } else if self.helo.is_none() || self.auth.is_some() || self.tx.is_some() {
            Some(reply::BAD_SEQUENCE)
        } else if !self.auth_offered() {
            Some(ENCRYPTION_REQUIRED)
        } else if mechanism != AUTH_PLAIN && mechanism != AUTH_LOGIN {
            Some(UNKNOWN_MECHANISM)
        } else {
            None
        };
        if let Some(e) = refusal {
            self.conn.reply(e);
            return Ok(());
        }
        let credentials = if mechanism == AUTH_PLAIN {
            self.plain_exchange(initial).await?
        } else {
            self.login_exchange(initial).await?
        };
        let (login, password) = match credentials {
            Ok(c) => c,
            Err(e) => {
                self.conn.reply(e);
                return Ok(());
            }
        };
        let result = self.ctx.directory.authenticate_session(&login, &password.0, self.peer.ip()).await;
        coimail_directory::count_login("smtp", &result);
        match result {
            Ok((account, revocation)) => {
                tracing::Span::current().record("user", account.address.as_str());
                tracing::info!(user = %account.address, "authenticated");
                self.auth = Some(account);
                self.revocation = Some(revocation);
                self.conn.reply(Reply::new(235, Enhanced(2, 7, 0), "authentication successful"));
            }
            Err(AuthError::Failed) => {
                tracing::info!(login = %LogSafe(&login), "authentication failed");
                self.conn.reply(AUTH_FAILED);
            }
            Err(AuthError::Throttled) => {
                tracing::warn!("authentication throttled");
                self.conn.reply(SmtpError::new(454, Enhanced(4, 7, 0), "too many failed attempts; try again later"));
            }
            Err(AuthError::Internal(e)) => {
                tracing::error!(error = %e, "authentication unavailable");
                self.conn.reply(SmtpError::new(454, Enhanced(4, 7, 0), "temporary authentication failure"));
            }
        }
        Ok(())
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, as initial response or
    /// after an empty `334` challenge.
    async fn plain_exchange(&mut self, initial: Secret) -> Result<Result<(String, Secret), SmtpError>, ConnError> {
        let response = if initial.0.is_empty() {
            match self.challenge("").await? {
                Step::Response(r) => r,
                Step::Refused(e) => return Ok(Err(e)),
            }
        } else {
            initial
        };
        Ok(decode_plain(&response.0))
    }

    /// LOGIN: username and password, each base64 after its own challenge.
    async fn login_exchange(&mut self, initial: Secret) -> Result<Result<(String, Secret), SmtpError>, ConnError> {
        let user = if initial.0.is_empty() {
            match self.challenge("VXNlcm5hbWU6").await? {
                Step::Response(r) => r,
                Step::Refused(e) => return Ok(Err(e)),
            }
        } else {
            initial
        };
        let Some(user) = decode_text(&user.0) else { return Ok(Err(BAD_BASE64)) };
        let password = match self.challenge("UGFzc3dvcmQ6").await? {
            Step::Response(r) => r,
            Step::Refused(e) => return Ok(Err(e)),
        };
        let Some(password) = decode_text(&password.0) else { return Ok(Err(BAD_BASE64)) };
        Ok(Ok((user, Secret(password))))
    }

    /// Sends `334 <challenge>` and reads the client's response line.
    async fn challenge(&mut self, challenge: &str) -> Result<Step, ConnError> {
        self.conn.reply_raw(format!("334 {challenge}\r\n").as_bytes());
        let line = loop {
            match self.conn.take_line(MAX_AUTH_LINE) {
                Some(l) => break l,
                None => self.conn.fill().await?,
            }
        };
        Ok(match line {
            Err(LineError::TooLong) => Step::Refused(AUTH_LINE_TOO_LONG),
            Err(LineError::BareLineEnding) => Step::Refused(reply::BARE_LINE_ENDING),
            Ok(l) if l == b"*" => Step::Refused(AUTH_CANCELLED),
            Ok(l) => match String::from_utf8(l) {
                Ok(s) => Step::Response(Secret(s)),
                Err(_) => Step::Refused(BAD_BASE64),
            },
        })
    }
}

fn decode_text(b64: &str) -> Option<String> {
    base64_decode(b64.trim()).and_then(|v| String::from_utf8(v).ok())
}

fn decode_plain(b64: &str) -> Result<(String, Secret), SmtpError> {
    // RFC 4954 §4: "=" is an empty initial response.
    let raw = if b64 == "=" { Vec::new() } else { base64_decode(b64.trim()).ok_or(BAD_BASE64)? };
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_BASE64);
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| BAD_BASE64);
    let (authzid, authcid, passwd) = (text(authzid)?, text(authcid)?, text(passwd)?);
    // Acting as another user (proxy authorization) is not supported.
    if !authzid.is_empty() && authzid != authcid {
        return Err(AUTH_FAILED);
    }
    Ok((authcid, Secret(passwd)))
}

/// Standard base64 (RFC 4648 §4) with optional padding; `None` if malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    let data = bytes.strip_suffix(b"==").or_else(|| bytes.strip_suffix(b"=")).unwrap_or(bytes);
    if (bytes.len() != data.len() && !bytes.len().is_multiple_of(4)) || data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * (4 - chunk.len()) as u32;
        let produced = chunk.len() - 1;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + produced]);
    }
    Some(out)
}

/// Standard base64 with padding (for tests and challenges).
#[cfg(test)]
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", b"\0alice\0pw\xff"] {
            let enc = base64_encode(data);
            assert_eq!(base64_decode(&enc).as_deref(), Some(data), "{enc}");
            assert_eq!(base64_decode(enc.trim_end_matches('=')).as_deref(), Some(data));
        }
        assert_eq!(base64_encode(b"Username:"), "VXNlcm5hbWU6");
        for bad in ["A", "AB=C", "A===", "AB*D", "ABC=D"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_response() {
        let (login, pw) = decode_plain(&base64_encode(b"\0alice@x.org\0secret")).unwrap();
        assert_eq!((login.as_str(), pw.0.as_str()), ("alice@x.org", "secret"));
        assert!(decode_plain(&base64_encode(b"alice@x.org\0alice@x.org\0s")).is_ok());
        assert_eq!(decode_plain(&base64_encode(b"bob@x.org\0alice@x.org\0s")).unwrap_err(), AUTH_FAILED);
        assert_eq!(decode_plain(&base64_encode(b"alice\0pw")).unwrap_err(), BAD_BASE64);
        assert_eq!(format!("{:?}", Secret("pw".into())), "Secret(<redacted>)");
    }
}
