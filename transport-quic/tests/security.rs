//! Mutual TLS and the handshake: who may talk to whom.

mod common;

use std::net::SocketAddr;

use common::*;
use consensus_api::{NodeId, Transport, TransportError};
use tokio::time::timeout;
use transport_quic::certs::ClusterCa;
use transport_quic::{CloseCode, ClusterId, FaultController, QuicTransport, TlsMaterial};

fn dead_addr() -> (std::net::UdpSocket, SocketAddr) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

fn has_error(node: &Node, peer: Option<NodeId>, check: impl Fn(&TransportError) -> bool) -> bool {
    node.recent_errors()
        .iter()
        .any(|record| record.peer == peer && check(&record.error))
}

fn tls_error_containing(text: &'static str) -> impl Fn(&TransportError) -> bool {
    move |error| matches!(error, TransportError::Tls(reason) if reason.contains(text))
}

/// The cluster still works: 1 and 2 exchange a message both ways.
async fn still_exchanging(one: &Node, two: &Node, seq: u64) {
    one.send(2, TestMessage::Ping { seq }).unwrap();
    two.send(1, TestMessage::Ping { seq }).unwrap();
    assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq }));
    assert_eq!(next_message(one).await, (2, TestMessage::Ping { seq }));
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let (one, two) = (&nodes[0], &nodes[1]);
        let (_dead, dead) = dead_addr();
        one.add_peer(3, dead).unwrap();

        // Same cluster name, same node id format, but another CA. It even
        // trusts our CA, so only our check can refuse it.
        let evil = Pki::new([3]);
        let tls = TlsMaterial {
            ca_pem: pki.ca.cert_pem.clone(),
            ..evil.tls(3)
        };
        let refusal = raw_refusal(&tls, one.local_addr(), 1).await;
        assert!(
            refusal.contains("handshake") || refusal.contains("certificate"),
            "{refusal}"
        );
        eventually(|| has_error(one, None, tls_error_containing("invalid peer certificate"))).await;
        assert!(!one.is_connected(3));
        still_exchanging(one, two, 1).await;
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1]);
        let evil = Pki::new([2]);
        let one: Node = QuicTransport::bind(config(&pki, 1)).unwrap();
        // Node 2 trusts our CA but holds a certificate of another one.
        let mut evil_config = config_with_tls(
            2,
            TlsMaterial {
                ca_pem: pki.ca.cert_pem.clone(),
                ..evil.tls(2)
            },
        );
        evil_config.peers.insert(1, one.local_addr());
        let two: Node = QuicTransport::bind(evil_config).unwrap();
        one.add_peer(2, two.local_addr()).unwrap();
        one.send(2, TestMessage::Ping { seq: 0 }).unwrap();
        eventually(|| {
            has_error(
                &one,
                Some(2),
                tls_error_containing("invalid peer certificate"),
            )
        })
        .await;
        assert!(!one.is_connected(2) && !two.is_connected(1));
        assert_eq!(two.stats().frames_received, 0);
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_certificate_of_an_unknown_node_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2, 9]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let (one, two) = (&nodes[0], &nodes[1]);
        let logs = Logs::capture();
        let refusal = raw_refusal(&pki.tls(9), one.local_addr(), 1).await;
        assert!(!refusal.is_empty());
        eventually(|| has_error(one, None, tls_error_containing("node 9 is not a member"))).await;
        assert!(
            logs.contains("refused a client certificate"),
            "{}",
            logs.text()
        );
        assert!(logs.contains("node-9.test.consensus"), "{}", logs.text());
        still_exchanging(one, two, 1).await;
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dialing_node_2_and_reaching_node_3_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2, 3]);
        let mut three_config = config(&pki, 3);
        three_config.peers.insert(1, "127.0.0.1:9".parse().unwrap());
        let three: Node = QuicTransport::bind(three_config).unwrap();
        // Node 1 believes node 2 lives where node 3 listens.
        let mut one_config = config(&pki, 1);
        one_config.peers.insert(2, three.local_addr());
        let one: Node = QuicTransport::bind(one_config).unwrap();
        one.send(2, TestMessage::Ping { seq: 0 }).unwrap();
        eventually(|| {
            has_error(&one, Some(2), |error| {
                matches!(error, TransportError::Tls(reason)
                    if reason.contains("node-2.test.consensus") && reason.contains("node-3.test.consensus"))
            })
        })
        .await;
        assert!(!one.is_connected(2) && !three.is_connected(1));
        assert_eq!(three.stats().frames_received, 0);
        one.shutdown().await;
        three.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn two_clusters_sharing_a_ca_never_connect() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1]);
        let other = ClusterId::new("other").unwrap();
        let other_ca = ClusterCa {
            cluster: other.clone(),
            ..pki.ca.clone()
        };
        let two_cert = other_ca.issue_node(2).unwrap();
        let mut two_config = config_with_tls(2, two_cert.tls(&other_ca));
        two_config.cluster_id = other;
        let two: Node = QuicTransport::bind(two_config).unwrap();
        let mut one_config = config(&pki, 1);
        one_config.peers.insert(2, two.local_addr());
        let one: Node = QuicTransport::bind(one_config).unwrap();
        two.add_peer(1, one.local_addr()).unwrap();
        eventually(|| {
            has_error(
                &one,
                Some(2),
                tls_error_containing("node-2.other.consensus"),
            )
        })
        .await;
        assert!(!one.is_connected(2) && !two.is_connected(1));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

async fn mismatched_pair(
    change: impl FnOnce(&mut transport_quic::QuicConfig),
) -> (Node, Node, Logs) {
    let logs = Logs::capture();
    let pki = Pki::new([1, 2]);
    let mut two_config = config(&pki, 2);
    change(&mut two_config);
    let nodes = start(vec![config(&pki, 1), two_config]);
    let mut nodes = nodes.into_iter();
    let one = nodes.next().unwrap();
    let two = nodes.next().unwrap();
    one.send(2, TestMessage::Ping { seq: 0 }).unwrap();
    (one, two, logs)
}

fn mismatch_on(field: &'static str) -> impl Fn(&TransportError) -> bool {
    move |error| matches!(error, TransportError::HandshakeMismatch { field: f, .. } if *f == field)
}

#[tokio::test]
async fn a_node_of_another_protocol_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let (one, two, logs) = mismatched_pair(|config| config.protocol = "zab".into()).await;
        eventually(|| has_error(&one, Some(2), mismatch_on("protocol"))).await;
        eventually(|| has_error(&two, Some(1), mismatch_on("protocol"))).await;
        assert!(
            logs.contains("handshake mismatch on protocol: ours raft, theirs zab"),
            "{}",
            logs.text()
        );
        assert!(
            logs.contains("handshake mismatch on protocol: ours zab, theirs raft"),
            "{}",
            logs.text()
        );
        assert!(one.stats().handshake_mismatches >= 1 && two.stats().handshake_mismatches >= 1);
        assert_eq!(
            (one.stats().frames_received, two.stats().frames_received),
            (0, 0)
        );
        assert!(!one.is_connected(2) && !two.is_connected(1));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_node_of_another_wire_version_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let (one, two, logs) =
            mismatched_pair(|config| config.wire_version = transport_quic::WIRE_VERSION + 1).await;
        eventually(|| has_error(&one, Some(2), mismatch_on("wire_version"))).await;
        eventually(|| has_error(&two, Some(1), mismatch_on("wire_version"))).await;
        assert!(
            logs.contains("handshake mismatch on wire_version"),
            "{}",
            logs.text()
        );
        assert_eq!(two.stats().frames_received, 0);
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// A misconfigured node with a valid certificate but another cluster id (or
/// a node id that is not its certificate's) in its handshake.
#[tokio::test]
async fn a_handshake_with_another_cluster_id_or_node_id_is_refused() {
    timeout(TEST_TIMEOUT, async {
        let logs = Logs::capture();
        let pki = Pki::new([1, 2]);
        let (_dead, dead) = dead_addr();
        let mut one_config = config(&pki, 1);
        one_config.peers.insert(2, dead);
        let one: Node = QuicTransport::bind(one_config).unwrap();
        let client = raw_client(&pki.tls(2));

        let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
        let other_cluster = transport_quic::Hello {
            cluster_id: "other".into(),
            ..hello(2)
        };
        let (_send, theirs) = raw_handshake(&conn, &other_cluster).await;
        assert_eq!(theirs, hello(1), "the node announces itself before closing");
        let (code, reason) = close_code(&conn).await;
        assert_eq!(code, Some(CloseCode::HandshakeMismatch), "{reason}");
        assert!(
            reason.contains("cluster_id: ours test, theirs other"),
            "{reason}"
        );
        eventually(|| has_error(&one, Some(2), mismatch_on("cluster_id"))).await;
        assert!(
            logs.contains("handshake mismatch on cluster_id"),
            "{}",
            logs.text()
        );

        let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
        let (_send, _) = raw_handshake(&conn, &hello(5)).await;
        let (code, reason) = close_code(&conn).await;
        assert_eq!(code, Some(CloseCode::HandshakeMismatch), "{reason}");
        assert!(reason.contains("node_id"), "{reason}");
        assert!(!one.is_connected(2));
        one.shutdown().await;
    })
    .await
    .expect("test timed out");
}
