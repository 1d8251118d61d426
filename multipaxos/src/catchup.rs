//! Catch-up of lagging and restarted replicas ("Paxos Made Moderately
//! Complex" §3: replicas learn decisions; a value once chosen never
//! changes, so any node that knows it may teach it).
//!
//! Catch-up is pulled: a node whose chosen frontier is behind one it heard
//! of (the leader's, in an Accept or Heartbeat; a promiser's, during
//! Phase 1) sends [`CatchUp`]`{from}`; the other answers with up to one batch of
//! chosen values ([`Chosen`]) or, when `from` is already compacted, with the
//! first chunk of its snapshot (see [`crate::snapshot`]). The requester asks
//! again as soon as a batch arrives and it is still behind, and retries
//! after two heartbeat intervals without progress. One request at a time
//! per node keeps the load bounded; the leader keeps no per-peer catch-up
//! state.

use consensus_api::{LogIndex, NodeId};

use crate::ballot::Ballot;
use crate::core::{MultiPaxosCore, Role};
use crate::log::Stored;
use crate::message::{CatchUp, Chosen, Message};

/// An outstanding request for chosen values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct CatchUpState {
    /// The node asked.
    pub(crate) target: NodeId,
    /// First slot asked for.
    pub(crate) from: LogIndex,
    /// The frontier to reach.
    pub(crate) goal: LogIndex,
    /// Tick of the request (or of the last progress).
    pub(crate) requested_at: u64,
}

impl MultiPaxosCore {
    fn catch_up_retry_ticks(&self) -> u64 {
        2 * self.config.heartbeat_interval_ticks
    }

    /// This node learned that `target` knows slots up to `goal` are chosen:
    /// ask it for the ones this node lacks, unless a request is in flight.
    pub(crate) fn want_catch_up(&mut self, target: NodeId, goal: LogIndex) {
        let commit = self.log.commit();
        if goal <= commit {
            return;
        }
        let retry = self.catch_up_retry_ticks();
        if let Some(state) = &mut self.catch_up {
            let outstanding = state.target == target
                && state.from == commit + 1
                && self.now.saturating_sub(state.requested_at) < retry;
            if outstanding {
                state.goal = state.goal.max(goal);
                return;
            }
        }
        self.catch_up = Some(CatchUpState {
            target,
            from: commit + 1,
            goal,
            requested_at: self.now,
        });
        self.send_catch_up_request(target);
    }

    /// Sends the request that makes progress: the next snapshot chunk if a
    /// snapshot is being received from `target`, else chosen values.
    fn send_catch_up_request(&mut self, target: NodeId) {
        if let Some(incoming) = self.incoming_snapshot.as_ref().filter(|i| i.from == target) {
            let response = incoming.next_chunk_request();
            self.send(target, Message::SnapshotChunkResponse(response));
        } else {
            let from = self.log.commit() + 1;
            self.send(target, Message::CatchUp(CatchUp { from }));
        }
    }

    /// Retries a catch-up that made no progress.
    pub(crate) fn tick_catch_up(&mut self) {
        let Some(state) = self.catch_up else { return };
        if self.log.commit() >= state.goal {
            self.catch_up = None;
            return;
        }
        if self.now.saturating_sub(state.requested_at) >= self.catch_up_retry_ticks() {
            self.catch_up = Some(CatchUpState {
                from: self.log.commit() + 1,
                requested_at: self.now,
                ..state
            });
            self.send_catch_up_request(state.target);
        }
    }

    /// Records progress of the catch-up from `from` and asks for more if
    /// still behind.
    pub(crate) fn catch_up_progressed(&mut self, from: NodeId, their_commit: LogIndex) {
        let commit = self.log.commit();
        let Some(state) = self.catch_up.filter(|s| s.target == from) else {
            return;
        };
        let goal = state.goal.max(their_commit);
        if commit >= goal {
            self.catch_up = None;
            return;
        }
        self.catch_up = Some(CatchUpState {
            target: from,
            from: commit + 1,
            goal,
            requested_at: self.now,
        });
        self.send_catch_up_request(from);
    }

    /// Serves a catch-up request from the chosen prefix (or the snapshot).
    pub(crate) fn on_catch_up(&mut self, from: NodeId, request: CatchUp) {
        if request.from == 0 {
            tracing::warn!(node = self.config.id, from, "CatchUp from slot 0 dropped");
            return;
        }
        if request.from <= self.log.snapshot_index() {
            self.send_snapshot_chunk(from, 0);
            return;
        }
        let commit = self.log.commit();
        let mut entries = Vec::new();
        let mut bytes = 0;
        for entry in self.log.range(request.from, commit) {
            let size = entry.size_bytes();
            if !entries.is_empty()
                && (entries.len() >= self.config.batch_entries_max
                    || bytes + size > self.config.batch_bytes_max)
            {
                break;
            }
            bytes += size;
            entries.push(entry.clone());
        }
        self.send(from, Message::Chosen(Chosen { entries, commit }));
    }

    /// Stores chosen values and moves the frontier over them.
    pub(crate) fn on_chosen(&mut self, from: NodeId, chosen: Chosen) {
        let well_formed = chosen
            .entries
            .iter()
            .all(|e| e.index > 0 && e.index <= chosen.commit)
            && chosen
                .entries
                .windows(2)
                .all(|pair| pair[0].index.checked_add(1) == Some(pair[1].index));
        if !well_formed {
            tracing::warn!(node = self.config.id, from, "malformed Chosen dropped");
            return;
        }
        // A chosen value accepted under a ballot above the promise: promise
        // that ballot (always safe), so accepted values stay below the promise.
        let max_epoch = chosen.entries.iter().map(|e| e.epoch).max().unwrap_or(0);
        self.observe_ballot(Ballot::from_epoch(max_epoch));
        let before = self.log.commit();
        for entry in chosen.entries {
            let index = entry.index;
            if self.log.put_chosen(entry.clone()) == Stored::Written {
                self.out.append.insert(index, entry);
            }
            if index == self.log.commit() + 1 {
                self.log.set_commit(index);
            }
        }
        if self.log.commit() > before {
            self.after_commit_advance();
        }
        if self.catch_up.is_some_and(|s| s.target == from) {
            self.catch_up_progressed(from, chosen.commit);
        } else {
            self.want_catch_up(from, chosen.commit);
        }
    }

    /// Tells the voters of the configuration in force how far this node's
    /// chosen prefix goes (an empty [`Chosen`]); a voter behind it asks for
    /// the rest. Sent by nodes that may not campaign themselves.
    pub(crate) fn nudge_voters(&mut self) {
        let me = self.config.id;
        let commit = self.log.commit();
        for voter in self.log.membership().all_voters() {
            if voter != me {
                let nudge = Chosen {
                    entries: Vec::new(),
                    commit,
                };
                self.send(voter, Message::Chosen(nudge));
            }
        }
    }

    /// The frontier moved by learning: a candidate or leader may now be
    /// able to finish Phase 1.
    pub(crate) fn after_commit_advance(&mut self) {
        match &self.role {
            Role::Candidate(_) => self.evaluate_candidacy(),
            Role::Leader(_) => self.leader_commit_advanced(),
            Role::Follower { .. } => {}
        }
    }
}
