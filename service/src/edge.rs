//! Starting a service's node: the consensus node on the service's state
//! machine (wrapped in the replicated address book), with the membership
//! and backup services every service answers on its client API. The
//! client API itself (its endpoint and requests) is the service's own.

use std::sync::Arc;

use consensus::{
    certs, BuildError, ClusterId, ConsensusNode, Membership, NodeId, StateMachine, TlsMaterial,
};
use tokio::sync::watch;

use crate::backup::BackupService;
use crate::config::{ClusterConfig, NodeEntry};
use crate::members::{seed_addrs, Directory, MemberOptions, MemberService, WithDirectory};

/// The cluster id and node `id`'s TLS material from the configuration's
/// certificate directory (the text of what failed otherwise).
pub fn node_tls(config: &ClusterConfig, id: NodeId) -> Result<(ClusterId, TlsMaterial), String> {
    let cluster = ClusterId::new(config.cluster_id.clone()).map_err(|e| e.to_string())?;
    let material =
        certs::load_node_tls(&config.certs_dir, &cluster, id).map_err(|e| e.to_string())?;
    Ok((cluster, material))
}

/// A started node and the services of its edge.
pub struct EdgeNode {
    /// The consensus node.
    pub node: Arc<ConsensusNode>,
    /// Membership changes (its peer sync is running).
    pub members: Arc<MemberService>,
    /// Backups.
    pub backup: BackupService,
}

/// Starts the consensus node of `entry` on a state machine and its
/// address book (what [`WithDirectory::new`] returns) and the membership and backup services of the service
/// named `service`, authenticated with `operator_token` (`None`: refused).
/// `initial` replaces the seeds as the initial membership of a node with
/// an empty data directory (a joining node is given the membership the
/// cluster has now); classic Paxos must start from the seeds (the
/// configuration of slot 1), so it ignores `initial`.
pub fn start_node<S: StateMachine>(
    config: &ClusterConfig,
    entry: &NodeEntry,
    material: TlsMaterial,
    (machine, directory): (WithDirectory<S>, watch::Receiver<Directory>),
    initial: Option<Membership>,
    service: &'static str,
    operator_token: Option<String>,
) -> Result<EdgeNode, BuildError> {
    let id = entry.id;
    let mut builder = config.builder_for(entry, material);
    if let Some(initial) = initial.filter(|_| config.protocol != consensus::Protocol::Paxos) {
        tracing::info!(node = id, membership = %initial, "initial membership from the cluster");
        builder = builder.membership(initial);
    }
    let node = Arc::new(builder.start(machine)?);
    let seeds = seed_addrs(config, entry);
    let backup = BackupService::new(node.clone(), id, service, config, operator_token.clone());
    let members = MemberService::new(
        node.clone(),
        id,
        directory,
        seeds,
        operator_token,
        MemberOptions::default(),
    );
    members.spawn_peer_sync();
    Ok(EdgeNode {
        node,
        members,
        backup,
    })
}
