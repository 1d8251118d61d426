//! Development certificates: a cluster CA and node certificates made with
//! `rcgen`, written to and read from a directory.
//!
//! Production users bring their own PEM files; they only have to follow the
//! identity rule of [`crate::tls`]: each node certificate carries the DNS
//! subject-alternative name `node-<id>.<cluster>.consensus`, is signed by the
//! cluster CA, and allows both TLS server and client authentication.
//!
//! Directory layout (what [`write_ca`] / [`write_node`] produce and
//! [`load_ca`] / [`load_node`] / [`load_node_tls`] read):
//!
//! ```text
//! <dir>/ca.pem              cluster CA certificate (shared by every node)
//! <dir>/ca-key.pem          CA private key (keep offline; only needed to issue)
//! <dir>/node-<id>.pem       node certificate
//! <dir>/node-<id>-key.pem   node private key (PKCS#8; written with mode 0600)
//! ```
//!
//! Keys are ECDSA P-256. The CA is valid for 10 years and node certificates
//! for 5 years from the start of the previous calendar year (so clocks a
//! little behind still accept them).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use consensus_api::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use thiserror::Error;

use crate::config::{ClusterId, TlsMaterial};
use crate::tls::{certificate_node_id, node_dns_name};

/// Why certificates could not be made, written or read.
#[derive(Debug, Error)]
pub enum CertError {
    /// `rcgen` refused (bad parameters, unusable key or CA certificate).
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// "reading", "writing", "creating".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what its name says.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn generate_error(error: rcgen::Error) -> CertError {
    CertError::Generate(error.to_string())
}

/// A cluster CA: certificate and private key, PEM.
#[derive(Clone)]
pub struct ClusterCa {
    /// The cluster this CA is for.
    pub cluster: ClusterId,
    /// CA certificate (PEM).
    pub cert_pem: String,
    /// CA private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster", &self.cluster)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// One node's certificate and private key, PEM.
#[derive(Clone)]
pub struct NodeCert {
    /// The node.
    pub node_id: NodeId,
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert")
            .field("node_id", &self.node_id)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl NodeCert {
    /// This node's TLS material for a transport of `ca`'s cluster.
    pub fn tls(&self, ca: &ClusterCa) -> TlsMaterial {
        TlsMaterial {
            ca_pem: ca.cert_pem.clone(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

fn current_year() -> i32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Accurate to the year (the validity starts a year early anyway).
    1970 + (seconds / 31_556_952) as i32
}

fn validity(params: &mut CertificateParams, years: i32) {
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn ca_params(cluster: &ClusterId) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "consensus-toolkit");
    name.push(
        DnType::CommonName,
        format!("consensus cluster {cluster} CA"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, 10);
    params
}

/// Creates a new CA for `cluster`.
pub fn generate_ca(cluster: &ClusterId) -> Result<ClusterCa, CertError> {
    let key = KeyPair::generate().map_err(generate_error)?;
    let cert = ca_params(cluster)
        .self_signed(&key)
        .map_err(generate_error)?;
    Ok(ClusterCa {
        cluster: cluster.clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl ClusterCa {
    /// Issues a certificate for `node_id` (a fresh key pair), signed by this CA.
    pub fn issue_node(&self, node_id: NodeId) -> Result<NodeCert, CertError> {
        let name = node_dns_name(&self.cluster, node_id);
        let mut params = CertificateParams::new(vec![name.clone()]).map_err(generate_error)?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "consensus-toolkit");
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 5);

        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(generate_error)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(generate_error)?;
        let key = KeyPair::generate().map_err(generate_error)?;
        let cert = params.signed_by(&key, &issuer).map_err(generate_error)?;
        Ok(NodeCert {
            node_id,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Creates a CA and one certificate per node, in memory.
pub fn generate_cluster(
    cluster: &ClusterId,
    nodes: impl IntoIterator<Item = NodeId>,
) -> Result<(ClusterCa, Vec<NodeCert>), CertError> {
    let ca = generate_ca(cluster)?;
    let certs = nodes
        .into_iter()
        .map(|id| ca.issue_node(id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ca, certs))
}

/// Path of the CA certificate in `dir`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// Path of the CA key in `dir`.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca-key.pem")
}

/// Path of node `id`'s certificate in `dir`.
pub fn node_cert_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}.pem"))
}

/// Path of node `id`'s key in `dir`.
pub fn node_key_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}-key.pem"))
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let io = |op, source| CertError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| io("creating", e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))
}

fn read_file(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `ca.pem` and `ca-key.pem` into `dir` (created if missing).
pub fn write_ca(dir: &Path, ca: &ClusterCa) -> Result<(), CertError> {
    create_dir(dir)?;
    write_file(&ca_cert_path(dir), &ca.cert_pem, false)?;
    write_file(&ca_key_path(dir), &ca.key_pem, true)
}

/// Writes `node-<id>.pem` and `node-<id>-key.pem` into `dir`.
pub fn write_node(dir: &Path, node: &NodeCert) -> Result<(), CertError> {
    create_dir(dir)?;
    write_file(&node_cert_path(dir, node.node_id), &node.cert_pem, false)?;
    write_file(&node_key_path(dir, node.node_id), &node.key_pem, true)
}

/// Creates a CA and node certificates for `nodes` and writes them to `dir`.
pub fn generate_cluster_dir(
    dir: &Path,
    cluster: &ClusterId,
    nodes: impl IntoIterator<Item = NodeId>,
) -> Result<(), CertError> {
    let (ca, certs) = generate_cluster(cluster, nodes)?;
    write_ca(dir, &ca)?;
    certs.iter().try_for_each(|cert| write_node(dir, cert))
}

/// Reads the CA of `cluster` from `dir` (certificate and key).
pub fn load_ca(dir: &Path, cluster: &ClusterId) -> Result<ClusterCa, CertError> {
    let cert_pem = read_file(&ca_cert_path(dir))?;
    let key_pem = read_file(&ca_key_path(dir))?;
    KeyPair::from_pem(&key_pem).map_err(|e| CertError::Invalid {
        path: ca_key_path(dir),
        reason: e.to_string(),
    })?;
    Ok(ClusterCa {
        cluster: cluster.clone(),
        cert_pem,
        key_pem,
    })
}

/// Reads node `id`'s certificate and key from `dir`, checking that the
/// certificate names that node of `cluster`.
pub fn load_node(dir: &Path, cluster: &ClusterId, id: NodeId) -> Result<NodeCert, CertError> {
    use rustls_pki_types::pem::PemObject;
    let cert_path = node_cert_path(dir, id);
    let cert_pem = read_file(&cert_path)?;
    let key_pem = read_file(&node_key_path(dir, id))?;
    let invalid = |reason: String| CertError::Invalid {
        path: cert_path.clone(),
        reason,
    };
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| invalid(e.to_string()))?;
    let named = certificate_node_id(&der, cluster).map_err(invalid)?;
    if named != id {
        return Err(invalid(format!(
            "the certificate names node {named}, not {id}"
        )));
    }
    Ok(NodeCert {
        node_id: id,
        cert_pem,
        key_pem,
    })
}

/// The TLS material of node `id` from `dir`: `ca.pem`, `node-<id>.pem`,
/// `node-<id>-key.pem` (the CA key is not needed).
pub fn load_node_tls(
    dir: &Path,
    cluster: &ClusterId,
    id: NodeId,
) -> Result<TlsMaterial, CertError> {
    let node = load_node(dir, cluster, id)?;
    Ok(TlsMaterial {
        ca_pem: read_file(&ca_cert_path(dir))?,
        cert_pem: node.cert_pem,
        key_pem: node.key_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_carry_the_node_identity() {
        let cluster = ClusterId::new("unit").unwrap();
        let (ca, certs) = generate_cluster(&cluster, [1, 2]).unwrap();
        for cert in &certs {
            use rustls_pki_types::pem::PemObject;
            let der =
                rustls_pki_types::CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
            assert_eq!(certificate_node_id(&der, &cluster), Ok(cert.node_id));
            crate::tls::check_own_identity(&cert.tls(&ca), &cluster, cert.node_id).unwrap();
        }
        let other = ClusterId::new("other").unwrap();
        assert!(crate::tls::check_own_identity(&certs[0].tls(&ca), &other, 1).is_err());
    }

    #[test]
    fn directory_layout_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = ClusterId::from(7u64);
        generate_cluster_dir(dir.path(), &cluster, [1, 2, 3]).unwrap();
        for name in ["ca.pem", "ca-key.pem", "node-3.pem", "node-3-key.pem"] {
            assert!(dir.path().join(name).is_file(), "{name} missing");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(node_key_path(dir.path(), 2))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "node key readable by others: {mode:o}");
        }
        let tls = load_node_tls(dir.path(), &cluster, 2).unwrap();
        crate::tls::check_own_identity(&tls, &cluster, 2).unwrap();

        // Issue one more node from the CA loaded back from disk.
        let ca = load_ca(dir.path(), &cluster).unwrap();
        write_node(dir.path(), &ca.issue_node(4).unwrap()).unwrap();
        let tls = load_node_tls(dir.path(), &cluster, 4).unwrap();
        crate::tls::check_own_identity(&tls, &cluster, 4).unwrap();

        // A certificate stored under the wrong name is refused.
        fs::copy(node_cert_path(dir.path(), 1), node_cert_path(dir.path(), 9)).unwrap();
        fs::copy(node_key_path(dir.path(), 1), node_key_path(dir.path(), 9)).unwrap();
        assert!(matches!(
            load_node(dir.path(), &cluster, 9),
            Err(CertError::Invalid { .. })
        ));
    }
}
