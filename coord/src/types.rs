//! The vocabulary of the coordination service: znode metadata, create
//! modes, multi-op transactions, errors and watch events. Shared by the
//! state machine, the wire protocol and the client.

use bytes::Bytes;
use consensus::LogIndex;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A coordination session's id: the log index of the entry that created it
/// (unique and never reused).
pub type SessionId = u64;

/// Largest data a znode may hold (1 MiB, ZooKeeper's `jute.maxbuffer`).
/// The state machine enforces it; a server may enforce a smaller limit.
pub const DATA_BYTES_MAX: usize = 1 << 20;

/// Longest path accepted, in bytes.
pub const PATH_BYTES_MAX: usize = 1024;

/// Most operations in one multi-op transaction.
pub const MULTI_OPS_MAX: usize = 1024;

/// How a znode is created.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreateMode {
    /// Lives until deleted.
    Persistent,
    /// Deleted when the creating session ends; cannot have children.
    Ephemeral,
    /// Persistent, with a zero-padded, monotonically increasing counter of
    /// the parent appended to the name (`c_` becomes `c_0000000007`).
    PersistentSequential,
    /// Ephemeral and sequential: the building block of elections and locks.
    EphemeralSequential,
}

impl CreateMode {
    /// The mode for the CLI flags `-e` and `-s`.
    pub fn from_flags(ephemeral: bool, sequential: bool) -> CreateMode {
        match (ephemeral, sequential) {
            (false, false) => CreateMode::Persistent,
            (true, false) => CreateMode::Ephemeral,
            (false, true) => CreateMode::PersistentSequential,
            (true, true) => CreateMode::EphemeralSequential,
        }
    }

    /// True for the ephemeral modes.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// True for the sequential modes.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential | CreateMode::EphemeralSequential
        )
    }
}

/// A znode's metadata. Log indexes play the part of ZooKeeper's zxids: there
/// are no wall-clock timestamps (the state machine has no clock).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Index of the entry that created the node (`czxid`).
    pub created: LogIndex,
    /// Index of the entry that last changed its data (`mzxid`).
    pub modified: LogIndex,
    /// Index of the entry that last added or removed a child (`pzxid`).
    pub children_modified: LogIndex,
    /// Data version: 0 at creation, +1 per `set`.
    pub version: u32,
    /// Children version: +1 per child added or removed.
    pub children_version: u32,
    /// The owning session of an ephemeral node, 0 for persistent nodes.
    pub ephemeral_owner: SessionId,
    /// Bytes of data.
    pub data_length: u32,
    /// Number of children.
    pub children: u32,
}

/// One operation of a write or of a multi-op transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Creates `path` (for sequential modes, `path` is the prefix).
    Create {
        /// Path (or prefix).
        path: String,
        /// Initial data.
        data: Bytes,
        /// Persistent / ephemeral / sequential.
        mode: CreateMode,
    },
    /// Deletes `path` if it has no children (and has `version`, if given).
    Delete {
        /// Path.
        path: String,
        /// Required data version, `None` for any.
        version: Option<u32>,
    },
    /// Replaces the data of `path` (if it has `version`, if given).
    SetData {
        /// Path.
        path: String,
        /// New data.
        data: Bytes,
        /// Required data version, `None` for any.
        version: Option<u32>,
    },
    /// Only in a multi: requires `path` to exist (with `version`, if given).
    Check {
        /// Path.
        path: String,
        /// Required data version, `None` for any.
        version: Option<u32>,
    },
}

impl Op {
    /// The path the operation is about.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }
}

/// What one successful operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// The node was created at `path` (with the sequence suffix, if any).
    Created {
        /// The actual path.
        path: String,
        /// Its metadata.
        stat: Stat,
    },
    /// The node was deleted.
    Deleted,
    /// The data was replaced.
    Set(Stat),
    /// The check passed.
    Checked,
}

/// Why an operation failed (ZooKeeper's error codes, with the path).
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CoordError {
    /// The node does not exist (or, for a create, its parent does not).
    #[error("no node {0}")]
    NoNode(String),
    /// The node already exists.
    #[error("node {0} already exists")]
    NodeExists(String),
    /// The node's version is not the one required.
    #[error("bad version for {path}: expected {expected}, found {actual}")]
    BadVersion {
        /// The node.
        path: String,
        /// Required version.
        expected: u32,
        /// Current version.
        actual: u32,
    },
    /// The node has children and cannot be deleted.
    #[error("node {0} has children")]
    NotEmpty(String),
    /// Ephemeral nodes cannot have children.
    #[error("{0} is ephemeral and cannot have children")]
    NoChildrenForEphemerals(String),
    /// The path is malformed.
    #[error("bad path {path:?}: {reason}")]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The data exceeds the limit.
    #[error("data of {size} bytes exceeds the limit of {max} bytes")]
    DataTooLarge {
        /// Data size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The request is not valid (a `Check` outside a multi, an empty multi...).
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The session has expired or was closed; its ephemerals are gone.
    #[error("session {0:#x} has expired")]
    SessionExpired(SessionId),
    /// The request is older than the session's last one (a late duplicate).
    #[error("stale request: sequence {sequence} is below the session's last {last}")]
    Stale {
        /// The request's sequence number.
        sequence: u64,
        /// The session's last applied sequence number.
        last: u64,
    },
    /// A log entry does not decode (never produced by this crate's servers).
    #[error("malformed command")]
    Malformed,
}

/// A multi-op transaction failed: nothing was applied. `index` is the
/// position of the first failing operation.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("operation {index} of the transaction failed: {error}")]
pub struct MultiError {
    /// The failing operation's position.
    pub index: usize,
    /// Why it failed.
    pub error: CoordError,
}

/// What happened to a watched node. Events carry no data: a correct recipe
/// re-reads after a watch fires.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The node was created (an `exists` watch on an absent node).
    NodeCreated,
    /// The node was deleted.
    NodeDeleted,
    /// The node's data changed.
    NodeDataChanged,
    /// A child was added or removed.
    NodeChildrenChanged,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventKind::NodeCreated => "created",
            EventKind::NodeDeleted => "deleted",
            EventKind::NodeDataChanged => "data-changed",
            EventKind::NodeChildrenChanged => "children-changed",
        })
    }
}

/// A one-shot watch notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// The watched path.
    pub path: String,
    /// The log index of the change that fired it (0 when fired on
    /// re-registration after a reconnect, for a change the client missed).
    pub index: LogIndex,
}

/// The class of a watch: data watches (`get -w`, `exists -w`) fire on
/// create / delete / data change of the node; child watches (`ls -w`) fire on
/// children changes and on deletion of the node.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WatchKind {
    /// Set by `get -w` on an existing node.
    Data,
    /// Set by `exists -w` (the node may be absent).
    Exist,
    /// Set by `ls -w`.
    Child,
}
