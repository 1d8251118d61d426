//! The proposer ("Paxos Made Simple" §2.2, the two phases; §2.4 on
//! progress; §3 on filling gaps).
//!
//! Every slot is its own instance with its own ballot and its own Phase 1.
//! A client command waits in a queue until the configuration window allows
//! a fresh slot (the next slot above every slot this node has seen used),
//! then runs:
//!
//! 1. **Phase 1**: `Prepare(b)` to the slot's voters. With a quorum of
//!    promises the proposer must propose the value of the highest-ballot
//!    proposal reported, if any (P2c), else it is free.
//! 2. **Phase 2**: `Accept(b, v)` to the voters. The value is chosen once a
//!    quorum accepted it; every learner counts the `Accepted` notices.
//!
//! A command is *bound* to its slot from the moment an `Accept` carrying it
//! is sent: it may then be chosen there, so it stays with that slot until the
//! slot is decided. If the slot is decided with another value, the command
//! moves to a fresh slot (it was never chosen anywhere else: a command only
//! exists where its proposer put it). A command that is not yet bound moves
//! freely: when Phase 1 reports an accepted value (the proposer must adopt
//! it) or is refused (`Nack`).
//!
//! **Linearizability.** Slots are chosen out of order, so a fresh slot is
//! not automatically after every command already chosen. Each `Promise`
//! carries the acceptor's highest accepted slot; a command (or read barrier)
//! keeps slot `s` only if every promise of its Phase 1 reports a highest
//! accepted slot below `s`. A command chosen before the Phase 1 started was
//! accepted by a quorum, which intersects the promise quorum, so it lies
//! below `s`. Otherwise the slot is filled with the adopted value or a
//! no-op, and the command moves up.
//!
//! **Contention.** A refused instance that must still be decided (bound
//! command, gap filler) waits a randomized, exponentially growing backoff
//! before a new Phase 1 with a higher ballot. Safety never depends on it.
//!
//! **Pipelining and batching.** Each `propose` starts an instance at once;
//! all instances started before the next `ready()` travel in one `Prepare`
//! per peer, and their Phase 2 in one `Accept` per peer. Up to `ALPHA` slots
//! above the chosen frontier are in flight.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use consensus_api::{LogIndex, Membership, NodeId, Payload, Rejected, Ticket, TicketCounter};

use crate::ballot::Ballot;
use crate::core::PaxosCore;
use crate::membership::{Configs, ALPHA};
use crate::message::{AcceptedValue, Nack, Promise, Proposal, SlotBallot};

/// A client value this node is responsible for.
#[derive(Clone, Debug)]
pub(crate) enum OwnValue {
    /// An application command.
    Command {
        /// Its ticket.
        ticket: Ticket,
        /// The command.
        command: Bytes,
        /// Tick of the request.
        since: u64,
    },
    /// A configuration change.
    Membership {
        /// Its ticket.
        ticket: Ticket,
        /// The target configuration.
        membership: Membership,
        /// Tick of the request.
        since: u64,
    },
}

impl OwnValue {
    fn payload(&self) -> Payload {
        match self {
            OwnValue::Command { command, .. } => Payload::Command(command.clone()),
            OwnValue::Membership { membership, .. } => Payload::Membership(membership.clone()),
        }
    }

    fn ticket(&self) -> Ticket {
        match self {
            OwnValue::Command { ticket, .. } | OwnValue::Membership { ticket, .. } => *ticket,
        }
    }

    fn since(&self) -> u64 {
        match self {
            OwnValue::Command { since, .. } | OwnValue::Membership { since, .. } => *since,
        }
    }

    fn is_membership(&self) -> bool {
        matches!(self, OwnValue::Membership { .. })
    }
}

/// A read barrier that has no read point yet.
#[derive(Copy, Clone, Debug)]
pub(crate) struct PendingRead {
    /// Its ticket.
    pub(crate) ticket: Ticket,
    /// Tick of the request.
    pub(crate) since: u64,
}

/// Where one instance stands.
#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// Phase 1: collecting promises.
    Prepare {
        /// Promises so far, with the accepted proposal each reported.
        promises: BTreeMap<NodeId, Option<AcceptedValue>>,
        /// Highest accepted slot any promise reported.
        highest: LogIndex,
    },
    /// Phase 2: waiting for the value to be chosen.
    Accept {
        /// The value proposed.
        payload: Payload,
        /// Its origin ([`crate::Proposal::origin`]).
        origin: Ballot,
        /// Acceptors that accepted it.
        accepted: BTreeSet<NodeId>,
    },
    /// Refused: backing off before a new Phase 1.
    Wait,
}

/// One slot this node is driving.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    /// The current ballot.
    pub(crate) ballot: Ballot,
    /// The phase.
    pub(crate) phase: Phase,
    /// The client value riding on this slot.
    pub(crate) own: Option<OwnValue>,
    /// An `Accept` carried `own`: it stays here until the slot is decided.
    pub(crate) bound: bool,
    /// The origin of `own` once bound: the ballot of its first `Accept`.
    pub(crate) origin: Ballot,
    /// Read barriers that will use this slot as read point if Phase 1
    /// qualifies it.
    pub(crate) reads: Vec<PendingRead>,
    /// Keep driving until the slot is decided (a Phase 2 was started, or
    /// the slot is a gap / window filler).
    pub(crate) drive: bool,
    /// Refusals so far (backoff exponent).
    pub(crate) attempts: u32,
    /// Tick of the next retransmission or retry.
    pub(crate) deadline: u64,
}

/// A ticket finished when its slot is committed.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Awaiting {
    /// The ticket.
    pub(crate) ticket: Ticket,
    /// `Some(since)` for a read barrier (which may still fail), `None` for
    /// a chosen command.
    pub(crate) read_since: Option<u64>,
}

/// The proposer's volatile state (lost on restart, with its tickets).
#[derive(Debug, Default)]
pub(crate) struct ProposerState {
    /// Instances by slot.
    pub(crate) instances: BTreeMap<LogIndex, Instance>,
    /// Values waiting for a slot.
    pub(crate) queue: VecDeque<OwnValue>,
    /// Read barriers waiting for an instance.
    pub(crate) reads: Vec<PendingRead>,
    /// Tickets finished when the slot is committed.
    pub(crate) awaiting: BTreeMap<LogIndex, Vec<Awaiting>>,
    /// This node's chosen configuration changes (slot -> ticket), finished
    /// once in force.
    pub(crate) membership_waiting: BTreeMap<LogIndex, Ticket>,
    /// Fill the window up to this slot with no-ops (so that a chosen
    /// configuration change takes effect without traffic).
    pub(crate) pad_until: LogIndex,
    /// Numbers the tickets handed out.
    pub(crate) ticket_counter: TicketCounter,
    /// Last tick each peer answered one of this node's requests.
    pub(crate) answered: BTreeMap<NodeId, u64>,
}

impl PaxosCore {
    /// Client values this node is responsible for, counted in O(1): queued
    /// ones, plus every slot it drives (including no-op fillers) or waits
    /// on, an upper bound that is exact under plain load.
    fn own_outstanding(&self) -> usize {
        self.proposer.queue.len() + self.proposer.instances.len() + self.proposer.awaiting.len()
    }

    /// Queues a client value (`propose`, `change_membership`).
    pub(crate) fn submit(
        &mut self,
        make: impl FnOnce(Ticket, u64) -> OwnValue,
    ) -> Result<Ticket, Rejected> {
        if !self.quorum_reachable() {
            return Err(Rejected::Unavailable);
        }
        if self.own_outstanding() >= self.config.uncommitted_entries_max {
            return Err(Rejected::Overloaded);
        }
        let ticket = self.proposer.ticket_counter.next_ticket();
        let value = make(ticket, self.now);
        self.proposer.queue.push_back(value);
        Ok(ticket)
    }

    /// `read_barrier`: a read point is a slot whose Phase 1 started after
    /// this call and qualified (see the module docs); the ticket finishes
    /// with it once the slot is committed.
    pub(crate) fn submit_read(&mut self) -> Result<Ticket, Rejected> {
        if !self.quorum_reachable() {
            return Err(Rejected::Unavailable);
        }
        if self.proposer.reads.len() >= self.config.uncommitted_entries_max {
            return Err(Rejected::Overloaded);
        }
        let ticket = self.proposer.ticket_counter.next_ticket();
        self.proposer.reads.push(PendingRead {
            ticket,
            since: self.now,
        });
        Ok(ticket)
    }

    /// `change_membership`.
    pub(crate) fn submit_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        to.validate().map_err(Rejected::InvalidMembership)?;
        if to.is_joint() {
            return Err(Rejected::InvalidMembership(
                consensus_api::MembershipError::TargetIsJoint,
            ));
        }
        if to.all_nodes().iter().any(|n| *n > NodeId::from(u32::MAX)) {
            return Err(Rejected::Unsupported {
                what: "node ids above 2^32-1 (ballots encode node ids in 32 bits)".into(),
            });
        }
        let mine_in_flight = self.proposer.queue.iter().any(OwnValue::is_membership)
            || self
                .proposer
                .instances
                .values()
                .any(|i| i.own.as_ref().is_some_and(OwnValue::is_membership))
            || !self.proposer.membership_waiting.is_empty();
        if mine_in_flight || self.configs.change_pending_at(self.frontier + 1) {
            return Err(Rejected::ChangeInProgress);
        }
        self.submit(|ticket, since| OwnValue::Membership {
            ticket,
            membership: to,
            since,
        })
    }

    /// The next slot nobody is known to use.
    fn next_fresh_slot(&self) -> LogIndex {
        // Saturating: a peer may report any slot, even u64::MAX (found by
        // paxos/tests/bad_input.rs); that slot is beyond the configuration
        // window, so `pump` starts nothing there.
        self.learner
            .highest_seen
            .max(self.frontier)
            .saturating_add(1)
    }

    /// Starts instances for queued values, read barriers and window
    /// padding, as far as the configuration window allows.
    pub(crate) fn pump(&mut self) {
        loop {
            let slot = self.next_fresh_slot();
            if !Configs::known(slot, self.frontier) {
                return;
            }
            if let Some(own) = self.proposer.queue.pop_front() {
                let reads = std::mem::take(&mut self.proposer.reads);
                self.start_instance(slot, Some(own), reads, false);
            } else if !self.proposer.reads.is_empty() {
                let reads = std::mem::take(&mut self.proposer.reads);
                self.start_instance(slot, None, reads, false);
            } else if slot <= self.proposer.pad_until {
                self.start_instance(slot, None, Vec::new(), true);
            } else {
                return;
            }
        }
    }

    /// Starts Phase 1 in a fresh slot. Nobody has used the slot, so the
    /// current ballot is new there.
    fn start_instance(
        &mut self,
        slot: LogIndex,
        own: Option<OwnValue>,
        reads: Vec<PendingRead>,
        drive: bool,
    ) {
        let instance = Instance {
            ballot: self.current_ballot(),
            phase: Phase::Prepare {
                promises: BTreeMap::new(),
                highest: 0,
            },
            own,
            bound: false,
            origin: Ballot::ZERO,
            reads,
            drive,
            attempts: 0,
            deadline: self.now + self.retry_ticks(),
        };
        let previous = self.proposer.instances.insert(slot, instance);
        assert!(
            previous.is_none(),
            "a fresh slot is above every slot with an instance"
        );
        self.observe_slot(slot);
        self.send_prepare(slot);
    }

    /// Runs Paxos on undecided slots `from..=to` that this node does not
    /// drive yet, proposing a no-op unless Phase 1 finds a value (§3: "fill
    /// the gaps"). The caller bounds the range by the `ALPHA` window.
    pub(crate) fn fill_gaps(&mut self, from: LogIndex, to: LogIndex) {
        let slots: Vec<LogIndex> = (from.max(self.frontier + 1)..=to)
            .filter(|s| {
                !self.learner.chosen_above.contains(s) && !self.proposer.instances.contains_key(s)
            })
            .collect();
        if slots.is_empty() {
            return;
        }
        let ballot = self.next_ballot();
        for slot in slots {
            tracing::debug!(node = self.me, slot, %ballot, "filling a gap");
            let instance = Instance {
                ballot,
                phase: Phase::Prepare {
                    promises: BTreeMap::new(),
                    highest: 0,
                },
                own: None,
                bound: false,
                origin: Ballot::ZERO,
                reads: Vec::new(),
                drive: true,
                attempts: 0,
                deadline: self.now + self.retry_ticks(),
            };
            let previous = self.proposer.instances.insert(slot, instance);
            assert!(
                previous.is_none(),
                "a gap filler never replaces an instance"
            );
            self.send_prepare(slot);
        }
    }

    /// Sends (or resends) Phase 1a to the voters that have not answered.
    fn send_prepare(&mut self, slot: LogIndex) {
        let Some(instance) = self.proposer.instances.get(&slot) else {
            return;
        };
        let Phase::Prepare { promises, .. } = &instance.phase else {
            return;
        };
        let item = SlotBallot {
            slot,
            ballot: instance.ballot,
        };
        let mut voters = self.configs.voters_of(slot);
        voters.retain(|v| !promises.contains_key(v));
        for voter in voters {
            self.output.to(voter).prepare.push(item);
        }
    }

    /// Sends (or resends) Phase 2a to the voters that have not accepted.
    fn send_accept(&mut self, slot: LogIndex) {
        let Some(instance) = self.proposer.instances.get(&slot) else {
            return;
        };
        let Phase::Accept {
            payload,
            origin,
            accepted,
        } = &instance.phase
        else {
            return;
        };
        let proposal = Proposal {
            slot,
            ballot: instance.ballot,
            payload: payload.clone(),
            origin: *origin,
        };
        let mut voters = self.configs.voters_of(slot);
        voters.retain(|v| !accepted.contains(v));
        for voter in voters {
            self.output.to(voter).accept.push(proposal.clone());
        }
    }

    /// Phase 1b arrives.
    pub(crate) fn on_promise(&mut self, from: NodeId, message: Promise) {
        self.answered(from);
        self.observe_slot(message.highest_accepted);
        let mut complete = Vec::new();
        for item in message.slots {
            let Some(instance) = self.proposer.instances.get_mut(&item.slot) else {
                continue;
            };
            if instance.ballot != item.ballot {
                continue;
            }
            let Phase::Prepare { promises, highest } = &mut instance.phase else {
                continue;
            };
            promises.insert(from, item.accepted);
            *highest = (*highest).max(message.highest_accepted);
            if self
                .configs
                .at(item.slot)
                .is_quorum(|n| promises.contains_key(&n))
            {
                complete.push(item.slot);
            }
        }
        for slot in complete {
            self.phase1_done(slot);
        }
    }

    /// A quorum promised: pick the value (P2c) and start Phase 2.
    fn phase1_done(&mut self, slot: LogIndex) {
        let now = self.now;
        let retry = self.retry_ticks();
        let Some(instance) = self.proposer.instances.get_mut(&slot) else {
            return;
        };
        let Phase::Prepare { promises, highest } =
            std::mem::replace(&mut instance.phase, Phase::Wait)
        else {
            return;
        };
        let adopted = promises
            .into_values()
            .flatten()
            .max_by_key(|accepted| accepted.ballot);
        // The slot is above every value accepted by the quorum, hence above
        // every value chosen before this Phase 1 started.
        let qualifies = adopted.is_none() && highest < slot;
        let (payload, origin) = match adopted {
            Some(accepted) => (accepted.payload, accepted.origin),
            None if instance.own.is_some() && (instance.bound || qualifies) => {
                if !instance.bound {
                    // The command is born in this slot under this ballot.
                    instance.bound = true;
                    instance.origin = instance.ballot;
                }
                let own = instance.own.as_ref().expect("checked");
                (own.payload(), instance.origin)
            }
            None => (Payload::Noop, instance.ballot),
        };
        let reads = std::mem::take(&mut instance.reads);
        let relocated = if instance.bound {
            None
        } else {
            instance.own.take()
        };
        assert_eq!(
            instance.bound,
            !instance.origin.is_zero(),
            "Phase 2 starts with a value bound exactly when it has an origin"
        );
        instance.phase = Phase::Accept {
            payload,
            origin,
            accepted: BTreeSet::new(),
        };
        instance.drive = true;
        instance.deadline = now + retry;
        if qualifies {
            let list = self.proposer.awaiting.entry(slot).or_default();
            list.extend(reads.iter().map(|r| Awaiting {
                ticket: r.ticket,
                read_since: Some(r.since),
            }));
        } else {
            self.proposer.reads.extend(reads);
        }
        if let Some(own) = relocated {
            self.proposer.queue.push_front(own);
        }
        self.send_accept(slot);
    }

    /// An acceptor accepted one of this node's proposals.
    pub(crate) fn note_accepted(&mut self, slot: LogIndex, ballot: Ballot, from: NodeId) {
        if let Some(instance) = self.proposer.instances.get_mut(&slot) {
            if instance.ballot == ballot {
                if let Phase::Accept { accepted, .. } = &mut instance.phase {
                    accepted.insert(from);
                    self.proposer.answered.insert(from, self.now);
                }
            }
        }
    }

    /// Refusals arrive.
    pub(crate) fn on_nack(&mut self, from: NodeId, message: Nack) {
        self.answered(from);
        for item in message.slots {
            self.observe_ballot(item.promised);
            let Some(instance) = self.proposer.instances.get_mut(&item.slot) else {
                continue;
            };
            if instance.ballot != item.ballot || matches!(instance.phase, Phase::Wait) {
                continue;
            }
            instance.attempts += 1;
            let attempts = instance.attempts;
            if matches!(instance.phase, Phase::Prepare { .. }) {
                let reads = std::mem::take(&mut instance.reads);
                let relocated = if instance.bound {
                    None
                } else {
                    instance.own.take()
                };
                let drive = instance.drive || instance.bound;
                self.proposer.reads.extend(reads);
                if let Some(own) = relocated {
                    self.proposer.queue.push_front(own);
                }
                if !drive {
                    // Another proposer holds the slot; it (or a gap filler)
                    // decides it.
                    self.proposer.instances.remove(&item.slot);
                    continue;
                }
            }
            let backoff = self.backoff_ticks(attempts);
            if let Some(instance) = self.proposer.instances.get_mut(&item.slot) {
                assert!(instance.drive, "only a driven instance backs off");
                instance.phase = Phase::Wait;
                instance.deadline = self.now + backoff;
            }
        }
    }

    /// A randomized delay growing with the number of refusals.
    pub(crate) fn backoff_ticks(&mut self, attempts: u32) -> u64 {
        let base = self.config.heartbeat_interval_ticks.max(1);
        let cap = self.config.election_timeout_ticks_max.max(base) * 4;
        let max = base.saturating_mul(1 << attempts.min(10)).min(cap);
        self.random_ticks(1, max + 1)
    }

    /// `slot` is decided with `payload` born under `origin`: finish or move
    /// what rode on it.
    ///
    /// The command rode on this slot only if it was bound here. It won if
    /// the chosen value has its origin. A chosen value with another known
    /// origin is another proposal (even if its bytes are the same): the
    /// command moves on. Without a known origin (acceptors restarted and
    /// forgot it) an equal value may or may not be this command, so the
    /// ticket finishes `OutcomeUnknown` rather than risk a duplicate or a
    /// false acknowledgement.
    pub(crate) fn slot_chosen(&mut self, slot: LogIndex, payload: &Payload, origin: Ballot) {
        let Some(instance) = self.proposer.instances.remove(&slot) else {
            return;
        };
        self.proposer.reads.extend(instance.reads);
        let Some(own) = instance.own else {
            return;
        };
        let same_value = own.payload() == *payload;
        if instance.bound && same_value && origin.is_zero() {
            tracing::debug!(node = self.me, slot, "origin of the chosen value unknown");
            self.output
                .complete(own.ticket(), Err(Rejected::OutcomeUnknown { hint: None }));
            return;
        }
        if instance.bound && same_value && origin == instance.origin {
            match own {
                OwnValue::Command { ticket, .. } => {
                    self.proposer
                        .awaiting
                        .entry(slot)
                        .or_default()
                        .push(Awaiting {
                            ticket,
                            read_since: None,
                        });
                }
                OwnValue::Membership { ticket, .. } => {
                    self.proposer.membership_waiting.insert(slot, ticket);
                    self.proposer.pad_until = self.proposer.pad_until.max(slot + ALPHA - 1);
                }
            }
        } else {
            // The slot went to another value: the command was never chosen
            // anywhere, propose it again higher up.
            self.proposer.queue.push_front(own);
        }
    }

    /// Finishes the tickets of a committed slot.
    pub(crate) fn slot_committed(&mut self, slot: LogIndex) {
        if let Some(list) = self.proposer.awaiting.remove(&slot) {
            for awaiting in list {
                self.output.complete(awaiting.ticket, Ok(slot));
            }
        }
    }

    /// Finishes configuration changes that are now in force.
    pub(crate) fn complete_membership_changes(&mut self) {
        while let Some((&slot, &ticket)) = self.proposer.membership_waiting.iter().next() {
            if slot + ALPHA - 1 > self.frontier {
                return;
            }
            self.proposer.membership_waiting.remove(&slot);
            self.output.complete(ticket, Ok(slot));
        }
    }

    /// Peer answered one of this node's requests.
    pub(crate) fn answered(&mut self, from: NodeId) {
        self.proposer.answered.insert(from, self.now);
    }

    /// Retransmissions, retries after backoff, request deadlines.
    pub(crate) fn tick_proposer(&mut self) {
        let now = self.now;
        let due: Vec<LogIndex> = self
            .proposer
            .instances
            .iter()
            .filter(|(_, i)| i.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        let retry = self.retry_ticks();
        for slot in due {
            let Some(instance) = self.proposer.instances.get_mut(&slot) else {
                continue;
            };
            instance.deadline = now + retry;
            match instance.phase {
                Phase::Prepare { .. } => {
                    if !instance.drive && instance.own.is_none() && instance.reads.is_empty() {
                        self.proposer.instances.remove(&slot);
                    } else {
                        self.send_prepare(slot);
                    }
                }
                Phase::Accept { .. } => self.send_accept(slot),
                Phase::Wait => {
                    let ballot = self.next_ballot();
                    if let Some(instance) = self.proposer.instances.get_mut(&slot) {
                        if ballot <= instance.ballot {
                            // The ballot counter is exhausted: a peer (or the
                            // store) reported counter u32::MAX, and no higher
                            // ballot exists. Waiting is all that is safe
                            // (found by paxos/tests/bad_input.rs; this was an
                            // assert!, so one such message stopped the node).
                            tracing::error!(
                                node = self.me,
                                slot,
                                %ballot,
                                "ballot counter exhausted: no higher ballot to retry with"
                            );
                            continue;
                        }
                        instance.ballot = ballot;
                        instance.phase = Phase::Prepare {
                            promises: BTreeMap::new(),
                            highest: 0,
                        };
                    }
                    self.send_prepare(slot);
                }
            }
        }
        self.expire_requests();
    }

    /// True when a quorum of the current configuration has been heard from
    /// within the last `election_timeout_ticks_max` ticks (beacons arrive
    /// every `heartbeat_interval_ticks`).
    pub(crate) fn quorum_reachable(&self) -> bool {
        let window = self.config.election_timeout_ticks_max.max(1);
        self.current_membership().is_quorum(|n| {
            n == self.me
                || self
                    .learner
                    .peers
                    .get(&n)
                    .is_some_and(|p| self.now.saturating_sub(p.heard) <= window)
        })
    }

    fn quorum_answered_recently(&self) -> bool {
        let window = self.config.election_timeout_ticks_max.max(1);
        self.current_membership().is_quorum(|n| {
            n == self.me
                || self
                    .proposer
                    .answered
                    .get(&n)
                    .is_some_and(|t| self.now.saturating_sub(*t) <= window)
        })
    }

    /// Fails requests that cannot complete: every request when no quorum
    /// has been heard from for `election_timeout_ticks_max` ticks (a
    /// minority side of a partition), and a request older than twice that
    /// when no quorum answered this node's own requests lately (one-way
    /// cuts). Values never sent in an `Accept` had no effect:
    /// `Unavailable`; bound ones may still be chosen: `OutcomeUnknown`.
    fn expire_requests(&mut self) {
        let reachable = self.quorum_reachable();
        let answered = self.quorum_answered_recently();
        if reachable && answered {
            return;
        }
        let now = self.now;
        let age_max = self.config.election_timeout_ticks_max.max(1) * 2;
        let expired = |since: u64| !reachable || now.saturating_sub(since) >= age_max;
        let mut failed: Vec<(Ticket, Rejected)> = Vec::new();
        self.proposer.queue.retain(|own| {
            if expired(own.since()) {
                failed.push((own.ticket(), Rejected::Unavailable));
                false
            } else {
                true
            }
        });
        self.proposer.reads.retain(|read| {
            if expired(read.since) {
                failed.push((read.ticket, Rejected::Unavailable));
                false
            } else {
                true
            }
        });
        for instance in self.proposer.instances.values_mut() {
            instance.reads.retain(|read| {
                if expired(read.since) {
                    failed.push((read.ticket, Rejected::Unavailable));
                    false
                } else {
                    true
                }
            });
            if instance
                .own
                .as_ref()
                .is_some_and(|own| expired(own.since()))
            {
                let own = instance.own.take().expect("checked");
                let error = if instance.bound {
                    Rejected::OutcomeUnknown { hint: None }
                } else {
                    Rejected::Unavailable
                };
                failed.push((own.ticket(), error));
            }
        }
        for list in self.proposer.awaiting.values_mut() {
            list.retain(|a| match a.read_since {
                Some(since) if expired(since) => {
                    failed.push((a.ticket, Rejected::Unavailable));
                    false
                }
                _ => true,
            });
        }
        self.proposer.awaiting.retain(|_, list| !list.is_empty());
        for (ticket, error) in failed {
            tracing::debug!(node = self.me, %ticket, %error, "request failed");
            self.output.complete(ticket, Err(error));
        }
    }

    /// The proposer's invariants, checked at the end of every `step` and
    /// `tick` with the core's own (`PaxosCore::check_invariants`): what
    /// each phase of an instance implies, and that every outstanding ticket
    /// is held in exactly one place. O(instances + tickets): debug builds
    /// (and the simulator) only.
    pub(crate) fn check_proposer_invariants(&self) {
        let current = self.current_ballot();
        for (slot, instance) in &self.proposer.instances {
            debug_assert!(*slot > 0, "slot 0 is never driven");
            debug_assert_eq!(
                instance.ballot.owner(),
                self.me,
                "an instance runs under this node's own ballots"
            );
            debug_assert!(
                instance.ballot <= current,
                "an instance's ballot was handed out by this node's counter"
            );
            debug_assert_eq!(
                instance.bound,
                !instance.origin.is_zero(),
                "a value is bound exactly when it has an origin"
            );
            debug_assert!(
                !instance.bound || instance.origin <= instance.ballot,
                "a bound value's origin is one of the instance's own ballots"
            );
            debug_assert!(
                !instance.bound || instance.drive,
                "a bound value is driven until its slot is decided"
            );
            match &instance.phase {
                Phase::Prepare { .. } => {}
                Phase::Accept { .. } => debug_assert!(
                    instance.drive,
                    "an instance in Phase 2 is driven until decided"
                ),
                Phase::Wait => debug_assert!(
                    instance.drive,
                    "only a driven instance backs off (others are dropped)"
                ),
            }
            debug_assert!(
                matches!(instance.phase, Phase::Prepare { .. }) || instance.reads.is_empty(),
                "read barriers leave an instance when its Phase 1 ends"
            );
        }
        debug_assert!(
            {
                let mut tickets = BTreeSet::new();
                let queued = self.proposer.queue.iter().map(OwnValue::ticket);
                let riding = self
                    .proposer
                    .instances
                    .values()
                    .flat_map(|i| i.own.iter().map(OwnValue::ticket));
                let reads = self
                    .proposer
                    .reads
                    .iter()
                    .chain(self.proposer.instances.values().flat_map(|i| &i.reads))
                    .map(|r| r.ticket);
                let awaiting = self.proposer.awaiting.values().flatten().map(|a| a.ticket);
                let changes = self.proposer.membership_waiting.values().copied();
                queued
                    .chain(riding)
                    .chain(reads)
                    .chain(awaiting)
                    .chain(changes)
                    .all(|ticket| tickets.insert(ticket))
            },
            "every outstanding ticket is held in exactly one place"
        );
    }

    /// Drops the instances of slots now covered by an installed snapshot.
    pub(crate) fn drop_instances_through(&mut self, index: LogIndex) {
        let kept = self.proposer.instances.split_off(&(index + 1));
        let covered = std::mem::replace(&mut self.proposer.instances, kept);
        for (_, instance) in covered {
            self.proposer.reads.extend(instance.reads);
            if let Some(own) = instance.own {
                if instance.bound {
                    // Decided, but the value is not known here.
                    self.output
                        .complete(own.ticket(), Err(Rejected::OutcomeUnknown { hint: None }));
                } else {
                    self.proposer.queue.push_front(own);
                }
            }
        }
        let kept = self.proposer.awaiting.split_off(&(index + 1));
        let covered = std::mem::replace(&mut self.proposer.awaiting, kept);
        for (slot, list) in covered {
            for awaiting in list {
                self.output.complete(awaiting.ticket, Ok(slot));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn own_value_payloads() {
        let own = OwnValue::Command {
            ticket: Ticket(1),
            command: Bytes::from_static(b"x"),
            since: 0,
        };
        assert_eq!(own.payload(), Payload::Command(Bytes::from_static(b"x")));
        assert!(!own.is_membership());
        assert_eq!(own.ticket(), Ticket(1));
    }
}
