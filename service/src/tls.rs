//! TLS for the client API: the server presents its node certificate (signed
//! by the cluster CA); clients verify the server against the cluster CA and
//! the node name they meant to reach (`node-<id>.<cluster>.consensus`).
//!
//! Each service (the key-value store, the coordination service) builds its
//! endpoints with [`server_config`] / [`client_config`] and its own
//! [`EndpointOptions`]: its ALPN, timeouts, stream limits, and optionally
//! client certificates verified against the cluster CA (so a server can
//! tell a fellow node, [`presented_certificate`], from an ordinary client).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use consensus::{ClusterId, NodeId, TlsMaterial};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;

/// Whether a server asks clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Clients present none.
    None,
    /// Clients may present one; when they do, it must verify against the
    /// cluster CA (or the handshake fails).
    Optional,
}

/// How a client-API endpoint is set up: ALPN, QUIC timeouts and limits,
/// client certificates.
#[derive(Clone, Debug)]
pub struct EndpointOptions {
    /// The ALPN protocol both sides must agree on.
    pub alpn: &'static [u8],
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval (keeps idle connections open, and finds dead
    /// peers within the idle timeout).
    pub keep_alive: Duration,
    /// Concurrent bidirectional streams a peer may open.
    pub max_streams: u32,
    /// Server side: whether clients may present certificates.
    pub client_certificates: ClientCertificates,
}

impl EndpointOptions {
    fn transport(&self) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        // A timeout too large for QUIC's varint means "never".
        transport.max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok());
        transport.keep_alive_interval(Some(self.keep_alive));
        transport.max_concurrent_bidi_streams(self.max_streams.into());
        Arc::new(transport)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("CA PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA PEM holds no certificate".into());
    }
    Ok(roots)
}

fn chain_and_key(
    material: &TlsMaterial,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_slice_iter(material.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("node certificate PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(material.key_pem.as_bytes())
        .map_err(|e| format!("node key PEM: {e}"))?;
    Ok((chain, key))
}

/// A server presenting this node's certificate, set up by `options`.
pub fn server_config(
    material: &TlsMaterial,
    options: &EndpointOptions,
) -> Result<quinn::ServerConfig, String> {
    let (chain, key) = chain_and_key(material)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let builder = match options.client_certificates {
        ClientCertificates::None => builder.with_no_client_auth(),
        ClientCertificates::Optional => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(&material.ca_pem)?),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("node certificate and key: {e}"))?;
    tls.alpn_protocols = vec![options.alpn.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(options.transport());
    Ok(config)
}

/// A client trusting only the cluster CA (`ca_pem`), presenting
/// `identity`'s certificate when given (a node talking to another node's
/// client API), set up by `options`.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&TlsMaterial>,
    options: &EndpointOptions,
) -> Result<quinn::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca_pem)?);
    let mut tls = match identity {
        None => builder.with_no_client_auth(),
        Some(material) => {
            let (chain, key) = chain_and_key(material)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("node certificate as client certificate: {e}"))?
        }
    };
    tls.alpn_protocols = vec![options.alpn.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(options.transport());
    Ok(config)
}

/// The cluster CA of a configuration (`certs_dir/ca.pem`), as PEM.
pub fn read_cluster_ca(config: &crate::config::ClusterConfig) -> Result<String, String> {
    let ca_path = config.certs_dir.join("ca.pem");
    std::fs::read_to_string(&ca_path)
        .map_err(|e| format!("reading the cluster CA {}: {e}", ca_path.display()))
}

/// A client endpoint for nodes at `addrs` trusting `ca_pem` (a
/// [`client_config`] without identity): bound to loopback when every node
/// is on loopback, else to the IPv6 wildcard when some node has an IPv6
/// address, else to the IPv4 wildcard.
pub fn client_endpoint<'a>(
    addrs: impl IntoIterator<Item = &'a SocketAddr>,
    ca_pem: &str,
    options: &EndpointOptions,
) -> Result<quinn::Endpoint, String> {
    let addrs: Vec<&SocketAddr> = addrs.into_iter().collect();
    let bind: SocketAddr = if addrs.iter().all(|a| a.ip().is_loopback()) {
        "127.0.0.1:0"
    } else if addrs.iter().any(|a| a.is_ipv6()) {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .expect("address");
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| format!("binding {bind}: {e}"))?;
    endpoint.set_default_client_config(client_config(ca_pem, None, options)?);
    Ok(endpoint)
}

/// The TLS server name of node `id` (what its certificate names).
pub fn server_name(cluster: &ClusterId, id: NodeId) -> String {
    transport_quic::tls::node_dns_name(cluster, id)
}

/// True when the peer of `connection` presented a certificate (with
/// [`ClientCertificates::Optional`], one that verified against the cluster
/// CA: only nodes hold such certificates).
pub fn presented_certificate(connection: &quinn::Connection) -> bool {
    connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .is_some_and(|chain| !chain.is_empty())
}
