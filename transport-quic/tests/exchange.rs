//! Real QUIC nodes on loopback exchanging messages: order, bulk vs control,
//! shutdown flushing, reconnecting, membership changes, queue bounds.

mod common;

use common::*;
use consensus_api::{Transport, TransportError, TransportEvent};
use tokio::time::timeout;
use transport_quic::{FaultController, QuicTransport};

#[tokio::test]
async fn two_nodes_exchange_messages_in_order() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let (one, two) = (&nodes[0], &nodes[1]);
        const COUNT: u64 = 2000;
        for seq in 0..COUNT {
            one.send(
                2,
                TestMessage::Data {
                    seq,
                    payload: payload(100, seq as u8),
                },
            )
            .unwrap();
            two.send(1, TestMessage::Ping { seq }).unwrap();
        }
        for seq in 0..COUNT {
            let (from, message) = next_message(two).await;
            assert_eq!(from, 1);
            assert_eq!(
                message,
                TestMessage::Data {
                    seq,
                    payload: payload(100, seq as u8)
                }
            );
        }
        for seq in 0..COUNT {
            assert_eq!(next_message(one).await, (2, TestMessage::Ping { seq }));
        }
        assert!(one.is_connected(2) && two.is_connected(1));
        let stats = one.stats();
        assert_eq!(
            stats.connections_established, 1,
            "one connection per pair: {stats:?}"
        );
        assert_eq!(two.stats().connections_established, 1);
        assert_eq!(stats.frames_received, COUNT);
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn three_nodes_exchange_messages_in_order() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2, 3]);
        let nodes = cluster(&pki, 3, &FaultController::new());
        const COUNT: u64 = 500;
        for seq in 0..COUNT {
            for from in &nodes {
                for to in 1..=3 {
                    if to != from.node_id() {
                        from.send(to, TestMessage::Ping { seq }).unwrap();
                    }
                }
            }
        }
        for node in &nodes {
            let mut next_seq = std::collections::BTreeMap::new();
            for _ in 0..2 * COUNT {
                let (from, message) = next_message(node).await;
                let expected = next_seq.entry(from).or_insert(0u64);
                assert_eq!(
                    message,
                    TestMessage::Ping { seq: *expected },
                    "from {from} to {}",
                    node.node_id()
                );
                *expected += 1;
            }
            assert_eq!(next_seq.len(), 2);
        }
        for node in &nodes {
            node.shutdown().await;
        }
    })
    .await
    .expect("test timed out");
}

/// A bulk message whose stream the receiver does not read (stalled via the
/// fault layer, so QUIC flow control blocks it mid-transfer) must not hold
/// up control messages sent after it; once the stall ends it arrives whole.
#[tokio::test]
async fn stalled_bulk_stream_does_not_block_control_messages() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let faults = FaultController::new();
        let configs = (1..=2)
            .map(|id| {
                let mut config = config(&pki, id);
                config.faults = faults.clone();
                config.limits.max_frame_bytes = 32 << 20;
                config
            })
            .collect();
        let nodes = start(configs);
        let (one, two) = (&nodes[0], &nodes[1]);
        wait_connected(two, 1).await;

        faults.set_bulk_stalled(1, 2, true);
        let big = payload(8 << 20, 7);
        one.send(
            2,
            TestMessage::Chunk {
                seq: 0,
                payload: big.clone(),
            },
        )
        .unwrap();
        for seq in 0..10 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
        }
        for seq in 0..10 {
            assert_eq!(
                next_message(two).await,
                (1, TestMessage::Ping { seq }),
                "control messages arrive while the bulk stream is stalled"
            );
        }
        faults.set_bulk_stalled(1, 2, false);
        assert_eq!(
            next_message(two).await,
            (
                1,
                TestMessage::Chunk {
                    seq: 0,
                    payload: big
                }
            )
        );
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// Without any fault: a multi-MiB bulk message sent first does not delay a
/// control message sent right after it (it has its own stream and a lower
/// priority); a large *control* message, on the other hand, keeps its place
/// in line.
#[tokio::test]
async fn control_message_overtakes_a_large_bulk_message() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let configs = (1..=2)
            .map(|id| {
                let mut config = config(&pki, id);
                config.limits.max_frame_bytes = 64 << 20;
                config.limits.queue_max_bytes = 128 << 20;
                config
            })
            .collect();
        let nodes = start(configs);
        let (one, two) = (&nodes[0], &nodes[1]);
        wait_connected(two, 1).await;

        let big = payload(32 << 20, 3);
        one.send(
            2,
            TestMessage::Chunk {
                seq: 0,
                payload: big.clone(),
            },
        )
        .unwrap();
        one.send(2, TestMessage::Ping { seq: 1 }).unwrap();
        assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq: 1 }));
        assert_eq!(
            next_message(two).await,
            (
                1,
                TestMessage::Chunk {
                    seq: 0,
                    payload: big.clone()
                }
            )
        );

        // The same payload as a control message stays in order.
        one.send(
            2,
            TestMessage::Data {
                seq: 2,
                payload: big.clone(),
            },
        )
        .unwrap();
        one.send(2, TestMessage::Ping { seq: 3 }).unwrap();
        assert_eq!(
            next_message(two).await,
            (
                1,
                TestMessage::Data {
                    seq: 2,
                    payload: big
                }
            )
        );
        assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq: 3 }));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn shutdown_flushes_queued_frames() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let (one, two) = (&nodes[0], &nodes[1]);
        wait_connected(one, 2).await;
        const COUNT: u64 = 3000;
        for seq in 0..COUNT {
            one.send(
                2,
                TestMessage::Data {
                    seq,
                    payload: payload(200, 1),
                },
            )
            .unwrap();
        }
        let chunk = payload(2 << 20, 9);
        one.send(
            2,
            TestMessage::Chunk {
                seq: COUNT,
                payload: chunk.clone(),
            },
        )
        .unwrap();
        // Everything is still queued or in flight: shut down right away.
        one.shutdown().await;
        assert_eq!(
            one.send(2, TestMessage::Ping { seq: 0 }),
            Err(TransportError::Closed)
        );
        assert!(one.recv().await.is_none(), "recv ends after shutdown");

        let mut data = 0;
        let mut got_chunk = false;
        while data < COUNT || !got_chunk {
            match next_message(two).await {
                (1, TestMessage::Data { seq, .. }) => {
                    assert_eq!(seq, data);
                    data += 1;
                }
                (1, TestMessage::Chunk { seq, payload }) => {
                    assert_eq!((seq, payload), (COUNT, chunk.clone()));
                    got_chunk = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        wait_disconnected(two, 1).await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn reconnects_after_the_peer_restarts() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let mut nodes = nodes.into_iter();
        let (one, two) = (nodes.next().unwrap(), nodes.next().unwrap());
        one.send(2, TestMessage::Ping { seq: 0 }).unwrap();
        assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq: 0 }));

        // Node 2 (the accepting side) restarts on the same address.
        let addr = two.local_addr();
        two.shutdown().await;
        drop(two);
        wait_disconnected(&one, 2).await;
        let mut two_config = config(&pki, 2);
        two_config.bind = addr;
        two_config.peers.insert(1, one.local_addr());
        let two = QuicTransport::bind(two_config).unwrap();
        wait_connected(&one, 2).await;
        one.send(2, TestMessage::Ping { seq: 1 }).unwrap();
        assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq: 1 }));

        // Node 1 (the dialing side) restarts too.
        let addr = one.local_addr();
        one.shutdown().await;
        drop(one);
        wait_disconnected(&two, 1).await;
        let mut one_config = config(&pki, 1);
        one_config.bind = addr;
        one_config.peers.insert(2, two.local_addr());
        let one = QuicTransport::bind(one_config).unwrap();
        wait_connected(&two, 1).await;
        two.send(1, TestMessage::Ping { seq: 2 }).unwrap();
        assert_eq!(next_message(&one).await, (2, TestMessage::Ping { seq: 2 }));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn membership_changes_add_and_remove_peers() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2, 3]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let (one, two) = (&nodes[0], &nodes[1]);
        wait_connected(one, 2).await;

        // Node 3 joins.
        let mut three_config = config(&pki, 3);
        three_config.peers.insert(1, one.local_addr());
        let three: Node = QuicTransport::bind(three_config).unwrap();
        assert_eq!(one.send(3, TestMessage::Ping { seq: 0 }), Err(TransportError::UnknownPeer(3)));
        one.add_peer(3, three.local_addr()).unwrap();
        one.send(3, TestMessage::Ping { seq: 1 }).unwrap();
        assert_eq!(next_message(&three).await, (1, TestMessage::Ping { seq: 1 }));
        three.send(1, TestMessage::Ping { seq: 2 }).unwrap();
        assert_eq!(next_message(one).await, (3, TestMessage::Ping { seq: 2 }));

        // Node 2 leaves: its connection closes and it may not come back.
        one.remove_peer(2).unwrap();
        assert_eq!(one.send(2, TestMessage::Ping { seq: 3 }), Err(TransportError::UnknownPeer(2)));
        wait_disconnected(two, 1).await;
        assert!(one.peers().keys().eq([3].iter()));
        // Node 1 now refuses node 2's certificate.
        let client = raw_client(&pki.tls(2));
        let refused = match raw_connect(&client, one.local_addr(), 1).await {
            Err(_) => true,
            Ok(conn) => {
                let (_, reason) = close_code(&conn).await;
                reason.contains("not a member") || reason.contains("certificate")
            }
        };
        assert!(refused, "a removed node must be refused");
        eventually(|| {
            one.recent_errors()
                .iter()
                .any(|record| matches!(&record.error, TransportError::Tls(reason) if reason.contains("node 2 is not a member")))
        })
        .await;
        for node in [one, two, &three] {
            node.shutdown().await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn sends_to_an_unreachable_peer_fill_its_queue_without_blocking_others() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2, 3]);
        let mut config_one = config(&pki, 1);
        config_one.limits.queue_max_messages = 100;
        let nodes = start(vec![config_one, config(&pki, 2)]);
        let (one, two) = (&nodes[0], &nodes[1]);
        // Node 3 is a member that never started (nothing listens there).
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        one.add_peer(3, dead.local_addr().unwrap()).unwrap();
        let mut refused = 0;
        for seq in 0..150 {
            match one.send(3, TestMessage::Ping { seq }) {
                Ok(()) => {}
                Err(TransportError::QueueFull(3)) => refused += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(refused, 50, "the queue holds 100 messages");
        assert_eq!(one.stats().queue_full, 50);
        for seq in 0..50 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
        }
        for seq in 0..50 {
            assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq }));
        }
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn connection_events_are_reported() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let nodes = cluster(&pki, 2, &FaultController::new());
        let (one, two) = (&nodes[0], &nodes[1]);
        assert_eq!(one.recv().await, Some(TransportEvent::PeerConnected(2)));
        assert_eq!(two.recv().await, Some(TransportEvent::PeerConnected(1)));
        two.shutdown().await;
        assert_eq!(one.recv().await, Some(TransportEvent::PeerDisconnected(2)));
        one.shutdown().await;
        assert_eq!(one.recv().await, None);
    })
    .await
    .expect("test timed out");
}

/// Node 2 dies without a word (its runtime is dropped: no CONNECTION_CLOSE
/// is sent) and comes back on the same address. Node 1's next keep-alive
/// reaches the new incarnation, which answers with a stateless reset that
/// node 1 accepts (the reset key is derived from node 2's private key), so
/// node 1 notices at once instead of after the idle timeout, which is set
/// far beyond the test's own time limit.
#[tokio::test]
async fn a_crashed_peer_that_restarts_is_noticed_without_waiting_for_the_idle_timeout() {
    use std::time::Duration;
    let idle = Duration::from_secs(600);
    assert!(idle > TEST_TIMEOUT);
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let mut one_config = config(&pki, 1);
        one_config.timeouts.idle = idle;
        let one: Node = QuicTransport::bind(one_config).unwrap();

        // Node 2 runs on a runtime of its own, so that it can die silently.
        let doomed = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut two_config = config(&pki, 2);
        two_config.timeouts.idle = idle;
        two_config.peers.insert(1, one.local_addr());
        let two: Node = doomed
            .spawn(async move { QuicTransport::bind(two_config).unwrap() })
            .await
            .unwrap();
        let addr = two.local_addr();
        one.add_peer(2, addr).unwrap();
        one.send(2, TestMessage::Ping { seq: 0 }).unwrap();
        assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq: 0 }));

        doomed.shutdown_background();
        drop(two);
        assert!(one.is_connected(2), "node 1 has not noticed anything yet");

        let mut two_config = config(&pki, 2);
        two_config.bind = addr;
        two_config.timeouts.idle = idle;
        two_config.peers.insert(1, one.local_addr());
        let two = loop {
            match QuicTransport::<TestMessage>::bind(two_config.clone()) {
                Ok(two) => break two,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        wait_disconnected(&one, 2).await;
        wait_connected(&one, 2).await;
        one.send(2, TestMessage::Ping { seq: 1 }).unwrap();
        assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq: 1 }));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

/// A dial sent while the peer is down does not wait for QUIC to retransmit
/// its first packet (seconds later, doubling each time): each attempt gives
/// up after `dial_attempt` and the dialer tries again after the backoff, so
/// a peer that comes back is reached by the next attempt. The handshake
/// limit and the idle timeout (which also ends a handshake) are set above the
/// test's own timeout: with attempts bounded only by them, the first attempt
/// would still be waiting when the test gives up.
#[tokio::test]
async fn a_dial_to_a_silent_peer_is_retried_until_the_peer_answers() {
    use std::time::Duration;
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        // Node 2's address, held by a socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let mut one_config = config(&pki, 1);
        one_config.timeouts.handshake = TEST_TIMEOUT * 2;
        one_config.timeouts.idle = TEST_TIMEOUT * 2;
        one_config.peers.insert(2, addr);
        let one: Node = QuicTransport::bind(one_config).unwrap();
        eventually(|| one.stats().dial_attempts >= 3).await;
        assert!(!one.is_connected(2));

        // Node 2 comes up at that address: the next attempt reaches it.
        drop(silent);
        let mut two_config = config(&pki, 2);
        two_config.bind = addr;
        two_config.peers.insert(1, one.local_addr());
        let two = loop {
            match QuicTransport::<TestMessage>::bind(two_config.clone()) {
                Ok(two) => break two,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        wait_connected(&one, 2).await;
        one.send(2, TestMessage::Ping { seq: 1 }).unwrap();
        assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq: 1 }));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dial_timeouts_out_of_order_are_refused_at_bind() {
    use std::time::Duration;
    let pki = Pki::new([1, 2]);
    let mut longer_than_handshake = config(&pki, 1);
    longer_than_handshake.timeouts.dial_attempt =
        longer_than_handshake.timeouts.handshake + Duration::from_millis(1);
    let mut rtt_not_below_attempt = config(&pki, 1);
    rtt_not_below_attempt.timeouts.initial_rtt = rtt_not_below_attempt.timeouts.dial_attempt;
    for bad in [longer_than_handshake, rtt_not_below_attempt] {
        let error = QuicTransport::<TestMessage>::bind(bad).unwrap_err();
        assert!(error.to_string().contains("dial_attempt"), "{error}");
    }
}
