//! Closed-loop clients: each has one command outstanding, sends it to the
//! leader it knows (any node for classic Paxos), follows redirects, and
//! records the latency of every command committed and applied inside the
//! measurement window.

use std::time::{Duration, Instant};

use consensus::{Bytes, ClientError, NodeId, ReplicatedLog};
use hdrhistogram::Histogram;

use crate::cluster::NodeSet;
use crate::floor::micros_histogram;
use crate::results::{LoadPoint, Percentiles};

/// A command of `bytes` bytes, unique per (client, sequence).
pub fn command(client: usize, sequence: u64, bytes: usize) -> Bytes {
    let mut data = format!("c{client}-{sequence}-").into_bytes();
    data.resize(bytes.max(data.len()), b'.');
    Bytes::from(data)
}

/// Where client `index` sends first.
fn first_target(nodes: &NodeSet, index: usize, leader: Option<NodeId>) -> NodeId {
    match leader {
        Some(leader) => leader,
        None => {
            let ids = nodes.ids();
            ids[index % ids.len().max(1)]
        }
    }
}

/// Latency samples of one run (for criterion's custom timing too).
pub struct LoadRun {
    /// Per-command latency in µs.
    pub histogram: Histogram<u64>,
    /// Commands that failed in the window.
    pub errors: u64,
    /// Measured time.
    pub elapsed: Duration,
}

/// Runs `clients` closed-loop clients for `warmup + measure`, measuring
/// only the second part. `leader` is where leader-based protocols start
/// (clients follow redirects anyway).
pub async fn run_for(
    nodes: &NodeSet,
    leader: Option<NodeId>,
    clients: usize,
    warmup: Duration,
    measure: Duration,
    command_bytes: usize,
) -> LoadRun {
    let start = Instant::now();
    let from = start + warmup;
    let until = from + measure;
    let mut tasks = Vec::new();
    for index in 0..clients.max(1) {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = micros_histogram();
            let mut errors = 0u64;
            let mut target = first_target(&nodes, index, leader);
            let mut sequence = 0u64;
            while Instant::now() < until {
                sequence += 1;
                let cmd = command(index, sequence, command_bytes);
                let Some(node) = nodes.get(target) else {
                    target = nodes.next_running(target);
                    continue;
                };
                let began = Instant::now();
                let result = node.append(cmd).await;
                let ended = Instant::now();
                let in_window = began >= from && ended <= until;
                match result {
                    Ok(_) => {
                        if in_window {
                            let us = u64::try_from((ended - began).as_micros()).unwrap_or(u64::MAX);
                            histogram.saturating_record(us.max(1));
                        }
                    }
                    Err(ClientError::NotLeader { hint: Some(hint) })
                        if nodes.get(hint).is_some() =>
                    {
                        target = hint
                    }
                    Err(_) => {
                        if in_window {
                            errors += 1;
                        }
                        target = nodes.next_running(target);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            (histogram, errors)
        }));
    }
    let mut histogram = micros_histogram();
    let mut errors = 0;
    for task in tasks {
        if let Ok((h, e)) = task.await {
            histogram.add(&h).expect("compatible histograms");
            errors += e;
        }
    }
    LoadRun {
        histogram,
        errors,
        elapsed: measure,
    }
}

/// Runs clients until `total` commands have committed (for criterion's
/// `iter_custom`); returns the elapsed time and the latency histogram.
pub async fn run_count(
    nodes: &NodeSet,
    leader: Option<NodeId>,
    clients: usize,
    total: u64,
    command_bytes: usize,
) -> LoadRun {
    let remaining = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(total as i64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..clients.max(1) {
        let nodes = nodes.clone();
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = micros_histogram();
            let mut errors = 0u64;
            let mut target = first_target(&nodes, index, leader);
            let mut sequence = 0u64;
            while remaining.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                loop {
                    sequence += 1;
                    let Some(node) = nodes.get(target) else {
                        target = nodes.next_running(target);
                        continue;
                    };
                    let began = Instant::now();
                    match node.append(command(index, sequence, command_bytes)).await {
                        Ok(_) => {
                            let us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                            histogram.saturating_record(us.max(1));
                            break;
                        }
                        Err(ClientError::NotLeader { hint: Some(hint) })
                            if nodes.get(hint).is_some() =>
                        {
                            target = hint
                        }
                        Err(_) => {
                            errors += 1;
                            target = nodes.next_running(target);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }
            (histogram, errors)
        }));
    }
    let mut histogram = micros_histogram();
    let mut errors = 0;
    for task in tasks {
        if let Ok((h, e)) = task.await {
            histogram.add(&h).expect("compatible histograms");
            errors += e;
        }
    }
    LoadRun {
        histogram,
        errors,
        elapsed: started.elapsed(),
    }
}

impl LoadRun {
    /// As a result point.
    pub fn point(&self, clients: usize) -> LoadPoint {
        LoadPoint {
            clients,
            ops_per_sec: self.histogram.len() as f64
                / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
            latency: Percentiles::of(&self.histogram),
            errors: self.errors,
            load_cpu_cores: None,
            leader_changes: None,
        }
    }
}
