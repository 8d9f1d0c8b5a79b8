//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for clients that have
//! not enabled UTF8=ACCEPT or IMAP4rev2. The store keeps names in UTF-8;
//! this codec is applied only at the wire.
//!
//! Decoding is strict where RFC 3501 says MUST: printable ASCII never
//! appears base64-encoded, base64 is unpadded and uses `,` for `/`, a shift
//! ends with `-`, and the UTF-16 inside is well formed.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid modified UTF-7 mailbox name")]
pub(crate) struct Mutf7Error;

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// UTF-8 to modified UTF-7.
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush_base64(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_base64(&mut out, &mut pending);
    out
}

fn flush_base64(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_be_bytes()).collect();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
    units.clear();
}

fn sextet(b: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u32)
}

/// Modified UTF-7 to UTF-8.
pub(crate) fn decode(wire: &[u8]) -> Result<String, Mutf7Error> {
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    while let Some(&b) = wire.get(i) {
        if b != b'&' {
            if !(0x20..=0x7e).contains(&b) {
                return Err(Mutf7Error);
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let rest = wire.get(i + 1..).unwrap_or_default();
        let len = rest.iter().position(|&c| c == b'-').ok_or(Mutf7Error)?;
        let shifted = rest.get(..len).unwrap_or_default();
        if shifted.is_empty() {
            out.push('&');
        } else {
            decode_shifted(shifted, &mut out)?;
        }
        i += len + 2;
    }
    Ok(out)
}

fn decode_shifted(shifted: &[u8], out: &mut String) -> Result<(), Mutf7Error> {
    let mut bytes = Vec::with_capacity(shifted.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in shifted {
        acc = (acc << 6) | sextet(c).ok_or(Mutf7Error)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits are padding: fewer than 6 and all zero, or the encoder was not canonical.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 || bytes.len() % 2 != 0 {
        return Err(Mutf7Error);
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    for c in char::decode_utf16(units) {
        let c = c.map_err(|_| Mutf7Error)?;
        if is_direct(c) {
            return Err(Mutf7Error);
        }
        out.push(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        let utf8 = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(utf8), wire);
        assert_eq!(decode(wire.as_bytes()).unwrap(), utf8);
    }

    #[test]
    fn ampersand_and_ascii_round_trip() {
        for s in ["INBOX", "a&b", "&", "Entw\u{fc}rfe", "\u{1f600} smile", "x\u{e9}\u{e9}y", ""] {
            let w = encode(s);
            assert!(w.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{w}");
            assert_eq!(decode(w.as_bytes()).unwrap(), s, "{w}");
        }
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(encode("Entw\u{fc}rfe"), "Entw&APw-rfe");
    }

    #[test]
    fn invalid_input_is_rejected() {
        for bad in [
            &b"&"[..],      // unterminated shift
            b"&AGE",        // unterminated shift
            b"&AGE=-",      // padding
            b"&AC8-",       // encodes '/', printable ASCII
            b"&2D0-",       // lone high surrogate (partial)
            b"&2D3YAA-",    // high + non-low surrogate
            b"&A-",         // 6 bits only
            b"&APx-",       // non-zero padding bits
            b"caf\xc3\xa9", // raw 8-bit
            b"a\tb",        // control
            b"&AAAA-",      // odd byte count
        ] {
            assert!(decode(bad).is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
    }
}
