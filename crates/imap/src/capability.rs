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
    /// Largest message APPEND accepts (RFC 7889 APPENDLIMIT): the literal cap.
    pub append_limit: u64,
    /// COI's capabilities (`COI`, `WEBPUSH`), advertised only after login (R1, R2).
    pub coi: &'static str,
    /// Delta Chat's (`XDELTAPUSH` when pushes go out), after login only.
    pub deltachat: &'static str,
    /// A chatmail relay (`[chatmail]`): `XCHATMAIL` after login, which
    /// makes Delta Chat drop its own send rate limit.
    pub xchatmail: bool,
}

const COMMON: &str = "IMAP4rev1 IMAP4rev2 LITERAL+";

/// The capability list without the leading `CAPABILITY` keyword.
pub(crate) fn capabilities(s: CapabilityState) -> String {
    let mut caps = String::from(COMMON);
    if s.authenticated {
        // RFC 9051 §6.1.1: the list may (and here does) change after login.
        caps.push_str(" ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN SPECIAL-USE UTF8=ACCEPT");
        // FETCH BINARY[...] / BINARY.SIZE (RFC 3516; cmd/fetch.rs); APPEND takes literal8.
        caps.push_str(" BINARY");
        // Mailbox and message management (cmd/{append,copy_move,expunge,mailbox,status}.rs).
        caps.push_str(" UIDPLUS MOVE MULTIAPPEND CREATE-SPECIAL-USE STATUS=SIZE");
        caps.push_str(&format!(" APPENDLIMIT={}", s.append_limit));
        // Search, sort and thread extensions (cmd/search.rs, cmd/sort.rs, cmd/thread.rs).
        caps.push_str(" ESEARCH SEARCHRES WITHIN SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES");
        // RFC 5464 (cmd/metadata.rs), RFC 9208 (cmd/quota.rs), RFC 5258 / RFC 5819 (cmd/mailbox/list.rs).
        caps.push_str(" METADATA METADATA-SERVER QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE LIST-EXTENDED LIST-STATUS");
        // RFC 7162 (cmd/select.rs, cmd/fetch.rs, selected.rs) and RFC 5465 (cmd/notify.rs).
        caps.push_str(" CONDSTORE QRESYNC NOTIFY");
        // RFC 4978, only after login (cmd/compress.rs, conn.rs).
        caps.push_str(" COMPRESS=DEFLATE");
        for extra in [s.coi, s.deltachat] {
            if !extra.is_empty() {
                caps.push(' ');
                caps.push_str(extra);
            }
        }
        if s.xchatmail {
            caps.push_str(" XCHATMAIL");
        }
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
        let pre = capabilities(CapabilityState {
            authenticated: false,
            starttls: true,
            plaintext_login: false,
            append_limit: 1000,
            coi: "COI WEBPUSH",
            deltachat: "XDELTAPUSH",
            xchatmail: false,
        });
        assert_eq!(pre, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS LOGINDISABLED");
        let pre = capabilities(CapabilityState {
            authenticated: false,
            starttls: false,
            plaintext_login: true,
            append_limit: 1000,
            coi: "COI WEBPUSH",
            deltachat: "XDELTAPUSH",
            xchatmail: false,
        });
        assert_eq!(pre, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN");
        let post = capabilities(CapabilityState {
            authenticated: true,
            starttls: true,
            plaintext_login: true,
            append_limit: 1000,
            coi: "COI WEBPUSH",
            deltachat: "XDELTAPUSH",
            xchatmail: false,
        });
        assert!(post.contains("IDLE") && post.contains("SPECIAL-USE") && !post.contains("STARTTLS"));
        assert!(post.contains(" UIDPLUS MOVE MULTIAPPEND CREATE-SPECIAL-USE STATUS=SIZE APPENDLIMIT=1000"));
        assert!(post.contains(" ESEARCH SEARCHRES WITHIN SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES"));
        assert!(!post.contains("AUTH="));
        assert!(post.contains(" METADATA METADATA-SERVER QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE LIST-EXTENDED"));
        assert!(post.contains(" LIST-STATUS") && !pre.contains("METADATA"));
        assert!(post.contains(" CONDSTORE QRESYNC NOTIFY"));
        assert!(post.contains(" COMPRESS=DEFLATE") && !pre.contains("COMPRESS"));
        // COI R1/R2: exact upper-case atoms, after login only.
        assert!(post.ends_with(" COI WEBPUSH XDELTAPUSH") && !pre.contains("COI") && !pre.contains("WEBPUSH"));
        assert!(!pre.contains("XDELTAPUSH"));
        assert!(!post.contains("XCHATMAIL"));
        let chatmail = |authenticated| {
            capabilities(CapabilityState {
                authenticated,
                starttls: false,
                plaintext_login: true,
                append_limit: 1000,
                coi: "",
                deltachat: "",
                xchatmail: true,
            })
        };
        assert!(chatmail(true).ends_with(" COMPRESS=DEFLATE XCHATMAIL") && !chatmail(false).contains("XCHATMAIL"));
    }
}
