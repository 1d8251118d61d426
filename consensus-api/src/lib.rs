//! # consensus-api: the shared vocabulary of the toolkit
//!
//! Every protocol in this workspace (Paxos, Multi-Paxos, Raft, ZAB) is a
//! **deterministic, sans-IO state machine** implementing [`Core`]. It takes
//! messages ([`Core::step`]), logical clock ticks ([`Core::tick`]) and client
//! requests ([`Core::propose`], [`Core::read_barrier`],
//! [`Core::change_membership`]) as input, and hands out everything it wants
//! done as one owned [`Ready`] batch: what to persist, what to send, which
//! entries are committed and which client requests finished.
//!
//! Two drivers exist for any core:
//!
//! * the **runtime** (`consensus-runtime`): real time, a durable [`LogStore`],
//!   a [`Transport`] (QUIC), exposed to applications as [`ReplicatedLog`];
//! * the **simulator** (`consensus-sim`): virtual time, a seeded faulty
//!   network, crash / restart, invariant and linearizability checks.
//!
//! Both run the same loop, written once in [`handle_ready`] (the drivers
//! supply only the I/O through [`ReadyDriver`]); it is the contract of this
//! crate:
//!
//! ```text
//! loop {
//!     feed inputs: core.step(from, msg) / core.tick() / core.propose(cmd) ...
//!     if let Some(ready) = core.ready() {
//!         0. send ready.take_early_messages()      // a leader's own replication may leave first
//!         1. store.write(ready.write_batch())      // persist; fdatasync if ready.must_sync
//!         2. if let Some(s) = ready.snapshot: state_machine.restore(s)
//!         3. send ready.messages                   // only now: durable before visible
//!         4. apply ready.committed in order        // exactly once per incarnation
//!         5. finish ready.completed tickets        // with the state machine's responses
//!     }
//! }
//! ```
//!
//! Step 0 is the one exception to "durable before visible" (Raft thesis
//! §10.2.1): see [`Ready::early_messages`] and the [`Core`] contract.
//!
//! A core is rebuilt after a restart from what the store returned
//! ([`InitialState`]) and from nothing else ([`Core::restore`]).
//!
//! What every core needs and no protocol owns is written here once: the
//! configuration rules ([`CoreConfig::validate`]), the seeded randomized
//! timeout ([`CoreConfig::random_election_timeout`], [`random_ticks`]), the
//! ticket counter ([`TicketCounter`]), chunked snapshot transfer
//! ([`SnapshotChunks`], [`SnapshotTransfer`], [`snapshot_chunk`]) and the
//! postcard encoding of a core's own durable metadata ([`encode_postcard`],
//! [`decode_hard_state`], [`decode_protocol_state`]).
//!
//! This crate has no async runtime dependency: [`ReplicatedLog`] and
//! [`Transport`] are `async-trait` traits, implemented elsewhere with tokio.
#![deny(missing_docs)]

mod core;
mod driver;
mod error;
mod membership;
mod replicated;
mod sessions;
mod store;
mod toolkit;
mod transport;
mod types;

pub use crate::core::{
    Core, CoreConfig, InitialState, MessageClass, ProtocolMessage, Ready, WriteBatch,
};
pub use driver::{handle_ready, handle_ready_now, Handled, ReadyDriver, ReadyError};
pub use error::{ClientError, RecoverError, Rejected, StorageError, TransportError};
pub use membership::{Membership, MembershipError};
pub use replicated::{Applied, ReadConsistency, ReplicatedLog, StateMachine};
pub use sessions::{SessionCommand, SessionError, Sessions};
pub use store::LogStore;
pub use toolkit::{
    decode_hard_state, decode_protocol_state, encode_postcard, random_ticks, snapshot_chunk,
    ChunkError, SnapshotChunks, SnapshotTransfer, TicketCounter,
};
pub use transport::{Transport, TransportEvent};
pub use types::{Entry, LogIndex, NodeId, Payload, PeerProgress, Role, Snapshot, Status, Ticket};

/// Re-exported so that implementors use the same `Bytes` type.
pub use bytes::Bytes;
