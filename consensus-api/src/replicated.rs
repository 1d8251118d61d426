//! What applications see: the async [`ReplicatedLog`] and the deterministic
//! [`StateMachine`] it drives.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, RecoverError};
use crate::membership::Membership;
use crate::types::{LogIndex, NodeId, Status};

/// A command's result once it is committed and applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The log index the command was committed at.
    pub index: LogIndex,
    /// What [`StateMachine::apply`] returned for it.
    pub response: Bytes,
}

/// How a read is served.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// After a read barrier ([`ReplicatedLog::read_barrier`]): reflects every
    /// write acknowledged before the read started. The default.
    Linearizable,
    /// From this node's state machine as it is now: may miss recent writes
    /// (a follower read). Cheap; say so to users.
    Stale,
}

/// The application's deterministic state machine. The driver applies
/// committed commands in log order, exactly once per incarnation, and
/// restores it from snapshots.
///
/// `apply` must be deterministic: no clocks, no randomness, no hash-map
/// iteration order in its results (the seed's determinism pitfalls).
pub trait StateMachine: Send + 'static {
    /// Applies the command committed at `index` and returns the response
    /// handed to the proposer. Application-level failures (a failed
    /// compare-and-set) are encoded in the response, not raised.
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes;

    /// Answers a read-only query against the current state.
    fn query(&self, query: &Bytes) -> Bytes;

    /// Serializes the whole state (as of the last applied index).
    fn snapshot(&self) -> Bytes;

    /// Replaces the whole state with a snapshot taken at `index`.
    fn restore(&mut self, index: LogIndex, data: &Bytes) -> Result<(), RecoverError>;
}

/// A replicated log as an application uses it, with the same behaviour
/// whichever protocol runs underneath.
///
/// Errors are typed ([`ClientError`]): `NotLeader { hint }` (retry there, no
/// effect), `Unavailable` (no quorum; returned fast on a minority),
/// `Timeout` / `OutcomeUnknown` (maybe applied: retry with the same client
/// session sequence number, see [`Sessions`](crate::Sessions)), `Stopped`,
/// `Storage`.
#[async_trait]
pub trait ReplicatedLog: Send + Sync {
    /// Replicates `command`; resolves once it is committed **and applied**
    /// on this node, with the state machine's response.
    async fn append(&self, command: Bytes) -> Result<Applied, ClientError>;

    /// Resolves with an index `i` once this node's state machine has applied
    /// `i` and `i` covers every write committed before the call.
    async fn read_barrier(&self) -> Result<LogIndex, ClientError>;

    /// Runs `query` against the state machine with the given consistency.
    async fn read(&self, query: Bytes, consistency: ReadConsistency) -> Result<Bytes, ClientError>;

    /// Moves the cluster to the stable configuration `to`; resolves once it
    /// is in force, with the index of the entry that completed the change.
    async fn change_membership(&self, to: Membership) -> Result<LogIndex, ClientError>;

    /// The latest status of the core.
    fn status(&self) -> Status;

    /// The leader this node believes in.
    fn leader(&self) -> Option<NodeId> {
        self.status().leader
    }

    /// Stops the node cleanly: pending requests finish with
    /// [`ClientError::Stopped`], files are synced and closed.
    async fn shutdown(&self) -> Result<(), ClientError>;
}
