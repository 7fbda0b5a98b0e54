//! Customer.io: the App API key, the Track pair (site id and tracking key), an optional Data
//! Pipelines key, in the workspace's region.

use async_trait::async_trait;
use connectors::customerio::{self, Credentials};
use serde::Deserialize;
use serde_json::Value;
use store::IntegrationRecord;

use super::{PlatformSession, fields, missing};
use crate::{error::Result, integrations, state::AppState, sync::source::SyncSession};

/// What the sessions read of a stored Customer.io integration's config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerioSettings {
    pub site_id: String,
    /// Segments whose members the `segment_members` sync reads (ids as strings).
    #[serde(deserialize_with = "ids")]
    pub segment_ids: Vec<String>,
}

/// Ids stored as strings or numbers, as strings.
fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<Value>::deserialize(d)?;
    Ok(values
        .into_iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect())
}

/// A connected Customer.io workspace.
pub struct CustomerioSession {
    pub record: IntegrationRecord,
    pub creds: Credentials,
    pub settings: CustomerioSettings,
}

impl CustomerioSession {
    pub async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        let mut secrets = integrations::open_secrets(state, &record).await?;
        let api_key = secrets
            .remove(fields::API_KEY)
            .ok_or_else(|| missing(&record, fields::API_KEY))?;
        let settings: CustomerioSettings =
            serde_json::from_value(record.config.clone()).unwrap_or_default();
        Ok(Self {
            creds: Credentials {
                region: record.region.unwrap_or_default(),
                site_id: settings.site_id.clone(),
                api_key,
                tracking_key: secrets.remove(fields::TRACKING_KEY),
                cdp_api_key: secrets.remove(fields::CDP_API_KEY),
            },
            settings,
            record,
        })
    }

    /// The publisher's Customer.io workspace, or `INTEGRATION_NOT_FOUND`.
    pub async fn open_for(state: &AppState, publisher: &domain::PublisherId) -> Result<Self> {
        let record = super::integration(state, publisher, domain::Platform::Customerio).await?;
        Self::open(state, record).await
    }
}

#[async_trait]
impl PlatformSession for CustomerioSession {
    fn record(&self) -> &IntegrationRecord {
        &self.record
    }

    fn budget_keys(&self) -> Vec<String> {
        [
            Some(&self.creds.api_key),
            self.creds.tracking_key.as_ref(),
            self.creds.cdp_api_key.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(customerio::budget_key)
        .collect()
    }

    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession> {
        crate::sync::sources::customerio::reader(state, *self)
    }
}
