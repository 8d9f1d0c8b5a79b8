//! Mail addresses as directory keys: `local@domain`, domain lower-cased,
//! local part kept exactly as given.

use crate::DirectoryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

/// RFC 5321 §4.5.3.1.1: 64 octets of local part.
const MAX_LOCAL: usize = 64;
/// RFC 1035 §2.3.4.
const MAX_DOMAIN: usize = 253;

impl Address {
    pub fn parse(s: &str) -> Result<Address, DirectoryError> {
        let bad = || DirectoryError::InvalidAddress(s.chars().take(100).collect());
        let (local, domain) = s.trim().rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > MAX_LOCAL
            || local.chars().any(|c| c.is_control() || c.is_whitespace() || "<>()[]\\,;:\"@".contains(c))
        {
            return Err(bad());
        }
        Ok(Address { local: local.to_owned(), domain: domain_of(domain).map_err(|_| bad())? })
    }

    /// The canonical spelling used as key and shown to users.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

fn domain_of(d: &str) -> Result<String, ()> {
    let d = d.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty() || d.len() > MAX_DOMAIN {
        return Err(());
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !ok {
            return Err(());
        }
    }
    Ok(d)
}

/// Validates a domain name and returns its canonical (lower-case) form.
pub fn domain(d: &str) -> Result<String, DirectoryError> {
    domain_of(d).map_err(|_| DirectoryError::InvalidAddress(d.chars().take(100).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_case_insensitive_local_part_is_not() {
        let a = Address::parse("Alice@Example.ORG").unwrap();
        assert_eq!(a.key(), "Alice@example.org");
        assert_eq!(domain("Example.org.").unwrap(), "example.org");
    }

    #[test]
    fn bad_addresses() {
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "a b@example.org",
            "a@exa_mple.org",
            "a@-x.org",
            "a@x..org",
            "a\r\n@x.org",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Address::parse(&format!("{}@x.org", "a".repeat(65))).is_err());
    }
}
