//! Deciding session expiry through the log.
//!
//! The state machine has no clock, so it cannot tell when a session timed
//! out. Every server runs an [`ExpiryTracker`] fed with what its replica
//! applies: each entry that shows a session's activity (a heartbeat
//! `Touch`, a write, the session's creation) restarts that session's
//! deadline on **this server's** clock. The *expirer* proposes
//! [`Command::ExpireSession`](crate::state::Command::ExpireSession) once a
//! deadline passes, carrying the session's last activity index; every
//! replica applies it at the same index, and applies it only if the session
//! showed no activity after that index (a heartbeat that raced with the
//! expiry wins).
//!
//! Who is the expirer:
//! * on Raft, Multi-Paxos and ZAB, the node that reports `Role::Leader`;
//!   when a node becomes leader it first extends every deadline to a full
//!   timeout from now (ZooKeeper does the same on leader change), so a leader
//!   change never expires sessions that were heartbeating to the old leader;
//! * on classic Paxos, which has no leader, every node may propose, in a
//!   deterministic order: the node of rank `r` among the sorted member ids
//!   (the lowest id has rank 0) waits `r` half-timeouts past the deadline.
//!   The lowest live id therefore expires sessions; if it is down or cut
//!   off, the next one takes over half a timeout later. Duplicate proposals
//!   are harmless: the second finds the session gone (`NotExpired`).
//!
//! The tracker is sans-IO (time is a `u64` of milliseconds given by the
//! caller): the server feeds it `Instant`-based milliseconds, the simulator
//! test virtual milliseconds.

use std::collections::BTreeMap;

use consensus::LogIndex;

use crate::types::SessionId;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tracked {
    timeout_ms: u64,
    last_active: LogIndex,
    deadline_ms: u64,
    /// When an expiry was last proposed for `last_active` (re-proposed after
    /// half a timeout if it did not take effect).
    proposed_at_ms: Option<u64>,
}

/// Per-server session deadlines (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ExpiryTracker {
    sessions: BTreeMap<SessionId, Tracked>,
}

impl ExpiryTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        ExpiryTracker::default()
    }

    /// Forgets everything and tracks `sessions` (id, timeout, last activity)
    /// with a full timeout from `now_ms` (after a restart or a snapshot).
    pub fn rebuild(
        &mut self,
        sessions: impl IntoIterator<Item = (SessionId, u64, LogIndex)>,
        now_ms: u64,
    ) {
        self.sessions = sessions
            .into_iter()
            .map(|(id, timeout_ms, last_active)| {
                (
                    id,
                    Tracked {
                        timeout_ms,
                        last_active,
                        deadline_ms: now_ms.saturating_add(timeout_ms),
                        proposed_at_ms: None,
                    },
                )
            })
            .collect();
    }

    /// A session was created at `index`.
    pub fn started(&mut self, session: SessionId, timeout_ms: u64, index: LogIndex, now_ms: u64) {
        self.sessions.insert(
            session,
            Tracked {
                timeout_ms,
                last_active: index,
                deadline_ms: now_ms.saturating_add(timeout_ms),
                proposed_at_ms: None,
            },
        );
    }

    /// A session showed activity at `index`.
    pub fn active(&mut self, session: SessionId, index: LogIndex, now_ms: u64) {
        if let Some(tracked) = self.sessions.get_mut(&session) {
            tracked.last_active = index;
            tracked.deadline_ms = now_ms.saturating_add(tracked.timeout_ms);
            tracked.proposed_at_ms = None;
        }
    }

    /// A session ended.
    pub fn ended(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// This node just became the expirer: every deadline is at least a full
    /// timeout from now.
    pub fn extend_all(&mut self, now_ms: u64) {
        for tracked in self.sessions.values_mut() {
            tracked.deadline_ms = tracked
                .deadline_ms
                .max(now_ms.saturating_add(tracked.timeout_ms));
            tracked.proposed_at_ms = None;
        }
    }

    /// Sessions tracked.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The deadline of a session, if tracked.
    pub fn deadline_ms(&self, session: SessionId) -> Option<u64> {
        self.sessions.get(&session).map(|t| t.deadline_ms)
    }

    /// Sessions whose deadline passed `rank` half-timeouts ago (rank 0: the
    /// leader, or the lowest Paxos id), as `(session, last_active)` to put
    /// in `ExpireSession`. Each is returned once per half timeout until it
    /// ends or shows activity.
    pub fn due(&mut self, now_ms: u64, rank: u64) -> Vec<(SessionId, LogIndex)> {
        let mut due = Vec::new();
        for (id, tracked) in &mut self.sessions {
            let grace = (tracked.timeout_ms / 2).saturating_mul(rank);
            if now_ms < tracked.deadline_ms.saturating_add(grace) {
                continue;
            }
            let retry_after = (tracked.timeout_ms / 2).max(1);
            if tracked
                .proposed_at_ms
                .is_some_and(|at| now_ms < at.saturating_add(retry_after))
            {
                continue;
            }
            tracked.proposed_at_ms = Some(now_ms);
            due.push((*id, tracked.last_active));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_moves_the_deadline_and_due_is_returned_once_per_half_timeout() {
        let mut tracker = ExpiryTracker::new();
        tracker.started(5, 1000, 5, 0);
        assert!(tracker.due(999, 0).is_empty());
        tracker.active(5, 9, 600);
        assert!(
            tracker.due(1500, 0).is_empty(),
            "activity at 600 moved the deadline to 1600"
        );
        assert_eq!(tracker.due(1600, 0), vec![(5, 9)]);
        assert!(
            tracker.due(1700, 0).is_empty(),
            "not re-proposed within half a timeout"
        );
        assert_eq!(tracker.due(2100, 0), vec![(5, 9)]);
        tracker.ended(5);
        assert!(tracker.due(10_000, 0).is_empty());
    }

    #[test]
    fn rank_delays_and_a_new_expirer_extends_deadlines() {
        let mut tracker = ExpiryTracker::new();
        tracker.started(1, 1000, 1, 0);
        assert!(
            tracker.due(1000, 2).is_empty(),
            "rank 2 waits two half-timeouts"
        );
        assert_eq!(tracker.due(2000, 2), vec![(1, 1)]);
        let mut tracker = ExpiryTracker::new();
        tracker.started(1, 1000, 1, 0);
        tracker.extend_all(900);
        assert!(tracker.due(1800, 0).is_empty());
        assert_eq!(tracker.due(1900, 0), vec![(1, 1)]);
        tracker.rebuild([(7, 500, 3)], 10_000);
        assert_eq!(tracker.len(), 1);
        assert_eq!(tracker.deadline_ms(7), Some(10_500));
    }
}
