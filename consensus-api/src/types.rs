//! Identifiers, log entries, snapshots and the status report of a core.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;

/// Identity of a node in a cluster. `0` is reserved and never a valid node id
/// (it is used on the wire to mean "no node").
pub type NodeId = u64;

/// Position in the replicated log, 1-based. `0` means "none" (an empty log,
/// nothing committed, nothing applied).
pub type LogIndex = u64;

/// What a log entry carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// An application command, opaque to the protocol; applied to the
    /// [`StateMachine`](crate::StateMachine) when committed.
    Command(Bytes),
    /// A protocol no-op: a Raft leader's first entry of its term, a Paxos
    /// gap filler, a read barrier slot. Committed like any entry, skipped by
    /// the state machine.
    Noop,
    /// A configuration change. When it takes effect (on append, on commit, or
    /// a window of slots later) is protocol-defined and documented by each
    /// protocol crate.
    Membership(Membership),
}

impl Payload {
    /// Bytes this payload occupies on the wire and on disk, approximately
    /// (used for batching limits, not for encoding).
    pub fn size_bytes(&self) -> usize {
        match self {
            Payload::Command(bytes) => bytes.len() + 8,
            Payload::Noop => 1,
            Payload::Membership(membership) => 8 + 8 * membership.node_count(),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Command(bytes) => write!(f, "Command({})", CompactBytes(bytes)),
            Payload::Noop => write!(f, "Noop"),
            Payload::Membership(membership) => write!(f, "Membership({membership})"),
        }
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Command(bytes) => write!(f, "{}", CompactBytes(bytes)),
            Payload::Noop => write!(f, "noop"),
            Payload::Membership(membership) => write!(f, "conf{membership}"),
        }
    }
}

/// Prints bytes as text when they are printable ASCII, else as short hex, so
/// golden test output stays readable.
struct CompactBytes<'a>(&'a Bytes);

impl fmt::Display for CompactBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            write!(f, "{:?}", String::from_utf8_lossy(bytes))
        } else {
            write!(f, "0x")?;
            for b in bytes.iter().take(16) {
                write!(f, "{b:02x}")?;
            }
            if bytes.len() > 16 {
                write!(f, "..({}B)", bytes.len())?;
            }
            Ok(())
        }
    }
}

/// One position of the replicated log.
///
/// `epoch` is the term (Raft), the ballot (Paxos, Multi-Paxos; encoded by the
/// protocol into a `u64` that orders like the ballot) or the epoch (ZAB) under
/// which the entry was *accepted*. Two entries with the same `index` and
/// `epoch` carry the same payload (every protocol here guarantees that).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, >= 1.
    pub index: LogIndex,
    /// Term / ballot / epoch under which the entry was accepted.
    pub epoch: u64,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// Approximate encoded size, for batching limits.
    pub fn size_bytes(&self) -> usize {
        16 + self.payload.size_bytes()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.index, self.epoch, self.payload)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A state-machine snapshot covering the log prefix `1..=index`.
///
/// A snapshot is only ever taken of a *committed* prefix. Installing one never
/// moves a node's commit or applied index backwards.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Last log index the snapshot includes.
    pub index: LogIndex,
    /// Epoch (term / ballot / epoch) of the entry at `index`.
    pub epoch: u64,
    /// The membership in force at `index` (what a node restored from this
    /// snapshot must use until later log entries change it).
    pub membership: Membership,
    /// Protocol-private metadata the core needs to resume from this snapshot
    /// (for example a pending configuration change window). Opaque outside
    /// the protocol crate; empty for most protocols.
    pub protocol_state: Bytes,
    /// The state machine's own serialized state
    /// ([`StateMachine::snapshot`](crate::StateMachine::snapshot)).
    pub data: Bytes,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Snapshot{{index: {}, epoch: {}, membership: {}, data: {}B}}",
            self.index,
            self.epoch,
            self.membership,
            self.data.len()
        )
    }
}

/// Handle for one caller-facing request (`propose`, `read_barrier`,
/// `change_membership`). Tickets are unique within one incarnation of a core
/// and increase; every ticket that was handed out is finished exactly once in
/// [`Ready::completed`](crate::Ready::completed), unless the node stops first.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ticket(pub u64);

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// The part a node currently plays.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (Raft follower, Multi-Paxos acceptor, ZAB follower).
    Follower,
    /// Seeking leadership (Raft candidate or pre-candidate, Multi-Paxos node
    /// in Phase 1, ZAB node in election / discovery / synchronization as
    /// prospective leader).
    Candidate,
    /// The established leader of `Status::epoch`: at most one node per
    /// epoch is ever in this role (a simulator invariant).
    Leader,
    /// A non-voting member that replicates the log.
    Learner,
    /// A member of a protocol without a distinguished leader (classic
    /// Paxos): every node proposes, accepts and learns.
    Peer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::Learner => "learner",
            Role::Peer => "peer",
        };
        f.write_str(name)
    }
}

/// What a leader knows of one peer's replication progress.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerProgress {
    /// Highest log index known to be stored durably on the peer.
    pub match_index: LogIndex,
    /// Ticks since the leader last heard from the peer.
    pub ticks_since_heard: u64,
}

/// A point-in-time report of a core, cheap to take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its current role.
    pub role: Role,
    /// The leader this node believes in, if any (`None` for classic Paxos).
    pub leader: Option<NodeId>,
    /// Current term / ballot / epoch (protocol-defined, monotone per node).
    pub epoch: u64,
    /// Highest log index known committed (chosen) by this node.
    pub commit_index: LogIndex,
    /// Highest log index handed out in [`Ready::committed`](crate::Ready::committed)
    /// (or covered by an installed snapshot).
    pub applied_index: LogIndex,
    /// Highest log index this node holds.
    pub last_index: LogIndex,
    /// Index of the last snapshot (0 when none).
    pub snapshot_index: LogIndex,
    /// Membership currently in force at this node.
    pub membership: Membership,
    /// Replication progress of each peer, filled on a leader (and on every
    /// classic Paxos peer, which has no leader: `match_index` is then the
    /// peer's chosen frontier).
    pub peers: BTreeMap<NodeId, PeerProgress>,
}
