//! The leader (Raft paper §5.3, §5.4.2, §8; thesis §6 check-quorum, §3.10
//! leadership transfer).
//!
//! A new leader appends a no-op of its term (§8): until an entry of its own
//! term commits it cannot know which earlier entries are committed, and the
//! current-term commit rule (§5.4.2, Figure 8) forbids it to commit earlier
//! entries by counting replicas. It answers proposals `Unavailable` as soon
//! as it has not heard from a quorum for a while, and steps down after an
//! election timeout without a quorum (check-quorum), so an isolated leader
//! neither builds a long uncommitted tail nor keeps clients waiting.

use std::collections::BTreeMap;

use consensus_api::{Bytes, Entry, LogIndex, NodeId, Payload, Rejected, Ticket};

use crate::core::{RaftCore, Role};
use crate::log::RaftLog;
use crate::membership::MembershipChange;
use crate::message::{Message, TimeoutNow};
use crate::progress::{Progress, ProgressState};
use crate::read::ReadQueue;

/// A leadership transfer in progress (thesis §3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    /// The node that should take over.
    pub(crate) target: NodeId,
    /// Ticks since the transfer started (abandoned after an election timeout).
    pub(crate) elapsed: u64,
    /// `TimeoutNow` was sent.
    pub(crate) sent: bool,
}

/// State only a leader has.
#[derive(Debug)]
pub(crate) struct LeaderState {
    /// Every other member's progress (voters and learners).
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Ticks since the last heartbeat broadcast.
    pub(crate) heartbeat_elapsed: u64,
    /// Index of this term's no-op: the leader may serve reads only once it
    /// is committed.
    pub(crate) term_start_index: LogIndex,
    /// Proposals waiting for their entry to commit.
    pub(crate) proposals: BTreeMap<LogIndex, Ticket>,
    /// ReadIndex requests.
    pub(crate) reads: ReadQueue,
    /// A membership change driven by this leader.
    pub(crate) membership_change: Option<MembershipChange>,
    /// A leadership transfer in progress.
    pub(crate) transfer: Option<Transfer>,
}

impl LeaderState {
    /// Checks the leader's bookkeeping against the log.
    pub(crate) fn check(&self, id: NodeId, term: u64, log: &RaftLog) {
        assert!(
            !self.progress.contains_key(&id),
            "a leader keeps no progress for itself"
        );
        assert!(self.term_start_index > 0, "a leader appended its no-op");
        if let Some(start_term) = log.term_at(self.term_start_index) {
            assert_eq!(start_term, term, "the no-op is of the leader's term");
        }
        let last = log.last_index();
        for (peer, progress) in &self.progress {
            assert!(
                progress.match_index <= last,
                "peer {peer} matched beyond the leader's log"
            );
            assert!(
                progress.next_index > progress.match_index,
                "peer {peer}: next index must follow the match index"
            );
            assert!(
                progress.next_index <= last + 1,
                "peer {peer}: next index beyond the log"
            );
        }
        debug_assert!(
            self.proposals
                .keys()
                .all(|i| log.term_at(*i).is_none_or(|t| t == term)),
            "pending proposals are entries of this term"
        );
    }
}

impl RaftCore {
    /// §5.2: a candidate with a quorum of votes becomes leader; §8: it
    /// appends a no-op of its term.
    pub(crate) fn become_leader(&mut self) {
        tracing::debug!(id = self.id, term = self.term, "becomes leader");
        let last = self.log.last_index();
        let progress = self
            .log
            .membership()
            .all_nodes()
            .into_iter()
            .filter(|n| *n != self.id)
            .map(|n| (n, Progress::new(last)))
            .collect();
        self.role = Role::Leader(Box::new(LeaderState {
            progress,
            heartbeat_elapsed: 0,
            term_start_index: last + 1,
            proposals: BTreeMap::new(),
            reads: ReadQueue::default(),
            membership_change: None,
            transfer: None,
        }));
        self.leader_id = Some(self.id);
        self.incoming_snapshot = None;
        self.append_entry(Payload::Noop);
    }

    /// Appends an entry of the current term to the leader's log; a
    /// configuration takes effect at once (§6).
    pub(crate) fn append_entry(&mut self, payload: Payload) -> LogIndex {
        let index = self.log.last_index() + 1;
        let is_membership = matches!(payload, Payload::Membership(_));
        self.log.append(Entry {
            index,
            epoch: self.term,
            payload,
        });
        if is_membership {
            self.sync_progress_with_membership();
        }
        self.maybe_commit();
        index
    }

    /// Keeps one progress per member of the configuration in force.
    fn sync_progress_with_membership(&mut self) {
        let members = self.log.membership().all_nodes();
        let last = self.log.last_index();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        leader.progress.retain(|peer, _| members.contains(peer));
        for member in members.into_iter().filter(|m| *m != self.id) {
            leader
                .progress
                .entry(member)
                .or_insert_with(|| Progress::new(last));
        }
        if leader
            .transfer
            .as_ref()
            .is_some_and(|t| !leader.progress.contains_key(&t.target))
        {
            leader.transfer = None;
        }
    }

    /// True if the leader heard from a quorum within `window` ticks (itself
    /// included when it is a voter).
    pub(crate) fn quorum_recently_active(&self, window: u64) -> bool {
        let Role::Leader(leader) = &self.role else {
            return false;
        };
        let id = self.id;
        self.log.membership().is_quorum(|n| {
            n == id
                || leader
                    .progress
                    .get(&n)
                    .is_some_and(|p| p.ticks_since_heard < window)
        })
    }

    /// The window within which a quorum must have answered for the leader to
    /// accept requests: two heartbeat round trips.
    pub(crate) fn availability_window_ticks(&self) -> u64 {
        2 * self.config.heartbeat_interval_ticks + 1
    }

    /// Fails a request fast when this node cannot serve it as leader.
    pub(crate) fn check_can_serve(&self) -> Result<(), Rejected> {
        let Role::Leader(leader) = &self.role else {
            return Err(Rejected::NotLeader {
                hint: self.leader_id,
            });
        };
        if let Some(transfer) = &leader.transfer {
            return Err(Rejected::NotLeader {
                hint: Some(transfer.target),
            });
        }
        if self.config.check_quorum
            && !self.quorum_recently_active(self.availability_window_ticks())
        {
            return Err(Rejected::Unavailable);
        }
        Ok(())
    }

    /// `propose`: append the command, finish its ticket when it commits.
    pub(crate) fn propose_command(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        self.check_can_serve()?;
        let uncommitted = self.log.last_index() - self.commit_index;
        if uncommitted >= self.config.uncommitted_entries_max as u64 {
            return Err(Rejected::Overloaded);
        }
        let ticket = self.ticket_counter.next_ticket();
        let index = self.log.last_index() + 1;
        if let Role::Leader(leader) = &mut self.role {
            leader.proposals.insert(index, ticket);
        }
        self.append_entry(Payload::Command(command));
        Ok(ticket)
    }

    /// §5.3 / §5.4.2: commit the highest index stored on a quorum, but only
    /// if it is an entry of the current term (Figure 8): earlier entries
    /// then commit with it, indirectly.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let Role::Leader(leader) = &self.role else {
            return false;
        };
        let id = self.id;
        let last = self.log.last_index();
        let quorum_index = self
            .log
            .membership()
            .quorum_index(|n| {
                if n == id {
                    last
                } else {
                    leader.progress.get(&n).map_or(0, |p| p.match_index)
                }
            })
            .min(last);
        if quorum_index <= self.commit_index || self.log.term_at(quorum_index) != Some(self.term) {
            return false;
        }
        self.commit_index = quorum_index;
        self.on_leader_commit();
        true
    }

    /// Everything that waits for the commit index: proposals, reads waiting
    /// for the term's first commit, membership stages.
    fn on_leader_commit(&mut self) {
        let commit = self.commit_index;
        let term_committed = self.log.term_at(commit) == Some(self.term);
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let still_pending = leader.proposals.split_off(&(commit + 1));
        let done = std::mem::replace(&mut leader.proposals, still_pending);
        self.completed
            .extend(done.into_iter().map(|(index, ticket)| (ticket, Ok(index))));
        if term_committed {
            self.release_reads_waiting_for_term();
        }
        self.advance_membership_change();
    }

    /// Leader timers: check-quorum, heartbeats, transfer and snapshot
    /// retransmission.
    pub(crate) fn tick_leader(&mut self) {
        let heartbeat_interval = self.config.heartbeat_interval_ticks;
        let transfer_timeout = self.config.election_timeout_ticks_max;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        leader.heartbeat_elapsed += 1;
        for progress in leader.progress.values_mut() {
            progress.tick();
            if let ProgressState::Snapshot(transfer) = &mut progress.state {
                transfer.ticks_since_sent += 1;
                if transfer.awaiting && transfer.ticks_since_sent >= 2 * heartbeat_interval {
                    transfer.awaiting = false;
                }
            }
        }
        if let Some(transfer) = &mut leader.transfer {
            transfer.elapsed += 1;
            if transfer.elapsed >= transfer_timeout {
                tracing::debug!(
                    id = self.id,
                    target = transfer.target,
                    "leadership transfer abandoned"
                );
                leader.transfer = None;
            }
        }
        let heartbeat_due = leader.heartbeat_elapsed >= heartbeat_interval;
        if heartbeat_due {
            leader.heartbeat_elapsed = 0;
        }
        if self.config.check_quorum
            && !self.quorum_recently_active(self.config.election_timeout_ticks_min)
        {
            // Thesis §6.2: a leader that cannot reach a quorum within an
            // election timeout steps down, so clients look elsewhere.
            tracing::debug!(
                id = self.id,
                term = self.term,
                "check-quorum failed: steps down"
            );
            self.become_follower(self.term, None);
            return;
        }
        self.tick_membership_change();
        if heartbeat_due {
            self.broadcast_heartbeat();
        }
        self.resend_snapshot_chunks();
    }

    /// Sends whatever the followers are missing and starts pending read
    /// rounds. Called when the `Ready` is built, so proposals that arrived
    /// since the previous `Ready` travel in one batch.
    pub(crate) fn flush_leader(&mut self) {
        let peers: Vec<NodeId> = match &self.role {
            Role::Leader(leader) => leader.progress.keys().copied().collect(),
            _ => return,
        };
        for peer in peers {
            self.send_appends(peer);
        }
        self.flush_read_round();
        self.announce_commit();
    }

    /// Fails every request a deposed leader still holds: they may or may
    /// not take effect (the entries may still commit under the next leader).
    pub(crate) fn fail_leader_requests(&mut self, leader: LeaderState, hint: Option<NodeId>) {
        let outcome = || Err(Rejected::OutcomeUnknown { hint });
        self.completed.extend(
            leader
                .proposals
                .into_values()
                .map(|ticket| (ticket, outcome())),
        );
        self.completed.extend(
            leader
                .reads
                .into_tickets()
                .into_iter()
                .map(|ticket| (ticket, outcome())),
        );
        if let Some(change) = leader.membership_change {
            self.completed.push((change.ticket, outcome()));
        }
    }

    /// `transfer_leadership` (thesis §3.10): stop accepting proposals, bring
    /// the target up to date, then tell it to campaign now.
    pub(crate) fn start_leadership_transfer(&mut self, to: NodeId) -> Result<(), Rejected> {
        let Role::Leader(leader) = &mut self.role else {
            return Err(Rejected::NotLeader {
                hint: self.leader_id,
            });
        };
        if to == self.id {
            leader.transfer = None;
            return Ok(());
        }
        if !self.log.membership().is_voter(to) || !leader.progress.contains_key(&to) {
            return Err(Rejected::Unsupported {
                what: format!("leadership transfer to {to}, which is not a voter"),
            });
        }
        if leader.transfer.as_ref().is_some_and(|t| t.target == to) {
            return Ok(());
        }
        tracing::debug!(id = self.id, to, "leadership transfer starts");
        leader.transfer = Some(Transfer {
            target: to,
            elapsed: 0,
            sent: false,
        });
        leader.reads.expire_lease();
        self.maybe_send_timeout_now();
        Ok(())
    }

    /// Sends `TimeoutNow` once the transfer target holds the whole log.
    pub(crate) fn maybe_send_timeout_now(&mut self) {
        let last = self.log.last_index();
        let term = self.term;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(transfer) = &mut leader.transfer else {
            return;
        };
        if transfer.sent {
            return;
        }
        let caught_up = leader
            .progress
            .get(&transfer.target)
            .is_some_and(|p| p.match_index == last);
        if caught_up {
            transfer.sent = true;
            let target = transfer.target;
            tracing::debug!(id = self.id, target, "sends TimeoutNow");
            self.send(target, Message::TimeoutNow(TimeoutNow { term }));
        }
    }
}
