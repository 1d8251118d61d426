//! Unit tests per ZAB phase, on the in-test harness (`common`). Each cites
//! the part of Junqueira-Reed-Serafini "Zab: High-performance broadcast for
//! primary-backup systems" (DSN 2011) or of ZooKeeper it checks.

mod common;

use common::{config, Net, ZabNet};
use consensus_api::{Bytes, Core, Entry, InitialState, Membership, Payload, Rejected, Role};
use zab::{Ack, AckEpoch, FollowerInfo, HardState, Message, ServerState, Vote, ZabCore, Zxid};

fn entry(index: u64, epoch: u64, text: &str) -> Entry {
    Entry {
        index,
        epoch,
        payload: Payload::Command(Bytes::from(text.to_string())),
    }
}

fn state(accepted: u64, current: u64, entries: Vec<Entry>) -> InitialState {
    InitialState {
        hard_state: Some(
            HardState {
                accepted_epoch: accepted,
                current_epoch: current,
            }
            .encode(),
        ),
        snapshot: None,
        entries,
    }
}

fn net_from(states: Vec<InitialState>) -> Net {
    let n = states.len() as u64;
    let voters: Vec<u64> = (1..=n).collect();
    let mut net = Net::empty();
    for (i, s) in states.into_iter().enumerate() {
        net.add_node(config(i as u64 + 1, &voters), s);
    }
    net
}

// ---------------------------------------------------------------- Phase 0

/// Reference: FLE `totalOrderPredicate`; with equal credentials the highest
/// id wins.
#[test]
fn election_fresh_cluster_elects_the_highest_id() {
    let mut net = Net::new(3);
    assert_eq!(net.elect(), 3);
    for id in [1, 2] {
        assert_eq!(net.status(id).role, Role::Follower);
        assert_eq!(net.status(id).leader, Some(3));
    }
}

/// Reference: FLE orders votes by (epoch, zxid, id): a longer history beats
/// a higher id.
#[test]
fn election_prefers_the_higher_zxid_over_the_higher_id() {
    let mut net = net_from(vec![
        state(1, 1, vec![entry(1, 1, "a"), entry(2, 1, "b")]),
        state(1, 1, vec![entry(1, 1, "a")]),
        state(1, 1, vec![entry(1, 1, "a")]),
    ]);
    assert_eq!(net.elect(), 1);
}

/// Reference: FLE orders votes by currentEpoch before zxid.
#[test]
fn election_prefers_the_higher_current_epoch_over_the_higher_zxid() {
    let mut net = net_from(vec![
        state(
            1,
            1,
            vec![entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")],
        ),
        state(2, 2, vec![entry(1, 1, "a"), entry(2, 1, "b")]),
        state(1, 1, vec![entry(1, 1, "a")]),
    ]);
    assert_eq!(net.elect(), 2);
    // Node 1's extra proposal (1:3) never reached a quorum of epoch 2's
    // history: it is truncated.
    net.run(20);
    assert_eq!(net.core(1).last_zxid(), net.core(2).last_zxid());
}

/// A settled server answers a looking one with its vote; a restarted server
/// joins the established leader instead of starting a new epoch.
#[test]
fn election_late_joiner_follows_the_established_leader() {
    let mut net = Net::new(5);
    let leader = net.elect();
    let epoch = net.status(leader).epoch;
    let joiner = if leader == 1 { 2 } else { 1 };
    net.crash(joiner);
    net.restart(joiner);
    assert!(
        net.run_until(100, |n| n.status(joiner).role == Role::Follower
            && n.core(joiner).following_epoch() == Some(epoch))
    );
    assert_eq!(net.status(joiner).leader, Some(leader));
    assert_eq!(net.leader(), Some(leader), "no new election");
    assert_eq!(net.status(leader).epoch, epoch);
}

// ---------------------------------------------------------------- Phase 1

/// Reference: JRS IV-B Phase 1: the new epoch is larger than the
/// acceptedEpoch of every member of the quorum.
#[test]
fn discovery_new_epoch_exceeds_every_accepted_epoch_of_the_quorum() {
    let mut net = net_from(vec![
        state(7, 1, vec![entry(1, 1, "a")]),
        state(2, 1, vec![entry(1, 1, "a")]),
        state(4, 1, vec![entry(1, 1, "a"), entry(2, 1, "b")]),
    ]);
    let leader = net.elect();
    assert_eq!(leader, 3);
    let epoch = net.status(leader).epoch;
    assert_eq!(
        epoch, 8,
        "max(acceptedEpoch) + 1 over a quorum that includes node 1"
    );
    for id in 1..=3 {
        assert_eq!(net.core(id).hard_state().accepted_epoch, 8);
        assert_eq!(
            net.core(id).hard_state().current_epoch,
            8,
            "NEWLEADER acked"
        );
    }
}

/// Reference: JRS IV-B Phase 1 / ZooKeeper `Learner.registerWithLeader`:
/// acceptedEpoch is durable before ACKEPOCH leaves.
#[test]
fn discovery_accepted_epoch_is_durable_before_ackepoch() {
    let mut core = ZabCore::restore(config(2, &[1, 2, 3]), InitialState::default()).unwrap();
    drain(&mut core);
    // Node 2 follows node 3 (votes of 1 and 3 for 3 in round 1).
    for from in [1, 3] {
        core.step(
            from,
            Message::Vote(Vote {
                leader: 3,
                zxid: Zxid::ZERO,
                epoch: 0,
                round: 1,
                state: ServerState::Looking,
                config: Membership::new([1, 2, 3]),
                config_version: Zxid::ZERO,
            }),
        );
    }
    for _ in 0..10 {
        core.tick();
    }
    drain(&mut core);
    assert_eq!(core.status().leader, Some(3));
    core.step(3, Message::LeaderInfo(zab::LeaderInfo { epoch: 5 }));
    let ready = core.ready().expect("output");
    let hard = HardState::decode(ready.hard_state.as_ref().expect("hard state written")).unwrap();
    assert_eq!(hard.accepted_epoch, 5);
    assert!(ready.must_sync);
    assert!(ready.messages.iter().any(|(to, m)| *to == 3
        && matches!(
            m,
            Message::AckEpoch(AckEpoch {
                epoch: 5,
                fresh: true,
                ..
            })
        )));
    // The same epoch again (a duplicate) is acked but an older one is not.
    core.step(3, Message::LeaderInfo(zab::LeaderInfo { epoch: 5 }));
    let again = core.ready().expect("re-ack");
    assert!(again.hard_state.is_none());
    assert!(again
        .messages
        .iter()
        .any(|(_, m)| matches!(m, Message::AckEpoch(_))));
}

/// Reference: ZooKeeper `Leader.waitForEpochAck`: a prospective leader
/// behind a member of its quorum abandons.
#[test]
fn discovery_leader_behind_a_follower_abandons() {
    let mut core = ZabCore::restore(config(1, &[1, 2, 3]), InitialState::default()).unwrap();
    drain(&mut core);
    for from in [2, 3] {
        core.step(
            from,
            Message::Vote(Vote {
                leader: 1,
                zxid: Zxid::ZERO,
                epoch: 0,
                round: 1,
                state: ServerState::Looking,
                config: Membership::new([1, 2, 3]),
                config_version: Zxid::ZERO,
            }),
        );
    }
    for _ in 0..10 {
        core.tick();
    }
    drain(&mut core);
    assert_eq!(core.state_name(), "leading discovery epoch=0");
    core.step(2, Message::FollowerInfo(FollowerInfo { accepted_epoch: 3 }));
    let ready = core.ready().unwrap();
    assert!(ready
        .messages
        .iter()
        .any(|(to, m)| *to == 2 && matches!(m, Message::LeaderInfo(zab::LeaderInfo { epoch: 4 }))));
    assert_eq!(core.hard_state().accepted_epoch, 4);
    core.step(
        2,
        Message::AckEpoch(AckEpoch {
            epoch: 4,
            current_epoch: 3,
            last_zxid: Zxid::new(3, 9),
            fresh: true,
        }),
    );
    assert!(
        core.state_name().starts_with("looking"),
        "{}",
        core.state_name()
    );
}

/// Reference: ZooKeeper sends `currentEpoch = -1` for an epoch accepted
/// before; such an ack does not count toward the quorum.
#[test]
fn discovery_stale_epoch_acks_do_not_count() {
    let mut core = ZabCore::restore(config(1, &[1, 2, 3, 4, 5]), InitialState::default()).unwrap();
    drain(&mut core);
    for from in [2, 3] {
        core.step(
            from,
            Message::Vote(Vote {
                leader: 1,
                zxid: Zxid::ZERO,
                epoch: 0,
                round: 1,
                state: ServerState::Looking,
                config: Membership::new([1, 2, 3]),
                config_version: Zxid::ZERO,
            }),
        );
    }
    for _ in 0..10 {
        core.tick();
    }
    for from in [2, 3] {
        core.step(
            from,
            Message::FollowerInfo(FollowerInfo { accepted_epoch: 0 }),
        );
    }
    drain(&mut core);
    core.step(
        2,
        Message::AckEpoch(AckEpoch {
            epoch: 1,
            current_epoch: 0,
            last_zxid: Zxid::ZERO,
            fresh: false,
        }),
    );
    core.step(
        3,
        Message::AckEpoch(AckEpoch {
            epoch: 1,
            current_epoch: 0,
            last_zxid: Zxid::ZERO,
            fresh: true,
        }),
    );
    assert_eq!(
        core.state_name(),
        "leading epoch-ack epoch=1",
        "1 + 3 is not a quorum of 5"
    );
}

fn drain(core: &mut ZabCore) {
    while core.ready().is_some() {}
}

// ---------------------------------------------------------------- Phase 2

/// Reference: JRS IV-B Phase 2, ZooKeeper `LearnerHandler.syncFollower`
/// (TRUNC): a proposal of an abandoned epoch that reached only the old
/// leader is truncated when it rejoins.
#[test]
fn sync_trunc_removes_proposals_of_an_abandoned_epoch() {
    let mut net = Net::new(3);
    let old = net.elect();
    let t = net.propose(old, "committed").unwrap();
    net.run(3);
    assert_eq!(net.outcome(old, t), Some(&Ok(1)));
    net.isolate(old);
    let lost = net.propose(old, "lost").unwrap();
    assert_eq!(net.core(old).last_zxid().counter(), 2);
    let lost_zxid = net.core(old).last_zxid();
    assert!(net.run_until(200, |n| n.leader().is_some_and(|l| l != old)));
    let new = net.leader().unwrap();
    let t2 = net.propose(new, "new-epoch").unwrap();
    net.run(3);
    assert_eq!(net.outcome(new, t2), Some(&Ok(2)));
    assert_eq!(
        net.outcome(old, lost),
        Some(&Err(Rejected::OutcomeUnknown { hint: None })),
        "the old leader gave up with the proposal pending"
    );
    net.tracing = true;
    net.heal();
    assert!(net.run_until(200, |n| n.core(old).last_zxid() == n.core(new).last_zxid()));
    assert!(
        net.trace
            .iter()
            .any(|l| l.starts_with(&format!("{new}->{old} Trunc"))),
        "{:#?}",
        net.trace
    );
    assert!(
        !net.nodes[&old].machine.truncations.is_empty(),
        "TRUNC is a truncate_from"
    );
    let stored = net.stored(old);
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[1].payload,
        Payload::Command(Bytes::from("new-epoch"))
    );
    assert!(net.core(old).zxid_at(2) != Some(lost_zxid));
    assert_eq!(net.machine(old), vec!["committed", "new-epoch"]);
}

/// DIFF: a follower that missed proposals gets exactly those.
#[test]
fn sync_diff_sends_the_missing_proposals() {
    let mut net = Net::new(3);
    let leader = net.elect();
    let lagging = if leader == 1 { 2 } else { 1 };
    net.crash(lagging);
    for i in 0..5 {
        net.propose(leader, &format!("v{i}")).unwrap();
        net.run(1);
    }
    net.run(3);
    net.tracing = true;
    net.restart(lagging);
    assert!(net.run_until(100, |n| n.status(lagging).applied_index == 5));
    let diffs: Vec<&String> = net.trace.iter().filter(|l| l.contains(" Diff ")).collect();
    assert!(!diffs.is_empty(), "{:#?}", net.trace);
    assert!(!net
        .trace
        .iter()
        .any(|l| l.contains(" Snap ") || l.contains(" Trunc ")));
    assert_eq!(net.machine(lagging), net.machine(leader));
}

/// SNAP: a follower behind the leader's compaction point gets the snapshot
/// in CRC-checked chunks, then DIFF.
#[test]
fn sync_snap_transfers_the_snapshot_in_chunks() {
    let mut net = Net::with_config(3, |c| c.snapshot_chunk_bytes = 16);
    let leader = net.elect();
    let lagging = if leader == 1 { 2 } else { 1 };
    net.crash(lagging);
    for i in 0..6 {
        net.propose(leader, &format!("value-{i}")).unwrap();
        net.run(1);
    }
    net.run(3);
    net.compact(leader);
    assert_eq!(net.status(leader).snapshot_index, 6);
    net.propose(leader, "after-snapshot").unwrap();
    net.run(2);
    net.tracing = true;
    net.restart(lagging);
    assert!(net.run_until(200, |n| n.status(lagging).applied_index == 7));
    let chunks = net.trace.iter().filter(|l| l.contains(" Snap ")).count();
    assert!(chunks > 3, "several chunks: {:#?}", net.trace);
    assert_eq!(net.nodes[&lagging].machine.snapshots_installed, 1);
    assert_eq!(net.machine(lagging), net.machine(leader));
    assert_eq!(net.status(lagging).snapshot_index, 6);
    // The follower's store holds the snapshot and the entry after it.
    let durable = net.nodes[&lagging].store.durable().clone();
    assert_eq!(durable.snapshot.as_ref().map(|s| s.index), Some(6));
    assert_eq!(durable.entries.keys().copied().collect::<Vec<_>>(), vec![7]);
}

/// NEWLEADER is acked only after the synchronized history and currentEpoch
/// are durable; the leader is established by a quorum of those acks.
#[test]
fn sync_leader_is_established_only_after_a_quorum_acks_newleader() {
    let mut net = Net::new(3);
    // Run elections but hold back every AckNewLeader.
    let mut synchronizing = false;
    for _ in 0..200 {
        net.run_ticks_dropping(|m| matches!(m, Message::AckNewLeader(_)));
        assert_eq!(net.leader(), None, "no leader without NEWLEADER acks");
        synchronizing |= (1..=3).any(|id| net.core(id).state_name().starts_with("leading sync"));
    }
    assert!(
        synchronizing,
        "a prospective leader reached synchronization"
    );
    // Followers did make the epoch current (they persisted NEWLEADER).
    assert!((1..=3).any(|id| net.core(id).hard_state().current_epoch > 0));
    net.elect();
}

/// Reference: ZooKeeper `LearnerHandler.syncFollower` (TRUNC) and JRS IV-B
/// Phase 2: the leader keeps listening to a follower's ACKs while it
/// synchronizes. A follower that truncated reports its new last zxid in an
/// ACK, and the leader plans the DIFF and NEWLEADER from it. Here that
/// follower is needed for the quorum (the third node is down), so a leader
/// that ignored ACKs until established would stay in synchronization until
/// it gave up and a new election ran.
#[test]
fn sync_acks_count_while_the_leader_synchronizes() {
    let mut net = net_from(vec![
        state(1, 1, vec![entry(1, 1, "a")]),
        // Proposals 1:2 and 1:3 of an abandoned epoch-1 leader.
        state(
            1,
            1,
            vec![entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "d")],
        ),
        // The epoch-2 history: 1:1 then 2:1.
        state(2, 2, vec![entry(1, 1, "a"), entry(2, 2, "c")]),
    ]);
    net.crash(1);
    net.tracing = true;
    assert!(
        net.run_until(100, |n| n.leader() == Some(3)),
        "node 3 is established with node 2's ACK after TRUNC: {}; {:#?}",
        net.core(3).state_name(),
        net.trace
    );
    assert!(
        net.trace.iter().any(|l| l.starts_with("3->2 Trunc")),
        "{:#?}",
        net.trace
    );
    // In the epoch it started synchronizing with: not after giving up and
    // running a new election (where node 2's ACKEPOCH, not an ACK, reports
    // the truncated history).
    assert_eq!(
        net.status(3).epoch,
        3,
        "established only in a later epoch: {:#?}",
        net.trace
    );
    assert_eq!(
        net.trace
            .iter()
            .filter(|l| l.contains(" LeaderInfo "))
            .count(),
        1,
        "{:#?}",
        net.trace
    );
    assert!(net.run_until(20, |n| n.status(2).last_index == 2));
    assert_eq!(net.stored(2), vec![entry(1, 1, "a"), entry(2, 2, "c")]);
}

// ---------------------------------------------------------------- Phase 3

/// Reference: JRS IV-B Phase 3: commit only after a quorum acked.
#[test]
fn broadcast_commits_only_after_a_quorum_ack() {
    let mut net = Net::new(5);
    let leader = net.elect();
    let ticket = net.propose(leader, "x").unwrap();
    net.process(leader);
    // Deliver the proposals but only one ack: 2 of 5 is not a quorum.
    let mut acks = Vec::new();
    for (from, to, m) in net.take_queue() {
        if to == leader {
            continue;
        }
        net.deliver(from, to, m);
    }
    for (from, to, m) in net.take_queue() {
        if matches!(m, Message::Ack(_)) {
            acks.push((from, to, m));
        }
    }
    assert_eq!(acks.len(), 4);
    net.deliver(acks[0].0, acks[0].1, acks[0].2.clone());
    assert_eq!(net.status(leader).commit_index, 0, "leader + 1 of 5");
    assert!(net.outcome(leader, ticket).is_none());
    net.deliver(acks[1].0, acks[1].1, acks[1].2.clone());
    assert_eq!(net.status(leader).commit_index, 1, "leader + 2 of 5");
    assert_eq!(net.outcome(leader, ticket), Some(&Ok(1)));
}

/// The leader refuses new proposals only while too many are uncommitted:
/// committed ones do not count.
#[test]
fn broadcast_the_uncommitted_limit_counts_only_uncommitted_proposals() {
    let mut net = Net::with_config(3, |c| c.uncommitted_entries_max = 2);
    let leader = net.elect();
    for i in 0..6 {
        net.propose(leader, &format!("c{i}"))
            .expect("everything proposed before was committed");
        net.deliver_all();
    }
    assert_eq!(net.status(leader).commit_index, 6);
}

/// Reference: JRS IV-B Phase 3: a follower commits on its leader's COMMIT
/// of its epoch, never on one from another node.
#[test]
fn broadcast_a_commit_from_anyone_but_the_leader_is_ignored() {
    let mut net = Net::new(3);
    let leader = net.elect();
    let others: Vec<_> = (1..=3).filter(|id| *id != leader).collect();
    let (follower, other) = (others[0], others[1]);
    net.propose(leader, "x").unwrap();
    net.process(leader);
    // Proposals to the followers, then their acks to the leader.
    for _ in 0..2 {
        for (from, to, m) in net.take_queue() {
            net.deliver(from, to, m);
        }
    }
    assert_eq!(net.status(leader).commit_index, 1);
    let commit = net
        .take_queue()
        .into_iter()
        .find(|(_, to, m)| *to == follower && matches!(m, Message::Commit(_)))
        .map(|(_, _, m)| m)
        .expect("the leader sends COMMIT");
    net.deliver(other, follower, commit.clone());
    assert_eq!(
        net.status(follower).commit_index,
        0,
        "committed on a COMMIT from a node that is not its leader"
    );
    net.deliver(leader, follower, commit);
    assert_eq!(net.status(follower).commit_index, 1);
}

/// Reference: JRS IV-B Phase 3: only ACKs of the leader's own epoch count
/// towards a commit quorum.
#[test]
fn broadcast_acks_of_another_epoch_do_not_count() {
    let mut net = Net::new(3);
    let leader = net.elect();
    let epoch = net.status(leader).epoch;
    net.propose(leader, "x").unwrap();
    net.process(leader);
    for (from, to, m) in net.take_queue() {
        net.deliver(from, to, m);
    }
    let acks: Vec<(u64, u64, Ack)> = net
        .take_queue()
        .into_iter()
        .filter_map(|(from, to, m)| match m {
            Message::Ack(ack) => Some((from, to, ack)),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 2);
    for (from, to, ack) in &acks {
        let other_epoch = Ack {
            epoch: epoch + 1,
            ..ack.clone()
        };
        net.deliver(*from, *to, Message::Ack(other_epoch));
    }
    assert_eq!(
        net.status(leader).commit_index,
        0,
        "ACKs of another epoch counted"
    );
    for (from, to, ack) in acks {
        net.deliver(from, to, Message::Ack(ack));
    }
    assert_eq!(net.status(leader).commit_index, 1);
}

/// Reference: JRS III "total order" / "local primary order": followers
/// deliver in zxid order even when proposals arrive reordered, duplicated
/// or lost.
#[test]
fn broadcast_delivers_in_zxid_order_despite_reordering() {
    let mut net = Net::with_config(3, |c| c.batch_entries_max = 1);
    let leader = net.elect();
    for i in 0..4 {
        net.propose(leader, &format!("p{i}")).unwrap();
    }
    net.process(leader);
    let mut queue = net.take_queue();
    let proposals = queue
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::Proposal(_)))
        .count();
    assert_eq!(proposals, 8, "one message per proposal per follower");
    queue.reverse();
    let duplicate = queue[0].clone();
    queue.push(duplicate);
    for (from, to, m) in queue {
        net.deliver(from, to, m);
    }
    net.deliver_all();
    net.run(15);
    for id in 1..=3 {
        assert_eq!(net.machine(id), vec!["p0", "p1", "p2", "p3"], "node {id}");
    }
}

/// The leader's zxids: epoch in the high half, counters from 1 per epoch.
#[test]
fn broadcast_zxids_count_from_one_in_each_epoch() {
    let mut net = Net::new(3);
    let leader = net.elect();
    let epoch = net.status(leader).epoch;
    net.propose(leader, "a").unwrap();
    net.propose(leader, "b").unwrap();
    net.run(3);
    assert_eq!(net.core(leader).last_zxid(), Zxid::new(epoch, 2));
    assert_eq!(net.core(leader).commit_zxid(), Zxid::new(epoch, 2));
    let follower = if leader == 1 { 2 } else { 1 };
    assert_eq!(net.core(follower).zxid_at(1), Some(Zxid::new(epoch, 1)));
}

/// Requests at the wrong place are refused with what the caller needs next.
#[test]
fn broadcast_rejections() {
    let mut net = Net::with_config(3, |c| c.uncommitted_entries_max = 2);
    let leader = net.elect();
    let follower = if leader == 1 { 2 } else { 1 };
    assert_eq!(
        net.propose(follower, "x"),
        Err(Rejected::NotLeader { hint: Some(leader) })
    );
    net.isolate(leader);
    net.propose(leader, "a").unwrap();
    net.propose(leader, "b").unwrap();
    assert_eq!(net.propose(leader, "c"), Err(Rejected::Overloaded));
    // The isolated leader loses its quorum and abandons leadership.
    assert!(net.run_until(100, |n| n.status(leader).role != Role::Leader));
    assert_eq!(net.propose(leader, "d"), Err(Rejected::Unavailable));
}

// ---------------------------------------------------------------- reads

/// `sync()`: a read barrier completes once the node applied what the leader
/// had committed, on the leader and on a follower.
#[test]
fn read_barrier_on_leader_and_follower() {
    let mut net = Net::new(3);
    let leader = net.elect();
    net.propose(leader, "a").unwrap();
    net.run(3);
    let follower = if leader == 1 { 2 } else { 1 };
    let at_leader = net.core_mut(leader).read_barrier().unwrap();
    let at_follower = net.core_mut(follower).read_barrier().unwrap();
    net.process(leader);
    net.process(follower);
    net.run(3);
    assert_eq!(net.outcome(leader, at_leader), Some(&Ok(1)));
    assert_eq!(net.outcome(follower, at_follower), Some(&Ok(1)));
    // An isolated leader cannot confirm its leadership: no answer, then
    // Unavailable once it abandons.
    net.isolate(leader);
    let stuck = net.core_mut(leader).read_barrier().unwrap();
    net.process(leader);
    net.run(2);
    assert!(net.outcome(leader, stuck).is_none());
    assert!(net.run_until(100, |n| n.outcome(leader, stuck).is_some()));
    assert_eq!(
        net.outcome(leader, stuck),
        Some(&Err(Rejected::Unavailable))
    );
}

// ---------------------------------------------------------------- recovery

#[test]
fn crash_and_restart_keeps_committed_history() {
    let mut net = Net::new(3);
    let leader = net.elect();
    for i in 0..3 {
        net.propose(leader, &format!("v{i}")).unwrap();
    }
    net.run(3);
    for id in 1..=3 {
        net.crash(id);
    }
    for id in 1..=3 {
        net.restart(id);
    }
    let leader = net.elect();
    net.propose(leader, "after").unwrap();
    net.run(5);
    for id in 1..=3 {
        assert_eq!(
            net.machine(id),
            vec!["v0", "v1", "v2", "after"],
            "node {id}"
        );
    }
}

// ---------------------------------------------------------------- reconfig

/// ZooKeeper 3.5 dynamic reconfiguration: the change is committed by quorums
/// of old and new; a removed leader steps down after it commits.
#[test]
fn reconfig_adds_a_node_and_removes_the_leader() {
    let mut net = Net::new(3);
    let mut c4 = config(4, &[1, 2, 3, 4]);
    c4.seed = 4;
    net.add_node(c4, InitialState::default());
    let leader = net.elect();
    assert_eq!(net.leader(), Some(leader));
    let ticket = net
        .core_mut(leader)
        .change_membership(Membership::new([1, 2, 3, 4]))
        .unwrap();
    net.process(leader);
    assert_eq!(
        net.core_mut(leader)
            .change_membership(Membership::new([1, 2])),
        Err(Rejected::ChangeInProgress)
    );
    assert!(net.status(leader).membership.is_joint());
    assert!(net.run_until(200, |n| n.outcome(leader, ticket).is_some()));
    assert!(matches!(net.outcome(leader, ticket), Some(Ok(_))));
    assert_eq!(net.status(leader).membership, Membership::new([1, 2, 3, 4]));
    let joined = net.run_until(200, |n| n.status(4).role == Role::Follower);
    assert!(joined);
    net.propose(leader, "with-4").unwrap();
    net.run(5);
    assert_eq!(net.machine(4), vec!["with-4"]);
    // Remove the leader.
    let rest: Vec<u64> = (1..=4).filter(|id| *id != leader).collect();
    let ticket = net
        .core_mut(leader)
        .change_membership(Membership::new(rest.clone()))
        .unwrap();
    net.process(leader);
    assert!(net.run_until(300, |n| n.outcome(leader, ticket).is_some()));
    assert!(matches!(net.outcome(leader, ticket), Some(Ok(_))));
    assert!(net.run_until(300, |n| n.leader().is_some_and(|l| l != leader)));
    let new = net.leader().unwrap();
    assert!(rest.contains(&new));
    net.propose(new, "without-old-leader").unwrap();
    net.run(5);
    for id in &rest {
        assert_eq!(
            net.machine(*id),
            vec!["with-4", "without-old-leader"],
            "node {id}"
        );
    }
}

#[test]
fn reconfig_rejects_invalid_targets() {
    let mut net = Net::new(3);
    let leader = net.elect();
    let joint = Membership::new([1, 2]).joint_to(&Membership::new([2, 3]));
    assert!(matches!(
        net.core_mut(leader).change_membership(joint),
        Err(Rejected::InvalidMembership(_))
    ));
    assert!(matches!(
        net.core_mut(leader).change_membership(Membership::new([])),
        Err(Rejected::InvalidMembership(_))
    ));
}

/// Learners (ZooKeeper observers) find the leader through the voters'
/// answers, are synchronized and receive proposals, but never count toward
/// a quorum.
#[test]
fn learners_follow_but_never_count() {
    let membership = Membership::with_learners([1, 2, 3], [4]);
    let mut net = Net::with_config(3, |c| {
        c.initial_membership = Membership::with_learners([1, 2, 3], [4])
    });
    let mut c4 = config(4, &[1, 2, 3]);
    c4.initial_membership = membership;
    net.add_node(c4, InitialState::default());
    let leader = net.elect();
    assert!(net.run_until(100, |n| n.status(4).role == Role::Learner
        && n.status(4).leader == Some(leader)));
    net.propose(leader, "seen-by-learner").unwrap();
    net.run(5);
    assert_eq!(net.machine(4), vec!["seen-by-learner"]);
    // Leader + learner is not a quorum.
    let voters: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    for id in &voters {
        net.crash(*id);
    }
    let ticket = net.propose(leader, "needs-voters").unwrap();
    net.run(5);
    assert!(net.outcome(leader, ticket).is_none());
    assert_eq!(net.status(leader).commit_index, 1);
}

/// Regression (simulator seed 240, `--faults all`, found by the catch-up
/// invariant): a follower that already holds the prefix a SNAP covers must
/// not install it, since that would drop proposals after it which it has
/// acked and the leader counted toward commits.
#[test]
fn sync_snap_never_drops_acknowledged_proposals() {
    let mut net = Net::new(3);
    let leader = net.elect();
    let follower = if leader == 1 { 2 } else { 1 };
    // Seven proposals reach the follower, which acks them all, but it never
    // hears a COMMIT (nor a PING carrying one): its commit point stays 0.
    for i in 0..7 {
        net.propose(leader, &format!("v{i}")).unwrap();
    }
    for _ in 0..200 {
        let Some((from, to, m)) = net.queue.pop_front() else {
            break;
        };
        let hides_commit = to == follower && matches!(m, Message::Commit(_) | Message::Ping(_));
        if !hides_commit {
            net.deliver(from, to, m);
        }
    }
    assert_eq!(net.status(follower).last_index, 7);
    assert_eq!(net.status(follower).commit_index, 0);
    assert_eq!(net.status(leader).commit_index, 7);
    // The leader snapshots at 5 and (as after a go-back below its
    // compaction point) sends that snapshot to the follower.
    let epoch = net.core(leader).following_epoch().unwrap();
    let data = common::encode_machine(&net.nodes[&leader].machine.commands[..5].to_vec());
    let snap = zab::Snap {
        epoch,
        zxid: net.core(leader).zxid_at(5).unwrap(),
        index: 5,
        membership: Membership::new([1, 2, 3]),
        config_zxid: Zxid::ZERO,
        offset: 0,
        total_bytes: data.len() as u64,
        checksum: crc32c::crc32c(&data),
        data,
    };
    net.tracing = true;
    net.deliver(leader, follower, Message::Snap(snap));
    assert_eq!(net.status(follower).last_index, 7, "acked proposals kept");
    assert!(net.nodes[&follower].machine.truncations.is_empty());
    assert_eq!(net.nodes[&follower].machine.snapshots_installed, 0);
    assert_eq!(net.stored(follower).len(), 7);
    assert!(
        net.trace
            .iter()
            .any(|l| l.starts_with(&format!("{follower}->{leader} Ack"))),
        "the follower reports its last zxid instead: {:?}",
        net.trace
    );
    net.run(5);
    net.propose(leader, "v7").unwrap();
    net.run(5);
    assert_eq!(net.status(follower).applied_index, 8);
}
