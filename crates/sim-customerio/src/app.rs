//! App API (`api.customer.io` / `api-eu.customer.io`): Bearer App API key; campaigns, segments,
//! broadcasts and their triggers, newsletters, people lookups, transactional sends.

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use base64::Engine as _;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    config::{
        APP_401_BODY, DRAFT_BROADCAST_STATUS, FORBIDDEN_ATTACHMENTS, LAST_PAGE_NEXT,
        MAX_ATTACHMENT_BYTES, MAX_SEND_AT_AHEAD_SECS, MAX_TRANSACTIONAL_BYTES,
        MAX_TRANSACTIONAL_RECIPIENTS, MAX_TRIGGER_DATA_BYTES, MAX_TRIGGER_RECIPIENTS,
        MEMBERSHIP_DEFAULT_LIMIT, MEMBERSHIP_MAX_LIMIT, NEWSLETTERS_DEFAULT_LIMIT,
        NEWSLETTERS_DEFAULT_SORT_ASC, NEWSLETTERS_MAX_LIMIT, TRIGGER_401_DETAIL,
        UNKNOWN_TRANSACTIONAL_STATUS,
    },
    data::{IdKind, NEWSLETTER_ID_BASE},
    resp::{app_json, app_ok, empty, jsonapi_error, meta_error, newsletter_error, referenced},
    sim::{Class, Ctx, Region, app_workspace, parse_auth},
    store::{Person, now},
};

/// What the auth middleware hands the handlers.
#[derive(Clone, Copy, Debug)]
struct AppKey {
    region: Region,
    key: &'static str,
}

/// The App router, also answering the legacy spelling `/v1/api/…` (still seen in docs and
/// integrations, e.g. `https://api.customer.io/v1/api/campaigns/:id/triggers`).
pub fn router(ctx: Ctx) -> Router {
    let routes = routes(ctx);
    let rewritten = tower::ServiceBuilder::new()
        .map_request(strip_legacy_prefix)
        .service(routes);
    Router::new().fallback_service(rewritten)
}

fn strip_legacy_prefix(mut req: Request) -> Request {
    let legacy = req.uri().path().strip_prefix("/v1/api/").map(str::to_owned);
    if let Some(rest) = legacy {
        let pq = match req.uri().query() {
            Some(q) => format!("/v1/{rest}?{q}"),
            None => format!("/v1/{rest}"),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(p) = pq.parse() {
            parts.path_and_query = Some(p);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

fn routes(ctx: Ctx) -> Router {
    Router::new()
        .route("/v1/campaigns", get(list_campaigns))
        .route("/v1/campaigns/{id}", get(get_campaign))
        .route("/v1/campaigns/{id}/metrics", get(campaign_metrics))
        .route("/v1/broadcasts/{id}/metrics", get(broadcast_metrics))
        .route("/v1/newsletters/{id}/metrics", get(newsletter_metrics))
        .route("/v1/campaigns/{id}/triggers", post(trigger_broadcast))
        .route("/v1/campaigns/{id}/triggers/{trigger_id}", get(get_trigger))
        .route(
            "/v1/campaigns/{id}/triggers/{trigger_id}/errors",
            get(trigger_errors),
        )
        .route("/v1/segments", get(list_segments))
        .route("/v1/segments/{id}", get(get_segment))
        .route("/v1/segments/{id}/customer_count", get(segment_count))
        .route("/v1/segments/{id}/membership", get(segment_membership))
        .route("/v1/broadcasts", get(list_broadcasts))
        .route("/v1/broadcasts/{id}", get(get_broadcast))
        .route("/v1/broadcasts/{id}/triggers", get(list_triggers))
        .route("/v1/newsletters", get(list_newsletters))
        .route("/v1/newsletters/{id}", get(get_newsletter))
        .route(
            "/v1/customers",
            get(customers_by_email).post(search_customers),
        )
        .route("/v1/customers/{id}/attributes", get(customer_attributes))
        .route("/v1/customers/{id}/segments", get(customer_segments))
        .route("/v1/transactional", get(list_transactional))
        .route("/v1/transactional/{id}", get(get_transactional))
        .route("/v1/send/email", post(send_email))
        .route("/v1/send/push", post(send_push))
        .route("/v1/send/sms", post(send_sms))
        .route("/v1/send/in_app", post(send_in_app))
        .route("/v1/exports", get(list_exports))
        .route("/v1/workspaces", get(list_workspaces))
        .route_layer(middleware::from_fn_with_state(ctx.clone(), app_auth))
        .with_state(ctx)
}

fn is_trigger_path(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    parts.len() >= 4 && parts[0] == "v1" && parts[1] == "campaigns" && parts[3] == "triggers"
}

/// Bearer App API key of this region; then the limits (transactional, or the general 10/s; the
/// trigger limit is per broadcast, in its handler).
async fn app_auth(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let auth = parse_auth(req.headers());
    let ws = app_workspace(&auth).filter(|ws| Region::of(ws) == ctx.region);
    let Some(ws) = ws else {
        ctx.sim.control.incr("401");
        if is_trigger_path(&path) {
            return jsonapi_error(StatusCode::UNAUTHORIZED, TRIGGER_401_DETAIL);
        }
        return if APP_401_BODY.is_empty() {
            empty(StatusCode::UNAUTHORIZED)
        } else {
            app_json(StatusCode::UNAUTHORIZED, &json!(APP_401_BODY))
        };
    };
    let is_trigger_post = req.method() == axum::http::Method::POST && is_trigger_path(&path);
    if !is_trigger_post {
        let class = if path.starts_with("/v1/send/") {
            Class::Transactional
        } else {
            Class::App
        };
        if let Some(r) = ctx.sim.limit(class, ws.app_api_key, &path) {
            return r;
        }
    }
    req.extensions_mut().insert(AppKey {
        region: Region::of(ws),
        key: ws.app_api_key,
    });
    next.run(req).await
}

fn parse_id(s: &str) -> Option<u64> {
    s.parse::<u64>().ok()
}

// ---------------------------------------------------------------- campaigns

async fn list_campaigns(State(ctx): State<Ctx>, Extension(k): Extension<AppKey>) -> Response {
    let store = ctx.sim.store(k.region);
    let campaigns: Vec<Value> = (1..=store.seeded.sizes.campaigns)
        .map(|id| store.seeded.campaign(id))
        .collect();
    app_ok(&json!({"campaigns": campaigns}))
}

async fn get_campaign(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    match parse_id(&id).filter(|id| store.seeded.campaign_exists(*id)) {
        Some(id) => app_ok(&json!({"campaign": store.seeded.campaign(id)})),
        None => empty(StatusCode::NOT_FOUND),
    }
}

// ---------------------------------------------------------------- metrics

#[derive(Deserialize)]
struct MetricsQuery {
    period: Option<String>,
    steps: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The three metrics endpoints: the object must exist (404 otherwise, as its GET), `period`
/// one of hours/days/weeks (default days), `steps` 1..=the period's maximum (default it).
fn metrics_answer(ctx: &Ctx, k: AppKey, object: u64, id: &str, q: &MetricsQuery) -> Response {
    let store = ctx.sim.store(k.region);
    let exists = |id: u64| match object {
        0 => store.seeded.campaign_exists(id),
        1 => store.seeded.broadcast_exists(id),
        _ => store.seeded.newsletter_exists(id),
    };
    let Some(id) = parse_id(id).filter(|id| exists(*id)) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let period_name = q.period.as_deref().unwrap_or("days");
    let Some((len, max)) = crate::metrics::period(period_name) else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            "period must be one of hours, days, weeks",
        );
    };
    let steps = match q.steps.as_deref().map(str::parse::<u64>) {
        None => max,
        Some(Ok(s)) if (1..=max).contains(&s) => s,
        _ => {
            return meta_error(
                StatusCode::BAD_REQUEST,
                &format!("steps must be between 1 and {max} for {period_name}"),
            );
        }
    };
    if let Some(t) = q.kind.as_deref()
        && ![
            "email", "webhook", "twilio", "whatsapp", "slack", "push", "in_app", "inbox",
        ]
        .contains(&t)
    {
        return meta_error(StatusCode::BAD_REQUEST, "unknown type");
    }
    app_ok(&crate::metrics::series(
        &store.seeded,
        object,
        id,
        len,
        steps,
        now(),
    ))
}

async fn campaign_metrics(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> Response {
    metrics_answer(&ctx, k, 0, &id, &q)
}

async fn broadcast_metrics(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> Response {
    metrics_answer(&ctx, k, 1, &id, &q)
}

async fn newsletter_metrics(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> Response {
    metrics_answer(&ctx, k, 2, &id, &q)
}

// ---------------------------------------------------------------- segments

async fn list_segments(State(ctx): State<Ctx>, Extension(k): Extension<AppKey>) -> Response {
    let store = ctx.sim.store(k.region);
    let segments: Vec<Value> = (1..=store.seeded.segment_count())
        .map(|id| store.seeded.segment(id, store.segment_count(id)))
        .collect();
    app_ok(&json!({"segments": segments}))
}

async fn get_segment(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    match parse_id(&id).filter(|id| store.seeded.segment_exists(*id)) {
        Some(id) => app_ok(&json!({"segment": store.seeded.segment(id, store.segment_count(id))})),
        None => empty(StatusCode::NOT_FOUND),
    }
}

async fn segment_count(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    match parse_id(&id).filter(|id| store.seeded.segment_exists(*id)) {
        Some(id) => app_ok(&json!({"count": store.segment_count(id)})),
        None => empty(StatusCode::NOT_FOUND),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    start: Option<String>,
    limit: Option<String>,
    sort: Option<String>,
}

/// Opaque `next` tokens: base64url of `"{kind}:{scope}:{offset}"`.
pub fn encode_cursor(kind: &str, scope: u64, offset: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{scope}:{offset}"))
}

pub fn decode_cursor(token: &str, kind: &str, scope: u64) -> Option<u64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let mut parts = s.splitn(3, ':');
    if parts.next()? != kind || parts.next()?.parse::<u64>().ok()? != scope {
        return None;
    }
    parts.next()?.parse().ok()
}

fn parse_limit(raw: Option<&str>, default: u64, max: u64) -> Result<u64, String> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!("limit must be a positive integer, got '{s}'")),
            // Over the maximum is clamped (inferred).
            Ok(n) => Ok(n.min(max)),
        },
    }
}

/// `GET /v1/segments/{id}/membership?start&limit` → `{"identifiers","ids","next"}`.
async fn segment_membership(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let store = ctx.sim.store(k.region);
    let Some(id) = parse_id(&id).filter(|id| store.seeded.segment_exists(*id)) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let limit = match parse_limit(
        q.limit.as_deref(),
        MEMBERSHIP_DEFAULT_LIMIT,
        MEMBERSHIP_MAX_LIMIT,
    ) {
        Ok(l) => l,
        Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
    };
    let start = match q.start.as_deref() {
        None | Some("") => 0,
        Some(t) => match decode_cursor(t, "m", id) {
            Some(o) => o,
            None => return meta_error(StatusCode::BAD_REQUEST, "invalid start cursor"),
        },
    };
    let members = store.segment_members(id, start, limit);
    let end = start.saturating_add(limit);
    let next = if end < store.segment_positions(id) {
        encode_cursor("m", id, end)
    } else {
        LAST_PAGE_NEXT.to_owned()
    };
    let identifiers: Vec<Value> = members.iter().map(Person::identifiers).collect();
    let ids: Vec<String> = members
        .iter()
        .map(|p| p.id.clone().unwrap_or_default())
        .collect();
    app_ok(&json!({"identifiers": identifiers, "ids": ids, "next": next}))
}

// ---------------------------------------------------------------- broadcasts and triggers

async fn list_broadcasts(State(ctx): State<Ctx>, Extension(k): Extension<AppKey>) -> Response {
    let store = ctx.sim.store(k.region);
    let list: Vec<Value> = store
        .seeded
        .broadcast_ids()
        .map(|id| store.seeded.broadcast(id))
        .collect();
    app_ok(&json!({"broadcasts": list}))
}

async fn get_broadcast(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    match parse_id(&id).filter(|id| store.seeded.broadcast_exists(*id)) {
        Some(id) => app_ok(&json!({"broadcast": store.seeded.broadcast(id)})),
        None => empty(StatusCode::NOT_FOUND),
    }
}

fn trigger_view(t: &Value) -> Value {
    json!({
        "id": t["id"],
        "broadcast_id": t["broadcast_id"],
        "created_at": t["created_at"],
        "processed_at": t["processed_at"],
    })
}

async fn list_triggers(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    let Some(id) = parse_id(&id).filter(|id| store.seeded.broadcast_exists(*id)) else {
        return jsonapi_error(StatusCode::NOT_FOUND, &referenced("not found"));
    };
    let list: Vec<Value> = store
        .triggers
        .iter()
        .filter(|t| t["broadcast_id"] == json!(id))
        .map(trigger_view)
        .collect();
    app_ok(&json!({"triggers": list}))
}

/// An array of strings (the spec's `ids` / `emails` items are strings).
fn string_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_owned))
        .collect()
}

/// `POST /v1/campaigns/{broadcast_id}/triggers` → `{"id"}`; 1 per 10 s per broadcast.
async fn trigger_broadcast(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/campaigns/{id}/triggers");
    let exists = parse_id(&id).filter(|b| ctx.sim.store(k.region).seeded.broadcast_exists(*b));
    let Some(bid) = exists else {
        return jsonapi_error(StatusCode::NOT_FOUND, &referenced("not found"));
    };
    if let Some(r) = ctx
        .sim
        .limit(Class::Trigger, &format!("{}:{bid}", k.key), &path)
    {
        return r;
    }
    let bad = |detail: String| jsonapi_error(StatusCode::BAD_REQUEST, &detail);
    let body: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => return bad(referenced("bad request")),
        }
    };
    let audiences: Vec<&str> = [
        "recipients",
        "emails",
        "ids",
        "per_user_data",
        "data_file_url",
    ]
    .into_iter()
    .filter(|a| body.contains_key(*a))
    .collect();
    if audiences.len() > 1 {
        return bad(referenced("bad request"));
    }
    if let Some(data) = body.get("data")
        && (!data.is_object() || data.to_string().len() > MAX_TRIGGER_DATA_BYTES)
    {
        return bad(referenced("bad request"));
    }
    // Customer.io downloads the data file when it processes the trigger; a failed download
    // shows on the trigger's errors endpoint as a 403 with `"next": 0`.
    let file_error = match body.get("data_file_url").and_then(Value::as_str) {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            fetch_data_file(u).await
        }
        _ => None,
    };
    let ignore_missing_ids = body.get("id_ignore_missing").and_then(Value::as_bool) == Some(true);
    let ignore_missing_emails =
        body.get("email_ignore_missing").and_then(Value::as_bool) == Some(true);
    let mut store = ctx.sim.store(k.region);
    if store.seeded.broadcast_is_draft(bid) {
        let status =
            StatusCode::from_u16(DRAFT_BROADCAST_STATUS).unwrap_or(StatusCode::BAD_REQUEST);
        return jsonapi_error(status, &referenced("bad request"));
    }
    let mut errors: Vec<Value> = Vec::new();
    let mut recipients = 0usize;
    let mut malformed_user_data = false;
    match audiences.first().copied() {
        Some("ids") | Some("emails") => {
            let key = audiences[0];
            let Some(list) = body.get(key).and_then(string_list) else {
                return bad(referenced("bad request"));
            };
            if list.len() > MAX_TRIGGER_RECIPIENTS {
                return bad(referenced("bad request"));
            }
            let (kind, ignore) = if key == "ids" {
                (IdKind::Id, ignore_missing_ids)
            } else {
                (IdKind::Email, ignore_missing_emails)
            };
            for v in &list {
                if store.find(kind, v).is_some() {
                    recipients += 1;
                } else if !ignore {
                    errors.push(json!({"reason": "not found", kind.as_str(): v}));
                }
            }
        }
        Some("per_user_data") => {
            let Some(list) = body.get("per_user_data").and_then(Value::as_array) else {
                return bad(referenced("bad request"));
            };
            if list.len() > MAX_TRIGGER_RECIPIENTS {
                return bad(referenced("bad request"));
            }
            for (i, entry) in list.iter().enumerate() {
                let id = entry.get("id").filter(|v| !v.is_null());
                let email = entry.get("email").filter(|v| !v.is_null());
                let data_ok = entry.get("data").is_none_or(Value::is_object);
                let who = match (id, email) {
                    (Some(v), None) => Some((IdKind::Id, v)),
                    (None, Some(v)) => Some((IdKind::Email, v)),
                    _ => None,
                };
                let Some((kind, v)) = who.filter(|_| data_ok) else {
                    malformed_user_data = true;
                    errors.push(json!({"reason": "malformed per_user_data entry", "index": i}));
                    continue;
                };
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                let ignore = if kind == IdKind::Id {
                    ignore_missing_ids
                } else {
                    ignore_missing_emails
                };
                if store.find(kind, &v).is_some() {
                    recipients += 1;
                } else if !ignore {
                    errors.push(json!({"reason": "not found", kind.as_str(): v}));
                }
            }
        }
        Some("data_file_url") => {
            let ok = body
                .get("data_file_url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("https://") || u.starts_with("http://"));
            if !ok {
                return bad(referenced("bad request"));
            }
        }
        Some(_) => {
            if !body.get("recipients").is_some_and(Value::is_object) {
                return bad(referenced("bad request"));
            }
        }
        None => {
            // The broadcast's default audience.
            recipients = usize::try_from(store.seeded.sizes.people).unwrap_or(usize::MAX);
        }
    }
    let tid = store.triggers.len() as u64 + 1;
    let t = now();
    store.triggers.push(json!({
        "id": tid,
        "broadcast_id": bid,
        "created_at": t,
        "processed_at": t,
        "recipients": recipients,
        "errors": errors,
        "file_error": file_error,
        "request": Value::Object(body),
    }));
    drop(store);
    ctx.sim.control.incr("broadcast_trigger");
    if malformed_user_data {
        return app_json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"errors": [{
                "detail": format!("Errors were found while processing per user data (ids, emails or json data). More detail available from the errors endpoint for trigger {tid}"),
                "source": {"pointer": "/data/attributes/per_user_data"},
                "status": "422",
            }]}),
        );
    }
    app_ok(&json!({"id": tid}))
}

/// Downloads a trigger's `data_file_url`; the error text Customer.io reports when it fails.
async fn fetch_data_file(url: &str) -> Option<String> {
    let res = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    match res {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!(
            "failed to download data file, server responded with code {} {}",
            r.status().as_u16(),
            r.status().canonical_reason().unwrap_or("")
        )),
        Err(e) => Some(format!("failed to download data file: {e}")),
    }
}

#[derive(Deserialize)]
struct TriggerPath {
    id: String,
    trigger_id: String,
}

fn find_trigger(ctx: &Ctx, region: Region, p: &TriggerPath) -> Option<Value> {
    let bid = parse_id(&p.id)?;
    let tid = parse_id(&p.trigger_id)?;
    ctx.sim
        .store(region)
        .triggers
        .iter()
        .find(|t| t["id"] == json!(tid) && t["broadcast_id"] == json!(bid))
        .cloned()
}

async fn get_trigger(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(p): Path<TriggerPath>,
) -> Response {
    match find_trigger(&ctx, k.region, &p) {
        Some(t) => app_ok(&trigger_view(&t)),
        None => jsonapi_error(StatusCode::NOT_FOUND, &referenced("not found")),
    }
}

async fn trigger_errors(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(p): Path<TriggerPath>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some(t) = find_trigger(&ctx, k.region, &p) else {
        return jsonapi_error(StatusCode::NOT_FOUND, &referenced("not found"));
    };
    if let Some(e) = t["file_error"].as_str() {
        // The documented shape of this one case: plain strings and a numeric `next`.
        return app_json(StatusCode::FORBIDDEN, &json!({"errors": [e], "next": 0}));
    }
    let errors = t["errors"].as_array().cloned().unwrap_or_default();
    let scope = parse_id(&p.trigger_id).unwrap_or(0);
    let limit = match parse_limit(q.limit.as_deref(), 100, 1000) {
        Ok(l) => l,
        Err(e) => return jsonapi_error(StatusCode::BAD_REQUEST, &e),
    };
    let start = match q.start.as_deref() {
        None | Some("") => 0,
        Some(tok) => match decode_cursor(tok, "e", scope) {
            Some(o) => o,
            None => return jsonapi_error(StatusCode::BAD_REQUEST, &referenced("bad request")),
        },
    };
    let from = usize::try_from(start)
        .unwrap_or(usize::MAX)
        .min(errors.len());
    let to = from
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(errors.len());
    let next = if to < errors.len() {
        encode_cursor("e", scope, to as u64)
    } else {
        LAST_PAGE_NEXT.to_owned()
    };
    app_ok(&json!({"errors": errors[from..to], "next": next}))
}

// ---------------------------------------------------------------- newsletters

/// `GET /v1/newsletters?limit&sort&start` → `{"newsletters","next"}`; the errors of this family
/// are `{"errors":[{"detail"}]}`.
async fn list_newsletters(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Query(q): Query<PageQuery>,
) -> Response {
    let store = ctx.sim.store(k.region);
    let n = store.seeded.sizes.newsletters;
    let limit = match parse_limit(
        q.limit.as_deref(),
        NEWSLETTERS_DEFAULT_LIMIT,
        NEWSLETTERS_MAX_LIMIT,
    ) {
        Ok(l) => l,
        Err(e) => return newsletter_error(StatusCode::BAD_REQUEST, &e),
    };
    // Inferred default order: newest first.
    let asc = match q.sort.as_deref() {
        None | Some("") => NEWSLETTERS_DEFAULT_SORT_ASC,
        Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return newsletter_error(
                StatusCode::BAD_REQUEST,
                &format!("sort must be asc or desc, got '{other}'"),
            );
        }
    };
    let scope = u64::from(asc);
    let start = match q.start.as_deref() {
        None | Some("") => 0,
        Some(t) => match decode_cursor(t, "n", scope) {
            Some(o) => o,
            None => return newsletter_error(StatusCode::BAD_REQUEST, "invalid start cursor"),
        },
    };
    let end = start.saturating_add(limit).min(n);
    let list: Vec<Value> = (start..end)
        .map(|pos| {
            let k = if asc { pos + 1 } else { n - pos };
            store.seeded.newsletter(NEWSLETTER_ID_BASE + k)
        })
        .collect();
    let next = if end < n {
        encode_cursor("n", scope, end)
    } else {
        LAST_PAGE_NEXT.to_owned()
    };
    app_ok(&json!({"newsletters": list, "next": next}))
}

async fn get_newsletter(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    match parse_id(&id).filter(|id| store.seeded.newsletter_exists(*id)) {
        Some(id) => app_ok(&json!({"newsletter": store.seeded.newsletter(id)})),
        None => newsletter_error(StatusCode::NOT_FOUND, "newsletter not found"),
    }
}

// ---------------------------------------------------------------- people

#[derive(Deserialize)]
struct EmailQuery {
    email: Option<String>,
}

/// `GET /v1/customers?email=` → `{"results":[{email,id,cio_id}]}` (empty when none).
async fn customers_by_email(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Query(q): Query<EmailQuery>,
) -> Response {
    let Some(email) = q.email.filter(|e| !e.is_empty()) else {
        return meta_error(StatusCode::BAD_REQUEST, "email is required");
    };
    let store = ctx.sim.store(k.region);
    let results: Vec<Value> = store
        .find(IdKind::Email, &email)
        .iter()
        .map(Person::identifiers)
        .collect();
    app_ok(&json!({"results": results}))
}

/// `POST /v1/customers?start&limit` with `{"filter":…}`: supports `segment:{id}`,
/// `attribute:{field,operator:eq|exists,value}`, `and`/`or`/`not` over the seeded and written
/// people of segment 1 (everyone). Answers `{"identifiers","ids","next"}`.
async fn search_customers(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Query(q): Query<PageQuery>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            "request body must be a JSON object",
        );
    };
    let Some(filter) = body.get("filter").cloned() else {
        return meta_error(StatusCode::BAD_REQUEST, "filter is required");
    };
    let limit = match parse_limit(q.limit.as_deref(), 50, 1000) {
        Ok(l) => l,
        Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
    };
    let start = match q.start.as_deref() {
        None | Some("") => 0,
        Some(t) => match decode_cursor(t, "s", 0) {
            Some(o) => o,
            None => return meta_error(StatusCode::BAD_REQUEST, "invalid start cursor"),
        },
    };
    let store = ctx.sim.store(k.region);
    let everyone = store.segment_positions(1);
    let mut found = Vec::new();
    let mut pos = start;
    // Scan at most this many people per request (search is paged by scan position).
    let scan_end = start.saturating_add(limit.saturating_mul(20)).min(everyone);
    while pos < scan_end && (found.len() as u64) < limit {
        for p in store.segment_members(1, pos, 1) {
            match matches_filter(&store, &p, &filter) {
                Ok(true) => found.push(p),
                Ok(false) => {}
                Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
            }
        }
        pos += 1;
    }
    let next = if pos < everyone {
        encode_cursor("s", 0, pos)
    } else {
        LAST_PAGE_NEXT.to_owned()
    };
    let identifiers: Vec<Value> = found.iter().map(Person::identifiers).collect();
    let ids: Vec<String> = found
        .iter()
        .map(|p| p.id.clone().unwrap_or_default())
        .collect();
    app_ok(&json!({"identifiers": identifiers, "ids": ids, "next": next}))
}

fn matches_filter(store: &crate::store::Store, p: &Person, f: &Value) -> Result<bool, String> {
    let Some(m) = f.as_object() else {
        return Err("filter must be an object".into());
    };
    if let Some(list) = m.get("and").and_then(Value::as_array) {
        for x in list {
            if !matches_filter(store, p, x)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(list) = m.get("or").and_then(Value::as_array) {
        for x in list {
            if matches_filter(store, p, x)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(x) = m.get("not") {
        return Ok(!matches_filter(store, p, x)?);
    }
    if let Some(seg) = m.get("segment") {
        let id = seg
            .get("id")
            .and_then(Value::as_u64)
            .ok_or("segment.id must be an integer")?;
        return Ok(store.in_segment(id, p));
    }
    if let Some(attr) = m.get("attribute") {
        let field = attr
            .get("field")
            .and_then(Value::as_str)
            .ok_or("attribute.field is required")?;
        let actual = match field {
            "email" => p.email.clone().map(Value::String),
            "id" => p.id.clone().map(Value::String),
            "cio_id" => Some(Value::String(p.cio_id.clone())),
            other => p.attributes.get(other).cloned(),
        };
        return match attr.get("operator").and_then(Value::as_str) {
            Some("exists") => Ok(actual.is_some()),
            Some("eq") => {
                let want = attr.get("value").cloned().unwrap_or(Value::Null);
                Ok(match (&actual, &want) {
                    (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
                    (Some(a), b) => {
                        a == b
                            || a.as_str()
                                .is_some_and(|a| b.as_f64().is_some_and(|b| a == b.to_string()))
                    }
                    (None, _) => false,
                })
            }
            _ => Err("attribute.operator must be eq or exists".into()),
        };
    }
    Err("unsupported filter".into())
}

#[derive(Deserialize)]
struct IdTypeQuery {
    id_type: Option<String>,
}

fn find_customer(ctx: &Ctx, region: Region, id: &str, q: &IdTypeQuery) -> Option<Person> {
    let kind = match q.id_type.as_deref() {
        None | Some("id") => IdKind::Id,
        Some("email") => IdKind::Email,
        Some("cio_id") => IdKind::CioId,
        Some(_) => return None,
    };
    ctx.sim.store(region).find(kind, id)
}

async fn customer_attributes(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    Query(q): Query<IdTypeQuery>,
) -> Response {
    match find_customer(&ctx, k.region, &id, &q) {
        Some(p) => app_ok(&json!({"customer": p.to_json()})),
        None => empty(StatusCode::NOT_FOUND),
    }
}

async fn customer_segments(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
    Query(q): Query<IdTypeQuery>,
) -> Response {
    let Some(p) = find_customer(&ctx, k.region, &id, &q) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let store = ctx.sim.store(k.region);
    let segs: Vec<Value> = (1..=store.seeded.segment_count())
        .filter(|s| store.in_segment(*s, &p))
        .map(|s| store.seeded.segment(s, store.segment_count(s)))
        .collect();
    app_ok(&json!({"segments": segs}))
}

// ---------------------------------------------------------------- transactional

async fn list_transactional(State(ctx): State<Ctx>, Extension(k): Extension<AppKey>) -> Response {
    let store = ctx.sim.store(k.region);
    let list: Vec<Value> = (1..=store.seeded.sizes.transactional)
        .map(|id| store.seeded.transactional(id))
        .collect();
    app_ok(&json!({"messages": list}))
}

async fn get_transactional(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    Path(id): Path<String>,
) -> Response {
    let store = ctx.sim.store(k.region);
    match parse_id(&id).filter(|id| store.seeded.transactional_exists(*id)) {
        Some(id) => app_ok(&json!({"message": store.seeded.transactional(id)})),
        None => empty(StatusCode::NOT_FOUND),
    }
}

fn delivery_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..28)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Exactly one of `id`, `email`, `cio_id`.
fn check_identifiers(body: &Map<String, Value>) -> Result<(IdKind, String), String> {
    let Some(ids) = body.get("identifiers").and_then(Value::as_object) else {
        return Err("identifiers is required".into());
    };
    let given: Vec<(IdKind, String)> = ids
        .iter()
        .filter_map(|(k, v)| {
            let kind = match k.as_str() {
                "id" => IdKind::Id,
                "email" => IdKind::Email,
                "cio_id" => IdKind::CioId,
                _ => return None,
            };
            match v {
                Value::String(s) if !s.is_empty() => Some((kind, s.clone())),
                Value::Number(n) => Some((kind, n.to_string())),
                _ => None,
            }
        })
        .collect();
    match given.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("identifiers must contain one of id, email or cio_id".into()),
        _ => Err("identifiers must contain only one of id, email or cio_id".into()),
    }
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.len() <= 15 && d.chars().all(|c| c.is_ascii_digit()))
}

/// The shared transactional flow: size, JSON, message id and channel, identifiers, channel
/// rules, `send_at`; answers `{delivery_id, queued_at[, send_at]}` or `{"meta":{"error"}}`.
async fn send(ctx: Ctx, k: AppKey, channel: &'static str, body: Bytes) -> Response {
    if body.len() > MAX_TRANSACTIONAL_BYTES {
        return meta_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request is {} bytes (max {MAX_TRANSACTIONAL_BYTES})",
                body.len()
            ),
        );
    }
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        _ => {
            return meta_error(
                StatusCode::BAD_REQUEST,
                "request body must be a JSON object",
            );
        }
    };
    let bad = |msg: &str| meta_error(StatusCode::BAD_REQUEST, msg);
    let mut store = ctx.sim.store(k.region);
    let tm = match body.get("transactional_message_id") {
        Some(v) if !v.is_null() => match store.seeded.resolve_transactional(v) {
            Some(id) => {
                let (ch, _) = store.seeded.transactional_kind(id);
                if ch != channel {
                    return bad(&format!(
                        "transactional message {id} is not a {channel} message"
                    ));
                }
                Some(id)
            }
            None => {
                return meta_error(
                    StatusCode::from_u16(UNKNOWN_TRANSACTIONAL_STATUS)
                        .unwrap_or(StatusCode::NOT_FOUND),
                    &format!(
                        "transactional message '{}' not found",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    ),
                );
            }
        },
        _ => None,
    };
    if tm.is_none() {
        if channel != "email" {
            return bad("transactional_message_id is required");
        }
        for f in ["body", "subject", "from"] {
            if body
                .get(f)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return bad(&format!(
                    "{f} is required when transactional_message_id is not given"
                ));
            }
        }
    }
    let who = match check_identifiers(&body) {
        Ok(w) => w,
        Err(e) => return bad(&e),
    };
    match channel {
        "email" => {
            let Some(to) = body
                .get("to")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
            else {
                return bad("to is required");
            };
            let count: usize = ["cc", "bcc"]
                .iter()
                .filter_map(|f| body.get(*f).and_then(Value::as_str))
                .chain(std::iter::once(to))
                .map(|s| s.split(',').filter(|x| !x.trim().is_empty()).count())
                .sum();
            if count > MAX_TRANSACTIONAL_RECIPIENTS {
                return bad(&format!(
                    "too many recipients: {count} (max {MAX_TRANSACTIONAL_RECIPIENTS} across to, cc and bcc)"
                ));
            }
            if let Some(att) = body.get("attachments") {
                let Some(att) = att.as_object() else {
                    return bad("attachments must be an object of filename to base64 content");
                };
                let mut total = 0usize;
                for (name, content) in att {
                    let lower = name.to_ascii_lowercase();
                    if FORBIDDEN_ATTACHMENTS.iter().any(|ext| lower.ends_with(ext)) {
                        return meta_error(
                            StatusCode::FORBIDDEN,
                            &format!("attachment '{name}' has a forbidden file type"),
                        );
                    }
                    let decoded = content
                        .as_str()
                        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok());
                    let Some(decoded) = decoded else {
                        return bad(&format!("attachment '{name}' must be base64 encoded"));
                    };
                    total += decoded.len();
                }
                if total > MAX_ATTACHMENT_BYTES {
                    return meta_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!("attachments are {total} bytes (max {MAX_ATTACHMENT_BYTES})"),
                    );
                }
            }
        }
        "sms" => match body.get("to").and_then(Value::as_str) {
            Some(to) if is_e164(to) => {}
            Some(_) => return bad("to must be a phone number in E.164 format"),
            None => return bad("to is required"),
        },
        "push" if body.get("to").and_then(Value::as_str) == Some("") => {
            return bad("to must be all, last_used or a device token");
        }
        _ => {}
    }
    let t = now();
    let send_at = match body.get("send_at") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(s) if s > t + MAX_SEND_AT_AHEAD_SECS => {
                return bad("send_at must be at most 90 days in the future");
            }
            Some(s) if s > t => Some(s),
            Some(_) => None,
            None => return bad("send_at must be a unix timestamp"),
        },
    };
    let delivery = delivery_id();
    let mut answer = json!({"delivery_id": delivery, "queued_at": t});
    if let Some(s) = send_at {
        answer["send_at"] = json!(s);
    }
    store.record_send(json!({
        "channel": channel,
        "delivery_id": delivery,
        "transactional_message_id": tm,
        "identifiers": {who.0.as_str(): who.1},
        "to": body.get("to"),
        "queued_at": t,
        "send_at": send_at,
        "message_data": body.get("message_data"),
    }));
    drop(store);
    ctx.sim.control.incr(&format!("send_{channel}"));
    app_ok(&answer)
}

async fn send_email(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    body: Bytes,
) -> Response {
    send(ctx, k, "email", body).await
}

async fn send_push(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    body: Bytes,
) -> Response {
    send(ctx, k, "push", body).await
}

async fn send_sms(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    body: Bytes,
) -> Response {
    send(ctx, k, "sms", body).await
}

async fn send_in_app(
    State(ctx): State<Ctx>,
    Extension(k): Extension<AppKey>,
    body: Bytes,
) -> Response {
    send(ctx, k, "in_app", body).await
}

// ---------------------------------------------------------------- misc

/// Recorded live: `{"exports": null}` when there are none.
async fn list_exports() -> Response {
    app_ok(&json!({"exports": null}))
}

async fn list_workspaces(State(ctx): State<Ctx>, Extension(k): Extension<AppKey>) -> Response {
    let ws = k.region.workspace();
    let store = ctx.sim.store(k.region);
    app_ok(&json!({"workspaces": [{
        "id": ws.environment_id,
        "name": format!("SharpSend sandbox ({})", ws.region.to_ascii_uppercase()),
        "messages_sent": store.sends().len(),
        "billable_messages_sent": store.sends().len(),
        "people": store.seeded.sizes.people,
        "object_types": 0,
        "objects": 0,
    }]}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_scoped() {
        let c = encode_cursor("m", 3, 30_000);
        assert_eq!(decode_cursor(&c, "m", 3), Some(30_000));
        assert_eq!(decode_cursor(&c, "m", 4), None);
        assert_eq!(decode_cursor(&c, "n", 3), None);
        assert_eq!(decode_cursor("garbage!", "m", 3), None);
    }

    #[test]
    fn limits_default_clamp_and_reject() {
        assert_eq!(parse_limit(None, 10, 100), Ok(10));
        assert_eq!(parse_limit(Some("500"), 10, 100), Ok(100));
        assert!(parse_limit(Some("0"), 10, 100).is_err());
        assert!(parse_limit(Some("x"), 10, 100).is_err());
    }

    #[test]
    fn trigger_paths() {
        assert!(is_trigger_path("/v1/campaigns/1001/triggers"));
        assert!(is_trigger_path("/v1/campaigns/1001/triggers/3"));
        assert!(!is_trigger_path("/v1/campaigns/1001"));
    }
}
