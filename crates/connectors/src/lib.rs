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

pub mod customerio;
mod error;
pub mod http;
pub mod iterable;
pub mod keap;
mod upstreams;

use async_trait::async_trait;
use domain::Platform;

pub use error::{ConnectorError, ErrorKind, Retry};
pub use upstreams::{UpstreamError, Upstreams};

/// What every platform connector can do. Operations a platform lacks are refused before any
/// upstream call, from the capability matrix (`domain::capabilities`).
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    fn platform(&self) -> Platform;
}

/// The connectors, one per platform, built once at start-up.
pub struct Registry {
    connectors: Vec<std::sync::Arc<dyn Connector>>,
}

impl Registry {
    pub fn new(upstreams: &Upstreams) -> Self {
        Self {
            connectors: vec![
                std::sync::Arc::new(iterable::IterableConnector::new(upstreams)),
                std::sync::Arc::new(customerio::CustomerioConnector::new(upstreams)),
                std::sync::Arc::new(keap::KeapConnector::new(upstreams)),
            ],
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
