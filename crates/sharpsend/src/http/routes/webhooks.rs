//! The public webhook receiver (CONTRACT §8): `POST /webhooks/{platform}/{webhookId}`.

use axum::{
    body::Body,
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use domain::Platform;
use serde_json::json;

use crate::{
    http::{
        error::ApiResult,
        extract::{BODY_LIMIT, too_large},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
    webhooks::{self, Receipt, Reply},
};

/// Receives a platform's webhook for one integration. Not under `/api/`: no bearer token; each
/// platform's own check applies instead — Iterable: the integration's webhook secret as the auth
/// token (`Authorization`) or in `X-SharpSend-Webhook-Secret`; Customer.io: `X-CIO-Signature`
/// (hex HMAC-SHA256 of `v0:{X-CIO-Timestamp}:{body}` under `webhookSigningKey`, timestamp within
/// 5 minutes); Keap: the `X-Hook-Secret` handshake is echoed (200 with the same header), and
/// deliveries are accepted only for the event keys SharpSend subscribed to. A failed check
/// answers 401 and stores nothing; redeliveries are stored once (`duplicates` counts them).
#[utoipa::path(post, path = "/webhooks/{platform}/{webhookId}", tag = "webhooks",
    params(
        ("platform" = Platform, Path),
        ("webhookId" = String, Path, description = "The random id at the end of the integration's `webhookUrl`")),
    request_body(content = Object, description = "The platform's own webhook body, verified on its raw bytes", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or already stored); for a Keap handshake the `X-Hook-Secret` header is echoed", body = Envelope<Receipt>),
        (status = 400, description = "VALIDATION_ERROR: an authentic body that is not the platform's webhook shape", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED: the platform's authenticity check failed; nothing stored", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no integration has this webhook URL", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Path((platform, webhook_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let platform = Platform::parse(&platform).ok_or_else(|| {
        crate::http::error::ApiError::not_found(format!(
            "No webhook receiver for '{platform}': use iterable, customerio or keap."
        ))
    })?;
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| too_large())?;
    Ok(
        match webhooks::receive(&state, platform, &webhook_id, &headers, bytes).await? {
            Reply::Stored(receipt) => Envelope::ok(receipt).into_response(),
            Reply::Handshake { secret } => {
                let mut resp = Envelope::ok(json!({"verified": true})).into_response();
                resp.headers_mut().insert("x-hook-secret", secret);
                resp
            }
        },
    )
}
