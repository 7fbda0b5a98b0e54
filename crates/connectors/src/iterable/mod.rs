//! Iterable's REST API: an `Api-Key` header on the region's origin (US or EU).
//!
//! The client, its error mapping and its operations arrive with this platform's issue; the
//! connector is registered now so that routing, capabilities and tenancy are in place.

use crate::{Connector, Upstreams};
use domain::Platform;

/// The Iterable connector.
#[derive(Debug)]
pub struct IterableConnector {
    #[allow(dead_code)] // read by the platform's operations
    upstreams: Upstreams,
}

impl IterableConnector {
    pub fn new(upstreams: &Upstreams) -> Self {
        Self {
            upstreams: upstreams.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Connector for IterableConnector {
    fn platform(&self) -> Platform {
        Platform::Iterable
    }
}
