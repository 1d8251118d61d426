//! Failover time for every compiled protocol (3 nodes, durable storage):
//! with a client writing continuously, stop the leader (classic Paxos: the
//! node the client talks to) and measure from the stop to the first command
//! committed afterwards. `iter_custom` over repeated stops; the stopped node
//! is restarted and the cluster settles between samples (not timed).

use std::time::Duration;

use bench::cluster::BenchCluster;
use bench::failover::measure;
use bench::settings::Settings;
use consensus::Protocol;
use criterion::{criterion_group, criterion_main, Criterion};

fn failover(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let settings = Settings::default();
    eprintln!("settings (every protocol): {}", settings.describe());
    let mut group = c.benchmark_group("failover");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for protocol in Protocol::compiled() {
        let mut cluster = runtime
            .block_on(BenchCluster::start(protocol, &settings))
            .expect("cluster starts");
        group.bench_function(protocol.name(), |b| {
            b.iter_custom(|iters| {
                let measured = runtime
                    .block_on(measure(
                        &mut cluster,
                        iters as usize,
                        settings.command_bytes,
                        |_, _| {},
                    ))
                    .expect("failover measured");
                Duration::from_secs_f64(measured.gaps_ms.iter().sum::<f64>() / 1000.0)
            });
        });
        runtime.block_on(cluster.shutdown());
    }
    group.finish();
}

criterion_group!(benches, failover);
criterion_main!(benches);
