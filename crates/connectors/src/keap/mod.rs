//! Keap's REST v1/v2 API: OAuth 2.0 bearer tokens with rotating refresh tokens, or a PAT/SAK in `X-Keap-API-Key`.
//!
//! The client, its error mapping and its operations arrive with this platform's issue; the
//! connector is registered now so that routing, capabilities and tenancy are in place.

use crate::{Connector, Upstreams};
use domain::Platform;

/// The Keap connector.
#[derive(Debug)]
pub struct KeapConnector {
    #[allow(dead_code)] // read by the platform's operations
    upstreams: Upstreams,
}

impl KeapConnector {
    pub fn new(upstreams: &Upstreams) -> Self {
        Self {
            upstreams: upstreams.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Connector for KeapConnector {
    fn platform(&self) -> Platform {
        Platform::Keap
    }
}
