//! The common writes (CONTRACT §7) for every platform:
//! `POST /api/integrations/{publisherId}/{platform}/{subscribers,events,messages}`, and the
//! answer for an operation no route serves. The reads are in `routes::reads`; a platform's own
//! operations (`…/customerio/broadcasts`, `…/iterable/channels`) are registered by its route
//! file with a static segment, which takes precedence over `{platform}`.

use axum::{
    extract::{Path, State},
    http::Method,
};
use domain::{
    Platform,
    operations::{Accepted, MessageInput, Queued, Tested, Upserted},
};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::{ApiJson, Scope, from_value},
        openapi::{Envelope, ErrorBody},
    },
    platforms::operations::{self as ops, EventsRequest, OneOrBatch, SubscribersRequest},
    state::AppState,
};

/// The common operations, one route each for every platform (`{platform}` is checked by the
/// tenancy gate; a platform without the capability answers `UNSUPPORTED_OPERATION`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_subscribers))
        .routes(routes!(track_events))
        .routes(routes!(send_message))
        .routes(routes!(test_integration))
}

/// Creates or updates one person, or many as `{"subscribers": [...]}` (failures per item).
/// Iterable: `users/update` (`users/bulkUpdate` for many); Customer.io: Track identify; Keap:
/// contact upsert by email.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/subscribers", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    request_body(content = SubscribersRequest, example = json!({"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "attributes": {"plan": "premium"}})),
    responses(
        (status = 200, description = "one person: `Upserted`; many: `BatchOutcome`", body = Envelope<Upserted>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn upsert_subscribers(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(raw): ApiJson<Value>,
) -> ApiResult<Envelope<OneOrBatch<Upserted>>> {
    let body = match raw.get("subscribers") {
        Some(_) => from_value::<SubscribersRequest>(&raw)?,
        // One person: parsed on its own, so a wrong field is named (a flattened struct loses the
        // path: `{"email": 5}` would blame `body`).
        None => SubscribersRequest {
            one: from_value(&raw)?,
            subscribers: None,
        },
    };
    let answer =
        ops::upsert_subscribers(&state, scope.publisher()?, scope.platform()?, body).await?;
    Ok(Envelope::ok(answer))
}

/// Tracks one event, or many as `{"events": [...]}` (failures per item). Iterable:
/// `events/track` (`events/trackBulk`); Customer.io: Track API; Keap: `UNSUPPORTED_OPERATION`.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/events", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    request_body(content = EventsRequest, example = json!({"name": "article_read", "email": "ada@example.com", "data": {"articleId": "a-42"}})),
    responses(
        (status = 200, description = "one event: `Accepted`; many: `BatchOutcome`", body = Envelope<Accepted>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "UNSUPPORTED_OPERATION (Keap), or the platform refused", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn track_events(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(raw): ApiJson<Value>,
) -> ApiResult<Envelope<OneOrBatch<Accepted>>> {
    let body = match raw.get("events") {
        Some(_) => from_value::<EventsRequest>(&raw)?,
        // One event: parsed on its own, so a wrong field is named (see upsert_subscribers).
        None => EventsRequest {
            one: from_value(&raw)?,
            events: None,
        },
    };
    let answer = ops::track_events(&state, scope.publisher()?, scope.platform()?, body).await?;
    Ok(Envelope::ok(answer))
}

/// Sends one message. Iterable: through a triggered campaign (`campaignId`); Customer.io:
/// transactional messages (`campaignId` is the transactional message id) or broadcasts;
/// Keap: email only, `data.subject` and `data.html`/`data.text`.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/messages", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    request_body(content = MessageInput, example = json!({"channel": "email", "campaignId": "2100000", "to": {"email": "ada@example.com"}, "data": {"firstName": "Ada"}})),
    responses(
        (status = 200, body = Envelope<Queued>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "UNSUPPORTED_OPERATION for a channel the platform lacks, or the platform refused", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<MessageInput>,
) -> ApiResult<Envelope<Queued>> {
    let answer = ops::send_message(&state, scope.publisher()?, scope.platform()?, body).await?;
    Ok(Envelope::ok(answer))
}

/// Tests the publisher's stored credentials with the platform's cheapest authenticated call —
/// the same one `…/{platform}/test-connection` makes with credentials given in the body — and
/// answers what the platform said of the account. Nothing is stored or changed. Keap: through
/// the stored token, refreshed first when near expiry.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/test", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    responses(
        (status = 200, body = Envelope<Tested>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS: the platform no longer accepts them", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn test_integration(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<Tested>> {
    let answer = ops::test(&state, scope.publisher()?, scope.platform()?).await?;
    Ok(Envelope::ok(answer))
}

/// The 404 of an operation no route serves.
fn no_route(platform: Platform, method: &Method, operation: &str) -> ApiError {
    ApiError::not_found(format!(
        "No route {method} …/{}/{operation}; see /api/openapi.json for the routes.",
        platform.as_str()
    ))
}

/// An operation the contract does not know: `NOT_FOUND`. Never calls the platform.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/{operation}", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ("operation" = String, Path)),
    responses(
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn read_operation(
    scope: Scope,
    Path((_publisher, _platform, operation)): Path<(String, String, String)>,
) -> ApiError {
    match scope.platform() {
        Ok(platform) => no_route(platform, &Method::GET, &operation),
        Err(e) => e,
    }
}

/// A write the platform has no route for; see the GET of the same path.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/{operation}", tag = "integrations",
    security(("bearer" = [])),
    request_body(content = Object, description = "Any body; it is not read"),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ("operation" = String, Path)),
    responses(
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn write_operation(
    scope: Scope,
    Path((_publisher, _platform, operation)): Path<(String, String, String)>,
) -> ApiError {
    match scope.platform() {
        Ok(platform) => no_route(platform, &Method::POST, &operation),
        Err(e) => e,
    }
}
