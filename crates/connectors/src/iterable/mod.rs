//! Iterable's REST API: an `Api-Key` header on the region's origin (US or EU).
//!
//! One [`UpstreamClient`] (rustls, timeouts, full-jitter retries) with budgets seeded from
//! Iterable's published per-endpoint limits, keyed by a digest of the API key. Errors are mapped
//! in one table ([`errors`]); a rejected key is diagnosed (other data centre, client-side or JWT
//! key, truncated key).

mod consent;
mod errors;
mod export;
mod metrics;
mod models;
pub mod sync;
pub mod webhooks;
mod writes;

use std::time::{Duration, Instant};

use domain::{Platform, Region};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use consent::{ChannelUnsubscribe, Subscriptions};
pub use export::{
    DEFAULT_LOOKBACK, EVENT_TYPES, ExportBatch, ExportLines, ExportPage, ExportPlace, LineError,
    MAX_EXPORT_LINE, MAX_EXPORT_PAGE_BYTES, OpenExport, SPLIT_AFTER_CUTS, time_key,
};
pub use metrics::{METRICS_BATCH, MetricsRow, parse_metrics_csv, totals as metric_totals};
pub use models::{
    Account, CAMPAIGN_STATES, CampaignPage, Channel, List, Template, campaign_state, channel_name,
};
pub use writes::{
    BULK_MAX_BYTES, BULK_MAX_EVENTS, BULK_MAX_USERS, BulkOutcome, Event, ItemFailure, Medium,
    Recipient, Target, UserUpdate, batches,
};

use crate::{
    Connector, ConnectorError, ErrorKind, Settings, Upstreams,
    http::{Call, UpstreamClient},
    rate::Rate,
};

/// Iterable's published limits (fact sheet §4), per project; we keep them per API key, which is
/// at most as generous. Classes without an entry are not throttled ahead of time.
/// Paced this many percent under them: a budget at exactly the limit meets Iterable's bucket
/// with no token to spare, and network jitter alone then draws 429s.
pub const BUDGET_HEADROOM: u8 = 3;
pub const BUDGETS: &[(&str, Rate)] = &[
    ("campaigns", Rate::per_second(100)),
    ("channels", Rate::per_second(100)),
    ("lists", Rate::per_second(100)),
    ("templates", Rate::per_second(100)),
    ("message_types", Rate::per_second(100)),
    ("users_read", Rate::per_second(100)),
    ("users_update", Rate::per_second(500)),
    ("users_bulk_update", Rate::per_second(5)),
    ("users_get_fields", Rate::per_second(3)),
    // `users/forget`: 3/s (its 1,000 a day per project is left to Iterable's 429).
    ("users_forget", Rate::per_second(3)),
    ("events_track", Rate::per_second(2000)),
    ("events_track_bulk", Rate::per_second(10)),
    ("campaigns_metrics", Rate::per_minute(10)),
    ("lists_get_users", Rate::per_minute(5)),
    ("export", Rate::per_minute(4)),
];

/// Largest `pageSize` Iterable accepts.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A publisher's Iterable credentials for one call. Never `Debug`: the key stays secret.
pub struct Credentials {
    key: SecretString,
    region: Region,
    /// Hex SHA-256 prefix of the key: the budget owner, safe to log.
    digest: String,
}

impl Credentials {
    pub fn new(key: SecretString, region: Region) -> Self {
        let hash = Sha256::digest(key.expose_secret().as_bytes());
        let digest = hex::encode(&hash[..8]);
        Self {
            key,
            region,
            digest,
        }
    }

    /// The key itself, to be sealed in the vault.
    pub fn into_key(self) -> SecretString {
        self.key
    }

    pub fn region(&self) -> Region {
        self.region
    }

    /// The budget key: a digest, never the key itself.
    pub fn budget_key(&self) -> &str {
        &self.digest
    }

    fn header(&self) -> Result<HeaderValue, ConnectorError> {
        let mut value = HeaderValue::from_str(self.key.expose_secret()).map_err(|_| {
            ConnectorError::new(
                Platform::Iterable,
                ErrorKind::InvalidCredentials,
                "The API key contains characters that cannot be sent in a header (spaces, line breaks or non-ASCII): paste the 32-character key again.",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn looks_like_a_key(&self) -> (usize, bool) {
        let k = self.key.expose_secret();
        (k.chars().count(), k.chars().all(|c| c.is_ascii_hexdigit()))
    }
}

/// What `GET /api/campaigns` is asked, in our terms.
#[derive(Clone, Debug, Default)]
pub struct CampaignQuery {
    /// 1–1000.
    pub limit: u32,
    pub offset: u64,
    /// Iterable `campaignState` values (see [`campaign_state`]); empty = all.
    pub states: Vec<&'static str>,
}

/// What `GET /api/templates` is asked.
#[derive(Clone, Debug, Default)]
pub struct TemplateQuery {
    pub limit: u32,
    pub offset: u64,
    /// `Base`, `Blast`, `Triggered` or `Workflow`.
    pub template_type: Option<&'static str>,
    /// `Email`, `Push`, `InApp` or `SMS`.
    pub message_medium: Option<&'static str>,
}

/// One page of templates.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplatePage {
    pub templates: Vec<Template>,
    pub total: u64,
}

/// The Iterable connector.
pub struct IterableConnector {
    client: UpstreamClient,
    upstreams: Upstreams,
}

/// The Iterable page size that reads `[offset, offset + limit)` in the fewest requests: the
/// smallest size (≥ `limit`, ≤ 1000) whose one page holds the whole window, else `limit` (two
/// pages).
pub fn page_size_for(limit: u32, offset: u64) -> u32 {
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    let last = offset + u64::from(limit) - 1;
    (limit..=MAX_PAGE_SIZE)
        .find(|p| offset / u64::from(*p) == last / u64::from(*p))
        .unwrap_or(limit)
}

impl IterableConnector {
    /// What this connector's rate budgets are doing (for `…/limits` and metrics).
    pub fn limits(&self) -> &std::sync::Arc<crate::limits::LimitsTracker> {
        self.client.limits()
    }

    pub fn new(settings: &Settings) -> Self {
        Self {
            client: UpstreamClient::new(
                Platform::Iterable,
                settings.timeout,
                &settings.budgets(BUDGETS, BUDGET_HEADROOM),
                settings.observer.clone(),
            )
            .with_shared_budgets(settings.shared_budgets.clone()),
            upstreams: settings.upstreams.clone(),
        }
    }

    fn url(&self, region: Region, path: &str) -> String {
        let origin = self
            .upstreams
            .iterable(region)
            .as_str()
            .trim_end_matches('/');
        format!("{origin}{path}")
    }

    /// An idempotent GET answering JSON; a 2xx body that is not JSON is fetched again (a proxy
    /// or a cut connection), then reported as `CONNECTION_FAILED`.
    async fn get_json(
        &self,
        creds: &Credentials,
        operation: &'static str,
        class: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        let header = creds.header()?;
        let url = self.url(creds.region, path);
        let call = Call {
            operation,
            class,
            budget_key: creds.budget_key(),
            idempotent: true,
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let answer = self
                .client
                .send(call, |http| {
                    http.get(&url)
                        .header("Api-Key", header.clone())
                        .header(reqwest::header::ACCEPT, "application/json")
                        .query(query)
                })
                .await?;
            if !answer.is_success() {
                return Err(errors::map(&answer, operation));
            }
            match serde_json::from_slice::<Value>(&answer.body) {
                Ok(v) if v.is_object() => return Ok(v),
                Ok(_) if tries >= 3 => {
                    return Err(errors::malformed(
                        operation,
                        answer.status.as_u16(),
                        "not an object",
                    ));
                }
                Err(_) if tries >= 3 => {
                    return Err(errors::malformed(
                        operation,
                        answer.status.as_u16(),
                        "unreadable JSON",
                    ));
                }
                _ => tracing::debug!(
                    operation,
                    tries,
                    "malformed Iterable answer; fetching again"
                ),
            }
        }
    }

    /// Checks a key with one cheap call (`GET /api/channels`, allowed to server-side and
    /// read-only keys), answering what Iterable told us and how long it took. A refused key is
    /// tried against the other data centre to say when the region is what is wrong.
    pub async fn test_connection(
        &self,
        creds: &Credentials,
    ) -> Result<(Account, Duration), ConnectorError> {
        let started = Instant::now();
        match self.channels_raw(creds).await {
            Ok(channels) => {
                let latency = started.elapsed();
                let mut media: Vec<String> = channels.iter().map(|c| c.channel.clone()).collect();
                media.sort();
                media.dedup();
                Ok((
                    Account {
                        data_center: errors::data_center(creds.region).to_owned(),
                        api_origin: self
                            .upstreams
                            .iterable(creds.region)
                            .as_str()
                            .trim_end_matches('/')
                            .to_owned(),
                        channel_count: channels.len(),
                        media,
                        channels,
                    },
                    latency,
                ))
            }
            Err(e) if errors::is_bad_key(&e) => {
                // Which kind of key? A client-side key may call `users/update` (and nothing we
                // read); a body without a user is refused there without writing anything.
                match self.probe_client_side(creds).await {
                    Some(Ok(())) => {
                        return Err(ConnectorError {
                            message: errors::client_side_message(),
                            ..e
                        });
                    }
                    Some(Err(jwt)) => return Err(jwt),
                    None => {}
                }
                let other = Credentials {
                    key: creds.key.clone(),
                    region: creds.region.other(),
                    digest: creds.digest.clone(),
                };
                let message = match self.channels_raw(&other).await {
                    Ok(_) => errors::other_region_message(creds.region),
                    Err(_) => {
                        let (len, hex) = creds.looks_like_a_key();
                        errors::bad_key_message(creds.region, len, hex)
                    }
                };
                Err(ConnectorError { message, ..e })
            }
            Err(e) => Err(e),
        }
    }

    /// `Some(Ok)` when Iterable accepts the key for `POST /api/users/update` (a client-side
    /// key), `Some(Err)` with the JWT diagnosis for a JWT-enabled key, `None` otherwise. The body
    /// names no user, so Iterable refuses it (400) without writing anything.
    async fn probe_client_side(&self, creds: &Credentials) -> Option<Result<(), ConnectorError>> {
        let header = creds.header().ok()?;
        let url = self.url(creds.region, "/api/users/update");
        let call = Call {
            operation: "diagnose_key",
            class: "users_update",
            budget_key: creds.budget_key(),
            idempotent: true,
        };
        let answer = self
            .client
            .send(call, |http| {
                http.post(&url)
                    .header("Api-Key", header.clone())
                    .json(&serde_json::json!({}))
            })
            .await
            .ok()?;
        match answer.status.as_u16() {
            400 => Some(Ok(())),
            401 => {
                let e = errors::map(&answer, "diagnose_key");
                (!errors::is_bad_key(&e)).then_some(Err(e))
            }
            _ => None,
        }
    }

    async fn channels_raw(&self, creds: &Credentials) -> Result<Vec<Channel>, ConnectorError> {
        let v = self
            .get_json(creds, "list_channels", "channels", "/api/channels", &[])
            .await?;
        items(&v, "channels", "list_channels", models::channel)
    }

    /// The project's channels (`GET /api/channels`).
    pub async fn list_channels(&self, creds: &Credentials) -> Result<Vec<Channel>, ConnectorError> {
        self.channels_raw(creds).await
    }

    /// The project's lists (`GET /api/lists`, not paged by Iterable).
    pub async fn list_lists(&self, creds: &Credentials) -> Result<Vec<List>, ConnectorError> {
        let v = self
            .get_json(creds, "list_lists", "lists", "/api/lists", &[])
            .await?;
        items(&v, "lists", "list_lists", models::list)
    }

    /// Campaigns `[offset, offset + limit)` in id order, with the filter's total: our window is
    /// mapped onto Iterable's `page`/`pageSize` and read across as many pages as it spans.
    pub async fn list_campaigns(
        &self,
        creds: &Credentials,
        q: &CampaignQuery,
    ) -> Result<CampaignPage, ConnectorError> {
        let extra: Vec<(&str, String)> = q
            .states
            .iter()
            .map(|s| ("campaignState", (*s).to_owned()))
            .collect();
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
                q.limit,
                q.offset,
                &extra,
            )
            .await?;
        let campaigns = rows
            .iter()
            .map(|v| {
                models::campaign(v).ok_or_else(|| {
                    errors::malformed("list_campaigns", 200, "a campaign without an id")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CampaignPage { campaigns, total })
    }

    /// Templates `[offset, offset + limit)`, optionally of one type and medium.
    pub async fn list_templates(
        &self,
        creds: &Credentials,
        q: &TemplateQuery,
    ) -> Result<TemplatePage, ConnectorError> {
        let mut extra: Vec<(&str, String)> = Vec::new();
        if let Some(t) = q.template_type {
            extra.push(("templateType", t.to_owned()));
        }
        if let Some(m) = q.message_medium {
            extra.push(("messageMedium", m.to_owned()));
        }
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
                q.limit,
                q.offset,
                &extra,
            )
            .await?;
        let templates = rows
            .iter()
            .map(|v| {
                models::template(v, q.template_type, q.message_medium).ok_or_else(|| {
                    errors::malformed("list_templates", 200, "a template without an id")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TemplatePage { templates, total })
    }

    /// Reads `[offset, offset + limit)` of a `page`/`pageSize` collection sorted by id.
    async fn paged(
        &self,
        creds: &Credentials,
        what: Paged,
        limit: u32,
        offset: u64,
        extra: &[(&str, String)],
    ) -> Result<(Vec<Value>, u64), ConnectorError> {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let size = page_size_for(limit, offset);
        let mut page = offset / u64::from(size) + 1;
        let mut skip = usize::try_from(offset % u64::from(size)).unwrap_or(0);
        let want = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out: Vec<Value> = Vec::with_capacity(want);
        let mut total = None;
        loop {
            let mut query: Vec<(&str, String)> = vec![
                ("page", page.to_string()),
                ("pageSize", size.to_string()),
                ("sort", "id".to_owned()),
            ];
            query.extend(extra.iter().cloned());
            let v = self
                .get_json(creds, what.operation, what.class, what.path, &query)
                .await?;
            let rows = v
                .get(what.items)
                .and_then(Value::as_array)
                .ok_or_else(|| errors::malformed(what.operation, 200, what.items))?;
            if let Some(t) = v.get(what.total).and_then(Value::as_u64) {
                total = Some(t);
            }
            let got = rows.len();
            out.extend(rows.iter().skip(skip).take(want - out.len()).cloned());
            skip = 0;
            let more = v.get("nextPageUrl").is_some_and(|n| !n.is_null())
                || (v.get("nextPageUrl").is_none() && got >= size as usize);
            if out.len() >= want || got < size as usize || !more {
                break;
            }
            page += 1;
        }
        let total = total.unwrap_or(offset + out.len() as u64);
        Ok((out, total))
    }
}

struct Paged {
    operation: &'static str,
    class: &'static str,
    path: &'static str,
    items: &'static str,
    total: &'static str,
}

/// The array `key` of an answer, each converted; an answer without it is malformed.
fn items<T>(
    v: &Value,
    key: &str,
    operation: &str,
    convert: fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ConnectorError> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| errors::malformed(operation, 200, key))?
        .iter()
        .map(|item| convert(item).ok_or_else(|| errors::malformed(operation, 200, key)))
        .collect()
}

#[async_trait::async_trait]
impl Connector for IterableConnector {
    fn platform(&self) -> Platform {
        Platform::Iterable
    }

    fn client(&self) -> &crate::http::UpstreamClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_covers_the_window_in_fewest_pages() {
        assert_eq!(page_size_for(100, 0), 100);
        assert_eq!(page_size_for(100, 200), 100);
        // 25..75 fits in one page of 75.
        assert_eq!(page_size_for(50, 25), 75);
        // 1500..2500 cannot fit one page of ≤ 1000: two pages of 1000.
        assert_eq!(page_size_for(1000, 1500), 1000);
        for (limit, offset) in [(1u32, 0u64), (7, 13), (100, 950), (1000, 1), (333, 99_999)] {
            let p = u64::from(page_size_for(limit, offset));
            assert!(p >= u64::from(limit) && p <= 1000);
            let pages = (offset + u64::from(limit) - 1) / p - offset / p + 1;
            assert!(pages <= 2);
        }
    }

    #[test]
    fn budget_key_is_a_digest() {
        let c = Credentials::new(
            SecretString::from("a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned()),
            Region::Us,
        );
        assert_eq!(c.budget_key().len(), 16);
        assert!(!c.budget_key().contains("a1b2c3d4"));
    }
}
