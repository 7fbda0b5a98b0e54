//! Under `serve --sandbox`, a connect also does what a new user would otherwise do by hand in
//! the platform's UI: point the simulator's webhooks at the integration's `webhookUrl`, with the
//! credential that our receiver checks (Iterable's system webhook with the webhook secret as its
//! Basic token; Customer.io's reporting webhook signed with the connect's `webhookSigningKey`).
//! Keap's REST hooks register through Keap's own API at connect, sandbox or not. Nothing here
//! can fail a connect: a simulator that does not answer is a warning in the log.

use std::time::Duration;

use domain::{Platform, PublisherId, Region, shapes::Integration};
use secrecy::ExposeSecret;
use serde_json::json;
use sim_core::SimClient;

use crate::{
    integrations,
    platforms::{customerio, iterable},
    state::AppState,
};

/// How long the simulator's control API may take before we give up on it.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Configures the simulator behind a just-connected integration to deliver its webhooks to us,
/// when this server runs the sandbox; otherwise does nothing. Called by the connect handlers
/// once the integration is stored (the dashboard's forms go through them too).
pub async fn on_connect(state: &AppState, publisher: &PublisherId, integration: &Integration) {
    let platform = integration.platform;
    // Keap's REST hooks are registered through its API by the connect itself.
    if !state.config.sandbox || platform == Platform::Keap {
        return;
    }
    let secrets = match state.store.get_integration(publisher, platform).await {
        Ok(Some(record)) => integrations::open_secrets(state, &record).await,
        Ok(None) => return,
        Err(e) => Err(e.into()),
    };
    let secrets = match secrets {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(platform = platform.as_str(), error = %e,
                "sandbox: the new integration's secrets cannot be read; simulator webhooks not configured");
            return;
        }
    };
    let secret = |field: &str| secrets.get(field).map(|s| s.expose_secret().to_owned());
    let up = &state.config.upstreams;
    let eu = integration.region == Some(Region::Eu);
    let (origin, path, body) = match platform {
        Platform::Iterable => {
            let Some(token) = secret(iterable::webhooks::SECRET_FIELD) else {
                return;
            };
            let origin = if eu { &up.iterable_eu } else { &up.iterable_us };
            let body = json!({"endpoint": integration.webhook_url, "authType": "Basic",
                "authToken": token, "enabled": true});
            (origin, "/_sim/webhooks", body)
        }
        Platform::Customerio => {
            let origin = if eu {
                &up.customerio_track_eu
            } else {
                &up.customerio_track_us
            };
            let mut body = json!({"workspace": if eu { "eu" } else { "us" },
                "url": integration.webhook_url});
            match secret(customerio::webhooks::KEY_FIELD) {
                Some(key) => body["signingKey"] = json!(key),
                None => tracing::warn!(
                    "Customer.io connected without webhookSigningKey: the sandbox's reporting \
                     webhook is signed with the workspace's key, which this integration cannot check"
                ),
            }
            (origin, "/_sim/webhooks/reporting", body)
        }
        Platform::Keap => return,
    };
    let sim = SimClient::new(origin.as_str());
    match tokio::time::timeout(TIMEOUT, sim.post(path, &body)).await {
        Ok(Ok(_)) => tracing::info!(
            platform = platform.as_str(),
            "sandbox: the simulator now delivers webhooks to this integration"
        ),
        Ok(Err(e)) => tracing::warn!(platform = platform.as_str(), error = %e,
            "sandbox: could not point the simulator's webhooks at this integration"),
        Err(_) => tracing::warn!(
            platform = platform.as_str(),
            "sandbox: the simulator did not answer in time; its webhooks are not configured"
        ),
    }
}
