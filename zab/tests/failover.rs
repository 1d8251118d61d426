//! Rule tests of the failover shortcuts (issue 14; see "Failover shortcuts"
//! in the crate docs): each test fails when its rule is broken. They drive
//! one raw core message by message, or the in-test harness (`common`).

mod common;

use common::config;
use consensus_api::{Core, InitialState, Membership, NodeId};
use zab::{FollowerInfo, LeaderInfo, Message, ServerState, Vote, ZabCore, Zxid};

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
