//! The IMAP framer's invariants as one checker (`conn.rs`), shared by the
//! property tests (`conn_props.rs`) and the cargo-fuzz targets (`fuzz/`).
//! Any violation panics, which is what both report.

use crate::conn::{Event, frame};

fn is_error(e: &Event) -> bool {
    matches!(e, Event::LiteralTooBig { .. } | Event::LineTooLong { .. } | Event::CommandTooLong { .. })
}

/// Frames plain `input` whole and in the pieces `cuts` gives, and checks:
/// - every command ends at a line end and stays within the limits
///   (`max_line` octets of lines, `max_literal` of literals);
/// - without an error event, the commands are the input's first octets,
///   in order, with nothing skipped or repeated;
/// - without an error event, how the input arrives changes nothing.
///
/// Returns the events of the whole input.
pub(crate) fn check_plain(input: &[u8], cuts: &[usize], max_line: usize, max_literal: u64) -> Vec<Event> {
    let whole = frame(input, &[], false, max_line, max_literal).unwrap_or_else(|e| panic!("plain input: {e}"));
    let pieces = frame(input, cuts, false, max_line, max_literal).unwrap_or_else(|e| panic!("plain input: {e}"));
    for events in [&whole, &pieces] {
        check_commands(events, max_line, max_literal);
    }
    if !whole.iter().any(is_error) {
        let commands: Vec<u8> = whole
            .iter()
            .filter_map(|e| if let Event::Command(c) = e { Some(&c[..]) } else { None })
            .flatten()
            .copied()
            .collect();
        assert!(input.starts_with(&commands), "commands are not the start of the input");
        assert_eq!(whole, pieces, "the pieces the input came in changed the framing");
    }
    whole
}

/// Frames a COMPRESS=DEFLATE stream arriving in pieces; checks the
/// command invariants of [`check_plain`] on what inflates. Returns the
/// events, or `None` when the stream is not valid DEFLATE.
pub(crate) fn check_compressed(stream: &[u8], cuts: &[usize], max_line: usize, max_literal: u64) -> Option<Vec<Event>> {
    let events = frame(stream, cuts, true, max_line, max_literal).ok()?;
    check_commands(&events, max_line, max_literal);
    Some(events)
}

fn check_commands(events: &[Event], max_line: usize, max_literal: u64) {
    let cap = u64::try_from(max_line).unwrap_or(u64::MAX).saturating_add(max_literal);
    for e in events {
        if let Event::Command(c) = e {
            assert!(c.ends_with(b"\n"), "a command that does not end a line: {c:?}");
            assert!(c.len() as u64 <= cap, "a command of {} octets passed limits {max_line}/{max_literal}", c.len());
        }
    }
}
