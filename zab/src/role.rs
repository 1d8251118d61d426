//! The part a node plays, as enums with data: Looking (Phase 0), Following
//! and Leading (Phases 1-3, with the phase inside).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use consensus_api::{LogIndex, NodeId, Ticket};

use crate::election::Election;
use crate::message::Vote;
use crate::snapshot::{IncomingSnapshot, SnapshotSend};
use crate::zxid::Zxid;

/// ZooKeeper's server states, each with its own data.
#[derive(Debug)]
pub(crate) enum Role {
    /// Phase 0: Fast Leader Election.
    Looking(Election),
    /// Following a leader (Phases 1-3 from the follower's side).
    Following(FollowerState),
    /// Leading (Phases 1-3 from the leader's side); `StatusRole::Leader` (`consensus_api::Role`) in the
    /// status only once established.
    Leading(LeaderState),
}

impl Role {
    /// Leader: the progress of follower `from`, marked as heard from at
    /// `now` (any answer of the current epoch proves it alive). `None` when
    /// this node does not lead `epoch`, its phase is below `phase_min` (an
    /// answer it cannot use yet), or `from` does not follow it.
    pub(crate) fn heard_from(
        &mut self,
        from: NodeId,
        epoch: u64,
        phase_min: LeaderPhase,
        now: u64,
    ) -> Option<&mut FollowerProgress> {
        let Role::Leading(leader) = self else {
            return None;
        };
        if epoch != leader.epoch || leader.phase < phase_min {
            return None;
        }
        let progress = leader.followers.get_mut(&from)?;
        progress.heard_at = now;
        Some(progress)
    }
}

/// Where a follower is with its leader.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum FollowerPhase {
    /// Sent FOLLOWERINFO, waiting for LEADERINFO.
    Discovery,
    /// Accepted `epoch`; being synchronized, waiting for NEWLEADER.
    Synchronization {
        /// The leader's epoch.
        epoch: u64,
    },
    /// Acked NEWLEADER: `currentEpoch == epoch`; proposals flow.
    Broadcast {
        /// The leader's epoch.
        epoch: u64,
    },
}

impl FollowerPhase {
    /// The leader's epoch once known.
    pub fn epoch(self) -> Option<u64> {
        match self {
            FollowerPhase::Discovery => None,
            FollowerPhase::Synchronization { epoch } | FollowerPhase::Broadcast { epoch } => {
                Some(epoch)
            }
        }
    }
}

/// A follower's `sync()` waiting for its answer or for its commit point.
#[derive(Clone, Debug)]
pub(crate) struct FollowerRead {
    /// The caller's ticket.
    pub ticket: Ticket,
    /// The leader's commit point, once answered.
    pub target: Option<Zxid>,
}

/// State of a follower (or learner).
#[derive(Debug)]
pub(crate) struct FollowerState {
    /// The leader followed.
    pub leader: NodeId,
    /// The election's outcome, reported to looking peers.
    pub elected: Vote,
    /// Progress with the leader.
    pub phase: FollowerPhase,
    /// Whether this follower accepted the epoch on this connection.
    pub fresh: bool,
    /// Ticks since the leader was last heard.
    pub silence_ticks: u64,
    /// Ticks of silence after which the leader is considered lost.
    pub timeout_ticks: u64,
    /// Ticks since the last periodic resend.
    pub heartbeat_ticks: u64,
    /// A snapshot being received.
    pub incoming: Option<IncomingSnapshot>,
    /// Last "resend" report (zxid, tick), to report a gap once per heartbeat.
    pub last_resend: Option<(Zxid, u64)>,
    /// Pending `sync()`s by request number.
    pub reads: BTreeMap<u64, FollowerRead>,
    /// Next `sync()` request number.
    pub next_request: u64,
}

/// Leader phases (ZooKeeper's `Leader.lead()`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LeaderPhase {
    /// Collecting FOLLOWERINFO from a quorum.
    Discovery,
    /// LEADERINFO sent; collecting ACKEPOCH from a quorum.
    EpochAck,
    /// Synchronizing; collecting ACK of NEWLEADER from a quorum.
    Synchronization,
    /// Established: Phase 3.
    Broadcast,
}

/// What the leader is doing with one follower (ZooKeeper's
/// `LearnerHandler`).
#[derive(Debug)]
pub(crate) enum Stage {
    /// FOLLOWERINFO received; waiting for its ACKEPOCH.
    Connected,
    /// ACKEPOCH received before the discovery quorum; synchronization waits.
    EpochAcked {
        /// The follower's last zxid.
        report: Zxid,
    },
    /// TRUNC sent; waiting for the follower's new last zxid.
    Truncating {
        /// The follower's last zxid the TRUNC answers.
        follower_last: Zxid,
        /// The TRUNC point.
        to: Zxid,
    },
    /// SNAP in progress.
    Snapshotting(SnapshotSend),
    /// DIFF then NEWLEADER (not yet synced), or PROPOSALs (synced).
    Streaming,
}

/// The leader's view of one follower.
#[derive(Debug)]
pub(crate) struct FollowerProgress {
    /// What is being done with it.
    pub stage: Stage,
    /// It acked NEWLEADER in this epoch: its acks count toward commits.
    pub synced: bool,
    /// Its history equals the leader's through this index (durably).
    pub acked: LogIndex,
    /// Entries sent through this index.
    pub sent: LogIndex,
    /// Last index of each unacknowledged entries message, oldest first.
    pub inflight: VecDeque<LogIndex>,
    /// Index whose zxid the NEWLEADER sent carried.
    pub newleader_sent: Option<LogIndex>,
    /// Commit index last sent in a COMMIT.
    pub commit_sent: LogIndex,
    /// Tick at which it was last heard.
    pub heard_at: u64,
    /// `acked` at the previous heartbeat (no progress -> resend).
    pub acked_at_heartbeat: LogIndex,
    /// Snapshot bytes acked at the previous heartbeat.
    pub snapshot_acked_at_heartbeat: u64,
    /// Last go-back (acked, tick), to go back once per heartbeat per point.
    pub last_go_back: Option<(LogIndex, u64)>,
    /// Highest ping round it answered.
    pub round: u64,
}

impl FollowerProgress {
    /// A follower that just sent FOLLOWERINFO.
    pub fn connected(now: u64) -> FollowerProgress {
        FollowerProgress {
            stage: Stage::Connected,
            synced: false,
            acked: 0,
            sent: 0,
            inflight: VecDeque::new(),
            newleader_sent: None,
            commit_sent: 0,
            heard_at: now,
            acked_at_heartbeat: 0,
            snapshot_acked_at_heartbeat: 0,
            last_go_back: None,
            round: 0,
        }
    }
}

/// Where a read barrier came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadOrigin {
    /// `read_barrier` on the leader itself.
    Local(Ticket),
    /// A follower's SYNC.
    Remote {
        /// The follower.
        node: NodeId,
        /// Its request number.
        request: u64,
    },
}

/// A read barrier at the leader: confirmed once a quorum answered a ping
/// round started after it.
#[derive(Clone, Debug)]
pub(crate) struct LeaderRead {
    /// Who asked.
    pub origin: ReadOrigin,
    /// Commit index when it arrived.
    pub index: LogIndex,
    /// Zxid at `index`.
    pub zxid: Zxid,
    /// The ping round that must be answered by a quorum.
    pub round: u64,
    /// A quorum answered.
    pub confirmed: bool,
}

/// State of a (prospective or established) leader.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// The election's outcome, reported to looking peers.
    pub elected: Vote,
    /// Where the leader is.
    pub phase: LeaderPhase,
    /// The new epoch (0 until chosen in discovery).
    pub epoch: u64,
    /// `acceptedEpoch` of each voter that sent FOLLOWERINFO (and the leader).
    pub infos: BTreeMap<NodeId, u64>,
    /// Voters counted toward the ACKEPOCH quorum (the leader included).
    pub epoch_acks: BTreeSet<NodeId>,
    /// Voters that acked NEWLEADER (the leader included).
    pub newleader_acks: BTreeSet<NodeId>,
    /// Every connected follower and learner.
    pub followers: BTreeMap<NodeId, FollowerProgress>,
    /// Ticks since leading started.
    pub ticks: u64,
    /// Ticks allowed to become established.
    pub establish_timeout_ticks: u64,
    /// Ticks since the last heartbeat.
    pub heartbeat_ticks: u64,
    /// Pending proposals and configuration changes, by index.
    pub proposals: BTreeMap<LogIndex, Ticket>,
    /// Pending read barriers.
    pub reads: Vec<LeaderRead>,
    /// Current ping round.
    pub ping_round: u64,
    /// A read waits for a new ping round.
    pub round_needed: bool,
    /// Voters that elected this leader: discovery waits (at most a
    /// heartbeat interval) for their FOLLOWERINFO before choosing the epoch.
    pub expected: BTreeSet<NodeId>,
}
