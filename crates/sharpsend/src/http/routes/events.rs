//! Platform events received by webhook (CONTRACT §6 Event, §7):
//! `GET /api/integrations/{publisherId}/events?platform&type&limit&cursor`.

use axum::extract::State;
use domain::{Platform, shapes::Event};
use serde::{Deserialize, Serialize};
use store::{EventCursor, EventFilter};

use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::{ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

/// Query of the events list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// `iterable`, `customerio` or `keap`; all when absent.
    pub platform: Option<String>,
    /// An event type such as `email.opened` (see the vocabulary in docs/webhooks.md); all when absent.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of received events, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page. Opaque; stable
    /// while new events arrive (they appear on the first page only).
    pub next_cursor: Option<String>,
}

/// Lists the platform events received by webhook for a publisher, newest first.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/events", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), EventsQuery),
    responses(
        (status = 200, body = Envelope<EventList>),
        (status = 400, description = "VALIDATION_ERROR: bad platform, type, limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Envelope<EventList>> {
    let publisher = scope.publisher()?;
    let platform = match q.platform.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(Platform::parse(p).ok_or_else(|| {
            ApiError::validation(
                "platform",
                format!("Unknown platform '{p}': use iterable, customerio or keap."),
            )
        })?),
    };
    let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(k) if domain::events::is_event_type(k) => Some(k.to_owned()),
        Some(k) => {
            return Err(ApiError::validation(
                "type",
                format!(
                    "'{k}' is not an event type: use subject.action, such as email.opened or contact.updated."
                ),
            ));
        }
    };
    let limit = crate::paging::limit(q.limit, 100, crate::paging::MAX_LIMIT)?;
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(EventCursor::parse(c).ok_or_else(|| {
            ApiError::validation(
                "cursor",
                "cursor is not one this API gave out: pass nextCursor from the previous page unchanged.",
            )
        })?),
    };
    let page = state
        .store
        .list_events(publisher, &EventFilter { platform, kind }, limit, before)
        .await?;
    Ok(Envelope::ok(EventList {
        events: page
            .events
            .iter()
            .map(store::EventRecord::to_shape)
            .collect(),
        next_cursor: page.next.map(EventCursor::to_token),
    }))
}
