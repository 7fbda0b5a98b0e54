//! What a Keap session reads of its integration's stored config, typed and read once.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use store::IntegrationRecord;

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
