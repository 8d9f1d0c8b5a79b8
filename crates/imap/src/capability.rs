//! The capability list, in one place: greeting, CAPABILITY, and the
//! `[CAPABILITY ...]` code after login all come from [`capabilities`].
//! Only what the session really implements is advertised.

/// What the list depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapabilityState {
    pub authenticated: bool,
    /// STARTTLS is possible now: plain-text port, TLS configured, not yet encrypted.
    pub starttls: bool,
    /// LOGIN / AUTHENTICATE PLAIN are allowed on this connection now.
    pub plaintext_login: bool,
}

const COMMON: &str = "IMAP4rev1 IMAP4rev2 LITERAL+";

/// The capability list without the leading `CAPABILITY` keyword.
pub(crate) fn capabilities(s: CapabilityState) -> String {
    let mut caps = String::from(COMMON);
    if s.authenticated {
        // RFC 9051 §6.1.1: the list may (and here does) change after login.
        caps.push_str(" ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE UTF8=ACCEPT");
        return caps;
    }
    caps.push_str(" SASL-IR ID ENABLE IDLE");
    if s.starttls {
        caps.push_str(" STARTTLS");
    }
    if s.plaintext_login {
        caps.push_str(" AUTH=PLAIN");
    } else {
        // RFC 3501 §6.2.3: LOGIN is refused now; RFC 9051 §6.2.2: so is PLAIN.
        caps.push_str(" LOGINDISABLED");
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_depend_on_state() {
        let pre = capabilities(CapabilityState { authenticated: false, starttls: true, plaintext_login: false });
        assert_eq!(pre, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS LOGINDISABLED");
        let pre = capabilities(CapabilityState { authenticated: false, starttls: false, plaintext_login: true });
        assert_eq!(pre, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN");
        let post = capabilities(CapabilityState { authenticated: true, starttls: true, plaintext_login: true });
        assert!(post.contains("IDLE") && post.contains("SPECIAL-USE") && !post.contains("STARTTLS"));
        assert!(!post.contains("AUTH="));
    }
}
