//! Structured MIME header values (RFC 2045 §5.1 Content-Type, RFC 2183
//! Content-Disposition, RFC 3282 Content-Language): a small lenient
//! tokenizer. Parameter values are kept as sent (quotes removed, RFC 2231
//! `name*` forms untouched): BODYSTRUCTURE passes them on raw.

/// `name=value` pairs in the order sent.
pub(crate) type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// `type/subtype; params`. `None` when there is no valid `type/subtype`
/// (RFC 2045 §5.2: the caller then uses the default).
pub(crate) fn content_type(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Params)> {
    let mut p = Parser { s: value, pos: 0 };
    let kind = p.token()?;
    p.skip_cfws();
    if !p.eat(b'/') {
        return None;
    }
    let subtype = p.token()?;
    Some((kind, subtype, p.params()))
}

/// `disposition-type; params` (RFC 2183 §2).
pub(crate) fn disposition(value: &[u8]) -> Option<(Vec<u8>, Params)> {
    let mut p = Parser { s: value, pos: 0 };
    let kind = p.token()?;
    Some((kind, p.params()))
}

/// The language tags of Content-Language (RFC 3282 §2), comments removed.
pub(crate) fn languages(value: &[u8]) -> Vec<Vec<u8>> {
    let mut p = Parser { s: value, pos: 0 };
    let mut out = Vec::new();
    loop {
        if let Some(t) = p.token() {
            out.push(t);
        }
        p.skip_cfws();
        if !p.eat(b',') {
            return out;
        }
    }
}

/// The first parameter called `name` (case-insensitive).
pub(crate) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a [u8]> {
    params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v.as_slice())
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

/// RFC 2045 §5.1 `tspecials`.
fn special(b: u8) -> bool {
    b"()<>@,;:\\\"/[]?=".contains(&b)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.peek() == Some(b);
        if yes {
            self.pos += 1;
        }
        yes
    }

    /// Whitespace, line ends and (nested) comments.
    fn skip_cfws(&mut self) {
        let mut depth = 0u32;
        while let Some(b) = self.peek() {
            match b {
                b'(' => depth += 1,
                b')' if depth > 0 => depth -= 1,
                b'\\' if depth > 0 => self.pos += 1,
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ if depth > 0 => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<Vec<u8>> {
        self.skip_cfws();
        let start = self.pos;
        while self.peek().is_some_and(|b| b > b' ' && b != 0x7f && !special(b)) {
            self.pos += 1;
        }
        (self.pos > start).then(|| self.s.get(start..self.pos).unwrap_or_default().to_vec())
    }

    /// A parameter value: a quoted string, or (leniently: `boundary=--=_x`
    /// is common) everything up to `;` or whitespace.
    fn value(&mut self) -> Vec<u8> {
        self.skip_cfws();
        if self.eat(b'"') {
            let mut out = Vec::new();
            while let Some(b) = self.peek() {
                self.pos += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        if let Some(n) = self.peek() {
                            out.push(n);
                            self.pos += 1;
                        }
                    }
                    b'\r' | b'\n' => {}
                    _ => out.push(b),
                }
            }
            return out;
        }
        let start = self.pos;
        while self.peek().is_some_and(|b| !matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'(')) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or_default().to_vec()
    }

    /// `*(";" attribute "=" value)`; junk between parameters is skipped.
    fn params(&mut self) -> Params {
        let mut out = Params::new();
        loop {
            // Up to the next `;`, ignoring whatever is not a parameter.
            loop {
                self.skip_cfws();
                match self.peek() {
                    None => return out,
                    Some(b';') => break,
                    Some(b'"') => {
                        let _ = self.value();
                    }
                    Some(_) => self.pos += 1,
                }
            }
            self.pos += 1;
            let Some(name) = self.token() else { continue };
            self.skip_cfws();
            if self.eat(b'=') {
                out.push((name, self.value()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (String, String, Vec<(String, String)>);

    fn ct(v: &str) -> Option<Parsed> {
        let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
        content_type(v.as_bytes()).map(|(t, st, p)| (s(t), s(st), p.into_iter().map(|(a, b)| (s(a), s(b))).collect()))
    }

    #[test]
    fn content_types() {
        let (t, st, p) = ct(" text/plain; charset=\"utf-8\"; format=flowed\r\n").unwrap();
        assert_eq!((t.as_str(), st.as_str()), ("text", "plain"));
        assert_eq!(p, vec![("charset".into(), "utf-8".into()), ("format".into(), "flowed".into())]);
        let (_, _, p) = ct("multipart/mixed;\r\n\tboundary=----=_Part_1_2.3").unwrap();
        assert_eq!(p, vec![("boundary".into(), "----=_Part_1_2.3".into())]);
        let (t, st, p) = ct("Text (comment) / HTML ; name=\"a \\\"q\\\" b\" ; junk ; x*0*=utf-8''%C3").unwrap();
        assert_eq!((t.as_str(), st.as_str()), ("Text", "HTML"));
        assert_eq!(p, vec![("name".into(), "a \"q\" b".into()), ("x*0*".into(), "utf-8''%C3".into())]);
        assert!(ct("garbage").is_none());
        assert!(ct("text/").is_none());
        assert!(ct("").is_none());
        assert_eq!(
            ct("text/plain; charset=\"unterminated").unwrap().2,
            vec![("charset".into(), "unterminated".into())]
        );
    }

    #[test]
    fn dispositions_and_languages() {
        let (t, p) = disposition(b"attachment; filename=\"a b.pdf\"; size=10").unwrap();
        assert_eq!(t, b"attachment");
        assert_eq!(param(&p, "FILENAME"), Some(&b"a b.pdf"[..]));
        assert_eq!(languages(b" en-US, (c) de"), vec![b"en-US".to_vec(), b"de".to_vec()]);
        assert!(languages(b"").is_empty());
    }
}
