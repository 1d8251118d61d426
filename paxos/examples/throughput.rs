//! CPU cost of the paxos core alone: a cluster whose `Ready` batches are
//! taken but not stored (no store, no fsync, no network: messages are
//! delivered in rounds), proposals batched per round the way the runtime
//! batches client requests. Prints commands per second of core work, and
//! messages per command.
//!
//! `cargo run --release -p paxos --example throughput [commands] [batch]`

use std::collections::VecDeque;
use std::time::Instant;

use consensus_api::{Bytes, Core, CoreConfig, InitialState, Membership, NodeId};
use paxos::{Message, PaxosCore};

struct Node {
    core: PaxosCore,
    written_bytes: usize,
    committed: u64,
    acknowledged: u64,
}

fn drain(node: &mut Node, id: NodeId, queue: &mut VecDeque<(NodeId, NodeId, Message)>) -> u64 {
    let mut sent = 0;
    while let Some(ready) = node.core.ready() {
        node.written_bytes += ready.append.iter().map(|e| e.size_bytes()).sum::<usize>()
            + ready.hard_state.as_ref().map_or(0, |h| h.len());
        for (to, message) in ready.messages {
            queue.push_back((id, to, message));
            sent += 1;
        }
        node.committed += ready.committed.len() as u64;
        for (ticket, result) in &ready.completed {
            match result {
                Err(error) => eprintln!("node {id}: {ticket} failed: {error}"),
                Ok(_) => node.acknowledged += 1,
            }
        }
    }
    sent
}

fn run(nodes: u64, commands: u64, batch: u64, spread: bool) {
    let membership = Membership::new(1..=nodes);
    let mut cluster: Vec<Node> = (1..=nodes)
        .map(|id| {
            let config = CoreConfig::new(id, membership.clone());
            let core = PaxosCore::restore(config, InitialState::default()).expect("fresh core");
            Node {
                core,
                written_bytes: 0,
                committed: 0,
                acknowledged: 0,
            }
        })
        .collect();
    let mut queue = VecDeque::new();
    let mut messages = 0;
    let payload = Bytes::from(vec![7u8; 64]);
    // Wall-clock time measures this benchmark, never the core.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut proposed = 0;
    let mut rounds = 0;
    while cluster.iter().map(|n| n.committed).min().unwrap_or(0) < commands {
        rounds += 1;
        if rounds >= 100_000 {
            for node in &cluster {
                eprintln!(
                    "{:?} committed={} acknowledged={}",
                    node.core.status(),
                    node.committed,
                    node.acknowledged
                );
            }
            panic!("no progress");
        }
        if proposed < commands {
            for i in 0..batch.min(commands - proposed) {
                let target = if spread { (i % nodes) as usize } else { 0 };
                if cluster[target].core.propose(payload.clone()).is_ok() {
                    proposed += 1;
                }
            }
        }
        for (index, node) in cluster.iter_mut().enumerate() {
            messages += drain(node, index as u64 + 1, &mut queue);
        }
        let in_round: Vec<_> = queue.drain(..).collect();
        for (from, to, message) in in_round {
            let node = &mut cluster[to as usize - 1];
            node.core.step(from, message);
            messages += drain(node, to, &mut queue);
        }
        if rounds % 10 == 0 {
            for (index, node) in cluster.iter_mut().enumerate() {
                node.core.tick();
                messages += drain(node, index as u64 + 1, &mut queue);
            }
        }
    }
    let elapsed = start.elapsed();
    let written: usize = cluster.iter().map(|n| n.written_bytes).sum();
    println!(
        "{nodes} nodes, {commands} commands, batch {batch}, {}: {:.0} commands/s of core CPU, {:.2} messages/command, {:.0} bytes written/command, {rounds} rounds",
        if spread { "proposals spread over all nodes" } else { "proposals at one node" },
        commands as f64 / elapsed.as_secs_f64(),
        messages as f64 / commands as f64,
        written as f64 / commands as f64
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let commands = args.first().copied().unwrap_or(50_000);
    let batch = args.get(1).copied().unwrap_or(256);
    for nodes in [3, 5] {
        run(nodes, commands, batch, false);
        run(nodes, commands, batch, true);
    }
}
