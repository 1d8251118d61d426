//! The wire messages of ZAB, one documented struct per message, named as in
//! the paper and in ZooKeeper's `Leader` / `Learner` packets.
//!
//! Every message a leader sends in an epoch carries that epoch, so a message
//! from an older epoch is recognised and dropped. Messages are printed on one
//! line (`Proposal zxid=3:7 "x"`) for golden tests.

use std::fmt;

use consensus_api::{Bytes, Entry, Membership, MessageClass, NodeId, ProtocolMessage};
use serde::{Deserialize, Serialize};

use crate::zxid::Zxid;

/// The state a server reports in an election notification (ZooKeeper's
/// `ServerState`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerState {
    /// In Phase 0, looking for a leader.
    Looking,
    /// Following the vote's leader.
    Following,
    /// Leading (the vote's leader is the sender).
    Leading,
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerState::Looking => "looking",
            ServerState::Following => "following",
            ServerState::Leading => "leading",
        })
    }
}

/// Phase 0 (Fast Leader Election) notification: the sender's current vote.
/// Votes are ordered by `(epoch, zxid, leader)`; see `election.rs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The proposed (or, when not looking, the elected) leader.
    pub leader: NodeId,
    /// The proposed leader's last zxid.
    pub zxid: Zxid,
    /// The proposed leader's `currentEpoch` (ZooKeeper's `peerEpoch`).
    pub epoch: u64,
    /// The sender's election round (ZooKeeper's `logicalclock` /
    /// `electionEpoch`).
    pub round: u64,
    /// The sender's state.
    pub state: ServerState,
    /// The sender's configuration in force (ZooKeeper 3.5 notifications
    /// carry the sender's config too): lets a server that missed a
    /// reconfiguration recognise the current voters and leader.
    pub config: Membership,
    /// The version of `config`: the zxid of the proposal that introduced it
    /// (`0:0` for an initial configuration). A receiver adopts, for the
    /// election only, a configuration newer than the one it knows.
    pub config_version: Zxid,
}

/// Phase 1: a follower connects to its prospective leader (CEPOCH in the
/// paper, FOLLOWERINFO in ZooKeeper). Re-sent until answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerInfo {
    /// The follower's `acceptedEpoch`.
    pub accepted_epoch: u64,
}

/// Phase 1: the new epoch, above the `acceptedEpoch` of a quorum (NEWEPOCH
/// in the paper, LEADERINFO in ZooKeeper).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The new epoch.
    pub epoch: u64,
}

/// Phase 1: a follower accepted the new epoch (ACK-E / ACKEPOCH), sent once
/// `acceptedEpoch` is durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckEpoch {
    /// The accepted epoch.
    pub epoch: u64,
    /// The follower's `currentEpoch`.
    pub current_epoch: u64,
    /// The follower's last zxid.
    pub last_zxid: Zxid,
    /// True when the follower accepted `epoch` on this request. False when it
    /// had accepted it before (a restart): ZooKeeper then sends
    /// `currentEpoch = -1`, and the leader synchronizes the follower without
    /// counting it toward the discovery quorum, so that no node helps two
    /// prospective leaders to the same epoch.
    pub fresh: bool,
}

/// Phase 2: truncate the history after `zxid` (TRUNC). The follower drops
/// every proposal with a larger zxid, then reports its last zxid with
/// [`Ack`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trunc {
    /// The leader's epoch.
    pub epoch: u64,
    /// The follower's last zxid this answers (a stale TRUNC is ignored).
    pub follower_last: Zxid,
    /// Keep proposals up to this zxid.
    pub zxid: Zxid,
}

/// Phase 2: proposals the follower misses (DIFF). In ZooKeeper a DIFF marker
/// is followed by PROPOSAL/COMMIT packets; here the proposals travel inside
/// the message, in batches, each applying only after `prev_zxid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The leader's epoch.
    pub epoch: u64,
    /// The zxid the first entry follows.
    pub prev_zxid: Zxid,
    /// Consecutive entries of the leader's history.
    pub entries: Vec<Entry>,
}

/// Phase 2: one chunk of the leader's snapshot (SNAP), for a follower too far
/// behind or behind the leader's compaction point.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snap {
    /// The leader's epoch.
    pub epoch: u64,
    /// Zxid of the snapshot's last transaction.
    pub zxid: Zxid,
    /// Log index of the snapshot's last transaction.
    pub index: u64,
    /// The configuration in force at `index`.
    pub membership: Membership,
    /// Zxid of the proposal that introduced `membership` (its version).
    pub config_zxid: Zxid,
    /// Byte offset of this chunk in the snapshot data.
    pub offset: u64,
    /// Total size of the snapshot data.
    pub total_bytes: u64,
    /// CRC32C of the whole snapshot data, checked once assembled.
    pub checksum: u32,
    /// The chunk.
    pub data: Bytes,
}

impl fmt::Debug for Snap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Phase 2: the follower holds the snapshot data up to `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSnap {
    /// The leader's epoch.
    pub epoch: u64,
    /// The snapshot being received.
    pub zxid: Zxid,
    /// Bytes received so far (the next offset wanted).
    pub offset: u64,
}

/// Phase 2: the follower's history now equals the leader's up to `zxid`;
/// make the epoch current (NEWLEADER). The follower persists
/// `currentEpoch = epoch` and answers [`AckNewLeader`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLeader {
    /// The leader's epoch.
    pub epoch: u64,
    /// The last zxid of the synchronized history.
    pub zxid: Zxid,
}

/// Phase 2: `currentEpoch = epoch` is durable (ACK of NEWLEADER).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckNewLeader {
    /// The leader's epoch.
    pub epoch: u64,
    /// The follower's last zxid.
    pub zxid: Zxid,
}

/// Phase 3: proposals of the leader's epoch, in zxid order (PROPOSAL). The
/// leader batches consecutive proposals into one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Zxid of the first entry; the others follow with consecutive counters.
    pub zxid: Zxid,
    /// The entries (all of epoch `zxid.epoch()`).
    pub entries: Vec<Entry>,
}

/// Phase 2/3: the follower's history ends at `zxid` and is durable (ACK).
/// Cumulative: acknowledges every proposal up to `zxid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The leader's epoch.
    pub epoch: u64,
    /// The follower's last zxid.
    pub zxid: Zxid,
    /// The follower dropped an out-of-order message: resend after `zxid`.
    pub resend: bool,
}

/// Phase 3: every proposal up to `zxid` is committed (COMMIT; cumulative, so
/// a lost COMMIT is repaired by the next one or by a [`Ping`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The leader's epoch.
    pub epoch: u64,
    /// Highest committed zxid.
    pub zxid: Zxid,
}

/// Leader -> follower heartbeat (PING), carrying the commit point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// The leader's epoch.
    pub epoch: u64,
    /// Highest committed zxid.
    pub commit: Zxid,
    /// Heartbeat round, echoed back; read barriers wait for a quorum of
    /// answers to a round started after them.
    pub round: u64,
}

/// Follower -> leader answer to a [`Ping`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResponse {
    /// The leader's epoch.
    pub epoch: u64,
    /// The round answered.
    pub round: u64,
    /// The follower's last zxid.
    pub last_zxid: Zxid,
}

/// Follower -> leader: ZooKeeper's `sync()` (SYNC): what is committed now?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sync {
    /// The epoch the follower follows.
    pub epoch: u64,
    /// The follower's request number.
    pub request: u64,
}

/// Leader -> follower: the answer to [`Sync`], sent once the leader confirmed
/// with a quorum that it still leads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The leader's epoch.
    pub epoch: u64,
    /// The request answered.
    pub request: u64,
    /// The leader's commit point when the request arrived.
    pub zxid: Zxid,
}

/// A ZAB message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 0 notification.
    Vote(Vote),
    /// Phase 1 connect.
    FollowerInfo(FollowerInfo),
    /// Phase 1 new epoch.
    LeaderInfo(LeaderInfo),
    /// Phase 1 epoch accepted.
    AckEpoch(AckEpoch),
    /// Phase 2 truncate.
    Trunc(Trunc),
    /// Phase 2 missing proposals.
    Diff(Diff),
    /// Phase 2 snapshot chunk.
    Snap(Snap),
    /// Phase 2 snapshot progress.
    AckSnap(AckSnap),
    /// Phase 2 end of synchronization.
    NewLeader(NewLeader),
    /// Phase 2 acknowledgement of NEWLEADER.
    AckNewLeader(AckNewLeader),
    /// Phase 3 proposals.
    Proposal(Proposal),
    /// Phase 2/3 acknowledgement.
    Ack(Ack),
    /// Phase 3 commit.
    Commit(Commit),
    /// Heartbeat.
    Ping(Ping),
    /// Heartbeat answer.
    PingResponse(PingResponse),
    /// `sync()` request.
    Sync(Sync),
    /// `sync()` answer.
    SyncResponse(SyncResponse),
}

impl Message {
    /// The epoch a leader-epoch message belongs to (`None` for election and
    /// connect messages).
    pub fn epoch(&self) -> Option<u64> {
        match self {
            Message::Vote(_) | Message::FollowerInfo(_) => None,
            Message::LeaderInfo(m) => Some(m.epoch),
            Message::AckEpoch(m) => Some(m.epoch),
            Message::Trunc(m) => Some(m.epoch),
            Message::Diff(m) => Some(m.epoch),
            Message::Snap(m) => Some(m.epoch),
            Message::AckSnap(m) => Some(m.epoch),
            Message::NewLeader(m) => Some(m.epoch),
            Message::AckNewLeader(m) => Some(m.epoch),
            Message::Proposal(m) => Some(m.zxid.epoch()),
            Message::Ack(m) => Some(m.epoch),
            Message::Commit(m) => Some(m.epoch),
            Message::Ping(m) => Some(m.epoch),
            Message::PingResponse(m) => Some(m.epoch),
            Message::Sync(m) => Some(m.epoch),
            Message::SyncResponse(m) => Some(m.epoch),
        }
    }
}

impl ProtocolMessage for Message {
    fn class(&self) -> MessageClass {
        match self {
            Message::Snap(_) => MessageClass::Bulk,
            Message::Diff(diff) if diff.entries.len() > 1 => MessageClass::Bulk,
            _ => MessageClass::Control,
        }
    }
}

fn write_entries(f: &mut fmt::Formatter<'_>, entries: &[Entry]) -> fmt::Result {
    match entries {
        [] => Ok(()),
        [only] => write!(f, " {}", only.payload),
        [first, .., last] => write!(f, " n={} ({}..{})", entries.len(), first.index, last.index),
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vote leader={} zxid={} epoch={} round={} {}",
            self.leader, self.zxid, self.epoch, self.round, self.state
        )
    }
}

impl fmt::Display for Snap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Snap epoch={} zxid={} index={} bytes={}..{}/{}",
            self.epoch,
            self.zxid,
            self.index,
            self.offset,
            self.offset + self.data.len() as u64,
            self.total_bytes
        )
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Vote(m) => write!(f, "{m}"),
            Message::FollowerInfo(m) => write!(f, "FollowerInfo accepted={}", m.accepted_epoch),
            Message::LeaderInfo(m) => write!(f, "LeaderInfo epoch={}", m.epoch),
            Message::AckEpoch(m) => write!(
                f,
                "AckEpoch epoch={} current={} last={}{}",
                m.epoch,
                m.current_epoch,
                m.last_zxid,
                if m.fresh { "" } else { " stale" }
            ),
            Message::Trunc(m) => {
                write!(
                    f,
                    "Trunc epoch={} zxid={} (from {})",
                    m.epoch, m.zxid, m.follower_last
                )
            }
            Message::Diff(m) => {
                write!(f, "Diff epoch={} prev={}", m.epoch, m.prev_zxid)?;
                write_entries(f, &m.entries)
            }
            Message::Snap(m) => write!(f, "{m}"),
            Message::AckSnap(m) => {
                write!(
                    f,
                    "AckSnap epoch={} zxid={} offset={}",
                    m.epoch, m.zxid, m.offset
                )
            }
            Message::NewLeader(m) => write!(f, "NewLeader epoch={} zxid={}", m.epoch, m.zxid),
            Message::AckNewLeader(m) => write!(f, "AckNewLeader epoch={} zxid={}", m.epoch, m.zxid),
            Message::Proposal(m) => {
                write!(f, "Proposal zxid={}", m.zxid)?;
                write_entries(f, &m.entries)
            }
            Message::Ack(m) => write!(
                f,
                "Ack epoch={} zxid={}{}",
                m.epoch,
                m.zxid,
                if m.resend { " resend" } else { "" }
            ),
            Message::Commit(m) => write!(f, "Commit epoch={} zxid={}", m.epoch, m.zxid),
            Message::Ping(m) => {
                write!(
                    f,
                    "Ping epoch={} commit={} round={}",
                    m.epoch, m.commit, m.round
                )
            }
            Message::PingResponse(m) => write!(
                f,
                "PingResponse epoch={} round={} last={}",
                m.epoch, m.round, m.last_zxid
            ),
            Message::Sync(m) => write!(f, "Sync epoch={} request={}", m.epoch, m.request),
            Message::SyncResponse(m) => write!(
                f,
                "SyncResponse epoch={} request={} zxid={}",
                m.epoch, m.request, m.zxid
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::Payload;

    #[test]
    fn one_line_display() {
        let proposal = Message::Proposal(Proposal {
            zxid: Zxid::new(3, 7),
            entries: vec![Entry {
                index: 12,
                epoch: 3,
                payload: Payload::Command(Bytes::from_static(b"x")),
            }],
        });
        assert_eq!(proposal.to_string(), "Proposal zxid=3:7 \"x\"");
        let ack = Message::Ack(Ack {
            epoch: 3,
            zxid: Zxid::new(3, 7),
            resend: true,
        });
        assert_eq!(ack.to_string(), "Ack epoch=3 zxid=3:7 resend");
        let bytes = postcard::to_allocvec(&proposal).unwrap();
        assert_eq!(postcard::from_bytes::<Message>(&bytes).unwrap(), proposal);
    }
}
