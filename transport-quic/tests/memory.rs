//! The in-memory transport.

mod common;

use std::time::Duration;

use common::*;
use consensus_api::{Transport, TransportError, TransportEvent};
use tokio::time::{timeout, Instant};
use transport_quic::memory::MemoryNetwork;
use transport_quic::FaultController;

#[tokio::test]
async fn endpoints_exchange_in_order_and_see_each_other() {
    timeout(TEST_TIMEOUT, async {
        let network = MemoryNetwork::new();
        let one = network.endpoint::<TestMessage>(1);
        let two = network.endpoint::<TestMessage>(2);
        assert_eq!(one.recv().await, Some(TransportEvent::PeerConnected(2)));
        assert_eq!(two.recv().await, Some(TransportEvent::PeerConnected(1)));
        for seq in 0..1000 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
        }
        for seq in 0..1000 {
            assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq }));
        }
        // Sends to a node that does not exist are dropped like lost packets.
        one.send(3, TestMessage::Ping { seq: 0 }).unwrap();
        assert_eq!(
            one.send(1, TestMessage::Ping { seq: 0 }),
            Err(TransportError::UnknownPeer(1))
        );

        two.shutdown().await;
        assert_eq!(one.recv().await, Some(TransportEvent::PeerDisconnected(2)));
        assert_eq!(two.recv().await, None);
        assert_eq!(
            two.send(1, TestMessage::Ping { seq: 0 }),
            Err(TransportError::Closed)
        );

        // Restart: a new endpoint with the same id.
        let two = network.endpoint::<TestMessage>(2);
        assert_eq!(one.recv().await, Some(TransportEvent::PeerConnected(2)));
        one.send(2, TestMessage::Ping { seq: 5 }).unwrap();
        assert_eq!(next_message(&two).await, (1, TestMessage::Ping { seq: 5 }));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_full_inbox_refuses_without_blocking() {
    timeout(TEST_TIMEOUT, async {
        let network = MemoryNetwork::with_faults(FaultController::new(), 10);
        let one = network.endpoint::<TestMessage>(1);
        let _two = network.endpoint::<TestMessage>(2);
        let three = network.endpoint::<TestMessage>(3);
        // Node 2's inbox holds its two PeerConnected events already.
        let results: Vec<_> = (0..10)
            .map(|seq| one.send(2, TestMessage::Ping { seq }))
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 8);
        assert!(results.contains(&Err(TransportError::QueueFull(2))));
        one.send(3, TestMessage::Ping { seq: 0 }).unwrap();
        assert_eq!(
            next_message(&three).await,
            (1, TestMessage::Ping { seq: 0 })
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn faults_partition_delay_and_heal() {
    timeout(TEST_TIMEOUT, async {
        let network = MemoryNetwork::new();
        let nodes: Vec<_> = (1..=3)
            .map(|id| network.endpoint::<TestMessage>(id))
            .collect();
        let faults = network.faults();
        faults.partition(&[&[1], &[2, 3]]);
        nodes[0].send(2, TestMessage::Ping { seq: 1 }).unwrap();
        nodes[1].send(3, TestMessage::Ping { seq: 2 }).unwrap();
        assert_eq!(
            next_message(&nodes[2]).await,
            (2, TestMessage::Ping { seq: 2 })
        );
        faults.heal();
        nodes[0].send(2, TestMessage::Ping { seq: 3 }).unwrap();
        assert_eq!(
            next_message(&nodes[1]).await,
            (1, TestMessage::Ping { seq: 3 })
        );

        let delay = Duration::from_millis(100);
        faults.set_delay(1, 2, delay);
        let sent = Instant::now();
        for seq in 10..20 {
            nodes[0].send(2, TestMessage::Ping { seq }).unwrap();
        }
        faults.set_delay(1, 2, Duration::ZERO);
        // Sent after the delay was lifted, but never overtakes.
        nodes[0].send(2, TestMessage::Ping { seq: 20 }).unwrap();
        for seq in 10..=20 {
            assert_eq!(
                next_message(&nodes[1]).await,
                (1, TestMessage::Ping { seq })
            );
        }
        assert!(sent.elapsed() >= delay);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn endpoints_of_different_message_types_never_talk() {
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Other(u8);
    impl std::fmt::Display for Other {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Other {}", self.0)
        }
    }
    impl consensus_api::ProtocolMessage for Other {}

    timeout(TEST_TIMEOUT, async {
        let network = MemoryNetwork::new();
        let raft = network.endpoint::<TestMessage>(1);
        let zab = network.endpoint::<Other>(2);
        let raft_two = network.endpoint::<TestMessage>(3);
        zab.send(1, Other(1)).unwrap();
        raft_two.send(1, TestMessage::Ping { seq: 9 }).unwrap();
        assert_eq!(raft.recv().await, Some(TransportEvent::PeerConnected(3)));
        assert_eq!(next_message(&raft).await, (3, TestMessage::Ping { seq: 9 }));
    })
    .await
    .expect("test timed out");
}
