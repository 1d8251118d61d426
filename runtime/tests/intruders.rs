//! Security and bad input at the level of a running cluster: impostors and
//! garbage are refused by the transport and the cluster keeps committing.
//! (The transport's own tests check each refusal in detail; here the point
//! is that a real protocol cluster is unaffected.) Every protocol runs the
//! same tests: adding a protocol adds one `intruder_suite!` line.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus_api::{Core, NodeId, ProtocolMessage, ReplicatedLog, Transport};
use consensus_runtime::RuntimeConfig;
use support::TestCluster;
use transport_quic::certs::generate_cluster;
use transport_quic::wire::{encode_frame, HELLO_MAGIC, HELLO_MAX_BYTES};
use transport_quic::{ClusterId, Hello, QuicConfig, QuicTransport, TlsMaterial, WIRE_VERSION};

fn run<F: std::future::Future<Output = ()>>(body: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), body)
            .await
            .expect("test exceeded its deadline");
    });
}

/// A 3-member cluster with nodes 1 and 2 running; member 3's address is
/// free for an impostor. Nodes 1 and 2 dial it (the lower id dials).
async fn two_of_three<C: Core>() -> TestCluster<C> {
    let mut cluster = TestCluster::<C>::start_subset(3, &[1, 2], RuntimeConfig::default()).await;
    cluster.wait_ready().await;
    cluster
}

fn refusals<C: Core>(cluster: &TestCluster<C>) -> u64 {
    cluster
        .transports
        .values()
        .map(|t| {
            let stats = t.stats();
            stats.tls_rejections + stats.handshake_mismatches + stats.dial_failures
        })
        .sum()
}

fn impostor<M: ProtocolMessage>(
    cluster_id: &str,
    protocol: &str,
    id: NodeId,
    addr: SocketAddr,
    tls: TlsMaterial,
    peers: &BTreeMap<NodeId, SocketAddr>,
) -> QuicTransport<M> {
    let mut config = QuicConfig::new(id, addr, ClusterId::new(cluster_id).unwrap(), protocol, tls);
    config.peers = peers
        .iter()
        .filter(|(p, _)| **p != id)
        .map(|(p, a)| (*p, *a))
        .collect();
    QuicTransport::bind(config).expect("impostor binds member 3's address")
}

/// Waits until the cluster's transports counted a refusal, checks the
/// impostor never got a connection, and that the cluster still commits.
async fn refused_and_cluster_commits<C: Core, M: ProtocolMessage>(
    cluster: &mut TestCluster<C>,
    impostor: QuicTransport<M>,
    before: u64,
    what: &str,
) {
    let deadline = Instant::now() + support::WAIT;
    while refusals(cluster) <= before {
        assert!(Instant::now() < deadline, "{what}: no refusal was counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A leaderless protocol's epoch is a proposer's ballot, which moves
    // with ordinary proposals; only a leader's epoch must stay put.
    let leader_epoch = |cluster: &TestCluster<C>| {
        let status = cluster.node(1).status();
        status.leader.map(|_| status.epoch)
    };
    let epoch = leader_epoch(cluster);
    for i in 0..5 {
        cluster
            .append(Bytes::from(format!("{what}-{i}")))
            .await
            .unwrap_or_else(|e| panic!("{what}: the cluster stopped committing: {e}"));
    }
    let stats = impostor.stats();
    assert_eq!(
        stats.connections_established, 0,
        "{what}: the impostor got a connection"
    );
    assert_eq!(
        stats.frames_received, 0,
        "{what}: the impostor received frames"
    );
    if epoch.is_some() {
        assert_eq!(
            leader_epoch(cluster),
            epoch,
            "{what}: the impostor disturbed the cluster"
        );
    }
    impostor.shutdown().await;
}

async fn a_member_impostor_with_a_certificate_of_another_ca_is_refused<C: Core>() {
    {
        let mut cluster = two_of_three::<C>().await;
        let (other_ca, certs) = generate_cluster(&cluster.cluster_id, [3]).unwrap();
        let before = refusals(&cluster);
        let rogue = impostor::<C::Message>(
            cluster.cluster_id.as_str(),
            C::PROTOCOL,
            3,
            cluster.addrs[&3],
            certs[0].tls(&other_ca),
            &cluster.addrs,
        );
        refused_and_cluster_commits(&mut cluster, rogue, before, "other CA").await;
        cluster.shutdown_all().await;
    }
}

async fn a_certificate_of_the_right_ca_for_an_unknown_node_is_refused<C: Core>() {
    {
        let mut cluster = two_of_three::<C>().await;
        // The cluster's own CA issues a certificate for node 9, which is not
        // a member; it answers at member 3's address.
        let node9 = cluster.ca.issue_node(9).unwrap();
        let before = refusals(&cluster);
        let rogue = impostor::<C::Message>(
            cluster.cluster_id.as_str(),
            C::PROTOCOL,
            9,
            cluster.addrs[&3],
            node9.tls(&cluster.ca),
            &cluster.addrs,
        );
        refused_and_cluster_commits(&mut cluster, rogue, before, "unknown node id").await;
        cluster.shutdown_all().await;
    }
}

async fn a_node_of_another_protocol_is_refused<C: Core, Other: Core>() {
    {
        let mut cluster = two_of_three::<C>().await;
        // Member 3's genuine certificate, but it speaks another protocol.
        let tls = cluster.certs[&3].tls(&cluster.ca);
        let before = refusals(&cluster);
        let rogue = impostor::<Other::Message>(
            cluster.cluster_id.as_str(),
            Other::PROTOCOL,
            3,
            cluster.addrs[&3],
            tls,
            &cluster.addrs,
        );
        refused_and_cluster_commits(&mut cluster, rogue, before, "other protocol").await;
        let mismatches: u64 = cluster
            .transports
            .values()
            .map(|t| t.stats().handshake_mismatches)
            .sum();
        assert!(mismatches >= 1, "the refusal is a handshake mismatch");
        cluster.shutdown_all().await;
    }
}

async fn a_node_of_another_cluster_is_refused<C: Core>() {
    {
        let mut cluster = two_of_three::<C>().await;
        let other = ClusterId::new("othercluster").unwrap();
        let (other_ca, certs) = generate_cluster(&other, [3]).unwrap();
        let before = refusals(&cluster);
        let rogue = impostor::<C::Message>(
            "othercluster",
            C::PROTOCOL,
            3,
            cluster.addrs[&3],
            certs[0].tls(&other_ca),
            &cluster.addrs,
        );
        refused_and_cluster_commits(&mut cluster, rogue, before, "other cluster").await;
        cluster.shutdown_all().await;
    }
}

async fn garbage_and_oversized_frames_close_the_connection_and_the_cluster_keeps_committing<
    C: Core,
>() {
    {
        let mut cluster = two_of_three::<C>().await;
        let node1 = cluster.addrs[&1];
        // Random datagrams at the QUIC port.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..500 {
            let datagram: Vec<u8> = (0..1200)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = socket.send_to(&datagram, node1);
        }
        // An authenticated member (3's genuine certificate) that sends an
        // oversized frame after a correct handshake.
        let tls = cluster.certs[&3].tls(&cluster.ca);
        let client_config = transport_quic::tls::client_config(
            &tls,
            std::sync::Arc::new(quinn::TransportConfig::default()),
        )
        .unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(client_config);
        let name = transport_quic::tls::node_dns_name(&cluster.cluster_id, 1);
        let connection = endpoint
            .connect(node1, &name)
            .unwrap()
            .await
            .expect("member connects");
        let (mut send, _recv) = connection.open_bi().await.unwrap();
        let hello = Hello {
            magic: HELLO_MAGIC,
            wire_version: WIRE_VERSION,
            cluster_id: cluster.cluster_id.as_str().into(),
            protocol: C::PROTOCOL.into(),
            node_id: 3,
        };
        send.write_all(&encode_frame(&hello, HELLO_MAX_BYTES).unwrap())
            .await
            .unwrap();
        send.write_all(&(64u32 << 20).to_be_bytes()).await.unwrap();
        let closed = tokio::time::timeout(support::WAIT, connection.closed())
            .await
            .expect("connection closed");
        assert!(
            matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
            "closed by the node: {closed}"
        );
        let deadline = Instant::now() + support::WAIT;
        while cluster.transports[&1].stats().frame_errors == 0 {
            assert!(
                Instant::now() < deadline,
                "node 1 never counted the oversized frame"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Garbage bytes instead of a handshake on a second connection.
        let connection = endpoint
            .connect(node1, &name)
            .unwrap()
            .await
            .expect("member connects");
        let (mut send, _recv) = connection.open_bi().await.unwrap();
        send.write_all(&[0xff; 4096]).await.unwrap();
        tokio::time::timeout(support::WAIT, connection.closed())
            .await
            .expect("connection closed");
        // The cluster keeps committing.
        for i in 0..10 {
            cluster
                .append(Bytes::from(format!("after-garbage-{i}")))
                .await
                .expect("commit after garbage");
        }
        cluster.shutdown_all().await;
    }
}

macro_rules! intruder_suite {
    ($name:ident, $core:ty, $other:ty) => {
        mod $name {
            use super::*;

            #[test]
            fn a_member_impostor_with_a_certificate_of_another_ca_is_refused() {
                run(super::a_member_impostor_with_a_certificate_of_another_ca_is_refused::<$core>());
            }

            #[test]
            fn a_certificate_of_the_right_ca_for_an_unknown_node_is_refused() {
                run(super::a_certificate_of_the_right_ca_for_an_unknown_node_is_refused::<$core>());
            }

            #[test]
            fn a_node_of_another_protocol_is_refused() {
                run(super::a_node_of_another_protocol_is_refused::<$core, $other>());
            }

            #[test]
            fn a_node_of_another_cluster_is_refused() {
                run(super::a_node_of_another_cluster_is_refused::<$core>());
            }

            #[test]
            fn garbage_and_oversized_frames_close_the_connection_and_the_cluster_keeps_committing() {
                run(super::garbage_and_oversized_frames_close_the_connection_and_the_cluster_keeps_committing::<$core>());
            }
        }
    };
}

intruder_suite!(raft_intruders, raft::RaftCore, zab::ZabCore);
intruder_suite!(
    multipaxos_intruders,
    multipaxos::MultiPaxosCore,
    raft::RaftCore
);
intruder_suite!(
    paxos_intruders,
    paxos::PaxosCore,
    multipaxos::MultiPaxosCore
);
intruder_suite!(zab_intruders, zab::ZabCore, paxos::PaxosCore);
