//! The fault-injection admin client: installs and lifts network partitions
//! between real `consensus-kv serve` processes.
//!
//! # How a partition reaches real processes
//!
//! Every node's QUIC transport consults a
//! [`FaultController`](consensus::FaultController) (see `transport-quic`'s
//! `fault` module): a message on a blocked directed link `from → to` is
//! dropped by the sender when it is `from` and by the receiver when it is
//! `to`. A node exposes its controller through one admin request,
//! [`AdminCommand::SetBlocked`], carried over the client API (QUIC + TLS,
//! one bidirectional stream per request, like every other request).
//!
//! So a partition is installed by sending **the same set of blocked links
//! to every node**: each node applies the links that involve it. Blocking
//! both directions of every link between two groups cuts them apart; a
//! "bridge" blocks the links between two halves but none of the links of
//! the bridge node. Only consensus traffic is affected: clients still reach
//! every node, as in Jepsen, where clients talk to nodes from outside the
//! partitioned network.
//!
//! # Who may do it
//!
//! A node answers admin requests only when its cluster configuration says
//!
//! ```toml
//! [testing]
//! fault_injection = true
//! admin_token_file = "admin-token"
//! ```
//!
//! Without it (the default) every admin request is refused with
//! [`AdminRefusal::Disabled`], whatever it carries. With it, the request
//! must carry the secret held in `admin_token_file` (at least 32
//! characters; [`write_token`] makes one from 32 random bytes): TLS keeps
//! it confidential on the wire, the server compares it in constant time,
//! and a wrong one is refused with [`AdminRefusal::Unauthorized`] and
//! logged. Key-value clients never read that file, so holding the cluster
//! configuration and the CA certificate (all a client needs) is not enough
//! to partition a node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use consensus::{ClusterId, NodeId};
use thiserror::Error;

use consensus_service::pipe::PipeClient;

use crate::client::{client_endpoint, read_ca};
use crate::config::ClusterConfig;
use crate::tls;
use crate::wire::{
    self, AdminCommand, AdminRefusal, AdminReply, AdminRequest, Link, Request, MESSAGE_BYTES_MAX,
};

/// Why an admin request did not take effect.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AdminError {
    /// The node refused it (fault injection off, wrong token, bad command).
    #[error(transparent)]
    Refused(#[from] AdminRefusal),
    /// The node could not be reached or did not answer in time.
    #[error("node {node}: {message}")]
    Unreachable {
        /// The node.
        node: NodeId,
        /// What went wrong.
        message: String,
    },
    /// The client could not be set up (no token file, bad CA).
    #[error("admin client setup: {0}")]
    Setup(String),
}

/// Writes a new random admin secret (64 hex characters) to `path`,
/// readable by its owner only (the service edge's
/// [`write_secret`](consensus_service::members::write_secret)).
pub use consensus_service::members::write_secret as write_token;

use consensus_service::members::read_secret;

/// Sends admin requests to the nodes of one cluster.
pub struct AdminClient {
    endpoint: quinn::Endpoint,
    cluster: ClusterId,
    nodes: BTreeMap<NodeId, SocketAddr>,
    token: String,
    timeout: Duration,
}

impl AdminClient {
    /// A client that authenticates with `token`.
    pub fn new(config: &ClusterConfig, token: String) -> Result<AdminClient, AdminError> {
        let setup = |e: String| AdminError::Setup(e);
        let cluster =
            ClusterId::new(config.cluster_id.clone()).map_err(|e| setup(e.to_string()))?;
        let ca_pem = read_ca(config).map_err(|e| setup(e.to_string()))?;
        let endpoint = client_endpoint(config.nodes.iter().map(|n| &n.client_addr), &ca_pem)
            .map_err(|e| setup(e.to_string()))?;
        Ok(AdminClient {
            endpoint,
            cluster,
            nodes: config.nodes.iter().map(|n| (n.id, n.client_addr)).collect(),
            token,
            timeout: Duration::from_secs(2),
        })
    }

    /// A client that reads the secret from the configuration's
    /// `testing.admin_token_file`.
    pub fn from_config(config: &ClusterConfig) -> Result<AdminClient, AdminError> {
        let path = config.testing.admin_token_file.as_ref().ok_or_else(|| {
            AdminError::Setup(format!(
                "{} has no `[testing] admin_token_file`",
                config.path.display()
            ))
        })?;
        let token = read_secret(path).map_err(AdminError::Setup)?;
        AdminClient::new(config, token)
    }

    /// How long one request may take (default 2 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The node ids of the cluster.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Sends `command` to node `id`; returns the links it now blocks.
    pub async fn send(&self, id: NodeId, command: AdminCommand) -> Result<Vec<Link>, AdminError> {
        let request = Request::Admin(AdminRequest {
            token: self.token.clone(),
            command,
        });
        let unreachable = |message: String| AdminError::Unreachable { node: id, message };
        let reply = tokio::time::timeout(self.timeout, self.exchange(id, &request))
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
            .map_err(unreachable)?;
        match reply {
            AdminReply::Done { blocked, .. } => Ok(blocked),
            AdminReply::Refused(refusal) => Err(AdminError::Refused(refusal)),
        }
    }

    async fn exchange(&self, id: NodeId, request: &Request) -> Result<AdminReply, String> {
        let addr = *self
            .nodes
            .get(&id)
            .ok_or_else(|| format!("node {id} is not in the configuration"))?;
        let connection = self
            .endpoint
            .connect(addr, &tls::server_name(&self.cluster, id))
            .map_err(|e| format!("connecting to {addr}: {e}"))?
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let pipe = PipeClient::open(connection, MESSAGE_BYTES_MAX)
            .await
            .map_err(|e| e.to_string())?;
        let result = pipe.call(wire::encode(request)).await;
        pipe.close();
        let bytes = result.map_err(|e| e.to_string())?;
        wire::decode::<AdminReply>(&bytes).map_err(|e| format!("reply does not decode: {e}"))
    }

    /// Installs `links` as the blocked set on every node in `targets`;
    /// returns the nodes that did not confirm, with the reason.
    pub async fn set_blocked(
        &self,
        targets: &[NodeId],
        links: &BTreeSet<Link>,
    ) -> Vec<(NodeId, AdminError)> {
        let mut failures = Vec::new();
        let links: Vec<Link> = links.iter().copied().collect();
        for &id in targets {
            let command = AdminCommand::SetBlocked {
                links: links.clone(),
            };
            if let Err(error) = self.send(id, command).await {
                failures.push((id, error));
            }
        }
        failures
    }

    /// Lifts every blocked link on the nodes in `targets`.
    pub async fn heal(&self, targets: &[NodeId]) -> Vec<(NodeId, AdminError)> {
        let mut failures = Vec::new();
        for &id in targets {
            if let Err(error) = self.send(id, AdminCommand::Heal).await {
                failures.push((id, error));
            }
        }
        failures
    }

    /// Closes the endpoint.
    pub async fn close(&self) {
        self.endpoint.close(0u32.into(), b"admin closing");
        self.endpoint.wait_idle().await;
    }
}

/// Both directions of every link between `a` and `b`.
pub fn cut_between(a: &[NodeId], b: &[NodeId]) -> BTreeSet<Link> {
    let mut links = BTreeSet::new();
    for &x in a {
        for &y in b {
            if x != y {
                links.insert((x, y));
                links.insert((y, x));
            }
        }
    }
    links
}

/// Parses a partition written as groups separated by `/` or `|`, nodes by
/// commas: `"1,2/3"` cuts {1,2} from {3}. A node may be in several groups
/// (a bridge: `"1,2/2,3"` cuts 1 from 3 only).
pub fn parse_groups(text: &str) -> Result<Vec<Vec<NodeId>>, String> {
    let groups: Vec<Vec<NodeId>> = text
        .split(['/', '|'])
        .map(|group| {
            group
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<NodeId>()
                        .map_err(|_| format!("{s:?} is not a node id"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        return Err(format!(
            "{text:?}: write at least two non-empty groups, e.g. 1,2/3"
        ));
    }
    Ok(groups)
}

/// The links to block so that nodes of different `groups` cannot talk,
/// except nodes that two groups share (bridges).
pub fn links_for_groups(groups: &[Vec<NodeId>]) -> BTreeSet<Link> {
    let mut links = BTreeSet::new();
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            let only_a: Vec<NodeId> = a.iter().copied().filter(|n| !b.contains(n)).collect();
            let only_b: Vec<NodeId> = b.iter().copied().filter(|n| !a.contains(n)).collect();
            links.extend(cut_between(&only_a, &only_b));
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_and_bridges_keep_their_links() {
        let groups = parse_groups("1,2/3").unwrap();
        assert_eq!(groups, vec![vec![1, 2], vec![3]]);
        let links = links_for_groups(&groups);
        assert_eq!(
            links,
            [(1, 3), (3, 1), (2, 3), (3, 2)].into_iter().collect()
        );
        let bridge = links_for_groups(&parse_groups("1,2,3|3,4,5").unwrap());
        assert!(bridge.contains(&(1, 4)) && bridge.contains(&(5, 2)));
        assert!(
            bridge.iter().all(|&(a, b)| a != 3 && b != 3),
            "the bridge node keeps every link"
        );
        assert!(parse_groups("1,2").is_err());
        assert!(parse_groups("1,x/2").is_err());
        assert!(parse_groups("1//2").is_err());
    }
}
