//! End to end: `kill -9` and `SIGSTOP` of a key-value service leader,
//! measured through real `serve` processes. Slow (seconds per sample), so
//! ignored by default:
//!
//! ```text
//! cargo test --release -p bench --test service_failover -- --ignored
//! ```

use std::path::Path;
use std::time::Duration;

use bench::compare::{service_level, CompareOptions};
use consensus::Protocol;
use indicatif::ProgressBar;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts processes and waits for elections; run with --ignored"]
async fn raft_leader_kill_and_pause_fail_over_in_under_a_second() {
    let mut options = CompareOptions::new(true);
    options.protocols = vec!["raft".parse::<Protocol>().unwrap()];
    options.clients = vec![1];
    options.warmup = Duration::from_millis(200);
    options.measure = Duration::from_millis(500);
    options.failovers = 2;
    let binary = Path::new(env!("CARGO_BIN_EXE_bench"));
    let result = service_level(
        binary,
        options.protocols[0],
        &options,
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    for (name, failover) in [
        ("kill -9", &result.failover_kill),
        ("SIGSTOP", &result.failover_pause),
    ] {
        assert_eq!(failover.samples_ms.len(), 2, "{name}: {failover:?}");
        assert!(
            failover
                .samples_ms
                .iter()
                .all(|ms| *ms > 0.0 && *ms < 1500.0),
            "{name}: {failover:?}"
        );
    }
}
