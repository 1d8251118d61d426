//! Frames per second of 100-byte messages, one sender to one receiver over
//! loopback: through `QuicTransport` (encode, queue, batched writes, decode,
//! delivery through `recv`) side by side with a bare quinn loop that writes
//! pre-built length-prefixed frames of the same size in batches on one
//! stream and only walks the length prefixes on the other side. Both use the
//! same TLS setup (cluster CA, ring) and quinn defaults.
//!
//! ```text
//! cargo bench -p transport-quic --bench frames
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use consensus_api::{ProtocolMessage, Transport, TransportError, TransportEvent};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use transport_quic::certs;
use transport_quic::tls::{self, Members};
use transport_quic::wire::{encode_frame_into, FrameDecoder};
use transport_quic::{ClusterId, QuicConfig, QuicTransport};

/// Frames per measured iteration.
const FRAMES: u64 = 80 * BATCH as u64;
/// Payload bytes of each message.
const PAYLOAD: usize = 100;
/// Frames per write in the bare loop.
const BATCH: usize = 256;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Message {
    payload: Bytes,
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message len={}", self.payload.len())
    }
}

impl ProtocolMessage for Message {}

fn message() -> Message {
    Message {
        payload: Bytes::from(vec![7u8; PAYLOAD]),
    }
}

struct Setup {
    sender: QuicTransport<Message>,
    receiver: QuicTransport<Message>,
    bare_send: quinn::SendStream,
    bare_recv: quinn::RecvStream,
    bare_decoder: FrameDecoder,
    _bare_endpoints: (quinn::Endpoint, quinn::Endpoint),
    _bare_conn: (quinn::Connection, quinn::Connection),
}

async fn setup() -> Setup {
    let cluster = ClusterId::new("bench").unwrap();
    let (ca, nodes) = certs::generate_cluster(&cluster, [1, 2]).unwrap();
    let loopback = "127.0.0.1:0".parse().unwrap();

    let config = |id: usize| {
        QuicConfig::new(
            id as u64 + 1,
            loopback,
            cluster.clone(),
            "bench",
            nodes[id].tls(&ca),
        )
    };
    let sender = QuicTransport::<Message>::bind(config(0)).unwrap();
    let receiver = QuicTransport::<Message>::bind(config(1)).unwrap();
    sender.add_peer(2, receiver.local_addr()).unwrap();
    receiver.add_peer(1, sender.local_addr()).unwrap();
    loop {
        match receiver.recv().await {
            Some(TransportEvent::PeerConnected(1)) => break,
            Some(_) => {}
            None => panic!("receiver closed"),
        }
    }

    // The bare loop: same certificates, default transport settings (plus a
    // keep-alive, so the connection survives while the other loop runs).
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(1)));
    let transport = Arc::new(transport);
    let server_config = tls::server_config(
        &nodes[1].tls(&ca),
        &cluster,
        Members::new([1]),
        transport.clone(),
    )
    .unwrap();
    let server = quinn::Endpoint::server(server_config, loopback).unwrap();
    let mut client = quinn::Endpoint::client(loopback).unwrap();
    client.set_default_client_config(tls::client_config(&nodes[0].tls(&ca), transport).unwrap());
    let server_addr = server.local_addr().unwrap();
    let accept = async {
        let conn = server.accept().await.unwrap().await.unwrap();
        let recv = conn.accept_uni().await.unwrap();
        (conn, recv)
    };
    let connect = async {
        let conn = client
            .connect(server_addr, &tls::node_dns_name(&cluster, 2))
            .unwrap()
            .await
            .unwrap();
        let mut send = conn.open_uni().await.unwrap();
        // Make the stream visible to the peer with a first (empty) frame.
        send.write_all(&0u32.to_be_bytes()).await.unwrap();
        (conn, send)
    };
    let ((server_conn, bare_recv), (client_conn, bare_send)) = tokio::join!(accept, connect);
    let mut bare_decoder = FrameDecoder::new(1 << 20);
    let mut bare_recv = bare_recv;
    // Consume the empty opening frame.
    while bare_decoder.next_frame().unwrap().is_none() {
        let chunk = bare_recv
            .read_chunk(usize::MAX, true)
            .await
            .unwrap()
            .unwrap();
        bare_decoder.push(&chunk.bytes);
    }
    Setup {
        sender,
        receiver,
        bare_send,
        bare_recv,
        bare_decoder,
        _bare_endpoints: (server, client),
        _bare_conn: (server_conn, client_conn),
    }
}

/// Sends `FRAMES` messages through the transport and waits for all of them.
/// Like a replication pipeline, the sender keeps at most `WINDOW` messages
/// in flight (so it never spins on a full queue; the queue bound is 4096).
async fn run_transport(setup: &Setup) -> Duration {
    const WINDOW: u64 = 2048;
    let received = std::cell::Cell::new(0u64);
    let progress = tokio::sync::Notify::new();
    let start = Instant::now();
    let send = async {
        let message = message();
        let mut sent = 0;
        while sent < FRAMES {
            if sent - received.get() >= WINDOW {
                progress.notified().await;
                continue;
            }
            match setup.sender.send(2, message.clone()) {
                Ok(()) => sent += 1,
                Err(TransportError::QueueFull(_)) => tokio::task::yield_now().await,
                Err(other) => panic!("send failed: {other}"),
            }
        }
    };
    let receive = async {
        while received.get() < FRAMES {
            match setup.receiver.recv().await {
                Some(TransportEvent::Message { message, .. }) => {
                    assert_eq!(message.payload.len(), PAYLOAD);
                    received.set(received.get() + 1);
                    progress.notify_one();
                }
                Some(_) => {}
                None => panic!("receiver closed"),
            }
        }
    };
    tokio::join!(send, receive);
    start.elapsed()
}

/// The same frames (pre-built, same size on the wire) written in batches on
/// one bare quinn stream.
async fn run_bare(setup: &mut Setup, batch: &Bytes) -> Duration {
    let start = Instant::now();
    let Setup {
        bare_send,
        bare_recv,
        bare_decoder,
        ..
    } = setup;
    let send = async {
        let mut sent = 0;
        while sent < FRAMES {
            bare_send.write_chunk(batch.clone()).await.unwrap();
            sent += BATCH as u64;
        }
    };
    let receive = async {
        let mut received = 0;
        while received < FRAMES {
            while let Some(frame) = bare_decoder.next_frame().unwrap() {
                assert_eq!(frame.len(), PAYLOAD + 1);
                received += 1;
            }
            if received >= FRAMES {
                break;
            }
            let chunk = bare_recv
                .read_chunk(usize::MAX, true)
                .await
                .unwrap()
                .unwrap();
            bare_decoder.push(&chunk.bytes);
        }
    };
    tokio::join!(send, receive);
    start.elapsed()
}

fn frames(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut setup = runtime.block_on(setup());
    // A batch of frames identical to what the transport puts on the wire.
    let mut batch = BytesMut::new();
    for _ in 0..BATCH {
        encode_frame_into(&mut batch, &message(), 1 << 20).unwrap();
    }
    assert_eq!(batch.len(), BATCH * (4 + PAYLOAD + 1));
    let batch = batch.freeze();

    let mut group = c.benchmark_group("frames_100B");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(FRAMES));
    group.bench_function("quic_transport", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_transport(&setup).await;
                }
                total
            })
        })
    });
    group.bench_function("bare_quinn_stream", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += run_bare(&mut setup, &batch).await;
                }
                total
            })
        })
    });
    group.finish();

    // The same loops once more, long enough to read the process CPU time:
    // CPU per frame does not depend on how busy the (shared) machine is.
    let rounds = 50;
    for (name, bare) in [("quic_transport", false), ("bare_quinn_stream", true)] {
        let cpu_before = process_cpu();
        let wall = runtime.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..rounds {
                total += if bare {
                    run_bare(&mut setup, &batch).await
                } else {
                    run_transport(&setup).await
                };
            }
            total
        });
        let cpu = process_cpu() - cpu_before;
        let frames = FRAMES * rounds;
        eprintln!(
            "{name}: {frames} frames, {:.0} frames/s wall, {:.2} us CPU per frame (all threads)",
            frames as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / frames as f64
        );
    }
    let stats = setup.sender.stats();
    eprintln!(
        "transport sender: {} frames in {} writes ({:.1} frames per write)",
        stats.frames_sent,
        stats.writes,
        stats.frames_sent as f64 / stats.writes.max(1) as f64
    );
    runtime.block_on(async {
        setup.sender.shutdown().await;
        setup.receiver.shutdown().await;
    });
}

/// User + system CPU time of this process, from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the
    // 12th, stime the 13th; both in clock ticks (100 per second on Linux).
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

criterion_group!(benches, frames);
criterion_main!(benches);
