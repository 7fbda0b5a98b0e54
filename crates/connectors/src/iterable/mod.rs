//! Iterable's REST API: an `Api-Key` header on the region's origin (US or EU).
//!
//! The client, its error mapping and its operations arrive with this platform's issue; the
//! connector is registered now so that routing, capabilities and tenancy are in place.

use crate::{Connector, Settings};
use domain::Platform;

/// The Iterable connector.
pub struct IterableConnector {
    #[allow(dead_code)] // read by the platform's operations
    settings: Settings,
}

impl IterableConnector {
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Connector for IterableConnector {
    fn platform(&self) -> Platform {
        Platform::Iterable
    }
}
