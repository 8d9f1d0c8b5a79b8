//! The shape of an OpenPGP message, as chatmail's filtermail checks it: an
//! ASCII-armored message (RFC 4880 §6.2) whose packets are session keys
//! (PKESK, SKESK) followed by exactly one encrypted-and-integrity-protected
//! data packet (SEIPD, v1 or v2). Nothing is decrypted: the point is that
//! a relay passes only what it cannot read.

use base64::Engine;

const BEGIN: &str = "-----BEGIN PGP MESSAGE-----\r\n";
const END: &str = "-----END PGP MESSAGE-----";

/// Packet tags (RFC 9580 §5).
const PKESK: u8 = 1;
const SKESK: u8 = 3;
const SEIPD: u8 = 18;

/// Whether `armored` (the body of an `application/octet-stream` part) is
/// an armored OpenPGP message made only of session keys and one SEIPD.
/// `allow_headers`: armor headers (`Version: ...`) are refused in outgoing
/// mail, where they would only leak the sender's software, as filtermail does.
pub(crate) fn armored_message_ok(armored: &str, allow_headers: bool) -> bool {
    let Some(rest) = armored.strip_prefix(BEGIN) else { return false };
    let rest = rest.trim_end_matches("\r\n");
    let Some(mut body) = rest.strip_suffix(END) else { return false };
    if body.starts_with("Version: ") {
        if !allow_headers {
            return false;
        }
        body = body.split_once("\r\n").map_or("", |(_, after)| after);
    }
    let body = body.trim_start_matches("\r\n");
    // The CRC24 line (`=XXXX`) is optional since RFC 9580; base64 never
    // starts a line with `=`, so a last line starting with one is the CRC.
    let body = body.trim_end_matches("\r\n");
    let body = match body.rsplit_once("\r\n") {
        Some((data, last)) if last.starts_with('=') => data,
        _ => body,
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(compact) {
        Ok(packets) => packets_ok(&packets),
        Err(_) => false,
    }
}

/// Walks the packet headers (new format only, as Delta Chat and every
/// current implementation write): every packet but the last must be a
/// PKESK or SKESK, the last a SEIPD, and the lengths must add up exactly.
pub(crate) fn packets_ok(p: &[u8]) -> bool {
    let mut i = 0usize;
    while i < p.len() {
        let Some(&head) = p.get(i) else { return false };
        if head & 0xC0 != 0xC0 {
            return false;
        }
        let tag = head & 0x3F;
        i += 1;
        // Partial body lengths (RFC 9580 §4.2.1.4): chunks of 2^n, then a final length.
        while let Some(&b) = p.get(i)
            && (224..255).contains(&b)
        {
            let Some(next) = (1usize << (b & 0x1F)).checked_add(i + 1) else { return false };
            i = next;
        }
        let Some(&first) = p.get(i) else { return false };
        let (len, header) = match first {
            0..192 => (usize::from(first), 1),
            192..224 => {
                let Some(&second) = p.get(i + 1) else { return false };
                (((usize::from(first) - 192) << 8) + usize::from(second) + 192, 2)
            }
            255 => {
                let Some(four) = p.get(i + 1..i + 5) else { return false };
                (four.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)), 5)
            }
            _ => return false,
        };
        let Some(end) = (i + header).checked_add(len) else { return false };
        i = end;
        if i == p.len() {
            return tag == SEIPD;
        }
        if tag != PKESK && tag != SKESK {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armor(packets: &[u8], extra_header: bool) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(packets);
        let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
        let header = if extra_header { "Version: Test 1.0\r\n" } else { "" };
        format!("{BEGIN}{header}\r\n{}\r\n=AbCd\r\n{END}\r\n", lines.join("\r\n"))
    }

    #[test]
    fn session_keys_then_one_seipd_pass() {
        // PKESK (5 bytes), SKESK (3 bytes), SEIPD (4 bytes), new-format one-octet lengths.
        let p = [0xC1, 5, 1, 2, 3, 4, 5, 0xC3, 3, 9, 9, 9, 0xD2, 4, 1, 2, 3, 4];
        assert!(packets_ok(&p));
        assert!(armored_message_ok(&armor(&p, false), false));
        // Armor headers: fine incoming, refused outgoing.
        assert!(armored_message_ok(&armor(&p, true), true));
        assert!(!armored_message_ok(&armor(&p, true), false));
    }

    #[test]
    fn two_octet_five_octet_and_partial_lengths() {
        let mut p = vec![0xC1, 192, 8];
        p.extend(std::iter::repeat_n(0, 200));
        p.extend([0xD2, 255, 0, 0, 0, 3, 7, 7, 7]);
        assert!(packets_ok(&p));
        // SEIPD with a partial chunk of 2 octets (0xE1) then a final 1-octet length.
        let p = [0xC1, 1, 0, 0xD2, 0xE1, 5, 5, 1, 6];
        assert!(packets_ok(&p));
    }

    #[test]
    fn anything_else_fails() {
        assert!(!packets_ok(&[]), "no packets");
        assert!(!packets_ok(&[0xC1, 2, 1, 1]), "no SEIPD at the end");
        assert!(!packets_ok(&[0xCB, 1, 0, 0xD2, 1, 0]), "a literal data packet before the SEIPD");
        assert!(!packets_ok(&[0xD2, 1, 0, 0xD2, 1, 0]), "two SEIPDs");
        assert!(!packets_ok(&[0x85, 1, 0]), "old-format packet");
        assert!(!packets_ok(&[0xD2, 9, 0]), "truncated");
        assert!(!packets_ok(&[0xD2, 255, 0xFF, 0xFF]), "truncated length");
        assert!(
            !packets_ok(&[0xD2, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            "partial lengths past the end"
        );
        let seipd = [0xD2, 1, 0];
        assert!(!armored_message_ok("hello", true));
        assert!(!armored_message_ok(&armor(&seipd, false).replace(END, "-----END PGP SIGNATURE-----"), true));
        assert!(!armored_message_ok(&armor(&seipd, false).replace("\r\n", "\n"), true), "CRLF only");
        assert!(!armored_message_ok(&format!("{BEGIN}\r\n!!!!\r\n{END}"), true), "not base64");
    }
}
