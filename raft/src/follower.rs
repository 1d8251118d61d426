//! The follower's side of replication (Raft paper §5.3, Figure 2
//! "AppendEntries RPC, receiver implementation").
//!
//! A follower accepts entries only after the entry just before them
//! (`prev_log_index / prev_log_term`) matches its own log: by induction the
//! whole prefix then matches the leader's (Log Matching). On a mismatch it
//! answers with a conflict hint (the term of its entry at `prev_log_index`
//! and the first index of that term, or its last index + 1) so the leader
//! skips a whole term per round trip. It never truncates a committed entry
//! and never truncates at all when nothing conflicts, so duplicated or
//! reordered messages are harmless.

use consensus_api::{LogIndex, NodeId};

use crate::core::{RaftCore, Role};
use crate::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse, Message,
};

impl RaftCore {
    /// Accepts `from` as the leader of the current term (a message of the
    /// current term from a leader). Returns false if this node is itself the
    /// leader of this term, which would be a second leader in one term.
    pub(crate) fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader(_) => {
                tracing::error!(
                    id = self.id,
                    from,
                    term = self.term,
                    "two leaders in one term"
                );
                return false;
            }
            Role::Candidate(_) | Role::PreCandidate(_) => {
                self.become_follower(self.term, Some(from))
            }
            Role::Follower => {
                if self.leader_id != Some(from) {
                    self.leader_id = Some(from);
                }
            }
        }
        self.election_elapsed = 0;
        true
    }

    /// Raises the commit index (never lowers it: `max`, not assignment).
    pub(crate) fn advance_commit_to(&mut self, index: LogIndex) {
        let index = index.min(self.log.last_index());
        if index > self.commit_index {
            self.commit_index = index;
        }
    }

    /// AppendEntries receiver (Figure 2, steps 1 to 5).
    pub(crate) fn on_append_entries(&mut self, from: NodeId, request: AppendEntries) {
        if !self.accept_leader(from) {
            return;
        }
        if !entries_are_well_formed(&request) {
            tracing::warn!(id = self.id, from, "malformed AppendEntries dropped");
            return;
        }
        // Everything up to the commit index already matches every future
        // leader's log: skip that part of the message.
        let mut prev_log_index = request.prev_log_index;
        let mut prev_log_term = request.prev_log_term;
        let mut entries = request.entries.as_slice();
        if prev_log_index < self.commit_index {
            let skip = usize::try_from(self.commit_index - prev_log_index).unwrap_or(usize::MAX);
            if skip >= entries.len() {
                self.respond_matched(from, self.commit_index);
                return;
            }
            entries = &entries[skip..];
            prev_log_index = self.commit_index;
            prev_log_term = self.log.term_at(prev_log_index).unwrap_or(prev_log_term);
        }
        if !self.log.matches(prev_log_index, prev_log_term) {
            self.respond_conflict(from, prev_log_index);
            return;
        }
        if let Some(truncated) = self.log.merge(entries) {
            assert!(
                truncated > self.commit_index,
                "a committed entry was truncated"
            );
            tracing::debug!(
                id = self.id,
                from = truncated,
                "uncommitted suffix overwritten"
            );
            self.retract_acknowledgements(truncated);
        }
        let last_new = prev_log_index + entries.len() as u64;
        self.advance_commit_to(request.leader_commit.min(last_new));
        self.respond_matched(from, last_new);
    }

    fn respond_matched(&mut self, to: NodeId, match_index: LogIndex) {
        self.send(
            to,
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term: self.term,
                outcome: AppendOutcome::Matched { match_index },
            }),
        );
    }

    /// Rejects `prev_log_index` with the conflict hint of §5.3.
    fn respond_conflict(&mut self, to: NodeId, prev_log_index: LogIndex) {
        let last = self.log.last_index();
        let (conflict_term, conflict_index) = if prev_log_index > last {
            (0, last + 1)
        } else {
            let term = self.log.term_at(prev_log_index).unwrap_or(0);
            (term, self.log.first_index_of_term_at(prev_log_index))
        };
        tracing::trace!(
            id = self.id,
            prev_log_index,
            conflict_term,
            conflict_index,
            "append rejected"
        );
        self.send(
            to,
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term: self.term,
                outcome: AppendOutcome::Conflict {
                    prev_log_index,
                    conflict_term,
                    conflict_index,
                },
            }),
        );
    }

    /// Heartbeat receiver: the leader is alive; its commit index (capped at
    /// what this follower is known to hold) may advance ours.
    pub(crate) fn on_heartbeat(&mut self, from: NodeId, heartbeat: Heartbeat) {
        if !self.accept_leader(from) {
            return;
        }
        self.advance_commit_to(heartbeat.commit);
        self.send(
            from,
            Message::HeartbeatResponse(HeartbeatResponse {
                term: self.term,
                read_round: heartbeat.read_round,
            }),
        );
    }
}

/// Entries must be dense after `prev_log_index`, of terms that never
/// decrease and never exceed the leader's term.
fn entries_are_well_formed(request: &AppendEntries) -> bool {
    let mut previous_term = request.prev_log_term;
    request.entries.iter().enumerate().all(|(i, entry)| {
        let expected = request.prev_log_index.checked_add(1 + i as u64);
        let dense = Some(entry.index) == expected && entry.index < u64::MAX;
        let ordered = entry.epoch >= previous_term && entry.epoch <= request.term;
        previous_term = entry.epoch;
        dense && ordered
    }) && request.prev_log_term <= request.term
}
