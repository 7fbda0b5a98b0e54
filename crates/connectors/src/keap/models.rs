//! Keap's wire shapes (REST v1 and v2) and their mapping onto the contract's shapes.

use chrono::{DateTime, Utc};
use domain::{Platform, shapes::Contact};
use serde::Deserialize;
use serde_json::Value;

/// Parses Keap's times: RFC 3339, and v1's `2024-11-12T21:45:54.000+0000` (offset without colon).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A Keap id (v1 numbers, v2 strings) as a string.
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
pub struct V1Email {
    pub email: Option<String>,
    pub field: Option<String>,
}

#[derive(Deserialize)]
pub struct V1Phone {
    pub number: Option<String>,
    pub field: Option<String>,
}

/// A REST v1 contact (the fields we read).
#[derive(Deserialize)]
pub struct V1Contact {
    pub id: Value,
    #[serde(default)]
    pub email_addresses: Vec<V1Email>,
    #[serde(default)]
    pub phone_numbers: Vec<V1Phone>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    #[serde(default)]
    pub tag_ids: Vec<Value>,
    /// v1 `date_created`; v2 spells it `create_time`.
    #[serde(alias = "create_time")]
    pub date_created: Option<String>,
    /// v1 `last_updated`; v2 spells it `update_time`.
    #[serde(alias = "update_time")]
    pub last_updated: Option<String>,
    /// v2 `score_value`; v1 spells it `ScoreValue`. A string holding a number.
    #[serde(alias = "ScoreValue")]
    pub score_value: Option<Value>,
}

/// A lead score as a JSON number: Keap sends a string (`"85"`), sometimes a number; anything
/// else (empty, null, not a number) is no score.
fn lead_score(v: Option<&Value>) -> Option<serde_json::Number> {
    match v? {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The primary entry: the `EMAIL1`/`PHONE1` field when present, else the first.
fn primary<'a, T>(
    items: &'a [T],
    primary_field: &str,
    field: impl Fn(&T) -> Option<&str>,
    value: impl Fn(&'a T) -> Option<&'a String>,
) -> Option<String> {
    items
        .iter()
        .find(|i| field(i) == Some(primary_field))
        .or_else(|| items.first())
        .and_then(value)
        .filter(|v| !v.is_empty())
        .cloned()
}

impl V1Contact {
    pub fn into_contact(self) -> Option<Contact> {
        let nonempty = |s: Option<String>| s.filter(|v| !v.is_empty());
        Some(Contact {
            id: id_string(&self.id)?,
            email: primary(
                &self.email_addresses,
                "EMAIL1",
                |e| e.field.as_deref(),
                |e| e.email.as_ref(),
            ),
            first_name: nonempty(self.given_name),
            last_name: nonempty(self.family_name),
            phone: primary(
                &self.phone_numbers,
                "PHONE1",
                |p| p.field.as_deref(),
                |p| p.number.as_ref(),
            ),
            tag_ids: self.tag_ids.iter().filter_map(id_string).collect(),
            created_at: self.date_created.as_deref().and_then(parse_time),
            updated_at: self.last_updated.as_deref().and_then(parse_time),
            lead_score: lead_score(self.score_value.as_ref()),
            platform: Platform::Keap,
        })
    }
}

/// A v1 contact list page.
#[derive(Deserialize)]
pub struct V1ContactPage {
    #[serde(default)]
    pub contacts: Vec<V1Contact>,
    pub count: Option<u64>,
}

/// A v2 contact list page, contacts kept as sent (the sync stores them raw).
#[derive(Deserialize)]
pub struct V2ContactPage {
    #[serde(default)]
    pub contacts: Vec<Box<serde_json::value::RawValue>>,
    pub next_page_token: Option<String>,
}

/// A v2 contact as the contract's Contact, mapped exactly as a v1 one (same primary email and
/// phone rule, ids and tag ids as strings, times as UTC).
pub fn v2_contact(raw: &serde_json::value::RawValue) -> Option<Contact> {
    serde_json::from_str::<V1Contact>(raw.get())
        .ok()?
        .into_contact()
}

/// A v1 campaign as the contract's Campaign: `published` or `draft`, type `campaign` (Keap's
/// Campaign Builder sequences), created time; Keap reports no channel or update time.
pub fn campaign(v: &Value) -> Option<domain::shapes::Campaign> {
    let published = v.get("published_status").and_then(Value::as_bool) == Some(true);
    Some(domain::shapes::Campaign {
        id: id_string(v.get("id")?)?,
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        status: if published { "published" } else { "draft" }.to_owned(),
        kind: "campaign".to_owned(),
        channel: None,
        created_at: v
            .get("date_created")
            .and_then(Value::as_str)
            .and_then(parse_time),
        updated_at: None,
        platform: Platform::Keap,
    })
}

/// An OAuth token response.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keap_offsets() {
        let t = parse_time("2024-11-12T21:45:54.000+0000").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-11-12T21:45:54+00:00");
        let t = parse_time("2024-11-12T21:45:54.000-0700").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-11-13T04:45:54+00:00");
        assert!(parse_time("2024-11-12T21:45:54Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn maps_a_v1_contact() {
        let c: V1Contact = serde_json::from_value(serde_json::json!({
            "id": 12, "given_name": "Ada", "family_name": "",
            "email_addresses": [{"email": "b@x.com", "field": "EMAIL2"}, {"email": "a@x.com", "field": "EMAIL1"}],
            "phone_numbers": [{"number": "555", "field": "PHONE1"}],
            "tag_ids": [3, 4], "date_created": "2024-11-12T21:45:54.000+0000", "last_updated": null
        }))
        .unwrap();
        let c = c.into_contact().unwrap();
        assert_eq!(c.id, "12");
        assert_eq!(c.email.as_deref(), Some("a@x.com"));
        assert_eq!(c.last_name, None);
        assert_eq!(c.phone.as_deref(), Some("555"));
        assert_eq!(c.tag_ids, vec!["3", "4"]);
        assert!(c.created_at.is_some() && c.updated_at.is_none());
        assert_eq!(c.lead_score, None);
    }

    #[test]
    fn maps_a_v2_contact_like_a_v1_one() {
        let c = v2_contact(
            &serde_json::value::to_raw_value(&serde_json::json!({
                "id": "12", "given_name": "Ada", "score_value": "85",
                "email_addresses": [{"email": "a@x.com", "field": "EMAIL1", "is_opt_in": true}],
                "tag_ids": ["3"], "create_time": "2024-11-12T21:45:54.000Z",
                "update_time": "2024-11-13T21:45:54.120Z"
            }))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(c.id, "12");
        assert_eq!(c.email.as_deref(), Some("a@x.com"));
        assert_eq!(c.tag_ids, vec!["3"]);
        assert_eq!(c.updated_at.unwrap().timestamp_millis() % 1000, 120);
        assert_eq!(serde_json::to_value(&c).unwrap()["leadScore"], 85);
    }

    #[test]
    fn lead_scores_are_numbers_or_absent() {
        for (raw, want) in [
            (serde_json::json!("12"), Some(serde_json::json!(12))),
            (serde_json::json!(" 7.5 "), Some(serde_json::json!(7.5))),
            (serde_json::json!(3), Some(serde_json::json!(3))),
            (serde_json::json!(""), None),
            (serde_json::json!("n/a"), None),
            (Value::Null, None),
        ] {
            let got = lead_score(Some(&raw)).map(Value::Number);
            assert_eq!(got, want, "{raw}");
        }
    }
}
