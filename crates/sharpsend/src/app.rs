//! Building and running the application: store, vault, admin token, router, listener.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vault::Vault;

use crate::{
    auth::{AdminBootstrap, Authenticator},
    cache::ReadCache,
    config::Config,
    http::{self, metrics::Metrics},
    server,
    state::{AppState, Inner},
};

/// A built application, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    /// `SHARPSEND_METRICS_LISTEN`: `/metrics` on its own (internal) address.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    /// A token generated on this start, to print once.
    pub generated_admin_token: Option<SecretString>,
}

impl Application {
    /// Binds, then opens and migrates the database, loads the vault and sets up the admin token.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("SHARPSEND_LISTEN: cannot listen on {}", config.listen))?;
        let metrics_listener =
            match config.metrics_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                    format!("SHARPSEND_METRICS_LISTEN: cannot listen on {addr}")
                })?),
                None => None,
            };
        let bound = listener.local_addr()?;
        let (state, boot) = assemble(config, bound).await?;
        Ok(Self {
            listener,
            metrics_listener,
            state,
            generated_admin_token: match boot {
                AdminBootstrap::Generated(t) => Some(t),
                _ => None,
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Where `/metrics` is served when `SHARPSEND_METRICS_LISTEN` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(server::bound)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests (at most
    /// `SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS`).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = http::router(self.state.clone());
        self.state.cache.spawn_poller(shutdown.clone());
        let mut background = crate::sync::engine::spawn_workers(&self.state, &shutdown);
        background.extend(crate::sync::scheduler::spawn(&self.state, &shutdown));
        background.push(crate::consent::worker::spawn(&self.state, &shutdown));
        background.push(crate::destinations::worker::spawn(&self.state, &shutdown));
        // Keap refresh tokens lapse after 45 idle days: keep idle integrations' tokens fresh.
        crate::keap_sweep::spawn(self.state.clone(), shutdown.clone());
        http::ratelimit::spawn_sweeper(self.state.clone(), shutdown.clone());
        tracing::info!(
            addr = %self.local_addr(),
            database = self.state.store.backend(),
            public_origin = %self.state.public_origin,
            "sharpsend listening"
        );
        let limits = server::Limits::of(&self.state.config);
        let metrics = self.metrics_listener.map(|listener| {
            tracing::info!(addr = %server::bound(&listener), "metrics listening");
            tokio::spawn(server::serve(
                listener,
                http::metrics_router(self.state.clone()),
                limits,
                shutdown.clone(),
            ))
        });
        // Connections and workers drain side by side from the stop, so the whole stop takes at
        // most SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS.
        let http = server::serve(self.listener, router, limits, shutdown.clone());
        let workers = async {
            shutdown.cancelled().await;
            // Workers finish the page in flight and give their jobs back; whatever is still
            // running at the deadline (or after a lease's length) is left to the lease.
            let wait = self.state.config.sync_lease.min(limits.shutdown_timeout);
            if tokio::time::timeout(wait, futures::future::join_all(background))
                .await
                .is_err()
            {
                tracing::warn!(
                    "sync workers still busy at shutdown; their leases will hand the jobs over"
                );
            }
        };
        tokio::join!(http, workers);
        if let Some(m) = metrics {
            let _ = m.await;
        }
        Ok(())
    }
}

/// The state every handler and worker shares, for a server bound at `bound` or a CLI command
/// that runs jobs itself (`sharpsend sync`, which passes the configured listen address).
pub async fn assemble(
    config: Config,
    bound: SocketAddr,
) -> anyhow::Result<(AppState, AdminBootstrap)> {
    let store = store::open(config.database_url.expose_secret())
        .await
        .with_context(|| {
            format!(
                "opening {}",
                store::redact_url(config.database_url.expose_secret())
            )
        })?;
    let vault = Arc::new(Vault::load(config.master_key.clone()).context("loading the master key")?);
    let cache = Arc::new(ReadCache::new(store.clone()));
    cache.poll().await;
    let (auth, boot) =
        Authenticator::bootstrap(store.clone(), cache.clone(), config.admin_token.as_ref())
            .await
            .context("setting up the admin token")?;
    let metrics = Metrics::new();
    // With SHARPSEND_REDIS_URL, every connector's budgets live in Redis, shared by all
    // replicas (nothing connects until the first call; Redis down = per-process budgets).
    let shared_budgets = match &config.redis_url {
        Some(url) => Some(Arc::new(
            connectors::budget::SharedBudgets::new(url.expose_secret(), "sharpsend:budget")
                .map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    let connectors = connectors::Registry::new(&connectors::Settings {
        upstreams: config.upstreams.clone(),
        timeout: config.upstream_timeout,
        observer: Arc::new(metrics.clone()),
        shared_budgets,
        budget_percent: config.rate_budget_percent,
    });
    let config_allow_private = config.destinations_allow_private;
    let state = AppState::new(Inner {
        rate_limits: http::limits::RateLimits::new(&config),
        public_origin: config.public_origin(bound),
        connectors,
        metrics,
        config,
        store,
        vault,
        auth,
        cache,
        sync_wakeup: tokio::sync::Notify::new(),
        hook_work: crate::webhooks::work::HookWork::new(),
        outbound: crate::destinations::outbound::Outbound::new(config_allow_private)
            .context("building the destinations' HTTP client")?,
    });
    Ok((state, boot))
}
