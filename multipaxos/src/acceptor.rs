//! The acceptor ("Paxos Made Simple" §2.2; "Paxos Made Moderately Complex"
//! §3, the acceptor process) and the follower side of the distinguished
//! leader: Prepare → Promise, Accept → Accepted, Heartbeat, and learning the
//! chosen frontier from the leader.
//!
//! Rules, each of which safety rests on:
//! * **P1 (promise)**: a Prepare or Accept below the promised ballot is
//!   refused with a [`Nack`]; one at or above it raises the promise first.
//!   The promise is durable before the reply leaves (same `Ready`).
//! * **P2 (accept)**: an accepted value is replaced only by a value of the
//!   same slot carried by an Accept whose ballot is at least the promise —
//!   hence at least the ballot of the value replaced. Nothing is truncated.
//! * **Chosen prefix is frozen**: slots at or below the chosen frontier are
//!   never rewritten (their value is chosen; an Accept for them carries the
//!   same value and is acknowledged without a write).
//! * **Learning**: a value accepted under ballot `b` at slot `i` is chosen
//!   once the leader of `b` reports a frontier `>= i` (that leader proposes
//!   one value per slot, and its frontier covers only slots a quorum
//!   accepted under `b`, or chosen earlier with the same value). Any other
//!   slot below the leader's frontier is fetched with a catch-up request.

use crate::ballot::Ballot;
use crate::core::{MultiPaxosCore, Role};
use crate::message::{
    Accept, Accepted, Heartbeat, HeartbeatResponse, Message, Nack, Prepare, Probe, ProbeResponse,
    Promise,
};
use consensus_api::{LogIndex, NodeId};

impl MultiPaxosCore {
    /// Refuses a message of `ballot`: this node promised higher.
    pub(crate) fn nack(&mut self, to: NodeId, ballot: Ballot) {
        let message = Message::Nack(Nack {
            ballot,
            promised: self.promised,
            leader: self.leader_hint(),
        });
        self.send(to, message);
    }

    /// The promise rule for a Prepare, an Accept or a heartbeat of `ballot`
    /// from `from`: below the promise it is refused with a [`Nack`]; at or
    /// above it, the promise rises to `ballot` (durably) and the message may
    /// be acted on (`true`).
    fn keep_promise(&mut self, from: NodeId, ballot: Ballot) -> bool {
        if ballot < self.promised {
            self.nack(from, ballot);
            return false;
        }
        self.observe_ballot(ballot);
        true
    }

    /// A message of the leader of `ballot` (at least the promise) arrived:
    /// follow it and restart the failure detector.
    fn follow(&mut self, leader: NodeId) {
        if !matches!(self.role, Role::Follower { .. }) {
            // A probing candidate hears from a live leader: it gives up.
            self.become_follower(Some(leader));
        }
        if let Role::Follower { leader: followed } = &mut self.role {
            *followed = Some(leader);
        }
        self.leader_contact = Some(self.now);
        self.election_elapsed = 0;
    }

    /// Advances the chosen frontier with what the leader of `ballot` says
    /// is chosen, and asks it for the slots this node cannot vouch for.
    /// Called on a follower only (after [`follow`](Self::follow)), so an
    /// advance needs no role-specific follow-up.
    pub(crate) fn learn_commit(&mut self, ballot: Ballot, leader_commit: LogIndex, leader: NodeId) {
        debug_assert!(
            matches!(self.role, Role::Follower { .. }),
            "learn_commit on a node that does not follow"
        );
        let epoch = ballot.epoch();
        self.log
            .advance_commit_while(leader_commit, |entry| entry.epoch == epoch);
        // Asks only when something below `leader_commit` is still missing.
        self.want_catch_up(leader, leader_commit);
    }

    /// Whether `from` owns `ballot`, as a probe or heartbeat (`what`) must;
    /// a message that claims someone else's ballot is dropped with a warning.
    fn sender_owns(&self, from: NodeId, ballot: Ballot, what: &str) -> bool {
        let owns = ballot.node() == from;
        if !owns {
            tracing::warn!(
                node = self.config.id,
                from,
                "{what} for a ballot the sender does not own"
            );
        }
        owns
    }

    /// Pre-vote: grants when the ballot is above the promise and no live
    /// leader was heard from within the minimum election timeout (a node
    /// that still hears its leader does not help depose it).
    pub(crate) fn on_probe(&mut self, from: NodeId, probe: Probe) {
        if !self.sender_owns(from, probe.ballot, "probe") {
            return;
        }
        let leader_alive = matches!(self.role, Role::Leader(_))
            || self
                .leader_contact
                .is_some_and(|at| self.now - at < self.config.election_timeout_ticks_min);
        let granted = probe.ballot > self.promised && !leader_alive;
        let response = Message::ProbeResponse(ProbeResponse {
            ballot: probe.ballot,
            granted,
            promised: self.promised,
        });
        self.send(from, response);
    }

    /// Phase 1b: promise the ballot for every slot from `from` on and report
    /// the values accepted there (above this node's chosen frontier).
    pub(crate) fn on_prepare(&mut self, from: NodeId, prepare: Prepare) {
        if prepare.ballot.node() != from || prepare.from == 0 {
            tracing::warn!(node = self.config.id, from, "malformed Prepare dropped");
            return;
        }
        if !self.keep_promise(from, prepare.ballot) {
            return;
        }
        // Give the candidate time to finish Phase 1 before competing.
        self.election_elapsed = 0;
        let commit = self.log.commit();
        let entries = self
            .log
            .range_from(prepare.from.max(commit + 1))
            .cloned()
            .collect();
        let promise = Message::Promise(Promise {
            ballot: prepare.ballot,
            from: prepare.from,
            commit,
            entries,
        });
        self.send(from, promise);
    }

    /// Phase 2b: accept the slots of an Accept at or above the promise.
    pub(crate) fn on_accept(&mut self, from: NodeId, accept: Accept) {
        if !Self::accept_is_well_formed(from, &accept) {
            tracing::warn!(node = self.config.id, from, "malformed Accept dropped");
            return;
        }
        if !self.keep_promise(from, accept.ballot) {
            return;
        }
        self.follow(from);
        let floor = self.log.commit().max(self.log.snapshot_index());
        let first = accept.entries[0].index;
        let last = accept.entries[accept.entries.len() - 1].index;
        for entry in accept.entries {
            if entry.index > floor {
                self.write_entry(entry);
            }
        }
        self.learn_commit(accept.ballot, accept.commit, from);
        let accepted = Message::Accepted(Accepted {
            ballot: accept.ballot,
            first,
            last,
            commit: self.log.commit(),
        });
        self.send(from, accepted);
    }

    fn accept_is_well_formed(from: NodeId, accept: &Accept) -> bool {
        let epoch = accept.ballot.epoch();
        accept.ballot.node() == from
            && !accept.entries.is_empty()
            && accept.entries[0].index > 0
            && accept.entries.iter().all(|e| e.epoch == epoch)
            && accept
                .entries
                .windows(2)
                .all(|pair| pair[0].index.checked_add(1) == Some(pair[1].index))
    }

    /// The leader's liveness signal: follow it, learn its frontier, answer.
    pub(crate) fn on_heartbeat(&mut self, from: NodeId, heartbeat: Heartbeat) {
        if !self.sender_owns(from, heartbeat.ballot, "heartbeat") {
            return;
        }
        if !self.keep_promise(from, heartbeat.ballot) {
            return;
        }
        self.follow(from);
        self.learn_commit(heartbeat.ballot, heartbeat.commit, from);
        let response = Message::HeartbeatResponse(HeartbeatResponse {
            ballot: heartbeat.ballot,
            round: heartbeat.round,
            commit: self.log.commit(),
        });
        self.send(from, response);
    }

    /// A refusal: the acceptor promised a higher ballot. A leader or
    /// candidate of the refused ballot steps down (and promises the higher
    /// ballot itself, so its next ballot exceeds it).
    pub(crate) fn on_nack(&mut self, from: NodeId, nack: Nack) {
        self.highest_seen = self.highest_seen.max(nack.promised);
        let current = match &self.role {
            Role::Leader(leader) => Some(leader.ballot),
            Role::Candidate(candidate) => candidate.prepared_ballot(),
            Role::Follower { .. } => None,
        };
        if current == Some(nack.ballot) && nack.promised > nack.ballot {
            tracing::debug!(node = self.config.id, from, promised = %nack.promised, "nacked");
            self.observe_ballot(nack.promised);
        }
    }
}
