//! Replication and commitment rules, one test per rule.

use std::collections::BTreeMap;

use consensus_api::{Core, Entry, InitialState, NodeId, Payload, Rejected, Role};
use raft::{AppendEntries, AppendOutcome, Message};

use crate::harness::{entry, log_with_terms, stored, Network, RaftNet};

fn append(term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    Message::AppendEntries(AppendEntries {
        term,
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        entries,
        leader_commit: commit,
    })
}

fn append_answers(net: &Network, from: NodeId) -> Vec<AppendOutcome> {
    net.queue
        .iter()
        .filter(|(f, _, _)| *f == from)
        .filter_map(|(_, _, m)| match m {
            Message::AppendEntriesResponse(r) => Some(r.outcome.clone()),
            _ => None,
        })
        .collect()
}

fn single_follower(terms: &[u64], term: u64) -> Network {
    let states: BTreeMap<NodeId, InitialState> =
        [(2, stored(term, None, log_with_terms(terms)))].into();
    Network::from_states(&[1, 2, 3], states, |_| {})
}

// Reference: section 5.3
// The leader appends a command, replicates it, commits it once a majority
// stores it, and every node applies it exactly once, in order.
#[test]
fn leader_replicates_commits_and_everyone_applies() {
    let mut net = Network::new(3);
    net.elect(1);
    let ticket = net.propose(1, "a").expect("leader accepts");
    net.deliver_all();
    assert_eq!(net.outcome(1, ticket), Some(&Ok(2)), "index 1 is the no-op");
    net.run(3);
    for id in 1..=3 {
        assert_eq!(net.applied_commands(id), vec!["a"]);
        assert_eq!(net.status(id).commit_index, 2);
    }
    net.check_applied_agree();
}

// Liveness, not safety (etcd's leader does the same): when the commit index
// moves, every follower is told at once, so followers apply — and serve
// reads from their replica — one round trip after the commit, without
// waiting for the next heartbeat (no tick happens here).
#[test]
fn followers_learn_a_commit_without_waiting_for_a_heartbeat() {
    let mut net = Network::new(3);
    net.elect(1);
    net.run(3);
    let ticket = net.propose(1, "a").expect("leader accepts");
    net.deliver_all();
    assert_eq!(net.outcome(1, ticket), Some(&Ok(2)));
    for id in 2..=3 {
        assert_eq!(net.status(id).commit_index, 2, "node {id} without a tick");
        assert_eq!(net.applied_commands(id), vec!["a"]);
    }
}

// Reference: section 5.3
// "If a follower's log is inconsistent with the leader's, the AppendEntries
// consistency check will fail": with a conflict hint (the term at
// prevLogIndex and the first index of that term, or last index + 1).
#[test]
fn follower_rejects_a_mismatched_prev_with_a_conflict_hint() {
    let mut net = single_follower(&[1, 1, 2, 2], 3);
    net.deliver(1, 2, append(3, (6, 3), vec![], 0));
    net.deliver(1, 2, append(3, (4, 3), vec![], 0));
    net.deliver(1, 2, append(3, (2, 1), vec![], 0));
    assert_eq!(
        append_answers(&net, 2),
        vec![
            AppendOutcome::Conflict {
                prev_log_index: 6,
                conflict_term: 0,
                conflict_index: 5
            },
            AppendOutcome::Conflict {
                prev_log_index: 4,
                conflict_term: 2,
                conflict_index: 3
            },
            AppendOutcome::Matched { match_index: 2 },
        ]
    );
    assert_eq!(
        net.status(2).last_index,
        4,
        "a matching probe truncates nothing"
    );
}

// Reference: section 5.3
// "If an existing entry conflicts with a new one (same index but different
// terms), delete the existing entry and all that follow it" — and the
// truncation goes to the store before the new entries.
#[test]
fn follower_overwrites_a_conflicting_suffix() {
    let mut net = single_follower(&[1, 1, 2, 2], 3);
    net.deliver(1, 2, append(3, (2, 1), vec![entry(3, 3)], 0));
    assert_eq!(net.stored_log(2), vec![(1, 1), (2, 1), (3, 3)]);
    let ready = net.node(2).machine.readies.last().expect("ready");
    assert_eq!(ready.truncate_from, Some(3));
    assert_eq!(ready.append, vec![entry(3, 3)]);
    assert_eq!(
        append_answers(&net, 2),
        vec![AppendOutcome::Matched { match_index: 3 }]
    );
}

// Reference: section 5.3 (and Figure 2 step 3: only *conflicting* entries
// are deleted): a stale or duplicated AppendEntries never shortens the log.
#[test]
fn stale_appends_do_not_truncate() {
    let mut net = single_follower(&[1, 1, 1, 1], 1);
    net.deliver(1, 2, append(1, (1, 1), vec![entry(2, 1)], 0));
    assert_eq!(net.status(2).last_index, 4);
    assert_eq!(
        append_answers(&net, 2),
        vec![AppendOutcome::Matched { match_index: 2 }]
    );
}

// Reference: section 5.3
// "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index
// of last new entry)": never beyond what this message proved to match.
#[test]
fn follower_commit_is_bounded_by_the_last_new_entry() {
    let mut net = single_follower(&[1, 1, 1, 1], 1);
    net.deliver(1, 2, append(1, (1, 1), vec![entry(2, 1)], 4));
    assert_eq!(net.status(2).commit_index, 2);
    assert_eq!(net.node(2).machine.applied.len(), 2);
    net.deliver(1, 2, append(1, (4, 1), vec![], 3));
    assert_eq!(net.status(2).commit_index, 3);
    net.deliver(1, 2, append(1, (1, 1), vec![], 1));
    assert_eq!(net.status(2).commit_index, 3, "commit never goes back");
}

/// Stage (c) of Figure 8 on five nodes: S1 leads term 4 with index 2 of
/// term 2 stored on S1, S2, S3 (a majority) but its own entry 3@4 only on
/// S1; S5 holds 2@3.
fn figure_8_stage_c() -> Network {
    let states: BTreeMap<NodeId, InitialState> = [
        (1, stored(3, None, log_with_terms(&[1, 2]))),
        (2, stored(3, None, log_with_terms(&[1, 2]))),
        (3, stored(3, None, log_with_terms(&[1]))),
        (4, stored(3, None, log_with_terms(&[1]))),
        (5, stored(3, None, log_with_terms(&[1, 3]))),
    ]
    .into();
    let mut net = Network::from_states(&[1, 2, 3, 4, 5], states, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    // S1 is elected in term 4 (S5, with a later last term, refuses).
    while net.status(1).role == Role::Follower {
        net.core_mut(1).tick();
    }
    net.process(1);
    net.deliver_matching(|_, _, m| {
        matches!(m, Message::RequestVote(_) | Message::RequestVoteResponse(_))
    });
    assert_eq!(net.status(1).role, Role::Leader);
    assert_eq!(net.status(1).epoch, 4);
    net.queue.clear();
    // S1 replicates 2@2 (and only that) to S2 and S3.
    for follower in [2, 3] {
        net.deliver(1, follower, append(4, (1, 1), vec![entry(2, 2)], 0));
        net.deliver_matching(|from, to, m| {
            from == follower && to == 1 && matches!(m, Message::AppendEntriesResponse(_))
        });
    }
    net.queue.clear();
    net
}

// Reference: section 5.4.2, Figure 8 (c) and (d)
// An entry of an earlier term stored on a majority is NOT committed by
// counting replicas: S5 may still be elected and overwrite it.
#[test]
fn figure_8_older_term_entry_on_a_majority_is_not_committed() {
    let mut net = figure_8_stage_c();
    assert_eq!(
        net.status(1).commit_index,
        0,
        "2@2 is on a majority but must not commit"
    );
    assert!(net.node(1).machine.applied.is_empty());
    // (d): S1 crashes; S5 is elected with votes from S2, S3, S4 and
    // overwrites index 2 everywhere.
    net.isolate(1);
    net.campaign(5);
    assert_eq!(net.status(5).role, Role::Leader);
    net.run(5);
    for id in 2..=5 {
        assert_eq!(net.core(id).status().commit_index, 3);
        let applied: Vec<(u64, u64)> = net
            .node(id)
            .machine
            .applied
            .iter()
            .map(|e| (e.index, e.epoch))
            .collect();
        assert_eq!(applied, vec![(1, 1), (2, 3), (3, 5)], "node {id}");
    }
    net.heal();
    net.run(20);
    assert_eq!(net.stored_log(1)[1], (2, 3), "S1's 2@2 was overwritten");
    net.check_applied_agree();
}

// Reference: section 5.4.2, Figure 8 (e)
// Once S1 replicates an entry of its own term to a majority, that entry and
// every earlier one commit, and S5 can no longer be elected.
#[test]
fn figure_8_current_term_entry_commits_older_entries_indirectly() {
    let mut net = figure_8_stage_c();
    for follower in [2, 3] {
        net.deliver(1, follower, append(4, (2, 2), vec![entry(3, 4)], 0));
        net.deliver_matching(|from, to, m| {
            from == follower && to == 1 && matches!(m, Message::AppendEntriesResponse(_))
        });
    }
    assert_eq!(
        net.status(1).commit_index,
        3,
        "3@4 on a majority commits 1..=3"
    );
    let applied: Vec<(u64, u64)> = net
        .node(1)
        .machine
        .applied
        .iter()
        .map(|e| (e.index, e.epoch))
        .collect();
    assert_eq!(applied, vec![(1, 1), (2, 2), (3, 4)]);
    net.isolate(1);
    net.queue.clear();
    net.campaign(5);
    assert_ne!(
        net.status(5).role,
        Role::Leader,
        "S2 and S3 refuse S5's older log"
    );
}

// Reference: section 5.3 ("the follower can include the term of the
// conflicting entry and the first index it stores for that term")
// A follower whose divergent suffix spans 3 terms and 120 entries is
// repaired in 4 AppendEntries round trips (one per divergent term, plus the
// matching one), not ~100.
#[test]
fn conflict_hints_backtrack_in_o_terms_round_trips() {
    let mut leader_terms = vec![1; 3];
    leader_terms.extend(vec![4; 50]);
    leader_terms.extend(vec![6; 50]);
    let mut follower_terms = vec![1; 3];
    follower_terms.extend(vec![2; 40]);
    follower_terms.extend(vec![3; 40]);
    follower_terms.extend(vec![5; 40]);
    let states: BTreeMap<NodeId, InitialState> = [
        (1, stored(6, None, log_with_terms(&leader_terms))),
        (2, stored(6, None, log_with_terms(&follower_terms))),
        (3, stored(6, None, log_with_terms(&leader_terms))),
    ]
    .into();
    let mut net = Network::from_states(&[1, 2, 3], states, |c| c.batch_entries_max = 1000);
    net.elect(1);
    let rejections = net.count_delivered(|from, to, m| {
        from == 2
            && to == 1
            && matches!(m, Message::AppendEntriesResponse(r) if matches!(r.outcome, AppendOutcome::Conflict { .. }))
    });
    let appends = net.count_delivered(|from, to, m| {
        from == 1 && to == 2 && matches!(m, Message::AppendEntries(_))
    });
    assert_eq!(rejections, 3, "one rejection per divergent term (5, 3, 2)");
    assert_eq!(appends, 4, "three probes, then one batch with everything");
    assert_eq!(
        net.stored_log(2),
        net.stored_log(1),
        "the follower's log is repaired"
    );
    // A follower that is merely behind is found in one round trip.
    let states: BTreeMap<NodeId, InitialState> = [
        (1, stored(6, None, log_with_terms(&leader_terms))),
        (2, stored(6, None, log_with_terms(&leader_terms[..10]))),
        (3, stored(6, None, log_with_terms(&leader_terms))),
    ]
    .into();
    let mut net = Network::from_states(&[1, 2, 3], states, |_| {});
    net.elect(1);
    let rejections = net.count_delivered(|from, _, m| {
        from == 2 && matches!(m, Message::AppendEntriesResponse(r) if matches!(r.outcome, AppendOutcome::Conflict { .. }))
    });
    assert_eq!(rejections, 1);
    assert_eq!(net.stored_log(2), net.stored_log(1));
}

// Pipelining: once a follower is known to match, the leader streams batches
// without waiting for acknowledgements, at most `inflight_messages_max` of
// them.
#[test]
fn pipelining_is_bounded_by_the_inflight_window() {
    let mut net = Network::with_config(3, |c| {
        c.inflight_messages_max = 2;
        c.batch_entries_max = 1;
    });
    net.elect(1);
    net.run(2);
    assert_eq!(net.core(1).peer_state(2), Some("replicate"));
    for i in 0..5 {
        net.propose(1, &format!("c{i}")).expect("accepted");
    }
    let to_two = net
        .queue
        .iter()
        .filter(|(f, t, m)| {
            *f == 1 && *t == 2 && matches!(m, Message::AppendEntries(a) if !a.entries.is_empty())
        })
        .count();
    assert_eq!(to_two, 2, "two batches in flight, the rest waits");
    net.run(10);
    assert_eq!(net.applied_commands(2), vec!["c0", "c1", "c2", "c3", "c4"]);
}

// Batching: one AppendEntries carries many entries, up to the byte limit
// (but always at least one).
#[test]
fn batches_are_limited_in_bytes() {
    for (bytes_max, expected_batches) in [(100usize, 4usize), (200, 2), (1 << 20, 1)] {
        let mut net = Network::with_config(3, |c| c.batch_bytes_max = bytes_max);
        net.elect(1);
        net.run(2);
        let payload = "x".repeat(40);
        for _ in 0..4 {
            net.core_mut(1)
                .propose(crate::harness::command(&payload))
                .expect("accepted");
        }
        net.process(1);
        let batches: Vec<usize> = net
            .queue
            .iter()
            .filter(|(f, t, _)| *f == 1 && *t == 2)
            .filter_map(|(_, _, m)| match m {
                Message::AppendEntries(a) if !a.entries.is_empty() => Some(a.entries.len()),
                _ => None,
            })
            .collect();
        assert_eq!(
            batches.len(),
            expected_batches,
            "bytes_max {bytes_max}: {batches:?}"
        );
        assert_eq!(batches.iter().sum::<usize>(), 4);
    }
}

// Minority behaviour: a follower answers NotLeader with a hint; a leader
// beyond `uncommitted_entries_max` answers Overloaded.
#[test]
fn followers_redirect_and_leaders_push_back() {
    let mut net = Network::with_config(3, |c| c.uncommitted_entries_max = 3);
    net.elect(1);
    assert_eq!(
        net.propose(2, "x"),
        Err(Rejected::NotLeader { hint: Some(1) })
    );
    net.partition(&[&[1], &[2, 3]]);
    for i in 0..3 {
        net.propose(1, &format!("p{i}")).expect("within the limit");
    }
    assert_eq!(net.propose(1, "one too many"), Err(Rejected::Overloaded));
}

// A deposed leader's pending proposals finish with OutcomeUnknown: they
// were appended and may or may not commit under the next leader.
#[test]
fn pending_proposals_finish_outcome_unknown_when_leadership_is_lost() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(1);
    let ticket = net
        .propose(1, "lost?")
        .expect("accepted before the leader notices");
    for _ in 0..12 {
        net.tick(1);
    }
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(
        net.outcome(1, ticket),
        Some(&Err(Rejected::OutcomeUnknown { hint: None }))
    );
}

// The seed's partition scenario at unit scale: the minority leader commits
// nothing; after the heal its uncommitted tail is overwritten and nothing
// committed is lost.
#[test]
fn minority_tail_is_overwritten_after_heal() {
    let mut net = Network::new(5);
    net.elect(1);
    net.propose(1, "before").expect("accepted");
    net.run(3);
    net.partition(&[&[1, 2], &[3, 4, 5]]);
    let minority = net
        .propose(1, "minority")
        .expect("accepted before check-quorum");
    net.run(3);
    assert_eq!(
        net.outcome(1, minority),
        None,
        "nothing commits on the minority"
    );
    net.run(60);
    let leader = net.leader().expect("the majority elects a leader");
    assert!([3, 4, 5].contains(&leader));
    net.propose(leader, "majority").expect("accepted");
    net.run(5);
    net.heal();
    net.run(30);
    for id in 1..=5 {
        let applied = net.applied_commands(id);
        assert!(
            !applied.contains(&"minority".to_string()),
            "node {id} applied the minority write"
        );
        assert!(applied.contains(&"before".to_string()));
    }
    net.check_applied_agree();
    assert!(net
        .node(1)
        .store
        .durable()
        .entries
        .values()
        .all(|e| e.payload != Payload::Command(crate::harness::command("minority"))));
    assert_eq!(
        net.outcome(1, minority),
        Some(&Err(Rejected::OutcomeUnknown { hint: None }))
    );
}

// Figure 2's AppendEntries carries the entries that follow
// `prev_log_index`, densely; an entry at index u64::MAX could never be
// followed (its index + 1 overflows). A batch that breaks either is
// malformed: dropped whole, with no answer and nothing appended.
#[test]
fn malformed_append_entries_are_dropped_without_an_answer() {
    let mut net = Network::new(3);
    net.elect(1);
    net.queue.clear();
    let term = net.status(1).epoch;
    let last = net.status(2).last_index;
    // The new leader's no-op ends node 2's log.
    let last_term = term;
    let cases = [
        (
            "a hole in the indexes",
            (last, last_term),
            vec![entry(last + 1, term), entry(last + 3, term)],
        ),
        (
            "an entry at the last index",
            (u64::MAX - 1, term),
            vec![entry(u64::MAX, term)],
        ),
    ];
    for (what, prev, entries) in cases {
        net.deliver(1, 2, append(term, prev, entries, 0));
        assert!(
            net.queue.iter().all(|(from, _, _)| *from != 2),
            "{what}: no answer"
        );
        assert_eq!(net.status(2).last_index, last, "{what}: nothing appended");
    }
    // The same node takes a well-formed batch.
    net.deliver(
        1,
        2,
        append(term, (last, last_term), vec![entry(last + 1, term)], 0),
    );
    assert_eq!(net.status(2).last_index, last + 1);
}
