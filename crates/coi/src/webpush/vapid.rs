//! The server's VAPID key (RFC 8292): one P-256 key per server, kept as a PKCS#8 file, used to
//! sign the `Authorization: vapid` JWT of every push and published as PEM (R31). The
//! push-service half (`verify_jwt`, `parse_authorization`) lives here too so tests and the bench
//! can check what a real push service would check.
//!
//! Two claims deliberately differ from a literal reading of the sources:
//! - `exp` is `iat` + 1 hour, not Dovecot's `iat` + 30 s (R38). RFC 8292 §2 allows up to 24 hours;
//!   30 s fails as soon as our clock and the push service's differ by that much, and the token is
//!   only ever sent to the push service the subscription names, so the longer life costs nothing.
//! - `aud` is `scheme://host` without the port, even for a non-default port, where RFC 8292's
//!   origin would include it. That is what Dovecot sends (R38 [obs]) and what the OX COI push
//!   service compares against (C11): an `aud` with the port would make it refuse every push.
//!   Push services on a non-default port are rare; see [`Endpoint::audience`].

use std::io::Write;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use base64::prelude::{BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD, Engine as _};
use serde::Serialize;

use super::WebPushError;
use super::http::Endpoint;

/// DER of `SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 }` up to the BIT STRING holding the
/// 65-byte point; every uncompressed P-256 SPKI is this prefix plus the point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// RFC 8292 allows up to 24 h; Dovecot's 30 s breaks on modest clock skew, one hour does not
/// (module documentation).
const JWT_LIFETIME_SECS: i64 = 3600;

const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ES256"}"#;

/// The server's VAPID signing key.
pub struct VapidKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for VapidKey {
    // Only the public half: the private key must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").field("public", &BASE64_URL_SAFE_NO_PAD.encode(self.public_raw())).finish()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iat: i64,
    exp: i64,
    sub: &'a str,
}

impl VapidKey {
    /// A fresh random key (not persisted).
    pub fn generate() -> Result<VapidKey, WebPushError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| WebPushError::Crypto("cannot generate the VAPID key".into()))?;
        Ok(VapidKey { pair })
    }

    /// Parses a PKCS#8 (v1 or v2) P-256 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<VapidKey, WebPushError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| WebPushError::InvalidKey(format!("not a P-256 PKCS#8 key: {e}")))?;
        Ok(VapidKey { pair })
    }

    /// The key as PKCS#8 v1 DER, the format of the key file.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, WebPushError> {
        let doc = self.pair.to_pkcs8v1().map_err(|_| WebPushError::Crypto("cannot encode the VAPID key".into()))?;
        Ok(doc.as_ref().to_vec())
    }

    /// Loads the key file, creating it on first use. A file that exists but does not parse is an
    /// error: replacing it would silently invalidate every client's subscription.
    pub fn load_or_create(path: &Path) -> Result<VapidKey, WebPushError> {
        let io_err = |source| WebPushError::KeyFile { path: path.to_path_buf(), source };
        match std::fs::read(path) {
            Ok(der) => Self::from_pkcs8(&der)
                .map_err(|e| WebPushError::InvalidKey(format!("{}: {e} (refusing to replace it)", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_atomically(path, &key.to_pkcs8()?).map_err(io_err)?;
                tracing::info!(path = %path.display(), "created the VAPID key");
                Ok(key)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// The public key as a 65-byte uncompressed point (`04 ‖ x ‖ y`).
    pub fn public_raw(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as R31 publishes it: SPKI PEM, 64-character lines, no trailing newline.
    pub fn public_pem(&self) -> String {
        let mut spki = SPKI_P256_PREFIX.to_vec();
        spki.extend_from_slice(self.public_raw());
        let b64 = BASE64_STANDARD.encode(&spki);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        // Base64 output is ASCII, so byte chunks are valid UTF-8 boundaries.
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----");
        pem
    }

    /// The `Authorization` header value for one push to `endpoint` (RFC 8292 section 3).
    pub fn authorization(&self, endpoint: &Endpoint, subject: &str, now_unix: i64) -> Result<String, WebPushError> {
        let aud = endpoint.audience();
        let claims = Claims { aud: &aud, iat: now_unix, exp: now_unix + JWT_LIFETIME_SECS, sub: subject };
        let claims = serde_json::to_vec(&claims).map_err(|e| WebPushError::Crypto(format!("JWT claims: {e}")))?;
        let signing_input =
            format!("{}.{}", BASE64_URL_SAFE_NO_PAD.encode(JWT_HEADER), BASE64_URL_SAFE_NO_PAD.encode(&claims));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| WebPushError::Crypto("cannot sign the VAPID JWT".into()))?;
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            BASE64_URL_SAFE_NO_PAD.encode(sig.as_ref()),
            BASE64_URL_SAFE_NO_PAD.encode(self.public_raw())
        ))
    }
}

/// The push service's check of a VAPID JWT: ES256 header and a valid signature by `public_raw`.
/// Returns the claims; judging `aud`/`exp` is the caller's business.
pub fn verify_jwt(token: &str, public_raw: &[u8]) -> Result<serde_json::Value, WebPushError> {
    let bad = |why: &str| WebPushError::Crypto(format!("invalid JWT: {why}"));
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not three parts"));
    };
    let decode = |s: &str| BASE64_URL_SAFE_NO_PAD.decode(s).map_err(|_| bad("bad base64url"));
    let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| bad("header is not JSON"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
        return Err(bad("alg is not ES256"));
    }
    let signing_input_len = token.len() - sig.len() - 1;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_raw)
        .verify(&token.as_bytes()[..signing_input_len], &decode(sig)?)
        .map_err(|_| bad("signature does not verify"))?;
    let claims: serde_json::Value = serde_json::from_slice(&decode(claims)?).map_err(|_| bad("claims are not JSON"))?;
    if !claims.is_object() {
        return Err(bad("claims are not an object"));
    }
    Ok(claims)
}

/// Splits `vapid t=<jwt>, k=<key>` (parameters in any order, `k` padded or not) into the token and
/// the raw public key.
pub fn parse_authorization(header: &str) -> Option<(String, Vec<u8>)> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return None;
    }
    let (mut t, mut k) = (None, None);
    for param in params.split(',') {
        let (name, value) = param.trim().split_once('=')?;
        match name.trim() {
            "t" => t = Some(value.trim().to_owned()),
            "k" => k = Some(BASE64_URL_SAFE_NO_PAD.decode(value.trim().trim_end_matches('=')).ok()?),
            _ => {}
        }
    }
    Some((t?, k?))
}

/// Temp file, fsync, rename, fsync the directory: a crash leaves either no key file or a whole one.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::other("key path has no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};

    #[test]
    fn spki_prefix_matches_a_real_encoder() {
        let key = VapidKey::generate().unwrap();
        // An independent SPKI encoding of the same point: aws-lc's X.509 public key DER.
        let der: PublicKeyX509Der<'static> = key.pair.public_key().as_der().unwrap();
        let mut expected = SPKI_P256_PREFIX.to_vec();
        expected.extend_from_slice(key.public_raw());
        assert_eq!(der.as_ref(), &expected[..]);
    }

    #[test]
    fn pem_shape() {
        let key = VapidKey::generate().unwrap();
        let pem = key.public_pem();
        assert_eq!(pem.len(), 177, "the size Dovecot's GETMETADATA shows");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
        assert!(pem.ends_with("\n-----END PUBLIC KEY-----"));
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!((lines[1].len(), lines[2].len()), (64, 60));
        let der = BASE64_STANDARD.decode(format!("{}{}", lines[1], lines[2])).unwrap();
        assert_eq!(&der[..26], &SPKI_P256_PREFIX);
        assert_eq!(&der[26..], key.public_raw());
        assert_eq!(key.public_raw().len(), 65);
        assert_eq!(key.public_raw()[0], 4);
    }

    #[test]
    fn load_or_create_persists_and_refuses_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pk8");
        let first = VapidKey::load_or_create(&path).unwrap();
        let again = VapidKey::load_or_create(&path).unwrap();
        assert_eq!(first.public_raw(), again.public_raw());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");

        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(VapidKey::load_or_create(&path), Err(WebPushError::InvalidKey(_))));
        assert_eq!(std::fs::read(&path).unwrap(), b"garbage", "a corrupt key is never replaced");

        let missing_dir = dir.path().join("nope").join("vapid.pk8");
        assert!(matches!(VapidKey::load_or_create(&missing_dir), Err(WebPushError::KeyFile { .. })));
    }

    #[test]
    fn jwt_signs_and_verifies() {
        let key = VapidKey::generate().unwrap();
        let endpoint = Endpoint::parse("https://push.example.com:8443/send/abc").unwrap();
        let auth = key.authorization(&endpoint, "mailto:postmaster@example.org", 1_795_582_460).unwrap();
        let (token, k) = parse_authorization(&auth).unwrap();
        assert_eq!(k, key.public_raw());
        let header: serde_json::Value =
            serde_json::from_slice(&BASE64_URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"typ": "JWT", "alg": "ES256"}));
        let claims = verify_jwt(&token, &k).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "aud": "https://push.example.com",
                "iat": 1_795_582_460,
                "exp": 1_795_582_460 + 3600,
                "sub": "mailto:postmaster@example.org"
            })
        );
        assert_eq!(BASE64_URL_SAFE_NO_PAD.decode(token.rsplit('.').next().unwrap()).unwrap().len(), 64);

        // Another key, a flipped claim, a wrong alg: all refused.
        let other = VapidKey::generate().unwrap();
        assert!(verify_jwt(&token, other.public_raw()).is_err());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = BASE64_URL_SAFE_NO_PAD.encode(br#"{"aud":"https://evil.example"}"#);
        assert!(verify_jwt(&format!("{}.{forged_claims}.{}", parts[0], parts[2]), &k).is_err());
        let none_alg = BASE64_URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert!(verify_jwt(&format!("{none_alg}.{}.{}", parts[1], parts[2]), &k).is_err());
        assert!(verify_jwt("a.b", &k).is_err());
        assert!(verify_jwt(&format!("{token}.x"), &k).is_err());
    }

    #[test]
    fn authorization_header_parsing() {
        let k = [4u8; 65];
        let kb = BASE64_URL_SAFE_NO_PAD.encode(k);
        assert_eq!(parse_authorization(&format!("vapid t=a.b.c, k={kb}")), Some(("a.b.c".into(), k.to_vec())));
        assert_eq!(parse_authorization(&format!("Vapid k={kb}=,t=x.y.z")), Some(("x.y.z".into(), k.to_vec())));
        assert_eq!(parse_authorization("WebPush a.b.c"), None);
        assert_eq!(parse_authorization("vapid t=a.b.c"), None);
        assert_eq!(parse_authorization("vapid t=a.b.c, k=!!"), None);
    }
}
