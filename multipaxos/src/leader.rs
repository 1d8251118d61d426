//! The distinguished proposer ("Paxos Made Simple" §3; "Paxos Made
//! Moderately Complex" §3, the leader and its commanders): Phase 2 only,
//! pipelined and batched, with the chosen frontier piggybacked.
//!
//! * **Recovery.** Right after Phase 1 the leader re-proposes, under its
//!   own ballot, the value of every slot some promiser accepted (highest
//!   ballot wins) and a no-op in every gap, before any new command: one
//!   batch of `batch_entries_max` slots at a time, the next once the
//!   uncommitted window has room (at most one batch per input, so a single
//!   voter, which chooses each batch at once, fills a far gap over many
//!   ticks instead of in one unbounded call).
//! * **Pipelining and batching.** New commands get the next slots at once;
//!   [`Core::ready`](consensus_api::Core::ready) sends each peer Accepts of
//!   up to `batch_entries_max` consecutive slots / `batch_bytes_max` bytes,
//!   with at most `inflight_messages_max` unanswered Accepts per peer. A
//!   peer that stops answering is probed with one Accept at a time; an
//!   Accept unanswered for two heartbeat intervals is resent from the
//!   peer's first unaccepted slot (go-back-N).
//! * **Chosen.** Slot `i` is chosen when a quorum of the configuration
//!   deciding `i` accepted it under the leader's ballot; the frontier only
//!   moves over consecutive chosen slots. It travels in every Accept and
//!   Heartbeat.
//! * **Failure detection and availability.** Heartbeats go out every
//!   `heartbeat_interval_ticks`. With `check_quorum`, a leader that has not
//!   heard from a quorum within two heartbeat intervals rejects requests
//!   with `Unavailable` (fail fast on a minority), and one that has not
//!   heard from a quorum within `election_timeout_ticks_min` steps down.
//! * **Reads.** `read_barrier` takes the read index (the frontier, or the
//!   last recovered slot if higher), then a heartbeat round: a quorum of
//!   answers to a round started after the call proves no higher ballot
//!   finished Phase 1 before it, so no write the read could miss was
//!   acknowledged. No lease is used (see the crate docs).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use consensus_api::{
    Entry, LogIndex, Membership, MembershipError, NodeId, Payload, Rejected, Ticket,
};

use crate::ballot::Ballot;
use crate::core::{MultiPaxosCore, Role};
use crate::election::{evaluate_phase1, Phase1, PromiseData};
use crate::message::{Accept, Accepted, Heartbeat, HeartbeatResponse, Message, Prepare};

/// One unanswered Accept.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inflight {
    /// First slot sent.
    pub(crate) first: LogIndex,
    /// Last slot sent.
    pub(crate) last: LogIndex,
    /// Tick it was sent at.
    pub(crate) sent_at: u64,
}

/// What the leader knows of one peer.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Next slot to send.
    pub(crate) next: LogIndex,
    /// Unanswered Accepts.
    pub(crate) inflight: VecDeque<Inflight>,
    /// The peer did not answer in time: one Accept at a time until it does.
    pub(crate) probing: bool,
    /// The peer's reported chosen frontier.
    pub(crate) commit: LogIndex,
    /// Highest slot the peer holds as far as the leader knows (reported
    /// frontier, extended by consecutive acceptances).
    pub(crate) match_index: LogIndex,
    /// Ticks since the peer last answered.
    pub(crate) ticks_since_heard: u64,
    /// Highest heartbeat round the peer answered.
    pub(crate) acked_round: u64,
}

impl Progress {
    fn new(next: LogIndex) -> Progress {
        Progress {
            next,
            inflight: VecDeque::new(),
            probing: false,
            commit: 0,
            match_index: 0,
            ticks_since_heard: 0,
            acked_round: 0,
        }
    }
}

/// A read barrier waiting for its quorum round and its index.
#[derive(Copy, Clone, Debug)]
pub(crate) struct PendingRead {
    ticket: Ticket,
    round: u64,
    index: Option<LogIndex>,
}

/// Everything only a leader has.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// The ballot this node leads with (equal to its promise).
    pub(crate) ballot: Ballot,
    /// Promises for `ballot`, kept to evaluate the slots of a new
    /// configuration (entries dropped once recovery is over).
    pub(crate) promises: BTreeMap<NodeId, PromiseData>,
    /// Still re-proposing recovered values (in batches: the slots after
    /// `last_proposed` up to the end of the recovered run), or waiting for
    /// promises of a new configuration: new commands wait.
    pub(crate) recovering: bool,
    /// A batch of recovered values is being proposed: the frontier it moves
    /// (a single voter chooses at once) does not start the next batch from
    /// inside this one, so each input proposes at most one batch.
    pub(crate) proposing_recovered: bool,
    /// Slot of a proposed configuration entry not chosen yet: nothing is
    /// proposed after it until it is (its configuration decides those slots).
    pub(crate) pending_config: Option<LogIndex>,
    /// Highest slot proposed under `ballot` (or the frontier at takeover).
    pub(crate) last_proposed: LogIndex,
    /// Highest slot recovered in Phase 1: reads wait for it to be chosen.
    pub(crate) read_floor: LogIndex,
    /// Acceptors of each proposed, not yet chosen slot.
    pub(crate) slots: BTreeMap<LogIndex, BTreeSet<NodeId>>,
    /// Every other node of the configuration in force.
    pub(crate) peers: BTreeMap<NodeId, Progress>,
    /// Requests accepted while recovering or reconfiguring.
    pub(crate) waiting: VecDeque<(Ticket, Payload)>,
    /// Read barriers in progress.
    pub(crate) reads: Vec<PendingRead>,
    /// Current heartbeat round.
    pub(crate) round: u64,
    /// Send heartbeats at the next flush.
    pub(crate) heartbeat_due: bool,
    /// The frontier moved since the last flush: a peer that gets no Accept
    /// (which carries the frontier) in that flush gets a heartbeat, so
    /// followers learn what is chosen one round trip after it is, not a
    /// heartbeat interval later.
    pub(crate) commit_unannounced: bool,
    /// Ticks since the last heartbeat.
    pub(crate) heartbeat_elapsed: u64,
    /// Send Prepares to voters that have not promised `ballot` yet, at the
    /// next evaluation that needs them (set every heartbeat interval).
    pub(crate) prepare_due: bool,
}

impl LeaderState {
    /// Role invariants.
    pub(crate) fn check(&self, core: &MultiPaxosCore) {
        let commit = core.log.commit();
        assert_eq!(
            self.ballot, core.promised,
            "a leader's promise is its own ballot"
        );
        assert_eq!(
            self.ballot.node(),
            core.config.id,
            "leading with a foreign ballot"
        );
        assert!(
            self.last_proposed >= commit || self.slots.is_empty(),
            "proposals below the frontier"
        );
        let first = self.slots.keys().next().copied();
        let last = self.slots.keys().next_back().copied();
        assert!(
            first.is_none_or(|s| s > commit) && last.is_none_or(|s| s <= self.last_proposed),
            "tracked slots outside (commit, last proposed]"
        );
        if let Some(slot) = self.pending_config {
            assert!(
                slot > commit && slot == self.last_proposed,
                "nothing is proposed after a pending configuration"
            );
        }
        debug_assert!(
            self.last_proposed <= commit
                || core
                    .log
                    .range(commit + 1, self.last_proposed)
                    .all(|e| e.epoch == self.ballot.epoch()),
            "a proposed slot holds a value of another ballot"
        );
        debug_assert!(
            (commit + 1..=self.last_proposed).all(|s| core.log.get(s).is_some()),
            "a proposed slot is missing"
        );
    }
}

impl MultiPaxosCore {
    /// Phase 1 is complete: lead with `ballot`, re-proposing `values` (the
    /// first batch of the recovered run; `more` when batches follow).
    pub(crate) fn become_leader(
        &mut self,
        ballot: Ballot,
        promises: BTreeMap<NodeId, PromiseData>,
        values: Vec<Entry>,
        ends_with_config: bool,
        more: bool,
    ) {
        tracing::debug!(node = self.config.id, %ballot, recovered = values.len(), "leader");
        let commit = self.log.commit();
        let me = self.config.id;
        let peers = self
            .log
            .membership()
            .all_nodes()
            .into_iter()
            .filter(|n| *n != me)
            .map(|n| (n, Progress::new(commit + 1)))
            .collect();
        self.leader_contact = None;
        self.role = Role::Leader(Box::new(LeaderState {
            ballot,
            promises,
            recovering: true,
            proposing_recovered: false,
            pending_config: None,
            last_proposed: commit,
            read_floor: commit,
            slots: BTreeMap::new(),
            peers,
            waiting: VecDeque::new(),
            reads: Vec::new(),
            round: 0,
            heartbeat_due: true,
            commit_unannounced: false,
            heartbeat_elapsed: 0,
            prepare_due: true,
        }));
        self.propose_recovered(values, ends_with_config, more);
    }

    /// How many recovered slots the next batch may propose when `in_flight`
    /// slots are proposed and not chosen: one Accept's worth
    /// (`batch_entries_max`), within the uncommitted window
    /// (`uncommitted_entries_max`); 0 when the window is full.
    pub(crate) fn recovery_batch_max(&self, in_flight: u64) -> usize {
        let room = (self.config.uncommitted_entries_max as u64).saturating_sub(in_flight);
        room.min(self.config.batch_entries_max as u64) as usize
    }

    fn leader_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            Role::Leader(leader) => Some(leader),
            _ => None,
        }
    }

    fn leader(&self) -> Option<&LeaderState> {
        match &self.role {
            Role::Leader(leader) => Some(leader),
            _ => None,
        }
    }

    /// Proposes a batch of recovered values (consecutive slots after
    /// `last_proposed`); `more`: the recovered run goes on after it.
    fn propose_recovered(&mut self, values: Vec<Entry>, ends_with_config: bool, more: bool) {
        if let Some(leader) = self.leader_mut() {
            leader.proposing_recovered = true;
        }
        for entry in values {
            let slot = entry.index;
            let is_config = matches!(entry.payload, Payload::Membership(_));
            self.write_entry(entry);
            let me = self.config.id;
            let Some(leader) = self.leader_mut() else {
                return;
            };
            leader.slots.insert(slot, BTreeSet::from([me]));
            leader.last_proposed = slot;
            leader.read_floor = leader.read_floor.max(slot);
            if is_config {
                leader.pending_config = Some(slot);
            }
        }
        let Some(leader) = self.leader_mut() else {
            return;
        };
        leader.recovering = ends_with_config || more;
        if !leader.recovering {
            for promise in leader.promises.values_mut() {
                promise.entries.clear();
            }
        }
        self.advance_leader_commit();
        self.drain_waiting();
        if let Some(leader) = self.leader_mut() {
            leader.proposing_recovered = false;
        }
    }

    /// Re-runs the Phase 1 verdict for the slots after the last proposed
    /// one: the next batch of a recovered run once the pipeline has room,
    /// or the slots after a configuration once it is chosen (or when more
    /// promises arrive). At most one batch per input (see
    /// `proposing_recovered`).
    pub(crate) fn leader_evaluate(&mut self) {
        let commit = self.log.commit();
        let Some(leader) = self.leader() else { return };
        if !leader.recovering || leader.pending_config.is_some() || leader.proposing_recovered {
            return;
        }
        let limit = self.recovery_batch_max(leader.last_proposed.saturating_sub(commit));
        if limit == 0 {
            return;
        }
        let ballot = leader.ballot;
        let from = leader.last_proposed.max(commit) + 1;
        match evaluate_phase1(
            &self.log,
            self.config.id,
            ballot,
            &leader.promises,
            from,
            limit,
        ) {
            Phase1::NeedPromises(missing) => {
                if leader.prepare_due {
                    for node in missing {
                        self.send(
                            node,
                            Message::Prepare(Prepare {
                                ballot,
                                from: commit + 1,
                            }),
                        );
                    }
                    if let Some(leader) = self.leader_mut() {
                        leader.prepare_due = false;
                    }
                }
            }
            Phase1::NeedCatchUp(node) => {
                let goal = leader.promises.get(&node).map_or(0, |p| p.commit);
                self.want_catch_up(node, goal);
            }
            Phase1::Complete {
                values,
                ends_with_config,
                more,
            } => self.propose_recovered(values, ends_with_config, more),
        }
    }

    /// The checks every client request goes through at a leader.
    fn admit(&self, new_slots: usize) -> Result<(), Rejected> {
        let Some(leader) = self.leader() else {
            return Err(Rejected::NotLeader {
                hint: self.leader_hint(),
            });
        };
        if self.config.check_quorum
            && !self.quorum_heard_within(2 * self.config.heartbeat_interval_ticks + 2)
        {
            return Err(Rejected::Unavailable);
        }
        let uncommitted =
            leader.last_proposed.saturating_sub(self.log.commit()) as usize + leader.waiting.len();
        if uncommitted + new_slots > self.config.uncommitted_entries_max {
            return Err(Rejected::Overloaded);
        }
        Ok(())
    }

    /// `Core::propose` (and membership entries): assign the next slot, or
    /// wait while recovering / reconfiguring.
    pub(crate) fn propose_payload(&mut self, payload: Payload) -> Result<Ticket, Rejected> {
        self.admit(1)?;
        let ticket = self.ticket_counter.next_ticket();
        if let Some(leader) = self.leader_mut() {
            leader.waiting.push_back((ticket, payload));
        }
        self.drain_waiting();
        Ok(ticket)
    }

    /// Gives slots to waiting requests while nothing blocks them.
    fn drain_waiting(&mut self) {
        let me = self.config.id;
        loop {
            let Some(leader) = self.leader_mut() else {
                return;
            };
            if leader.recovering || leader.pending_config.is_some() {
                return;
            }
            let Some((ticket, payload)) = leader.waiting.pop_front() else {
                return;
            };
            let slot = leader.last_proposed + 1;
            let is_config = matches!(payload, Payload::Membership(_));
            leader.last_proposed = slot;
            leader.slots.insert(slot, BTreeSet::from([me]));
            if is_config {
                leader.pending_config = Some(slot);
            }
            let epoch = leader.ballot.epoch();
            self.tickets.insert(slot, ticket);
            self.write_entry(Entry {
                index: slot,
                epoch,
                payload,
            });
            self.advance_leader_commit();
        }
    }

    /// `Core::read_barrier`.
    pub(crate) fn leader_read_barrier(&mut self) -> Result<Ticket, Rejected> {
        self.admit(0)?;
        let ticket = self.ticket_counter.next_ticket();
        let commit = self.log.commit();
        let Some(leader) = self.leader_mut() else {
            unreachable!("admitted as leader");
        };
        leader.round += 1;
        let index = (!leader.recovering).then(|| commit.max(leader.read_floor));
        leader.reads.push(PendingRead {
            ticket,
            round: leader.round,
            index,
        });
        leader.heartbeat_due = true;
        Ok(ticket)
    }

    /// `Core::change_membership`: one configuration entry; it decides every
    /// slot after its own once chosen.
    pub(crate) fn leader_change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        let Some(leader) = self.leader() else {
            return Err(Rejected::NotLeader {
                hint: self.leader_hint(),
            });
        };
        to.validate().map_err(Rejected::InvalidMembership)?;
        if to.is_joint() {
            return Err(Rejected::InvalidMembership(MembershipError::TargetIsJoint));
        }
        let changing = leader.pending_config.is_some()
            || leader
                .waiting
                .iter()
                .any(|(_, p)| matches!(p, Payload::Membership(_)));
        if changing {
            return Err(Rejected::ChangeInProgress);
        }
        if !leader.recovering && *self.log.membership_at(leader.last_proposed + 1) == to {
            self.admit(0)?;
            let ticket = self.ticket_counter.next_ticket();
            let commit = self.log.commit();
            self.out.completed.push((ticket, Ok(commit)));
            return Ok(ticket);
        }
        self.propose_payload(Payload::Membership(to))
    }

    /// True if a quorum of the configuration in force (this node included)
    /// answered within `window` ticks.
    pub(crate) fn quorum_heard_within(&self, window: u64) -> bool {
        let me = self.config.id;
        let Some(leader) = self.leader() else {
            return false;
        };
        self.log.membership().is_quorum(|n| {
            n == me
                || leader
                    .peers
                    .get(&n)
                    .is_some_and(|p| p.ticks_since_heard < window)
        })
    }

    /// Leader timer: heartbeats, retransmission, quorum check.
    pub(crate) fn tick_leader(&mut self) {
        let heartbeat = self.config.heartbeat_interval_ticks;
        let now = self.now;
        let commit = self.log.commit();
        let Some(leader) = self.leader_mut() else {
            return;
        };
        leader.heartbeat_elapsed += 1;
        for peer in leader.peers.values_mut() {
            peer.ticks_since_heard = peer.ticks_since_heard.saturating_add(1);
        }
        if leader.heartbeat_elapsed >= heartbeat {
            leader.heartbeat_elapsed = 0;
            leader.heartbeat_due = true;
            leader.prepare_due = true;
            let slots = &leader.slots;
            for (id, peer) in leader.peers.iter_mut() {
                let stale = peer
                    .inflight
                    .front()
                    .is_some_and(|f| now.saturating_sub(f.sent_at) >= 2 * heartbeat);
                if stale {
                    // Go back to the first slot the peer has not accepted.
                    let hole = (commit + 1..peer.next)
                        .find(|s| slots.get(s).is_some_and(|set| !set.contains(id)));
                    peer.next = hole.unwrap_or(peer.next);
                    peer.inflight.clear();
                    peer.probing = true;
                }
            }
        }
        if self.config.check_quorum
            && !self.quorum_heard_within(self.config.election_timeout_ticks_min)
        {
            tracing::debug!(
                node = self.config.id,
                "no quorum heard within the election timeout: stepping down"
            );
            self.become_follower(None);
            return;
        }
        self.leader_evaluate();
    }

    /// Sends the Accepts the pipeline window allows, and heartbeats when due.
    pub(crate) fn flush_leader(&mut self) {
        let Self {
            role: Role::Leader(leader),
            log,
            out,
            config,
            now,
            ..
        } = self
        else {
            return;
        };
        let commit = log.commit();
        let ballot = leader.ballot;
        for (id, peer) in leader.peers.iter_mut() {
            peer.next = peer.next.max(commit + 1);
            let window = if peer.probing {
                1
            } else {
                config.inflight_messages_max
            };
            let mut accepts_sent = false;
            while peer.inflight.len() < window && peer.next <= leader.last_proposed {
                let mut entries = Vec::new();
                let mut bytes = 0;
                for entry in log.range(peer.next, leader.last_proposed) {
                    let size = entry.size_bytes();
                    if !entries.is_empty()
                        && (entries.len() >= config.batch_entries_max
                            || bytes + size > config.batch_bytes_max)
                    {
                        break;
                    }
                    bytes += size;
                    entries.push(entry.clone());
                }
                let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                    break;
                };
                let (first, last) = (first.index, last.index);
                out.messages.push((
                    *id,
                    Message::Accept(Accept {
                        ballot,
                        entries,
                        commit,
                    }),
                ));
                peer.inflight.push_back(Inflight {
                    first,
                    last,
                    sent_at: *now,
                });
                peer.next = last + 1;
                accepts_sent = true;
            }
            if leader.heartbeat_due || (leader.commit_unannounced && !accepts_sent) {
                let heartbeat = Heartbeat {
                    ballot,
                    commit,
                    round: leader.round,
                };
                out.messages.push((*id, Message::Heartbeat(heartbeat)));
            }
        }
        leader.heartbeat_due = false;
        leader.commit_unannounced = false;
    }

    /// Phase 2b at the leader.
    pub(crate) fn on_accepted(&mut self, from: NodeId, accepted: Accepted) {
        if accepted.first == 0 || accepted.first > accepted.last {
            tracing::warn!(node = self.config.id, from, "malformed Accepted dropped");
            return;
        }
        let commit = self.log.commit();
        let Some(leader) = self.leader_mut() else {
            return;
        };
        if leader.ballot != accepted.ballot {
            return;
        }
        let Some(peer) = leader.peers.get_mut(&from) else {
            return;
        };
        peer.ticks_since_heard = 0;
        peer.probing = false;
        peer.commit = peer.commit.max(accepted.commit);
        if let Some(position) = peer
            .inflight
            .iter()
            .position(|f| f.first == accepted.first && f.last == accepted.last)
        {
            peer.inflight.remove(position);
        }
        let from_slot = accepted.first.max(commit + 1);
        let to_slot = accepted.last.min(leader.last_proposed);
        for slot in from_slot..=to_slot {
            if let Some(set) = leader.slots.get_mut(&slot) {
                set.insert(from);
            }
        }
        let mut matched = peer.match_index.max(peer.commit);
        if matched >= commit {
            while leader
                .slots
                .get(&(matched + 1))
                .is_some_and(|set| set.contains(&from))
            {
                matched += 1;
            }
        }
        peer.match_index = matched;
        self.advance_leader_commit();
    }

    /// Heartbeat answers: liveness, read rounds, the peer's frontier.
    pub(crate) fn on_heartbeat_response(&mut self, from: NodeId, response: HeartbeatResponse) {
        let Some(leader) = self.leader_mut() else {
            return;
        };
        if leader.ballot != response.ballot {
            return;
        }
        if let Some(peer) = leader.peers.get_mut(&from) {
            peer.ticks_since_heard = 0;
            peer.acked_round = peer.acked_round.max(response.round);
            peer.commit = peer.commit.max(response.commit);
            peer.match_index = peer.match_index.max(response.commit);
        }
    }

    /// Moves the frontier over consecutive slots a quorum accepted.
    fn advance_leader_commit(&mut self) {
        let before = self.log.commit();
        loop {
            let next = self.log.commit() + 1;
            let Some(leader) = self.leader() else { return };
            let Some(set) = leader.slots.get(&next) else {
                break;
            };
            if !self.log.membership_at(next).is_quorum(|n| set.contains(&n)) {
                break;
            }
            self.log.set_commit(next);
        }
        if self.log.commit() > before {
            self.leader_commit_advanced();
        }
    }

    /// The frontier moved (by acceptances or catch-up): forget chosen slots,
    /// finish a reconfiguration, continue recovery.
    pub(crate) fn leader_commit_advanced(&mut self) {
        let commit = self.log.commit();
        let me = self.config.id;
        let Some(leader) = self.leader_mut() else {
            return;
        };
        leader.slots = leader.slots.split_off(&(commit + 1));
        leader.last_proposed = leader.last_proposed.max(commit);
        leader.commit_unannounced = true;
        let Some(slot) = leader.pending_config.filter(|s| *s <= commit) else {
            self.leader_evaluate();
            self.drain_waiting();
            return;
        };
        leader.pending_config = None;
        leader.recovering = true;
        leader.prepare_due = true;
        let membership = self.log.membership().clone();
        tracing::debug!(node = me, slot, %membership, "configuration chosen");
        if !membership.is_voter(me) {
            // Removed: hand over. The new voters may not know yet that they
            // are; tell them where the chosen prefix ends so they catch up
            // and campaign.
            self.become_follower(None);
            self.nudge_voters();
            return;
        }
        let Some(leader) = self.leader_mut() else {
            return;
        };
        leader.peers.retain(|n, _| membership.contains(*n));
        for node in membership.all_nodes() {
            if node != me {
                leader
                    .peers
                    .entry(node)
                    .or_insert_with(|| Progress::new(commit + 1));
            }
        }
        self.leader_evaluate();
        self.drain_waiting();
    }

    /// Finishes the requests of a leader that lost its role.
    pub(crate) fn abandon_leadership(&mut self, state: LeaderState, hint: Option<NodeId>) {
        let commit = self.log.commit();
        let unknown: Vec<LogIndex> = self.tickets.range(commit + 1..).map(|(s, _)| *s).collect();
        for slot in unknown {
            if let Some(ticket) = self.tickets.remove(&slot) {
                self.out
                    .completed
                    .push((ticket, Err(Rejected::OutcomeUnknown { hint })));
            }
        }
        for (ticket, _) in state.waiting {
            self.out
                .completed
                .push((ticket, Err(Rejected::NotLeader { hint })));
        }
        for read in state.reads {
            self.out
                .completed
                .push((read.ticket, Err(Rejected::NotLeader { hint })));
        }
    }

    /// Finishes read barriers whose round a quorum confirmed and whose index
    /// is applied.
    pub(crate) fn complete_reads(&mut self) {
        let me = self.config.id;
        let commit = self.log.commit();
        let applied = self.applied_index;
        let membership = self.log.membership().clone();
        let Some(leader) = self.leader_mut() else {
            return;
        };
        let recovering = leader.recovering;
        let floor = leader.read_floor;
        let peers = &leader.peers;
        let mut done = Vec::new();
        leader.reads.retain_mut(|read| {
            if read.index.is_none() && !recovering {
                read.index = Some(commit.max(floor));
            }
            let confirmed = membership.is_quorum(|n| {
                n == me || peers.get(&n).is_some_and(|p| p.acked_round >= read.round)
            });
            match read.index {
                Some(index) if confirmed && index <= applied => {
                    done.push((read.ticket, Ok(index)));
                    false
                }
                _ => true,
            }
        });
        self.out.completed.extend(done);
    }
}
