//! The wire messages, in the vocabulary of "Paxos Made Simple".
//!
//! Every Paxos message carries a list of per-slot items: one message to a
//! peer may carry many slots' instances (batching), but each item is its own
//! single-decree Paxos instance with its own ballot and its own Phase 1.

use std::fmt;

use bytes::Bytes;
use consensus_api::{Entry, LogIndex, Membership, MessageClass, Payload, ProtocolMessage};
use serde::{Deserialize, Serialize};

use crate::ballot::Ballot;

/// A `Chosen` message with more entries than this travels as bulk data.
const CHOSEN_CONTROL_ENTRIES_MAX: usize = 16;

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a (§2.2): proposer → acceptors.
    Prepare(Prepare),
    /// Phase 1b (§2.2): acceptor → proposer.
    Promise(Promise),
    /// Phase 2a (§2.2): proposer → acceptors.
    Accept(Accept),
    /// Phase 2b (§2.3): acceptor → proposer and every learner.
    Accepted(Accepted),
    /// An acceptor refuses a Prepare or Accept below its promise (the
    /// optimisation at the end of §2.2).
    Nack(Nack),
    /// Values known to be chosen (§2.3): replies to Prepare / Accept for a
    /// decided slot, to [`Ask`] and to [`CatchUp`].
    Chosen(Chosen),
    /// A learner that counted a quorum of `Accepted` but lacks the value
    /// asks an acceptor that has it.
    Ask(Ask),
    /// A lagging learner asks for chosen values from a slot on (or for the
    /// next snapshot chunk).
    CatchUp(CatchUp),
    /// Periodic learner beacon: how far the sender has learned, the highest
    /// slot it has seen used. Also the failure detector's heartbeat.
    Learn(Learn),
    /// One chunk of a snapshot, for a learner behind the sender's compacted
    /// prefix.
    SnapshotChunk(SnapshotChunk),
}

/// Phase 1a: "prepare request with number n" for each listed slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    /// The slots and the ballot of each slot's instance.
    pub slots: Vec<SlotBallot>,
}

/// A slot and a ballot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlotBallot {
    /// The log slot (>= 1).
    pub slot: LogIndex,
    /// The ballot of the instance.
    pub ballot: Ballot,
}

/// Phase 1b: the acceptor promises not to accept a ballot below `ballot` in
/// each listed slot and reports what it has accepted there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promise {
    /// The highest slot this acceptor has accepted (or learned) a value in,
    /// over all slots. A proposer uses it to order a new command after every
    /// command chosen before the proposal started (see the crate docs,
    /// "Linearizability").
    pub highest_accepted: LogIndex,
    /// One promise per slot.
    pub slots: Vec<PromiseSlot>,
}

/// The promise for one slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromiseSlot {
    /// The slot.
    pub slot: LogIndex,
    /// The ballot promised (the Prepare's ballot).
    pub ballot: Ballot,
    /// The highest-ballot proposal this acceptor accepted in the slot.
    pub accepted: Option<AcceptedValue>,
}

/// A proposal an acceptor has accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptedValue {
    /// The ballot it was accepted under.
    pub ballot: Ballot,
    /// The value.
    pub payload: Payload,
    /// The value's origin (see [`Proposal::origin`]); zero when unknown.
    pub origin: Ballot,
}

/// Phase 2a: "accept request" for each listed slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    /// The proposals.
    pub slots: Vec<Proposal>,
}

/// One proposal: a value for a slot under a ballot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The slot.
    pub slot: LogIndex,
    /// The ballot.
    pub ballot: Ballot,
    /// The proposed value.
    pub payload: Payload,
    /// Where the value was born: the ballot under which its proposer first
    /// proposed it as its own in this slot. A proposer that adopts a value
    /// keeps its origin, so a proposer recognises its own command when the
    /// slot is decided, even if another client's command is byte-for-byte
    /// identical. Zero when unknown (an acceptor that restarted forgets
    /// origins: they are not persisted).
    pub origin: Ballot,
}

/// Phase 2b: the sender accepted these (slot, ballot) proposals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The accepted slots and ballots.
    pub slots: Vec<SlotBallot>,
}

/// The sender refused these requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    /// One refusal per slot.
    pub slots: Vec<NackSlot>,
}

/// A refusal for one slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackSlot {
    /// The slot.
    pub slot: LogIndex,
    /// The refused ballot.
    pub ballot: Ballot,
    /// The higher ballot the acceptor is bound to.
    pub promised: Ballot,
}

/// Chosen values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// The chosen entries, in slot order.
    pub entries: Vec<ChosenValue>,
}

/// One chosen value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChosenValue {
    /// The slot, its value, and (`Entry::epoch`, see [`Ballot::to_epoch`])
    /// a ballot under which a quorum accepted it.
    pub entry: Entry,
    /// The value's origin ([`Proposal::origin`]); zero when unknown.
    pub origin: Ballot,
}

/// "A quorum accepted these (slot, ballot): send me the value."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Slots known chosen under the given ballot.
    pub slots: Vec<SlotBallot>,
}

/// "Send me the chosen values from slot `from` on."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    /// First slot wanted.
    pub from: LogIndex,
    /// Where a snapshot transfer stands, if one is under way.
    pub snapshot: Option<SnapshotCursor>,
}

/// Position in a snapshot transfer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCursor {
    /// The snapshot's index.
    pub index: LogIndex,
    /// Bytes already received.
    pub offset: u64,
}

/// The learner beacon.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learn {
    /// Every slot up to this one is chosen and known to the sender.
    pub chosen: LogIndex,
    /// The highest slot the sender has seen used.
    pub highest: LogIndex,
    /// The sender's snapshot index.
    pub snapshot: LogIndex,
}

/// One chunk of a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Last slot the snapshot covers.
    pub index: LogIndex,
    /// `Snapshot::epoch`.
    pub epoch: u64,
    /// The membership in force at `index`.
    pub membership: Membership,
    /// `Snapshot::protocol_state` (pending configuration changes).
    pub protocol_state: Bytes,
    /// Size of the whole state-machine data.
    pub total_bytes: u64,
    /// CRC32C of the whole state-machine data.
    pub checksum: u32,
    /// Offset of this chunk.
    pub offset: u64,
    /// The chunk.
    pub data: Bytes,
}

impl ProtocolMessage for Message {
    fn class(&self) -> MessageClass {
        match self {
            Message::SnapshotChunk(_) => MessageClass::Bulk,
            Message::Chosen(chosen) if chosen.entries.len() > CHOSEN_CONTROL_ENTRIES_MAX => {
                MessageClass::Bulk
            }
            _ => MessageClass::Control,
        }
    }
}

/// Prints a slot list compactly: `slot=4`, `slots=4..6`, `slots=4,7`.
fn write_slots(f: &mut fmt::Formatter<'_>, slots: &[LogIndex]) -> fmt::Result {
    match slots {
        [] => write!(f, "slots=none"),
        [one] => write!(f, "slot={one}"),
        [first, .., last] if slots.windows(2).all(|w| w[1] == w[0] + 1) => {
            write!(f, "slots={first}..{last}")
        }
        _ => {
            let list: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
            write!(f, "slots={}", list.join(","))
        }
    }
}

/// Prints items that each carry a ballot, grouped by ballot:
/// `b=1.1 slots=4..6 b=2.3 slot=9`.
fn write_ballot_groups(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = (Ballot, LogIndex)>,
) -> fmt::Result {
    let mut groups: Vec<(Ballot, Vec<LogIndex>)> = Vec::new();
    for (ballot, slot) in items {
        match groups.iter_mut().find(|(b, _)| *b == ballot) {
            Some((_, slots)) => slots.push(slot),
            None => groups.push((ballot, vec![slot])),
        }
    }
    for (i, (ballot, slots)) in groups.iter().enumerate() {
        if i > 0 {
            write!(f, " ")?;
        }
        write!(f, "b={ballot} ")?;
        write_slots(f, slots)?;
    }
    Ok(())
}

/// Prints at most four values, then a count.
fn write_values<'a>(
    f: &mut fmt::Formatter<'_>,
    values: impl ExactSizeIterator<Item = &'a Payload>,
) -> fmt::Result {
    let count = values.len();
    if count > 4 {
        return write!(f, " ({count} values)");
    }
    let shown: Vec<String> = values.map(|v| v.to_string()).collect();
    write!(f, " v=[{}]", shown.join(","))
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Prepare(m) => {
                write!(f, "Prepare ")?;
                write_ballot_groups(f, m.slots.iter().map(|s| (s.ballot, s.slot)))
            }
            Message::Promise(m) => {
                write!(f, "Promise ")?;
                write_ballot_groups(f, m.slots.iter().map(|s| (s.ballot, s.slot)))?;
                let accepted: Vec<String> = m
                    .slots
                    .iter()
                    .filter_map(|s| {
                        s.accepted
                            .as_ref()
                            .map(|a| format!("{}@{}:{}", s.slot, a.ballot, a.payload))
                    })
                    .collect();
                if !accepted.is_empty() {
                    write!(f, " accepted=[{}]", accepted.join(","))?;
                }
                write!(f, " highest={}", m.highest_accepted)
            }
            Message::Accept(m) => {
                write!(f, "Accept ")?;
                write_ballot_groups(f, m.slots.iter().map(|s| (s.ballot, s.slot)))?;
                write_values(f, m.slots.iter().map(|s| &s.payload))
            }
            Message::Accepted(m) => {
                write!(f, "Accepted ")?;
                write_ballot_groups(f, m.slots.iter().map(|s| (s.ballot, s.slot)))
            }
            Message::Nack(m) => {
                write!(f, "Nack ")?;
                write_ballot_groups(f, m.slots.iter().map(|s| (s.ballot, s.slot)))?;
                let promised: Vec<String> =
                    m.slots.iter().map(|s| s.promised.to_string()).collect();
                let mut unique = promised.clone();
                unique.dedup();
                if unique.len() == 1 {
                    write!(f, " promised={}", unique[0])
                } else {
                    write!(f, " promised=[{}]", promised.join(","))
                }
            }
            Message::Chosen(m) => {
                write!(f, "Chosen")?;
                if m.entries.len() > 4 {
                    let slots: Vec<LogIndex> = m.entries.iter().map(|e| e.entry.index).collect();
                    write!(f, " ")?;
                    return write_slots(f, &slots);
                }
                for ChosenValue { entry, .. } in &m.entries {
                    let ballot = Ballot::from_epoch(entry.epoch);
                    write!(f, " {}@{}:{}", entry.index, ballot, entry.payload)?;
                }
                Ok(())
            }
            Message::Ask(m) => {
                write!(f, "Ask ")?;
                write_ballot_groups(f, m.slots.iter().map(|s| (s.ballot, s.slot)))
            }
            Message::CatchUp(m) => {
                write!(f, "CatchUp from={}", m.from)?;
                if let Some(cursor) = m.snapshot {
                    write!(f, " snapshot={}+{}", cursor.index, cursor.offset)?;
                }
                Ok(())
            }
            Message::Learn(m) => write!(
                f,
                "Learn chosen={} highest={} snapshot={}",
                m.chosen, m.highest, m.snapshot
            ),
            Message::SnapshotChunk(m) => write!(
                f,
                "SnapshotChunk index={} bytes={}..{}/{}",
                m.index,
                m.offset,
                m.offset + m.data.len() as u64,
                m.total_bytes
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_compact_line() {
        let b = Ballot::new(1, 1);
        let prepare = Message::Prepare(Prepare {
            slots: vec![SlotBallot { slot: 4, ballot: b }],
        });
        assert_eq!(prepare.to_string(), "Prepare b=1.1 slot=4");
        let many = Message::Prepare(Prepare {
            slots: (4..=6).map(|slot| SlotBallot { slot, ballot: b }).collect(),
        });
        assert_eq!(many.to_string(), "Prepare b=1.1 slots=4..6");
        let accept = Message::Accept(Accept {
            slots: vec![
                Proposal {
                    slot: 4,
                    ballot: b,
                    payload: Payload::Command(Bytes::from_static(b"x")),
                    origin: b,
                },
                Proposal {
                    slot: 9,
                    ballot: Ballot::new(2, 3),
                    payload: Payload::Noop,
                    origin: Ballot::new(2, 3),
                },
            ],
        });
        assert_eq!(
            accept.to_string(),
            "Accept b=1.1 slot=4 b=2.3 slot=9 v=[\"x\",noop]"
        );
        let nack = Message::Nack(Nack {
            slots: vec![NackSlot {
                slot: 4,
                ballot: b,
                promised: Ballot::new(2, 2),
            }],
        });
        assert_eq!(nack.to_string(), "Nack b=1.1 slot=4 promised=2.2");
        assert!(!nack.to_string().contains('\n'));
    }
}
