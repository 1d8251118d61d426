//! Leadership transfer (thesis §3.10).

use consensus_api::{Core, Rejected, Role};
use raft::Message;

use crate::harness::{Network, RaftNet};

// Reference: thesis section 3.10
// The leader sends TimeoutNow to an up-to-date target, which starts an
// election at once (without waiting for a timeout, bypassing pre-vote and
// the voters' leader lease) and wins it.
#[test]
fn transfer_to_an_up_to_date_follower() {
    let mut net = Network::new(3);
    net.elect(1);
    net.run(3);
    net.core_mut(1).transfer_leadership(2).expect("started");
    net.process(1);
    assert!(net
        .queue
        .iter()
        .any(|(f, t, m)| (*f, *t) == (1, 2) && matches!(m, Message::TimeoutNow(_))));
    net.deliver_all();
    assert_eq!(net.status(2).role, Role::Leader);
    assert_eq!(net.status(2).epoch, 2);
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(net.status(1).leader, Some(2));
}

// Reference: thesis section 3.10 ("the prior leader ... transfers its log
// entries to the target server")
// A lagging target is first brought up to date; TimeoutNow follows its ack.
#[test]
fn transfer_to_a_lagging_follower_catches_it_up_first() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, &format!("w{i}")).expect("accepted");
        net.deliver_all();
    }
    net.heal();
    net.core_mut(1).transfer_leadership(3).expect("started");
    net.process(1);
    assert!(
        !net.queue
            .iter()
            .any(|(_, _, m)| matches!(m, Message::TimeoutNow(_))),
        "not before the target has the whole log"
    );
    for _ in 0..10 {
        net.tick_all(1);
        net.deliver_all();
        if net.status(3).role == Role::Leader {
            break;
        }
    }
    assert_eq!(net.status(3).role, Role::Leader);
    let timeout_now_at = net
        .delivered
        .iter()
        .position(|(_, _, m)| matches!(m, Message::TimeoutNow(_)));
    let caught_up_at = net.delivered.iter().position(|(f, _, m)| {
        *f == 3 && matches!(m, Message::AppendEntriesResponse(r) if r.outcome == raft::AppendOutcome::Matched { match_index: 6 })
    });
    assert!(caught_up_at.expect("3 caught up") < timeout_now_at.expect("TimeoutNow sent"));
    net.run(3);
    assert_eq!(net.applied_commands(3), vec!["w0", "w1", "w2", "w3", "w4"]);
}

// While a transfer is in progress the leader refuses new proposals (pointing
// at the target); an unreachable target makes the transfer expire.
#[test]
fn proposals_are_refused_during_a_transfer_until_it_expires() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    net.core_mut(1).transfer_leadership(3).expect("started");
    assert_eq!(
        net.propose(1, "x"),
        Err(Rejected::NotLeader { hint: Some(3) })
    );
    // Keep 1 and 2 talking so check-quorum holds.
    for _ in 0..20 {
        net.tick(1);
        net.tick(2);
        net.deliver_all();
    }
    assert_eq!(net.status(1).role, Role::Leader);
    assert!(
        net.propose(1, "y").is_ok(),
        "the transfer expired after an election timeout"
    );
}

#[test]
fn transfer_requests_are_validated() {
    let mut net = Network::new(3);
    net.elect(1);
    assert_eq!(
        net.core_mut(2).transfer_leadership(3),
        Err(Rejected::NotLeader { hint: Some(1) })
    );
    assert!(matches!(
        net.core_mut(1).transfer_leadership(9),
        Err(Rejected::Unsupported { .. })
    ));
    assert_eq!(
        net.core_mut(1).transfer_leadership(1),
        Ok(()),
        "to itself: nothing to do"
    );
}

// Reference: thesis section 3.10. TimeoutNow makes a voter campaign at
// once; a leader (it leads already) and a learner (it never campaigns)
// ignore it.
#[test]
fn timeout_now_is_ignored_by_a_leader_and_by_a_learner() {
    let mut net = Network::new(3);
    let mut learner_config = crate::harness::config(4, &[1, 2, 3]);
    learner_config.initial_membership = consensus_api::Membership::with_learners([1, 2, 3], [4]);
    net.add_node(learner_config, consensus_api::InitialState::default());
    net.elect(1);
    net.queue.clear();
    let term = net.status(1).epoch;

    net.deliver(2, 1, Message::TimeoutNow(raft::TimeoutNow { term }));
    assert_eq!(
        (net.status(1).role, net.status(1).epoch),
        (Role::Leader, term),
        "the leader ignores TimeoutNow"
    );

    let learner_term = net.status(4).epoch;
    net.deliver(
        1,
        4,
        Message::TimeoutNow(raft::TimeoutNow { term: learner_term }),
    );
    assert_eq!(
        (net.status(4).role, net.status(4).epoch),
        (Role::Learner, learner_term),
        "the learner ignores TimeoutNow"
    );

    net.deliver(1, 2, Message::TimeoutNow(raft::TimeoutNow { term }));
    assert_eq!(
        (net.status(2).role, net.status(2).epoch),
        (Role::Candidate, term + 1),
        "a follower campaigns at once"
    );
}

// Reference: thesis section 3.10 with section 4.3 (removing servers). A
// transfer whose target leaves the configuration ends when the leader
// appends the configuration without it (the final half of a joint change,
// appended by the leader on its own): the leader serves again at once
// instead of refusing requests until the transfer times out.
#[test]
fn a_transfer_to_a_node_being_removed_ends_with_the_configuration_without_it() {
    let mut net = Network::new(4);
    net.elect(1);
    net.deliver_all();
    net.isolate(4);
    let change = net
        .core_mut(1)
        .change_membership(consensus_api::Membership::new([1, 2, 3]))
        .expect("the removal of node 4 starts");
    net.core_mut(1)
        .transfer_leadership(4)
        .expect("node 4 is still a voter of the joint configuration");
    net.process(1);
    assert_eq!(
        net.propose(1, "during the transfer"),
        Err(Rejected::NotLeader { hint: Some(4) }),
        "requests wait for the transfer"
    );
    for _ in 0..20 {
        net.deliver_all();
        if net.outcome(1, change).is_some() {
            break;
        }
    }
    assert!(
        matches!(net.outcome(1, change), Some(Ok(_))),
        "the removal finished without ticks"
    );
    assert_eq!(net.status(1).role, Role::Leader);
    assert!(
        net.propose(1, "after the removal").is_ok(),
        "the transfer to the removed node ended"
    );
}

// Reference: thesis section 3.10. Only a voter can take leadership: a
// transfer to a learner is refused. A new transfer request for another
// target replaces the one in progress (requests then name the new target).
#[test]
fn transfers_go_to_voters_and_the_latest_request_wins() {
    let membership = consensus_api::Membership::with_learners([1, 2, 3], [4]);
    let mut net = Network::from_states(
        &[1, 2, 3],
        (1..=4)
            .map(|id| (id, consensus_api::InitialState::default()))
            .collect(),
        |c| c.initial_membership = membership.clone(),
    );
    net.elect(1);
    net.deliver_all();
    assert!(
        net.status(1).peers.contains_key(&4),
        "the leader replicates to the learner"
    );
    assert!(matches!(
        net.core_mut(1).transfer_leadership(4),
        Err(Rejected::Unsupported { .. })
    ));

    // Node 2 and 3 lag (cut off), so neither transfer completes at once.
    net.isolate(2);
    net.isolate(3);
    net.propose(1, "2 and 3 miss this").expect("accepted");
    net.core_mut(1).transfer_leadership(2).expect("to node 2");
    assert_eq!(
        net.propose(1, "x"),
        Err(Rejected::NotLeader { hint: Some(2) })
    );
    net.core_mut(1).transfer_leadership(3).expect("to node 3");
    assert_eq!(
        net.propose(1, "x"),
        Err(Rejected::NotLeader { hint: Some(3) }),
        "the latest request wins"
    );
}
