//! The primary-order properties of Junqueira-Reed-Serafini (section III)
//! that the simulator can observe, as extra invariants checked after every
//! event (`Cluster::add_invariant` / `run_with`).
//!
//! * **Integrity**: a delivered proposal of epoch `e` was broadcast by an
//!   established primary of `e` (we must have seen a `Role::Leader` of `e`).
//! * **Agreement / total order**: two processes that deliver at the same
//!   position deliver the same zxid (same epoch; the simulator already checks
//!   the payload).
//! * **Local and global primary order**: along every delivery sequence the
//!   epochs never decrease (and within one, zxids follow the log order).
//! * **Primary integrity**: an established primary of `e` holds every
//!   delivered proposal of an earlier epoch, before its own first proposal.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use consensus_api::{Core, LogIndex, NodeId, Role};
use consensus_sim::Cluster;
use zab::ZabCore;

#[derive(Default)]
struct Observed {
    /// Committed index -> (epoch, first node seen delivering it).
    committed: BTreeMap<LogIndex, (u64, NodeId)>,
    /// Per node: (incarnation, applied entries already checked).
    seen: BTreeMap<NodeId, (u64, usize)>,
    /// Epochs with an established primary, and which node.
    primaries: BTreeMap<u64, NodeId>,
    /// Per (primary, epoch): committed indexes already checked against it.
    checked: BTreeMap<(NodeId, u64), LogIndex>,
}

/// Adds the primary-order invariants to `cluster`.
pub fn add_primary_order_invariants(cluster: &mut Cluster<ZabCore>) {
    let observed = RefCell::new(Observed::default());
    cluster.add_invariant("zab-primary-order", move |c| observed.borrow_mut().check(c));
}

impl Observed {
    fn check(&mut self, c: &Cluster<ZabCore>) -> Result<(), String> {
        let alive: Vec<NodeId> = c
            .node_ids()
            .into_iter()
            .filter(|id| c.is_alive(*id))
            .collect();
        for id in &alive {
            let status = c.status(*id);
            if status.role == Role::Leader {
                self.primaries.entry(status.epoch).or_insert(*id);
            }
        }
        for id in c.node_ids() {
            self.check_deliveries(c, id)?;
        }
        for id in alive {
            let status = c.status(id);
            if status.role == Role::Leader {
                self.check_primary(c, id, status.epoch)?;
            }
        }
        Ok(())
    }

    fn check_deliveries(&mut self, c: &Cluster<ZabCore>, id: NodeId) -> Result<(), String> {
        let applied = c.applied(id);
        let incarnation = c.incarnation(id);
        let start = match self.seen.get(&id) {
            Some((seen, count)) if *seen == incarnation && *count <= applied.len() => *count,
            _ => 0,
        };
        let mut previous = start.checked_sub(1).map(|i| &applied[i]);
        for entry in &applied[start..] {
            if !self.primaries.contains_key(&entry.epoch) {
                return Err(format!(
                    "integrity: node {id} delivered {entry:?} of epoch {} that had no established primary",
                    entry.epoch
                ));
            }
            match self.committed.get(&entry.index) {
                Some((epoch, by)) if *epoch != entry.epoch => {
                    return Err(format!(
                        "agreement: node {id} delivered index {} from epoch {}, node {by} from epoch {epoch}",
                        entry.index, entry.epoch
                    ));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(entry.index, (entry.epoch, id));
                }
            }
            if let Some(previous) = previous {
                if entry.epoch < previous.epoch || entry.index <= previous.index {
                    return Err(format!(
                        "primary order: node {id} delivered {entry:?} after {previous:?}"
                    ));
                }
            }
            previous = Some(entry);
        }
        self.seen.insert(id, (incarnation, applied.len()));
        Ok(())
    }

    fn check_primary(
        &mut self,
        c: &Cluster<ZabCore>,
        id: NodeId,
        epoch: u64,
    ) -> Result<(), String> {
        let core = c.core(id);
        let status = core.status();
        let last_zxid = core.last_zxid();
        let own_first =
            (last_zxid.epoch() == epoch).then(|| status.last_index + 1 - last_zxid.counter());
        let from = self.checked.get(&(id, epoch)).map_or(0, |i| *i);
        let mut upto = from;
        for (index, (entry_epoch, by)) in self.committed.range(from + 1..) {
            upto = *index;
            if *entry_epoch > epoch || *index <= status.snapshot_index {
                continue;
            }
            let held = core.zxid_at(*index).map(|z| z.epoch());
            if held != Some(*entry_epoch) {
                return Err(format!(
                    "primary integrity: primary {id} of epoch {epoch} holds {held:?} at index {index}, \
                     delivered from epoch {entry_epoch} by node {by}"
                ));
            }
            if *entry_epoch < epoch && own_first.is_some_and(|first| *index >= first) {
                return Err(format!(
                    "primary integrity: primary {id} of epoch {epoch} broadcast before delivering index {index} of epoch {entry_epoch}"
                ));
            }
        }
        self.checked.insert((id, epoch), upto);
        Ok(())
    }
}

/// A period in which every node is up, unpaused and fully connected.
#[derive(Default)]
struct HealthyWindow {
    /// Tick the period started.
    since: Option<u64>,
    /// (tick, highest applied index then) once the period settled.
    checkpoint: Option<(u64, LogIndex)>,
}

/// Catch-up (liveness): once every node is up, unpaused and fully connected
/// for `settle_ticks`, record the highest applied index; within
/// `catch_up_ticks` more of uninterrupted health every node must have
/// applied at least that far. (The simulator's own liveness check only asks
/// for one new commit, which a quorum provides even if a lagging node can
/// never rejoin.)
pub fn add_catch_up_invariant(
    cluster: &mut Cluster<ZabCore>,
    settle_ticks: u64,
    catch_up_ticks: u64,
) {
    let state = RefCell::new(HealthyWindow::default());
    cluster.add_invariant("zab-catch-up", move |c| {
        let ids = c.node_ids();
        let healthy = c.links().is_healed() && ids.iter().all(|id| c.is_alive(*id) && !c.is_paused(*id));
        let now = c.now_ticks();
        let mut state = state.borrow_mut();
        if !healthy {
            *state = HealthyWindow::default();
            return Ok(());
        }
        let since = *state.since.get_or_insert(now);
        if state.checkpoint.is_none() && now >= since + settle_ticks {
            let target = ids.iter().map(|id| c.applied_index(*id)).max().unwrap_or(0);
            state.checkpoint = Some((now, target));
        }
        if let Some((at, target)) = state.checkpoint {
            if now >= at + catch_up_ticks {
                for id in &ids {
                    if c.applied_index(*id) < target {
                        let core = c.core(*id);
                        return Err(format!(
                            "catch-up: healthy since tick {since}, node {id} has applied {} < {target} \
                             (the highest applied index at tick {at}); it is {} with {:?}, last zxid {}",
                            c.applied_index(*id),
                            core.state_name(),
                            core.hard_state(),
                            core.last_zxid()
                        ));
                    }
                }
                // Passed: start a new window.
                state.checkpoint = None;
                state.since = Some(now);
            }
        }
        Ok(())
    });
}
