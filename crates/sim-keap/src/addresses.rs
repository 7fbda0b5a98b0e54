//! Email address opt-in status (REST v2 `/emailAddresses/{email}/status`, issue 17). Keap keeps
//! the status per **address**, so one opt-out covers every contact holding it (consent.md §3.2);
//! re-opt-in through the API only moves the statuses of [`config::OPT_IN_MOVABLE`].

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::{
    config,
    contacts::{self, v2_time},
    state::{AddressStatus, App, Data, lock},
    wire::{json_response, v2_error},
};

/// Whether a v1 status may be mailed.
pub fn marketable(status: &str) -> bool {
    matches!(
        status,
        "UnengagedMarketable" | "SingleOptIn" | "DoubleOptin" | "Confirmed"
    )
}

/// The v1 status of `email` (lower-cased): written, else its first contact's; `None` when no
/// live contact holds it and it was never written.
pub fn status_of(data: &Data, email: &str) -> Option<(String, DateTime<Utc>)> {
    if let Some(s) = data.address_status.get(email) {
        return Some((s.status.clone(), s.create_time));
    }
    let c = data.contacts.find_by_email(email)?;
    Some((c.email_status.clone(), c.date_created))
}

/// `RestEmailAddressStatus` (V2SPEC); the last open/click/send come from the sent-email records.
fn render(data: &Data, email: &str, status: &str, created: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("email".into(), json!(email));
    m.insert("opted_in".into(), json!(marketable(status)));
    m.insert("status".into(), json!(contacts::v2_opt_status(status)));
    m.insert("create_time".into(), json!(v2_time(created)));
    let sent: Vec<_> = data
        .emails
        .iter()
        .filter(|e| e.to.eq_ignore_ascii_case(email))
        .collect();
    let latest = |f: &dyn Fn(&crate::emails::SentEmail) -> Option<DateTime<Utc>>| {
        sent.iter().filter_map(|e| f(e)).max()
    };
    for (k, t) in [
        ("last_sent_time", latest(&|e| Some(e.sent))),
        ("last_open_time", latest(&|e| e.opened)),
        ("last_click_time", latest(&|e| e.clicked)),
    ] {
        if let Some(t) = t {
            m.insert(k.into(), json!(v2_time(t)));
        }
    }
    Value::Object(m)
}

fn unknown() -> Response {
    v2_error(StatusCode::NOT_FOUND, "Unable to find this Email Address")
}

/// `GET /crm/rest/v2/emailAddresses/{email}/status`.
pub async fn get_status(State(app): State<App>, Path(email): Path<String>) -> Response {
    let email = email.trim().to_ascii_lowercase();
    let data = lock(&app.data);
    match status_of(&data, &email) {
        Some((status, created)) => {
            json_response(StatusCode::OK, &render(&data, &email, &status, created))
        }
        None => unknown(),
    }
}

/// `PATCH /crm/rest/v2/emailAddresses/{email}/status` `{"opted_in": bool, "reason": str}` (both
/// required). An opt-out of a marketable address sets [`config::API_OPT_OUT_STATUS`] on the
/// address and on every contact holding it, and fires `contact.edit` for each of them; an
/// address already non-marketable keeps its status (a bounce stays a bounce). An opt-in moves
/// only the statuses Keap lets the API move; the others stay as they are, still with 200.
pub async fn patch_status(
    State(app): State<App>,
    Path(email): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return v2_error(StatusCode::BAD_REQUEST, "Request body is not valid JSON");
    };
    let Some(opted_in) = body.get("opted_in").and_then(Value::as_bool) else {
        return v2_error(StatusCode::BAD_REQUEST, "opted_in is required");
    };
    let reason = body.get("reason").and_then(Value::as_str).unwrap_or("");
    if reason.trim().is_empty() {
        return v2_error(StatusCode::BAD_REQUEST, "reason is required");
    }
    let email = email.trim().to_ascii_lowercase();
    let now = Utc::now();
    let mut data = lock(&app.data);
    let Some((current, created)) = status_of(&data, &email) else {
        return unknown();
    };
    let next = if opted_in {
        if config::OPT_IN_MOVABLE.contains(&current.as_str()) {
            config::OPTED_IN_STATUS.to_owned()
        } else {
            current.clone()
        }
    } else if marketable(&current) {
        config::API_OPT_OUT_STATUS.to_owned()
    } else {
        current.clone()
    };
    let mut edited = Vec::new();
    if next != current {
        data.address_status.insert(
            email.clone(),
            AddressStatus {
                status: next.clone(),
                create_time: created,
            },
        );
        for mut c in data.contacts.all_by_email(&email) {
            c.email_status.clone_from(&next);
            c.email_opted_in = marketable(&next);
            c.last_updated = now;
            edited.push(c.id);
            data.contacts.put(c);
        }
    }
    let answer = render(&data, &email, &next, created);
    drop(data);
    if !opted_in && !edited.is_empty() {
        app.control.incr("addresses_opted_out");
    }
    // Inferred (consent.md §6): the status change shows as a contact edit of each holder.
    for id in edited {
        app.emit("contact.edit", id);
    }
    json_response(StatusCode::OK, &answer)
}

/// Stores a new contact, which takes the status already written for its address (the status is
/// the address's, not the contact's). An `opt_in_reason` on the create moves that status only
/// where the API may ([`config::OPT_IN_MOVABLE`]), for the address and so for its other holders.
pub fn create_contact(
    data: &mut Data,
    mut c: contacts::Contact,
    now: DateTime<Utc>,
) -> contacts::Contact {
    let Some(email) = c.email1().map(str::to_ascii_lowercase) else {
        return data.contacts.create(c, now);
    };
    let Some(written) = data.address_status.get(&email).cloned() else {
        return data.contacts.create(c, now);
    };
    let status = if c.email_opted_in && config::OPT_IN_MOVABLE.contains(&written.status.as_str()) {
        config::OPTED_IN_STATUS.to_owned()
    } else {
        written.status.clone()
    };
    c.email_status.clone_from(&status);
    c.email_opted_in = marketable(&status);
    if status != written.status {
        data.address_status.insert(
            email.clone(),
            AddressStatus {
                status: status.clone(),
                create_time: written.create_time,
            },
        );
        for mut other in data.contacts.all_by_email(&email) {
            other.email_status.clone_from(&status);
            other.email_opted_in = marketable(&status);
            data.contacts.put(other);
        }
    }
    data.contacts.create(c, now)
}
