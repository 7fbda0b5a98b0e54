//! The platform connectors.
//!
//! Each platform is a module (`iterable`, `customerio`, `keap`) implementing [`Connector`]. A
//! connector is stateless apart from its HTTP client and the configured origins: the publisher's
//! credentials are passed in on each call, so one instance serves every tenant and no token is
//! ever cached under the wrong publisher.
//!
//! Errors from every platform are mapped, in one place per platform, onto [`ConnectorError`],
//! whose [`ErrorKind`] maps onto the public [`ErrorCode`] registry and whose [`Retry`] says
//! whether trying again can help.
#![forbid(unsafe_code)]

pub mod budget;
pub mod customerio;
mod error;
pub mod http;
pub mod iterable;
pub mod keap;
pub mod limits;
pub mod rate;
mod upstreams;

use async_trait::async_trait;
use domain::Platform;

pub use error::{ConnectorError, ErrorKind, Retry};
pub use upstreams::{UpstreamError, Upstreams};

/// What every platform connector shares: its platform and its budgeted HTTP client. Operations
/// a platform lacks are refused before any upstream call, from the capability matrix
/// (`domain::capabilities`), by the service's platform sessions.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn platform(&self) -> Platform;

    /// The client every call of this connector goes through (budgets, retries, body caps).
    fn client(&self) -> &http::UpstreamClient;

    /// Every endpoint class's figures for the credentials `keys` (budget digests), and whether
    /// they are every replica's ([`http::UpstreamClient::limits_view`]).
    async fn limits_view(&self, keys: &[&str]) -> (Vec<limits::ClassLimits>, bool) {
        self.client().limits_view(keys).await
    }
}

/// What every connector is built from.
#[derive(Clone)]
pub struct Settings {
    pub upstreams: Upstreams,
    /// Per upstream request (`SHARPSEND_UPSTREAM_TIMEOUT_MS`).
    pub timeout: std::time::Duration,
    /// Where upstream attempts are counted (the service's metrics).
    pub observer: std::sync::Arc<dyn http::UpstreamObserver>,
    /// Rate budgets shared by every replica through Redis (`SHARPSEND_REDIS_URL`); `None`
    /// keeps them per process.
    pub shared_budgets: Option<std::sync::Arc<budget::SharedBudgets>>,
    /// Every proactive budget as a percentage of the platform's published limits
    /// (`SHARPSEND_RATE_BUDGET_PERCENT`, 100): above 100 only for accounts whose limits the
    /// platform raised (or a simulator with its limits lifted); 429s are honoured either way.
    pub budget_percent: u32,
}

impl Settings {
    /// The real platforms, a 10 s timeout, no observer (tests).
    pub fn defaults() -> Self {
        Self {
            upstreams: Upstreams::defaults(),
            timeout: std::time::Duration::from_secs(10),
            observer: std::sync::Arc::new(http::NoObserver),
            shared_budgets: None,
            budget_percent: 100,
        }
    }

    /// A platform's published budgets, scaled by [`Settings::budget_percent`] and paced
    /// `headroom` % under the result ([`rate::Rate::with_headroom`]).
    pub fn budgets(
        &self,
        published: &[(&'static str, rate::Rate)],
        headroom: u8,
    ) -> Vec<(&'static str, rate::Rate)> {
        published
            .iter()
            .map(|&(class, rate)| {
                let rate = rate.scaled_percent(self.budget_percent);
                (class, rate.with_headroom(headroom))
            })
            .collect()
    }
}

/// The connectors, one per platform, built once at start-up.
pub struct Registry {
    pub iterable: std::sync::Arc<iterable::IterableConnector>,
    pub customerio: std::sync::Arc<customerio::CustomerioConnector>,
    pub keap: std::sync::Arc<keap::KeapConnector>,
    connectors: Vec<std::sync::Arc<dyn Connector>>,
}

impl Registry {
    pub fn new(settings: &Settings) -> Self {
        let iterable = std::sync::Arc::new(iterable::IterableConnector::new(settings));
        let customerio = std::sync::Arc::new(customerio::CustomerioConnector::new(settings));
        let keap = std::sync::Arc::new(keap::KeapConnector::new(settings));
        Self {
            connectors: vec![iterable.clone(), customerio.clone(), keap.clone()],
            iterable,
            customerio,
            keap,
        }
    }

    pub fn get(&self, platform: Platform) -> &dyn Connector {
        // Registry::new holds one connector per Platform::ALL entry, in that order.
        self.connectors
            .iter()
            .find(|c| c.platform() == platform)
            .map(|c| c.as_ref())
            .unwrap_or_else(|| unreachable!("a connector for every platform"))
    }
}

/// The public code for a connector error.
pub use domain::ErrorCode;
