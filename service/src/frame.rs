//! Frames of the pipelined client protocol.
//!
//! A frame is a `u32` little-endian length `L`, then `L` bytes: a `u64`
//! little-endian request id and the body (the service's own encoding,
//! postcard for both services). Requests and replies use the same framing;
//! a reply carries the id of its request. Many frames travel in one stream
//! write, and a reader takes as many as one read delivers.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Bytes of the request id at the start of every frame.
pub const ID_BYTES: usize = 8;

/// Why a stream's bytes are not a valid sequence of frames. Each of these
/// closes the connection that sent them (the stream can no longer be read
/// in step with the sender).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A frame announced more bytes than the limit.
    #[error("a frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A frame too short to hold a request id.
    #[error("a frame of {size} bytes is too short to hold a request id")]
    TooShort {
        /// The announced size.
        size: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the stream ended inside a frame ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the unfinished frame that arrived.
        buffered: usize,
    },
}

/// Appends one frame (`id`, `body`) to `out`.
pub fn encode_frame(out: &mut BytesMut, id: u64, body: &[u8]) {
    let length = u32::try_from(ID_BYTES + body.len()).expect("frame length fits in u32");
    out.reserve(LENGTH_BYTES + length as usize);
    out.put_u32_le(length);
    out.put_u64_le(id);
    out.put_slice(body);
}

/// Cuts frames out of the bytes a stream delivers, however the sender's
/// writes were split into packets.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    frame_bytes_max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames above `frame_bytes_max` bytes (id included).
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder {
            buffer: BytesMut::new(),
            frame_bytes_max,
        }
    }

    /// Adds bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame as (id, body), `Ok(None)` when more bytes are
    /// needed, or an error that ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<(u64, Bytes)>, FrameError> {
        if self.buffer.len() < LENGTH_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_BYTES];
        prefix.copy_from_slice(&self.buffer[..LENGTH_BYTES]);
        let size = u32::from_le_bytes(prefix) as usize;
        if size > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                size,
                max: self.frame_bytes_max,
            });
        }
        if size < ID_BYTES {
            return Err(FrameError::TooShort { size });
        }
        if self.buffer.len() < LENGTH_BYTES + size {
            return Ok(None);
        }
        self.buffer.advance(LENGTH_BYTES);
        let mut frame = self.buffer.split_to(size).freeze();
        let id = frame.get_u64_le();
        Ok(Some((id, frame)))
    }

    /// Checks that the stream ended between frames.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.buffer.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split_of_the_stream() {
        let mut stream = BytesMut::new();
        encode_frame(&mut stream, 1, b"first");
        encode_frame(&mut stream, 2, b"");
        encode_frame(&mut stream, u64::MAX, &[7u8; 300]);
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let mut decoder = FrameDecoder::new(1024);
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.extend(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(frames.len(), 3, "chunk size {chunk}");
            assert_eq!(frames[0], (1, Bytes::from_static(b"first")));
            assert_eq!(frames[1], (2, Bytes::new()));
            assert_eq!(frames[2].0, u64::MAX);
            assert_eq!(frames[2].1.len(), 300);
        }
    }

    #[test]
    fn oversized_short_and_truncated_frames_are_errors() {
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&17u32.to_le_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { size: 17, max: 16 })
        );
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&3u32.to_le_bytes());
        assert_eq!(decoder.next_frame(), Err(FrameError::TooShort { size: 3 }));
        let mut decoder = FrameDecoder::new(16);
        decoder.extend(&12u32.to_le_bytes());
        decoder.extend(&[0; 5]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: 9 }));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            let mut decoder = FrameDecoder::new(4096);
            let mut bytes = Vec::new();
            for _ in 0..(state % 97) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            decoder.extend(&bytes);
            while let Ok(Some(_)) = decoder.next_frame() {}
        }
    }
}
