//! Shared fixtures of the transport tests: a test message type, clusters of
//! real QUIC nodes on loopback, a raw quinn client, log capture.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use consensus_api::{MessageClass, NodeId, ProtocolMessage, Transport, TransportEvent};
use serde::{Deserialize, Serialize};
use transport_quic::certs::{self, ClusterCa, NodeCert};
use transport_quic::{ClusterId, FaultController, QuicConfig, QuicTransport, TlsMaterial};

/// Upper bound of every network test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

pub const CLUSTER: &str = "test";

/// The message type of the tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestMessage {
    /// A small control message.
    Ping { seq: u64 },
    /// A control message with a payload.
    Data { seq: u64, payload: Bytes },
    /// A bulk message (own stream).
    Chunk { seq: u64, payload: Bytes },
}

impl fmt::Display for TestMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestMessage::Ping { seq } => write!(f, "Ping seq={seq}"),
            TestMessage::Data { seq, payload } => write!(f, "Data seq={seq} len={}", payload.len()),
            TestMessage::Chunk { seq, payload } => {
                write!(f, "Chunk seq={seq} len={}", payload.len())
            }
        }
    }
}

impl ProtocolMessage for TestMessage {
    fn class(&self) -> MessageClass {
        match self {
            TestMessage::Chunk { .. } => MessageClass::Bulk,
            _ => MessageClass::Control,
        }
    }
}

pub type Node = QuicTransport<TestMessage>;

pub fn cluster_id() -> ClusterId {
    ClusterId::new(CLUSTER).unwrap()
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Certificates for a test cluster.
pub struct Pki {
    pub ca: ClusterCa,
    pub nodes: BTreeMap<NodeId, NodeCert>,
}

impl Pki {
    pub fn new(ids: impl IntoIterator<Item = NodeId>) -> Self {
        Self::for_cluster(&cluster_id(), ids)
    }

    pub fn for_cluster(cluster: &ClusterId, ids: impl IntoIterator<Item = NodeId>) -> Self {
        let (ca, certs) = certs::generate_cluster(cluster, ids).unwrap();
        Pki {
            ca,
            nodes: certs.into_iter().map(|c| (c.node_id, c)).collect(),
        }
    }

    pub fn tls(&self, id: NodeId) -> TlsMaterial {
        self.nodes[&id].tls(&self.ca)
    }
}

/// A configuration with short timeouts for tests.
pub fn config(pki: &Pki, id: NodeId) -> QuicConfig {
    config_with_tls(id, pki.tls(id))
}

/// [`config`] with the given TLS material.
pub fn config_with_tls(id: NodeId, tls: TlsMaterial) -> QuicConfig {
    let mut config = QuicConfig::new(id, loopback(), cluster_id(), "raft", tls);
    config.timeouts.handshake = Duration::from_secs(2);
    config.timeouts.shutdown = Duration::from_secs(5);
    config.backoff.initial = Duration::from_millis(10);
    config.backoff.max = Duration::from_millis(200);
    config
}

/// Binds one node per config, then tells every node every other's address.
pub fn start(configs: Vec<QuicConfig>) -> Vec<Node> {
    let nodes: Vec<Node> = configs
        .into_iter()
        .map(|config| QuicTransport::bind(config).unwrap())
        .collect();
    connect_all(&nodes);
    nodes
}

pub fn connect_all(nodes: &[Node]) {
    for a in nodes {
        for b in nodes {
            if a.node_id() != b.node_id() {
                a.add_peer(b.node_id(), b.local_addr()).unwrap();
            }
        }
    }
}

/// A cluster of `n` nodes (ids 1..=n) sharing one fault controller.
pub fn cluster(pki: &Pki, n: u64, faults: &FaultController) -> Vec<Node> {
    start(
        (1..=n)
            .map(|id| {
                let mut config = config(pki, id);
                config.faults = faults.clone();
                config
            })
            .collect(),
    )
}

/// The next message (connection events are skipped).
pub async fn next_message<T: Transport<TestMessage>>(node: &T) -> (NodeId, TestMessage) {
    loop {
        match node.recv().await {
            Some(TransportEvent::Message { from, message }) => return (from, message),
            Some(_) => continue,
            None => panic!("transport closed while waiting for a message"),
        }
    }
}

/// Waits for `PeerConnected(peer)`; messages seen meanwhile are returned.
pub async fn wait_connected<T: Transport<TestMessage>>(
    node: &T,
    peer: NodeId,
) -> Vec<(NodeId, TestMessage)> {
    let mut seen = Vec::new();
    loop {
        match node.recv().await {
            Some(TransportEvent::PeerConnected(id)) if id == peer => return seen,
            Some(TransportEvent::Message { from, message }) => seen.push((from, message)),
            Some(_) => {}
            None => panic!("transport closed while waiting for peer {peer}"),
        }
    }
}

/// Waits for `PeerDisconnected(peer)`.
pub async fn wait_disconnected<T: Transport<TestMessage>>(node: &T, peer: NodeId) {
    loop {
        match node.recv().await {
            Some(TransportEvent::PeerDisconnected(id)) if id == peer => return,
            Some(_) => {}
            None => panic!("transport closed while waiting for peer {peer} to go"),
        }
    }
}

/// Polls `condition` every 10 ms until it holds; panics after 20 s.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn payload(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

/// Captured log output. One global subscriber per test binary writes into
/// one buffer (per-test scoped subscribers lose events to tracing's
/// callsite-interest cache when tests run in parallel); tests look for text
/// that only they produce.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> Logs {
        static GLOBAL: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let logs = Logs::default();
                let writer = logs.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_env_filter("transport_quic=debug")
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .finish();
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other global subscriber");
                logs
            })
            .clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A bare quinn client endpoint presenting `tls`.
pub fn raw_client(tls: &TlsMaterial) -> quinn::Endpoint {
    let transport = Arc::new(quinn::TransportConfig::default());
    let client = transport_quic::tls::client_config(tls, transport).unwrap();
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(client);
    endpoint
}

/// Connects a bare client to node `id` at `addr`.
pub async fn raw_connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    id: NodeId,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let name = transport_quic::tls::node_dns_name(&cluster_id(), id);
    endpoint.connect(addr, &name).unwrap().await
}

/// The application close code a connection ended with.
pub async fn close_code(conn: &quinn::Connection) -> (Option<transport_quic::CloseCode>, String) {
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => (
            transport_quic::CloseCode::from_code(close.error_code),
            String::from_utf8_lossy(&close.reason).into_owned(),
        ),
        other => (None, other.to_string()),
    }
}

/// A handshake frame for node `id` of the test cluster.
pub fn hello(id: NodeId) -> transport_quic::Hello {
    transport_quic::Hello {
        magic: transport_quic::wire::HELLO_MAGIC,
        wire_version: transport_quic::WIRE_VERSION,
        cluster_id: CLUSTER.into(),
        protocol: "raft".into(),
        node_id: id,
    }
}

/// Opens the control stream on a raw connection, sends `ours` and reads the
/// node's handshake frame.
pub async fn raw_handshake(
    conn: &quinn::Connection,
    ours: &transport_quic::Hello,
) -> (quinn::SendStream, transport_quic::Hello) {
    use transport_quic::wire::{decode_payload, encode_frame, FrameDecoder, HELLO_MAX_BYTES};
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode_frame(ours, HELLO_MAX_BYTES).unwrap())
        .await
        .unwrap();
    let mut decoder = FrameDecoder::new(HELLO_MAX_BYTES);
    loop {
        if let Some(frame) = decoder.next_frame().unwrap() {
            return (send, decode_payload(&frame).unwrap());
        }
        let chunk = recv
            .read_chunk(usize::MAX, true)
            .await
            .unwrap()
            .expect("hello");
        decoder.push(&chunk.bytes);
    }
}

/// Connects with `tls` and waits until the connection fails or is closed;
/// returns the error text. A refused client certificate shows up either
/// way, depending on when the client learns of the refusal.
pub async fn raw_refusal(tls: &TlsMaterial, addr: SocketAddr, id: NodeId) -> String {
    let endpoint = raw_client(tls);
    match raw_connect(&endpoint, addr, id).await {
        Err(error) => error.to_string(),
        Ok(conn) => conn.closed().await.to_string(),
    }
}
