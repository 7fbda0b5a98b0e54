//! System webhooks: `GET/POST /api/webhooks` (list, update existing) and delivery to the
//! configured endpoint with the configured auth header and custom headers.

use std::time::Duration;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{
    errors,
    project::{DEFAULT_RETRY_DELAYS_MS, Project, Shared, Webhook, lock, parse_json},
};

/// Attempts with the default schedule.
pub const MAX_ATTEMPTS: usize = DEFAULT_RETRY_DELAYS_MS.len() + 1;
/// Per attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Basic auth sends the configured token as-is: the stored System Webhooks page shows
/// `Authorization: J1qK…` with no scheme for Basic (ambiguous; inferred to be bare).
pub const BASIC_PREFIX: &str = "";
/// OAuth2 sends `Authorization: OAuth2 <token>` (page example).
pub const OAUTH2_PREFIX: &str = "OAuth2 ";

pub const AUTH_TYPES: &[&str] = &["NoAuth", "Basic", "OAuth2"];

/// Which send flag of a webhook an event needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendKind {
    Blast,
    Triggered,
    /// Not a send (opens, clicks, custom): every enabled webhook.
    Other,
}

/// `ApiWebhookResponse` (no token, no headers).
pub fn public_view(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "endpoint": w.endpoint,
        "enabled": w.enabled,
        "authType": w.auth_type,
        "blastSendEnabled": w.blast_send_enabled,
        "triggeredSendEnabled": w.triggered_send_enabled,
        "channelIds": [],
        "messageTypeIds": [],
    })
}

pub async fn list(State(p): State<Shared>) -> Response {
    let hooks: Vec<Value> = lock(&p.store).webhooks.iter().map(public_view).collect();
    Json(json!({ "webhooks": hooks })).into_response()
}

/// `POST /api/webhooks` updates an existing webhook ("Only the specified fields will be
/// updated"); webhooks are created in the UI only.
pub async fn update(State(p): State<Shared>, body: Bytes) -> Response {
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = v.get("id").and_then(Value::as_u64) else {
        return errors::bad_params("id is required");
    };
    if let Some(t) = v.get("authType").and_then(Value::as_str)
        && !AUTH_TYPES.contains(&t)
    {
        return errors::bad_params(format!("Invalid authType: {t}"));
    }
    let mut store = lock(&p.store);
    let Some(w) = store.webhooks.iter_mut().find(|w| w.id == id) else {
        // Inferred: the SPEC documents only 400 for this call.
        return errors::bad_params(format!("Webhook {id} does not exist"));
    };
    if let Some(e) = v.get("endpoint").and_then(Value::as_str) {
        e.clone_into(&mut w.endpoint);
    }
    if let Some(b) = v.get("enabled").and_then(Value::as_bool) {
        w.enabled = b;
    }
    if let Some(t) = v.get("authType").and_then(Value::as_str) {
        t.clone_into(&mut w.auth_type);
    }
    if let Some(t) = v.get("authToken").and_then(Value::as_str) {
        w.auth_token = Some(t.to_owned());
    }
    if let Some(h) = v.get("headers")
        && let Ok(h) = serde_json::from_value(h.clone())
    {
        w.headers = h;
    }
    if let Some(b) = v.get("blastSendEnabled").and_then(Value::as_bool) {
        w.blast_send_enabled = b;
    }
    if let Some(b) = v.get("triggeredSendEnabled").and_then(Value::as_bool) {
        w.triggered_send_enabled = b;
    }
    Json(public_view(w)).into_response()
}

fn wants(w: &Webhook, kind: SendKind) -> bool {
    w.enabled
        && match kind {
            SendKind::Blast => w.blast_send_enabled,
            SendKind::Triggered => w.triggered_send_enabled,
            SendKind::Other => true,
        }
}

/// Where and how one delivery is sent.
#[derive(Clone, Debug)]
pub struct Target {
    pub webhook_id: Option<u64>,
    pub endpoint: String,
    pub auth_type: String,
    pub auth_token: Option<String>,
    pub headers: Vec<crate::project::Header>,
}

impl From<&Webhook> for Target {
    fn from(w: &Webhook) -> Self {
        Self {
            webhook_id: Some(w.id),
            endpoint: w.endpoint.clone(),
            auth_type: w.auth_type.clone(),
            auth_token: w.auth_token.clone(),
            headers: w.headers.clone(),
        }
    }
}

/// Delivers `event` to every webhook that wants it; returns one record per webhook.
pub async fn deliver(p: &Project, event: &Value, kind: SendKind) -> Vec<Value> {
    let targets: Vec<Target> = lock(&p.store)
        .webhooks
        .iter()
        .filter(|w| wants(w, kind))
        .map(Target::from)
        .collect();
    let schedule = lock(&p.retry_delays).clone();
    let mut records = Vec::new();
    for t in targets {
        records.push(deliver_to(p, &t, event, &schedule).await);
    }
    records
}

/// POSTs `event` to one target: `Content-Type: application/json`, the auth header of its auth
/// type, its custom headers; retried on errors and non-2xx after each wait of `schedule`.
pub async fn deliver_to(p: &Project, t: &Target, event: &Value, schedule: &[u64]) -> Value {
    let max_attempts = schedule.len() + 1;
    let mut attempts = 0;
    let mut last_status: Option<u16> = None;
    let mut last_error: Option<String> = None;
    while attempts < max_attempts {
        if let Some(wait) = attempts.checked_sub(1).and_then(|i| schedule.get(i)) {
            tokio::time::sleep(Duration::from_millis(*wait)).await;
        }
        attempts += 1;
        let mut req = p
            .http
            .post(&t.endpoint)
            .timeout(TIMEOUT)
            .header("content-type", "application/json")
            .body(event.to_string());
        let token = t.auth_token.clone().unwrap_or_default();
        match t.auth_type.as_str() {
            "Basic" => req = req.header("authorization", format!("{BASIC_PREFIX}{token}")),
            "OAuth2" => req = req.header("authorization", format!("{OAUTH2_PREFIX}{token}")),
            _ => {}
        }
        for h in &t.headers {
            req = req.header(h.key.as_str(), h.value.as_str());
        }
        match req.send().await {
            Ok(resp) => {
                let s = resp.status();
                last_status = Some(s.as_u16());
                last_error = None;
                if s.is_success() {
                    break;
                }
            }
            Err(e) => {
                last_status = None;
                last_error = Some(e.to_string());
            }
        }
    }
    let delivered = last_status.is_some_and(|s| (200..300).contains(&s));
    if !delivered {
        tracing::debug!(endpoint = %t.endpoint, attempts, status = ?last_status, error = ?last_error,
            "simulated Iterable system webhook not delivered");
    }
    p.control.incr(if delivered {
        "webhooks_delivered"
    } else {
        "webhooks_failed"
    });
    let record = json!({
        "webhookId": t.webhook_id,
        "endpoint": t.endpoint,
        "eventName": event.get("eventName"),
        "attempts": attempts,
        "status": last_status,
        "error": last_error,
        "delivered": delivered,
        "body": event,
    });
    crate::project::Store::push_record(&mut lock(&p.store).deliveries, record.clone());
    record
}

/// Delivers in the background, as Iterable does after a send; `/_sim/webhooks/flush` waits.
pub fn spawn_delivery(p: &Shared, event: Value, kind: SendKind) {
    let p2 = p.clone();
    let handle = tokio::spawn(async move {
        deliver(&p2, &event, kind).await;
    });
    let mut pending = lock(&p.pending);
    // Finished deliveries need no waiting for; keep the list from growing with every send.
    pending.retain(|h| !h.is_finished());
    pending.push(handle);
}
