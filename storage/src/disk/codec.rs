//! Little-endian encoding helpers and a bounds-checked reader that never
//! panics, whatever bytes it is given.

/// Appends little-endian integers and length-prefixed byte strings to a
/// buffer.
pub(crate) trait PutLe {
    /// Appends one byte.
    fn put_u8(&mut self, value: u8);
    /// Appends a little-endian `u32`.
    fn put_u32(&mut self, value: u32);
    /// Appends a little-endian `u64`.
    fn put_u64(&mut self, value: u64);
    /// Appends a `u32` length followed by the bytes.
    fn put_bytes(&mut self, bytes: &[u8]);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        // Callers bound lengths (MAX_RECORD_BODY_BYTES) before encoding.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.put_u32(len);
        self.extend_from_slice(bytes);
    }
}

/// Why a byte string does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cursor over a byte slice whose every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, position: 0 }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Takes the next `len` bytes.
    pub(crate) fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError(format!(
                "{what}: needs {len} bytes, {} left",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(raw))
    }

    /// Reads a little-endian `u64`.
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(raw))
    }

    /// Reads a `u32` length and that many bytes.
    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{what}: {} trailing bytes",
                self.remaining()
            )))
        }
    }
}

/// Wraps a small file's body: `magic (8) | body length u32 | crc32c u32 |
/// body`, where the checksum covers the length and the body.
pub(crate) fn seal(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body);
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(magic);
    out.put_u32(len);
    out.put_u32(crc);
    out.extend_from_slice(body);
    out
}

/// Checks and unwraps what [`seal`] produced.
pub(crate) fn unseal<'a>(magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let mut reader = Reader::new(bytes);
    if reader.take(8, "magic")? != magic {
        return Err(DecodeError(format!(
            "wrong magic (expected {:?})",
            String::from_utf8_lossy(magic)
        )));
    }
    let len = reader.u32("body length")?;
    let crc = reader.u32("checksum")?;
    let body = reader.take(len as usize, "body")?;
    reader.finish("file")?;
    if crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body) != crc {
        return Err(DecodeError("checksum mismatch".into()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut buf = Vec::new();
        buf.put_u8(7);
        buf.put_u32(0xdead_beef);
        buf.put_u64(u64::MAX - 1);
        buf.put_bytes(b"abc");
        let mut reader = Reader::new(&buf);
        assert_eq!(reader.u8("a").unwrap(), 7);
        assert_eq!(reader.u32("b").unwrap(), 0xdead_beef);
        assert_eq!(reader.u64("c").unwrap(), u64::MAX - 1);
        assert_eq!(reader.bytes("d").unwrap(), b"abc");
        reader.finish("all").unwrap();
        assert!(reader.u8("past the end").is_err());
        let mut short = Reader::new(&[3, 0, 0, 0, 1]);
        assert!(short.bytes("length past end").is_err());
    }

    #[test]
    fn sealed_files_detect_every_flip_and_cut() {
        let sealed = seal(b"TESTFILE", b"body bytes");
        assert_eq!(unseal(b"TESTFILE", &sealed).unwrap(), b"body bytes");
        assert!(unseal(b"OTHERMAG", &sealed).is_err());
        for cut in 0..sealed.len() {
            assert!(unseal(b"TESTFILE", &sealed[..cut]).is_err(), "cut {cut}");
        }
        for bit in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(unseal(b"TESTFILE", &bad).is_err(), "bit {bit}");
        }
    }
}
