//! Iterable system webhooks. Iterable signs nothing; the publisher sets the integration's webhook
//! secret as the webhook's auth token (Auth type Basic: Iterable sends it in `Authorization`,
//! bare or as `Basic <secret>`; a standard `Basic base64(user:secret)` works too; OAuth2 sends
//! `OAuth2 <secret>`) or adds the HTTP header `X-SharpSend-Webhook-Secret: <secret>`. The secret
//! is generated at connect ([`new_secret`]), sealed as the credential `webhookSecret`, shown once
//! in the connect answer and compared in constant time here.

use axum::http::HeaderMap;
use base64::Engine as _;
use connectors::iterable::webhooks as wh;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use store::IntegrationRecord;

use crate::webhooks::{Reply, header, rejected, store_all};
use crate::{
    error::{Error, Result},
    integrations,
    state::AppState,
};

/// The credential field that holds the secret.
pub const SECRET_FIELD: &str = "webhookSecret";

/// A new webhook secret: 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub async fn receive(
    state: &AppState,
    record: &IntegrationRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply> {
    let secrets = integrations::open_secrets(state, record).await?;
    let Some(secret) = secrets.get(SECRET_FIELD) else {
        return Err(rejected(
            "This Iterable integration has no webhook secret yet: reconnect it (POST /api/integrations/iterable/connect) to get one.",
        ));
    };
    let authorization = header(headers, "authorization");
    let custom = header(headers, wh::SECRET_HEADER);
    if authorization.is_none() && custom.is_none() {
        return Err(rejected(
            "Missing webhook secret: set the webhook's auth token (Basic) to the integration's webhook secret, or add the header X-SharpSend-Webhook-Secret.",
        ));
    }
    if !wh::authorized(authorization, custom, secret.expose_secret()) {
        tracing::warn!(integration_id = %record.id, "Iterable webhook with a wrong secret rejected");
        return Err(rejected(
            "Wrong webhook secret: the auth token or X-SharpSend-Webhook-Secret header does not match this integration's webhook secret.",
        ));
    }
    let event = wh::normalize(body)
        .map_err(|e| Error::invalid("body", format!("Not an Iterable system webhook: {e}.")))?;
    let receipt = store_all(state, record, vec![event]).await?;
    Ok(Reply::Stored(receipt))
}
