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
Choices the contract leaves open are written in docs/errors.md: `METHOD_NOT_ALLOWED` (405) for a known path \
with another method, `SERVICE_UNAVAILABLE` (503) from /readyz when the database does not answer, `REQUEST_TIMEOUT` (408) when a request's body is not received and answered in time.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "integrations", description = "Connections to the platforms"),
        (name = "platforms", description = "The capability matrix"),
        (name = "admin", description = "Operator routes (admin token only)"),
        (name = "destinations", description = "Events pushed to your endpoints, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`), at least once, in order per reader, retried 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "webhooks", description = "Webhooks the platforms send us (no bearer token; each platform's own check)"),
    )
)]
pub struct ApiDoc;

/// Every `/api/` operation may answer our own `429 RATE_LIMIT_EXCEEDED` (`http::ratelimit`), with
/// `Retry-After`; every answer past authentication carries the `RateLimit-*` headers (documented
/// on the successes and the 429, to keep the document readable). Added here, after the handlers' own declarations, so no operation can miss them.
pub fn add_rate_limits(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        Content, Ref, RefOr, Response, Type, header::Header, schema::ObjectBuilder,
    };
    const OURS: &str = "RATE_LIMIT_EXCEEDED: over a limit of ours — calls per token \
(SHARPSEND_API_RATE_LIMIT), test-connection and connect calls per token \
(SHARPSEND_TEST_CONNECTION_RATE_LIMIT), failed authentications per client address \
(SHARPSEND_AUTH_FAILURE_RATE_LIMIT; then every request from it is refused until Retry-After). \
Retry-After gives the seconds to wait.";
    let integer = |description: &str| {
        let mut header = Header::new(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        );
        header.description = Some(description.to_owned());
        header
    };
    let rate_headers = [
        (
            "RateLimit-Limit",
            integer("The binding limit's burst: how many calls may come at once."),
        ),
        (
            "RateLimit-Remaining",
            integer("Calls left in the burst now."),
        ),
        (
            "RateLimit-Reset",
            integer("Seconds until the whole burst is available again."),
        ),
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            let refusal = responses.entry("429".to_owned()).or_insert_with(|| {
                let mut r = Response::new("");
                r.content.insert(
                    "application/json".to_owned(),
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                );
                RefOr::T(r)
            });
            if let RefOr::T(r) = refusal {
                r.description = if r.description.is_empty() {
                    OURS.to_owned()
                } else {
                    format!("{}; or {OURS}", r.description)
                };
                r.headers.insert(
                    "Retry-After".to_owned(),
                    integer("Seconds to wait before trying again."),
                );
            }
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(r)) = (status.starts_with('2') || status == "429", response)
                {
                    for (name, header) in &rate_headers {
                        r.headers.insert((*name).to_owned(), header.clone());
                    }
                }
            }
        }
    }
}

/// The error answers every `/api/` operation can give whatever its handler declares, so that
/// a client generated from the document decodes each of them as the envelope (issue 18): 401
/// from the gate, 400 for a path or query the handler's checks refuse, 403 for another
/// publisher's path, 404 for an unknown id in the path, 413 for a body over the limit, 500 for a
/// fault of ours. Added here, after the handlers' own declarations (which keep their wording),
/// so no operation can miss one.
pub fn add_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, Ref, RefOr, Response};
    let envelope = |description: &str| {
        let mut r = Response::new(description);
        r.content.insert(
            "application/json".to_owned(),
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        );
        RefOr::T(r)
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/") {
            continue;
        }
        let path_params = path.contains('{');
        let for_a_publisher = path.contains("{publisherId}") || path.starts_with("/api/admin/");
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let has_input = path_params
                || operation.request_body.is_some()
                || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| envelope(description));
            };
            add(
                "401",
                "UNAUTHORIZED: no bearer token, or one that is unknown or revoked.",
            );
            if has_input {
                add(
                    "400",
                    "VALIDATION_ERROR: a path, query or body value is refused; `details.field` names it.",
                );
            }
            if for_a_publisher {
                add(
                    "403",
                    "PERMISSION_DENIED: a publisher key acting for another publisher, or on an admin route.",
                );
            }
            if path_params {
                add("404", "NOT_FOUND: nothing by that id for this publisher.");
            }
            if operation.request_body.is_some() {
                add(
                    "413",
                    "PAYLOAD_TOO_LARGE: the body is over the request size limit.",
                );
            }
            add(
                "500",
                "INTERNAL_ERROR: a fault of ours; the `X-Request-Id` header names it in our log.",
            );
        }
    }
}

/// The document as served and committed, as JSON. utoipa 5.5 writes a Link object's fields in
/// snake case (`operation_id`), which the OpenAPI specification spells in camel case
/// (`operationId`); they are renamed here, so every reader of the links understands them.
pub fn document_value(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    use serde_json::Value;
    let mut value =
        serde_json::to_value(doc).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
    let responses = value["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|r| r.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) else {
            continue;
        };
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
    value
}

/// The document as served and committed (`docs/openapi.json`), pretty-printed.
pub fn document_json(doc: &utoipa::openapi::OpenApi) -> String {
    let mut text = serde_json::to_string_pretty(&document_value(doc))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// OpenAPI links where one answer feeds the next call, so a generated client and the fuzzer's
/// stateful phase can follow them: a started sync leads to its job; a connect leads to the
/// integration's campaigns and to starting a sync.
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, link::LinkBuilder};
    let link = |operation: &str, params: &[(&str, &str)], description: &str| {
        let builder = params.iter().fold(
            LinkBuilder::new()
                .operation_id(operation)
                .description(description),
            |b, (name, value)| b.parameter(*name, *value),
        );
        RefOr::T(builder.build())
    };
    let mut add = |path: &str, status: &str, name: &str, l| {
        if let Some(RefOr::T(response)) = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut(status))
        {
            response.links.insert(name.to_owned(), l);
        }
    };
    add(
        "/api/integrations/{publisherId}/{platform}/sync",
        "202",
        "GetSyncJob",
        link(
            "get_sync_job",
            &[
                ("publisherId", "$request.path.publisherId"),
                ("platform", "$request.path.platform"),
                ("jobId", "$response.body#/data/jobId"),
            ],
            "Follow the job this request queued.",
        ),
    );
    for platform in ["iterable", "customerio", "keap"] {
        let connect = format!("/api/integrations/{platform}/connect");
        let integration = [
            ("publisherId", "$response.body#/data/publisherId"),
            ("platform", "$response.body#/data/platform"),
        ];
        add(
            &connect,
            "200",
            "ListCampaigns",
            link(
                "list_campaigns",
                &integration,
                "The connected account's campaigns.",
            ),
        );
        add(
            &connect,
            "200",
            "StartSync",
            link("start_sync", &integration, "Sync the connected account."),
        );
    }
}
