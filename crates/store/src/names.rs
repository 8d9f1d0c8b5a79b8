//! Mailbox name validation. A name is only ever a key in the index, never a
//! filesystem path, but we still refuse anything a client could use to
//! confuse hierarchy handling or another user's view.

use crate::error::{Result, StoreError};

/// Hierarchy separator for every mailbox name.
pub const SEPARATOR: char = '/';
/// Longest name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest single hierarchy level, in bytes.
pub const MAX_LEVEL_BYTES: usize = 255;
/// Deepest hierarchy accepted.
pub const MAX_DEPTH: usize = 32;

/// Validates `name` and returns its canonical spelling: a first level of
/// `inbox` in any case becomes `INBOX` (RFC 3501 §5.1).
pub fn canonical(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(StoreError::InvalidName("empty name"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(StoreError::InvalidName("name too long"));
    }
    let levels: Vec<&str> = name.split(SEPARATOR).collect();
    if levels.len() > MAX_DEPTH {
        return Err(StoreError::InvalidName("hierarchy too deep"));
    }
    for level in &levels {
        if level.is_empty() {
            return Err(StoreError::InvalidName("empty hierarchy level"));
        }
        if level.len() > MAX_LEVEL_BYTES {
            return Err(StoreError::InvalidName("hierarchy level too long"));
        }
        if *level == "." || *level == ".." {
            return Err(StoreError::InvalidName("'.' and '..' are not mailbox names"));
        }
        if level.chars().any(|c| c.is_control()) {
            return Err(StoreError::InvalidName("control characters are not allowed"));
        }
        // LIST wildcards (RFC 3501 §6.3.8) would make the mailbox unlistable.
        if level.contains(['*', '%']) {
            return Err(StoreError::InvalidName("'*' and '%' are not allowed"));
        }
    }
    if levels[0].eq_ignore_ascii_case("INBOX") {
        let mut out = String::from("INBOX");
        out.push_str(&name[5..]);
        return Ok(out);
    }
    Ok(name.to_owned())
}

/// The parent of `name`, if it has one.
pub fn parent(name: &str) -> Option<&str> {
    name.rsplit_once(SEPARATOR).map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_case_insensitive_only_as_first_level() {
        assert_eq!(canonical("inbox").unwrap(), "INBOX");
        assert_eq!(canonical("InBoX/Sub").unwrap(), "INBOX/Sub");
        assert_eq!(canonical("Archive/inbox").unwrap(), "Archive/inbox");
        assert_eq!(canonical("inboxes").unwrap(), "inboxes");
    }

    #[test]
    fn bad_names_are_errors() {
        for bad in ["", "/", "a//b", "/a", "a/", "..", "a/../b", "a\u{0}b", "a\nb", "a\u{7f}", "a*", "%"] {
            assert!(canonical(bad).is_err(), "{bad:?} accepted");
        }
        assert!(canonical(&"x".repeat(256)).is_err());
        assert!(canonical(&["a"; 33].join("/")).is_err());
        assert!(canonical(&vec!["y".repeat(200); 6].join("/")).is_err());
    }

    #[test]
    fn utf8_names_are_fine() {
        assert_eq!(canonical("Чаты/Über ☃").unwrap(), "Чаты/Über ☃");
        assert_eq!(parent("a/b/c"), Some("a/b"));
        assert_eq!(parent("a"), None);
    }
}
