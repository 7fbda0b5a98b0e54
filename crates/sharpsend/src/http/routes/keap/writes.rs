//! Keap writes (CONTRACT §7): subscriber upserts as CRM contacts.

use axum::extract::State;
use connectors::keap::SubscriberInput;
use domain::{ErrorCode, Platform};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, Scope},
    openapi::{Envelope, ErrorBody},
};
use crate::platforms::keap::tokens;
use crate::state::AppState;

/// Largest batch of subscribers in one call (each is at least one Keap request).
pub const MAX_BATCH: usize = 100;

/// One subscriber.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberBody {
    pub email: String,
    /// Not used by Keap (contacts are keyed by email); accepted for symmetry.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// Not mapped onto Keap custom fields yet; accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Value>,
    /// Keap tag ids to apply.
    #[serde(default)]
    pub tags: Vec<Value>,
}

/// One upserted subscriber.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Upserted {
    pub platform: Platform,
    pub id: String,
    /// Always `upserted`.
    pub status: String,
}

/// A failed item of a batch.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Failed {
    pub index: usize,
    pub code: ErrorCode,
    pub error: String,
}

/// A batch's outcome.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    pub accepted: usize,
    pub failed: Vec<Failed>,
}

/// The answer: one subscriber, or a batch.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SubscribersAnswer {
    One(Upserted),
    Batch(BatchResult),
}

fn prefix(field: Option<&str>, e: ApiError) -> ApiError {
    match (field, e.details.get("field").and_then(Value::as_str)) {
        (Some(p), Some(f)) => {
            let f = format!("{p}.{f}");
            let mut e = e;
            e.details.insert("field".into(), f.into());
            e
        }
        _ => e,
    }
}

fn input(value: Value, lead_source: Option<String>) -> ApiResult<SubscriberInput> {
    let body: SubscriberBody = crate::http::extract::from_value(&value)?;
    let email = body.email.trim().to_owned();
    if !email.contains('@') || email.len() > 254 {
        return Err(ApiError::validation(
            "email",
            format!("`{email}` is not an email address."),
        ));
    }
    let mut tag_ids = Vec::with_capacity(body.tags.len());
    for (i, t) in body.tags.iter().enumerate() {
        let id = match t {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.clone(),
            _ => {
                return Err(ApiError::validation(
                    format!("tags[{i}]"),
                    "Keap tags are given by their numeric tag id (GET /crm/rest/v2/tags lists them).",
                ));
            }
        };
        tag_ids.push(id);
    }
    let clean = |s: Option<String>| s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Ok(SubscriberInput {
        email,
        first_name: clean(body.first_name),
        last_name: clean(body.last_name),
        phone: clean(body.phone),
        lead_source_id: lead_source,
        tag_ids,
    })
}

/// Upserts subscribers as Keap contacts, matched by email (REST v2
/// `POST /contacts?duplicate_option=Email`), with the integration's lead source and the given
/// tag ids applied. One subscriber, or `{"subscribers": [...]}` (at most 100) answering
/// `{accepted, failed: [{index, code, error}]}`.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/keap/subscribers", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = SubscriberBody,
    responses(
        (status = 200, body = Envelope<SubscribersAnswer>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn upsert_subscribers(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Envelope<SubscribersAnswer>> {
    let publisher = scope.publisher()?;
    let batch = match body.get("subscribers") {
        None => None,
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(ApiError::validation(
                    "subscribers",
                    format!("`subscribers` takes 1 to {MAX_BATCH} subscribers."),
                ));
            }
            Some(items.clone())
        }
        Some(_) => {
            return Err(ApiError::validation(
                "subscribers",
                "`subscribers` must be an array.",
            ));
        }
    };
    // Validate a single subscriber before any upstream call.
    if batch.is_none() {
        input(body.clone(), None)?;
    }
    let mut session = tokens::session(&state, publisher).await?;
    let lead_source = session
        .record
        .config
        .get("leadSourceId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let keap = state.connectors.keap.clone();
    let Some(items) = batch else {
        let sub = input(body, lead_source)?;
        let id = tokens::call(&state, &mut session, |cred| {
            let keap = keap.clone();
            let sub = sub.clone();
            async move { keap.upsert_contact(&cred, &sub).await }
        })
        .await?;
        return Ok(Envelope::ok(SubscribersAnswer::One(Upserted {
            platform: Platform::Keap,
            id,
            status: "upserted".into(),
        })));
    };
    let mut accepted = 0;
    let mut failed = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let outcome = match input(item, lead_source.clone()) {
            Err(e) => Err(prefix(Some(&format!("subscribers[{index}]")), e)),
            Ok(sub) => tokens::call(&state, &mut session, |cred| {
                let keap = keap.clone();
                let sub = sub.clone();
                async move { keap.upsert_contact(&cred, &sub).await }
            })
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        };
        match outcome {
            Ok(()) => accepted += 1,
            Err(e) => {
                // A credential failure stops the batch: every further item would fail the same.
                if e.code == ErrorCode::InvalidCredentials {
                    return Err(e);
                }
                failed.push(Failed {
                    index,
                    code: e.code,
                    error: e.message.to_string(),
                });
            }
        }
    }
    Ok(Envelope::ok(SubscribersAnswer::Batch(BatchResult {
        accepted,
        failed,
    })))
}
