//! `/api/integrations/{publisherId}/{platform}/{operation}` for every platform and operation
//! that has no route of its own. Each platform registers its operations with a static platform
//! segment (`…/{publisherId}/keap/campaigns`), which takes precedence; a request that falls
//! through to here names an operation the platform does not have. The capability matrix decides
//! the answer, before any upstream call: `UNSUPPORTED_OPERATION` where it says no, `NOT_FOUND`
//! for an operation the contract does not know, and `NOT_FOUND` naming what is missing where the
//! matrix says yes but the operation is not served yet.

use axum::{extract::Path, http::Method};
use domain::{Capability, ErrorCode, Platform};
use serde_json::Value;

use crate::http::{
    error::{ApiError, ApiResult},
    extract::{OptionalJson, Scope, from_value},
    openapi::ErrorBody,
};

/// The capability an operation needs; for messages it depends on the body's channel.
fn capability(method: &Method, operation: &str, body: &Value) -> ApiResult<Option<Capability>> {
    Ok(Some(match (method.as_str(), operation) {
        ("GET", "campaigns") => Capability::Campaigns,
        ("GET", "contacts") => Capability::Contacts,
        ("GET", "segments" | "lists" | "tags") => Capability::Segments,
        ("GET", "templates") => Capability::Templates,
        ("POST", "subscribers") => Capability::SubscribersUpsert,
        ("POST", "events") => Capability::EventsTrack,
        ("POST", "messages") => {
            #[derive(serde::Deserialize)]
            struct Channel {
                channel: String,
            }
            match from_value::<Channel>(body)?.channel.as_str() {
                "email" => Capability::Email,
                "sms" => Capability::Sms,
                "push" => Capability::Push,
                "in_app" => Capability::InApp,
                other => {
                    return Err(ApiError::validation(
                        "channel",
                        format!("Unknown channel '{other}': use email, sms, push or in_app."),
                    ));
                }
            }
        }
        _ => return Ok(None),
    }))
}

/// The answer for an operation the platform does not serve (also used by platform routes that
/// serve only some channels of `messages`).
pub fn answer(platform: Platform, method: &Method, operation: &str, body: &Value) -> ApiError {
    let cap = match capability(method, operation, body) {
        Ok(Some(cap)) => cap,
        Ok(None) => {
            return ApiError::not_found(format!(
                "No route {method} …/{}/{operation}; see /api/openapi.json for the routes.",
                platform.as_str()
            ));
        }
        Err(e) => return e,
    };
    if platform.support(cap).supported {
        return ApiError::not_found(format!(
            "{} supports {} but SharpSend does not serve this operation for it yet.",
            platform.display_name(),
            cap.as_str()
        ));
    }
    let offered: Vec<&str> = Platform::ALL
        .into_iter()
        .filter(|p| p.support(cap).supported)
        .map(Platform::display_name)
        .collect();
    ApiError::new(
        ErrorCode::UnsupportedOperation,
        format!(
            "{} does not support {} (see GET /api/platforms); {} {}.",
            platform.display_name(),
            cap.as_str(),
            offered.join(" and "),
            if offered.len() == 1 { "does" } else { "do" }
        ),
    )
    .detail("platform", platform.as_str())
    .detail("capability", cap.as_str())
}

/// An operation the platform has no route for: `UNSUPPORTED_OPERATION` where the capability
/// matrix says no, `NOT_FOUND` otherwise. Never calls the platform.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/{operation}", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ("operation" = String, Path)),
    responses(
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "UNSUPPORTED_OPERATION", body = ErrorBody)))]
pub async fn read_operation(
    scope: Scope,
    Path((_publisher, _platform, operation)): Path<(String, String, String)>,
) -> ApiError {
    match scope.platform() {
        Ok(platform) => answer(platform, &Method::GET, &operation, &Value::Null),
        Err(e) => e,
    }
}

/// A write the platform has no route for; see the GET of the same path.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/{operation}", tag = "integrations",
    security(("bearer" = [])),
    request_body(content = Object, description = "The operation's body (for messages, its `channel` decides)"),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ("operation" = String, Path)),
    responses(
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "UNSUPPORTED_OPERATION", body = ErrorBody)))]
pub async fn write_operation(
    scope: Scope,
    Path((_publisher, _platform, operation)): Path<(String, String, String)>,
    OptionalJson(body): OptionalJson<Value>,
) -> ApiError {
    match scope.platform() {
        Ok(platform) => answer(
            platform,
            &Method::POST,
            &operation,
            &body.unwrap_or(Value::Null),
        ),
        Err(e) => e,
    }
}
