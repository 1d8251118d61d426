//! Pieces of the command-line programs shared by `consensus-kv` and the
//! coordination service's `consensus-coord`: duration arguments, logging,
//! the async runtime, Ctrl-C / SIGTERM, and the local demo cluster.

use std::path::Path;
use std::time::Duration;

use crate::demo::{prepare_with_metrics, LocalCluster};

/// Parses a duration argument: `500ms`, `10s`, `2m`, `1h`, or a plain
/// number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too long a duration"))
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The programs' async runtime: one worker thread per core.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// What `demo` starts.
pub struct DemoSpec<'a> {
    /// The cluster id written into the generated configuration.
    pub cluster_id: &'a str,
    /// What the cluster is, for the first line ("cluster", "coordination
    /// cluster").
    pub label: &'a str,
    /// Protocol name (`raft`, `multipaxos`, `paxos`, `zab`).
    pub protocol: &'a str,
    /// Number of nodes.
    pub nodes: u64,
    /// Directory for the configuration, certificates, data and logs.
    pub dir: &'a Path,
}

/// Starts a local cluster of this executable's `serve` processes on loopback
/// ports with fresh certificates, prints where each node listens and the
/// commands `hints` suggests (given the configuration path), and stops the
/// cluster on Ctrl-C or SIGTERM.
pub async fn demo(
    spec: DemoSpec<'_>,
    hints: impl FnOnce(&str) -> Vec<String>,
) -> Result<(), String> {
    let protocol: consensus::Protocol = spec.protocol.parse().map_err(|e| format!("{e}"))?;
    if spec.dir.join("cluster.toml").exists() {
        return Err(format!(
            "{} already holds a demo cluster; remove it or pass --dir somewhere else",
            spec.dir.display()
        ));
    }
    let config_path = prepare_with_metrics(
        spec.dir,
        spec.cluster_id,
        protocol.name(),
        spec.nodes,
        None,
        true,
    )?;
    let binary = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let mut cluster = LocalCluster::new(binary, &config_path)?;
    cluster.start_all()?;
    println!(
        "{}-node {protocol} {} running; configuration {}",
        spec.nodes,
        spec.label,
        config_path.display()
    );
    for node in &cluster.config.nodes {
        println!(
            "  node {}: peers on {}, clients on {}, data in {}, log in {}",
            node.id,
            node.peer_addr,
            node.client_addr,
            node.data_dir.display(),
            cluster.log_path(node.id).display()
        );
        if let Some(metrics) = node.metrics_addr {
            println!("          metrics http://{metrics}/metrics, health http://{metrics}/health");
        }
    }
    for (i, line) in hints(&config_path.display().to_string()).iter().enumerate() {
        println!("{}{line}", if i == 0 { "try:  " } else { "      " });
    }
    println!("press Ctrl-C to stop the cluster");
    shutdown_signal().await;
    println!("stopping...");
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ten")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999999h")
            .unwrap_err()
            .contains("too long"));
    }
}
