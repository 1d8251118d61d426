//! Linearizable reads without writing to the log: ReadIndex (thesis §6.4),
//! and an optional lease read (thesis §6.4.1), off by default.
//!
//! **ReadIndex.** The leader (1) must have committed an entry of its own
//! term, so its commit index is at least every index committed before the
//! read (until then reads wait); (2) records its commit index as the read
//! index; (3) confirms it is still the leader with a heartbeat round that
//! started after the read arrived and was acknowledged by a quorum (every
//! heartbeat broadcast starts a new round; a follower echoes the round);
//! (4) finishes the read with the read index. The driver serves the read
//! once its state machine has applied that index, which it has by then on
//! the leader, since committed entries leave in the same `Ready` or an
//! earlier one.
//!
//! **Lease read** ([`ReadMode::Lease`]). A quorum that acknowledged a
//! heartbeat sent at tick `t` will not elect another leader before
//! `t + election_timeout_ticks_min` on their clocks (with check-quorum,
//! followers ignore vote requests that soon after hearing from the leader,
//! and a restarted node waits that long before voting). The leader then
//! answers reads at once until `t + election_timeout_ticks_min - margin`.
//! **Clock assumption**: every node's ticks advance at the same rate within
//! a drift of `margin = election_timeout_ticks_min / 10 + 1` ticks per
//! lease; a paused leader whose ticks stop while others' run is exactly what
//! breaks it, hence off by default. Requires `check_quorum`; without it,
//! lease mode falls back to ReadIndex. A leadership transfer ends the lease.

use std::collections::VecDeque;

use consensus_api::{LogIndex, Rejected, Ticket};

use crate::core::{RaftCore, Role};

/// How the leader serves `read_barrier`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Confirm leadership with a heartbeat round per read batch (safe under
    /// any clock behaviour). The default.
    #[default]
    ReadIndex,
    /// Answer at once while a heartbeat-backed lease holds; relies on
    /// bounded clock drift (see the module documentation).
    Lease,
}

/// A read waiting for its heartbeat round.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingRead {
    ticket: Ticket,
    index: LogIndex,
    /// The first round that started after the read arrived.
    round: u64,
}

/// The leader's ReadIndex bookkeeping.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    /// Latest heartbeat round started.
    round: u64,
    /// Highest round acknowledged by a quorum.
    confirmed_round: u64,
    /// Tick at which each unconfirmed round was sent (lease reads).
    sent_at: VecDeque<(u64, u64)>,
    /// Reads waiting for the first commit of the leader's term.
    waiting_for_term: Vec<Ticket>,
    /// Reads waiting for a quorum to confirm their round.
    pending: VecDeque<PendingRead>,
    /// A read arrived since the last round started.
    round_needed: bool,
    /// Lease reads are allowed before this tick.
    lease_until: u64,
}

impl ReadQueue {
    /// Ends the lease (leadership transfer).
    pub(crate) fn expire_lease(&mut self) {
        self.lease_until = 0;
    }

    /// Every ticket still waiting (for failing them on step-down).
    pub(crate) fn into_tickets(self) -> Vec<Ticket> {
        self.waiting_for_term
            .into_iter()
            .chain(self.pending.into_iter().map(|r| r.ticket))
            .collect()
    }
}

impl RaftCore {
    /// Chooses how reads are served (default [`ReadMode::ReadIndex`]).
    pub fn set_read_mode(&mut self, mode: ReadMode) {
        self.read_mode = mode;
    }

    /// The read mode in use.
    pub fn read_mode(&self) -> ReadMode {
        self.read_mode
    }

    /// `read_barrier`: ReadIndex step 1 and 2.
    pub(crate) fn start_read_barrier(&mut self) -> Result<Ticket, Rejected> {
        self.check_can_serve()?;
        let ticket = self.ticket_counter.next_ticket();
        let term_committed = self.log.term_at(self.commit_index) == Some(self.term);
        if !term_committed {
            if let Role::Leader(leader) = &mut self.role {
                leader.reads.waiting_for_term.push(ticket);
            }
            return Ok(ticket);
        }
        self.enqueue_read(ticket);
        Ok(ticket)
    }

    fn lease_ticks(&self) -> u64 {
        let timeout = self.config.election_timeout_ticks_min;
        timeout.saturating_sub(timeout / 10 + 1)
    }

    fn enqueue_read(&mut self, ticket: Ticket) {
        let index = self.commit_index;
        let lease_allowed = self.read_mode == ReadMode::Lease && self.config.check_quorum;
        let now = self.now;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if lease_allowed && leader.transfer.is_none() && now < leader.reads.lease_until {
            self.completed.push((ticket, Ok(index)));
            return;
        }
        let round = leader.reads.round + 1;
        leader.reads.pending.push_back(PendingRead {
            ticket,
            index,
            round,
        });
        leader.reads.round_needed = true;
    }

    /// The leader committed its first entry of the term: reads waiting for
    /// it get their read index now.
    pub(crate) fn release_reads_waiting_for_term(&mut self) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let waiting = std::mem::take(&mut leader.reads.waiting_for_term);
        for ticket in waiting {
            self.enqueue_read(ticket);
        }
    }

    /// Starts a new heartbeat round; returns its number.
    pub(crate) fn start_read_round(&mut self) -> u64 {
        let now = self.now;
        let Role::Leader(leader) = &mut self.role else {
            return 0;
        };
        let reads = &mut leader.reads;
        reads.round += 1;
        reads.round_needed = false;
        reads.sent_at.push_back((reads.round, now));
        reads.round
    }

    /// Starts a round for reads that arrived since the last one (at `Ready`
    /// time, so one round serves every read of the batch).
    pub(crate) fn flush_read_round(&mut self) {
        let needed = matches!(&self.role, Role::Leader(leader) if leader.reads.round_needed);
        if needed {
            self.broadcast_heartbeat();
        }
        self.confirm_reads();
    }

    /// ReadIndex steps 3 and 4: finish reads whose round a quorum confirmed.
    pub(crate) fn confirm_reads(&mut self) {
        let id = self.id;
        let lease_ticks = self.lease_ticks();
        let membership = self.log.membership();
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let latest = leader.reads.round;
        let quorum_round = membership
            .quorum_index(|n| {
                if n == id {
                    latest
                } else {
                    leader.progress.get(&n).map_or(0, |p| p.read_round_acked)
                }
            })
            .min(latest);
        let reads = &mut leader.reads;
        if quorum_round <= reads.confirmed_round {
            return;
        }
        reads.confirmed_round = quorum_round;
        while let Some((round, sent)) = reads.sent_at.front().copied() {
            if round > quorum_round {
                break;
            }
            reads.sent_at.pop_front();
            if round == quorum_round {
                reads.lease_until = reads.lease_until.max(sent + lease_ticks);
            }
        }
        while reads
            .pending
            .front()
            .is_some_and(|r| r.round <= quorum_round)
        {
            if let Some(read) = reads.pending.pop_front() {
                self.completed.push((read.ticket, Ok(read.index)));
            }
        }
    }
}
