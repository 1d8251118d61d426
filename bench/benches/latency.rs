//! Per-command latency at 1 and 64 clients for every compiled protocol
//! (3 nodes, durable storage): criterion's estimate of the mean, and
//! p50 / p99 / p99.9 from an HDR histogram of every command it timed,
//! printed alongside.

use std::sync::Mutex;
use std::time::Duration;

use bench::cluster::BenchCluster;
use bench::floor::micros_histogram;
use bench::settings::Settings;
use bench::workload::run_count;
use consensus::Protocol;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let settings = Settings::default();
    eprintln!("settings (every protocol): {}", settings.describe());
    for protocol in Protocol::compiled() {
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
        let mut group = c.benchmark_group(format!("latency/{protocol}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        for clients in [1usize, 64] {
            let histogram = Mutex::new(micros_histogram());
            group.bench_with_input(
                BenchmarkId::new("clients", clients),
                &clients,
                |b, &clients| {
                    b.iter_custom(|iters| {
                        // Each of the `iters` commands is one iteration; with
                        // several clients in flight, the time per iteration is
                        // elapsed / iters, and the HDR histogram below keeps
                        // each command's own latency.
                        let run = runtime.block_on(run_count(
                            &node_set,
                            leader,
                            clients,
                            iters,
                            settings.command_bytes,
                        ));
                        histogram
                            .lock()
                            .expect("histogram")
                            .add(&run.histogram)
                            .expect("compatible");
                        run.elapsed
                    });
                },
            );
            let h = histogram.lock().expect("histogram");
            eprintln!(
                "latency/{protocol}/clients/{clients}: {} commands, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
                h.len(),
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.value_at_quantile(0.999) as f64 / 1000.0,
                h.max() as f64 / 1000.0,
            );
        }
        group.finish();
        runtime.block_on(cluster.shutdown());
    }
}

criterion_group!(benches, latency);
criterion_main!(benches);
