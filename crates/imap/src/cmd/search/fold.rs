//! Case-insensitive substring matching (RFC 9051 §6.4.4: "In all search keys
//! that use strings, a message matches the key if the string is a substring
//! of the associated text. The matching is case-insensitive"; RFC 5051
//! i;unicode-casemap uses Unicode case folding).
//!
//! We fold with Unicode *simple* case folding (CaseFolding.txt statuses C
//! and S): one character in, one character out, so folded text stays
//! aligned with the original. Rust's `char::to_lowercase` gives the same
//! equivalence classes except for the characters in [`EXTRA`], which fold
//! to a lower-case letter that is not their own lower-case mapping, and
//! U+0130 (whose lower case is two characters and which simple folding
//! leaves alone).

/// Simple case foldings that differ from `char::to_lowercase`.
const EXTRA: &[(char, char)] = &[
    ('\u{b5}', '\u{3bc}'),    // MICRO SIGN -> GREEK SMALL LETTER MU
    ('\u{17f}', 's'),         // LATIN SMALL LETTER LONG S
    ('\u{345}', '\u{3b9}'),   // COMBINING GREEK YPOGEGRAMMENI -> IOTA
    ('\u{3c2}', '\u{3c3}'),   // FINAL SIGMA -> SIGMA
    ('\u{3d0}', '\u{3b2}'),   // BETA SYMBOL
    ('\u{3d1}', '\u{3b8}'),   // THETA SYMBOL
    ('\u{3d5}', '\u{3c6}'),   // PHI SYMBOL
    ('\u{3d6}', '\u{3c0}'),   // PI SYMBOL
    ('\u{3f0}', '\u{3ba}'),   // KAPPA SYMBOL
    ('\u{3f1}', '\u{3c1}'),   // RHO SYMBOL
    ('\u{3f5}', '\u{3b5}'),   // LUNATE EPSILON SYMBOL
    ('\u{1c80}', '\u{432}'),  // CYRILLIC SMALL LETTER ROUNDED VE
    ('\u{1c81}', '\u{434}'),  // LONG-LEGGED DE
    ('\u{1c82}', '\u{43e}'),  // NARROW O
    ('\u{1c83}', '\u{441}'),  // WIDE ES
    ('\u{1c84}', '\u{442}'),  // TALL TE
    ('\u{1c85}', '\u{442}'),  // THREE-LEGGED TE
    ('\u{1c86}', '\u{44a}'),  // TALL HARD SIGN
    ('\u{1c87}', '\u{463}'),  // TALL YAT
    ('\u{1c88}', '\u{a64b}'), // UNBLENDED UK
    ('\u{1e9b}', '\u{1e61}'), // LONG S WITH DOT ABOVE
    ('\u{1fbe}', '\u{3b9}'),  // GREEK PROSGEGRAMMENI -> IOTA
];

/// The simple case folding of one character.
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if let Ok(i) = EXTRA.binary_search_by_key(&c, |&(from, _)| from) {
        return EXTRA.get(i).map_or(c, |&(_, to)| to);
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        // U+0130: no simple folding.
        _ => c,
    }
}

/// `s` case-folded.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(s, &mut out);
    out
}

/// A sort key for `s` under i;unicode-casemap (RFC 5051 §2), as far as we
/// go without Unicode tables: each character is title-cased (here: its
/// simple case folding, upper-cased when that is one character; the two
/// differ only for the few digraphs like U+01C6, which still land in one
/// class), and keys compare by code point. The canonical decomposition
/// step is skipped, so `é` sorts after every ASCII letter instead of next
/// to `e`. For ASCII this is exactly i;ascii-casemap (RFC 4790 §9.2):
/// letters compare as upper case, so `_` (0x5F) sorts after `Z` (0x5A),
/// not before `a`.
pub(crate) fn casemap_key(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars()
        .map(|c| {
            let folded = fold_char(c);
            let mut upper = folded.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(u), None) => u,
                _ => folded,
            }
        })
        .collect()
}

/// Appends `s` case-folded to `out`; ASCII text takes a fast path.
pub(crate) fn fold_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        if let Some(tail) = out.get_mut(start..) {
            tail.make_ascii_lowercase();
        }
    } else {
        out.extend(s.chars().map(fold_char));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_table_is_sorted() {
        assert!(EXTRA.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn simple_case_folding() {
        assert_eq!(fold("Hello WORLD"), "hello world");
        assert_eq!(fold("ÄÖÜ Straße ẞ"), "äöü straße ß");
        assert_eq!(fold("ΣΊΣΥΦΟΣ σίσυφος"), fold("σίσυφοσ ΣΊΣΥΦΟς"));
        assert_eq!(fold("\u{212a}elvin"), "kelvin"); // KELVIN SIGN
        assert_eq!(fold("ſ"), "s");
        assert_eq!(fold("µ"), fold("Μ"));
        assert_eq!(fold("İ"), "İ");
        // Cherokee: both cases land in the same class.
        assert_eq!(fold("\u{13a0}"), fold("\u{ab70}"));
    }

    #[test]
    fn sort_keys_compare_as_upper_case() {
        assert_eq!(casemap_key("a_b[Z]"), "A_B[Z]");
        assert!(casemap_key("_") > casemap_key("z") && casemap_key("[x]") > casemap_key("b"));
        assert_eq!(casemap_key("Gr\u{fc}\u{df}e \u{3c3}\u{3c2}"), "GR\u{dc}\u{df}E \u{3a3}\u{3a3}");
        assert_eq!(casemap_key("\u{212a}elvin"), casemap_key("KELVIN"));
        assert_eq!(casemap_key("\u{1c6}"), casemap_key("\u{1c4}"));
    }
}
