//! Keap-specific control routes under `/_sim/` (besides sim-core's).

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    config::Limits,
    emails::{self, SentEmail},
    hooks,
    state::{App, AuthorizeMode, Config, lock},
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/_sim/tokens", post(issue_tokens))
        .route("/_sim/tokens/expire", post(expire_token))
        .route("/_sim/tokens/revoke", post(revoke_token))
        .route("/_sim/authorize", post(set_authorize))
        .route("/_sim/hooks", get(list_hooks))
        .route("/_sim/hooks/fire", post(fire_hooks))
        .route("/_sim/limits", get(get_limits).post(set_limits))
        .route("/_sim/config", get(get_config).post(set_config))
        .route("/_sim/stats", get(stats))
        .route("/_sim/emails", get(dump_emails).post(add_emails))
        .route("/_sim/consent", get(consent_state))
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct IssueRequest {
    /// Access-token TTL for this pair (default: the configured TTL).
    expires_in: Option<u64>,
    client_id: Option<String>,
}

/// Issues an access+refresh pair for a client without the browser flow.
async fn issue_tokens(State(app): State<App>, body: Option<Json<IssueRequest>>) -> Response {
    let req = body.map(|Json(r)| r).unwrap_or_default();
    let client = req.client_id.unwrap_or_else(|| crate::CLIENT_ID.to_owned());
    let cfg = app.config();
    let mut oauth = lock(&app.oauth);
    if !oauth.clients.contains_key(&client) {
        return error(StatusCode::NOT_FOUND, "unknown client id");
    }
    let pair = oauth.issue(
        &client,
        req.expires_in.unwrap_or(cfg.access_token_ttl_secs),
        cfg.refresh_token_ttl_secs,
        None,
    );
    (StatusCode::CREATED, Json(pair)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRef {
    access_token: Option<String>,
    refresh_token: Option<String>,
}

/// Expires an access token now (the next call with it gets `access_token_expired`).
async fn expire_token(State(app): State<App>, Json(r): Json<TokenRef>) -> Response {
    let Some(t) = r.access_token else {
        return error(StatusCode::BAD_REQUEST, "accessToken is required");
    };
    match lock(&app.oauth).access.get_mut(&t) {
        Some(g) => {
            g.expires = chrono::Utc::now() - chrono::Duration::seconds(1);
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "unknown access token"),
    }
}

/// Kills a refresh token (and, when given, an access token) as a revoked grant would.
async fn revoke_token(State(app): State<App>, Json(r): Json<TokenRef>) -> Response {
    let mut oauth = lock(&app.oauth);
    let mut found = false;
    if let Some(t) = r.refresh_token {
        found |= oauth.refresh.remove(&t).is_some();
    }
    if let Some(t) = r.access_token {
        found |= oauth.access.remove(&t).is_some();
    }
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "unknown token")
    }
}

#[derive(Debug, Deserialize)]
struct ModeRequest {
    mode: AuthorizeMode,
}

async fn set_authorize(State(app): State<App>, Json(r): Json<ModeRequest>) -> StatusCode {
    lock(&app.config).authorize_mode = r.mode;
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct ConsentQuery {
    email: String,
}

/// `GET /_sim/consent?email=…`: where an address stands: the live contacts holding it, its
/// status (v2 enum; null when no contact holds it and it was never written), `optedIn`, and
/// `deleted` (a contact holding it was deleted through the API).
async fn consent_state(
    State(app): State<App>,
    axum::extract::Query(q): axum::extract::Query<ConsentQuery>,
) -> Json<Value> {
    let email = q.email.trim().to_ascii_lowercase();
    let data = lock(&app.data);
    let contacts: Vec<String> = data
        .contacts
        .all_by_email(&email)
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    let status = crate::addresses::status_of(&data, &email).map(|(s, _)| s);
    Json(json!({
        "email": email,
        "contacts": contacts,
        "status": status.as_deref().map(crate::contacts::v2_opt_status),
        "optedIn": status.as_deref().is_some_and(crate::addresses::marketable),
        "deleted": data.deleted_emails.contains(&email),
    }))
}

async fn list_hooks(State(app): State<App>) -> Json<Value> {
    let hs = lock(&app.hooks);
    Json(json!({
        "hooks": hs.hooks.values().map(|h| json!({
            "key": h.key.to_string(), "eventKey": h.event_key, "hookUrl": h.hook_url, "status": h.status,
        })).collect::<Vec<_>>(),
        "pendingEvents": hs.events.len(),
        "pendingRetries": hs.retries.len(),
    }))
}

async fn fire_hooks(State(app): State<App>) -> Json<hooks::FireReport> {
    Json(hooks::deliver(&app, true).await)
}

/// `GET /_sim/emails`: every record, in the v1 shape (what a test compares against).
async fn dump_emails(State(app): State<App>) -> Json<Value> {
    let data = lock(&app.data);
    Json(json!({"emails": data.emails.iter().map(SentEmail::v1).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddEmails {
    count: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// `POST /_sim/emails {"count", "from", "to"}`: adds `count` generated records sent over
/// `[from, to)` (e.g. more than a client's page cap).
async fn add_emails(State(app): State<App>, Json(r): Json<AddEmails>) -> Response {
    if r.from >= r.to || r.count > 1_000_000 {
        return error(
            StatusCode::BAD_REQUEST,
            "from must be before to, count at most 1000000",
        );
    }
    let mut data = lock(&app.data);
    let first = data.next_email_id();
    let added = emails::generate(
        app.options.seed ^ first,
        &data.contacts,
        r.count,
        first,
        (r.from, r.to),
        Utc::now(),
    );
    let n = added.len();
    data.emails.extend(added);
    data.emails.sort_by_key(|e| (e.sent, e.id));
    (StatusCode::CREATED, Json(json!({"added": n}))).into_response()
}

/// Shallow-merges a JSON patch into a serialisable value.
fn merge<T: serde::Serialize + serde::de::DeserializeOwned>(base: &T, patch: &Value) -> Option<T> {
    let mut v = serde_json::to_value(base).ok()?;
    merge_value(&mut v, patch);
    serde_json::from_value(v).ok()
}

fn merge_value(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge_value(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

async fn get_limits(State(app): State<App>) -> Json<Limits> {
    Json(app.config().limits)
}

/// Overrides limits (partial JSON, e.g. `{"oauth": {"perMinute": 5}}`, or `{"scale": 0.01}` to
/// scale Keap's real limits) and empties the buckets.
async fn set_limits(State(app): State<App>, Json(mut patch): Json<Value>) -> Response {
    let scale = patch
        .as_object_mut()
        .and_then(|m| m.remove("scale"))
        .map(|v| v.as_f64().filter(|f| *f > 0.0));
    let current = match scale {
        None => app.config().limits,
        Some(None) => return error(StatusCode::BAD_REQUEST, "scale must be a positive number"),
        Some(Some(f)) => scaled(&Limits::default(), f),
    };
    let Some(new) = merge(&current, &patch) else {
        return error(StatusCode::BAD_REQUEST, "invalid limits");
    };
    lock(&app.config).limits = new;
    app.limiter.reset();
    lock(&app.quotas).days.clear();
    Json(new).into_response()
}

/// Keap's limits times `f`, at least 1 each.
fn scaled(l: &Limits, f: f64) -> Limits {
    // Limits are small positive integers; the float round trip is exact enough.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let s = |n: u32| ((f64::from(n) * f).round() as u32).max(1);
    let class = |c: crate::config::ClassLimits| crate::config::ClassLimits {
        spike_per_second: s(c.spike_per_second),
        per_minute: s(c.per_minute),
        per_day: s(c.per_day),
    };
    Limits {
        oauth: class(l.oauth),
        key: class(l.key),
        tenant_per_minute: s(l.tenant_per_minute),
        tenant_per_day: s(l.tenant_per_day),
    }
}

async fn get_config(State(app): State<App>) -> Json<Config> {
    Json(app.config())
}

/// Changes run-time settings (partial JSON, e.g. `{"accessTokenTtlSecs": 2, "hookDelayMs": 0}`).
async fn set_config(State(app): State<App>, Json(patch): Json<Value>) -> Response {
    let current = app.config();
    let Some(new) = merge(&current, &patch) else {
        return error(StatusCode::BAD_REQUEST, "invalid config");
    };
    *lock(&app.config) = new.clone();
    app.wake.notify_one();
    Json(new).into_response()
}

async fn stats(State(app): State<App>) -> Json<Value> {
    let data = lock(&app.data);
    Json(json!({
        "contacts": data.contacts.len(),
        "overlayContacts": data.contacts.overlay_len(),
        "tags": data.tags.len(),
        "campaigns": data.campaigns.len(),
        "opportunities": data.opportunities.len(),
        "orders": data.orders.len(),
        "products": data.products.len(),
        "emails": data.emails.len(),
    }))
}
