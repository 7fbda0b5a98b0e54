//! Liveness, readiness and metrics.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    http::{
        error::{ApiError, ApiResult},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Envelope<Health>)))]
pub async fn healthz() -> Envelope<Health> {
    Envelope::ok(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Envelope<Ready>), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Envelope<Ready>> {
    state.store.ping().await.map_err(|e| {
        let mut err = ApiError::new(
            domain::ErrorCode::ServiceUnavailable,
            "The database is not answering.",
        );
        err.cause = Some(e.to_string());
        err
    })?;
    Ok(Envelope::ok(Ready {
        status: "ready",
        database: state.store.backend(),
    }))
}

/// Prometheus metrics (text exposition format). With `SHARPSEND_METRICS_LISTEN` set they are
/// served on that address only, and this route answers 404.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String),
        (status = 404, description = "NOT_FOUND: metrics are served on SHARPSEND_METRICS_LISTEN", body = ErrorBody)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if state.config.metrics_listen.is_some() {
        return ApiError::new(
            domain::ErrorCode::NotFound,
            "No route GET /metrics; see /api/openapi.json for the routes.",
        )
        .into_response();
    }
    render_metrics(State(state)).await
}

/// The metrics themselves (the public route, or the `SHARPSEND_METRICS_LISTEN` listener).
pub async fn render_metrics(State(state): State<AppState>) -> Response {
    state.metrics.observe_limits(&state.connectors);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    security(("bearer" = [])),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(crate::http::openapi::document_value(&crate::http::openapi(
        &state,
    )))
}
