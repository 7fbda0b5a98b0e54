//! Cross-cutting request handling: observation (span, log line, metrics), the body limit,
//! authorisation and tenancy, panics, and unknown routes.

use std::{any::Any, sync::Arc, time::Instant};

use axum::{
    RequestPartsExt as _,
    body::Body,
    extract::{MatchedPath, RawPathParams, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use domain::{ErrorCode, Platform, PublisherId};
use tracing::{Instrument, field::Empty};

use super::{
    error::{ApiError, LoggedError},
    extract::{BODY_LIMIT, JsonBody, Scope, is_json, not_json, too_large},
    json::parse_strict,
    metrics::{RequestLabels, RouteLabels},
};
use crate::{
    auth::{AuthError, Principal},
    state::AppState,
};

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

    // Every label from a fixed set: the method's, the route template (or "unmatched"), the status.
    let method_label = method_label(&method);
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method_label.to_owned(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method_label.to_owned(),
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

/// The method as a metric label: the standard ones by name, anything else `OTHER`, so a client
/// cannot add series by inventing methods.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Every `/api/` answer (errors, 404s and 405s included) is marked `Cache-Control: no-store`
/// (it may carry credentials or publisher data) and `X-Content-Type-Options: nosniff`.
pub async fn api_headers(req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let mut response = next.run(req).await;
    if is_api {
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    response
}

/// Bounds reading the body and answering one request (`SHARPSEND_REQUEST_TIMEOUT_SECONDS`): a
/// client that trickles its body, or a request that takes too long, gets `408 REQUEST_TIMEOUT`
/// and the connection is closed (the rest of its body is not waited for).
pub async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "The request was not received and answered within {} s; send the body without pauses.",
                    limit.as_secs()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
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

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
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

/// Who the request's bearer token belongs to; `UNAUTHORIZED` when nobody.
pub(super) async fn authenticate_bearer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    match state.auth.authenticate(bearer(headers)?).await {
        Ok(p) => Ok(p),
        Err(AuthError::Unknown) => Err(ApiError::unauthorized("Unknown bearer token.")),
        Err(AuthError::Revoked) => Err(ApiError::unauthorized("This API key was revoked.")),
        Err(AuthError::Store(e)) => Err(e.into()),
    }
}

fn parse_publisher(value: &str) -> Result<PublisherId, ApiError> {
    PublisherId::parse(value).map_err(|e| ApiError::validation("publisherId", format!("{e}.")))
}

fn denied(publisher: &PublisherId) -> ApiError {
    ApiError::forbidden(format!(
        "This API key may not act for publisher '{publisher}': a publisher key acts for its own publisher only."
    ))
}

/// Reads the whole body (at most [`BODY_LIMIT`]) and parses it once, strictly: `None` for an
/// empty (or whitespace-only) body, else the one [`JsonBody`] both the gate and the handler use.
async fn parse_body(headers: &HeaderMap, body: Body) -> Result<Option<JsonBody>, ApiError> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large()
        } else {
            ApiError::validation("body", "The request body could not be read to its end.")
                .with_cause(e)
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !is_json(&content_type) {
        return Err(not_json(&content_type));
    }
    Ok(Some(JsonBody(Arc::new(parse_strict(&bytes)?))))
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The tenancy gate of every `/api/` route, in this order:
///
/// 1. 401: no, malformed, unknown or revoked bearer token, and 429 over a rate limit (both in
///    `ratelimit::authenticate`, the layer in front, which passes the [`Principal`] on);
/// 2. 400: a path parameter that is not UTF-8, a malformed `publisherId` or unknown `platform`;
/// 3. 403: admin routes for non-admins, another publisher named in the path;
/// 4. the body, parsed **once** and strictly (`http::json`): 413 over 1 MiB, 400 when it is not
///    declared JSON or does not parse;
/// 5. the body's `publisherId`, when present: 400 unless a valid id, 403 for another publisher's,
///    400 when it differs from the path's.
///
/// The handler then gets the acting publisher only from the [`Scope`] and the body only as the
/// parsed [`JsonBody`]: the raw bytes are not passed on.
pub async fn authorize(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    // Authenticated (and rate-limited) by `ratelimit::authenticate`, the layer in front; a
    // router without that layer (tests mounting this gate alone) authenticates here.
    let principal = match parts.extensions.remove::<Principal>() {
        Some(p) => p,
        None => authenticate_bearer(&state, &parts.headers).await?,
    };

    let params = parts
        .extract::<RawPathParams>()
        .await
        .map_err(|e| ApiError::validation("path", format!("{}.", e.body_text())))?;
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
        let path = parts.uri.path();
        platform = Platform::ALL
            .into_iter()
            .find(|p| path.starts_with(&format!("/api/integrations/{}/", p.as_str())));
    }

    if parts.uri.path().starts_with("/api/admin/") && !principal.is_admin() {
        return Err(ApiError::forbidden(
            "Only the admin token may use /api/admin routes.",
        ));
    }
    if let Some(p) = &publisher
        && !principal.may_act_for(p)
    {
        return Err(denied(p));
    }

    let json = parse_body(&parts.headers, body).await?;
    if let Some(named) = json
        .as_ref()
        .and_then(|JsonBody(v)| v.as_object()?.get("publisherId"))
    {
        let named = match named {
            serde_json::Value::String(s) => parse_publisher(s)?,
            _ => {
                return Err(ApiError::validation(
                    "publisherId",
                    "publisherId must be a string.",
                ));
            }
        };
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
    // A publisher key acts for its own publisher where nothing names one (a connect body
    // without `publisherId`).
    if publisher.is_none()
        && let Principal::Publisher { publisher: own, .. } = &principal
    {
        publisher = Some(own.clone());
    }

    let span = tracing::Span::current();
    if let Some(p) = &publisher {
        span.record("publisher", p.as_str());
    }
    if let Some(p) = platform {
        span.record("platform", p.as_str());
    }
    parts.extensions.insert(Scope {
        principal,
        publisher,
        platform,
    });
    if let Some(json) = json {
        parts.extensions.insert(json);
    }
    Ok(next.run(Request::from_parts(parts, Body::empty())).await)
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
    not_found_of(req.method(), req.uri().path())
}

/// The methods the OpenAPI document lists for each path template, as an `Allow` value.
pub type DocumentedMethods = Arc<std::collections::BTreeMap<String, HeaderValue>>;

/// Reads [`DocumentedMethods`] off the document the router was built with.
pub fn documented_methods(doc: &utoipa::openapi::OpenApi) -> DocumentedMethods {
    let methods = doc
        .paths
        .paths
        .iter()
        .filter_map(|(path, item)| {
            let listed = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ];
            let allow: Vec<&str> = listed
                .iter()
                .filter(|(_, on)| *on)
                .map(|(m, _)| *m)
                .collect();
            let value = HeaderValue::from_str(&allow.join(",")).ok()?;
            Some((path.clone(), value))
        })
        .collect();
    Arc::new(methods)
}

/// Answers `405` (with `Allow`) for a method the document does not list for the matched path,
/// before authentication and the gate's body checks: axum's route layers also wrap a route's
/// 405 fallback, so without this a `PUT` with a body on a POST-only route met the gate's
/// body checks (400) instead of the 405 it deserves. `HEAD` goes where `GET` does.
pub async fn only_documented_methods(
    State(documented): State<DocumentedMethods>,
    req: Request,
    next: Next,
) -> Response {
    let allow = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| documented.get(path.as_str()));
    if let Some(allow) = allow {
        let method = if req.method() == Method::HEAD {
            "GET"
        } else {
            req.method().as_str()
        };
        let listed = allow
            .to_str()
            .is_ok_and(|a| a.split(',').any(|m| m == method));
        if !listed {
            let mut err = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} is not allowed on {}. It takes: {}.",
                    req.method(),
                    req.uri().path(),
                    allow.to_str().unwrap_or_default()
                ),
            );
            err.allow = Some(allow.clone());
            return err.into_response();
        }
    }
    next.run(req).await
}

fn not_found_of(method: &axum::http::Method, path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("No route {method} {path}; see /api/openapi.json for the routes."),
    )
}

/// Keeps every error answer in the envelope. Our handlers and extractors answer with
/// [`ApiError`] already; what remains is what the router and axum's own extractors produce as
/// `text/plain` (a 405 with its `Allow` header, a path that is not UTF-8, a rejected `Path` or
/// body on a route outside the gate). Those become the envelope with the code of their status;
/// HTML pages (the dashboard) and JSON answers pass untouched.
pub async fn envelope_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<LoggedError>().is_some()
        || is_json_or_html(response.headers())
    {
        return response;
    }
    // The envelope replaces the body only: the request id and the API headers the inner layers
    // set stay.
    let mut headers = response.headers().clone();
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    let mut enveloped = envelope(method, path, response).await;
    for (name, value) in &headers {
        if !enveloped.headers().contains_key(name) {
            enveloped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    enveloped
}

/// The envelope for a plain-text error answer of the router or of axum's extractors.
async fn envelope(method: Method, path: String, response: Response) -> Response {
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
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
        return err.into_response();
    }
    // axum's rejection texts are short sentences about the request itself; keep one line of it.
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| {
            String::from_utf8_lossy(&b)
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    let text = text.trim();
    let sentence = |fallback: &str| {
        if text.is_empty() {
            fallback.to_owned()
        } else {
            format!("{}.", text.trim_end_matches('.'))
        }
    };
    match status {
        StatusCode::NOT_FOUND => not_found_of(&method, &path),
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::UNAUTHORIZED => ApiError::unauthorized(sentence("Not authorised.")),
        StatusCode::FORBIDDEN => ApiError::forbidden(sentence("Not permitted.")),
        s if s.is_server_error() => ApiError::internal(format!("{status}: {text}")),
        _ => ApiError::validation("request", sentence("The request could not be read.")),
    }
    .into_response()
}

fn is_json_or_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/html") || is_json(&ct)
        })
}
