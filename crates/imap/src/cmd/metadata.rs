//! GETMETADATA and SETMETADATA (RFC 5464 METADATA and METADATA-SERVER):
//! server-level entries (mailbox `""`) and per-mailbox entries, private and
//! shared, stored by `coimail_store::metadata`.
//!
//! What clients rely on (COI spec R5–R10, `shared/docs/coi-server.md`):
//! - the mailbox in `* METADATA` is always quoted (`""`, `"INBOX"`), and a
//!   response with nothing to report is not sent at all (never `()`);
//! - entry names are case-insensitive and answered lower-cased (§3.2);
//! - values with CR, LF or 8-bit octets go as literals, with NUL as
//!   `literal8` (§4.4 `value = nstring / literal8`); an entry asked for by
//!   name at DEPTH 0 that does not exist is answered `NIL` (R8);
//! - failures carry codes: `[METADATA MAXSIZE n]` (value over the
//!   per-entry limit, §4.3), `[METADATA TOOMANY]` (over the per-account
//!   count, §4.3), `[METADATA LONGENTRIES n]` on the OK when MAXSIZE held
//!   values back (§4.2.1), `[NONEXISTENT]` for an unknown mailbox, and
//!   `[NOPERM]` for server-level `/shared/` entries, which only the
//!   administrator sets (every account sees them). `[METADATA NOPRIVATE]`
//!   never applies: every mailbox takes private entries.
//!
//! imap-codec decodes both commands except SETMETADATA values sent as atoms
//! (`/private/x yes`, which the OX COI client sends): `cmd::ext` parses those.

mod entry;

use crate::encode;
use crate::error::{Code, ImapError};
use crate::session::{CmdResult, Done, Session};
use coimail_store::{MetadataLimits, MetadataScope, StoreError};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::NString8;
use imap_codec::imap_types::extensions::metadata::{Depth, GetMetadataOption};
use imap_codec::imap_types::mailbox::Mailbox;
use std::collections::HashSet;

/// SETMETADATA arguments, from imap-codec or `cmd::ext`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SetArgs {
    /// The mailbox as sent (`""` for the server).
    pub mailbox: Vec<u8>,
    /// Entry names as sent, with the new value or `None` (NIL) to remove.
    pub entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// An entry name and its value (`None`: NIL, the entry does not exist).
type Entry = (String, Option<Vec<u8>>);

struct GetArgs {
    mailbox: Vec<u8>,
    depth: Depth,
    max_size: Option<u32>,
    entries: Vec<Vec<u8>>,
}

/// Entry point from the session's dispatch for imap-codec's decoding.
pub(crate) async fn run(s: &mut Session, body: CommandBody<'_>) -> CmdResult {
    match body {
        CommandBody::GetMetadata { options, mailbox, entries } => {
            let mut args = GetArgs {
                mailbox: mailbox_wire(&mailbox),
                depth: Depth::Null,
                max_size: None,
                entries: entries.as_ref().iter().map(|e| e.as_ref().to_vec()).collect(),
            };
            for option in options {
                match option {
                    GetMetadataOption::Depth(d) => args.depth = d,
                    GetMetadataOption::MaxSize(n) => args.max_size = Some(n),
                }
            }
            get(s, args).await
        }
        CommandBody::SetMetadata { mailbox, entry_values } => {
            let entries = entry_values
                .into_inner()
                .into_iter()
                .map(|ev| {
                    let value = match ev.value {
                        NString8::NString(n) => n.into_option().map(|v| v.into_owned()),
                        NString8::Literal8(l) => Some(l.data.into_owned()),
                    };
                    (ev.entry.as_ref().to_vec(), value)
                })
                .collect();
            set(s, SetArgs { mailbox: mailbox_wire(&mailbox), entries }).await
        }
        other => Err(ImapError::Internal(format!("{} is not a METADATA command", other.name()))),
    }
}

fn mailbox_wire(mailbox: &Mailbox<'_>) -> Vec<u8> {
    match mailbox {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    }
}

/// The scope a mailbox argument names, and the name to answer with: `""`
/// is the server (RFC 5464 §4.2); anything else must be an existing mailbox.
fn scope_of(s: &Session, wire: &[u8]) -> Result<(MetadataScope, String), ImapError> {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    if wire.is_empty() {
        return Ok((MetadataScope { account, mailbox: None }, String::new()));
    }
    let name = s.mailbox_name(wire)?;
    let info = s.ctx.store.mailbox(account, &name)?;
    // INBOX answers as INBOX; other names as sent (which is how they are stored).
    let name = if info.name == "INBOX" { info.name } else { name };
    Ok((MetadataScope { account, mailbox: Some(info.id) }, name))
}

/// GETMETADATA (RFC 5464 §4.2).
async fn get(s: &mut Session, args: GetArgs) -> CmdResult {
    let (scope, name) = scope_of(s, &args.mailbox)?;
    let mut names = Vec::with_capacity(args.entries.len());
    for wire in &args.entries {
        names.push(entry::name(wire, true)?);
    }
    // COI's read-only entries (mailbox-root, the VAPID key) exist for every
    // account without being stored (R11, R31); expired push subscriptions
    // are dropped before anyone reads them (R33).
    // Delta Chat's server metadata (D3) and INBOX's device tokens (D4) are
    // answered from the config and the token set, not stored as entries.
    let virtual_entries = if scope.mailbox.is_none() {
        s.ctx.coi.before_read(scope.account).await?;
        let mut entries = s.ctx.coi.virtual_entries();
        entries.extend(s.ctx.deltachat.server_entries());
        entries
    } else if name == "INBOX" {
        s.ctx.deltachat.mailbox_entries(scope.account).map_err(deltachat_error)?
    } else {
        Vec::new()
    };
    let mut found: Vec<Entry> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for root in &names {
        for (entry, value) in lookup(s, scope, root, &args.depth, &virtual_entries)? {
            if seen.insert(entry.clone()) {
                found.push((entry, value));
            }
        }
    }
    let mut longest_omitted: Option<usize> = None;
    if let Some(max) = args.max_size {
        found.retain(|(_, v)| match v {
            Some(v) if v.len() > max as usize => {
                longest_omitted = longest_omitted.max(Some(v.len()));
                false
            }
            _ => true,
        });
    }
    if !found.is_empty() {
        write_metadata(s.conn.out(), &name, &found, s.utf8);
    }
    Ok(match longest_omitted {
        // §4.2.1: the size of the longest value MAXSIZE held back.
        Some(n) => Done::with_code(format!("METADATA LONGENTRIES {n}"), "GETMETADATA completed"),
        None => Done::ok("GETMETADATA completed"),
    })
}

/// The entries one requested name yields (§4.2.2 DEPTH): itself (NIL when
/// missing at depth 0, R8), then its children (depth 1) or all descendants.
/// `virtual_entries` are answered as if stored (COI's read-only entries).
fn lookup(
    s: &Session,
    scope: MetadataScope,
    root: &str,
    depth: &Depth,
    virtual_entries: &[(String, Vec<u8>)],
) -> Result<Vec<Entry>, ImapError> {
    let value = match virtual_entries.iter().find(|(name, _)| name == root) {
        Some((_, v)) => Some(v.clone()),
        None if entry::is_root(root) => None,
        None => s.ctx.store.get_metadata(scope, root)?,
    };
    let mut out = Vec::new();
    match (value, depth) {
        (value, Depth::Null) => out.push((root.to_owned(), value)),
        (Some(v), _) => out.push((root.to_owned(), Some(v))),
        (None, _) => {}
    }
    if !matches!(depth, Depth::Null) {
        let prefix = format!("{root}/");
        let mut below: Vec<Entry> =
            s.ctx.store.list_metadata(scope, &prefix)?.into_iter().map(|(e, v)| (e, Some(v))).collect();
        below.extend(
            virtual_entries
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(n, v)| (n.clone(), Some(v.clone()))),
        );
        below.sort_by(|a, b| a.0.cmp(&b.0));
        for (entry, value) in below {
            let rest = entry.get(prefix.len()..).unwrap_or_default();
            if matches!(depth, Depth::Infinity) || !rest.contains('/') {
                out.push((entry, value));
            }
        }
    }
    Ok(out)
}

/// `* METADATA "mailbox" (entry value ...)`: one line for all entries.
fn write_metadata(out: &mut Vec<u8>, mailbox: &str, entries: &[Entry], utf8: bool) {
    out.extend_from_slice(b"* METADATA ");
    encode::mailbox(out, mailbox, utf8);
    out.extend_from_slice(b" (");
    for (i, (entry, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        encode::astring(out, entry.as_bytes(), false);
        out.push(b' ');
        match value {
            None => out.extend_from_slice(b"NIL"),
            Some(v) if v.contains(&0) => {
                // NUL cannot travel in a literal, only in a literal8 (RFC 3516).
                out.push(b'~');
                encode::literal(out, v);
            }
            // Not `utf8`: 8-bit values always go as literals (R6).
            Some(v) => encode::string(out, v, false),
        }
    }
    out.extend_from_slice(b")\r\n");
}

/// `NO [METADATA <code>] text` (RFC 5464 §4.3).
fn metadata_no(code: &str, text: &str) -> ImapError {
    ImapError::No { code: None, text: format!("[METADATA {code}] {text}") }
}

/// SETMETADATA (RFC 5464 §4.3): every entry or none.
pub(crate) async fn set(s: &mut Session, args: SetArgs) -> CmdResult {
    let (scope, mailbox) = scope_of(s, &args.mailbox)?;
    let max_bytes = s.ctx.config.metadata_max_entry_bytes;
    let mut entries = Vec::with_capacity(args.entries.len());
    let mut coi_entries = Vec::new();
    let mut device_tokens = Vec::new();
    for (wire, value) in args.entries {
        let name = entry::name(&wire, false)?;
        if scope.mailbox.is_none() && name.starts_with("/shared/") {
            return Err(ImapError::no(Code::NoPerm, "Server /shared entries are set by the administrator"));
        }
        if value.as_ref().is_some_and(|v| v.len() > max_bytes) {
            return Err(metadata_no(&format!("MAXSIZE {max_bytes}"), "Value too long"));
        }
        if scope.mailbox.is_none() && coimail_coi::Coi::owns_entry(&name) {
            coi_entries.push((name, value));
        } else if coimail_deltachat::DeltaChat::owns_entry(&mailbox, &name) {
            // D4: one token per device, kept as a set (never one value per mailbox).
            if value.as_ref().is_some_and(|v| !v.iter().all(u8::is_ascii_graphic)) {
                return Err(ImapError::no(Code::Cannot, "A device token is printable ASCII"));
            }
            // An entry stored by releases before the token set goes with the first new value.
            if s.ctx.store.get_metadata(scope, &name)?.is_some() {
                entries.push((name, None));
            }
            device_tokens.push(value);
        } else {
            entries.push((name, value));
        }
    }
    // Every entry or none (§4.3; COI R12, R14): COI's entries are checked
    // before anything is applied. What only the WebPush flow can judge (the
    // JSON, the limit, the push service; R32-R34) goes first, one per
    // command, so its refusal leaves nothing applied; then the ordinary
    // entries in one commit, then the rest of COI's in order (R11-R15).
    for (name, value) in &coi_entries {
        s.ctx.coi.check_entry(name, value.as_deref())?;
    }
    let (late, coi_entries): (Vec<_>, Vec<_>) =
        coi_entries.into_iter().partition(|(name, value)| coimail_coi::Coi::may_fail_late(name, value.as_deref()));
    if late.len() > 1 {
        return Err(ImapError::no(Code::Cannot, "One push subscription change per command"));
    }
    for (name, value) in &late {
        s.ctx.coi.set_entry(scope.account, name, value.as_deref()).await?;
    }
    if !entries.is_empty() {
        let limits = MetadataLimits { max_entries: s.ctx.config.metadata_max_entries };
        match s.ctx.store.set_metadata_entries(scope, &entries, Some(limits)).await {
            Ok(()) => {}
            Err(StoreError::QuotaExceeded) => return Err(metadata_no("TOOMANY", "Too many metadata entries")),
            Err(e) => return Err(e.into()),
        }
    }
    for value in &device_tokens {
        s.ctx.deltachat.set_entry(scope.account, value.as_deref()).await.map_err(deltachat_error)?;
    }
    for (name, value) in &coi_entries {
        s.ctx.coi.set_entry(scope.account, name, value.as_deref()).await?;
    }
    Ok(Done::ok("SETMETADATA completed"))
}

fn deltachat_error(e: coimail_deltachat::DeltaChatError) -> ImapError {
    match e {
        coimail_deltachat::DeltaChatError::Store(e) => e.into(),
        other => ImapError::Internal(format!("deltachat: {other}")),
    }
}

#[cfg(test)]
mod tests;
