//! The learner ("Paxos Made Simple" §2.3) and the log built from chosen
//! slots (§3).
//!
//! A value is chosen in a slot when a quorum of the slot's configuration
//! accepted the same `(slot, ballot)`: every acceptor sends `Accepted` to
//! every learner, which counts them. A learner that counted a quorum but
//! lacks the value (it missed the `Accept`) asks a voter for it (`Ask`).
//! A learner that fell behind (a restart, lost messages, a partition) finds
//! out from the peers' `Learn` beacons and pulls the chosen values
//! (`CatchUp` → `Chosen`), or a snapshot when the prefix is compacted.
//!
//! The log is the sequence of chosen slots: the *frontier* is the highest
//! slot such that every slot up to it is chosen; slots are committed
//! (handed to the state machine) in order as the frontier passes them. A
//! node that sees a higher slot in use while the frontier is stuck for a
//! randomized election timeout runs Paxos on the undecided slots below it
//! (`fill_gaps`): Phase 1 finds any value that may have been chosen, else
//! the slot gets a no-op.

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::{Entry, LogIndex, NodeId, Payload};

use crate::acceptor::PREPARE_HORIZON;
use crate::ballot::Ballot;
use crate::core::PaxosCore;
use crate::membership::{Configs, ALPHA};
use crate::message::{Ask, CatchUp, Chosen, ChosenValue, Learn, SlotBallot};
use crate::proposer::Phase;

/// What this node knows of a peer.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct PeerView {
    /// The peer's chosen frontier (from its beacons).
    pub(crate) frontier: LogIndex,
    /// Last tick any message arrived from it.
    pub(crate) heard: u64,
}

/// The learner's volatile state.
#[derive(Debug, Default)]
pub(crate) struct LearnerState {
    /// Slots above `frontier + 1` known chosen (values in the log).
    pub(crate) chosen_above: BTreeSet<LogIndex>,
    /// `Accepted` notices: slot -> ballot -> acceptors.
    pub(crate) votes: BTreeMap<LogIndex, BTreeMap<Ballot, BTreeSet<NodeId>>>,
    /// Slots known chosen under a ballot whose value this node lacks.
    pub(crate) missing: BTreeMap<LogIndex, Ballot>,
    /// Highest slot seen used anywhere.
    pub(crate) highest_seen: LogIndex,
    /// Peers.
    pub(crate) peers: BTreeMap<NodeId, PeerView>,
    /// Next beacon.
    pub(crate) beacon_deadline: u64,
    /// Next re-ask for missing values.
    pub(crate) ask_deadline: u64,
    /// Earliest next catch-up request.
    pub(crate) catch_up_deadline: u64,
    /// When to fill gaps if the frontier stays stuck.
    pub(crate) gap_deadline: Option<u64>,
    /// Gap-filling rounds since the frontier last moved.
    pub(crate) gap_attempts: u32,
    /// Tick the frontier last moved.
    pub(crate) frontier_moved_at: u64,
}

impl PaxosCore {
    /// Initial timers of an incarnation: every member counts as heard now.
    pub(crate) fn start_timers(&mut self) {
        let now = self.now;
        for node in self.configs.everyone() {
            if node != self.me {
                self.learner.peers.entry(node).or_default().heard = now;
            }
        }
        self.learner.beacon_deadline = now;
        self.learner.frontier_moved_at = now;
    }

    /// Any message from `from`.
    pub(crate) fn heard(&mut self, from: NodeId) {
        if from != self.me {
            self.learner.peers.entry(from).or_default().heard = self.now;
        }
    }

    /// `slot` is in use somewhere.
    pub(crate) fn observe_slot(&mut self, slot: LogIndex) {
        self.learner.highest_seen = self.learner.highest_seen.max(slot);
    }

    /// Phase 2b notices.
    pub(crate) fn on_accepted(&mut self, from: NodeId, message: crate::message::Accepted) {
        for SlotBallot { slot, ballot } in message.slots {
            if slot == 0 || ballot.is_zero() {
                continue;
            }
            self.observe_slot(slot);
            self.note_accepted(slot, ballot, from);
            if slot <= self.frontier
                || self.learner.chosen_above.contains(&slot)
                || slot > self.frontier.saturating_add(PREPARE_HORIZON)
            {
                continue;
            }
            self.learner
                .votes
                .entry(slot)
                .or_default()
                .entry(ballot)
                .or_default()
                .insert(from);
            self.evaluate_votes(slot, ballot);
        }
    }

    /// Learns `(slot, ballot)` if a quorum of the slot's configuration
    /// accepted it.
    fn evaluate_votes(&mut self, slot: LogIndex, ballot: Ballot) {
        if !Configs::known(slot, self.frontier) {
            return;
        }
        let Some(voters) = self.learner.votes.get(&slot).and_then(|v| v.get(&ballot)) else {
            return;
        };
        if !self.configs.at(slot).is_quorum_set(voters) {
            return;
        }
        match self.value_at(slot, ballot) {
            Some((payload, origin)) => self.learn_chosen(
                Entry {
                    index: slot,
                    epoch: ballot.to_epoch(),
                    payload,
                },
                origin,
            ),
            None => {
                if self.learner.missing.insert(slot, ballot).is_none() {
                    self.ask_value(slot, ballot);
                }
            }
        }
    }

    /// The value proposed in `slot` under `ballot` and its origin, if this
    /// node has it.
    pub(crate) fn value_at(&self, slot: LogIndex, ballot: Ballot) -> Option<(Payload, Ballot)> {
        if let Some(instance) = self.proposer.instances.get(&slot) {
            if instance.ballot == ballot {
                if let Phase::Accept {
                    payload, origin, ..
                } = &instance.phase
                {
                    return Some((payload.clone(), *origin));
                }
            }
        }
        self.log
            .get(&slot)
            .filter(|entry| entry.epoch == ballot.to_epoch())
            .map(|entry| (entry.payload.clone(), self.origin_of(slot)))
    }

    /// Asks a node that accepted `(slot, ballot)` for the value.
    fn ask_value(&mut self, slot: LogIndex, ballot: Ballot) {
        let mut candidates: Vec<NodeId> = self
            .learner
            .votes
            .get(&slot)
            .and_then(|v| v.get(&ballot))
            .map(|voters| voters.iter().copied().filter(|n| *n != self.me).collect())
            .unwrap_or_default();
        if ballot.owner() != self.me && !candidates.contains(&ballot.owner()) {
            candidates.push(ballot.owner());
        }
        if candidates.is_empty() {
            return;
        }
        let pick = self.random_ticks(0, candidates.len() as u64) as usize;
        self.output
            .to(candidates[pick])
            .ask
            .push(SlotBallot { slot, ballot });
    }

    /// `entry` is chosen: store it (an accepted value under a higher ballot
    /// is necessarily the same value and is kept) and tell the proposer.
    /// The frontier moves in `advance_frontier`.
    pub(crate) fn learn_chosen(&mut self, entry: Entry, origin: Ballot) {
        let slot = entry.index;
        if slot <= self.frontier || self.learner.chosen_above.contains(&slot) {
            return;
        }
        match self.log.get(&slot) {
            Some(stored) if stored.epoch >= entry.epoch => {
                if stored.payload != entry.payload {
                    // Impossible unless a peer lies or a bug broke P2c.
                    tracing::error!(node = self.me, slot, stored = ?stored, chosen = ?entry,
                        "a value accepted at a higher ballot differs from the chosen value");
                    debug_assert_eq!(
                        stored.payload, entry.payload,
                        "Paxos safety (P2b) broken at slot {slot}"
                    );
                    return;
                }
                if self.origin_of(slot).is_zero() && !origin.is_zero() {
                    self.log_origins.insert(slot, origin);
                }
            }
            _ => {
                self.log.insert(slot, entry.clone());
                self.output.append.insert(slot, entry.clone());
                if origin.is_zero() {
                    self.log_origins.remove(&slot);
                } else {
                    self.log_origins.insert(slot, origin);
                }
            }
        }
        self.acceptor.highest_accepted = self.acceptor.highest_accepted.max(slot);
        self.observe_slot(slot);
        self.learner.chosen_above.insert(slot);
        self.learner.votes.remove(&slot);
        self.learner.missing.remove(&slot);
        let origin = self.origin_of(slot);
        self.slot_chosen(slot, &entry.payload, origin);
    }

    /// Moves the frontier over every chosen slot, committing them in order.
    pub(crate) fn advance_frontier(&mut self) {
        loop {
            let old = self.frontier;
            while self.learner.chosen_above.first() == Some(&(self.frontier + 1)) {
                self.learner.chosen_above.pop_first();
                self.frontier += 1;
                let slot = self.frontier;
                let entry = self
                    .log
                    .get(&slot)
                    .cloned()
                    .expect("a chosen slot has its value");
                if let Payload::Membership(membership) = &entry.payload {
                    self.configs.add_chosen(slot, membership.clone());
                }
                self.output.committed.push(entry);
                self.applied_index = slot;
                self.slot_committed(slot);
            }
            if self.frontier == old {
                return;
            }
            self.output.hard_state_dirty = true;
            self.acceptor.promises = self.acceptor.promises.split_off(&(self.frontier + 1));
            self.learner.votes = self.learner.votes.split_off(&(self.frontier + 1));
            self.learner.missing = self.learner.missing.split_off(&(self.frontier + 1));
            self.learner.gap_deadline = None;
            self.learner.gap_attempts = 0;
            self.learner.frontier_moved_at = self.now;
            self.complete_membership_changes();
            // Slots whose configuration just became known may already have
            // a quorum of votes.
            let newly_known: Vec<(LogIndex, Ballot)> = self
                .learner
                .votes
                .range(old + ALPHA + 1..=self.frontier + ALPHA)
                .flat_map(|(slot, by_ballot)| by_ballot.keys().map(move |b| (*slot, *b)))
                .collect();
            for (slot, ballot) in newly_known {
                self.evaluate_votes(slot, ballot);
            }
        }
    }

    /// Chosen values from a peer.
    pub(crate) fn on_chosen(&mut self, from: NodeId, message: Chosen) {
        self.answered(from);
        let before = self.frontier;
        for ChosenValue { entry, origin } in message.entries {
            let ballot = Ballot::from_epoch(entry.epoch);
            if entry.index == 0 || ballot.is_zero() || entry.index <= self.snapshot_index() {
                continue;
            }
            if let Payload::Membership(membership) = &entry.payload {
                if membership.validate().is_err() || membership.is_joint() {
                    tracing::debug!(node = self.me, from, "invalid chosen membership dropped");
                    continue;
                }
            }
            self.learn_chosen(entry, origin);
        }
        self.advance_frontier();
        let peer_frontier = self.learner.peers.get(&from).map_or(0, |p| p.frontier);
        if self.frontier > before && peer_frontier > self.frontier {
            // Keep pulling while the peer is ahead.
            self.send_catch_up(from);
        }
    }

    /// A learner counted a quorum for these slots and wants the values.
    pub(crate) fn on_ask(&mut self, from: NodeId, message: Ask) {
        for SlotBallot { slot, ballot } in message.slots {
            if let Some(chosen) = self.chosen_value(slot) {
                self.output.to(from).chosen.insert(slot, chosen);
                continue;
            }
            if slot <= self.snapshot_index() {
                self.output.to(from).learn = true;
                continue;
            }
            if let Some((payload, origin)) = self.value_at(slot, ballot) {
                let entry = Entry {
                    index: slot,
                    epoch: ballot.to_epoch(),
                    payload,
                };
                // The asker counted a quorum: the value is chosen.
                self.learn_chosen(entry.clone(), origin);
                self.output
                    .to(from)
                    .chosen
                    .insert(slot, ChosenValue { entry, origin });
            }
        }
    }

    /// A lagging peer pulls chosen values (or the snapshot).
    pub(crate) fn on_catch_up(&mut self, from: NodeId, message: CatchUp) {
        let first = message.from.max(1);
        if first <= self.snapshot_index() {
            self.send_snapshot_chunk(from, message.snapshot);
            return;
        }
        let limits = self.limits();
        let mut bytes = 0;
        // A peer may ask from any slot: past the frontier the chosen prefix
        // has nothing (`range` panics on an empty inclusive range whose start
        // exceeds its end; found by paxos/tests/bad_input.rs).
        let prefix = (first <= self.frontier).then(|| self.log.range(first..=self.frontier));
        let known = prefix.into_iter().flatten().map(|(_, e)| e).chain(
            self.learner
                .chosen_above
                .range(first..)
                .filter_map(|s| self.log.get(s)),
        );
        let mut entries = Vec::new();
        for entry in known {
            let count = entries.len();
            if count >= limits.entries_max
                || (count > 0 && bytes + entry.size_bytes() > limits.bytes_max)
            {
                break;
            }
            bytes += entry.size_bytes();
            entries.push(ChosenValue {
                entry: entry.clone(),
                origin: self.origin_of(entry.index),
            });
        }
        let outbox = self.output.to(from);
        outbox.learn = true;
        for chosen in entries {
            outbox.chosen.insert(chosen.entry.index, chosen);
        }
    }

    /// A peer's beacon.
    pub(crate) fn on_learn(&mut self, from: NodeId, message: Learn) {
        let peer = self.learner.peers.entry(from).or_default();
        peer.frontier = peer.frontier.max(message.chosen);
        self.observe_slot(message.highest);
        if message.chosen > self.frontier {
            let stalled = self.now.saturating_sub(self.learner.frontier_moved_at)
                >= self.config.heartbeat_interval_ticks;
            let far = message.chosen > self.frontier + ALPHA / 2;
            if (stalled || far) && self.now >= self.learner.catch_up_deadline {
                self.send_catch_up(from);
            }
        }
    }

    /// Asks `peer` for the chosen values above the frontier.
    pub(crate) fn send_catch_up(&mut self, peer: NodeId) {
        let cursor = self.incoming_cursor();
        self.output.to(peer).catch_up = Some(CatchUp {
            from: self.frontier + 1,
            snapshot: cursor,
        });
        self.learner.catch_up_deadline = self.now + self.retry_ticks();
    }

    /// Beacons, re-asks for missing values, gap filling.
    pub(crate) fn tick_learner(&mut self) {
        let now = self.now;
        if now >= self.learner.beacon_deadline {
            self.learner.beacon_deadline = now + self.config.heartbeat_interval_ticks.max(1);
            for node in self.configs.everyone() {
                if node != self.me {
                    self.output.to(node).learn = true;
                }
            }
        }
        if now >= self.learner.ask_deadline && !self.learner.missing.is_empty() {
            self.learner.ask_deadline = now + self.retry_ticks();
            let limit = self.limits().entries_max;
            let missing: Vec<(LogIndex, Ballot)> = self
                .learner
                .missing
                .iter()
                .take(limit)
                .map(|(s, b)| (*s, *b))
                .collect();
            for (slot, ballot) in missing {
                self.ask_value(slot, ballot);
            }
        }
        self.tick_gaps();
    }

    /// Fills undecided slots below the highest slot seen once the frontier
    /// has been stuck for a randomized election timeout (growing while it
    /// stays stuck). Slots a live peer has already learned are fetched
    /// from it instead.
    fn tick_gaps(&mut self) {
        let target = self
            .learner
            .highest_seen
            .min(self.frontier.saturating_add(ALPHA));
        if target <= self.frontier {
            self.learner.gap_deadline = None;
            return;
        }
        let now = self.now;
        let (min, max) = (
            self.config.election_timeout_ticks_min.max(1),
            self.config.election_timeout_ticks_max.max(2),
        );
        match self.learner.gap_deadline {
            None => {
                let delay = self.random_ticks(min, max);
                self.learner.gap_deadline = Some(now + delay);
            }
            Some(deadline) if now >= deadline => {
                let window = self.config.election_timeout_ticks_max.max(1);
                let ahead = self
                    .learner
                    .peers
                    .iter()
                    .filter(|(_, p)| now.saturating_sub(p.heard) <= window)
                    .max_by_key(|(id, p)| (p.frontier, std::cmp::Reverse(**id)))
                    .map(|(id, p)| (*id, p.frontier));
                let mut from = self.frontier + 1;
                if let Some((peer, frontier)) = ahead {
                    if frontier > self.frontier {
                        self.send_catch_up(peer);
                        // A peer's beacon may claim any frontier, even
                        // u64::MAX (found by paxos/tests/bad_input.rs).
                        from = frontier.saturating_add(1);
                    }
                }
                self.fill_gaps(from, target);
                self.learner.gap_attempts += 1;
                let shift = self.learner.gap_attempts.min(4);
                let delay = self.random_ticks(min << shift, (max << shift) + 1);
                self.learner.gap_deadline = Some(now + delay);
            }
            Some(_) => {}
        }
    }
}
