//! Results of the convenience client operations of
//! [`Cluster`](crate::Cluster) (`write`, `cas`, `read`).

use consensus_api::{LogIndex, Rejected, SessionError};
use thiserror::Error;

use crate::kv::KvResponse;

/// What a convenience operation ended with.
pub type KvOutcome = Result<KvResponse, OpError>;

/// Why a convenience operation did not produce a state-machine answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum OpError {
    /// The core refused or abandoned the request.
    #[error("rejected: {0}")]
    Rejected(Rejected),
    /// The session layer refused the command.
    #[error("session error: {0}")]
    Session(SessionError),
    /// The command committed but this node did not apply it in this
    /// incarnation (it installed a snapshot covering it): the answer is
    /// unknown, retry with the same session sequence number to learn it.
    #[error("committed, but the response was not observed on this node")]
    ResponseLost,
    /// No answer within the allotted ticks.
    #[error("timed out")]
    Timeout,
}

/// A convenience operation waiting for its ticket (and, for reads, for the
/// node to apply the barrier index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PendingKv {
    Command,
    Read { key: String, at: Option<LogIndex> },
}
