//! REST v1 (`/crm/rest/v1/...`): integer ids, `+0000` times, limit/offset with absolute
//! next/previous URLs, `{"message": ...}` errors.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{
    contacts::{
        self, CUSTOM_FIELDS, Contact, ContactQuery, OrderKey, TextMatch, parse_time, v1_time,
    },
    emails::SentEmail,
    resources::{STAGES, Tag},
    state::{App, lock},
    wire::{
        json_body, json_response, list_param, param, v1_bad_input, v1_error, v1_list, v1_list_body,
        v1_paging,
    },
};

type Q = Query<Vec<(String, String)>>;

const P: &str = "/crm/rest/v1";

pub fn router() -> Router<App> {
    let r = |p: &str| format!("{P}{p}");
    Router::new()
        .route(
            &r("/contacts"),
            get(list_contacts).post(create_contact).put(upsert_contact),
        )
        .route(
            &r("/contacts/"),
            get(list_contacts).post(create_contact).put(upsert_contact),
        )
        .route(&r("/contacts/model"), get(contact_model))
        .route(
            &r("/contacts/{id}"),
            get(get_contact).patch(patch_contact).delete(delete_contact),
        )
        .route(
            &r("/contacts/{id}/tags"),
            get(contact_tags)
                .post(apply_tags_to_contact)
                .delete(remove_tags_from_contact),
        )
        .route(
            &r("/contacts/{id}/tags/{tag_id}"),
            delete(remove_one_tag_from_contact),
        )
        .route(&r("/tags"), get(list_tags).post(create_tag))
        .route(&r("/tags/"), get(list_tags).post(create_tag))
        .route(&r("/tags/{id}"), get(get_tag))
        .route(
            &r("/tags/{id}/contacts"),
            get(tagged_contacts)
                .post(tag_contacts)
                .delete(untag_contacts),
        )
        .route(
            &r("/tags/{id}/contacts/{contact_id}"),
            delete(untag_one_contact),
        )
        .route(&r("/campaigns"), get(list_campaigns))
        .route(&r("/campaigns/"), get(list_campaigns))
        .route(&r("/campaigns/{id}"), get(get_campaign))
        .route(&r("/opportunities"), get(list_opportunities))
        .route(&r("/opportunities/"), get(list_opportunities))
        .route(&r("/opportunities/model"), get(opportunity_model))
        .route(&r("/opportunities/{id}"), get(get_opportunity))
        .route(&r("/opportunity/stage_pipeline"), get(stage_pipeline))
        .route(&r("/orders"), get(list_orders).post(create_order))
        .route(&r("/orders/"), get(list_orders).post(create_order))
        .route(&r("/orders/{id}"), get(get_order).delete(delete_order))
        .route(&r("/products"), get(list_products))
        .route(&r("/products/"), get(list_products))
        .route(&r("/products/{id}"), get(get_product))
        .route(&r("/emails"), get(list_emails))
        .route(&r("/emails/"), get(list_emails))
        .route(&r("/emails/queue"), axum::routing::post(queue_email))
        .route(&r("/oauth/connect/userinfo"), get(userinfo))
        .route(&r("/account/profile"), get(account_profile))
}

fn not_found(what: &str) -> Response {
    v1_error(
        StatusCode::NOT_FOUND,
        &format!("Unable to find this {what}"),
    )
}

fn id_of(s: &str) -> Result<u64, Response> {
    s.parse().map_err(|_| v1_bad_input())
}

// ---------- contacts ----------

/// A v1 contact. `optional` lists requested `optional_properties`.
pub fn render_contact(c: &Contact, optional: &[String], full: bool) -> Value {
    let mut v = json!({
        "tag_ids": c.tags.keys().collect::<Vec<_>>(),
        "id": c.id,
        "company": c.company_name.as_ref().map(|n| json!({"id": 1, "company_name": n})),
        "email_opted_in": c.email_opted_in,
        "email_status": c.email_status,
        "date_created": v1_time(c.date_created),
        "last_updated": v1_time(c.last_updated),
        "ScoreValue": c.score,
        "last_updated_utc_millis": c.last_updated.timestamp_millis(),
        "email_addresses": c.emails.iter().map(|(f, e)| json!({"email": e, "field": f})).collect::<Vec<_>>(),
        "addresses": c.addresses,
        "phone_numbers": c.phones.iter().map(|(f, n)| json!({"number": n, "extension": "", "field": f, "type": "Work"})).collect::<Vec<_>>(),
        "given_name": c.given_name,
        "family_name": c.family_name,
        "middle_name": c.middle_name,
        "owner_id": c.owner_id,
    });
    let wants = |p: &str| optional.iter().any(|o| o == p);
    if wants("custom_fields") {
        v["custom_fields"] = c
            .custom
            .iter()
            .map(|(id, content)| json!({"id": id, "content": content}))
            .collect();
    }
    if wants("lead_source_id") {
        v["lead_source_id"] = json!(c.lead_source_id);
    }
    if wants("job_title") {
        v["job_title"] = json!(c.job_title);
    }
    if full {
        // FullContact always names its tags; the list item does too (fixtures).
        v["tag_ids"] = json!(c.tags.keys().collect::<Vec<_>>());
    }
    v
}

/// Email/phone fields Keap accepts.
fn valid_field(f: &str, prefix: &str, max: u8) -> bool {
    f.strip_prefix(prefix)
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (1..=max).contains(&n))
}

/// Applies a v1 create/update body. `mask` limits the fields (PATCH `update_mask`).
pub fn apply_body(c: &mut Contact, body: &Value, mask: Option<&[String]>) -> Result<(), Response> {
    let Some(obj) = body.as_object() else {
        return Err(v1_bad_input());
    };
    let allowed = |k: &str| mask.is_none_or(|m| m.iter().any(|f| f == k));
    let text = |k: &str| -> Result<Option<Option<String>>, Response> {
        match obj.get(k) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(v1_bad_input()),
        }
    };
    if allowed("given_name")
        && let Some(v) = text("given_name")?
    {
        c.given_name = v.unwrap_or_default();
    }
    if allowed("family_name")
        && let Some(v) = text("family_name")?
    {
        c.family_name = v.unwrap_or_default();
    }
    if allowed("middle_name")
        && let Some(v) = text("middle_name")?
    {
        c.middle_name = v;
    }
    if allowed("job_title")
        && let Some(v) = text("job_title")?
    {
        c.job_title = v;
    }
    if allowed("email_addresses")
        && let Some(list) = obj.get("email_addresses")
    {
        let list = list.as_array().ok_or_else(v1_bad_input)?;
        for e in list {
            let field = e.get("field").and_then(Value::as_str).unwrap_or_default();
            if !valid_field(field, "EMAIL", 3) {
                return Err(v1_bad_input());
            }
            let email = e.get("email").and_then(Value::as_str).unwrap_or_default();
            c.emails.retain(|(f, _)| f != field);
            if !email.is_empty() {
                if !email.contains('@') {
                    return Err(v1_error(StatusCode::BAD_REQUEST, "Invalid email address"));
                }
                c.emails.push((field.to_owned(), email.to_owned()));
            }
        }
        c.emails.sort();
    }
    if allowed("phone_numbers")
        && let Some(list) = obj.get("phone_numbers")
    {
        let list = list.as_array().ok_or_else(v1_bad_input)?;
        for p in list {
            let field = p.get("field").and_then(Value::as_str).unwrap_or_default();
            if !valid_field(field, "PHONE", 5) {
                return Err(v1_bad_input());
            }
            let number = p.get("number").and_then(Value::as_str).unwrap_or_default();
            c.phones.retain(|(f, _)| f != field);
            if !number.is_empty() {
                c.phones.push((field.to_owned(), number.to_owned()));
            }
        }
        c.phones.sort();
    }
    if allowed("addresses")
        && let Some(list) = obj.get("addresses")
    {
        c.addresses = list.as_array().ok_or_else(v1_bad_input)?.clone();
    }
    if allowed("custom_fields")
        && let Some(list) = obj.get("custom_fields")
    {
        for f in list.as_array().ok_or_else(v1_bad_input)? {
            let id = f
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(v1_bad_input)?;
            if !CUSTOM_FIELDS.iter().any(|(fid, ..)| *fid == id) {
                return Err(v1_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid custom field id {id}"),
                ));
            }
            let content = f.get("content").cloned().unwrap_or(Value::Null);
            match c.custom.iter_mut().find(|(i, _)| *i == id) {
                Some(slot) => slot.1 = content,
                None => c.custom.push((id, content)),
            }
        }
    }
    if allowed("lead_source_id")
        && let Some(v) = obj.get("lead_source_id")
    {
        c.lead_source_id = v.as_u64();
    }
    if allowed("owner_id")
        && let Some(v) = obj.get("owner_id")
    {
        c.owner_id = v.as_u64();
    }
    if let Some(Value::String(_)) = obj.get("opt_in_reason") {
        contacts::opt_in(c);
    }
    Ok(())
}

fn optional_props(q: &[(String, String)]) -> Vec<String> {
    list_param(q, "optional_properties")
}

async fn list_contacts(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut query = ContactQuery {
        email: param(&q, "email").map(TextMatch::exact),
        given_name: param(&q, "given_name").map(TextMatch::exact),
        family_name: param(&q, "family_name").map(TextMatch::exact),
        ..ContactQuery::default()
    };
    for (name, slot) in [("since", &mut query.since), ("until", &mut query.until)] {
        if let Some(v) = param(&q, name) {
            match contacts::parse_time(v) {
                Some(t) => *slot = Some(t),
                None => return v1_bad_input(),
            }
        }
    }
    if let Some(o) = param(&q, "order") {
        query.order = match o {
            "id" => OrderKey::Id,
            "date_created" => OrderKey::DateCreated,
            "last_updated" => OrderKey::LastUpdated,
            "name" => OrderKey::Name,
            "firstName" => OrderKey::FirstName,
            "email" => OrderKey::Email,
            _ => return v1_bad_input(),
        };
    }
    if let Some(d) = param(&q, "order_direction") {
        query.descending = match d.to_ascii_uppercase().as_str() {
            "ASCENDING" => false,
            "DESCENDING" => true,
            _ => return v1_bad_input(),
        };
    }
    let opt = optional_props(&q);
    let (page, count) = lock(&app.data).contacts.query(&query, offset, limit);
    let items = page
        .iter()
        .map(|c| render_contact(c, &opt, false))
        .collect();
    v1_list(
        &headers,
        uri.path(),
        &q,
        "contacts",
        items,
        count,
        offset,
        limit,
    )
}

async fn get_contact(State(app): State<App>, Path(id): Path<String>, Query(q): Q) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).contacts.get(id) {
        Some(c) => json_response(
            StatusCode::OK,
            &render_contact(&c, &optional_props(&q), true),
        ),
        None => not_found("Contact"),
    }
}

fn has_reachability(c: &Contact) -> bool {
    !c.emails.is_empty() || !c.phones.is_empty()
}

async fn create_contact(State(app): State<App>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = Utc::now();
    let mut c = contacts::blank(now);
    if let Err(r) = apply_body(&mut c, &body, None) {
        return r;
    }
    if !has_reachability(&c) {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "Contact must contain an e-mail address or phone number",
        );
    }
    let c = crate::addresses::create_contact(&mut lock(&app.data), c, now);
    app.emit("contact.add", c.id);
    json_response(StatusCode::CREATED, &render_contact(&c, &[], true))
}

/// `PUT /contacts`: create or update by `duplicate_option` (`Email` | `EmailAndName`).
async fn upsert_contact(State(app): State<App>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let option = match body.get("duplicate_option") {
        None | Some(Value::Null) => "Email",
        Some(Value::String(s)) if s == "Email" || s == "EmailAndName" => s.as_str(),
        Some(_) => return v1_bad_input(),
    };
    let now = Utc::now();
    let mut probe = contacts::blank(now);
    if let Err(r) = apply_body(&mut probe, &body, None) {
        return r;
    }
    let mut data = lock(&app.data);
    let existing = probe
        .email1()
        .and_then(|e| data.contacts.find_by_email(e))
        .filter(|c| {
            option == "Email"
                || (c.given_name.eq_ignore_ascii_case(&probe.given_name)
                    && c.family_name.eq_ignore_ascii_case(&probe.family_name))
        });
    match existing {
        Some(mut c) => {
            if let Err(r) = apply_body(&mut c, &body, None) {
                return r;
            }
            c.last_updated = now;
            data.contacts.put(c.clone());
            drop(data);
            app.emit("contact.edit", c.id);
            json_response(StatusCode::OK, &render_contact(&c, &[], true))
        }
        None => {
            if !has_reachability(&probe) {
                return v1_error(
                    StatusCode::BAD_REQUEST,
                    "Contact must contain an e-mail address or phone number",
                );
            }
            let c = crate::addresses::create_contact(&mut data, probe, now);
            drop(data);
            app.emit("contact.add", c.id);
            // Inferred: the spec declares only 200 for this operation.
            json_response(StatusCode::OK, &render_contact(&c, &[], true))
        }
    }
}

async fn patch_contact(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mask = list_param(&q, "update_mask");
    let mut data = lock(&app.data);
    let Some(mut c) = data.contacts.get(id) else {
        return not_found("Contact");
    };
    if let Err(r) = apply_body(&mut c, &body, (!mask.is_empty()).then_some(mask.as_slice())) {
        return r;
    }
    c.last_updated = Utc::now();
    data.contacts.put(c.clone());
    drop(data);
    app.emit("contact.edit", id);
    json_response(StatusCode::OK, &render_contact(&c, &[], true))
}

async fn delete_contact(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if !lock(&app.data).contacts.delete(id) {
        return not_found("Contact");
    }
    app.emit("contact.delete", id);
    StatusCode::NO_CONTENT.into_response()
}

async fn contact_model() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "custom_fields": CUSTOM_FIELDS.iter().map(|(id, label, t1, _)| json!({
                "id": id, "label": label, "options": [], "record_type": "CONTACT",
                "field_type": t1, "field_name": label, "default_value": null,
            })).collect::<Vec<_>>(),
            "optional_properties": [
                "custom_fields", "fax_numbers", "job_title", "lead_source_id", "preferred_locale",
                "preferred_name", "prefix", "social_accounts", "source_type", "spouse_name",
                "suffix", "time_zone", "website", "birthday", "anniversary", "contact_type",
                "origin", "relationships", "opt_in_reason",
            ],
        }),
    )
}

// ---------- tags ----------

/// Applies `tag` to `contact_ids`; Keap's per-contact status map (V1CUR).
pub fn apply_tag(app: &App, tag: u64, contact_ids: &[u64]) -> Option<Vec<(u64, &'static str)>> {
    let now = Utc::now();
    let mut out = Vec::new();
    let mut applied = Vec::new();
    {
        let mut data = lock(&app.data);
        if !data.tags.contains_key(&tag) {
            return None;
        }
        for &cid in contact_ids {
            let status = match data.contacts.get(cid) {
                None => "CONTACT_NOT_FOUND",
                Some(c) if c.tags.contains_key(&tag) => "DUPLICATE",
                Some(mut c) => {
                    c.tags.insert(tag, now);
                    c.last_updated = now;
                    data.contacts.put(c);
                    applied.push(cid);
                    "SUCCESS"
                }
            };
            out.push((cid, status));
        }
    }
    for cid in applied {
        app.emit("contactGroup.applied", cid);
    }
    Some(out)
}

/// Removes `tag` from the contacts that have it; `None` if the tag does not exist.
pub fn remove_tag(app: &App, tag: u64, contact_ids: &[u64]) -> Option<()> {
    let now = Utc::now();
    let mut removed = Vec::new();
    {
        let mut data = lock(&app.data);
        if !data.tags.contains_key(&tag) {
            return None;
        }
        for &cid in contact_ids {
            if let Some(mut c) = data.contacts.get(cid)
                && c.tags.remove(&tag).is_some()
            {
                c.last_updated = now;
                data.contacts.put(c);
                removed.push(cid);
            }
        }
    }
    for cid in removed {
        app.emit("contactGroup.removed", cid);
    }
    Some(())
}

fn ids_list(q: &[(String, String)]) -> Result<Vec<u64>, Response> {
    list_param(q, "ids")
        .iter()
        .map(|s| s.parse().map_err(|_| v1_bad_input()))
        .collect()
}

async fn contact_tags(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let data = lock(&app.data);
    let Some(c) = data.contacts.get(id) else {
        return not_found("Contact");
    };
    let all: Vec<Value> = c
        .tags
        .iter()
        .filter_map(|(tid, at)| {
            data.tags.get(tid).map(|t| {
                json!({
                    "tag": {"id": t.id, "name": t.name, "category": t.category.as_ref().map(|(_, n)| n)},
                    "date_applied": v1_time(*at),
                })
            })
        })
        .collect();
    drop(data);
    let count = all.len() as u64;
    let page = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    v1_list(&headers, uri.path(), &q, "tags", page, count, offset, limit)
}

async fn apply_tags_to_contact(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(tag_ids) = body
        .get("tagIds")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
    else {
        return v1_bad_input();
    };
    if lock(&app.data).contacts.get(id).is_none() {
        return not_found("Contact");
    }
    let mut result = serde_json::Map::new();
    for t in tag_ids {
        let status = match apply_tag(&app, t, &[id]) {
            Some(r) => r.first().map_or("FAILURE", |(_, s)| *s),
            None => "TAG_ID_NOT_FOUND",
        };
        result.insert(t.to_string(), json!(status));
    }
    json_response(StatusCode::OK, &Value::Object(result))
}

async fn remove_tags_from_contact(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let tags = match ids_list(&q) {
        Ok(t) if !t.is_empty() => t,
        _ => return v1_bad_input(),
    };
    if lock(&app.data).contacts.get(id).is_none() {
        return not_found("Contact");
    }
    for t in tags {
        let _ = remove_tag(&app, t, &[id]);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_one_tag_from_contact(
    State(app): State<App>,
    Path((id, tag)): Path<(String, String)>,
) -> Response {
    let (Ok(id), Ok(tag)) = (id_of(&id), id_of(&tag)) else {
        return v1_bad_input();
    };
    if lock(&app.data).contacts.get(id).is_none() {
        return not_found("Contact");
    }
    match remove_tag(&app, tag, &[id]) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => not_found("Tag"),
    }
}

async fn list_tags(State(app): State<App>, uri: Uri, headers: HeaderMap, Query(q): Q) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let category = match param(&q, "category").map(str::parse::<u64>) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return v1_bad_input(),
    };
    let name = param(&q, "name").map(str::to_owned);
    let data = lock(&app.data);
    let all: Vec<&Tag> = data
        .tags
        .values()
        .filter(|t| category.is_none_or(|c| t.category.as_ref().is_some_and(|(id, _)| *id == c)))
        .filter(|t| {
            name.as_deref()
                .is_none_or(|n| t.name.eq_ignore_ascii_case(n))
        })
        .collect();
    let count = all.len() as u64;
    let page = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(Tag::v1)
        .collect();
    drop(data);
    v1_list(&headers, uri.path(), &q, "tags", page, count, offset, limit)
}

async fn create_tag(State(app): State<App>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return v1_error(StatusCode::BAD_REQUEST, "Tag name is required");
    };
    let category = body
        .get("category")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_u64)
        .map(|id| {
            let name = crate::resources::tag_categories()
                .iter()
                .find(|(c, _)| *c == id)
                .map_or("Category", |(_, n)| n);
            (id, name.to_owned())
        });
    let tag = create_tag_in(
        &app,
        name,
        body.get("description")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        category,
    );
    // V1B declares 200 for tag creation.
    json_response(StatusCode::OK, &tag.v1())
}

pub fn create_tag_in(
    app: &App,
    name: &str,
    description: &str,
    category: Option<(u64, String)>,
) -> Tag {
    let now = Utc::now();
    let tag = {
        let mut data = lock(&app.data);
        let id = data.next_tag_id;
        data.next_tag_id += 2;
        let tag = Tag {
            id,
            name: name.to_owned(),
            description: description.to_owned(),
            category,
            created: now,
            updated: now,
        };
        data.tags.insert(id, tag.clone());
        tag
    };
    app.emit("contactGroup.add", tag.id);
    tag
}

async fn get_tag(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).tags.get(&id) {
        Some(t) => json_response(StatusCode::OK, &t.v1()),
        None => not_found("Tag"),
    }
}

async fn tagged_contacts(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let data = lock(&app.data);
    if !data.tags.contains_key(&id) {
        return not_found("Tag");
    }
    let query = ContactQuery {
        tag: Some(id),
        ..ContactQuery::default()
    };
    let (page, count) = data.contacts.query(&query, offset, limit);
    drop(data);
    let items = page
        .iter()
        .map(|c| {
            json!({
                "contact": {"id": c.id, "email": c.email1(), "first_name": c.given_name, "last_name": c.family_name},
                "date_applied": c.tags.get(&id).map(|t| v1_time(*t)),
            })
        })
        .collect();
    v1_list(
        &headers,
        uri.path(),
        &q,
        "contacts",
        items,
        count,
        offset,
        limit,
    )
}

async fn tag_contacts(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(ids) = body
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
    else {
        return v1_bad_input();
    };
    match apply_tag(&app, id, &ids) {
        Some(results) => {
            let map: serde_json::Map<String, Value> = results
                .into_iter()
                .map(|(cid, s)| (cid.to_string(), json!(s)))
                .collect();
            json_response(StatusCode::OK, &Value::Object(map))
        }
        None => not_found("Tag"),
    }
}

async fn untag_contacts(State(app): State<App>, Path(id): Path<String>, Query(q): Q) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let ids = match ids_list(&q) {
        Ok(t) if !t.is_empty() => t,
        _ => return v1_bad_input(),
    };
    match remove_tag(&app, id, &ids) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => not_found("Tag"),
    }
}

async fn untag_one_contact(
    State(app): State<App>,
    Path((id, cid)): Path<(String, String)>,
) -> Response {
    let (Ok(id), Ok(cid)) = (id_of(&id), id_of(&cid)) else {
        return v1_bad_input();
    };
    match remove_tag(&app, id, &[cid]) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => not_found("Tag"),
    }
}

// ---------- campaigns, opportunities, orders, products ----------

fn page_of<T>(all: Vec<T>, offset: u64, limit: u64) -> Vec<T> {
    all.into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
}

async fn list_campaigns(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let search = param(&q, "search_text").map(str::to_ascii_lowercase);
    let mut all: Vec<_> = lock(&app.data)
        .campaigns
        .iter()
        .filter(|c| {
            search
                .as_deref()
                .is_none_or(|s| c.name.to_ascii_lowercase().contains(s))
        })
        .cloned()
        .collect();
    match param(&q, "order") {
        None | Some("id") => {}
        Some("name") => all.sort_by(|a, b| a.name.cmp(&b.name)),
        Some("date_created" | "published_date") => all.sort_by_key(|c| c.created),
        Some("active_contact_count") => all.sort_by_key(|c| c.active),
        Some("completed_contact_count") => all.sort_by_key(|c| c.completed),
        Some(_) => return v1_bad_input(),
    }
    if param(&q, "order_direction").is_some_and(|d| d.eq_ignore_ascii_case("descending")) {
        all.reverse();
    }
    let count = all.len() as u64;
    let items = page_of(all, offset, limit).iter().map(|c| c.v1()).collect();
    v1_list(
        &headers,
        uri.path(),
        &q,
        "campaigns",
        items,
        count,
        offset,
        limit,
    )
}

async fn get_campaign(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).campaigns.iter().find(|c| c.id == id) {
        Some(c) => {
            let mut v = c.v1();
            v["goals"] = json!([]);
            v["sequences"] = json!([]);
            json_response(StatusCode::OK, &v)
        }
        None => not_found("Campaign"),
    }
}

async fn list_opportunities(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let stage = param(&q, "stage_id").and_then(|s| s.parse::<u64>().ok());
    let term = param(&q, "search_term").map(str::to_ascii_lowercase);
    let all: Vec<_> = lock(&app.data)
        .opportunities
        .iter()
        .filter(|o| stage.is_none_or(|s| STAGES.get(o.stage).is_some_and(|st| st.id == s)))
        .filter(|o| {
            term.as_deref()
                .is_none_or(|t| o.title.to_ascii_lowercase().contains(t))
        })
        .cloned()
        .collect();
    let count = all.len() as u64;
    let items = page_of(all, offset, limit).iter().map(|o| o.v1()).collect();
    v1_list(
        &headers,
        uri.path(),
        &q,
        "opportunities",
        items,
        count,
        offset,
        limit,
    )
}

async fn get_opportunity(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).opportunities.iter().find(|o| o.id == id) {
        Some(o) => json_response(StatusCode::OK, &o.v1()),
        None => not_found("Opportunity"),
    }
}

/// `GET /opportunities/model` (amp-labs fixture values).
async fn opportunity_model() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "custom_fields": [{
                "id": 18, "label": "color", "options": [], "record_type": "OPPORTUNITY",
                "field_type": "Text", "field_name": "color", "default_value": null,
            }],
            "optional_properties": ["custom_fields"],
        }),
    )
}

async fn stage_pipeline(State(app): State<App>) -> Response {
    let data = lock(&app.data);
    let stages: Vec<Value> = STAGES
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "stage_id": s.id,
                "stage_name": s.name,
                "stage_order": s.order,
                "stage_count": data.opportunities.iter().filter(|o| o.stage == i).count(),
                "is_default": i == 0,
                "end_stage": i + 2 >= STAGES.len(),
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(stages))
}

async fn list_orders(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut bounds = [None, None];
    for (i, name) in ["since", "until"].iter().enumerate() {
        if let Some(v) = param(&q, name) {
            match contacts::parse_time(v) {
                Some(t) => bounds[i] = Some(t),
                None => return v1_bad_input(),
            }
        }
    }
    let paid = param(&q, "paid").map(|p| p == "true");
    let contact = param(&q, "contact_id").and_then(|s| s.parse::<u64>().ok());
    let product = param(&q, "product_id").and_then(|s| s.parse::<u64>().ok());
    let all: Vec<_> = lock(&app.data)
        .orders
        .iter()
        .filter(|o| bounds[0].is_none_or(|t| o.created >= t))
        .filter(|o| bounds[1].is_none_or(|t| o.created <= t))
        .filter(|o| paid.is_none_or(|p| o.paid == p))
        .filter(|o| contact.is_none_or(|c| o.contact_id == c))
        .filter(|o| product.is_none_or(|p| o.product.id == p))
        .cloned()
        .collect();
    let count = all.len() as u64;
    let items = page_of(all, offset, limit).iter().map(|o| o.v1()).collect();
    v1_list(
        &headers,
        uri.path(),
        &q,
        "orders",
        items,
        count,
        offset,
        limit,
    )
}

async fn get_order(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).orders.iter().find(|o| o.id == id) {
        Some(o) => json_response(StatusCode::OK, &o.v1()),
        None => not_found("Order"),
    }
}

/// `POST /orders` (V1B `CreateOrder`). Only the first order item is kept (simulator limit).
async fn create_order(State(app): State<App>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let contact_id = body.get("contact_id").and_then(Value::as_u64);
    let title = body.get("order_title").and_then(Value::as_str);
    let date = body
        .get("order_date")
        .and_then(Value::as_str)
        .and_then(contacts::parse_time);
    let order_type = body.get("order_type").and_then(Value::as_str);
    let item = body
        .get("order_items")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let (Some(contact_id), Some(title), Some(date), Some("Online" | "Offline"), Some(item)) =
        (contact_id, title, date, order_type, item)
    else {
        return v1_bad_input();
    };
    let (Some(product_id), Some(quantity)) = (
        item.get("product_id").and_then(Value::as_u64),
        item.get("quantity")
            .and_then(Value::as_u64)
            .filter(|q| *q >= 1),
    ) else {
        return v1_bad_input();
    };
    let order = {
        let mut data = lock(&app.data);
        let Some(contact) = data.contacts.get(contact_id) else {
            return not_found("Contact");
        };
        let Some(product) = data.products.iter().find(|p| p.id == product_id).cloned() else {
            return not_found("Product");
        };
        let order = crate::resources::Order {
            id: data.orders.iter().map(|o| o.id).max().unwrap_or(0) + 1,
            title: title.to_owned(),
            contact_id,
            contact_email: contact.email1().unwrap_or_default().to_owned(),
            contact_first: contact.given_name.clone(),
            contact_last: contact.family_name.clone(),
            product,
            quantity,
            paid: false,
            created: date,
        };
        data.orders.push(order.clone());
        order
    };
    app.emit("order.add", order.id);
    json_response(StatusCode::CREATED, &order.v1())
}

async fn delete_order(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    {
        let mut data = lock(&app.data);
        let before = data.orders.len();
        data.orders.retain(|o| o.id != id);
        if data.orders.len() == before {
            return not_found("Order");
        }
    }
    app.emit("order.delete", id);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_products(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let active = param(&q, "active").map(|a| a == "true");
    let all: Vec<_> = lock(&app.data)
        .products
        .iter()
        .filter(|p| active.is_none_or(|a| p.active == a))
        .cloned()
        .collect();
    let count = all.len() as u64;
    let items = page_of(all, offset, limit).iter().map(|p| p.v1()).collect();
    let mut v = v1_list_body(
        &headers,
        uri.path(),
        &q,
        "products",
        items,
        count,
        offset,
        limit,
    );
    // V1B's ProductList also carries a sync token for /products/sync (not served).
    v["sync_token"] = json!(count.to_string());
    json_response(StatusCode::OK, &v)
}

async fn get_product(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).products.iter().find(|p| p.id == id) {
        Some(p) => json_response(StatusCode::OK, &p.v1()),
        None => not_found("Product"),
    }
}

// ---------- emails ----------

fn time_param(q: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, Response> {
    match param(q, name) {
        None | Some("") => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(v1_bad_input),
    }
}

/// `GET /crm/rest/v1/emails`: `since_sent_date`/`until_sent_date` (both inclusive, inferred;
/// `until` needs `since`, as the spec says), `contact_id`, `email`, `ordered` (id order either
/// way here), paged by `limit`/`offset`.
pub async fn list_emails(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let (limit, offset) = match v1_paging(&q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (since, until) = match (
        time_param(&q, "since_sent_date"),
        time_param(&q, "until_sent_date"),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if until.is_some() && since.is_none() {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "since_sent_date must be present if until_sent_date is provided",
        );
    }
    let contact_id = match param(&q, "contact_id").filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => return v1_bad_input(),
        },
    };
    let email = param(&q, "email").filter(|s| !s.is_empty());
    let data = lock(&app.data);
    let matching: Vec<&SentEmail> = data
        .emails
        .iter()
        .filter(|e| since.is_none_or(|s| e.sent >= s) && until.is_none_or(|u| e.sent <= u))
        .filter(|e| contact_id.is_none_or(|c| e.contact_id == c))
        .filter(|e| email.is_none_or(|m| e.to.eq_ignore_ascii_case(m)))
        .collect();
    let count = matching.len() as u64;
    let items = matching
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(SentEmail::v1)
        .collect();
    drop(data);
    v1_list(
        &headers,
        uri.path(),
        &q,
        "emails",
        items,
        count,
        offset,
        limit,
    )
}

// ---------- account ----------

/// `POST /emails/queue` (`EmailSendRequest`, V1B): `contacts` (ids), `subject` and `user_id`
/// required; `html_content` / `plain_content` must be Base64. 202 with no body. Unknown contact
/// ids answer 400 with a v1 message (*inferred*). Counter `email_queued` counts the copies.
async fn queue_email(State(app): State<App>, body: Bytes) -> Response {
    use base64::Engine as _;
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let contacts: Option<Vec<u64>> = body
        .get("contacts")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect());
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let user_id = body.get("user_id").and_then(Value::as_u64);
    let (Some(contacts), Some(_), Some(_)) = (contacts, subject, user_id) else {
        return v1_bad_input();
    };
    if contacts.is_empty() {
        return v1_bad_input();
    }
    for field in ["html_content", "plain_content"] {
        if let Some(v) = body.get(field)
            && v.as_str()
                .is_none_or(|s| base64::engine::general_purpose::STANDARD.decode(s).is_err())
        {
            return v1_error(
                StatusCode::BAD_REQUEST,
                &format!("{field} must be encoded in Base64"),
            );
        }
    }
    {
        let data = lock(&app.data);
        if let Some(missing) = contacts.iter().find(|id| data.contacts.get(**id).is_none()) {
            return v1_error(
                StatusCode::BAD_REQUEST,
                &format!("Contact {missing} not found"),
            );
        }
    }
    // Keap keeps a sent-email record per recipient (listed by `GET /emails`).
    let mut data = lock(&app.data);
    let now = Utc::now();
    for id in &contacts {
        app.control.incr("email_queued");
        let first = data.next_email_id();
        let to = data
            .contacts
            .get(*id)
            .and_then(|c| c.email1().map(str::to_owned))
            .unwrap_or_default();
        data.emails.push(SentEmail {
            id: first,
            contact_id: *id,
            to,
            subject: subject.unwrap_or_default().to_owned(),
            sent: now,
            received: Some(now),
            opened: None,
            clicked: None,
        });
    }
    drop(data);
    StatusCode::ACCEPTED.into_response()
}

async fn userinfo() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "email": "owner@ab123.example.com",
            "family_name": "Owner",
            "given_name": "Sandbox",
            "global_user_id": 1_000_001,
            "infusionsoft_id": "owner@ab123.example.com",
            "middle_name": null,
            "preferred_name": "Sandbox Owner",
            "sub": "1000001",
        }),
    )
}

async fn account_profile() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "address": {
                "field": "OTHER", "line1": "1 Sandbox Way", "line2": "", "locality": "Chandler",
                "region": "Arizona", "postal_code": "85226", "zip_code": "85226", "zip_four": "",
                "country_code": "USA",
            },
            "business_goals": ["Grow my list"],
            "business_primary_color": "#2A7B3F",
            "business_secondary_color": "#FFFFFF",
            "business_type": "Publishing",
            "currency_code": "USD",
            "email": "owner@ab123.example.com",
            "language_tag": "en-US",
            "logo_url": "",
            "name": "SharpSend Sandbox Publishing",
            "phone": "+1 555-010-0000",
            "phone_ext": "",
            "time_zone": "America/Phoenix",
            "website": "https://sandbox.example.com",
        }),
    )
}
