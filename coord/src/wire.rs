//! The client protocol on the wire (QUIC, TLS, ALPN `consensus-coord/1`).
//!
//! Every stream carries length-prefixed postcard frames (a `u32`
//! little-endian length, then the bytes). The first frame of a stream is an
//! [`Open`]:
//!
//! * [`Open::Session`]: the client's **session stream**, one per connection
//!   and long-lived. The server answers with a [`HelloReply`], then the
//!   client sends [`ClientFrame`]s (requests and pings) and the server sends
//!   [`ServerFrame`]s: replies, pongs, watch events and the session-expired
//!   notice — all on this one ordered stream, so a client sees a watch event
//!   before any reply that reflects the change behind it (per-session FIFO,
//!   ZooKeeper's ordering guarantee).
//! * [`Open::ForwardPipe`]: a server forwarding writes and sync barriers to
//!   the leader's server. The rest of the stream is a pipe
//!   (`consensus_service::pipe`): one long-lived stream per pair of nodes,
//!   many [`Forward`] requests outstanding at once, each answered by a
//!   [`ForwardReply`] under its request id. Allowed only to connections
//!   that presented a node certificate of the cluster CA.
//! * [`Open::Admin`]: a one-shot status or inspection request.

use bytes::Bytes;
use consensus::{ClientError, LogIndex, NodeId, Role};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::state::{CommandResponse, SessionEnd, Write};
use crate::types::{CoordError, SessionId, Stat, WatchEvent, WatchKind};

/// ALPN of the coordination client protocol.
pub const COORD_ALPN: &[u8] = b"consensus-coord/1";

/// Largest frame accepted (a frame above it closes the stream).
pub const FRAME_BYTES_MAX: usize = 4 << 20;

/// The first frame of every stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Open {
    /// A client's session stream.
    Session(Hello),
    /// A server-to-server forwarding pipe (see the module docs).
    ForwardPipe,
    /// A status / inspection request.
    Admin(Admin),
    /// A membership command (`consensus-coord member ...`), answered with
    /// one [`MemberReply`] frame. Refused unless the cluster file has an
    /// `[operator] token_file` and the request carries its secret.
    Member(consensus_service::members::MemberRequest),
    /// A backup step (`consensus-coord snapshot save`), answered with one
    /// [`BackupReply`](consensus_service::backup::BackupReply) frame. Refused
    /// unless the cluster file has an `[operator] token_file` and the
    /// request carries its secret.
    Backup(consensus_service::backup::BackupRequest),
}

/// The answer to [`Open::Member`].
pub type MemberReply =
    Result<consensus_service::members::MemberView, consensus_service::members::MemberError>;

/// Opens (session 0) or resumes a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The session to resume, or 0 to create one.
    pub session: SessionId,
    /// The client's secret: proves ownership on resume; makes creation
    /// idempotent.
    pub secret: u64,
    /// Requested timeout (creation only).
    pub timeout_ms: u64,
    /// The highest log index the client has seen: the server waits until
    /// it has applied it, so a reconnect never goes back in time.
    pub last_seen: LogIndex,
    /// Watches to re-register after a reconnect: each fires at once if its
    /// node changed after `last_seen`.
    pub watches: Vec<(WatchKind, String)>,
}

/// A successful attach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    /// The session.
    pub session: SessionId,
    /// Its timeout (clamped by the service).
    pub timeout_ms: u64,
    /// The server's applied index when it attached.
    pub index: LogIndex,
    /// The server's node id.
    pub node: NodeId,
}

/// The server's answer to a [`Hello`].
pub type HelloReply = Result<Attached, ServiceError>;

/// A read or write of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Data and stat of a node (optionally leaving a data watch).
    Get {
        /// Path.
        path: String,
        /// Leave a data watch.
        watch: bool,
    },
    /// Stat of a node if it exists (optionally leaving an exist watch,
    /// also when it does not exist).
    Exists {
        /// Path.
        path: String,
        /// Leave a watch.
        watch: bool,
    },
    /// Children of a node (optionally leaving a child watch).
    Children {
        /// Path.
        path: String,
        /// Leave a child watch.
        watch: bool,
    },
    /// Brings the connected server up to date with the leader (ZooKeeper's
    /// `sync`): replies once it applied every write committed before.
    Sync,
    /// A write (applied once per sequence number).
    Write {
        /// The session's sequence number.
        sequence: u64,
        /// The write.
        write: Write,
    },
}

impl Request {
    /// True for writes.
    pub fn is_write(&self) -> bool {
        matches!(self, Request::Write { .. })
    }

    /// The operation's name, the `op` label of the client request metrics.
    pub fn op(&self) -> &'static str {
        use crate::types::Op;
        match self {
            Request::Get { .. } => "get",
            Request::Exists { .. } => "exists",
            Request::Children { .. } => "children",
            Request::Sync => "sync",
            Request::Write { write, .. } => match write {
                Write::Op(Op::Create { .. }) => "create",
                Write::Op(Op::Delete { .. }) => "delete",
                Write::Op(Op::SetData { .. }) => "set_data",
                Write::Op(Op::Check { .. }) => "check",
                Write::Multi(_) => "multi",
                Write::Close => "close",
            },
        }
    }
}

/// What a client sends on its session stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Keep-alive (the server turns pings into `Touch` heartbeats).
    Ping,
    /// A request; replies carry the same `id`.
    Request {
        /// Client-chosen id.
        id: u64,
        /// Run a sync barrier first (a linearizable read).
        linearizable: bool,
        /// The request.
        request: Request,
    },
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// `Get`.
    Data {
        /// The data.
        data: Bytes,
        /// Its metadata.
        stat: Stat,
    },
    /// `Exists`.
    Exists(Option<Stat>),
    /// `Children`.
    Children {
        /// Child names, sorted.
        children: Vec<String>,
        /// The parent's metadata.
        stat: Stat,
    },
    /// `Sync`.
    Synced,
    /// `Write`: the state machine's response.
    Written(CommandResponse),
}

/// What a server sends on a session stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The reply to request `id`.
    Reply {
        /// The request id.
        id: u64,
        /// The server's applied index the reply reflects.
        index: LogIndex,
        /// The result.
        result: Result<Answer, ServiceError>,
    },
    /// Answer to a ping.
    Pong,
    /// A watch fired.
    Event(WatchEvent),
    /// The session ended (expired or closed elsewhere); the stream closes.
    SessionExpired,
}

/// A forwarded request (server to the leader's server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    /// Append this command; reply `(index, state machine response)`.
    Append(Bytes),
    /// Run a read barrier; reply the index.
    Barrier,
}

/// What a forwarded request did on the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forwarded {
    /// [`Forward::Append`]: committed at `index`, with the state machine's
    /// response.
    Appended {
        /// Where the command was committed.
        index: LogIndex,
        /// The state machine's response.
        response: Bytes,
    },
    /// [`Forward::Barrier`]: every write committed before the request is at
    /// or below `index`.
    Barrier {
        /// The barrier's index.
        index: LogIndex,
    },
}

/// The answer to a [`Forward`] request (a request that does not decode is
/// answered `Err(ServiceError::Invalid)`).
pub type ForwardReply = Result<Forwarded, ServiceError>;

/// Status and inspection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admin {
    /// The node's report.
    Status,
    /// What this replica knows of a session.
    Session(SessionId),
    /// A node's stat on this replica (no watch, possibly stale).
    Exists(String),
}

/// A node's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node id.
    pub id: NodeId,
    /// Protocol name.
    pub protocol: String,
    /// Role.
    pub role: Role,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// Term / ballot / epoch.
    pub epoch: u64,
    /// Commit index.
    pub commit_index: LogIndex,
    /// Applied index of the coordination state.
    pub applied_index: LogIndex,
    /// Znodes (including `/`).
    pub znodes: u64,
    /// Live sessions.
    pub sessions: u64,
    /// Client connections to this server.
    pub connections: u64,
    /// Whether this node currently proposes session expiries.
    pub expirer: bool,
    /// CRC32C of the state (equal on replicas at equal applied index).
    pub digest: u32,
}

/// What a replica knows of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    /// The replica's applied index.
    pub applied: LogIndex,
    /// True if the session is live here.
    pub alive: bool,
    /// Its ephemerals (live sessions).
    pub ephemerals: Vec<String>,
    /// How it ended (recently ended sessions).
    pub end: Option<SessionEnd>,
}

/// Reply to an [`Admin`] request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminReply {
    /// [`Admin::Status`].
    Status(Box<NodeReport>),
    /// [`Admin::Session`].
    Session(SessionReport),
    /// [`Admin::Exists`]: (applied index, stat).
    Exists(LogIndex, Option<Stat>),
    /// Failure.
    Error(ServiceError),
}

/// Why a request failed at the service level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ServiceError {
    /// The operation itself failed (no node, bad version, ...).
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// This server cannot serve now (behind the client, no leader known);
    /// nothing was applied: try again or elsewhere.
    #[error("not ready: {0}")]
    NotReady(String),
    /// No quorum reachable; nothing was applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The write may or may not have been applied (retry with the same
    /// sequence number is safe).
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Only cluster nodes may forward.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is invalid (does not decode, too large).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The node is stopping.
    #[error("node stopped: {0}")]
    Stopped(String),
}

impl ServiceError {
    /// True when the request may have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, ServiceError::OutcomeUnknown(_))
    }

    /// The error's kind, the `result` label of
    /// `consensus_client_requests_total` (an operation's own failure, such
    /// as `no_node`, is an answer, not a fault of the service).
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::Coord(error) => match error {
                CoordError::NoNode(_) => "no_node",
                CoordError::NodeExists(_) => "node_exists",
                CoordError::BadVersion { .. } => "bad_version",
                CoordError::NotEmpty(_) => "not_empty",
                CoordError::NoChildrenForEphemerals(_) => "no_children_for_ephemerals",
                CoordError::BadPath { .. } => "bad_path",
                CoordError::DataTooLarge { .. } => "data_too_large",
                CoordError::BadArguments(_) => "bad_arguments",
                CoordError::SessionExpired(_) => "session_expired",
                CoordError::Stale { .. } => "stale",
                CoordError::Malformed => "malformed",
            },
            ServiceError::NotReady(_) => "not_ready",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::OutcomeUnknown(_) => "outcome_unknown",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::Invalid(_) => "invalid",
            ServiceError::Stopped(_) => "stopped",
        }
    }

    /// True when retrying (here or elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ServiceError::NotReady(_)
                | ServiceError::Unavailable(_)
                | ServiceError::OutcomeUnknown(_)
                | ServiceError::Stopped(_)
        )
    }
}

impl From<ClientError> for ServiceError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::NotLeader { hint } => {
                ServiceError::NotReady(format!("not the leader (leader: {hint:?})"))
            }
            ClientError::Unavailable => ServiceError::Unavailable("no quorum reachable".into()),
            ClientError::Overloaded => ServiceError::NotReady("overloaded".into()),
            ClientError::Timeout => ServiceError::OutcomeUnknown("timed out in the cluster".into()),
            ClientError::OutcomeUnknown { .. } => {
                ServiceError::OutcomeUnknown("leadership changed".into())
            }
            ClientError::Stopped(reason) => ServiceError::Stopped(reason),
            ClientError::Storage(reason) => {
                ServiceError::Stopped(format!("storage failure: {reason}"))
            }
            ClientError::Invalid(reason) => ServiceError::Invalid(reason),
        }
    }
}

/// One length-prefixed frame holding `value` (as [`write_frame`] sends it).
pub fn frame<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    append_frame(&mut out, value)?;
    Ok(out)
}

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding to a Vec cannot fail")
}

/// Decodes a value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(
    send: &mut quinn::SendStream,
    value: &T,
) -> Result<(), String> {
    let mut frame = Vec::new();
    append_frame(&mut frame, value)?;
    send.write_all(&frame).await.map_err(|e| e.to_string())
}

/// Appends one frame to `out`, so that many frames leave in one stream
/// write.
pub fn append_frame<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    // The body is encoded in place after a length placeholder (no
    // intermediate buffer per frame).
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut bytes =
        postcard::to_extend(value, std::mem::take(out)).expect("encoding to a Vec cannot fail");
    let length = bytes.len() - start - 4;
    if length > FRAME_BYTES_MAX {
        bytes.truncate(start);
        *out = bytes;
        return Err(format!("frame of {length} bytes exceeds {FRAME_BYTES_MAX}"));
    }
    bytes[start..start + 4].copy_from_slice(&(length as u32).to_le_bytes());
    *out = bytes;
    Ok(())
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
) -> Result<Option<T>, String> {
    let mut length = [0u8; 4];
    match recv.read_exact(&mut length).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    }
    let length = u32::from_le_bytes(length) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(format!("frame of {length} bytes exceeds {FRAME_BYTES_MAX}"));
    }
    let mut body = vec![0u8; length];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_the_body_length_little_endian_then_the_encoded_body() {
        let mut out = vec![9, 9];
        let values = [
            ServerFrame::Pong,
            ServerFrame::Reply {
                id: 3,
                index: 12,
                result: Ok(Answer::Synced),
            },
        ];
        let mut expected = out.clone();
        for value in &values {
            append_frame(&mut out, value).unwrap();
            let body = encode(value);
            expected.extend_from_slice(&(body.len() as u32).to_le_bytes());
            expected.extend_from_slice(&body);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn an_oversized_frame_is_refused_and_leaves_the_buffer_as_it_was() {
        let mut out = vec![1, 2, 3];
        let huge = Bytes::from(vec![0u8; FRAME_BYTES_MAX + 1]);
        assert!(append_frame(&mut out, &huge).is_err());
        assert_eq!(out, vec![1, 2, 3]);
    }
}
