//! The accept loop: HTTP/1.1 connections served by hyper directly (axum's `serve` has no
//! header-read timeout), with
//!
//! * a **header-read timeout** (`SHARPSEND_HEADER_READ_TIMEOUT_SECONDS`): a connection that does
//!   not send a whole request head in time is closed;
//! * a **cap on open connections** (`SHARPSEND_MAX_CONNECTIONS`): at the cap the loop stops
//!   accepting, so further clients wait in the listen backlog until a connection closes;
//! * a **shutdown deadline** (`SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS`): on stop the listener closes,
//!   idle connections close, in-flight requests get until the deadline, then their connections
//!   are dropped.
//!
//! The whole-request timeout (`SHARPSEND_REQUEST_TIMEOUT_SECONDS`, `408 REQUEST_TIMEOUT`) is a
//! middleware (`http::middleware::request_timeout`), since it answers with the envelope.
//! Handlers still get the peer address as `ConnectInfo<SocketAddr>`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::Config;

/// The connection limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: u32,
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn of(config: &Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops within
/// `limits.shutdown_timeout` (answers once every connection is closed or dropped).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max as usize));
    // Cancelled at the shutdown deadline: connections still open are dropped.
    let hard_stop = CancellationToken::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);

    loop {
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Per-connection failures (reset before accept) are routine; running out of
                    // file descriptors is not, and retrying at once would spin.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let shutdown = shutdown.clone();
        let hard_stop = hard_stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown.cancelled() => {
                    // No new request on this connection; the one in flight may finish.
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        r = conn.as_mut() => r,
                        () = hard_stop.cancelled() => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);

    // Every connection holds a slot: all slots back means every connection is closed.
    let deadline = limits.shutdown_timeout;
    if tokio::time::timeout(deadline, slots.acquire_many(max))
        .await
        .is_err()
    {
        let open = (max as usize).saturating_sub(slots.available_permits());
        tracing::warn!(
            open,
            deadline_secs = deadline.as_secs(),
            "connections still busy at the shutdown deadline; closing them"
        );
        hard_stop.cancel();
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// The address a listener is bound to (`0.0.0.0:0` when the OS does not say).
pub fn bound(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}
