//! The pipelined client protocol over real QUIC on loopback: answers
//! matched by id in any order, many requests in flight on one connection,
//! and every bad input closing only the connection that sent it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use consensus::{certs, ClusterId, TlsMaterial};
use consensus_service::frame::encode_frame;
use consensus_service::pipe::{codes, serve_pipe, PipeClient, PipeError, PipeLimits};
use consensus_service::tls::{self, ClientCertificates, EndpointOptions};

const ALPN: &[u8] = b"pipe-test/1";
const DEADLINE: Duration = Duration::from_secs(20);

fn options() -> EndpointOptions {
    EndpointOptions {
        alpn: ALPN,
        idle_timeout: Duration::from_secs(10),
        keep_alive: Duration::from_secs(1),
        max_streams: 16,
        client_certificates: ClientCertificates::None,
    }
}

fn material() -> TlsMaterial {
    let cluster = ClusterId::new("pipe".to_string()).unwrap();
    let ca = certs::generate_ca(&cluster).unwrap();
    ca.issue_node(1).unwrap().tls(&ca)
}

/// What the test server does with a request body.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Sleeps for the number of milliseconds in the first byte, then echoes.
    DelayByFirstByte,
    /// Echoes at once.
    Echo,
    /// Answers 4 KiB at once (to fill a reader's window).
    Big,
    /// Never answers.
    Never,
}

struct Server {
    endpoint: quinn::Endpoint,
    material: TlsMaterial,
    handled: Arc<AtomicUsize>,
    active_max: Arc<AtomicUsize>,
    closes: tokio::sync::mpsc::UnboundedReceiver<Result<(), PipeError>>,
}

fn start(behaviour: Behaviour, limits: PipeLimits) -> Server {
    let material = material();
    let config = tls::server_config(&material, &options()).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let active_max = Arc::new(AtomicUsize::new(0));
    let (close_tx, closes) = tokio::sync::mpsc::unbounded_channel();
    let accept = endpoint.clone();
    let (counter, maximum) = (handled.clone(), active_max.clone());
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            let Ok(connection) = incoming.await else {
                continue;
            };
            let (counter, maximum, close_tx) = (counter.clone(), maximum.clone(), close_tx.clone());
            let limits = limits.clone();
            tokio::spawn(async move {
                while let Ok((send, recv)) = connection.accept_bi().await {
                    let active = Arc::new(AtomicUsize::new(0));
                    let result = serve_pipe(&connection, send, recv, &limits, |body| {
                        let (counter, maximum, active) =
                            (counter.clone(), maximum.clone(), active.clone());
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                            maximum.fetch_max(now, Ordering::SeqCst);
                            let answer = respond(behaviour, body).await;
                            active.fetch_sub(1, Ordering::SeqCst);
                            answer
                        }
                    })
                    .await;
                    let _ = close_tx.send(result);
                }
            });
        }
    });
    Server {
        endpoint,
        material,
        handled,
        active_max,
        closes,
    }
}

async fn respond(behaviour: Behaviour, body: Bytes) -> Bytes {
    match behaviour {
        Behaviour::DelayByFirstByte => {
            let millis = body.first().copied().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(u64::from(millis))).await;
            body
        }
        Behaviour::Echo => body,
        Behaviour::Big => Bytes::from(vec![7u8; 4096]),
        Behaviour::Never => std::future::pending().await,
    }
}

async fn connect(server: &Server) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(
        tls::client_config(&server.material.ca_pem, None, &options()).unwrap(),
    );
    let cluster = ClusterId::new("pipe".to_string()).unwrap();
    endpoint
        .connect(
            server.endpoint.local_addr().unwrap(),
            &tls::server_name(&cluster, 1),
        )
        .unwrap()
        .await
        .unwrap()
}

async fn pipe(server: &Server) -> PipeClient {
    PipeClient::open(connect(server).await, 1 << 20)
        .await
        .unwrap()
}

fn close_code(connection: &quinn::Connection) -> Option<u32> {
    match connection.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(close) => {
            Some(u32::try_from(close.error_code.into_inner()).unwrap_or(u32::MAX))
        }
        _ => None,
    }
}

async fn closed_with(connection: &quinn::Connection) -> Option<u32> {
    tokio::time::timeout(DEADLINE, connection.closed())
        .await
        .expect("the connection should be closed in time");
    close_code(connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_matched_by_id_in_completion_order() {
    let server = start(Behaviour::DelayByFirstByte, PipeLimits::default());
    let client = pipe(&server).await;
    let finished = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = [120u8, 60, 0].map(|delay| {
        let (client, finished) = (client.clone(), finished.clone());
        tokio::spawn(async move {
            let answer = client.call(Bytes::from(vec![delay, 42])).await.unwrap();
            finished.lock().unwrap().push(delay);
            answer
        })
    });
    for (call, delay) in calls.into_iter().zip([120u8, 60, 0]) {
        let answer = tokio::time::timeout(DEADLINE, call).await.unwrap().unwrap();
        assert_eq!(&answer[..], &[delay, 42], "each call gets its own answer");
    }
    assert_eq!(
        *finished.lock().unwrap(),
        vec![0, 60, 120],
        "answers arrive in completion order, not request order"
    );
    assert_eq!(
        server.active_max.load(Ordering::SeqCst),
        3,
        "all three ran at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_requests_in_flight_on_one_connection() {
    let limits = PipeLimits {
        requests_in_flight_max: 64,
        ..PipeLimits::default()
    };
    let server = start(Behaviour::DelayByFirstByte, limits);
    let client = pipe(&server).await;
    let calls: Vec<_> = (0..3000u32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let body = Bytes::from([&[1u8][..], &i.to_le_bytes()].concat());
                (body.clone(), client.call(body).await)
            })
        })
        .collect();
    for call in calls {
        let (sent, answer) = tokio::time::timeout(DEADLINE, call).await.unwrap().unwrap();
        assert_eq!(answer.unwrap(), sent);
    }
    assert_eq!(server.handled.load(Ordering::SeqCst), 3000);
    let most = server.active_max.load(Ordering::SeqCst);
    assert!(
        most > 1 && most <= 64,
        "requests overlapped ({most} at once) within the limit of 64"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_limit_holds_with_answers_that_never_come() {
    let limits = PipeLimits {
        requests_in_flight_max: 4,
        ..PipeLimits::default()
    };
    let server = start(Behaviour::Never, limits);
    let client = pipe(&server).await;
    let calls: Vec<_> = (0..50u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(Bytes::from(vec![i])).await })
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    while server.handled.load(Ordering::SeqCst) < 4 {
        assert!(
            Instant::now() < deadline,
            "the server should start 4 requests"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.handled.load(Ordering::SeqCst),
        4,
        "a full pipe starts no more requests"
    );
    client.close();
    for call in calls {
        let result = tokio::time::timeout(DEADLINE, call).await.unwrap().unwrap();
        assert!(
            matches!(result, Err(PipeError::Lost(_) | PipeError::Closed(_))),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_request_id_closes_only_that_connection() {
    let mut server = start(Behaviour::Echo, PipeLimits::default());
    let good = pipe(&server).await;
    let connection = connect(&server).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let mut frames = BytesMut::new();
    encode_frame(&mut frames, 5, b"first");
    encode_frame(&mut frames, 5, b"again");
    send.write_all(&frames).await.unwrap();
    assert_eq!(
        closed_with(&connection).await,
        Some(codes::PROTOCOL_VIOLATION)
    );
    let ended = server.closes.recv().await.unwrap();
    assert!(
        matches!(&ended, Err(PipeError::Protocol(text)) if text.contains("id 5")),
        "{ended:?}"
    );
    assert_eq!(
        good.call(Bytes::from_static(b"still here")).await.unwrap(),
        Bytes::from_static(b"still here")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_truncated_frames_close_the_connection() {
    let limits = PipeLimits {
        frame_bytes_max: 1024,
        ..PipeLimits::default()
    };
    let mut server = start(Behaviour::Echo, limits);
    let connection = connect(&server).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
    assert_eq!(closed_with(&connection).await, Some(codes::BAD_FRAME));
    let ended = server.closes.recv().await.unwrap();
    assert!(matches!(ended, Err(PipeError::Frame(_))), "{ended:?}");

    let connection = connect(&server).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&[20, 0, 0, 0, 1, 2, 3]).await.unwrap();
    send.finish().unwrap();
    assert_eq!(closed_with(&connection).await, Some(codes::BAD_FRAME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_and_stalls_no_one() {
    let limits = PipeLimits {
        write_timeout: Duration::from_millis(500),
        ..PipeLimits::default()
    };
    let mut server = start(Behaviour::Big, limits);
    let greedy = connect(&server).await;
    let (mut send, _unread) = greedy.open_bi().await.unwrap();
    // Ask for far more answer bytes than the stream window holds, and never
    // read them.
    let writer = tokio::spawn(async move {
        let mut frames = BytesMut::new();
        for id in 1..=4000u64 {
            encode_frame(&mut frames, id, b"x");
        }
        let _ = send.write_all(&frames).await;
        send
    });
    // Meanwhile another client is served promptly.
    let polite = pipe(&server).await;
    for _ in 0..200 {
        let answer = tokio::time::timeout(Duration::from_secs(2), polite.call(Bytes::new()))
            .await
            .expect("a well-behaved client is not stalled")
            .unwrap();
        assert_eq!(answer.len(), 4096);
    }
    assert_eq!(closed_with(&greedy).await, Some(codes::SLOW_READER));
    let ended = server.closes.recv().await.unwrap();
    assert!(matches!(ended, Err(PipeError::SlowReader(_))), "{ended:?}");
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_an_id_never_sent_closes_the_client_pipe() {
    // A rogue server: answers every request with id 999 as well.
    let material = material();
    let config = tls::server_config(&material, &options()).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let accept = endpoint.clone();
    tokio::spawn(async move {
        let connection = accept.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = connection.accept_bi().await.unwrap();
        let _ = recv.read_chunk(1024, true).await;
        let mut frames = BytesMut::new();
        encode_frame(&mut frames, 999, b"who asked?");
        send.write_all(&frames).await.unwrap();
        connection.closed().await;
    });
    let server = Server {
        endpoint,
        material,
        handled: Arc::default(),
        active_max: Arc::default(),
        closes: tokio::sync::mpsc::unbounded_channel().1,
    };
    let client = pipe(&server).await;
    let result = tokio::time::timeout(DEADLINE, client.call(Bytes::from_static(b"hello")))
        .await
        .unwrap();
    assert!(
        matches!(&result, Err(PipeError::Lost(reason)) if reason.contains("never sent")),
        "{result:?}"
    );
    assert!(client.is_closed());
    assert!(
        matches!(
            client.connection().close_reason(),
            Some(quinn::ConnectionError::LocallyClosed)
        ),
        "the client closed the connection itself"
    );
}
