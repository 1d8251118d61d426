//! Bad input at scale (issue 16): the bytes a peer sends, as this transport
//! decodes them. Arbitrary byte streams, cut into arbitrary chunks, through
//! the `FrameDecoder` and [`decode_all`](super::decode_all) for the messages
//! of all four protocols; arbitrary and hostile handshake frames through
//! `decode_payload::<Hello>` and `Hello::check`. Any input gives messages
//! or a typed `TransportError` (which closes that connection), never a
//! panic, and a stream of valid frames gives back exactly its messages.
//!
//! Cases per property: `PROPTEST_CASES` (default below). The long run is in
//! docs/testing.md, "Bad input at scale":
//! `PROPTEST_CASES=1000000 cargo test --release -p transport-quic --lib proptests`.

use bytes::BytesMut;
use consensus_api::{ProtocolMessage, TransportError, TransportEvent};
use consensus_testkit::hostile;
use proptest::prelude::*;

use super::decode_all;
use crate::wire::{
    decode_payload, encode_frame_into, FrameDecoder, Hello, HELLO_MAGIC, HELLO_MAX_BYTES,
    WIRE_VERSION,
};

/// The default frame limit of the transport's `Limits`.
const MAX_FRAME: usize = 16 << 20;

/// `PROPTEST_CASES` when set (the long run), else `default` (CI).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pushes `stream` into a decoder in chunks of the given sizes (cycled) and
/// runs `decode_all` after each chunk, as the stream readers do. Returns the
/// messages decoded and the error that ended the stream, if any.
fn read_stream<M: ProtocolMessage>(
    stream: &[u8],
    chunks: &[usize],
    max: usize,
) -> (Vec<M>, Option<TransportError>) {
    let mut decoder = FrameDecoder::new(max);
    let mut messages = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().cycle();
    loop {
        match decode_all::<M>(&mut decoder, 7) {
            Ok(batch) => messages.extend(batch.into_iter().map(|event| match event {
                TransportEvent::Message { from, message } => {
                    assert_eq!(from, 7, "messages are attributed to their connection");
                    message
                }
                other => panic!("decode_all produced {other:?}"),
            })),
            Err(error) => return (messages, Some(error)),
        }
        if rest.is_empty() {
            return (messages, None);
        }
        let size = sizes
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        decoder.push(&rest[..size]);
        rest = &rest[size..];
    }
}

/// What `peer::read_hello` does with the handshake stream: the first frame
/// (at most `HELLO_MAX_BYTES`) decoded as a `Hello`, read in chunks.
fn read_hello(stream: &[u8], chunks: &[usize]) -> Option<Result<Hello, TransportError>> {
    let mut decoder = FrameDecoder::new(HELLO_MAX_BYTES);
    let mut rest = stream;
    let mut sizes = chunks.iter().cycle();
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => return Some(decode_payload::<Hello>(&frame)),
            Ok(None) => {}
            Err(error) => return Some(Err(error)),
        }
        if rest.is_empty() {
            return None;
        }
        let size = sizes
            .next()
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
        decoder.push(&rest[..size]);
        rest = &rest[size..];
    }
}

/// Arbitrary bytes as a stream of `M`: typed errors only.
fn garbage_stream<M: ProtocolMessage>(stream: &[u8], chunks: &[usize], max: usize) {
    let (_, error) = read_stream::<M>(stream, chunks, max);
    if let Some(error) = error {
        assert!(
            matches!(
                error,
                TransportError::Decode(_) | TransportError::FrameTooLarge { .. }
            ),
            "unexpected error {error:?}"
        );
    }
}

/// Hostile but well-formed messages, framed, then optionally garbage: the
/// messages come back in order (all of them without garbage), the garbage
/// ends the stream with a typed error or yields further messages, nothing
/// panics.
fn hostile_stream<M: ProtocolMessage + PartialEq>(
    entropies: &[Vec<u8>],
    tail: &[u8],
    chunks: &[usize],
) -> Result<(), TestCaseError> {
    let messages: Vec<M> = entropies.iter().filter_map(|e| hostile::value(e)).collect();
    let mut stream = BytesMut::new();
    for message in &messages {
        encode_frame_into(&mut stream, message, MAX_FRAME).expect("a message encodes");
    }
    let valid = stream.len();
    stream.extend_from_slice(tail);
    let (decoded, error) = read_stream::<M>(&stream, chunks, MAX_FRAME);
    // Garbage after the valid frames ends the connection; the valid
    // messages decoded in the same read as the garbage are dropped with it
    // (`decode_all` fails as a whole), so only a prefix is promised then.
    let n = decoded.len().min(messages.len());
    prop_assert!(decoded[..n] == messages[..n], "frames decoded differently");
    if tail.is_empty() {
        prop_assert!(decoded == messages, "lost valid frames");
        prop_assert!(error.is_none());
        prop_assert_eq!(valid, stream.len());
    }
    Ok(())
}

fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (
        prop_oneof![
            // Raw garbage.
            prop::collection::vec(any::<u8>(), 0..600),
            // A plausible length prefix, then garbage of about that length.
            (0u32..300, prop::collection::vec(any::<u8>(), 0..320)).prop_map(|(len, rest)| {
                let mut out = len.to_be_bytes().to_vec();
                out.extend_from_slice(&rest);
                out
            }),
        ],
        prop::collection::vec(1usize..64, 1..6),
    )
}

fn entropies() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..160), 0..6)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn raft_frames_take_any_bytes((bytes, chunks) in stream()) {
        garbage_stream::<raft::Message>(&bytes, &chunks, MAX_FRAME);
        garbage_stream::<raft::Message>(&bytes, &chunks, 64);
    }

    #[test]
    fn multipaxos_frames_take_any_bytes((bytes, chunks) in stream()) {
        garbage_stream::<multipaxos::Message>(&bytes, &chunks, MAX_FRAME);
        garbage_stream::<multipaxos::Message>(&bytes, &chunks, 64);
    }

    #[test]
    fn paxos_frames_take_any_bytes((bytes, chunks) in stream()) {
        garbage_stream::<paxos::Message>(&bytes, &chunks, MAX_FRAME);
        garbage_stream::<paxos::Message>(&bytes, &chunks, 64);
    }

    #[test]
    fn zab_frames_take_any_bytes((bytes, chunks) in stream()) {
        garbage_stream::<zab::Message>(&bytes, &chunks, MAX_FRAME);
        garbage_stream::<zab::Message>(&bytes, &chunks, 64);
    }

    /// Each payload decoder alone (what `decode_payload` makes of a frame).
    #[test]
    fn payload_decoders_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload::<raft::Message>(&bytes);
        let _ = decode_payload::<multipaxos::Message>(&bytes);
        let _ = decode_payload::<paxos::Message>(&bytes);
        let _ = decode_payload::<zab::Message>(&bytes);
        let _ = decode_payload::<Hello>(&bytes);
    }

    #[test]
    fn hostile_messages_round_trip_through_frames(
        entropies in entropies(),
        tail in prop::collection::vec(any::<u8>(), 0..40),
        chunks in prop::collection::vec(1usize..200, 1..5),
    ) {
        hostile_stream::<raft::Message>(&entropies, &tail, &chunks)?;
        hostile_stream::<multipaxos::Message>(&entropies, &tail, &chunks)?;
        hostile_stream::<paxos::Message>(&entropies, &tail, &chunks)?;
        hostile_stream::<zab::Message>(&entropies, &tail, &chunks)?;
    }

    /// The handshake: arbitrary bytes in the handshake frame, and hostile
    /// but well-formed hellos. `check` accepts exactly a hello equal to ours
    /// from the node the certificate named.
    #[test]
    fn handshake_takes_any_hello(
        bytes in prop::collection::vec(any::<u8>(), 0..(HELLO_MAX_BYTES + 64)),
        entropy in prop::collection::vec(any::<u8>(), 0..96),
        expected in 0u64..4,
        chunks in prop::collection::vec(1usize..64, 1..4),
    ) {
        let ours = Hello {
            magic: HELLO_MAGIC,
            wire_version: WIRE_VERSION,
            cluster_id: "a".into(),
            protocol: "raft".into(),
            node_id: 1,
        };
        // Raw bytes as the handshake stream (size limit of the handshake).
        if let Some(Ok(hello)) = read_hello(&bytes, &chunks) {
            let _ = hello.check(&ours, expected);
        }
        // A hostile hello, through a frame.
        if let Some(theirs) = hostile::value::<Hello>(&entropy) {
            let mut frame = BytesMut::new();
            if encode_frame_into(&mut frame, &theirs, HELLO_MAX_BYTES).is_ok() {
                let decoded = read_hello(&frame, &chunks);
                prop_assert_eq!(decoded, Some(Ok(theirs.clone())));
                let accepted = theirs.check(&ours, expected).is_ok();
                let same = theirs.magic == ours.magic
                    && theirs.wire_version == ours.wire_version
                    && theirs.cluster_id == ours.cluster_id
                    && theirs.protocol == ours.protocol
                    && theirs.node_id == expected;
                prop_assert_eq!(accepted, same);
            }
        }
    }
}
