//! Entry names (RFC 5464 §3.2): `/private/...` or `/shared/...`, slash
//! separated, printable ASCII without the LIST wildcards `*` and `%`, no
//! empty component and no trailing `/`. Case-insensitive, so lower-cased
//! here once; the store keeps and answers the lower-case form.

use crate::error::ImapError;

/// Longest entry name accepted, in octets.
pub(super) const MAX_NAME: usize = 1024;

/// `/private` or `/shared` alone: a valid GETMETADATA root (with DEPTH),
/// never an entry that holds a value.
pub(super) fn is_root(name: &str) -> bool {
    name == "/private" || name == "/shared"
}

/// The lower-cased name, or BAD. `root_ok` admits `/private` and `/shared`
/// themselves (GETMETADATA); SETMETADATA needs a name below them.
pub(super) fn name(wire: &[u8], root_ok: bool) -> Result<String, ImapError> {
    let bad = |why: &str| Err(ImapError::bad(format!("Invalid metadata entry name: {why}")));
    if wire.len() > MAX_NAME {
        return bad("too long");
    }
    if !wire.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return bad("only printable ASCII is allowed");
    }
    if wire.iter().any(|b| matches!(b, b'*' | b'%')) {
        return bad("'*' and '%' are not allowed");
    }
    let name = String::from_utf8_lossy(wire).to_ascii_lowercase();
    if name.contains("//") || name.ends_with('/') {
        return bad("empty component");
    }
    if is_root(&name) {
        return if root_ok { Ok(name) } else { bad("an entry must be below /private or /shared") };
    }
    if !(name.starts_with("/private/") || name.starts_with("/shared/")) {
        return bad("must start with /private/ or /shared/");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lower_cased() {
        assert_eq!(name(b"/PRIVATE/Vendor/X", false).unwrap(), "/private/vendor/x");
        assert_eq!(name(b"/shared/comment", false).unwrap(), "/shared/comment");
        assert_eq!(name(b"/shared/a b", false).unwrap(), "/shared/a b");
        assert_eq!(name(b"/Private", true).unwrap(), "/private");
        for bad in [
            &b"/private"[..],
            b"/shared",
            b"/other/x",
            b"private/x",
            b"/private/",
            b"/private//x",
            b"/private/x*",
            b"/private/%",
            b"/private/\xc3\xa9",
            b"/private/a\tb",
            b"",
            b"/",
        ] {
            assert!(name(bad, false).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(name(&[b'a'; MAX_NAME + 1], true).is_err());
        assert!(name(b"/privatex", true).is_err());
    }
}
