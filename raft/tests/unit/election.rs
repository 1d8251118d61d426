//! Election rules, one test per rule (in the style of etcd-raft's and
//! raft-rs's paper tests).

use std::collections::BTreeMap;

use consensus_api::{Core, InitialState, NodeId, Rejected, Role};
use raft::{HardState, Message, RaftCore, ReadMode, RequestVote, RequestVoteResponse};

use crate::harness::{config, log_with_terms, stored, Network, RaftNet};

fn request_vote(term: u64, last_log_index: u64, last_log_term: u64) -> Message {
    Message::RequestVote(RequestVote {
        term,
        last_log_index,
        last_log_term,
        pre_vote: false,
        transfer: false,
    })
}

fn vote_answers(net: &Network, from: NodeId) -> Vec<RequestVoteResponse> {
    net.queue
        .iter()
        .filter(|(f, _, _)| *f == from)
        .filter_map(|(_, _, m)| match m {
            Message::RequestVoteResponse(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Ticks node `id` alone until it leaves the follower role (a
/// pre-candidate or candidate), at most `max` ticks.
fn tick_until_it_campaigns(net: &mut Network, id: NodeId, max: u64) {
    for _ in 0..max {
        if net.status(id).role != Role::Follower {
            return;
        }
        net.tick(id);
    }
    assert_ne!(
        net.status(id).role,
        Role::Follower,
        "node {id} never campaigned"
    );
}

// Reference: section 5.2
// "If a follower receives no communication over a period of time called the
// election timeout, then it assumes there is no viable leader and begins an
// election": it increments its term, votes for itself and asks every other
// voter, with the term and vote durable before the requests leave.
#[test]
fn follower_times_out_and_starts_an_election() {
    let mut net = Network::with_config(3, |c| c.pre_vote = false);
    let mut ticks = 0;
    while net.status(1).role == Role::Follower {
        net.tick(1);
        ticks += 1;
        assert!(
            ticks <= 20,
            "the election timeout is below election_timeout_ticks_max"
        );
    }
    assert!(
        ticks >= 10,
        "the election timeout is at least election_timeout_ticks_min"
    );
    let status = net.status(1);
    assert_eq!(status.role, Role::Candidate);
    assert_eq!(status.epoch, 1);
    let ready = net.node(1).machine.readies.last().expect("a ready");
    let hard_state = HardState::decode(ready.hard_state.as_ref().expect("term and vote persisted"))
        .expect("decodes");
    assert_eq!(
        hard_state,
        HardState {
            term: 1,
            vote: Some(1)
        }
    );
    let mut targets: Vec<NodeId> = ready
        .messages
        .iter()
        .filter(|(_, m)| matches!(m, Message::RequestVote(r) if r.term == 1 && !r.pre_vote))
        .map(|(to, _)| *to)
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, vec![2, 3], "RequestVote goes to every other voter");
}

// Reference: section 5.2
// "Raft uses randomized election timeouts to ensure that split votes are
// rare": different seeds give different timeouts, all in [min, max).
#[test]
fn election_timeouts_are_randomized_within_bounds() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..30 {
        let mut net = Network::with_config(3, |c| {
            c.seed = seed * 7919 + c.id;
            c.pre_vote = false;
        });
        let mut ticks = 0;
        while net.status(1).role == Role::Follower {
            net.tick(1);
            ticks += 1;
        }
        assert!(
            (10..=20).contains(&ticks),
            "timeout {ticks} outside [10, 20)"
        );
        seen.insert(ticks);
    }
    assert!(seen.len() >= 5, "timeouts are spread out: {seen:?}");
}

// Reference: section 5.2
// "A candidate wins an election if it receives votes from a majority of the
// servers in the full cluster for the same term."
#[test]
fn candidate_with_a_majority_becomes_leader() {
    let mut net = Network::new(5);
    net.elect(1);
    assert_eq!(net.status(1).epoch, 1);
    for id in 2..=5 {
        let status = net.status(id);
        assert_eq!(status.role, Role::Follower);
        assert_eq!(status.leader, Some(1));
        assert_eq!(status.epoch, 1);
    }
}

// Reference: section 5.2
// A candidate that collects a majority of refusals cannot win and goes back
// to being a follower (here: every other voter has a more up-to-date log).
#[test]
fn candidate_with_a_majority_of_refusals_steps_down() {
    let states: BTreeMap<NodeId, InitialState> = [
        (1, stored(1, None, log_with_terms(&[1]))),
        (2, stored(2, None, log_with_terms(&[1, 2]))),
        (3, stored(2, None, log_with_terms(&[1, 2]))),
    ]
    .into();
    let mut net = Network::from_states(&[1, 2, 3], states, |c| c.pre_vote = false);
    net.campaign(1);
    let status = net.status(1);
    assert_eq!(status.role, Role::Follower);
    assert_eq!(status.epoch, 2, "it did campaign in term 2");
    assert_eq!(status.leader, None);
}

// Reference: section 5.2
// "Each server will vote for at most one candidate in a given term, on a
// first-come-first-served basis."
#[test]
fn a_voter_grants_at_most_one_vote_per_term() {
    let mut net = Network::with_config(3, |c| c.pre_vote = false);
    net.deliver(1, 3, request_vote(1, 0, 0));
    net.deliver(2, 3, request_vote(1, 0, 0));
    net.deliver(1, 3, request_vote(1, 0, 0));
    let answers = vote_answers(&net, 3);
    let granted: Vec<bool> = answers.iter().map(|r| r.granted).collect();
    assert_eq!(
        granted,
        vec![true, false, true],
        "one vote, repeated to the same candidate"
    );
}

// Reference: section 5.4.1
// "If the logs have last entries with different terms, then the log with
// the later term is more up-to-date. If the logs end with the same term,
// then whichever log is longer is more up-to-date." A voter refuses a
// candidate whose log is less up-to-date than its own.
#[test]
fn votes_are_refused_to_candidates_with_stale_logs() {
    let cases: [(u64, u64, bool); 6] = [
        // (candidate last index, candidate last term, granted)
        (4, 1, false), // older last term, longer log
        (2, 2, false), // same last term, shorter log
        (3, 2, true),  // identical
        (4, 2, true),  // same term, longer
        (1, 3, true),  // newer last term, shorter
        (0, 0, false), // empty log
    ];
    for (index, term, granted) in cases {
        let states = [(1, stored(2, None, log_with_terms(&[1, 1, 2])))].into();
        let mut net = Network::from_states(&[1, 2, 3], states, |c| c.pre_vote = false);
        net.deliver(2, 1, request_vote(3, index, term));
        let answers = vote_answers(&net, 1);
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0].granted, granted,
            "candidate log ending {index}/{term}"
        );
    }
}

// Reference: section 5.2, Figure 2 ("persistent state ... updated on stable
// storage before responding to RPCs"): a granted vote is in the hard state
// of the same Ready as the answer, and survives a restart.
#[test]
fn a_vote_is_durable_before_it_is_sent_and_survives_restart() {
    let mut net = Network::with_config(3, |c| c.pre_vote = false);
    net.deliver(1, 3, request_vote(1, 0, 0));
    let ready = net
        .node(3)
        .machine
        .readies
        .iter()
        .find(|r| {
            r.messages
                .iter()
                .any(|(_, m)| matches!(m, Message::RequestVoteResponse(v) if v.granted))
        })
        .expect("the vote was sent");
    let hard_state = HardState::decode(
        ready
            .hard_state
            .as_ref()
            .expect("hard state in the same ready"),
    )
    .expect("decodes");
    assert_eq!(
        hard_state,
        HardState {
            term: 1,
            vote: Some(1)
        }
    );
    net.queue.clear();
    net.restart(3);
    net.deliver(2, 3, request_vote(1, 0, 0));
    assert_eq!(
        vote_answers(&net, 3)
            .iter()
            .map(|r| r.granted)
            .collect::<Vec<_>>(),
        vec![false]
    );
}

// Reference: thesis section 9.6 (pre-vote)
// A partitioned node cannot win, so with pre-vote it never increments its
// term; when it rejoins, the leader is undisturbed. Without pre-vote the same
// node inflates its term and deposes the leader on return.
#[test]
fn pre_vote_does_not_bump_terms_and_does_not_disrupt() {
    for pre_vote in [true, false] {
        let mut net = Network::with_config(3, |c| {
            c.pre_vote = pre_vote;
            c.check_quorum = false;
        });
        net.elect(1);
        net.isolate(3);
        for _ in 0..100 {
            net.tick(3);
            net.deliver_all();
        }
        let isolated_term = net.status(3).epoch;
        if pre_vote {
            assert_eq!(
                isolated_term, 1,
                "pre-vote: the isolated node keeps its term"
            );
        } else {
            assert!(
                isolated_term > 3,
                "without pre-vote the term grows ({isolated_term})"
            );
        }
        net.heal();
        net.run(30);
        if pre_vote {
            assert_eq!(
                net.status(1).role,
                Role::Leader,
                "the leader was not disturbed"
            );
            assert_eq!(net.status(1).epoch, 1);
            assert_eq!(net.status(3).leader, Some(1));
        } else {
            assert!(
                net.status(1).epoch > 1,
                "the rejoining node forced a new term"
            );
        }
    }
}

// Reference: thesis section 9.6
// A pre-vote is granted only by nodes that have not heard from a leader
// recently, and nobody changes term or vote because of one.
#[test]
fn pre_vote_requests_change_no_term_or_vote() {
    let mut net = Network::new(3);
    net.elect(1);
    let before = (net.status(2).epoch, net.node(2).machine.readies.len());
    net.deliver(
        3,
        2,
        Message::RequestVote(RequestVote {
            term: 2,
            last_log_index: 10,
            last_log_term: 1,
            pre_vote: true,
            transfer: false,
        }),
    );
    let answers = vote_answers(&net, 2);
    assert_eq!(answers.len(), 1);
    assert!(
        !answers[0].granted,
        "node 2 hears from its leader: no pre-vote"
    );
    assert_eq!(net.status(2).epoch, before.0, "term unchanged");
    assert!(
        net.node(2).machine.readies[before.1..]
            .iter()
            .all(|r| r.hard_state.is_none()),
        "nothing persisted"
    );
}

// Reference: thesis section 6.2 (check-quorum)
// A leader that cannot reach a quorum refuses writes quickly with
// `Unavailable` and steps down after an election timeout, so an isolated old
// leader stops accepting writes; the majority elects a new leader.
#[test]
fn check_quorum_isolated_leader_refuses_writes_then_steps_down() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(1);
    let mut unavailable_at = None;
    let mut stepped_down_at = None;
    for tick in 1..=40u64 {
        net.tick_all(1);
        net.deliver_all();
        if unavailable_at.is_none() && net.propose(1, "x") == Err(Rejected::Unavailable) {
            unavailable_at = Some(tick);
        }
        if stepped_down_at.is_none() && net.status(1).role != Role::Leader {
            stepped_down_at = Some(tick);
        }
    }
    let unavailable_at = unavailable_at.expect("writes are refused");
    let stepped_down_at = stepped_down_at.expect("the leader stepped down");
    assert!(
        unavailable_at <= 6,
        "Unavailable within two heartbeats, got tick {unavailable_at}"
    );
    assert!(
        stepped_down_at <= 11,
        "steps down within an election timeout, got tick {stepped_down_at}"
    );
    assert!(unavailable_at < stepped_down_at);
    let new_leader = net.leader().expect("the majority elected a leader");
    assert_ne!(new_leader, 1);
    assert_eq!(net.propose(1, "y"), Err(Rejected::NotLeader { hint: None }));
}

// Reference: thesis section 6 (disruptive servers) with check-quorum
// A follower that hears from its leader ignores a RequestVote with a higher
// term: it neither changes term nor answers.
#[test]
fn check_quorum_followers_ignore_vote_requests_inside_the_lease() {
    let mut net = Network::with_config(3, |c| c.pre_vote = false);
    net.elect(1);
    net.deliver(3, 2, request_vote(5, 100, 1));
    assert_eq!(net.status(2).epoch, 1, "no term change inside the lease");
    assert!(vote_answers(&net, 2).is_empty());
    // After an election timeout without the leader, the lease is over.
    net.isolate(1);
    net.tick_all(10);
    net.queue.clear();
    net.deliver(3, 2, request_vote(5, 100, 1));
    assert_eq!(net.status(2).epoch, 5);
    assert!(vote_answers(&net, 2)[0].granted);
}

// Reference: thesis section 6.4.1 (lease reads) with check-quorum
// A node with lease reads that just restarted may have acknowledged a
// leader's lease it no longer remembers, so for one minimum election
// timeout it refuses votes; after that it votes again.
#[test]
fn a_restarted_node_with_lease_reads_refuses_votes_for_one_election_timeout() {
    let mut net = Network::with_config(3, |c| c.pre_vote = false);
    for id in 1..=3 {
        net.core_mut(id).set_read_mode(ReadMode::Lease);
    }
    // Fresh nodes wait out that timeout too before the first election.
    net.tick_all(10);
    net.elect(1);
    let term = net.status(3).epoch;
    net.isolate(1);
    net.restart(3);
    net.core_mut(3).set_read_mode(ReadMode::Lease);
    net.queue.clear();
    net.deliver(2, 3, request_vote(term + 4, 100, term));
    assert_eq!(
        net.status(3).epoch,
        term,
        "no term change right after a restart"
    );
    assert!(
        vote_answers(&net, 3).is_empty(),
        "a lease it acknowledged before the restart may still hold"
    );
    // One minimum election timeout later (10 ticks here) it votes again.
    for _ in 0..10 {
        net.tick(3);
    }
    net.queue.clear();
    net.deliver(2, 3, request_vote(term + 4, 100, term));
    assert_eq!(net.status(3).epoch, term + 4);
    assert!(vote_answers(&net, 3)[0].granted);
}

// Reference: thesis section 6 (disruptive servers) with check-quorum
// A leader is inside its own lease however long its election took: one
// that won late in its candidacy still ignores a disruptive RequestVote.
#[test]
fn a_leader_that_won_late_still_ignores_disruptive_vote_requests() {
    let mut net = Network::with_config(3, |c| {
        c.pre_vote = false;
        c.election_timeout_ticks_min = 10;
        c.election_timeout_ticks_max = 40;
    });
    while net.status(1).role != Role::Candidate {
        net.tick(1);
    }
    let term = net.status(1).epoch;
    // The vote requests are held back for a minimum election timeout.
    let held = net.take_queue();
    for _ in 0..10 {
        net.core_mut(1).tick();
    }
    assert_eq!(
        (net.status(1).role, net.status(1).epoch),
        (Role::Candidate, term),
        "precondition: still in its first candidacy (the seeded timeout is above 10 ticks)"
    );
    net.process(1);
    net.queue.clear();
    for (from, to, message) in held {
        net.deliver(from, to, message);
    }
    net.deliver_all();
    assert_eq!(net.status(1).role, Role::Leader);
    net.queue.clear();
    net.deliver(3, 1, request_vote(term + 5, 100, term));
    assert_eq!(
        net.status(1).role,
        Role::Leader,
        "a disruptive request deposed it"
    );
    assert_eq!(net.status(1).epoch, term);
    assert!(vote_answers(&net, 1).is_empty());
}

// Reference: section 8 ("each leader commit a blank no-op entry into the log
// at the start of its term")
#[test]
fn a_new_leader_appends_and_commits_a_noop() {
    let mut net = Network::new(3);
    net.elect(2);
    net.run(3);
    for id in 1..=3 {
        let node = net.node(id);
        assert_eq!(node.machine.applied.len(), 1);
        assert_eq!(node.machine.applied[0].epoch, 1);
        assert_eq!(
            node.machine.applied[0].payload,
            consensus_api::Payload::Noop
        );
    }
}

// Reference: section 5.2 ("split votes")
// Two candidates split the votes of a four-node cluster; nobody wins that
// term, and randomized timeouts resolve it with exactly one leader.
#[test]
fn split_votes_resolve() {
    let mut net = Network::with_config(4, |c| c.pre_vote = false);
    while net.status(1).role == Role::Follower {
        net.core_mut(1).tick();
    }
    while net.status(2).role == Role::Follower {
        net.core_mut(2).tick();
    }
    net.process_all();
    // Node 3 hears node 1 first, node 4 hears node 2 first.
    net.deliver_matching(|from, to, _| (from, to) == (1, 3) || (from, to) == (2, 4));
    net.deliver_all();
    assert_eq!(net.leader(), None, "the votes split: nobody won term 1");
    assert_eq!(net.status(1).epoch, 1);
    net.run(100);
    let leader = net.leader().expect("a later election succeeds");
    let leaders = (1..=4)
        .filter(|id| net.status(*id).role == Role::Leader)
        .count();
    assert_eq!(leaders, 1);
    assert!(net.status(leader).epoch >= 2);
}

// Learners never campaign, whatever the timeouts.
#[test]
fn learners_never_campaign() {
    let mut net = Network::new(3);
    let mut learner_config = config(4, &[1, 2, 3]);
    learner_config.initial_membership = consensus_api::Membership::with_learners([1, 2, 3], [4]);
    net.add_node(learner_config, InitialState::default());
    for _ in 0..100 {
        net.tick(4);
    }
    assert_eq!(net.status(4).role, Role::Learner);
    assert_eq!(net.status(4).epoch, 0);
    assert!(net.queue.is_empty());
    let core: &RaftCore = net.core(4);
    assert!(!core.is_leader());
}

// Figure 2 persistence, torn batch: a crash may keep a batch's entries but
// lose its hard state. Entries of term 3 prove the node saw term 3, so it
// restarts in term 3 (its vote in 3 was never sent: messages leave only
// after the sync) and persists that at once.
#[test]
fn restore_adopts_the_term_of_entries_persisted_without_their_hard_state() {
    let state = stored(1, Some(1), log_with_terms(&[1, 3]));
    let mut core = RaftCore::restore(config(2, &[1, 2, 3]), state).expect("restore");
    assert_eq!(core.status().epoch, 3);
    let ready = core.ready().expect("the raised term is persisted");
    let hard_state =
        HardState::decode(ready.hard_state.as_ref().expect("hard state")).expect("decodes");
    assert_eq!(
        hard_state,
        HardState {
            term: 3,
            vote: None
        }
    );
    assert!(ready.must_sync);
    // A corrupt hard state is refused rather than guessed.
    let corrupt = InitialState {
        hard_state: Some(consensus_api::Bytes::from_static(&[0xff, 0xff])),
        snapshot: None,
        entries: Vec::new(),
    };
    assert!(RaftCore::restore(config(2, &[1, 2, 3]), corrupt).is_err());
}

// Reference: thesis section 9.6 (pre-vote) and the leader lease of §6.
// The two survivors of a leader's crash heard it last at about the same
// moment. Node 2 (the longer log) times out first and asks node 3, which
// still heard the leader within the minimum election timeout and refuses;
// node 3's own pre-vote is then refused by node 2 (its log is behind). A
// pre-candidate asked only once would wait for a second randomized timeout;
// it asks again every heartbeat interval, so node 2 wins as soon as node
// 3's lease is over.
#[test]
fn a_pre_candidate_refused_inside_a_lease_asks_again_before_its_timeout() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "only node 2 gets this")
        .expect("the leader takes it");
    // The new entry reaches node 2 only; then the leader dies.
    net.deliver_where(|_, to, m| to == 2 && matches!(m, Message::AppendEntries(_)));
    net.crash(1);
    net.queue.clear();
    assert_eq!(
        net.core(2).status().last_index,
        net.core(3).status().last_index + 1
    );

    // Node 2's timer runs out first; node 3 heard the leader a moment ago.
    tick_until_it_campaigns(&mut net, 2, 20);
    net.deliver_all();
    assert_eq!(
        net.status(2).role,
        Role::Candidate,
        "node 2 is a pre-candidate"
    );
    assert_eq!(
        net.status(2).epoch,
        1,
        "refused inside node 3's lease: no new term"
    );

    // Node 3's lease ends (it may campaign itself and be refused: its log is
    // shorter); node 2 ticks on, a few ticks only.
    for _ in 0..10 {
        net.tick(3);
        net.deliver_all();
    }
    let min = config(2, &[1, 2, 3]).election_timeout_ticks_min;
    for tick in 1..min {
        net.tick(2);
        net.deliver_all();
        if net.status(2).role == Role::Leader {
            assert!(tick <= 2, "won {tick} ticks after the lease ended");
            assert_eq!(net.status(2).epoch, 2);
            return;
        }
    }
    panic!(
        "node 2 waited for a new election timeout ({} ticks) instead of asking again",
        min
    );
}

// Reference: thesis section 9.6 (pre-vote); a liveness rule of this core.
// The two survivors of a leader's crash time out together and both start a
// pre-vote. Granting each other's, both would start a real election in the
// same term, keep their own votes and split it. A pre-candidate grants a
// rival pre-candidate's pre-vote only if the rival ranks higher (a more up
// to date log, or as up to date and a higher id): node 3 wins at once.
#[test]
fn two_pre_candidates_at_once_do_not_split_the_vote() {
    for (longer, expected) in [(None, 3), (Some(2), 2), (Some(3), 3)] {
        let mut net = Network::new(3);
        net.elect(1);
        if let Some(node) = longer {
            net.propose(1, "one more entry")
                .expect("the leader takes it");
            net.deliver_where(|_, to, m| to == node && matches!(m, Message::AppendEntries(_)));
        }
        net.crash(1);
        net.queue.clear();
        for node in [2, 3] {
            tick_until_it_campaigns(&mut net, node, 20);
        }
        // Both pre-votes cross; nobody ticks again.
        net.deliver_all();
        assert_eq!(
            net.status(expected).role,
            Role::Leader,
            "longer log on {longer:?}: node {expected} wins without a second timeout \
             (roles {:?} / {:?}, terms {} / {})",
            net.status(2).role,
            net.status(3).role,
            net.status(2).epoch,
            net.status(3).epoch
        );
        assert_eq!(net.status(expected).epoch, 2, "in the first term tried");
        let other = 5 - expected;
        assert_eq!(net.status(other).leader, Some(expected));
    }
}

fn pre_vote(term: u64, last_log_index: u64, last_log_term: u64) -> Message {
    Message::RequestVote(RequestVote {
        term,
        last_log_index,
        last_log_term,
        pre_vote: true,
        transfer: false,
    })
}

// Reference: thesis section 9.6 (pre-vote) and section 5.1 ("If a server
// receives a request with a stale term number, it rejects the request").
// A pre-vote asks "would you vote for me in term T?". A voter whose term is
// already T and whose vote in T is taken would not: it refuses. Its vote
// in the next term is free, so a pre-vote for T + 1 is granted.
#[test]
fn a_pre_vote_for_a_term_whose_vote_is_taken_is_refused() {
    let mut net = Network::new(3);
    net.deliver(1, 3, request_vote(1, 0, 0));
    assert_eq!(vote_answers(&net, 3).len(), 1);
    assert!(
        vote_answers(&net, 3)[0].granted,
        "node 3 votes for node 1 in term 1"
    );
    net.queue.clear();

    net.deliver(2, 3, pre_vote(1, 0, 0));
    let answers = vote_answers(&net, 3);
    assert_eq!(answers.len(), 1);
    assert!(
        !answers[0].granted,
        "node 3 is in term 1 and voted for node 1: no pre-vote for term 1"
    );
    net.queue.clear();

    net.deliver(2, 3, pre_vote(2, 0, 0));
    let answers = vote_answers(&net, 3);
    assert_eq!(answers.len(), 1);
    assert!(answers[0].granted, "its vote in term 2 is free");
    assert_eq!(net.status(3).epoch, 1, "a pre-vote changes no term");
}

// Reference: thesis section 9.6 (pre-vote); a pre-candidate counts only
// answers to its pre-vote. A refusal of a real vote from an earlier term
// (late on the network) says nothing about the pre-vote: counted, two of
// them would end the pre-vote as lost before the real answers arrive.
#[test]
fn a_pre_candidate_ignores_late_answers_to_a_real_vote() {
    let mut net = Network::new(3);
    tick_until_it_campaigns(&mut net, 1, 40);
    let term = net.status(1).epoch;
    for from in [2, 3] {
        net.deliver(
            from,
            1,
            Message::RequestVoteResponse(RequestVoteResponse {
                term,
                pre_vote: false,
                granted: false,
            }),
        );
    }
    assert_eq!(
        (net.status(1).role, net.status(1).epoch),
        (Role::Candidate, term),
        "still a pre-candidate"
    );
    net.deliver_all();
    assert_eq!(
        net.status(1).role,
        Role::Leader,
        "the pre-vote's own answers elect node 1"
    );
}

// Reference: thesis section 6.2 (check-quorum), the fast refusal: a leader
// accepts requests while a quorum answered within two heartbeat round trips
// (`2 * heartbeat + 1` ticks), and refuses them with `Unavailable` from the
// first tick after, long before it steps down.
#[test]
fn an_isolated_leader_refuses_requests_from_two_heartbeat_round_trips_on() {
    // Heartbeat 3 ticks: window 7 (with 2, `2 + heartbeat + 1` would also
    // give 5 and hide a wrong formula).
    let mut net = Network::with_config(3, |c| c.heartbeat_interval_ticks = 3);
    net.elect(1);
    net.deliver_all();
    net.isolate(1);
    let window = 2 * 3 + 1;
    let mut refused_at = None;
    for tick in 1..=window + 2 {
        net.tick(1);
        net.deliver_all();
        if net.propose(1, "x") == Err(Rejected::Unavailable) {
            refused_at = Some(tick);
            break;
        }
    }
    assert_eq!(
        refused_at,
        Some(window),
        "first refusal {window} ticks after the quorum was last heard"
    );
    assert_eq!(net.status(1).role, Role::Leader, "still the leader");
}

// Reference: thesis section 9.6 (pre-vote); a liveness rule of this core.
// A pre-candidate asks again, every heartbeat interval, exactly the voters
// that have not granted its pre-vote: not those that did (their grant
// stands), and not itself.
#[test]
fn a_pre_candidate_asks_again_only_the_voters_that_have_not_granted() {
    let mut net = Network::new(5);
    tick_until_it_campaigns(&mut net, 2, 40);
    // Only node 3 hears the pre-vote (and grants it): 2 of 5, no quorum.
    net.deliver_where(|from, to, _| from == 2 && to == 3);
    net.deliver_where(|from, to, _| from == 3 && to == 2);
    net.queue.clear();
    assert_eq!(net.status(2).role, Role::Candidate, "still a pre-candidate");
    let interval = config(2, &[1, 2, 3, 4, 5]).heartbeat_interval_ticks;
    let mut asked = Vec::new();
    for _ in 0..interval {
        net.tick(2);
        asked.extend(net.queue.drain(..).filter_map(|(from, to, m)| match m {
            Message::RequestVote(r) if from == 2 && r.pre_vote => Some(to),
            _ => None,
        }));
    }
    asked.sort_unstable();
    assert_eq!(
        asked,
        vec![1, 4, 5],
        "asked again: the voters without a grant"
    );
}
