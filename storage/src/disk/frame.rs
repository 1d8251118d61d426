//! Record framing: `length | length check | CRC32C | body`.
//!
//! ```text
//! offset  size  field
//!      0     4  body length L (u32 LE), 1 ..= MAX_RECORD_BODY_BYTES
//!      4     4  length check: crc32c(L as LE bytes) ^ LENGTH_CHECK_SALT
//!      8     4  crc32c(L as LE bytes ++ body)
//!     12     L  body (first byte: record type)
//! ```
//!
//! The length check makes the length field self-validating: a bit flip in
//! it is detected before the length is trusted, and a scan for "is there
//! any valid record after this bad one?" (see the module docs of `disk`)
//! rejects a random offset after 4 bytes of CRC work instead of trusting a
//! random length and checksumming megabytes.

use std::ops::Range;

/// Bytes of the frame header.
pub(crate) const FRAME_HEADER_BYTES: usize = 12;

/// Largest record body accepted (encoder splits entry batches well below).
pub(crate) const MAX_RECORD_BODY_BYTES: usize = 1 << 30;

/// Mixed into the length check so that no all-zero or all-one header is
/// valid.
const LENGTH_CHECK_SALT: u32 = 0x5741_4c21;

fn length_check(len: u32) -> u32 {
    crc32c::crc32c(&len.to_le_bytes()) ^ LENGTH_CHECK_SALT
}

fn body_checksum(len: u32, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body)
}

/// Starts a frame at the end of `buf`; returns its start for [`end_frame`].
pub(crate) fn begin_frame(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    start
}

/// Completes the frame begun at `start`: everything appended since is its
/// body. Returns the body length.
pub(crate) fn end_frame(buf: &mut [u8], start: usize) -> usize {
    let body_len = buf.len() - start - FRAME_HEADER_BYTES;
    debug_assert!(body_len >= 1, "a record body holds at least its type");
    debug_assert!(body_len <= MAX_RECORD_BODY_BYTES, "record body too large");
    let len = body_len as u32;
    let crc = body_checksum(len, &buf[start + FRAME_HEADER_BYTES..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&length_check(len).to_le_bytes());
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    body_len
}

/// What is wrong with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadFrame {
    /// Fewer than [`FRAME_HEADER_BYTES`] bytes remain.
    ShortHeader {
        /// Bytes present.
        present: usize,
    },
    /// The length field fails its check (or is 0 / too large).
    BadLength,
    /// The body extends past the end of the data.
    BodyPastEnd {
        /// Claimed body length.
        len: usize,
        /// Body bytes present.
        present: usize,
    },
    /// The body checksum does not match.
    Checksum,
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadFrame::ShortHeader { present } => {
                write!(
                    f,
                    "short record header ({present} of {FRAME_HEADER_BYTES} bytes)"
                )
            }
            BadFrame::BadLength => write!(f, "record length field fails its check"),
            BadFrame::BodyPastEnd { len, present } => {
                write!(
                    f,
                    "record body of {len} bytes extends past the end ({present} present)"
                )
            }
            BadFrame::Checksum => write!(f, "record checksum mismatch"),
        }
    }
}

/// One frame read at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A well-formed frame.
    Valid {
        /// Body position within the data.
        body: Range<usize>,
    },
    /// A malformed frame.
    Bad(BadFrame),
}

/// Reads the frame starting at `offset` of `data`.
pub(crate) fn read_frame(data: &[u8], offset: usize) -> Frame {
    let rest = data.get(offset..).unwrap_or(&[]);
    if rest.len() < FRAME_HEADER_BYTES {
        return Frame::Bad(BadFrame::ShortHeader {
            present: rest.len(),
        });
    }
    let word = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    let len = word(0);
    if len == 0 || len as usize > MAX_RECORD_BODY_BYTES || word(4) != length_check(len) {
        return Frame::Bad(BadFrame::BadLength);
    }
    let len = len as usize;
    let present = rest.len() - FRAME_HEADER_BYTES;
    if len > present {
        return Frame::Bad(BadFrame::BodyPastEnd { len, present });
    }
    let body = &rest[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len];
    if word(8) != body_checksum(len as u32, body) {
        return Frame::Bad(BadFrame::Checksum);
    }
    let start = offset + FRAME_HEADER_BYTES;
    Frame::Valid {
        body: start..start + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let start = begin_frame(&mut buf);
        buf.extend_from_slice(body);
        end_frame(&mut buf, start);
        buf
    }

    #[test]
    fn valid_frame_round_trips() {
        let buf = frame(b"hello");
        assert_eq!(read_frame(&buf, 0), Frame::Valid { body: 12..17 });
    }

    #[test]
    fn every_cut_and_every_flip_is_detected() {
        let buf = frame(b"some record body");
        for cut in 0..buf.len() {
            assert!(
                matches!(read_frame(&buf[..cut], 0), Frame::Bad(_)),
                "cut {cut}"
            );
        }
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(read_frame(&bad, 0), Frame::Bad(_)), "bit {bit}");
        }
    }

    #[test]
    fn zero_and_one_headers_are_invalid() {
        assert_eq!(read_frame(&[0u8; 64], 0), Frame::Bad(BadFrame::BadLength));
        assert_eq!(
            read_frame(&[0xffu8; 64], 0),
            Frame::Bad(BadFrame::BadLength)
        );
    }
}
