//! Customer.io-specific control routes under `/_sim/` (served on all six listeners).

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sim_core::lock;

use crate::{
    data::IdKind,
    sim::{Limits, RateSpec, Region, Sim, region_param, workspace_json},
    webhooks::{self, NAMED_EVENTS, Outgoing, ReportingHook, WebhookConfig},
};

type S = Arc<Sim>;

pub fn routes(sim: S) -> Router {
    Router::new()
        .route("/_sim/workspaces", get(workspaces))
        .route("/_sim/limits", get(get_limits).post(set_limits))
        .route("/_sim/redirect", get(get_redirect).post(set_redirect))
        .route("/_sim/people", get(people))
        .route("/_sim/events", get(events))
        .route("/_sim/sends", get(sends))
        .route("/_sim/triggers", get(triggers))
        .route("/_sim/webhooks/fire", post(fire))
        .route("/_sim/webhooks/deliveries", get(deliveries))
        .route(
            "/_sim/webhooks/reporting",
            get(get_reporting).post(set_reporting),
        )
        .route("/_sim/consent", get(consent_state))
        .route(
            "/_sim/webhooks/config",
            get(get_webhook_config).post(set_webhook_config),
        )
        .with_state(sim)
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

async fn workspaces(State(sim): State<S>) -> Json<Value> {
    let o = &sim.origins;
    Json(json!({
        "workspaces": [workspace_json(Region::Us.workspace()), workspace_json(Region::Eu.workspace())],
        "origins": {
            "trackUs": o.track[0], "trackEu": o.track[1],
            "appUs": o.app[0], "appEu": o.app[1],
            "cdpUs": o.cdp[0], "cdpEu": o.cdp[1],
        },
        "namedWebhookEvents": NAMED_EVENTS,
    }))
}

async fn get_limits(State(sim): State<S>) -> Json<Limits> {
    Json(lock(&sim.limits).clone())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LimitsPatch {
    enabled: Option<bool>,
    scale: Option<f64>,
    app: Option<RateSpec>,
    trigger: Option<RateSpec>,
    track: Option<RateSpec>,
    transactional: Option<RateSpec>,
    cdp: Option<RateSpec>,
    /// Back to the documented limits before applying the rest.
    reset: Option<bool>,
}

/// `POST /_sim/limits {"scale"?, "enabled"?, "app"?: {"amount","perMs"}, …, "reset"?}`.
async fn set_limits(State(sim): State<S>, Json(p): Json<LimitsPatch>) -> Response {
    let mut l = if p.reset == Some(true) {
        Limits::default()
    } else {
        lock(&sim.limits).clone()
    };
    if let Some(s) = p.scale {
        if !(s.is_finite() && s > 0.0) {
            return bad("scale must be a positive number");
        }
        l.scale = s;
    }
    if let Some(e) = p.enabled {
        l.enabled = e;
    }
    for (slot, v) in [
        (&mut l.app, p.app),
        (&mut l.trigger, p.trigger),
        (&mut l.track, p.track),
        (&mut l.transactional, p.transactional),
        (&mut l.cdp, p.cdp),
    ] {
        if let Some(v) = v {
            if v.amount == 0 || v.per_ms == 0 {
                return bad("amount and perMs must be positive");
            }
            *slot = v;
        }
    }
    sim.set_limits(l.clone());
    Json(l).into_response()
}

async fn get_redirect(State(sim): State<S>) -> Json<Value> {
    Json(json!({"enabled": sim.redirect_enabled()}))
}

#[derive(Deserialize)]
struct Toggle {
    enabled: bool,
}

/// `POST /_sim/redirect {"enabled": true}`: an EU Track pair on the US Track origin is answered
/// 307 to the same path on the EU origin (as Customer.io redirects EU traffic), instead of 401.
async fn set_redirect(State(sim): State<S>, Json(t): Json<Toggle>) -> Json<Value> {
    sim.redirect
        .store(t.enabled, std::sync::atomic::Ordering::Relaxed);
    Json(json!({"enabled": t.enabled}))
}

#[derive(Deserialize)]
struct PeopleQuery {
    workspace: Option<String>,
    id: Option<String>,
    email: Option<String>,
    cio_id: Option<String>,
}

/// `GET /_sim/people?workspace=us&email=…` (or `id=`, `cio_id=`): the person as stored.
async fn people(State(sim): State<S>, Query(q): Query<PeopleQuery>) -> Response {
    let Some(region) = region_param(q.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    let (kind, value) = match (q.id, q.email, q.cio_id) {
        (Some(v), None, None) => (IdKind::Id, v),
        (None, Some(v), None) => (IdKind::Email, v),
        (None, None, Some(v)) => (IdKind::CioId, v),
        _ => return bad("give exactly one of id, email, cio_id"),
    };
    match sim.store(region).find(kind, &value) {
        Some(p) => Json(p.to_json()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such person"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    workspace: Option<String>,
    customer: Option<String>,
}

/// `GET /_sim/events?workspace=us&customer=…`: events received through Track and CDP.
async fn events(State(sim): State<S>, Query(q): Query<EventsQuery>) -> Response {
    let Some(region) = region_param(q.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    Json(sim.store(region).events(q.customer.as_deref())).into_response()
}

#[derive(Deserialize)]
struct WsQuery {
    workspace: Option<String>,
}

/// `GET /_sim/sends?workspace=us`: transactional messages accepted.
async fn sends(State(sim): State<S>, Query(q): Query<WsQuery>) -> Response {
    let Some(region) = region_param(q.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    Json(sim.store(region).sends()).into_response()
}

/// `GET /_sim/triggers?workspace=us`: broadcast triggers accepted, with their requests.
async fn triggers(State(sim): State<S>, Query(q): Query<WsQuery>) -> Response {
    let Some(region) = region_param(q.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    Json(sim.store(region).triggers.clone()).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fire {
    url: String,
    /// A payload object, or the name of an example (`email_delivered`, …).
    event: Option<Value>,
    /// Exact bytes to send instead of `event` (signature test vectors).
    raw_body: Option<String>,
    signing_key: Option<String>,
    workspace: Option<String>,
    /// Fixed `X-CIO-Timestamp` for every attempt.
    timestamp: Option<Value>,
    retry_schedule_ms: Option<Vec<u64>>,
    /// Answer only when delivery succeeded or every retry failed, with the attempts.
    wait: Option<bool>,
}

/// `POST /_sim/webhooks/fire`.
async fn fire(State(sim): State<S>, Json(f): Json<Fire>) -> Response {
    let Some(region) = region_param(f.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
        return bad("url must be an http(s) URL");
    }
    let (body, event_id) = match (&f.raw_body, &f.event) {
        (Some(raw), _) => {
            let id = serde_json::from_str::<Value>(raw)
                .ok()
                .and_then(|v| v.get("event_id").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            (raw.clone().into_bytes(), id)
        }
        (None, Some(Value::String(name))) => {
            let seeded = sim.store(region).seeded.clone();
            let Some(ev) = webhooks::named_event(name, &seeded) else {
                return bad(&format!(
                    "unknown event name '{name}'; known: {}",
                    NAMED_EVENTS.join(", ")
                ));
            };
            let id = ev["event_id"].as_str().unwrap_or_default().to_owned();
            (ev.to_string().into_bytes(), id)
        }
        (None, Some(Value::Object(m))) => {
            let mut m = m.clone();
            let id = match m.get("event_id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => {
                    let id = webhooks::ulid();
                    m.insert("event_id".into(), json!(id));
                    id
                }
            };
            (Value::Object(m).to_string().into_bytes(), id)
        }
        _ => return bad("give event (an object or a name) or rawBody"),
    };
    let timestamp = match &f.timestamp {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return bad("timestamp must be unix seconds"),
    };
    let config = lock(&sim.webhooks.config).clone();
    let out = Outgoing {
        url: f.url.clone(),
        body: body.clone(),
        event_id: event_id.clone(),
        signing_key: f
            .signing_key
            .clone()
            .unwrap_or_else(|| region.workspace().webhook_signing_key.to_owned()),
        timestamp: timestamp.clone(),
        schedule: f
            .retry_schedule_ms
            .clone()
            .unwrap_or(config.retry_schedule_ms),
        timeout: std::time::Duration::from_millis(config.timeout_ms.max(1)),
    };
    let signature = timestamp
        .as_ref()
        .map(|ts| webhooks::sign(&out.signing_key, ts, &body));
    let mut answer = json!({
        "eventId": event_id,
        "body": String::from_utf8_lossy(&body),
        "timestamp": timestamp,
        "signature": signature,
    });
    if f.wait == Some(true) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        webhooks::enqueue(
            &sim.webhooks,
            webhooks::Job {
                out,
                done: Some(tx),
            },
        );
        let attempts = rx.await.unwrap_or_default();
        answer["delivered"] = json!(
            attempts
                .last()
                .and_then(|a| a.status)
                .is_some_and(|s| (200..300).contains(&s))
        );
        answer["attempts"] = json!(attempts);
        (StatusCode::OK, Json(answer)).into_response()
    } else {
        webhooks::enqueue(&sim.webhooks, webhooks::Job { out, done: None });
        (StatusCode::ACCEPTED, Json(answer)).into_response()
    }
}

async fn deliveries(State(sim): State<S>) -> Json<Value> {
    Json(json!(lock(&sim.webhooks.attempts).clone()))
}

async fn get_webhook_config(State(sim): State<S>) -> Json<WebhookConfig> {
    Json(lock(&sim.webhooks.config).clone())
}

/// `POST /_sim/webhooks/config {"retryScheduleMs": [50, 100], "timeoutMs": 4000}`.
async fn set_webhook_config(
    State(sim): State<S>,
    Json(c): Json<WebhookConfig>,
) -> Json<WebhookConfig> {
    *lock(&sim.webhooks.config) = c.clone();
    Json(c)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportingBody {
    workspace: Option<String>,
    /// Absent or null: the workspace has no reporting webhook.
    url: Option<String>,
    /// Absent: the workspace's sandbox signing key.
    signing_key: Option<String>,
}

/// `POST /_sim/webhooks/reporting {"workspace": "us", "url": "http://…", "signingKey"?}`: the
/// reporting webhook configured in the workspace's UI; the workspace's own events (an API
/// unsubscribe, the event stream) go there, signed with `signingKey`.
async fn set_reporting(State(sim): State<S>, Json(b): Json<ReportingBody>) -> Response {
    let Some(region) = region_param(b.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    if let Some(u) = &b.url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return bad("url must be an http(s) URL");
    }
    if b.signing_key.as_deref().is_some_and(str::is_empty) {
        return bad("signingKey must not be empty");
    }
    lock(&sim.webhooks.reporting)[region.index()] = b.url.map(|url| ReportingHook {
        url,
        signing_key: b
            .signing_key
            .unwrap_or_else(|| region.workspace().webhook_signing_key.to_owned()),
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn get_reporting(State(sim): State<S>) -> Json<Value> {
    let url = |h: &Option<ReportingHook>| h.as_ref().map(|h| h.url.clone());
    let r = lock(&sim.webhooks.reporting).clone();
    Json(json!({"us": url(&r[0]), "eu": url(&r[1])}))
}

#[derive(Deserialize)]
struct ConsentQuery {
    workspace: Option<String>,
    email: Option<String>,
    id: Option<String>,
}

/// `GET /_sim/consent?workspace=us&email=…` (or `id=`): `exists`, `unsubscribed`, `suppressed`
/// (identify calls naming it are ignored) and `deleted` (deleted or suppressed through the API).
async fn consent_state(State(sim): State<S>, Query(q): Query<ConsentQuery>) -> Response {
    let Some(region) = region_param(q.workspace.as_deref()) else {
        return bad("workspace must be us or eu");
    };
    let (kind, value) = match (q.id, q.email) {
        (Some(v), None) => (IdKind::Id, v),
        (None, Some(v)) => (IdKind::Email, v),
        _ => return bad("give exactly one of id, email"),
    };
    let store = sim.store(region);
    let person = store.find(kind, &value);
    Json(json!({
        "exists": person.is_some(),
        "unsubscribed": person.as_ref().is_some_and(|p| p.unsubscribed),
        "suppressed": store.is_suppressed(kind, &value),
        "deleted": store.deleted.contains(&value.to_ascii_lowercase()),
    }))
    .into_response()
}
