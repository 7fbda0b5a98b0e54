//! Keap REST hooks (v1 only, platforms/keap.md §5): subscribe, unsubscribe, and read back the
//! objects a delivery names (deliveries carry ids only).
//!
//! Keap verifies a subscription by POSTing `X-Hook-Secret` to the hook URL at once, during
//! `POST /hooks`; the receiver must answer 200 echoing the header. Deliveries are batched
//! `{"event_key", "object_type", "object_keys": [{"id", "apiUrl"?, "timestamp"}]}` and carry no
//! signature, so the receiver treats them as hints and re-reads the records.

use domain::shapes::Contact;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KeapConnector, KeapCredential, KeapError, Req, models};
use crate::ErrorKind;

/// The event keys SharpSend subscribes to on connect (all in Keap's published list).
pub const EVENT_KEYS: &[&str] = &[
    "contact.add",
    "contact.edit",
    "contact.delete",
    "opportunity.add",
    "opportunity.edit",
    "opportunity.delete",
    "order.add",
    "order.edit",
    "order.delete",
];

/// A subscription as Keap answers it (`RestHook`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestHook {
    #[serde(deserialize_with = "string_or_number")]
    pub key: String,
    pub event_key: String,
    pub hook_url: String,
    /// `Unverified`, `Verified` or `Inactive`.
    pub status: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    models::id_string(&v)
        .ok_or_else(|| serde::de::Error::custom("hook key is not a string or number"))
}

/// One changed object of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectKey {
    pub id: String,
    /// Keap's `timestamp`, as sent (may be absent).
    pub timestamp: Option<String>,
}

/// A parsed delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub event_key: String,
    pub object_type: String,
    pub object_keys: Vec<ObjectKey>,
}

/// Reads a delivery body; `Err` says what is wrong with it.
pub fn parse_delivery(body: &[u8]) -> Result<Delivery, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let event_key = v
        .get("event_key")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the body has no event_key")?
        .to_owned();
    let object_type = v.get("object_type").and_then(Value::as_str).map_or_else(
        || event_key.split('.').next().unwrap_or("").to_owned(),
        str::to_owned,
    );
    let keys = v
        .get("object_keys")
        .and_then(Value::as_array)
        .ok_or("the body has no object_keys array")?;
    let object_keys = keys
        .iter()
        .filter_map(|k| {
            Some(ObjectKey {
                id: k.get("id").and_then(models::id_string)?,
                timestamp: k
                    .get("timestamp")
                    .and_then(models::id_string)
                    .filter(|t| !t.is_empty()),
            })
        })
        .collect();
    Ok(Delivery {
        event_key,
        object_type,
        object_keys,
    })
}

impl KeapConnector {
    /// Subscribes `hook_url` to `event_key` (`POST /v1/hooks`); Keap verifies it during the call.
    pub async fn create_hook(
        &self,
        cred: &KeapCredential,
        event_key: &str,
        hook_url: &str,
    ) -> Result<RestHook, KeapError> {
        let body = json!({"eventKey": event_key, "hookUrl": hook_url});
        let answer = self
            .request(
                cred,
                Req {
                    operation: "create_hook",
                    what: "create a REST hook",
                    method: reqwest::Method::POST,
                    path: "crm/rest/v1/hooks",
                    query: &[],
                    body: Some(&body),
                    idempotent: false,
                },
            )
            .await?;
        Self::decode(&answer, "the created REST hook")
    }

    /// Deletes a subscription (`DELETE /v1/hooks/{key}`); one Keap no longer has counts as done.
    pub async fn delete_hook(&self, cred: &KeapCredential, key: &str) -> Result<(), KeapError> {
        let path = format!(
            "crm/rest/v1/hooks/{}",
            crate::http::path_segment(domain::Platform::Keap, key)?
        );
        match self
            .request(
                cred,
                Req {
                    operation: "delete_hook",
                    what: "delete a REST hook",
                    method: reqwest::Method::DELETE,
                    path: &path,
                    query: &[],
                    body: None,
                    idempotent: true,
                },
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(KeapError::Other(e)) if e.kind == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One contact (`GET /v1/contacts/{id}`), `None` when Keap has no such contact (deleted).
    pub async fn get_contact(
        &self,
        cred: &KeapCredential,
        id: &str,
    ) -> Result<Option<(Contact, Value)>, KeapError> {
        let path = format!(
            "crm/rest/v1/contacts/{}",
            crate::http::path_segment(domain::Platform::Keap, id)?
        );
        let answer = match self
            .request(
                cred,
                Req {
                    operation: "get_contact",
                    what: "read a contact",
                    method: reqwest::Method::GET,
                    path: &path,
                    query: &[],
                    body: None,
                    idempotent: true,
                },
            )
            .await
        {
            Ok(a) => a,
            Err(KeapError::Other(e)) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let raw: Value = Self::decode(&answer, "the contact")?;
        let contact: models::V1Contact = serde_json::from_value(raw.clone())
            .map_err(|_| KeapError::Other(super::errors::malformed("the contact")))?;
        // `None` means Keap's 404 only: a contact without an id is a malformed answer.
        let contact = contact
            .into_contact()
            .ok_or_else(|| KeapError::Other(super::errors::malformed("the contact")))?;
        Ok(Some((contact, raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_parse_ids_as_numbers_or_strings() {
        let d = parse_delivery(
            br#"{"event_key":"contact.edit","object_type":"contact","object_keys":[{"id":12,"apiUrl":"","timestamp":"2024-01-01T00:00:00.000Z"},{"id":"13"}]}"#,
        )
        .unwrap();
        assert_eq!(d.event_key, "contact.edit");
        assert_eq!(d.object_type, "contact");
        assert_eq!(d.object_keys.len(), 2);
        assert_eq!(d.object_keys[0].id, "12");
        assert_eq!(d.object_keys[1].id, "13");
        assert_eq!(d.object_keys[1].timestamp, None);
        assert!(parse_delivery(b"{}").is_err());
        assert!(parse_delivery(br#"{"event_key":"contact.add"}"#).is_err());
        assert!(parse_delivery(b"nope").is_err());
        let h: RestHook = serde_json::from_value(
            json!({"key": 5, "eventKey": "contact.add", "hookUrl": "https://x/y", "status": "Verified"}),
        )
        .unwrap();
        assert_eq!(h.key, "5");
    }
}
