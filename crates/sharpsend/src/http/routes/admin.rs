//! Operator routes: publisher API keys (admin token only; enforced by `authorize`).

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use store::ApiKeyRecord;

use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::Scope,
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

/// A newly created key: the only answer that ever shows `key`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    pub id: String,
    pub key: String,
    pub publisher_id: String,
    pub created_at: DateTime<Utc>,
}

/// A key as listed: no secret, a recognisable prefix.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: String,
    pub publisher_id: String,
    /// The first characters of the key (`ssk_AbCd`), to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRecord> for ApiKeyInfo {
    fn from(r: ApiKeyRecord) -> Self {
        Self {
            id: r.id,
            publisher_id: r.publisher_id,
            prefix: r.prefix,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyInfo>,
}

/// Creates a publisher API key. The key is shown in this answer only.
#[utoipa::path(post, path = "/api/admin/publishers/{publisherId}/api-keys", tag = "admin",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses(
        (status = 201, body = Envelope<CreatedApiKey>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<(StatusCode, Envelope<CreatedApiKey>)> {
    let publisher = scope.publisher()?;
    let (record, key) = state.auth.create_api_key(publisher).await?;
    tracing::info!(key_id = %record.id, "publisher API key created");
    crate::consent::audit::note(
        &state,
        publisher,
        &crate::consent::principal_name(&scope.principal),
        "api_key.created",
        serde_json::json!({"keyId": record.id, "prefix": record.prefix}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Envelope::ok(CreatedApiKey {
            id: record.id,
            key: key.expose_secret().to_owned(),
            publisher_id: record.publisher_id,
            created_at: record.created_at,
        }),
    ))
}

/// Lists a publisher's API keys, without secrets.
#[utoipa::path(get, path = "/api/admin/publishers/{publisherId}/api-keys", tag = "admin",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses((status = 200, body = Envelope<ApiKeyList>), (status = 403, body = ErrorBody)))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<ApiKeyList>> {
    let keys = state.store.list_api_keys(scope.publisher()?).await?;
    Ok(Envelope::ok(ApiKeyList {
        api_keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revokes a key at once.
#[utoipa::path(delete, path = "/api/admin/api-keys/{keyId}", tag = "admin",
    security(("bearer" = [])),
    params(("keyId" = String, Path)),
    responses(
        (status = 200, body = Envelope<ApiKeyInfo>),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    scope: Scope,
    Path(key_id): Path<String>,
) -> ApiResult<Envelope<ApiKeyInfo>> {
    let record = state
        .store
        .revoke_api_key(&key_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No API key with id '{key_id}'.")))?;
    tracing::info!(key_id = %record.id, "publisher API key revoked");
    if let Ok(publisher) = domain::PublisherId::parse(&record.publisher_id) {
        crate::consent::audit::note(
            &state,
            &publisher,
            &crate::consent::principal_name(&scope.principal),
            "api_key.revoked",
            serde_json::json!({"keyId": record.id}),
        )
        .await;
    }
    Ok(Envelope::ok(record.into()))
}
