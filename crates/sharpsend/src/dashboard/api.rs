//! The dashboard's only way to read or change anything: the real `/api/` router, called
//! in-process with the session's own bearer token. Authentication, tenancy, validation and the
//! error envelope are therefore the API's, applied once, in one place.

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tower::ServiceExt as _;

/// The most a dashboard call reads back (record pages hold raw platform JSON).
const REPLY_LIMIT: usize = 16 * 1024 * 1024;

/// The API router with every layer the public one has (request ids, metrics, body limit).
#[derive(Clone)]
pub struct ApiRouter(pub Router);

/// What the API answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

/// A failure envelope, as the dashboard shows it.
#[derive(Clone, Debug, Default)]
pub struct Failure {
    pub code: String,
    pub message: String,
    /// `details.field`: the form field to show the message next to.
    pub field: Option<String>,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.status.is_success() && self.body["success"] == Value::Bool(true)
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The envelope's error (or a generic one when the body is not an envelope).
    pub fn failure(&self) -> Failure {
        Failure {
            code: self.body["code"]
                .as_str()
                .unwrap_or("INTERNAL_ERROR")
                .to_owned(),
            message: self.body["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("The request failed ({}).", self.status)),
            field: self.body["details"]["field"].as_str().map(str::to_owned),
        }
    }
}

impl ApiRouter {
    /// Calls `method path` with the bearer token and an optional JSON body.
    pub async fn call(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path).header(
            header::AUTHORIZATION,
            format!("Bearer {}", token.expose_secret()),
        );
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => return internal(&e),
        };
        let response = match self.0.clone().oneshot(request).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), REPLY_LIMIT).await {
            Ok(bytes) => Reply {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            },
            Err(e) => internal(&e),
        }
    }

    pub async fn get(&self, token: &SecretString, path: &str) -> Reply {
        self.call(token, Method::GET, path, None).await
    }

    pub async fn post(&self, token: &SecretString, path: &str, body: &Value) -> Reply {
        self.call(token, Method::POST, path, Some(body)).await
    }
}

fn internal(e: &dyn std::fmt::Display) -> Reply {
    tracing::error!(error = %e, "dashboard: in-process API call failed");
    Reply {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({"success": false, "code": "INTERNAL_ERROR",
            "error": "Something went wrong on our side. Please try again."}),
    }
}
