//! Customer.io's three APIs: Track (Basic site id + tracking key), App (bearer App API key) and Data Pipelines (Basic CDP key), each with US and EU origins.
//!
//! The client, its error mapping and its operations arrive with this platform's issue; the
//! connector is registered now so that routing, capabilities and tenancy are in place.

use crate::{Connector, Settings};
use domain::Platform;

/// The Customerio connector.
pub struct CustomerioConnector {
    #[allow(dead_code)] // read by the platform's operations
    settings: Settings,
}

impl CustomerioConnector {
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Connector for CustomerioConnector {
    fn platform(&self) -> Platform {
        Platform::Customerio
    }
}
