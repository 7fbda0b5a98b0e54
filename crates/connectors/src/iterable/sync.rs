//! Reads for the sync engine: campaigns and templates one Iterable page at a time (with the raw
//! rows kept), lists whole, and the keys of export rows (users by email or userId, message
//! events by a derived id, since Iterable's export rows carry none).

use chrono::{DateTime, Utc};
use domain::shapes::Campaign;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Credentials, IterableConnector, List, Paged, Template, errors, models};
use crate::ConnectorError;

/// Iterable's largest `pageSize`.
pub const SYNC_PAGE: u32 = 1000;

impl IterableConnector {
    /// Campaigns `[offset, offset + SYNC_PAGE)` in id order, each raw and as a Campaign, and
    /// Iterable's total.
    pub async fn campaigns_page(
        &self,
        creds: &Credentials,
        offset: u64,
    ) -> Result<(Vec<(Value, Campaign)>, u64), ConnectorError> {
        let (rows, total) = self
            .paged(
                creds,
                Paged {
                    operation: "list_campaigns",
                    class: "campaigns",
                    path: "/api/campaigns",
                    items: "campaigns",
                    total: "totalCampaignsCount",
                },
                SYNC_PAGE,
                offset,
                &[],
            )
            .await?;
        let rows = rows
            .into_iter()
            .map(|v| {
                let c = models::campaign(&v).ok_or_else(|| {
                    errors::malformed("list_campaigns", 200, "a campaign without an id")
                })?;
                Ok((v, c))
            })
            .collect::<Result<_, ConnectorError>>()?;
        Ok((rows, total))
    }

    /// Templates `[offset, offset + SYNC_PAGE)` in id order, raw and as a Template, and the total.
    pub async fn templates_page(
        &self,
        creds: &Credentials,
        offset: u64,
    ) -> Result<(Vec<(Value, Template)>, u64), ConnectorError> {
        let (rows, total) = self
            .paged(
                creds,
                Paged {
                    operation: "list_templates",
                    class: "templates",
                    path: "/api/templates",
                    items: "templates",
                    total: "totalTemplatesCount",
                },
                SYNC_PAGE,
                offset,
                &[],
            )
            .await?;
        let rows = rows
            .into_iter()
            .map(|v| {
                let t = models::template(&v, None, None).ok_or_else(|| {
                    errors::malformed("list_templates", 200, "a template without an id")
                })?;
                Ok((v, t))
            })
            .collect::<Result<_, ConnectorError>>()?;
        Ok((rows, total))
    }

    /// Every list, raw and as a List (`GET /api/lists` is not paged).
    pub async fn lists_raw(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<(Value, List)>, ConnectorError> {
        let mut v = self
            .get_json(creds, "list_lists", "lists", "/api/lists", &[])
            .await?;
        let Some(Value::Array(rows)) = v.get_mut("lists").map(Value::take) else {
            return Err(errors::malformed("list_lists", 200, "lists"));
        };
        rows.into_iter()
            .map(|r| {
                let l = models::list(&r)
                    .ok_or_else(|| errors::malformed("list_lists", 200, "lists"))?;
                Ok((r, l))
            })
            .collect()
    }
}

/// A user export row's key: its `email`, else its `userId` (email-keyed and userId-keyed
/// projects both covered; a row with neither is skipped).
pub fn user_key(row: &Value) -> Option<String> {
    let s = |k: &str| {
        row.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    s("email").or_else(|| s("userId").map(|u| format!("userId:{u}")))
}

/// A time field of an export row (`2024-05-01 12:00:00 +00:00`, epoch ms, or RFC 3339).
pub fn row_time(row: &Value, key: &str) -> Option<DateTime<Utc>> {
    models::time(row.get(key))
}

/// A message event's id: Iterable's export rows have none, so one is derived from what makes
/// the event itself — its type, `messageId`, `createdAt`, the person, the campaign and (for
/// clicks) the URL — hashed, so re-reading the same row gives the same id.
pub fn event_id(data_type: &str, row: &Value) -> String {
    let mut h = Sha256::new();
    h.update(data_type.as_bytes());
    for k in [
        "messageId",
        "createdAt",
        "email",
        "userId",
        "campaignId",
        "eventName",
        "url",
    ] {
        h.update([0u8]);
        match row.get(k) {
            Some(Value::String(s)) => h.update(s.as_bytes()),
            Some(Value::Null) | None => {}
            Some(other) => h.update(other.to_string().as_bytes()),
        }
    }
    format!("{data_type}:{}", hex::encode(&h.finalize()[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = json!({"messageId": "m1", "createdAt": "2024-05-01 12:00:00 +00:00", "email": "a@x.com"});
        assert_eq!(event_id("emailOpen", &a), event_id("emailOpen", &a.clone()));
        assert_ne!(event_id("emailOpen", &a), event_id("emailClick", &a));
        let b = json!({"messageId": "m1", "createdAt": "2024-05-01 12:00:01 +00:00", "email": "a@x.com"});
        assert_ne!(event_id("emailOpen", &a), event_id("emailOpen", &b));
    }

    #[test]
    fn users_by_email_then_user_id() {
        assert_eq!(
            user_key(&json!({"email": "a@x.com", "userId": "u1"})).unwrap(),
            "a@x.com"
        );
        assert_eq!(user_key(&json!({"userId": "u1"})).unwrap(), "userId:u1");
        assert!(user_key(&json!({})).is_none());
    }
}
