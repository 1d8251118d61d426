//! The Raft wire messages (Raft paper Figure 2, §6, §7; Ongaro's thesis §3.10
//! for leadership transfer, §9.6 for pre-vote) and their one-line `Display`.
//!
//! Only what crosses the network is a message: ticks, proposals and reads are
//! methods of [`RaftCore`](crate::RaftCore). The sender is not part of the
//! message: the driver delivers `(from, message)`.

use std::fmt;

use bytes::Bytes;
use consensus_api::{Entry, LogIndex, Membership, MessageClass, ProtocolMessage};
use serde::{Deserialize, Serialize};

/// An `AppendEntries` whose payload exceeds this many bytes travels as
/// [`MessageClass::Bulk`], so that catch-up traffic never delays votes and
/// heartbeats.
pub const BULK_APPEND_BYTES_MIN: usize = 64 * 1024;

/// Every message Raft nodes exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A (pre-)candidate asks for a vote (§5.2, §9.6 of the thesis).
    RequestVote(RequestVote),
    /// The answer to [`Message::RequestVote`].
    RequestVoteResponse(RequestVoteResponse),
    /// The leader replicates entries (§5.3).
    AppendEntries(AppendEntries),
    /// The answer to [`Message::AppendEntries`], with a conflict hint on
    /// rejection.
    AppendEntriesResponse(AppendEntriesResponse),
    /// The leader asserts its authority and confirms ReadIndex rounds (§5.2,
    /// §6.4 of the thesis).
    Heartbeat(Heartbeat),
    /// The answer to [`Message::Heartbeat`].
    HeartbeatResponse(HeartbeatResponse),
    /// One chunk of a snapshot (§7).
    InstallSnapshot(InstallSnapshot),
    /// The answer to [`Message::InstallSnapshot`].
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// The leader asks an up-to-date follower to start an election now
    /// (leadership transfer, thesis §3.10).
    TimeoutNow(TimeoutNow),
}

impl Message {
    /// The sender's term carried by every message.
    pub fn term(&self) -> u64 {
        match self {
            Message::RequestVote(m) => m.term,
            Message::RequestVoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesResponse(m) => m.term,
            Message::Heartbeat(m) => m.term,
            Message::HeartbeatResponse(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
            Message::TimeoutNow(m) => m.term,
        }
    }

    /// Encodes the message with postcard (what a transport puts in a frame).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data structures into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes a postcard frame; `None` for malformed input.
    pub fn decode(bytes: &[u8]) -> Option<Message> {
        postcard::from_bytes(bytes).ok()
    }
}

/// `RequestVote` (Figure 2), also used for pre-vote (thesis §9.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// The candidate's term; for a pre-vote, the term it *would* campaign in
    /// (its current term + 1), without having incremented it.
    pub term: u64,
    /// Index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry.
    pub last_log_term: u64,
    /// True for a pre-vote: nobody changes term or vote because of it.
    pub pre_vote: bool,
    /// True when the election was asked for by the leader (`TimeoutNow`):
    /// voters then ignore their leader lease.
    pub transfer: bool,
}

/// The answer to a [`RequestVote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    /// The request's term when granted; the voter's own term when refused.
    pub term: u64,
    /// Answers a pre-vote.
    pub pre_vote: bool,
    /// Whether the vote is granted.
    pub granted: bool,
}

/// `AppendEntries` (Figure 2): entries following `prev_log_index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: u64,
    /// Index of the entry immediately preceding `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: u64,
    /// Entries to store (empty for a probe).
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
}

/// How an [`AppendEntries`] went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to `match_index`
    /// (durably, since the response is sent only after the append).
    Matched {
        /// Last index known to match.
        match_index: LogIndex,
    },
    /// The follower has no entry matching `prev_log_index / prev_log_term`.
    /// The hint lets the leader skip a whole term per round trip (§5.3,
    /// "the follower can include the term of the conflicting entry and the
    /// first index it stores for that term").
    Conflict {
        /// The rejected `prev_log_index`.
        prev_log_index: LogIndex,
        /// Term of the follower's entry at `prev_log_index`, or 0 when its log
        /// is shorter.
        conflict_term: u64,
        /// First index of `conflict_term` in the follower's log, or the
        /// follower's last index + 1 when its log is shorter.
        conflict_index: LogIndex,
    },
}

/// The answer to an [`AppendEntries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The follower's term.
    pub term: u64,
    /// Success with the match index, or a conflict hint.
    pub outcome: AppendOutcome,
}

/// A leader heartbeat (an `AppendEntries` without log check, as in etcd-raft):
/// resets election timers, carries a safe commit index and a ReadIndex round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The leader's term.
    pub term: u64,
    /// `min(leader commit, follower's match index)`: never beyond what the
    /// follower is known to hold.
    pub commit: LogIndex,
    /// The leader's ReadIndex round this heartbeat confirms.
    pub read_round: u64,
}

/// The answer to a [`Heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The follower's term.
    pub term: u64,
    /// Echo of [`Heartbeat::read_round`].
    pub read_round: u64,
}

/// One chunk of a snapshot (§7), sent stop-and-wait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The leader's term.
    pub term: u64,
    /// Last index the snapshot covers.
    pub snapshot_index: LogIndex,
    /// Term of that entry.
    pub snapshot_term: u64,
    /// Membership in force at `snapshot_index`.
    pub membership: Membership,
    /// Opaque protocol state of the snapshot.
    pub protocol_state: Bytes,
    /// Byte offset of `data` in the whole snapshot.
    pub offset: u64,
    /// Size of the whole snapshot data.
    pub total_bytes: u64,
    /// CRC32C of the whole snapshot data, checked once assembled.
    pub checksum: u32,
    /// This chunk.
    pub data: Bytes,
    /// True for the last chunk.
    pub done: bool,
}

/// Where a snapshot transfer stands, as the follower reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotOutcome {
    /// Send the chunk at this offset next (0 restarts the transfer).
    Receiving {
        /// Bytes assembled so far.
        next_offset: u64,
    },
    /// The follower holds everything up to `match_index` (it installed the
    /// snapshot, or refused it as stale because it already has it).
    Done {
        /// Last index known to match the leader's log.
        match_index: LogIndex,
    },
}

/// The answer to an [`InstallSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The follower's term.
    pub term: u64,
    /// The snapshot the answer is about.
    pub snapshot_index: LogIndex,
    /// Progress or completion.
    pub outcome: SnapshotOutcome,
}

/// Leadership transfer: start an election immediately (thesis §3.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: u64,
}

impl ProtocolMessage for Message {
    fn class(&self) -> MessageClass {
        match self {
            Message::InstallSnapshot(_) => MessageClass::Bulk,
            Message::AppendEntries(append)
                if append.entries.iter().map(Entry::size_bytes).sum::<usize>()
                    >= BULK_APPEND_BYTES_MIN =>
            {
                MessageClass::Bulk
            }
            _ => MessageClass::Control,
        }
    }
}

/// Most entries `Display` lists before eliding the rest.
const DISPLAY_ENTRIES_MAX: usize = 3;

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::RequestVote(m) => {
                let name = if m.pre_vote { "PreVote" } else { "RequestVote" };
                write!(f, "{name} t={} last={}/{}", m.term, m.last_log_index, m.last_log_term)?;
                if m.transfer {
                    write!(f, " transfer")?;
                }
                Ok(())
            }
            Message::RequestVoteResponse(m) => {
                let name = if m.pre_vote { "PreVoteResponse" } else { "RequestVoteResponse" };
                let verdict = if m.granted { "granted" } else { "rejected" };
                write!(f, "{name} t={} {verdict}", m.term)
            }
            Message::AppendEntries(m) => {
                write!(
                    f,
                    "AppendEntries t={} prev={}/{} n={} commit={}",
                    m.term,
                    m.prev_log_index,
                    m.prev_log_term,
                    m.entries.len(),
                    m.leader_commit
                )?;
                if !m.entries.is_empty() {
                    write!(f, " [")?;
                    for (i, entry) in m.entries.iter().take(DISPLAY_ENTRIES_MAX).enumerate() {
                        if i > 0 {
                            write!(f, " ")?;
                        }
                        write!(f, "{entry}")?;
                    }
                    if m.entries.len() > DISPLAY_ENTRIES_MAX {
                        write!(f, " ...")?;
                    }
                    write!(f, "]")?;
                }
                Ok(())
            }
            Message::AppendEntriesResponse(m) => match &m.outcome {
                AppendOutcome::Matched { match_index } => {
                    write!(f, "AppendEntriesResponse t={} match={match_index}", m.term)
                }
                AppendOutcome::Conflict {
                    prev_log_index,
                    conflict_term,
                    conflict_index,
                } => write!(
                    f,
                    "AppendEntriesResponse t={} reject={prev_log_index} hint={conflict_index}/{conflict_term}",
                    m.term
                ),
            },
            Message::Heartbeat(m) => {
                write!(f, "Heartbeat t={} commit={} read={}", m.term, m.commit, m.read_round)
            }
            Message::HeartbeatResponse(m) => {
                write!(f, "HeartbeatResponse t={} read={}", m.term, m.read_round)
            }
            Message::InstallSnapshot(m) => {
                write!(
                    f,
                    "InstallSnapshot t={} snap={}/{} conf={} off={} len={}/{}",
                    m.term,
                    m.snapshot_index,
                    m.snapshot_term,
                    m.membership,
                    m.offset,
                    m.data.len(),
                    m.total_bytes
                )?;
                if m.done {
                    write!(f, " done")?;
                }
                Ok(())
            }
            Message::InstallSnapshotResponse(m) => match &m.outcome {
                SnapshotOutcome::Receiving { next_offset } => write!(
                    f,
                    "InstallSnapshotResponse t={} snap={} next={next_offset}",
                    m.term, m.snapshot_index
                ),
                SnapshotOutcome::Done { match_index } => write!(
                    f,
                    "InstallSnapshotResponse t={} snap={} done match={match_index}",
                    m.term, m.snapshot_index
                ),
            },
            Message::TimeoutNow(m) => write!(f, "TimeoutNow t={}", m.term),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::Payload;

    #[test]
    fn display_is_one_compact_line() {
        let append = Message::AppendEntries(AppendEntries {
            term: 3,
            prev_log_index: 5,
            prev_log_term: 2,
            entries: vec![Entry {
                index: 6,
                epoch: 3,
                payload: Payload::Noop,
            }],
            leader_commit: 5,
        });
        assert_eq!(
            append.to_string(),
            "AppendEntries t=3 prev=5/2 n=1 commit=5 [6@3:noop]"
        );
        let vote = Message::RequestVote(RequestVote {
            term: 4,
            last_log_index: 7,
            last_log_term: 3,
            pre_vote: true,
            transfer: false,
        });
        assert_eq!(vote.to_string(), "PreVote t=4 last=7/3");
        let reject = Message::AppendEntriesResponse(AppendEntriesResponse {
            term: 3,
            outcome: AppendOutcome::Conflict {
                prev_log_index: 9,
                conflict_term: 2,
                conflict_index: 4,
            },
        });
        assert_eq!(
            reject.to_string(),
            "AppendEntriesResponse t=3 reject=9 hint=4/2"
        );
    }

    #[test]
    fn encode_decode_round_trip_and_garbage() {
        let message = Message::TimeoutNow(TimeoutNow { term: 9 });
        assert_eq!(Message::decode(&message.encode()), Some(message));
        assert_eq!(Message::decode(&[0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn snapshot_chunks_and_large_appends_are_bulk() {
        let chunk = Message::InstallSnapshot(InstallSnapshot {
            term: 1,
            snapshot_index: 1,
            snapshot_term: 1,
            membership: Membership::new([1]),
            protocol_state: Bytes::new(),
            offset: 0,
            total_bytes: 1,
            checksum: 0,
            data: Bytes::from_static(b"x"),
            done: true,
        });
        assert_eq!(chunk.class(), MessageClass::Bulk);
        let big = Message::AppendEntries(AppendEntries {
            term: 1,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![Entry {
                index: 1,
                epoch: 1,
                payload: Payload::Command(Bytes::from(vec![0u8; BULK_APPEND_BYTES_MIN])),
            }],
            leader_commit: 0,
        });
        assert_eq!(big.class(), MessageClass::Bulk);
        let heartbeat = Message::Heartbeat(Heartbeat {
            term: 1,
            commit: 0,
            read_round: 0,
        });
        assert_eq!(heartbeat.class(), MessageClass::Control);
    }
}
