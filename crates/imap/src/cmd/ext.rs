//! Command forms imap-codec 2.0.0-alpha.10 cannot decode, parsed by our
//! own grammar and run through [`crate::session::Session::extended`]:
//!
//! ```abnf
//! append         = "APPEND" SP mailbox 1*append-message           ; RFC 3502 §6 (MULTIAPPEND)
//! append-message = [SP flag-list] [SP date-time] SP (literal / literal8)
//! create         = "CREATE" SP mailbox [create-params]              ; RFC 4466 §2.2
//! create-params  = SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"   ; RFC 6154 §6
//! notify         = "NOTIFY" SP (notify-set / notify-none)           ; RFC 5465 §8, in cmd/notify/parse.rs
//! ```
//!
//! and, in submodules, LIST-EXTENDED / LIST-STATUS (`list.rs`, RFC 5258
//! §6, RFC 5819 §4) and SETMETADATA with atom values (`metadata.rs`).
//!
//! The session tries imap-codec first; only input it refuses comes here.
//! Anything this grammar refuses too gets the usual syntax `BAD`.

mod list;
mod metadata;

use crate::cmd::append::AppendMessage;
use crate::cmd::mailbox::ListArgs;
use crate::cmd::metadata::SetArgs;

/// A command decoded by this module.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Extended {
    /// APPEND with one or more messages (MULTIAPPEND, RFC 3502).
    Append { mailbox: Vec<u8>, messages: Vec<AppendMessage> },
    /// CREATE with special-use attributes (CREATE-SPECIAL-USE, RFC 6154 §3).
    Create { mailbox: Vec<u8>, special_use: Vec<String> },
    /// LIST with selection options, several patterns or RETURN options (RFC 5258, RFC 5819).
    List(ListArgs),
    /// SETMETADATA whose values imap-codec refuses (atoms; RFC 5464 §4.3).
    SetMetadata(SetArgs),
    /// NOTIFY (RFC 5465 §8; grammar in `cmd/notify/parse.rs`).
    Notify(crate::cmd::notify::Request),
}

impl Extended {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Extended::Append { .. } => "APPEND",
            Extended::Create { .. } => "CREATE",
            Extended::List(_) => "LIST",
            Extended::SetMetadata(_) => "SETMETADATA",
            Extended::Notify(_) => "NOTIFY",
        }
    }
}

/// The tag and command, or `None` when this grammar does not match either.
pub(crate) fn decode(input: &[u8]) -> Option<(String, Extended)> {
    let mut p = Parser { buf: input, pos: 0 };
    let tag = p.take_while(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b))?;
    let tag = String::from_utf8(tag.to_vec()).ok()?;
    p.sp()?;
    let ext = if p.keyword(b"APPEND ") {
        append(&mut p)?
    } else if p.keyword(b"CREATE ") {
        create(&mut p)?
    } else if p.keyword(b"LIST ") {
        list::list(&mut p)?
    } else if p.keyword(b"SETMETADATA ") {
        metadata::setmetadata(&mut p)?
    } else if p.keyword(b"NOTIFY ") {
        Extended::Notify(crate::cmd::notify::parse(&mut p)?)
    } else {
        return None;
    };
    p.crlf_at_end()?;
    Some((tag, ext))
}

fn append(p: &mut Parser<'_>) -> Option<Extended> {
    let mailbox = p.astring()?;
    let mut messages = Vec::new();
    while p.peek() == Some(b' ') {
        p.sp()?;
        let flags = if p.peek() == Some(b'(') {
            let f = p.flag_list()?;
            p.sp()?;
            f
        } else {
            Vec::new()
        };
        let date = if p.peek() == Some(b'"') {
            let d = p.date_time()?;
            p.sp()?;
            Some(d)
        } else {
            None
        };
        if p.peek() == Some(b'~') {
            // literal8 (RFC 3516): the message may hold any octet.
            p.pos += 1;
        }
        let data = p.literal()?.to_vec();
        messages.push(AppendMessage { flags, date, data });
    }
    (!messages.is_empty()).then_some(Extended::Append { mailbox, messages })
}

fn create(p: &mut Parser<'_>) -> Option<Extended> {
    let mailbox = p.astring()?;
    let mut special_use = Vec::new();
    if p.peek() == Some(b' ') {
        p.sp()?;
        p.byte(b'(')?;
        if !p.keyword(b"USE (") {
            return None;
        }
        while p.peek() != Some(b')') {
            if !special_use.is_empty() {
                p.sp()?;
            }
            p.byte(b'\\')?;
            let atom = p.atom()?;
            special_use.push(format!("\\{}", String::from_utf8_lossy(atom)));
        }
        p.byte(b')')?;
        p.byte(b')')?;
    }
    Some(Extended::Create { mailbox, special_use })
}

/// A cursor over one command. Every method returns `None` on mismatch.
pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// RFC 3501 §9 `atom-specials` plus the controls and SP.
fn atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)
}

impl<'a> Parser<'a> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(crate) fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    pub(crate) fn sp(&mut self) -> Option<()> {
        self.byte(b' ')
    }

    /// Case-insensitive `word` at the cursor.
    fn keyword(&mut self, word: &[u8]) -> bool {
        let found = self.buf.get(self.pos..self.pos + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word));
        if found {
            self.pos += word.len();
        }
        found
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        let n = rest.iter().take_while(|&&b| f(b)).count();
        self.pos += n;
        (n > 0).then(|| &rest[..n])
    }

    pub(crate) fn atom(&mut self) -> Option<&'a [u8]> {
        self.take_while(atom_char)
    }

    fn crlf_at_end(&mut self) -> Option<()> {
        (self.buf.get(self.pos..)? == b"\r\n").then_some(())
    }

    /// `astring`: an atom (`]` allowed), a quoted string or a literal.
    pub(crate) fn astring(&mut self) -> Option<Vec<u8>> {
        match self.peek()? {
            b'"' => self.quoted(),
            b'{' => self.literal().map(<[u8]>::to_vec),
            _ => self.take_while(|b| atom_char(b) || b == b']').map(<[u8]>::to_vec),
        }
    }

    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.byte(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let c = self.peek().filter(|c| matches!(c, b'"' | b'\\'))?;
                    out.push(c);
                }
                b'\r' | b'\n' | 0 => return None,
                c => out.push(c),
            }
            self.pos += 1;
        }
    }

    /// `{n}` or `{n+}`, CRLF, then n octets (the framer has read them all).
    fn literal(&mut self) -> Option<&'a [u8]> {
        self.byte(b'{')?;
        let digits = self.take_while(|b| b.is_ascii_digit())?;
        let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        if self.peek() == Some(b'+') {
            self.pos += 1;
        }
        self.byte(b'}')?;
        self.byte(b'\r')?;
        self.byte(b'\n')?;
        let data = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(data)
    }

    /// `flag-list`: system flags as `\Name`, keywords as atoms.
    fn flag_list(&mut self) -> Option<Vec<String>> {
        self.byte(b'(')?;
        let mut flags = Vec::new();
        while self.peek()? != b')' {
            if !flags.is_empty() {
                self.sp()?;
            }
            let system = self.byte(b'\\').is_some();
            let atom = String::from_utf8(self.atom()?.to_vec()).ok()?;
            flags.push(if system { format!("\\{atom}") } else { atom });
        }
        self.pos += 1;
        Some(flags)
    }

    /// `date-time` (RFC 3501 §9): `"dd-Mon-yyyy hh:mm:ss +zzzz"`, as a Unix time.
    fn date_time(&mut self) -> Option<i64> {
        self.byte(b'"')?;
        let text = self.buf.get(self.pos..self.pos + 26)?;
        self.pos += 26;
        self.byte(b'"')?;
        parse_date_time(std::str::from_utf8(text).ok()?)
    }
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (day may be space-padded) to seconds since the epoch.
pub(crate) fn parse_date_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 26 || [b[2], b[6], b[11], b[14], b[17], b[20]] != *b"-- :: " {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u16> {
        let t = s.get(r)?.trim_start();
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let month = MONTHS.iter().position(|m| s.get(3..6).is_some_and(|x| x.eq_ignore_ascii_case(m)))? + 1;
    let sign = match b[21] {
        b'+' => false,
        b'-' => true,
        _ => return None,
    };
    let t = mail_parser::DateTime {
        year: num(7..11)?,
        month: month as u8,
        day: num(0..2)? as u8,
        hour: num(12..14)? as u8,
        minute: num(15..17)? as u8,
        second: num(18..20)? as u8,
        tz_before_gmt: sign,
        tz_hour: num(22..24)? as u8,
        tz_minute: num(24..26)? as u8,
    };
    // `is_valid` allows day 31 in every month: a round trip catches 31-Feb.
    let back = mail_parser::DateTime::from_timestamp(t.to_timestamp_local());
    (t.is_valid() && (back.month, back.day) == (t.month, t.day)).then(|| t.to_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(flags: &[&str], date: Option<i64>, data: &[u8]) -> AppendMessage {
        AppendMessage { flags: flags.iter().map(|f| f.to_string()).collect(), date, data: data.to_vec() }
    }

    #[test]
    fn multiappend() {
        let input = b"a1 APPEND \"Sent \\\"x\\\"\" (\\Seen $Chat) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nabc {0+}\r\n ~{2}\r\nxy\r\n";
        let (tag, cmd) = decode(input).unwrap();
        assert_eq!(tag, "a1");
        let Extended::Append { mailbox, messages } = cmd else { panic!() };
        assert_eq!(mailbox, b"Sent \"x\"");
        assert_eq!(
            messages,
            vec![msg(&["\\Seen", "$Chat"], Some(760_686_745), b"abc"), msg(&[], None, b""), msg(&[], None, b"xy")]
        );
        let (_, cmd) = decode(b"a APPEND {5}\r\nINBOX () {1}\r\nz\r\n").unwrap();
        assert!(matches!(cmd, Extended::Append { mailbox, .. } if mailbox == b"INBOX"));
    }

    #[test]
    fn create_with_use() {
        let (_, cmd) = decode(b"t create Sent2 (USE (\\Sent))\r\n").unwrap();
        assert_eq!(cmd, Extended::Create { mailbox: b"Sent2".to_vec(), special_use: vec!["\\Sent".into()] });
        let (_, cmd) = decode(b"t CREATE x (use ())\r\n").unwrap();
        assert_eq!(cmd, Extended::Create { mailbox: b"x".to_vec(), special_use: vec![] });
    }

    #[test]
    fn refusals() {
        for bad in [
            &b"a APPEND INBOX\r\n"[..],
            b"a APPEND INBOX {3}\r\nab",
            b"a APPEND INBOX {3}\r\nabc junk\r\n",
            b"a APPEND INBOX (\\Seen {3}\r\nabc\r\n",
            b"a APPEND INBOX \"31-Feb-2024 00:00:00 +0000\" {1}\r\nx\r\n",
            b"a CREATE x (FOO (\\Sent))\r\n",
            b"a CREATE x (USE (\\Sent)\r\n",
            b"a NOOP\r\n",
            b"(a APPEND INBOX {1}\r\nx\r\n",
        ] {
            assert_eq!(decode(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn date_times() {
        assert_eq!(parse_date_time("01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_date_time(" 1-jan-1970 01:00:00 +0100"), Some(0));
        assert_eq!(parse_date_time("29-Feb-2000 00:00:00 +0000"), Some(951_782_400));
        assert_eq!(parse_date_time("01-Foo-1970 00:00:00 +0000"), None);
        assert_eq!(parse_date_time("01-Jan-1970 24:00:00 +0000"), None);
        assert_eq!(parse_date_time("01-Jan-1970 00:00:00 0000 "), None);
    }
}
