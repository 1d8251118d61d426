//! Real cores in configurations that are unsafe under some faults, for
//! showing that the simulator catches them (not listed in `--help`).
//!
//! * [`RaftLeaseReads`]: Raft with [`raft::ReadMode::Lease`], the optional
//!   lease read of thesis §6.4.1. Safe only while clocks agree within the
//!   documented drift; the clock faults (a pause, a 3x slow clock) break
//!   that assumption, and the simulator must then find stale reads.
//! * [`PanickingRaft`]: the reference Raft with a planted panic, for the
//!   panic reporting of the command line.

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, InitialState, LogIndex, Membership, NodeId, Ready, RecoverError, Rejected,
    Snapshot, Status, Ticket,
};
use raft::{RaftCore, ReadMode};

/// Raft serving reads from a heartbeat-backed lease ([`ReadMode::Lease`]).
pub struct RaftLeaseReads(RaftCore);

impl Core for RaftLeaseReads {
    type Message = <RaftCore as Core>::Message;

    const PROTOCOL: &'static str = "raft";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        let mut core = RaftCore::restore(config, state)?;
        core.set_read_mode(ReadMode::Lease);
        Ok(RaftLeaseReads(core))
    }

    fn step(&mut self, from: NodeId, message: Self::Message) {
        self.0.step(from, message);
    }

    fn tick(&mut self) {
        self.0.tick();
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        self.0.propose(command)
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        self.0.read_barrier()
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        self.0.change_membership(to)
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        self.0.compact(applied_index, data)
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), Rejected> {
        self.0.transfer_leadership(to)
    }

    fn ready(&mut self) -> Option<Ready<Self::Message>> {
        self.0.ready()
    }

    fn status(&self) -> Status {
        self.0.status()
    }
}

/// The reference Raft with a planted bug: it panics (an internal assertion
/// failing) once it reaches term 3, which partitions bring about within a
/// few seeds. Shows that a panicking core is reported with its seed and the
/// reproducing command instead of aborting the sweep.
pub struct PanickingRaft(consensus_sim::testing::TinyRaft);

impl Core for PanickingRaft {
    type Message = <consensus_sim::testing::TinyRaft as Core>::Message;

    const PROTOCOL: &'static str = "panicking-raft";

    fn restore(config: CoreConfig, state: InitialState) -> Result<Self, RecoverError> {
        Ok(PanickingRaft(consensus_sim::testing::TinyRaft::restore(
            config, state,
        )?))
    }

    fn step(&mut self, from: NodeId, message: Self::Message) {
        self.0.step(from, message);
    }

    fn tick(&mut self) {
        self.0.tick();
        let epoch = self.0.status().epoch;
        assert!(epoch < 3, "planted bug: term {epoch} reached");
    }

    fn propose(&mut self, command: Bytes) -> Result<Ticket, Rejected> {
        self.0.propose(command)
    }

    fn read_barrier(&mut self) -> Result<Ticket, Rejected> {
        self.0.read_barrier()
    }

    fn change_membership(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        self.0.change_membership(to)
    }

    fn compact(&mut self, applied_index: LogIndex, data: Bytes) -> Result<Snapshot, Rejected> {
        self.0.compact(applied_index, data)
    }

    fn ready(&mut self) -> Option<Ready<Self::Message>> {
        self.0.ready()
    }

    fn status(&self) -> Status {
        self.0.status()
    }
}
