//! `Idempotency-Key` (CONTRACT §10), the way Stripe and the IETF httpapi draft do it: the first
//! answer to a POST under `/api/` that carries the header is kept 24 hours per (principal, route,
//! key), in the database (so every replica sees it) and sealed by the vault (a connect's answer
//! may reveal a secret once). A repeat with the same body gets that answer again, marked
//! `Idempotency-Replayed: true`, and nothing runs; the same key with another body is
//! `422 VALIDATION_ERROR` naming `Idempotency-Key`; a repeat while the first still runs is
//! `409 CONFLICT` with `Retry-After`.
//!
//! Only answers that settle the request are kept: successes and the client's own errors. A 408,
//! 409, 429 or 5xx releases the key, so that a retry — the point of the header — runs again.
//! Runs after the tenancy gate, so the body it digests is the one the handler reads.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use domain::ErrorCode;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use store::{Claim, IdempotencyKey};
use vault::Aad;

use super::{
    error::ApiError,
    extract::{JsonBody, Scope},
};
use crate::{principal::Principal, state::AppState};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The request header as documented.
pub const HEADER_NAME: &str = "Idempotency-Key";
/// The header on a replayed answer.
pub const REPLAYED: &str = "idempotency-replayed";
/// How long an answer is kept.
pub const TTL: chrono::Duration = chrono::Duration::hours(24);
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// Largest answer kept (a POST's answers are small; a bigger one is not kept, and released).
const MAX_KEPT: usize = 1024 * 1024;
/// How often a process sweeps expired keys.
const SWEEP_EVERY_SECS: i64 = 600;

static LAST_SWEEP: AtomicI64 = AtomicI64::new(0);

pub async fn idempotent(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let value = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::validation(
                "Idempotency-Key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters, such as a UUID."
                ),
            )
        })?
        .to_owned();
    let scope = req
        .extensions()
        .get::<Scope>()
        .ok_or_else(|| ApiError::internal("idempotency layer outside the tenancy gate"))?;
    let key = IdempotencyKey {
        principal: match &scope.principal {
            Principal::Admin => "admin".to_owned(),
            Principal::Publisher { key_id, .. } => key_id.clone(),
        },
        route: format!("POST {}", req.uri().path()),
        key: value,
    };
    let body_hash = {
        let mut digest = Sha256::new();
        if let Some(JsonBody(body)) = req.extensions().get::<JsonBody>() {
            digest.update(serde_json::to_vec(body.as_ref()).map_err(ApiError::internal)?);
        }
        hex::encode(digest.finalize())
    };

    let now = Utc::now();
    sweep(&state, now);
    let stale_before = now
        - chrono::Duration::from_std(state.config.request_timeout + Duration::from_secs(30))
            .unwrap_or(chrono::Duration::minutes(5));
    match state
        .store
        .claim_idempotency_key(&key, &body_hash, now, now + TTL, stale_before)
        .await?
    {
        Claim::Existing(first) if first.body_hash != body_hash => {
            // 422, not 400: the request itself is well formed (CONTRACT §10).
            let mut refused = ApiError::validation(
                "Idempotency-Key",
                "This Idempotency-Key was first sent with a different body; send a new key for a new request.",
            )
            .into_response();
            *refused.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(refused)
        }
        Claim::Existing(first) => match (first.status, first.key_id, first.sealed_response) {
            (Some(status), Some(_), Some(sealed)) => replay(&state, &key, status, &sealed),
            _ => Err(ApiError::new(
                ErrorCode::Conflict,
                "A request with this Idempotency-Key is still running; retry after it finishes.",
            )
            .retry_after(Duration::from_secs(1))),
        },
        Claim::Claimed => {
            let response = next.run(req).await;
            keep(&state, &key, response).await
        }
    }
}

/// The associated data an answer is sealed under: the key it answers.
fn aad_field(key: &IdempotencyKey) -> String {
    format!("{}\n{}\n{}", key.principal, key.route, key.key)
}

async fn keep(
    state: &AppState,
    key: &IdempotencyKey,
    response: Response,
) -> Result<Response, ApiError> {
    let status = response.status();
    let settles = status.is_success()
        || (status.is_client_error()
            && !matches!(
                status,
                StatusCode::REQUEST_TIMEOUT | StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS
            ));
    if !settles {
        state.store.release_idempotency_key(key).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_KEPT).await {
        Ok(b) => b,
        Err(e) => {
            state.store.release_idempotency_key(key).await?;
            return Err(ApiError::internal(format!(
                "reading an answer to keep: {e}"
            )));
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let field = aad_field(key);
    let sealed = state
        .vault
        .seal(
            Aad {
                integration_id: "idempotency",
                field: &field,
            },
            &SecretString::from(text),
        )
        .map_err(ApiError::internal)?;
    state
        .store
        .complete_idempotency_key(key, status.as_u16(), sealed.key_id.0, &sealed.bytes)
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn replay(
    state: &AppState,
    key: &IdempotencyKey,
    status: u16,
    sealed: &[u8],
) -> Result<Response, ApiError> {
    let field = aad_field(key);
    let body = state
        .vault
        .open(
            Aad {
                integration_id: "idempotency",
                field: &field,
            },
            sealed,
        )
        .map_err(ApiError::internal)?;
    let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    let mut response = (status, body.expose_secret().to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// Deletes expired keys, at most every [`SWEEP_EVERY_SECS`] per process, off the request path.
fn sweep(state: &AppState, now: chrono::DateTime<Utc>) {
    let last = LAST_SWEEP.load(Ordering::Relaxed);
    if now.timestamp() - last < SWEEP_EVERY_SECS
        || LAST_SWEEP
            .compare_exchange(last, now.timestamp(), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        match store.delete_expired_idempotency_keys(now).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "expired idempotency keys swept"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping idempotency keys failed"),
        }
    });
}

/// Every POST under `/api/` takes `Idempotency-Key`: documented once, here,
/// with its 409 and 422 answers and the `Idempotency-Replayed` header of a replayed success.
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        Content, Ref, RefOr, Response, Type,
        header::Header,
        path::{Parameter, ParameterIn},
        schema::ObjectBuilder,
    };
    let mut key = Parameter::new(HEADER_NAME);
    key.parameter_in = ParameterIn::Header;
    key.required = utoipa::openapi::Required::False;
    key.description = Some(format!(
        "Makes a retry safe: the first answer to this key (with this body, from this token, on \
this route) is kept {} hours and answered again with `Idempotency-Replayed: true`, without \
running again. Successes and 4xx answers are kept; a 408, 409, 429 or 5xx is not, so a retry \
runs. 1–{} visible ASCII characters, such as a UUID.",
        TTL.num_hours(),
        MAX_KEY_LEN
    ));
    key.schema = Some(RefOr::T(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_KEY_LEN))
            .pattern(Some("^[!-~]+$"))
            .into(),
    ));
    let error = |description: &str| {
        let mut r = Response::new(description);
        r.content.insert(
            "application/json".to_owned(),
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        );
        r
    };
    let mut replayed = Header::new(ObjectBuilder::new().schema_type(Type::String));
    replayed.description = Some("`true` on an answer replayed for an Idempotency-Key.".to_owned());
    for (path, item) in doc.paths.paths.iter_mut() {
        let Some(operation) = item.post.as_mut().filter(|_| path.starts_with("/api/")) else {
            continue;
        };
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(key.clone());
        let responses = &mut operation.responses.responses;
        let mut conflict = error(
            "CONFLICT: a request with this Idempotency-Key is still running; Retry-After gives the seconds to wait.",
        );
        let mut wait = Header::new(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        );
        wait.description = Some("Seconds to wait before trying again.".to_owned());
        conflict.headers.insert("Retry-After".to_owned(), wait);
        responses.insert("409".to_owned(), RefOr::T(conflict));
        const OTHER_BODY: &str = "VALIDATION_ERROR (details.field `Idempotency-Key`): the key was first sent with another body";
        match responses
            .entry("422".to_owned())
            .or_insert_with(|| RefOr::T(error("")))
        {
            RefOr::T(r) if r.description.is_empty() => r.description = OTHER_BODY.to_owned(),
            RefOr::T(r) => r.description = format!("{}; or {OTHER_BODY}", r.description),
            RefOr::Ref(_) => {}
        }
        for (status, response) in responses.iter_mut() {
            if let (true, RefOr::T(r)) = (status.starts_with('2'), response) {
                r.headers
                    .insert("Idempotency-Replayed".to_owned(), replayed.clone());
            }
        }
    }
}
