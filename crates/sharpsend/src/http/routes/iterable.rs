//! Iterable endpoints (CONTRACT §4 and §7): test-connection, connect, and Iterable's own reads.
//! The common writes (subscribers, events, messages) are the generic routes of
//! `routes::operations`, served by `platforms::iterable::IterableSession`. Registered under the
//! `authorize` middleware with every other `/api/` route.

use axum::extract::State;
use connectors::iterable::{Account, Channel, Credentials};
use domain::{Platform, Region, shapes::Integration};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        checks,
        error::{ApiError, ApiResult},
        extract::{ApiJson, Scope},
        openapi::{Envelope, ErrorBody},
    },
    integrations::{self, NewConnection},
    platforms::iterable::{IterableSession, is_email},
    state::AppState,
};

/// Iterable's routes, with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_connection))
        .routes(routes!(connect))
        .routes(routes!(list_channels))
}

/// `POST /api/integrations/iterable/test-connection`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = IterableTestConnectionRequest)]
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
#[schema(as = IterableTestConnectionResult)]
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
    /// The message event types the `events` sync exports (each export costs one of the key's 4
    /// a minute); absent or empty: all of them (`emailSend`, `emailOpen`, … `inAppOpen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_event_types: Option<Vec<String>>,
    /// The channel ids a propagated opt-out unsubscribes readers from (consent ledger); absent
    /// or empty: every Marketing + Email channel of the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_channel_ids: Option<Vec<u64>>,
}

/// Most ids `config.consentChannelIds` takes (a project has a handful of channels).
const MAX_CONSENT_CHANNELS: usize = 50;

/// `config.consentChannelIds`: positive channel ids, each once.
fn consent_channels(ids: Option<Vec<u64>>) -> Result<Option<Vec<u64>>, ApiError> {
    let Some(ids) = ids.filter(|i| !i.is_empty()) else {
        return Ok(None);
    };
    if ids.len() > MAX_CONSENT_CHANNELS || ids.contains(&0) {
        return Err(ApiError::validation(
            "config.consentChannelIds",
            format!(
                "Give at most {MAX_CONSENT_CHANNELS} Iterable channel ids (positive integers, from GET …/iterable/channels)."
            ),
        ));
    }
    let mut seen = Vec::new();
    for id in ids {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    Ok(Some(seen))
}

/// `config.syncEventTypes`: each one of Iterable's message event types, once.
fn event_types(types: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(types) = types.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut seen = Vec::new();
    for t in types {
        if !connectors::iterable::EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::validation(
                "config.syncEventTypes",
                format!(
                    "'{t}' is not an Iterable message event type; use any of {}.",
                    connectors::iterable::EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    Ok(Some(seen))
}

/// `POST /api/integrations/iterable/connect`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = IterableConnectRequest)]
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub channels: Vec<Channel>,
    pub total: usize,
}

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

/// Tests an Iterable API key with one cheap call (`GET /api/channels`) without storing it.
///
/// A key refused in the region asked but valid in the other one, a JWT-enabled or client-side
/// key, and a truncated key are each named in the error.
#[utoipa::path(post, path = "/api/integrations/iterable/test-connection", tag = "iterable", operation_id = "iterable_test_connection",
    security(("bearer" = [])),
    request_body(content = TestConnectionRequest, example = json!({"apiKey": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "region": "us"})),
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
#[utoipa::path(post, path = "/api/integrations/iterable/connect", tag = "iterable", operation_id = "iterable_connect",
    security(("bearer" = [])),
    request_body(content = ConnectRequest, example = json!({"publisherId": "acme", "apiKey": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "region": "us"})),
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
        sync_event_types: event_types(config.sync_event_types)?,
        consent_channel_ids: consent_channels(config.consent_channel_ids)?,
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
                .remove(crate::platforms::iterable::webhooks::SECRET_FIELD)
        }
        _ => None,
    };
    let (webhook_secret, reveal) = match kept {
        Some(s) => (s, false),
        None => (crate::platforms::iterable::webhooks::new_secret(), true),
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
                (
                    crate::platforms::iterable::webhooks::SECRET_FIELD,
                    webhook_secret,
                ),
            ],
        },
    )
    .await?;
    integration.webhook_secret = shown;
    crate::sandbox::on_connect(&state, scope.publisher()?, &integration).await;
    tracing::info!(
        replaced = integration.replaced.unwrap_or(false),
        "Iterable connected"
    );
    crate::consent::audit::note(
        &state,
        scope.publisher()?,
        &crate::consent::principal_name(&scope.principal),
        "integration.connected",
        serde_json::json!({"platform": Platform::Iterable}),
    )
    .await;
    Ok(Envelope::ok(integration))
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
    let creds = crate::platforms::open_own::<IterableSession>(&state, scope.publisher()?)
        .await?
        .creds;
    let channels = state.connectors.iterable.list_channels(&creds).await?;
    Ok(Envelope::ok(ChannelList {
        total: channels.len(),
        channels,
    }))
}
