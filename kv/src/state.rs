//! The replicated key-value state machine: the deterministic part of the
//! service, identical on every node and under every protocol.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus::{LogIndex, RecoverError, StateMachine};
use serde::{Deserialize, Serialize};

/// A write, replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Sets `key` to `new` (or removes it when `new` is `None`) only if its
    /// current value is `expected` (`None`: the key must be absent).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold for the swap to happen.
        expected: Option<Bytes>,
        /// The value to store (`None` deletes).
        new: Option<Bytes>,
    },
}

/// A read-only question, answered from a node's state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The value of `key`.
    Get {
        /// The key.
        key: String,
    },
    /// A digest of the whole state (to compare replicas).
    Digest,
}

/// What a command or query returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// `Put` done.
    Done,
    /// `Delete`: whether the key existed.
    Deleted(bool),
    /// `Cas`: whether it swapped, and the value found.
    Cas {
        /// True when the value matched and was replaced.
        swapped: bool,
        /// The value before the operation.
        previous: Option<Bytes>,
    },
    /// `Get`: the value, if any.
    Value(Option<Bytes>),
    /// `Digest`: number of keys, applied index, and a CRC32C over the
    /// ordered contents.
    Digest {
        /// Number of keys.
        keys: u64,
        /// Last applied log index.
        applied: LogIndex,
        /// Checksum over every (key, value) in key order.
        crc: u32,
    },
    /// The command or query did not decode.
    Malformed,
}

impl Command {
    /// Encodes for `ReplicatedLog::append`.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }
}

impl Query {
    /// Encodes for `ReplicatedLog::read`.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }
}

impl Response {
    /// Encodes a response.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encoding to a Vec cannot fail"))
    }

    /// Decodes a response; undecodable bytes are `Malformed`.
    pub fn decode(bytes: &[u8]) -> Response {
        postcard::from_bytes(bytes).unwrap_or(Response::Malformed)
    }
}

/// The key-value map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    data: BTreeMap<String, Bytes>,
    applied: LogIndex,
}

#[derive(Serialize, Deserialize)]
struct KvSnapshot {
    applied: LogIndex,
    data: Vec<(String, Bytes)>,
}

impl KvState {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.data.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn execute(&mut self, command: Command) -> Response {
        match command {
            Command::Put { key, value } => {
                self.data.insert(key, value);
                Response::Done
            }
            Command::Delete { key } => Response::Deleted(self.data.remove(&key).is_some()),
            Command::Cas { key, expected, new } => {
                let previous = self.data.get(&key).cloned();
                let swapped = previous == expected;
                if swapped {
                    match new {
                        Some(value) => {
                            self.data.insert(key, value);
                        }
                        None => {
                            self.data.remove(&key);
                        }
                    }
                }
                Response::Cas { swapped, previous }
            }
        }
    }

    fn digest(&self) -> Response {
        let mut crc = 0u32;
        for (key, value) in &self.data {
            crc = crc32c::crc32c_append(crc, &(key.len() as u64).to_le_bytes());
            crc = crc32c::crc32c_append(crc, key.as_bytes());
            crc = crc32c::crc32c_append(crc, &(value.len() as u64).to_le_bytes());
            crc = crc32c::crc32c_append(crc, value);
        }
        Response::Digest {
            keys: self.data.len() as u64,
            applied: self.applied,
            crc,
        }
    }
}

impl StateMachine for KvState {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.applied = index;
        match postcard::from_bytes::<Command>(command) {
            Ok(command) => self.execute(command).encode(),
            Err(_) => Response::Malformed.encode(),
        }
    }

    fn query(&self, query: &Bytes) -> Bytes {
        match postcard::from_bytes::<Query>(query) {
            Ok(Query::Get { key }) => Response::Value(self.data.get(&key).cloned()).encode(),
            Ok(Query::Digest) => self.digest().encode(),
            Err(_) => Response::Malformed.encode(),
        }
    }

    fn snapshot(&self) -> Bytes {
        let snapshot = KvSnapshot {
            applied: self.applied,
            data: self
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        Bytes::from(postcard::to_allocvec(&snapshot).expect("encoding to a Vec cannot fail"))
    }

    fn restore(&mut self, index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        let snapshot: KvSnapshot = postcard::from_bytes(data)
            .map_err(|e| RecoverError::CorruptSnapshot(format!("key-value snapshot: {e}")))?;
        self.data = snapshot.data.into_iter().collect();
        self.applied = index.max(snapshot.applied);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(state: &mut KvState, index: LogIndex, command: Command) -> Response {
        Response::decode(&state.apply(index, &command.encode()))
    }

    fn get(state: &KvState, key: &str) -> Response {
        Response::decode(&state.query(&Query::Get { key: key.into() }.encode()))
    }

    #[test]
    fn put_get_delete_cas() {
        let mut kv = KvState::new();
        let v = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(
            apply(
                &mut kv,
                1,
                Command::Put {
                    key: "a".into(),
                    value: v("1")
                }
            ),
            Response::Done
        );
        assert_eq!(get(&kv, "a"), Response::Value(Some(v("1"))));
        let cas = Command::Cas {
            key: "a".into(),
            expected: Some(v("0")),
            new: Some(v("2")),
        };
        assert_eq!(
            apply(&mut kv, 2, cas),
            Response::Cas {
                swapped: false,
                previous: Some(v("1"))
            }
        );
        let cas = Command::Cas {
            key: "a".into(),
            expected: Some(v("1")),
            new: Some(v("2")),
        };
        assert_eq!(
            apply(&mut kv, 3, cas),
            Response::Cas {
                swapped: true,
                previous: Some(v("1"))
            }
        );
        let create = Command::Cas {
            key: "b".into(),
            expected: None,
            new: Some(v("x")),
        };
        assert_eq!(
            apply(&mut kv, 4, create),
            Response::Cas {
                swapped: true,
                previous: None
            }
        );
        assert_eq!(
            apply(&mut kv, 5, Command::Delete { key: "a".into() }),
            Response::Deleted(true)
        );
        assert_eq!(
            apply(&mut kv, 6, Command::Delete { key: "a".into() }),
            Response::Deleted(false)
        );
        assert_eq!(get(&kv, "a"), Response::Value(None));
        assert_eq!(
            Response::decode(&kv.apply(7, &Bytes::from_static(&[0xff, 0xff]))),
            Response::Malformed
        );
    }

    #[test]
    fn snapshot_round_trip_and_digest() {
        let mut kv = KvState::new();
        for i in 0..100u64 {
            apply(
                &mut kv,
                i + 1,
                Command::Put {
                    key: format!("k{i}"),
                    value: Bytes::from(i.to_string()),
                },
            );
        }
        let mut copy = KvState::new();
        copy.restore(100, &kv.snapshot()).unwrap();
        assert_eq!(copy, kv);
        let digest = |s: &KvState| Response::decode(&s.query(&Query::Digest.encode()));
        assert_eq!(digest(&copy), digest(&kv));
        apply(&mut copy, 101, Command::Delete { key: "k1".into() });
        assert_ne!(digest(&copy), digest(&kv));
        assert!(copy.restore(1, &Bytes::from_static(b"\xff")).is_err());
    }
}
