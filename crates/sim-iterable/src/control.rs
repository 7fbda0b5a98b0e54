//! Iterable-specific control routes under `/_sim/` (the generic ones come from sim-core).

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sim_core::Rate;

use crate::{
    data::TemplateRec,
    keys::{self, ApiKey},
    project::{Project, Shared, StoredUser, Webhook, lock},
    query::Q,
    users,
    webhooks::{self, SendKind},
};

pub fn router(p: Shared) -> Router {
    Router::new()
        .route("/_sim/info", get(info))
        .route("/_sim/keys", post(add_key))
        .route("/_sim/keys/{value}", delete(remove_key))
        .route(
            "/_sim/rate-limits",
            post(set_rate_limit).delete(clear_rate_limits),
        )
        .route(
            "/_sim/limits",
            post(set_rate_limit).delete(clear_rate_limits),
        )
        .route("/_sim/fixtures", post(load_fixtures))
        .route("/_sim/users", get(get_user))
        .route("/_sim/consent", get(consent_state).post(set_consent))
        .route("/_sim/events", get(get_events))
        .route("/_sim/sends", get(get_sends))
        .route("/_sim/webhooks", post(create_webhook))
        .route("/_sim/webhooks/emit", post(emit))
        .route("/_sim/webhooks/fire", post(fire))
        .route("/_sim/webhooks/schedule", post(set_schedule))
        .route("/_sim/webhooks/flush", post(flush))
        .route("/_sim/webhooks/deliveries", get(deliveries))
        .route("/_sim/jwt", post(mint_jwt))
        .route(
            "/_sim/export/faults",
            post(set_export_faults).delete(clear_export_faults),
        )
        .with_state(p)
}

async fn info(State(p): State<Shared>) -> Json<Value> {
    let store = lock(&p.store);
    Json(json!({
        "platform": "iterable",
        "region": p.region.as_str(),
        "projectId": p.project_id,
        "anchorMs": p.ds.anchor_ms,
        "seed": p.ds.seed,
        "sizes": {
            "campaigns": p.ds.campaigns, "templates": p.ds.templates_total(),
            "lists": p.ds.lists, "users": p.ds.users, "events": p.ds.events,
        },
        "written": {
            "users": store.users.len(), "events": store.events.len(), "sends": store.sends.len(),
            "webhooks": store.webhooks.len(), "deliveries": store.deliveries.len(),
        },
        "keys": lock(&p.keys).all(),
    }))
}

async fn add_key(State(p): State<Shared>, Json(key): Json<ApiKey>) -> StatusCode {
    lock(&p.keys).insert(key);
    StatusCode::CREATED
}

/// Revokes a key: later requests with it get 401 `BadApiKey`.
async fn remove_key(State(p): State<Shared>, Path(value): Path<String>) -> StatusCode {
    if lock(&p.keys).remove(&value) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitBody {
    /// Multiplies every refill period (e.g. `0.01`: a 4/min limit refills in 0.6 s).
    scale: Option<f64>,
    #[serde(default = "get_method")]
    method: String,
    /// The templated route, e.g. `/api/campaigns` or `/api/users/{email}`.
    endpoint: Option<String>,
    amount: Option<u32>,
    per_ms: Option<u64>,
}

fn get_method() -> String {
    "GET".into()
}

/// `{"scale": f}` scales every limit's window; `{"endpoint", "amount", "perMs", "method"?}`
/// overrides one endpoint's limit (per project), so tests reach it in a few requests.
async fn set_rate_limit(State(p): State<Shared>, Json(b): Json<LimitBody>) -> Response {
    if let Some(scale) = b.scale {
        if !(scale.is_finite() && scale > 0.0) {
            return (StatusCode::BAD_REQUEST, "scale must be positive").into_response();
        }
        *lock(&p.time_scale) = scale;
    }
    if let Some(endpoint) = b.endpoint {
        let (Some(amount), Some(per_ms)) = (b.amount, b.per_ms) else {
            return (StatusCode::BAD_REQUEST, "amount and perMs are required").into_response();
        };
        if amount == 0 || per_ms == 0 {
            return (StatusCode::BAD_REQUEST, "amount and perMs must be positive").into_response();
        }
        let key = format!("{} {endpoint}", b.method.to_ascii_uppercase());
        lock(&p.overrides).insert(key, Rate::new(amount, Duration::from_millis(per_ms)));
    }
    p.limiter.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_rate_limits(State(p): State<Shared>) -> StatusCode {
    lock(&p.overrides).clear();
    *lock(&p.time_scale) = 1.0;
    p.limiter.reset();
    StatusCode::NO_CONTENT
}

/// `{"cutAfterRows": n, "times"?: k, "holdAfterRows"?: m}`: export responses are cut off after
/// `n` rows (the next `k` of them, or all) and/or pause after `m` rows until cleared.
async fn set_export_faults(
    State(p): State<Shared>,
    Json(f): Json<crate::project::ExportFaults>,
) -> StatusCode {
    *lock(&p.export_faults) = f;
    StatusCode::NO_CONTENT
}

/// Clears the export faults and lets held responses go on.
async fn clear_export_faults(State(p): State<Shared>) -> StatusCode {
    *lock(&p.export_faults) = Default::default();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FixturesBody {
    campaigns: Option<Vec<Value>>,
    lists: Option<Vec<Value>>,
    channels: Option<Vec<Value>>,
    message_types: Option<Vec<Value>>,
    /// Template records; optional `_templateType` / `_messageMedium` keys drive the filters and
    /// are not served.
    templates: Option<Vec<Value>>,
    /// Flat export rows (`email`, `userId`, other fields); they replace the generated users.
    users: Option<Vec<Value>>,
    /// Rows of `GET /api/campaigns/metrics`: `{"id": …, "<column>": value, …}`.
    campaign_metrics: Option<Vec<serde_json::Map<String, Value>>>,
}

/// Loads recorded records, served verbatim instead of the generated sets.
async fn load_fixtures(State(p): State<Shared>, Json(b): Json<FixturesBody>) -> Response {
    let templates = b.templates.map(|ts| {
        ts.into_iter()
            .map(|mut t| {
                let mut take = |k: &str| {
                    t.as_object_mut()
                        .and_then(|o| o.remove(k))
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                };
                let template_type = take("_templateType");
                let medium = take("_messageMedium");
                TemplateRec {
                    value: t,
                    template_type,
                    medium,
                }
            })
            .collect()
    });
    let mut store = lock(&p.store);
    if b.campaigns.is_some() {
        store.fixtures.campaigns = b.campaigns;
    }
    if b.lists.is_some() {
        store.fixtures.lists = b.lists;
    }
    if b.channels.is_some() {
        store.fixtures.channels = b.channels;
    }
    if b.message_types.is_some() {
        store.fixtures.message_types = b.message_types;
    }
    if templates.is_some() {
        store.fixtures.templates = templates;
    }
    if b.campaign_metrics.is_some() {
        store.fixtures.campaign_metrics = b.campaign_metrics;
    }
    if let Some(us) = b.users {
        store.fixtures.users_replace_generated = true;
        for row in us {
            let Some(mut fields) = row.as_object().cloned() else {
                continue;
            };
            let Some(email) = fields
                .remove("email")
                .and_then(|e| e.as_str().map(str::to_owned))
            else {
                continue;
            };
            let user_id = fields
                .remove("userId")
                .and_then(|e| e.as_str().map(str::to_owned));
            fields.remove("itblInternal.emailDomain");
            let updated_ms = fields
                .get("profileUpdatedAt")
                .and_then(Value::as_str)
                .and_then(crate::data::parse_datetime)
                .unwrap_or_else(Project::now_ms);
            let lower = email.to_ascii_lowercase();
            if let Some(id) = &user_id {
                store.user_ids.insert(id.clone(), lower.clone());
            }
            store.users.insert(
                lower,
                StoredUser {
                    email,
                    user_id,
                    fields,
                    updated_ms,
                },
            );
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `?email=` or `?userId=`: the effective profile, as `getByEmail` would answer.
async fn get_user(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    let u = match (q.get("email"), q.get("userId")) {
        (Some(e), _) => p.user_by_email(e),
        (None, Some(u)) => p.user_by_id(u),
        _ => return (StatusCode::BAD_REQUEST, "email or userId").into_response(),
    };
    match u {
        Some(u) => Json(users::user_response(&u)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsentBody {
    /// Whether the project's CSM enabled the Subscriptions API (default on); off: 404.
    subscriptions_api: Option<bool>,
    /// `users/forget`'s daily cap (default 1000), so a test reaches it in a few calls.
    forget_daily_cap: Option<usize>,
}

/// `{"subscriptionsApi"?: bool, "forgetDailyCap"?: n}`: the project's consent switches.
async fn set_consent(State(p): State<Shared>, Json(b): Json<ConsentBody>) -> StatusCode {
    let mut store = lock(&p.store);
    if let Some(on) = b.subscriptions_api {
        store.subscriptions_api_disabled = !on;
    }
    if let Some(cap) = b.forget_daily_cap {
        store.forget_daily_cap = cap;
    }
    StatusCode::NO_CONTENT
}

/// `?email=`: where one address stands: `exists`, `forgotten`, `deleted`, the unsubscribed
/// channel and message type ids and the lists (`unsubscribed` when any marketing email channel
/// is unsubscribed).
async fn consent_state(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    let Some(email) = q.get("email") else {
        return (StatusCode::BAD_REQUEST, "email").into_response();
    };
    let user = p.user_by_email(email);
    let store = lock(&p.store);
    let lower = email.trim().to_lowercase();
    let field = |k: &str| {
        user.as_ref()
            .and_then(|u| u.fields.get(k).cloned())
            .unwrap_or_else(|| json!([]))
    };
    let channels = field("unsubscribedChannelIds");
    let marketing_email: Vec<u64> = crate::data::CHANNELS
        .iter()
        .filter(|c| c.2 == "Marketing" && c.3 == "Email")
        .map(|c| c.0)
        .collect();
    let unsubscribed = channels.as_array().is_some_and(|a| {
        a.iter()
            .filter_map(Value::as_u64)
            .any(|id| marketing_email.contains(&id))
    });
    Json(json!({
        "email": lower,
        "exists": user.is_some(),
        "forgotten": store.forgotten_emails.contains(&lower),
        "deleted": store.deleted.contains(&lower),
        "unsubscribed": unsubscribed,
        "unsubscribedChannelIds": channels,
        "unsubscribedMessageTypeIds": field("unsubscribedMessageTypeIds"),
        "emailListIds": field("emailListIds"),
        "subscriptionsApi": !store.subscriptions_api_disabled,
        "forgetsToday": store.forget_log.len(),
    }))
    .into_response()
}

/// Events stored through the API (tracked events and sends), oldest first.
async fn get_events(State(p): State<Shared>) -> Json<Value> {
    let store = lock(&p.store);
    let evs: Vec<Value> = store
        .events
        .iter()
        .map(|e| json!({"dataTypeName": e.data_type, "id": e.id, "atMs": e.at_ms, "row": e.row}))
        .collect();
    Json(Value::Array(evs))
}

async fn get_sends(State(p): State<Shared>) -> Json<Value> {
    Json(Value::Array(lock(&p.store).sends.clone()))
}

/// Creates a system webhook, as a user does in Integrations → System Webhooks. One for an
/// endpoint that already has one replaces it and keeps its id (the user edits it in place), so
/// connecting again does not double every delivery.
async fn create_webhook(State(p): State<Shared>, Json(mut w): Json<Webhook>) -> Response {
    if !webhooks::AUTH_TYPES.contains(&w.auth_type.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            "authType must be NoAuth, Basic or OAuth2",
        )
            .into_response();
    }
    let mut store = lock(&p.store);
    let existing = store.webhooks.iter().position(|e| e.endpoint == w.endpoint);
    w.id = existing.map_or(7000 + store.webhooks.len() as u64 + 1, |i| {
        store.webhooks[i].id
    });
    let view = json!({
        "id": w.id, "endpoint": w.endpoint, "enabled": w.enabled, "authType": w.auth_type,
        "blastSendEnabled": w.blast_send_enabled, "triggeredSendEnabled": w.triggered_send_enabled,
    });
    match existing {
        Some(i) => {
            store.webhooks[i] = w;
            (StatusCode::OK, Json(view)).into_response()
        }
        None => {
            store.webhooks.push(w);
            (StatusCode::CREATED, Json(view)).into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmitBody {
    event_name: String,
    email: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    data_fields: serde_json::Map<String, Value>,
    /// `blast`, `triggered` or `other` (default): which send flag the webhook needs.
    #[serde(default)]
    kind: Option<String>,
}

/// Sends one system webhook event now and answers with the delivery records.
async fn emit(State(p): State<Shared>, Json(b): Json<EmitBody>) -> Json<Value> {
    let mut event = serde_json::Map::new();
    if let Some(e) = &b.email {
        event.insert("email".into(), json!(e));
    }
    if let Some(u) = &b.user_id {
        event.insert("userId".into(), json!(u));
    }
    event.insert("eventName".into(), json!(b.event_name));
    event.insert("dataFields".into(), Value::Object(b.data_fields));
    let kind = match b.kind.as_deref() {
        Some("blast") => SendKind::Blast,
        Some("triggered") => SendKind::Triggered,
        _ => SendKind::Other,
    };
    Json(Value::Array(
        webhooks::deliver(&p, &Value::Object(event), kind).await,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FireBody {
    /// Deliver here; absent: to every configured webhook that wants the event.
    url: Option<String>,
    #[serde(default = "no_auth")]
    auth_type: String,
    auth_token: Option<String>,
    #[serde(default)]
    headers: Vec<crate::project::Header>,
    /// Waits between attempts for this call (default: the project's schedule).
    retry_delays_ms: Option<Vec<u64>>,
    event_name: String,
    email: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    data_fields: serde_json::Map<String, Value>,
}

fn no_auth() -> String {
    "NoAuth".into()
}

/// Fires one Iterable system webhook now (`{email, userId?, eventName, dataFields}`) and answers
/// with the delivery records (attempts, final status).
async fn fire(State(p): State<Shared>, Json(b): Json<FireBody>) -> Response {
    if !webhooks::AUTH_TYPES.contains(&b.auth_type.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            "authType must be NoAuth, Basic or OAuth2",
        )
            .into_response();
    }
    let mut event = serde_json::Map::new();
    if let Some(e) = &b.email {
        event.insert("email".into(), json!(e));
    }
    if let Some(u) = &b.user_id {
        event.insert("userId".into(), json!(u));
    }
    event.insert("eventName".into(), json!(b.event_name));
    event.insert("dataFields".into(), Value::Object(b.data_fields));
    let event = Value::Object(event);
    let schedule = b
        .retry_delays_ms
        .unwrap_or_else(|| lock(&p.retry_delays).clone());
    let records = match b.url {
        Some(url) => {
            let t = webhooks::Target {
                webhook_id: None,
                endpoint: url,
                auth_type: b.auth_type,
                auth_token: b.auth_token,
                headers: b.headers,
            };
            vec![webhooks::deliver_to(&p, &t, &event, &schedule).await]
        }
        None => {
            let targets: Vec<webhooks::Target> = lock(&p.store)
                .webhooks
                .iter()
                .filter(|w| w.enabled)
                .map(webhooks::Target::from)
                .collect();
            let mut out = Vec::new();
            for t in targets {
                out.push(webhooks::deliver_to(&p, &t, &event, &schedule).await);
            }
            out
        }
    };
    Json(Value::Array(records)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleBody {
    retry_delays_ms: Vec<u64>,
}

/// Sets the project's webhook retry schedule (attempts = delays + 1).
async fn set_schedule(State(p): State<Shared>, Json(b): Json<ScheduleBody>) -> StatusCode {
    *lock(&p.retry_delays) = b.retry_delays_ms;
    StatusCode::NO_CONTENT
}

/// Waits for background deliveries (after sends) to finish.
async fn flush(State(p): State<Shared>) -> StatusCode {
    loop {
        let handles: Vec<_> = lock(&p.pending).drain(..).collect();
        if handles.is_empty() {
            return StatusCode::NO_CONTENT;
        }
        for h in handles {
            let _ = h.await;
        }
    }
}

async fn deliveries(State(p): State<Shared>) -> Json<Value> {
    Json(Value::Array(lock(&p.store).deliveries.clone()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JwtBody {
    /// The JWT-enabled key whose secret signs; defaults to the sandbox one.
    key: Option<String>,
    email: Option<String>,
    user_id: Option<String>,
    /// Negative values mint an already expired token.
    #[serde(default = "hour")]
    ttl_seconds: i64,
}

fn hour() -> i64 {
    3600
}

/// Mints a JWT for a JWT-enabled key, as a publisher's backend would.
async fn mint_jwt(State(p): State<Shared>, Json(b): Json<JwtBody>) -> Response {
    let value = b.key.unwrap_or_else(|| keys::US_JWT_KEY.to_owned());
    let secret = lock(&p.keys).get(&value).and_then(|k| k.jwt_secret.clone());
    let Some(secret) = secret else {
        return (
            StatusCode::BAD_REQUEST,
            "not a JWT-enabled key of this project",
        )
            .into_response();
    };
    let now = Project::now_ms() / 1000;
    let token = keys::mint_jwt(
        &secret,
        b.email.as_deref(),
        b.user_id.as_deref(),
        now,
        now + b.ttl_seconds,
    );
    Json(json!({ "token": token })).into_response()
}
