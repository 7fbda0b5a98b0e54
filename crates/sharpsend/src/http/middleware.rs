//! Cross-cutting request handling: observation (span, log line, metrics), the body limit,
//! authorisation and tenancy, panics, and unknown routes.

use std::{any::Any, time::Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, RawPathParams, Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use domain::{ErrorCode, Platform, PublisherId};
use tracing::{Instrument, field::Empty};

use super::{
    error::{ApiError, LoggedError},
    extract::{BODY_LIMIT, Scope, too_large},
    metrics::{RequestLabels, RouteLabels},
};
use crate::{auth::AuthError, state::AppState};

/// The header carrying the request id (set by `SetRequestIdLayer` when the client sent none).
pub const REQUEST_ID: &str = "x-request-id";

/// One span per request (with the request id; publisher and platform are recorded once known),
/// one log line per response, request metrics, and the cause of any error response.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        publisher = Empty,
        platform = Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();

    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.to_string(),
            route,
        })
        .observe(elapsed.as_secs_f64());

    let _guard = span.enter();
    let ms = elapsed.as_secs_f64() * 1000.0;
    match response.extensions().get::<LoggedError>() {
        Some(err) if status.is_server_error() => tracing::error!(
            status = status.as_u16(),
            code = %err.code,
            cause = err.cause.as_deref().unwrap_or(""),
            latency_ms = ms,
            "request failed"
        ),
        Some(err) => {
            tracing::info!(status = status.as_u16(), code = %err.code, message = %err.message, latency_ms = ms, "request rejected")
        }
        None => tracing::info!(
            status = status.as_u16(),
            latency_ms = ms,
            "request answered"
        ),
    }
    drop(_guard);
    response
}

/// Refuses a declared body over 1 MiB before anything reads it (bodies without a length are cut
/// at 1 MiB by `DefaultBodyLimit` and the extractors).
pub async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return too_large().into_response();
    }
    next.run(req).await
}

fn bearer(req: &Request) -> Result<&str, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "Missing Authorization header: send `Authorization: Bearer <token>`.",
        )
    })?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Malformed Authorization header."))?;
    let (scheme, token) = text.split_once(' ').ok_or_else(|| {
        ApiError::unauthorized("Malformed Authorization header: expected `Bearer <token>`.")
    })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "Malformed Authorization header: expected `Bearer <token>`.",
        ));
    }
    Ok(token)
}

fn parse_publisher(value: &str) -> Result<PublisherId, ApiError> {
    PublisherId::parse(value).map_err(|e| ApiError::validation("publisherId", format!("{e}.")))
}

fn denied(publisher: &PublisherId) -> ApiError {
    ApiError::forbidden(format!(
        "This API key may not act for publisher '{publisher}': a publisher key acts for its own publisher only."
    ))
}

/// Authentication, path validation and tenancy for every `/api/` route, in this order:
/// 401 (no or bad token) → 400 (malformed publisherId or platform) → 403 (another publisher's
/// data, in the path or in the body's `publisherId`; admin routes for non-admins).
pub async fn authorize(
    State(state): State<AppState>,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(&req)?;
    let principal = match state.auth.authenticate(token).await {
        Ok(p) => p,
        Err(AuthError::Unknown) => return Err(ApiError::unauthorized("Unknown bearer token.")),
        Err(AuthError::Revoked) => return Err(ApiError::unauthorized("This API key was revoked.")),
        Err(AuthError::Store(e)) => return Err(e.into()),
    };

    let mut publisher = None;
    let mut platform = None;
    for (name, value) in &params {
        match name {
            "publisherId" => publisher = Some(parse_publisher(value)?),
            "platform" => {
                platform = Some(Platform::parse(value).ok_or_else(|| {
                    ApiError::validation(
                        "platform",
                        format!("Unknown platform '{value}': use iterable, customerio or keap."),
                    )
                })?)
            }
            _ => {}
        }
    }
    // Routes whose path names the platform statically (`/api/integrations/keap/…`).
    if platform.is_none() {
        let path = req.uri().path();
        platform = Platform::ALL
            .into_iter()
            .find(|p| path.starts_with(&format!("/api/integrations/{}/", p.as_str())));
    }

    if req.uri().path().starts_with("/api/admin/") && !principal.is_admin() {
        return Err(ApiError::forbidden(
            "Only the admin token may use /api/admin routes.",
        ));
    }
    if let Some(p) = &publisher
        && !principal.may_act_for(p)
    {
        return Err(denied(p));
    }

    // The body may name a publisher too (connect calls): check it here, once, for every route.
    let (parts, body) = req.into_parts();
    let carries_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let body = if carries_json && !matches!(parts.method, Method::GET | Method::HEAD) {
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|_| too_large())?;
        if let Ok(serde_json::Value::Object(obj)) =
            serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(serde_json::Value::String(named)) = obj.get("publisherId")
        {
            let named = parse_publisher(named)?;
            if !principal.may_act_for(&named) {
                return Err(denied(&named));
            }
            if publisher.as_ref().is_some_and(|p| *p != named) {
                return Err(ApiError::validation(
                    "publisherId",
                    "The body's publisherId differs from the one in the path.",
                ));
            }
            publisher.get_or_insert(named);
        }
        Body::from(bytes)
    } else {
        body
    };

    let span = tracing::Span::current();
    if let Some(p) = &publisher {
        span.record("publisher", p.as_str());
    }
    if let Some(p) = platform {
        span.record("platform", p.as_str());
    }
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(Scope {
        principal,
        publisher,
        platform,
    });
    Ok(next.run(req).await)
}

/// A panic in a handler becomes `INTERNAL_ERROR` (CatchPanicLayer), not a dropped connection.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

/// Any path we do not serve.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "No route {} {}; see /api/openapi.json for the routes.",
            req.method(),
            req.uri().path()
        ),
    )
}

/// Puts axum's own 405 (which carries the `Allow` header) into the envelope.
pub async fn envelope_405(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.extensions().get::<LoggedError>().is_some()
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let allowed = allow
        .as_ref()
        .and_then(|a| a.to_str().ok())
        .map(|a| format!(" It takes: {a}."))
        .unwrap_or_default();
    let mut err = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {path}.{allowed}"),
    );
    err.allow = allow;
    err.into_response()
}
