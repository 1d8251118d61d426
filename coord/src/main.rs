//! `consensus-coord`: the coordination service (server, local demo cluster,
//! certificates) and its command-line client.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use consensus_coord::client::{ClientError, ClientOptions, CoordClient, Read, Watch};
use consensus_coord::load::{self, LoadOptions, WriteOp};
use consensus_coord::members::{CoordWire, MemberClient, MemberCommand};
use consensus_coord::recipes::{Election, Lock, LostReason};
use consensus_coord::server::Server;
use consensus_coord::{ClusterConfig, CreateMode, Stat};
use consensus_service::cli::{self, EdgeCommand, LoadArgs, ServeArgs, ServiceCli};

#[derive(Parser)]
#[command(
    name = "consensus-coord",
    version,
    about = "A ZooKeeper-style coordination service on Raft, Multi-Paxos, Paxos or ZAB"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

/// What the shared subcommands say and do in the coordination service.
const SERVICE: ServiceCli = ServiceCli {
    name: "coord",
    node_label: "coordination node",
    demo_cluster_id: "coord",
    demo_label: "coordination cluster",
    demo_dir: "coord-demo",
    demo_nodes_help: "Number of nodes",
    demo_hints,
    member_about: "Membership of a running cluster: list, add, promote, remove (needs \
                   `[operator] token_file` in the cluster file). A node added later is listed \
                   in the file with `join = true`",
    check_backup: consensus_coord::server::check_backup_data,
};

#[derive(Subcommand)]
enum Commands {
    #[command(flatten)]
    Edge(EdgeCommand),
    /// Every node's role, indexes, sessions and state digest.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Create a node: -e ephemeral (lives as long as this command's
    /// session, i.e. until it exits), -s sequential.
    Create {
        /// Ephemeral.
        #[arg(short = 'e')]
        ephemeral: bool,
        /// Sequential.
        #[arg(short = 's')]
        sequential: bool,
        /// The path (for -s, the prefix).
        path: String,
        /// The data.
        #[arg(default_value = "")]
        data: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print a node's data; -w waits for the next change and prints it.
    Get {
        /// Leave a watch and wait for it.
        #[arg(short = 'w')]
        watch: bool,
        /// Show the stat too.
        #[arg(long)]
        stat: bool,
        /// Linearizable read (sync barrier first).
        #[arg(long)]
        linearizable: bool,
        /// The path.
        path: String,
        #[command(flatten)]
        target: Target,
    },
    /// Replace a node's data (only at version -v, if given).
    Set {
        /// The path.
        path: String,
        /// The data.
        data: String,
        /// Required version.
        #[arg(short = 'v')]
        version: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a node (only at version -v, if given).
    Delete {
        /// The path.
        path: String,
        /// Required version.
        #[arg(short = 'v')]
        version: Option<u32>,
        #[command(flatten)]
        target: Target,
    },
    /// List children; -w waits for the next children change and prints it.
    Ls {
        /// Leave a watch and wait for it.
        #[arg(short = 'w')]
        watch: bool,
        /// Linearizable read (sync barrier first).
        #[arg(long)]
        linearizable: bool,
        /// The path.
        path: String,
        #[command(flatten)]
        target: Target,
    },
    /// Bring the connected node up to date with the leader.
    Sync {
        /// The path.
        path: String,
        #[command(flatten)]
        target: Target,
    },
    /// Campaign in election NAME (directory /election/NAME); prints
    /// `leader NAME token N` once elected and leads until interrupted or
    /// until leadership is lost (exit code 4).
    Elect {
        /// The election.
        name: String,
        /// Data to store in the candidate node.
        #[arg(long, default_value = "")]
        data: String,
        /// Also print `events N` whenever a watch notification arrives.
        #[arg(long)]
        print_events: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Run COMMAND while holding lock NAME (directory /locks/NAME); the
    /// fencing token is in $COORD_FENCING_TOKEN. The command is killed if
    /// the lock is lost (exit code 4).
    Lock {
        /// The lock.
        name: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Closed-loop write load: each client is a session on its own
    /// connection writing one operation at a time (like `consensus-kv bench`).
    Bench {
        /// Concurrent clients (sessions).
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// The write: `set` (data of the client's own node) or `create`
        /// (ephemeral sequential nodes).
        #[arg(long, value_enum, default_value = "set")]
        op: WriteOp,
        #[command(flatten)]
        load: LoadArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// The cluster configuration file.
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct Target {
    /// The cluster configuration file.
    #[arg(long, default_value = "cluster.toml")]
    config: PathBuf,
    /// Give up on one operation after this long.
    #[arg(long, default_value = "15s", value_parser = cli::parse_duration)]
    timeout: Duration,
    /// The session timeout.
    #[arg(long, default_value = "10s", value_parser = cli::parse_duration)]
    session_timeout: Duration,
    /// Connect to this node first.
    #[arg(long)]
    node: Option<u64>,
}

impl Target {
    async fn connect(&self) -> Result<(ClusterConfig, CoordClient)> {
        let config = ClusterConfig::load(&self.config)?;
        let options = ClientOptions {
            session_timeout: self.session_timeout,
            operation_timeout: self.timeout,
            prefer: self.node,
        };
        let client = CoordClient::connect_config(&config, options).await?;
        Ok((config, client))
    }
}

/// Exit code 4: leadership / lock lost.
const EXIT_LOST: u8 = 4;

fn main() -> ExitCode {
    SERVICE.main(run, outcome_unknown)
}

/// Why the write of a failed command may or may not have been applied.
fn outcome_unknown(error: &anyhow::Error) -> Option<String> {
    match error.downcast_ref::<ClientError>()? {
        ClientError::OutcomeUnknown(reason) => Some(reason.to_string()),
        _ => None,
    }
}

fn show_stat(stat: &Stat) -> String {
    format!(
        "created={} modified={} children_modified={} version={} children_version={} ephemeral_owner={:#x} data_length={} children={}",
        stat.created,
        stat.modified,
        stat.children_modified,
        stat.version,
        stat.children_version,
        stat.ephemeral_owner,
        stat.data_length,
        stat.children
    )
}

/// How `get` and `ls` read: `-w` leaves a watch, `--linearizable` syncs
/// first.
fn read(watch: bool, linearizable: bool) -> Read {
    Read {
        watch,
        linearizable,
    }
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Commands::Edge(command) => command
            .run::<CoordWire>(&SERVICE, cmd_serve)
            .await
            .map_err(anyhow::Error::from_boxed)?,
        Commands::Status { json, target } => cmd_status(&target, json).await?,
        Commands::Create {
            ephemeral,
            sequential,
            path,
            data,
            target,
        } => {
            cmd_create(
                &path,
                data,
                CreateMode::from_flags(ephemeral, sequential),
                &target,
            )
            .await?
        }
        Commands::Get {
            watch,
            stat,
            linearizable,
            path,
            target,
        } => cmd_get(&path, read(watch, linearizable), stat, &target).await?,
        Commands::Set {
            path,
            data,
            version,
            target,
        } => cmd_set(&path, data, version, &target).await?,
        Commands::Delete {
            path,
            version,
            target,
        } => cmd_delete(&path, version, &target).await?,
        Commands::Ls {
            watch,
            linearizable,
            path,
            target,
        } => cmd_ls(&path, read(watch, linearizable), &target).await?,
        Commands::Sync { path, target } => cmd_sync(&path, &target).await?,
        Commands::Elect {
            name,
            data,
            print_events,
            target,
        } => return cmd_elect(&name, data, print_events, &target).await,
        Commands::Lock {
            name,
            command,
            target,
        } => return cmd_lock(&name, &command, &target).await,
        Commands::Bench {
            clients,
            op,
            load,
            json,
            config,
        } => {
            let options = LoadOptions {
                clients,
                duration: load.duration,
                warmup: load.warmup,
                value_bytes: load.value_bytes,
                op,
            };
            cmd_bench(&config, &options, json).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench`: the closed-loop write load; one line (or JSON) of results.
async fn cmd_bench(config: &Path, options: &LoadOptions, json: bool) -> Result<()> {
    let config = ClusterConfig::load(config)?;
    let report = load::run(&config, options).await?;
    cli::print_load_report(&config, &report, load::LoadReport::describe, json)
        .map_err(anyhow::Error::from_boxed)
}

/// `serve`: one node until Ctrl-C or SIGTERM.
async fn cmd_serve(args: &ServeArgs) -> Result<(), cli::CliError> {
    let initial = async |config: &ClusterConfig| -> Result<_, cli::CliError> {
        let client = MemberClient::from_config(config)?;
        let mut initial = None;
        for other in config.nodes.iter().map(|n| n.id).filter(|n| *n != args.id) {
            if let Ok(Ok(view)) = client
                .send_to(other, MemberCommand::List, Duration::from_secs(2))
                .await
            {
                initial = Some(view.membership.leave_joint());
                break;
            }
        }
        client.close().await;
        if initial.is_none() {
            eprintln!("warning: no node answered with the membership; starting from the seeds");
        }
        Ok(initial)
    };
    let start = |config: &ClusterConfig, entry, initial| -> Result<_, cli::CliError> {
        let server = Server::start_entry(config, entry, initial)?;
        Ok((server.node().clone(), server.run(cli::shutdown_signal())))
    };
    cli::serve(args, &SERVICE, initial, start).await
}

/// The commands `demo` suggests.
fn demo_hints(config: &str) -> Vec<String> {
    let c = config;
    vec![
        format!("consensus-coord create /app hello --config {c}"),
        format!("consensus-coord get -w /app --config {c}     (and in another shell: consensus-coord set /app bye --config {c})"),
        format!("consensus-coord elect scheduler --config {c}  (in several shells; Ctrl-C the leader)"),
        format!("consensus-coord lock reports --config {c} -- sh -c 'echo token $COORD_FENCING_TOKEN; sleep 5'"),
        format!("consensus-coord status --config {c}"),
    ]
}

/// `create`.
async fn cmd_create(path: &str, data: String, mode: CreateMode, target: &Target) -> Result<()> {
    let (_, client) = target.connect().await?;
    let created = client.create(path, Bytes::from(data), mode).await?;
    say(&created);
    if mode.is_ephemeral() {
        eprintln!("note: the ephemeral node is deleted now that this command's session ends");
    }
    client.close().await?;
    Ok(())
}

/// `get` (and `-w`: wait for the watch).
async fn cmd_get(path: &str, read: Read, stat: bool, target: &Target) -> Result<()> {
    let (_, client) = target.connect().await?;
    let (data, node_stat, handle) = client.get(path, read).await?;
    say(&String::from_utf8_lossy(&data));
    if stat {
        say(&show_stat(&node_stat));
    }
    wait_for_watch(handle).await?;
    client.close().await?;
    Ok(())
}

/// With `-w`: waits for the watch and prints its event.
async fn wait_for_watch(handle: Option<Watch>) -> Result<()> {
    if let Some(handle) = handle {
        let event = handle.await?;
        say(&format!(
            "watch: {} {} at index {}",
            event.kind, event.path, event.index
        ));
    }
    Ok(())
}

/// `set`.
async fn cmd_set(path: &str, data: String, version: Option<u32>, target: &Target) -> Result<()> {
    let (_, client) = target.connect().await?;
    let stat = client.set_data(path, Bytes::from(data), version).await?;
    say(&format!("version {}", stat.version));
    client.close().await?;
    Ok(())
}

/// `delete`.
async fn cmd_delete(path: &str, version: Option<u32>, target: &Target) -> Result<()> {
    let (_, client) = target.connect().await?;
    client.delete(path, version).await?;
    say("deleted");
    client.close().await?;
    Ok(())
}

/// `ls` (and `-w`: wait for the watch).
async fn cmd_ls(path: &str, read: Read, target: &Target) -> Result<()> {
    let (_, client) = target.connect().await?;
    let (children, handle) = client.children(path, read).await?;
    say(&format!("[{}]", children.join(", ")));
    wait_for_watch(handle).await?;
    client.close().await?;
    Ok(())
}

/// `sync`.
async fn cmd_sync(path: &str, target: &Target) -> Result<()> {
    let (_, client) = target.connect().await?;
    let index = client.sync(path).await?;
    say(&format!("synced at index {index}"));
    client.close().await?;
    Ok(())
}

fn named_dir(root: &str, name: &str) -> Result<String> {
    let dir = format!("{root}/{name}");
    consensus_coord::path::validate(&dir).map_err(|e| anyhow::anyhow!("bad name {name:?}: {e}"))?;
    Ok(dir)
}

/// `elect`: campaign, then lead until interrupted or leadership is lost.
async fn cmd_elect(
    name: &str,
    data: String,
    print_events: bool,
    target: &Target,
) -> Result<ExitCode> {
    let dir = named_dir("/election", name)?;
    let (_, client) = target.connect().await?;
    say(&format!("session {:#x}", client.session_id()));
    let election = Election::new(&client, &dir).data(Bytes::from(data));
    let reporter = print_events.then(|| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let events = client.events_received();
                if events != seen {
                    seen = events;
                    say(&format!("events {events}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    });
    let leadership = tokio::select! {
        result = election.campaign() => result?,
        _ = cli::shutdown_signal() => {
            let _ = client.close().await;
            return Ok(ExitCode::SUCCESS);
        }
    };
    say(&format!(
        "leader {name} token {} node {}",
        leadership.token(),
        leadership.path()
    ));
    let code = tokio::select! {
        reason = leadership.lost() => {
            say(&format!("lost {}", describe(reason)));
            ExitCode::from(EXIT_LOST)
        }
        _ = cli::shutdown_signal() => ExitCode::SUCCESS,
    };
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    let _ = client.close().await;
    Ok(code)
}

fn describe(reason: LostReason) -> &'static str {
    match reason {
        LostReason::Deleted => "node-deleted",
        LostReason::SessionExpired => "session-expired",
        LostReason::Disconnected => "disconnected",
    }
}

/// `lock`: run a command while holding the lock.
async fn cmd_lock(name: &str, command: &[String], target: &Target) -> Result<ExitCode> {
    let dir = named_dir("/locks", name)?;
    let (_, client) = target.connect().await?;
    let guard = Lock::new(&client, &dir).acquire().await?;
    eprintln!("lock {name} acquired, fencing token {}", guard.token());
    let (program, arguments) = command.split_first().expect("clap requires a command");
    let mut child = tokio::process::Command::new(program)
        .args(arguments)
        .env("COORD_FENCING_TOKEN", guard.token().to_string())
        .env("COORD_LOCK_PATH", guard.path())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let code = tokio::select! {
        status = child.wait() => {
            let status = status.context("waiting for the command")?;
            ExitCode::from(status.code().map(|c| c as u8).unwrap_or(1))
        }
        reason = guard.lost() => {
            eprintln!("lock {name} lost ({}); stopping the command", describe(reason));
            let _ = child.kill().await;
            ExitCode::from(EXIT_LOST)
        }
    };
    let _ = guard.release().await;
    let _ = client.close().await;
    Ok(code)
}

/// `status`: every node's role, indexes, sessions and digest.
async fn cmd_status(target: &Target, json: bool) -> Result<()> {
    let config = ClusterConfig::load(&target.config)?;
    let mut reports = Vec::new();
    for node in &config.nodes {
        let report = consensus_coord::client::admin_status(&config, node.id, target.timeout)
            .await
            .map_err(|e| e.to_string());
        reports.push((node.id, report));
    }
    if json {
        return cli::print_status_json(&reports).map_err(anyhow::Error::from_boxed);
    }
    println!(
        "{:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>7} {:>8} {:>5} {:>10}",
        "node",
        "role",
        "leader",
        "epoch",
        "commit",
        "applied",
        "znodes",
        "sessions",
        "conns",
        "digest"
    );
    for (id, report) in reports {
        match report {
            Ok(r) => println!(
                "{:>4} {:<10} {:>6} {:>8} {:>8} {:>8} {:>7} {:>8} {:>5} {:>10x}{}",
                r.id,
                r.role.to_string(),
                r.leader
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.epoch,
                r.commit_index,
                r.applied_index,
                r.znodes,
                r.sessions,
                r.connections,
                r.digest,
                if r.expirer { "  (expirer)" } else { "" }
            ),
            Err(error) => println!("{id:>4} unreachable: {error}"),
        }
    }
    Ok(())
}
