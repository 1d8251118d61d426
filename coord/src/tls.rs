//! TLS of the client protocol. The server presents its node certificate
//! (signed by the cluster CA) and *optionally* verifies a client
//! certificate against the same CA: ordinary clients present none, servers
//! forwarding writes to the leader present their node certificate, and only
//! such connections may forward ([`crate::wire::Open::Forward`]).
//!
//! Built by the service edge's [`consensus_service::tls`] with this
//! service's [`EndpointOptions`]: its own ALPN, longer idle timeout (client
//! sessions outlive short network blips), optional client certificates.

use std::time::Duration;

use consensus::{ClusterId, NodeId, TlsMaterial};
use consensus_service::tls::{self as edge, ClientCertificates, EndpointOptions};

use crate::wire::COORD_ALPN;

/// The coordination service's endpoint settings.
pub fn options() -> EndpointOptions {
    EndpointOptions {
        alpn: COORD_ALPN,
        idle_timeout: Duration::from_secs(30),
        keep_alive: Duration::from_secs(1),
        max_streams: 1024,
        client_certificates: ClientCertificates::Optional,
    }
}

/// The server side: the node certificate; client certificates optional,
/// verified against the cluster CA when presented.
pub fn server_config(material: &TlsMaterial) -> Result<quinn::ServerConfig, String> {
    edge::server_config(material, &options())
}

/// A client: trusts only the cluster CA, presents no certificate.
pub fn client_config(ca_pem: &str) -> Result<quinn::ClientConfig, String> {
    edge::client_config(ca_pem, None, &options())
}

/// A server forwarding to another server: presents its node certificate.
pub fn node_client_config(material: &TlsMaterial) -> Result<quinn::ClientConfig, String> {
    edge::client_config(&material.ca_pem, Some(material), &options())
}

/// The TLS server name of node `id`.
pub fn server_name(cluster: &ClusterId, id: NodeId) -> String {
    edge::server_name(cluster, id)
}

/// True when the connection presented a certificate verified against the
/// cluster CA (only nodes hold such certificates).
pub fn is_node_connection(connection: &quinn::Connection) -> bool {
    edge::presented_certificate(connection)
}
