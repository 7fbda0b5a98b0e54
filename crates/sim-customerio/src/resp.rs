//! Customer.io's response shapes: Track `{}` successes and `meta.errors`, the App API's three error
//! shapes, the empty-bodied 401/404/429s.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::config::{
    APP_CACHE_CONTROL, HSTS, JSON_CONTENT_TYPE, TRACK_401_BODY, TRACK_CACHE_CONTROL,
};

fn with_body(status: StatusCode, body: String, cache: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    r
}

/// A Track / CDP JSON answer with the recorded headers. The body ends with a newline: the live
/// recordings show `content-length: 3` for `{}`.
pub fn track_json(status: StatusCode, v: &Value) -> Response {
    let mut r = with_body(status, format!("{v}\n"), TRACK_CACHE_CONTROL);
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// Track success: 200, body `{}` and a newline, `content-length: 3`, as recorded live.
pub fn track_ok() -> Response {
    track_json(StatusCode::OK, &json!({}))
}

/// Track v1 400: `{"meta":{"errors":[…]}}`.
pub fn track_errors(errors: &[String]) -> Response {
    track_json(
        StatusCode::BAD_REQUEST,
        &json!({"meta": {"errors": errors}}),
    )
}

/// Track merge 400 (and transactional 4xx): `{"meta":{"error":"…"}}`.
pub fn meta_error(status: StatusCode, msg: &str) -> Response {
    app_json(status, &json!({"meta": {"error": msg}}))
}

/// Track v2 400: `{"errors":[{"reason","field","message"}]}`.
pub fn v2_errors(errors: Vec<Value>) -> Response {
    track_json(StatusCode::BAD_REQUEST, &json!({"errors": errors}))
}

/// Track / CDP 401.
pub fn track_unauthorized() -> Response {
    if TRACK_401_BODY.is_empty() {
        empty(StatusCode::UNAUTHORIZED)
    } else {
        (StatusCode::UNAUTHORIZED, TRACK_401_BODY).into_response()
    }
}

/// An App API JSON answer with the recorded headers.
pub fn app_json(status: StatusCode, v: &Value) -> Response {
    let mut r = with_body(status, v.to_string(), APP_CACHE_CONTROL);
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    r
}

pub fn app_ok(v: &Value) -> Response {
    app_json(StatusCode::OK, v)
}

/// The JSON:API-like shape of the broadcast endpoints:
/// `{"errors":[{"detail":"… (reference <ULID>)","status":"4xx"}]}`.
pub fn jsonapi_error(status: StatusCode, detail: &str) -> Response {
    app_json(
        status,
        &json!({"errors": [{"detail": detail, "status": status.as_str()}]}),
    )
}

/// `bad request (reference 01…)` / `not found (reference 01…)`, as the docs show.
pub fn referenced(what: &str) -> String {
    format!("{what} (reference {})", crate::webhooks::ulid())
}

/// The newsletter endpoints' shape: `{"errors":[{"detail":"…"}]}`.
pub fn newsletter_error(status: StatusCode, detail: &str) -> Response {
    app_json(status, &json!({"errors": [{"detail": detail}]}))
}

/// A status with no body and no headers (most App 401/404 and every 429).
pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
