//! Mutual TLS against the cluster CA, with the node identity taken from the
//! certificate.
//!
//! * A node's identity is the DNS subject-alternative name
//!   `node-<id>.<cluster>.consensus` of its certificate ([`node_dns_name`]).
//! * The **server** side accepts a client certificate only if it chains to the
//!   cluster CA (rustls' `WebPkiClientVerifier`) **and** names exactly one
//!   node of this cluster that is a current member ([`Members`]).
//! * The **dialing** side connects with server name `node-<id>.<cluster>.consensus`
//!   for the node it means to reach, so rustls' `WebPkiServerVerifier` checks
//!   both the CA and that the certificate is that node's.
//!
//! Only TLS 1.3 is offered (QUIC requires it) and the only crypto provider is
//! `ring`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use consensus_api::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::{ClusterId, SetupError, TlsMaterial};
use crate::wire::ALPN;

#[cfg(not(feature = "ring"))]
compile_error!(
    "transport-quic needs its `ring` feature: it is the only crypto provider it supports"
);

/// The crypto provider: `ring`, the one compiled in (see the `ring` feature).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Last DNS label of every node name.
pub const NAME_SUFFIX: &str = "consensus";

/// The DNS name that identifies `node` of `cluster` in certificates.
pub fn node_dns_name(cluster: &ClusterId, node: NodeId) -> String {
    format!("node-{node}.{cluster}.{NAME_SUFFIX}")
}

/// The node id named by `name` if it is a node name of `cluster`
/// (case-insensitive; the id must be canonical decimal).
pub fn parse_node_dns_name(name: &str, cluster: &ClusterId) -> Option<NodeId> {
    let name = name.to_ascii_lowercase();
    let rest = name.strip_prefix("node-")?;
    let (id, domain) = rest.split_once('.')?;
    let expected_domain = format!("{cluster}.{NAME_SUFFIX}");
    if domain != expected_domain || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if id.len() > 1 && id.starts_with('0') {
        return None;
    }
    id.parse().ok()
}

/// The DNS subject-alternative names of a DER certificate.
pub fn certificate_dns_names(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName extension: {e}"))?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The node of `cluster` that a DER certificate identifies: exactly one of
/// its DNS names must be a node name of that cluster.
pub fn certificate_node_id(der: &[u8], cluster: &ClusterId) -> Result<NodeId, String> {
    let names = certificate_dns_names(der)?;
    let ids: BTreeSet<NodeId> = names
        .iter()
        .filter_map(|name| parse_node_dns_name(name, cluster))
        .collect();
    let mut iter = ids.iter();
    match (iter.next(), iter.next()) {
        (Some(&id), None) => Ok(id),
        (None, _) => Err(format!(
            "certificate names no node of cluster {cluster} (its DNS names: {names:?}; expected \
             node-<id>.{cluster}.{NAME_SUFFIX})"
        )),
        (Some(_), Some(_)) => Err(format!(
            "certificate names several nodes of cluster {cluster}: {names:?}"
        )),
    }
}

/// The set of node ids allowed to connect, shared between the transport's
/// peer table and the TLS verifier (membership changes take effect for new
/// connections at once).
#[derive(Clone, Debug, Default)]
pub struct Members(Arc<RwLock<BTreeSet<NodeId>>>);

impl Members {
    /// A set holding `ids`.
    pub fn new(ids: impl IntoIterator<Item = NodeId>) -> Self {
        Members(Arc::new(RwLock::new(ids.into_iter().collect())))
    }

    /// Whether `id` may connect.
    pub fn contains(&self, id: NodeId) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    /// Allows `id`.
    pub fn insert(&self, id: NodeId) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).insert(id);
    }

    /// Disallows `id`.
    pub fn remove(&self, id: NodeId) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// The current ids.
    pub fn ids(&self) -> Vec<NodeId> {
        let set = self.0.read().unwrap_or_else(|e| e.into_inner());
        set.iter().copied().collect()
    }
}

/// Parsed TLS material.
struct Parsed {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn parse(material: &TlsMaterial) -> Result<Parsed, SetupError> {
    let tls = |what: String| SetupError::Tls(what);
    let mut roots = RootCertStore::empty();
    let mut ca_count = 0;
    for cert in CertificateDer::pem_slice_iter(material.ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| tls(format!("CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| tls(format!("CA certificate: {e}")))?;
        ca_count += 1;
    }
    if ca_count == 0 {
        return Err(tls("CA PEM holds no certificate".into()));
    }
    let chain = CertificateDer::pem_slice_iter(material.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("node certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(tls("node certificate PEM holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(material.key_pem.as_bytes())
        .map_err(|e| tls(format!("node key PEM: {e}")))?;
    Ok(Parsed {
        roots: Arc::new(roots),
        chain,
        key,
    })
}

/// Checks that `material`'s certificate is node `node` of `cluster`.
pub fn check_own_identity(
    material: &TlsMaterial,
    cluster: &ClusterId,
    node: NodeId,
) -> Result<(), SetupError> {
    let parsed = parse(material)?;
    let named = certificate_node_id(&parsed.chain[0], cluster).map_err(SetupError::Tls)?;
    if named != node {
        return Err(SetupError::Tls(format!(
            "this node is {node} but its certificate names node {named}"
        )));
    }
    Ok(())
}

/// Verifies client certificates: cluster CA, then membership.
struct MemberClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cluster: ClusterId,
    members: Members,
}

impl fmt::Debug for MemberClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberClientVerifier")
            .field("cluster", &self.cluster)
            .field("members", &self.members)
            .finish()
    }
}

/// The error a certificate of a non-member gets.
#[derive(Debug)]
struct NotAMember(String);

impl fmt::Display for NotAMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotAMember {}

impl MemberClientVerifier {
    fn refuse(&self, error: rustls::Error, names: &str) -> rustls::Error {
        tracing::warn!(
            cluster = %self.cluster,
            certificate_names = names,
            error = %error,
            "refused a client certificate"
        );
        error
    }
}

impl ClientCertVerifier for MemberClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let names = || match certificate_dns_names(end_entity) {
            Ok(names) => format!("{names:?}"),
            Err(error) => error,
        };
        if let Err(error) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            return Err(self.refuse(error, &names()));
        }
        let id = match certificate_node_id(end_entity, &self.cluster) {
            Ok(id) => id,
            Err(reason) => {
                let error = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                    rustls::OtherError(Arc::new(NotAMember(reason))),
                ));
                return Err(self.refuse(error, &names()));
            }
        };
        if !self.members.contains(id) {
            let reason = format!(
                "node {id} is not a member of cluster {} (members: {:?})",
                self.cluster,
                self.members.ids()
            );
            let error = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                rustls::OtherError(Arc::new(NotAMember(reason))),
            ));
            return Err(self.refuse(error, &names()));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The quinn server configuration: our certificate, client certificates
/// verified against the CA and `members`.
pub fn server_config(
    material: &TlsMaterial,
    cluster: &ClusterId,
    members: Members,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, SetupError> {
    let parsed = parse(material)?;
    let provider = crypto_provider();
    let inner = WebPkiClientVerifier::builder_with_provider(parsed.roots, provider.clone())
        .build()
        .map_err(|e| SetupError::Tls(format!("client verifier: {e}")))?;
    let verifier = MemberClientVerifier {
        inner,
        cluster: cluster.clone(),
        members,
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(parsed.chain, parsed.key)
        .map_err(|e| SetupError::Tls(format!("node certificate and key: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| SetupError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// The quinn client configuration: our certificate as client certificate,
/// server certificates verified against the CA and the server name given to
/// `connect` (use [`node_dns_name`] of the node meant).
pub fn client_config(
    material: &TlsMaterial,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, SetupError> {
    let parsed = parse(material)?;
    let provider = crypto_provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(parsed.roots, provider.clone())
        .build()
        .map_err(|e| SetupError::Tls(format!("server verifier: {e}")))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(parsed.chain, parsed.key)
        .map_err(|e| SetupError::Tls(format!("node certificate and key: {e}")))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| SetupError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// Random 8-byte connection ids that are never filtered, so that a packet
/// for a connection of a previous incarnation of this node always earns a
/// stateless reset.
struct RandomCids(ring::rand::SystemRandom);

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 8];
        if self.0.fill(&mut bytes).is_err() {
            // The system RNG failing is not recoverable; ids must stay unique.
            panic!("system random number generator failed");
        }
        quinn::ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The endpoint configuration. Its stateless-reset key is derived
/// (HMAC-SHA256) from the node's private key, so a node restarted with the
/// same key answers packets for its previous incarnation's connections with
/// a valid stateless reset: peers notice the restart at once instead of
/// after the idle timeout.
pub fn endpoint_config(material: &TlsMaterial) -> Result<quinn::EndpointConfig, SetupError> {
    let parsed = parse(material)?;
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, parsed.key.secret_der());
    let reset_seed = ring::hmac::sign(&secret, b"consensus-quic stateless reset key v1");
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_seed.as_ref());
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    config.cid_generator(|| Box::new(RandomCids(ring::rand::SystemRandom::new())));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        let cluster = ClusterId::new("kv").unwrap();
        assert_eq!(node_dns_name(&cluster, 7), "node-7.kv.consensus");
        assert_eq!(
            parse_node_dns_name("node-7.kv.consensus", &cluster),
            Some(7)
        );
        assert_eq!(
            parse_node_dns_name("NODE-7.KV.consensus", &cluster),
            Some(7)
        );
        for bad in [
            "node-07.kv.consensus",
            "node-.kv.consensus",
            "node-7.other.consensus",
            "node-7.kv.example",
            "node-x.kv.consensus",
            "node-99999999999999999999.kv.consensus",
            "7.kv.consensus",
        ] {
            assert_eq!(parse_node_dns_name(bad, &cluster), None, "{bad}");
        }
    }
}
