//! REST hooks (v1 only, §5): subscriptions, the `X-Hook-Secret` handshake, batched deliveries,
//! retries and the Inactive rules.

use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    config,
    state::{App, Hook, HookStatus, RetryBatch, lock, random_token},
    wire::{json_body, json_response, v1_bad_input, v1_error},
};

const P: &str = "/crm/rest/v1";

pub fn router() -> Router<App> {
    Router::new()
        .route(&format!("{P}/hooks/event_keys"), get(event_keys))
        .route(&format!("{P}/hooks"), get(list).post(create))
        .route(
            &format!("{P}/hooks/{{key}}"),
            get(get_one).put(update).delete(remove),
        )
        .route(&format!("{P}/hooks/{{key}}/verify"), post(verify))
        .route(
            &format!("{P}/hooks/{{key}}/delayedVerify"),
            post(delayed_verify),
        )
}

fn render(h: &Hook) -> Value {
    json!({"key": h.key.to_string(), "eventKey": h.event_key, "hookUrl": h.hook_url, "status": h.status})
}

fn not_found() -> Response {
    v1_error(StatusCode::NOT_FOUND, "Unable to find this RestHook")
}

async fn event_keys() -> Response {
    json_response(StatusCode::OK, &json!(config::EVENT_KEYS))
}

async fn list(State(app): State<App>) -> Response {
    let hooks: Vec<Value> = lock(&app.hooks).hooks.values().map(render).collect();
    json_response(StatusCode::OK, &Value::Array(hooks))
}

fn parse_request(body: &[u8]) -> Result<(String, String), Response> {
    let v = json_body(body)?;
    let event_key = v
        .get("eventKey")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let hook_url = v.get("hookUrl").and_then(Value::as_str).unwrap_or_default();
    if !config::EVENT_KEYS.contains(&event_key) {
        return Err(v1_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid eventKey: {event_key}"),
        ));
    }
    if url::Url::parse(hook_url).is_err() {
        return Err(v1_error(StatusCode::BAD_REQUEST, "Invalid hookUrl"));
    }
    Ok((event_key.to_owned(), hook_url.to_owned()))
}

/// POSTs an empty body with `X-Hook-Secret` to the hook URL; Verified when the receiver answers
/// 200 and echoes the header, else Unverified.
async fn handshake(app: &App, key: u64) -> Option<Hook> {
    let secret = random_token(32);
    let (url, timeout) = {
        let mut hooks = lock(&app.hooks);
        let h = hooks.hooks.get_mut(&key)?;
        h.secret = Some(secret.clone());
        (h.hook_url.clone(), lock(&app.config).hook_timeout_ms)
    };
    app.control.incr("hook_verification");
    let resp = app
        .http
        .post(&url)
        .header("X-Hook-Secret", &secret)
        .timeout(Duration::from_millis(timeout))
        .send()
        .await;
    let ok = resp.is_ok_and(|r| {
        r.status() == reqwest::StatusCode::OK
            && r.headers()
                .get("x-hook-secret")
                .is_some_and(|v| v.as_bytes() == secret.as_bytes())
    });
    let mut hooks = lock(&app.hooks);
    let h = hooks.hooks.get_mut(&key)?;
    h.status = if ok {
        HookStatus::Verified
    } else {
        HookStatus::Unverified
    };
    Some(h.clone())
}

async fn create(State(app): State<App>, body: Bytes) -> Response {
    let (event_key, hook_url) = match parse_request(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let key = {
        let mut hooks = lock(&app.hooks);
        let key = hooks.next_key;
        hooks.next_key += 1;
        hooks.hooks.insert(
            key,
            Hook {
                key,
                event_key,
                hook_url,
                status: HookStatus::Unverified,
                secret: None,
            },
        );
        key
    };
    match handshake(&app, key).await {
        Some(h) => json_response(StatusCode::OK, &render(&h)),
        None => not_found(),
    }
}

fn key_of(s: &str) -> Result<u64, Response> {
    s.parse().map_err(|_| not_found())
}

async fn get_one(State(app): State<App>, Path(key): Path<String>) -> Response {
    let Ok(key) = key_of(&key) else {
        return not_found();
    };
    match lock(&app.hooks).hooks.get(&key) {
        Some(h) => json_response(StatusCode::OK, &render(h)),
        None => not_found(),
    }
}

/// Inferred: a changed subscription is verified again, as on create.
async fn update(State(app): State<App>, Path(key): Path<String>, body: Bytes) -> Response {
    let Ok(key) = key_of(&key) else {
        return not_found();
    };
    let (event_key, hook_url) = match parse_request(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    {
        let mut hooks = lock(&app.hooks);
        let Some(h) = hooks.hooks.get_mut(&key) else {
            return not_found();
        };
        h.event_key = event_key;
        h.hook_url = hook_url;
        h.status = HookStatus::Unverified;
    }
    match handshake(&app, key).await {
        Some(h) => json_response(StatusCode::OK, &render(&h)),
        None => not_found(),
    }
}

async fn remove(State(app): State<App>, Path(key): Path<String>) -> Response {
    let Ok(key) = key_of(&key) else {
        return not_found();
    };
    let mut hooks = lock(&app.hooks);
    if hooks.hooks.remove(&key).is_none() {
        return not_found();
    }
    hooks.retries.retain(|b| b.hook_key != key);
    StatusCode::NO_CONTENT.into_response()
}

/// Re-runs the handshake; this also reactivates an Inactive hook.
async fn verify(State(app): State<App>, Path(key): Path<String>) -> Response {
    let Ok(key) = key_of(&key) else {
        return not_found();
    };
    match handshake(&app, key).await {
        Some(h) => json_response(StatusCode::OK, &render(&h)),
        None => not_found(),
    }
}

/// Delayed confirmation: the caller sends back the secret it received.
async fn delayed_verify(
    State(app): State<App>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(key) = key_of(&key) else {
        return not_found();
    };
    let Some(given) = headers.get("x-hook-secret").and_then(|v| v.to_str().ok()) else {
        return v1_bad_input();
    };
    let mut hooks = lock(&app.hooks);
    let Some(h) = hooks.hooks.get_mut(&key) else {
        return not_found();
    };
    if h.secret.as_deref() != Some(given) {
        return v1_error(StatusCode::BAD_REQUEST, "Invalid X-Hook-Secret");
    }
    h.status = HookStatus::Verified;
    json_response(StatusCode::OK, &render(h))
}

// ---------- delivery ----------

/// What one delivery round did (answer of `POST /_sim/hooks/fire`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FireReport {
    pub attempted: u32,
    pub delivered: u32,
    pub failed: u32,
    pub deactivated: Vec<String>,
}

enum Outcome {
    Ok,
    Gone,
    Failed,
}

async fn post_batch(app: &App, url: &str, body: &Value) -> Outcome {
    let timeout = lock(&app.config).hook_timeout_ms;
    let resp = app
        .http
        .post(url)
        .json(body)
        .timeout(Duration::from_millis(timeout))
        .send()
        .await;
    match resp {
        Ok(r) if r.status().as_u16() == 410 => Outcome::Gone,
        Ok(r) if (200..400).contains(&r.status().as_u16()) => Outcome::Ok,
        _ => Outcome::Failed,
    }
}

/// Delivers what is due (everything when `force`), batching events per subscription (≤ 1000
/// object keys per POST) and rescheduling failures.
pub async fn deliver(app: &App, force: bool) -> FireReport {
    let _guard = app.delivering.lock().await;
    let now = tokio::time::Instant::now();
    let retry_ms = lock(&app.config).hook_retry_ms.clone();
    let mut batches: Vec<RetryBatch> = Vec::new();
    {
        let mut hs = lock(&app.hooks);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut hs.events)
            .into_iter()
            .partition(|e| force || e.due <= now);
        hs.events = later;
        let (due_retries, later): (Vec<_>, Vec<_>) = std::mem::take(&mut hs.retries)
            .into_iter()
            .partition(|b| force || b.due <= now);
        hs.retries = later;
        batches.extend(due_retries);
        // Group by event key, in arrival order.
        let mut keys: Vec<String> = Vec::new();
        for e in &due {
            if !keys.contains(&e.event_key) {
                keys.push(e.event_key.clone());
            }
        }
        for ek in keys {
            let evs: Vec<_> = due.iter().filter(|e| e.event_key == ek).collect();
            let object_type = evs
                .first()
                .map(|e| e.object_type.clone())
                .unwrap_or_default();
            for hook in hs
                .hooks
                .values()
                .filter(|h| h.event_key == ek && h.status == HookStatus::Verified)
            {
                for chunk in evs.chunks(config::HOOK_BATCH_MAX) {
                    let object_keys: Vec<Value> = chunk
                        .iter()
                        .map(|e| {
                            json!({"id": e.id, "apiUrl": "", "timestamp": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)})
                        })
                        .collect();
                    batches.push(RetryBatch {
                        hook_key: hook.key,
                        body: json!({"event_key": ek, "object_type": object_type, "object_keys": object_keys}),
                        attempts: 0,
                        due: now,
                    });
                }
            }
        }
    }
    let mut report = FireReport::default();
    for mut b in batches {
        let url = {
            let hs = lock(&app.hooks);
            match hs.hooks.get(&b.hook_key) {
                Some(h) if h.status == HookStatus::Verified => h.hook_url.clone(),
                _ => continue,
            }
        };
        report.attempted += 1;
        app.control.incr("hook_delivery_attempt");
        let outcome = post_batch(app, &url, &b.body).await;
        b.attempts += 1;
        let mut hs = lock(&app.hooks);
        match outcome {
            Outcome::Ok => {
                report.delivered += 1;
                app.control.incr("hook_delivered");
            }
            Outcome::Gone => {
                report.failed += 1;
                if let Some(h) = hs.hooks.get_mut(&b.hook_key) {
                    h.status = HookStatus::Inactive;
                    report.deactivated.push(h.key.to_string());
                }
                app.control.incr("hook_inactivated");
            }
            Outcome::Failed => {
                report.failed += 1;
                app.control.incr("hook_delivery_failed");
                if b.attempts >= config::HOOK_ATTEMPTS {
                    if let Some(h) = hs.hooks.get_mut(&b.hook_key) {
                        h.status = HookStatus::Inactive;
                        report.deactivated.push(h.key.to_string());
                    }
                    app.control.incr("hook_inactivated");
                } else {
                    let idx = usize::try_from(b.attempts - 1).unwrap_or(0);
                    let wait = retry_ms.get(idx).or(retry_ms.last()).copied().unwrap_or(0);
                    b.due = tokio::time::Instant::now() + Duration::from_millis(wait);
                    hs.retries.push(b);
                }
            }
        }
    }
    report
}

/// The background worker: delivers when something falls due. Ends when the simulator is dropped.
pub fn spawn_worker(app: &App) {
    let weak = std::sync::Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            let Some(app) = weak.upgrade() else { break };
            let next_due = {
                let hs = lock(&app.hooks);
                hs.events
                    .iter()
                    .map(|e| e.due)
                    .chain(hs.retries.iter().map(|b| b.due))
                    .min()
            };
            let now = tokio::time::Instant::now();
            if next_due.is_some_and(|d| d <= now) {
                deliver(&app, false).await;
                continue;
            }
            // Wake on a new event, when the next one falls due, or each second to notice a drop.
            let wait = next_due.map_or(Duration::from_secs(1), |d| {
                (d - now).min(Duration::from_secs(1))
            });
            tokio::select! {
                () = app.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}
