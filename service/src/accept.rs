//! The server's accept loop: QUIC handshakes and connections, each served
//! on its own task, until shutdown.

use std::future::Future;
use std::sync::Arc;

/// Accepts connections on `endpoint` until `shutdown` resolves (or the
/// endpoint closes) and runs `serve` on each established connection on its
/// own task. A failed handshake (wrong ALPN, a certificate the CA did not
/// sign) is logged and costs nothing else. On shutdown the endpoint is
/// closed, which ends every connection.
pub async fn accept_until<S, Fut>(
    endpoint: &quinn::Endpoint,
    shutdown: impl Future<Output = ()>,
    serve: Arc<S>,
) where
    S: Fn(quinn::Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let serve = serve.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(connection) => serve(connection).await,
                        Err(error) => tracing::debug!(%error, "client handshake failed"),
                    }
                });
            }
        }
    }
    endpoint.close(0u32.into(), b"shutting down");
}

/// Runs `serve` on every bidirectional stream the peer of `connection`
/// opens, each on its own task, until the connection ends.
pub async fn streams_of<S, Fut>(connection: quinn::Connection, serve: S)
where
    S: Fn(quinn::Connection, quinn::SendStream, quinn::RecvStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve(connection.clone(), send, recv));
            }
            Err(error) => {
                tracing::trace!(%error, "client connection ended");
                return;
            }
        }
    }
}
