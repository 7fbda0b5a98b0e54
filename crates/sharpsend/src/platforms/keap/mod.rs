//! Keap: an OAuth token set that the session keeps fresh ([`tokens`]: single-flight refresh
//! across tasks and replicas), or a Personal Access Token / Service Account Key.
//!
//! The common writes ([`writes`]): subscribers become CRM contacts upserted by email, messages
//! are emails queued to a contact; events are not Keap's (the trait's default answers).

pub mod tokens;
pub mod writes;

use async_trait::async_trait;
use domain::operations::{BatchOutcome, MessageInput, Queued, SubscriberInput, Upserted};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use store::IntegrationRecord;

pub use tokens::Session as KeapSession;

use super::PlatformSession;
use crate::{error::Result, state::AppState, sync::source::SyncSession};

/// What the session reads of a stored Keap integration's config (other keys — `campaignIds`,
/// `tenantId`, the registered hooks — are shown to the publisher or read by their own modules).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeapSettings {
    /// The lead source every upserted contact is attributed to (checked at connect).
    #[serde(deserialize_with = "optional_id")]
    pub lead_source_id: Option<String>,
}

impl KeapSettings {
    /// The settings of a stored integration. Written by our own connect; a config that does not
    /// read is treated as the default (no lead source), as the routes always did.
    pub fn of(record: &IntegrationRecord) -> Self {
        serde_json::from_value(record.config.clone()).unwrap_or_default()
    }
}

/// A Keap id stored as a string or a number, as a string; anything else is none.
fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

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

    async fn upsert_subscriber(
        &mut self,
        state: &AppState,
        input: SubscriberInput,
    ) -> Result<Upserted> {
        writes::upsert_subscriber(state, self, input).await
    }

    async fn upsert_subscribers(
        &mut self,
        state: &AppState,
        items: Vec<(usize, SubscriberInput)>,
    ) -> Result<BatchOutcome> {
        writes::upsert_subscribers(state, self, items).await
    }

    async fn send_message(&mut self, state: &AppState, input: MessageInput) -> Result<Queued> {
        writes::send_message(state, self, input).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(config: Value) -> KeapSettings {
        serde_json::from_value(config).unwrap_or_default()
    }

    #[test]
    fn lead_source_reads_as_a_string_id_or_none() {
        // Arrange, Act, Assert: what connect stores, and what older or hand-written configs hold.
        assert_eq!(
            settings(json!({"leadSourceId": "1", "campaignIds": []})).lead_source_id,
            Some("1".into())
        );
        assert_eq!(
            settings(json!({"leadSourceId": 7})).lead_source_id,
            Some("7".into())
        );
        assert_eq!(settings(json!({"leadSourceId": null})).lead_source_id, None);
        assert_eq!(settings(json!({"leadSourceId": ""})).lead_source_id, None);
        assert_eq!(settings(json!({})).lead_source_id, None);
    }
}
