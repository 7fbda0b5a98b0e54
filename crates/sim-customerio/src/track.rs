//! Track API (`track.customer.io` / `track-eu.customer.io`): v1 people and events, v2 entity and
//! batch, Basic `site_id:tracking_key`.

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    config::{
        EVENTS_CREATE_PEOPLE, MAX_ATTR_NAME_BYTES, MAX_ATTR_VALUE_BYTES, MAX_ATTRIBUTES,
        MAX_EVENT_DATA_BYTES, MAX_EVENT_NAME_BYTES, MAX_ID_BYTES, MAX_SEGMENT_IDS,
        MAX_V2_BATCH_BYTES, MAX_V2_OP_BYTES, REASON_INVALID, REASON_REQUIRED, REASON_TOO_LARGE,
        REASON_TOO_LONG,
    },
    data::IdKind,
    reporting,
    resp::{empty, meta_error, track_errors, track_json, track_ok, track_unauthorized, v2_errors},
    sim::{Class, Ctx, Region, parse_auth, track_workspace},
    store::{Store, classify, now},
};

/// The Track router of one region.
pub fn router(ctx: Ctx) -> Router {
    let authed = Router::new()
        .route("/auth", get(auth))
        .route("/api/v1/accounts/region", get(region))
        .route(
            "/api/v1/customers/{identifier}",
            put(identify).delete(delete_customer),
        )
        .route("/api/v1/customers/{identifier}/devices", put(add_device))
        .route(
            "/api/v1/customers/{identifier}/devices/{device_id}",
            axum::routing::delete(delete_device),
        )
        .route("/api/v1/customers/{identifier}/suppress", post(suppress))
        .route(
            "/api/v1/customers/{identifier}/unsuppress",
            post(unsuppress),
        )
        .route("/api/v1/customers/{identifier}/events", post(track_event))
        .route("/api/v1/events", post(track_anonymous))
        .route("/api/v1/merge_customers", post(merge))
        .route(
            "/api/v1/segments/{segment_id}/add_customers",
            post(segment_add),
        )
        .route(
            "/api/v1/segments/{segment_id}/remove_customers",
            post(segment_remove),
        )
        .route("/api/v1/forms/{form_id}/submit", post(form_submit))
        .route("/api/v2/entity", post(entity))
        .route("/api/v2/batch", post(batch))
        .route_layer(middleware::from_fn_with_state(ctx.clone(), track_auth));
    // Documented without authentication (`security: []`).
    let open = Router::new()
        .route("/api/v1/metrics", post(metrics))
        .route("/api/v1/push/events", post(metrics))
        .route("/unsubscribe/{delivery_id}", post(unsubscribe));
    authed.merge(open).with_state(ctx)
}

/// Basic `site_id:tracking_key`; a pair of the other region works only for the region lookup
/// (or is redirected 307 in redirect mode); then the Track rate limit.
async fn track_auth(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    let auth = parse_auth(req.headers());
    let Some(ws) = track_workspace(&auth) else {
        ctx.sim.control.incr("401");
        return track_unauthorized();
    };
    let ws_region = Region::of(ws);
    let path = req.uri().path().to_owned();
    if ws_region != ctx.region && path != "/api/v1/accounts/region" {
        if ctx.sim.redirect_enabled() && ctx.region == Region::Us {
            ctx.sim.control.incr("redirect_307");
            let target = format!(
                "{}{}",
                ctx.sim.origins.track[ws_region.index()],
                req.uri()
                    .path_and_query()
                    .map_or(path.as_str(), |pq| pq.as_str())
            );
            let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
            if let Ok(v) = HeaderValue::from_str(&target) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        ctx.sim.control.incr("401");
        return track_unauthorized();
    }
    if let Some(r) = ctx.sim.limit(Class::Track, ws.site_id, &path) {
        return r;
    }
    req.extensions_mut().insert(ws_region);
    next.run(req).await
}

async fn auth() -> Response {
    track_ok()
}

async fn region(State(ctx): State<Ctx>, Extension(region): Extension<Region>) -> Response {
    let ws = region.workspace();
    track_json(
        StatusCode::OK,
        &json!({
            "url": ctx.sim.origins.track[region.index()],
            "region": ws.region,
            "environment_id": ws.environment_id,
        }),
    )
}

// ---------------------------------------------------------------- validation helpers

/// Parses a JSON object body; an empty body is an empty object when `allow_empty`.
fn parse_object(body: &Bytes, allow_empty: bool) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if allow_empty {
            Ok(Map::new())
        } else {
            Err("request body is required".into())
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("request body must be a JSON object".into()),
        Err(e) => Err(format!("malformed JSON: {e}")),
    }
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

/// Customer limits: ids 150 bytes, attribute names 150 bytes, values 1000 bytes, 300 attributes.
fn check_attributes(attrs: &Map<String, Value>) -> Vec<String> {
    let mut errs = Vec::new();
    let count = attrs.keys().filter(|k| !k.starts_with('_')).count();
    if count > MAX_ATTRIBUTES {
        errs.push(format!(
            "too many attributes: {count} (max {MAX_ATTRIBUTES} per request)"
        ));
    }
    for (k, v) in attrs {
        if k.len() > MAX_ATTR_NAME_BYTES {
            errs.push(format!(
                "attribute name '{}…' is {} bytes (max {MAX_ATTR_NAME_BYTES})",
                k.chars().take(20).collect::<String>(),
                k.len()
            ));
        }
        if k == "cio_relationships" || k == "cio_subscription_preferences" {
            continue;
        }
        let len = value_len(v);
        if len > MAX_ATTR_VALUE_BYTES {
            errs.push(format!(
                "attribute '{k}' value is {len} bytes (max {MAX_ATTR_VALUE_BYTES})"
            ));
        }
    }
    errs
}

fn check_identifier(identifier: &str) -> Option<String> {
    (identifier.len() > MAX_ID_BYTES).then(|| {
        format!(
            "identifier is {} bytes (max {MAX_ID_BYTES})",
            identifier.len()
        )
    })
}

/// Event body rules: `name` required (trimmed), ≤100 bytes; `type` event|page|screen; `data`
/// ≤100,000 bytes; `timestamp` an integer.
fn check_event(body: &Map<String, Value>) -> Result<(String, String), Vec<String>> {
    let mut errs = Vec::new();
    let name = match body.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            errs.push("name is required".to_owned());
            String::new()
        }
        Some(_) => {
            errs.push("name must be a string".to_owned());
            String::new()
        }
    };
    if name.len() > MAX_EVENT_NAME_BYTES {
        errs.push(format!(
            "name is {} bytes (max {MAX_EVENT_NAME_BYTES})",
            name.len()
        ));
    }
    let kind = match body.get("type") {
        None | Some(Value::Null) => "event".to_owned(),
        Some(Value::String(t)) if ["event", "page", "screen"].contains(&t.as_str()) => t.clone(),
        Some(_) => {
            errs.push("type must be one of event, page, screen".to_owned());
            String::new()
        }
    };
    if let Some(ts) = body.get("timestamp")
        && !ts.is_null()
        && !ts.is_i64()
        && !ts.is_u64()
    {
        errs.push("timestamp must be a unix timestamp in seconds".to_owned());
    }
    if let Some(data) = body.get("data") {
        if !data.is_null() && !data.is_object() {
            errs.push("data must be an object".to_owned());
        } else if data.to_string().len() > MAX_EVENT_DATA_BYTES {
            errs.push(format!(
                "data is {} bytes (max {MAX_EVENT_DATA_BYTES})",
                data.to_string().len()
            ));
        }
    }
    if errs.is_empty() {
        Ok((name, kind))
    } else {
        Err(errs)
    }
}

fn event_record(
    source: &str,
    kind: &str,
    name: &str,
    who: Option<(IdKind, &str)>,
    body: &Map<String, Value>,
) -> Value {
    let mut ev = json!({
        "source": source,
        "type": kind,
        "name": name,
        "data": body.get("data").cloned().unwrap_or(Value::Null),
        "timestamp": body.get("timestamp").cloned().unwrap_or_else(|| json!(now())),
        "id": body.get("id").cloned().unwrap_or(Value::Null),
        "received_at": now(),
    });
    if let Some((k, v)) = who {
        let key = match k {
            IdKind::Id => "customer_id",
            IdKind::Email => "email",
            IdKind::CioId => "cio_id",
        };
        ev[key] = json!(v);
    }
    if let Some(a) = body.get("anonymous_id") {
        ev["anonymous_id"] = a.clone();
    }
    ev
}

// ---------------------------------------------------------------- v1 people

async fn identify(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(identifier): Path<String>,
    body: Bytes,
) -> Response {
    let attrs = match parse_object(&body, true) {
        Ok(m) => m,
        Err(e) => return track_errors(&[e]),
    };
    let mut errs: Vec<String> = check_identifier(&identifier).into_iter().collect();
    if let Some(id) = attrs.get("id")
        && value_len(id) > MAX_ID_BYTES
    {
        errs.push(format!(
            "id is {} bytes (max {MAX_ID_BYTES})",
            value_len(id)
        ));
    }
    errs.extend(check_attributes(&attrs));
    if !errs.is_empty() {
        return track_errors(&errs);
    }
    let (kind, value) = classify(&identifier);
    // `_update: true`: only an existing person is updated; an unknown identifier (an email in the
    // path too) creates nobody [TS identify].
    let update_only = attrs.get("_update").and_then(Value::as_bool) == Some(true);
    ctx.sim
        .store(region)
        .upsert(kind, &value, &attrs, update_only);
    reporting::report_unsubscribes(&ctx.sim, region);
    track_ok()
}

async fn delete_customer(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(identifier): Path<String>,
) -> Response {
    let (kind, value) = classify(&identifier);
    ctx.sim.store(region).delete(kind, &value);
    track_ok()
}

#[derive(Deserialize)]
struct DevicePath {
    identifier: String,
    device_id: String,
}

async fn add_device(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(identifier): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body, false) {
        Ok(m) => m,
        Err(e) => return track_errors(&[e]),
    };
    let mut errs = Vec::new();
    let device = match body.get("device") {
        Some(Value::Object(d)) => d.clone(),
        _ => {
            return track_errors(&["device is required".to_owned()]);
        }
    };
    let token = device
        .get("id")
        .or_else(|| device.get("token"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        errs.push("device.id is required".to_owned());
    }
    match device.get("platform").and_then(Value::as_str) {
        Some("ios" | "android") => {}
        Some(_) => errs.push("device.platform must be ios or android".to_owned()),
        None => errs.push("device.platform is required".to_owned()),
    }
    if !errs.is_empty() {
        return track_errors(&errs);
    }
    let (kind, value) = classify(&identifier);
    let token = token.to_owned();
    let mut store = ctx.sim.store(region);
    if store.find(kind, &value).is_none() {
        store.upsert(kind, &value, &Map::new(), false);
    }
    store.update(kind, &value, |p| {
        p.devices.insert(token, Value::Object(device));
    });
    track_ok()
}

async fn delete_device(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(p): Path<DevicePath>,
) -> Response {
    let (kind, value) = classify(&p.identifier);
    ctx.sim.store(region).update(kind, &value, |person| {
        person.devices.remove(&p.device_id);
    });
    track_ok()
}

/// Suppress deletes the person and blocks their identifiers; unsuppress frees the identifiers
/// only (the profile stays deleted) [TS suppress/unsuppress]. Suppressing an unknown identifier
/// still blocks it (inferred).
fn set_suppressed(ctx: &Ctx, region: Region, identifier: &str, on: bool) -> Response {
    let (kind, value) = classify(identifier);
    let mut store = ctx.sim.store(region);
    if on {
        store.suppress(kind, &value);
    } else {
        store.unsuppress(kind, &value);
    }
    track_ok()
}

async fn suppress(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(identifier): Path<String>,
) -> Response {
    set_suppressed(&ctx, region, &identifier, true)
}

async fn unsuppress(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(identifier): Path<String>,
) -> Response {
    set_suppressed(&ctx, region, &identifier, false)
}

// ---------------------------------------------------------------- v1 events

async fn track_event(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(identifier): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body, false) {
        Ok(m) => m,
        Err(e) => return track_errors(&[e]),
    };
    let mut errs: Vec<String> = check_identifier(&identifier).into_iter().collect();
    let checked = check_event(&body);
    if let Err(e) = &checked {
        errs.extend(e.iter().cloned());
    }
    let (name, kind) = match checked {
        Ok(nk) if errs.is_empty() => nk,
        _ => return track_errors(&errs),
    };
    let (id_kind, value) = classify(&identifier);
    let mut store = ctx.sim.store(region);
    if EVENTS_CREATE_PEOPLE && store.find(id_kind, &value).is_none() {
        store.upsert(id_kind, &value, &Map::new(), false);
    }
    store.record_event(event_record(
        "track",
        &kind,
        &name,
        Some((id_kind, &value)),
        &body,
    ));
    track_ok()
}

async fn track_anonymous(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body, false) {
        Ok(m) => m,
        Err(e) => return track_errors(&[e]),
    };
    let (name, kind) = match check_event(&body) {
        Ok(nk) => nk,
        Err(errs) => return track_errors(&errs),
    };
    ctx.sim
        .store(region)
        .record_event(event_record("track", &kind, &name, None, &body));
    track_ok()
}

// ---------------------------------------------------------------- merge, segments, forms

fn one_identifier(v: Option<&Value>) -> Option<(IdKind, String)> {
    let m = v?.as_object()?;
    if m.len() != 1 {
        return None;
    }
    let (k, v) = m.iter().next()?;
    let kind = match k.as_str() {
        "id" => IdKind::Id,
        "email" => IdKind::Email,
        "cio_id" => IdKind::CioId,
        _ => return None,
    };
    let value = match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((kind, value))
}

async fn merge(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body, false) {
        Ok(m) => m,
        Err(e) => return meta_error(StatusCode::BAD_REQUEST, &e),
    };
    let Some(primary) = one_identifier(body.get("primary")) else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            "primary must have exactly one of id, email or cio_id",
        );
    };
    let Some(secondary) = one_identifier(body.get("secondary")) else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            "secondary must have exactly one of id, email or cio_id",
        );
    };
    // A missing primary makes the request do nothing, still 200 [TS merge].
    ctx.sim.store(region).merge(
        (primary.0, primary.1.as_str()),
        (secondary.0, secondary.1.as_str()),
    );
    track_ok()
}

#[derive(Deserialize)]
struct IdTypeQuery {
    id_type: Option<String>,
}

fn boxed(errs: &[String]) -> Box<Response> {
    Box::new(track_errors(errs))
}

fn segment_ids(
    ctx: &Ctx,
    region: Region,
    segment: &str,
    q: &IdTypeQuery,
    body: &Bytes,
) -> Result<(u64, IdKind, Vec<String>), Box<Response>> {
    let kind = match q.id_type.as_deref() {
        None | Some("id") => IdKind::Id,
        Some("email") => IdKind::Email,
        Some("cio_id") => IdKind::CioId,
        Some(_) => {
            return Err(boxed(&["id_type must be id, email or cio_id".into()]));
        }
    };
    let body = parse_object(body, false).map_err(|e| boxed(&[e]))?;
    let ids: Vec<String> = match body.get("ids") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => return Err(boxed(&["ids is required".into()])),
    };
    if ids.len() > MAX_SEGMENT_IDS {
        return Err(boxed(&[format!(
            "too many ids: {} (max {MAX_SEGMENT_IDS} per request)",
            ids.len()
        )]));
    }
    let store = ctx.sim.store(region);
    let Some(id) = segment
        .parse::<u64>()
        .ok()
        .filter(|id| store.seeded.segment_exists(*id))
    else {
        return Err(boxed(&[format!("segment {segment} not found")]));
    };
    if !store.seeded.segment_is_manual(id) {
        return Err(boxed(&[format!("segment {id} is not a manual segment")]));
    }
    Ok((id, kind, ids))
}

async fn segment_add(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(segment): Path<String>,
    Query(q): Query<IdTypeQuery>,
    body: Bytes,
) -> Response {
    match segment_ids(&ctx, region, &segment, &q, &body) {
        Ok((id, kind, ids)) => {
            ctx.sim.store(region).segment_add(id, kind, &ids);
            track_ok()
        }
        Err(r) => *r,
    }
}

async fn segment_remove(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(segment): Path<String>,
    Query(q): Query<IdTypeQuery>,
    body: Bytes,
) -> Response {
    match segment_ids(&ctx, region, &segment, &q, &body) {
        Ok((id, kind, ids)) => {
            ctx.sim.store(region).segment_remove(id, kind, &ids);
            track_ok()
        }
        Err(r) => *r,
    }
}

/// `{"data":{…}}` with exactly one of `id` / `email` → 204 [TS submitForm].
async fn form_submit(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    Path(form_id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_object(&body, false) {
        Ok(m) => m,
        Err(e) => return track_errors(&[e]),
    };
    let Some(data) = body.get("data").and_then(Value::as_object) else {
        return track_errors(&["data is required".into()]);
    };
    let ids: Vec<&str> = ["id", "email"]
        .into_iter()
        .filter(|k| data.contains_key(*k))
        .collect();
    if ids.len() != 1 {
        return track_errors(&["data must contain exactly one of id or email".into()]);
    }
    let mut store = ctx.sim.store(region);
    let (kind, value) = if ids[0] == "id" {
        (
            IdKind::Id,
            data.get("id").map(value_string).unwrap_or_default(),
        )
    } else {
        (
            IdKind::Email,
            data.get("email").map(value_string).unwrap_or_default(),
        )
    };
    let mut attrs = data.clone();
    attrs.remove("id");
    store.upsert(kind, &value, &attrs, false);
    store.record_event(json!({
        "source": "track", "type": "form", "name": format!("form:{form_id}"),
        kind.as_str(): value, "data": data, "received_at": now(),
    }));
    empty(StatusCode::NO_CONTENT)
}

fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- open endpoints

async fn metrics(body: Bytes) -> Response {
    match parse_object(&body, false) {
        Ok(_) => track_ok(),
        Err(e) => track_errors(&[e]),
    }
}

/// Needs `Content-Type: application/json`, no Authorization; sets `unsubscribed` [TS unsubscribe].
async fn unsubscribe(
    State(ctx): State<Ctx>,
    Path(delivery_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json_ct {
        return track_errors(&["Content-Type must be application/json".into()]);
    }
    let body = match parse_object(&body, false) {
        Ok(m) => m,
        Err(e) => return track_errors(&[e]),
    };
    if body.get("unsubscribe").and_then(Value::as_bool).is_none() {
        return track_errors(&["unsubscribe must be true or false".into()]);
    }
    ctx.sim.store(ctx.region).record_event(json!({
        "source": "track", "type": "unsubscribe", "name": "email_unsubscribed",
        "delivery_id": delivery_id, "data": body, "received_at": now(),
    }));
    track_ok()
}

// ---------------------------------------------------------------- v2

fn v2_err(index: Option<usize>, reason: &str, field: &str, message: &str) -> Value {
    let mut e = json!({"reason": reason, "field": field, "message": message});
    if let Some(i) = index {
        e["batch_index"] = json!(i);
    }
    e
}

const PERSON_ACTIONS: &[&str] = &[
    "identify",
    "delete",
    "event",
    "screen",
    "page",
    "add_relationships",
    "delete_relationships",
    "add_device",
    "delete_device",
    "merge",
    "suppress",
    "unsuppress",
];
const OBJECT_ACTIONS: &[&str] = &[
    "identify",
    "identify_anonymous",
    "delete",
    "add_relationships",
    "delete_relationships",
];

/// Validates one v2 operation: `(reason, field, message)` of the first problem.
fn check_op(op: &Value, size: usize) -> Result<(), (String, String, String)> {
    let bad = |r: &str, f: &str, m: String| Err((r.to_owned(), f.to_owned(), m));
    if size > MAX_V2_OP_BYTES {
        return bad(
            REASON_TOO_LARGE,
            "",
            format!("operation is {size} bytes (max {MAX_V2_OP_BYTES})"),
        );
    }
    let Some(m) = op.as_object() else {
        return bad(REASON_INVALID, "", "operation must be an object".into());
    };
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    let action = m.get("action").and_then(Value::as_str).unwrap_or("");
    let actions = match kind {
        "person" => PERSON_ACTIONS,
        "object" => OBJECT_ACTIONS,
        "delivery" => &["event"][..],
        "" => return bad(REASON_REQUIRED, "type", "type is required".into()),
        other => return bad(REASON_INVALID, "type", format!("unknown type '{other}'")),
    };
    if action.is_empty() {
        return bad(REASON_REQUIRED, "action", "action is required".into());
    }
    if !actions.contains(&action) {
        return bad(
            REASON_INVALID,
            "action",
            format!("action '{action}' is not valid for type '{kind}'"),
        );
    }
    let idents = m.get("identifiers").and_then(Value::as_object);
    match kind {
        "person" => {
            let Some(ids) = idents else {
                return bad(
                    REASON_REQUIRED,
                    "identifiers",
                    "identifiers is required".into(),
                );
            };
            let given: Vec<&String> = ids
                .iter()
                .filter(|(k, v)| {
                    ["id", "email", "phone", "cio_id"].contains(&k.as_str())
                        && !v.is_null()
                        && v.as_str() != Some("")
                })
                .map(|(k, _)| k)
                .collect();
            if given.len() != 1 {
                return bad(
                    REASON_INVALID,
                    "identifiers",
                    "identifiers must contain exactly one of id, email, phone or cio_id".into(),
                );
            }
            if let Some(id) = ids.get("id")
                && value_len(id) > MAX_ID_BYTES
            {
                return bad(
                    REASON_TOO_LONG,
                    "identifiers.id",
                    format!("id is longer than {MAX_ID_BYTES} bytes"),
                );
            }
            if let Some(phone) = ids.get("phone").and_then(Value::as_str) {
                let digits = phone.strip_prefix('+').unwrap_or("");
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.chars().all(|c| c.is_ascii_digit())
                {
                    return bad(
                        REASON_INVALID,
                        "identifiers.phone",
                        "phone must be in E.164 format".into(),
                    );
                }
            }
        }
        "object" => {
            let ok = idents.is_some_and(|i| {
                i.contains_key("object_type_id")
                    && (i.contains_key("object_id") || i.contains_key("cio_object_id"))
            });
            if !ok && action != "identify_anonymous" {
                return bad(
                    REASON_REQUIRED,
                    "identifiers",
                    "identifiers must contain object_type_id and object_id".into(),
                );
            }
        }
        _ => {
            if idents.and_then(|i| i.get("id")).is_none() {
                return bad(
                    REASON_REQUIRED,
                    "identifiers.id",
                    "delivery id is required".into(),
                );
            }
        }
    }
    if ["event", "screen", "page"].contains(&action) || kind == "delivery" {
        match m.get("name").and_then(Value::as_str).map(str::trim) {
            Some(n) if !n.is_empty() => {
                if n.len() > MAX_EVENT_NAME_BYTES {
                    return bad(
                        REASON_TOO_LONG,
                        "name",
                        format!("name is longer than {MAX_EVENT_NAME_BYTES} bytes"),
                    );
                }
            }
            _ => return bad(REASON_REQUIRED, "name", "name is required".into()),
        }
    }
    if ["add_device", "delete_device"].contains(&action)
        && m.get("device")
            .and_then(|d| d.get("token"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return bad(
            REASON_REQUIRED,
            "device.token",
            "device.token is required".into(),
        );
    }
    if action == "identify"
        && let Some(attrs) = m.get("attributes")
    {
        let Some(attrs) = attrs.as_object() else {
            return bad(
                REASON_INVALID,
                "attributes",
                "attributes must be an object".into(),
            );
        };
        if let Some(e) = check_attributes(attrs).into_iter().next() {
            return bad(REASON_INVALID, "attributes", e);
        }
    }
    if action == "merge" && (m.get("primary").is_none() || m.get("secondary").is_none()) {
        return bad(
            REASON_REQUIRED,
            "primary",
            "merge needs primary and secondary".into(),
        );
    }
    Ok(())
}

/// Applies one valid person operation to the store (objects and deliveries are accepted only).
fn apply_op(store: &mut Store, op: &Value) {
    let Some(m) = op.as_object() else { return };
    if m.get("type").and_then(Value::as_str) != Some("person") {
        return;
    }
    let Some((kind, value)) = m
        .get("identifiers")
        .and_then(Value::as_object)
        .and_then(|ids| {
            ids.iter()
                .find(|(k, v)| ["id", "email", "cio_id"].contains(&k.as_str()) && !v.is_null())
                .map(|(k, v)| {
                    let kind = match k.as_str() {
                        "email" => IdKind::Email,
                        "cio_id" => IdKind::CioId,
                        _ => IdKind::Id,
                    };
                    (kind, value_string(v))
                })
        })
    else {
        return;
    };
    let empty_attrs = Map::new();
    let attrs = m
        .get("attributes")
        .and_then(Value::as_object)
        .unwrap_or(&empty_attrs);
    match m.get("action").and_then(Value::as_str).unwrap_or("") {
        "identify" => {
            let update_only = attrs.get("_update").and_then(Value::as_bool) == Some(true);
            store.upsert(kind, &value, attrs, update_only);
        }
        "delete" => {
            store.delete(kind, &value);
        }
        a @ ("event" | "screen" | "page") => {
            if store.find(kind, &value).is_none() {
                store.upsert(kind, &value, &Map::new(), false);
            }
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_owned();
            let mut body = Map::new();
            body.insert("data".into(), Value::Object(attrs.clone()));
            if let Some(ts) = m.get("timestamp") {
                body.insert("timestamp".into(), ts.clone());
            }
            if let Some(id) = m.get("id") {
                body.insert("id".into(), id.clone());
            }
            store.record_event(event_record(
                "track_v2",
                a,
                &name,
                Some((kind, &value)),
                &body,
            ));
        }
        "suppress" => store.suppress(kind, &value),
        "unsuppress" => store.unsuppress(kind, &value),
        "add_device" => {
            if let Some(d) = m.get("device").cloned() {
                let token = d
                    .get("token")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                store.update(kind, &value, |p| {
                    p.devices.insert(token, d);
                });
            }
        }
        "delete_device" => {
            let token = m
                .get("device")
                .and_then(|d| d.get("token"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            store.update(kind, &value, |p| {
                p.devices.remove(&token);
            });
        }
        "merge" => {
            if let (Some(p), Some(s)) = (
                one_identifier(m.get("primary")),
                one_identifier(m.get("secondary")),
            ) {
                store.merge((p.0, p.1.as_str()), (s.0, s.1.as_str()));
            }
        }
        _ => {}
    }
}

/// `POST /api/v2/entity`: ≤32 KB, one operation; 400 `{"errors":[…]}` when invalid.
async fn entity(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_V2_OP_BYTES {
        return v2_errors(vec![v2_err(
            None,
            REASON_TOO_LARGE,
            "",
            &format!("request is {} bytes (max {MAX_V2_OP_BYTES})", body.len()),
        )]);
    }
    let op: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return v2_errors(vec![v2_err(
                None,
                REASON_INVALID,
                "",
                &format!("malformed JSON: {e}"),
            )]);
        }
    };
    if let Err((reason, field, message)) = check_op(&op, body.len()) {
        return v2_errors(vec![v2_err(None, &reason, &field, &message)]);
    }
    apply_op(&mut ctx.sim.store(region), &op);
    reporting::report_unsubscribes(&ctx.sim, region);
    track_ok()
}

/// `POST /api/v2/batch`: ≤500 KB, each op ≤32 KB; invalid ops → 207 with `batch_index`ed errors,
/// the others applied.
async fn batch(
    State(ctx): State<Ctx>,
    Extension(region): Extension<Region>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_V2_BATCH_BYTES {
        return v2_errors(vec![v2_err(
            None,
            REASON_TOO_LARGE,
            "",
            &format!("request is {} bytes (max {MAX_V2_BATCH_BYTES})", body.len()),
        )]);
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return v2_errors(vec![v2_err(
                None,
                REASON_INVALID,
                "",
                &format!("malformed JSON: {e}"),
            )]);
        }
    };
    let Some(ops) = doc.get("batch").and_then(Value::as_array) else {
        return v2_errors(vec![v2_err(
            None,
            REASON_REQUIRED,
            "batch",
            "batch must be an array of operations",
        )]);
    };
    if ops.is_empty() {
        return v2_errors(vec![v2_err(
            None,
            REASON_REQUIRED,
            "batch",
            "batch must not be empty",
        )]);
    }
    let mut errors = Vec::new();
    let mut store = ctx.sim.store(region);
    for (i, op) in ops.iter().enumerate() {
        let size = op.to_string().len();
        match check_op(op, size) {
            Ok(()) => apply_op(&mut store, op),
            Err((reason, field, message)) => {
                errors.push(v2_err(Some(i), &reason, &field, &message));
            }
        }
    }
    drop(store);
    reporting::report_unsubscribes(&ctx.sim, region);
    if errors.is_empty() {
        track_ok()
    } else {
        track_json(StatusCode::MULTI_STATUS, &json!({"errors": errors}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_ops_need_exactly_one_person_identifier() {
        let ok = json!({"type":"person","action":"identify","identifiers":{"id":"1"}});
        assert!(check_op(&ok, 10).is_ok());
        let two =
            json!({"type":"person","action":"identify","identifiers":{"id":"1","email":"a@b.c"}});
        assert_eq!(check_op(&two, 10).unwrap_err().1, "identifiers");
        let none = json!({"type":"person","action":"identify"});
        assert_eq!(check_op(&none, 10).unwrap_err().0, "required");
        let bad_action = json!({"type":"object","action":"event","identifiers":{"object_type_id":"1","object_id":"a"}});
        assert_eq!(check_op(&bad_action, 10).unwrap_err().1, "action");
        let event = json!({"type":"person","action":"event","identifiers":{"id":"1"}});
        assert_eq!(check_op(&event, 10).unwrap_err().1, "name");
        assert_eq!(
            check_op(&ok, MAX_V2_OP_BYTES + 1).unwrap_err().0,
            "too_large"
        );
    }

    #[test]
    fn event_rules() {
        let m = json!({"name": "  spaced  "});
        assert_eq!(
            check_event(m.as_object().unwrap()).unwrap(),
            ("spaced".into(), "event".into())
        );
        let m = json!({"name": "x", "type": "click"});
        assert!(check_event(m.as_object().unwrap()).is_err());
        let m = json!({"data": {}});
        assert!(check_event(m.as_object().unwrap()).is_err());
    }
}
