//! Bad input at scale (issue 16): the key-value service's decoders. Arbitrary
//! bytes into `wire::decode` (every client and admin message, both ways),
//! the replicated commands as the state machine applies them (through the
//! session envelope, as the server runs it), queries and snapshots; and
//! hostile but well-formed commands (huge sequence numbers, odd keys, empty
//! values). Typed errors (`Err`, `Malformed`) only, never a panic.
//!
//! Cases per property: `PROPTEST_CASES` (default below). The long run is in
//! docs/testing.md, "Bad input at scale".

use consensus::{Bytes, SessionCommand, Sessions, StateMachine};
use consensus_kv::state::{Command, KvState, Query, Response};
use consensus_kv::wire::{self, AdminReply, AdminRequest, Reply, Request};
use consensus_testkit::hostile;
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

/// The server's state machine: the key-value map behind client sessions.
fn machine() -> Sessions<KvState> {
    Sessions::new(KvState::new(), 16)
}

/// Decodes `bytes` as `T`; a decoded value must re-encode and decode to
/// itself.
fn decodes<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = wire::decode::<T>(bytes) {
        let again = wire::decode::<T>(&wire::encode(&value));
        prop_assert_eq!(again, Ok(value));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wire_decoders_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        decodes::<Request>(&bytes)?;
        decodes::<Reply>(&bytes)?;
        decodes::<AdminRequest>(&bytes)?;
        decodes::<AdminReply>(&bytes)?;
        let _ = Response::decode(&bytes);
    }

    /// Log entries, queries and snapshots of arbitrary bytes.
    #[test]
    fn state_machine_takes_any_bytes(
        commands in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8),
        query in prop::collection::vec(any::<u8>(), 0..64),
        snapshot in prop::collection::vec(any::<u8>(), 0..128),
        index in any::<u64>(),
    ) {
        let mut state = machine();
        for (i, command) in commands.iter().enumerate() {
            let response = state.apply(i as u64 + 1, &Bytes::copy_from_slice(command));
            let _ = Sessions::<KvState>::decode_response(&response);
            // The same bytes inside a session envelope and plain.
            let _ = state.apply(i as u64 + 1, &SessionCommand::plain(command));
        }
        let _ = state.query(&Bytes::copy_from_slice(&query));
        let mut fresh = machine();
        let _ = fresh.restore(index, &Bytes::copy_from_slice(&snapshot));
        // A real snapshot always restores, at the index it was taken at.
        let mut copy = machine();
        prop_assert!(copy.restore(commands.len() as u64, &state.snapshot()).is_ok());
        prop_assert_eq!(copy.snapshot(), state.snapshot());
    }

    /// Hostile but well-formed commands and queries, in hostile sessions.
    #[test]
    fn state_machine_takes_hostile_commands(
        entries in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..10), prop::collection::vec(any::<u8>(), 0..80)),
            1..10,
        ),
        query in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut state = machine();
        for (i, (session, command)) in entries.iter().enumerate() {
            let Some(command) = hostile::value::<Command>(command) else { continue };
            let envelope = SessionCommand {
                client: hostile::number(session),
                sequence: hostile::number(session.get(1..).unwrap_or(&[])),
                body: command.encode(),
            };
            let response = state.apply(i as u64 + 1, &envelope.encode());
            if let Ok(response) = Sessions::<KvState>::decode_response(&response) {
                let _ = Response::decode(&response);
            }
        }
        if let Some(query) = hostile::value::<Query>(&query) {
            let _ = Response::decode(&state.query(&query.encode()));
        }
    }
}
