//! The rules of "Paxos Made Simple", one test each, on a hand-driven
//! network (tests/common): messages are delivered, dropped and reordered
//! explicitly.

mod common;

use common::{command, payload, Net, PaxosNet};
use consensus_api::{Core, CoreConfig, LogStore, Membership, Payload, Rejected};
use consensus_storage::MemStore;
use paxos::{Accept, Ballot, Message, NackSlot, PaxosCore, Prepare, Proposal, SlotBallot};

fn prepare(slot: u64, ballot: Ballot) -> Message {
    Message::Prepare(Prepare {
        slots: vec![SlotBallot { slot, ballot }],
    })
}

fn accept(slot: u64, ballot: Ballot, value: &str) -> Message {
    Message::Accept(Accept {
        slots: vec![Proposal {
            slot,
            ballot,
            payload: payload(value),
            origin: ballot,
        }],
    })
}

/// Steps `message` from `from` into `core`, persists the Ready into
/// `store`, returns the messages sent back to `from`.
fn exchange(
    core: &mut PaxosCore,
    store: &mut MemStore,
    from: u64,
    message: Message,
) -> Vec<Message> {
    core.step(from, message);
    let mut replies = Vec::new();
    while let Some(ready) = core.ready() {
        store.write(&ready.write_batch()).unwrap();
        store.sync().unwrap();
        replies.extend(
            ready
                .messages
                .into_iter()
                .filter(|(to, _)| *to == from)
                .map(|(_, m)| m),
        );
    }
    replies
}

/// Like `exchange`, but returns every message sent, to anyone.
fn step_all(
    core: &mut PaxosCore,
    store: &mut MemStore,
    from: u64,
    message: Message,
) -> Vec<(u64, Message)> {
    core.step(from, message);
    let mut sent = Vec::new();
    while let Some(ready) = core.ready() {
        store.write(&ready.write_batch()).unwrap();
        store.sync().unwrap();
        sent.extend(ready.messages);
    }
    sent
}

fn accepted(slots: &[(u64, Ballot)]) -> Message {
    Message::Accepted(paxos::Accepted {
        slots: slots
            .iter()
            .map(|&(slot, ballot)| SlotBallot { slot, ballot })
            .collect(),
    })
}

/// The slots of the `Ask` messages in `sent`.
fn asked(sent: &[(u64, Message)]) -> Vec<u64> {
    sent.iter()
        .filter_map(|(_, m)| match m {
            Message::Ask(ask) => Some(ask.slots.iter().map(|s| s.slot)),
            _ => None,
        })
        .flatten()
        .collect()
}

fn acceptor_node() -> (PaxosCore, MemStore, CoreConfig) {
    let config = CoreConfig::new(1, Membership::new([1, 2, 3]));
    let mut store = MemStore::new();
    let mut core = PaxosCore::restore(config.clone(), store.load().unwrap()).unwrap();
    while let Some(ready) = core.ready() {
        store.write(&ready.write_batch()).unwrap();
        store.sync().unwrap();
    }
    (core, store, config)
}

// Reference: "Paxos Made Simple" §2.2, P1a: an acceptor can accept a proposal
// numbered n iff it has not responded to a prepare request numbered > n.
#[test]
fn an_acceptor_never_accepts_below_its_promise() {
    let (mut core, mut store, config) = acceptor_node();
    let high = Ballot::new(5, 2);
    let low = Ballot::new(3, 3);
    let replies = exchange(&mut core, &mut store, 2, prepare(4, high));
    assert!(
        matches!(&replies[..], [Message::Promise(p)] if p.slots[0].ballot == high && p.slots[0].accepted.is_none())
    );

    let replies = exchange(&mut core, &mut store, 3, accept(4, low, "low"));
    assert_eq!(
        replies,
        vec![Message::Nack(paxos::Nack {
            slots: vec![NackSlot {
                slot: 4,
                ballot: low,
                promised: high
            }]
        })]
    );
    assert!(
        !store.durable().entries.contains_key(&4),
        "nothing accepted below the promise"
    );
    let replies = exchange(&mut core, &mut store, 3, prepare(4, low));
    assert!(
        matches!(&replies[..], [Message::Nack(_)]),
        "no promise below a promise"
    );

    // The promise survives a crash: it was persisted before the reply.
    store.crash();
    let mut core = PaxosCore::restore(config.clone(), store.load().unwrap()).unwrap();
    let replies = exchange(&mut core, &mut store, 3, accept(4, low, "low"));
    assert!(
        matches!(&replies[..], [Message::Nack(_)]),
        "the promise is durable"
    );

    // Accepting at the promised ballot works, and then the accepted ballot
    // is itself a floor, also after a restart.
    let replies = exchange(&mut core, &mut store, 2, accept(4, high, "high"));
    assert!(replies.iter().any(|m| matches!(m, Message::Accepted(_))));
    assert_eq!(store.durable().entries[&4].epoch, high.to_epoch());
    store.crash();
    let mut core = PaxosCore::restore(config, store.load().unwrap()).unwrap();
    let between = Ballot::new(4, 3);
    let replies = exchange(&mut core, &mut store, 3, accept(4, between, "between"));
    assert!(matches!(&replies[..], [Message::Nack(_)]));
    let replies = exchange(&mut core, &mut store, 3, prepare(4, Ballot::new(6, 3)));
    match &replies[..] {
        [Message::Promise(p)] => {
            let accepted = p.slots[0]
                .accepted
                .as_ref()
                .expect("reports its accepted value");
            assert_eq!(accepted.ballot, high);
            assert_eq!(accepted.payload, payload("high"));
            assert_eq!(p.highest_accepted, 4);
        }
        other => panic!("expected a promise, got {other:?}"),
    }
}

#[test]
fn malformed_requests_are_dropped() {
    let (mut core, mut store, _) = acceptor_node();
    // Ballot owned by another node than the sender, slot 0, zero ballot.
    assert!(exchange(&mut core, &mut store, 2, prepare(4, Ballot::new(5, 3))).is_empty());
    assert!(exchange(&mut core, &mut store, 2, prepare(0, Ballot::new(5, 2))).is_empty());
    assert!(exchange(&mut core, &mut store, 2, accept(4, Ballot::ZERO, "x")).is_empty());
    // The same for Accept: slot 0, a ballot owned by another node (two
    // proposers must never propose under one ballot, or two values could be
    // accepted under it).
    assert!(exchange(&mut core, &mut store, 2, accept(0, Ballot::new(5, 2), "x")).is_empty());
    assert!(exchange(&mut core, &mut store, 2, accept(4, Ballot::new(5, 3), "x")).is_empty());
    assert!(
        !store.durable().entries.contains_key(&4),
        "nothing accepted from a malformed Accept"
    );
    let joint = Membership::new([1, 2]).joint_to(&Membership::new([2, 3]));
    let bad = Message::Accept(Accept {
        slots: vec![Proposal {
            slot: 4,
            ballot: Ballot::new(5, 2),
            payload: Payload::Membership(joint),
            origin: Ballot::new(5, 2),
        }],
    });
    assert!(exchange(&mut core, &mut store, 2, bad).is_empty());
    core.check_invariants();
}

// Reference: §2.2, P2c: the proposer picks the value of the highest-numbered
// proposal among the promises. The classic case: a value was chosen by a
// quorum, then most of that quorum crashed; a new proposer must still find
// it through the one survivor.
#[test]
fn a_proposer_adopts_the_value_chosen_by_a_quorum_that_mostly_crashed() {
    let mut net = Net::new(5);
    let first = net.propose(1, "a");
    // Node 1's messages reach nodes 2 and 3 only: 4 and 5 never hear of
    // slot 1. Phase 2 happens on 1, 2, 3 ("a" is chosen), but every
    // Accepted notice is lost, so nobody knows it.
    net.deliver_all_losing(|_, to, m| to == 4 || to == 5 || matches!(m, Message::Accepted(_)));
    assert!(net.node(1).machine.applied.is_empty());
    assert_eq!(
        net.node(3).store.durable().entries[&1].payload,
        payload("a")
    );
    net.crash(1);
    net.crash(2);
    // Node 5 proposes "b" in what it believes is a fresh slot: slot 1.
    let second = net.propose(5, "b");
    net.tracing = true;
    net.deliver_all();
    assert!(
        net.trace
            .iter()
            .any(|line| line.starts_with("3->5 Promise b=1.5 slot=1 accepted=[1@1.1:\"a\"]")),
        "node 3 reports the accepted value: {:#?}",
        net.trace
    );
    net.run(5);
    assert_eq!(
        net.commands(5),
        vec!["a", "b"],
        "slot 1 keeps the chosen value, b moves to slot 2"
    );
    assert_eq!(net.outcome(5, second), Some(&Ok(2)));
    net.restart(1);
    net.restart(2);
    net.run(100);
    for id in 1..=5 {
        assert_eq!(net.commands(id), vec!["a", "b"], "node {id}");
    }
    // Node 1 lost its ticket in the crash; "a" was applied exactly once.
    assert!(net.outcome(1, first).is_none());
    net.check_agreement();
}

// A value accepted by a minority only may be chosen or not, but never both:
// whatever the survivors decide, every node agrees and nothing repeats.
#[test]
fn a_value_accepted_by_a_crashed_minority_is_decided_once() {
    let mut net = Net::new(5);
    net.propose(1, "a");
    net.drop_where(|_, to, _| to == 4 || to == 5);
    net.deliver_where(|_, _, m| matches!(m, Message::Prepare(_)));
    net.deliver_where(|_, _, m| matches!(m, Message::Promise(_)));
    // Accept reaches node 2 only (and node 1 itself, through its loopback).
    net.drop_where(|_, to, m| matches!(m, Message::Accept(_)) && to != 2);
    net.deliver_where(|_, _, m| matches!(m, Message::Accept(_)));
    net.drop_where(|_, _, _| true);
    net.crash(1);
    net.crash(2);
    net.propose(4, "b");
    net.run(200);
    assert_eq!(
        net.commands(4),
        vec!["b"],
        "slot 1 became a no-op: {:?}",
        net.node(4).machine.applied
    );
    net.restart(1);
    net.restart(2);
    net.run(200);
    net.check_agreement();
    net.check_no_duplicates();
    assert_eq!(net.commands(1), net.commands(4));
}

// Reference: §2.2, P2: two proposers interleaving their phases on the same
// slot never get two different values chosen.
#[test]
fn two_proposers_with_interleaved_phases_choose_one_value() {
    let mut net = Net::new(3);
    net.tracing = true;
    let x = net.propose(1, "x");
    // Node 1's Prepare reaches node 2; node 3 hears nothing yet.
    net.deliver_where(|from, to, m| from == 1 && to == 2 && matches!(m, Message::Prepare(_)));
    let late_prepare: Vec<_> = net
        .queue
        .iter()
        .filter(|(_, to, _)| *to == 3)
        .cloned()
        .collect();
    net.drop_where(|_, to, _| to == 3);
    // Node 3 proposes in the same slot with a higher ballot (1.3 > 1.1).
    let y = net.propose(3, "y");
    // Node 3's Prepare reaches 2 and 3: node 2 promised 1.1, promises 1.3 now.
    net.deliver_where(|from, _, m| from == 3 && matches!(m, Message::Prepare(_)));
    // Node 2's promise to node 1 (b=1.1) and to node 3 arrive: both
    // proposers have a quorum of promises for slot 1.
    net.deliver_where(|_, _, m| matches!(m, Message::Promise(_)));
    // Both send Accept. Node 1's Accept reaches node 2 first: refused.
    net.deliver_where(|from, _, m| from == 1 && matches!(m, Message::Accept(_)));
    net.deliver_where(|_, _, m| matches!(m, Message::Nack(_)));
    net.deliver_where(|from, _, m| from == 3 && matches!(m, Message::Accept(_)));
    net.queue.extend(late_prepare);
    net.run(100);
    net.check_agreement();
    net.check_no_duplicates();
    for id in 1..=3 {
        assert_eq!(
            net.commands(id),
            vec!["y", "x"],
            "node {id}: {:#?}",
            net.trace
        );
    }
    assert_eq!(net.outcome(3, y), Some(&Ok(1)));
    assert_eq!(
        net.outcome(1, x),
        Some(&Ok(2)),
        "x lost slot 1 and moved to slot 2"
    );
    assert!(net
        .trace
        .iter()
        .any(|l| l.starts_with("2->1 Nack b=1.1 slot=1 promised=1.3")));
}

// Reference: §3: "fill the gaps with no-op commands". Node 1 used slot 1
// (its Prepare was seen) and crashed before Phase 2; slot 2 got chosen. The
// stuck frontier makes a node run Paxos on slot 1, which chooses a no-op.
#[test]
fn gaps_are_filled_with_noops() {
    let mut net = Net::new(3);
    net.propose(1, "lost");
    net.deliver_where(|_, _, m| matches!(m, Message::Prepare(_)));
    net.crash(1);
    net.propose(2, "z");
    net.run(3);
    assert!(
        net.node(2).machine.applied.is_empty(),
        "slot 2 is chosen but slot 1 is a gap"
    );
    assert_eq!(net.core(2).status().last_index, 2);
    net.run(200);
    for id in [2, 3] {
        let applied = &net.node(id).machine.applied;
        assert_eq!(applied.len(), 2, "node {id}");
        assert_eq!(applied[0].payload, Payload::Noop);
        assert_eq!(applied[1].payload, payload("z"));
    }
    net.restart(1);
    net.run(50);
    assert_eq!(net.node(1).machine.applied.len(), 2);
    net.check_agreement();
}

#[test]
fn a_command_is_chosen_and_committed_everywhere() {
    let mut net = Net::new(3);
    let ticket = net.propose(2, "hello");
    net.deliver_all();
    assert_eq!(net.outcome(2, ticket), Some(&Ok(1)));
    for id in 1..=3 {
        assert_eq!(net.commands(id), vec!["hello"]);
        let status = net.core(id).status();
        assert_eq!(status.commit_index, 1);
        assert_eq!(status.role, consensus_api::Role::Peer);
        assert_eq!(status.leader, None);
    }
}

#[test]
fn the_golden_message_flow_of_one_command() {
    let mut net = Net::new(3);
    net.tracing = true;
    net.propose(1, "x");
    net.deliver_all();
    let expected = [
        "1->2 Prepare b=1.1 slot=1",
        "1->3 Prepare b=1.1 slot=1",
        "2->1 Promise b=1.1 slot=1 highest=0",
        "3->1 Promise b=1.1 slot=1 highest=0",
        "1->2 Accept b=1.1 slot=1 v=[\"x\"]",
        "1->2 Accepted b=1.1 slot=1",
        "1->3 Accept b=1.1 slot=1 v=[\"x\"]",
        "1->3 Accepted b=1.1 slot=1",
        "2->1 Accepted b=1.1 slot=1",
        "2->3 Accepted b=1.1 slot=1",
        "3->1 Accepted b=1.1 slot=1",
        "3->2 Accepted b=1.1 slot=1",
    ];
    assert_eq!(net.trace, expected, "{:#?}", net.trace);
}

#[test]
fn pipelined_proposals_share_messages() {
    let mut net = Net::new(3);
    let tickets: Vec<_> = (0..50)
        .map(|i| {
            let core = net.nodes.get_mut(&1).unwrap().core.as_mut().unwrap();
            core.propose(command(&format!("c{i}"))).unwrap()
        })
        .collect();
    net.process(1);
    assert_eq!(net.queue.len(), 2, "one Prepare per peer for 50 slots");
    net.tracing = true;
    net.deliver_all();
    for (i, ticket) in tickets.iter().enumerate() {
        assert_eq!(net.outcome(1, *ticket), Some(&Ok(i as u64 + 1)));
    }
    assert!(
        net.trace.len() < 20,
        "{} messages for 50 slots",
        net.trace.len()
    );
    assert_eq!(net.commands(3).len(), 50);
}

#[test]
fn proposals_from_every_node_all_commit_once() {
    let mut net = Net::with_config(5, 11, |_| {});
    for round in 0..20 {
        for id in 1..=5 {
            net.propose(id, &format!("n{id}-{round}"));
        }
        // Random delivery order.
        for _ in 0..30 {
            net.deliver_random();
        }
    }
    net.run(300);
    net.check_agreement();
    net.check_no_duplicates();
    for id in 1..=5 {
        assert_eq!(net.commands(id).len(), 100, "node {id}");
    }
}

#[test]
fn a_minority_side_answers_unavailable() {
    let mut net = Net::new(5);
    net.propose(1, "before");
    net.run(5);
    let minority: &[u64] = &[1, 2];
    let majority: &[u64] = &[3, 4, 5];
    let stuck = net.propose(1, "minority");
    let ok = net.propose(3, "majority");
    net.run_partitioned(100, &[minority, majority]);
    assert_eq!(net.outcome(1, stuck), Some(&Err(Rejected::Unavailable)));
    assert_eq!(net.outcome(3, ok), Some(&Ok(2)));
    assert_eq!(
        net.try_propose(2, "again"),
        Err(Rejected::Unavailable),
        "fails fast"
    );
    assert_eq!(net.commands(1), vec!["before"]);
    net.run(100);
    net.check_agreement();
    for id in 1..=5 {
        assert_eq!(net.commands(id), vec!["before", "majority"], "node {id}");
    }
    let after = net.propose(1, "after");
    net.run(5);
    assert_eq!(net.outcome(1, after), Some(&Ok(3)));
}

#[test]
fn a_read_barrier_comes_after_every_acknowledged_write() {
    let mut net = Net::new(3);
    let write = net.propose(1, "w");
    // Node 3 never hears about slot 1 before it is chosen.
    net.deliver_all_losing(|_, to, _| to == 3);
    assert_eq!(net.outcome(1, write), Some(&Ok(1)));
    assert_eq!(net.core(3).status().last_index, 0);
    let read = net.read_barrier(3).expect("read accepted");
    net.deliver_all();
    net.run(5);
    let index = net
        .outcome(3, read)
        .cloned()
        .expect("read finished")
        .expect("read ok");
    assert!(index > 1, "the read point {index} is above the write");
    assert!(net.node(3).machine.applied.len() as u64 >= index);
    assert_eq!(net.commands(3), vec!["w"]);
}

#[test]
fn restarts_replay_the_chosen_log_and_keep_going() {
    let mut net = Net::new(3);
    for i in 0..10 {
        net.propose(1 + i % 3, &format!("c{i}"));
        net.deliver_all();
    }
    for id in 1..=3 {
        net.crash(id);
    }
    for id in 1..=3 {
        net.restart(id);
        // The frontier is persisted lazily (with the next write that is
        // synced anyway): a restart may re-learn the last slots.
        assert!(
            net.node(id).machine.applied.len() >= 9,
            "node {id} re-applies the chosen prefix"
        );
    }
    net.run(30);
    for id in 1..=3 {
        assert_eq!(
            net.node(id).machine.applied.len(),
            10,
            "node {id} learned the rest"
        );
    }
    let ticket = net.propose(2, "after");
    net.run(5);
    assert_eq!(net.outcome(2, ticket), Some(&Ok(11)));
    net.check_agreement();
    net.check_no_duplicates();
    // A restarted node never reuses a ballot: its counter moved on.
    assert!(net.core(2).status().epoch > Ballot::new(1, 2).to_epoch());
}

#[test]
fn a_lagging_node_catches_up_by_snapshot() {
    let mut net = Net::new(3);
    net.crash(3);
    for i in 0..30 {
        net.propose(1, &format!("c{i}"));
        net.deliver_all();
    }
    net.run(2);
    net.compact(1);
    net.compact(2);
    assert_eq!(net.core(1).status().snapshot_index, 30);
    net.restart(3);
    net.run(20);
    assert_eq!(net.node(3).machine.applied.len(), 30);
    assert_eq!(net.core(3).status().snapshot_index, 30);
    let ticket = net.propose(3, "new");
    net.run(5);
    assert_eq!(net.outcome(3, ticket), Some(&Ok(31)));
    net.check_agreement();
    // And the installed snapshot survives a restart.
    net.crash(3);
    net.restart(3);
    assert_eq!(net.node(3).machine.applied.len(), 31);
}

#[test]
fn a_lagging_node_catches_up_by_chosen_values() {
    let mut net = Net::with_config(3, 5, |c| c.batch_entries_max = 7);
    net.crash(3);
    for i in 0..40 {
        net.propose(2, &format!("c{i}"));
    }
    net.run(3);
    net.restart(3);
    net.run(30);
    assert_eq!(net.commands(3).len(), 40);
    net.check_agreement();
}

#[test]
fn the_hard_state_stays_small() {
    let mut net = Net::new(3);
    for round in 0..20 {
        for i in 0..50 {
            net.propose(1 + (i % 3), &format!("r{round}-{i}"));
        }
        net.run(2);
    }
    for id in 1..=3 {
        let hard_state = net.node(id).store.durable().hard_state.clone().unwrap();
        assert!(
            hard_state.len() < 64,
            "node {id}: {} bytes",
            hard_state.len()
        );
        assert_eq!(net.commands(id).len(), 1000);
    }
}

#[test]
fn overload_is_refused() {
    let mut net = Net::with_config(3, 1, |c| c.uncommitted_entries_max = 4);
    for i in 0..4 {
        net.propose(1, &format!("c{i}"));
    }
    assert_eq!(
        net.try_propose(1, "one too many"),
        Err(Rejected::Overloaded)
    );
    net.run(3);
    assert!(net.try_propose(1, "fits again").is_ok());
}

#[test]
fn a_configuration_change_takes_effect_alpha_slots_later() {
    let mut net = Net::new(3);
    net.propose(1, "a");
    net.run(2);
    let ticket = {
        let core = net.nodes.get_mut(&2).unwrap().core.as_mut().unwrap();
        core.change_membership(Membership::new([1, 2])).unwrap()
    };
    net.process(2);
    let core = net.nodes.get_mut(&2).unwrap().core.as_mut().unwrap();
    assert_eq!(
        core.change_membership(Membership::new([1])),
        Err(Rejected::ChangeInProgress)
    );
    net.run(30);
    let result = net.outcome(2, ticket).cloned().expect("change finished");
    let slot = result.expect("change ok");
    assert_eq!(slot, 2);
    for id in 1..=3 {
        let status = net.core(id).status();
        assert!(
            status.commit_index >= slot + paxos::ALPHA - 1,
            "the window was filled"
        );
        assert_eq!(status.membership, Membership::new([1, 2]), "node {id}");
    }
    // Node 3 is out: nodes 1 and 2 alone form the quorum now.
    net.crash(3);
    let after = net.propose(1, "without 3");
    net.run(5);
    assert!(matches!(net.outcome(1, after), Some(Ok(_))));
    net.check_agreement();
}

// Two clients send byte-identical commands to two nodes, which pick the same
// slot. Comparing values would let both proposers believe they won; the
// origin carried with each value tells them apart: one command per slot,
// two slots, two acknowledgements at two different slots.
#[test]
fn identical_commands_from_two_proposers_are_both_committed() {
    let mut net = Net::new(3);
    let first = net.propose(1, "same");
    let second = net.propose(3, "same");
    for _ in 0..200 {
        if !net.deliver_random() {
            break;
        }
    }
    net.run(50);
    net.check_agreement();
    for id in 1..=3 {
        assert_eq!(net.commands(id), vec!["same", "same"], "node {id}");
    }
    let a = net
        .outcome(1, first)
        .cloned()
        .expect("finished")
        .expect("ok");
    let b = net
        .outcome(3, second)
        .cloned()
        .expect("finished")
        .expect("ok");
    assert_ne!(a, b, "each command has its own slot");
}

// The Prepare horizon: an acceptor promises for any slot up to 4 * ALPHA
// above its chosen frontier. A proposer opens slots up to ALPHA above its
// own frontier, so an acceptor that lags it by up to 3 * ALPHA slots still
// takes part in Phase 1 (with one node down, a lagging acceptor may be
// needed for the quorum while it catches up). Beyond the horizon it
// ignores the Prepare and answers with a beacon: its promises stay bounded.
#[test]
fn an_acceptor_promises_up_to_the_prepare_horizon() {
    let (mut core, mut store, _) = acceptor_node();
    let horizon = 4 * paxos::ALPHA;
    let ballot = Ballot::new(1, 2);
    for slot in [paxos::ALPHA + 5, 3 * paxos::ALPHA, horizon] {
        let replies = exchange(&mut core, &mut store, 2, prepare(slot, ballot));
        assert!(
            replies
                .iter()
                .any(|m| matches!(m, Message::Promise(p) if p.slots[0].slot == slot)),
            "slot {slot} (frontier 0): {replies:?}"
        );
    }
    let replies = exchange(&mut core, &mut store, 2, prepare(horizon + 1, ballot));
    assert!(
        !replies.iter().any(|m| matches!(m, Message::Promise(_))),
        "beyond the horizon: {replies:?}"
    );
    assert!(replies.iter().any(|m| matches!(m, Message::Learn(_))));
}

// A Prepare at the ballot already promised (a retransmission after a lost
// Promise, or one overtaken by the Accept that followed it) is promised
// again, not refused, and costs no disk write: the floor is already durable.
#[test]
fn a_repeated_prepare_is_promised_again_without_a_write() {
    let (mut core, mut store, _) = acceptor_node();
    let ballot = Ballot::new(5, 2);
    let replies = exchange(&mut core, &mut store, 2, prepare(4, ballot));
    assert!(matches!(&replies[..], [Message::Promise(_)]));
    for round in ["promised", "accepted"] {
        core.step(2, prepare(4, ballot));
        let ready = core.ready().expect("a reply");
        assert!(
            ready.hard_state.is_none() && !ready.must_sync,
            "{round}: the floor did not rise, nothing to write: {ready:?}"
        );
        match &ready.messages[..] {
            [(2, Message::Promise(p))] => assert_eq!(p.slots[0].ballot, ballot, "{round}"),
            other => panic!("{round}: expected a promise, got {other:?}"),
        }
        assert!(core.ready().is_none());
        if round == "promised" {
            let replies = exchange(&mut core, &mut store, 2, accept(4, ballot, "v"));
            assert!(replies.iter().any(|m| matches!(m, Message::Accepted(_))));
        }
    }
}

// A learner counts `Accepted` notices only for open slots: a late notice
// for a decided slot (below the frontier, or chosen above a gap; here from
// a later proposer that re-proposed the chosen value under a higher ballot,
// as P2c makes it) is not a vote, and malformed ones (slot 0, the zero
// ballot) are dropped. Counting them made the learner ask for values it
// has, or for a value nobody proposed.
#[test]
fn accepted_notices_count_only_for_open_slots() {
    let (mut core, mut store, _) = acceptor_node();
    let zero = step_all(&mut core, &mut store, 2, accepted(&[(4, Ballot::ZERO)]));
    let zero_too = step_all(&mut core, &mut store, 3, accepted(&[(4, Ballot::ZERO)]));
    assert_eq!(asked(&zero), Vec::<u64>::new(), "{zero:?}");
    assert_eq!(asked(&zero_too), Vec::<u64>::new(), "{zero_too:?}");

    let first = Ballot::new(5, 2);
    exchange(&mut core, &mut store, 2, accept(1, first, "v"));
    exchange(&mut core, &mut store, 2, accepted(&[(1, first)]));
    assert_eq!(core.status().commit_index, 1, "slot 1 is chosen");
    let later = Ballot::new(7, 3);
    let mut sent = step_all(&mut core, &mut store, 2, accepted(&[(1, later)]));
    sent.extend(step_all(&mut core, &mut store, 3, accepted(&[(1, later)])));
    assert_eq!(asked(&sent), Vec::<u64>::new(), "{sent:?}");
    assert_eq!(core.status().commit_index, 1);
    // The same for a slot known chosen above a gap (slot 2 is open).
    exchange(&mut core, &mut store, 2, accept(3, first, "w"));
    exchange(&mut core, &mut store, 2, accepted(&[(3, first)]));
    let mut sent = step_all(&mut core, &mut store, 2, accepted(&[(3, later)]));
    sent.extend(step_all(&mut core, &mut store, 3, accepted(&[(3, later)])));
    assert_eq!(asked(&sent), Vec::<u64>::new(), "{sent:?}");
    assert_eq!(core.status().commit_index, 1);
    assert_eq!(core.status().last_index, 3);
}

// Notices are kept up to the Prepare horizon (4 * ALPHA above the
// frontier): a lagging learner that catches up finds a quorum it already
// counted (and asks only for the value). Beyond the horizon they are
// dropped, which keeps the learner's memory bounded.
#[test]
fn accepted_notices_are_kept_up_to_the_prepare_horizon() {
    let (mut core, mut store, _) = acceptor_node();
    let horizon = 4 * paxos::ALPHA;
    let ballot = Ballot::new(9, 3);
    let notice = accepted(&[(horizon, ballot), (horizon + 1, ballot)]);
    step_all(&mut core, &mut store, 2, notice.clone());
    step_all(&mut core, &mut store, 3, notice);
    // The node learns slots 1..=3 * ALPHA + 1 (no-ops): both slots are now
    // within its configuration window.
    let caught_up = 3 * paxos::ALPHA + 1;
    let chosen = Message::Chosen(paxos::Chosen {
        entries: (1..=caught_up)
            .map(|index| paxos::ChosenValue {
                entry: consensus_api::Entry {
                    index,
                    epoch: Ballot::new(1, 2).to_epoch(),
                    payload: Payload::Noop,
                },
                origin: Ballot::ZERO,
            })
            .collect(),
    });
    let sent = step_all(&mut core, &mut store, 2, chosen);
    assert_eq!(core.status().commit_index, caught_up);
    assert_eq!(asked(&sent), vec![horizon], "{:?}", asked(&sent));
}

// One Accept may carry slots of two configurations (the change chosen in
// slot 1 governs slots from 1 + ALPHA on). Each slot's Accepted notice goes
// to the nodes of that slot's configuration: node 4, added by the change,
// hears of slot ALPHA + 1 but not of slot ALPHA.
#[test]
fn accepted_notices_of_one_batch_follow_each_slots_configuration() {
    let (mut core, mut store, _) = acceptor_node();
    let change = Ballot::new(3, 2);
    let chosen = Message::Chosen(paxos::Chosen {
        entries: vec![paxos::ChosenValue {
            entry: consensus_api::Entry {
                index: 1,
                epoch: change.to_epoch(),
                payload: Payload::Membership(Membership::new([1, 2, 3, 4])),
            },
            origin: change,
        }],
    });
    step_all(&mut core, &mut store, 2, chosen);
    assert_eq!(core.status().commit_index, 1);
    let ballot = Ballot::new(5, 2);
    let batch = Message::Accept(Accept {
        slots: [paxos::ALPHA, paxos::ALPHA + 1]
            .into_iter()
            .map(|slot| Proposal {
                slot,
                ballot,
                payload: payload("v"),
                origin: ballot,
            })
            .collect(),
    });
    let sent = step_all(&mut core, &mut store, 2, batch);
    let notices_to = |node: u64| -> Vec<u64> {
        sent.iter()
            .filter(|(to, _)| *to == node)
            .filter_map(|(_, m)| match m {
                Message::Accepted(a) => Some(a.slots.iter().map(|s| s.slot)),
                _ => None,
            })
            .flatten()
            .collect()
    };
    assert_eq!(notices_to(2), vec![paxos::ALPHA, paxos::ALPHA + 1]);
    assert_eq!(notices_to(3), vec![paxos::ALPHA, paxos::ALPHA + 1]);
    assert_eq!(notices_to(4), vec![paxos::ALPHA + 1], "{sent:?}");
}

// Reference: §2.3. A learner that counted a quorum of `Accepted` notices but
// missed the `Accept` itself asks a node that accepted it for the value
// (`Ask`), at once: it does not wait for the peers' beacons to catch up.
#[test]
fn a_learner_that_missed_the_value_asks_for_it() {
    let mut net = Net::new(3);
    net.tracing = true;
    let ticket = net.propose(1, "x");
    net.deliver_all_losing(|_, to, m| to == 3 && matches!(m, Message::Accept(_)));
    assert_eq!(net.outcome(1, ticket), Some(&Ok(1)));
    assert_eq!(net.commands(3), vec!["x"], "{:#?}", net.trace);
    assert!(
        net.trace
            .iter()
            .any(|l| l.starts_with("3->") && l.contains(" Ask ")),
        "{:#?}",
        net.trace
    );
}

/// A node of the five-node cluster `{1..5}` with seed `seed`, started.
fn member_of_five(id: u64, seed: u64) -> (PaxosCore, MemStore) {
    let mut config = CoreConfig::new(id, Membership::new(1..=5));
    config.seed = seed;
    let mut store = MemStore::new();
    let mut core = PaxosCore::restore(config, store.load().unwrap()).unwrap();
    while let Some(ready) = core.ready() {
        store.write(&ready.write_batch()).unwrap();
        store.sync().unwrap();
    }
    (core, store)
}

/// Node 1 learns from the notices of `voters` that slot 1 was chosen under
/// `ballot` without ever seeing the value; returns to whom it sent `Ask`.
fn asked_by_learner(seed: u64, ballot: Ballot, voters: &[u64]) -> Vec<u64> {
    let (mut core, mut store) = member_of_five(1, seed);
    let mut sent = Vec::new();
    for &voter in voters {
        sent.extend(step_all(
            &mut core,
            &mut store,
            voter,
            accepted(&[(1, ballot)]),
        ));
    }
    let asked_to: Vec<u64> = sent
        .iter()
        .filter(|(_, m)| matches!(m, Message::Ask(_)))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(
        asked(&sent),
        vec![1],
        "seed {seed}: the value is asked once"
    );
    core.check_invariants();
    asked_to
}

// Reference: §2.3 (learning a chosen value): "a learner can find out what
// value has been chosen by asking" an acceptor that accepted it. The value
// may be asked of any of them, not only of the ballot's proposer (which
// may be gone): over seeds, the question reaches voters other than the
// owner, and never anyone who did not accept it.
#[test]
fn a_missing_value_is_asked_of_any_node_that_accepted_it() {
    let owner = 5;
    let ballot = Ballot::new(3, owner);
    let voters = [2, 3, 4];
    let mut recipients = std::collections::BTreeSet::new();
    for seed in 1..=20 {
        for to in asked_by_learner(seed, ballot, &voters) {
            assert!(
                voters.contains(&to) || to == owner,
                "seed {seed}: asked node {to}, which neither accepted nor proposed the value"
            );
            recipients.insert(to);
        }
    }
    assert!(
        recipients.iter().any(|to| *to != owner),
        "the value was only ever asked of its proposer: {recipients:?}"
    );
}

// The same when the learner owns the ballot but lost the value (a proposer
// that restarted and forgot its proposal): it asks the voters, never
// itself.
#[test]
fn a_proposer_that_lost_its_value_asks_the_voters_not_itself() {
    let ballot = Ballot::new(3, 1);
    for seed in 1..=20 {
        for to in asked_by_learner(seed, ballot, &[2, 3, 4]) {
            assert!(
                [2, 3, 4].contains(&to),
                "seed {seed}: asked node {to} (node 1 asked itself or a non-voter)"
            );
        }
    }
}

/// The value `x` proposed by node 1 in slot 1 is chosen at ballot 1.1, but
/// node 1 (which holds the client's ticket) stores it without its origin
/// when it learns that, and still acknowledges the command at slot 1.
///
/// 1. Node 1 runs Phase 1 and 2 of `x` at 1.1 with node 2 only (node 3
///    hears nothing). Nodes 1 and 2 accept: `x` is chosen at 1.1, with
///    origin 1.1. Node 2's `Accepted` notice to node 1 is held back, every
///    other notice is lost: nobody knows it is chosen yet.
/// 2. Node 2 restarts: it keeps `(1.1, x)` on disk but forgets the origin
///    (origins live in memory only).
/// 3. Node 3 proposes `y` in what it believes is a fresh slot 1 at 1.3. Its
///    Prepare reaches node 2 only, which reports `(1.1, x)` with no origin;
///    node 3 must adopt `x` (P2c) and re-proposes it at 1.3 with origin
///    zero (`y` moves on).
/// 4. Node 1 accepts that re-proposal: it now stores `(1.3, x)` without
///    origin (an `Accept` sets the stored origin to the proposal's, here
///    none). Its own notice of 1.3 is one vote: no quorum at 1.3.
/// 5. Node 2's held notice for 1.1 arrives: with its own vote, node 1
///    counts a quorum at 1.1, whose value and origin 1.1 its instance still
///    has. `learn_chosen` keeps the stored `(1.3, x)` (higher ballot, same
///    value) and must record the origin 1.1 it now knows: with it the
///    proposer sees its own command chosen (`Ok(1)`); without it the
///    ticket would end `OutcomeUnknown`.
#[test]
fn a_proposer_that_accepted_its_value_again_without_origin_still_acknowledges_it() {
    let mut net = Net::new(3);
    net.tracing = true;
    let x = net.propose(1, "x");
    // Phase 1 and 2 at 1.1 with node 2 only.
    net.drop_where(|_, to, _| to == 3);
    net.deliver_where(|from, to, m| from == 1 && to == 2 && matches!(m, Message::Prepare(_)));
    net.deliver_where(|from, to, m| from == 2 && to == 1 && matches!(m, Message::Promise(_)));
    net.deliver_where(|from, to, m| from == 1 && to == 2 && matches!(m, Message::Accept(_)));
    let held =
        net.take_where(|from, to, m| from == 2 && to == 1 && matches!(m, Message::Accepted(_)));
    assert_eq!(held.len(), 1, "{:#?}", net.trace);
    net.drop_all();
    let first = Ballot::new(1, 1);
    for id in [1, 2] {
        let stored = &net.node(id).store.durable().entries[&1];
        assert_eq!(
            (stored.epoch, &stored.payload),
            (first.to_epoch(), &payload("x"))
        );
    }
    assert_eq!(net.outcome(1, x), None, "nobody knows slot 1 is chosen");

    // Node 2 forgets the origin.
    net.restart(2);

    // Node 3 re-proposes x at 1.3, without origin.
    let y = net.propose(3, "y");
    net.deliver_where(|from, to, m| from == 3 && to == 2 && matches!(m, Message::Prepare(_)));
    net.deliver_where(|from, to, m| from == 2 && to == 3 && matches!(m, Message::Promise(_)));
    let again = Ballot::new(1, 3);
    let reproposed = net.take_where(|from, to, m| {
        from == 3
            && to == 1
            && matches!(m, Message::Accept(a) if a.slots.iter().any(|p| p.slot == 1))
    });
    match &reproposed[..] {
        [(_, _, Message::Accept(a))] => {
            let proposal = a.slots.iter().find(|p| p.slot == 1).expect("slot 1");
            assert_eq!(proposal.ballot, again);
            assert_eq!(proposal.payload, payload("x"), "node 3 adopted x");
            assert!(proposal.origin.is_zero(), "node 2 forgot the origin");
        }
        other => panic!("expected node 3's Accept for slot 1: {other:?}"),
    }
    // Everything else node 3 sent waits.
    let later = net.take_queue();
    for (from, to, message) in reproposed {
        net.deliver(from, to, message);
    }
    assert_eq!(
        net.node(1).store.durable().entries[&1].epoch,
        again.to_epoch(),
        "node 1 accepted the re-proposal"
    );
    assert_eq!(net.outcome(1, x), None);
    // Node 1's own notice of 1.3 (to itself) is one vote: no quorum yet.
    net.drop_all();

    // The held notice: slot 1 is chosen at 1.1.
    for (from, to, message) in held {
        net.deliver(from, to, message);
    }
    assert_eq!(
        net.outcome(1, x),
        Some(&Ok(1)),
        "node 1 recognises its own command: {:#?}",
        net.trace
    );

    net.queue.extend(later);
    net.run(100);
    net.check_agreement();
    net.check_no_duplicates();
    for id in 1..=3 {
        assert_eq!(net.commands(id), vec!["x", "y"], "node {id}");
    }
    assert_eq!(net.outcome(3, y), Some(&Ok(2)));
}

/// A learner fills in an origin it lacks but never replaces one it knows.
///
/// Among correct nodes a chosen value reported with a known origin and the
/// same value stored here under a ballot at least as high carry the same
/// origin whenever both know it: every proposal above a chosen ballot
/// adopts the chosen value with the origin reported to it (or none, from
/// an acceptor that restarted), and a fresh origin is only ever given to a
/// value no quorum reported. So only a peer that lies, or a bug, can report
/// another origin. This test plays that peer:
///
/// 1. Node 1 proposes `x`; nodes 1 and 2 accept it at 1.1 (origin 1.1) and
///    every `Accepted` notice is lost.
/// 2. Node 2 tells node 1 that slot 1 is chosen with `x` at 1.1, but with
///    origin 1.2.
/// 3. Node 1 keeps the origin 1.1 it knows: its command is the one chosen
///    (`Ok(1)`), applied once. Taking the peer's origin would requeue `x`
///    as another client's identical command and apply it twice.
#[test]
fn a_learner_keeps_the_origin_it_knows_when_a_peer_reports_another() {
    let mut net = Net::new(3);
    let x = net.propose(1, "x");
    net.drop_where(|_, to, _| to == 3);
    net.deliver_where(|from, to, m| from == 1 && to == 2 && matches!(m, Message::Prepare(_)));
    net.deliver_where(|from, to, m| from == 2 && to == 1 && matches!(m, Message::Promise(_)));
    net.deliver_where(|from, to, m| from == 1 && to == 2 && matches!(m, Message::Accept(_)));
    net.drop_all();
    let first = Ballot::new(1, 1);
    assert_eq!(
        net.node(1).store.durable().entries[&1].epoch,
        first.to_epoch()
    );
    assert_eq!(net.outcome(1, x), None, "nobody knows slot 1 is chosen");

    let claim = Message::Chosen(paxos::Chosen {
        entries: vec![paxos::ChosenValue {
            entry: consensus_api::Entry {
                index: 1,
                epoch: first.to_epoch(),
                payload: payload("x"),
            },
            origin: Ballot::new(1, 2),
        }],
    });
    net.deliver(2, 1, claim);
    assert_eq!(net.outcome(1, x), Some(&Ok(1)), "node 1 kept origin 1.1");
    net.run(100);
    net.check_agreement();
    net.check_no_duplicates();
    for id in 1..=3 {
        assert_eq!(net.commands(id), vec!["x"], "node {id}");
    }
}
