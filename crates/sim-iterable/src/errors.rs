//! Iterable's response envelope `{"msg", "code", "params"}` and the error bodies it sends.
//!
//! Wording marked *inferred* is not confirmed by a recorded response; it lives here, in one place,
//! so it is easy to change.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// The address the simulator reports as the caller's `ip` in `BadApiKey` params (Iterable reports
/// the real client address; a fixed loopback keeps goldens deterministic).
pub const REPORTED_IP: &str = "127.0.0.1";

/// Recorded: `{"msg":"Invalid API key","code":"BadApiKey","params":{"ip":…,"endpoint":…}}`
/// (Iterable/api-client unit-test fixture captured from the real API).
pub const MSG_INVALID_KEY: &str = "Invalid API key";
/// Recorded (Iterable JWT-enabled keys doc, via a public probe's fixture).
pub const MSG_JWT_EXPIRED: &str = "JWT token is expired";
/// Inferred wording.
pub const MSG_JWT_MISSING: &str = "JWT token is missing from the Authorization header";
/// Inferred wording.
pub const MSG_JWT_INVALID: &str = "JWT token is invalid";
/// Inferred wording.
pub const MSG_JWT_MISMATCH: &str = "JWT user identifiers do not match the request";
/// Inferred wording.
pub const MSG_BAD_JSON: &str = "Could not parse request body as JSON";
/// Inferred wording.
pub const MSG_NOT_FOUND: &str = "Not found";
/// Inferred wording (status 413 and code `BatchTooLarge` are from the SPEC's enum and the Go
/// client's split-on-413 behaviour).
pub const MSG_TOO_LARGE: &str = "Request body exceeds the maximum size of 4MB";

/// `{"msg","code","params"}` with an HTTP status.
pub fn envelope(status: StatusCode, code: &str, msg: impl Into<String>, params: Value) -> Response {
    (
        status,
        Json(json!({"msg": msg.into(), "code": code, "params": params})),
    )
        .into_response()
}

/// `200 {"msg": "", "code": "Success", "params": null}` (inferred: empty message on plain writes).
pub fn success() -> Response {
    envelope(StatusCode::OK, "Success", "", Value::Null)
}

pub fn success_with(msg: impl Into<String>, params: Value) -> Response {
    envelope(StatusCode::OK, "Success", msg, params)
}

/// 401 `BadApiKey` as recorded, naming the endpoint.
pub fn bad_api_key(endpoint: &str) -> Response {
    envelope(
        StatusCode::UNAUTHORIZED,
        "BadApiKey",
        MSG_INVALID_KEY,
        json!({"ip": REPORTED_IP, "endpoint": endpoint}),
    )
}

/// 401 `InvalidJwtPayload` (shape recorded: params carry the endpoint).
pub fn bad_jwt(msg: &str, endpoint: &str) -> Response {
    envelope(
        StatusCode::UNAUTHORIZED,
        "InvalidJwtPayload",
        msg,
        json!({"endpoint": endpoint}),
    )
}

/// 400 `BadParams`.
pub fn bad_params(msg: impl Into<String>) -> Response {
    envelope(StatusCode::BAD_REQUEST, "BadParams", msg, Value::Null)
}

pub fn bad_json() -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        "BadJsonBody",
        MSG_BAD_JSON,
        Value::Null,
    )
}

pub fn not_found(msg: impl Into<String>) -> Response {
    envelope(StatusCode::NOT_FOUND, "NotFound", msg, Value::Null)
}

/// The 429 Iterable sends: reconstructed from a Fivetran KB log line, trailing space included.
/// No `Retry-After` header (Airbyte: "it is not returned from the API").
pub fn rate_limited(endpoint: &str, project_id: u64) -> Response {
    envelope(
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimitExceeded",
        format!("Exceeded rate limit for endpoint: {endpoint}, project: {project_id} "),
        json!({}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_limited_body_matches_the_recorded_log_line() {
        let resp = rate_limited("/api/export/data.csv", 8575);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().get("retry-after").is_none());
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v["msg"],
            "Exceeded rate limit for endpoint: /api/export/data.csv, project: 8575 "
        );
        assert_eq!(v["code"], "RateLimitExceeded");
        assert_eq!(v["params"], json!({}));
    }
}
