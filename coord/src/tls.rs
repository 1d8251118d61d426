//! TLS of the client protocol. The server presents its node certificate
//! (signed by the cluster CA) and *optionally* verifies a client
//! certificate against the same CA: ordinary clients present none, servers
//! forwarding writes to the leader present their node certificate, and only
//! such connections may forward ([`crate::wire::Open::Forward`]).
//!
//! (The key-value service's `consensus_kv::tls` builds the same
//! configurations without client certificates and with its own ALPN, so it
//! is not reused here.)

use std::sync::Arc;
use std::time::Duration;

use consensus::{ClusterId, NodeId, TlsMaterial};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;

use crate::wire::COORD_ALPN;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        Duration::from_secs(30)
            .try_into()
            .expect("valid idle timeout"),
    ));
    transport.keep_alive_interval(Some(Duration::from_secs(1)));
    transport.max_concurrent_bidi_streams(1024u32.into());
    Arc::new(transport)
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

/// The server side: the node certificate; client certificates optional,
/// verified against the cluster CA when presented.
pub fn server_config(material: &TlsMaterial) -> Result<quinn::ServerConfig, String> {
    let (chain, key) = chain_and_key(material)?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&material.ca_pem)?), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("node certificate and key: {e}"))?;
    tls.alpn_protocols = vec![COORD_ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// A client: trusts only the cluster CA, presents no certificate.
pub fn client_config(ca_pem: &str) -> Result<quinn::ClientConfig, String> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    tls.alpn_protocols = vec![COORD_ALPN.to_vec()];
    finish_client(tls)
}

/// A server forwarding to another server: presents its node certificate.
pub fn node_client_config(material: &TlsMaterial) -> Result<quinn::ClientConfig, String> {
    let (chain, key) = chain_and_key(material)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(&material.ca_pem)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("node certificate as client certificate: {e}"))?;
    tls.alpn_protocols = vec![COORD_ALPN.to_vec()];
    finish_client(tls)
}

fn finish_client(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, String> {
    let quic = QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// The TLS server name of node `id`.
pub fn server_name(cluster: &ClusterId, id: NodeId) -> String {
    consensus_kv::tls::server_name(cluster, id)
}

/// True when the connection presented a certificate verified against the
/// cluster CA (only nodes hold such certificates).
pub fn is_node_connection(connection: &quinn::Connection) -> bool {
    connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .is_some_and(|chain| !chain.is_empty())
}
