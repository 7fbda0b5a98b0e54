//! Iterable: one project's API key in its region.

use async_trait::async_trait;
use connectors::iterable::Credentials;
use serde::Deserialize;
use store::IntegrationRecord;

use super::{PlatformSession, fields, missing};
use crate::{error::Result, integrations, state::AppState, sync::source::SyncSession};

/// What the sessions read of a stored Iterable integration's config (other keys are shown to
/// the publisher but not used here).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IterableSettings {
    /// Message event types the `events` sync exports; empty means the connector's default set.
    pub sync_event_types: Vec<String>,
}

/// A connected Iterable project.
pub struct IterableSession {
    pub record: IntegrationRecord,
    pub creds: Credentials,
    pub settings: IterableSettings,
}

impl IterableSession {
    pub async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        let mut secrets = integrations::open_secrets(state, &record).await?;
        let key = secrets
            .remove(fields::API_KEY)
            .ok_or_else(|| missing(&record, fields::API_KEY))?;
        // Written by our own connect; a config that does not read is treated as the default.
        let settings = serde_json::from_value(record.config.clone()).unwrap_or_default();
        Ok(Self {
            creds: Credentials::new(key, record.region.unwrap_or_default()),
            settings,
            record,
        })
    }

    /// The publisher's Iterable project, or `INTEGRATION_NOT_FOUND`.
    pub async fn open_for(state: &AppState, publisher: &domain::PublisherId) -> Result<Self> {
        let record = super::integration(state, publisher, domain::Platform::Iterable).await?;
        Self::open(state, record).await
    }
}

#[async_trait]
impl PlatformSession for IterableSession {
    fn record(&self) -> &IntegrationRecord {
        &self.record
    }

    fn budget_keys(&self) -> Vec<String> {
        vec![self.creds.budget_key().to_owned()]
    }

    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession> {
        crate::sync::sources::iterable::reader(state, *self)
    }
}
