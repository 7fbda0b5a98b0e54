//! Customer.io endpoints (CONTRACT §4 and §7): test-connection, connect, and Customer.io's own
//! reads (broadcasts, newsletters among them). The common writes (subscribers, events, messages)
//! are served by the generic routes through `platforms::customerio::CustomerioSession`.
//! Registered under the `authorize` middleware with every other `/api/` route.

use std::{collections::BTreeSet, time::Instant};

use axum::extract::State;
use connectors::customerio::{CampaignFilter, ConnectionReport, Credentials};
use domain::{Platform, Region, shapes::Campaign, shapes::Integration};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        checks,
        error::{ApiError, ApiResult},
        extract::{ApiJson, ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    integrations::{self, NewConnection},
    platforms::customerio::CustomerioSession,
    state::AppState,
};

/// Customer.io's routes, with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_connection))
        .routes(routes!(connect))
        .routes(routes!(list_broadcasts))
        .routes(routes!(list_newsletters))
}

const PLATFORM: Platform = Platform::Customerio;

/// `POST /api/integrations/customerio/test-connection`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CustomerioTestConnectionBody)]
pub struct TestConnectionBody {
    /// The workspace's Site ID (Track API user name).
    pub site_id: String,
    /// The App API key (bearer).
    #[schema(value_type = String)]
    pub api_key: SecretString,
    /// `us` (default) or `eu`.
    #[serde(default)]
    pub region: Option<Region>,
    /// The Tracking API key paired with the Site ID; when absent, `apiKey` is tried as the Track key.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub tracking_key: Option<SecretString>,
    /// A Data Pipelines source API key.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub cdp_api_key: Option<SecretString>,
}

/// Non-secret settings of a Customer.io integration.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerioConfig {
    /// Segments to sync members of; each must exist in the workspace.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub segment_ids: Vec<Value>,
    /// Campaigns (journeys) to follow; each must exist in the workspace.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub journey_ids: Vec<Value>,
    /// `true`: scheduled syncs also run the opt-in `metrics` kind, keeping each campaign's
    /// daily metrics beyond Customer.io's 45 days (see docs/analytics.md).
    #[serde(default)]
    pub metrics_history: Option<bool>,
}

/// `POST /api/integrations/customerio/connect`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CustomerioConnectBody)]
pub struct ConnectBody {
    /// Required with the admin token; a publisher key may leave it out and acts for its own
    /// publisher. Checked by the `authorize` gate; the handler reads the scope, never this.
    #[serde(default)]
    #[allow(dead_code)]
    pub publisher_id: Option<String>,
    pub site_id: String,
    /// The App API key (bearer).
    #[schema(value_type = String)]
    pub api_key: SecretString,
    /// `us` (default) or `eu`.
    #[serde(default)]
    pub region: Option<Region>,
    /// The Tracking API key paired with the Site ID.
    #[schema(value_type = String)]
    pub tracking_key: SecretString,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub cdp_api_key: Option<SecretString>,
    /// The reporting webhooks' signing key (Settings → Reporting Webhooks).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub webhook_signing_key: Option<SecretString>,
    #[serde(default)]
    pub config: CustomerioConfig,
}

/// What a test-connection answers.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTest {
    pub platform: Platform,
    pub ok: bool,
    pub region: Region,
    /// `siteId`, `workspaceId`, `workspaceName`, `apis: {track, app, cdp}` (which APIs accepted
    /// the keys; `cdp` is null when no `cdpApiKey` was given) and `notes`.
    #[schema(value_type = Object)]
    pub account: Value,
    pub latency_ms: u64,
}

fn required(field: &str, value: &SecretString) -> Result<SecretString, ApiError> {
    use secrecy::ExposeSecret as _;
    let value = value.expose_secret();
    if value.trim().len() > 512 {
        return Err(ApiError::validation(
            field,
            format!("`{field}` is not a Customer.io key or id: it is too long."),
        ));
    }
    checks::credential(field, value)
}

fn optional(field: &str, value: Option<&SecretString>) -> Result<Option<SecretString>, ApiError> {
    value.map(|v| required(field, v)).transpose()
}

fn site_id(value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 128 || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::validation(
            "siteId",
            "`siteId` must be the workspace's Site ID: letters and digits, as shown under Settings → Workspace Settings → API and webhook credentials.",
        ));
    }
    Ok(v.to_owned())
}

fn report_json(report: &ConnectionReport) -> Result<Value, ApiError> {
    serde_json::to_value(report).map_err(ApiError::internal)
}

/// Tests Customer.io keys against the Track, App and Data Pipelines APIs without storing them.
///
/// `account.apis` says which APIs accepted the keys. A key of the wrong kind (an App key given as
/// the Track key, a Track key as the App key, …) or valid only in the other region answers
/// `INVALID_CREDENTIALS` with a message that says which and what to do.
#[utoipa::path(post, path = "/api/integrations/customerio/test-connection", tag = "customerio", operation_id = "customerio_test_connection",
    security(("bearer" = [])),
    request_body(content = TestConnectionBody, example = json!({"siteId": "5f1a9c3e7b2d4a6c8e01", "trackingKey": "a7d3f9c1e5b2048d6f3a", "apiKey": "7c1e9a3f5b2d4e6a8c0f1b3d5e7a9c2e", "region": "us"})),
    responses(
        (status = 200, body = Envelope<ConnectionTest>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS: which key was rejected and why", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn test_connection(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TestConnectionBody>,
) -> ApiResult<Envelope<ConnectionTest>> {
    let creds = Credentials {
        region: body.region.unwrap_or_default(),
        site_id: site_id(&body.site_id)?,
        api_key: required("apiKey", &body.api_key)?,
        tracking_key: optional("trackingKey", body.tracking_key.as_ref())?,
        cdp_api_key: optional("cdpApiKey", body.cdp_api_key.as_ref())?,
    };
    let started = Instant::now();
    let report = state.connectors.customerio.test_connection(&creds).await?;
    Ok(Envelope::ok(ConnectionTest {
        platform: PLATFORM,
        ok: true,
        region: creds.region,
        account: report_json(&report)?,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }))
}

/// Ids as strings: Customer.io's ids are numbers, the contract's strings; both are accepted.
fn ids(field: &str, values: &[Value]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let id = match v {
            Value::String(s) if checks::path_id(&format!("{field}[{i}]"), s.trim()).is_ok() => {
                s.trim().to_owned()
            }
            Value::Number(n) if n.is_u64() => n.to_string(),
            _ => {
                return Err(ApiError::validation(
                    format!("{field}[{i}]"),
                    format!(
                        "`{field}[{i}]` must be a Customer.io id (a positive integer, or a string of 1–128 characters that is not `.` or `..` and holds no `/`)."
                    ),
                ));
            }
        };
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn missing(wanted: &[String], present: &BTreeSet<String>) -> Vec<String> {
    wanted
        .iter()
        .filter(|id| !present.contains(*id))
        .cloned()
        .collect()
}

/// Connects Customer.io for a publisher: tests the keys first (nothing is stored when they
/// fail), checks that `config.segmentIds` and `config.journeyIds` exist in the workspace, then
/// stores the keys in the vault. Connecting again replaces the keys and config (`replaced`).
#[utoipa::path(post, path = "/api/integrations/customerio/connect", tag = "customerio", operation_id = "customerio_connect",
    security(("bearer" = [])),
    request_body(content = ConnectBody, example = json!({"publisherId": "acme", "siteId": "5f1a9c3e7b2d4a6c8e01", "trackingKey": "a7d3f9c1e5b2048d6f3a", "apiKey": "7c1e9a3f5b2d4e6a8c0f1b3d5e7a9c2e", "region": "us"})),
    responses(
        (status = 200, body = Envelope<Integration>),
        (status = 400, description = "VALIDATION_ERROR (a missing field, or segment/journey ids the workspace does not have: `details.missingIds`)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<ConnectBody>,
) -> ApiResult<Envelope<Integration>> {
    let publisher = scope.publisher()?.clone();
    let creds = Credentials {
        region: body.region.unwrap_or_default(),
        site_id: site_id(&body.site_id)?,
        api_key: required("apiKey", &body.api_key)?,
        tracking_key: Some(required("trackingKey", &body.tracking_key)?),
        cdp_api_key: optional("cdpApiKey", body.cdp_api_key.as_ref())?,
    };
    let signing_key = optional("webhookSigningKey", body.webhook_signing_key.as_ref())?;
    let segment_ids = ids("config.segmentIds", &body.config.segment_ids)?;
    let journey_ids = ids("config.journeyIds", &body.config.journey_ids)?;
    let metrics_history = body.config.metrics_history;

    let connector = &state.connectors.customerio;
    let report = connector.test_connection(&creds).await?;

    let mut problems = Vec::new();
    if !segment_ids.is_empty() {
        let present: BTreeSet<String> = connector
            .list_segments(&creds)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let absent = missing(&segment_ids, &present);
        if !absent.is_empty() {
            problems.push(("config.segmentIds", "segments", absent));
        }
    }
    if !journey_ids.is_empty() {
        let present: BTreeSet<String> = connector
            .list_campaigns(&creds, &CampaignFilter::default())
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let absent = missing(&journey_ids, &present);
        if !absent.is_empty() {
            problems.push(("config.journeyIds", "campaigns (journeys)", absent));
        }
    }
    if let Some((field, _, absent)) = problems.first() {
        let sentence = problems
            .iter()
            .map(|(f, what, ids)| {
                format!(
                    "`{f}`: the workspace has no {what} with id {}.",
                    ids.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        return Err(ApiError::validation(
            *field,
            format!("{sentence} Nothing was stored; list them with GET /api/integrations/{publisher}/customerio/segments and …/campaigns."),
        )
        .detail("missingIds", absent.clone()));
    }

    let mut secrets = vec![("apiKey", creds.api_key)];
    if let Some(k) = creds.tracking_key {
        secrets.push(("trackingKey", k));
    }
    if let Some(k) = creds.cdp_api_key {
        secrets.push(("cdpApiKey", k));
    }
    if let Some(k) = signing_key {
        secrets.push(("webhookSigningKey", k));
    }
    let mut config = json!({
        "siteId": creds.site_id,
        "segmentIds": segment_ids,
        "journeyIds": journey_ids,
    });
    if let Some(id) = report.workspace_id {
        config["workspaceId"] = json!(id.to_string());
    }
    if let Some(keep) = metrics_history {
        config["metricsHistory"] = json!(keep);
    }
    let integration = integrations::connect(
        &state,
        NewConnection {
            publisher,
            platform: PLATFORM,
            region: Some(creds.region),
            config,
            secrets,
        },
    )
    .await?;
    crate::sandbox::on_connect(&state, scope.publisher()?, &integration).await;
    crate::consent::audit::note(
        &state,
        scope.publisher()?,
        &crate::consent::principal_name(&scope.principal),
        "integration.connected",
        json!({"platform": PLATFORM}),
    )
    .await;
    Ok(Envelope::ok(integration))
}

/// The stored credentials of a publisher's Customer.io integration.
async fn stored_credentials(state: &AppState, scope: &Scope) -> Result<Credentials, ApiError> {
    Ok(
        crate::platforms::open_own::<CustomerioSession>(state, scope.publisher()?)
            .await?
            .creds,
    )
}

/// Paging of a list we hold whole.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// 1–1000, default 100.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Default 0, at most 10,000,000.
    #[serde(default)]
    #[param(minimum = 0, maximum = 10000000)]
    pub offset: Option<u64>,
}

fn page<T>(
    items: Vec<T>,
    limit: Option<u32>,
    offset: Option<u64>,
) -> Result<(Vec<T>, usize, u32, u64), ApiError> {
    let (limit, offset) = crate::paging::window(limit, offset, 100, crate::paging::MAX_LIMIT)?;
    let total = items.len();
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(1000);
    Ok((
        items.into_iter().skip(skip).take(take).collect(),
        total,
        limit,
        offset,
    ))
}

/// A page of broadcasts or newsletters, in the Campaign shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BroadcastList {
    pub broadcasts: Vec<Campaign>,
    pub total: usize,
    pub limit: u32,
    pub offset: u64,
}

/// A publisher's API-triggered broadcasts (Campaign shape, `type` `triggered_broadcast`,
/// `status` `running` or `draft`).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/customerio/broadcasts", tag = "customerio",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), Page),
    responses(
        (status = 200, body = Envelope<BroadcastList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_broadcasts(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<Page>,
) -> ApiResult<Envelope<BroadcastList>> {
    page(Vec::<()>::new(), q.limit, q.offset)?;
    let creds = stored_credentials(&state, &scope).await?;
    let all = state.connectors.customerio.list_broadcasts(&creds).await?;
    let (broadcasts, total, limit, offset) = page(all, q.limit, q.offset)?;
    Ok(Envelope::ok(BroadcastList {
        broadcasts,
        total,
        limit,
        offset,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NewsletterList {
    pub newsletters: Vec<Campaign>,
    pub total: usize,
    pub limit: u32,
    pub offset: u64,
}

/// A publisher's newsletters, oldest first (Campaign shape, `type` `newsletter`, `status`
/// `sent` or `draft`, `channel` the message type). Every Customer.io page (`start`/`next`) is
/// followed.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/customerio/newsletters", tag = "customerio",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), Page),
    responses(
        (status = 200, body = Envelope<NewsletterList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_newsletters(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<Page>,
) -> ApiResult<Envelope<NewsletterList>> {
    page(Vec::<()>::new(), q.limit, q.offset)?;
    let creds = stored_credentials(&state, &scope).await?;
    let all = state.connectors.customerio.list_newsletters(&creds).await?;
    let (newsletters, total, limit, offset) = page(all, q.limit, q.offset)?;
    Ok(Envelope::ok(NewsletterList {
        newsletters,
        total,
        limit,
        offset,
    }))
}
