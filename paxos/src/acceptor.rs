//! The acceptor ("Paxos Made Simple" §2.2, P1a and the phase descriptions).
//!
//! Per slot an acceptor keeps the highest ballot it promised and the
//! highest-ballot proposal it accepted. Its *promise floor* for a slot is the
//! larger of the two: accepting a proposal under ballot `b` is also a promise
//! not to accept anything below `b`, so once a value is accepted the explicit
//! promise can be dropped from the hard state. Rules:
//!
//! * `Prepare(b)` with `b >=` floor: promise (persist `b` unless the floor
//!   already is `b`) and report the accepted proposal, if any.
//! * `Accept(b, v)` with `b >=` floor: accept (persist the entry
//!   `Entry { index: slot, epoch: b, payload: v }`, which replaces the
//!   previous one) and tell the proposer and every learner (`Accepted`).
//! * Otherwise `Nack` with the floor, so the proposer stops early.
//!
//! Every write goes into the same `Ready` as the reply, so the reply leaves
//! only once the write is durable.
//!
//! A slot this node knows to be chosen is no longer an instance: requests
//! for it are answered with the chosen value (`Chosen`). A slot covered by
//! the snapshot is answered with a `Learn` beacon (the sender is behind and
//! will catch up).

use std::collections::BTreeMap;

use consensus_api::{Entry, LogIndex, NodeId};

use crate::ballot::Ballot;
use crate::core::PaxosCore;
use crate::membership::{Configs, ALPHA};
use crate::message::{
    Accept, AcceptedValue, ChosenValue, NackSlot, Prepare, PromiseSlot, SlotBallot,
};

/// An acceptor ignores Prepare requests for slots this far beyond its chosen
/// frontier (it is lagging and catches up first); this keeps the promises
/// in the hard state bounded.
pub(crate) const PREPARE_HORIZON: u64 = 4 * ALPHA;

/// The acceptor's volatile view of its durable state.
#[derive(Debug, Default)]
pub(crate) struct AcceptorState {
    /// Promises above the frontier that exceed the accepted ballot.
    pub(crate) promises: BTreeMap<LogIndex, Ballot>,
    /// Highest slot with a stored value (accepted or learned), or the
    /// snapshot index.
    pub(crate) highest_accepted: LogIndex,
}

impl PaxosCore {
    /// The ballot of the value stored in `slot`, if any.
    pub(crate) fn accepted_ballot(&self, slot: LogIndex) -> Ballot {
        self.log
            .get(&slot)
            .map_or(Ballot::ZERO, |e| Ballot::from_epoch(e.epoch))
    }

    /// The lowest ballot this acceptor may still accept in `slot`.
    pub(crate) fn promise_floor(&self, slot: LogIndex) -> Ballot {
        let promised = self
            .acceptor
            .promises
            .get(&slot)
            .copied()
            .unwrap_or(Ballot::ZERO);
        promised.max(self.accepted_ballot(slot))
    }

    /// The chosen value of `slot`, if this node knows it.
    pub(crate) fn known_chosen(&self, slot: LogIndex) -> Option<&Entry> {
        if slot <= self.snapshot_index() {
            return None;
        }
        if slot <= self.frontier || self.learner.chosen_above.contains(&slot) {
            return self.log.get(&slot);
        }
        None
    }

    /// The chosen value of `slot` with its origin, if this node knows it.
    pub(crate) fn chosen_value(&self, slot: LogIndex) -> Option<ChosenValue> {
        self.known_chosen(slot).map(|entry| ChosenValue {
            entry: entry.clone(),
            origin: self.origin_of(slot),
        })
    }

    /// Answers a request for a slot that is no longer an open instance.
    /// Returns true when it did.
    fn answer_decided(&mut self, from: NodeId, slot: LogIndex) -> bool {
        if slot <= self.snapshot_index() {
            self.output.to(from).learn = true;
            return true;
        }
        if let Some(chosen) = self.chosen_value(slot) {
            self.output.to(from).chosen.insert(slot, chosen);
            return true;
        }
        false
    }

    /// The promise rule of Phase 1b and 2b for one slot: a `ballot` below
    /// what this acceptor promised for `slot` is refused with a Nack naming
    /// the promise (`None`); otherwise the promise it respects (`Some`).
    fn nack_below_promise(
        &mut self,
        from: NodeId,
        slot: LogIndex,
        ballot: Ballot,
    ) -> Option<Ballot> {
        let floor = self.promise_floor(slot);
        if ballot < floor {
            self.output.to(from).nack.push(NackSlot {
                slot,
                ballot,
                promised: floor,
            });
            return None;
        }
        Some(floor)
    }

    /// Phase 1b.
    pub(crate) fn on_prepare(&mut self, from: NodeId, message: Prepare) {
        for SlotBallot { slot, ballot } in message.slots {
            if slot == 0 || ballot.is_zero() || ballot.owner() != from {
                tracing::debug!(node = self.me, from, slot, %ballot, "malformed Prepare item dropped");
                continue;
            }
            self.observe_slot(slot);
            if self.answer_decided(from, slot) {
                continue;
            }
            if slot > self.frontier.saturating_add(PREPARE_HORIZON) {
                tracing::debug!(
                    node = self.me,
                    from,
                    slot,
                    "Prepare beyond the horizon ignored"
                );
                self.output.to(from).learn = true;
                continue;
            }
            let Some(floor) = self.nack_below_promise(from, slot, ballot) else {
                continue;
            };
            if ballot > floor {
                self.acceptor.promises.insert(slot, ballot);
                self.output.hard_state_dirty = true;
                self.output.hard_state_sync = true;
            }
            let accepted = self.log.get(&slot).map(|entry| AcceptedValue {
                ballot: Ballot::from_epoch(entry.epoch),
                payload: entry.payload.clone(),
                origin: self.origin_of(slot),
            });
            self.output.to(from).promise.push(PromiseSlot {
                slot,
                ballot,
                accepted,
            });
        }
    }

    /// Phase 2b.
    pub(crate) fn on_accept(&mut self, from: NodeId, message: Accept) {
        // The learners to notify, per configuration (a batch nearly always
        // has one).
        let mut recipients: Option<(LogIndex, Vec<NodeId>)> = None;
        for proposal in message.slots {
            let slot = proposal.slot;
            let ballot = proposal.ballot;
            if slot == 0 || ballot.is_zero() || ballot.owner() != from {
                tracing::debug!(node = self.me, from, slot, "malformed Accept item dropped");
                continue;
            }
            if let consensus_api::Payload::Membership(membership) = &proposal.payload {
                if membership.validate().is_err() || membership.is_joint() {
                    tracing::debug!(
                        node = self.me,
                        from,
                        slot,
                        "invalid membership value dropped"
                    );
                    continue;
                }
            }
            self.observe_slot(slot);
            if self.answer_decided(from, slot) {
                continue;
            }
            if self.nack_below_promise(from, slot, ballot).is_none() {
                continue;
            }
            let entry = Entry {
                index: slot,
                epoch: ballot.to_epoch(),
                payload: proposal.payload,
            };
            if self.log.get(&slot) != Some(&entry) {
                self.log.insert(slot, entry.clone());
                self.output.append.insert(slot, entry);
            }
            if proposal.origin.is_zero() {
                self.log_origins.remove(&slot);
            } else {
                self.log_origins.insert(slot, proposal.origin);
            }
            if self
                .acceptor
                .promises
                .get(&slot)
                .is_some_and(|p| *p <= ballot)
            {
                self.acceptor.promises.remove(&slot);
                self.output.hard_state_dirty = true;
            }
            self.acceptor.highest_accepted = self.acceptor.highest_accepted.max(slot);
            let key = if Configs::known(slot, self.frontier) {
                self.configs.start_of(slot)
            } else {
                LogIndex::MAX
            };
            if recipients.as_ref().is_none_or(|(k, _)| *k != key) {
                recipients = Some((key, self.accepted_recipients(slot, from)));
            }
            let (_, learners) = recipients.as_ref().expect("set above");
            for &learner in learners {
                self.output
                    .to(learner)
                    .accepted
                    .push(SlotBallot { slot, ballot });
            }
        }
    }

    /// Who hears about an acceptance in `slot`: the proposer and every node
    /// of the slot's configuration (or of every known configuration when
    /// this node cannot tell the slot's one yet).
    fn accepted_recipients(&self, slot: LogIndex, proposer: NodeId) -> Vec<NodeId> {
        let mut recipients = if Configs::known(slot, self.frontier) {
            self.configs.at(slot).all_nodes()
        } else {
            self.configs.everyone()
        };
        recipients.insert(proposer);
        recipients.insert(self.me);
        recipients.into_iter().collect()
    }
}
