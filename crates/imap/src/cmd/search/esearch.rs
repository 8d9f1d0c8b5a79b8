//! Search results on the wire: `* SEARCH` (RFC 3501 §7.2.5), `* ESEARCH`
//! (RFC 4731 §3.2, RFC 9051 §7.3.4), and what SAVE keeps (RFC 5182 §2.1).

use super::parse::ReturnOpt;
use coimail_store::{ModSeq, Uid};
use std::fmt::Write;

/// `* SEARCH 2 3 7` (numbers ascending), with RFC 7162 §3.1.5's
/// `(MODSEQ n)` when the query used MODSEQ and something matched.
pub(crate) fn write_search(out: &mut Vec<u8>, numbers: &[u32], modseq: Option<ModSeq>) {
    let mut line = String::from("* SEARCH");
    for n in numbers {
        let _ = write!(line, " {n}");
    }
    if let (Some(m), false) = (modseq, numbers.is_empty()) {
        let _ = write!(line, " (MODSEQ {m})");
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// `* ESEARCH (TAG "a1") UID MIN 2 MAX 7 ALL 2:3,7 COUNT 3`. MIN, MAX and
/// ALL are left out when nothing matched (RFC 4731 §3.1); COUNT never is.
/// `opts` must not be empty (`RETURN ()` means ALL).
pub(crate) fn write_esearch(
    out: &mut Vec<u8>,
    tag: &str,
    uid: bool,
    opts: &[ReturnOpt],
    numbers: &[u32],
    modseq: Option<ModSeq>,
) {
    let mut line = String::from("* ESEARCH (TAG ");
    let mut quoted = Vec::new();
    crate::encode::string(&mut quoted, tag.as_bytes(), false);
    line.push_str(&String::from_utf8_lossy(&quoted));
    line.push(')');
    if uid {
        line.push_str(" UID");
    }
    let has = |o| opts.contains(&o);
    if let (true, Some(min)) = (has(ReturnOpt::Min), numbers.first()) {
        let _ = write!(line, " MIN {min}");
    }
    if let (true, Some(max)) = (has(ReturnOpt::Max), numbers.last()) {
        let _ = write!(line, " MAX {max}");
    }
    if has(ReturnOpt::All) && !numbers.is_empty() {
        let _ = write!(line, " ALL {}", compact(numbers));
    }
    if has(ReturnOpt::Count) {
        let _ = write!(line, " COUNT {}", numbers.len());
    }
    if let (Some(m), false) = (modseq, numbers.is_empty()) {
        let _ = write!(line, " MODSEQ {m}");
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// RFC 7162 §3.1.5: the MODSEQ an ESEARCH reports is the highest
/// mod-sequence of the messages it returns: those of MIN and MAX alone
/// (the higher of the two with both), every match with ALL or COUNT.
/// `modseqs` are the matches' mod-sequences in result order; `None` when
/// nothing matched.
pub(crate) fn returned_modseq(opts: &[ReturnOpt], modseqs: &[ModSeq]) -> Option<ModSeq> {
    let has = |o| opts.contains(&o);
    if has(ReturnOpt::All) || has(ReturnOpt::Count) {
        return modseqs.iter().copied().max();
    }
    let min = modseqs.first().filter(|_| has(ReturnOpt::Min));
    let max = modseqs.last().filter(|_| has(ReturnOpt::Max));
    min.max(max).copied()
}

/// Ascending numbers as a sequence set: `1,2,3,5` becomes `1:3,5`.
pub(crate) fn compact(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut iter = numbers.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while let Some(next) = iter.next_if(|&n| Some(n) == end.checked_add(1)) {
            end = next;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}:{end}");
        }
    }
    out
}

/// What SAVE keeps of a result (UIDs ascending). RFC 5182 §2.1: with MIN
/// and/or MAX but neither ALL nor COUNT, only those; otherwise everything.
pub(crate) fn saved(opts: &[ReturnOpt], uids: &[Uid]) -> Vec<Uid> {
    let has = |o| opts.contains(&o);
    if !(has(ReturnOpt::Min) || has(ReturnOpt::Max)) || has(ReturnOpt::All) || has(ReturnOpt::Count) {
        return uids.to_vec();
    }
    let mut kept = Vec::new();
    if let (true, Some(&min)) = (has(ReturnOpt::Min), uids.first()) {
        kept.push(min);
    }
    if let (true, Some(&max)) = (has(ReturnOpt::Max), uids.last()) {
        kept.push(max);
    }
    kept.dedup();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReturnOpt::*;

    fn esearch(uid: bool, opts: &[ReturnOpt], numbers: &[u32]) -> String {
        let mut out = Vec::new();
        write_esearch(&mut out, "a1", uid, opts, numbers, None);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sets_compact() {
        assert_eq!(compact(&[]), "");
        assert_eq!(compact(&[4]), "4");
        assert_eq!(compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(compact(&[u32::MAX - 1, u32::MAX]), format!("{}:{}", u32::MAX - 1, u32::MAX));
    }

    #[test]
    fn esearch_lines() {
        assert_eq!(
            esearch(true, &[Min, Max, All, Count], &[1, 2, 3, 5]),
            "* ESEARCH (TAG \"a1\") UID MIN 1 MAX 5 ALL 1:3,5 COUNT 4\r\n"
        );
        assert_eq!(esearch(false, &[Min, Count], &[]), "* ESEARCH (TAG \"a1\") COUNT 0\r\n");
        assert_eq!(esearch(false, &[All], &[]), "* ESEARCH (TAG \"a1\")\r\n");
        let mut out = Vec::new();
        write_search(&mut out, &[2, 9], Some(ModSeq(17)));
        assert_eq!(out, b"* SEARCH 2 9 (MODSEQ 17)\r\n");
    }

    #[test]
    fn modseq_of_what_is_returned() {
        let modseqs = [7, 30, 12, 9].map(ModSeq);
        assert_eq!(returned_modseq(&[Min], &modseqs), Some(ModSeq(7)));
        assert_eq!(returned_modseq(&[Max], &modseqs), Some(ModSeq(9)));
        assert_eq!(returned_modseq(&[Min, Max], &modseqs), Some(ModSeq(9)));
        assert_eq!(returned_modseq(&[Max, Min], &[ModSeq(10), ModSeq(3)]), Some(ModSeq(10)));
        assert_eq!(returned_modseq(&[All], &modseqs), Some(ModSeq(30)));
        assert_eq!(returned_modseq(&[Min, Count], &modseqs), Some(ModSeq(30)));
        assert_eq!(returned_modseq(&[Save, Max], &modseqs), Some(ModSeq(9)));
        assert_eq!(returned_modseq(&[Min, Max, All], &[]), None);
    }

    #[test]
    fn save_keeps_min_max_only_alone() {
        let uids = [3, 8, 20].map(Uid);
        assert_eq!(saved(&[Save], &uids), uids);
        assert_eq!(saved(&[Save, Min], &uids), [Uid(3)]);
        assert_eq!(saved(&[Save, Min, Max], &uids), [Uid(3), Uid(20)]);
        assert_eq!(saved(&[Save, Max, Count], &uids), uids);
        assert_eq!(saved(&[Save, Min, Max], &[Uid(5)]), [Uid(5)]);
        assert!(saved(&[Save, Min], &[]).is_empty());
    }
}
