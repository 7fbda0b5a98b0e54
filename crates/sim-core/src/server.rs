//! Serving a simulator router on a real socket.

use std::net::SocketAddr;

use axum::Router;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Hands out listeners: on port 0 (tests), or on consecutive ports from a base (`sharpsend sim
/// --base-port`), so other programs can hard-code the origins.
#[derive(Clone, Debug)]
pub struct Binder {
    host: String,
    next_port: Option<u16>,
}

impl Binder {
    /// Every listener on 127.0.0.1 with a port the OS picks.
    pub fn ephemeral() -> Self {
        Self {
            host: "127.0.0.1".into(),
            next_port: None,
        }
    }

    /// Listeners on `host`, ports `base`, `base + 1`, … in the order they are bound.
    pub fn from_base(host: impl Into<String>, base: u16) -> Self {
        Self {
            host: host.into(),
            next_port: Some(base),
        }
    }

    pub async fn bind(&mut self) -> std::io::Result<TcpListener> {
        let port = match &mut self.next_port {
            None => 0,
            Some(p) => {
                let port = *p;
                *p = p.saturating_add(1);
                port
            }
        };
        TcpListener::bind((self.host.as_str(), port)).await
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    /// `http://127.0.0.1:PORT`, the origin to point a connector at.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on `listener` in a background task.
pub fn spawn(listener: TcpListener, router: Router) -> std::io::Result<SimServer> {
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "simulator server stopped");
        }
    });
    Ok(SimServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}
