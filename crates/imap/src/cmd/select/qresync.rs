//! SELECT/EXAMINE parameters (RFC 4466 §2.1): CONDSTORE (RFC 7162
//! §3.1.8) and QRESYNC (§3.2.5), and the resynchronisation QRESYNC asks
//! for: `* VANISHED (EARLIER)` for what was expunged since the client's
//! modseq (read from the store's expunge log), then a FETCH (UID FLAGS
//! MODSEQ) of every message changed since.
//!
//! The expunge log is complete, so the answer is exact: the optional
//! sequence match data (§3.2.5.2), which only lets a server with less
//! history send fewer UIDs, is accepted and not needed.

use crate::cmd::store::write_fetch;
use crate::error::ImapError;
use crate::selected::{SelectedView, set_contains, write_vanished};
use crate::session::Session;
use coimail_store::{AccountId, MessageMeta, ModSeq, Store, Uid};
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::sequence::SequenceSet;

/// The QRESYNC parameter: what the client knew when it last synchronised.
#[derive(Debug, Clone)]
pub(super) struct Resync {
    pub uid_validity: u32,
    pub modseq: ModSeq,
    /// The UIDs the client knows; `None` means all.
    pub known: Option<SequenceSet>,
}

/// Checks the parameters; CONDSTORE turns CONDSTORE on (RFC 7162 §3.1.8).
pub(super) fn params(s: &mut Session, parameters: &[SelectParameter]) -> Result<Option<Resync>, ImapError> {
    let (mut condstore, mut resync) = (false, None);
    for p in parameters {
        match p {
            SelectParameter::CondStore if !condstore => condstore = true,
            // §3.2.5: BAD unless the client said ENABLE QRESYNC.
            SelectParameter::QResync { .. } if !s.qresync => {
                return Err(ImapError::bad("QRESYNC needs ENABLE QRESYNC first"));
            }
            SelectParameter::QResync { uid_validity, mod_sequence_value, known_uids, .. } if resync.is_none() => {
                let known = known_uids.clone();
                resync =
                    Some(Resync { uid_validity: uid_validity.get(), modseq: ModSeq(mod_sequence_value.get()), known });
            }
            _ => return Err(ImapError::bad("A SELECT parameter may be given once")),
        }
    }
    if condstore {
        s.condstore = true;
    }
    Ok(resync)
}

/// Writes what changed since `r.modseq` (RFC 7162 §3.2.5.1): VANISHED
/// (EARLIER) first, then the FETCH responses, both limited to the known UIDs.
pub(super) fn report(
    out: &mut Vec<u8>,
    store: &Store,
    account: AccountId,
    view: &mut SelectedView,
    messages: &[MessageMeta],
    r: &Resync,
) -> Result<(), ImapError> {
    // `*` is not allowed in known-uids; taken leniently as unbounded.
    let known = |u: Uid| r.known.as_ref().is_none_or(|set| set_contains(set, u, Uid::MAX));
    let mut gone = store.expunged_since(account, view.mailbox, r.modseq)?;
    gone.dedup();
    // A message expunged after the listing was read is still shown: the bus reports it.
    gone.retain(|&u| known(u) && view.seq_of(u).is_none());
    write_vanished(out, true, &gone);
    for m in messages.iter().filter(|m| m.modseq > r.modseq && known(m.uid)) {
        if let Some(seq) = view.seq_of(m.uid) {
            // The listing is read after the mailbox's keywords were: a
            // keyword set meanwhile is announced before its first use.
            view.announce(&m.flags, out);
            write_fetch(out, seq, Some(m.uid), Some(&m.flags), Some(m.modseq));
            // The listing may be ahead of the bus (a change committed after
            // the snapshot, not yet published): older events still to come
            // for this message must not be reported after it.
            view.told_flags(m.uid, m.modseq);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
