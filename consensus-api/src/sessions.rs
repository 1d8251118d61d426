//! Client sessions: retries applied once.
//!
//! A client that gets [`ClientError::Timeout`](crate::ClientError::Timeout)
//! cannot know whether its command was applied. It retries with the **same**
//! `(client, sequence)`; the [`Sessions`] wrapper around the application's
//! state machine remembers the last sequence number and response of every
//! client, so the retry returns the first response instead of applying the
//! command twice. Because the table lives inside the replicated state machine
//! (and its snapshots), every replica agrees on it.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::RecoverError;
use crate::replicated::StateMachine;
use crate::types::LogIndex;

const TAG_PLAIN: u8 = 0;
const TAG_SESSION: u8 = 1;

/// A command with its session header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCommand {
    /// Client id, unique per client process (e.g. random 64 bits).
    pub client: u64,
    /// Sequence number, starting at 1 and increasing by one per new command
    /// of this client; a retry reuses the number.
    pub sequence: u64,
    /// The application command.
    pub body: Bytes,
}

/// Why a session command was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum SessionError {
    /// The client has already moved past this sequence number; the response
    /// is no longer kept. The command was not applied now (it was applied, or
    /// abandoned, earlier).
    #[error("stale request: sequence {sequence} is below the client's last {last}")]
    Stale {
        /// The request's sequence number.
        sequence: u64,
        /// The last sequence number applied for the client.
        last: u64,
    },
    /// The client's session was evicted (too many clients) and this is not a
    /// fresh command; whether it was applied is unknown.
    #[error("session expired for client {0}")]
    Expired(u64),
    /// The command or response bytes do not decode.
    #[error("malformed session envelope")]
    Malformed,
}

impl SessionCommand {
    /// Encodes the command for [`ReplicatedLog::append`](crate::ReplicatedLog::append).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(17 + self.body.len());
        out.put_u8(TAG_SESSION);
        out.put_u64_le(self.client);
        out.put_u64_le(self.sequence);
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Wraps a command that needs no deduplication.
    pub fn plain(body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(1 + body.len());
        out.put_u8(TAG_PLAIN);
        out.put_slice(body);
        out.freeze()
    }

    fn decode(command: &Bytes) -> Result<Envelope, SessionError> {
        match command.first() {
            Some(&TAG_PLAIN) => Ok(Envelope::Plain(command.slice(1..))),
            Some(&TAG_SESSION) if command.len() >= 17 => {
                let client = u64::from_le_bytes(command[1..9].try_into().expect("8 bytes"));
                let sequence = u64::from_le_bytes(command[9..17].try_into().expect("8 bytes"));
                Ok(Envelope::Session(SessionCommand {
                    client,
                    sequence,
                    body: command.slice(17..),
                }))
            }
            _ => Err(SessionError::Malformed),
        }
    }
}

enum Envelope {
    Plain(Bytes),
    Session(SessionCommand),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ClientRecord {
    sequence: u64,
    response: Bytes,
    last_index: LogIndex,
}

#[derive(Serialize, Deserialize)]
struct SessionsSnapshot {
    clients: Vec<(u64, ClientRecord)>,
    evicted_below: BTreeMap<u64, u64>,
    inner: Bytes,
}

/// Wraps a [`StateMachine`] with client-session deduplication.
///
/// Commands must be encoded with [`SessionCommand::encode`] or
/// [`SessionCommand::plain`]; responses decode with
/// [`Sessions::decode_response`]. The table keeps at most `capacity` clients,
/// evicting the one least recently active by log index (deterministic on
/// every replica).
pub struct Sessions<S> {
    inner: S,
    capacity: usize,
    clients: BTreeMap<u64, ClientRecord>,
    /// client -> last_index, inverted, for deterministic LRU eviction.
    by_index: BTreeMap<LogIndex, u64>,
    /// Highest sequence ever evicted per client id (bounded like `clients`),
    /// so a late retry of an evicted client is answered `Expired`.
    evicted_below: BTreeMap<u64, u64>,
}

impl<S: StateMachine> Sessions<S> {
    /// Wraps `inner`, keeping at most `capacity` client sessions.
    pub fn new(inner: S, capacity: usize) -> Self {
        Sessions {
            inner,
            capacity: capacity.max(1),
            clients: BTreeMap::new(),
            by_index: BTreeMap::new(),
            evicted_below: BTreeMap::new(),
        }
    }

    /// The wrapped state machine.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Number of clients with a live session.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Decodes a response produced by [`Sessions::apply`](StateMachine::apply).
    pub fn decode_response(response: &Bytes) -> Result<Bytes, SessionError> {
        postcard::from_bytes::<Result<Bytes, SessionError>>(response)
            .map_err(|_| SessionError::Malformed)?
    }

    fn encode_response(result: &Result<Bytes, SessionError>) -> Bytes {
        Bytes::from(postcard::to_allocvec(result).expect("encoding to a Vec cannot fail"))
    }

    fn evict_if_full(&mut self) {
        while self.clients.len() > self.capacity {
            let Some((&index, &client)) = self.by_index.iter().next() else {
                break;
            };
            self.by_index.remove(&index);
            if let Some(record) = self.clients.remove(&client) {
                self.evicted_below.insert(client, record.sequence);
            }
        }
        while self.evicted_below.len() > self.capacity {
            let first = *self.evicted_below.keys().next().expect("non-empty");
            self.evicted_below.remove(&first);
        }
    }

    fn apply_session(
        &mut self,
        index: LogIndex,
        command: SessionCommand,
    ) -> Result<Bytes, SessionError> {
        if let Some(record) = self.clients.get(&command.client) {
            if command.sequence == record.sequence {
                return Ok(record.response.clone());
            }
            if command.sequence < record.sequence {
                return Err(SessionError::Stale {
                    sequence: command.sequence,
                    last: record.sequence,
                });
            }
        } else if let Some(&evicted) = self.evicted_below.get(&command.client) {
            if command.sequence <= evicted {
                return Err(SessionError::Expired(command.client));
            }
        }
        let response = self.inner.apply(index, &command.body);
        if let Some(old) = self.clients.insert(
            command.client,
            ClientRecord {
                sequence: command.sequence,
                response: response.clone(),
                last_index: index,
            },
        ) {
            self.by_index.remove(&old.last_index);
        }
        self.by_index.insert(index, command.client);
        self.evicted_below.remove(&command.client);
        self.evict_if_full();
        Ok(response)
    }
}

impl<S: StateMachine> StateMachine for Sessions<S> {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        let result = match SessionCommand::decode(command) {
            Ok(Envelope::Plain(body)) => Ok(self.inner.apply(index, &body)),
            Ok(Envelope::Session(command)) => self.apply_session(index, command),
            Err(error) => Err(error),
        };
        Self::encode_response(&result)
    }

    fn query(&self, query: &Bytes) -> Bytes {
        self.inner.query(query)
    }

    fn snapshot(&self) -> Bytes {
        let snapshot = SessionsSnapshot {
            clients: self
                .clients
                .iter()
                .map(|(client, record)| (*client, record.clone()))
                .collect(),
            evicted_below: self.evicted_below.clone(),
            inner: self.inner.snapshot(),
        };
        Bytes::from(postcard::to_allocvec(&snapshot).expect("encoding to a Vec cannot fail"))
    }

    fn restore(&mut self, index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        let snapshot: SessionsSnapshot = postcard::from_bytes(data)
            .map_err(|e| RecoverError::CorruptSnapshot(format!("session table: {e}")))?;
        self.inner.restore(index, &snapshot.inner)?;
        self.clients = snapshot.clients.into_iter().collect();
        self.by_index = self
            .clients
            .iter()
            .map(|(client, record)| (record.last_index, *client))
            .collect();
        self.evicted_below = snapshot.evicted_below;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter: every command adds its first byte; responses are the total.
    #[derive(Default)]
    struct Counter(u64);

    impl StateMachine for Counter {
        fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
            self.0 += u64::from(command[0]);
            Bytes::from(self.0.to_le_bytes().to_vec())
        }
        fn query(&self, _query: &Bytes) -> Bytes {
            Bytes::from(self.0.to_le_bytes().to_vec())
        }
        fn snapshot(&self) -> Bytes {
            Bytes::from(self.0.to_le_bytes().to_vec())
        }
        fn restore(&mut self, _index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
            let raw: [u8; 8] = data[..]
                .try_into()
                .map_err(|_| RecoverError::CorruptSnapshot("counter".into()))?;
            self.0 = u64::from_le_bytes(raw);
            Ok(())
        }
    }

    fn cmd(client: u64, sequence: u64, add: u8) -> Bytes {
        SessionCommand {
            client,
            sequence,
            body: Bytes::from(vec![add]),
        }
        .encode()
    }

    fn total(response: Bytes) -> u64 {
        let body = Sessions::<Counter>::decode_response(&response).expect("ok response");
        u64::from_le_bytes(body[..].try_into().unwrap())
    }

    #[test]
    fn a_retry_is_applied_once_and_gets_the_first_response() {
        let mut sm = Sessions::new(Counter::default(), 16);
        assert_eq!(total(sm.apply(1, &cmd(7, 1, 5))), 5);
        assert_eq!(
            total(sm.apply(2, &cmd(7, 1, 5))),
            5,
            "duplicate returns cached response"
        );
        assert_eq!(sm.inner().0, 5, "duplicate not applied");
        assert_eq!(total(sm.apply(3, &cmd(7, 2, 1))), 6);
        let stale = Sessions::<Counter>::decode_response(&sm.apply(4, &cmd(7, 1, 5)));
        assert_eq!(
            stale,
            Err(SessionError::Stale {
                sequence: 1,
                last: 2
            })
        );
        assert_eq!(sm.inner().0, 6);
    }

    #[test]
    fn plain_commands_and_malformed_envelopes() {
        let mut sm = Sessions::new(Counter::default(), 16);
        assert_eq!(total(sm.apply(1, &SessionCommand::plain(&[3]))), 3);
        assert_eq!(
            total(sm.apply(2, &SessionCommand::plain(&[3]))),
            6,
            "plain is not deduplicated"
        );
        let bad = Sessions::<Counter>::decode_response(&sm.apply(3, &Bytes::from_static(&[9, 9])));
        assert_eq!(bad, Err(SessionError::Malformed));
        assert_eq!(sm.inner().0, 6);
    }

    #[test]
    fn eviction_is_lru_by_index_and_expired_retries_are_refused() {
        let mut sm = Sessions::new(Counter::default(), 2);
        sm.apply(1, &cmd(1, 1, 1));
        sm.apply(2, &cmd(2, 1, 1));
        sm.apply(3, &cmd(1, 2, 1)); // client 1 is now more recent than 2
        sm.apply(4, &cmd(3, 1, 1)); // evicts client 2
        assert_eq!(sm.client_count(), 2);
        let late = Sessions::<Counter>::decode_response(&sm.apply(5, &cmd(2, 1, 1)));
        assert_eq!(late, Err(SessionError::Expired(2)));
        assert_eq!(sm.inner().0, 4);
    }

    #[test]
    fn a_session_envelope_too_short_for_its_header_is_malformed() {
        let mut sm = Sessions::new(Counter::default(), 16);
        let full = cmd(7, 1, 5);
        for cut in 1..17 {
            let short = full.slice(..cut);
            let answer = Sessions::<Counter>::decode_response(&sm.apply(1, &short));
            assert_eq!(answer, Err(SessionError::Malformed), "{cut} bytes");
        }
        assert_eq!(sm.inner().0, 0);
    }

    #[test]
    fn the_record_of_evicted_clients_is_bounded_by_the_capacity() {
        let mut sm = Sessions::new(Counter::default(), 2);
        for (index, client) in (1..=5).enumerate() {
            sm.apply(index as u64 + 1, &cmd(client, 1, 1));
        }
        // Clients 1, 2 and 3 were evicted; at most 2 of them are remembered,
        // the smallest ids forgotten first: 2 and 3 refuse a late retry...
        for client in [2, 3] {
            let late = Sessions::<Counter>::decode_response(&sm.apply(9, &cmd(client, 1, 1)));
            assert_eq!(late, Err(SessionError::Expired(client)));
        }
        // ...and client 1 is unknown again (its retry counts as new).
        assert_eq!(total(sm.apply(10, &cmd(1, 1, 1))), 6);
    }

    #[test]
    fn queries_reach_the_inner_state_machine() {
        let mut sm = Sessions::new(Counter::default(), 2);
        sm.apply(1, &cmd(1, 1, 4));
        assert_eq!(
            sm.query(&Bytes::new()),
            Bytes::from(4u64.to_le_bytes().to_vec())
        );
    }

    #[test]
    fn snapshot_round_trip_keeps_the_table() {
        let mut sm = Sessions::new(Counter::default(), 16);
        sm.apply(1, &cmd(7, 1, 5));
        let snap = sm.snapshot();
        let mut other = Sessions::new(Counter::default(), 16);
        other.restore(1, &snap).unwrap();
        assert_eq!(
            total(other.apply(2, &cmd(7, 1, 5))),
            5,
            "restored table deduplicates"
        );
        assert_eq!(other.inner().0, 5);
        assert!(other.restore(1, &Bytes::from_static(b"garbage")).is_err());
    }
}
