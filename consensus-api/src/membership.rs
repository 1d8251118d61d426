//! Cluster membership: voters, learners, and the joint form used while a
//! configuration changes.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::NodeId;

/// Who takes part in the protocol.
///
/// * `voters` form the quorums: a decision needs a majority of them.
/// * `learners` replicate the log but never vote or count toward a quorum.
/// * `outgoing` is set only during a joint-consensus transition
///   (Raft §6, "C_old,new"): it holds the *old* voter set, and every decision
///   then needs a majority of `voters` **and** a majority of `outgoing`.
///
/// A stable configuration has `outgoing == None`. The sets are `BTreeSet`s so
/// iteration order is deterministic.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Membership {
    /// Voting members (the new configuration during a transition).
    pub voters: BTreeSet<NodeId>,
    /// Non-voting members that receive the log.
    pub learners: BTreeSet<NodeId>,
    /// The old voter set while a joint transition is in progress.
    pub outgoing: Option<BTreeSet<NodeId>>,
}

/// Why a membership is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum MembershipError {
    /// A configuration must have at least one voter.
    #[error("a configuration needs at least one voter")]
    NoVoters,
    /// Node id 0 is reserved.
    #[error("node id 0 is reserved and cannot be a member")]
    ZeroNodeId,
    /// A node cannot be both a voter and a learner.
    #[error("node {0} is listed both as voter and learner")]
    VoterAndLearner(NodeId),
    /// A target configuration must not itself be joint.
    #[error("the target of a membership change must be a stable (non-joint) configuration")]
    TargetIsJoint,
}

impl Membership {
    /// A stable configuration of the given voters and no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
            outgoing: None,
        }
    }

    /// A stable configuration with voters and learners.
    pub fn with_learners(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
            outgoing: None,
        }
    }

    /// The joint configuration moving from `self` (must be stable) to `to`.
    /// Voters of the old configuration that are learners in the new one stay
    /// voters of `outgoing` until the transition ends.
    pub fn joint_to(&self, to: &Membership) -> Membership {
        Membership {
            voters: to.voters.clone(),
            learners: to.learners.clone(),
            outgoing: Some(self.voters.clone()),
        }
    }

    /// The stable configuration a joint one leads to (identity when stable).
    pub fn leave_joint(&self) -> Membership {
        Membership {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            outgoing: None,
        }
    }

    /// Checks the structural rules (`MembershipError`).
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        if self.voters.contains(&0) || self.learners.contains(&0) {
            return Err(MembershipError::ZeroNodeId);
        }
        if let Some(outgoing) = &self.outgoing {
            if outgoing.is_empty() {
                return Err(MembershipError::NoVoters);
            }
            if outgoing.contains(&0) {
                return Err(MembershipError::ZeroNodeId);
            }
        }
        if let Some(both) = self.voters.intersection(&self.learners).next() {
            return Err(MembershipError::VoterAndLearner(*both));
        }
        Ok(())
    }

    /// True while a joint transition is in progress.
    pub fn is_joint(&self) -> bool {
        self.outgoing.is_some()
    }

    /// True if `node` votes in any half of the configuration.
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.voters.contains(&node) || self.outgoing.as_ref().is_some_and(|o| o.contains(&node))
    }

    /// True if `node` is a learner and not a voter of any half.
    pub fn is_learner(&self, node: NodeId) -> bool {
        self.learners.contains(&node) && !self.is_voter(node)
    }

    /// True if `node` takes part at all (voter of either half or learner).
    pub fn contains(&self, node: NodeId) -> bool {
        self.is_voter(node) || self.learners.contains(&node)
    }

    /// Every voter of either half, in order.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        if let Some(outgoing) = &self.outgoing {
            all.extend(outgoing.iter().copied());
        }
        all
    }

    /// Every node that takes part (voters of both halves and learners), in order.
    pub fn all_nodes(&self) -> BTreeSet<NodeId> {
        let mut all = self.all_voters();
        all.extend(self.learners.iter().copied());
        all
    }

    /// Number of distinct nodes taking part.
    pub fn node_count(&self) -> usize {
        self.all_nodes().len()
    }

    /// True if the nodes for which `has(node)` holds form a quorum: a
    /// majority of `voters`, and, when joint, also a majority of `outgoing`.
    pub fn is_quorum(&self, has: impl Fn(NodeId) -> bool) -> bool {
        let majority_of = |set: &BTreeSet<NodeId>| {
            let yes = set.iter().filter(|n| has(**n)).count();
            yes * 2 > set.len()
        };
        majority_of(&self.voters) && self.outgoing.as_ref().is_none_or(majority_of)
    }

    /// True if `set` is a quorum.
    pub fn is_quorum_set(&self, set: &BTreeSet<NodeId>) -> bool {
        self.is_quorum(|n| set.contains(&n))
    }

    /// The highest index `i` such that the voters whose `index_of(voter) >= i`
    /// form a quorum (in both halves when joint). This is the "quorum commit
    /// index" of Raft and the chosen frontier of Multi-Paxos.
    pub fn quorum_index(&self, index_of: impl Fn(NodeId) -> u64) -> u64 {
        let half = |set: &BTreeSet<NodeId>| -> u64 {
            if set.is_empty() {
                return u64::MAX;
            }
            let mut indexes: Vec<u64> = set.iter().map(|n| index_of(*n)).collect();
            indexes.sort_unstable_by(|a, b| b.cmp(a));
            // With n voters a majority is n/2 + 1; the (n/2)-th highest (0-based)
            // index is held by at least n/2 + 1 voters.
            indexes[set.len() / 2]
        };
        let incoming = half(&self.voters);
        match &self.outgoing {
            Some(outgoing) => incoming.min(half(outgoing)),
            None => incoming,
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |set: &BTreeSet<NodeId>| {
            set.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        write!(f, "({})", list(&self.voters))?;
        if let Some(outgoing) = &self.outgoing {
            write!(f, "&&({})", list(outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners=({})", list(&self.learners))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_of_voters_learners_and_outgoing_voters() {
        let stable = Membership::with_learners([1, 2, 3], [4]);
        assert!(!stable.is_joint());
        assert!(stable.is_voter(1) && !stable.is_voter(4) && !stable.is_voter(9));
        assert!(stable.is_learner(4) && !stable.is_learner(1) && !stable.is_learner(9));
        assert!(stable.contains(1) && stable.contains(4) && !stable.contains(9));
        assert_eq!(stable.all_nodes(), BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(stable.node_count(), 4);
        // Node 3 is demoted to learner and node 5 joins: while joint, 3 still
        // votes in the outgoing half and is not counted a learner.
        let joint = stable.joint_to(&Membership::with_learners([1, 2, 5], [3, 4]));
        assert!(joint.is_joint());
        assert!(joint.is_voter(3) && joint.is_voter(5));
        assert!(!joint.is_learner(3) && joint.is_learner(4));
        assert!(joint.contains(3) && joint.contains(5));
        assert_eq!(joint.all_nodes(), BTreeSet::from([1, 2, 3, 4, 5]));
        assert_eq!(joint.node_count(), 5);
        let after = joint.leave_joint();
        assert!(!after.is_joint() && after.is_learner(3) && !after.is_voter(3));
        assert!(format!("{joint:?}").contains('5'));
    }

    #[test]
    fn majority_quorums() {
        let m = Membership::new([1, 2, 3, 4, 5]);
        assert!(m.is_quorum_set(&[1, 2, 3].into()));
        assert!(!m.is_quorum_set(&[1, 2].into()));
        assert!(
            !m.is_quorum_set(&[4, 5, 6, 7].into()),
            "non-members never count"
        );
        let four = Membership::new([1, 2, 3, 4]);
        assert!(
            !four.is_quorum_set(&[1, 2].into()),
            "2 of 4 is not a majority"
        );
        assert!(four.is_quorum_set(&[1, 2, 3].into()));
    }

    #[test]
    fn joint_quorum_needs_both_halves() {
        let old = Membership::new([1, 2, 3]);
        let joint = old.joint_to(&Membership::new([3, 4, 5]));
        assert!(joint.is_joint());
        assert!(
            !joint.is_quorum_set(&[1, 2, 4].into()),
            "old majority, new minority"
        );
        assert!(
            !joint.is_quorum_set(&[3, 4, 5].into()),
            "new majority, old minority"
        );
        assert!(joint.is_quorum_set(&[2, 3, 4].into()));
        assert_eq!(joint.all_voters(), [1, 2, 3, 4, 5].into());
        assert_eq!(joint.leave_joint(), Membership::new([3, 4, 5]));
    }

    #[test]
    fn quorum_index_is_the_majority_frontier() {
        let m = Membership::new([1, 2, 3, 4, 5]);
        let matched = |n: NodeId| [0, 10, 9, 7, 3, 1][n as usize];
        assert_eq!(m.quorum_index(matched), 7);
        let joint = Membership::new([1, 2, 3]).joint_to(&Membership::new([3, 4, 5]));
        // old (1 2 3): 10 9 7 -> 9; new (3 4 5): 7 3 1 -> 3.
        assert_eq!(joint.quorum_index(matched), 3);
    }

    #[test]
    fn validation() {
        assert_eq!(
            Membership::new([]).validate(),
            Err(MembershipError::NoVoters)
        );
        assert_eq!(
            Membership::new([0, 1]).validate(),
            Err(MembershipError::ZeroNodeId)
        );
        assert_eq!(
            Membership::with_learners([1, 2], [2]).validate(),
            Err(MembershipError::VoterAndLearner(2))
        );
        assert_eq!(Membership::with_learners([1, 2, 3], [4]).validate(), Ok(()));
        assert_eq!(
            format!("{}", Membership::with_learners([1, 2], [4])),
            "(1 2) learners=(4)"
        );
    }
}
