//! [`LogSafe`]: peer-supplied text (login names, HELO names, addresses,
//! mailbox names) as it may appear in a log. A raw newline would let a peer
//! write a log line of its choosing (a fake "logged in" for a log watcher
//! or fail2ban to act on) and an escape sequence would reach the admin's
//! terminal. Lives here because both protocol crates depend on this one.

use std::fmt;

/// Displays a string with control characters and backslashes escaped
/// (`\n`, `\r`, `\t`, `\\`, otherwise `\xNN` or `\u{NNNN}`), cut after
/// [`LogSafe::MAX_CHARS`] characters with a trailing `...`.
#[derive(Debug, Clone, Copy)]
pub struct LogSafe<'a>(pub &'a str);

impl LogSafe<'_> {
    /// Longer input is cut: a peer may send kilobytes of "user name".
    pub const MAX_CHARS: usize = 200;
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (i, c) in self.0.chars().enumerate() {
            if i == Self::MAX_CHARS {
                return f.write_str("...");
            }
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                // So an escape in the output always means one was made here.
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x100 && c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                // Bidi overrides and other invisible format characters can
                // make a line read as something else.
                c if c.is_control() || is_format(c) => write!(f, "\\u{{{:04x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Unicode format characters that reorder or hide text (Cf, the ones that matter in a terminal).
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::LogSafe;

    #[test]
    fn control_characters_are_escaped() {
        let shown = LogSafe("bob\r\n2026-12-07 INFO logged in user=root\x1b[2J\t\\x\u{202e}é").to_string();
        assert_eq!(shown, "bob\\r\\n2026-12-07 INFO logged in user=root\\x1b[2J\\t\\\\x\\u{202e}é");
        assert_eq!(LogSafe("alice@example.org").to_string(), "alice@example.org");
        assert_eq!(LogSafe("\x7f\u{85}").to_string(), "\\x7f\\x85");
    }

    #[test]
    fn long_input_is_cut() {
        let long = "a".repeat(10_000);
        let shown = LogSafe(&long).to_string();
        assert_eq!(shown.len(), LogSafe::MAX_CHARS + 3);
        assert!(shown.ends_with("..."));
        assert_eq!(LogSafe(&long[..LogSafe::MAX_CHARS]).to_string().len(), LogSafe::MAX_CHARS);
    }
}
