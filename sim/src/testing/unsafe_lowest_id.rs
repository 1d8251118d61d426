//! A deliberately unsafe core: the lowest node id a node can hear from is the
//! leader, and a leader commits alone. Fine on a healthy network, split-brain
//! under any partition.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, Entry, InitialState, LogIndex, Membership, NodeId, Payload, ProtocolMessage,
    Ready, RecoverError, Rejected, Role, Snapshot, Status, Ticket,
};
use serde::{Deserialize, Serialize};

/// The unsafe core's wire messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum UnsafeMessage {
    /// "I am alive" (sent every tick to every peer).
    Ping,
    /// Entries from a self-proclaimed leader, starting at `from_index`.
    Append {
        /// The leader's epoch.
        epoch: u64,
        /// Index of the first entry.
        from_index: LogIndex,
        /// The entries.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// A full snapshot for a lagging follower.
    Install {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// The follower's last index, so the leader knows where to resume.
    AppendResponse {
        /// Highest index the follower holds.
        last_index: LogIndex,
    },
}

impl fmt::Display for UnsafeMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsafeMessage::Ping => write!(f, "Ping"),
            UnsafeMessage::Append {
                epoch,
                from_index,
                entries,
                commit,
            } => write!(
                f,
                "Append e={epoch} from={from_index} n={} commit={commit}",
                entries.len()
            ),
            UnsafeMessage::Install { snapshot } => write!(f, "Install index={}", snapshot.index),
            UnsafeMessage::AppendResponse { last_index } => {
                write!(f, "AppendResponse last={last_index}")
            }
        }
    }
}

impl ProtocolMessage for UnsafeMessage {}

/// The lowest reachable id leads and commits alone (unsafe by design).
pub struct UnsafeLowestIdCore {
    id: NodeId,
    membership: Membership,
    now: u64,
    heard: BTreeMap<NodeId, u64>,
    timeout_ticks: u64,
    epoch: u64,
    leader: Option<NodeId>,
    snapshot: Option<Snapshot>,
    log: Vec<Entry>,
    commit: LogIndex,
    applied: LogIndex,
    next_ticket: u64,
    ready: Ready<UnsafeMessage>,
    ready_number: u64,
}

impl UnsafeLowestIdCore {
    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    fn last_index(&self) -> LogIndex {
        self.snapshot_index() + self.log.len() as u64
    }

    fn entries_from(&self, from: LogIndex) -> Vec<Entry> {
        let start = from.saturating_sub(self.snapshot_index() + 1) as usize;
        self.log
            .get(start..)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default()
    }

    fn is_leader(&self) -> bool {
        self.leader == Some(self.id)
    }

    fn elect(&mut self) {
        if self.now <= self.timeout_ticks {
            // Listen for a while before claiming anything.
            return;
        }
        let reachable = self
            .heard
            .iter()
            .filter(|(_, at)| self.now.saturating_sub(**at) <= self.timeout_ticks)
            .map(|(id, _)| *id);
        let leader = reachable.chain([self.id]).min();
        if leader == Some(self.id) && !self.is_leader() {
            self.epoch += 1;
            self.ready.hard_state = Some(Bytes::from(self.epoch.to_le_bytes().to_vec()));
            self.ready.must_sync = true;
        }
        self.leader = leader;
    }

    fn broadcast(&mut self, from: LogIndex) {
        let entries = self.entries_from(from);
        for peer in self.membership.all_nodes() {
            if peer != self.id {
                self.ready.messages.push((
                    peer,
                    UnsafeMessage::Append {
                        epoch: self.epoch,
                        from_index: from,
                        entries: entries.clone(),
                        commit: self.commit,
                    },
                ));
            }
        }
    }

    fn store_entries(&mut self, from: LogIndex, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let keep = (from.saturating_sub(self.snapshot_index() + 1)) as usize;
        if keep < self.log.len() {
            self.log.truncate(keep);
            self.ready.truncate_from = Some(self.ready.truncate_from.map_or(from, |t| t.min(from)));
            self.ready.append.retain(|e| e.index < from);
        }
        self.ready.append.extend(entries.iter().cloned());
        self.log.extend(entries);
        self.ready.must_sync = true;
    }
}

impl Core for UnsafeLowestIdCore {
    type Message = UnsafeMessage;
    const PROTOCOL: &'static str = "unsafe-lowest-id";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        let epoch = match &state.hard_state {
            Some(bytes) => u64::from_le_bytes(
                bytes[..]
                    .try_into()
                    .map_err(|_| RecoverError::CorruptHardState("epoch".into()))?,
            ),
            None => 0,
        };
        let snapshot_index = state.snapshot.as_ref().map_or(0, |s| s.index);
        Ok(UnsafeLowestIdCore {
            id: config.id,
            membership: state
                .snapshot
                .as_ref()
                .map_or(config.initial_membership.clone(), |s| s.membership.clone()),
            now: 0,
            heard: BTreeMap::new(),
            timeout_ticks: config.election_timeout_ticks_min.max(2),
            epoch,
            leader: None,
            snapshot: state.snapshot,
            log: state.entries,
            commit: snapshot_index,
            applied: snapshot_index,
            next_ticket: 0,
            ready: Ready::new(0),
            ready_number: 0,
        })
    }

    fn step(&mut self, from: NodeId, message: UnsafeMessage) {
        self.heard.insert(from, self.now);
        match message {
            UnsafeMessage::Ping => {}
            UnsafeMessage::Append {
                epoch,
                from_index,
                entries,
                commit,
            } => {
                if Some(from) != self.leader || from_index > self.last_index() + 1 {
                    self.ready.messages.push((
                        from,
                        UnsafeMessage::AppendResponse {
                            last_index: self.last_index(),
                        },
                    ));
                    return;
                }
                self.epoch = self.epoch.max(epoch);
                // Entries at or below our commit index stay (we believe them
                // committed); everything above is the leader's.
                let entries: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| e.index > self.commit)
                    .collect();
                if let Some(first) = entries.first().map(|e| e.index) {
                    self.store_entries(first, entries);
                }
                self.commit = self.commit.max(commit.min(self.last_index()));
            }
            UnsafeMessage::Install { snapshot } => {
                if snapshot.index <= self.commit {
                    return;
                }
                self.log.clear();
                self.ready.append.clear();
                self.ready.committed.clear();
                self.ready.truncate_from = Some(snapshot.index + 1);
                self.commit = snapshot.index;
                self.applied = snapshot.index;
                self.ready.snapshot = Some(snapshot.clone());
                self.ready.must_sync = true;
                self.snapshot = Some(snapshot);
            }
            UnsafeMessage::AppendResponse { last_index } => {
                if self.is_leader() && last_index < self.last_index() {
                    if last_index < self.snapshot_index() {
                        if let Some(snapshot) = self.snapshot.clone() {
                            self.ready
                                .messages
                                .push((from, UnsafeMessage::Install { snapshot }));
                        }
                    } else {
                        self.ready.messages.push((
                            from,
                            UnsafeMessage::Append {
                                epoch: self.epoch,
                                from_index: last_index + 1,
                                entries: self.entries_from(last_index + 1),
                                commit: self.commit,
                            },
                        ));
                    }
                }
            }
        }
    }

    fn tick(&mut self) {
        self.now += 1;
        self.elect();
        for peer in self.membership.all_nodes() {
            if peer != self.id {
                self.ready.messages.push((peer, UnsafeMessage::Ping));
            }
        }
        if self.is_leader() && self.now % 5 == 0 {
            self.broadcast(self.last_index() + 1);
        }
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        if !self.is_leader() {
            return Err(Rejected::NotLeader { hint: self.leader });
        }
        let index = self.last_index() + 1;
        let entry = Entry {
            index,
            epoch: self.epoch,
            payload: Payload::Command(command),
        };
        self.store_entries(index, vec![entry]);
        // Commits alone: the bug.
        self.commit = index;
        self.broadcast(index);
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.ready.completed.push((ticket, Ok(index)));
        Ok(ticket)
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        if !self.is_leader() {
            return Err(Rejected::NotLeader { hint: self.leader });
        }
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.ready.completed.push((ticket, Ok(self.commit)));
        Ok(ticket)
    }

    fn change_membership(&mut self, _to: Membership) -> Result<Ticket, Rejected> {
        Err(Rejected::Unsupported {
            what: "membership change".into(),
        })
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        if applied_index > self.applied || applied_index <= self.snapshot_index() {
            return Err(Rejected::InvalidCompaction {
                index: applied_index,
                applied: self.applied,
                snapshot: self.snapshot_index(),
            });
        }
        let offset = (applied_index - self.snapshot_index()) as usize;
        let epoch = self.log[offset - 1].epoch;
        self.log.drain(..offset);
        self.ready.append.retain(|e| e.index > applied_index);
        let snapshot = Snapshot {
            index: applied_index,
            epoch,
            membership: self.membership.clone(),
            protocol_state: Bytes::new(),
            data,
        };
        self.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }

    fn ready(&mut self) -> Option<Ready<UnsafeMessage>> {
        if self.commit > self.applied {
            let entries = self.entries_from(self.applied + 1);
            let count = (self.commit - self.applied) as usize;
            self.ready.committed.extend(entries.into_iter().take(count));
            self.applied = self.commit;
        }
        if self.ready.is_empty() {
            return None;
        }
        self.ready_number += 1;
        let ready = std::mem::replace(&mut self.ready, Ready::new(self.ready_number + 1));
        Some(Ready {
            number: self.ready_number,
            ..ready
        })
    }

    fn status(&self) -> Status {
        Status {
            id: self.id,
            role: if self.is_leader() {
                Role::Leader
            } else {
                Role::Follower
            },
            leader: self.leader,
            epoch: self.epoch,
            commit_index: self.commit,
            applied_index: self.applied,
            last_index: self.last_index(),
            snapshot_index: self.snapshot_index(),
            membership: self.membership.clone(),
            peers: BTreeMap::new(),
        }
    }
}
