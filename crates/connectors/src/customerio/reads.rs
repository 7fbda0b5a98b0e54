//! Reads from the App API: campaigns (journeys) and segments.
//!
//! `GET /v1/campaigns` and `GET /v1/segments` answer every object in one page; filtering and
//! paging are ours. Times are unix seconds there and RFC 3339 here.

use chrono::{DateTime, Utc};
use domain::{Platform, shapes::Campaign};
use serde::Deserialize;
use serde_json::Value;

use super::{Api, Credentials, CustomerioConnector, errors};
use crate::ConnectorError;

/// A Customer.io id (a number there, a string here).
fn id_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let secs = v?.as_i64().filter(|s| *s > 0)?;
    DateTime::from_timestamp(secs, 0)
}

#[derive(Deserialize)]
struct CampaignsBody {
    #[serde(default)]
    campaigns: Vec<Value>,
}

#[derive(Deserialize)]
struct SegmentsBody {
    #[serde(default)]
    segments: Vec<Value>,
}

/// Which campaigns to keep.
#[derive(Clone, Debug, Default)]
pub struct CampaignFilter {
    /// `running`, `draft` or `stopped`.
    pub state: Option<String>,
    pub active: Option<bool>,
    /// The trigger type (`segment`, `event`, `date`, `form`, …).
    pub kind: Option<String>,
}

/// A Customer.io campaign in the contract's shape, with what the filter needs.
pub struct CampaignRecord {
    pub campaign: Campaign,
    pub active: bool,
}

pub(super) fn campaign(v: &Value) -> CampaignRecord {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut channels: Vec<&str> = v
        .get("actions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    channels.sort_unstable();
    channels.dedup();
    CampaignRecord {
        campaign: Campaign {
            id: v.get("id").map(id_string).unwrap_or_default(),
            name: s("name"),
            status: s("state"),
            kind: s("type"),
            // One channel when every action uses the same one.
            channel: (channels.len() == 1).then(|| channels[0].to_owned()),
            created_at: time(v.get("created")),
            updated_at: time(v.get("updated")),
            platform: Platform::Customerio,
        },
        active: v.get("active").and_then(Value::as_bool).unwrap_or(false),
    }
}

/// A Customer.io segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// `dynamic` or `manual`.
    pub kind: String,
    /// `finished`, `build`, `events`, …
    pub state: String,
    pub tags: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub(super) fn segment(v: &Value) -> Segment {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Segment {
        id: v.get("id").map(id_string).unwrap_or_default(),
        name: s("name"),
        description: v
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        kind: s("type"),
        state: s("state"),
        tags: v
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        created_at: time(v.get("created_at")),
        updated_at: time(v.get("updated_at")),
    }
}

impl CustomerioConnector {
    /// Every campaign (journey) of the workspace that passes `filter`, ordered by id.
    pub async fn list_campaigns(
        &self,
        creds: &Credentials,
        filter: &CampaignFilter,
    ) -> Result<Vec<Campaign>, ConnectorError> {
        let answer = self
            .app_get(
                creds.region,
                &creds.api_key,
                "list_campaigns",
                "/v1/campaigns",
                &[],
            )
            .await?;
        let body: CampaignsBody = errors::parse(Api::App, "listing campaigns", &answer)?;
        Ok(body
            .campaigns
            .iter()
            .map(campaign)
            .filter(|c| {
                filter
                    .state
                    .as_deref()
                    .is_none_or(|s| c.campaign.status.eq_ignore_ascii_case(s))
                    && filter.active.is_none_or(|a| c.active == a)
                    && filter
                        .kind
                        .as_deref()
                        .is_none_or(|k| c.campaign.kind.eq_ignore_ascii_case(k))
            })
            .map(|c| c.campaign)
            .collect())
    }

    /// Every segment of the workspace, ordered as Customer.io answers (by id).
    pub async fn list_segments(&self, creds: &Credentials) -> Result<Vec<Segment>, ConnectorError> {
        let answer = self
            .app_get(
                creds.region,
                &creds.api_key,
                "list_segments",
                "/v1/segments",
                &[],
            )
            .await?;
        let body: SegmentsBody = errors::parse(Api::App, "listing segments", &answer)?;
        Ok(body.segments.iter().map(segment).collect())
    }
}

#[derive(Deserialize)]
struct BroadcastsBody {
    #[serde(default)]
    broadcasts: Vec<Value>,
}

#[derive(Deserialize)]
struct NewslettersBody {
    #[serde(default)]
    newsletters: Vec<Value>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct PeopleBody {
    #[serde(default)]
    results: Vec<Value>,
}

/// A newsletter (one-off send) as a campaign: `status` is `sent` or `draft`, `type` is
/// `newsletter`, `channel` its message type.
pub(super) fn newsletter(v: &Value) -> Campaign {
    let sent = time(v.get("sent_at"));
    Campaign {
        id: v.get("id").map(id_string).unwrap_or_default(),
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        status: if sent.is_some() { "sent" } else { "draft" }.to_owned(),
        kind: "newsletter".to_owned(),
        channel: v.get("type").and_then(Value::as_str).map(str::to_owned),
        created_at: time(v.get("created")),
        updated_at: time(v.get("updated")),
        platform: Platform::Customerio,
    }
}

/// A person found by email: Customer.io's identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// `id` when the person has one, else `cio_{cio_id}` (how Customer.io addresses them).
    pub id: String,
    pub email: Option<String>,
    pub cio_id: Option<String>,
}

/// Most newsletters fetched in one listing (100 per page, Customer.io's maximum).
pub const NEWSLETTER_PAGE: u32 = 100;

impl CustomerioConnector {
    /// Every API-triggered broadcast, as campaigns of type `triggered_broadcast`.
    pub async fn list_broadcasts(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<Campaign>, ConnectorError> {
        let answer = self
            .app_get(
                creds.region,
                &creds.api_key,
                "list_broadcasts",
                "/v1/broadcasts",
                &[],
            )
            .await?;
        let body: BroadcastsBody = errors::parse(Api::App, "listing broadcasts", &answer)?;
        Ok(body
            .broadcasts
            .iter()
            .map(|b| campaign(b).campaign)
            .collect())
    }

    /// Every newsletter, oldest first, following Customer.io's `start`/`next` cursor.
    pub async fn list_newsletters(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<Campaign>, ConnectorError> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        // A cursor that repeats would loop for ever; a bound of pages stops it.
        for _ in 0..10_000 {
            let mut query = vec![
                ("limit", NEWSLETTER_PAGE.to_string()),
                ("sort", "asc".to_owned()),
            ];
            if let Some(s) = &start {
                query.push(("start", s.clone()));
            }
            let answer = self
                .app_get(
                    creds.region,
                    &creds.api_key,
                    "list_newsletters",
                    "/v1/newsletters",
                    &query,
                )
                .await?;
            let body: NewslettersBody = errors::parse(Api::App, "listing newsletters", &answer)?;
            out.extend(body.newsletters.iter().map(newsletter));
            match body.next.filter(|n| !n.is_empty()) {
                Some(next) if Some(&next) != start.as_ref() && !body.newsletters.is_empty() => {
                    start = Some(next);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// The people with this email address (`GET /v1/customers?email=`).
    pub async fn find_people_by_email(
        &self,
        creds: &Credentials,
        email: &str,
    ) -> Result<Vec<Person>, ConnectorError> {
        let answer = self
            .app_get(
                creds.region,
                &creds.api_key,
                "find_people",
                "/v1/customers",
                &[("email", email.to_owned())],
            )
            .await?;
        let body: PeopleBody = errors::parse(Api::App, "searching people by email", &answer)?;
        Ok(body
            .results
            .iter()
            .map(|p| {
                let text = |k: &str| {
                    p.get(k)
                        .filter(|v| !v.is_null())
                        .map(id_string)
                        .filter(|s| !s.is_empty())
                };
                let cio_id = text("cio_id");
                Person {
                    id: text("id")
                        .or_else(|| cio_id.as_ref().map(|c| format!("cio_{c}")))
                        .unwrap_or_default(),
                    email: text("email"),
                    cio_id,
                }
            })
            .collect())
    }
}

impl From<Segment> for domain::shapes::SegmentView {
    fn from(s: Segment) -> Self {
        Self {
            id: s.id,
            name: s.name,
            description: s.description,
            kind: s.kind,
            state: s.state,
            tags: s.tags,
            created_at: s.created_at,
            updated_at: s.updated_at,
            platform: domain::Platform::Customerio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn campaign_maps_times_ids_and_channel() {
        let c = campaign(&json!({
            "id": 7, "name": "Win-back", "state": "running", "type": "segment", "active": true,
            "created": 1_700_000_000, "updated": 1_700_000_600,
            "actions": [{"type": "email", "id": 1}, {"type": "email", "id": 2}]
        }));
        assert_eq!(c.campaign.id, "7");
        assert_eq!(c.campaign.status, "running");
        assert_eq!(c.campaign.channel.as_deref(), Some("email"));
        assert_eq!(
            c.campaign.created_at.unwrap().to_rfc3339(),
            "2023-11-14T22:13:20+00:00"
        );
        assert!(c.active);
        let c = campaign(
            &json!({"id": 8, "first_started": 0, "actions": [{"type": "email"}, {"type": "sms"}]}),
        );
        assert_eq!(c.campaign.channel, None);
        assert_eq!(c.campaign.created_at, None);
    }
}
