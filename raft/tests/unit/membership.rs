//! Membership change by joint consensus (Raft paper §6).

use std::collections::BTreeMap;

use consensus_api::{
    Core, Entry, InitialState, Membership, MembershipError, NodeId, Payload, Rejected, Role,
};
use raft::Message;

use crate::harness::{config, stored, Network, RaftNet};

fn conf(index: u64, term: u64, membership: Membership) -> Entry {
    Entry {
        index,
        epoch: term,
        payload: Payload::Membership(membership),
    }
}

fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index,
        epoch: term,
        payload: Payload::Noop,
    }
}

/// Nodes `ids`, all starting from the same stored log, with initial
/// membership `initial` (used when the log carries none).
fn cluster_with_log(ids: &[NodeId], initial: &[NodeId], log: Vec<Entry>) -> Network {
    let states: BTreeMap<NodeId, InitialState> = ids
        .iter()
        .map(|id| (*id, stored(1, None, log.clone())))
        .collect();
    Network::from_states(initial, states, |_| {})
}

fn is_vote(message: &Message) -> bool {
    matches!(
        message,
        Message::RequestVote(_) | Message::RequestVoteResponse(_)
    )
}

/// Elects `id` delivering only election traffic, leaving its first
/// AppendEntries queued.
fn elect_only(net: &mut Network, id: NodeId) {
    while net.status(id).role != Role::Candidate {
        net.core_mut(id).tick();
    }
    net.process(id);
    net.deliver_matching(|_, _, m| is_vote(m));
    assert_eq!(net.status(id).role, Role::Leader);
}

// Reference: section 6 ("agreement (for elections and entry commitment)
// requires separate majorities from both the old and new configurations")
#[test]
fn joint_configuration_needs_both_majorities_to_commit() {
    let joint = Membership::new([1, 2, 3]).joint_to(&Membership::new([3, 4, 5]));
    let log = vec![noop(1, 1), conf(2, 1, joint.clone())];
    for (reachable, commits) in [
        (vec![4, 5], false),   // new majority {4 5}, old only {1}
        (vec![2], false),      // old majority {1 2}, new none
        (vec![2, 4, 5], true), // old {1 2}, new {4 5}
        (vec![3, 4], true),    // old {1 3}, new {3 4}
    ] {
        let mut net = cluster_with_log(&[1, 2, 3, 4, 5], &[1, 2, 3], log.clone());
        assert_eq!(
            net.core(1).membership(),
            &joint,
            "a configuration is in force once appended"
        );
        elect_only(&mut net, 1);
        for other in [2, 3, 4, 5] {
            if !reachable.contains(&other) {
                net.isolate(other);
            }
        }
        net.deliver_all();
        let committed = net.status(1).commit_index >= 3;
        assert_eq!(committed, commits, "reachable {reachable:?}");
    }
}

// Reference: section 6
// Elections in a joint configuration also need both majorities.
#[test]
fn joint_configuration_needs_both_majorities_to_elect() {
    let joint = Membership::new([1, 2, 3]).joint_to(&Membership::new([3, 4, 5]));
    let log = vec![noop(1, 1), conf(2, 1, joint)];
    let mut net = cluster_with_log(&[1, 2, 3, 4, 5], &[1, 2, 3], log);
    net.isolate(3);
    net.isolate(4);
    net.campaign(1);
    assert_ne!(
        net.status(1).role,
        Role::Leader,
        "votes of 1 2 5: no majority of (3 4 5)"
    );
    net.heal();
    net.isolate(5);
    net.run(60);
    assert!(net.leader().is_some(), "votes of 1 2 3 4 suffice");
}

// Reference: section 6 and thesis section 4.2.1 (new servers catch up as
// non-voting members first): {1 2 3} -> {1 2 3 4 5} goes through learners,
// the joint configuration and the final one; the ticket finishes when the
// final configuration is committed.
#[test]
fn adding_voters_goes_through_learners_and_joint_consensus() {
    let mut net = Network::new(3);
    for id in [4, 5] {
        let mut c = config(id, &[1, 2, 3]);
        c.initial_membership = Membership::new([1, 2, 3]);
        net.add_node(c, InitialState::default());
    }
    net.elect(1);
    net.propose(1, "before").expect("accepted");
    net.run(3);
    let target = Membership::new([1, 2, 3, 4, 5]);
    let ticket = net
        .core_mut(1)
        .change_membership(target.clone())
        .expect("started");
    net.process(1);
    assert_eq!(
        net.core_mut(1).change_membership(Membership::new([1, 2])),
        Err(Rejected::ChangeInProgress)
    );
    net.run(20);
    let done = net
        .outcome(1, ticket)
        .cloned()
        .expect("the change finished");
    let index = done.expect("successfully");
    let configs: Vec<Membership> = net
        .node(1)
        .machine
        .applied
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Membership(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        configs,
        vec![
            Membership::with_learners([1, 2, 3], [4, 5]),
            Membership::new([1, 2, 3]).joint_to(&target),
            target.clone(),
        ]
    );
    assert_eq!(
        net.node(1).machine.applied.last().map(|e| e.index),
        Some(index)
    );
    for id in 1..=5 {
        assert_eq!(net.core(id).membership(), &target, "node {id}");
        assert_eq!(net.applied_commands(id), vec!["before"], "node {id}");
    }
}

// Reference: section 6 ("the leader steps down ... once C_new is committed")
#[test]
fn a_removed_leader_steps_down_after_committing_the_new_configuration() {
    let mut net = Network::new(3);
    net.elect(1);
    let target = Membership::new([2, 3]);
    let ticket = net
        .core_mut(1)
        .change_membership(target.clone())
        .expect("started");
    net.process(1);
    for _ in 0..10 {
        net.deliver_all();
        if net.status(1).role != Role::Leader {
            break;
        }
        net.tick_all(1);
    }
    assert!(
        matches!(net.outcome(1, ticket), Some(Ok(_))),
        "the change completed first"
    );
    assert_ne!(net.status(1).role, Role::Leader);
    net.run(40);
    let leader = net.leader().expect("2 or 3 took over");
    assert!([2, 3].contains(&leader));
    assert!(net.status(leader).epoch > 1);
    net.propose(leader, "without 1").expect("accepted");
    net.run(5);
    assert_eq!(net.applied_commands(2), vec!["without 1"]);
    // Node 1 is no longer a voter and never campaigns.
    net.isolate(1);
    net.run(60);
    assert_ne!(net.status(1).role, Role::Leader);
}

// Reference: section 6 (leader crash mid-transition): a committed joint
// configuration found by a new leader is finished by it.
#[test]
fn a_new_leader_finishes_an_interrupted_transition() {
    let target = Membership::new([1, 2, 4]);
    let joint = Membership::new([1, 2, 3]).joint_to(&target);
    let log = vec![noop(1, 1), conf(2, 1, joint)];
    let mut net = cluster_with_log(&[1, 2, 3, 4], &[1, 2, 3], log);
    net.elect(2);
    net.run(10);
    for id in [1, 2, 4] {
        assert_eq!(net.core(id).membership(), &target, "node {id}");
    }
}

// Reference: section 6 (leader crash mid-transition): a joint configuration
// that only the crashed leader had is rolled back; the cluster keeps C_old.
#[test]
fn an_uncommitted_joint_configuration_is_rolled_back() {
    let old = Membership::new([1, 2, 3]);
    let states: BTreeMap<NodeId, InitialState> = [
        (
            1,
            stored(
                1,
                Some(1),
                vec![
                    noop(1, 1),
                    conf(2, 1, old.joint_to(&Membership::new([1, 2, 4]))),
                ],
            ),
        ),
        (2, stored(1, Some(1), vec![noop(1, 1)])),
        (3, stored(1, Some(1), vec![noop(1, 1)])),
        (4, InitialState::default()),
    ]
    .into();
    let mut net = Network::from_states(&[1, 2, 3], states, |_| {});
    assert!(net.core(1).membership().is_joint());
    net.isolate(1);
    net.run(60);
    let leader = net.leader().expect("2 and 3 elect a leader under C_old");
    assert!([2, 3].contains(&leader));
    net.heal();
    net.run(30);
    assert_eq!(
        net.core(1).membership(),
        &old,
        "the joint entry was truncated with its effect"
    );
    assert_eq!(net.status(1).leader, Some(leader));
}

// Learners replicate the log but are not part of any quorum.
#[test]
fn learners_do_not_count_toward_quorums() {
    let membership = Membership::with_learners([1, 2, 3], [4]);
    let mut net = Network::from_states(
        &[1, 2, 3],
        (1..=4).map(|id| (id, InitialState::default())).collect(),
        |c| c.initial_membership = membership.clone(),
    );
    net.elect(1);
    net.run(3);
    assert_eq!(net.status(4).role, Role::Learner);
    net.isolate(2);
    net.isolate(3);
    let ticket = net.propose(1, "x").expect("accepted");
    net.deliver_all();
    assert_eq!(
        net.outcome(1, ticket),
        None,
        "the learner's ack is not a quorum"
    );
    assert_eq!(
        net.status(1).peers[&4].match_index,
        2,
        "but the learner has the entry"
    );
}

#[test]
fn invalid_membership_requests_are_refused() {
    let mut net = Network::new(3);
    net.elect(1);
    let core = net.core_mut(1);
    assert_eq!(
        core.change_membership(Membership::new([])),
        Err(Rejected::InvalidMembership(MembershipError::NoVoters))
    );
    let joint = Membership::new([1, 2]).joint_to(&Membership::new([2, 3]));
    assert_eq!(
        core.change_membership(joint),
        Err(Rejected::InvalidMembership(MembershipError::TargetIsJoint))
    );
    assert_eq!(
        net.core_mut(2).change_membership(Membership::new([1, 2])),
        Err(Rejected::NotLeader { hint: Some(1) })
    );
}
