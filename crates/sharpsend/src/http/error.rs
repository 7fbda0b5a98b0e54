//! The one error type handlers return, and the envelope of CONTRACT §2.
//!
//! A client only ever sees `{"success": false, "error", "code", "details"?}`: a sentence for a
//! person, a code from the registry (`domain::ErrorCode`), and safe details. The cause of an
//! internal error travels in a response extension to the logging middleware, which logs it with
//! the request id; it never reaches the body.

use std::{borrow::Cow, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::ErrorCode;
use serde_json::{Map, Value};

use super::openapi::ErrorBody;

/// An error answered in the envelope. Boxed, so `Result<T, ApiError>` stays small.
#[derive(Debug)]
pub struct ApiError(Box<ApiErrorInner>);

/// The parts of an [`ApiError`]; reachable through `Deref`.
#[derive(Debug)]
pub struct ApiErrorInner {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub details: Map<String, Value>,
    pub retry_after: Option<Duration>,
    /// Extra headers (`Allow` on 405).
    pub allow: Option<HeaderValue>,
    /// What went wrong inside, for the log only.
    pub cause: Option<String>,
}

/// The cause of an error response, for the logging middleware (never sent to the client).
#[derive(Clone, Debug)]
pub struct LoggedError {
    pub code: ErrorCode,
    pub message: String,
    pub cause: Option<String>,
}

impl std::ops::Deref for ApiError {
    type Target = ApiErrorInner;

    fn deref(&self) -> &ApiErrorInner {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ApiErrorInner {
        &mut self.0
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(ApiErrorInner {
            code,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
            allow: None,
            cause: None,
        }))
    }

    /// A validation error naming the offending field (`details.field`).
    pub fn validation(field: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ValidationError, message).detail("field", field.into())
    }

    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A fault of ours: the client sees a generic sentence, the log gets `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut err = Self::new(
            ErrorCode::InternalError,
            "Something went wrong on our side; the X-Request-Id header identifies it in our logs.",
        );
        err.cause = Some(cause.to_string());
        err
    }

    /// Keeps what went wrong inside for the log (never sent to the client).
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let this = *self.0;
        let mut details = this.details;
        let retry_secs = this
            .retry_after
            .map(|d| d.as_secs_f64().ceil().max(1.0) as u64);
        if let Some(secs) = retry_secs {
            details.entry("retryAfterSeconds").or_insert(secs.into());
        }
        let body = ErrorBody {
            success: false,
            error: this.message.to_string(),
            code: this.code,
            details: (!details.is_empty()).then_some(Value::Object(details)),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = this.allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response.extensions_mut().insert(LoggedError {
            code: this.code,
            message: this.message.into_owned(),
            cause: this.cause,
        });
        response
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::internal(format!("store: {e}"))
    }
}

impl From<connectors::ConnectorError> for ApiError {
    fn from(e: connectors::ConnectorError) -> Self {
        let mut err =
            ApiError::new(e.code(), e.message.clone()).detail("platform", e.platform.as_str());
        if let Some(status) = e.platform_status {
            err = err.detail("platformStatus", status);
        }
        if let Some(wait) = e.retry_after() {
            err = err.retry_after(wait);
        }
        err
    }
}

impl From<crate::error::Error> for ApiError {
    /// The HTTP face of a domain error: its code, its public sentence, safe details, the
    /// platform's wait as `Retry-After`, and the cause chain for the log only.
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error;
        match e {
            Error::Platform(e) => e.into(),
            Error::Coded {
                code,
                message,
                details,
                retry_after,
            } => {
                let mut err = ApiError::new(code, message);
                err.details = details;
                err.retry_after = retry_after;
                err
            }
            Error::ReauthRequired {
                platform,
                platform_status,
                ..
            } => {
                let mut err = ApiError::new(e.code(), e.to_string())
                    .detail("platform", platform.as_str())
                    .detail(
                        "status",
                        domain::shapes::IntegrationStatus::ReauthRequired.as_str(),
                    );
                if let Some(status) = platform_status {
                    err = err.detail("platformStatus", status);
                }
                err
            }
            Error::Unsupported {
                platform,
                capability,
            } => ApiError::new(e.code(), unsupported_message(platform, capability))
                .detail("platform", platform.as_str())
                .detail("capability", capability.as_str()),
            Error::IntegrationNotFound { .. } => ApiError::new(e.code(), e.to_string()),
            Error::Internal { .. } => {
                let mut err = ApiError::new(e.code(), e.public_message());
                err.cause = e.cause_chain();
                err
            }
        }
    }
}

/// `UNSUPPORTED_OPERATION`'s sentence: what the platform lacks and which platforms have it.
pub fn unsupported_message(platform: domain::Platform, cap: domain::Capability) -> String {
    let offered: Vec<&str> = domain::Platform::ALL
        .into_iter()
        .filter(|p| p.support(cap).supported)
        .map(domain::Platform::display_name)
        .collect();
    format!(
        "{} does not support {} (see GET /api/platforms); {} {}.",
        platform.display_name(),
        cap.as_str(),
        offered.join(" and "),
        if offered.len() == 1 { "does" } else { "do" }
    )
}

/// Handlers answer `Result<Json<T>, ApiError>`-shaped values through this alias.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn envelope_status_details_and_retry_after() {
        let resp = ApiError::new(ErrorCode::RateLimitExceeded, "slow down")
            .retry_after(Duration::from_millis(1500))
            .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["code"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(v["error"], "slow down");
        assert_eq!(v["details"]["retryAfterSeconds"], 2);
    }

    #[tokio::test]
    async fn internal_cause_stays_out_of_the_body() {
        let resp = ApiError::internal("SELECT * FROM secrets failed").into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let logged = resp.extensions().get::<LoggedError>().unwrap().clone();
        assert!(logged.cause.unwrap().contains("SELECT"));
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("SELECT"));
    }
}
