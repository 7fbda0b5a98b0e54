//! Iterable's wire shapes (only the fields we read) and their conversion to the contract's shapes.
//!
//! Iterable sends ids as numbers and times as epoch milliseconds (the Swagger document declares
//! template times as date-time strings, but real answers are integers): both are read leniently
//! from a number or a string, and answered as strings and RFC 3339 (CONTRACT §6).

use chrono::{DateTime, Utc};
use domain::{Platform, shapes::Campaign};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An id that may arrive as a number or a string, as a string.
pub(crate) fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Epoch milliseconds (number or numeric string), or an Iterable date string, as UTC.
pub(crate) fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .and_then(DateTime::from_timestamp_millis),
        Value::String(s) => {
            if let Ok(ms) = s.parse::<i64>() {
                return DateTime::from_timestamp_millis(ms);
            }
            DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %:z"))
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z"))
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }
        _ => None,
    }
}

/// Iterable's `messageMedium` as our channel name (`email`, `sms`, `push`, `in_app`, …).
pub fn channel_name(medium: &str) -> String {
    match medium {
        "Email" => "email".to_owned(),
        "SMS" => "sms".to_owned(),
        "Push" => "push".to_owned(),
        "InApp" => "in_app".to_owned(),
        "WebPush" => "web_push".to_owned(),
        "WhatsApp" => "whatsapp".to_owned(),
        other => snake(other),
    }
}

/// `CamelCase` → `camel_case` (Iterable's enums as our lower-case values).
pub(crate) fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn str_of<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// Iterable's campaign states, as its `campaignState` parameter spells them.
pub const CAMPAIGN_STATES: [&str; 9] = [
    "Draft",
    "Ready",
    "Scheduled",
    "Running",
    "Finished",
    "Starting",
    "Aborted",
    "Recurring",
    "Archived",
];

/// One of [`CAMPAIGN_STATES`], matched case-insensitively.
pub fn campaign_state(s: &str) -> Option<&'static str> {
    CAMPAIGN_STATES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(s.trim()))
        .copied()
}

/// A `CampaignDetails` as the contract's Campaign: `status` is the lower-cased `campaignState`,
/// `type` the lower-cased `Blast`/`Triggered`, `channel` from `messageMedium`.
pub(crate) fn campaign(v: &Value) -> Option<Campaign> {
    Some(Campaign {
        id: id_string(v.get("id")?)?,
        name: str_of(v, "name").unwrap_or_default().to_owned(),
        status: snake(str_of(v, "campaignState").unwrap_or("unknown")),
        kind: snake(str_of(v, "type").unwrap_or("unknown")),
        channel: str_of(v, "messageMedium").map(channel_name),
        created_at: time(v.get("createdAt")),
        updated_at: time(v.get("updatedAt")),
        platform: Platform::Iterable,
    })
}

/// An Iterable list (CONTRACT §7 `…/lists`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct List {
    pub id: String,
    pub name: String,
    /// `standard`, `dynamic`, `suppression` or `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    pub platform: Platform,
}

pub(crate) fn list(v: &Value) -> Option<List> {
    Some(List {
        id: id_string(v.get("id")?)?,
        name: str_of(v, "name").unwrap_or_default().to_owned(),
        kind: snake(str_of(v, "listType").unwrap_or("Standard")),
        description: str_of(v, "description").map(str::to_owned),
        created_at: time(v.get("createdAt")),
        platform: Platform::Iterable,
    })
}

/// An Iterable template (CONTRACT §7 `…/templates`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: String,
    pub name: String,
    /// `base`, `blast`, `triggered` or `workflow`, when known.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `email`, `sms`, `push`, `in_app`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    pub platform: Platform,
}

pub(crate) fn template(v: &Value, kind: Option<&str>, medium: Option<&str>) -> Option<Template> {
    Some(Template {
        id: id_string(v.get("templateId").or_else(|| v.get("id"))?)?,
        name: str_of(v, "name").unwrap_or_default().to_owned(),
        kind: kind.map(snake),
        channel: medium.map(channel_name),
        campaign_id: v.get("campaignId").and_then(id_string),
        message_type_id: v.get("messageTypeId").and_then(id_string),
        created_at: time(v.get("createdAt")),
        updated_at: time(v.get("updatedAt")),
        platform: Platform::Iterable,
    })
}

/// An Iterable channel (CONTRACT §7 `…/channels`, and the account facts of a connection test).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = IterableChannel)]
pub struct Channel {
    pub id: String,
    pub name: String,
    /// `marketing` or `transactional`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `email`, `sms`, `push`, `in_app`, `web_push`, …
    pub channel: String,
    pub platform: Platform,
}

pub(crate) fn channel(v: &Value) -> Option<Channel> {
    Some(Channel {
        id: id_string(v.get("id")?)?,
        name: str_of(v, "name").unwrap_or_default().to_owned(),
        kind: snake(str_of(v, "channelType").unwrap_or("Marketing")),
        channel: channel_name(str_of(v, "messageMedium").unwrap_or("Email")),
        platform: Platform::Iterable,
    })
}

/// What a successful connection test learned about the project.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// `US` or `EU`: the data centre that accepted the key.
    pub data_center: String,
    /// The API origin called.
    pub api_origin: String,
    /// The project's message channels.
    pub channel_count: usize,
    /// The media those channels cover (`email`, `sms`, `push`, …).
    pub media: Vec<String>,
    pub channels: Vec<Channel>,
}

/// One page of campaigns in our terms.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignPage {
    pub campaigns: Vec<Campaign>,
    /// Iterable's `totalCampaignsCount` (for the states asked).
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn campaign_ids_as_strings_times_as_rfc3339() {
        let c = campaign(
            &json!({"id": 2220229, "createdAt": 1618417387154i64, "updatedAt": "1618417553314",
            "name": "N", "messageMedium": "InApp", "campaignState": "Finished", "type": "Blast"}),
        )
        .unwrap();
        assert_eq!(c.id, "2220229");
        assert_eq!(c.status, "finished");
        assert_eq!(c.kind, "blast");
        assert_eq!(c.channel.as_deref(), Some("in_app"));
        assert_eq!(
            c.created_at.unwrap().to_rfc3339(),
            "2021-04-14T16:23:07.154+00:00"
        );
        assert!(c.updated_at.is_some());
        assert!(campaign(&json!({"name": "no id"})).is_none());
    }

    #[test]
    fn states_match_case_insensitively() {
        assert_eq!(campaign_state("running"), Some("Running"));
        assert_eq!(campaign_state(" ARCHIVED "), Some("Archived"));
        assert_eq!(campaign_state("paused"), None);
        assert_eq!(snake("WebPush"), "web_push");
    }

    #[test]
    fn iterable_date_strings() {
        let t = time(Some(&json!("2021-04-14 16:49:02 +00:00"))).unwrap();
        assert_eq!(t.to_rfc3339(), "2021-04-14T16:49:02+00:00");
    }
}
