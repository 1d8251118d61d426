//! Bad input at scale (issue 16): the coordination service's decoders.
//! Arbitrary bytes into `wire::decode` (every client, server, forward and
//! admin message), `Command::decode`, `CommandResponse::decode`,
//! `QueryAnswer::decode`, and into the state machine as log entries,
//! queries and snapshots; hostile but well-formed commands and queries
//! (session ids and timeouts at `u64::MAX`, odd paths, unknown sessions,
//! versions that lie) into the state machine. Typed errors (`Err`,
//! `Malformed`, `Refused`) only, never a panic.
//!
//! Cases per property: `PROPTEST_CASES` (default below). The long run is in
//! docs/testing.md, "Bad input at scale".

use std::sync::Arc;

use consensus::{Bytes, StateMachine};
use consensus_coord::machine::{CoordMachine, Hub, MachineQuery, QueryAnswer};
use consensus_coord::state::{Command, CommandResponse};
use consensus_coord::wire::{
    self, Admin, AdminReply, ClientFrame, Forward, Hello, Open, ServerFrame,
};
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

fn machine() -> CoordMachine {
    CoordMachine::new(Arc::new(Hub::new()))
}

/// Decodes `bytes` as `T`; a decoded value must re-encode and decode to
/// itself.
fn decodes<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = wire::decode::<T>(bytes) {
        let encoded = postcard::to_stdvec(&value).expect("encodes");
        prop_assert_eq!(wire::decode::<T>(&encoded), Ok(value));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wire_decoders_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        decodes::<Open>(&bytes)?;
        decodes::<Hello>(&bytes)?;
        decodes::<ClientFrame>(&bytes)?;
        decodes::<ServerFrame>(&bytes)?;
        decodes::<Forward>(&bytes)?;
        decodes::<Admin>(&bytes)?;
        decodes::<AdminReply>(&bytes)?;
        if let Some(command) = Command::decode(&bytes) {
            prop_assert_eq!(Command::decode(&command.encode()), Some(command));
        }
        let _ = CommandResponse::decode(&bytes);
        let _ = QueryAnswer::decode(&bytes);
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
            let _ = CommandResponse::decode(&response);
        }
        let _ = QueryAnswer::decode(&state.query(&Bytes::copy_from_slice(&query)));
        let mut fresh = machine();
        let _ = fresh.restore(index, &Bytes::copy_from_slice(&snapshot));
        let mut copy = machine();
        prop_assert!(copy.restore(index, &state.snapshot()).is_ok());
    }

    /// Hostile but well-formed commands and queries.
    #[test]
    fn state_machine_takes_hostile_commands(
        commands in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..96), 1..12),
        queries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 0..4),
    ) {
        let mut state = machine();
        let mut index = 0;
        for entropy in &commands {
            let Some(command) = hostile::value::<Command>(entropy) else { continue };
            index += 1;
            let _ = CommandResponse::decode(&state.apply(index, &command.encode()));
        }
        for entropy in &queries {
            if let Some(query) = hostile::value::<MachineQuery>(entropy) {
                let _ = QueryAnswer::decode(&state.query(&query.encode()));
            }
        }
        let mut copy = machine();
        prop_assert!(copy.restore(index, &state.snapshot()).is_ok());
    }
}
