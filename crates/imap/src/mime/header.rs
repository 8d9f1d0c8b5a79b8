//! RFC 5322 §2.2 header sections: where a header ends, its fields (with
//! their folded continuation lines), and unfolding.
//!
//! Lenient by design: the header ends at the first empty line, or at the
//! first line that is neither a field nor a continuation (the body then
//! starts at that line, with no blank line in between). Works with CRLF
//! and bare LF line ends alike.

use std::ops::Range;

/// One header field as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// The field name, without trailing whitespace.
    pub name: &'a [u8],
    /// The value after the colon, still folded, with its final line end.
    pub value: &'a [u8],
    /// The whole field: name, colon, value and every line end.
    pub raw: &'a [u8],
}

/// Splits `range` of `raw` into the header (including the blank line that
/// ends it, when there is one) and the body: returns the offset where the
/// body starts.
pub(crate) fn split(raw: &[u8], range: Range<usize>) -> usize {
    let mut pos = range.start;
    let mut first = true;
    while pos < range.end {
        let end = line_end(raw, pos, range.end);
        let line = raw.get(pos..end).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" || line == b"\r" {
            // RFC 5322 §2.1: the empty line separating header and body.
            return end;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if (continuation && first) || (!continuation && field_name(line).is_none()) {
            return pos;
        }
        first = false;
        pos = end;
    }
    range.end
}

/// The offset just past the line starting at `pos` (its LF included), or `limit`.
pub(crate) fn line_end(raw: &[u8], pos: usize, limit: usize) -> usize {
    raw.get(pos..limit).and_then(|r| r.iter().position(|&b| b == b'\n')).map_or(limit, |p| pos + p + 1)
}

/// The field name of a line, when it starts a field: RFC 5322 §3.6.8
/// `ftext` (printable ASCII but colon), then optional WSP (obsolete
/// syntax, §4.5), then the colon.
fn field_name(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    let trimmed = name.trim_ascii_end();
    let valid = !trimmed.is_empty() && trimmed.iter().all(|&b| (33..=126).contains(&b));
    let only_wsp_after = name.get(trimmed.len()..).unwrap_or_default().iter().all(|&b| b == b' ' || b == b'\t');
    (valid && only_wsp_after).then_some(colon)
}

/// The fields of a header (as returned by [`split`]: the blank line, if
/// any, is skipped).
pub(crate) fn fields(header: &[u8]) -> Fields<'_> {
    Fields { header, pos: 0 }
}

pub(crate) struct Fields<'a> {
    header: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let h = self.header;
        loop {
            if self.pos >= h.len() {
                return None;
            }
            let start = self.pos;
            let mut end = line_end(h, start, h.len());
            while matches!(h.get(end), Some(b' ' | b'\t')) {
                end = line_end(h, end, h.len());
            }
            self.pos = end;
            let raw = h.get(start..end).unwrap_or_default();
            // Lines that are no field (the blank line, stray text) are skipped.
            if let Some(colon) = field_name(raw) {
                let name = raw.get(..colon).unwrap_or_default().trim_ascii_end();
                let value = raw.get(colon + 1..).unwrap_or_default();
                return Some(Field { name, value, raw });
            }
        }
    }
}

/// The first field called `name` (case-insensitive).
pub(crate) fn first<'a>(header: &'a [u8], name: &str) -> Option<Field<'a>> {
    fields(header).find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
}

/// RFC 5322 §2.2.3 unfolding: every CR and LF removed (the WSP after a
/// fold stays), then leading and trailing whitespace trimmed.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    value.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect::<Vec<u8>>().trim_ascii().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ends_at_the_blank_line_or_the_first_non_field() {
        let m = b"A: 1\r\nB: 2\r\n 2b\r\n\r\nbody";
        assert_eq!(split(m, 0..m.len()), 19);
        assert_eq!(split(b"A: 1\n\nbody", 0..10), 6);
        assert_eq!(split(b"A: 1\r\nno field here\r\n", 0..21), 6);
        assert_eq!(split(b"\r\nbody", 0..6), 2);
        assert_eq!(split(b" indented first line\r\n", 0..22), 0);
        assert_eq!(split(b"A: header only", 0..14), 14);
        assert_eq!(split(b"", 0..0), 0);
        assert_eq!(split(b"Bad Name: x\r\n\r\n", 0..15), 0);
        assert_eq!(split(b"Obs-Name  : x\r\n\r\nb", 0..18), 17);
    }

    #[test]
    fn fields_keep_their_folds() {
        let h = b"A: 1\r\nB: 2\r\n  2b\r\nc : 3\r\n\r\n";
        let f: Vec<_> = fields(h).collect();
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].raw, b"B: 2\r\n  2b\r\n");
        assert_eq!(f[1].value, b" 2\r\n  2b\r\n");
        assert_eq!(f[2].name, b"c");
        assert_eq!(first(h, "C").unwrap().value, b" 3\r\n");
        assert_eq!(unfold(f[1].value), b"2  2b");
    }
}
