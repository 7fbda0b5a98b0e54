//! Data Pipelines API (`cdp.customer.io/v1` / `cdp-eu.customer.io/v1`): Basic with the source key
//! as user name and a blank password. Permissive by default: every call answers 200 `{}` and bad
//! ones are dropped; with `X-Strict-Mode: 1` they answer 401 / 400 `{"meta":{"errors":[…]}}`.

use axum::{
    Router, body::Bytes, extract::State, http::HeaderMap, response::Response, routing::post,
};
use serde_json::{Map, Value, json};

use crate::{
    config::{MAX_CDP_BATCH_BYTES, MAX_CDP_CALL_BYTES},
    data::IdKind,
    resp::{track_errors, track_ok, track_unauthorized},
    sim::{Class, Ctx, Region, cdp_workspace, parse_auth},
    store::{Store, now},
};

const KINDS: &[&str] = &["identify", "track", "page", "screen", "group", "alias"];

pub fn router(ctx: Ctx) -> Router {
    let mut r = Router::new();
    for kind in KINDS.iter().copied().chain(std::iter::once("batch")) {
        r = r.route(
            &format!("/v1/{kind}"),
            post(
                move |State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes| async move {
                    call(ctx, kind, &headers, &body)
                },
            ),
        );
    }
    r.with_state(ctx)
}

fn strict(headers: &HeaderMap) -> bool {
    headers
        .get("x-strict-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

/// Dropped silently (permissive) or rejected (strict).
fn reject(ctx: &Ctx, strict: bool, errors: Vec<String>) -> Response {
    ctx.sim.control.incr("cdp_dropped");
    if strict {
        track_errors(&errors)
    } else {
        track_ok()
    }
}

fn call(ctx: Ctx, kind: &'static str, headers: &HeaderMap, body: &Bytes) -> Response {
    let strict = strict(headers);
    let auth = parse_auth(headers);
    let Some(ws) = cdp_workspace(&auth).filter(|ws| Region::of(ws) == ctx.region) else {
        ctx.sim.control.incr("cdp_dropped");
        if strict {
            ctx.sim.control.incr("401");
            return track_unauthorized();
        }
        return track_ok();
    };
    if let Some(r) = ctx
        .sim
        .limit(Class::Cdp, ws.cdp_api_key, &format!("/v1/{kind}"))
    {
        return r;
    }
    let max = if kind == "batch" {
        MAX_CDP_BATCH_BYTES
    } else {
        MAX_CDP_CALL_BYTES
    };
    if body.len() > max {
        return reject(
            &ctx,
            strict,
            vec![format!("request is {} bytes (max {max})", body.len())],
        );
    }
    let msg = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return reject(&ctx, strict, vec!["body must be a JSON object".into()]),
        Err(e) => return reject(&ctx, strict, vec![format!("malformed JSON: {e}")]),
    };
    let region = Region::of(ws);
    if kind == "batch" {
        let Some(items) = msg.get("batch").and_then(Value::as_array) else {
            return reject(&ctx, strict, vec!["batch is required".into()]);
        };
        if items.is_empty() {
            return reject(&ctx, strict, vec!["batch must not be empty".into()]);
        }
        let mut errors = Vec::new();
        let mut valid = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(m) = item.as_object() else {
                errors.push(format!("batch[{i}]: must be an object"));
                continue;
            };
            let t = m.get("type").and_then(Value::as_str).unwrap_or("");
            if !KINDS.contains(&t) {
                errors.push(format!(
                    "batch[{i}].type must be one of identify, track, page, screen, group, alias"
                ));
                continue;
            }
            if item.to_string().len() > MAX_CDP_CALL_BYTES {
                errors.push(format!(
                    "batch[{i}]: call is over {MAX_CDP_CALL_BYTES} bytes"
                ));
                continue;
            }
            match check(t, m) {
                Ok(()) => valid.push((t, m)),
                Err(e) => errors.extend(e.into_iter().map(|e| format!("batch[{i}].{e}"))),
            }
        }
        if strict && !errors.is_empty() {
            return reject(&ctx, strict, errors);
        }
        if !errors.is_empty() {
            ctx.sim.control.incr("cdp_dropped");
        }
        let mut store = ctx.sim.store(region);
        for (t, m) in valid {
            apply(&mut store, t, m);
        }
        return track_ok();
    }
    if let Err(errors) = check(kind, &msg) {
        return reject(&ctx, strict, errors);
    }
    apply(&mut ctx.sim.store(region), kind, &msg);
    track_ok()
}

fn non_empty(m: &Map<String, Value>, k: &str) -> bool {
    match m.get(k) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    }
}

/// Segment-spec required fields.
fn check(kind: &str, m: &Map<String, Value>) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    let who = non_empty(m, "userId") || non_empty(m, "anonymousId");
    match kind {
        "alias" => {
            if !non_empty(m, "userId") {
                errs.push("userId is required".to_owned());
            }
            if !non_empty(m, "previousId") {
                errs.push("previousId is required".to_owned());
            }
        }
        _ => {
            if !who {
                errs.push("userId or anonymousId is required".to_owned());
            }
        }
    }
    if kind == "track" && !non_empty(m, "event") {
        errs.push("event is required".to_owned());
    }
    if kind == "group" && !non_empty(m, "groupId") {
        errs.push("groupId is required".to_owned());
    }
    for obj in ["traits", "properties", "context"] {
        if m.get(obj).is_some_and(|v| !v.is_object() && !v.is_null()) {
            errs.push(format!("{obj} must be an object"));
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn as_string(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn apply(store: &mut Store, kind: &str, m: &Map<String, Value>) {
    let user = m.get("userId").filter(|v| !v.is_null()).map(as_string);
    let anon = m.get("anonymousId").filter(|v| !v.is_null()).map(as_string);
    match kind {
        "identify" => {
            if let Some(user) = &user {
                let traits = m
                    .get("traits")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                store.upsert(IdKind::Id, user, &traits, false);
            }
        }
        "track" => {
            let event = m.get("event").and_then(Value::as_str).unwrap_or("");
            if let Some(user) = &user {
                match event {
                    "Delete Person" | "User Deleted" => {
                        store.delete(IdKind::Id, user);
                    }
                    "User Suppressed" => {
                        store.suppress(IdKind::Id, user);
                    }
                    "User Unsuppressed" => {
                        store.unsuppress(IdKind::Id, user);
                    }
                    _ => {
                        if store.find(IdKind::Id, user).is_none() {
                            store.upsert(IdKind::Id, user, &Map::new(), false);
                        }
                    }
                }
            }
        }
        _ => {}
    }
    let name = match kind {
        "track" => m.get("event"),
        "page" | "screen" => m.get("name"),
        _ => None,
    };
    let mut ev = json!({
        "source": "cdp",
        "type": kind,
        "name": name,
        "user_id": user,
        "anonymous_id": anon,
        "data": m.get("properties").or_else(|| m.get("traits")).cloned().unwrap_or(Value::Null),
        "timestamp": m.get("timestamp").cloned().unwrap_or(Value::Null),
        "message_id": m.get("messageId").cloned().unwrap_or(Value::Null),
        "received_at": now(),
    });
    if let Some(u) = &user {
        ev["customer_id"] = json!(u);
    }
    store.record_event(ev);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_spec_required_fields() {
        let m = |v: Value| v.as_object().cloned().unwrap();
        assert!(check("identify", &m(json!({"userId": "1"}))).is_ok());
        assert!(check("identify", &m(json!({"traits": {}}))).is_err());
        assert!(check("track", &m(json!({"userId": "1"}))).is_err());
        assert!(check("track", &m(json!({"anonymousId": "a", "event": "x"}))).is_ok());
        assert!(check("alias", &m(json!({"userId": "1"}))).is_err());
        assert!(check("group", &m(json!({"userId": "1", "groupId": "g"}))).is_ok());
    }
}
