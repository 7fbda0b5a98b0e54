//! REST v2 (`/crm/rest/v2/...`): string ids, `page_size`/`page_token` with an opaque
//! `next_page_token`, the `filter` grammar subset of §9, and `Error {code,message,status,details}`.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Value, json};

use crate::{
    config,
    contacts::{self, CUSTOM_FIELDS, Contact, ContactQuery, OrderKey, TextMatch, v2_time},
    resources::{LEAD_SOURCES, STAGES, Tag},
    state::{App, lock},
    v1,
    wire::{json_response, list_param, param, v2_error},
};

type Q = Query<Vec<(String, String)>>;

const P: &str = "/crm/rest/v2";

/// Every field a v2 contact can carry (V2SPEC `fields` description).
const CONTACT_FIELDS: &[&str] = &[
    "addresses",
    "anniversary_date",
    "birth_date",
    "company",
    "contact_type",
    "create_time",
    "custom_fields",
    "email_addresses",
    "family_name",
    "fax_numbers",
    "given_name",
    "id",
    "job_title",
    "leadsource_id",
    "links",
    "middle_name",
    "notes",
    "origin",
    "owner_id",
    "phone_numbers",
    "preferred_locale",
    "preferred_name",
    "prefix",
    "referral_code",
    "score_value",
    "social_accounts",
    "source_type",
    "spouse_name",
    "suffix",
    "tag_ids",
    "time_zone",
    "update_time",
    "utm_parameters",
    "website",
    "account_id",
    "assistant_name",
    "assistant_phone",
    "billing_information",
    "created_by",
    "groups",
    "last_updated_by",
];

pub fn router() -> Router<App> {
    let r = |p: &str| format!("{P}{p}");
    Router::new()
        .route(&r("/contacts"), get(list_contacts).post(create_contact))
        .route(&r("/contacts/model"), get(contact_model))
        .route(
            &r("/contacts/{contact_id}"),
            get(get_contact).patch(patch_contact).delete(delete_contact),
        )
        .route(&r("/contacts/{contact_id}/tags"), get(contact_tags))
        .route(&r("/contacts/{contact_id}/leadScore"), get(lead_score))
        .route(&r("/tags"), get(list_tags).post(create_tag))
        .route(&r("/tags/categories"), get(list_tag_categories))
        .route(&r("/tags/{tag_id}"), get(get_tag))
        .route(&r("/tags/{tag_id}/contacts"), get(tagged_contacts))
        .route(&r("/tags/{tag_id}/contacts:applyTags"), post(apply_tags))
        .route(&r("/tags/{tag_id}/contacts:removeTags"), post(remove_tags))
        .route(&r("/campaigns"), get(list_campaigns))
        .route(&r("/campaigns/{campaign_id}"), get(get_campaign))
        .route(&r("/opportunities"), get(list_opportunities))
        .route(&r("/opportunities/stages"), get(list_stages))
        .route(&r("/orders"), get(list_orders))
        .route(&r("/products"), get(list_products))
        .route(&r("/leadSources"), get(list_lead_sources))
        .route(&r("/oauth/connect/userinfo"), get(userinfo))
        .route(
            &r("/emailAddresses/{email}/status"),
            get(crate::addresses::get_status).patch(crate::addresses::patch_status),
        )
}

fn bad(msg: &str) -> Response {
    v2_error(StatusCode::BAD_REQUEST, msg)
}

fn not_found(what: &str) -> Response {
    v2_error(
        StatusCode::NOT_FOUND,
        &format!("Unable to find this {what}"),
    )
}

fn id_of(s: &str) -> Result<u64, Response> {
    s.parse().map_err(|_| bad(&format!("Invalid id: {s}")))
}

// ---------- paging ----------

enum Cursor {
    /// Keyset: ids after this one (id ascending).
    After(u64),
    Offset(u64),
}

fn encode(c: &Cursor) -> String {
    let raw = match c {
        Cursor::After(id) => format!("a:{id}"),
        Cursor::Offset(o) => format!("o:{o}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode(token: &str) -> Result<Cursor, Response> {
    let invalid = || bad("Invalid page_token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    match raw.split_once(':') {
        Some(("a", n)) => n.parse().map(Cursor::After).map_err(|_| invalid()),
        Some(("o", n)) => n.parse().map(Cursor::Offset).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn page_size(q: &[(String, String)]) -> Result<u64, Response> {
    match param(q, "page_size") {
        None | Some("") => Ok(config::V2_DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<i64>() {
            Ok(0) => Ok(config::V2_DEFAULT_PAGE_SIZE),
            Ok(n) if n > 0 && n.unsigned_abs() <= config::V2_MAX_PAGE_SIZE => Ok(n.unsigned_abs()),
            _ => Err(bad(&format!(
                "page_size must be between 0 and {}",
                config::V2_MAX_PAGE_SIZE
            ))),
        },
    }
}

fn list_body(key: &str, items: Vec<Value>, next: Option<Cursor>) -> Response {
    let token = next.map_or_else(|| config::V2_LAST_PAGE_TOKEN.to_owned(), |c| encode(&c));
    let mut m = serde_json::Map::new();
    m.insert(key.to_owned(), Value::Array(items));
    m.insert("next_page_token".into(), json!(token));
    json_response(StatusCode::OK, &Value::Object(m))
}

/// Offset paging over an in-memory list.
fn vec_page(q: &[(String, String)], key: &str, all: Vec<Value>) -> Response {
    let size = match page_size(q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let offset = match param(q, "page_token").filter(|t| !t.is_empty()).map(decode) {
        None => 0,
        Some(Ok(Cursor::Offset(o))) => o,
        Some(Ok(Cursor::After(_))) | Some(Err(_)) => return bad("Invalid page_token"),
    };
    let total = all.len() as u64;
    let items: Vec<Value> = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(size).unwrap_or(usize::MAX))
        .collect();
    let next = (offset + size < total).then_some(Cursor::Offset(offset + size));
    list_body(key, items, next)
}

// ---------- filter grammar ----------

/// One `field op value` clause of a `filter` (clauses joined by `;`).
#[derive(Debug, PartialEq)]
pub struct Clause {
    pub field: String,
    pub op: &'static str,
    pub value: String,
}

pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, String> {
    let mut out = Vec::new();
    for part in filter.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let found = ["==", "!=", ">=", "<=", ">", "<"]
            .iter()
            .filter_map(|op| part.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())));
        let Some((i, op)) = found else {
            return Err(format!("Invalid filter clause: {part}"));
        };
        let field = part[..i].trim();
        if field.is_empty() {
            return Err(format!("Invalid filter clause: {part}"));
        }
        out.push(Clause {
            field: field.to_owned(),
            op,
            value: part[i + op.len()..].trim().to_owned(),
        });
    }
    Ok(out)
}

fn contact_query(q: &[(String, String)]) -> Result<ContactQuery, Response> {
    let mut query = ContactQuery::default();
    if let Some(f) = param(q, "filter") {
        for c in parse_filter(f).map_err(|m| bad(&m))? {
            let need_eq = |c: &Clause| {
                if c.op == "==" {
                    Ok(())
                } else {
                    Err(bad(&format!(
                        "Operator {} is not supported for {}",
                        c.op, c.field
                    )))
                }
            };
            match c.field.as_str() {
                "email" => {
                    need_eq(&c)?;
                    query.email = Some(TextMatch::parse(&c.value));
                }
                "given_name" => {
                    need_eq(&c)?;
                    query.given_name = Some(TextMatch::parse(&c.value));
                }
                "family_name" => {
                    need_eq(&c)?;
                    query.family_name = Some(TextMatch::parse(&c.value));
                }
                "ids" | "contact_ids" => {
                    need_eq(&c)?;
                    let ids = c
                        .value
                        .split(',')
                        .map(|s| s.trim().parse::<u64>())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| bad("Invalid ids filter"))?;
                    query.ids = Some(ids);
                }
                "start_update_time" | "end_update_time" => {
                    need_eq(&c)?;
                    let t = contacts::parse_time(&c.value)
                        .ok_or_else(|| bad(&format!("Invalid date for {}", c.field)))?;
                    if c.field == "start_update_time" {
                        query.since = Some(t);
                    } else {
                        query.until = Some(t);
                    }
                }
                other => return Err(bad(&format!("Invalid filter field: {other}"))),
            }
        }
    }
    if let Some(o) = param(q, "order_by") {
        let mut it = o.split_whitespace();
        query.order = match it.next() {
            Some("id") => OrderKey::Id,
            Some("create_time") => OrderKey::DateCreated,
            Some("update_time") => OrderKey::LastUpdated,
            Some("email") => OrderKey::Email,
            _ => return Err(bad(&format!("Invalid order_by: {o}"))),
        };
        query.descending = match it.next() {
            None | Some("asc" | "ASC") => false,
            Some("desc" | "DESC") => true,
            Some(_) => return Err(bad(&format!("Invalid order_by: {o}"))),
        };
    }
    Ok(query)
}

// ---------- contacts ----------

fn fields_of(q: &[(String, String)]) -> Result<Vec<String>, Response> {
    let fields = list_param(q, "fields");
    if let Some(f) = fields
        .iter()
        .find(|f| !CONTACT_FIELDS.contains(&f.as_str()))
    {
        return Err(bad(&format!("Invalid field: {f}")));
    }
    Ok(if fields.is_empty() {
        config::V2_DEFAULT_CONTACT_FIELDS
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        fields
    })
}

pub fn render_contact(c: &Contact, fields: &[String]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(c.id.to_string()));
    for f in fields {
        let v = match f.as_str() {
            "given_name" => json!(c.given_name),
            "family_name" => json!(c.family_name),
            "middle_name" => json!(c.middle_name),
            "job_title" => json!(c.job_title),
            "email_addresses" => c
                .emails
                .iter()
                .map(|(f, e)| {
                    json!({"email": e, "field": f, "is_opt_in": c.email_opted_in,
                           "email_opt_status": contacts::v2_opt_status(&c.email_status)})
                })
                .collect(),
            "phone_numbers" => c
                .phones
                .iter()
                .map(|(f, n)| json!({"number": n, "field": f, "type": "Work", "extension": ""}))
                .collect(),
            "addresses" => json!(c.addresses),
            "company" => c
                .company_name
                .as_ref()
                .map_or(Value::Null, |n| json!({"id": "1", "company_name": n})),
            "create_time" => json!(v2_time(c.date_created)),
            "update_time" => json!(v2_time(c.last_updated)),
            "tag_ids" => c.tags.keys().map(|t| json!(t.to_string())).collect(),
            "custom_fields" => c
                .custom
                .iter()
                .map(|(id, content)| json!({"id": id.to_string(), "content": content}))
                .collect(),
            "leadsource_id" => json!(c.lead_source_id.map(|i| i.to_string())),
            "owner_id" => json!(c.owner_id.map(|i| i.to_string())),
            "score_value" => json!(c.score),
            "source_type" => json!("API"),
            "contact_type" => json!("Lead"),
            "links" | "fax_numbers" | "social_accounts" | "utm_parameters" => json!([]),
            _ => continue,
        };
        if !v.is_null() {
            m.insert(f.clone(), v);
        }
    }
    Value::Object(m)
}

/// Applies a v2 `CreateUpdateContactRequest`. Collections are replace-all (V2SPEC).
fn apply_body(c: &mut Contact, body: &Value, mask: Option<&[String]>) -> Result<(), Response> {
    let Some(obj) = body.as_object() else {
        return Err(bad("Request body must be a JSON object"));
    };
    let allowed = |k: &str| mask.is_none_or(|m| m.iter().any(|f| f == k));
    let s = |k: &str| obj.get(k).map(|v| v.as_str().map(str::to_owned));
    if allowed("given_name")
        && let Some(v) = s("given_name")
    {
        c.given_name = v.unwrap_or_default();
    }
    if allowed("family_name")
        && let Some(v) = s("family_name")
    {
        c.family_name = v.unwrap_or_default();
    }
    if allowed("middle_name")
        && let Some(v) = s("middle_name")
    {
        c.middle_name = v;
    }
    if allowed("job_title")
        && let Some(v) = s("job_title")
    {
        c.job_title = v;
    }
    let mut opt_in = false;
    if allowed("email_addresses")
        && let Some(list) = obj.get("email_addresses")
    {
        let list = list
            .as_array()
            .ok_or_else(|| bad("email_addresses must be an array"))?;
        let mut emails = Vec::new();
        for e in list {
            let field = e.get("field").and_then(Value::as_str).unwrap_or("EMAIL1");
            let email = e.get("email").and_then(Value::as_str).unwrap_or_default();
            if !matches!(field, "EMAIL1" | "EMAIL2" | "EMAIL3") || !email.contains('@') {
                return Err(bad(&format!("Invalid email address: {email}")));
            }
            opt_in |= e.get("opt_in_reason").and_then(Value::as_str).is_some();
            emails.push((field.to_owned(), email.to_owned()));
        }
        emails.sort();
        c.emails = emails;
    }
    if allowed("phone_numbers")
        && let Some(list) = obj.get("phone_numbers")
    {
        let list = list
            .as_array()
            .ok_or_else(|| bad("phone_numbers must be an array"))?;
        c.phones = list
            .iter()
            .map(|p| {
                (
                    p.get("field")
                        .and_then(Value::as_str)
                        .unwrap_or("PHONE1")
                        .to_owned(),
                    p.get("number")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
    }
    if allowed("addresses")
        && let Some(list) = obj.get("addresses")
    {
        c.addresses = list.as_array().cloned().unwrap_or_default();
    }
    if allowed("custom_fields")
        && let Some(list) = obj.get("custom_fields")
    {
        for f in list
            .as_array()
            .ok_or_else(|| bad("custom_fields must be an array"))?
        {
            let id = f
                .get("id")
                .and_then(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                })
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|id| CUSTOM_FIELDS.iter().any(|(fid, ..)| fid == id))
                .ok_or_else(|| bad("Invalid custom field id"))?;
            let content = f.get("content").cloned().unwrap_or(Value::Null);
            match c.custom.iter_mut().find(|(i, _)| *i == id) {
                Some(slot) => slot.1 = content,
                None => c.custom.push((id, content)),
            }
        }
    }
    if allowed("leadsource_id")
        && let Some(v) = obj.get("leadsource_id")
    {
        c.lead_source_id = v.as_str().and_then(|s| s.parse().ok());
    }
    if allowed("owner_id")
        && let Some(v) = obj.get("owner_id")
    {
        c.owner_id = v.as_str().and_then(|s| s.parse().ok());
    }
    if opt_in {
        contacts::opt_in(c);
    }
    Ok(())
}

async fn list_contacts(State(app): State<App>, Query(q): Q) -> Response {
    let size = match page_size(&q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = match contact_query(&q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let fields = match fields_of(&q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let cursor = match param(&q, "page_token")
        .filter(|t| !t.is_empty())
        .map(decode)
    {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(r)) => return r,
    };
    let take = usize::try_from(size).unwrap_or(usize::MAX);
    let data = lock(&app.data);
    let (items, next) = if query.order == OrderKey::Id && !query.descending {
        let after = match cursor {
            None => 0,
            Some(Cursor::After(a)) => a,
            Some(Cursor::Offset(_)) => return bad("Invalid page_token"),
        };
        let mut page: Vec<Contact> = match &query.ids {
            Some(_) => data
                .contacts
                .query(&query, 0, u64::MAX)
                .0
                .into_iter()
                .filter(|c| c.id > after)
                .take(take + 1)
                .collect(),
            None => data
                .contacts
                .iter_after(after)
                .filter(|c| query.matches(c))
                .take(take + 1)
                .collect(),
        };
        let more = page.len() > take;
        page.truncate(take);
        let next = more.then(|| Cursor::After(page.last().map_or(after, |c| c.id)));
        (page, next)
    } else {
        let offset = match cursor {
            None => 0,
            Some(Cursor::Offset(o)) => o,
            Some(Cursor::After(_)) => return bad("Invalid page_token"),
        };
        let (page, total) = data.contacts.query(&query, offset, size);
        let next = (offset + size < total).then_some(Cursor::Offset(offset + size));
        (page, next)
    };
    drop(data);
    list_body(
        "contacts",
        items.iter().map(|c| render_contact(c, &fields)).collect(),
        next,
    )
}

async fn get_contact(State(app): State<App>, Path(id): Path<String>, Query(q): Q) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let fields = match fields_of(&q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    match lock(&app.data).contacts.get(id) {
        Some(c) => json_response(StatusCode::OK, &render_contact(&c, &fields)),
        None => not_found("Contact"),
    }
}

fn all_fields() -> Vec<String> {
    CONTACT_FIELDS.iter().map(|s| (*s).to_owned()).collect()
}

/// `POST /v2/contacts[?duplicate_option=Email|EmailAndName|EmailAndNameAndCompany]`: a match is
/// updated (200), otherwise a contact is created (201).
async fn create_contact(State(app): State<App>, Query(q): Q, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Request body is not valid JSON");
    };
    let option = param(&q, "duplicate_option");
    if let Some(o) = option
        && !matches!(o, "Email" | "EmailAndName" | "EmailAndNameAndCompany")
    {
        return bad(&format!("Invalid duplicate_option: {o}"));
    }
    let now = Utc::now();
    let mut probe = contacts::blank(now);
    if let Err(r) = apply_body(&mut probe, &body, None) {
        return r;
    }
    if probe.emails.is_empty() && probe.phones.is_empty() && probe.addresses.is_empty() {
        return bad("Contact must contain at least one email address, phone number or address");
    }
    let mut data = lock(&app.data);
    let existing = option.and_then(|o| {
        let c = probe
            .email1()
            .and_then(|e| data.contacts.find_by_email(e))?;
        let name_ok = c.given_name.eq_ignore_ascii_case(&probe.given_name)
            && c.family_name.eq_ignore_ascii_case(&probe.family_name);
        let company_ok = c.company_name == probe.company_name;
        match o {
            "Email" => Some(c),
            "EmailAndName" if name_ok => Some(c),
            "EmailAndNameAndCompany" if name_ok && company_ok => Some(c),
            _ => None,
        }
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
            json_response(StatusCode::OK, &render_contact(&c, &all_fields()))
        }
        None => {
            let c = crate::addresses::create_contact(&mut data, probe, now);
            drop(data);
            app.emit("contact.add", c.id);
            json_response(StatusCode::CREATED, &render_contact(&c, &all_fields()))
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
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Request body is not valid JSON");
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
    json_response(StatusCode::OK, &render_contact(&c, &all_fields()))
}

async fn delete_contact(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut data = lock(&app.data);
    let emails: Vec<String> = data
        .contacts
        .get(id)
        .map(|c| {
            c.emails
                .iter()
                .map(|(_, e)| e.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    if !data.contacts.delete(id) {
        return not_found("Contact");
    }
    data.deleted_emails.extend(emails);
    drop(data);
    app.emit("contact.delete", id);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /v2/contacts/model` (shape of the amp-labs fixture).
async fn contact_model() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "custom_fields": CUSTOM_FIELDS.iter().map(|(id, label, _, t2)| json!({
                "id": id.to_string(), "label": label, "options": null, "record_type": null,
                "field_type": t2, "default_value": null, "group_id": null, "field_name": null,
            })).collect::<Vec<_>>(),
            "optional_properties": [
                "update_time", "create_time", "score_value", "tag_ids", "links", "addresses",
                "anniversary_date", "birth_date", "company", "contact_type", "custom_fields",
                "email_addresses", "fax_numbers", "job_title", "leadsource_id", "middle_name",
                "notes", "origin", "owner_id", "phone_numbers", "preferred_locale",
                "preferred_name", "prefix", "referral_code", "social_accounts", "source_type",
                "spouse_name", "suffix", "time_zone", "website", "utm_parameters",
            ],
        }),
    )
}

async fn contact_tags(State(app): State<App>, Path(id): Path<String>, Query(q): Q) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let data = lock(&app.data);
    let Some(c) = data.contacts.get(id) else {
        return not_found("Contact");
    };
    let all = c
        .tags
        .iter()
        .filter_map(|(tid, at)| {
            data.tags.get(tid).map(|t| {
                json!({"tag": {"id": t.id.to_string(), "name": t.name, "description": t.description}, "applied_time": v2_time(*at)})
            })
        })
        .collect();
    drop(data);
    vec_page(&q, "tags", all)
}

async fn lead_score(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).contacts.get(id) {
        Some(c) => json_response(
            StatusCode::OK,
            &json!({"score": c.score.unwrap_or_else(|| "0".into()), "last_updated": v2_time(c.last_updated)}),
        ),
        None => not_found("Contact"),
    }
}

// ---------- tags ----------

async fn list_tags(State(app): State<App>, Query(q): Q) -> Response {
    let mut name: Option<TextMatch> = None;
    let mut category: Option<Option<u64>> = None;
    if let Some(f) = param(&q, "filter") {
        let clauses = match parse_filter(f) {
            Ok(c) => c,
            Err(m) => return bad(&m),
        };
        for c in clauses {
            match (c.field.as_str(), c.op) {
                ("name", "==") => name = Some(TextMatch::parse(&c.value)),
                ("category_id", "==") if c.value == "NONE" => category = Some(None),
                ("category_id", "==") => match c.value.parse() {
                    Ok(id) => category = Some(Some(id)),
                    Err(_) => return bad("Invalid category_id"),
                },
                (f, op) => return bad(&format!("Invalid filter: {f}{op}")),
            }
        }
    }
    let mut all: Vec<Tag> = lock(&app.data)
        .tags
        .values()
        .filter(|t| name.as_ref().is_none_or(|m| m.matches(&t.name)))
        .filter(|t| category.is_none_or(|c| t.category.as_ref().map(|(id, _)| *id) == c))
        .cloned()
        .collect();
    match param(&q, "order_by").map(|o| o.split_whitespace().collect::<Vec<_>>()) {
        None => {}
        Some(o) => {
            match o.first().copied() {
                Some("name") => all.sort_by(|a, b| a.name.cmp(&b.name)),
                Some("create_time") => all.sort_by_key(|t| t.created),
                Some("update_time") => all.sort_by_key(|t| t.updated),
                _ => return bad("Invalid order_by"),
            }
            if o.get(1).is_some_and(|d| d.eq_ignore_ascii_case("desc")) {
                all.reverse();
            }
        }
    }
    vec_page(&q, "tags", all.iter().map(Tag::v2).collect())
}

async fn list_tag_categories(Query(q): Q) -> Response {
    let all = crate::resources::tag_categories()
        .iter()
        .map(|(id, name)| json!({"id": id.to_string(), "name": name, "description": ""}))
        .collect();
    vec_page(&q, "tag_categories", all)
}

async fn create_tag(State(app): State<App>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Request body is not valid JSON");
    };
    let Some(name) = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return bad("name is required");
    };
    let category = body
        .get("category")
        .and_then(|c| c.get("id"))
        .and_then(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v.as_u64())
        })
        .map(|id: u64| (id, "Category".to_owned()));
    let tag = v1::create_tag_in(
        &app,
        name,
        body.get("description")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        category,
    );
    json_response(StatusCode::CREATED, &tag.v2())
}

async fn get_tag(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).tags.get(&id) {
        Some(t) => json_response(StatusCode::OK, &t.v2()),
        None => not_found("Tag"),
    }
}

async fn tagged_contacts(State(app): State<App>, Path(id): Path<String>, Query(q): Q) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let size = match page_size(&q) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let offset = match param(&q, "page_token")
        .filter(|t| !t.is_empty())
        .map(decode)
    {
        None => 0,
        Some(Ok(Cursor::Offset(o))) => o,
        _ => return bad("Invalid page_token"),
    };
    let data = lock(&app.data);
    if !data.tags.contains_key(&id) {
        return not_found("Tag");
    }
    let query = ContactQuery {
        tag: Some(id),
        ..ContactQuery::default()
    };
    let (page, total) = data.contacts.query(&query, offset, size);
    drop(data);
    let items = page
        .iter()
        .map(|c| {
            json!({
                "id": c.id.to_string(), "email": c.email1(), "given_name": c.given_name,
                "family_name": c.family_name,
                "applied_time": c.tags.get(&id).map(|t| v2_time(*t)),
            })
        })
        .collect();
    list_body(
        "contacts",
        items,
        (offset + size < total).then_some(Cursor::Offset(offset + size)),
    )
}

fn contact_ids(body: &[u8]) -> Result<Vec<u64>, Response> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| bad("Request body is not valid JSON"))?;
    let ids = v
        .get("contact_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("contact_ids is required"))?;
    ids.iter()
        .map(|i| {
            i.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| i.as_u64())
                .ok_or_else(|| bad("Invalid contact id"))
        })
        .collect()
}

/// `:applyTags` answers 200 with a per-contact result map even on partial failure (W6W).
async fn apply_tags(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let ids = match contact_ids(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match v1::apply_tag(&app, id, &ids) {
        Some(results) => {
            let map: serde_json::Map<String, Value> = results
                .into_iter()
                .map(|(cid, s)| (cid.to_string(), json!(s)))
                .collect();
            json_response(StatusCode::OK, &json!({"results": map}))
        }
        None => not_found("Tag"),
    }
}

/// `:removeTags` answers 204 without a body (W6W).
async fn remove_tags(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let ids = match contact_ids(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match v1::remove_tag(&app, id, &ids) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => not_found("Tag"),
    }
}

// ---------- other lists ----------

fn simple_filter(q: &[(String, String)], allowed: &[&str]) -> Result<Vec<Clause>, Response> {
    let Some(f) = param(q, "filter") else {
        return Ok(Vec::new());
    };
    let clauses = parse_filter(f).map_err(|m| bad(&m))?;
    if let Some(c) = clauses
        .iter()
        .find(|c| c.op != "==" || !allowed.contains(&c.field.as_str()))
    {
        return Err(bad(&format!("Invalid filter: {}{}", c.field, c.op)));
    }
    Ok(clauses)
}

async fn list_campaigns(State(app): State<App>, Query(q): Q) -> Response {
    let clauses = match simple_filter(&q, &["name"]) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let all = lock(&app.data)
        .campaigns
        .iter()
        .filter(|c| {
            clauses.iter().all(|cl| {
                c.name
                    .to_ascii_lowercase()
                    .contains(&cl.value.to_ascii_lowercase())
            })
        })
        .map(|c| c.v2())
        .collect();
    vec_page(&q, "campaigns", all)
}

async fn get_campaign(State(app): State<App>, Path(id): Path<String>) -> Response {
    let id = match id_of(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match lock(&app.data).campaigns.iter().find(|c| c.id == id) {
        Some(c) => json_response(StatusCode::OK, &c.v2()),
        None => not_found("Campaign"),
    }
}

async fn list_opportunities(State(app): State<App>, Query(q): Q) -> Response {
    let clauses = match simple_filter(&q, &["stage_id", "contact_id"]) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let all = lock(&app.data)
        .opportunities
        .iter()
        .filter(|o| {
            clauses.iter().all(|cl| match cl.field.as_str() {
                "stage_id" => STAGES
                    .get(o.stage)
                    .is_some_and(|s| s.id.to_string() == cl.value),
                _ => o.contact_id.to_string() == cl.value,
            })
        })
        .map(|o| o.v2())
        .collect();
    vec_page(&q, "opportunities", all)
}

async fn list_stages(Query(q): Q) -> Response {
    vec_page(&q, "stages", STAGES.iter().map(|s| s.v2()).collect())
}

async fn list_orders(State(app): State<App>, Query(q): Q) -> Response {
    let clauses = match simple_filter(&q, &["contact_id", "paid", "product_id"]) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let all = lock(&app.data)
        .orders
        .iter()
        .filter(|o| {
            clauses.iter().all(|cl| match cl.field.as_str() {
                "contact_id" => o.contact_id.to_string() == cl.value,
                "product_id" => o.product.id.to_string() == cl.value,
                _ => o.paid.to_string() == cl.value,
            })
        })
        .map(|o| o.v2())
        .collect();
    vec_page(&q, "orders", all)
}

async fn list_products(State(app): State<App>, Query(q): Q) -> Response {
    let all = lock(&app.data).products.iter().map(|p| p.v2()).collect();
    vec_page(&q, "products", all)
}

async fn list_lead_sources(Query(q): Q) -> Response {
    vec_page(
        &q,
        "lead_sources",
        LEAD_SOURCES.iter().map(|l| l.v2()).collect(),
    )
}

async fn userinfo() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "email": "owner@ab123.example.com",
            "sub": "1000001",
            "id": "1",
            "keap_id": "owner@ab123.example.com",
            "family_name": "Owner",
            "given_name": "Sandbox",
            "middle_name": "",
            "preferred_name": "Sandbox Owner",
            "is_admin": true,
            "tenant_id": config::TENANT_HOST,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_grammar() {
        let c = parse_filter("email==john*;start_update_time==2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].field, "email");
        assert_eq!(c[0].op, "==");
        assert_eq!(c[0].value, "john*");
        assert_eq!(c[1].value, "2026-01-01T00:00:00.000Z");
        let c = parse_filter("contact_id>=5").unwrap();
        assert_eq!(c[0].op, ">=");
        assert!(parse_filter("garbage").is_err());
    }

    #[test]
    fn tokens_round_trip() {
        assert!(matches!(
            decode(&encode(&Cursor::After(42))),
            Ok(Cursor::After(42))
        ));
        assert!(matches!(
            decode(&encode(&Cursor::Offset(7))),
            Ok(Cursor::Offset(7))
        ));
        assert!(decode("!!").is_err());
    }
}
