#![no_main]
//! RFC 8291 decryption of any body never panics; what encrypts decrypts.
//!
//! Input: a mode byte, then per mode
//! - 0: the body, decrypted with the RFC 8291 example's subscriber keys;
//! - 1: key length, auth length, key, auth secret, body (any lengths);
//! - 2: salt (16), record size (u32 LE), plaintext: encrypted with the RFC
//!   example's keys, must decrypt to the plaintext.
use base64::prelude::{BASE64_URL_SAFE_NO_PAD, Engine as _};
use coimail_coi::webpush::ece;
use libfuzzer_sys::fuzz_target;

const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

fn b64(s: &str) -> Vec<u8> {
    BASE64_URL_SAFE_NO_PAD.decode(s).expect("test vector")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let _ = ece::decrypt(rest, &b64(UA_PRIVATE), &b64(AUTH));
        }
        1 => {
            let [key_len, auth_len, rest @ ..] = rest else { return };
            let (key_len, auth_len) = (usize::from(*key_len % 64), usize::from(*auth_len % 32));
            if rest.len() < key_len + auth_len {
                return;
            }
            let (key, rest) = rest.split_at(key_len);
            let (auth, body) = rest.split_at(auth_len);
            let _ = ece::decrypt(body, key, auth);
        }
        _ => {
            let Some((salt, rest)) = rest.split_first_chunk::<16>() else { return };
            let Some((record_size, plaintext)) = rest.split_first_chunk::<4>() else { return };
            let record_size = u32::from_le_bytes(*record_size);
            let Ok(body) = ece::encrypt_with(plaintext, &b64(UA_PUBLIC), &b64(AUTH), salt, &b64(AS_PRIVATE), record_size)
            else {
                return;
            };
            assert!(plaintext.len() <= ece::MAX_PLAINTEXT);
            let back = ece::decrypt(&body, &b64(UA_PRIVATE), &b64(AUTH)).expect("own body decrypts");
            assert_eq!(back, plaintext);
        }
    }
});
