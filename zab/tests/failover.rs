//! Rule tests of the failover shortcuts (issue 14; see "Failover shortcuts"
//! in the crate docs): each test fails when its rule is broken. They drive
//! one raw core message by message, or the in-test harness (`common`).

mod common;

use common::{config, Net, ZabNet};
use consensus_api::{Bytes, Core, Entry, InitialState, Membership, NodeId, Payload};
use zab::{FollowerInfo, HardState, LeaderInfo, Message, ServerState, Vote, ZabCore, Zxid};

/// A fresh server `id` of the voters `1..=n`, its first output drained.
fn fresh(id: NodeId, n: u64) -> ZabCore {
    let voters: Vec<NodeId> = (1..=n).collect();
    let mut core = ZabCore::restore(config(id, &voters), InitialState::default()).unwrap();
    drain(&mut core);
    core
}

/// Every message the core has to send, taken out of its output.
fn drain(core: &mut ZabCore) -> Vec<(NodeId, Message)> {
    let mut messages = Vec::new();
    while let Some(ready) = core.ready() {
        messages.extend(ready.messages);
    }
    messages
}

/// A looking notification of a fresh cluster of `n` voters for `leader`.
fn looking_vote(leader: NodeId, round: u64, n: u64) -> Message {
    Message::Vote(Vote {
        leader,
        zxid: Zxid::ZERO,
        epoch: 0,
        round,
        state: ServerState::Looking,
        config: Membership::new(1..=n),
        config_version: Zxid::ZERO,
    })
}

// ------------------------------------------- FOLLOWERINFO during finalize

/// A follower may settle a moment before its leader: its FOLLOWERINFO,
/// arriving while the leader is still in its finalize wait, is kept and
/// taken up when the leader settles (LEADERINFO leaves at once), instead of
/// being dropped until the follower resends it a heartbeat later.
#[test]
fn follower_info_during_the_finalize_wait_is_taken_up_once_leading() {
    let mut core = fresh(3, 3);
    core.step(2, looking_vote(3, 1, 3));
    core.step(2, Message::FollowerInfo(FollowerInfo { accepted_epoch: 0 }));
    drain(&mut core);
    assert!(core.state_name().starts_with("looking"), "finalize wait");
    let mut sent = Vec::new();
    for _ in 0..10 {
        core.tick();
        sent.extend(drain(&mut core));
        if core.state_name().starts_with("leading") {
            break;
        }
    }
    assert_eq!(
        core.state_name(),
        "leading epoch-ack epoch=1",
        "the kept FOLLOWERINFO completes the discovery quorum"
    );
    assert!(
        sent.contains(&(2, Message::LeaderInfo(LeaderInfo { epoch: 1 }))),
        "LEADERINFO to the follower as soon as leading: {sent:?}"
    );
}

/// Only FOLLOWERINFOs of servers whose latest notification of the round
/// proposed this server are taken up: one from a server that voted for
/// someone else is not.
#[test]
fn follower_info_from_a_server_voting_for_another_is_not_taken_up() {
    let mut core = fresh(3, 3);
    core.step(2, looking_vote(3, 1, 3));
    core.step(1, Message::FollowerInfo(FollowerInfo { accepted_epoch: 0 }));
    core.step(1, looking_vote(1, 1, 3));
    drain(&mut core);
    for _ in 0..10 {
        core.tick();
        drain(&mut core);
        if core.state_name().starts_with("leading") {
            break;
        }
    }
    assert_eq!(core.state_name(), "leading discovery epoch=0");
}

// ------------------------------------------- a follower gives up its leader

/// A LOOKING notification of `from` (its own ballot, a round ahead).
fn looking_vote_of(net: &Net, from: NodeId, round: u64) -> Message {
    let core = net.core(from);
    Message::Vote(Vote {
        leader: from,
        zxid: core.last_zxid(),
        epoch: core.hard_state().current_epoch,
        round,
        state: ServerState::Looking,
        config: net.status(from).membership,
        config_version: Zxid::ZERO,
    })
}

/// An elected 3-node cluster: (leader, follower, other follower).
fn elected_three() -> (Net, NodeId, NodeId, NodeId) {
    let mut net = Net::new(3);
    let leader = net.elect();
    let others: Vec<NodeId> = (1..=3).filter(|&n| n != leader).collect();
    (net, leader, others[0], others[1])
}

/// A follower that hears its leader keeps following when one LOOKING
/// notification arrives (it answers with its vote), and the leader stays.
#[test]
fn follower_with_a_live_leader_keeps_following_on_a_looking_notification() {
    let (mut net, leader, follower, other) = elected_three();
    let epoch = net.status(leader).epoch;
    for ticks in 0..net.nodes[&follower].config.heartbeat_interval_ticks * 2 {
        net.run(1);
        let vote = looking_vote_of(&net, other, 50 + ticks);
        net.core_mut(follower).step(other, vote);
        let answer = drain(net.core_mut(follower));
        assert!(
            net.core(follower)
                .state_name()
                .starts_with(&format!("following {leader} broadcast")),
            "still following after {ticks} ticks: {}",
            net.core(follower).state_name()
        );
        assert!(
            answer.iter().any(|(to, m)| *to == other
                && matches!(m, Message::Vote(v) if v.state == ServerState::Following)),
            "answered with its vote: {answer:?}"
        );
    }
    net.run(50);
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.status(leader).epoch, epoch, "no new epoch");
}

/// A follower whose leader has been silent for longer than a heartbeat
/// interval plus slack (one more interval) joins the election as soon as
/// a LOOKING notification arrives, long before its own timeout; up to that
/// silence it keeps following.
#[test]
fn follower_with_a_silent_leader_joins_the_election_at_once() {
    let (mut net, leader, follower, other) = elected_three();
    net.crash(leader);
    let silent = 2 * net.nodes[&follower].config.heartbeat_interval_ticks;
    assert!(silent < net.nodes[&follower].config.election_timeout_ticks_min);
    for _ in 0..silent {
        net.run(1);
    }
    let vote = looking_vote_of(&net, other, 50);
    net.core_mut(follower).step(other, vote.clone());
    assert!(
        net.core(follower).state_name().starts_with("following"),
        "silent for exactly a heartbeat plus slack: still following"
    );
    drain(net.core_mut(follower));
    net.run(1);
    net.core_mut(follower).step(other, vote);
    let state = net.core(follower).state_name();
    assert!(
        !state.starts_with(&format!("following {leader} ")),
        "gave the leader up at once: {state}"
    );
    let sent = drain(net.core_mut(follower));
    assert!(
        sent.iter().any(|(to, m)| *to == other
            && matches!(m, Message::Vote(v) if v.state == ServerState::Looking && v.round == 50)),
        "took part in the notification's round: {sent:?}"
    );
}

// ------------------------------------------- the finalize wait ends early

/// Fast Leader Election settles without the finalize wait once every voter
/// of the configuration has voted for the proposal in this round: no better
/// notification can come. With a voter not heard from, it waits.
#[test]
fn finalize_ends_at_once_when_every_voter_agrees() {
    let mut core = fresh(3, 3);
    core.step(2, looking_vote(3, 1, 3));
    assert!(
        core.state_name().starts_with("looking"),
        "a quorum, but voter 1 not heard: the finalize wait runs"
    );
    core.step(1, looking_vote(3, 1, 3));
    assert_eq!(
        core.state_name(),
        "leading discovery epoch=0",
        "all three agree: settled without a tick"
    );
    let mut follower = fresh(1, 3);
    follower.step(3, looking_vote(3, 1, 3));
    follower.step(2, looking_vote(3, 1, 3));
    assert_eq!(follower.state_name(), "following 3 discovery");
}

/// After a leader crash, the survivors settle as soon as they agree: the
/// leader they gave up for its silence is not waited for. The new leader
/// is elected in the same tick in which the first survivor timed out.
#[test]
fn survivors_settle_at_once_without_the_silent_leader() {
    let (mut net, leader, a, b) = elected_three();
    net.crash(leader);
    let old = format!("following {leader} ");
    let mut ticks = 0;
    while net.core(a).state_name().starts_with(&old) && net.core(b).state_name().starts_with(&old) {
        net.run(1);
        ticks += 1;
        assert!(ticks < 100, "a survivor times out");
    }
    let states = [net.core(a).state_name(), net.core(b).state_name()];
    assert!(
        states.iter().any(|s| s.starts_with("leading")),
        "a leader in the tick the leader was given up: {states:?}"
    );
    assert!(
        states.iter().all(|s| !s.starts_with("looking")),
        "{states:?}"
    );
}

/// A silent leader that is heard from again (even by a notification of an
/// older round) is waited for like any other voter.
#[test]
fn finalize_waits_for_a_silent_leader_heard_from_again() {
    let mut core = fresh(1, 3);
    core.step(2, looking_vote(3, 1, 3));
    core.step(3, looking_vote(3, 1, 3));
    assert_eq!(core.state_name(), "following 3 discovery");
    while core.state_name().starts_with("following") {
        core.tick();
    }
    assert_eq!(core.state_name(), "looking round=2", "leader 3 lost");
    drain(&mut core);
    core.step(3, looking_vote(3, 1, 3));
    core.step(2, looking_vote(2, 2, 3));
    assert!(
        core.state_name().starts_with("looking"),
        "3 spoke again: its vote is awaited ({})",
        core.state_name()
    );
}

/// A server whose own proposal a quorum already follows in its round
/// settles, its own vote counting (ZooKeeper's `recvset` holds it): here
/// 1 settled on 3 but 3 never received 1's notification, and 1 now only
/// answers "following 3". Before, 3 stayed looking until 1 timed out.
#[test]
fn a_server_followed_by_a_quorum_in_its_round_settles() {
    let mut core = fresh(3, 3);
    let Message::Vote(mut following) = looking_vote(3, 1, 3) else {
        unreachable!()
    };
    following.state = ServerState::Following;
    core.step(1, Message::Vote(following));
    assert_eq!(core.state_name(), "leading discovery epoch=0");
}

// ------------------------------- discovery: everyone known to be coming

fn entry(index: u64, text: &str) -> Entry {
    Entry {
        index,
        epoch: 1,
        payload: Payload::Command(Bytes::from(text.to_string())),
    }
}

/// Three servers restored with the given `acceptedEpoch`s (currentEpoch 1)
/// and histories of `lengths` proposals of epoch 1.
fn restored(accepted: [u64; 3], lengths: [u64; 3]) -> Net {
    let mut net = Net::empty();
    for id in 1..=3u64 {
        let i = id as usize - 1;
        let state = InitialState {
            hard_state: Some(
                HardState {
                    accepted_epoch: accepted[i],
                    current_epoch: 1,
                }
                .encode(),
            ),
            snapshot: None,
            entries: (1..=lengths[i]).map(|n| entry(n, "x")).collect(),
        };
        net.add_node(config(id, &[1, 2, 3]), state);
    }
    net
}

/// The prospective leader chooses the epoch once every voter that elected
/// it has connected (they are about to), not with the first quorum: the
/// epoch then exceeds every one of their `acceptedEpoch`s and nobody sits
/// the epoch out. Here the FOLLOWERINFO of 1 (acceptedEpoch 2) reaches
/// leader 3 before the one of 2 (acceptedEpoch 7): with the first quorum,
/// the epoch would be 5 and server 2 could not join it.
#[test]
fn discovery_waits_for_every_voter_that_elected_the_leader() {
    let mut net = restored([2, 7, 4], [1, 1, 2]);
    let leader = net.elect();
    assert_eq!(leader, 3);
    for id in 1..=3 {
        assert_eq!(net.core(id).hard_state().accepted_epoch, 8, "server {id}");
        assert_eq!(net.core(id).hard_state().current_epoch, 8, "server {id}");
    }
}

/// A server whose leader's epoch is below its own `acceptedEpoch` cannot
/// join that epoch. It stays connected without acknowledging instead of
/// going back to election, where the ensemble's answers would only send it
/// back to the same leader: a storm of notifications, FOLLOWERINFO and
/// LEADERINFO with no time passing. The others are not disturbed.
#[test]
fn a_follower_that_cannot_join_the_epoch_does_not_storm() {
    let mut net = restored([7, 2, 4], [1, 1, 2]);
    net.isolate(1);
    let leader = net.elect();
    assert_eq!((leader, net.status(leader).epoch), (3, 5));
    net.heal();
    net.run(50);
    assert_eq!(net.core(1).state_name(), "following 3 discovery");
    assert_eq!(net.core(1).hard_state().accepted_epoch, 7);
    assert_eq!(net.leader(), Some(3));
    let ticket = net.propose(3, "y").unwrap();
    net.run(2);
    assert!(matches!(net.outcome(3, ticket), Some(Ok(_))));
}

/// A voter that elected the leader but does not connect is waited for at
/// most one heartbeat interval: then the quorum that did connect is enough.
#[test]
fn discovery_waits_at_most_a_heartbeat_for_a_missing_voter() {
    let mut core = fresh(3, 3);
    core.step(1, looking_vote(3, 1, 3));
    core.step(2, looking_vote(3, 1, 3));
    while core.state_name().starts_with("looking") {
        core.tick();
    }
    core.step(2, Message::FollowerInfo(FollowerInfo { accepted_epoch: 0 }));
    assert_eq!(
        core.state_name(),
        "leading discovery epoch=0",
        "waits for 1"
    );
    let heartbeat = config(3, &[1, 2, 3]).heartbeat_interval_ticks;
    for _ in 1..heartbeat {
        core.tick();
    }
    assert_eq!(core.state_name(), "leading discovery epoch=0");
    core.tick();
    assert_eq!(core.state_name(), "leading epoch-ack epoch=1");
}
