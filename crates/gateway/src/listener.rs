//! Accepting client connections on the loopback listener. A peer gets nothing for free:
//! at most `limits.max_connections` connections are open at once (more are closed as
//! they arrive, without reading a byte), and a request's headers must arrive within
//! `limits.read_timeout_secs`, also while a kept-alive connection waits for its next
//! request; bodies have the same deadline where they are read (`http_face`). So a
//! thousand trickling peers cannot hold the gateway's sockets or memory.
//!
//! Must never: read from a connection it has no room for, or wait on a peer forever.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, app: Router, max_connections: usize, read_timeout: Duration) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(read_timeout));
    let room = Arc::new(Semaphore::new(max_connections));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(place) = room.clone().try_acquire_owned() else {
            tracing::warn!("{max_connections} client connections are open; closed a new one");
            drop(tcp);
            continue;
        };
        // Small JSON-RPC messages must not wait for Nagle's algorithm (40 ms with delayed ACKs).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).await {
                tracing::debug!("client connection ended: {e}");
            }
            drop(place);
        });
    }
}
