//! [`LeaderLocalReads`]: any real core with its read confirmation switched
//! off, without touching the core's code.
//!
//! The wrapper passes every input to the inner core, except one: once the
//! inner core has shown it leads an epoch (a proposal or a read barrier it
//! accepted as leader of that epoch finished `Ok`, so an entry of the epoch
//! is committed and its commit index is complete), every later
//! `read_barrier` while it still reports `Role::Leader` of that epoch is
//! answered at once with the inner core's commit index. No heartbeat round,
//! no quorum: the leader's belief that it leads is taken as proof. That
//! belief lasts until check-quorum makes the core step down, about one
//! minimum election timeout of *its own* ticks after it last heard from a
//! quorum, while the others may elect a new leader one minimum election
//! timeout of *their* ticks after they last heard from it. With clocks that
//! agree the step-down acts as a lease and the shortcut looks safe; a slow
//! clock or a pause breaks it, and the deposed leader serves stale reads.
//! The simulator's clock faults ([`FaultMode::Clock`](crate::FaultMode))
//! exist to catch exactly this.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, InitialState, LogIndex, Membership, NodeId, Ready, RecoverError, Rejected,
    Role, Snapshot, Status, Ticket,
};

/// Tickets the wrapper makes up itself carry this bit, so they never equal
/// one of the inner core's.
const OWN_TICKET: u64 = 1 << 63;

/// A real core whose established leader answers reads from local state
/// without confirming its leadership (see the module documentation).
pub struct LeaderLocalReads<C: Core> {
    inner: C,
    /// Tickets the inner core accepted while leader, with the epoch.
    leader_tickets: BTreeMap<Ticket, u64>,
    /// The epoch the inner core has shown it leads.
    established: Option<u64>,
    /// Reads answered by the wrapper, not yet handed out.
    answered: Vec<(Ticket, Result<LogIndex, Rejected>)>,
    next_own: u64,
    number: u64,
    /// Reads answered without confirmation (for tests).
    local_reads: u64,
}

impl<C: Core> LeaderLocalReads<C> {
    /// The inner core.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Reads answered without confirming leadership so far.
    pub fn local_reads(&self) -> u64 {
        self.local_reads
    }

    fn remember_if_leader(&mut self, ticket: Ticket) {
        let status = self.inner.status();
        if status.role == Role::Leader {
            self.leader_tickets.insert(ticket, status.epoch);
        }
    }
}

impl<C: Core> Core for LeaderLocalReads<C> {
    type Message = C::Message;

    const PROTOCOL: &'static str = C::PROTOCOL;

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        Ok(LeaderLocalReads {
            inner: C::restore(config, state)?,
            leader_tickets: BTreeMap::new(),
            established: None,
            answered: Vec::new(),
            next_own: 0,
            number: 0,
            local_reads: 0,
        })
    }

    fn step(&mut self, from: NodeId, message: Self::Message) {
        self.inner.step(from, message);
    }

    fn tick(&mut self) {
        self.inner.tick();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        let ticket = self.inner.propose(command)?;
        self.remember_if_leader(ticket);
        Ok(ticket)
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        let status = self.inner.status();
        if status.role == Role::Leader && self.established == Some(status.epoch) {
            // The broken rule: no confirmation that a quorum still follows.
            self.next_own += 1;
            let ticket = Ticket(OWN_TICKET | self.next_own);
            self.answered.push((ticket, Ok(status.commit_index)));
            self.local_reads += 1;
            return Ok(ticket);
        }
        let ticket = self.inner.read_barrier()?;
        self.remember_if_leader(ticket);
        Ok(ticket)
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        self.inner.change_membership(to)
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        self.inner.compact(applied_index, data)
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), Rejected> {
        self.inner.transfer_leadership(to)
    }

    fn ready(&mut self) -> Option<Ready<Self::Message>> {
        let inner = self.inner.ready();
        if inner.is_none() && self.answered.is_empty() {
            return None;
        }
        self.number += 1;
        let mut ready = inner.unwrap_or_else(|| Ready::new(0));
        ready.number = self.number;
        let status = self.inner.status();
        for (ticket, result) in &ready.completed {
            if let Some(epoch) = self.leader_tickets.remove(ticket) {
                if result.is_ok() && status.role == Role::Leader && status.epoch == epoch {
                    self.established = Some(epoch);
                }
            }
        }
        ready.completed.append(&mut self.answered);
        Some(ready)
    }

    fn status(&self) -> Status {
        self.inner.status()
    }
}
