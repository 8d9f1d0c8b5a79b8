//! Pipelined APPENDs (RFC 7888 LITERAL+, RFC 3501 §5.5): a client that
//! does not wait for each tagged response has the next commands in our
//! input buffer already. Executed one by one, each would wait for its own
//! body fsync, directory fsync and index flush; one connection would be
//! bound to one commit at a time (docs/BENCHMARKS.md).
//!
//! So when an APPEND is decoded, the complete APPENDs right behind it in
//! the buffer (only what is already there: nothing waits for more input)
//! join it in a run, which the store writes as ONE commit
//! (`Store::append_batch`). Per command nothing changes: each is checked
//! on its own (syntax, flags, mailbox, TRYCREATE, quota), succeeds or fails
//! whole, gets its UIDs in command order and its own APPENDUID, and its
//! tagged OK is written only once its messages are durable. The responses
//! go out in command order, each preceded by the unsolicited responses due
//! (EXISTS for messages appended to the selected mailbox).
//!
//! The first input that is not a complete APPEND ends the run and is kept
//! for the session's next turn (`Session::stashed`): a continuation
//! request, a refused literal, or any other command runs after the run's
//! responses, as it would have. So does an APPEND over the command rate
//! (`limits.rs`): a run never waits for tokens.

use super::{AppendMessage, done, from_codec, new_messages};
use crate::cmd::ext::{self, Extended};
use crate::conn::{self, Event};
use crate::error::ImapError;
use crate::session::{CmdResult, Session};
use bytes::Bytes;
use coimail_store::{AppendRequest, NewMessage};
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{Command, CommandBody};

/// Most commands in one run, and most message bytes: the first response
/// waits for the whole run, so a run stays a few milliseconds of work.
const MAX_RUN: usize = 64;
const MAX_RUN_BYTES: usize = 16 << 20;

/// One decoded APPEND: its tag, and its mailbox and messages or what is
/// wrong with it.
pub(crate) struct Queued {
    tag: String,
    parsed: Result<(String, Vec<NewMessage>), ImapError>,
}

impl Queued {
    fn bytes(&self) -> usize {
        self.parsed.as_ref().map_or(0, |(_, m)| m.iter().map(|m| m.raw.len()).sum())
    }
}

/// `bytes` decoded if it is an APPEND (either grammar the session accepts:
/// imap-codec's, then `cmd::ext`'s MULTIAPPEND); `None` for anything else,
/// a syntax error included (the session's usual path answers it).
pub(crate) fn decode(s: &Session, bytes: &[u8]) -> Option<Queued> {
    let tag = conn::command_tag(bytes)?;
    let verb = bytes.get(tag.len() + 1..)?.get(..7)?;
    if !verb.eq_ignore_ascii_case(b"APPEND ") {
        return None;
    }
    if let Ok((&[], Command { tag, body: CommandBody::Append { mailbox, flags, date, message } })) =
        CommandCodec::default().decode(bytes)
    {
        let parsed =
            from_codec(s, &mailbox, &flags, date.as_ref(), &message).and_then(|(name, msg)| parse(name, vec![msg]));
        return Some(Queued { tag: tag.as_ref().to_owned(), parsed });
    }
    match ext::decode(bytes)? {
        (tag, Extended::Append { mailbox, messages }) => {
            let parsed = s.mailbox_name(&mailbox).and_then(|name| parse(name, messages));
            Some(Queued { tag, parsed })
        }
        _ => None,
    }
}

fn parse(name: String, messages: Vec<AppendMessage>) -> Result<(String, Vec<NewMessage>), ImapError> {
    Ok((name, new_messages(messages)?))
}

/// Runs `first` and the complete APPENDs queued behind it, then writes
/// every tagged response in order. Returns false when the connection must
/// close. The caller checked that the session is logged in.
pub(crate) async fn run(s: &mut Session, first: Queued) -> bool {
    let mut run = vec![first];
    let mut bytes = run[0].bytes();
    while run.len() < MAX_RUN && bytes < MAX_RUN_BYTES {
        let Some(event) = s.conn.next_event(s.literal_limit()) else { break };
        match event {
            Event::Command(next) => match decode(s, &next) {
                // The run is one store write: the first APPEND paid for it
                // (limits.rs), those joining it take no token of their own.
                Some(q) => {
                    bytes += q.bytes();
                    run.push(q);
                }
                _ => {
                    s.stashed = Some(Event::Command(next));
                    break;
                }
            },
            other => {
                s.stashed = Some(other);
                break;
            }
        }
    }
    let results = execute(s, &mut run).await;
    for (q, result) in run.iter().zip(results) {
        tracing::debug!(command = "APPEND", run = run.len(), "command");
        if !s.finish(&q.tag, true, true, result).await {
            return false;
        }
    }
    true
}

/// Stores every command of the run that passed its own checks, in one
/// store call; returns each command's outcome in order.
async fn execute(s: &Session, run: &mut [Queued]) -> Vec<CmdResult> {
    let Some(account) = s.account().map(|a| a.id) else {
        return run.iter().map(|_| Err(ImapError::Closed)).collect();
    };
    let lost = || ImapError::Internal("the store answered fewer APPENDs than it was given".into());
    let mut requests = Vec::new();
    let mut names = Vec::new();
    for q in run.iter_mut() {
        if let Ok((name, messages)) = &mut q.parsed {
            requests.push(AppendRequest { mailbox: name.clone(), messages: std::mem::take(messages) });
            names.push(name.clone());
        }
    }
    let mut stored = s.ctx.store.append_batch(account, requests).await.into_iter().zip(names);
    run.iter_mut()
        .map(|q| match std::mem::replace(&mut q.parsed, Err(lost())) {
            Err(e) => Err(e),
            Ok(_) => match stored.next() {
                Some((result, name)) => done(&name, result),
                None => Err(lost()),
            },
        })
        .collect()
}

/// A command that may start a run: the session's input it was framed from.
pub(crate) fn first(s: &Session, bytes: &Bytes) -> Option<Queued> {
    s.account()?;
    decode(s, bytes)
}
