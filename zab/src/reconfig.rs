//! Dynamic reconfiguration, ZooKeeper 3.5 style.
//!
//! A configuration change is one proposal whose payload is the target
//! (stable) [`Membership`]. From the moment a node holds that proposal in its
//! history until it knows it committed, the node counts quorums in the joint
//! form `old.joint_to(new)` (a majority of the old voters **and** of the new
//! ones), exactly as ZooKeeper's leader asks both its current and its
//! "last seen" quorum verifiers while a reconfig is pending; once the
//! proposal is committed the new configuration alone is in force
//! (ZooKeeper's COMMITANDACTIVATE). Only one change may be pending.
//!
//! Why one proposal is enough (where Raft needs two entries): a ZAB leader
//! commits its whole initial history when it is established, and a
//! prospective leader whose history ends with a pending change establishes
//! itself only with a joint quorum. So:
//! * the change commits only with quorums of old and new;
//! * anything committed after it was acked by a new-configuration quorum,
//!   which intersects every later discovery quorum (new, or joint);
//! * a prospective leader whose history lacks the change uses the old
//!   configuration; its discovery quorum meets the old half of the change's
//!   ack quorum, so it is not the most up-to-date member and gives up
//!   (see `discovery.rs`), which is the same argument that keeps every
//!   committed proposal.

use std::collections::BTreeMap;

use consensus_api::{LogIndex, Membership};

use crate::zxid::Zxid;

/// The configuration of a node's history: the committed base (snapshot's or
/// initial) and the configuration proposals held above it, each with the
/// zxid that introduced it (its *version*; `0:0` for an initial
/// configuration), which Fast Leader Election uses to prefer the newest
/// configuration it hears of.
#[derive(Debug, Clone)]
pub(crate) struct ConfigLog {
    /// The configuration in force at the history's base.
    base: Membership,
    /// Zxid of the proposal that introduced `base` (`0:0`: initial).
    base_version: Zxid,
    /// Configuration proposals of the history (stable targets), by index.
    changes: BTreeMap<LogIndex, (Membership, Zxid)>,
}

impl ConfigLog {
    /// A log of configurations starting from `base`.
    pub fn new(base: Membership, base_version: Zxid) -> ConfigLog {
        ConfigLog {
            base,
            base_version,
            changes: BTreeMap::new(),
        }
    }

    /// Records a configuration proposal at `index` with its zxid.
    pub fn record(&mut self, index: LogIndex, target: Membership, zxid: Zxid) {
        self.changes.insert(index, (target, zxid));
    }

    /// The configuration in force when everything up to `commit_index` is
    /// known committed: the latest change if it is committed, the joint
    /// form `previous -> latest` if it is still pending.
    pub fn in_force(&self, commit_index: LogIndex) -> Membership {
        match self.changes.iter().next_back() {
            None => self.base.clone(),
            Some((index, (target, _))) if *index <= commit_index => target.clone(),
            Some((index, (target, _))) => self.before(*index).joint_to(target),
        }
    }

    /// The version of the configuration in force: the zxid of the latest
    /// configuration proposal held (pending or not).
    pub fn version(&self) -> Zxid {
        self.changes
            .values()
            .next_back()
            .map_or(self.base_version, |(_, zxid)| *zxid)
    }

    /// The stable configuration in force at `index` assuming everything up
    /// to it committed (what a snapshot at `index` records).
    pub fn committed_at(&self, index: LogIndex) -> Membership {
        self.changes
            .range(..=index)
            .next_back()
            .map_or_else(|| self.base.clone(), |(_, (target, _))| target.clone())
    }

    /// The version of [`ConfigLog::committed_at`].
    pub fn version_at(&self, index: LogIndex) -> Zxid {
        self.changes
            .range(..=index)
            .next_back()
            .map_or(self.base_version, |(_, (_, zxid))| *zxid)
    }

    /// The pending change above `commit_index`, if any.
    pub fn pending(&self, commit_index: LogIndex) -> Option<(LogIndex, &Membership)> {
        self.changes
            .range(commit_index + 1..)
            .next_back()
            .map(|(index, (target, _))| (*index, target))
    }

    /// The stable configuration in force just before `index`.
    fn before(&self, index: LogIndex) -> Membership {
        self.changes
            .range(..index)
            .next_back()
            .map_or_else(|| self.base.clone(), |(_, (target, _))| target.clone())
    }

    /// Forgets changes at indexes `>= from` (a truncated suffix).
    pub fn truncate_from(&mut self, from: LogIndex) {
        self.changes.split_off(&from);
    }

    /// Folds changes at indexes `<= index` into the base (compaction).
    pub fn compact_to(&mut self, index: LogIndex) {
        self.base = self.committed_at(index);
        self.base_version = self.version_at(index);
        self.changes = self.changes.split_off(&(index + 1));
    }

    /// Replaces everything by `base` (snapshot installed).
    pub fn reset(&mut self, base: Membership, base_version: Zxid) {
        self.base = base;
        self.base_version = base_version;
        self.changes.clear();
    }
}

impl crate::core::ZabCore {
    /// `change_membership`: propose the target configuration (the ticket
    /// finishes once it is committed, i.e. in force).
    pub(crate) fn start_reconfig(
        &mut self,
        to: Membership,
    ) -> Result<consensus_api::Ticket, consensus_api::Rejected> {
        use consensus_api::{MembershipError, Payload, Rejected};
        to.validate().map_err(Rejected::InvalidMembership)?;
        if to.is_joint() {
            return Err(Rejected::InvalidMembership(MembershipError::TargetIsJoint));
        }
        if self.is_established_leader() && self.log.configs.pending(self.log.commit_index).is_some()
        {
            return Err(Rejected::ChangeInProgress);
        }
        self.propose_payload(Payload::Membership(to))
    }

    fn is_established_leader(&self) -> bool {
        matches!(&self.role, crate::role::Role::Leading(l) if l.phase == crate::role::LeaderPhase::Broadcast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_change_is_joint_until_committed() {
        let mut log = ConfigLog::new(Membership::new([1, 2, 3]), Zxid::ZERO);
        log.record(5, Membership::new([1, 2, 3, 4]), Zxid::new(1, 5));
        assert_eq!(log.version(), Zxid::new(1, 5));
        let joint = log.in_force(4);
        assert!(joint.is_joint());
        assert_eq!(joint.outgoing, Some([1, 2, 3].into()));
        assert_eq!(log.in_force(5), Membership::new([1, 2, 3, 4]));
        assert_eq!(log.committed_at(4), Membership::new([1, 2, 3]));
        assert_eq!(log.pending(4).map(|(i, _)| i), Some(5));
        log.truncate_from(5);
        assert_eq!(log.in_force(0), Membership::new([1, 2, 3]));
        log.record(6, Membership::new([2, 3]), Zxid::new(2, 1));
        log.compact_to(6);
        assert_eq!(log.version(), Zxid::new(2, 1));
        assert_eq!(log.in_force(0), Membership::new([2, 3]));
    }
}
