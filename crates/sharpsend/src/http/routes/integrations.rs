//! General integration endpoints: list a publisher's integrations, disconnect one.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use domain::{ErrorCode, Platform, shapes::Integration};
use serde::Serialize;

use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::Scope,
        openapi::{Envelope, ErrorBody},
    },
    integrations,
    state::AppState,
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<Integration>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Disconnected {
    pub platform: Platform,
    pub disconnected: bool,
}

/// A publisher's integrations (an empty list when none).
#[utoipa::path(get, path = "/api/integrations/{publisherId}", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path, description = "1–64 of A-Z a-z 0-9 _ -, not a reserved word")),
    responses(
        (status = 200, body = Envelope<IntegrationList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_integrations(State(state): State<AppState>, scope: Scope) -> ApiResult<Response> {
    let publisher = scope.publisher()?;
    // The hottest read: served from the read cache until anything it depends on changes.
    if let Some(body) = state.cache.integration_list(publisher.as_str()) {
        return Ok(json_bytes(body));
    }
    let epoch = state.cache.epoch();
    let records = state.store.list_integrations(publisher).await?;
    let mut out = Vec::with_capacity(records.len());
    for record in &records {
        out.push(integrations::render(&state, record).await?);
    }
    let body = Bytes::from(
        serde_json::to_vec(&Envelope::ok(IntegrationList { integrations: out }))
            .map_err(ApiError::internal)?,
    );
    state
        .cache
        .put_integration_list(publisher.as_str(), epoch, body.clone());
    Ok(json_bytes(body))
}

fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Disconnects a platform: removes its credentials and synced data.
#[utoipa::path(delete, path = "/api/integrations/{publisherId}/{platform}", tag = "integrations",
    security(("bearer" = [])),
    params(
        ("publisherId" = String, Path),
        ("platform" = Platform, Path)),
    responses(
        (status = 200, body = Envelope<Disconnected>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody)))]
pub async fn disconnect(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<Disconnected>> {
    let publisher = scope.publisher()?;
    let platform = scope.platform()?;
    // Unregister what we registered on the platform (Keap REST hooks), best effort.
    if let Some(record) = state.store.get_integration(publisher, platform).await? {
        crate::platforms::driver(platform)
            .disconnecting(&state, &record)
            .await;
    }
    match state.store.delete_integration(publisher, platform).await? {
        Some(_) => {
            crate::consent::audit::note(
                &state,
                publisher,
                &crate::consent::principal_name(&scope.principal),
                "integration.disconnected",
                serde_json::json!({"platform": platform}),
            )
            .await;
            Ok(Envelope::ok(Disconnected {
                platform,
                disconnected: true,
            }))
        }
        None => Err(ApiError::new(
            ErrorCode::IntegrationNotFound,
            format!(
                "Publisher '{publisher}' has no {} integration.",
                platform.display_name()
            ),
        )),
    }
}
