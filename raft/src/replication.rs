//! The leader's side of replication (Raft paper §5.3): `nextIndex` /
//! `matchIndex` per follower, probing after a conflict, pipelined batches
//! (at most `inflight_messages_max` unacknowledged, each at most
//! `batch_entries_max` entries and `batch_bytes_max` bytes), fast
//! backtracking with the follower's conflict hint, and heartbeats.
//!
//! Backtracking: on a rejection of `prev_log_index` the follower reports the
//! term it holds there (`conflict_term`) and the first index of that term
//! (`conflict_index`), or its last index + 1. If the leader holds entries of
//! `conflict_term`, it resumes just after its last one; otherwise at
//! `conflict_index`. Each round trip so skips at least one whole term of the
//! divergent suffix: repairing a follower costs O(terms), not O(entries).

use consensus_api::{LogIndex, NodeId};

use crate::core::{RaftCore, Role};
use crate::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse, Message,
};
use crate::progress::ProgressState;

impl RaftCore {
    /// Sends as many batches to `peer` as its state and window allow.
    pub(crate) fn send_appends(&mut self, peer: NodeId) {
        let window = self.config.inflight_messages_max.max(1);
        for _ in 0..=window {
            if !self.send_append(peer, false) {
                break;
            }
        }
    }

    /// Sends one `AppendEntries` to `peer` (or starts a snapshot when the
    /// entries it needs are compacted). With `send_if_empty`, sends even
    /// without entries (a probe). Returns true if a message was sent.
    pub(crate) fn send_append(&mut self, peer: NodeId, send_if_empty: bool) -> bool {
        let inflight_max = self.config.inflight_messages_max;
        let Role::Leader(leader) = &mut self.role else {
            return false;
        };
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return false;
        };
        if progress.is_paused(inflight_max) {
            return false;
        }
        let last = self.log.last_index();
        if progress.next_index > last + 1 {
            progress.next_index = last + 1;
        }
        let prev_log_index = progress.next_index - 1;
        let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
            // The entries the peer needs are compacted away: §7.
            let Some(snapshot_index) = self.log.snapshot().map(|s| s.index) else {
                tracing::error!(id = self.id, peer, "entries compacted but no snapshot held");
                return false;
            };
            tracing::debug!(id = self.id, peer, snapshot_index, "peer needs a snapshot");
            progress.become_snapshot(snapshot_index);
            self.send_snapshot_chunk(peer);
            return true;
        };
        let entries = self.log.batch_from(
            progress.next_index,
            self.config.batch_entries_max,
            self.config.batch_bytes_max,
        );
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let count = entries.len();
        progress.on_sent(prev_log_index + count as u64, count);
        progress.commit_sent = progress.commit_sent.max(self.commit_index);
        let message = AppendEntries {
            term: self.term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: self.commit_index,
        };
        self.send(peer, Message::AppendEntries(message));
        true
    }

    /// Handles a follower's answer to `AppendEntries`.
    pub(crate) fn on_append_entries_response(
        &mut self,
        from: NodeId,
        response: AppendEntriesResponse,
    ) {
        let last = self.log.last_index();
        let Some(progress) = self.role.heard_from(from) else {
            return;
        };
        match response.outcome {
            AppendOutcome::Matched { match_index } => {
                if match_index > last {
                    tracing::warn!(
                        id = self.id,
                        from,
                        match_index,
                        "match beyond our log dropped"
                    );
                    return;
                }
                let was_snapshot = matches!(progress.state, ProgressState::Snapshot(_));
                let advanced = progress.on_matched(match_index);
                if was_snapshot && progress.match_index + 1 >= progress.next_index {
                    progress.become_probe();
                }
                self.after_matched(from, advanced);
            }
            AppendOutcome::Conflict {
                prev_log_index,
                conflict_term,
                conflict_index,
            } => {
                if prev_log_index > last {
                    tracing::warn!(
                        id = self.id,
                        from,
                        prev_log_index,
                        "rejection beyond our log dropped"
                    );
                    return;
                }
                let hint_next = if conflict_term == 0 {
                    conflict_index
                } else {
                    self.log
                        .last_index_of_term(conflict_term, prev_log_index)
                        .map_or(conflict_index, |i| i + 1)
                };
                if progress.on_conflict(prev_log_index, hint_next) {
                    tracing::trace!(
                        id = self.id,
                        from,
                        prev_log_index,
                        next = progress.next_index,
                        "backtracking"
                    );
                    self.send_append(from, true);
                }
            }
        }
    }

    /// After a follower's match index was taken (from an
    /// `AppendEntriesResponse` or a finished snapshot transfer): if it moved,
    /// the commit index, a leadership transfer and a membership change may
    /// move with it; either way replication to the follower goes on.
    pub(crate) fn after_matched(&mut self, from: NodeId, advanced: bool) {
        if advanced {
            self.maybe_commit();
            self.maybe_send_timeout_now();
            self.advance_membership_change();
        }
        self.send_appends(from);
    }

    /// Tells each peer a commit index it may apply and has not been told
    /// (no `AppendEntries` carried it in this flush): a heartbeat without a
    /// read round. So a follower applies, and answers reads served from its
    /// replica, one round trip after the commit rather than up to a
    /// heartbeat interval later (etcd's leader likewise sends on every
    /// commit). The commit is `min(commit, match)`, as in every heartbeat.
    pub(crate) fn announce_commit(&mut self) {
        let term = self.term;
        let commit_index = self.commit_index;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let mut announcements = Vec::new();
        for (peer, progress) in leader.progress.iter_mut() {
            let commit = progress.match_index.min(commit_index);
            if commit > progress.commit_sent {
                progress.commit_sent = commit;
                announcements.push((*peer, commit));
            }
        }
        for (peer, commit) in announcements {
            self.send(
                peer,
                Message::Heartbeat(Heartbeat {
                    term,
                    commit,
                    read_round: 0,
                }),
            );
        }
    }

    /// Broadcasts a heartbeat carrying a new ReadIndex round (§5.2; thesis
    /// §6.4 step 3).
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let round = self.start_read_round();
        let commit_index = self.commit_index;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let heartbeats: Vec<(NodeId, LogIndex)> = leader
            .progress
            .iter_mut()
            .map(|(peer, p)| {
                let commit = p.match_index.min(commit_index);
                p.commit_sent = p.commit_sent.max(commit);
                (*peer, commit)
            })
            .collect();
        for (peer, commit) in heartbeats {
            self.send(
                peer,
                Message::Heartbeat(Heartbeat {
                    term: self.term,
                    commit,
                    read_round: round,
                }),
            );
        }
    }

    /// A follower answered a heartbeat: it is alive, it confirms the read
    /// round, and a stalled replication stream to it is restarted.
    pub(crate) fn on_heartbeat_response(&mut self, from: NodeId, response: HeartbeatResponse) {
        let inflight_max = self.config.inflight_messages_max;
        let stall_ticks = 2 * self.config.heartbeat_interval_ticks;
        let last = self.log.last_index();
        let Some(progress) = self.role.heard_from(from) else {
            return;
        };
        progress.read_round_acked = progress.read_round_acked.max(response.read_round);
        progress.on_heartbeat_response(inflight_max);
        let behind = progress.match_index < last;
        if behind {
            if let ProgressState::Replicate { .. } = progress.state {
                if progress.ticks_since_progress() >= stall_ticks {
                    // Batches were lost: resend from what the peer holds.
                    progress.become_probe();
                }
            }
        }
        let probe = progress.wants_probe();
        self.confirm_reads();
        if behind {
            if probe {
                self.send_append(from, true);
            } else {
                self.send_appends(from);
            }
        }
    }
}
