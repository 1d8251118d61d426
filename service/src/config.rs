//! The cluster configuration file (TOML): one file describes the whole
//! cluster, every node reads the same file and picks its own entry by id.
//!
//! ```toml
//! cluster_id = "kv"              # one DNS label: a-z, 0-9, '-'
//! protocol = "raft"              # raft | multipaxos | paxos | zab
//! certs_dir = "certs"            # ca.pem, node-<id>.pem, node-<id>-key.pem
//! data_root = "data"             # node N keeps its log in data_root/node-N
//!
//! [tuning]                       # optional, these are the defaults
//! profile = "default"            # or "fast": 5 / 20 / 60-100 ms (see Tuning::profile);
//!                                # the fields below override the profile
//! tick_ms = 10
//! heartbeat_ms = 50
//! election_timeout_min_ms = 150
//! election_timeout_max_ms = 250
//!
//! [limits]                       # optional
//! value_bytes_max = 1048576
//!
//! [operator]                     # optional: membership changes (`member add/remove/promote`)
//! token_file = "operator-token"  # the secret `member` commands carry; without
//!                                # it every membership change is refused
//!
//! [testing]                      # optional; never in production
//! fault_injection = false        # true: accept the authenticated admin
//!                                # commands that partition this node
//! admin_token_file = "admin-token"  # the shared secret those commands carry
//!
//! [[node]]
//! id = 1
//! peer_addr = "10.0.0.1:7001"    # UDP, consensus traffic (QUIC, mutual TLS)
//! client_addr = "10.0.0.1:7101"  # UDP, client API (QUIC, TLS)
//! # data_dir = "/var/lib/kv"     # optional, overrides data_root/node-1
//! # metrics_addr = "10.0.0.1:9101"  # optional, TCP: plain HTTP `/metrics` and
//! #                              # `/health` (`serve --metrics-addr` overrides it)
//! # join = true                  # added after the cluster was created
//!                                # (`member add`): not part of the initial
//!                                # membership, starts as a joining node
//! ```
//!
//! The nodes without `join = true` are the **seeds**: the initial membership
//! of a new cluster. Once a node has started, the membership committed in
//! the log is the truth (see `consensus_service::members`); the file only
//! says where to find nodes.
//!
//! Relative paths are relative to the directory of the configuration file.
//! Every error names the file, and where it can, the line and the field.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use consensus::{NodeBuilder, NodeId, Protocol, TlsMaterial, Tuning};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;

/// Why a configuration file is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or a field has the wrong type / is missing.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line, column and field).
        message: String,
    },
    /// A value is well-formed but unusable.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// The field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The node id asked for is not in the file.
    #[error("{path}: no [[node]] with id = {id} (the file lists ids {known:?})")]
    UnknownNode {
        /// The file.
        path: PathBuf,
        /// The id asked for.
        id: NodeId,
        /// The ids present.
        known: Vec<NodeId>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster_id: Spanned<String>,
    protocol: Spanned<String>,
    #[serde(default)]
    certs_dir: Option<String>,
    #[serde(default)]
    data_root: Option<String>,
    #[serde(default)]
    tuning: Option<RawTuning>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    testing: Option<RawTesting>,
    #[serde(default)]
    operator: Option<RawOperator>,
    #[serde(rename = "node")]
    nodes: Vec<RawNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTuning {
    profile: Option<Spanned<String>>,
    tick_ms: Option<Spanned<u64>>,
    heartbeat_ms: Option<Spanned<u64>>,
    election_timeout_min_ms: Option<Spanned<u64>>,
    election_timeout_max_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    value_bytes_max: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTesting {
    fault_injection: Option<Spanned<bool>>,
    admin_token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<NodeId>,
    peer_addr: Spanned<String>,
    client_addr: Spanned<String>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    metrics_addr: Option<Spanned<String>>,
    #[serde(default)]
    join: bool,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeEntry {
    /// Node id (>= 1).
    pub id: NodeId,
    /// Consensus traffic address.
    pub peer_addr: SocketAddr,
    /// Client API address.
    pub client_addr: SocketAddr,
    /// Where the node keeps its log.
    pub data_dir: PathBuf,
    /// Where the node serves `/metrics` and `/health` over plain HTTP
    /// (TCP), if anywhere; `serve --metrics-addr` overrides it.
    pub metrics_addr: Option<SocketAddr>,
    /// Added after the cluster was created (`join = true`): not a seed of
    /// the initial membership; the node joins through `member add`.
    pub join: bool,
}

/// The `[testing]` section: switches for fault-injection tests. Everything
/// is off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestingConfig {
    /// Accept the admin commands that install network faults (partitions)
    /// in this node's transport. Off: every admin command is refused.
    pub fault_injection: bool,
    /// The file holding the shared secret that admin commands must carry
    /// (required when `fault_injection` is on). Only the test harness
    /// needs it; key-value clients never read it.
    pub admin_token_file: Option<PathBuf>,
}

/// A validated cluster configuration.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// Cluster id.
    pub cluster_id: String,
    /// The protocol every node runs.
    pub protocol: Protocol,
    /// Certificate directory.
    pub certs_dir: PathBuf,
    /// Protocol timing.
    pub tuning: Tuning,
    /// Largest value a client may write.
    pub value_bytes_max: usize,
    /// The nodes, in id order.
    pub nodes: Vec<NodeEntry>,
    /// Fault-injection switches (all off unless `[testing]` says otherwise).
    pub testing: TestingConfig,
    /// Where nodes keep their logs unless their entry says otherwise
    /// (`data_root/node-<id>`).
    pub data_root: PathBuf,
    /// The secret membership commands must carry (`[operator] token_file`);
    /// without it every membership change is refused.
    pub operator_token_file: Option<PathBuf>,
}

/// Default largest value: 1 MiB.
pub const DEFAULT_VALUE_BYTES_MAX: usize = 1 << 20;

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl ClusterConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path)
    }

    /// Parses and validates configuration text (`path` is used for messages
    /// and to resolve relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let invalid =
            |span: std::ops::Range<usize>, field: &str, message: String| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: line_of(text, span.start),
                field: field.to_string(),
                message,
            };

        if let Err(e) = consensus::ClusterId::new(raw.cluster_id.get_ref().clone()) {
            return Err(invalid(raw.cluster_id.span(), "cluster_id", e.to_string()));
        }
        let protocol: Protocol =
            raw.protocol
                .get_ref()
                .parse()
                .map_err(|e: consensus::ProtocolError| {
                    invalid(raw.protocol.span(), "protocol", e.to_string())
                })?;

        let mut tuning = Tuning::default();
        if let Some(profile) = raw.tuning.as_ref().and_then(|t| t.profile.as_ref()) {
            tuning = Tuning::profile(profile.get_ref())
                .map_err(|message| invalid(profile.span(), "tuning.profile", message))?;
        }
        if let Some(t) = &raw.tuning {
            let set = |value: &Option<Spanned<u64>>, field: &str, target: &mut Duration| {
                if let Some(v) = value {
                    if *v.get_ref() == 0 {
                        return Err(invalid(v.span(), field, "must be at least 1".into()));
                    }
                    *target = Duration::from_millis(*v.get_ref());
                }
                Ok(())
            };
            set(&t.tick_ms, "tuning.tick_ms", &mut tuning.tick)?;
            set(
                &t.heartbeat_ms,
                "tuning.heartbeat_ms",
                &mut tuning.heartbeat_interval,
            )?;
            set(
                &t.election_timeout_min_ms,
                "tuning.election_timeout_min_ms",
                &mut tuning.election_timeout_min,
            )?;
            set(
                &t.election_timeout_max_ms,
                "tuning.election_timeout_max_ms",
                &mut tuning.election_timeout_max,
            )?;
            if tuning.election_timeout_max <= tuning.election_timeout_min {
                let span = t
                    .election_timeout_max_ms
                    .as_ref()
                    .or(t.election_timeout_min_ms.as_ref())
                    .map(|s| s.span())
                    .unwrap_or(0..0);
                return Err(invalid(
                    span,
                    "tuning.election_timeout_max_ms",
                    "must be larger than election_timeout_min_ms".into(),
                ));
            }
            if tuning.heartbeat_interval >= tuning.election_timeout_min {
                let span = t.heartbeat_ms.as_ref().map(|s| s.span()).unwrap_or(0..0);
                return Err(invalid(
                    span,
                    "tuning.heartbeat_ms",
                    "must be well below election_timeout_min_ms (a third or less)".into(),
                ));
            }
        }
        let mut value_bytes_max = DEFAULT_VALUE_BYTES_MAX;
        if let Some(limit) = raw.limits.as_ref().and_then(|l| l.value_bytes_max.as_ref()) {
            if *limit.get_ref() == 0 {
                return Err(invalid(
                    limit.span(),
                    "limits.value_bytes_max",
                    "must be at least 1".into(),
                ));
            }
            value_bytes_max = *limit.get_ref();
        }

        let mut testing = TestingConfig::default();
        if let Some(t) = &raw.testing {
            testing.admin_token_file = t.admin_token_file.as_ref().map(|f| resolve(f.get_ref()));
            if let Some(flag) = &t.fault_injection {
                testing.fault_injection = *flag.get_ref();
                if testing.fault_injection && testing.admin_token_file.is_none() {
                    return Err(invalid(
                        flag.span(),
                        "testing.fault_injection",
                        "needs `testing.admin_token_file`: admin commands are authenticated by \
                         the secret in that file (create one with `consensus-kv admin token --config FILE`)"
                            .into(),
                    ));
                }
            }
        }

        if raw.nodes.iter().all(|n| n.join) {
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                message: "no seed [[node]] entries (without `join = true`): list the nodes the \
                          cluster was created with"
                    .into(),
            });
        }
        let data_root = resolve(raw.data_root.as_deref().unwrap_or("data"));
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        let mut nodes = Vec::new();
        for node in &raw.nodes {
            let id = *node.id.get_ref();
            if id == 0 {
                return Err(invalid(
                    node.id.span(),
                    "node.id",
                    "node ids start at 1".into(),
                ));
            }
            if !ids.insert(id) {
                return Err(invalid(
                    node.id.span(),
                    "node.id",
                    format!("id {id} is listed twice"),
                ));
            }
            let parse_addr =
                |value: &Spanned<String>, field: &str| -> Result<SocketAddr, ConfigError> {
                    value.get_ref().parse().map_err(|e| {
                        invalid(
                            value.span(),
                            field,
                            format!("{:?} is not an IP:port address ({e})", value.get_ref()),
                        )
                    })
                };
            let peer_addr = parse_addr(&node.peer_addr, "node.peer_addr")?;
            let client_addr = parse_addr(&node.client_addr, "node.client_addr")?;
            for (addr, value, field) in [
                (peer_addr, &node.peer_addr, "node.peer_addr"),
                (client_addr, &node.client_addr, "node.client_addr"),
            ] {
                if !addrs.insert(addr) {
                    return Err(invalid(
                        value.span(),
                        field,
                        format!("{addr} is used twice"),
                    ));
                }
            }
            let metrics_addr = node
                .metrics_addr
                .as_ref()
                .map(|addr| parse_addr(addr, "node.metrics_addr"))
                .transpose()?;
            let data_dir = match &node.data_dir {
                Some(dir) => resolve(dir),
                None => data_root.join(format!("node-{id}")),
            };
            nodes.push(NodeEntry {
                id,
                peer_addr,
                client_addr,
                data_dir,
                metrics_addr,
                join: node.join,
            });
        }
        nodes.sort_by_key(|n| n.id);
        Ok(ClusterConfig {
            path: path.to_path_buf(),
            cluster_id: raw.cluster_id.into_inner(),
            protocol,
            certs_dir: resolve(raw.certs_dir.as_deref().unwrap_or("certs")),
            tuning,
            value_bytes_max,
            nodes,
            testing,
            data_root,
            operator_token_file: raw
                .operator
                .as_ref()
                .and_then(|o| o.token_file.as_deref())
                .map(resolve),
        })
    }

    /// The `[testing]` section that turns fault injection on, with the
    /// admin secret in `token_file` (relative to the configuration file's
    /// directory, or absolute). Append it to a rendered configuration.
    pub fn render_testing(token_file: &str) -> String {
        format!("\n[testing]\nfault_injection = true\nadmin_token_file = {token_file:?}\n")
    }

    /// The `[operator]` section naming the file of the secret membership
    /// commands carry (relative to the configuration file's directory, or
    /// absolute). Append it to a rendered configuration.
    pub fn render_operator(token_file: &str) -> String {
        format!("\n[operator]\ntoken_file = {token_file:?}\n")
    }

    /// A `[[node]]` entry marked `join = true` (a node added with `member
    /// add`), to append to a configuration file.
    pub fn render_join(id: NodeId, peer: SocketAddr, client: SocketAddr) -> String {
        format!(
            "\n[[node]]\nid = {id}\npeer_addr = \"{peer}\"\nclient_addr = \"{client}\"\njoin = true\n"
        )
    }

    /// The entry of node `id`.
    pub fn node(&self, id: NodeId) -> Result<&NodeEntry, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| ConfigError::UnknownNode {
                path: self.path.clone(),
                id,
                known: self.nodes.iter().map(|n| n.id).collect(),
            })
    }

    /// A [`NodeBuilder`] for node `id` of this cluster: its protocol,
    /// cluster id, peer address, the other members, data directory, TLS
    /// material and tuning. Callers add what is theirs (a state machine to
    /// `start`, fault injection, limits).
    pub fn node_builder(&self, id: NodeId, tls: TlsMaterial) -> Result<NodeBuilder, ConfigError> {
        let entry = self.node(id)?;
        Ok(self.builder_for(entry, tls))
    }

    /// A [`NodeBuilder`] for `entry` (listed in the file or not: a node
    /// joining with `serve --join --peer-addr A --client-addr B`). The
    /// initial membership is the seeds (the nodes without `join = true`);
    /// it is used only when the data directory is empty, and a node that is
    /// not among them never campaigns: it waits to hear from the cluster,
    /// whose log says the real membership.
    pub fn builder_for(&self, entry: &NodeEntry, tls: TlsMaterial) -> NodeBuilder {
        let id = entry.id;
        NodeBuilder::new(self.protocol, self.cluster_id.clone(), id)
            .listen(entry.peer_addr)
            .peers(
                self.nodes
                    .iter()
                    .filter(|n| n.id != id)
                    .map(|n| (n.id, n.peer_addr)),
            )
            .membership(consensus::Membership::new(self.seed_ids()))
            .data_dir(entry.data_dir.clone())
            .tls(tls)
            .tuning(self.tuning.clone())
    }

    /// The seeds: the nodes without `join = true`, the initial membership.
    pub fn seed_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| !n.join)
            .map(|n| n.id)
            .collect()
    }

    /// The entry of a node that is not in the file, joining with the
    /// addresses given on the command line; its data directory is
    /// `data_dir`, or `data_root/node-<id>`.
    pub fn joining_entry(
        &self,
        id: NodeId,
        peer_addr: SocketAddr,
        client_addr: SocketAddr,
        data_dir: Option<PathBuf>,
    ) -> NodeEntry {
        NodeEntry {
            id,
            peer_addr,
            client_addr,
            data_dir: data_dir.unwrap_or_else(|| self.data_root.join(format!("node-{id}"))),
            metrics_addr: None,
            join: true,
        }
    }

    /// A configuration file text for a cluster on this machine (used by
    /// `demo` and the tests).
    pub fn render(
        cluster_id: &str,
        protocol: &str,
        nodes: &[(NodeId, SocketAddr, SocketAddr)],
        tuning: Option<&Tuning>,
    ) -> String {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|&(id, peer, client)| (id, peer, client, None))
            .collect();
        Self::render_with_metrics(cluster_id, protocol, &nodes, tuning)
    }

    /// [`render`](Self::render), with an optional `metrics_addr` per node
    /// (id, peer address, client address, metrics address).
    pub fn render_with_metrics(
        cluster_id: &str,
        protocol: &str,
        nodes: &[(NodeId, SocketAddr, SocketAddr, Option<SocketAddr>)],
        tuning: Option<&Tuning>,
    ) -> String {
        let mut text = format!(
            "cluster_id = \"{cluster_id}\"\nprotocol = \"{protocol}\"\ncerts_dir = \"certs\"\ndata_root = \"data\"\n"
        );
        if let Some(t) = tuning {
            text.push_str(&format!(
                "\n[tuning]\ntick_ms = {}\nheartbeat_ms = {}\nelection_timeout_min_ms = {}\nelection_timeout_max_ms = {}\n",
                t.tick.as_millis(),
                t.heartbeat_interval.as_millis(),
                t.election_timeout_min.as_millis(),
                t.election_timeout_max.as_millis()
            ));
        }
        for (id, peer, client, metrics) in nodes {
            text.push_str(&format!(
                "\n[[node]]\nid = {id}\npeer_addr = \"{peer}\"\nclient_addr = \"{client}\"\n"
            ));
            if let Some(metrics) = metrics {
                text.push_str(&format!("metrics_addr = \"{metrics}\"\n"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cluster_id = "kv"
protocol = "raft"

[[node]]
id = 1
peer_addr = "127.0.0.1:7001"
client_addr = "127.0.0.1:7101"

[[node]]
id = 2
peer_addr = "127.0.0.1:7002"
client_addr = "127.0.0.1:7102"
data_dir = "/tmp/elsewhere"
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let config = ClusterConfig::parse(GOOD, Path::new("/etc/kv/cluster.toml")).unwrap();
        assert_eq!(config.nodes.len(), 2);
        assert_eq!(config.certs_dir, PathBuf::from("/etc/kv/certs"));
        assert_eq!(
            config.node(1).unwrap().data_dir,
            PathBuf::from("/etc/kv/data/node-1")
        );
        assert_eq!(
            config.node(2).unwrap().data_dir,
            PathBuf::from("/tmp/elsewhere")
        );
        assert!(matches!(
            config.node(9),
            Err(ConfigError::UnknownNode { id: 9, .. })
        ));
        assert_eq!(config.tuning, Tuning::default());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad_addr = GOOD.replace("127.0.0.1:7102", "nowhere");
        let error = ClusterConfig::parse(&bad_addr, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("c.toml:13: field `node.client_addr`"),
            "{error}"
        );

        let duplicate = GOOD.replace("id = 2", "id = 1");
        let error = ClusterConfig::parse(&duplicate, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("c.toml:11: field `node.id`"), "{error}");

        let missing = GOOD.replace("peer_addr = \"127.0.0.1:7001\"\n", "");
        let error = ClusterConfig::parse(&missing, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("c.toml") && error.contains("peer_addr"),
            "{error}"
        );

        let unknown = GOOD.replace("protocol = \"raft\"", "protocol = \"pbft\"");
        let error = ClusterConfig::parse(&unknown, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("c.toml:3: field `protocol`"), "{error}");

        let typo = GOOD.replace("data_dir", "datadir");
        let error = ClusterConfig::parse(&typo, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("datadir"), "{error}");
    }

    #[test]
    fn testing_section_is_off_by_default_and_needs_a_token_file() {
        let config = ClusterConfig::parse(GOOD, Path::new("/etc/kv/cluster.toml")).unwrap();
        assert_eq!(config.testing, TestingConfig::default());
        assert!(!config.testing.fault_injection);

        let on =
            format!("{GOOD}\n[testing]\nfault_injection = true\nadmin_token_file = \"secret\"\n");
        let config = ClusterConfig::parse(&on, Path::new("/etc/kv/cluster.toml")).unwrap();
        assert!(config.testing.fault_injection);
        assert_eq!(
            config.testing.admin_token_file,
            Some(PathBuf::from("/etc/kv/secret"))
        );

        let no_token = format!("{GOOD}\n[testing]\nfault_injection = true\n");
        let error = ClusterConfig::parse(&no_token, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("testing.fault_injection") && error.contains("admin_token_file"),
            "{error}"
        );

        let typo = format!("{GOOD}\n[testing]\nfault_injektion = true\n");
        assert!(ClusterConfig::parse(&typo, Path::new("c.toml")).is_err());
    }

    #[test]
    fn render_round_trips() {
        let nodes = [
            (
                1,
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ),
            (
                2,
                "127.0.0.1:3".parse().unwrap(),
                "127.0.0.1:4".parse().unwrap(),
            ),
        ];
        let text = ClusterConfig::render("demo", "raft", &nodes, Some(&Tuning::default()));
        let config = ClusterConfig::parse(&text, Path::new("x/cluster.toml")).unwrap();
        assert_eq!(config.nodes[1].client_addr, nodes[1].2);
        assert_eq!(config.nodes[1].metrics_addr, None);
        assert_eq!(config.tuning, Tuning::default());

        let metrics = "127.0.0.1:9100".parse().unwrap();
        let with_metrics = [(1, nodes[0].1, nodes[0].2, Some(metrics))];
        let text = ClusterConfig::render_with_metrics("demo", "raft", &with_metrics, None);
        let config = ClusterConfig::parse(&text, Path::new("x/cluster.toml")).unwrap();
        assert_eq!(config.nodes[0].metrics_addr, Some(metrics));
        let bad = text.replace("127.0.0.1:9100", "port 9100");
        let error = ClusterConfig::parse(&bad, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("node.metrics_addr"), "{error}");
    }

    #[test]
    fn joining_nodes_are_not_seeds_and_the_operator_token_is_optional() {
        let config = ClusterConfig::parse(GOOD, Path::new("/etc/kv/cluster.toml")).unwrap();
        assert_eq!(config.seed_ids(), vec![1, 2]);
        assert_eq!(config.operator_token_file, None);
        let joined = format!(
            "{GOOD}{}{}",
            ClusterConfig::render_join(
                3,
                "127.0.0.1:7003".parse().unwrap(),
                "127.0.0.1:7103".parse().unwrap()
            ),
            ClusterConfig::render_operator("operator-token")
        );
        let config = ClusterConfig::parse(&joined, Path::new("/etc/kv/cluster.toml")).unwrap();
        assert!(config.node(3).unwrap().join);
        assert!(!config.node(1).unwrap().join);
        assert_eq!(
            config.seed_ids(),
            vec![1, 2],
            "a joining node is not a seed"
        );
        assert_eq!(
            config.operator_token_file,
            Some(PathBuf::from("/etc/kv/operator-token"))
        );
        let entry = config.joining_entry(
            9,
            "127.0.0.1:7009".parse().unwrap(),
            "127.0.0.1:7109".parse().unwrap(),
            None,
        );
        assert_eq!(entry.data_dir, PathBuf::from("/etc/kv/data/node-9"));
        assert!(entry.join);
        let only_joiners = GOOD
            .replace(
                "client_addr = \"127.0.0.1:7101\"\n",
                "client_addr = \"127.0.0.1:7101\"\njoin = true\n",
            )
            .replace(
                "data_dir = \"/tmp/elsewhere\"\n",
                "data_dir = \"/tmp/elsewhere\"\njoin = true\n",
            );
        let error = ClusterConfig::parse(&only_joiners, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no seed"), "{error}");
    }

    #[test]
    fn a_timing_profile_then_overrides() {
        let fast = format!("{GOOD}\n[tuning]\nprofile = \"fast\"\n");
        let config = ClusterConfig::parse(&fast, Path::new("c.toml")).unwrap();
        assert_eq!(config.tuning, Tuning::profile("fast").unwrap());
        let tweaked = format!("{GOOD}\n[tuning]\nprofile = \"fast\"\nheartbeat_ms = 30\n");
        let config = ClusterConfig::parse(&tweaked, Path::new("c.toml")).unwrap();
        assert_eq!(config.tuning.heartbeat_interval, Duration::from_millis(30));
        assert_eq!(config.tuning.tick, Duration::from_millis(5));
        let unknown = format!("{GOOD}\n[tuning]\nprofile = \"turbo\"\n");
        let error = ClusterConfig::parse(&unknown, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tuning.profile") && error.contains("turbo"),
            "{error}"
        );
    }
}
