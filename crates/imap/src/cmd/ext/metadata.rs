//! SETMETADATA with a laxer `value` than RFC 5464 §5 (`nstring / literal8`):
//! atoms are taken too, as the OX COI client sends `enabled yes` (COI R5).
//!
//! ```abnf
//! setmetadata  = "SETMETADATA" SP mailbox SP entry-values
//! entry-values = "(" entry SP value *(SP entry SP value) ")"
//! value        = "NIL" / astring / literal8
//! ```

use super::{Extended, Parser};
use crate::cmd::metadata::SetArgs;

pub(super) fn setmetadata(p: &mut Parser<'_>) -> Option<Extended> {
    let mailbox = p.astring()?;
    p.sp()?;
    p.byte(b'(')?;
    let mut entries = Vec::new();
    loop {
        let entry = p.astring()?;
        p.sp()?;
        entries.push((entry, value(p)?));
        if p.peek()? == b')' {
            break;
        }
        p.sp()?;
    }
    p.byte(b')')?;
    Some(Extended::SetMetadata(SetArgs { mailbox, entries }))
}

/// `Some(None)` for NIL (remove the entry).
fn value(p: &mut Parser<'_>) -> Option<Option<Vec<u8>>> {
    if p.peek()? == b'~' {
        p.pos += 1;
        return p.literal().map(|v| Some(v.to_vec()));
    }
    let start = p.pos;
    if p.keyword(b"NIL") && matches!(p.peek(), Some(b' ' | b')')) {
        return Some(None);
    }
    p.pos = start;
    p.astring().map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::{Extended, decode};
    use crate::cmd::metadata::SetArgs;

    #[test]
    fn atoms_nil_quoted_and_literals() {
        let (_, cmd) =
            decode(b"a SETMETADATA \"\" (/private/a yes /Private/B nil /private/c \"x y\" /private/d ~{2}\r\n\0\n /private/e NILE)\r\n")
                .unwrap();
        let expected = SetArgs {
            mailbox: vec![],
            entries: vec![
                (b"/private/a".to_vec(), Some(b"yes".to_vec())),
                (b"/Private/B".to_vec(), None),
                (b"/private/c".to_vec(), Some(b"x y".to_vec())),
                (b"/private/d".to_vec(), Some(b"\0\n".to_vec())),
                (b"/private/e".to_vec(), Some(b"NILE".to_vec())),
            ],
        };
        assert_eq!(cmd, Extended::SetMetadata(expected));
        for bad in
            [&b"a SETMETADATA \"\" ()\r\n"[..], b"a SETMETADATA \"\" (/private/a)\r\n", b"a SETMETADATA INBOX\r\n"]
        {
            assert!(decode(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
