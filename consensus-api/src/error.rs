//! Typed errors, one small enum per layer.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::membership::MembershipError;
use crate::types::{LogIndex, NodeId};

/// Why a core refused a caller-facing request (`propose`, `read_barrier`,
/// `change_membership`, `compact`), or why an accepted one finished without
/// success. Each variant carries what the caller needs next.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Rejected {
    /// This node cannot serve the request; `hint` is the leader it believes
    /// in, if any. The request had no effect.
    #[error("not the leader (leader hint: {hint:?})")]
    NotLeader {
        /// The node believed to be leader.
        hint: Option<NodeId>,
    },
    /// No quorum is reachable (a leader on the minority side of a
    /// partition). Returned quickly; the request had no effect.
    #[error("no quorum reachable")]
    Unavailable,
    /// Too much work is pending (uncommitted entries or queued requests);
    /// retry later with backoff. The request had no effect.
    #[error("overloaded: too many pending requests")]
    Overloaded,
    /// The node lost its role (leadership changed, the node was removed)
    /// after accepting the request: it **may or may not** take effect. A
    /// client must treat it as maybe-applied (and rely on sessions to make a
    /// retry idempotent).
    #[error("outcome unknown: leadership changed while the request was pending (hint: {hint:?})")]
    OutcomeUnknown {
        /// The node believed to be leader now.
        hint: Option<NodeId>,
    },
    /// A membership change is already in progress.
    #[error("a membership change is already in progress")]
    ChangeInProgress,
    /// The requested membership is malformed.
    #[error("invalid membership: {0}")]
    InvalidMembership(MembershipError),
    /// `compact` was asked for an index that is not applied, or already
    /// covered by a snapshot.
    #[error("cannot compact at {index}: applied {applied}, snapshot at {snapshot}")]
    InvalidCompaction {
        /// Requested index.
        index: LogIndex,
        /// What the core has applied.
        applied: LogIndex,
        /// The current snapshot index.
        snapshot: LogIndex,
    },
    /// The protocol does not offer this operation.
    #[error("not supported by this protocol: {what}")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
}

/// Why a core could not be rebuilt from its stored state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecoverError {
    /// The hard state bytes do not decode.
    #[error("hard state does not decode: {0}")]
    CorruptHardState(String),
    /// The snapshot's protocol state does not decode or contradicts the log.
    #[error("snapshot is unusable: {0}")]
    CorruptSnapshot(String),
    /// The log contradicts itself or the hard state.
    #[error("log is inconsistent: {0}")]
    InconsistentLog(String),
    /// The configuration is unusable (e.g. the node id is 0).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// Errors of a [`LogStore`](crate::LogStore). I/O errors are values; after a
/// failed write or sync a store refuses further writes ([`StorageError::Failed`]):
/// a failed fsync is never silently retried.
#[derive(Debug, Error)]
pub enum StorageError {
    /// An operating-system I/O error.
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        /// What the store was doing ("writing", "syncing", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The device is full; nothing already synced was lost.
    #[error("no space left on device while writing {path}; free space and restart the node")]
    DiskFull {
        /// The file concerned.
        path: PathBuf,
    },
    /// A record that is not at the tail of the log fails its checksum or
    /// does not decode: bit rot or tampering. Never skipped silently.
    #[error("corrupt record in {segment} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment (or metadata / snapshot file).
        segment: PathBuf,
        /// Byte offset of the bad record within it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A batch that breaks the log's shape (a programmer error in a core or
    /// driver, reported as a value so that a node stops cleanly).
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// An earlier write or sync failed; the store refuses further use until
    /// it is reopened (recovery then returns exactly what was synced).
    #[error("the store stopped after an earlier failure: {0}")]
    Failed(String),
    /// The data directory belongs to another node or cluster, or was written
    /// by an unknown format version.
    #[error("data directory mismatch: {0}")]
    Mismatch(String),
}

/// Errors of a [`Transport`](crate::Transport).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransportError {
    /// The destination is not a known peer.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The peer's queue is full; the message was dropped (protocols retransmit).
    #[error("send queue to peer {0} is full; message dropped")]
    QueueFull(NodeId),
    /// A frame exceeds the configured limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Size of the offending frame.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A frame does not decode as a message of this protocol.
    #[error("frame does not decode: {0}")]
    Decode(String),
    /// The peer's handshake does not match (cluster id, protocol, version,
    /// node id).
    #[error("handshake mismatch on {field}: ours {ours}, theirs {theirs}")]
    HandshakeMismatch {
        /// Which field differs.
        field: &'static str,
        /// Our value.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// TLS or certificate failure (wrong CA, unknown node identity).
    #[error("TLS / identity error: {0}")]
    Tls(String),
    /// A connection-level failure.
    #[error("connection error: {0}")]
    Connection(String),
    /// The transport has been shut down.
    #[error("transport is shut down")]
    Closed,
}

/// Errors an application sees from a [`ReplicatedLog`](crate::ReplicatedLog).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ClientError {
    /// Send the request to `hint` instead. It had no effect here.
    #[error("not the leader (leader hint: {hint:?})")]
    NotLeader {
        /// The node believed to be leader.
        hint: Option<NodeId>,
    },
    /// No quorum is reachable from this node; fails fast on a minority.
    #[error("unavailable: no quorum reachable")]
    Unavailable,
    /// The request queue is full; retry with backoff. It had no effect.
    #[error("overloaded: retry later")]
    Overloaded,
    /// No answer in time: the outcome is **unknown** (the command may have
    /// been applied). Retry with the same session sequence number.
    #[error("timed out: outcome unknown")]
    Timeout,
    /// Leadership changed while the request was pending: the outcome is
    /// **unknown**. Retry with the same session sequence number.
    #[error("outcome unknown: leadership changed (leader hint: {hint:?})")]
    OutcomeUnknown {
        /// The node believed to be leader now.
        hint: Option<NodeId>,
    },
    /// The node has stopped (shut down, or halted after a storage failure).
    #[error("node stopped: {0}")]
    Stopped(String),
    /// Persisting failed on this node; it stops accepting work.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The request itself is invalid (bad membership, unsupported operation).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl ClientError {
    /// True when the request may or may not have taken effect.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout | ClientError::OutcomeUnknown { .. }
        )
    }
}

impl From<Rejected> for ClientError {
    fn from(rejected: Rejected) -> Self {
        match rejected {
            Rejected::NotLeader { hint } => ClientError::NotLeader { hint },
            Rejected::Unavailable => ClientError::Unavailable,
            Rejected::Overloaded => ClientError::Overloaded,
            Rejected::OutcomeUnknown { hint } => ClientError::OutcomeUnknown { hint },
            other @ (Rejected::ChangeInProgress
            | Rejected::InvalidMembership(_)
            | Rejected::InvalidCompaction { .. }
            | Rejected::Unsupported { .. }) => ClientError::Invalid(other.to_string()),
        }
    }
}

impl From<StorageError> for ClientError {
    fn from(error: StorageError) -> Self {
        ClientError::Storage(error.to_string())
    }
}
