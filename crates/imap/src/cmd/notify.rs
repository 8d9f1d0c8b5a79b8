//! NOTIFY (RFC 5465), and the one place unsolicited responses are sent:
//! about the selected mailbox (RFC 3501 §7; RFC 7162 VANISHED and MODSEQ)
//! and about the other mailboxes NOTIFY watches.
//!
//! When ([`At`]):
//! - At the end of a command: everything pending about the selected
//!   mailbox (expunges only where RFC 3501 §7.4.1 allows them), plus what
//!   NOTIFY asked for.
//! - In IDLE: without NOTIFY, everything about the selected mailbox (RFC
//!   2177); with NOTIFY, exactly the events it asked for (RFC 5465 §4).
//! - Between commands: only with NOTIFY, which allows unsolicited responses
//!   at any time outside a command (RFC 5465 §5). For the selected mailbox
//!   only with SELECTED / SELECTED-DELAYED; SELECTED-DELAYED holds
//!   expunges back until a command that allows them (§6.1).
//!
//! What (RFC 5465 §5): for the selected mailbox the usual EXISTS, EXPUNGE
//! (VANISHED) and FETCH, plus a FETCH of MessageNew's attributes for new
//! messages; for any other watched mailbox one `* STATUS` (MESSAGES
//! UIDNEXT UIDVALIDITY, and HIGHESTMODSEQ with CONDSTORE) however many of
//! its messages changed; `* LIST` for created, deleted, renamed (OLDNAME)
//! and (un)subscribed mailboxes; `* METADATA "name" (entries)` for
//! MailboxMetadataChange and ServerMetadataChange (mailbox `""`). STATUS and LIST are snapshots read when
//! they are sent, and are sent only because the store's change bus said
//! something changed: nothing is polled. The bus names mailboxes by id;
//! names come from a copy of the account's mailbox list, re-read when the
//! bus says mailboxes changed, and compared with the old copy for LIST.
//!
//! Deliberate limits: changes this session made itself are reported like
//! anyone's for other mailboxes (§5's SHOULD omit is not followed: the bus
//! does not say who made a change); INBOXES is INBOX, the only mailbox
//! delivery writes to; a bus lag ends NOTIFY with `[NOTIFICATIONOVERFLOW]`
//! (§5.8), the selected mailbox resynchronising as usual.

mod parse;
#[cfg(test)]
mod tests;

pub(crate) use parse::{Request, parse};

use crate::encode;
use crate::error::{Code, ImapError};
use crate::selected::{Update, write_updates};
use crate::session::{CmdResult, Done, Session, State};
use coimail_store::{
    AccountId, Change, ChangeMark, MailboxId, MailboxInfo, MailboxStatus, ModSeq, Store, StoreError, Uid,
};
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{Command, CommandBody};
use parse::{RawFilter, RawGroup};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// The BADEVENT response code: it lists every event we support (RFC 5465 §3.1).
pub(crate) const BADEVENT: &str = "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange \
                                   MailboxMetadataChange ServerMetadataChange)";

/// NOTIFY SET STATUS answers for at most this many mailboxes; more is
/// refused with `NO [NOTIFICATIONOVERFLOW]` (RFC 5465 §3.1).
const MAX_STATUS_AT_SET: usize = 1000;

/// A set of RFC 5465 §5 event types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Events(u8);

impl Events {
    const NEW: Events = Events(1);
    const EXPUNGE: Events = Events(2);
    const FLAGS: Events = Events(4);
    const NAME: Events = Events(8);
    const SUBSCRIPTION: Events = Events(16);
    const MAILBOX_METADATA: Events = Events(32);
    const SERVER_METADATA: Events = Events(64);
    const MESSAGE: Events = Events(7);

    fn with(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }
    fn meets(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }
}

/// Which mailboxes a group watches (RFC 5465 §6.2-6.6), names canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

impl Filter {
    fn matches(&self, name: &str, subscribed: bool) -> bool {
        match self {
            Filter::Inboxes => name == "INBOX",
            Filter::Personal => true,
            Filter::Subscribed => subscribed,
            Filter::Subtree(roots) => roots
                .iter()
                .any(|r| name.strip_prefix(r.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))),
            // §6.6: exactly these names, no wildcards.
            Filter::Mailboxes(names) => names.iter().any(|n| n == name),
        }
    }
}

#[derive(Debug, Clone)]
struct Group {
    filter: Filter,
    events: Events,
}

/// What NOTIFY asked for the selected mailbox (RFC 5465 §6.1).
#[derive(Debug, Clone)]
struct SelectedRule {
    /// SELECTED-DELAYED: expunges wait for a command that allows them.
    delayed: bool,
    events: Events,
    /// MessageNew's fetch attributes (§5.2), checked to decode.
    fetch: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    name: String,
    subscribed: bool,
}

/// A session's NOTIFY state, from NOTIFY SET to NOTIFY NONE.
#[derive(Debug)]
pub(crate) struct Notify {
    /// `None`: SELECTED NONE, also when SELECTED was not named (§3.1).
    selected: Option<SelectedRule>,
    groups: Vec<Group>,
    known: HashMap<MailboxId, Known>,
    /// Other mailboxes with message events not yet reported.
    dirty: BTreeMap<MailboxId, Events>,
    /// METADATA entries changed (mailbox `None`: server level), not yet reported.
    metadata: Vec<(Option<MailboxId>, Vec<String>)>,
    names_changed: bool,
    overflow: bool,
}

impl Notify {
    fn new(selected: Option<SelectedRule>, groups: Vec<Group>, list: &[MailboxInfo]) -> Notify {
        let (dirty, metadata) = (BTreeMap::new(), Vec::new());
        Notify { selected, groups, known: known(list), dirty, metadata, names_changed: false, overflow: false }
    }

    /// Takes note of a change from the bus; nothing is sent yet. Changes
    /// to the selected mailbox are the view's business.
    pub(crate) fn note(&mut self, change: &Change, selected: Option<MailboxId>) {
        let (mailbox, kind) = match change {
            Change::Appended { mailbox, .. } => (*mailbox, Events::NEW),
            Change::Expunged { mailbox, .. } => (*mailbox, Events::EXPUNGE),
            Change::FlagsChanged { mailbox, .. } => (*mailbox, Events::FLAGS),
            Change::MailboxesChanged => {
                self.names_changed = true;
                return;
            }
            Change::MetadataChanged { mailbox, entries } => {
                let kind = if mailbox.is_some() { Events::MAILBOX_METADATA } else { Events::SERVER_METADATA };
                if self.groups.iter().any(|g| g.events.meets(kind)) {
                    self.metadata.push((*mailbox, entries.clone()));
                }
                return;
            }
        };
        if Some(mailbox) != selected && self.groups.iter().any(|g| g.events.meets(kind)) {
            let e = self.dirty.entry(mailbox).or_default();
            *e = e.with(kind);
        }
    }

    /// The bus dropped changes for this session.
    pub(crate) fn lagged(&mut self) {
        self.overflow = true;
    }

    fn wants(&self, name: &str, subscribed: bool, kind: Events) -> bool {
        self.groups.iter().any(|g| g.events.meets(kind) && g.filter.matches(name, subscribed))
    }

    /// Replaces the mailbox list, writing `* LIST` for what MailboxName and
    /// SubscriptionChange watch (RFC 5465 §5.4, §5.5).
    fn refresh(&mut self, list: &[MailboxInfo], out: &mut Vec<u8>, utf8: bool) {
        let now = known(list);
        for m in list {
            let attrs = if m.subscribed { "\\Subscribed" } else { "" };
            let name_watched = |name, sub| self.wants(name, sub, Events::NAME);
            // Some(old name, after a rename) when a LIST is due.
            let due: Option<Option<&str>> = match self.known.get(&m.id) {
                None => name_watched(&m.name, m.subscribed).then_some(None),
                Some(old) if old.name != m.name => (name_watched(&m.name, m.subscribed)
                    || name_watched(&old.name, old.subscribed))
                .then_some(Some(old.name.as_str())),
                Some(old) if old.subscribed != m.subscribed => {
                    let watched = |sub| self.wants(&m.name, sub, Events::SUBSCRIPTION);
                    (watched(true) || watched(false)).then_some(None)
                }
                _ => None,
            };
            if let Some(old) = due {
                list_line(out, attrs, &m.name, old, utf8);
            }
        }
        let mut gone: Vec<&Known> = self.known.iter().filter(|(id, _)| !now.contains_key(id)).map(|e| e.1).collect();
        gone.sort_by(|a, b| a.name.cmp(&b.name));
        for old in gone {
            if self.wants(&old.name, old.subscribed, Events::NAME) {
                list_line(out, "\\NonExistent", &old.name, None, utf8);
            }
        }
        self.known = now;
    }
}

fn known(list: &[MailboxInfo]) -> HashMap<MailboxId, Known> {
    list.iter().map(|m| (m.id, Known { name: m.name.clone(), subscribed: m.subscribed })).collect()
}

/// `* LIST (attrs) "/" name`, with `("OLDNAME" (old))` after a rename (RFC 5465 §5.4).
fn list_line(out: &mut Vec<u8>, attrs: &str, name: &str, old: Option<&str>, utf8: bool) {
    let _ = write!(out, "* LIST ({attrs}) \"/\" ");
    encode::mailbox(out, name, utf8);
    if let Some(old) = old {
        out.extend_from_slice(b" (\"OLDNAME\" (");
        encode::mailbox(out, old, utf8);
        out.extend_from_slice(b"))");
    }
    out.extend_from_slice(b"\r\n");
}

/// `* STATUS name (MESSAGES n UIDNEXT n UIDVALIDITY n [HIGHESTMODSEQ n])`
/// (RFC 5465 §5.1-5.3; HIGHESTMODSEQ once CONDSTORE is on).
fn status_line(out: &mut Vec<u8>, st: &MailboxStatus, condstore: bool, utf8: bool) {
    out.extend_from_slice(b"* STATUS ");
    encode::mailbox(out, &st.name, utf8);
    let _ = write!(out, " (MESSAGES {} UIDNEXT {} UIDVALIDITY {}", st.messages, st.uid_next, st.uid_validity);
    if condstore {
        let _ = write!(out, " HIGHESTMODSEQ {}", st.highest_modseq);
    }
    out.extend_from_slice(b")\r\n");
}

/// NOTIFY SET / NOTIFY NONE (RFC 5465 §3.1). A successful SET is also an
/// implicit NOOP: the session reports what is pending before the OK.
pub(crate) async fn notify(s: &mut Session, request: Request) -> CmdResult {
    let account = s.account().ok_or(ImapError::Closed)?.id;
    let Request::Set { status, groups } = request else {
        s.notify = None;
        return Ok(Done::ok("NOTIFY completed"));
    };
    let (selected, groups) = build(s, groups)?;
    let list = s.ctx.store.list_mailboxes(account)?;
    let n = Notify::new(selected, groups, &list);
    if status {
        // §3.1: a STATUS for every other watched mailbox before the OK.
        let current = selected_mailbox(s);
        let watched: Vec<&MailboxInfo> =
            list.iter().filter(|m| Some(m.id) != current && n.wants(&m.name, m.subscribed, Events::MESSAGE)).collect();
        if watched.len() > MAX_STATUS_AT_SET {
            return Err(ImapError::no(Code::NotificationOverflow, "Too many mailboxes to watch; name fewer"));
        }
        for m in watched {
            let st = s.ctx.store.mailbox_status_by_id(account, m.id)?;
            status_line(s.conn.out(), &st, s.condstore, s.utf8);
        }
    }
    s.notify = Some(Box::new(n));
    Ok(Done::ok("NOTIFY completed"))
}

/// Checks the groups (RFC 5465 §5, §6.1) and resolves their names.
fn build(s: &Session, raw: Vec<RawGroup>) -> Result<(Option<SelectedRule>, Vec<Group>), ImapError> {
    let (mut selected, mut groups) = (None, Vec::new());
    let (mut seen_selected, mut unsupported) = (false, false);
    for g in raw {
        let (mut events, mut flag_like, mut non_message, mut fetch) = (Events::default(), false, false, None);
        for e in g.events {
            match e.name.to_ascii_lowercase().as_str() {
                "messagenew" => {
                    events = events.with(Events::NEW);
                    fetch = e.fetch.or(fetch);
                }
                "messageexpunge" => events = events.with(Events::EXPUNGE),
                "flagchange" => events = events.with(Events::FLAGS),
                "mailboxname" => events = events.with(Events::NAME),
                "subscriptionchange" => events = events.with(Events::SUBSCRIPTION),
                "annotationchange" => (flag_like, unsupported) = (true, true),
                // §5.6, §5.7: required with METADATA, which is always advertised.
                "mailboxmetadatachange" => (events, non_message) = (events.with(Events::MAILBOX_METADATA), true),
                "servermetadatachange" => (events, non_message) = (events.with(Events::SERVER_METADATA), true),
                "quotachange" => (non_message, unsupported) = (true, true),
                _ => unsupported = true,
            }
        }
        // §5: FlagChange needs MessageNew and MessageExpunge, which go together.
        let (new, expunge) = (events.meets(Events::NEW), events.meets(Events::EXPUNGE));
        if (flag_like || events.meets(Events::FLAGS)) && !(new && expunge) {
            return Err(ImapError::bad("FlagChange needs MessageNew and MessageExpunge"));
        }
        if new != expunge {
            return Err(ImapError::bad("MessageNew and MessageExpunge go together"));
        }
        let filter = match g.filter {
            RawFilter::Selected | RawFilter::SelectedDelayed => {
                // §6.1: one of them, with message events only.
                if std::mem::replace(&mut seen_selected, true) {
                    return Err(ImapError::bad("Only one of SELECTED and SELECTED-DELAYED may be given"));
                }
                if non_message || events.meets(Events::NAME.with(Events::SUBSCRIPTION)) {
                    return Err(ImapError::bad("SELECTED takes message events only"));
                }
                let delayed = g.filter == RawFilter::SelectedDelayed;
                let fetch = fetch.map(check_fetch).transpose()?;
                selected = (events != Events::default()).then_some(SelectedRule { delayed, events, fetch });
                continue;
            }
            RawFilter::Inboxes => Filter::Inboxes,
            RawFilter::Personal => Filter::Personal,
            RawFilter::Subscribed => Filter::Subscribed,
            RawFilter::Subtree(names) => Filter::Subtree(names_of(s, &names)?),
            RawFilter::Mailboxes(names) => Filter::Mailboxes(names_of(s, &names)?),
        };
        groups.push(Group { filter, events });
    }
    if unsupported {
        return Err(ImapError::no(Code::BadEvent, "Unsupported event"));
    }
    Ok((selected, groups))
}

fn names_of(s: &Session, wire: &[Vec<u8>]) -> Result<Vec<String>, ImapError> {
    wire.iter()
        .map(|w| {
            let name = s.mailbox_name(w)?;
            // INBOX in any case is INBOX; a name the store refuses matches nothing.
            Ok(coimail_store::names::canonical(&name).unwrap_or(name))
        })
        .collect()
}

/// MessageNew's attributes must be a valid FETCH item list.
fn check_fetch(atts: Vec<u8>) -> Result<Vec<u8>, ImapError> {
    if decode_fetch(&fetch_command(&atts, Uid::MIN, Uid::MIN)).is_some() {
        Ok(atts)
    } else {
        Err(ImapError::bad("Invalid fetch attributes after MessageNew"))
    }
}

/// `UID FETCH first:last (atts)`, to be decoded by imap-codec.
fn fetch_command(atts: &[u8], first: Uid, last: Uid) -> Vec<u8> {
    let mut cmd = format!("n UID FETCH {first}:{last} (").into_bytes();
    cmd.extend_from_slice(atts);
    cmd.extend_from_slice(b")\r\n");
    cmd
}

fn decode_fetch(bytes: &[u8]) -> Option<Command<'_>> {
    match CommandCodec::default().decode(bytes) {
        Ok((&[], cmd @ Command { body: CommandBody::Fetch { .. }, .. })) => Some(cmd),
        _ => None,
    }
}

fn selected_mailbox(s: &Session) -> Option<MailboxId> {
    match &s.state {
        State::Selected(_, view) => Some(view.mailbox),
        _ => None,
    }
}

/// Intake from the change bus: the selected view and NOTIFY take note;
/// nothing is sent until [`report`].
impl Session {
    /// Takes note of one change (or of a lag: changes were lost).
    pub(crate) fn on_change(&mut self, change: Result<Change, RecvError>) {
        match change {
            Ok(c) => {
                let selected = match &mut self.state {
                    State::Selected(_, view) => {
                        view.note(&c);
                        Some(view.mailbox)
                    }
                    _ => None,
                };
                if let Some(n) = &mut self.notify {
                    n.note(&c, selected);
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "change bus lagged; will resync");
                if let State::Selected(_, view) = &mut self.state {
                    view.lagged();
                }
                if let Some(n) = &mut self.notify {
                    n.lagged();
                }
            }
            Err(RecvError::Closed) => self.changes = None,
        }
    }

    /// Takes every change already queued on the bus: whatever was
    /// committed before this point is reported now, not one command later.
    pub(crate) fn drain_changes(&mut self) {
        loop {
            let Some(rx) = self.changes.as_mut() else { return };
            match rx.try_recv() {
                Ok(c) => self.on_change(Ok(c)),
                Err(TryRecvError::Lagged(n)) => self.on_change(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Closed) => return self.on_change(Err(RecvError::Closed)),
            }
        }
    }
}

/// Where the session is when it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// Before a tagged response; `allow_expunge` per RFC 3501 §7.4.1.
    Command {
        allow_expunge: bool,
    },
    Idle,
    /// Waiting for the next command.
    Between,
}

/// Sends what the session owes the client at this point (see the module doc).
pub(crate) async fn report(s: &mut Session, at: At) -> Result<(), ImapError> {
    // Read before the drain: every change below it is then on hand.
    let mark = s.ctx.store.change_mark();
    s.drain_changes();
    report_others(s)?;
    let rule = s.notify.as_ref().map(|n| n.selected.clone());
    let (allow_expunge, fetch) = match (at, rule) {
        (At::Command { allow_expunge }, rule) => (allow_expunge, rule.flatten().and_then(|r| r.fetch)),
        (At::Idle, None) => (true, None),
        (At::Between, None) | (At::Idle | At::Between, Some(None)) => return Ok(()),
        (at, Some(Some(rule))) => {
            let State::Selected(_, view) = &s.state else { return Ok(()) };
            let p = view.pending_kinds();
            let kinds = [(p.new, Events::NEW), (p.expunge, Events::EXPUNGE), (p.flags, Events::FLAGS)];
            if !kinds.iter().any(|(pending, kind)| *pending && rule.events.meets(*kind)) {
                return Ok(());
            }
            (at == At::Idle || !rule.delayed, rule.fetch)
        }
    };
    report_selected(s, allow_expunge, fetch, mark).await
}

/// With CONDSTORE on, the selected mailbox's HIGHESTMODSEQ as the client
/// will know it once the updates pending now (this session's own change
/// included: the store publishes before it returns) are sent.
pub(crate) fn highest_modseq(s: &mut Session) -> Option<ModSeq> {
    if !s.condstore {
        return None;
    }
    s.drain_changes();
    match &s.state {
        State::Selected(_, view) => Some(view.highest_modseq()),
        _ => None,
    }
}

/// Between commands (RFC 5465 §5): with NOTIFY on, what it asked for goes out now.
pub(crate) async fn push(s: &mut Session) -> Result<(), ImapError> {
    if s.notify.is_none() {
        return Ok(());
    }
    match report(s, At::Between).await {
        Ok(()) | Err(ImapError::Bad(_) | ImapError::No { .. }) => {}
        Err(ImapError::Closed) => return Err(ImapError::Closed),
        // Not worth ending the session: the next command reports it too.
        Err(ImapError::Internal(e)) => tracing::warn!(error = %e, "could not report changes between commands"),
    }
    Ok(s.conn.flush().await?)
}

/// The selected mailbox's pending updates, then MessageNew's FETCH for new
/// messages (RFC 5465 §5.2).
async fn report_selected(
    s: &mut Session,
    allow_expunge: bool,
    fetch: Option<Vec<u8>>,
    mark: ChangeMark,
) -> Result<(), ImapError> {
    let (condstore, qresync) = (s.condstore, s.qresync);
    let State::Selected(account, view) = &mut s.state else { return Ok(()) };
    let mut new = None;
    if view.has_pending() {
        let listing = view.listing(&s.ctx.store, account.id)?;
        let old_next = view.uid_next();
        let mut updates = view.take_updates(listing.as_deref(), allow_expunge);
        let rev1 = !s.rev2;
        if view.uid_next() > old_next {
            // New messages: recent for the first session told (RFC 3501 §2.3.2).
            let claim = rev1 && !view.read_only;
            let from = s.ctx.store.claim_recent(view.mailbox, view.uid_next(), claim);
            view.add_recent(from.max(old_next), view.uid_next());
            if rev1
                && let Some(i) = updates.iter().position(|u| matches!(u, Update::Exists(_)))
                && let Some(n) = view.recent_changed()
            {
                updates.insert(i + 1, Update::Recent(n));
            }
        }
        let out = s.conn.out();
        for u in &mut updates {
            if let Update::Flags { uid, flags, .. } = u {
                view.announce(flags, out);
                if rev1 && view.is_recent(*uid) {
                    flags.insert("\\Recent");
                }
            }
        }
        write_updates(out, &updates, condstore, qresync);
        new = view.last_uid().filter(|&last| last >= old_next).map(|last| (old_next, last));
    }
    view.settle(mark);
    if let (Some(atts), Some((first, last))) = (fetch, new) {
        let bytes = fetch_command(&atts, first, last);
        let Some(Command { body: CommandBody::Fetch { sequence_set, macro_or_item_names, .. }, .. }) =
            decode_fetch(&bytes)
        else {
            return Ok(());
        };
        crate::cmd::fetch::fetch(s, &sequence_set, macro_or_item_names, true).await?;
    }
    Ok(())
}

/// NOTIFY's responses about mailboxes other than the selected one.
fn report_others(s: &mut Session) -> Result<(), ImapError> {
    let Some(mut n) = s.notify.take() else { return Ok(()) };
    if n.overflow {
        // §5.8: say so, then behave as after NOTIFY NONE.
        s.conn.out().extend_from_slice(b"* OK [NOTIFICATIONOVERFLOW] Too many changes at once; NOTIFY is off\r\n");
        return Ok(());
    }
    let result = match s.account().map(|a| a.id) {
        Some(account) => {
            let ctx = Ctx { account, selected: selected_mailbox(s), condstore: s.condstore, utf8: s.utf8 };
            write_others(&mut n, &s.ctx.store, ctx, s.conn.out())
        }
        None => Ok(()),
    };
    s.notify = Some(n);
    result
}

#[derive(Clone, Copy)]
struct Ctx {
    account: AccountId,
    selected: Option<MailboxId>,
    condstore: bool,
    utf8: bool,
}

fn write_others(n: &mut Notify, store: &Store, c: Ctx, out: &mut Vec<u8>) -> Result<(), ImapError> {
    if std::mem::take(&mut n.names_changed) {
        let list = store.list_mailboxes(c.account)?;
        n.refresh(&list, out, c.utf8);
    }
    for (id, kinds) in std::mem::take(&mut n.dirty) {
        let Some(k) = n.known.get(&id).filter(|_| Some(id) != c.selected) else { continue };
        if !n.wants(&k.name, k.subscribed, kinds) {
            continue;
        }
        match store.mailbox_status_by_id(c.account, id) {
            Ok(st) => status_line(out, &st, c.condstore, c.utf8),
            // Deleted meanwhile: MailboxName tells, if asked.
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // §5.6, §5.7: entry names only (RFC 5464 §4.4.2); the selected mailbox
    // too, as SELECTED cannot ask for these events itself.
    for (mailbox, entries) in std::mem::take(&mut n.metadata) {
        let name = match mailbox {
            None => "",
            Some(id) => match n.known.get(&id) {
                Some(k) if n.wants(&k.name, k.subscribed, Events::MAILBOX_METADATA) => &k.name,
                _ => continue,
            },
        };
        metadata_line(out, name, &entries, c.utf8);
    }
    Ok(())
}

/// `* METADATA "mailbox" (entry ...)`, the unsolicited form (RFC 5464 §4.4.2).
fn metadata_line(out: &mut Vec<u8>, mailbox: &str, entries: &[String], utf8: bool) {
    out.extend_from_slice(b"* METADATA ");
    encode::mailbox(out, mailbox, utf8);
    out.extend_from_slice(b" (");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        encode::astring(out, entry.as_bytes(), false);
    }
    out.extend_from_slice(b")\r\n");
}
