//! Node and link faults, and compaction.

use super::*;

impl<C: Core> Cluster<C> {
    // ------------------------------------------------------------------
    // Faults
    // ------------------------------------------------------------------

    pub(super) fn start_node(&mut self, id: NodeId) {
        let index = self.index_of(id).expect("node exists");
        let state = match self.nodes[index].store.load() {
            Ok(state) => state,
            Err(error) => {
                self.violation(
                    "restart",
                    format!("node {id}: the store does not load: {error}"),
                );
                return;
            }
        };
        let mut sm = Sessions::new(KvStore::new(), SESSION_CAPACITY);
        let mut applied_index = 0;
        if let Some(snapshot) = &state.snapshot {
            if let Err(error) = sm.restore(snapshot.index, &snapshot.data) {
                self.violation(
                    "restart",
                    format!("node {id}: stored snapshot does not restore: {error}"),
                );
                return;
            }
            applied_index = snapshot.index;
        }
        let config = self.nodes[index].config.clone();
        let core = match C::restore(config, state) {
            Ok(core) => core,
            Err(error) => {
                self.violation(
                    "restart",
                    format!("node {id}: Core::restore failed: {error}"),
                );
                return;
            }
        };
        let node = &mut self.nodes[index];
        node.core = Some(core);
        node.sm = sm;
        node.applied.clear();
        node.applied_index = applied_index;
        node.responses.clear();
        node.outcomes.clear();
        node.commit_seen = 0;
        node.epoch_seen = 0;
        node.paused = false;
        node.frozen = false;
        node.crash_armed = None;
        self.applied_progress.insert(id);
        self.after_input(index);
    }

    /// Crashes the node: its core and state machine are gone, its store
    /// keeps only synced data, messages to it are lost until it restarts.
    pub fn crash(&mut self, id: NodeId) {
        self.crash_with(id, 0);
    }

    /// Arms a crash of the node at its next durable write, between the
    /// `write` and the `sync` (a random prefix of the unsynced batches
    /// survives). Until the node writes, it runs normally; the nemesis
    /// crashes a node still armed when it heals ([`Cluster::crash_armed`]).
    pub fn crash_during_next_write(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            self.node_mut(id).crash_armed = Some(TornCrash::RandomPrefix);
        }
    }

    /// Arms a crash of the node at its next durable write, after the
    /// batch's early messages left and before its sync, losing every
    /// unsynced batch (rule tests of the leader's parallel write).
    pub fn crash_before_next_sync(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            self.node_mut(id).crash_armed = Some(TornCrash::LoseUnsynced);
        }
    }

    /// True when a crash is armed for the node's next write.
    pub fn crash_armed(&self, id: NodeId) -> bool {
        self.node(id).crash_armed.is_some()
    }

    pub(super) fn crash_with(&mut self, id: NodeId, keep_unsynced: usize) {
        let node = self.node_mut(id);
        if node.core.is_none() {
            return;
        }
        node.core = None;
        node.store.crash_keeping(keep_unsynced);
        node.paused = false;
        node.frozen = false;
        node.paused_inbox.clear();
        node.outcomes.clear();
        node.responses.clear();
        node.crash_armed = None;
        self.stats.crashes += 1;
        self.crashed_events.push(id);
        self.kv_pending.retain(|(node, _, _), _| *node != id);
    }

    /// Restarts a crashed node: the core is rebuilt with [`Core::restore`]
    /// from what its store synced; the state machine from the stored
    /// snapshot. Does nothing if the node runs.
    pub fn restart(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            return;
        }
        let seed = self.rng.random();
        let node = self.node_mut(id);
        node.incarnation += 1;
        node.config.seed = seed;
        self.stats.restarts += 1;
        self.start_node(id);
    }

    /// A stop-the-world pause (GC, VM migration): no ticks, no message
    /// handling; messages queue until [`Cluster::resume`].
    pub fn pause(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            if !self.node(id).paused {
                self.stats.pauses += 1;
            }
            self.node_mut(id).paused = true;
        }
    }

    /// A stop-the-world pause as clients see it (GC, VM migration, a
    /// stopped process): no ticks and no peer messages are handled, but a
    /// client request sent to the node is not refused either: it waits in
    /// the node's socket. The simulator hands it to the core at once (the
    /// core's state cannot change during the pause, so that is the state it
    /// would see on waking) and holds the core's output back until
    /// [`Cluster::resume_stale`]. The request is thus handled before the
    /// mail that queued up during the pause, on the stale view.
    pub fn pause_stale(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            if !self.node(id).paused {
                self.stats.pauses += 1;
            }
            let node = self.node_mut(id);
            node.paused = true;
            node.frozen = true;
        }
    }

    /// Ends a pause the way a real process wakes up: at once, with the view
    /// it had when it stopped. First the output it produced for the client
    /// requests it took during a [`Cluster::pause_stale`] goes out (a read
    /// answered from a lease that expired during the pause reaches the
    /// client now); its ticks resume (the ticks it missed are not replayed,
    /// as with an interval timer that skips missed ticks); the messages that
    /// queued up during the pause arrive over the next moments, each after a
    /// fresh network delay, while it is already serving. A leader deposed
    /// meanwhile keeps believing it leads until one of them tells it
    /// otherwise.
    pub fn resume_stale(&mut self, id: NodeId) {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        if !self.nodes[index].paused {
            return;
        }
        self.nodes[index].paused = false;
        self.nodes[index].frozen = false;
        if self.nodes[index].core.is_some() {
            self.after_input(index);
        }
        let inbox = std::mem::take(&mut self.nodes[index].paused_inbox);
        for (from, message) in inbox {
            if self.manual {
                self.in_flight.push_back(InFlight {
                    from,
                    to: id,
                    message,
                });
            } else {
                let delay = self.draw_delay_ns();
                self.schedule(
                    self.now_ns + delay,
                    Event::Deliver {
                        from,
                        to: id,
                        message,
                    },
                );
            }
        }
    }

    /// Makes the node's clock run at `rate` times its nominal speed (a
    /// clock fault: 3.0 ticks three times as often, so its timers fire
    /// early; 1/3 ticks a third as often, so a leader's sense of how long
    /// ago a quorum answered runs slow). Rates are clamped to
    /// `[0.01, 100]`; 1.0 restores the nominal clock. Takes effect from the
    /// node's next tick.
    pub fn set_clock_rate(&mut self, id: NodeId, rate: f64) {
        let rate = rate.clamp(0.01, 100.0);
        let node = self.node_mut(id);
        let skewed = node.clock_rate == 1.0 && rate != 1.0;
        node.clock_rate = rate;
        if skewed {
            self.stats.clock_skews += 1;
        }
    }

    /// The node's clock rate ([`Cluster::set_clock_rate`]; 1.0 nominal).
    pub fn clock_rate(&self, id: NodeId) -> f64 {
        self.node(id).clock_rate
    }

    /// Ends a pause: queued messages are handled now, in arrival order.
    pub fn resume(&mut self, id: NodeId) {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        if !self.nodes[index].paused {
            return;
        }
        self.nodes[index].paused = false;
        let inbox = std::mem::take(&mut self.nodes[index].paused_inbox);
        for (from, message) in inbox {
            if self.failure.is_some() {
                return;
            }
            self.on_deliver(from, id, message);
        }
    }

    /// Ends a pause like [`Cluster::resume`], but the messages that arrived
    /// during the pause go back on the event queue (due now, in arrival
    /// order) instead of being handled inside this call. Input the caller
    /// gives the node right after this call — client requests that waited
    /// in its socket — is therefore handled first, while the node still
    /// believes what it believed when it stopped (a leader resuming from a
    /// GC pause serves its queued requests before it reads its mail).
    pub fn resume_queued(&mut self, id: NodeId) {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        if !self.nodes[index].paused {
            return;
        }
        self.nodes[index].paused = false;
        let inbox = std::mem::take(&mut self.nodes[index].paused_inbox);
        for (from, message) in inbox {
            if self.manual {
                self.in_flight.push_back(InFlight {
                    from,
                    to: id,
                    message,
                });
            } else {
                self.schedule(
                    self.now_ns,
                    Event::Deliver {
                        from,
                        to: id,
                        message,
                    },
                );
            }
        }
    }

    /// Makes every message to or from `id` take `factor` times its drawn
    /// delay (a slow or congested link; messages already on the wire keep
    /// their delay). A factor of 1 or less restores the node's links.
    pub fn slow_node(&mut self, id: NodeId, factor: f64) {
        if factor > 1.0 {
            self.slowdown.insert(id, factor);
        } else {
            self.slowdown.remove(&id);
        }
    }

    /// The delay factor set by [`Cluster::slow_node`] (1 when none).
    pub fn slowdown(&self, id: NodeId) -> f64 {
        self.slowdown.get(&id).copied().unwrap_or(1.0)
    }

    /// Splits the cluster: links inside each group are up, links between
    /// groups (and of nodes in no group) are cut both ways.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let ids = self.node_ids();
        self.links.partition(&ids, groups);
    }

    /// Cuts every link of `id`, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.node_ids() {
            self.links.cut(id, other);
        }
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.links.cut(a, b);
    }

    /// Cuts `from -> to` only (asymmetric partition).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.links.cut_one_way(from, to);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.links.heal();
    }

    /// Partial connectivity, *quorum-loss* (Jensen et al., HAOC 2021):
    /// `leader` keeps a link to `bridge` only; every other link stays up.
    pub fn quorum_loss(&mut self, leader: NodeId, bridge: NodeId) {
        for other in self.node_ids() {
            if other != leader && other != bridge {
                self.links.cut(leader, other);
            }
        }
    }

    /// Partial connectivity, *chained*: each node of `chain` reaches only its
    /// neighbours in the chain (nodes not listed keep their links).
    pub fn chain(&mut self, chain: &[NodeId]) {
        for (i, &a) in chain.iter().enumerate() {
            for (j, &b) in chain.iter().enumerate() {
                if i.abs_diff(j) > 1 {
                    self.links.cut_one_way(a, b);
                }
            }
        }
    }

    /// Replaces the link table.
    pub fn set_links(&mut self, links: Links) {
        self.links = links;
    }

    /// Snapshots the node's state machine at its applied index
    /// (`core.compact`, then `store.save_snapshot`). Returns the snapshot
    /// index, or the core's refusal.
    pub fn compact(&mut self, id: NodeId) -> Result<LogIndex, Rejected> {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let node = &mut self.nodes[index];
        let Some(core) = node.core.as_mut() else {
            return Err(Rejected::Unavailable);
        };
        let applied = node.applied_index;
        let data = node.sm.snapshot();
        let snapshot = core.compact(applied, data.clone())?;
        if snapshot.index != applied || snapshot.data != data {
            let message = format!(
                "node {id}: compact({applied}) returned a snapshot at {} with other data",
                snapshot.index
            );
            self.violation("compact", message);
            return Err(Rejected::InvalidCompaction {
                index: applied,
                applied,
                snapshot: snapshot.index,
            });
        }
        if let Err(error) = node.store.save_snapshot(&snapshot) {
            self.violation(
                "storage",
                format!("node {id}: save_snapshot failed: {error}"),
            );
            return Err(Rejected::Unavailable);
        }
        self.stats.compactions += 1;
        match self.snapshot_digests.get(&applied) {
            Some((other, taker)) if *other != snapshot.data => {
                let message = format!(
                    "node {id}'s state at index {applied} differs from node {taker}'s state there"
                );
                self.violation("agreement", message);
            }
            Some(_) => {}
            None => {
                self.snapshot_digests
                    .insert(applied, (snapshot.data.clone(), id));
            }
        }
        self.after_input(index);
        Ok(applied)
    }
}
