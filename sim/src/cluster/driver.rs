//! The simulator's side of the one `Ready` loop: each batch handed to
//! [`consensus_api::handle_ready_now`] with a memory store that can crash
//! between write and sync, the faulty network, the checked state machine.

use consensus_api::{handle_ready_now, Handled, ReadyDriver, ReadyError, Snapshot};

use super::*;

impl<C: Core> Cluster<C> {
    // ------------------------------------------------------------------
    // The driver: Ready handling
    // ------------------------------------------------------------------

    pub(super) fn after_input(&mut self, index: usize) {
        // A paused node's output waits for its resume (only a stale pause
        // lets input reach a paused core).
        if !self.defer_ready && !self.nodes[index].paused {
            self.drain_ready(index);
        }
        self.check_node(index);
    }

    /// Processes every pending `Ready` of the node (also used after
    /// [`Cluster::core_mut`] and in deferred-ready mode). Returns the
    /// batches handled.
    pub fn process_ready(&mut self, id: NodeId) -> Vec<Ready<C::Message>> {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let handled = self.drain_ready_collect(index, true);
        self.check_node(index);
        handled
    }

    pub(super) fn drain_ready(&mut self, index: usize) {
        self.drain_ready_collect(index, false);
    }

    pub(super) fn drain_ready_collect(
        &mut self,
        index: usize,
        keep: bool,
    ) -> Vec<Ready<C::Message>> {
        let mut handled = Vec::new();
        for _ in 0..10_000 {
            if self.failure.is_some() {
                break;
            }
            let Some(core) = self.nodes[index].core.as_mut() else {
                break;
            };
            let Some(ready) = core.ready() else { break };
            let copy = keep.then(|| ready.clone());
            let crashed = self.handle_ready(index, ready);
            if let Some(copy) = copy {
                handled.push(copy);
            }
            if crashed {
                break;
            }
        }
        handled
    }

    /// Handles one batch through the one `Ready` loop
    /// ([`consensus_api::handle_ready_now`]); returns true if the node
    /// crashed in the middle.
    pub(super) fn handle_ready(&mut self, index: usize, ready: Ready<C::Message>) -> bool {
        self.stats.readies += 1;
        self.stats.early_messages += ready.early_messages.min(ready.messages.len()) as u64;
        let id = self.nodes[index].id;
        let number = ready.number;
        let mut io = NodeIo {
            cluster: self,
            index,
            id,
        };
        match handle_ready_now(&mut io, ready) {
            Ok(Handled::Done) => false,
            Ok(Handled::Crashed) => true,
            // The checker already recorded what failed.
            Err(ReadyError::Driver(())) => false,
            Err(ReadyError::SnapshotBelowApplied {
                snapshot, applied, ..
            }) => {
                let message = format!(
                    "node {id} installs a snapshot at {snapshot} below its applied index {applied}"
                );
                self.violation("snapshot", message);
                false
            }
            Err(ReadyError::NotContiguous { index, applied, .. }) => {
                let message = format!(
                    "node {id} was handed committed entry {index} but its next index to apply is {}",
                    applied + 1
                );
                self.violation("applied-contiguous", message);
                false
            }
            Err(ReadyError::Malformed { problem, .. }) => {
                self.violation(
                    "ready-contract",
                    format!("node {id}: Ready #{number} {problem}"),
                );
                false
            }
        }
    }

    /// Persists one batch into the node's memory store, or crashes the node
    /// between the write and the sync when a crash is armed.
    fn persist_batch(&mut self, index: usize, ready: &Ready<C::Message>) -> Result<bool, ()> {
        let id = self.nodes[index].id;
        if ready.has_writes() {
            if let Err(error) = self.nodes[index].store.write(&ready.write_batch()) {
                self.violation(
                    "storage",
                    format!(
                        "node {id}: the store refused Ready #{}: {error}",
                        ready.number
                    ),
                );
                return Err(());
            }
            if let Some(torn) = self.nodes[index].crash_armed {
                // Crash between write and sync, after the early messages
                // left: any prefix of the unsynced batches may have reached
                // the disk.
                let unsynced = self.nodes[index].store.unsynced_batches();
                let keep = match torn {
                    TornCrash::RandomPrefix => self.rng.random_range(0..=unsynced),
                    TornCrash::LoseUnsynced => 0,
                };
                self.stats.torn_crashes += 1;
                self.crash_with(id, keep);
                return Ok(false);
            }
        }
        if ready.must_sync {
            if let Err(error) = self.nodes[index].store.sync() {
                self.violation("storage", format!("node {id}: sync failed: {error}"));
                return Err(());
            }
        }
        Ok(true)
    }

    /// Replaces a node's state machine with a received snapshot.
    fn restore_snapshot(&mut self, index: usize, snapshot: &Snapshot) -> Result<(), ()> {
        let id = self.nodes[index].id;
        let node = &mut self.nodes[index];
        if let Err(error) = node.sm.restore(snapshot.index, &snapshot.data) {
            self.violation(
                "snapshot",
                format!(
                    "node {id}: snapshot at {} does not restore: {error}",
                    snapshot.index
                ),
            );
            return Err(());
        }
        node.applied_index = snapshot.index;
        node.responses.clear();
        self.stats.snapshots_installed += 1;
        if let Some((data, taker)) = self.snapshot_digests.get(&snapshot.index) {
            if *data != snapshot.data {
                let message = format!(
                    "node {id} installed a snapshot at {} that differs from the one node {taker} took there",
                    snapshot.index
                );
                self.violation("snapshot", message);
                return Err(());
            }
        }
        self.applied_progress.insert(id);
        Ok(())
    }

    /// Records a finished ticket.
    fn finish_ticket(&mut self, index: usize, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        let id = self.nodes[index].id;
        let incarnation = self.nodes[index].incarnation;
        let response = match &result {
            Ok(at) => self.nodes[index].responses.get(at).cloned(),
            Err(_) => None,
        };
        self.nodes[index].outcomes.insert(ticket, result.clone());
        self.finish_kv(id, incarnation, ticket, &result, response.as_ref());
        if self.record_completions {
            self.completions.push(Completion {
                node: id,
                incarnation,
                ticket,
                result,
                response,
            });
        }
    }

    pub(super) fn apply_entry(&mut self, index: usize, entry: Entry) -> bool {
        let id = self.nodes[index].id;
        match self.log.get(&entry.index) {
            Some((payload, first)) if *payload != entry.payload => {
                let message = format!(
                    "node {id} applied [{}] at index {} but node {first} applied [{}] there",
                    describe_payload(&entry.payload),
                    entry.index,
                    describe_payload(payload)
                );
                self.violation("agreement", message);
                return false;
            }
            Some(_) => {}
            None => {
                self.log.insert(entry.index, (entry.payload.clone(), id));
            }
        }
        let node = &mut self.nodes[index];
        if let Payload::Command(command) = &entry.payload {
            let response = node.sm.apply(entry.index, command);
            node.responses.insert(entry.index, response);
            if node.responses.len() as u64 > RESPONSES_KEPT {
                node.responses.pop_first();
            }
        }
        node.applied_index = entry.index;
        node.applied.push(entry);
        self.stats.entries_applied += 1;
        self.applied_progress.insert(id);
        self.resolve_kv_reads(id);
        true
    }
}

/// One simulated node's I/O for the one `Ready` loop. Errors are `()`: the
/// checker has recorded the violation before returning one.
struct NodeIo<'a, C: Core> {
    cluster: &'a mut Cluster<C>,
    index: usize,
    id: NodeId,
}

impl<C: Core> ReadyDriver<C::Message> for NodeIo<'_, C> {
    type Error = ();

    fn send(&mut self, to: NodeId, message: C::Message) {
        self.cluster.send(self.id, to, message);
    }

    async fn persist(&mut self, ready: Ready<C::Message>) -> Result<Option<Ready<C::Message>>, ()> {
        let survived = self.cluster.persist_batch(self.index, &ready)?;
        Ok(survived.then_some(ready))
    }

    fn applied_index(&self) -> LogIndex {
        self.cluster.nodes[self.index].applied_index
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), ()> {
        self.cluster.restore_snapshot(self.index, snapshot)
    }

    fn apply(&mut self, entry: Entry) -> Result<(), ()> {
        if self.cluster.apply_entry(self.index, entry) {
            Ok(())
        } else {
            Err(())
        }
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        self.cluster.finish_ticket(self.index, ticket, result);
    }
}
