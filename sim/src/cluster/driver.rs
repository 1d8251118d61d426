//! The driver: each `Ready` persisted, restored, sent, applied, finished.

use super::*;

impl<C: Core> Cluster<C> {
    // ------------------------------------------------------------------
    // The driver: Ready handling
    // ------------------------------------------------------------------

    pub(super) fn after_input(&mut self, index: usize) {
        if !self.defer_ready {
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

    /// Handles one batch; returns true if the node crashed in the middle.
    pub(super) fn handle_ready(&mut self, index: usize, mut ready: Ready<C::Message>) -> bool {
        self.stats.readies += 1;
        let id = self.nodes[index].id;
        if ready.early_messages > ready.messages.len() {
            self.violation(
                "ready-contract",
                format!(
                    "node {id}: Ready #{} marks {} early messages but has {}",
                    ready.number,
                    ready.early_messages,
                    ready.messages.len()
                ),
            );
            return false;
        }
        // 0. Messages that may leave before the batch is durable (a
        //    leader's own replication): sent first, so a crash armed below
        //    models "sent, then crashed before the sync".
        let early = ready.take_early_messages();
        self.stats.early_messages += early.len() as u64;
        for (to, message) in early {
            self.send(id, to, message);
        }
        let has_writes = ready.has_writes();
        if has_writes && !ready.must_sync {
            self.violation(
                "ready-contract",
                format!(
                    "node {id}: Ready #{} changes durable state but must_sync is false",
                    ready.number
                ),
            );
            return false;
        }
        // 1. Persist.
        if has_writes {
            if let Err(error) = self.nodes[index].store.write(&ready.write_batch()) {
                self.violation(
                    "storage",
                    format!(
                        "node {id}: the store refused Ready #{}: {error}",
                        ready.number
                    ),
                );
                return false;
            }
            if let Some(torn) = self.nodes[index].crash_armed {
                // Crash between write and sync: any prefix of the unsynced
                // batches may have reached the disk.
                let unsynced = self.nodes[index].store.unsynced_batches();
                let keep = match torn {
                    TornCrash::RandomPrefix => self.rng.random_range(0..=unsynced),
                    TornCrash::LoseUnsynced => 0,
                };
                self.stats.torn_crashes += 1;
                self.crash_with(id, keep);
                return true;
            }
        }
        if ready.must_sync {
            if let Err(error) = self.nodes[index].store.sync() {
                self.violation("storage", format!("node {id}: sync failed: {error}"));
                return false;
            }
        }
        // 2. Restore the state machine from a received snapshot.
        if let Some(snapshot) = &ready.snapshot {
            let node = &mut self.nodes[index];
            if snapshot.index < node.applied_index {
                let message = format!(
                    "node {id} installs a snapshot at {} below its applied index {}",
                    snapshot.index, node.applied_index
                );
                self.violation("snapshot", message);
                return false;
            }
            if let Err(error) = node.sm.restore(snapshot.index, &snapshot.data) {
                self.violation(
                    "snapshot",
                    format!(
                        "node {id}: snapshot at {} does not restore: {error}",
                        snapshot.index
                    ),
                );
                return false;
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
                    return false;
                }
            }
            self.applied_progress.insert(id);
        }
        // 3. Send.
        for (to, message) in ready.messages {
            self.send(id, to, message);
        }
        // 4. Apply.
        for entry in ready.committed {
            if !self.apply_entry(index, entry) {
                return false;
            }
        }
        // 5. Finish tickets.
        let incarnation = self.nodes[index].incarnation;
        for (ticket, result) in ready.completed {
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
        false
    }

    pub(super) fn apply_entry(&mut self, index: usize, entry: Entry) -> bool {
        let id = self.nodes[index].id;
        let expected = self.nodes[index].applied_index + 1;
        if entry.index != expected {
            let message = format!(
                "node {id} was handed committed entry {} but its next index to apply is {expected}",
                entry.index
            );
            self.violation("applied-contiguous", message);
            return false;
        }
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
