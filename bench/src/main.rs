//! `bench`: the side-by-side comparison of the four protocols.
//!
//! ```text
//! cargo run --release -p bench -- compare --quick
//! cargo run --release -p bench -- compare [--quick] [--protocols raft,multipaxos,paxos,zab]
//!     [--nodes 3] [--clients 1,16,64,256] [--storage disk|memory] [--out DIR] [--service]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bench::compare::{compare, CompareOptions};
use bench::report::{text_table, write_report};
use bench::settings::StorageKind;
use clap::{Parser, Subcommand};
use consensus::Protocol;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Paxos, Multi-Paxos, Raft and ZAB through the same runtime, side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the machine's floor, then every protocol; print a table and
    /// write results.json and report.html.
    Compare {
        /// Shorter runs (under 3 minutes on 2 cores): 2 s per point, 5 failovers.
        #[arg(long)]
        quick: bool,
        /// Comma-separated protocols.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "raft,multipaxos,paxos,zab"
        )]
        protocols: Vec<String>,
        /// Nodes per cluster.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Comma-separated closed-loop client counts.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        clients: Vec<usize>,
        /// disk (fdatasync on) or memory.
        #[arg(long, default_value = "disk")]
        storage: StorageKind,
        /// Where to write results.json and report.html.
        #[arg(long, default_value = "compare-out")]
        out: PathBuf,
        /// Also measure the key-value service: throughput and latency, and
        /// failover by `kill -9` / `SIGSTOP` of the leader (always on without --quick).
        #[arg(long)]
        service: bool,
        /// Leader failures per protocol (default 10, 5 with --quick): library-level
        /// stops and, with --service, `kill -9` and `SIGSTOP` of the leader's
        /// process (--quick takes at most 3 SIGSTOP samples).
        #[arg(long)]
        failovers: Option<usize>,
        /// Parent directory of the temporary data directories.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Timing profile of every protocol: default (50 ms heartbeat,
        /// 150-250 ms election timeout) or fast (20 ms, 60-100 ms).
        #[arg(long, default_value = "default")]
        timing: String,
        /// Measured seconds per load point (default 5, 2 with --quick); a
        /// long point at 256 clients is the spurious-election check of a
        /// timing profile (the table's `elections` column must stay 0).
        #[arg(long)]
        measure_secs: Option<u64>,
    },
    /// (internal) One key-value node, for the service-level measurement.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: u64,
    },
    /// (internal) The service-level load generator, printing JSON.
    #[command(hide = true)]
    Load {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        clients: usize,
        /// Connections carrying the clients (default: one per client).
        #[arg(long)]
        connections: Option<usize>,
        #[arg(long)]
        duration_ms: u64,
        #[arg(long)]
        warmup_ms: u64,
        #[arg(long, default_value_t = 100)]
        value_bytes: usize,
    },
}

fn main() -> ExitCode {
    // RUST_LOG=raft=debug (for example) shows a core's elections during a run.
    consensus_kv::cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compare {
            quick,
            protocols,
            nodes,
            clients,
            storage,
            out,
            service,
            failovers,
            data_dir,
            timing,
            measure_secs,
        } => {
            let mut options = CompareOptions::new(quick);
            options.settings.tuning =
                consensus::Tuning::profile(&timing).map_err(anyhow::Error::msg)?;
            options.protocols = protocols
                .iter()
                .map(|p| p.parse::<Protocol>())
                .collect::<Result<_, _>>()?;
            options.clients = clients;
            options.service |= service;
            if let Some(failovers) = failovers {
                options.failovers = failovers;
            }
            if let Some(seconds) = measure_secs {
                anyhow::ensure!(seconds > 0, "--measure-secs must be at least 1");
                options.measure = Duration::from_secs(seconds);
            }
            options.settings.nodes = nodes;
            options.settings.storage = storage;
            options.settings.data_dir = data_dir;
            options.service_binary = Some(std::env::current_exe().context("locating this binary")?);
            eprintln!(
                "settings (the same for every protocol): {}",
                options.settings.describe()
            );
            let comparison = compare(&options).await.map_err(anyhow::Error::msg)?;
            println!("{}", text_table(&comparison));
            write_report(&comparison, &out).map_err(anyhow::Error::msg)?;
            println!(
                "wrote {} and {}",
                out.join("results.json").display(),
                out.join("report.html").display()
            );
        }
        Command::Serve { config, id } => {
            let config = consensus_kv::config::ClusterConfig::load(&config)?;
            let server = consensus_kv::server::Server::start(&config, id)?;
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            server
                .run(async move {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = terminate.recv() => {}
                    }
                })
                .await;
        }
        Command::Load {
            config,
            clients,
            connections,
            duration_ms,
            warmup_ms,
            value_bytes,
        } => {
            let config = consensus_kv::config::ClusterConfig::load(&config)?;
            let options = consensus_kv::load::LoadOptions {
                clients,
                connections,
                duration: Duration::from_millis(duration_ms),
                warmup: Duration::from_millis(warmup_ms),
                value_bytes,
                keys: 1000,
                read_ratio: 0.0,
                stale_reads: false,
            };
            let report = consensus_kv::load::run(&config, &options).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}
