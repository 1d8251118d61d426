//! The key-value client API's endpoints: the service edge's TLS
//! ([`consensus_service::tls`]) with this service's ALPN and limits.
//! Clients present no certificate; servers present their node certificate.

use std::time::Duration;

use consensus::TlsMaterial;
use consensus_service::tls::{self as edge, ClientCertificates, EndpointOptions};

pub use consensus_service::tls::server_name;

use crate::wire::CLIENT_ALPN;

/// The key-value service's endpoint settings. A client uses one stream per
/// connection (its pipe); a few more are allowed for tools that open one
/// per task.
pub fn options() -> EndpointOptions {
    EndpointOptions {
        alpn: CLIENT_ALPN,
        idle_timeout: Duration::from_secs(10),
        keep_alive: Duration::from_secs(2),
        max_streams: 64,
        client_certificates: ClientCertificates::None,
    }
}

/// The server: this node's certificate, no client certificates.
pub fn server_config(material: &TlsMaterial) -> Result<quinn::ServerConfig, String> {
    edge::server_config(material, &options())
}

/// A client: trusts only the cluster CA, presents no certificate.
pub fn client_config(ca_pem: &str) -> Result<quinn::ClientConfig, String> {
    edge::client_config(ca_pem, None, &options())
}
