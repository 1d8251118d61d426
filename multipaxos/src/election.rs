//! Failure detection and Phase 1 ("Paxos Made Simple" §3, "the
//! distinguished proposer"; "Paxos Made Moderately Complex" §3, the scout).
//!
//! A follower that has not heard from a leader for a randomized election
//! timeout (in `[election_timeout_ticks_min, election_timeout_ticks_max)`)
//! becomes a candidate. With `pre_vote`, it first probes: only when a
//! quorum would promise (none of them heard a live leader recently) does it
//! pick a ballot above every ballot it has seen, promise it to itself
//! (durably) and send `Prepare(ballot, from = commit + 1)`: one Phase 1 for
//! **all** slots from its first unchosen one.
//!
//! `evaluate_phase1` decides when Phase 1 is complete and what to
//! propose, slot by slot from the frontier:
//! 1. a quorum of the configuration deciding those slots must have
//!    promised;
//! 2. the candidate must know every slot a promiser knows to be chosen
//!    (promises omit the promiser's chosen prefix; a candidate behind it
//!    catches up first);
//! 3. for each slot, the value accepted under the highest ballot among the
//!    promises is re-proposed (P2c), a slot nobody accepted gets a no-op
//!    (the gap filler of "Paxos Made Simple" §3), up to the highest slot
//!    any promiser accepted — in batches of at most `batch_entries_max`
//!    slots, the next one decided (from the same promises) once the
//!    pipeline has room, so a far accepted slot costs time proportional to
//!    its distance, never memory;
//! 4. a configuration entry ends the run: the slots after it are decided by
//!    the configuration it installs, whose quorum the leader needs before
//!    proposing there (see the crate docs on membership).

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::{Entry, LogIndex, NodeId, Payload};

use crate::ballot::Ballot;
use crate::core::{MultiPaxosCore, Role};
use crate::log::Log;
use crate::message::{Message, Prepare, Probe, ProbeResponse, Promise};

/// What a candidate is doing.
#[derive(Debug)]
pub(crate) enum CandidateState {
    /// Pre-vote: asking whether a quorum would promise `ballot`.
    Probing {
        /// The ballot the node would use.
        ballot: Ballot,
        /// Voters that would promise it (this node included).
        grants: BTreeSet<NodeId>,
    },
    /// Phase 1 under `ballot` (promised to itself, durably).
    Preparing {
        /// The candidate's ballot.
        ballot: Ballot,
        /// Promises received, by acceptor.
        promises: BTreeMap<NodeId, PromiseData>,
    },
}

impl CandidateState {
    /// The ballot of Phase 1, if it started.
    pub(crate) fn prepared_ballot(&self) -> Option<Ballot> {
        match self {
            CandidateState::Probing { .. } => None,
            CandidateState::Preparing { ballot, .. } => Some(*ballot),
        }
    }

    /// Role invariants.
    pub(crate) fn check(&self, core: &MultiPaxosCore) {
        match self {
            CandidateState::Probing { ballot, .. } => {
                assert_eq!(
                    ballot.node(),
                    core.config.id,
                    "probing with a foreign ballot"
                );
            }
            CandidateState::Preparing { ballot, .. } => {
                assert_eq!(
                    *ballot, core.promised,
                    "a candidate promised its own ballot"
                );
                assert_eq!(
                    ballot.node(),
                    core.config.id,
                    "preparing with a foreign ballot"
                );
            }
        }
    }
}

/// What one acceptor reported in its Promise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PromiseData {
    /// Its chosen frontier.
    pub(crate) commit: LogIndex,
    /// Its accepted values above the frontier, by slot.
    pub(crate) entries: BTreeMap<LogIndex, Entry>,
}

/// The verdict on a set of promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase1 {
    /// No quorum of the deciding configuration yet; these voters have not
    /// promised.
    NeedPromises(Vec<NodeId>),
    /// This promiser knows chosen slots the candidate does not: learn them.
    NeedCatchUp(NodeId),
    /// Phase 1 is complete for the slots from `from` on; `values` are the
    /// first of them to propose (at most `limit`, ending early at a
    /// configuration entry).
    Complete {
        /// Values to propose under the new ballot, one per slot from
        /// `from`, consecutive.
        values: Vec<Entry>,
        /// The last value installs a configuration: the slots after it
        /// need promises from its quorum.
        ends_with_config: bool,
        /// Slots after the last value still have to be recovered (the run
        /// was longer than `limit`): the next batch is decided from the
        /// same promises once the pipeline has room.
        more: bool,
    },
}

/// Decides Phase 1 for the slots from `from` (> `log.commit()`) on, from
/// the promises received (this node's own promise is its live log), and
/// returns the values of at most `limit` (>= 1) of them.
///
/// The recovered run ends at the highest slot any promiser accepted, which
/// may lie arbitrarily far above the frontier (acceptors take an Accept at
/// any slot, and a store may hold any sparse log): only the slots of one
/// batch are ever materialised, so the work and memory of one call are
/// bounded by `limit` and by the entries the promises already hold, never
/// by the width of a gap. The caller proposes the batch and asks for the
/// next (`from` = the slot after it) as the pipeline drains.
pub(crate) fn evaluate_phase1(
    log: &Log,
    me: NodeId,
    ballot: Ballot,
    promises: &BTreeMap<NodeId, PromiseData>,
    from: LogIndex,
    limit: usize,
) -> Phase1 {
    let commit = log.commit();
    debug_assert!(from > commit, "recovering a chosen slot");
    let config = log.membership_at(from);
    let promised = |node: NodeId| node == me || promises.contains_key(&node);
    if !config.is_quorum(promised) {
        let missing = config
            .all_voters()
            .into_iter()
            .filter(|n| !promised(*n))
            .collect();
        return Phase1::NeedPromises(missing);
    }
    let voters = config.all_voters();
    let ahead = promises
        .iter()
        .filter(|(node, data)| voters.contains(node) && data.commit > commit)
        .max_by_key(|(node, data)| (data.commit, std::cmp::Reverse(**node)));
    if let Some((node, _)) = ahead {
        return Phase1::NeedCatchUp(*node);
    }
    let mine = voters.contains(&me);
    let reports = || {
        promises
            .iter()
            .filter(|(node, _)| **node != me && voters.contains(node))
            .map(|(_, data)| &data.entries)
    };
    // The run ends at the highest slot any deciding voter accepted.
    let own_last = if mine { log.last_index() } else { 0 };
    let last = reports()
        .filter_map(|entries| entries.keys().next_back().copied())
        .chain([own_last])
        .max()
        .unwrap_or(0);
    if last < from {
        return Phase1::Complete {
            values: Vec::new(),
            ends_with_config: false,
            more: false,
        };
    }
    let batch_len = (limit.max(1) as u64).min(last - from + 1);
    let end = from + (batch_len - 1);
    // Highest-ballot accepted value per slot of the batch.
    let mut best: BTreeMap<LogIndex, &Entry> = BTreeMap::new();
    let own = log.range(from, end).filter(|_| mine);
    let reported = reports().flat_map(|entries| entries.range(from..=end).map(|(_, e)| e));
    for entry in own.chain(reported) {
        match best.get(&entry.index) {
            Some(held) if held.epoch >= entry.epoch => {}
            _ => {
                best.insert(entry.index, entry);
            }
        }
    }
    let mut values = Vec::with_capacity(batch_len as usize);
    for slot in from..=end {
        let payload = best.get(&slot).map_or(Payload::Noop, |e| e.payload.clone());
        let is_config = matches!(payload, Payload::Membership(_));
        values.push(Entry {
            index: slot,
            epoch: ballot.epoch(),
            payload,
        });
        if is_config {
            return Phase1::Complete {
                values,
                ends_with_config: true,
                more: false,
            };
        }
    }
    Phase1::Complete {
        values,
        ends_with_config: false,
        more: end < last,
    }
}

impl MultiPaxosCore {
    /// Follower timer: start an election when the leader went silent.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            if self.is_voter() {
                self.start_election();
            } else {
                // Learners and removed nodes never campaign, but they may
                // know a configuration whose voters do not know it yet (its
                // leader left right after choosing it): tell those voters
                // how far the chosen prefix goes, so they catch up.
                self.reset_election_timer();
                self.nudge_voters();
            }
        }
    }

    /// Candidate timer: retry with a higher ballot after a timeout, resend
    /// lost Probes / Prepares every heartbeat interval.
    pub(crate) fn tick_candidate(&mut self) {
        self.election_elapsed += 1;
        self.resend_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.start_election();
            return;
        }
        if self.resend_elapsed < self.config.heartbeat_interval_ticks {
            return;
        }
        self.resend_elapsed = 0;
        let commit = self.log.commit();
        let voters = self.log.membership().all_voters();
        let me = self.config.id;
        let resend: Vec<(NodeId, Message)> = match &self.role {
            Role::Candidate(CandidateState::Probing { ballot, grants }) => voters
                .iter()
                .filter(|n| !grants.contains(n))
                .map(|n| {
                    (
                        *n,
                        Message::Probe(Probe {
                            ballot: *ballot,
                            commit,
                        }),
                    )
                })
                .collect(),
            Role::Candidate(CandidateState::Preparing { ballot, promises }) => voters
                .iter()
                .filter(|n| **n != me && !promises.contains_key(n))
                .map(|n| {
                    let prepare = Prepare {
                        ballot: *ballot,
                        from: commit + 1,
                    };
                    (*n, Message::Prepare(prepare))
                })
                .collect(),
            _ => Vec::new(),
        };
        for (to, message) in resend {
            self.send(to, message);
        }
    }

    /// The smallest ballot of this node above everything seen.
    fn fresh_ballot(&self) -> Option<Ballot> {
        self.promised
            .max(self.highest_seen)
            .next_for(self.config.id)
    }

    /// [`fresh_ballot`](Self::fresh_ballot), or `None` after stepping down
    /// to follower when the ballot counter is exhausted.
    fn fresh_ballot_or_follow(&mut self) -> Option<Ballot> {
        let ballot = self.fresh_ballot();
        if ballot.is_none() {
            tracing::error!(
                node = self.config.id,
                "ballot counter exhausted; this node cannot lead"
            );
            self.become_follower(None);
        }
        ballot
    }

    /// Starts (or restarts) an election: a probe round with `pre_vote`,
    /// else Phase 1 at once.
    pub(crate) fn start_election(&mut self) {
        self.reset_election_timer();
        self.resend_elapsed = 0;
        self.leader_contact = None;
        if let Role::Leader(_) = self.role {
            self.become_follower(None);
        }
        let Some(ballot) = self.fresh_ballot_or_follow() else {
            return;
        };
        if !self.config.pre_vote {
            self.start_phase1();
            return;
        }
        tracing::debug!(node = self.config.id, %ballot, "probing");
        let me = self.config.id;
        self.role = Role::Candidate(CandidateState::Probing {
            ballot,
            grants: BTreeSet::from([me]),
        });
        let commit = self.log.commit();
        for voter in self.log.membership().all_voters() {
            if voter != me {
                self.send(voter, Message::Probe(Probe { ballot, commit }));
            }
        }
        self.check_probe_quorum();
    }

    fn check_probe_quorum(&mut self) {
        let Role::Candidate(CandidateState::Probing { grants, .. }) = &self.role else {
            return;
        };
        if self.log.membership().is_quorum(|n| grants.contains(&n)) {
            self.start_phase1();
        }
    }

    /// Pre-vote answers.
    pub(crate) fn on_probe_response(&mut self, from: NodeId, response: ProbeResponse) {
        self.highest_seen = self.highest_seen.max(response.promised);
        if let Role::Candidate(CandidateState::Probing { ballot, grants }) = &mut self.role {
            if response.ballot == *ballot && response.granted {
                grants.insert(from);
                self.check_probe_quorum();
            }
        }
    }

    /// Phase 1a: promise a fresh ballot to itself (durably, in the same
    /// `Ready` as the Prepares) and ask the voters for theirs.
    pub(crate) fn start_phase1(&mut self) {
        let Some(ballot) = self.fresh_ballot_or_follow() else {
            return;
        };
        tracing::debug!(node = self.config.id, %ballot, "phase 1");
        self.promised = ballot;
        self.highest_seen = ballot;
        self.out.hard_state_dirty = true;
        self.resend_elapsed = 0;
        self.role = Role::Candidate(CandidateState::Preparing {
            ballot,
            promises: BTreeMap::new(),
        });
        let from = self.log.commit() + 1;
        let me = self.config.id;
        for voter in self.log.membership().all_voters() {
            if voter != me {
                self.send(voter, Message::Prepare(Prepare { ballot, from }));
            }
        }
        self.evaluate_candidacy();
    }

    /// Phase 1b received (by a candidate, or by a leader gathering promises
    /// of a new configuration).
    pub(crate) fn on_promise(&mut self, from: NodeId, promise: Promise) {
        let well_formed = promise.entries.iter().all(|e| {
            e.index >= promise.from && e.index > promise.commit && e.epoch <= promise.ballot.epoch()
        }) && promise
            .entries
            .windows(2)
            .all(|pair| pair[0].index < pair[1].index);
        if !well_formed {
            tracing::warn!(node = self.config.id, from, "malformed Promise dropped");
            return;
        }
        let data = PromiseData {
            commit: promise.commit,
            entries: promise.entries.into_iter().map(|e| (e.index, e)).collect(),
        };
        match &mut self.role {
            Role::Candidate(CandidateState::Preparing { ballot, promises })
                if *ballot == promise.ballot =>
            {
                promises.insert(from, data);
                self.evaluate_candidacy();
            }
            Role::Leader(leader) if leader.ballot == promise.ballot => {
                leader.promises.entry(from).or_insert(data);
                if let Some(peer) = leader.peers.get_mut(&from) {
                    peer.ticks_since_heard = 0;
                }
                self.leader_evaluate();
            }
            _ => {}
        }
    }

    /// Completes Phase 1 if the promises allow it.
    pub(crate) fn evaluate_candidacy(&mut self) {
        let Role::Candidate(CandidateState::Preparing { ballot, promises }) = &self.role else {
            return;
        };
        let ballot = *ballot;
        if !self.is_voter() {
            // Catching up taught this node that it was removed: it does not
            // lead a configuration it is not part of.
            self.become_follower(None);
            return;
        }
        let from = self.log.commit() + 1;
        let limit = self.recovery_batch_max(0);
        match evaluate_phase1(&self.log, self.config.id, ballot, promises, from, limit) {
            Phase1::NeedPromises(_) => {}
            Phase1::NeedCatchUp(node) => {
                let goal = promises.get(&node).map_or(0, |p| p.commit);
                self.want_catch_up(node, goal);
            }
            Phase1::Complete {
                values,
                ends_with_config,
                more,
            } => {
                let role = std::mem::replace(&mut self.role, Role::Follower { leader: None });
                let Role::Candidate(CandidateState::Preparing { promises, .. }) = role else {
                    unreachable!("checked above");
                };
                self.become_leader(ballot, promises, values, ends_with_config, more);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::{Bytes, Membership};

    fn value(index: LogIndex, ballot: Ballot, text: &'static str) -> Entry {
        Entry {
            index,
            epoch: ballot.epoch(),
            payload: Payload::Command(Bytes::from_static(text.as_bytes())),
        }
    }

    fn promise(commit: LogIndex, entries: Vec<Entry>) -> PromiseData {
        PromiseData {
            commit,
            entries: entries.into_iter().map(|e| (e.index, e)).collect(),
        }
    }

    // Reference: "Paxos Made Simple" §2.2, P2c — the proposer adopts the
    // value of the highest-numbered proposal among a quorum's promises.
    #[test]
    fn adopts_the_highest_ballot_value_and_fills_gaps_with_noops() {
        let log = Log::new(Membership::new([1, 2, 3, 4, 5]));
        let b1 = Ballot::new(1, 2);
        let b2 = Ballot::new(2, 3);
        let mine = Ballot::new(3, 1);
        let mut promises = BTreeMap::new();
        promises.insert(2, promise(0, vec![value(1, b1, "old"), value(3, b1, "x")]));
        assert!(matches!(
            evaluate_phase1(&log, 1, mine, &promises, 1, 100),
            Phase1::NeedPromises(missing) if missing == vec![3, 4, 5]
        ));
        promises.insert(3, promise(0, vec![value(1, b2, "new")]));
        let Phase1::Complete {
            values,
            ends_with_config,
            ..
        } = evaluate_phase1(&log, 1, mine, &promises, 1, 100)
        else {
            panic!("a quorum promised");
        };
        assert!(!ends_with_config);
        let payloads: Vec<String> = values.iter().map(|e| e.payload.to_string()).collect();
        assert_eq!(payloads, ["\"new\"", "noop", "\"x\""]);
        assert!(
            values.iter().all(|e| e.epoch == mine.epoch()),
            "re-proposed under the new ballot"
        );
    }

    #[test]
    fn a_promiser_ahead_of_the_candidate_is_caught_up_from_first() {
        let log = Log::new(Membership::new([1, 2, 3]));
        let mut promises = BTreeMap::new();
        promises.insert(3, promise(7, vec![]));
        assert_eq!(
            evaluate_phase1(&log, 1, Ballot::new(1, 1), &promises, 1, 100),
            Phase1::NeedCatchUp(3)
        );
    }

    #[test]
    fn a_configuration_entry_ends_the_recovered_run() {
        let log = Log::new(Membership::new([1, 2, 3]));
        let old = Ballot::new(1, 2);
        let conf = Entry {
            index: 2,
            epoch: old.epoch(),
            payload: Payload::Membership(Membership::new([1, 2, 3, 4])),
        };
        let mut promises = BTreeMap::new();
        promises.insert(
            2,
            promise(0, vec![value(1, old, "a"), conf, value(3, old, "c")]),
        );
        let Phase1::Complete {
            values,
            ends_with_config,
            ..
        } = evaluate_phase1(&log, 1, Ballot::new(2, 1), &promises, 1, 100)
        else {
            panic!("1 and 2 are a quorum of 3");
        };
        assert!(ends_with_config);
        assert_eq!(
            values.len(),
            2,
            "slot 3 waits for the new configuration's quorum"
        );
    }

    #[test]
    fn a_far_accepted_slot_is_recovered_one_bounded_batch_at_a_time() {
        let log = Log::new(Membership::new([1, 2, 3]));
        let old = Ballot::new(1, 2);
        let far = 1u64 << 62;
        let mut promises = BTreeMap::new();
        promises.insert(
            2,
            promise(0, vec![value(2, old, "a"), value(far, old, "z")]),
        );
        let mine = Ballot::new(2, 1);
        let Phase1::Complete { values, more, .. } = evaluate_phase1(&log, 1, mine, &promises, 1, 3)
        else {
            panic!("1 and 2 are a quorum of 3");
        };
        let payloads: Vec<String> = values.iter().map(|e| e.payload.to_string()).collect();
        assert_eq!(payloads, ["noop", "\"a\"", "noop"]);
        assert!(more, "the run goes on to the far slot");
        // The batch that reaches the far slot ends the run.
        let Phase1::Complete { values, more, .. } =
            evaluate_phase1(&log, 1, mine, &promises, far - 1, 3)
        else {
            panic!("1 and 2 are a quorum of 3");
        };
        assert_eq!(values.len(), 2);
        assert_eq!(values[1].index, far);
        assert_eq!(values[1].payload.to_string(), "\"z\"");
        assert!(!more);
        // Past the run: nothing left.
        assert_eq!(
            evaluate_phase1(&log, 1, mine, &promises, far + 1, 3),
            Phase1::Complete {
                values: Vec::new(),
                ends_with_config: false,
                more: false
            }
        );
    }
}
