//! Iterable's own endpoints (paths, methods, bodies as in the SPEC).

use std::{cmp::Ordering, sync::Arc};

use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Path, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};

use crate::{
    data::{self, MESSAGE_TYPES, parse_datetime},
    errors, export,
    keys::{ApiKey, JwtIdentity},
    project::{Project, Shared, StoredEvent, gate, lock, parse_json},
    query::Q,
    users::{self, UpdateFail, UpdateReq},
    webhooks,
};

/// `users/bulkUpdate`: "Max size of request body: 4MB" (SPEC).
pub const BULK_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Users per `users/bulkUpdate` (the 1,000 RudderStack and the brief use; the answer past it,
/// 400 `BatchTooLarge`, is inferred).
pub const BULK_MAX_USERS: usize = 1000;
/// Default and largest `pageSize` of paginated lists (SPEC).
pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 1000;
/// `sendAt` of target sends may be at most this far ahead (SPEC: 365 days).
pub const MAX_SEND_AHEAD_MS: i64 = 365 * 86_400_000;

/// The platform router of one project (without the `/_sim/` routes).
pub fn router(p: Shared) -> Router {
    Router::new()
        .route("/api/campaigns", get(campaigns))
        .route(
            "/api/campaigns/metrics",
            get(crate::metrics::campaign_metrics),
        )
        .route("/api/campaigns/{id}", get(campaign_by_id))
        .route("/api/templates", get(templates))
        .route("/api/channels", get(channels))
        .route("/api/messageTypes", get(message_types))
        .route("/api/lists", get(lists).post(create_list))
        .route("/api/lists/{listId}", axum::routing::delete(delete_list))
        .route("/api/lists/getUsers", get(list_users))
        .route("/api/lists/subscribe", post(subscribe))
        .route("/api/lists/unsubscribe", post(unsubscribe))
        .route("/api/users/update", post(user_update))
        .route("/api/users/bulkUpdate", post(user_bulk_update))
        .route(
            "/api/users/updateSubscriptions",
            post(crate::consent::update_subscriptions),
        )
        .route("/api/users/forget", post(crate::consent::forget))
        .route("/api/users/forgotten", get(crate::consent::forgotten))
        .route(
            "/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}/user/{userEmail}",
            axum::routing::delete(crate::consent::unsubscribe_single),
        )
        .route("/api/users/getByEmail", get(user_get_by_email_query))
        .route("/api/users/getFields", get(user_fields))
        .route("/api/users/byUserId", get(user_get_by_id_query))
        .route(
            "/api/users/byUserId/{userId}",
            get(user_get_by_id).delete(user_delete_by_id),
        )
        .route(
            "/api/users/{email}",
            get(user_get_by_email).delete(user_delete_by_email),
        )
        .route("/api/events/track", post(track))
        .route("/api/events/byUserId/{userId}", get(events_by_user_id))
        .route("/api/events/{email}", get(events_by_email))
        .route("/api/events/trackBulk", post(track_bulk))
        .route("/api/email/target", post(target_email))
        .route("/api/sms/target", post(target_sms))
        .route("/api/push/target", post(target_push))
        .route("/api/inApp/target", post(target_in_app))
        .route("/api/export/data.json", get(export::data_json))
        .route("/api/webhooks", get(webhooks::list).post(webhooks::update))
        .route_layer(middleware::from_fn_with_state(p.clone(), gate))
        .fallback(|| async { errors::not_found(errors::MSG_NOT_FOUND) })
        // Bulk endpoints answer Iterable's 413 themselves past 4 MB; sim-core already caps
        // bodies at 16 MB, so axum's own (plain-text) limit stays out of the way.
        .layer(DefaultBodyLimit::disable())
        .with_state(p)
}

/// The origin a client reached us on, for absolute `nextPageUrl`s (inferred: Iterable's are
/// absolute URLs on its own host).
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Sorts by `sort` (`field`, `+field`, `-field`); `id` means `id_field`.
fn sort_items(
    items: &mut [Value],
    sort: Option<&str>,
    allowed: &[&str],
    id_field: &str,
) -> Result<(), Response> {
    let sort = sort.unwrap_or("id").trim();
    let (desc, field) = match sort.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, sort.strip_prefix('+').unwrap_or(sort)),
    };
    if !allowed.contains(&field) {
        // Inferred wording; the SPEC lists the sortable fields.
        return Err(errors::bad_params(format!(
            "Invalid sort field: {field}. Valid fields: {}",
            allowed.join(", ")
        )));
    }
    let field = if field == "id" { id_field } else { field };
    let cmp_field = |a: &Value, b: &Value, f: &str| -> Ordering {
        match (a.get(f), b.get(f)) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            _ => Ordering::Equal,
        }
    };
    items.sort_by(|a, b| {
        let o = cmp_field(a, b, field);
        let o = if desc { o.reverse() } else { o };
        o.then_with(|| cmp_field(a, b, id_field))
    });
    Ok(())
}

/// Page parameters, or `None` for the deprecated unpaginated answer.
fn page_params(q: &Q, unpaginated_allowed: bool) -> Result<Option<(u64, u64)>, Response> {
    let page = q.int("page")?;
    let size = q.int("pageSize")?;
    if page.is_none() && size.is_none() && unpaginated_allowed {
        return Ok(None);
    }
    let page = page.unwrap_or(1);
    let size = size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 {
        return Err(errors::bad_params("page must be at least 1"));
    }
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(errors::bad_params(format!(
            "pageSize must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok(Some((page, size)))
}

/// Builds a paginated answer: `{<key>: [...], nextPageUrl?, previousPageUrl?, <total_key>}`.
fn paged(
    items: Vec<Value>,
    paging: Option<(u64, u64)>,
    key: &str,
    total_key: &str,
    base: &str,
    q: &Q,
) -> Response {
    let mut out = Map::new();
    let Some((page, size)) = paging else {
        out.insert(key.into(), Value::Array(items));
        return Json(Value::Object(out)).into_response();
    };
    let total = items.len() as u64;
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let slice: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .collect();
    out.insert(key.into(), Value::Array(slice));
    if page.saturating_mul(size) < total {
        out.insert(
            "nextPageUrl".into(),
            json!(format!("{base}?{}", q.with_page(page + 1, size))),
        );
    }
    if page > 1 {
        out.insert(
            "previousPageUrl".into(),
            json!(format!("{base}?{}", q.with_page(page - 1, size))),
        );
    }
    out.insert(total_key.into(), json!(total));
    Json(Value::Object(out)).into_response()
}

const CAMPAIGN_STATES: &[&str] = &[
    "Draft",
    "Ready",
    "Scheduled",
    "Running",
    "Finished",
    "Starting",
    "Aborted",
    "Recurring",
    "Archived",
];

async fn campaigns(
    State(p): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = Q::parse(raw.as_deref());
    let paging = match page_params(&q, p.settings.unpaginated_allowed) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let states = q.all("campaignState");
    if let Some(bad) = states.iter().find(|s| !CAMPAIGN_STATES.contains(s)) {
        return errors::bad_params(format!("Invalid campaignState: {bad}"));
    }
    let mut items = p.campaigns();
    if !states.is_empty() {
        items.retain(|c| {
            c.get("campaignState")
                .and_then(Value::as_str)
                .is_some_and(|s| states.contains(&s))
        });
    }
    if let Err(r) = sort_items(
        &mut items,
        q.get("sort"),
        &["id", "name", "createdAt", "updatedAt", "startAt"],
        "id",
    ) {
        return r;
    }
    let base = format!("{}/api/campaigns", origin(&headers));
    paged(items, paging, "campaigns", "totalCampaignsCount", &base, &q)
}

async fn campaign_by_id(State(p): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return errors::bad_params(format!("Invalid campaign id: {id}"));
    };
    match p.campaign(id) {
        Some(c) => Json(c).into_response(),
        // SPEC: 404 "Campaign not found".
        None => errors::not_found("Campaign not found"),
    }
}

async fn templates(
    State(p): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = Q::parse(raw.as_deref());
    let paging = match page_params(&q, p.settings.unpaginated_allowed) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ttype = q.get("templateType");
    if let Some(t) = ttype
        && !["Base", "Blast", "Triggered", "Workflow"].contains(&t)
    {
        return errors::bad_params(format!("Invalid templateType: {t}"));
    }
    let medium = q.get("messageMedium");
    if let Some(m) = medium
        && !["Email", "Push", "InApp", "SMS"].contains(&m)
    {
        return errors::bad_params(format!("Invalid messageMedium: {m}"));
    }
    let mut window = [None, None];
    for (slot, k) in window.iter_mut().zip(["startDateTime", "endDateTime"]) {
        if let Some(v) = q.get(k) {
            match parse_datetime(v) {
                Some(ms) => *slot = Some(ms),
                None => return errors::bad_params(format!("Invalid {k}: {v}")),
            }
        }
    }
    let mut items: Vec<Value> = p
        .templates()
        .into_iter()
        .filter(|t| ttype.is_none_or(|x| t.template_type == x))
        .filter(|t| medium.is_none_or(|x| t.medium == x))
        .filter(|t| {
            // Filters on creation time: "created at or after" / "created before".
            let created = t.value.get("createdAt").and_then(Value::as_i64);
            window[0].is_none_or(|s| created.is_some_and(|c| c >= s))
                && window[1].is_none_or(|e| created.is_some_and(|c| c < e))
        })
        .map(|t| t.value)
        .collect();
    if let Err(r) = sort_items(
        &mut items,
        q.get("sort"),
        &["id", "name", "createdAt", "updatedAt"],
        "templateId",
    ) {
        return r;
    }
    let base = format!("{}/api/templates", origin(&headers));
    paged(items, paging, "templates", "totalTemplatesCount", &base, &q)
}

async fn channels(State(p): State<Shared>) -> Response {
    let fixture = lock(&p.store).fixtures.channels.clone();
    let channels = fixture.unwrap_or_else(|| {
        data::CHANNELS
            .iter()
            .map(|(id, name, ty, medium)| {
                json!({"id": id, "name": name, "channelType": ty, "messageMedium": medium})
            })
            .collect()
    });
    Json(json!({ "channels": channels })).into_response()
}

async fn message_types(State(p): State<Shared>) -> Response {
    let fixture = lock(&p.store).fixtures.message_types.clone();
    let at = p.ds.anchor_ms - data::SPAN_MS - 60 * 86_400_000;
    let types = fixture.unwrap_or_else(|| {
        MESSAGE_TYPES
            .iter()
            .map(|(id, name, channel, policy)| {
                json!({"id": id, "createdAt": at, "updatedAt": at, "name": name,
                       "channelId": channel, "subscriptionPolicy": policy})
            })
            .collect()
    });
    Json(json!({ "messageTypes": types })).into_response()
}

async fn lists(State(p): State<Shared>) -> Response {
    Json(json!({ "lists": p.lists() })).into_response()
}

async fn create_list(State(p): State<Shared>, body: Bytes) -> Response {
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = v
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return errors::bad_params("name is required");
    };
    let mut store = lock(&p.store);
    let id = data::LIST_ID_BASE + 900_000 + store.lists_created.len() as u64 + 1;
    let mut l =
        json!({"id": id, "name": name, "createdAt": Project::now_ms(), "listType": "Standard"});
    if let Some(d) = v.get("description").and_then(Value::as_str) {
        l["description"] = json!(d);
    }
    store.lists_created.push(l);
    Json(json!({ "listId": id })).into_response()
}

async fn delete_list(State(p): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return errors::bad_params(format!("Invalid listId: {id}"));
    };
    if !list_exists(&p, id) {
        return errors::bad_params(format!("List {id} does not exist"));
    }
    lock(&p.store).lists_deleted.insert(id);
    errors::success_with(format!("Deleted list {id}"), Value::Null)
}

fn list_exists(p: &Project, id: u64) -> bool {
    p.lists()
        .iter()
        .any(|l| l.get("id").and_then(Value::as_u64) == Some(id))
}

/// Generated users scanned per chunk of a streamed answer.
const STREAM_CHUNK: u64 = 2000;

/// `GET /api/lists/getUsers`: `text/plain`, one email (or userId) per line, streamed.
async fn list_users(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    let list_id = match q.int("listId") {
        Ok(Some(id)) => id,
        Ok(None) => return errors::bad_params("listId is required"),
        Err(r) => return r,
    };
    if !list_exists(&p, list_id) {
        return errors::bad_params(format!("List {list_id} does not exist"));
    }
    let prefer_user_id = q.get("preferUserId") == Some("true");
    let gen_index = p.generated_list_index(list_id);
    let total = if gen_index.is_some() {
        p.generated_users()
    } else {
        0
    };
    let line = move |email: &str, uid: Option<&str>| -> String {
        match (prefer_user_id, uid) {
            (true, Some(u)) => format!("{u}\n"),
            _ => format!("{email}\n"),
        }
    };
    let stream = futures::stream::unfold(Some(0u64), move |state| {
        let p = p.clone();
        async move {
            let i = state?;
            let mut out = String::new();
            if i < total {
                let j = gen_index.unwrap_or(0);
                let end = (i + STREAM_CHUNK).min(total);
                let store = lock(&p.store);
                for k in i..end {
                    if !p.ds.is_member(k, j) {
                        continue;
                    }
                    let email = p.ds.user_email(k);
                    if Project::generated_shadowed(&store, &email) {
                        continue;
                    }
                    out.push_str(&line(&email, Some(&p.ds.user_id(k))));
                }
                return Some((Ok::<_, std::io::Error>(Bytes::from(out)), Some(end)));
            }
            // Written users last.
            let store = lock(&p.store);
            let mut written: Vec<_> = store
                .users
                .values()
                .filter(|u| {
                    u.fields
                        .get("emailListIds")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|x| x.as_u64() == Some(list_id)))
                })
                .collect();
            written.sort_by_key(|u| u.updated_ms);
            for u in written {
                out.push_str(&line(&u.email, u.user_id.as_deref()));
            }
            Some((Ok(Bytes::from(out)), None))
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn empty_failed_user_updates() -> Value {
    json!({
        "conflictEmails": [], "conflictUserIds": [], "forgottenEmails": [], "forgottenUserIds": [],
        "invalidDataEmails": [], "invalidDataUserIds": [], "invalidEmails": [], "invalidUserIds": [],
        "notFoundEmails": [], "notFoundUserIds": []
    })
}

/// Accumulates a `UserBulkUpdateListResponse`.
struct BulkResult {
    success: u64,
    fail: u64,
    created: Vec<String>,
    filtered: Vec<String>,
    failed: Value,
}

impl BulkResult {
    fn new() -> Self {
        Self {
            success: 0,
            fail: 0,
            created: vec![],
            filtered: vec![],
            failed: empty_failed_user_updates(),
        }
    }

    fn record(
        &mut self,
        email: Option<&str>,
        user_id: Option<&str>,
        r: Result<users::UpdateOk, UpdateFail>,
    ) {
        match r {
            Ok(ok) => {
                self.success += 1;
                for f in ok.created_fields {
                    if !self.created.contains(&f) {
                        self.created.push(f);
                    }
                }
                for f in ok.filtered_out {
                    if !self.filtered.contains(&f) {
                        self.filtered.push(f);
                    }
                }
            }
            Err(e) => {
                self.fail += 1;
                let (by_email, by_id) = match e {
                    UpdateFail::InvalidEmail(_) => ("invalidEmails", "invalidUserIds"),
                    UpdateFail::Conflict(_) => ("conflictEmails", "conflictUserIds"),
                    UpdateFail::NotFound => ("notFoundEmails", "notFoundUserIds"),
                    UpdateFail::Forgotten => ("forgottenEmails", "forgottenUserIds"),
                    UpdateFail::Mismatch { .. } | UpdateFail::BadParams(_) => {
                        ("invalidDataEmails", "invalidDataUserIds")
                    }
                    UpdateFail::MissingIdentifier => ("invalidEmails", "invalidUserIds"),
                };
                let (k, v) = match (email, user_id) {
                    (Some(e), _) => (by_email, e),
                    (None, Some(u)) => (by_id, u),
                    (None, None) => (by_email, ""),
                };
                if let Some(a) = self.failed.get_mut(k).and_then(Value::as_array_mut) {
                    a.push(json!(v));
                }
            }
        }
    }

    fn response(self) -> Response {
        let invalid_emails = self.failed["invalidEmails"].clone();
        let invalid_ids = self.failed["invalidUserIds"].clone();
        Json(json!({
            "successCount": self.success,
            "failCount": self.fail,
            "createdFields": self.created,
            "filteredOutFields": self.filtered,
            "failedUpdates": self.failed,
            "invalidEmails": invalid_emails,
            "invalidUserIds": invalid_ids,
        }))
        .into_response()
    }
}

/// `subscribers: [{email|userId, dataFields?}]` of `lists/subscribe` and `lists/unsubscribe`.
fn list_membership(p: &Project, body: &Bytes, subscribe: bool) -> Response {
    let v: Value = match parse_json(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(list_id) = v.get("listId").and_then(Value::as_u64) else {
        return errors::bad_params("listId is required");
    };
    let Some(subs) = v.get("subscribers").and_then(Value::as_array) else {
        return errors::bad_params("subscribers is required");
    };
    if !list_exists(p, list_id) {
        return errors::bad_params(format!("List {list_id} does not exist"));
    }
    let existing_only = v
        .get("updateExistingUsersOnly")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let now = Project::now_ms();
    let mut result = BulkResult::new();
    let mut store = lock(&p.store);
    for s in subs {
        let email = s.get("email").and_then(Value::as_str);
        let uid = s.get("userId").and_then(Value::as_str);
        let r = UpdateReq::from_json(s).and_then(|mut req| {
            if subscribe {
                req.add_list = Some(list_id);
                req.existing_only = existing_only;
            } else {
                req.remove_list = Some(list_id);
                req.existing_only = true;
                req.data_fields.clear();
            }
            users::apply_update(&mut store, &p.ds, req, now)
        });
        result.record(email, uid, r);
    }
    result.response()
}

async fn subscribe(State(p): State<Shared>, body: Bytes) -> Response {
    list_membership(&p, &body, true)
}

async fn unsubscribe(State(p): State<Shared>, body: Bytes) -> Response {
    list_membership(&p, &body, false)
}

/// A JWT-enabled key may only act on the user its JWT names (`JwtUserIdentifiersMismatched`).
fn jwt_mismatch(
    jwt: Option<&Arc<JwtIdentity>>,
    email: Option<&str>,
    user_id: Option<&str>,
) -> Option<Response> {
    let id = jwt?;
    let email_ok = match (&id.email, email) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    let uid_ok = match (&id.user_id, user_id) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    (!email_ok || !uid_ok).then(|| {
        errors::envelope(
            StatusCode::UNAUTHORIZED,
            "JwtUserIdentifiersMismatched",
            errors::MSG_JWT_MISMATCH,
            Value::Null,
        )
    })
}

async fn user_update(
    State(p): State<Shared>,
    jwt: Option<Extension<Arc<JwtIdentity>>>,
    body: Bytes,
) -> Response {
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let req = match UpdateReq::from_json(&v) {
        Ok(r) => r,
        Err(e) => return e.response(p.project_id),
    };
    if let Some(r) = jwt_mismatch(jwt.as_deref(), req.email.as_deref(), req.user_id.as_deref()) {
        return r;
    }
    let r = users::apply_update(&mut lock(&p.store), &p.ds, req, Project::now_ms());
    match r {
        Ok(_) => {
            p.control.incr("users_updated");
            errors::success()
        }
        Err(e) => e.response(p.project_id),
    }
}

async fn user_bulk_update(State(p): State<Shared>, body: Bytes) -> Response {
    if body.len() > BULK_MAX_BYTES {
        return errors::envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BatchTooLarge",
            errors::MSG_TOO_LARGE,
            Value::Null,
        );
    }
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(list) = v.get("users").and_then(Value::as_array) else {
        return errors::bad_params("users is required");
    };
    if list.len() > BULK_MAX_USERS {
        return errors::envelope(
            StatusCode::BAD_REQUEST,
            "BatchTooLarge",
            format!(
                "Too many users in one request: {}; the maximum is {BULK_MAX_USERS}",
                list.len()
            ),
            Value::Null,
        );
    }
    let create_new = v.get("createNewFields").and_then(Value::as_bool);
    let now = Project::now_ms();
    let mut result = BulkResult::new();
    let mut store = lock(&p.store);
    for u in list {
        let email = u.get("email").and_then(Value::as_str);
        let uid = u.get("userId").and_then(Value::as_str);
        let r = UpdateReq::from_json(u).and_then(|mut req| {
            if req.create_new_fields.is_none() {
                req.create_new_fields = create_new;
            }
            users::apply_update(&mut store, &p.ds, req, now)
        });
        result.record(email, uid, r);
    }
    p.control.incr("users_bulk_updated");
    result.response()
}

fn user_answer(u: Option<crate::project::StoredUser>) -> Response {
    // SPEC/api-client: an unknown user is 200 with `{}`.
    match u {
        Some(u) => Json(users::user_response(&u)).into_response(),
        None => Json(json!({})).into_response(),
    }
}

async fn user_get_by_email(State(p): State<Shared>, Path(email): Path<String>) -> Response {
    user_answer(p.user_by_email(&email))
}

async fn user_get_by_email_query(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    match q.get("email") {
        Some(e) => user_answer(p.user_by_email(e)),
        None => errors::bad_params("email is required"),
    }
}

async fn user_get_by_id(State(p): State<Shared>, Path(uid): Path<String>) -> Response {
    user_answer(p.user_by_id(&uid))
}

async fn user_get_by_id_query(State(p): State<Shared>, RawQuery(raw): RawQuery) -> Response {
    let q = Q::parse(raw.as_deref());
    match q.get("userId") {
        Some(u) => user_answer(p.user_by_id(u)),
        None => errors::bad_params("userId is required"),
    }
}

fn delete_user(p: &Project, u: Option<crate::project::StoredUser>, what: &str) -> Response {
    let Some(u) = u else {
        // Inferred: deleting an unknown user is a 400 naming it.
        return errors::envelope(
            StatusCode::BAD_REQUEST,
            "UnknownEmailError",
            format!("User does not exist: {what}"),
            Value::Null,
        );
    };
    let lower = u.email.to_ascii_lowercase();
    let mut store = lock(&p.store);
    store.users.remove(&lower);
    if let Some(id) = &u.user_id {
        store.user_ids.remove(id);
    }
    store.deleted.insert(lower);
    // Asynchronous on Iterable; done at once here.
    errors::success_with(format!("User {what} is queued for deletion"), Value::Null)
}

async fn user_delete_by_email(State(p): State<Shared>, Path(email): Path<String>) -> Response {
    let u = p.user_by_email(&email);
    delete_user(&p, u, &email)
}

async fn user_delete_by_id(State(p): State<Shared>, Path(uid): Path<String>) -> Response {
    let u = p.user_by_id(&uid);
    delete_user(&p, u, &uid)
}

async fn user_fields(State(p): State<Shared>) -> Response {
    let fields: Map<String, Value> = lock(&p.store)
        .field_types
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Json(json!({ "fields": fields })).into_response()
}

/// `limit` of the events read-back: default 30, at most 200 (SPEC).
pub const EVENTS_DEFAULT_LIMIT: u64 = 30;
pub const EVENTS_MAX_LIMIT: u64 = 200;

/// A user's events, newest first: stored ones and generated ones, each with `eventType` (its
/// export `dataTypeName`; inferred name).
fn user_events(
    p: &Project,
    user: Option<crate::project::StoredUser>,
    raw: Option<&str>,
) -> Response {
    let q = Q::parse(raw);
    let limit = match q.int("limit") {
        Ok(l) => l.unwrap_or(EVENTS_DEFAULT_LIMIT),
        Err(r) => return r,
    };
    if limit == 0 || limit > EVENTS_MAX_LIMIT {
        return errors::bad_params(format!("limit must be between 1 and {EVENTS_MAX_LIMIT}"));
    }
    let Some(user) = user else {
        return Json(json!({ "events": [] })).into_response();
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let with_type = |kind: &str, mut row: Map<String, Value>| {
        row.insert("eventType".into(), json!(kind));
        Value::Object(row)
    };
    let mut found: Vec<(i64, Value)> = lock(&p.store)
        .events
        .iter()
        .filter(|e| {
            e.row
                .get("email")
                .and_then(Value::as_str)
                .is_some_and(|m| m.eq_ignore_ascii_case(&user.email))
                || (user.user_id.is_some()
                    && e.row.get("userId").and_then(Value::as_str) == user.user_id.as_deref())
        })
        .map(|e| (e.at_ms, with_type(&e.data_type, e.row.clone())))
        .collect();
    if let Some(u) = p.ds.user_index_by_email(&user.email) {
        for j in p.ds.user_event_indices(u).take(limit) {
            let (kind, row) = p.ds.event(j);
            let at = row
                .get("createdAt")
                .and_then(Value::as_str)
                .and_then(parse_datetime)
                .unwrap_or(0);
            found.push((at, with_type(kind, row)));
        }
    }
    found.sort_by_key(|e| std::cmp::Reverse(e.0));
    let events: Vec<Value> = found.into_iter().take(limit).map(|(_, v)| v).collect();
    Json(json!({ "events": events })).into_response()
}

async fn events_by_email(
    State(p): State<Shared>,
    Path(email): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let u = p.user_by_email(&email);
    user_events(&p, u, raw.as_deref())
}

async fn events_by_user_id(
    State(p): State<Shared>,
    Path(uid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let u = p.user_by_id(&uid);
    user_events(&p, u, raw.as_deref())
}

/// Validates and stores one `TrackRequest`; the error names the failure bucket.
fn track_one(p: &Project, v: &Value, now: i64) -> Result<String, (&'static str, Response)> {
    let email = v.get("email").and_then(Value::as_str);
    let uid = v.get("userId").and_then(Value::as_str);
    let Some(name) = v
        .get("eventName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(("invalid", errors::bad_params("eventName is required")));
    };
    if email.is_none() && uid.is_none() {
        return Err((
            "invalid",
            errors::bad_params("Either email or userId must be provided"),
        ));
    }
    if let Some(e) = email
        && !users::valid_email(e)
    {
        return Err((
            "invalidEmail",
            UpdateFail::InvalidEmail(e.to_owned()).response(p.project_id),
        ));
    }
    let data_fields = match v.get("dataFields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err((
                "invalid",
                errors::bad_params("dataFields must be an object"),
            ));
        }
    };
    if let Some(id) = v.get("id").and_then(Value::as_str)
        && id.len() > 512
    {
        return Err((
            "invalid",
            errors::bad_params("id must be at most 512 bytes"),
        ));
    }
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| new_id(now, name), str::to_owned);
    // `createdAt` is a unix timestamp in seconds (inferred: the SDKs send seconds).
    let at = v
        .get("createdAt")
        .and_then(Value::as_i64)
        .map_or(now, |s| s * 1000);
    let mut row = Map::new();
    row.insert("createdAt".into(), json!(data::fmt_export(at)));
    row.insert("eventName".into(), json!(name));
    row.insert("eventId".into(), json!(id));
    if let Some(e) = email {
        row.insert("email".into(), json!(e));
    }
    if let Some(u) = uid {
        row.insert("userId".into(), json!(u));
    }
    for k in ["campaignId", "templateId"] {
        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
            row.insert(k.into(), x.clone());
        }
    }
    row.insert("dataFields".into(), Value::Object(data_fields));
    let ev = StoredEvent {
        data_type: "customEvent".into(),
        at_ms: at,
        id: id.clone(),
        row,
    };
    let mut store = lock(&p.store);
    // An existing id updates that event.
    store.push_event(ev);
    // The user an event names is kept (created when new, as Iterable does for tracked events).
    let known = email.map_or_else(
        || uid.and_then(|u| users::lookup_user_id(&store, &p.ds, u)),
        |e| users::lookup_email(&store, &p.ds, e),
    );
    if known.is_none() {
        let req = UpdateReq {
            email: email.map(str::to_owned),
            user_id: uid.map(str::to_owned),
            ..UpdateReq::default()
        };
        // A conflict here leaves the event stored and the profiles as they are.
        let _ = users::apply_update(&mut store, &p.ds, req, now);
    }
    Ok(id)
}

fn new_id(now: i64, salt: &str) -> String {
    let h = sim_core::mix(now.unsigned_abs() ^ sim_core::mix(salt.len() as u64) ^ next_counter());
    format!("{h:016x}{:016x}", sim_core::mix(h))
}

fn next_counter() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static C: AtomicU64 = AtomicU64::new(1);
    C.fetch_add(1, Ordering::Relaxed)
}

async fn track(
    State(p): State<Shared>,
    jwt: Option<Extension<Arc<JwtIdentity>>>,
    body: Bytes,
) -> Response {
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(r) = jwt_mismatch(
        jwt.as_deref(),
        v.get("email").and_then(Value::as_str),
        v.get("userId").and_then(Value::as_str),
    ) {
        return r;
    }
    match track_one(&p, &v, Project::now_ms()) {
        Ok(id) => {
            p.control.incr("events_tracked");
            // Inferred wording of the success message; `params.id` is the event id.
            errors::success_with(format!("Event with id: {id} tracked."), json!({"id": id}))
        }
        Err((_, r)) => r,
    }
}

async fn track_bulk(State(p): State<Shared>, body: Bytes) -> Response {
    if body.len() > BULK_MAX_BYTES {
        return errors::envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BatchTooLarge",
            errors::MSG_TOO_LARGE,
            Value::Null,
        );
    }
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(events) = v.get("events").and_then(Value::as_array) else {
        return errors::bad_params("events is required");
    };
    let now = Project::now_ms();
    let (mut ok, mut fail) = (0u64, 0u64);
    let mut failed = json!({"forgottenEmails": [], "forgottenUserIds": [], "invalidEmails": [],
        "invalidUserIds": [], "notFoundEmails": [], "notFoundUserIds": []});
    for e in events {
        match track_one(&p, e, now) {
            Ok(_) => ok += 1,
            Err((kind, _)) => {
                fail += 1;
                let email = e.get("email").and_then(Value::as_str);
                let uid = e.get("userId").and_then(Value::as_str);
                let (k, val) = match (kind, email, uid) {
                    (_, Some(m), _) => ("invalidEmails", m),
                    (_, None, Some(u)) => ("invalidUserIds", u),
                    _ => ("invalidEmails", ""),
                };
                if let Some(a) = failed.get_mut(k).and_then(Value::as_array_mut) {
                    a.push(json!(val));
                }
            }
        }
    }
    p.control.incr("events_tracked_bulk");
    let invalid_emails = failed["invalidEmails"].clone();
    let invalid_ids = failed["invalidUserIds"].clone();
    Json(json!({
        "successCount": ok, "failCount": fail, "createdFields": [], "filteredOutFields": [],
        "disallowedEventNames": [], "failedUpdates": failed,
        "invalidEmails": invalid_emails, "invalidUserIds": invalid_ids,
    }))
    .into_response()
}

async fn target_email(
    State(p): State<Shared>,
    key: Extension<Arc<ApiKey>>,
    body: Bytes,
) -> Response {
    target(&p, &key, &body, "Email", "email").await
}

async fn target_sms(State(p): State<Shared>, key: Extension<Arc<ApiKey>>, body: Bytes) -> Response {
    target(&p, &key, &body, "SMS", "sms").await
}

async fn target_push(
    State(p): State<Shared>,
    key: Extension<Arc<ApiKey>>,
    body: Bytes,
) -> Response {
    target(&p, &key, &body, "Push", "push").await
}

async fn target_in_app(
    State(p): State<Shared>,
    key: Extension<Arc<ApiKey>>,
    body: Bytes,
) -> Response {
    target(&p, &key, &body, "InApp", "inApp").await
}

/// `POST /api/{medium}/target`: one message of a triggered campaign to one user. Whether the
/// campaign must be triggered, active and of the endpoint's medium is inferred, as are the
/// wordings of those errors.
async fn target(p: &Shared, _key: &ApiKey, body: &Bytes, medium: &str, prefix: &str) -> Response {
    let v: Value = match parse_json(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(campaign_id) = v.get("campaignId").and_then(Value::as_u64) else {
        return errors::bad_params("campaignId is required");
    };
    let email = v.get("recipientEmail").and_then(Value::as_str);
    let uid = v.get("recipientUserId").and_then(Value::as_str);
    let (email, uid) = match (email, uid) {
        (None, None) => {
            return errors::bad_params("Either recipientEmail or recipientUserId must be provided");
        }
        (Some(_), Some(_)) => {
            return errors::bad_params("Provide recipientEmail or recipientUserId, not both");
        }
        x => x,
    };
    if let Some(e) = email
        && !users::valid_email(e)
    {
        return UpdateFail::InvalidEmail(e.to_owned()).response(p.project_id);
    }
    let Some(campaign) = p.campaign(campaign_id) else {
        return errors::bad_params(format!("Campaign {campaign_id} does not exist"));
    };
    let field = |k: &str| campaign.get(k).and_then(Value::as_str).unwrap_or("");
    if field("type") != "Triggered" {
        return errors::bad_params(format!(
            "Campaign {campaign_id} is not a triggered campaign"
        ));
    }
    if field("messageMedium") != medium {
        return errors::bad_params(format!(
            "Campaign {campaign_id} is a {} campaign, not {medium}",
            field("messageMedium")
        ));
    }
    if field("campaignState") != "Running" {
        return errors::bad_params(format!("Campaign {campaign_id} is not active"));
    }
    let now = Project::now_ms();
    let send_at = match v.get("sendAt").and_then(Value::as_str) {
        None => now,
        Some(s) => match parse_datetime(s) {
            // A time in the past means now.
            Some(t) if t - now > MAX_SEND_AHEAD_MS => {
                return errors::bad_params("sendAt must be at most 365 days in the future");
            }
            Some(t) => t.max(now),
            None => return errors::bad_params(format!("Invalid sendAt: {s}")),
        },
    };
    // The recipient must resolve to a user; an email creates one (as sending to a new address
    // does on Iterable), a userId must exist.
    let user = match (email, uid) {
        (Some(e), _) => match p.user_by_email(e) {
            Some(u) => u,
            None => {
                let req = UpdateReq {
                    email: Some(e.to_owned()),
                    ..UpdateReq::default()
                };
                if let Err(err) = users::apply_update(&mut lock(&p.store), &p.ds, req, now) {
                    return err.response(p.project_id);
                }
                match p.user_by_email(e) {
                    Some(u) => u,
                    None => return errors::bad_params("recipient could not be created"),
                }
            }
        },
        (None, Some(u)) => match p.user_by_id(u) {
            Some(x) => x,
            None => {
                return errors::envelope(
                    StatusCode::BAD_REQUEST,
                    "UnknownUserIdError",
                    format!("No user exists with userId {u}"),
                    Value::Null,
                );
            }
        },
        (None, None) => return errors::bad_params("recipient is required"),
    };
    let message_id = new_id(now, &user.email);
    let template_id = campaign.get("templateId").cloned().unwrap_or(Value::Null);
    let data_type = format!("{prefix}Send");
    let mut row = Map::new();
    row.insert("createdAt".into(), json!(data::fmt_export(send_at)));
    row.insert("email".into(), json!(user.email));
    if let Some(id) = &user.user_id {
        row.insert("userId".into(), json!(id));
    }
    row.insert("campaignId".into(), json!(campaign_id));
    row.insert("templateId".into(), template_id.clone());
    row.insert("messageId".into(), json!(message_id));
    let send = json!({
        "endpoint": format!("/api/{prefix}/target"),
        "campaignId": campaign_id,
        "recipientEmail": user.email,
        "recipientUserId": user.user_id,
        "dataFields": v.get("dataFields").cloned().unwrap_or(json!({})),
        "metadata": v.get("metadata").cloned().unwrap_or(Value::Null),
        "sendAt": send_at,
        "messageId": message_id,
    });
    {
        let mut store = lock(&p.store);
        crate::project::Store::push_record(&mut store.sends, send);
        store.push_event(StoredEvent {
            data_type: data_type.clone(),
            at_ms: send_at,
            id: message_id.clone(),
            row,
        });
    }
    p.control.incr("messages_sent");
    if p.settings.webhook_on_send {
        let mut fields = Map::new();
        fields.insert("campaignId".into(), json!(campaign_id));
        fields.insert("campaignName".into(), json!(field("name")));
        fields.insert("templateId".into(), template_id);
        fields.insert("messageId".into(), json!(message_id));
        fields.insert("createdAt".into(), json!(data::fmt_export(send_at)));
        fields.insert("email".into(), json!(user.email));
        if let Some(m) = v.get("metadata").filter(|m| !m.is_null()) {
            fields.insert("metadata".into(), m.clone());
        }
        let mut event = Map::new();
        event.insert("email".into(), json!(user.email));
        if let Some(id) = &user.user_id {
            event.insert("userId".into(), json!(id));
        }
        event.insert("eventName".into(), json!(data_type));
        event.insert("dataFields".into(), Value::Object(fields));
        webhooks::spawn_delivery(p, Value::Object(event), webhooks::SendKind::Triggered);
    }
    errors::success()
}
