//! Iterable endpoints (CONTRACT §4 and §7): test-connection, connect, and Iterable's own reads and
//! writes. Registered under the `authorize` middleware with every other `/api/` route.

use axum::extract::State;
use connectors::iterable::{
    Account, CAMPAIGN_STATES, CampaignQuery, Channel, Credentials, List, Template, TemplateQuery,
    campaign_state,
};
use domain::{ErrorCode, Platform, PublisherId, Region, shapes::Campaign, shapes::Integration};
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
    platforms::iterable::IterableSession,
    state::AppState,
};

/// Iterable's routes, with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_connection))
        .routes(routes!(connect))
        .routes(routes!(list_campaigns))
        .routes(routes!(list_campaigns_by_publisher))
        .routes(routes!(list_lists))
        .routes(routes!(list_templates))
        .routes(routes!(list_channels))
        .routes(routes!(upsert_subscribers))
        .routes(routes!(track_events))
        .routes(routes!(send_message))
}

/// `POST /api/integrations/iterable/test-connection`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestConnectionRequest {
    /// A server-side ("Standard") API key: 32 hexadecimal characters.
    #[schema(value_type = String)]
    pub api_key: SecretString,
    /// `us` (default) or `eu`: the data centre of the key's project.
    #[serde(default)]
    pub region: Option<Region>,
}

/// What a successful test found.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestConnectionResult {
    pub platform: Platform,
    pub ok: bool,
    pub region: Region,
    pub account: Account,
    /// Time Iterable took to answer the test call.
    pub latency_ms: u64,
}

/// `config` of a connect: where Iterable's email sends should come from.
#[derive(Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IterableConfig {
    /// Sender address for email messages (an email address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_email: Option<String>,
    /// Reply-to address for email messages (an email address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// `true`: scheduled syncs also run the opt-in `metrics` kind, keeping each campaign's
    /// daily metrics (see docs/analytics.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_history: Option<bool>,
}

/// `POST /api/integrations/iterable/connect`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    /// Required with the admin token; a publisher key may leave it out and acts for its own
    /// publisher. Checked by the `authorize` gate; the handler reads the scope, never this.
    #[serde(default)]
    #[allow(dead_code)]
    pub publisher_id: Option<String>,
    #[schema(value_type = String)]
    pub api_key: SecretString,
    #[serde(default)]
    pub region: Option<Region>,
    #[serde(default)]
    pub config: Option<IterableConfig>,
    /// On a reconnect, generate a new webhook secret (shown once in the answer) instead of
    /// keeping the one Iterable's system webhook already sends.
    #[serde(default)]
    pub rotate_webhook_secret: bool,
}

/// `?limit&offset&state` of the campaigns read.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignParams {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Campaigns to skip (default 0, at most 10,000,000), in id order.
    #[param(minimum = 0, maximum = 10000000)]
    pub offset: Option<u64>,
    /// Iterable campaign states, comma-separated, any case: `Draft`, `Ready`, `Scheduled`,
    /// `Running`, `Finished`, `Starting`, `Aborted`, `Recurring`, `Archived`.
    pub state: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
    /// Campaigns matching the filter in the whole project.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// `?limit&offset&type&channel` of the templates read.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateParams {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Templates to skip (default 0, at most 10,000,000).
    #[param(minimum = 0, maximum = 10000000)]
    pub offset: Option<u64>,
    /// `base`, `blast`, `triggered` or `workflow`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `email`, `sms`, `push` or `in_app`.
    pub channel: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub templates: Vec<Template>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ListList {
    pub lists: Vec<List>,
    pub total: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub channels: Vec<Channel>,
    pub total: usize,
}

const DEFAULT_LIMIT: u32 = 100;

fn api_key(raw: SecretString) -> Result<SecretString, ApiError> {
    use secrecy::ExposeSecret as _;
    if raw.expose_secret().trim().is_empty() {
        return Err(ApiError::validation(
            "apiKey",
            "apiKey is empty: paste a server-side (\"Standard\") Iterable API key.",
        ));
    }
    checks::credential("apiKey", raw.expose_secret())
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || !c.is_ascii())
}

fn check_email(field: &str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if is_email(v) => Ok(Some(v.to_owned())),
        Some(v) => Err(ApiError::validation(
            field,
            format!("`{field}` must be an email address like news@example.com, not '{v}'."),
        )),
    }
}

fn window(limit: Option<u32>, offset: Option<u64>) -> Result<(u32, u64), ApiError> {
    checks::paging(limit, offset, DEFAULT_LIMIT, checks::MAX_LIMIT)
}

/// The publisher's stored Iterable credentials, or `INTEGRATION_NOT_FOUND`.
async fn credentials(state: &AppState, publisher: &PublisherId) -> ApiResult<Credentials> {
    Ok(IterableSession::open_for(state, publisher).await?.creds)
}

/// Tests an Iterable API key with one cheap call (`GET /api/channels`) without storing it.
///
/// A key refused in the region asked but valid in the other one, a JWT-enabled or client-side
/// key, and a truncated key are each named in the error.
#[utoipa::path(post, path = "/api/integrations/iterable/test-connection", tag = "iterable",
    security(("bearer" = [])),
    request_body = TestConnectionRequest,
    responses(
        (status = 200, body = Envelope<TestConnectionResult>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn test_connection(
    State(state): State<AppState>,
    _scope: Scope,
    ApiJson(body): ApiJson<TestConnectionRequest>,
) -> ApiResult<Envelope<TestConnectionResult>> {
    let region = body.region.unwrap_or_default();
    let creds = Credentials::new(api_key(body.api_key)?, region);
    let (account, latency) = state.connectors.iterable.test_connection(&creds).await?;
    Ok(Envelope::ok(TestConnectionResult {
        platform: Platform::Iterable,
        ok: true,
        region,
        account,
        latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
    }))
}

/// Connects a publisher's Iterable project: tests the key first (nothing is stored when the
/// test fails), then stores it encrypted with its region and the sender config, replacing an
/// earlier connection (`replaced: true`). The first connect generates the system webhook
/// secret and shows it once, as `webhookSecret` (afterwards only masked, under
/// `credentials.webhookSecret`); a reconnect keeps it unless `rotateWebhookSecret` is true.
#[utoipa::path(post, path = "/api/integrations/iterable/connect", tag = "iterable",
    security(("bearer" = [])),
    request_body = ConnectRequest,
    responses(
        (status = 200, body = Envelope<Integration>),
        (status = 400, description = "VALIDATION_ERROR (details.field)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<ConnectRequest>,
) -> ApiResult<Envelope<Integration>> {
    let publisher = scope.publisher()?.clone();
    let key = api_key(body.api_key)?;
    let config = body.config.unwrap_or_default();
    let config = IterableConfig {
        from_email: check_email("config.fromEmail", &config.from_email)?,
        reply_to: check_email("config.replyTo", &config.reply_to)?,
        metrics_history: config.metrics_history,
    };
    let region = body.region.unwrap_or_default();
    let creds = Credentials::new(key, region);
    state.connectors.iterable.test_connection(&creds).await?;
    let config = serde_json::to_value(&config).map_err(ApiError::internal)?;
    // The webhook secret survives a reconnect (Iterable keeps sending it) unless rotated.
    let kept = match state
        .store
        .get_integration(&publisher, Platform::Iterable)
        .await?
    {
        Some(existing) if !body.rotate_webhook_secret => {
            integrations::open_secrets(&state, &existing)
                .await?
                .remove(crate::webhooks::iterable::SECRET_FIELD)
        }
        _ => None,
    };
    let (webhook_secret, reveal) = match kept {
        Some(s) => (s, false),
        None => (crate::webhooks::iterable::new_secret(), true),
    };
    let shown = reveal.then(|| secrecy::ExposeSecret::expose_secret(&webhook_secret).to_owned());
    let mut integration = integrations::connect(
        &state,
        NewConnection {
            publisher,
            platform: Platform::Iterable,
            region: Some(region),
            config,
            secrets: vec![
                ("apiKey", creds.into_key()),
                (crate::webhooks::iterable::SECRET_FIELD, webhook_secret),
            ],
        },
    )
    .await?;
    integration.webhook_secret = shown;
    tracing::info!(
        replaced = integration.replaced.unwrap_or(false),
        "Iterable connected"
    );
    Ok(Envelope::ok(integration))
}

fn campaign_states(raw: Option<&str>) -> Result<Vec<&'static str>, ApiError> {
    let mut states = Vec::new();
    for part in raw.unwrap_or("").split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let s = campaign_state(part).ok_or_else(|| {
            ApiError::validation(
                "state",
                format!(
                    "Unknown campaign state '{part}': use one or more of {} (comma-separated).",
                    CAMPAIGN_STATES.join(", ")
                ),
            )
        })?;
        if !states.contains(&s) {
            states.push(s);
        }
    }
    Ok(states)
}

async fn campaigns(
    state: &AppState,
    scope: &Scope,
    params: CampaignParams,
) -> ApiResult<Envelope<CampaignList>> {
    let publisher = scope.publisher()?;
    let (limit, offset) = window(params.limit, params.offset)?;
    let states = campaign_states(params.state.as_deref())?;
    let creds = credentials(state, publisher).await?;
    let page = state
        .connectors
        .iterable
        .list_campaigns(
            &creds,
            &CampaignQuery {
                limit,
                offset,
                states,
            },
        )
        .await?;
    Ok(Envelope::ok(CampaignList {
        campaigns: page.campaigns,
        total: page.total,
        limit,
        offset,
    }))
}

/// A publisher's Iterable campaigns, in id order: `limit`/`offset`/`state` are mapped onto
/// Iterable's `page`/`pageSize`/`campaignState` and read across as many pages as needed.
#[utoipa::path(get, path = "/api/integrations/iterable/{publisherId}/campaigns", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), CampaignParams),
    responses(
        (status = 200, body = Envelope<CampaignList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(params): ApiQuery<CampaignParams>,
) -> ApiResult<Envelope<CampaignList>> {
    campaigns(&state, &scope, params).await
}

/// The same campaigns under CONTRACT §7's `/api/integrations/{publisherId}/{platform}/campaigns`.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/iterable/campaigns", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), CampaignParams),
    responses(
        (status = 200, body = Envelope<CampaignList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list_campaigns_by_publisher(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(params): ApiQuery<CampaignParams>,
) -> ApiResult<Envelope<CampaignList>> {
    campaigns(&state, &scope, params).await
}

/// A publisher's Iterable lists (`GET /api/lists`; Iterable does not page them).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/iterable/lists", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses(
        (status = 200, body = Envelope<ListList>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list_lists(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<ListList>> {
    let creds = credentials(&state, scope.publisher()?).await?;
    let lists = state.connectors.iterable.list_lists(&creds).await?;
    Ok(Envelope::ok(ListList {
        total: lists.len(),
        lists,
    }))
}

/// A publisher's Iterable templates in id order, optionally of one type and channel.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/iterable/templates", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), TemplateParams),
    responses(
        (status = 200, body = Envelope<TemplateList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list_templates(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(params): ApiQuery<TemplateParams>,
) -> ApiResult<Envelope<TemplateList>> {
    let publisher = scope.publisher()?;
    let (limit, offset) = window(params.limit, params.offset)?;
    let template_type = match params.kind.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(
            ["Base", "Blast", "Triggered", "Workflow"]
                .into_iter()
                .find(|k| k.eq_ignore_ascii_case(t))
                .ok_or_else(|| {
                    ApiError::validation(
                        "type",
                        format!(
                            "Unknown template type '{t}': use base, blast, triggered or workflow."
                        ),
                    )
                })?,
        ),
    };
    let message_medium = match params.channel.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(
            match c.to_ascii_lowercase().as_str() {
                "email" => Some("Email"),
                "sms" => Some("SMS"),
                "push" => Some("Push"),
                "in_app" | "inapp" => Some("InApp"),
                _ => None,
            }
            .ok_or_else(|| {
                ApiError::validation(
                    "channel",
                    format!("Unknown channel '{c}': use email, sms, push or in_app."),
                )
            })?,
        ),
    };
    let creds = credentials(&state, publisher).await?;
    let page = state
        .connectors
        .iterable
        .list_templates(
            &creds,
            &TemplateQuery {
                limit,
                offset,
                template_type,
                message_medium,
            },
        )
        .await?;
    Ok(Envelope::ok(TemplateList {
        templates: page.templates,
        total: page.total,
        limit,
        offset,
    }))
}

/// A publisher's Iterable message channels (`GET /api/channels`).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/iterable/channels", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses(
        (status = 200, body = Envelope<ChannelList>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list_channels(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<ChannelList>> {
    let creds = credentials(&state, scope.publisher()?).await?;
    let channels = state.connectors.iterable.list_channels(&creds).await?;
    Ok(Envelope::ok(ChannelList {
        total: channels.len(),
        channels,
    }))
}

// ---------------------------------------------------------------- writes (CONTRACT §7)

/// One person to upsert.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberInput {
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Stored as Iterable's `phoneNumber`.
    pub phone: Option<String>,
    /// More Iterable `dataFields`, merged into the profile.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, Value>>,
    /// Stored as the `tags` array field of the profile (Iterable has no tags of its own).
    pub tags: Option<Vec<String>>,
}

/// `POST …/subscribers`: one person, or many as `{"subscribers": [...]}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribersRequest {
    #[serde(flatten)]
    #[schema(inline)]
    pub one: SubscriberInput,
    /// Many people (sent with `users/bulkUpdate` in batches of ≤ 1,000 users and ≤ 4 MB).
    #[schema(value_type = Option<Vec<Object>>)]
    pub subscribers: Option<Vec<Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Upserted {
    pub platform: Platform,
    /// The email (or userId) Iterable keys the user by.
    pub id: Option<String>,
    pub status: &'static str,
}

/// One item of a bulk call that was not accepted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkFailure {
    pub index: usize,
    pub code: ErrorCode,
    pub error: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub accepted: usize,
    pub failed: Vec<BulkFailure>,
}

fn item_code(kind: connectors::ErrorKind) -> ErrorCode {
    connectors::ConnectorError::new(Platform::Iterable, kind, "").code()
}

/// Our subscriber as Iterable's user (`email`/`userId`, `dataFields`).
fn iterable_user(s: SubscriberInput, prefix: &str) -> Result<(Value, String), ApiError> {
    let email = s.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    let user_id = s
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(e) = email
        && !is_email(e)
    {
        return Err(ApiError::validation(
            format!("{prefix}email"),
            format!("'{e}' is not an email address."),
        ));
    }
    let id = email.or(user_id).ok_or_else(|| {
        ApiError::validation(
            format!("{prefix}email"),
            "Give the person's email (or userId, for a userId-based Iterable project).",
        )
    })?;
    let mut fields = s.attributes.unwrap_or_default();
    for (name, value) in [
        ("firstName", s.first_name),
        ("lastName", s.last_name),
        ("phoneNumber", s.phone),
    ] {
        if let Some(v) = value {
            fields.insert(name.to_owned(), Value::String(v));
        }
    }
    if let Some(tags) = s.tags {
        fields.insert("tags".to_owned(), json!(tags));
    }
    let mut user = serde_json::Map::new();
    if let Some(e) = email {
        user.insert("email".into(), json!(e));
    }
    if let Some(u) = user_id {
        user.insert("userId".into(), json!(u));
        if email.is_none() {
            // Create the user by userId when Iterable has none yet.
            user.insert("preferUserId".into(), json!(true));
        }
    }
    user.insert("dataFields".into(), Value::Object(fields));
    Ok((Value::Object(user), id.to_owned()))
}

/// Upserts one person (`users/update`) or many (`users/bulkUpdate`, with per-item failures).
#[utoipa::path(post, path = "/api/integrations/{publisherId}/iterable/subscribers", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = SubscribersRequest,
    responses(
        (status = 200, description = "one person: `Upserted`; many: `BulkResult`", body = Envelope<Upserted>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn upsert_subscribers(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<SubscribersRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let publisher = scope.publisher()?;
    match body.subscribers {
        None => {
            let (user, id) = iterable_user(body.one, "")?;
            let creds = credentials(&state, publisher).await?;
            state.connectors.iterable.upsert_user(&creds, &user).await?;
            Ok(Envelope::ok(Upserted {
                platform: Platform::Iterable,
                id: Some(id),
                status: "upserted",
            })
            .into_response())
        }
        Some(items) => {
            bulk(
                "subscribers",
                items,
                credentials(&state, publisher),
                |s: SubscriberInput, prefix| iterable_user(s, prefix).map(|(u, _)| u),
                async |creds, users| {
                    state
                        .connectors
                        .iterable
                        .bulk_upsert_users(creds, &users)
                        .await
                },
            )
            .await
        }
    }
}

/// One event to track.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Map<String, Value>>,
    /// RFC 3339; defaults to now.
    pub timestamp: Option<String>,
}

/// `POST …/events`: one event, or many as `{"events": [...]}` (`events/trackBulk`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsRequest {
    #[serde(flatten)]
    #[schema(inline)]
    pub one: EventInput,
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<Vec<Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub platform: Platform,
    pub status: &'static str,
    /// The event id we gave Iterable (retries of the same event update it, never duplicate it).
    pub id: String,
}

/// Our event as Iterable's `events/track` body, with a fresh id so retries are safe.
fn iterable_event(e: EventInput, prefix: &str) -> Result<(Value, String), ApiError> {
    let name = e
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::validation(format!("{prefix}name"), "Give the event's name."))?;
    let email = e.email.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let user_id = e
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if email.is_none() && user_id.is_none() {
        return Err(ApiError::validation(
            format!("{prefix}email"),
            "Give the email (or userId) of the person the event is about.",
        ));
    }
    if let Some(v) = email
        && !is_email(v)
    {
        return Err(ApiError::validation(
            format!("{prefix}email"),
            format!("'{v}' is not an email address."),
        ));
    }
    let created = match e.timestamp.as_deref() {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| {
                ApiError::validation(
                    format!("{prefix}timestamp"),
                    format!("timestamp must be RFC 3339 (2024-05-01T12:00:00Z), not '{t}'."),
                )
            })?
            .with_timezone(&chrono::Utc),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut ev = serde_json::Map::new();
    ev.insert("id".into(), json!(id));
    ev.insert("eventName".into(), json!(name));
    if let Some(v) = email {
        ev.insert("email".into(), json!(v));
    }
    if let Some(v) = user_id {
        ev.insert("userId".into(), json!(v));
    }
    ev.insert("createdAt".into(), json!(created.timestamp()));
    ev.insert(
        "dataFields".into(),
        Value::Object(e.data.unwrap_or_default()),
    );
    Ok((Value::Object(ev), id))
}

/// Tracks one event (`events/track`) or many (`events/trackBulk`, with per-item failures).
#[utoipa::path(post, path = "/api/integrations/{publisherId}/iterable/events", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = EventsRequest,
    responses(
        (status = 200, description = "one event: `Accepted`; many: `BulkResult`", body = Envelope<Accepted>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn track_events(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<EventsRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let publisher = scope.publisher()?;
    match body.events {
        None => {
            let (event, id) = iterable_event(body.one, "")?;
            let creds = credentials(&state, publisher).await?;
            state
                .connectors
                .iterable
                .track_event(&creds, &event)
                .await?;
            Ok(Envelope::ok(Accepted {
                platform: Platform::Iterable,
                status: "accepted",
                id,
            })
            .into_response())
        }
        Some(items) => {
            bulk(
                "events",
                items,
                credentials(&state, publisher),
                |e: EventInput, prefix| iterable_event(e, prefix).map(|(ev, _)| ev),
                async |creds, events| state.connectors.iterable.track_events(creds, &events).await,
            )
            .await
        }
    }
}

/// The many-items half of subscribers and events: parses each item (errors name
/// `{field}[i].…`), sends the valid ones in one go, and maps the platform's per-item failures
/// back to the caller's positions.
async fn bulk<I: serde::de::DeserializeOwned, T>(
    field: &str,
    items: Vec<Value>,
    creds: impl Future<Output = ApiResult<Credentials>>,
    convert: impl Fn(I, &str) -> ApiResult<T>,
    send: impl AsyncFnOnce(
        &Credentials,
        Vec<T>,
    ) -> Result<connectors::iterable::BulkOutcome, connectors::ConnectorError>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    if items.is_empty() {
        return Err(ApiError::validation(
            field.to_owned(),
            format!("{field} is empty: give at least one item."),
        ));
    }
    let mut failed = Vec::new();
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let prefix = format!("{field}[{index}].");
        let parsed = serde_json::from_value::<I>(item)
            .map_err(|e| ApiError::validation(prefix.clone(), format!("{e}.")))
            .and_then(|i| convert(i, &prefix));
        match parsed {
            Ok(t) => {
                valid.push(t);
                positions.push(index);
            }
            Err(e) => failed.push(BulkFailure {
                index,
                code: e.code,
                error: e.message.to_string(),
            }),
        }
    }
    // The integration must exist even when every item was refused.
    let creds = creds.await?;
    let outcome = if valid.is_empty() {
        connectors::iterable::BulkOutcome::default()
    } else {
        send(&creds, valid).await?
    };
    failed.extend(outcome.failed.into_iter().map(|f| BulkFailure {
        index: positions.get(f.index).copied().unwrap_or(f.index),
        code: item_code(f.kind),
        error: f.reason,
    }));
    failed.sort_by_key(|f| f.index);
    Ok(Envelope::ok(BulkResult {
        accepted: outcome.accepted,
        failed,
    })
    .into_response())
}

/// The channel of a message.
#[derive(Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageChannel {
    Email,
    Sms,
    Push,
    InApp,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// Iterable sends to users, not numbers: the phone is taken from the user's profile.
    pub phone: Option<String>,
}

/// `POST …/messages`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageRequest {
    pub channel: MessageChannel,
    /// The id of a running triggered Iterable campaign of that channel (required by Iterable).
    #[schema(value_type = Option<String>)]
    pub campaign_id: Option<Value>,
    pub to: Recipient,
    /// Iterable `dataFields` for the template.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Map<String, Value>>,
    /// RFC 3339; Iterable schedules up to 365 days ahead.
    pub send_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub platform: Platform,
    pub channel: MessageChannel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub status: &'static str,
}

/// Sends one message through a triggered campaign (`/api/{email,sms,push,inApp}/target`).
///
/// The campaign's template decides the content and, for email, the sender; Iterable's target
/// API takes no sender fields, so the integration's `fromEmail`/`replyTo` are not sent.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/iterable/messages", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = MessageRequest,
    responses(
        (status = 200, body = Envelope<Queued>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<MessageRequest>,
) -> ApiResult<Envelope<Queued>> {
    use connectors::iterable::Medium;
    let publisher = scope.publisher()?;
    let campaign_id = match &body.campaign_id {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::validation(
            "campaignId",
            "Iterable sends one message through a triggered campaign: give campaignId, the numeric id of a running triggered campaign of this channel.",
        )
    })?;
    let mut target = serde_json::Map::new();
    target.insert("campaignId".into(), json!(campaign_id));
    let email = body
        .to
        .email
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let user_id = body
        .to
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (email, user_id) {
        (Some(e), _) if !is_email(e) => {
            return Err(ApiError::validation(
                "to.email",
                format!("'{e}' is not an email address."),
            ));
        }
        (Some(e), _) => {
            target.insert("recipientEmail".into(), json!(e));
        }
        (None, Some(u)) => {
            target.insert("recipientUserId".into(), json!(u));
        }
        (None, None) => {
            return Err(ApiError::validation(
                "to.email",
                "Iterable sends to a user: give to.email (or to.userId); a phone number alone is not enough.",
            ));
        }
    }
    if let Some(data) = body.data {
        target.insert("dataFields".into(), Value::Object(data));
    }
    if let Some(at) = body.send_at.as_deref() {
        let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| {
            ApiError::validation(
                "sendAt",
                format!("sendAt must be RFC 3339 (2024-05-01T12:00:00Z), not '{at}'."),
            )
        })?;
        target.insert(
            "sendAt".into(),
            json!(
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            ),
        );
    }
    let medium = match body.channel {
        MessageChannel::Email => Medium::Email,
        MessageChannel::Sms => Medium::Sms,
        MessageChannel::Push => Medium::Push,
        MessageChannel::InApp => Medium::InApp,
    };
    let creds = credentials(&state, publisher).await?;
    let message_id = state
        .connectors
        .iterable
        .send_target(&creds, medium, &Value::Object(target))
        .await?;
    Ok(Envelope::ok(Queued {
        platform: Platform::Iterable,
        channel: body.channel,
        message_id,
        status: "queued",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "news+x@mail.example.com", "ü@bücher.de"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a b@c.co", "a@.co", "a@b.co.", "a@b..co", "a@b@c.co",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
