//! The simulator's replicated state machine: a store of independent integer
//! registers named by string keys, supporting read, write and
//! compare-and-set. Every node wraps it in [`Sessions`](consensus_api::Sessions)
//! so a client's retry (same client id and sequence number) applies once.
//!
//! Encoding is compact and total: every byte string decodes to a command or
//! to an error response, so a malformed command (for example a raw proposal
//! from a protocol test) never panics a replica.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use consensus_api::{LogIndex, RecoverError, StateMachine};

const TAG_WRITE: u8 = b'W';
const TAG_CAS: u8 = b'C';
const TAG_READ: u8 = b'R';

/// A state-changing command of the key-value store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// Set `key` to `value`.
    Write {
        /// The register.
        key: String,
        /// The new value.
        value: i64,
    },
    /// Set `key` to `new` if it currently holds `expected`.
    Cas {
        /// The register.
        key: String,
        /// Required current value.
        expected: i64,
        /// Value to store when the comparison holds.
        new: i64,
    },
}

/// The store's answer to a command or query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvResponse {
    /// A write applied.
    Written,
    /// A compare-and-set applied.
    CasOk,
    /// A compare-and-set whose comparison failed (nothing changed); carries
    /// the value found.
    CasFailed(Option<i64>),
    /// The value of a register (`None`: never written).
    Value(Option<i64>),
    /// The command or query did not decode.
    Malformed,
}

fn put_key(out: &mut BytesMut, key: &str) {
    let len = u16::try_from(key.len()).expect("keys are shorter than 64 KiB");
    out.put_u16_le(len);
    out.put_slice(key.as_bytes());
}

fn take_key(bytes: &[u8]) -> Option<(String, &[u8])> {
    let len = usize::from(u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?));
    let key = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    Some((key.to_owned(), &bytes[2 + len..]))
}

fn take_i64(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let value = i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    Some((value, &bytes[8..]))
}

impl KvCommand {
    /// Encodes the command (before the session envelope).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(32);
        match self {
            KvCommand::Write { key, value } => {
                out.put_u8(TAG_WRITE);
                put_key(&mut out, key);
                out.put_i64_le(*value);
            }
            KvCommand::Cas { key, expected, new } => {
                out.put_u8(TAG_CAS);
                put_key(&mut out, key);
                out.put_i64_le(*expected);
                out.put_i64_le(*new);
            }
        }
        out.freeze()
    }

    /// Decodes a command; `None` when malformed.
    pub fn decode(bytes: &[u8]) -> Option<KvCommand> {
        match *bytes.first()? {
            TAG_WRITE => {
                let (key, rest) = take_key(&bytes[1..])?;
                let (value, rest) = take_i64(rest)?;
                rest.is_empty().then_some(KvCommand::Write { key, value })
            }
            TAG_CAS => {
                let (key, rest) = take_key(&bytes[1..])?;
                let (expected, rest) = take_i64(rest)?;
                let (new, rest) = take_i64(rest)?;
                rest.is_empty()
                    .then_some(KvCommand::Cas { key, expected, new })
            }
            _ => None,
        }
    }

    /// The register this command touches.
    pub fn key(&self) -> &str {
        match self {
            KvCommand::Write { key, .. } | KvCommand::Cas { key, .. } => key,
        }
    }
}

/// Encodes a read query of `key`.
pub fn encode_read(key: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(3 + key.len());
    out.put_u8(TAG_READ);
    put_key(&mut out, key);
    out.freeze()
}

fn decode_read(bytes: &[u8]) -> Option<String> {
    if bytes.first() != Some(&TAG_READ) {
        return None;
    }
    let (key, rest) = take_key(&bytes[1..])?;
    rest.is_empty().then_some(key)
}

impl KvResponse {
    /// Encodes the response.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(10);
        let option = |out: &mut BytesMut, value: &Option<i64>| match value {
            Some(v) => {
                out.put_u8(1);
                out.put_i64_le(*v);
            }
            None => out.put_u8(0),
        };
        match self {
            KvResponse::Written => out.put_u8(b'w'),
            KvResponse::CasOk => out.put_u8(b'c'),
            KvResponse::CasFailed(found) => {
                out.put_u8(b'f');
                option(&mut out, found);
            }
            KvResponse::Value(value) => {
                out.put_u8(b'v');
                option(&mut out, value);
            }
            KvResponse::Malformed => out.put_u8(b'?'),
        }
        out.freeze()
    }

    /// Decodes a response (`Malformed` for anything unknown).
    pub fn decode(bytes: &[u8]) -> KvResponse {
        let option = |rest: &[u8]| -> Option<Option<i64>> {
            match rest.first()? {
                0 if rest.len() == 1 => Some(None),
                1 => take_i64(&rest[1..])
                    .filter(|(_, r)| r.is_empty())
                    .map(|(v, _)| Some(v)),
                _ => None,
            }
        };
        match bytes.first() {
            Some(b'w') if bytes.len() == 1 => KvResponse::Written,
            Some(b'c') if bytes.len() == 1 => KvResponse::CasOk,
            Some(b'f') => option(&bytes[1..]).map_or(KvResponse::Malformed, KvResponse::CasFailed),
            Some(b'v') => option(&bytes[1..]).map_or(KvResponse::Malformed, KvResponse::Value),
            _ => KvResponse::Malformed,
        }
    }
}

/// Describes a log payload for failure messages: a session-wrapped key-value
/// command prints as `write k1=17 (client 0x.., seq 3)`, anything else with
/// the payload's own `Display`.
pub fn describe_payload(payload: &consensus_api::Payload) -> String {
    let consensus_api::Payload::Command(bytes) = payload else {
        return payload.to_string();
    };
    let (header, body) = match bytes.first() {
        Some(1) if bytes.len() >= 17 => {
            let client = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
            let sequence = u64::from_le_bytes(bytes[9..17].try_into().expect("8 bytes"));
            (
                format!(" (client {client:#x}, seq {sequence})"),
                &bytes[17..],
            )
        }
        Some(0) => (" (no session)".to_owned(), &bytes[1..]),
        _ => return payload.to_string(),
    };
    match KvCommand::decode(body) {
        Some(KvCommand::Write { key, value }) => format!("write {key}={value}{header}"),
        Some(KvCommand::Cas { key, expected, new }) => {
            format!("cas {key} {expected}->{new}{header}")
        }
        None => payload.to_string(),
    }
}

/// The register store (the inner state machine, without sessions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    registers: BTreeMap<String, i64>,
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<i64> {
        self.registers.get(key).copied()
    }

    /// All registers, in key order.
    pub fn registers(&self) -> &BTreeMap<String, i64> {
        &self.registers
    }

    fn execute(&mut self, command: KvCommand) -> KvResponse {
        match command {
            KvCommand::Write { key, value } => {
                self.registers.insert(key, value);
                KvResponse::Written
            }
            KvCommand::Cas { key, expected, new } => {
                let current = self.registers.get(&key).copied();
                if current == Some(expected) {
                    self.registers.insert(key, new);
                    KvResponse::CasOk
                } else {
                    KvResponse::CasFailed(current)
                }
            }
        }
    }
}

impl StateMachine for KvStore {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        match KvCommand::decode(command) {
            Some(command) => self.execute(command).encode(),
            None => KvResponse::Malformed.encode(),
        }
    }

    fn query(&self, query: &Bytes) -> Bytes {
        match decode_read(query) {
            Some(key) => KvResponse::Value(self.get(&key)).encode(),
            None => KvResponse::Malformed.encode(),
        }
    }

    fn snapshot(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u32_le(u32::try_from(self.registers.len()).expect("fewer than 2^32 keys"));
        for (key, value) in &self.registers {
            put_key(&mut out, key);
            out.put_i64_le(*value);
        }
        out.freeze()
    }

    fn restore(&mut self, _index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        let corrupt = || RecoverError::CorruptSnapshot("key-value snapshot does not decode".into());
        let count = u32::from_le_bytes(
            data.get(..4)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        );
        let mut rest = &data[4..];
        let mut registers = BTreeMap::new();
        for _ in 0..count {
            let (key, after) = take_key(rest).ok_or_else(corrupt)?;
            let (value, after) = take_i64(after).ok_or_else(corrupt)?;
            registers.insert(key, value);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(corrupt());
        }
        self.registers = registers;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_apply() {
        let mut kv = KvStore::new();
        let write = KvCommand::Write {
            key: "k".into(),
            value: 7,
        };
        assert_eq!(KvCommand::decode(&write.encode()), Some(write.clone()));
        assert_eq!(
            KvResponse::decode(&kv.apply(1, &write.encode())),
            KvResponse::Written
        );
        let cas = KvCommand::Cas {
            key: "k".into(),
            expected: 7,
            new: 9,
        };
        assert_eq!(
            KvResponse::decode(&kv.apply(2, &cas.encode())),
            KvResponse::CasOk
        );
        assert_eq!(
            KvResponse::decode(&kv.apply(3, &cas.encode())),
            KvResponse::CasFailed(Some(9))
        );
        assert_eq!(
            KvResponse::decode(&kv.query(&encode_read("k"))),
            KvResponse::Value(Some(9))
        );
        assert_eq!(
            KvResponse::decode(&kv.query(&encode_read("x"))),
            KvResponse::Value(None)
        );
        assert_eq!(
            KvResponse::decode(&kv.apply(4, &Bytes::from_static(b"junk"))),
            KvResponse::Malformed
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let mut kv = KvStore::new();
        kv.apply(
            1,
            &KvCommand::Write {
                key: "a".into(),
                value: -3,
            }
            .encode(),
        );
        kv.apply(
            2,
            &KvCommand::Write {
                key: "b".into(),
                value: 4,
            }
            .encode(),
        );
        let data = kv.snapshot();
        let mut other = KvStore::new();
        other.restore(2, &data).unwrap();
        assert_eq!(other, kv);
        assert!(other.restore(2, &data.slice(..data.len() - 1)).is_err());
    }
}
