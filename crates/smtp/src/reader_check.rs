//! The DATA and BDAT readers (`data.rs`, `bdat.rs`, `body.rs`) checked
//! against plain reference implementations, on any input read in any
//! pieces. Shared by the property tests and the cargo-fuzz targets
//! (`fuzz/`); a difference panics.

use crate::bdat::ChunkReader;
use crate::data::{DataDecoder, DataOutcome};

/// What a reader should make of a message: `kept` octets, or why none.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Message(Vec<u8>),
    TooBig,
    BareLineEnding,
}

/// A CR not followed by LF, or an LF not preceded by CR.
fn has_bare_line_ending(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || bytes.get(i - 1) != Some(&b'\r'),
        _ => false,
    })
}

fn expect(message: Vec<u8>, bare: bool, max: usize) -> Expected {
    if bare {
        Expected::BareLineEnding
    } else if message.len() > max {
        Expected::TooBig
    } else {
        Expected::Message(message)
    }
}

/// What the reader kept: the prefix and trace headers, then what it spilled.
fn got(outcome: DataOutcome, head: &[u8], spilled: &[u8]) -> Expected {
    match outcome {
        DataOutcome::Message(m) => {
            let mut all = m.contents();
            all.extend_from_slice(spilled);
            assert!(all.starts_with(head), "the trace headers are not first");
            Expected::Message(all.split_off(head.len()))
        }
        DataOutcome::TooBig => Expected::TooBig,
        DataOutcome::BareLineEnding => Expected::BareLineEnding,
    }
}

/// DATA: `input` (what follows the 354) read in pieces ending at `cuts`.
/// Checks that the data ends exactly at the first `CRLF.CRLF` (or a first
/// line of `.`), that dot-stuffing is undone, bare line endings are found,
/// the size limit holds, and spilling loses nothing.
pub(crate) fn check_data(input: &[u8], cuts: &[usize], max: usize, spill_at: usize) {
    let head = b"Received: test\r\n";
    let mut d = DataDecoder::new(head.to_vec(), max, spill_at);
    let mut spilled = Vec::new();
    let mut at = 0;
    let mut end = None;
    for cut in cuts.iter().copied().chain([input.len()]) {
        let cut = cut.clamp(at, input.len());
        let found = d.feed(input.get(at..cut).unwrap_or_default());
        spilled.append(d.output().tail());
        if let Some(n) = found {
            end = Some(at + n);
            break;
        }
        at = cut;
    }
    let want_end = if input.starts_with(b".\r\n") {
        Some(3)
    } else {
        input.windows(5).position(|w| w == b"\r\n.\r\n").map(|i| i + 5)
    };
    assert_eq!(end, want_end, "the data ended in the wrong place");
    let Some(end) = end else { return };
    // The message: the data before the terminator's `.CRLF`, each line's leading dot removed.
    let data = input.get(..end.saturating_sub(3)).unwrap_or_default();
    let mut message = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    let want = expect(message, has_bare_line_ending(&input[..end]), max);
    let kept = match &want {
        Expected::Message(m) => Expected::Message(m.clone()),
        other => return assert_eq!(got(d.finish(), head, &spilled), *other),
    };
    assert_eq!(got(d.finish(), head, &spilled), kept, "the message differs");
}

/// BDAT: the chunks of `input` cut at `cuts` (the empty last chunk of
/// `BDAT 0 LAST` included). Checks the message is kept byte for byte, bare
/// line endings across chunk boundaries are found, the limit holds, and
/// spilling loses nothing.
pub(crate) fn check_bdat(input: &[u8], cuts: &[usize], max: usize, spill_at: usize) {
    let head = b"Received: test\r\n";
    let mut r = ChunkReader::new(head.to_vec(), max, spill_at);
    let mut spilled = Vec::new();
    let mut at = 0;
    for cut in cuts.iter().copied().chain([input.len(), input.len()]) {
        let cut = cut.clamp(at, input.len());
        r.feed(input.get(at..cut).unwrap_or_default());
        spilled.append(r.output().tail());
        at = cut;
    }
    assert_eq!(r.total(), input.len());
    let want = expect(input.to_vec(), has_bare_line_ending(input), max);
    assert_eq!(got(r.finish(), head, &spilled), want);
}
