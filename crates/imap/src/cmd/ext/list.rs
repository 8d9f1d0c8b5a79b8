//! The extended LIST grammar:
//!
//! ```abnf
//! list             = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
//!                    [SP list-return-opts]                         ; RFC 5258 §6
//! list-select-opts = "(" [list-select-opt *(SP list-select-opt)] ")"
//! list-select-opt  = "SUBSCRIBED" / "REMOTE" / "RECURSIVEMATCH"
//!                    / "SPECIAL-USE"                               ; RFC 6154 §6
//! mbox-or-pat      = list-mailbox / patterns
//! patterns         = "(" list-mailbox *(SP list-mailbox) ")"
//! list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
//! return-option    = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE"
//!                    / "STATUS" SP "(" status-att *(SP status-att) ")"   ; RFC 5819 §4
//! ```
//!
//! Unknown options are refused (BAD): we cannot honour what we do not know.

use super::{Extended, Parser, atom_char};
use crate::cmd::mailbox::{ListArgs, Returns, Selection};
use imap_codec::imap_types::status::StatusDataItemName;

pub(super) fn list(p: &mut Parser<'_>) -> Option<Extended> {
    let mut args = ListArgs::default();
    if p.peek() == Some(b'(') {
        args.select = selection(p)?;
        p.sp()?;
    }
    args.reference = p.astring()?;
    p.sp()?;
    if p.peek() == Some(b'(') {
        p.byte(b'(')?;
        args.patterns.push(list_mailbox(p)?);
        while p.peek() == Some(b' ') {
            p.sp()?;
            args.patterns.push(list_mailbox(p)?);
        }
        p.byte(b')')?;
    } else {
        args.patterns.push(list_mailbox(p)?);
    }
    if p.peek() == Some(b' ') {
        p.sp()?;
        if !p.keyword(b"RETURN ") {
            return None;
        }
        args.ret = returns(p)?;
    }
    Some(Extended::List(args))
}

/// `list-mailbox = 1*list-char / string`: atoms may hold `%`, `*` and `]`.
fn list_mailbox(p: &mut Parser<'_>) -> Option<Vec<u8>> {
    match p.peek()? {
        b'"' | b'{' => p.astring(),
        _ => p.take_while(|b| atom_char(b) || b"%*]".contains(&b)).map(<[u8]>::to_vec),
    }
}

/// The options of a parenthesised list, each handed to `each`; `()` is fine.
fn options(p: &mut Parser<'_>, mut each: impl FnMut(&mut Parser<'_>, &[u8]) -> Option<()>) -> Option<()> {
    p.byte(b'(')?;
    let mut first = true;
    while p.peek()? != b')' {
        if !first {
            p.sp()?;
        }
        first = false;
        let word = p.atom()?.to_ascii_uppercase();
        each(p, &word)?;
    }
    p.byte(b')')
}

fn selection(p: &mut Parser<'_>) -> Option<Selection> {
    let mut sel = Selection::default();
    options(p, |_, word| {
        match word {
            b"SUBSCRIBED" => sel.subscribed = true,
            b"SPECIAL-USE" => sel.special_use = true,
            b"RECURSIVEMATCH" => sel.recursive_match = true,
            // No remote mailboxes here (RFC 5258 §3.1).
            b"REMOTE" => {}
            _ => return None,
        }
        Some(())
    })?;
    Some(sel)
}

fn returns(p: &mut Parser<'_>) -> Option<Returns> {
    let mut ret = Returns::default();
    options(p, |p, word| {
        match word {
            b"SUBSCRIBED" => ret.subscribed = true,
            b"CHILDREN" => ret.children = true,
            b"SPECIAL-USE" => ret.special_use = true,
            b"STATUS" => {
                p.sp()?;
                let mut items = Vec::new();
                options(p, |_, att| {
                    items.push(status_att(att)?);
                    Some(())
                })?;
                if items.is_empty() {
                    return None;
                }
                ret.status = Some(items);
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(ret)
}

/// RFC 3501 `status-att` with RFC 9051 DELETED, RFC 8438 SIZE, RFC 7162
/// HIGHESTMODSEQ and RFC 9208 DELETED-STORAGE.
fn status_att(word: &[u8]) -> Option<StatusDataItemName> {
    Some(match word {
        b"MESSAGES" => StatusDataItemName::Messages,
        b"RECENT" => StatusDataItemName::Recent,
        b"UIDNEXT" => StatusDataItemName::UidNext,
        b"UIDVALIDITY" => StatusDataItemName::UidValidity,
        b"UNSEEN" => StatusDataItemName::Unseen,
        b"DELETED" => StatusDataItemName::Deleted,
        b"SIZE" => StatusDataItemName::Size,
        b"HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        b"DELETED-STORAGE" => StatusDataItemName::DeletedStorage,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Extended, decode};
    use crate::cmd::mailbox::{ListArgs, Returns, Selection};
    use imap_codec::imap_types::status::StatusDataItemName as S;

    fn parse(input: &str) -> Option<ListArgs> {
        match decode(input.as_bytes()) {
            Some((_, Extended::List(args))) => Some(args),
            _ => None,
        }
    }

    #[test]
    fn extended_list_forms() {
        let args = parse(
            "a LIST (subscribed RECURSIVEMATCH REMOTE special-use) \"\" (INBOX \"a b\" %/x*]) \
             RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES unseen DELETED-STORAGE))\r\n",
        )
        .unwrap();
        assert_eq!(
            args,
            ListArgs {
                reference: vec![],
                patterns: vec![b"INBOX".to_vec(), b"a b".to_vec(), b"%/x*]".to_vec()],
                select: Selection { subscribed: true, special_use: true, recursive_match: true },
                ret: Returns {
                    subscribed: true,
                    children: true,
                    special_use: true,
                    status: Some(vec![S::Messages, S::Unseen, S::DeletedStorage]),
                },
            }
        );
        let args = parse("a LIST () Lists/ {1+}\r\n%\r\n").unwrap();
        assert_eq!((args.reference, args.patterns), (b"Lists/".to_vec(), vec![b"%".to_vec()]));
        assert_eq!(parse("a LIST \"\" % RETURN ()\r\n").unwrap().ret, Returns::default());
    }

    #[test]
    fn refusals() {
        for bad in [
            "a LIST (FOO) \"\" %\r\n",
            "a LIST \"\" % RETURN (FOO)\r\n",
            "a LIST \"\" % RETURN (STATUS ())\r\n",
            "a LIST \"\" % RETURN (STATUS (FROBS))\r\n",
            "a LIST \"\" () \r\n",
            "a LIST \"\" (a\r\n",
            "a LIST \"\" % RETURN\r\n",
            "a LIST \"\" % EXTRA (x)\r\n",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
