//! SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4), with ESEARCH
//! (RFC 4731), SEARCHRES (RFC 5182), WITHIN (RFC 5032) and the MODSEQ key
//! (RFC 7162 §3.1.5). SORT and THREAD (RFC 5256) share the parser and the
//! evaluation and live in `sort.rs` and `thread.rs`.
//!
//! # Layout
//! - `parse`: our grammar for the three commands (imap-codec lacks RETURN,
//!   `$`, WITHIN and SORT=DISPLAY); the session calls [`parse_extended`]
//!   before imap-codec.
//! - `keys`: the query as parsed ([`keys::Key`]) and bound to the mailbox.
//! - `eval`: index-only first pass, then parallel reads off the async workers.
//! - `doc`: decoded headers and body text (mail-parser behind a few functions).
//! - `fold`: Unicode simple case folding for substring matches.
//! - `esearch`: `* SEARCH` / `* ESEARCH` lines and what SAVE keeps.
//! - `saved`: `$` in the other commands (RFC 5182 §2.2).
//!
//! The saved result (`$`) is [`Session::saved_search`]: UIDs, emptied when
//! a mailbox is selected or closed (RFC 5182 §2.1). FETCH, STORE, COPY,
//! MOVE and UID EXPUNGE get `$` rewritten into their line by
//! [`expand_saved`] before imap-codec sees it; `saved::saved_messages`
//! resolves it for any other use.

pub(crate) mod doc;
pub(crate) mod esearch;
pub(crate) mod eval;
pub(crate) mod fold;
pub(crate) mod keys;
pub(crate) mod parse;
pub(crate) mod saved;

use crate::error::ImapError;
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::{ModSeq, Uid};
use eval::{Hit, Source};
use imap_codec::imap_types::sequence::SequenceSet;
use keys::Scope;
use parse::{Kind, Request, ReturnOpt};
pub(crate) use saved::expand_saved;
use std::sync::Arc;

/// Charsets we search in (RFC 3501 §6.4.4: US-ASCII and UTF-8 at least).
const BADCHARSET: &str = "[BADCHARSET (UTF-8 US-ASCII)] Only UTF-8 and US-ASCII are supported";

/// The session's hook: `Some` for every SEARCH, SORT and THREAD line (UID
/// forms too), with its tag and the request or a BAD; `None` for others.
pub(crate) fn parse_extended(bytes: &[u8]) -> Option<(String, Result<Request, ImapError>)> {
    parse::parse(bytes)
}

/// Whether an EXPUNGE may be sent after this request (RFC 3501 §7.4.1:
/// not after SEARCH, nor after SORT and THREAD which answer with sequence
/// numbers too; their UID forms may).
pub(crate) fn allows_expunge(req: &Result<Request, ImapError>) -> bool {
    req.as_ref().is_ok_and(|r| r.uid)
}

/// Runs a parsed SEARCH, SORT or THREAD.
pub(crate) async fn run(s: &mut Session, tag: &str, req: Result<Request, ImapError>) -> CmdResult {
    let req = req?;
    let name = req.kind.name();
    match s.state {
        State::Selected(..) => {}
        State::Authenticated(_) => return Err(ImapError::bad(format!("{name} needs a selected mailbox"))),
        _ => return Err(ImapError::bad(format!("{name} is not valid before login"))),
    }
    if req.key.uses_modseq() {
        // RFC 7162 §3.1: a search with MODSEQ is a CONDSTORE-enabling command.
        s.enable_condstore();
    }
    match &req.kind {
        Kind::Search(ret) => search(s, tag, &req, ret.as_deref()).await,
        Kind::Sort(criteria) => super::sort::sort(s, &req, criteria).await,
        Kind::Thread(alg) => super::thread::thread(s, &req, *alg).await,
    }
}

async fn search(s: &mut Session, tag: &str, req: &Request, ret: Option<&[ReturnOpt]>) -> CmdResult {
    let save = ret.is_some_and(|r| r.contains(&ReturnOpt::Save));
    let hits = match find(s, req).await {
        Ok(hits) => hits,
        Err(e) => {
            if save {
                // RFC 5182 §2.1: a failed SEARCH ... SAVE empties the saved result.
                s.saved_search = None;
            }
            return Err(e);
        }
    };
    let numbers: Vec<u32> = hits.iter().map(|h| if req.uid { h.meta.uid.into() } else { h.seq.into() }).collect();
    // RFC 7162 §3.1.5: MODSEQ in the criteria asks for the highest
    // mod-sequence of what is returned.
    let modseqs: Vec<ModSeq> =
        if req.key.uses_modseq() { hits.iter().map(|h| h.meta.modseq).collect() } else { Vec::new() };
    let all = [ReturnOpt::All];
    let opts = match ret {
        // RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH ALL.
        None if s.rev2 => Some(&all[..]),
        None => None,
        // RFC 4731 §3.1: RETURN () is RETURN (ALL).
        Some([]) => Some(&all[..]),
        Some(opts) => Some(opts),
    };
    match opts {
        None => esearch::write_search(s.conn.out(), &numbers, modseqs.iter().copied().max()),
        Some(opts) => {
            if save {
                let uids: Vec<Uid> = hits.iter().map(|h| h.meta.uid).collect();
                s.saved_search = Some(esearch::saved(opts, &uids));
            }
            // RFC 5182 §2.1: SAVE alone produces no ESEARCH response.
            if opts != [ReturnOpt::Save] {
                let modseq = esearch::returned_modseq(opts, &modseqs);
                esearch::write_esearch(s.conn.out(), tag, req.uid, opts, &numbers, modseq);
            }
        }
    }
    Ok(Done::ok(if req.uid { "UID SEARCH completed" } else { "SEARCH completed" }))
}

/// The messages matching the request's criteria, in sequence order.
pub(crate) async fn find(s: &Session, req: &Request) -> Result<Vec<Hit>, ImapError> {
    if let Some(charset) = &req.charset
        && !(charset.eq_ignore_ascii_case(b"UTF-8") || charset.eq_ignore_ascii_case(b"US-ASCII"))
    {
        return Err(ImapError::No { code: None, text: BADCHARSET.into() });
    }
    let State::Selected(account, view) = &s.state else { return Err(ImapError::Closed) };
    let everything = SequenceSet::try_from("1:*").map_err(|e| ImapError::Internal(format!("sequence set: {e}")))?;
    let pairs = view.resolve(&everything, false).map_err(|_| ImapError::Internal("1:* did not resolve".into()))?;
    let scope = Scope {
        exists: pairs.len() as u32,
        last_uid: pairs.last().map_or(Uid(0), |p| p.1),
        saved: s.saved_search.as_deref().unwrap_or_default(),
        recent: view.recent_ranges(),
        now: now(),
    };
    let cond = keys::bind(&req.key, &scope)?;
    let src = Source {
        store: &s.ctx.store,
        account: account.id,
        mailbox: view.mailbox,
        listing: s.ctx.store.messages(account.id, view.mailbox)?,
        view: pairs,
    };
    eval::matching(&src, Arc::new(cond)).await
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests;
