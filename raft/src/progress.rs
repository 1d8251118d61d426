//! What a leader knows of each follower: `nextIndex` / `matchIndex`
//! (Figure 2) and how it is currently sending to it (etcd-raft's progress
//! states: probe, pipelined replicate, snapshot).

use std::collections::VecDeque;

use consensus_api::LogIndex;

/// A snapshot being streamed to a follower, one chunk at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotTransfer {
    /// Index of the snapshot being sent.
    pub(crate) index: LogIndex,
    /// Offset of the next chunk to send (the follower's last reported one).
    pub(crate) offset: u64,
    /// A chunk is outstanding (stop-and-wait).
    pub(crate) awaiting: bool,
    /// Ticks since the last chunk was sent (resend after a heartbeat
    /// interval without an answer).
    pub(crate) ticks_since_sent: u64,
}

/// How the leader sends to one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    /// `next_index` is a guess: send one `AppendEntries` and wait for the
    /// answer (or the next heartbeat) before sending another.
    Probe {
        /// One probe is outstanding.
        paused: bool,
    },
    /// The follower's log matches up to `match_index`: stream batches
    /// without waiting, at most `inflight_messages_max` unacknowledged.
    Replicate {
        /// Last index of each unacknowledged batch, oldest first.
        inflight: VecDeque<LogIndex>,
    },
    /// The entries the follower needs are compacted: send the snapshot.
    Snapshot(SnapshotTransfer),
}

/// Replication progress of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Highest index known to be durably stored on the peer (§5.3).
    pub(crate) match_index: LogIndex,
    /// Next index to send (§5.3).
    pub(crate) next_index: LogIndex,
    /// Sending mode.
    pub(crate) state: ProgressState,
    /// Ticks since the leader last heard from the peer in this term (check
    /// quorum, `Unavailable`).
    pub(crate) ticks_since_heard: u64,
    /// Highest ReadIndex round the peer acknowledged.
    pub(crate) read_round_acked: u64,
    /// Highest commit index the leader has told the peer (in an
    /// `AppendEntries` or a heartbeat): a larger one it may apply is
    /// announced at the next flush.
    pub(crate) commit_sent: LogIndex,
    /// Ticks since the match index last advanced or the state last changed
    /// (detects a replication stream whose batches were lost).
    stalled_ticks: u64,
}

impl Progress {
    /// A peer a new leader knows nothing about (§5.3: nextIndex starts just
    /// after the leader's last entry).
    pub(crate) fn new(leader_last_index: LogIndex) -> Progress {
        Progress {
            match_index: 0,
            next_index: leader_last_index + 1,
            state: ProgressState::Probe { paused: false },
            ticks_since_heard: 0,
            read_round_acked: 0,
            commit_sent: 0,
            stalled_ticks: 0,
        }
    }

    /// Records a successful append up to `index`. Returns true when the
    /// match index moved.
    pub(crate) fn on_matched(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
            self.stalled_ticks = 0;
        }
        self.next_index = self.next_index.max(index + 1);
        match &mut self.state {
            ProgressState::Probe { .. } => {
                self.state = ProgressState::Replicate {
                    inflight: VecDeque::new(),
                };
            }
            ProgressState::Replicate { inflight } => {
                while inflight.front().is_some_and(|last| *last <= index) {
                    inflight.pop_front();
                }
            }
            ProgressState::Snapshot(_) => {}
        }
        advanced
    }

    /// Handles a rejection of `prev_log_index` with the leader-computed
    /// `hint_next`. Returns false for a stale rejection (ignored).
    pub(crate) fn on_conflict(&mut self, prev_log_index: LogIndex, hint_next: LogIndex) -> bool {
        match &self.state {
            ProgressState::Replicate { .. } if prev_log_index <= self.match_index => false,
            ProgressState::Probe { .. }
                if prev_log_index.checked_add(1) != Some(self.next_index) =>
            {
                false
            }
            ProgressState::Snapshot(_) => false,
            _ => {
                self.next_index = hint_next
                    .min(prev_log_index)
                    .max(self.match_index + 1)
                    .max(1);
                self.state = ProgressState::Probe { paused: false };
                self.stalled_ticks = 0;
                true
            }
        }
    }

    /// Starts sending a snapshot.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.stalled_ticks = 0;
        self.state = ProgressState::Snapshot(SnapshotTransfer {
            index,
            offset: 0,
            awaiting: false,
            ticks_since_sent: 0,
        });
    }

    /// After a snapshot transfer (or its abandonment): probe from just after
    /// what the peer is known to hold.
    pub(crate) fn become_probe(&mut self) {
        self.stalled_ticks = 0;
        self.next_index = self.match_index + 1;
        self.state = ProgressState::Probe { paused: false };
    }

    /// True when no more `AppendEntries` may be sent now.
    pub(crate) fn is_paused(&self, inflight_max: usize) -> bool {
        match &self.state {
            ProgressState::Probe { paused } => *paused,
            ProgressState::Replicate { inflight } => inflight.len() >= inflight_max.max(1),
            ProgressState::Snapshot(_) => true,
        }
    }

    /// Records that a batch ending at `last` was sent.
    pub(crate) fn on_sent(&mut self, last: LogIndex, entries: usize) {
        match &mut self.state {
            ProgressState::Probe { paused } => *paused = true,
            ProgressState::Replicate { inflight } => {
                if entries > 0 {
                    inflight.push_back(last);
                    self.next_index = last + 1;
                }
            }
            ProgressState::Snapshot(_) => {}
        }
    }

    /// A heartbeat answer arrived: lets a stalled probe or a full window
    /// send again (a lost message must not stall the peer forever).
    pub(crate) fn on_heartbeat_response(&mut self, inflight_max: usize) {
        match &mut self.state {
            ProgressState::Probe { paused } => *paused = false,
            ProgressState::Replicate { inflight } => {
                if inflight.len() >= inflight_max.max(1) {
                    inflight.pop_front();
                }
            }
            ProgressState::Snapshot(_) => {}
        }
    }

    /// One tick passed.
    pub(crate) fn tick(&mut self) {
        self.ticks_since_heard = self.ticks_since_heard.saturating_add(1);
        self.stalled_ticks = self.stalled_ticks.saturating_add(1);
    }

    /// Ticks since the match index last advanced or the state last changed.
    pub(crate) fn ticks_since_progress(&self) -> u64 {
        self.stalled_ticks
    }

    /// True when a probe (possibly empty) should be sent to learn where the
    /// peer stands: probing, or streaming with nothing unacknowledged.
    pub(crate) fn wants_probe(&self) -> bool {
        match &self.state {
            ProgressState::Probe { paused } => !paused,
            ProgressState::Replicate { inflight } => inflight.is_empty(),
            ProgressState::Snapshot(_) => false,
        }
    }

    /// Short name for logs and status.
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state {
            ProgressState::Probe { .. } => "probe",
            ProgressState::Replicate { .. } => "replicate",
            ProgressState::Snapshot(_) => "snapshot",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_becomes_replicate_on_match_and_window_fills() {
        let mut progress = Progress::new(10);
        assert!(!progress.is_paused(2));
        progress.on_sent(11, 1);
        assert!(progress.is_paused(2), "one probe at a time");
        assert!(progress.on_matched(11));
        assert_eq!(progress.state_name(), "replicate");
        progress.on_sent(12, 1);
        progress.on_sent(13, 1);
        assert!(progress.is_paused(2), "window of 2 is full");
        assert_eq!(progress.next_index, 14);
        progress.on_matched(12);
        assert!(!progress.is_paused(2));
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut progress = Progress::new(10);
        progress.on_matched(8);
        progress.on_sent(10, 2);
        assert!(!progress.on_conflict(7, 1), "already matched beyond 7");
        assert!(progress.on_conflict(9, 5));
        assert_eq!(progress.next_index, 9, "never below match + 1");
        assert_eq!(progress.state_name(), "probe");
        assert!(
            !progress.on_conflict(4, 2),
            "a probe answers only for next - 1"
        );
    }
}
