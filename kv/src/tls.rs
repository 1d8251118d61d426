//! TLS for the client API: the server presents its node certificate (signed
//! by the cluster CA); clients present none and verify the server against the
//! cluster CA and the node name they meant to reach
//! (`node-<id>.<cluster>.consensus`).

use std::sync::Arc;
use std::time::Duration;

use consensus::{ClusterId, NodeId, TlsMaterial};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;

use crate::wire::CLIENT_ALPN;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        Duration::from_secs(10)
            .try_into()
            .expect("valid idle timeout"),
    ));
    transport.keep_alive_interval(Some(Duration::from_secs(2)));
    transport.max_concurrent_bidi_streams(4096u32.into());
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

/// The server side: this node's certificate, no client certificates.
pub fn server_config(material: &TlsMaterial) -> Result<quinn::ServerConfig, String> {
    let chain = CertificateDer::pem_slice_iter(material.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("node certificate PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(material.key_pem.as_bytes())
        .map_err(|e| format!("node key PEM: {e}"))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("node certificate and key: {e}"))?;
    tls.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// The client side: trusts only the cluster CA.
pub fn client_config(ca_pem: &str) -> Result<quinn::ClientConfig, String> {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    let mut tls = tls;
    tls.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

/// The TLS server name of node `id` (what its certificate names).
pub fn server_name(cluster: &ClusterId, id: NodeId) -> String {
    transport_quic::tls::node_dns_name(cluster, id)
}
