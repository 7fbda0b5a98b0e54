//! Keap endpoints (CONTRACT §4 and §7): test-connection, connect, and Keap's own reads and
//! CRM writes. Registered under the `authorize` middleware with every other `/api/` route.
//! Subscribers and messages run through the generic routes (`http/routes/operations.rs`) and
//! the session (`platforms/keap/writes.rs`).

pub mod crm;
pub mod oauth;

use axum::extract::State;
use connectors::keap::{KeapCredential, KeapError, TokenSet};
use domain::{Platform, Region, shapes::Integration};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        checks,
        error::{ApiError, ApiResult},
        extract::{ApiJson, Scope},
        openapi::{Envelope, ErrorBody},
    },
    integrations::{self, NewConnection},
    platforms::keap::tokens,
    state::AppState,
};

/// Keap's routes, with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_connection))
        .routes(routes!(connect))
        .routes(routes!(oauth::authorize_url))
        .merge(crm::routes())
}

/// Keap's public routes (outside `/api/`): the OAuth callback.
pub fn public_routes() -> OpenApiRouter<AppState> {
    // The callback answers HTML pages: the dashboard's headers (CSP, no framing, nosniff,
    // same-origin referrers, no caching).
    OpenApiRouter::new()
        .routes(routes!(oauth::callback))
        .route_layer(axum::middleware::from_fn(
            crate::dashboard::security_headers,
        ))
}

/// A Keap id given as a string or a number.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub enum KeapId {
    Text(String),
    Number(u64),
}

impl KeapId {
    fn as_string(&self) -> String {
        match self {
            KeapId::Text(s) => s.trim().to_owned(),
            KeapId::Number(n) => n.to_string(),
        }
    }
}

/// `POST /api/integrations/keap/test-connection`: an OAuth access token, or a PAT/SAK.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = KeapTestConnectionBody)]
pub struct TestConnectionBody {
    /// An OAuth 2.0 access token (sent as `Authorization: Bearer`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub access_token: Option<SecretString>,
    /// A Personal Access Token or Service Account Key (sent as `X-Keap-API-Key`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<SecretString>,
}

/// What a successful test reports.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = KeapTestConnectionResult)]
pub struct TestConnectionResult {
    pub platform: Platform,
    pub ok: bool,
    /// Keap has no regions: always `null`.
    pub region: Option<Region>,
    /// What Keap told us: `tenantId` (the app host), `userId`, `email`, `name`, `isAdmin`,
    /// `authType` (`oauth` or `apiKey`).
    #[schema(value_type = Object)]
    pub account: Value,
    pub latency_ms: u64,
}

fn nonempty(field: &str, value: Option<SecretString>) -> ApiResult<Option<SecretString>> {
    use secrecy::ExposeSecret as _;
    match value.as_ref().map(|v| v.expose_secret()) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => {
            Err(ApiError::validation(field, format!("`{field}` is empty.")))
        }
        Some(v) => checks::credential(field, v).map(Some),
    }
}

/// One credential from `accessToken` or `apiKey` (exactly one of them).
fn one_credential(
    access_token: Option<SecretString>,
    api_key: Option<SecretString>,
    client_id: Option<&str>,
) -> ApiResult<KeapCredential> {
    let hint_key = |t: &str| t.starts_with("KeapAK-");
    match (access_token, api_key) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "apiKey",
            "Send either `accessToken` (OAuth) or `apiKey` (a Personal Access Token or Service Account Key), not both.",
        )),
        (None, None) => Err(ApiError::validation(
            "accessToken",
            "Send `accessToken` (an OAuth access token) or `apiKey` (a Keap Personal Access Token or Service Account Key).",
        )),
        (Some(t), None) => {
            if hint_key(secrecy::ExposeSecret::expose_secret(&t).trim()) {
                return Err(ApiError::validation(
                    "accessToken",
                    "This looks like a Keap Personal Access Token or Service Account Key (`KeapAK-…`): send it as `apiKey`, not `accessToken`.",
                ));
            }
            let t = nonempty("accessToken", Some(t))?.unwrap_or_else(|| SecretString::from(""));
            Ok(KeapCredential::oauth(t, client_id))
        }
        (None, Some(k)) => {
            let k = nonempty("apiKey", Some(k))?.unwrap_or_else(|| SecretString::from(""));
            Ok(KeapCredential::api_key(k))
        }
    }
}

/// Tests Keap credentials: an OAuth access token or a Personal Access Token / Service Account
/// Key. Calls Keap's userinfo and reports the user and the tenant (the app host).
#[utoipa::path(post, path = "/api/integrations/keap/test-connection", tag = "keap", operation_id = "keap_test_connection",
    security(("bearer" = [])),
    request_body(content = TestConnectionBody, example = json!({"apiKey": "KeapAK-sandbox-service-account-key-0001"})),
    responses(
        (status = 200, body = Envelope<TestConnectionResult>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS: Keap rejected the token or key", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn test_connection(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TestConnectionBody>,
) -> ApiResult<Envelope<TestConnectionResult>> {
    let cred = one_credential(body.access_token, body.api_key, None)?;
    let info = state
        .connectors
        .keap
        .test_connection(&cred)
        .await
        .map_err(connectors::ConnectorError::from)?;
    Ok(Envelope::ok(TestConnectionResult {
        platform: Platform::Keap,
        ok: true,
        region: None,
        account: info.account,
        latency_ms: info.latency.as_millis() as u64,
    }))
}

/// `config` of a Keap connect.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeapConfigBody {
    /// The lead source new subscribers get (checked to exist).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub lead_source_id: Option<KeapId>,
    /// Campaigns to work with (each checked to exist).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub campaign_ids: Vec<KeapId>,
}

/// `POST /api/integrations/keap/connect`: OAuth (client credentials and a token pair) or a
/// PAT/SAK in `apiKey`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = KeapConnectBody)]
pub struct ConnectBody {
    /// Required with the admin token; a publisher key may leave it out and acts for its own
    /// publisher. Checked by the `authorize` gate; the handler reads the scope, never this.
    #[serde(default)]
    #[allow(dead_code)]
    pub publisher_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<SecretString>,
    /// Seconds the access token stays valid (Keap's `expires_in`; 86,400 when absent).
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// A Personal Access Token or Service Account Key, instead of the OAuth fields.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub config: Option<KeapConfigBody>,
}

/// Connects Keap: tests the credentials against Keap first (nothing is stored when they fail),
/// checks `config.leadSourceId` and `config.campaignIds` exist, then stores the client secret and
/// tokens sealed in the vault. Connecting again replaces credentials and config (`replaced`).
#[utoipa::path(post, path = "/api/integrations/keap/connect", tag = "keap", operation_id = "keap_connect",
    security(("bearer" = [])),
    request_body(content = ConnectBody, example = json!({"publisherId": "acme", "apiKey": "KeapAK-sandbox-service-account-key-0001"})),
    responses(
        (status = 200, body = Envelope<Integration>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn connect(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<ConnectBody>,
) -> ApiResult<Envelope<Integration>> {
    let publisher = scope.publisher()?.clone();
    let mut secrets: Vec<(&'static str, SecretString)> = Vec::new();
    let cred = if body.api_key.is_some() {
        for (field, present) in [
            ("accessToken", body.access_token.is_some()),
            ("refreshToken", body.refresh_token.is_some()),
        ] {
            if present {
                return Err(ApiError::validation(
                    field,
                    format!(
                        "Send either `apiKey` (a Personal Access Token or Service Account Key) or the OAuth fields, not `{field}` with it."
                    ),
                ));
            }
        }
        let cred = one_credential(None, body.api_key.clone(), None)?;
        if let Some(key) = nonempty("apiKey", body.api_key)? {
            secrets.push((tokens::API_KEY, key));
        }
        cred
    } else {
        let client_id = nonempty("clientId", body.client_id.map(SecretString::from))?.ok_or_else(|| {
            ApiError::validation("clientId", "`clientId` is required: your Keap app's client id (Keap developer portal › My Apps). Or connect with `apiKey` (a PAT/SAK) instead.")
        })?;
        let client_secret = nonempty("clientSecret", body.client_secret)?.ok_or_else(|| {
            ApiError::validation(
                "clientSecret",
                "`clientSecret` is required: your Keap app's client secret, needed to refresh tokens.",
            )
        })?;
        let refresh_token = nonempty("refreshToken", body.refresh_token)?.ok_or_else(|| {
            ApiError::validation(
                "refreshToken",
                "`refreshToken` is required with OAuth: Keap's access tokens last 24 hours.",
            )
        })?;
        if body.access_token.is_none() {
            return Err(ApiError::validation(
                "accessToken",
                "`accessToken` is required: the access token of the OAuth grant (or connect with `apiKey`).",
            ));
        }
        if let Some(e) = body.expires_in
            && e <= 0
        {
            return Err(ApiError::validation(
                "expiresIn",
                "`expiresIn` must be a positive number of seconds (Keap's `expires_in`).",
            ));
        }
        use secrecy::ExposeSecret as _;
        let cred = one_credential(
            body.access_token.clone(),
            None,
            Some(client_id.expose_secret()),
        )?;
        let pair = TokenSet {
            access_token: nonempty("accessToken", body.access_token)?
                .unwrap_or_else(|| SecretString::from("")),
            refresh_token,
            expires_at: connectors::keap::expires_at(body.expires_in),
            tenant: None,
        };
        secrets.push((tokens::CLIENT_ID, client_id));
        secrets.push((tokens::CLIENT_SECRET, client_secret));
        secrets.push((tokens::ACCESS_TOKEN, pair.access_token));
        secrets.push((tokens::REFRESH_TOKEN, pair.refresh_token));
        secrets.push((
            tokens::EXPIRES_AT,
            SecretString::from(
                pair.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        ));
        cred
    };

    let keap = &state.connectors.keap;
    let err = |e: KeapError| ApiError::from(connectors::ConnectorError::from(e));
    let info = keap.test_connection(&cred).await.map_err(err)?;
    let config = body.config.unwrap_or_default();
    let lead_source_id = config.lead_source_id.as_ref().map(KeapId::as_string);
    if let Some(id) = &lead_source_id
        && !keap.lead_source_exists(&cred, id).await.map_err(err)?
    {
        return Err(ApiError::validation(
            "config.leadSourceId",
            format!(
                "Keap has no lead source {id}: pick one from Keap's Settings › Lead Sources (or leave leadSourceId out)."
            ),
        ));
    }
    let mut campaign_ids = Vec::with_capacity(config.campaign_ids.len());
    for (i, id) in config.campaign_ids.iter().enumerate() {
        let id = id.as_string();
        if !keap.campaign_exists(&cred, &id).await.map_err(err)? {
            return Err(ApiError::validation(
                format!("config.campaignIds[{i}]"),
                format!("Keap has no campaign {id} in this account."),
            ));
        }
        campaign_ids.push(id);
    }
    let auth_type = info.account.get("authType").cloned().unwrap_or(Value::Null);
    let tenant = info.account.get("tenantId").cloned().unwrap_or(Value::Null);
    let previous_hooks = state
        .store
        .get_integration(&publisher, Platform::Keap)
        .await?
        .map(|r| crate::platforms::keap::webhooks::hook_keys(&r.config))
        .unwrap_or_default();
    let hooks_publisher = publisher.clone();
    let integration = integrations::connect(
        &state,
        NewConnection {
            publisher,
            platform: Platform::Keap,
            region: None,
            config: json!({
                "leadSourceId": lead_source_id,
                "campaignIds": campaign_ids,
                "tenantId": tenant,
                "authType": auth_type,
            }),
            secrets,
        },
    )
    .await?;
    // REST hooks at the webhook URL; failures are recorded in config.hooks, never fatal.
    crate::platforms::keap::webhooks::register(
        &state,
        &hooks_publisher,
        &previous_hooks,
        Some(cred),
    )
    .await;
    let integration = match state
        .store
        .get_integration(&hooks_publisher, Platform::Keap)
        .await?
    {
        Some(record) => Integration {
            replaced: integration.replaced,
            ..integrations::render(&state, &record).await?
        },
        None => integration,
    };
    crate::consent::audit::note(
        &state,
        scope.publisher()?,
        &crate::consent::principal_name(&scope.principal),
        "integration.connected",
        serde_json::json!({"platform": Platform::Keap}),
    )
    .await;
    Ok(Envelope::ok(integration))
}
