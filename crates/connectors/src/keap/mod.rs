//! Keap's REST v1/v2 API: OAuth 2.0 bearer tokens with rotating refresh tokens, or a PAT/SAK in `X-Keap-API-Key`.
//!
//! The client, its error mapping and its operations arrive with this platform's issue; the
//! connector is registered now so that routing, capabilities and tenancy are in place.

use crate::{Connector, Settings};
use domain::Platform;

/// The Keap connector.
pub struct KeapConnector {
    #[allow(dead_code)] // read by the platform's operations
    settings: Settings,
}

impl KeapConnector {
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Connector for KeapConnector {
    fn platform(&self) -> Platform {
        Platform::Keap
    }
}
