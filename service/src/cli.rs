//! Pieces of the command-line programs shared by `consensus-kv` and the
//! coordination service's `consensus-coord`: duration arguments, logging,
//! the async runtime, Ctrl-C / SIGTERM, `serve --join`, `certs`, and the
//! local demo cluster; and the subcommands every service's binary has
//! ([`EdgeCommand`]: `serve`, `demo`, `certs`, `member`, `snapshot`), one
//! handler each, told what differs by a [`ServiceCli`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::{ConsensusNode, LogIndex, Membership, NodeId, RecoverError};

use crate::backup::{self, SnapshotAction};
use crate::config::{ClusterConfig, NodeEntry};
use crate::demo::{prepare_with_metrics, LocalCluster};
use crate::member_client::{MemberClient, OperatorWire};
use crate::members::{write_secret, MemberAction};
use crate::ops::MetricsArgs;

/// The error of a subcommand: printed as `error: ...` with its causes.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// What differs between the services in the shared subcommands.
pub struct ServiceCli {
    /// The service: what a backup is of, and the default of
    /// `certs --cluster-id` ("kv", "coord").
    pub name: &'static str,
    /// What `serve`'s first line calls the node ("node", "coordination
    /// node").
    pub node_label: &'static str,
    /// The cluster id of `demo`'s cluster.
    pub demo_cluster_id: &'static str,
    /// What `demo` calls the cluster ("cluster", "coordination cluster").
    pub demo_label: &'static str,
    /// The default of `demo --dir`.
    pub demo_dir: &'static str,
    /// The help of `demo --nodes`.
    pub demo_nodes_help: &'static str,
    /// The commands `demo` suggests, given the configuration path.
    pub demo_hints: fn(&str) -> Vec<String>,
    /// The one-line help of `member`.
    pub member_about: &'static str,
    /// Restores a backup's data into a fresh state machine of the service
    /// (how `snapshot restore` checks a file).
    pub check_backup: fn(LogIndex, &Bytes) -> Result<(), RecoverError>,
}

impl ServiceCli {
    /// Parses the command line of the binary `C` (which flattens an
    /// [`EdgeCommand`] into its subcommands) with this service's defaults
    /// and help; exits with clap's message on a bad one.
    pub fn parse<C: clap::Parser>(&self) -> C {
        let mut command = self.command(C::command());
        let mut matches = command.get_matches_mut();
        C::from_arg_matches_mut(&mut matches).unwrap_or_else(|error| {
            let mut command = self.command(C::command());
            error.format(&mut command).exit()
        })
    }

    fn command(&self, command: clap::Command) -> clap::Command {
        command
            .mut_subcommand("demo", |demo| {
                demo.mut_arg("nodes", |nodes| nodes.help(self.demo_nodes_help))
                    .mut_arg("dir", |dir| {
                        dir.default_value(self.demo_dir).required(false)
                    })
            })
            .mut_subcommand("certs", |certs| {
                certs.mut_arg("cluster_id", |id| {
                    id.default_value(self.name).required(false)
                })
            })
            .mut_subcommand("member", |member| member.about(self.member_about))
    }
}

/// The subcommands every service's binary has (flattened into its own).
#[derive(clap::Subcommand)]
pub enum EdgeCommand {
    /// Run one node of a cluster.
    Serve(ServeArgs),
    /// Start a local cluster of child processes on loopback and wait for Ctrl-C.
    Demo(DemoArgs),
    /// Create a cluster CA and node certificates.
    Certs(CertsArgs),
    /// Membership of a running cluster: list, add, promote, remove
    /// (needs `[operator] token_file` in the cluster file).
    Member(MemberArgs),
    /// Backup and restore: `save FILE` from a running cluster (needs
    /// `[operator] token_file`), `restore FILE --id N` into the empty data
    /// directory of a new cluster's node (any protocol), `inspect FILE`.
    Snapshot(SnapshotArgs),
}

impl EdgeCommand {
    /// Runs the subcommand of the service `service` whose operator
    /// requests cross the wire `W`; `serve` is the service's own (it starts
    /// the service's server, with [`serve`]).
    pub async fn run<W: OperatorWire>(
        self,
        service: &ServiceCli,
        serve: impl AsyncFnOnce(&ServeArgs) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        match self {
            EdgeCommand::Serve(args) => serve(&args).await,
            EdgeCommand::Demo(args) => demo_command(&args, service).await,
            EdgeCommand::Certs(args) => certs_command(&args),
            EdgeCommand::Member(args) => member_command::<W>(&args).await,
            EdgeCommand::Snapshot(args) => snapshot_command::<W>(&args, service).await,
        }
    }
}

/// The options of `serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// The cluster configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// This node's id (in the file, or a new one with --join).
    #[arg(long)]
    pub id: u64,
    /// `--metrics-addr`.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// `--join` and the addresses of a node the file does not list.
    #[command(flatten)]
    pub join: JoinArgs,
}

/// The options of `demo`.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// raft, multipaxos, paxos or zab.
    #[arg(long, default_value = "raft")]
    pub protocol: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Where to put certificates, configuration, data and logs.
    // Default: the service's `ServiceCli::demo_dir`.
    #[arg(long)]
    pub dir: PathBuf,
}

/// The options of `certs`.
#[derive(Clone, Debug, clap::Args)]
pub struct CertsArgs {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of nodes (ids 1..=N) of a new CA.
    #[arg(
        long,
        required_unless_present = "add_node",
        conflicts_with = "add_node"
    )]
    pub nodes: Option<u64>,
    /// Issue a certificate for one more node with the CA already in
    /// --out (`ca.pem`, `ca-key.pem`), for a node joining the cluster.
    #[arg(long)]
    pub add_node: Option<u64>,
    /// The cluster id the certificates are for.
    // Default: the service's `ServiceCli::name`.
    #[arg(long)]
    pub cluster_id: String,
}

/// The options of a closed-loop load generator (`bench`) that every
/// service's has.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Measured duration, e.g. 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
}

/// The options of `member`.
#[derive(Clone, Debug, clap::Args)]
pub struct MemberArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: MemberAction,
    /// The cluster configuration file.
    #[arg(long, default_value = "cluster.toml", global = true)]
    pub config: PathBuf,
}

/// The options of `snapshot`.
#[derive(Clone, Debug, clap::Args)]
pub struct SnapshotArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SnapshotAction,
    /// The cluster configuration file.
    #[arg(long, default_value = "cluster.toml", global = true)]
    pub config: PathBuf,
}

/// Exit code 3: the outcome of a write is unknown.
pub const EXIT_OUTCOME_UNKNOWN: u8 = 3;

impl ServiceCli {
    /// A service binary's `main`: parses the command line ([`Self::parse`]),
    /// starts logging and the runtime, then `run`s the command. An error is
    /// printed as `error: ...` (exit code 1), except one whose write may or
    /// may not have been applied (`outcome_unknown` gives its reason):
    /// exit code [`EXIT_OUTCOME_UNKNOWN`].
    pub fn main<C: clap::Parser, E: std::fmt::Display, F: Future<Output = Result<ExitCode, E>>>(
        &self,
        run: impl FnOnce(C) -> F,
        outcome_unknown: impl FnOnce(&E) -> Option<String>,
    ) -> ExitCode {
        let cli: C = self.parse();
        init_tracing();
        let runtime = match runtime() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(run(cli)) {
            Ok(code) => code,
            Err(error) => {
                if let Some(reason) = outcome_unknown(&error) {
                    eprintln!(
                        "outcome unknown: the write may or may not have been applied ({reason})"
                    );
                    return ExitCode::from(EXIT_OUTCOME_UNKNOWN);
                }
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// `bench`'s result: `report` as JSON, or `PROTOCOL on CLUSTER: ` and its
/// description.
pub fn print_load_report<R: serde::Serialize>(
    config: &ClusterConfig,
    report: &R,
    description: impl FnOnce(&R) -> String,
    json: bool,
) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!(
            "{} on {}: {}",
            config.protocol,
            config.cluster_id,
            description(report)
        );
    }
    Ok(())
}

/// An I/O error with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct IoContext {
    what: String,
    #[source]
    source: std::io::Error,
}

/// `serve`: one node until Ctrl-C or SIGTERM. A joining node with an
/// empty data directory starts from the membership `initial` asks the
/// cluster for (it learns the truth from the log); `start` starts the
/// node and returns it with the future that serves it (until
/// [`shutdown_signal`]).
pub async fn serve<F: Future<Output = ()>>(
    args: &ServeArgs,
    service: &ServiceCli,
    initial: impl AsyncFnOnce(&ClusterConfig) -> Result<Option<Membership>, CliError>,
    start: impl FnOnce(
        &ClusterConfig,
        NodeEntry,
        Option<Membership>,
    ) -> Result<(Arc<ConsensusNode>, F), CliError>,
) -> Result<(), CliError> {
    let id = args.id;
    let config = ClusterConfig::load(&args.config)?;
    let entry = serve_entry(&config, id, &args.join)?;
    let exporter = args.metrics.install(&config, id)?;
    let mut membership = None;
    if entry.join && is_fresh(&entry.data_dir) {
        membership = initial(&config).await?;
    }
    let (node, run) = start(&config, entry.clone(), membership)?;
    exporter.serve(node, id, &config.tuning)?;
    eprintln!(
        "{} {id} of cluster {:?} running {} (peer {}, clients {}{})",
        service.node_label,
        config.cluster_id,
        config.protocol,
        entry.peer_addr,
        entry.client_addr,
        if entry.join { ", joining" } else { "" }
    );
    run.await;
    Ok(())
}

/// `status --json`: each node's report, or `{"error": ..., "id": ...}`
/// for a node that did not answer, as one pretty-printed JSON array.
pub fn print_status_json<R: serde::Serialize>(
    reports: &[(NodeId, Result<R, String>)],
) -> Result<(), CliError> {
    let values: Vec<serde_json::Value> = reports
        .iter()
        .map(|(id, report)| match report {
            Ok(report) => serde_json::to_value(report).unwrap_or_default(),
            Err(error) => serde_json::json!({ "id": id, "error": error }),
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&values)?);
    Ok(())
}

/// `demo`: a local cluster of child processes until Ctrl-C.
pub async fn demo_command(args: &DemoArgs, service: &ServiceCli) -> Result<(), CliError> {
    let spec = DemoSpec {
        cluster_id: service.demo_cluster_id,
        label: service.demo_label,
        protocol: &args.protocol,
        nodes: args.nodes,
        dir: &args.dir,
    };
    Ok(demo(spec, service.demo_hints).await?)
}

/// `certs`: a cluster CA and node certificates.
pub fn certs_command(args: &CertsArgs) -> Result<(), CliError> {
    let message = certs(
        &args.out,
        args.nodes,
        args.add_node,
        args.cluster_id.clone(),
    )?;
    println!("{message}");
    Ok(())
}

/// Writes a new random secret to `file` (named in `config_path` by
/// `setting`, e.g. `[operator] token_file`), unless one exists and not
/// `force`; returns what to print (`what`: "operator", "admin").
pub fn new_secret(
    file: Option<&Path>,
    config_path: &Path,
    setting: &str,
    what: &str,
    force: bool,
) -> Result<String, CliError> {
    let Some(path) = file else {
        return Err(format!(
            "{} has no `{setting} = \"...\"`: name the file the secret goes to",
            config_path.display()
        )
        .into());
    };
    if path.exists() && !force {
        return Err(format!("{} exists; pass --force to replace it", path.display()).into());
    }
    write_secret(path).map_err(|source| IoContext {
        what: format!("writing {}", path.display()),
        source,
    })?;
    Ok(format!(
        "wrote a new {what} secret to {} (mode 0600)",
        path.display()
    ))
}

/// `member`: membership of a running cluster, over the wire `W`.
pub async fn member_command<W: OperatorWire>(args: &MemberArgs) -> Result<(), CliError> {
    let config = ClusterConfig::load(&args.config)?;
    let Some((command, json)) = args.action.command() else {
        let MemberAction::Token { force } = args.action else {
            return Err("unreachable: only token has no command".into());
        };
        let file = config.operator_token_file.as_deref();
        let message = new_secret(
            file,
            &args.config,
            "[operator] token_file",
            "operator",
            force,
        )?;
        println!("{message}");
        return Ok(());
    };
    let client = MemberClient::<W>::from_config(&config)?;
    let result = client.run(command).await;
    client.close().await;
    let view = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", view.describe());
    }
    Ok(())
}

/// `snapshot`: backup and restore, over the wire `W`.
pub async fn snapshot_command<W: OperatorWire>(
    args: &SnapshotArgs,
    service: &ServiceCli,
) -> Result<(), CliError> {
    let config = ClusterConfig::load(&args.config)?;
    let client = || MemberClient::<W>::from_config(&config).map_err(|e| e.to_string());
    let message = backup::run_action(
        &args.action,
        &config,
        service.name,
        client,
        service.check_backup,
    )
    .await?;
    println!("{message}");
    Ok(())
}

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
