//! No panic on any input from the network: random and extreme messages,
//! from members and strangers, to nodes in every role. `check_invariants`
//! runs at the end of every `step`, so a message that corrupted the state
//! would fail here too.

use consensus_api::{Bytes, Core, Entry, Membership, Payload};
use raft::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse,
    InstallSnapshot, InstallSnapshotResponse, Message, RequestVote, RequestVoteResponse,
    SnapshotOutcome, TimeoutNow,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{Network, RaftNet};

fn number(rng: &mut ChaCha8Rng) -> u64 {
    match rng.random_range(0..6) {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - 1,
        3 => rng.random_range(0..4),
        4 => rng.random_range(0..40),
        _ => rng.random(),
    }
}

fn entries(rng: &mut ChaCha8Rng, prev: u64) -> Vec<Entry> {
    let count = rng.random_range(0..4);
    (0..count)
        .map(|i| Entry {
            index: if rng.random_bool(0.8) {
                prev.wrapping_add(1 + i)
            } else {
                number(rng)
            },
            epoch: number(rng),
            payload: match rng.random_range(0..3) {
                0 => Payload::Noop,
                1 => Payload::Command(Bytes::from_static(b"junk")),
                _ => Payload::Membership(Membership::new([1, 2, number(rng) % 5])),
            },
        })
        .collect()
}

fn random_message(rng: &mut ChaCha8Rng) -> Message {
    let term = number(rng);
    match rng.random_range(0..9) {
        0 => Message::RequestVote(RequestVote {
            term,
            last_log_index: number(rng),
            last_log_term: number(rng),
            pre_vote: rng.random(),
            transfer: rng.random(),
        }),
        1 => Message::RequestVoteResponse(RequestVoteResponse {
            term,
            pre_vote: rng.random(),
            granted: rng.random(),
        }),
        2 => {
            let prev = number(rng);
            Message::AppendEntries(AppendEntries {
                term,
                prev_log_index: prev,
                prev_log_term: number(rng),
                entries: entries(rng, prev),
                leader_commit: number(rng),
            })
        }
        3 => Message::AppendEntriesResponse(AppendEntriesResponse {
            term,
            outcome: if rng.random() {
                AppendOutcome::Matched {
                    match_index: number(rng),
                }
            } else {
                AppendOutcome::Conflict {
                    prev_log_index: number(rng),
                    conflict_term: number(rng),
                    conflict_index: number(rng),
                }
            },
        }),
        4 => Message::Heartbeat(Heartbeat {
            term,
            commit: number(rng),
            read_round: number(rng),
        }),
        5 => Message::HeartbeatResponse(HeartbeatResponse {
            term,
            read_round: number(rng),
        }),
        6 => {
            let data = Bytes::from(vec![7u8; rng.random_range(0..10)]);
            Message::InstallSnapshot(InstallSnapshot {
                term,
                snapshot_index: number(rng),
                snapshot_term: number(rng),
                membership: Membership::new([1, 2, 3]),
                protocol_state: Bytes::new(),
                offset: number(rng),
                total_bytes: number(rng),
                checksum: rng.random(),
                data,
                done: rng.random(),
            })
        }
        7 => Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term,
            snapshot_index: number(rng),
            outcome: if rng.random() {
                SnapshotOutcome::Receiving {
                    next_offset: number(rng),
                }
            } else {
                SnapshotOutcome::Done {
                    match_index: number(rng),
                }
            },
        }),
        _ => Message::TimeoutNow(TimeoutNow { term }),
    }
}

#[test]
fn random_and_extreme_messages_never_panic() {
    for seed in 0..40 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut net = Network::new(3);
        net.elect(1);
        for i in 0..5 {
            net.propose(1, &format!("v{i}")).expect("accepted");
        }
        net.deliver_all();
        for _ in 0..300 {
            let to = rng.random_range(1..=3);
            let from = match rng.random_range(0..4) {
                0 => 0,
                1 => 9,
                _ => rng.random_range(1..=3),
            };
            let message = random_message(&mut rng);
            net.core_mut(to).step(from, message);
            net.process(to);
            net.queue.clear();
            if rng.random_bool(0.1) {
                net.tick(to);
            }
        }
    }
}

#[test]
fn a_huge_term_from_the_network_does_not_overflow() {
    let mut net = Network::new(3);
    net.elect(1);
    net.deliver(
        2,
        3,
        Message::Heartbeat(Heartbeat {
            term: u64::MAX,
            commit: 0,
            read_round: 0,
        }),
    );
    assert_eq!(net.status(3).epoch, u64::MAX);
    net.queue.clear();
    for _ in 0..100 {
        net.tick(3);
    }
    assert_eq!(net.status(3).epoch, u64::MAX);
}
