//! Keap: an OAuth token set that the session keeps fresh ([`tokens`]: single-flight refresh
//! across tasks and replicas), or a Personal Access Token / Service Account Key.

pub mod tokens;

use async_trait::async_trait;
use store::IntegrationRecord;

pub use tokens::Session as KeapSession;

use super::PlatformSession;
use crate::{error::Result, state::AppState, sync::source::SyncSession};

impl KeapSession {
    /// Opens a stored Keap integration, refreshing its token first when close to expiry.
    pub async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        tokens::open(state, record).await
    }
}

#[async_trait]
impl PlatformSession for KeapSession {
    fn record(&self) -> &IntegrationRecord {
        &self.record
    }

    fn budget_keys(&self) -> Vec<String> {
        vec![self.cred.budget_key().to_owned()]
    }

    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession> {
        crate::sync::sources::keap::reader(state, *self)
    }
}
