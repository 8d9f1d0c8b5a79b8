//! SEARCHRES (RFC 5182): `$`, the saved search result, where other
//! commands take a sequence set.
//!
//! SEARCH parses `$` itself (`parse.rs`). FETCH, STORE, COPY, MOVE and
//! UID EXPUNGE are decoded by imap-codec, which does not know `$`; for
//! them the session calls [`expand_saved`] first, which writes the saved
//! messages into the line as an ordinary set (UIDs for UID commands,
//! current sequence numbers otherwise). Both name the same messages at that
//! moment, and the commands themselves need to know nothing of `$`.

use super::esearch::compact;
use crate::selected::SeqNum;
use crate::session::{Done, Session, State};
use bytes::Bytes;
use coimail_store::Uid;

/// The messages `$` stands for (RFC 5182 §2.2), as (sequence number, UID)
/// ascending. Messages expunged since the search are left out; an empty
/// or unset result names none.
pub(crate) fn saved_messages(s: &Session) -> Vec<(SeqNum, Uid)> {
    let (State::Selected(_, view), Some(saved)) = (&s.state, &s.saved_search) else { return Vec::new() };
    saved.iter().filter_map(|&uid| view.seq_of(uid).map(|seq| (seq, uid))).collect()
}

/// `bytes` with `$` as the sequence set of FETCH, STORE, COPY, MOVE or
/// UID EXPUNGE replaced by the saved messages; other lines unchanged.
/// When `$` names no message the command has nothing to do (RFC 5182
/// §2.2): the error side holds its tag and OK.
pub(crate) fn expand_saved(s: &Session, bytes: Bytes) -> Result<Bytes, (String, Done)> {
    let Some(site) = locate(&bytes) else { return Ok(bytes) };
    if !matches!(s.state, State::Selected(..)) {
        return Ok(bytes);
    }
    let numbers: Vec<u32> =
        saved_messages(s).into_iter().map(|(seq, uid)| if site.uid { uid.into() } else { seq.into() }).collect();
    if numbers.is_empty() {
        let done = Done::ok(format!("{}{} completed", if site.uid { "UID " } else { "" }, site.name));
        return Err((site.tag, done));
    }
    Ok(replace(&bytes, site.at, &compact(&numbers)))
}

/// Where `$` is in a command line that uses it as a sequence set.
#[derive(Debug, PartialEq, Eq)]
struct Site {
    tag: String,
    uid: bool,
    name: &'static str,
    /// Offset of the `$`.
    at: usize,
}

fn locate(bytes: &[u8]) -> Option<Site> {
    let tag = crate::conn::command_tag(bytes)?;
    let mut pos = tag.len() + 1;
    let uid = bytes.get(pos..pos + 4).is_some_and(|w| w.eq_ignore_ascii_case(b"UID "));
    if uid {
        pos += 4;
    }
    let rest = bytes.get(pos..)?;
    let len = rest.iter().position(|b| !b.is_ascii_alphabetic())?;
    let name = match rest.get(..len)?.to_ascii_uppercase().as_slice() {
        b"FETCH" => "FETCH",
        b"STORE" => "STORE",
        b"COPY" => "COPY",
        b"MOVE" => "MOVE",
        b"EXPUNGE" if uid => "EXPUNGE",
        _ => return None,
    };
    let at = pos + len + 1;
    let dollar = bytes.get(at - 1) == Some(&b' ') && bytes.get(at) == Some(&b'$');
    let ends = matches!(bytes.get(at + 1), Some(b' ' | b'\r' | b'\n'));
    (dollar && ends).then(|| Site { tag: tag.to_owned(), uid, name, at })
}

fn replace(bytes: &[u8], at: usize, set: &str) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len() + set.len());
    out.extend_from_slice(bytes.get(..at).unwrap_or_default());
    out.extend_from_slice(set.as_bytes());
    out.extend_from_slice(bytes.get(at + 1..).unwrap_or_default());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestServer, check};

    #[test]
    fn finds_dollar_where_a_set_goes() {
        let site = |line: &str| locate(line.as_bytes()).map(|s| (s.tag, s.uid, s.name, s.at));
        assert_eq!(site("a FETCH $ FLAGS\r\n"), Some(("a".into(), false, "FETCH", 8)));
        assert_eq!(site("b uid store $ +FLAGS (x)\r\n"), Some(("b".into(), true, "STORE", 12)));
        assert_eq!(site("c UID EXPUNGE $\r\n"), Some(("c".into(), true, "EXPUNGE", 14)));
        assert_eq!(site("d COPY $ Trash\r\n"), Some(("d".into(), false, "COPY", 7)));
        assert_eq!(site("e EXPUNGE $\r\n"), None);
        assert_eq!(site("f FETCH $1 FLAGS\r\n"), None);
        assert_eq!(site("g FETCH 1:$ FLAGS\r\n"), None);
        assert_eq!(site("h SELECT $\r\n"), None);
        assert_eq!(replace(b"a FETCH $ FLAGS\r\n", 8, "1:3,5"), Bytes::from_static(b"a FETCH 1:3,5 FLAGS\r\n"));
    }

    #[tokio::test]
    async fn dollar_in_fetch_and_uid_fetch() {
        let srv = TestServer::start().await;
        for n in 0..5 {
            srv.deliver(format!("Subject: m{n}\r\n\r\nbody {n}\r\n").as_bytes()).await;
        }
        let mut c = srv.connect().await;
        c.line().await;
        c.login(&srv).await;
        c.select("INBOX").await;
        check(
            &mut c,
            "C: f1 FETCH $ (UID)
             S: f1 OK FETCH completed
             C: f2 SEARCH RETURN (SAVE) OR SUBJECT m1 SUBJECT m3
             S: f2 OK SEARCH completed
             C: f3 FETCH $ (UID)
             S: * 2 FETCH (UID 2)
             S: * 4 FETCH (UID 4)
             S: f3 OK FETCH completed
             C: f4 UID FETCH $ (FLAGS)
             S: * 2 FETCH (UID 2 FLAGS (\\Recent))
             S: * 4 FETCH (UID 4 FLAGS (\\Recent))
             S: f4 OK FETCH completed
             C: f5 UID SEARCH RETURN (SAVE) SUBJECT nothing
             S: f5 OK UID SEARCH completed
             C: f6 UID FETCH $ (FLAGS)
             S: f6 OK UID FETCH completed
             C: f7 SEARCH RETURN (SAVE) SUBJECT m0
             S: f7 OK SEARCH completed
             C: f8 STORE $ +FLAGS (\\Flagged)
             S: * 1 FETCH (FLAGS (\\Flagged \\Recent))
             S: f8 OK ...
             C: f9 SEARCH FLAGGED
             S: * SEARCH 1
             S: f9 OK SEARCH completed
             C: f10 UID COPY $ INBOX
             S: * 6 EXISTS
             S: * 6 RECENT
             S: f10 OK ...",
        )
        .await;
    }
}
