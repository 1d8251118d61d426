//! The wire messages, in the vocabulary of "Paxos Made Simple" (Prepare,
//! Promise, Accept, Accepted, Nack) plus what a production Multi-Paxos
//! needs around them: a pre-vote probe, heartbeats, catch-up of chosen
//! values and snapshot chunks.
//!
//! Every variant is one documented struct. `Display` prints one line, e.g.
//! `Accept b=3.1 slot=4..7 commit=3`; golden tests print it.

use std::fmt;

use bytes::Bytes;
use consensus_api::{Entry, LogIndex, Membership, MessageClass, NodeId, ProtocolMessage};
use serde::{Deserialize, Serialize};

use crate::ballot::Ballot;

/// One Multi-Paxos message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Pre-vote: would you promise this ballot?
    Probe(Probe),
    /// Answer to a [`Probe`].
    ProbeResponse(ProbeResponse),
    /// Phase 1a, for every slot from `from` on.
    Prepare(Prepare),
    /// Phase 1b: the promise and the accepted values above the acceptor's
    /// chosen frontier.
    Promise(Promise),
    /// Phase 2a for a run of consecutive slots.
    Accept(Accept),
    /// Phase 2b for a run of consecutive slots.
    Accepted(Accepted),
    /// Refusal: the acceptor promised a higher ballot.
    Nack(Nack),
    /// The leader's liveness signal, carrying the chosen frontier.
    Heartbeat(Heartbeat),
    /// Answer to a [`Heartbeat`].
    HeartbeatResponse(HeartbeatResponse),
    /// A lagging node asks for chosen values.
    CatchUp(CatchUp),
    /// Chosen values (learner traffic).
    Chosen(Chosen),
    /// One piece of a snapshot, for a node behind the sender's compacted prefix.
    SnapshotChunk(SnapshotChunk),
    /// Acknowledges a [`SnapshotChunk`] and asks for the next one.
    SnapshotChunkResponse(SnapshotChunkResponse),
}

/// Pre-vote (enabled by `CoreConfig::pre_vote`): before raising its promise
/// a node asks the voters whether they would promise `ballot`. Nothing
/// changes at the receiver, so a node that cannot win (partitioned, removed)
/// never forces a working leader to step down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The ballot the sender would use for Phase 1.
    pub ballot: Ballot,
    /// The sender's chosen frontier (informational).
    pub commit: LogIndex,
}

/// Answer to a [`Probe`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResponse {
    /// The probed ballot.
    pub ballot: Ballot,
    /// True when the responder would promise it: the ballot is above its
    /// promise and it has not heard from a live leader within the minimum
    /// election timeout.
    pub granted: bool,
    /// The responder's promised ballot (so the prober can pick a higher one).
    pub promised: Ballot,
}

/// Phase 1a ("Paxos Made Simple" §2.2; "Paxos Made Moderately Complex" §3,
/// the scout): promise `ballot` for every slot `>= from`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    /// The candidate's ballot (owned by the sender).
    pub ballot: Ballot,
    /// First slot the candidate does not know to be chosen.
    pub from: LogIndex,
}

/// Phase 1b: the acceptor promised `ballot` (durably, before this message
/// was sent) and reports what it accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    /// The promised ballot.
    pub ballot: Ballot,
    /// The `from` of the [`Prepare`] answered.
    pub from: LogIndex,
    /// The acceptor's chosen frontier: every slot `<= commit` is chosen and
    /// held by the acceptor (or its snapshot). The candidate learns those
    /// values by [`CatchUp`] rather than in this message.
    pub commit: LogIndex,
    /// Every value the acceptor accepted at a slot `>= from` and `> commit`,
    /// with the ballot it accepted it under (`Entry::epoch`).
    pub entries: Vec<Entry>,
}

/// Phase 2a for the consecutive slots of `entries`, all proposed under
/// `ballot` (`entry.epoch == ballot.epoch()`), with the leader's chosen
/// frontier piggybacked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    /// The leader's ballot.
    pub ballot: Ballot,
    /// Consecutive slots, at least one.
    pub entries: Vec<Entry>,
    /// The leader's chosen frontier.
    pub commit: LogIndex,
}

/// Phase 2b: the acceptor accepted (durably) every slot of `first..=last`
/// under `ballot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The ballot accepted.
    pub ballot: Ballot,
    /// First slot of the run.
    pub first: LogIndex,
    /// Last slot of the run.
    pub last: LogIndex,
    /// The acceptor's chosen frontier after handling the Accept.
    pub commit: LogIndex,
}

/// Refusal of a Prepare, Accept or Heartbeat under `ballot`: the acceptor
/// promised the higher `promised`. A leader or candidate that receives it
/// steps down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    /// The refused ballot.
    pub ballot: Ballot,
    /// The acceptor's promise.
    pub promised: Ballot,
    /// The leader the acceptor follows, if it knows one.
    pub leader: Option<NodeId>,
}

/// The leader's periodic liveness signal (failure detection), carrying the
/// chosen frontier, and the quorum round of linearizable reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The leader's ballot.
    pub ballot: Ballot,
    /// The leader's chosen frontier.
    pub commit: LogIndex,
    /// Read round: a quorum of responses with `round >= r` proves the
    /// ballot was still the highest promised after read `r` started.
    pub round: u64,
}

/// Answer to a [`Heartbeat`]: the responder has not promised anything above
/// `ballot`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The leader's ballot.
    pub ballot: Ballot,
    /// The round echoed.
    pub round: u64,
    /// The responder's chosen frontier.
    pub commit: LogIndex,
}

/// A node whose chosen frontier is behind asks a node that knows more
/// (the leader, or a promiser with a higher frontier) for chosen values
/// from `from` on. Answered by [`Chosen`] or by [`SnapshotChunk`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    /// First slot wanted.
    pub from: LogIndex,
}

/// Chosen values: consecutive slots, each `<= commit`, with the ballot they
/// were accepted under. Any node may send them (a chosen value never
/// changes); the receiver stores them and advances its chosen frontier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    /// Consecutive chosen slots (possibly none, to report `commit`).
    pub entries: Vec<Entry>,
    /// The sender's chosen frontier.
    pub commit: LogIndex,
}

/// One chunk of the sender's latest snapshot. Every chunk repeats the
/// snapshot's metadata, so a receiver can start over at offset 0 at any time.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Last slot the snapshot covers.
    pub index: LogIndex,
    /// Epoch (encoded ballot) of the entry at `index`.
    pub epoch: u64,
    /// The membership in force after `index`.
    pub membership: Membership,
    /// Protocol metadata of the snapshot (the `snapshot` module, `src/snapshot.rs`).
    pub protocol_state: Bytes,
    /// Total size of the state machine data.
    pub total_bytes: u64,
    /// CRC32C of the whole state machine data.
    pub checksum: u32,
    /// Offset of `data` within the whole.
    pub offset: u64,
    /// The chunk itself.
    pub data: Bytes,
}

impl fmt::Debug for SnapshotChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Acknowledges snapshot data up to `next_offset` and asks for the chunk
/// that starts there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunkResponse {
    /// The snapshot being received.
    pub index: LogIndex,
    /// Its checksum (identifies the snapshot together with `index`).
    pub checksum: u32,
    /// Bytes received so far.
    pub next_offset: u64,
}

fn slots(entries: &[Entry]) -> String {
    match (entries.first(), entries.last()) {
        (Some(first), Some(last)) if first.index == last.index => format!("slot={}", first.index),
        (Some(first), Some(last)) => format!("slot={}..{}", first.index, last.index),
        _ => "slot=none".to_string(),
    }
}

fn values(entries: &[Entry]) -> String {
    let shown: Vec<String> = entries
        .iter()
        .take(4)
        .map(|e| format!("{}@{}:{}", e.index, Ballot::from_epoch(e.epoch), e.payload))
        .collect();
    let more = if entries.len() > 4 {
        format!(" +{}", entries.len() - 4)
    } else {
        String::new()
    };
    format!("[{}{}]", shown.join(" "), more)
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Probe(m) => write!(f, "{m}"),
            Message::ProbeResponse(m) => write!(f, "{m}"),
            Message::Prepare(m) => write!(f, "{m}"),
            Message::Promise(m) => write!(f, "{m}"),
            Message::Accept(m) => write!(f, "{m}"),
            Message::Accepted(m) => write!(f, "{m}"),
            Message::Nack(m) => write!(f, "{m}"),
            Message::Heartbeat(m) => write!(f, "{m}"),
            Message::HeartbeatResponse(m) => write!(f, "{m}"),
            Message::CatchUp(m) => write!(f, "{m}"),
            Message::Chosen(m) => write!(f, "{m}"),
            Message::SnapshotChunk(m) => write!(f, "{m}"),
            Message::SnapshotChunkResponse(m) => write!(f, "{m}"),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Probe b={} commit={}", self.ballot, self.commit)
    }
}

impl fmt::Display for ProbeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.granted { "granted" } else { "refused" };
        write!(
            f,
            "ProbeResponse b={} {verdict} promised={}",
            self.ballot, self.promised
        )
    }
}

impl fmt::Display for Prepare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prepare b={} slot={}..", self.ballot, self.from)
    }
}

impl fmt::Display for Promise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Promise b={} slot={}.. commit={} accepted={}",
            self.ballot,
            self.from,
            self.commit,
            values(&self.entries)
        )
    }
}

impl fmt::Display for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Accept b={} {} commit={} {}",
            self.ballot,
            slots(&self.entries),
            self.commit,
            values(&self.entries)
        )
    }
}

impl fmt::Display for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(
                f,
                "Accepted b={} slot={} commit={}",
                self.ballot, self.first, self.commit
            )
        } else {
            write!(
                f,
                "Accepted b={} slot={}..{} commit={}",
                self.ballot, self.first, self.last, self.commit
            )
        }
    }
}

impl fmt::Display for Nack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nack b={} promised={}", self.ballot, self.promised)?;
        if let Some(leader) = self.leader {
            write!(f, " leader={leader}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Heartbeat b={} commit={} round={}",
            self.ballot, self.commit, self.round
        )
    }
}

impl fmt::Display for HeartbeatResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HeartbeatResponse b={} round={} commit={}",
            self.ballot, self.round, self.commit
        )
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CatchUp slot={}..", self.from)
    }
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Chosen {} commit={} {}",
            slots(&self.entries),
            self.commit,
            values(&self.entries)
        )
    }
}

impl fmt::Display for SnapshotChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SnapshotChunk index={} b={} bytes={}..{}/{} conf={}",
            self.index,
            Ballot::from_epoch(self.epoch),
            self.offset,
            self.offset + self.data.len() as u64,
            self.total_bytes,
            self.membership
        )
    }
}

impl fmt::Display for SnapshotChunkResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SnapshotChunkResponse index={} next={}",
            self.index, self.next_offset
        )
    }
}

/// Highest slot any message may name: far beyond any real log, and low
/// enough that slot arithmetic never overflows.
pub(crate) const SLOT_MAX: LogIndex = 1 << 62;

impl Message {
    /// The highest slot (or frontier) the message names, to drop absurd
    /// ones before any arithmetic.
    pub(crate) fn highest_slot(&self) -> LogIndex {
        let last = |entries: &[Entry]| entries.iter().map(|e| e.index).max().unwrap_or(0);
        match self {
            Message::Probe(m) => m.commit,
            Message::ProbeResponse(_) => 0,
            Message::Prepare(m) => m.from,
            Message::Promise(m) => m.from.max(m.commit).max(last(&m.entries)),
            Message::Accept(m) => m.commit.max(last(&m.entries)),
            Message::Accepted(m) => m.first.max(m.last).max(m.commit),
            Message::Nack(_) => 0,
            Message::Heartbeat(m) => m.commit,
            Message::HeartbeatResponse(m) => m.commit,
            Message::CatchUp(m) => m.from,
            Message::Chosen(m) => m.commit.max(last(&m.entries)),
            Message::SnapshotChunk(m) => m.index,
            Message::SnapshotChunkResponse(m) => m.index,
        }
    }
}

impl ProtocolMessage for Message {
    fn class(&self) -> MessageClass {
        match self {
            Message::SnapshotChunk(_) | Message::Chosen(_) => MessageClass::Bulk,
            _ => MessageClass::Control,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::Payload;

    #[test]
    fn display_is_one_compact_line() {
        let b = Ballot::new(3, 1);
        let entries: Vec<Entry> = (4..=7)
            .map(|index| Entry {
                index,
                epoch: b.epoch(),
                payload: Payload::Noop,
            })
            .collect();
        let accept = Message::Accept(Accept {
            ballot: b,
            entries,
            commit: 3,
        });
        let line = accept.to_string();
        assert!(
            line.starts_with("Accept b=3.1 slot=4..7 commit=3"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let accepted = Message::Accepted(Accepted {
            ballot: b,
            first: 4,
            last: 4,
            commit: 3,
        });
        assert_eq!(accepted.to_string(), "Accepted b=3.1 slot=4 commit=3");
        assert_eq!(
            Message::Prepare(Prepare { ballot: b, from: 4 }).to_string(),
            "Prepare b=3.1 slot=4.."
        );
    }

    #[test]
    fn messages_round_trip_through_postcard() {
        let message = Message::Promise(Promise {
            ballot: Ballot::new(2, 3),
            from: 5,
            commit: 4,
            entries: vec![Entry {
                index: 6,
                epoch: Ballot::new(1, 2).epoch(),
                payload: Payload::Command(Bytes::from_static(b"x")),
            }],
        });
        let bytes = postcard::to_allocvec(&message).unwrap();
        let back: Message = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, message);
        assert_eq!(message.class(), MessageClass::Control);
    }
}
