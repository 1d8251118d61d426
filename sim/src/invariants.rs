//! Protocol-specific invariants that several protocols share, for
//! [`Cluster::add_invariant`] / [`run_with`](crate::run_with). The command
//! line adds them to the protocols they hold for (`sim-cli/src/protocols.rs`);
//! the crates' tests add them too.

use consensus_api::{Core, Role};

use crate::cluster::Cluster;

/// Leader Completeness (Raft §5.4, Figure 3), checked live: a leader's
/// durable log holds every entry that any node of its epoch or an earlier
/// one has applied (by Log Matching, checking each node's last applied
/// entry's index and epoch suffices), unless the leader's snapshot covers
/// it. Holds for log-based protocols whose leader never learns committed
/// entries after it becomes leader (Raft). Multi-Paxos leaders learn them in
/// phase 1 and ZAB's have their own primary-integrity check, so neither
/// gets this one.
pub fn leader_completeness<C: Core>(cluster: &Cluster<C>) -> Result<(), String> {
    for leader in cluster.node_ids() {
        let Some(status) = cluster.try_status(leader) else {
            continue;
        };
        if status.role != Role::Leader {
            continue;
        }
        let log = cluster.store(leader).durable();
        for other in cluster.node_ids() {
            let Some(last) = cluster.applied(other).last() else {
                continue;
            };
            // Entries committed in a later epoch than the leader's need not
            // be in a stale leader's log.
            if cluster
                .try_status(other)
                .is_none_or(|s| s.epoch > status.epoch)
            {
                continue;
            }
            if last.index <= log.snapshot_index() {
                continue;
            }
            match log.entries.get(&last.index) {
                Some(entry) if entry.epoch == last.epoch => {}
                Some(entry) => {
                    return Err(format!(
                        "leader {leader} (epoch {}) holds {}@{} where node {other} applied {}@{}",
                        status.epoch, entry.index, entry.epoch, last.index, last.epoch
                    ))
                }
                None => {
                    return Err(format!(
                        "leader {leader} (epoch {}) lacks index {} that node {other} applied",
                        status.epoch, last.index
                    ))
                }
            }
        }
    }
    Ok(())
}
