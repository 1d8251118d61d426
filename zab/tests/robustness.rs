//! No panic on any input from the network or the disk: random messages
//! (mostly nonsense) thrown at cores in every phase, and corrupt stored
//! state refused with a typed error.

mod common;

use common::{config, Net, ZabNet};
use consensus_api::{
    Bytes, Core, Entry, InitialState, Membership, Payload, RecoverError, Rejected, Snapshot,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zab::*;

fn zxid(rng: &mut ChaCha8Rng) -> Zxid {
    match rng.random_range(0..4) {
        0 => Zxid::ZERO,
        1 => Zxid(rng.random()),
        _ => Zxid::new(rng.random_range(0..4), rng.random_range(0..6)),
    }
}

fn entries(rng: &mut ChaCha8Rng) -> Vec<Entry> {
    let start = rng.random_range(0..8);
    let epoch = rng.random_range(0..4);
    (0..rng.random_range(0..4))
        .map(|k| Entry {
            index: if rng.random_bool(0.9) {
                start + k
            } else {
                rng.random()
            },
            epoch: if rng.random_bool(0.8) {
                epoch
            } else {
                rng.random()
            },
            payload: Payload::Command(Bytes::from_static(b"junk")),
        })
        .collect()
}

fn message(rng: &mut ChaCha8Rng) -> Message {
    let epoch = rng.random_range(0..4);
    match rng.random_range(0..17) {
        0 => Message::Vote(Vote {
            leader: rng.random_range(0..5),
            zxid: zxid(rng),
            epoch,
            round: rng.random_range(0..4),
            state: [
                ServerState::Looking,
                ServerState::Following,
                ServerState::Leading,
            ][rng.random_range(0..3)],
            config: Membership::new(1..=rng.random_range(1..=5u64)),
            config_version: zxid(rng),
        }),
        1 => Message::FollowerInfo(FollowerInfo {
            accepted_epoch: epoch,
        }),
        2 => Message::LeaderInfo(LeaderInfo { epoch }),
        3 => Message::AckEpoch(AckEpoch {
            epoch,
            current_epoch: rng.random_range(0..4),
            last_zxid: zxid(rng),
            fresh: rng.random(),
        }),
        4 => Message::Trunc(Trunc {
            epoch,
            follower_last: zxid(rng),
            zxid: zxid(rng),
        }),
        5 => Message::Diff(Diff {
            epoch,
            prev_zxid: zxid(rng),
            entries: entries(rng),
        }),
        6 => Message::Snap(Snap {
            epoch,
            zxid: zxid(rng),
            index: rng.random_range(0..10),
            membership: Membership::new([1, 2, 3]),
            config_zxid: zxid(rng),
            offset: rng.random_range(0..8),
            total_bytes: rng.random_range(0..8),
            checksum: rng.random(),
            data: Bytes::from(vec![7; rng.random_range(0..6)]),
        }),
        7 => Message::AckSnap(AckSnap {
            epoch,
            zxid: zxid(rng),
            offset: rng.random_range(0..10),
        }),
        8 => Message::NewLeader(NewLeader {
            epoch,
            zxid: zxid(rng),
        }),
        9 => Message::AckNewLeader(AckNewLeader {
            epoch,
            zxid: zxid(rng),
        }),
        10 => Message::Proposal(Proposal {
            zxid: zxid(rng),
            entries: entries(rng),
        }),
        11 => Message::Ack(Ack {
            epoch,
            zxid: zxid(rng),
            resend: rng.random(),
        }),
        12 => Message::Commit(Commit {
            epoch,
            zxid: zxid(rng),
        }),
        13 => Message::Ping(Ping {
            epoch,
            commit: zxid(rng),
            round: rng.random_range(0..4),
        }),
        14 => Message::PingResponse(PingResponse {
            epoch,
            round: rng.random(),
            last_zxid: zxid(rng),
        }),
        15 => Message::Sync(Sync {
            epoch,
            request: rng.random_range(0..3),
        }),
        _ => Message::SyncResponse(SyncResponse {
            epoch,
            request: rng.random_range(0..3),
            zxid: zxid(rng),
        }),
    }
}

fn pour_junk(net: &mut Net, rng: &mut ChaCha8Rng, count: usize) {
    for _ in 0..count {
        let to = rng.random_range(1..=3);
        let from = rng.random_range(0..=4);
        let junk = message(rng);
        let core = net.core_mut(to);
        core.step(from, junk);
        // Drain without delivering: only the core's own checks matter here.
        while core.ready().is_some() {}
    }
}

/// Junk that even claims to come from real peers, at cores looking, leading
/// and following: no panic (every core checks its invariants after each
/// input). Agreement is not asserted: ZAB does not tolerate Byzantine peers.
#[test]
fn random_messages_never_panic() {
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut fresh = Net::new(3);
        pour_junk(&mut fresh, &mut rng, 300);
        let mut running = Net::new(3);
        let leader = running.elect();
        running.propose(leader, "a").unwrap();
        running.run(3);
        pour_junk(&mut running, &mut rng, 600);
    }
}

/// Junk from non-members, interleaved with a real run, changes nothing.
#[test]
fn messages_from_non_members_are_ignored() {
    for seed in 0..10 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut net = Net::new(3);
        let leader = net.elect();
        for round in 0..200u64 {
            if round % 4 == 0 {
                net.run(1);
            }
            if round % 40 == 0 {
                net.propose(leader, &format!("v{round}")).unwrap();
            }
            let to = rng.random_range(1..=3);
            let from = [0, 4, 9][rng.random_range(0..3)];
            let junk = message(&mut rng);
            net.core_mut(to).step(from, junk);
            net.process(to);
        }
        net.run(10);
        assert_eq!(net.leader(), Some(leader), "seed {seed}");
        for id in 1..=3 {
            assert_eq!(
                net.machine(id),
                vec!["v0", "v40", "v80", "v120", "v160"],
                "seed {seed} node {id}"
            );
        }
    }
}

#[test]
fn corrupt_stored_state_is_refused() {
    let bad_hard = InitialState {
        hard_state: Some(Bytes::from_static(&[0xff, 0xff, 0xff])),
        ..InitialState::default()
    };
    assert!(matches!(
        ZabCore::restore(config(1, &[1, 2, 3]), bad_hard),
        Err(RecoverError::CorruptHardState(_))
    ));
    let inverted = InitialState {
        hard_state: Some(
            HardState {
                accepted_epoch: 1,
                current_epoch: 2,
            }
            .encode(),
        ),
        ..InitialState::default()
    };
    assert!(matches!(
        ZabCore::restore(config(1, &[1, 2, 3]), inverted),
        Err(RecoverError::CorruptHardState(_))
    ));
    let future = InitialState {
        hard_state: Some(
            HardState {
                accepted_epoch: 1,
                current_epoch: 1,
            }
            .encode(),
        ),
        entries: vec![Entry {
            index: 1,
            epoch: 2,
            payload: Payload::Noop,
        }],
        ..InitialState::default()
    };
    assert!(matches!(
        ZabCore::restore(config(1, &[1, 2, 3]), future),
        Err(RecoverError::InconsistentLog(_))
    ));
    let gap = InitialState {
        hard_state: Some(
            HardState {
                accepted_epoch: 1,
                current_epoch: 1,
            }
            .encode(),
        ),
        entries: vec![Entry {
            index: 2,
            epoch: 1,
            payload: Payload::Noop,
        }],
        ..InitialState::default()
    };
    assert!(matches!(
        ZabCore::restore(config(1, &[1, 2, 3]), gap),
        Err(RecoverError::InconsistentLog(_))
    ));
    let bad_snapshot = InitialState {
        snapshot: Some(Snapshot {
            index: 3,
            epoch: 1,
            membership: Membership::new([1, 2, 3]),
            protocol_state: Bytes::from_static(b"not postcard"),
            data: Bytes::new(),
        }),
        ..InitialState::default()
    };
    assert!(matches!(
        ZabCore::restore(config(1, &[1, 2, 3]), bad_snapshot),
        Err(RecoverError::CorruptSnapshot(_))
    ));
    assert!(matches!(
        ZabCore::restore(config(0, &[1, 2, 3]), InitialState::default()),
        Err(RecoverError::InvalidConfig(_))
    ));
}

#[test]
fn compaction_is_checked_against_the_applied_index() {
    let mut net = Net::new(3);
    let leader = net.elect();
    net.propose(leader, "a").unwrap();
    net.run(3);
    assert!(matches!(
        net.core_mut(leader).compact(5, Bytes::new()),
        Err(Rejected::InvalidCompaction {
            index: 5,
            applied: 1,
            snapshot: 0
        })
    ));
    net.compact(leader);
    assert!(matches!(
        net.core_mut(leader).compact(1, Bytes::new()),
        Err(Rejected::InvalidCompaction {
            index: 1,
            applied: 1,
            snapshot: 1
        })
    ));
}
