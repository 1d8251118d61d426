//! Committed-and-applied commands per second, for every compiled protocol,
//! 3 and 5 nodes, 100-byte commands, 1 / 16 / 64 / 256 closed-loop clients,
//! through the real runtime over QUIC on loopback with durable storage in a
//! temporary directory (fdatasync on). Criterion's "elements/s" is commands/s.

use std::time::Duration;

use bench::cluster::BenchCluster;
use bench::settings::Settings;
use bench::workload::run_count;
use consensus::Protocol;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    eprintln!(
        "settings (every protocol): {}",
        Settings::default().describe()
    );
    for protocol in Protocol::compiled() {
        for nodes in [3, 5] {
            let settings = Settings {
                nodes,
                ..Settings::default()
            };
            let cluster = runtime
                .block_on(BenchCluster::start(protocol, &settings))
                .expect("cluster starts");
            runtime
                .block_on(cluster.wait_writable())
                .expect("cluster writable");
            let leader = if protocol.has_leader() {
                cluster.agreed_leader()
            } else {
                None
            };
            let node_set = cluster.nodes();
            let mut group = c.benchmark_group(format!("throughput/{protocol}/{nodes}-nodes"));
            group.sample_size(10);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(5));
            group.throughput(Throughput::Elements(1));
            for clients in [1usize, 16, 64, 256] {
                group.bench_with_input(
                    BenchmarkId::new("clients", clients),
                    &clients,
                    |b, &clients| {
                        b.iter_custom(|iters| {
                            runtime
                                .block_on(run_count(
                                    &node_set,
                                    leader,
                                    clients,
                                    iters,
                                    settings.command_bytes,
                                ))
                                .elapsed
                        });
                    },
                );
            }
            group.finish();
            runtime.block_on(cluster.shutdown());
        }
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
