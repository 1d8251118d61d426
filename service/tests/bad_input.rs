//! Bad input at scale (issue 16): the pipelined client protocol's frames
//! (`consensus_service::frame`) from arbitrary byte streams cut into
//! arbitrary chunks. Any stream gives frames or a typed `FrameError` (which
//! closes that connection), never a panic; a stream of valid frames gives
//! back exactly its frames, however it is split.
//!
//! Cases per property: `PROPTEST_CASES` (default below). The long run is in
//! docs/testing.md, "Bad input at scale".

use bytes::{Bytes, BytesMut};
use consensus_service::frame::{encode_frame, FrameDecoder, FrameError, ID_BYTES};
use proptest::prelude::*;

/// `PROPTEST_CASES` when set (the long run), else `default` (CI).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Reads `stream` in chunks of the given sizes (cycled), as the pipe does;
/// returns the frames and the error that ended the stream, if any
/// (including `finish` at the end).
fn read(stream: &[u8], chunks: &[usize], max: usize) -> (Vec<(u64, Bytes)>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().cycle();
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.1.len() + ID_BYTES <= max, "a frame above the limit");
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
        if rest.is_empty() {
            return (frames, decoder.finish().err());
        }
        let size = sizes
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        decoder.extend(&rest[..size]);
        rest = &rest[size..];
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_take_any_bytes(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            (0u32..300, prop::collection::vec(any::<u8>(), 0..320)).prop_map(|(len, rest)| {
                let mut out = len.to_le_bytes().to_vec();
                out.extend_from_slice(&rest);
                out
            }),
        ],
        chunks in prop::collection::vec(1usize..64, 1..6),
        max in prop_oneof![Just(0usize), 1..32usize, Just(1 << 20)],
    ) {
        let _ = read(&bytes, &chunks, max);
    }

    #[test]
    fn valid_frames_come_back_then_garbage_is_typed(
        frames in prop::collection::vec(
            (prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
             prop::collection::vec(any::<u8>(), 0..100)),
            0..8,
        ),
        tail in prop::collection::vec(any::<u8>(), 0..24),
        chunks in prop::collection::vec(1usize..64, 1..6),
    ) {
        let mut stream = BytesMut::new();
        for (id, body) in &frames {
            encode_frame(&mut stream, *id, body);
        }
        stream.extend_from_slice(&tail);
        let (decoded, error) = read(&stream, &chunks, 4096);
        prop_assert!(decoded.len() >= frames.len());
        for ((id, body), (got_id, got_body)) in frames.iter().zip(&decoded) {
            prop_assert_eq!(id, got_id);
            prop_assert_eq!(&body[..], &got_body[..]);
        }
        if tail.is_empty() {
            prop_assert_eq!(decoded.len(), frames.len());
            prop_assert!(error.is_none());
        }
    }
}
