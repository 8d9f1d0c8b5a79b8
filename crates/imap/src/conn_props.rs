//! Property tests of the framer (`conn.rs`) through `framing_check.rs`:
//! random commands with literals (`{n}`, `{n+}`, `~{n}`), overlong lines,
//! bare line ends, read in random pieces, plain and through COMPRESS.

use super::*;
use crate::framing_check::{check_compressed, check_plain};
use proptest::prelude::*;

/// Input built from IMAP-ish pieces, so literals and limits are hit often.
fn imap_input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"a1 LOGIN ".to_vec()),
        Just(b"a2 APPEND INBOX ".to_vec()),
        Just(b"{3}\r\n".to_vec()),
        Just(b"{5+}\r\n".to_vec()),
        Just(b"~{4}\r\n".to_vec()),
        Just(b"{0}\r\n".to_vec()),
        Just(b"{99999999999}\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"xyz".to_vec()),
        Just(vec![b'y'; 90]),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..400, 0..8).prop_map(|mut c| {
        c.sort_unstable();
        c
    })
}

proptest! {
    #[test]
    fn framing_holds_its_invariants(input in imap_input(), cuts in cuts(), max_line in 8usize..200, max_literal in 0u64..64) {
        check_plain(&input, &cuts, max_line, max_literal);
    }

    /// What arrives compressed frames exactly as it would in the clear.
    #[test]
    fn compressed_input_frames_like_plain(input in imap_input(), cuts in cuts(), max_line in 8usize..200) {
        let plain = check_plain(&input, &[], max_line, 64);
        let mut z = Compress::new(Compression::default(), false);
        let mut stream = Vec::with_capacity(input.len() * 2 + 64);
        z.compress_vec(&input, &mut stream, FlushCompress::Sync).unwrap();
        let compressed = check_compressed(&stream, &cuts, max_line, 64).expect("valid DEFLATE");
        if !plain.iter().any(|e| !matches!(e, Event::Command(_) | Event::Continue)) {
            prop_assert_eq!(compressed, plain);
        }
    }

    /// Garbage as a DEFLATE stream is an error or frames within the limits; never a panic.
    #[test]
    fn any_compressed_input_is_safe(stream in proptest::collection::vec(any::<u8>(), 0..300), cuts in cuts()) {
        let _ = check_compressed(&stream, &cuts, 64, 64);
    }
}
