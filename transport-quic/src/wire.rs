//! The wire format: frames, the handshake frame and connection close codes.
//! The crate documentation describes the layout; this module implements it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use consensus_api::{NodeId, TransportError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version of this wire format (framing + handshake + stream roles). Peers
/// must announce the same value.
pub const WIRE_VERSION: u32 = 1;

/// First four payload bytes of every handshake frame.
pub const HELLO_MAGIC: [u8; 4] = *b"CQT1";

/// Largest handshake frame payload accepted.
pub const HELLO_MAX_BYTES: usize = 1024;

/// Size of the length prefix of a frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// ALPN protocol id negotiated by TLS.
pub const ALPN: &[u8] = b"consensus-quic/1";

/// The handshake frame, the first frame in each direction of the control
/// stream. Its encoding (postcard, field order below) never changes across
/// wire versions, so that a peer of another version is told so instead of
/// failing to decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`].
    pub magic: [u8; 4],
    /// The sender's wire-format version.
    pub wire_version: u32,
    /// The sender's cluster id.
    pub cluster_id: String,
    /// The sender's protocol name (`raft`, `zab`, ...).
    pub protocol: String,
    /// The sender's node id; must match its certificate.
    pub node_id: NodeId,
}

impl Hello {
    /// Compares a peer's hello with ours; `expected_node` is the id its
    /// certificate proved. Returns the first mismatching field.
    pub fn check(&self, ours: &Hello, expected_node: NodeId) -> Result<(), TransportError> {
        let mismatch = |field: &'static str, ours: String, theirs: String| {
            Err(TransportError::HandshakeMismatch {
                field,
                ours,
                theirs,
            })
        };
        if self.magic != HELLO_MAGIC {
            return mismatch(
                "magic",
                format!("{:?}", HELLO_MAGIC),
                format!("{:?}", self.magic),
            );
        }
        if self.cluster_id != ours.cluster_id {
            return mismatch(
                "cluster_id",
                ours.cluster_id.clone(),
                self.cluster_id.clone(),
            );
        }
        if self.protocol != ours.protocol {
            return mismatch("protocol", ours.protocol.clone(), self.protocol.clone());
        }
        if self.wire_version != ours.wire_version {
            return mismatch(
                "wire_version",
                ours.wire_version.to_string(),
                self.wire_version.to_string(),
            );
        }
        if self.node_id != expected_node {
            return mismatch(
                "node_id",
                format!("{expected_node} (from its certificate)"),
                self.node_id.to_string(),
            );
        }
        Ok(())
    }
}

/// Application close codes (QUIC `CONNECTION_CLOSE` of type application).
/// The close reason carries a human-readable explanation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly close: the node is shutting down.
    Shutdown = 0,
    /// Cluster id, protocol, wire version or node id differ.
    HandshakeMismatch = 1,
    /// A frame announced more than the maximum frame size.
    FrameTooLarge = 2,
    /// A frame does not decode (garbage, or another protocol's message).
    Decode = 3,
    /// The peer broke the stream rules (extra control stream, stream ended
    /// in the middle of a frame, no handshake in time).
    ProtocolViolation = 4,
    /// A newer connection from the same peer replaced this one.
    Superseded = 5,
    /// The peer was removed from the peer table (membership change).
    PeerRemoved = 6,
}

impl CloseCode {
    /// The QUIC error code.
    pub fn code(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(self as u32)
    }

    /// Decodes a QUIC application error code.
    pub fn from_code(code: quinn::VarInt) -> Option<CloseCode> {
        Some(match code.into_inner() {
            0 => CloseCode::Shutdown,
            1 => CloseCode::HandshakeMismatch,
            2 => CloseCode::FrameTooLarge,
            3 => CloseCode::Decode,
            4 => CloseCode::ProtocolViolation,
            5 => CloseCode::Superseded,
            6 => CloseCode::PeerRemoved,
            _ => return None,
        })
    }

    /// The close code matching a transport error found on a connection.
    pub fn for_error(error: &TransportError) -> CloseCode {
        match error {
            TransportError::HandshakeMismatch { .. } => CloseCode::HandshakeMismatch,
            TransportError::FrameTooLarge { .. } => CloseCode::FrameTooLarge,
            TransportError::Decode(_) => CloseCode::Decode,
            TransportError::Closed => CloseCode::Shutdown,
            TransportError::UnknownPeer(_) => CloseCode::PeerRemoved,
            TransportError::QueueFull(_)
            | TransportError::Tls(_)
            | TransportError::Connection(_) => CloseCode::ProtocolViolation,
        }
    }
}

/// A postcard flavor that appends to a `BytesMut` (no intermediate `Vec`).
struct BytesMutFlavor<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for BytesMutFlavor<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends one frame (length prefix + postcard payload) to `buf`. On error
/// `buf` is left as it was. Returns the frame's total size.
pub fn encode_frame_into<T: Serialize + ?Sized>(
    buf: &mut BytesMut,
    message: &T,
    max_frame_bytes: usize,
) -> Result<usize, TransportError> {
    let start = buf.len();
    buf.put_u32(0);
    if let Err(error) = postcard::serialize_with_flavor(message, BytesMutFlavor(buf)) {
        buf.truncate(start);
        return Err(TransportError::Decode(format!(
            "message does not encode: {error}"
        )));
    }
    let payload = buf.len() - start - FRAME_HEADER_BYTES;
    if payload > max_frame_bytes {
        buf.truncate(start);
        return Err(TransportError::FrameTooLarge {
            size: payload,
            max: max_frame_bytes,
        });
    }
    // `payload <= max_frame_bytes <= u32::MAX` (checked by the config).
    let len = u32::try_from(payload).map_err(|_| TransportError::FrameTooLarge {
        size: payload,
        max: max_frame_bytes,
    })?;
    buf[start..start + FRAME_HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(payload + FRAME_HEADER_BYTES)
}

/// One frame as its own buffer.
pub fn encode_frame<T: Serialize + ?Sized>(
    message: &T,
    max_frame_bytes: usize,
) -> Result<Bytes, TransportError> {
    let mut buf = BytesMut::new();
    encode_frame_into(&mut buf, message, max_frame_bytes)?;
    Ok(buf.freeze())
}

/// Decodes a frame payload; the whole payload must be consumed.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, TransportError> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(TransportError::Decode(format!(
            "{} trailing bytes after the message",
            rest.len()
        ))),
        Err(error) => Err(TransportError::Decode(error.to_string())),
    }
}

/// Splits a byte stream into frame payloads, enforcing the size limit as
/// soon as a length prefix is seen (before the payload is buffered).
#[derive(Debug)]
pub struct FrameDecoder {
    pending: BytesMut,
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder for frames of at most `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder {
            pending: BytesMut::new(),
            max_frame_bytes,
        }
    }

    /// Changes the size limit (the handshake frame has its own, smaller one).
    pub fn set_max(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// The next complete frame payload, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.pending.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        header.copy_from_slice(&self.pending[..FRAME_HEADER_BYTES]);
        let len = u32::from_be_bytes(header) as usize;
        if len > self.max_frame_bytes {
            return Err(TransportError::FrameTooLarge {
                size: len,
                max: self.max_frame_bytes,
            });
        }
        if self.pending.len() < FRAME_HEADER_BYTES + len {
            self.pending
                .reserve(FRAME_HEADER_BYTES + len - self.pending.len());
            return Ok(None);
        }
        self.pending.advance(FRAME_HEADER_BYTES);
        Ok(Some(self.pending.split_to(len).freeze()))
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_arbitrary_chunking() {
        let messages: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; i * 7]).collect();
        let mut wire = BytesMut::new();
        for message in &messages {
            encode_frame_into(&mut wire, message, 1024).unwrap();
        }
        for chunk_size in [1, 3, 17, 4096] {
            let mut decoder = FrameDecoder::new(1024);
            let mut decoded = Vec::new();
            for chunk in wire.chunks(chunk_size) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    decoded.push(decode_payload::<Vec<u8>>(&frame).unwrap());
                }
            }
            assert_eq!(decoded, messages, "chunk size {chunk_size}");
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn oversized_frames_are_refused_on_both_ends() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let error = encode_frame_into(&mut buf, &vec![0u8; 100], 50).unwrap_err();
        assert!(matches!(
            error,
            TransportError::FrameTooLarge { max: 50, .. }
        ));
        assert_eq!(&buf[..], b"keep", "a refused frame leaves the buffer alone");

        let mut decoder = FrameDecoder::new(50);
        decoder.push(&51u32.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(TransportError::FrameTooLarge { size: 51, max: 50 })
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_do_not_decode() {
        assert!(decode_payload::<Hello>(&[0xff; 9]).is_err());
        let mut payload = postcard::to_allocvec(&7u64).unwrap();
        payload.push(0);
        assert!(matches!(
            decode_payload::<u64>(&payload),
            Err(TransportError::Decode(_))
        ));
    }

    #[test]
    fn hello_check_names_the_first_differing_field() {
        let ours = Hello {
            magic: HELLO_MAGIC,
            wire_version: WIRE_VERSION,
            cluster_id: "a".into(),
            protocol: "raft".into(),
            node_id: 1,
        };
        let theirs = Hello {
            node_id: 2,
            ..ours.clone()
        };
        assert_eq!(theirs.check(&ours, 2), Ok(()));
        let field = |hello: Hello, expected: NodeId| match hello.check(&ours, expected) {
            Err(TransportError::HandshakeMismatch { field, .. }) => field,
            other => panic!("unexpected {other:?}"),
        };
        let zab = Hello {
            protocol: "zab".into(),
            ..theirs.clone()
        };
        assert_eq!(field(zab, 2), "protocol");
        let other_cluster = Hello {
            cluster_id: "b".into(),
            ..theirs.clone()
        };
        assert_eq!(field(other_cluster, 2), "cluster_id");
        let newer = Hello {
            wire_version: WIRE_VERSION + 1,
            ..theirs.clone()
        };
        assert_eq!(field(newer, 2), "wire_version");
        assert_eq!(field(theirs, 3), "node_id");
    }

    #[test]
    fn close_codes_round_trip() {
        for code in [
            CloseCode::Shutdown,
            CloseCode::HandshakeMismatch,
            CloseCode::FrameTooLarge,
            CloseCode::Decode,
            CloseCode::ProtocolViolation,
            CloseCode::Superseded,
            CloseCode::PeerRemoved,
        ] {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(quinn::VarInt::from_u32(99)), None);
    }
}
