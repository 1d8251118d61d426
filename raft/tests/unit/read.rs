//! Linearizable reads: ReadIndex and lease reads (thesis §6.4).

use consensus_api::{Core, Rejected, Role};
use raft::{Message, ReadMode};

use crate::harness::{Network, RaftNet};

// Reference: thesis section 6.4
// A read barrier finishes with the commit index once a quorum answered a
// heartbeat round that started after the read arrived, not before.
#[test]
fn read_index_waits_for_a_heartbeat_quorum() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a").expect("accepted");
    net.deliver_all();
    let ticket = net.core_mut(1).read_barrier().expect("leader serves reads");
    net.process(1);
    assert_eq!(
        net.outcome(1, ticket),
        None,
        "not before the heartbeat round"
    );
    let heartbeats = net
        .queue
        .iter()
        .filter(|(f, _, m)| *f == 1 && matches!(m, Message::Heartbeat(_)))
        .count();
    assert_eq!(heartbeats, 2, "one round to both followers");
    net.deliver_all();
    assert_eq!(net.outcome(1, ticket), Some(&Ok(2)));
}

// Reference: thesis section 6.4 (a leader partitioned away cannot confirm
// its leadership): the read never succeeds on the minority.
#[test]
fn a_partitioned_leader_cannot_serve_reads() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(1);
    let ticket = net
        .core_mut(1)
        .read_barrier()
        .expect("accepted before check-quorum notices");
    net.process(1);
    for _ in 0..12 {
        net.tick(1);
        net.deliver_all();
    }
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(
        net.outcome(1, ticket),
        Some(&Err(Rejected::OutcomeUnknown { hint: None }))
    );
    assert_eq!(
        net.core_mut(1).read_barrier(),
        Err(Rejected::NotLeader { hint: None })
    );
}

// Reference: thesis section 6.4 step 1 ("if the leader has not yet marked an
// entry from its current term committed, it waits until it has done so")
#[test]
fn a_new_leader_serves_reads_only_after_committing_its_noop() {
    // Elected, but no AppendEntries has landed yet.
    let mut fresh = Network::new(3);
    while fresh.status(1).role != Role::Candidate {
        fresh.core_mut(1).tick();
    }
    fresh.process(1);
    fresh.deliver_matching(|_, _, m| {
        matches!(m, Message::RequestVote(_) | Message::RequestVoteResponse(_))
    });
    assert_eq!(fresh.status(1).role, Role::Leader);
    assert_eq!(fresh.status(1).commit_index, 0);
    let ticket = fresh.core_mut(1).read_barrier().expect("accepted");
    fresh.process(1);
    fresh.deliver_matching(|_, _, m| {
        matches!(m, Message::Heartbeat(_) | Message::HeartbeatResponse(_))
    });
    assert_eq!(
        fresh.outcome(1, ticket),
        None,
        "the term has no committed entry yet"
    );
    fresh.deliver_all();
    assert_eq!(
        fresh.outcome(1, ticket),
        Some(&Ok(1)),
        "read index = the no-op"
    );
}

// Reference: thesis section 6.4.1 (lease reads, off by default)
// Inside a lease backed by a heartbeat quorum the leader answers at once,
// without a message round; after the lease runs out it needs a round again.
#[test]
fn lease_reads_answer_immediately_inside_the_lease() {
    let mut net = Network::new(3);
    for id in 1..=3 {
        net.core_mut(id).set_read_mode(ReadMode::Lease);
    }
    assert_eq!(net.core(1).read_mode(), ReadMode::Lease);
    net.tick_all(10);
    net.elect(1);
    net.tick(1);
    net.tick(1);
    net.deliver_all();
    let ticket = net.core_mut(1).read_barrier().expect("accepted");
    net.process(1);
    assert_eq!(
        net.outcome(1, ticket),
        Some(&Ok(1)),
        "inside the lease: no round needed"
    );
    assert!(net.queue.is_empty());
    // The followers stop answering: the lease runs out, reads wait.
    net.isolate(1);
    for _ in 0..9 {
        net.tick(1);
    }
    net.queue.clear();
    let ticket = net.core_mut(1).read_barrier();
    match ticket {
        Ok(ticket) => {
            net.process(1);
            assert_eq!(net.outcome(1, ticket), None, "the lease has expired");
        }
        Err(rejected) => assert_eq!(rejected, Rejected::Unavailable),
    }
}

// Followers do not serve read barriers.
#[test]
fn followers_redirect_reads() {
    let mut net = Network::new(3);
    net.elect(1);
    assert_eq!(
        net.core_mut(3).read_barrier(),
        Err(Rejected::NotLeader { hint: Some(1) })
    );
}

// Reference: thesis section 6.4.1. A lease read is safe while no other
// leader can exist: a lease runs from the moment the confirming heartbeat
// round was sent, for the minimum election timeout less a margin for clock
// drift (a tenth, plus one tick): 10 - 2 = 8 ticks here. Not a tick longer
// (a voter could already have granted a vote), and not needlessly shorter.
// Heartbeats every 4 ticks, so the fast-refusal window (2 * 4 + 1 = 9)
// outlasts the lease and cannot hide its end.
#[test]
fn a_lease_lasts_the_minimum_election_timeout_less_the_drift_margin() {
    let mut net = Network::with_config(3, |c| c.heartbeat_interval_ticks = 4);
    for id in 1..=3 {
        net.core_mut(id).set_read_mode(ReadMode::Lease);
    }
    net.tick_all(10);
    net.elect(1);
    net.deliver_all();
    // Tick until a heartbeat round leaves, then let a quorum confirm it.
    let mut waited = 0;
    loop {
        net.tick(1);
        let sent = net
            .queue
            .iter()
            .any(|(from, _, m)| *from == 1 && matches!(m, Message::Heartbeat(_)));
        net.deliver_all();
        if sent {
            break;
        }
        waited += 1;
        assert!(waited < 10, "no heartbeat");
    }
    net.isolate(1);
    net.queue.clear();
    let lease = 10 - (10 / 10 + 1);
    let mut served = 0;
    for tick in 0..=lease + 1 {
        if tick > 0 {
            net.tick(1);
        }
        let Ok(ticket) = net.core_mut(1).read_barrier() else {
            break;
        };
        net.process(1);
        net.queue.clear();
        if net.outcome(1, ticket).is_none() {
            break;
        }
        served = tick + 1;
    }
    assert_eq!(
        served, lease,
        "reads answered from the lease during {lease} ticks after its round was sent"
    );
}

// Reference: thesis section 6.4, ReadIndex step 3. A heartbeat round that
// was already on its way when a read arrived proves nothing about the
// moment of that read (a newer leader may have committed since it left):
// the read waits for a round sent after it. And in ReadIndex mode (the
// default) a recent quorum is never used as a lease.
#[test]
fn a_read_waits_for_a_round_sent_after_it_and_never_uses_a_lease() {
    let mut net = Network::new(3);
    net.elect(1);
    net.deliver_all();
    // A confirmed round: in lease mode this would open a lease.
    let first = net.core_mut(1).read_barrier().expect("leader serves reads");
    net.process(1);
    net.deliver_all();
    assert!(
        net.outcome(1, first).is_some(),
        "the first read is answered"
    );

    // Read A starts a round; read B arrives while that round is out.
    let a = net.core_mut(1).read_barrier().expect("leader serves reads");
    net.process(1);
    assert_eq!(net.outcome(1, a), None, "no lease in ReadIndex mode");
    let in_flight: Vec<_> = net.queue.drain(..).collect();
    let ticket = net.core_mut(1).read_barrier().expect("leader serves reads");
    net.process(1);
    assert_eq!(net.outcome(1, ticket), None, "no lease in ReadIndex mode");
    let after: Vec<_> = net.queue.drain(..).collect();
    // The round sent before the read is answered first: not enough.
    for (from, to, message) in in_flight {
        net.deliver(from, to, message);
    }
    net.deliver_all();
    assert!(
        matches!(net.outcome(1, a), Some(Ok(_))),
        "A's round confirms A"
    );
    assert_eq!(
        net.outcome(1, ticket),
        None,
        "a round sent before read B does not confirm B"
    );
    for (from, to, message) in after {
        net.deliver(from, to, message);
    }
    net.deliver_all();
    assert!(
        matches!(net.outcome(1, ticket), Some(Ok(_))),
        "the round sent after the read confirms it"
    );
}
