//! Pieces of the command-line programs shared by `consensus-kv` and the
//! coordination service's `consensus-coord`: duration arguments, logging,
//! the async runtime, Ctrl-C / SIGTERM, `serve --join`, `certs`, and the
//! local demo cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use consensus::NodeId;

use crate::config::{ClusterConfig, NodeEntry};
use crate::demo::{prepare_with_metrics, LocalCluster};

/// `serve --join`: a node the cluster file need not list.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct JoinArgs {
    /// Start as a node added after the cluster was created (`member add`):
    /// not part of the initial membership; it learns the membership and the
    /// members' addresses from the cluster. Implied by `join = true` in the
    /// node's entry.
    #[arg(long)]
    pub join: bool,
    /// With --join, for a node the file does not list: its consensus address.
    #[arg(long, requires = "join", requires = "client_addr")]
    pub peer_addr: Option<SocketAddr>,
    /// With --join, for a node the file does not list: its client address.
    #[arg(long, requires = "join", requires = "peer_addr")]
    pub client_addr: Option<SocketAddr>,
    /// With --join, for a node the file does not list: its data directory
    /// (default: the file's data_root/node-ID).
    #[arg(long, requires = "peer_addr")]
    pub data_dir: Option<PathBuf>,
}

/// The entry node `id` serves with: the file's (joining if `--join` or
/// `join = true`), or, with `--join --peer-addr A --client-addr B`, a
/// joining node the file does not list. A joining node needs the
/// operator token (it asks the cluster for the membership).
pub fn serve_entry(
    config: &ClusterConfig,
    id: NodeId,
    join: &JoinArgs,
) -> Result<NodeEntry, String> {
    let entry = match (join.peer_addr, join.client_addr) {
        (Some(peer), Some(client)) => {
            if config.node(id).is_ok() {
                return Err(format!(
                    "node {id} is listed in {}: drop --peer-addr/--client-addr (the file says where it listens)",
                    config.path.display()
                ));
            }
            config.joining_entry(id, peer, client, join.data_dir.clone())
        }
        _ => {
            let mut entry = config.node(id).map_err(|e| e.to_string())?.clone();
            entry.join |= join.join;
            entry
        }
    };
    if entry.join && config.operator_token_file.is_none() {
        return Err(format!(
            "a joining node needs `[operator] token_file` in {} (it asks the cluster for the membership and the member addresses)",
            config.path.display()
        ));
    }
    Ok(entry)
}

/// True when `dir` holds nothing (or does not exist): a node starting
/// there has no state of its own.
pub fn is_fresh(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

/// `certs`: a cluster CA and node certificates 1..=`nodes` in `out`, or,
/// with `add_node`, one more node's certificate signed by the CA already
/// in `out`. Returns what to print.
pub fn certs(
    out: &Path,
    nodes: Option<u64>,
    add_node: Option<NodeId>,
    cluster_id: String,
) -> Result<String, String> {
    let cluster = consensus::ClusterId::new(cluster_id).map_err(|e| e.to_string())?;
    if let Some(id) = add_node {
        if id == 0 {
            return Err("node ids start at 1".into());
        }
        let cert_path = consensus::certs::node_cert_path(out, id);
        if cert_path.exists() {
            return Err(format!(
                "{} exists: node {id} already has a certificate",
                cert_path.display()
            ));
        }
        let ca = consensus::certs::load_ca(out, &cluster).map_err(|e| {
            format!(
                "reading the cluster CA in {} (ca.pem and ca-key.pem of cluster {:?}): {e}",
                out.display(),
                cluster.as_str()
            )
        })?;
        let node = ca.issue_node(id).map_err(|e| e.to_string())?;
        consensus::certs::write_node(out, &node)
            .map_err(|e| format!("writing node-{id} certificate to {}: {e}", out.display()))?;
        return Ok(format!(
            "wrote node-{id}.pem and node-{id}-key.pem to {}, signed by its ca.pem",
            out.display()
        ));
    }
    let nodes = nodes.unwrap_or(0);
    consensus::certs::generate_cluster_dir(out, &cluster, 1..=nodes)
        .map_err(|e| format!("writing certificates to {}: {e}", out.display()))?;
    Ok(format!(
        "wrote ca.pem, ca-key.pem and node-1..{nodes} certificates and keys to {}",
        out.display()
    ))
}

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
