//! Message encryption for Web Push (RFC 8291) in RFC 8188's `aes128gcm` coding, one record per
//! message: what the server does to every push payload (R38), plus the subscriber's decryption so
//! tests and the bench can play the phone.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};

use super::WebPushError;

/// Record size announced in the header; Dovecot sends the same.
pub const RECORD_SIZE: u32 = 4096;
/// Largest plaintext whose whole body (86-byte header, delimiter, 16-byte tag) stays within
/// 4096 bytes, the limit push services guarantee to accept.
pub const MAX_PLAINTEXT: usize = 3993;

const HEADER_LEN: usize = 16 + 4 + 1 + POINT_LEN;
const POINT_LEN: usize = 65;
const TAG_LEN: usize = 16;
const AUTH_LEN: usize = 16;
/// Padding delimiter of the last (here: only) record.
const LAST_RECORD: u8 = 0x02;

/// A subscriber's (phone's) keys: what a client registers as `p256dh` and `auth`.
#[derive(Clone)]
pub struct SubscriberKeys {
    /// P-256 private scalar, big-endian.
    pub private: [u8; 32],
    /// Uncompressed public point (`p256dh`).
    pub public: [u8; 65],
    /// Authentication secret (`auth`).
    pub auth: [u8; 16],
}

impl std::fmt::Debug for SubscriberKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberKeys").finish_non_exhaustive()
    }
}

impl SubscriberKeys {
    /// Fresh random keys, as a browser or phone would make for a new subscription.
    pub fn generate() -> Result<SubscriberKeys, WebPushError> {
        let key = PrivateKey::generate(&ECDH_P256).map_err(|_| crypto("cannot generate a P-256 key"))?;
        let scalar: EcPrivateKeyBin<'static> = key.as_be_bytes().map_err(|_| crypto("cannot export a P-256 key"))?;
        let mut keys = SubscriberKeys { private: [0; 32], public: [0; 65], auth: [0; 16] };
        keys.private.copy_from_slice(scalar.as_ref());
        keys.public.copy_from_slice(public_point(&key)?.as_ref());
        aws_lc_rs::rand::fill(&mut keys.auth).map_err(|_| crypto("no randomness"))?;
        Ok(keys)
    }
}

/// Encrypts one push message for the subscriber's `p256dh` (`ua_public`) and `auth`, with a fresh
/// salt and ephemeral key so no two messages share a content key.
pub fn encrypt(plaintext: &[u8], ua_public: &[u8], auth_secret: &[u8]) -> Result<Vec<u8>, WebPushError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| crypto("no randomness"))?;
    let ephemeral = PrivateKey::generate(&ECDH_P256).map_err(|_| crypto("cannot generate a P-256 key"))?;
    seal(plaintext, ua_public, auth_secret, &salt, &ephemeral, RECORD_SIZE)
}

/// [`encrypt`] with a caller-chosen salt and application-server key (32-byte scalar):
/// deterministic, for test vectors only — reusing either in production would reuse keys.
pub fn encrypt_with(
    plaintext: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
    salt: &[u8; 16],
    as_private: &[u8],
    record_size: u32,
) -> Result<Vec<u8>, WebPushError> {
    let key = PrivateKey::from_private_key(&ECDH_P256, as_private)
        .map_err(|e| WebPushError::InvalidKey(format!("application server key: {e}")))?;
    seal(plaintext, ua_public, auth_secret, salt, &key, record_size)
}

/// The subscriber's side: decrypts a single-record `aes128gcm` body with its private scalar and
/// auth secret, and strips the delimiter and padding.
pub fn decrypt(body: &[u8], ua_private: &[u8], auth_secret: &[u8]) -> Result<Vec<u8>, WebPushError> {
    if body.len() < 21 {
        return Err(crypto("body shorter than the aes128gcm header"));
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes([body[16], body[17], body[18], body[19]]);
    let id_len = usize::from(body[20]);
    if id_len != POINT_LEN || body.len() < HEADER_LEN {
        return Err(crypto("key id is not a 65-byte P-256 point"));
    }
    let as_public = &body[21..HEADER_LEN];
    let record = &body[HEADER_LEN..];
    check_auth(auth_secret)?;
    if record_size < 18 {
        return Err(crypto("record size below 18"));
    }
    if record.len() < TAG_LEN + 1 {
        return Err(crypto("record too short"));
    }
    if record.len() > record_size as usize {
        return Err(crypto("more than one record"));
    }
    let ua_key = PrivateKey::from_private_key(&ECDH_P256, ua_private)
        .map_err(|e| WebPushError::InvalidKey(format!("user agent key: {e}")))?;
    let ua_public = public_point(&ua_key)?;
    let ecdh_secret = agree(&ua_key, as_public)?;
    let (cek, nonce) = derive(&ecdh_secret, auth_secret, ua_public.as_ref(), as_public, salt)?;
    let mut data = record.to_vec();
    let plain_len = aead(&cek)?
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .map_err(|_| crypto("authentication failed"))?
        .len();
    data.truncate(plain_len);
    // RFC 8188 section 2: content, then the delimiter, then any number of zero bytes.
    let Some(delimiter) = data.iter().rposition(|&b| b != 0) else {
        return Err(crypto("no padding delimiter"));
    };
    if data[delimiter] != LAST_RECORD {
        return Err(crypto("bad padding delimiter"));
    }
    data.truncate(delimiter);
    Ok(data)
}

fn seal(
    plaintext: &[u8],
    ua_public: &[u8],
    auth_secret: &[u8],
    salt: &[u8; 16],
    as_key: &PrivateKey,
    record_size: u32,
) -> Result<Vec<u8>, WebPushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(crypto(&format!("payload of {} bytes exceeds {MAX_PLAINTEXT}", plaintext.len())));
    }
    if record_size < 18 || plaintext.len() + 1 + TAG_LEN > record_size as usize {
        return Err(crypto("payload does not fit one record"));
    }
    // RFC 8291 wants the uncompressed form: the point goes verbatim into key_info.
    if ua_public.len() != POINT_LEN || ua_public[0] != 0x04 {
        return Err(WebPushError::InvalidKey("p256dh is not an uncompressed P-256 point".into()));
    }
    check_auth(auth_secret)?;
    let as_public = public_point(as_key)?;
    let ecdh_secret = agree(as_key, ua_public)?;
    let (cek, nonce) = derive(&ecdh_secret, auth_secret, ua_public, as_public.as_ref(), salt)?;

    let mut body = Vec::with_capacity(HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&record_size.to_be_bytes());
    body.push(POINT_LEN as u8);
    body.extend_from_slice(as_public.as_ref());
    let mut record = Vec::with_capacity(plaintext.len() + 1 + TAG_LEN);
    record.extend_from_slice(plaintext);
    record.push(LAST_RECORD);
    aead(&cek)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut record)
        .map_err(|_| crypto("AES-GCM failed"))?;
    body.extend_from_slice(&record);
    Ok(body)
}

fn check_auth(auth_secret: &[u8]) -> Result<(), WebPushError> {
    if auth_secret.len() != AUTH_LEN {
        return Err(WebPushError::InvalidKey(format!("auth secret is {} bytes, not 16", auth_secret.len())));
    }
    Ok(())
}

fn public_point(key: &PrivateKey) -> Result<agreement::PublicKey, WebPushError> {
    key.compute_public_key().map_err(|_| crypto("cannot compute a public key"))
}

fn agree(private: &PrivateKey, peer: &[u8]) -> Result<Vec<u8>, WebPushError> {
    agreement::agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, peer),
        WebPushError::InvalidKey("peer key is not a valid P-256 point".into()),
        |secret| Ok(secret.to_vec()),
    )
}

/// RFC 8291 section 3.4 and RFC 8188 section 2.2: content encryption key and nonce. A single
/// record has sequence number 0, so the nonce is used as derived.
fn derive(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> Result<([u8; 16], [u8; 12]), WebPushError> {
    let mut key_info = Vec::with_capacity(14 + 2 * POINT_LEN);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    hkdf(auth_secret, ecdh_secret, &key_info, &mut ikm)?;
    let mut cek = [0u8; 16];
    hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek)?;
    let mut nonce = [0u8; 12];
    hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce)?;
    Ok((cek, nonce))
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), WebPushError> {
    let info = [info];
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| crypto("HKDF failed"))
}

fn aead(cek: &[u8; 16]) -> Result<LessSafeKey, WebPushError> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_128_GCM, cek).map_err(|_| crypto("bad AES key"))?))
}

fn crypto(why: &str) -> WebPushError {
    WebPushError::Crypto(why.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::prelude::{BASE64_URL_SAFE_NO_PAD, Engine as _};

    fn b64(s: &str) -> Vec<u8> {
        BASE64_URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    // RFC 8291 section 5 / appendix A, verbatim.
    const PLAINTEXT: &[u8] = b"When I grow up, I want to be a watermelon";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6T\
                        lzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    #[test]
    fn rfc8291_example_encrypts_byte_exactly() {
        let salt: [u8; 16] = b64(SALT).try_into().unwrap();
        let body = encrypt_with(PLAINTEXT, &b64(UA_PUBLIC), &b64(AUTH), &salt, &b64(AS_PRIVATE), 4096).unwrap();
        assert_eq!(BASE64_URL_SAFE_NO_PAD.encode(&body), BODY);
        assert_eq!(&body[21..86], &b64(AS_PUBLIC)[..]);
    }

    #[test]
    fn rfc8291_example_decrypts() {
        assert_eq!(decrypt(&b64(BODY), &b64(UA_PRIVATE), &b64(AUTH)).unwrap(), PLAINTEXT);
    }

    #[test]
    fn intermediate_values_match_the_rfc() {
        let ua = PrivateKey::from_private_key(&ECDH_P256, &b64(UA_PRIVATE)).unwrap();
        let secret = agree(&ua, &b64(AS_PUBLIC)).unwrap();
        assert_eq!(BASE64_URL_SAFE_NO_PAD.encode(&secret), "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs");
        let (cek, nonce) = derive(&secret, &b64(AUTH), &b64(UA_PUBLIC), &b64(AS_PUBLIC), &b64(SALT)).unwrap();
        assert_eq!(BASE64_URL_SAFE_NO_PAD.encode(cek), "oIhVW04MRdy2XN9CiKLxTg");
        assert_eq!(BASE64_URL_SAFE_NO_PAD.encode(nonce), "4h_95klXJ5E_qnoN");
    }

    #[test]
    fn round_trip_with_fresh_keys() {
        let phone = SubscriberKeys::generate().unwrap();
        let a = encrypt(b"{\"validation\":\"x\"}", &phone.public, &phone.auth).unwrap();
        let b = encrypt(b"{\"validation\":\"x\"}", &phone.public, &phone.auth).unwrap();
        assert_ne!(a[..86], b[..86], "fresh salt and ephemeral key per message");
        assert_eq!(u32::from_be_bytes(a[16..20].try_into().unwrap()), RECORD_SIZE);
        assert_eq!(a[20], 65);
        assert_eq!(decrypt(&a, &phone.private, &phone.auth).unwrap(), b"{\"validation\":\"x\"}");
        assert_eq!(decrypt(&b, &phone.private, &phone.auth).unwrap(), b"{\"validation\":\"x\"}");

        let max = vec![b'a'; MAX_PLAINTEXT];
        let body = encrypt(&max, &phone.public, &phone.auth).unwrap();
        assert_eq!(body.len(), 4096);
        assert_eq!(decrypt(&body, &phone.private, &phone.auth).unwrap(), max);
        assert!(encrypt(&vec![b'a'; MAX_PLAINTEXT + 1], &phone.public, &phone.auth).is_err());
        assert!(encrypt(b"", &phone.public, &phone.auth).is_ok());
    }

    #[test]
    fn tampering_and_wrong_keys_are_rejected() {
        let phone = SubscriberKeys::generate().unwrap();
        let body = encrypt(b"hello", &phone.public, &phone.auth).unwrap();
        // Not the record size: RFC 8188 does not authenticate it, and any value holding the record works.
        for i in [0, 15, 20, 30, 86, body.len() - 1] {
            let mut bad = body.clone();
            bad[i] ^= 1;
            assert!(decrypt(&bad, &phone.private, &phone.auth).is_err(), "flipped byte {i}");
        }
        assert!(decrypt(&body[..body.len() - 1], &phone.private, &phone.auth).is_err());
        assert!(decrypt(&body[..20], &phone.private, &phone.auth).is_err());
        let other = SubscriberKeys::generate().unwrap();
        assert!(decrypt(&body, &other.private, &phone.auth).is_err());
        assert!(decrypt(&body, &phone.private, &other.auth).is_err());
    }

    #[test]
    fn bad_padding_is_rejected() {
        // Build records with chosen padding through the same primitives encrypt uses.
        let phone = SubscriberKeys::generate().unwrap();
        let seal_raw = |record_plain: &[u8]| {
            let key = PrivateKey::generate(&ECDH_P256).unwrap();
            let as_public = public_point(&key).unwrap();
            let secret = agree(&key, &phone.public).unwrap();
            let salt = [7u8; 16];
            let (cek, nonce) = derive(&secret, &phone.auth, &phone.public, as_public.as_ref(), &salt).unwrap();
            let mut record = record_plain.to_vec();
            aead(&cek)
                .unwrap()
                .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut record)
                .unwrap();
            let mut body = salt.to_vec();
            body.extend_from_slice(&4096u32.to_be_bytes());
            body.push(65);
            body.extend_from_slice(as_public.as_ref());
            body.extend_from_slice(&record);
            body
        };
        assert_eq!(decrypt(&seal_raw(b"hi\x02\0\0\0"), &phone.private, &phone.auth).unwrap(), b"hi");
        assert!(decrypt(&seal_raw(b"hi\x01"), &phone.private, &phone.auth).is_err(), "not-last-record delimiter");
        assert!(decrypt(&seal_raw(b"hi\x02\0\x05"), &phone.private, &phone.auth).is_err(), "non-zero padding");
        assert!(decrypt(&seal_raw(b"\0\0\0"), &phone.private, &phone.auth).is_err(), "no delimiter");
    }

    #[test]
    fn bad_keys_are_refused() {
        let phone = SubscriberKeys::generate().unwrap();
        assert!(matches!(encrypt(b"x", &phone.public[..33], &phone.auth), Err(WebPushError::InvalidKey(_))));
        assert!(matches!(encrypt(b"x", &phone.public, &phone.auth[..8]), Err(WebPushError::InvalidKey(_))));
        let mut off_curve = phone.public;
        off_curve[64] ^= 1;
        assert!(matches!(encrypt(b"x", &off_curve, &phone.auth), Err(WebPushError::InvalidKey(_))));
    }
}
