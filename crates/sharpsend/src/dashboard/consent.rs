//! The Consent page (issue 17): the ledger with its filters and each entry's propagation per
//! platform, the propagate setting, the add and erase forms, and the audit log. Like every page
//! it only calls the consent API (`http::routes::consent`) in-process with the session's token.

use axum::{
    Extension,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use domain::{PublisherId, consent::Reason};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    api::ApiRouter, checked_form, chrome, publisher, render, session::Session, urlencode, views::*,
};
use crate::state::AppState;

/// Ledger rows per page.
const LEDGER_PAGE: u32 = 50;
/// Audit entries per page: the latest ones first.
const AUDIT_PAGE: u32 = 20;

#[derive(Deserialize, Default)]
pub(super) struct ConsentQuery {
    email: Option<String>,
    reason: Option<String>,
    /// The ledger's page (`nextCursor` of the suppressions list).
    cursor: Option<String>,
    /// The audit log's page, kept apart so that each table pages on its own.
    audit: Option<String>,
    done: Option<String>,
}

fn trimmed(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or_default().to_owned()
}

impl ConsentQuery {
    /// The ledger's filters as `&email=…&reason=…`, kept by every paging link.
    fn filter(&self) -> String {
        let mut f = String::new();
        for (k, v) in [
            ("email", trimmed(&self.email)),
            ("reason", trimmed(&self.reason)),
        ] {
            if !v.is_empty() {
                f.push_str(&format!("&{k}={}", urlencode(&v)));
            }
        }
        f
    }
}

/// `/consent` with the filters and both tables' cursors, scrolled to `anchor`.
fn href(filter: &str, cursor: Option<&str>, audit: Option<&str>, anchor: &str) -> String {
    let mut q = filter.to_owned();
    if let Some(c) = cursor {
        q.push_str(&format!("&cursor={}", urlencode(c)));
    }
    if let Some(a) = audit {
        q.push_str(&format!("&audit={}", urlencode(a)));
    }
    match q.trim_start_matches('&') {
        "" => format!("/consent#{anchor}"),
        q => format!("/consent?{q}#{anchor}"),
    }
}

/// Notices after a redirect: fixed texts only, so a crafted link cannot put words here.
fn done_flash(done: Option<&str>) -> Option<Flash> {
    Some(Flash::ok(match done? {
        "added" => "The address was added to the suppression list.",
        "exists" => "That address was already suppressed: its entry is unchanged.",
        "erased" => {
            "That address was erased before: it stays suppressed, and nothing about it is kept."
        }
        "saved" => "The propagate setting was saved.",
        _ => return None,
    }))
}

fn reason_boxes(checked: &[&str]) -> Vec<ReasonBox> {
    Reason::ALL
        .into_iter()
        .map(|r| ReasonBox {
            reason: r.as_str(),
            checked: checked.contains(&r.as_str()),
        })
        .collect()
}

/// The page for `q`, and the status to answer it with (the ledger's, when the API refused it,
/// as the events page does).
async fn build(
    api: &ApiRouter,
    session: &Session,
    publisher: &PublisherId,
    q: &ConsentQuery,
) -> (StatusCode, ConsentPage) {
    let base = format!("/api/integrations/{publisher}");
    let filter = q.filter();
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    let audit_cursor = q.audit.as_deref().filter(|c| !c.is_empty());

    let mut path = format!("{base}/suppressions?limit={LEDGER_PAGE}{filter}");
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={}", urlencode(c)));
    }
    let ledger = api.get(&session.token, &path).await;
    let entries = ledger.data()["suppressions"].as_array();
    let erased_match = entries.is_some_and(|a| a.iter().any(|s| s["erased"] == true));
    let rows = entries
        .map(|a| {
            a.iter()
                .filter(|s| s["erased"] != true)
                .map(SuppressionRow::from_json)
                .collect()
        })
        .unwrap_or_default();
    let ledger_failure = (!ledger.is_ok()).then(|| ledger.failure());

    let settings = api.get(&session.token, &format!("{base}/consent")).await;
    let propagate: Vec<&str> = settings.data()["propagate"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    let mut path = format!("{base}/audit?limit={AUDIT_PAGE}");
    if let Some(c) = audit_cursor {
        path.push_str(&format!("&cursor={}", urlencode(c)));
    }
    let audit = api.get(&session.token, &path).await;
    let audit_rows = audit.data()["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| AuditRow {
                    at: Stamp::parse(e["at"].as_str().unwrap_or_default()),
                    principal: e["principal"].as_str().unwrap_or_default().to_owned(),
                    action: e["action"].as_str().unwrap_or_default().to_owned(),
                    detail: match &e["detail"] {
                        Value::Null => String::new(),
                        d => d.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();

    let mut chrome = chrome(session, "Consent", "/consent");
    chrome.flash = done_flash(q.done.as_deref());
    let status = if ledger.is_ok() {
        StatusCode::OK
    } else {
        ledger.status
    };
    let page = ConsentPage {
        chrome,
        email: trimmed(&q.email),
        reason: trimmed(&q.reason),
        reasons: Reason::ALL.iter().map(|r| r.as_str()).collect(),
        rows,
        erased_match,
        ledger_error_field: ledger_failure.as_ref().and_then(|f| f.field.clone()),
        ledger_error: ledger_failure.map(|f| f.message),
        ledger_paged: cursor.is_some(),
        ledger_first_href: href(&filter, None, audit_cursor, "ledger"),
        ledger_next_href: ledger.data()["nextCursor"]
            .as_str()
            .map(|n| href(&filter, Some(n), audit_cursor, "ledger")),
        settings: reason_boxes(&propagate),
        settings_error: (!settings.is_ok()).then(|| settings.failure().message),
        add_email: String::new(),
        add_reason: Reason::Manual.as_str().to_owned(),
        add_error: None,
        add_error_field: None,
        erase_email: String::new(),
        erase_error: None,
        audit: audit_rows,
        audit_error: (!audit.is_ok()).then(|| audit.failure().message),
        audit_paged: audit_cursor.is_some(),
        audit_first_href: href(&filter, cursor, None, "audit"),
        audit_next_href: audit.data()["nextCursor"]
            .as_str()
            .map(|n| href(&filter, cursor, Some(n), "audit")),
    };
    (status, page)
}

pub(super) async fn consent_page(
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let publisher = match publisher(&session) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let (status, page) = build(&api, &session, &publisher, &q).await;
    render(status, &page)
}

/// The add form: `POST …/suppressions`; an API error is shown next to the field it names.
pub(super) async fn add_suppression(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let email = form.get("email").unwrap_or_default().to_owned();
    let reason = form.text("reason");
    let mut call = json!({"email": email});
    if let Some(r) = &reason {
        call["reason"] = json!(r);
    }
    let reply = api
        .post(
            &session.token,
            &format!("/api/integrations/{publisher}/suppressions"),
            &call,
        )
        .await;
    if reply.is_ok() {
        // 201 is new; 200 is the entry already there, or the mark of an erased address.
        let done = if reply.status == StatusCode::CREATED {
            "added"
        } else if reply.data()["erased"] == true {
            "erased"
        } else {
            "exists"
        };
        return Redirect::to(&format!("/consent?done={done}#ledger")).into_response();
    }
    let failure = reply.failure();
    let (_, mut page) = build(&api, &session, &publisher, &ConsentQuery::default()).await;
    page.add_email = email;
    if let Some(r) = reason {
        page.add_reason = r;
    }
    page.add_error_field = failure
        .field
        .filter(|f| f.as_str() == "email" || f.as_str() == "reason");
    page.add_error = Some(failure.message);
    render(reply.status, &page)
}

/// The propagate checkboxes: `PUT …/consent` with the ticked reasons (none ticked: `[]`, off).
pub(super) async fn save_settings(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ticked: Vec<&str> = form
        .0
        .iter()
        .filter(|(k, _)| k == "propagate")
        .map(|(_, v)| v.as_str())
        .collect();
    let reply = api
        .call(
            &session.token,
            Method::PUT,
            &format!("/api/integrations/{publisher}/consent"),
            Some(&json!({"propagate": ticked})),
        )
        .await;
    if reply.is_ok() {
        return Redirect::to("/consent?done=saved#settings").into_response();
    }
    let (_, mut page) = build(&api, &session, &publisher, &ConsentQuery::default()).await;
    // The boxes as the user ticked them, not as stored, so the choice is not lost.
    page.settings = reason_boxes(&ticked);
    page.settings_error = Some(reply.failure().message);
    render(reply.status, &page)
}

/// The erase form, in two steps: without `confirm` it answers the confirmation page, where the
/// address must be typed again; only when both match is `POST …/erasures` called.
pub(super) async fn erase(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(email) = form.text("email") else {
        let (_, mut page) = build(&api, &session, &publisher, &ConsentQuery::default()).await;
        page.erase_error = Some("Enter the address to erase.".into());
        return render(StatusCode::BAD_REQUEST, &page);
    };
    let confirm_page = |status: StatusCode, error: Option<String>| {
        render(
            status,
            &EraseConfirmPage {
                chrome: chrome(&session, "Erase a reader", "/consent"),
                email: email.clone(),
                error,
            },
        )
    };
    match form.text("confirm") {
        None => confirm_page(StatusCode::OK, None),
        // The API compares addresses lowercased, and so does this check.
        Some(c) if c.to_lowercase() != email.to_lowercase() => confirm_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("The address you typed does not match. Nothing was erased.".into()),
        ),
        Some(_) => {
            let reply = api
                .post(
                    &session.token,
                    &format!("/api/integrations/{publisher}/erasures"),
                    &json!({"email": email}),
                )
                .await;
            match reply.data()["erasureId"].as_str() {
                Some(id) if reply.is_ok() => {
                    Redirect::to(&format!("/consent/erasures/{}", urlencode(id))).into_response()
                }
                _ => confirm_page(reply.status, Some(reply.failure().message)),
            }
        }
    }
}

/// One erasure and each platform's status (`GET …/erasures/{id}`); reloading shows progress.
pub(super) async fn erasure_page(
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Path(erasure_id): Path<String>,
) -> Response {
    let publisher = match publisher(&session) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let reply = api
        .get(
            &session.token,
            &format!(
                "/api/integrations/{publisher}/erasures/{}",
                urlencode(&erasure_id)
            ),
        )
        .await;
    let d = reply.data();
    let page = ErasurePage {
        chrome: chrome(&session, "Erasure", "/consent"),
        status: d["status"].as_str().unwrap_or_default().to_owned(),
        created_at: Stamp::parse(d["createdAt"].as_str().unwrap_or_default()),
        platforms: ProgressView::list(&d["platforms"]),
        error: (!reply.is_ok()).then(|| reply.failure().message),
        erasure_id,
    };
    let status = if reply.is_ok() {
        StatusCode::OK
    } else {
        reply.status
    };
    render(status, &page)
}
