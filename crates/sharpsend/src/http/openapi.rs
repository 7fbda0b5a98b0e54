//! The OpenAPI document, generated from the handlers (utoipa), and the envelope types.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use domain::ErrorCode;
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// `{"success": true, "data": …}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Self {
            success: true,
            data,
        }
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// `{"success": false, "error", "code", "details"?}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// A sentence for a person.
    pub error: String,
    pub code: ErrorCode,
    /// `field`, `retryAfterSeconds`, `platformStatus`, `platform`, … where they apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token, or a publisher API key (`ssk_…`) that acts for its own publisher only.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SharpSend Integrations API",
        description = "Connect publishers' Iterable, Customer.io and Keap accounts: test and store credentials, \
read campaigns and contacts, sync, send, and receive webhooks. Every JSON answer is an envelope with \
`success`; errors carry a `code` from the registry (see ErrorCode) and an `X-Request-Id` header. \
Choices the contract leaves open are written in the README: `METHOD_NOT_ALLOWED` (405) for a known path \
with another method, `SERVICE_UNAVAILABLE` (503) from /readyz when the database does not answer, `REQUEST_TIMEOUT` (408) when a request's body is not received and answered in time.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "integrations", description = "Connections to the platforms"),
        (name = "platforms", description = "The capability matrix"),
        (name = "admin", description = "Operator routes (admin token only)"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "webhooks", description = "Webhooks the platforms send us (no bearer token; each platform's own check)"),
    )
)]
pub struct ApiDoc;

/// The document as served and committed (`docs/openapi.json`), pretty-printed.
pub fn document_json(doc: &utoipa::openapi::OpenApi) -> String {
    let mut text = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
