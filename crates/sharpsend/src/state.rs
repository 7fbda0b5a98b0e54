//! The state every handler and worker shares.

use std::sync::Arc;

use store::Store;
use vault::Vault;

use crate::{auth::Authenticator, cache::ReadCache, config::Config, http::metrics::Metrics};

/// Cheap to clone: everything is behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub auth: Authenticator,
    pub cache: Arc<ReadCache>,
    pub metrics: Metrics,
    pub connectors: connectors::Registry,
    /// `SHARPSEND_PUBLIC_URL`, or the bound address: the origin of webhook and callback URLs.
    pub public_origin: String,
    /// Wakes an idle sync worker of this process when a job is queued here.
    pub sync_wakeup: tokio::sync::Notify,
    /// Our own rate limits (`http::ratelimit`).
    pub rate_limits: crate::http::limits::RateLimits,
    /// Upstream work caused by webhook deliveries, queued and bounded per integration.
    pub hook_work: crate::webhooks::queue::HookWork,
    /// Event destinations' delivery client and wake-up bell.
    pub outbound: crate::destinations::outbound::Outbound,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
