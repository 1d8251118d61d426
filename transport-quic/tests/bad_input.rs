//! Garbage from an authenticated peer closes that connection only; the node
//! keeps exchanging with the others.

mod common;

use common::*;
use consensus_api::{Transport, TransportError};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::timeout;
use transport_quic::{CloseCode, FaultController};

/// Nodes 1 and 2 running; node 3 is a member of node 1 whose address is
/// dead, so a raw client holding node 3's certificate can speak for it.
struct Setup {
    pki: Pki,
    nodes: Vec<Node>,
    _dead: std::net::UdpSocket,
}

fn setup() -> Setup {
    let pki = Pki::new([1, 2, 3]);
    let nodes = cluster(&pki, 2, &FaultController::new());
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    nodes[0].add_peer(3, dead.local_addr().unwrap()).unwrap();
    Setup {
        pki,
        nodes,
        _dead: dead,
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// After the bad connection: 1 and 2 still exchange messages.
async fn cluster_still_works(setup: &Setup, seq: u64) {
    let (one, two) = (&setup.nodes[0], &setup.nodes[1]);
    one.send(2, TestMessage::Ping { seq }).unwrap();
    two.send(1, TestMessage::Ping { seq }).unwrap();
    assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq }));
    assert_eq!(next_message(one).await, (2, TestMessage::Ping { seq }));
}

async fn shutdown(setup: Setup) {
    for node in &setup.nodes {
        node.shutdown().await;
    }
}

fn recorded(node: &Node, check: impl Fn(&TransportError) -> bool) -> bool {
    node.recent_errors()
        .iter()
        .any(|record| record.peer == Some(3) && check(&record.error))
}

#[tokio::test]
async fn random_bytes_instead_of_a_handshake_close_the_connection() {
    timeout(TEST_TIMEOUT, async {
        let setup = setup();
        let one = &setup.nodes[0];
        let client = raw_client(&setup.pki.tls(3));
        for seed in 0..3 {
            let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
            let (mut send, _recv) = conn.open_bi().await.unwrap();
            send.write_all(&random_bytes(4096, seed)).await.unwrap();
            let (code, reason) = close_code(&conn).await;
            assert!(
                matches!(code, Some(CloseCode::FrameTooLarge | CloseCode::Decode)),
                "{code:?} {reason}"
            );
        }
        assert!(!one.is_connected(3));
        cluster_still_works(&setup, 1).await;
        shutdown(setup).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn random_bytes_after_the_handshake_close_the_connection() {
    timeout(TEST_TIMEOUT, async {
        let logs = Logs::capture();
        let setup = setup();
        let one = &setup.nodes[0];
        let client = raw_client(&setup.pki.tls(3));
        let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
        let (mut send, theirs) = raw_handshake(&conn, &hello(3)).await;
        assert_eq!(theirs, hello(1));
        send.write_all(&random_bytes(64 * 1024, 42)).await.unwrap();
        let (code, reason) = close_code(&conn).await;
        assert!(
            matches!(code, Some(CloseCode::FrameTooLarge | CloseCode::Decode)),
            "{code:?} {reason}"
        );
        eventually(|| {
            recorded(one, |error| {
                matches!(
                    error,
                    TransportError::FrameTooLarge { .. } | TransportError::Decode(_)
                )
            })
        })
        .await;
        assert!(one.stats().frame_errors >= 1);
        assert!(logs.contains("connection closed"), "{}", logs.text());
        cluster_still_works(&setup, 1).await;
        shutdown(setup).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    timeout(TEST_TIMEOUT, async {
        let setup = setup();
        let one = &setup.nodes[0];
        let client = raw_client(&setup.pki.tls(3));
        let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
        let (mut send, _) = raw_handshake(&conn, &hello(3)).await;
        // A good frame first: it is delivered.
        let good = transport_quic::wire::encode_frame(&TestMessage::Ping { seq: 7 }, 1024).unwrap();
        send.write_all(&good).await.unwrap();
        assert_eq!(next_message(one).await, (3, TestMessage::Ping { seq: 7 }));
        // Then only the length prefix of a frame one byte over the limit:
        // refused before any payload arrives.
        let limit = 4 * 1024 * 1024;
        send.write_all(&(limit as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let (code, reason) = close_code(&conn).await;
        assert_eq!(code, Some(CloseCode::FrameTooLarge), "{reason}");
        eventually(|| {
            recorded(one, |error| {
                *error
                    == TransportError::FrameTooLarge {
                        size: limit + 1,
                        max: limit,
                    }
            })
        })
        .await;
        cluster_still_works(&setup, 1).await;
        shutdown(setup).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_frame_that_does_not_decode_closes_the_connection() {
    timeout(TEST_TIMEOUT, async {
        let setup = setup();
        let one = &setup.nodes[0];
        let client = raw_client(&setup.pki.tls(3));
        let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
        let (mut send, _) = raw_handshake(&conn, &hello(3)).await;
        // A variant index no TestMessage has.
        let mut frame = 3u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0x7f, 0x01, 0x02]);
        send.write_all(&frame).await.unwrap();
        let (code, reason) = close_code(&conn).await;
        assert_eq!(code, Some(CloseCode::Decode), "{reason}");
        eventually(|| recorded(one, |error| matches!(error, TransportError::Decode(_)))).await;
        cluster_still_works(&setup, 1).await;

        // A bulk stream ending in the middle of a frame is refused too.
        let conn = raw_connect(&client, one.local_addr(), 1).await.unwrap();
        let (_send, _) = raw_handshake(&conn, &hello(3)).await;
        let mut bulk = conn.open_uni().await.unwrap();
        bulk.write_all(&100u32.to_be_bytes()).await.unwrap();
        bulk.write_all(&[0; 10]).await.unwrap();
        bulk.finish().unwrap();
        let (code, reason) = close_code(&conn).await;
        assert_eq!(code, Some(CloseCode::Decode), "{reason}");
        cluster_still_works(&setup, 2).await;
        shutdown(setup).await;
    })
    .await
    .expect("test timed out");
}
