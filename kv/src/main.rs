//! `consensus-kv`: the replicated key-value service (server, client, load
//! generator, local demo cluster, certificate tool).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use consensus_kv::admin::{links_for_groups, parse_groups, AdminClient};
use consensus_kv::cli::{self, EdgeCommand, LoadArgs, ServeArgs, ServiceCli};
use consensus_kv::client::{ClientOptions, KvClient, KvError};
use consensus_kv::config::ClusterConfig;
use consensus_kv::load::{self, LoadOptions};
use consensus_kv::members::{fetch_view, KvWire};
use consensus_kv::server::Server;
use consensus_kv::wire::AdminCommand;
use consensus_service::members::read_secret;

#[derive(Parser)]
#[command(
    name = "consensus-kv",
    version,
    about = "A replicated key-value store on Raft, Multi-Paxos, Paxos or ZAB"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

/// What the shared subcommands say and do in the key-value service.
const SERVICE: ServiceCli = ServiceCli {
    name: "kv",
    node_label: "node",
    demo_cluster_id: "demo",
    demo_label: "cluster",
    demo_dir: "kv-demo",
    demo_nodes_help: "Number of nodes (3 or 5)",
    demo_hints,
    member_about: "Membership of a running cluster: list, add, promote, remove (needs \
                   `[operator] token_file` in the cluster file)",
    check_backup: consensus_kv::server::check_backup_data,
};

#[derive(Subcommand)]
enum Commands {
    #[command(flatten)]
    Edge(EdgeCommand),
    /// Read a key (linearizable unless --stale).
    Get {
        /// The key.
        key: String,
        /// Allow a possibly stale read from any node.
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// Compare-and-set: set KEY to NEW if it holds EXPECTED ("-" means absent / delete).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold ("-": must be absent).
        expected: String,
        /// The new value ("-": delete).
        new: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show every node's role, leader, epoch, indexes and follower lag.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Fault injection on a cluster whose configuration enables it
    /// (`[testing] fault_injection = true`, tests only).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
        /// The cluster configuration file.
        #[arg(long, default_value = "cluster.toml", global = true)]
        config: PathBuf,
    },
    /// Closed-loop load generator: ops/s and latency percentiles.
    Bench(BenchArgs),
}

// The options of `bench` (a struct of its own: ten of them).
#[derive(clap::Args)]
struct BenchArgs {
    /// Concurrent closed-loop clients (one operation outstanding each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Connections carrying the clients (default: one per client). Fewer
    /// connections than clients pipeline several clients' requests on
    /// each connection.
    #[arg(long)]
    connections: Option<usize>,
    #[command(flatten)]
    load: LoadArgs,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Fraction of reads (0.0 - 1.0).
    #[arg(long, default_value_t = 0.0)]
    read_ratio: f64,
    /// Reads may be stale (served by any node without a barrier).
    #[arg(long)]
    stale: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Write a new random secret to the configuration's `testing.admin_token_file`.
    Token {
        /// Replace an existing secret.
        #[arg(long)]
        force: bool,
    },
    /// Partition the cluster: groups separated by `/`, nodes by commas
    /// ("1,2/3"); a node in two groups is a bridge ("1,2/2,3").
    Partition {
        /// The groups.
        groups: String,
    },
    /// Lift every partition.
    Heal,
    /// Show each node's blocked links.
    Show,
}

#[derive(clap::Args)]
struct Target {
    /// The cluster configuration file.
    #[arg(long, default_value = "cluster.toml")]
    config: PathBuf,
    /// Give up after this long.
    #[arg(long, default_value = "10s", value_parser = cli::parse_duration)]
    timeout: Duration,
}

impl Target {
    fn load(&self) -> Result<(ClusterConfig, KvClient)> {
        let config = ClusterConfig::load(&self.config)?;
        let options = ClientOptions {
            operation_timeout: self.timeout,
            ..ClientOptions::default()
        };
        let client = KvClient::from_config(&config, options)?;
        Ok((config, client))
    }
}

fn value_arg(text: &str) -> Option<Bytes> {
    (text != "-").then(|| Bytes::from(text.to_string()))
}

fn show(value: &Option<Bytes>) -> String {
    match value {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => "(absent)".into(),
    }
}

/// Exit code 2: a compare-and-set did not match.
const EXIT_CAS_MISMATCH: u8 = 2;

fn main() -> ExitCode {
    SERVICE.main(run, outcome_unknown)
}

/// Why the write of a failed command may or may not have been applied.
fn outcome_unknown(error: &anyhow::Error) -> Option<String> {
    match error.downcast_ref::<KvError>()? {
        KvError::OutcomeUnknown(reason) => Some(reason.to_string()),
        _ => None,
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Commands::Edge(command) => command
            .run::<KvWire>(&SERVICE, cmd_serve)
            .await
            .map_err(anyhow::Error::from_boxed)?,
        Commands::Get { key, stale, target } => cmd_get(&key, stale, &target).await?,
        Commands::Put { key, value, target } => cmd_put(&key, value, &target).await?,
        Commands::Delete { key, target } => cmd_delete(&key, &target).await?,
        Commands::Cas {
            key,
            expected,
            new,
            target,
        } => return cmd_cas(&key, &expected, &new, &target).await,
        Commands::Status { json, target } => cmd_status(&target, json).await?,
        Commands::Admin { action, config } => cmd_admin(&config, action).await?,
        Commands::Bench(args) => cmd_bench(args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `serve`: one node until Ctrl-C or SIGTERM.
async fn cmd_serve(args: &ServeArgs) -> Result<(), cli::CliError> {
    // A file size limit (RLIMIT_FSIZE) must fail the write with
    // EFBIG, which the store reports, instead of killing the node.
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let initial = async |config: &ClusterConfig| -> Result<_, cli::CliError> {
        let Some(path) = &config.operator_token_file else {
            return Ok(None);
        };
        let token = read_secret(path)?;
        let within = Duration::from_secs(10);
        match fetch_view(config, args.id, token, within).await {
            Ok(view) => Ok(Some(view.membership.leave_joint())),
            Err(error) => {
                eprintln!(
                    "warning: no node answered with the membership ({error}); starting from the seeds"
                );
                Ok(None)
            }
        }
    };
    let start = |config: &ClusterConfig, entry, initial| -> Result<_, cli::CliError> {
        let server = Server::start_entry(config, entry, initial)?;
        Ok((server.node().clone(), server.run(cli::shutdown_signal())))
    };
    cli::serve(args, &SERVICE, initial, start).await
}

/// The commands `demo` suggests.
fn demo_hints(config: &str) -> Vec<String> {
    vec![
        format!("consensus-kv put greeting hello --config {config}"),
        format!("consensus-kv get greeting --config {config}"),
        format!("consensus-kv status --config {config}"),
    ]
}

/// `get`.
async fn cmd_get(key: &str, stale: bool, target: &Target) -> Result<()> {
    let (_, client) = target.load()?;
    let value = client.get(key, stale).await?;
    println!("{}", show(&value));
    if stale {
        eprintln!("note: --stale read from one node; it may miss recent writes");
    }
    Ok(())
}

/// `put`.
async fn cmd_put(key: &str, value: String, target: &Target) -> Result<()> {
    let (_, client) = target.load()?;
    client.put(key, Bytes::from(value)).await?;
    println!("ok");
    Ok(())
}

/// `delete`.
async fn cmd_delete(key: &str, target: &Target) -> Result<()> {
    let (_, client) = target.load()?;
    let existed = client.delete(key).await?;
    println!("{}", if existed { "deleted" } else { "absent" });
    Ok(())
}

/// `cas`: exit code 2 when the value did not match.
async fn cmd_cas(key: &str, expected: &str, new: &str, target: &Target) -> Result<ExitCode> {
    let (_, client) = target.load()?;
    let (swapped, previous) = client.cas(key, value_arg(expected), value_arg(new)).await?;
    if swapped {
        println!("swapped (was {})", show(&previous));
        Ok(ExitCode::SUCCESS)
    } else {
        println!("not swapped: the value is {}", show(&previous));
        Ok(ExitCode::from(EXIT_CAS_MISMATCH))
    }
}

/// `bench`: the closed-loop load generator.
async fn cmd_bench(args: BenchArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.read_ratio) {
        bail!("--read-ratio must be between 0.0 and 1.0");
    }
    let config = ClusterConfig::load(&args.target.config)?;
    let options = LoadOptions {
        clients: args.clients,
        connections: args.connections,
        duration: args.load.duration,
        warmup: args.load.warmup,
        value_bytes: args.load.value_bytes,
        keys: args.keys,
        read_ratio: args.read_ratio,
        stale_reads: args.stale,
    };
    let report = load::run(&config, &options).await?;
    cli::print_load_report(&config, &report, load::LoadReport::describe, args.json)
        .map_err(anyhow::Error::from_boxed)
}

/// `admin`: fault injection on a cluster that enables it.
async fn cmd_admin(config_path: &Path, action: AdminAction) -> Result<()> {
    let config = ClusterConfig::load(config_path)?;
    if let AdminAction::Token { force } = action {
        let file = config.testing.admin_token_file.as_deref();
        let setting = "[testing] admin_token_file";
        let message = cli::new_secret(file, config_path, setting, "admin", force)
            .map_err(anyhow::Error::from_boxed)?;
        println!("{message}");
        return Ok(());
    }
    let admin = AdminClient::from_config(&config)?;
    let ids = admin.node_ids();
    let command = match action {
        AdminAction::Token { .. } => unreachable!("handled above"),
        AdminAction::Partition { groups } => {
            let groups = parse_groups(&groups).map_err(anyhow::Error::msg)?;
            AdminCommand::SetBlocked {
                links: links_for_groups(&groups).into_iter().collect(),
            }
        }
        AdminAction::Heal => AdminCommand::Heal,
        AdminAction::Show => AdminCommand::Show,
    };
    let mut failed = false;
    for id in ids {
        match admin.send(id, command.clone()).await {
            Ok(links) if links.is_empty() => println!("node {id}: no blocked link"),
            Ok(links) => {
                let shown: Vec<String> = links.iter().map(|(a, b)| format!("{a}->{b}")).collect();
                println!("node {id}: blocks {}", shown.join(" "));
            }
            Err(error) => {
                failed = true;
                println!("node {id}: {error}");
            }
        }
    }
    admin.close().await;
    if failed {
        bail!("some nodes did not apply the command");
    }
    Ok(())
}

/// `status`: every node's role, leader, epoch, indexes and lag.
async fn cmd_status(target: &Target, json: bool) -> Result<()> {
    let (config, client) = target.load()?;
    let mut reports = Vec::new();
    for node in &config.nodes {
        let report = client.status(node.id).await.map_err(|e| e.to_string());
        reports.push((node.id, report));
    }
    if json {
        return cli::print_status_json(&reports).map_err(anyhow::Error::from_boxed);
    }
    println!(
        "{:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>6} {:>10}  lag",
        "node", "role", "leader", "epoch", "commit", "applied", "keys", "state crc"
    );
    for (id, report) in reports {
        match report {
            Ok(r) => {
                let lag = r
                    .follower_lag
                    .iter()
                    .map(|(id, lag)| format!("{id}:{lag}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                println!(
                    "{:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>6} {:>10x}  {}",
                    r.id,
                    r.role.to_string(),
                    r.leader
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.epoch,
                    r.commit_index,
                    r.applied_index,
                    r.keys,
                    r.state_crc,
                    lag
                );
            }
            Err(error) => println!("{id:>4} unreachable: {error}"),
        }
    }
    Ok(())
}
