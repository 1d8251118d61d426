//! The fault-injection layer on real QUIC nodes.

mod common;

use std::time::Duration;

use common::*;
use consensus_api::Transport;
use tokio::time::{timeout, Instant};
use transport_quic::FaultController;

#[tokio::test]
async fn partition_and_heal() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2, 3]);
        let faults = FaultController::new();
        let nodes = cluster(&pki, 3, &faults);
        let (one, two, three) = (&nodes[0], &nodes[1], &nodes[2]);

        faults.partition(&[&[1], &[2, 3]]);
        for seq in 0..100 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
            three.send(1, TestMessage::Ping { seq }).unwrap();
            two.send(3, TestMessage::Ping { seq }).unwrap();
        }
        // Inside the majority side, traffic flows.
        for seq in 0..100 {
            assert_eq!(next_message(three).await, (2, TestMessage::Ping { seq }));
        }
        assert!(one.stats().fault_drops >= 100, "{:?}", one.stats());

        faults.heal();
        one.send(2, TestMessage::Ping { seq: 1000 }).unwrap();
        three.send(1, TestMessage::Ping { seq: 1000 }).unwrap();
        // Messages are in order per link, so anything that leaked through
        // the partition would arrive before these.
        assert_eq!(
            next_message(two).await,
            (1, TestMessage::Ping { seq: 1000 })
        );
        assert_eq!(
            next_message(one).await,
            (3, TestMessage::Ping { seq: 1000 })
        );
        for node in &nodes {
            node.shutdown().await;
        }
    })
    .await
    .expect("test timed out");
}

/// A per-node controller (not shared) isolates its node in both directions.
#[tokio::test]
async fn a_node_local_controller_blocks_both_directions() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let mut config_one = config(&pki, 1);
        let local = FaultController::new();
        config_one.faults = local.clone();
        let nodes = start(vec![config_one, config(&pki, 2)]);
        let (one, two) = (&nodes[0], &nodes[1]);
        local.isolate(1);
        for seq in 0..10 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
            two.send(1, TestMessage::Ping { seq }).unwrap();
        }
        // Node 2 knows nothing of the rule: its messages reach node 1's
        // transport, which drops them on receive.
        eventually(|| one.stats().fault_drops >= 20).await;
        local.clear();
        one.send(2, TestMessage::Ping { seq: 99 }).unwrap();
        two.send(1, TestMessage::Ping { seq: 99 }).unwrap();
        assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq: 99 }));
        assert_eq!(next_message(one).await, (2, TestMessage::Ping { seq: 99 }));
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn delay_keeps_order_and_drop_rate_loses_some() {
    timeout(TEST_TIMEOUT, async {
        let pki = Pki::new([1, 2]);
        let faults = FaultController::with_seed(11);
        let nodes = cluster(&pki, 2, &faults);
        let (one, two) = (&nodes[0], &nodes[1]);
        wait_connected(two, 1).await;

        let delay = Duration::from_millis(150);
        faults.set_delay(1, 2, delay);
        let sent = Instant::now();
        for seq in 0..50 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
        }
        for seq in 0..50 {
            assert_eq!(next_message(two).await, (1, TestMessage::Ping { seq }));
        }
        assert!(
            sent.elapsed() >= delay,
            "delivered after {:?}",
            sent.elapsed()
        );
        faults.set_delay(1, 2, Duration::ZERO);

        faults.set_drop_rate(1, 2, 0.5);
        for seq in 100..300 {
            one.send(2, TestMessage::Ping { seq }).unwrap();
        }
        faults.set_drop_rate(1, 2, 0.0);
        one.send(2, TestMessage::Ping { seq: 1000 }).unwrap();
        let mut received = Vec::new();
        loop {
            match next_message(two).await {
                (1, TestMessage::Ping { seq: 1000 }) => break,
                (1, TestMessage::Ping { seq }) => received.push(seq),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(received.windows(2).all(|w| w[0] < w[1]), "order kept");
        assert!(
            (50..150).contains(&received.len()),
            "{} of 200 arrived",
            received.len()
        );
        one.shutdown().await;
        two.shutdown().await;
    })
    .await
    .expect("test timed out");
}
