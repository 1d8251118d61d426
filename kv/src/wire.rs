//! The client API on the wire: the service edge's pipelined protocol
//! ([`consensus_service::pipe`]): one long-lived QUIC stream per connection
//! carrying frames with request ids; each request frame holds one
//! postcard-encoded [`Request`], each answer frame one [`Reply`] (an
//! [`AdminReply`] for [`Request::Admin`]). Many requests may be in flight on
//! one connection; answers come in completion order.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus::{ClientError, LogIndex, NodeId, Role};
use serde::{Deserialize, Serialize};

use crate::state::Response;

pub use consensus_service::backup::{BackupReply, BackupRequest};
pub use consensus_service::members::{
    MemberAddrs, MemberCommand, MemberError, MemberRequest, MemberView,
};

/// ALPN of the client API (version 2: pipelined frames on one stream).
pub const CLIENT_ALPN: &[u8] = b"consensus-kv/2";

/// Largest request or reply accepted on the wire (values are limited
/// separately, by the cluster's `limits.value_bytes_max`).
pub const MESSAGE_BYTES_MAX: usize = 8 << 20;

/// A client session: retries of one command reuse its `sequence`, so the
/// replicated state machine applies it once.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The client's random id.
    pub client: u64,
    /// Increases by one per new command of this client.
    pub sequence: u64,
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets a key.
    Put {
        /// Session header.
        session: Session,
        /// The key.
        key: String,
        /// The value.
        value: Bytes,
    },
    /// Removes a key.
    Delete {
        /// Session header.
        session: Session,
        /// The key.
        key: String,
    },
    /// Compare-and-set.
    Cas {
        /// Session header.
        session: Session,
        /// The key.
        key: String,
        /// Required current value (`None`: absent).
        expected: Option<Bytes>,
        /// New value (`None`: delete).
        new: Option<Bytes>,
    },
    /// Reads a key: linearizable unless `stale`.
    Get {
        /// The key.
        key: String,
        /// Serve from this node's state as it is (may be stale).
        stale: bool,
    },
    /// This node's view of the cluster.
    Status,
    /// A fault-injection command for tests (answered with an
    /// [`AdminReply`], not a [`Reply`]). Refused unless the node's
    /// configuration says `[testing] fault_injection = true` and the
    /// request carries the secret of `testing.admin_token_file`.
    Admin(AdminRequest),
    /// A membership command (`consensus-kv member ...`), answered with a
    /// [`MemberReply`], not a [`Reply`]. Refused unless the cluster file
    /// has an `[operator] token_file` and the request carries its secret.
    Member(MemberRequest),
    /// A backup step (`consensus-kv snapshot save`), answered with a
    /// [`BackupReply`], not a [`Reply`]. Refused unless the cluster file
    /// has an `[operator] token_file` and the request carries its secret.
    Backup(BackupRequest),
}

/// The answer to [`Request::Member`].
pub type MemberReply = Result<MemberView, MemberError>;

/// A directed network link `from → to` between two nodes.
pub type Link = (NodeId, NodeId);

/// An authenticated admin request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    /// The shared secret (the content of `testing.admin_token_file`).
    pub token: String,
    /// What to do.
    pub command: AdminCommand,
}

impl std::fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        consensus_service::members::debug_redacted(f, "AdminRequest", &self.command)
    }
}

/// What an admin request asks a node to do to its own transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Replaces the set of blocked links: messages on a listed link are
    /// dropped by this node when it is the sender or the receiver. Send the
    /// same set to every node to install a partition cluster-wide.
    SetBlocked {
        /// The links to block (those not involving this node are kept but
        /// have no effect here).
        links: Vec<Link>,
    },
    /// Removes every blocked link (same as an empty `SetBlocked`).
    Heal,
    /// Reports the blocked links without changing them.
    Show,
}

/// Largest number of links one admin request may carry.
pub const ADMIN_LINKS_MAX: usize = 4096;

/// The answer to an admin request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// Done; the links now blocked on the answering node.
    Done {
        /// The node that answered.
        node: NodeId,
        /// Its blocked links, sorted.
        blocked: Vec<Link>,
    },
    /// Refused; nothing changed.
    Refused(AdminRefusal),
}

/// Why an admin request was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdminRefusal {
    /// The node's configuration does not enable fault injection.
    #[error(
        "fault injection is disabled on node {node}: admin commands are accepted only with \
         `[testing] fault_injection = true` in the cluster configuration (tests only)"
    )]
    Disabled {
        /// The node.
        node: NodeId,
    },
    /// The request did not carry the right secret.
    #[error(
        "unauthorized: the admin token does not match node {node}'s `testing.admin_token_file`"
    )]
    Unauthorized {
        /// The node.
        node: NodeId,
    },
    /// The command is malformed (unknown node, link to itself, too many links).
    #[error("invalid admin command: {0}")]
    Invalid(String),
}

/// A node's report for `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node.
    pub id: NodeId,
    /// Protocol name.
    pub protocol: String,
    /// Role.
    pub role: Role,
    /// Leader it believes in.
    pub leader: Option<NodeId>,
    /// Term / ballot / epoch.
    pub epoch: u64,
    /// Commit index.
    pub commit_index: LogIndex,
    /// Applied index.
    pub applied_index: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// Snapshot index.
    pub snapshot_index: LogIndex,
    /// On a leader: entries each follower is behind.
    pub follower_lag: BTreeMap<NodeId, u64>,
    /// Keys in the state machine.
    pub keys: u64,
    /// CRC32C over the ordered state (equal on replicas at equal applied index).
    pub state_crc: u32,
    /// Index the state digest was taken at.
    pub state_applied: LogIndex,
    /// Commit latency p50 / p99 (µs) seen by this node's clients.
    pub commit_p50_us: u64,
    /// Commit latency p99 (µs).
    pub commit_p99_us: u64,
    /// fdatasync p50 (µs).
    pub fsync_p50_us: u64,
    /// Elections / epoch changes seen.
    pub epoch_changes: u64,
    /// Why the node stopped accepting work, if it did (a storage failure
    /// such as a full disk: the process keeps answering `status`).
    pub stopped: Option<String>,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ServiceError {
    /// Ask the leader instead (no effect here).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
        /// Where the leader serves clients, if this node knows (from the
        /// cluster file or the replicated address book): a client whose
        /// cluster file does not list a member added since learns it here.
        leader_addr: Option<std::net::SocketAddr>,
    },
    /// No quorum reachable from this node (no effect).
    #[error("unavailable: no quorum reachable")]
    Unavailable,
    /// Too much pending work (no effect); retry with backoff.
    #[error("overloaded")]
    Overloaded,
    /// The outcome is unknown: it may or may not have been applied.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The node is stopping or stopped.
    #[error("node stopped: {0}")]
    Stopped(String),
    /// The node's storage failed; it accepts no more work.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The value exceeds the cluster's limit (nothing written).
    #[error("value of {size} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Value size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The session was evicted or the request is older than the client's
    /// last one.
    #[error("session error: {0}")]
    Session(String),
    /// The request did not decode or is otherwise invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl ServiceError {
    /// True when the request may have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, ServiceError::OutcomeUnknown(_))
    }

    /// The error's kind, the `result` label of
    /// `consensus_client_requests_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::NotLeader { .. } => "not_leader",
            ServiceError::Unavailable => "unavailable",
            ServiceError::Overloaded => "overloaded",
            ServiceError::OutcomeUnknown(_) => "outcome_unknown",
            ServiceError::Stopped(_) => "stopped",
            ServiceError::Storage(_) => "storage",
            ServiceError::ValueTooLarge { .. } => "value_too_large",
            ServiceError::Session(_) => "session",
            ServiceError::Invalid(_) => "invalid",
        }
    }
}

impl Request {
    /// The operation's name, the `op` label of the client request metrics.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Put { .. } => "put",
            Request::Delete { .. } => "delete",
            Request::Cas { .. } => "cas",
            Request::Get { .. } => "get",
            Request::Status => "status",
            Request::Admin(_) => "admin",
            Request::Member(_) => "member",
            Request::Backup(_) => "backup",
        }
    }
}

impl Reply {
    /// `ok`, or the error's kind (the `result` label of the client request
    /// metrics).
    pub fn result_kind(&self) -> &'static str {
        match self {
            Reply::Error(error) => error.kind(),
            _ => "ok",
        }
    }
}

impl From<ClientError> for ServiceError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::NotLeader { hint } => ServiceError::NotLeader {
                leader: hint,
                leader_addr: None,
            },
            ClientError::Unavailable => ServiceError::Unavailable,
            ClientError::Overloaded => ServiceError::Overloaded,
            ClientError::Timeout => ServiceError::OutcomeUnknown("timed out in the cluster".into()),
            ClientError::OutcomeUnknown { .. } => {
                ServiceError::OutcomeUnknown("leadership changed".into())
            }
            ClientError::Stopped(reason) => ServiceError::Stopped(reason),
            ClientError::Storage(reason) => ServiceError::Storage(reason),
            ClientError::Invalid(reason) => ServiceError::Invalid(reason),
        }
    }
}

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A key-value result.
    Kv(Response),
    /// A status report.
    Status(Box<NodeReport>),
    /// A failure.
    Error(ServiceError),
}

/// Encodes a request or reply.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(postcard::to_allocvec(value).expect("encoding to a Vec cannot fail"))
}

/// Decodes a request or reply.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}
