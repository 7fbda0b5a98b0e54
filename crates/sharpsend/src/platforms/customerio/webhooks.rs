//! Customer.io reporting webhooks: one signed JSON event per POST.
//!
//! `X-CIO-Signature` is the lowercase hex HMAC-SHA256 of `v0:{X-CIO-Timestamp}:{raw body}` under
//! the workspace's webhook signing key (stored at connect as `webhookSigningKey`); it is checked
//! on the raw bytes in constant time. `X-CIO-Timestamp` (unix seconds) must be within
//! [`TOLERANCE`] of our clock, so a captured delivery cannot be replayed later; a replay within
//! the window is caught by the `event_id` de-duplication. The body is read into our event by
//! [`connectors::customerio::webhooks::normalize`].

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use connectors::customerio::webhooks as wh;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use store::IntegrationRecord;
use subtle::ConstantTimeEq;

use crate::webhooks::{Reply, header, rejected, store_all};
use crate::{
    error::{Error, Result},
    integrations,
    state::AppState,
};

/// How far `X-CIO-Timestamp` may be from now, either way (Customer.io documents none; five
/// minutes is the usual choice, written in docs/webhooks.md).
pub const TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// The credential field that holds the signing key.
pub const KEY_FIELD: &str = "webhookSigningKey";

/// The expected signature of a body.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks signature and timestamp; `Err` is the reason, for the 401.
pub fn verify(
    key: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err("Missing X-CIO-Timestamp or X-CIO-Signature header.");
    };
    let Some(given) = hex::decode(sig.trim()).ok().filter(|g| g.len() == 32) else {
        return Err("X-CIO-Signature is not a hex HMAC-SHA256.");
    };
    let expected = sign(key.as_bytes(), ts, body);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(
            "Signature mismatch: X-CIO-Signature is not the HMAC-SHA256 of v0:{timestamp}:{body} under this integration's webhookSigningKey.",
        );
    }
    let Some(at) = ts
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
    else {
        return Err("X-CIO-Timestamp is not unix seconds.");
    };
    if (now - at).abs() > TOLERANCE {
        return Err(
            "Stale X-CIO-Timestamp: more than 5 minutes from now, so the delivery may be a replay.",
        );
    }
    Ok(())
}

pub async fn receive(
    state: &AppState,
    record: &IntegrationRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply> {
    let secrets = integrations::open_secrets(state, record).await?;
    let Some(key) = secrets.get(KEY_FIELD) else {
        return Err(rejected(
            "This Customer.io integration has no webhook signing key, so deliveries cannot be verified: reconnect with `webhookSigningKey` (Customer.io › Data & Integrations › Reporting Webhooks › your webhook › signing key).",
        ));
    };
    if let Err(reason) = verify(
        key.expose_secret(),
        header(headers, "x-cio-timestamp"),
        header(headers, "x-cio-signature"),
        body,
        Utc::now(),
    ) {
        tracing::warn!(integration_id = %record.id, reason, "Customer.io webhook rejected");
        return Err(rejected(reason));
    }
    let event = wh::normalize(body).map_err(|e| {
        Error::invalid("body", format!("Not a Customer.io reporting webhook: {e}."))
    })?;
    let receipt = store_all(state, record, vec![event]).await?;
    Ok(Reply::Stored(receipt))
}
