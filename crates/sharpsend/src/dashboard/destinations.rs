//! The Destinations page (issue 19): the publisher's event destinations, the form to add one,
//! and per destination its messages with their attempts and the retry, replay, enable/disable,
//! rotate and delete actions. Unlike the pages built on the JSON API, it calls the use cases in
//! `crate::destinations` directly with the session's publisher as owner: they are where the
//! rules live, and a signing secret then never passes through JSON on its way to the page.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, NaiveDateTime, Utc};
use domain::Platform;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use store::{Destination, DestinationOwner, DestinationPatch, MessageStatus};

use super::{
    checked_form, chrome, message, publisher, render, session::Session, urlencode, views::*,
};
use crate::{
    destinations::{self, Created, Registration},
    error::Error,
    state::AppState,
};

/// Messages per page.
const MESSAGES_PAGE: u32 = 20;
/// The messages' cursor: the API's, so a `nextCursor` works in both.
const MESSAGE_CURSOR: &str = "ms1.";

#[allow(clippy::result_large_err)] // the error is the page to answer, built once per request
fn owner(session: &Session) -> Result<DestinationOwner, Response> {
    Ok(DestinationOwner::Publisher(publisher(session)?.clone()))
}

fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn stamp(t: DateTime<Utc>) -> Stamp {
    Stamp::parse(&t.to_rfc3339())
}

fn or_all(list: Vec<&str>) -> String {
    if list.is_empty() {
        "all".into()
    } else {
        list.join(", ")
    }
}

fn row(d: &Destination) -> DestinationRow {
    DestinationRow {
        id: d.id.clone(),
        url: d.url.clone(),
        description: d.description.clone(),
        event_types: or_all(d.event_types.iter().map(String::as_str).collect()),
        platforms: or_all(d.platforms.iter().map(|p| p.as_str()).collect()),
        enabled: d.enabled,
        disabled_reason: d.disabled_reason.clone(),
        created_at: stamp(d.created_at),
    }
}

fn platform_boxes(checked: &[Platform]) -> Vec<PlatformBox> {
    Platform::ALL
        .into_iter()
        .map(|p| PlatformBox {
            platform: p.as_str(),
            name: p.display_name(),
            checked: checked.contains(&p),
        })
        .collect()
}

/// Notices after a redirect: fixed texts only, so a crafted link cannot put words here.
fn done_flash(done: Option<&str>) -> Option<Flash> {
    Some(Flash::ok(match done? {
        "deleted" => "The destination was deleted: nothing more is sent to it.",
        "enabled" => "The destination is enabled: its pending messages are sent again.",
        "disabled" => "The destination is disabled: messages wait until it is enabled.",
        "retried" => "The message is queued again: it is sent in a moment.",
        "replayed" => "The messages since that time are queued again.",
        _ => return None,
    }))
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    done: Option<String>,
}

async fn list_page(
    state: &AppState,
    session: &Session,
    owner: &DestinationOwner,
) -> DestinationsPage {
    let listed = destinations::list(state, owner).await;
    DestinationsPage {
        chrome: chrome(session, "Destinations", "/destinations"),
        rows: listed
            .as_ref()
            .map(|all| all.iter().map(row).collect())
            .unwrap_or_default(),
        list_error: listed.err().map(|e| e.public_message().into_owned()),
        add_url: String::new(),
        add_event_types: String::new(),
        add_description: String::new(),
        platforms: platform_boxes(&[]),
        add_error: None,
    }
}

pub(super) async fn destinations_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Response {
    let owner = match owner(&session) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut page = list_page(&state, &session, &owner).await;
    page.chrome.flash = done_flash(q.done.as_deref());
    render(StatusCode::OK, &page)
}

fn secret_page(session: &Session, created: &Created, rotated: bool) -> Response {
    let d = &created.destination;
    render(
        StatusCode::OK,
        &DestinationSecretPage {
            chrome: chrome(session, "Signing secret", "/destinations"),
            id: d.id.clone(),
            url: d.url.clone(),
            secret: created.secret.expose_secret().to_owned(),
            previous_until: d
                .old_secret
                .as_ref()
                .filter(|_| rotated)
                .map(|(_, until)| stamp(*until)),
        },
    )
}

/// The add form: registers the destination and shows its signing secret, once.
pub(super) async fn add_destination(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let url = form.text("url").unwrap_or_default();
    let types = form.get("event_types").unwrap_or_default().to_owned();
    let description = form.get("description").unwrap_or_default().to_owned();
    let platforms: Vec<Platform> = form
        .0
        .iter()
        .filter(|(k, _)| k == "platforms")
        .filter_map(|(_, v)| Platform::parse(v))
        .collect();
    let reg = Registration {
        url: url.clone(),
        event_types: types
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        platforms: platforms.clone(),
        description: Some(description.trim().to_owned()).filter(|d| !d.is_empty()),
    };
    let owner = DestinationOwner::Publisher(publisher);
    match destinations::create(&state, owner.clone(), reg).await {
        Ok(created) => secret_page(&session, &created, false),
        Err(e) => {
            let mut page = list_page(&state, &session, &owner).await;
            page.add_url = url;
            page.add_event_types = types;
            page.add_description = description;
            page.platforms = platform_boxes(&platforms);
            page.add_error = Some(e.public_message().into_owned());
            render(status_of(&e), &page)
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct DetailQuery {
    status: Option<String>,
    cursor: Option<String>,
    done: Option<String>,
}

/// `/destinations/{id}` with the status filter and cursor, scrolled to the messages.
fn href(id: &str, status: &str, cursor: Option<&str>) -> String {
    let mut q = Vec::new();
    if !status.is_empty() {
        q.push(format!("status={}", urlencode(status)));
    }
    if let Some(c) = cursor {
        q.push(format!("cursor={}", urlencode(c)));
    }
    let base = format!("/destinations/{}", urlencode(id));
    match q.join("&") {
        q if q.is_empty() => format!("{base}#messages"),
        q => format!("{base}?{q}#messages"),
    }
}

/// One destination's page for `q`, or the error (`404` for another publisher's) to answer.
async fn detail(
    state: &AppState,
    session: &Session,
    owner: &DestinationOwner,
    id: &str,
    q: &DetailQuery,
) -> Result<DestinationPage, Error> {
    let d = destinations::get(state, owner, id).await?;
    let status = q.status.as_deref().unwrap_or_default().trim().to_owned();
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    let page = match (
        MessageStatus::parse(&status),
        crate::paging::parse_seq_cursor(MESSAGE_CURSOR, cursor),
    ) {
        (None, _) if !status.is_empty() => Err(Error::invalid(
            "status",
            "Choose pending, succeeded or failed.",
        )),
        (_, Err(e)) => Err(e),
        (s, Ok(before)) => destinations::messages(state, owner, id, s, MESSAGES_PAGE, before).await,
    };
    let now = Utc::now();
    let (messages, next, messages_error) = match page {
        Ok(p) => (p.messages, p.next, None),
        Err(e) => (vec![], None, Some(e.public_message().into_owned())),
    };
    let mut chrome = chrome(session, "Destination", "/destinations");
    chrome.flash = done_flash(q.done.as_deref());
    Ok(DestinationPage {
        chrome,
        destination: row(&d),
        previous_secret_until: d
            .old_secret
            .as_ref()
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
            .map(stamp),
        messages: messages
            .iter()
            .map(|(m, attempts)| MessageRow {
                id: m.id.clone(),
                event_type: m.event_type.clone(),
                status: m.status.as_str(),
                created_at: stamp(m.created_at),
                next_attempt_at: (m.status == MessageStatus::Pending).then(|| stamp(m.next_at)),
                attempts: attempts
                    .iter()
                    .map(|a| AttemptRow {
                        at: stamp(a.at),
                        status_code: a.status_code,
                        latency_ms: a.latency_ms,
                        response: a.response.clone(),
                        error: a.error.clone(),
                    })
                    .collect(),
            })
            .collect(),
        messages_error,
        paged: cursor.is_some(),
        first_href: href(id, &status, None),
        next_href: next.map(|seq| {
            href(
                id,
                &status,
                Some(&crate::paging::seq_cursor(MESSAGE_CURSOR, seq)),
            )
        }),
        status,
        statuses: ["pending", "succeeded", "failed"],
        replay_since: String::new(),
        action_error: None,
    })
}

fn error_page(session: &Session, e: &Error) -> Response {
    let heading = if status_of(e) == StatusCode::NOT_FOUND {
        "No such destination"
    } else {
        "Destination"
    };
    message(status_of(e), Some(session), heading, e.public_message())
}

pub(super) async fn destination_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let owner = match owner(&session) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match detail(&state, &session, &owner, &id, &q).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(&session, &e),
    }
}

/// After an action failed: the destination's page with the error above its actions.
async fn action_failed(
    state: &AppState,
    session: &Session,
    owner: &DestinationOwner,
    id: &str,
    e: Error,
    replay_since: Option<String>,
) -> Response {
    match detail(state, session, owner, id, &DetailQuery::default()).await {
        Ok(mut page) => {
            page.action_error = Some(e.public_message().into_owned());
            page.replay_since = replay_since.unwrap_or_default();
            render(status_of(&e), &page)
        }
        Err(e) => error_page(session, &e),
    }
}

fn done(id: &str, what: &str) -> Response {
    Redirect::to(&format!("/destinations/{}?done={what}", urlencode(id))).into_response()
}

/// Enable or disable (`enabled=true|false`); enabling also clears a disabled reason.
pub(super) async fn set_enabled(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = DestinationOwner::Publisher(publisher);
    let enabled = form.get("enabled") == Some("true");
    let patch = DestinationPatch {
        enabled: Some(enabled),
        ..Default::default()
    };
    match destinations::update(&state, &owner, &id, patch).await {
        Ok(_) => done(&id, if enabled { "enabled" } else { "disabled" }),
        Err(e) => action_failed(&state, &session, &owner, &id, e, None).await,
    }
}

pub(super) async fn retry_message(
    State(state): State<AppState>,
    session: Session,
    Path((id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = DestinationOwner::Publisher(publisher);
    match destinations::retry(&state, &owner, &id, &message_id).await {
        Ok(_) => done(&id, "retried"),
        Err(e) => action_failed(&state, &session, &owner, &id, e, None).await,
    }
}

/// A `datetime-local` value (minutes, or seconds), read as UTC.
fn parse_since(raw: &str) -> Option<DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .into_iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| t.and_utc())
}

pub(super) async fn replay(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = DestinationOwner::Publisher(publisher);
    let raw = form.text("since").unwrap_or_default();
    let result = match parse_since(&raw) {
        Some(since) => destinations::replay(&state, &owner, &id, since).await,
        None => Err(Error::invalid(
            "since",
            "Enter the time to replay from, in UTC (2026-12-01 00:00).",
        )),
    };
    match result {
        Ok(_) => done(&id, "replayed"),
        Err(e) => action_failed(&state, &session, &owner, &id, e, Some(raw)).await,
    }
}

/// A new signing secret, shown once; the previous one signs beside it for 24 hours.
pub(super) async fn rotate(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = DestinationOwner::Publisher(publisher);
    match destinations::rotate_secret(&state, &owner, &id).await {
        Ok(created) => secret_page(&session, &created, true),
        Err(e) => action_failed(&state, &session, &owner, &id, e, None).await,
    }
}

/// Delete, in two steps like the erase form: without `confirm` it answers the confirmation
/// page, where the destination's id must be typed again.
pub(super) async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let owner = DestinationOwner::Publisher(publisher);
    let d = match destinations::get(&state, &owner, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(&session, &e),
    };
    let confirm_page = |status: StatusCode, error: Option<String>| {
        render(
            status,
            &DestinationDeletePage {
                chrome: chrome(&session, "Delete a destination", "/destinations"),
                id: d.id.clone(),
                url: d.url.clone(),
                error,
            },
        )
    };
    match form.text("confirm") {
        None => confirm_page(StatusCode::OK, None),
        Some(c) if c != d.id => confirm_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("The id you typed does not match. Nothing was deleted.".into()),
        ),
        Some(_) => match destinations::delete(&state, &owner, &id).await {
            Ok(()) => Redirect::to("/destinations?done=deleted").into_response(),
            Err(e) => confirm_page(status_of(&e), Some(e.public_message().into_owned())),
        },
    }
}
