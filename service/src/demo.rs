//! A cluster of `consensus-kv serve` child processes on this machine: what
//! `consensus-kv demo` runs, and what the multi-process tests, the fault
//! harness and the service-level benchmark drive.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consensus::{certs, ClusterId, NodeId, Tuning};

use crate::config::ClusterConfig;

/// The variable tokio reads for a multi-thread runtime's worker count.
const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// Picks `count` distinct free UDP ports on 127.0.0.1. The sockets are
/// closed before returning, so a port could in principle be taken by
/// someone else before the node binds it; on loopback in a test or demo
/// this is good enough, and the node then fails with a clear bind error.
pub fn free_udp_addrs(count: usize) -> std::io::Result<Vec<SocketAddr>> {
    let sockets = (0..count)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    sockets.iter().map(|s| s.local_addr()).collect()
}

/// Picks `count` distinct free TCP ports on 127.0.0.1 (the same caveat as
/// [`free_udp_addrs`]).
pub fn free_tcp_addrs(count: usize) -> std::io::Result<Vec<SocketAddr>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners.iter().map(|l| l.local_addr()).collect()
}

/// Writes certificates and `cluster.toml` for an `nodes`-node cluster of
/// `protocol` on loopback into `dir`; returns the configuration path.
pub fn prepare(
    dir: &Path,
    cluster_id: &str,
    protocol: &str,
    nodes: u64,
    tuning: Option<&Tuning>,
) -> Result<PathBuf, String> {
    prepare_with_metrics(dir, cluster_id, protocol, nodes, tuning, false)
}

/// [`prepare`], and with `metrics` each node also gets a free loopback
/// `metrics_addr` (its `/metrics` and `/health` endpoint).
pub fn prepare_with_metrics(
    dir: &Path,
    cluster_id: &str,
    protocol: &str,
    nodes: u64,
    tuning: Option<&Tuning>,
    metrics: bool,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let cluster = ClusterId::new(cluster_id.to_string()).map_err(|e| e.to_string())?;
    certs::generate_cluster_dir(&dir.join("certs"), &cluster, 1..=nodes)
        .map_err(|e| e.to_string())?;
    let addrs =
        free_udp_addrs(2 * nodes as usize).map_err(|e| format!("finding free ports: {e}"))?;
    let metrics_addrs = if metrics {
        free_tcp_addrs(nodes as usize).map_err(|e| format!("finding free ports: {e}"))?
    } else {
        Vec::new()
    };
    let entries: Vec<(NodeId, SocketAddr, SocketAddr, Option<SocketAddr>)> = (1..=nodes)
        .map(|id| {
            let i = (id - 1) as usize;
            (
                id,
                addrs[2 * i],
                addrs[2 * i + 1],
                metrics_addrs.get(i).copied(),
            )
        })
        .collect();
    let path = dir.join("cluster.toml");
    std::fs::write(
        &path,
        ClusterConfig::render_with_metrics(cluster_id, protocol, &entries, tuning),
    )
    .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// Child processes serving one cluster configuration.
pub struct LocalCluster {
    binary: PathBuf,
    config_path: PathBuf,
    /// The parsed configuration.
    pub config: ClusterConfig,
    children: BTreeMap<NodeId, Child>,
    log_dir: PathBuf,
}

impl LocalCluster {
    /// Prepares to run `binary serve --config <config_path> --id N` for each
    /// node. Node output goes to `<config dir>/logs/node-N.log`.
    pub fn new(
        binary: impl Into<PathBuf>,
        config_path: impl Into<PathBuf>,
    ) -> Result<Self, String> {
        let config_path = config_path.into();
        let config = ClusterConfig::load(&config_path).map_err(|e| e.to_string())?;
        let log_dir = config_path.parent().unwrap_or(Path::new(".")).join("logs");
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| format!("creating {}: {e}", log_dir.display()))?;
        Ok(LocalCluster {
            binary: binary.into(),
            config_path,
            config,
            children: BTreeMap::new(),
            log_dir,
        })
    }

    /// The async worker threads each node gets: `TOKIO_WORKER_THREADS`
    /// when the caller set it, else this machine's cores divided among
    /// the nodes (at least one). Every node of a local cluster shares one
    /// machine; with a worker per core in each process, 3 nodes on 2
    /// cores wake each other across 6 threads and the scheduler's hand-offs
    /// cost more than the parallelism gives (measured in
    /// docs/operations.md, "Local clusters").
    fn worker_threads(&self) -> String {
        std::env::var(WORKER_THREADS_ENV).unwrap_or_else(|_| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / self.config.nodes.len().max(1)).max(1).to_string()
        })
    }

    /// Every node id of the configuration.
    pub fn ids(&self) -> Vec<NodeId> {
        self.config.nodes.iter().map(|n| n.id).collect()
    }

    /// The log file of node `id`.
    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.log_dir.join(format!("node-{id}.log"))
    }

    /// Reads the configuration file again (after nodes were appended to it).
    pub fn reload(&mut self) -> Result<(), String> {
        self.config = ClusterConfig::load(&self.config_path).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Starts node `id` (a no-op if it runs).
    pub fn start(&mut self, id: NodeId) -> Result<(), String> {
        self.start_with(id, &[])
    }

    /// Starts node `id` with extra `serve` arguments (`--join --peer-addr
    /// A --client-addr B` for a node the file does not list).
    pub fn start_with(&mut self, id: NodeId, extra: &[String]) -> Result<(), String> {
        if self.is_running(id) {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .map_err(|e| format!("opening the log of node {id}: {e}"))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(id.to_string())
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env(WORKER_THREADS_ENV, self.worker_threads())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {} for node {id}: {e}", self.binary.display()))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<(), String> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    /// True if node `id`'s process is alive.
    pub fn is_running(&mut self, id: NodeId) -> bool {
        match self.children.get_mut(&id) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id of node `id`.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    fn signal(&self, id: NodeId, signal: i32) -> Result<(), String> {
        let pid = self
            .pid(id)
            .ok_or_else(|| format!("node {id} is not running"))?;
        // SAFETY: kill(2) with a pid we spawned and a valid signal number.
        let result = unsafe { libc::kill(pid as libc::pid_t, signal) };
        if result == 0 {
            Ok(())
        } else {
            Err(format!(
                "signal {signal} to node {id}: {}",
                std::io::Error::last_os_error()
            ))
        }
    }

    /// `kill -9` node `id` and reaps it.
    pub fn kill(&mut self, id: NodeId) -> Result<(), String> {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Asks node `id` to stop (SIGTERM) and waits up to `timeout`, then kills it.
    pub fn stop(&mut self, id: NodeId, timeout: Duration) -> Result<(), String> {
        if self.signal(id, libc::SIGTERM).is_err() {
            return self.kill(id);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running(id) {
                self.children.remove(&id);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill(id)
    }

    /// Pauses node `id` (SIGSTOP): a stop-the-world pause.
    pub fn pause(&self, id: NodeId) -> Result<(), String> {
        self.signal(id, libc::SIGSTOP)
    }

    /// Resumes a paused node (SIGCONT).
    pub fn resume(&self, id: NodeId) -> Result<(), String> {
        self.signal(id, libc::SIGCONT)
    }

    /// Stops every node (SIGTERM, then SIGKILL after `timeout`).
    pub fn stop_all(&mut self, timeout: Duration) {
        let ids: Vec<NodeId> = self.children.keys().copied().collect();
        for id in &ids {
            let _ = self.resume(*id);
            let _ = self.signal(*id, libc::SIGTERM);
        }
        for id in ids {
            let _ = self.stop(id, timeout);
        }
    }

    /// `kill -9` every node at once (a power loss).
    pub fn kill_all(&mut self) {
        let ids: Vec<NodeId> = self.children.keys().copied().collect();
        for id in ids {
            let _ = self.kill(id);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
