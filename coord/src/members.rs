//! The client of membership commands (`consensus-coord member ...`): the
//! service edge's client ([`consensus_service::member_client`]) with one
//! [`Open::Member`](crate::wire::Open::Member) (or
//! [`Open::Backup`](crate::wire::Open::Backup)) stream per command; the
//! edge also holds the leader-following loop, the server side and the
//! rules.

use std::net::SocketAddr;

use consensus::NodeId;
use consensus_service::config::ClusterConfig;
use consensus_service::member_client::{self, OperatorRequest, OperatorWire};

pub use consensus_service::members::{
    MemberClientError, MemberCommand, MemberError, MemberRequest, MemberView,
};

use crate::tls;
use crate::wire::{self, Open};

/// Sends membership commands (and backup steps) to one cluster.
pub type MemberClient = member_client::MemberClient<CoordWire>;

/// The coordination wire of an operator request: one [`Open::Member`] or
/// [`Open::Backup`] frame on its own stream of a fresh connection, and its
/// one answer frame.
pub struct CoordWire;

impl OperatorWire for CoordWire {
    fn endpoint(config: &ClusterConfig) -> Result<quinn::Endpoint, String> {
        let ca_pem = consensus_service::tls::read_cluster_ca(config)?;
        // Unlike the session client's endpoint
        // (`consensus_service::tls::client_endpoint`), never the IPv6
        // wildcard: kept as it was.
        let loopback = config
            .nodes
            .iter()
            .all(|n| n.client_addr.ip().is_loopback());
        let bind: SocketAddr = if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }
            .parse()
            .expect("address");
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| format!("binding {bind}: {e}"))?;
        endpoint.set_default_client_config(tls::client_config(&ca_pem)?);
        Ok(endpoint)
    }

    async fn exchange<R: serde::de::DeserializeOwned + Send>(
        endpoint: &quinn::Endpoint,
        id: NodeId,
        addr: SocketAddr,
        server_name: String,
        request: OperatorRequest,
    ) -> Result<R, String> {
        let request = match request {
            OperatorRequest::Member(request) => Open::Member(request),
            OperatorRequest::Backup(request) => Open::Backup(request),
        };
        let exchange = async {
            let connection = endpoint
                .connect(addr, &server_name)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            wire::write_frame(&mut send, &request).await?;
            let _ = send.finish();
            let reply = wire::read_frame::<R>(&mut recv).await;
            connection.close(0u32.into(), b"done");
            reply?.ok_or_else(|| "the node closed the stream".to_string())
        };
        exchange.await.map_err(|e| format!("node {id}: {e}"))
    }
}
