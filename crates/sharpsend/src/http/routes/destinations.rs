//! Event destinations over HTTP (issue 19): a publisher's under
//! `/api/integrations/{publisherId}/destinations`, the operator's (every publisher's events)
//! under `/api/admin/destinations`. Each handler names the owner — the gate's publisher, or the
//! operator — and hands the work to `crate::destinations`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use domain::Platform;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{Attempt, Destination, DestinationOwner, DestinationPatch, Message, MessageStatus};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    destinations::{self, Created, Registration},
    http::{
        error::{ApiError, ApiResult},
        extract::{ApiJson, ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_destination, list_destinations))
        .routes(routes!(
            get_destination,
            update_destination,
            delete_destination
        ))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_messages))
        .routes(routes!(retry_message))
        .routes(routes!(replay))
        .routes(routes!(
            create_operator_destination,
            list_operator_destinations
        ))
        .routes(routes!(
            get_operator_destination,
            update_operator_destination,
            delete_operator_destination
        ))
        .routes(routes!(rotate_operator_secret))
        .routes(routes!(list_operator_messages))
        .routes(routes!(retry_operator_message))
        .routes(routes!(replay_operator))
}

const MESSAGE_CURSOR: &str = "ms1.";

/// A destination. Its signing secret is shown only when created or rotated.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    /// `dst_…`
    pub destination_id: String,
    /// `null` for an operator-wide destination (every publisher's events).
    pub publisher_id: Option<String>,
    pub url: String,
    pub description: Option<String>,
    /// Event types it receives (`email.opened`, `email.*`, `suppression.created`,
    /// `sync.succeeded`, `sync.failed`, `integration.reauth_required`); empty = every type.
    pub event_types: Vec<String>,
    /// Platforms whose events it receives; empty = every platform and our own events.
    pub platforms: Vec<Platform>,
    pub enabled: bool,
    /// Why delivery disabled it (every attempt failing for 5 days); `PATCH {"enabled": true}`
    /// resumes it.
    pub disabled_reason: Option<String>,
    /// While a rotated-out secret still signs beside the current one: until when.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Destination> for DestinationView {
    fn from(d: &Destination) -> Self {
        let now = Utc::now();
        Self {
            destination_id: d.id.clone(),
            publisher_id: d.publisher_id.clone(),
            url: d.url.clone(),
            description: d.description.clone(),
            event_types: d.event_types.clone(),
            platforms: d.platforms.clone(),
            enabled: d.enabled,
            disabled_reason: d.disabled_reason.clone(),
            previous_secret_expires_at: d
                .old_secret
                .as_ref()
                .map(|(_, until)| *until)
                .filter(|until| *until > now),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A destination with its signing secret: the only answers that show it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationWithSecret {
    #[serde(flatten)]
    pub destination: DestinationView,
    /// `whsec_` + base64 of 32 random bytes: verify each delivery's `webhook-signature` with it
    /// (Standard Webhooks). Shown once; keep it.
    pub secret: String,
}

impl From<Created> for DestinationWithSecret {
    fn from(c: Created) -> Self {
        Self {
            destination: (&c.destination).into(),
            secret: c.secret.expose_secret().to_owned(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationList {
    pub destinations: Vec<DestinationView>,
}

/// `POST …/destinations`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/sharpsend", "eventTypes": ["email.bounced", "suppression.created"], "description": "newsletter backend"}))]
pub struct NewDestinationBody {
    /// `https://` to a public address (`http://` and private addresses only with
    /// `SHARPSEND_DESTINATIONS_ALLOW_PRIVATE=true`).
    #[schema(max_length = 2048)]
    pub url: String,
    /// Event types to receive (`subject.action` or `subject.*`); absent or empty = every type.
    pub event_types: Option<Vec<String>>,
    /// Platforms whose events to receive; absent or empty = every platform and our own events.
    pub platforms: Option<Vec<Platform>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// `PATCH …/destinations/{destinationId}`: the fields given change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
pub struct UpdateDestinationBody {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub platforms: Option<Vec<Platform>>,
    /// `""` clears it.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `true` also clears a disabled reason; pending messages resume.
    pub enabled: Option<bool>,
}

/// Query of a destination's messages.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    pub status: Option<DeliveryStatus>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Where a message stands.
#[derive(Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being delivered).
    Pending,
    Succeeded,
    /// Every attempt of its schedule failed.
    Failed,
}

impl From<MessageStatus> for DeliveryStatus {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Pending => DeliveryStatus::Pending,
            MessageStatus::Succeeded => DeliveryStatus::Succeeded,
            MessageStatus::Failed => DeliveryStatus::Failed,
        }
    }
}

impl From<DeliveryStatus> for MessageStatus {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => MessageStatus::Pending,
            DeliveryStatus::Succeeded => MessageStatus::Succeeded,
            DeliveryStatus::Failed => MessageStatus::Failed,
        }
    }
}

/// One delivery attempt.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    /// The destination's HTTP status; `null` when it did not answer.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The first 1 KiB of its answer.
    pub response: Option<String>,
    /// Why there was no answer (timeout, refused connection, refused address).
    pub error: Option<String>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        Self {
            at: a.at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response: a.response.clone(),
            error: a.error.clone(),
        }
    }
}

/// One event for one destination, with its attempts (oldest first).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// `msg_…`: the `webhook-id` header of every attempt (receivers de-duplicate on it).
    pub message_id: String,
    pub event_id: String,
    pub event_type: String,
    pub platform: Option<Platform>,
    pub status: DeliveryStatus,
    /// When the next attempt is due (`pending` only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The body delivered: `{"type", "timestamp", "data"}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub attempts: Vec<AttemptView>,
}

impl MessageView {
    fn of(m: &Message, attempts: &[Attempt]) -> Self {
        Self {
            message_id: m.id.clone(),
            event_id: m.event_id.clone(),
            event_type: m.event_type.clone(),
            platform: m.platform,
            status: m.status.into(),
            next_attempt_at: (m.status == MessageStatus::Pending).then_some(m.next_at),
            created_at: m.created_at,
            payload: serde_json::from_str(&m.payload).unwrap_or(Value::Null),
            attempts: attempts.iter().map(Into::into).collect(),
        }
    }
}

/// A page of messages, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

/// `POST …/replay`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"since": "2026-12-01T00:00:00Z"}))]
pub struct ReplayBody {
    /// RFC 3339: every message created at or after it is sent again.
    #[schema(format = DateTime)]
    pub since: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayQueued {
    /// Messages queued again (those being delivered right now finish their attempt instead).
    pub queued: u64,
}

// --- shared bodies of the publisher's and the operator's handlers ---

fn publisher_owner(scope: &Scope) -> ApiResult<DestinationOwner> {
    Ok(DestinationOwner::Publisher(scope.publisher()?.clone()))
}

async fn create(
    state: &AppState,
    owner: DestinationOwner,
    body: NewDestinationBody,
) -> ApiResult<(StatusCode, Envelope<DestinationWithSecret>)> {
    let created = destinations::create(
        state,
        owner,
        Registration {
            url: body.url,
            event_types: body.event_types.unwrap_or_default(),
            platforms: body.platforms.unwrap_or_default(),
            description: body.description.filter(|d| !d.is_empty()),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Envelope::ok(created.into())))
}

async fn list(state: &AppState, owner: &DestinationOwner) -> ApiResult<Envelope<DestinationList>> {
    let all = destinations::list(state, owner).await?;
    Ok(Envelope::ok(DestinationList {
        destinations: all.iter().map(Into::into).collect(),
    }))
}

async fn get(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
) -> ApiResult<Envelope<DestinationView>> {
    Ok(Envelope::ok(
        (&destinations::get(state, owner, id).await?).into(),
    ))
}

async fn update(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    body: UpdateDestinationBody,
) -> ApiResult<Envelope<DestinationView>> {
    let patch = DestinationPatch {
        url: body.url,
        description: body.description.map(|d| Some(d).filter(|d| !d.is_empty())),
        event_types: body.event_types,
        platforms: body.platforms.map(|mut p| {
            p.sort_by_key(|p| p.as_str());
            p.dedup();
            p
        }),
        enabled: body.enabled,
    };
    Ok(Envelope::ok(
        (&destinations::update(state, owner, id, patch).await?).into(),
    ))
}

async fn messages(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    q: MessagesQuery,
) -> ApiResult<Envelope<MessageList>> {
    let limit = crate::paging::limit(q.limit, 100, crate::paging::MAX_LIMIT)?;
    let before = crate::paging::parse_seq_cursor(MESSAGE_CURSOR, q.cursor.as_deref())?;
    let page =
        destinations::messages(state, owner, id, q.status.map(Into::into), limit, before).await?;
    Ok(Envelope::ok(MessageList {
        messages: page
            .messages
            .iter()
            .map(|(m, a)| MessageView::of(m, a))
            .collect(),
        next_cursor: page
            .next
            .map(|seq| crate::paging::seq_cursor(MESSAGE_CURSOR, seq)),
    }))
}

async fn retry(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    message_id: &str,
) -> ApiResult<(StatusCode, Envelope<MessageView>)> {
    let (m, attempts) = destinations::retry(state, owner, id, message_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Envelope::ok(MessageView::of(&m, &attempts)),
    ))
}

async fn replay_since(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    body: ReplayBody,
) -> ApiResult<(StatusCode, Envelope<ReplayQueued>)> {
    let since = DateTime::parse_from_rfc3339(body.since.trim())
        .map_err(|_| {
            ApiError::validation(
                "since",
                "`since` is not an RFC 3339 time: use 2026-12-01T00:00:00Z.",
            )
        })?
        .with_timezone(&Utc);
    let queued = destinations::replay(state, owner, id, since).await?;
    Ok((StatusCode::ACCEPTED, Envelope::ok(ReplayQueued { queued })))
}

// --- a publisher's destinations ---

/// Registers a destination for the publisher's events. The answer shows its signing secret,
/// once.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/destinations", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = NewDestinationBody,
    responses(
        (status = 201, description = "registered; `secret` is shown this once", body = Envelope<DestinationWithSecret>),
        (status = 400, description = "VALIDATION_ERROR: the URL (scheme, form, an address that is not public), an event type, too many destinations", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_destination(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<NewDestinationBody>,
) -> ApiResult<(StatusCode, Envelope<DestinationWithSecret>)> {
    create(&state, publisher_owner(&scope)?, body).await
}

/// The publisher's destinations, oldest first.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/destinations", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationList>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_destinations(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<DestinationList>> {
    list(&state, &publisher_owner(&scope)?).await
}

/// One destination.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/destinations/{destinationId}", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_destination(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id)): Path<(String, String)>,
) -> ApiResult<Envelope<DestinationView>> {
    get(&state, &publisher_owner(&scope)?, &id).await
}

/// Changes a destination's URL, filters, description or `enabled`.
#[utoipa::path(patch, path = "/api/integrations/{publisherId}/destinations/{destinationId}", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path)),
    request_body = UpdateDestinationBody,
    responses((status = 200, body = Envelope<DestinationView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_destination(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateDestinationBody>,
) -> ApiResult<Envelope<DestinationView>> {
    update(&state, &publisher_owner(&scope)?, &id, body).await
}

/// Deletes a destination with its messages (those pending are not sent).
#[utoipa::path(delete, path = "/api/integrations/{publisherId}/destinations/{destinationId}", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_destination(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    destinations::delete(&state, &publisher_owner(&scope)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown once; the previous one keeps signing beside it for 24 hours
/// (each delivery carries both signatures meanwhile).
#[utoipa::path(post, path = "/api/integrations/{publisherId}/destinations/{destinationId}/rotate-secret", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationWithSecret>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id)): Path<(String, String)>,
) -> ApiResult<Envelope<DestinationWithSecret>> {
    let rotated = destinations::rotate_secret(&state, &publisher_owner(&scope)?, &id).await?;
    Ok(Envelope::ok(rotated.into()))
}

/// A destination's messages, newest first, each with its attempts.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/destinations/{destinationId}/messages", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path), MessagesQuery),
    responses((status = 200, body = Envelope<MessageList>),
        (status = 400, description = "VALIDATION_ERROR: bad status, limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_messages(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<Envelope<MessageList>> {
    messages(&state, &publisher_owner(&scope)?, &id, q).await
}

/// Sends a message again now, with a new retry schedule.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/destinations/{destinationId}/messages/{messageId}/retry", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path), ("messageId" = String, Path)),
    responses((status = 202, description = "queued", body = Envelope<MessageView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "CONFLICT: being delivered right now", body = ErrorBody)))]
pub async fn retry_message(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id, message_id)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Envelope<MessageView>)> {
    retry(&state, &publisher_owner(&scope)?, &id, &message_id).await
}

/// Sends every message from `since` on again, in order.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/destinations/{destinationId}/replay", tag = "destinations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("destinationId" = String, Path)),
    request_body = ReplayBody,
    responses((status = 202, description = "queued", body = Envelope<ReplayQueued>),
        (status = 400, description = "VALIDATION_ERROR: `since` is not RFC 3339", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> ApiResult<(StatusCode, Envelope<ReplayQueued>)> {
    replay_since(&state, &publisher_owner(&scope)?, &id, body).await
}

// --- the operator's destinations (admin token; the gate refuses anyone else) ---

/// Registers an operator-wide destination: it receives every publisher's events.
#[utoipa::path(post, path = "/api/admin/destinations", tag = "admin",
    security(("bearer" = [])),
    request_body = NewDestinationBody,
    responses(
        (status = 201, description = "registered; `secret` is shown this once", body = Envelope<DestinationWithSecret>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_operator_destination(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewDestinationBody>,
) -> ApiResult<(StatusCode, Envelope<DestinationWithSecret>)> {
    create(&state, DestinationOwner::Operator, body).await
}

/// The operator-wide destinations.
#[utoipa::path(get, path = "/api/admin/destinations", tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<DestinationList>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_operator_destinations(
    State(state): State<AppState>,
) -> ApiResult<Envelope<DestinationList>> {
    list(&state, &DestinationOwner::Operator).await
}

/// One operator-wide destination.
#[utoipa::path(get, path = "/api/admin/destinations/{destinationId}", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_operator_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Envelope<DestinationView>> {
    get(&state, &DestinationOwner::Operator, &id).await
}

/// Changes an operator-wide destination.
#[utoipa::path(patch, path = "/api/admin/destinations/{destinationId}", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path)),
    request_body = UpdateDestinationBody,
    responses((status = 200, body = Envelope<DestinationView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_operator_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateDestinationBody>,
) -> ApiResult<Envelope<DestinationView>> {
    update(&state, &DestinationOwner::Operator, &id, body).await
}

/// Deletes an operator-wide destination with its messages.
#[utoipa::path(delete, path = "/api/admin/destinations/{destinationId}", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_operator_destination(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    destinations::delete(&state, &DestinationOwner::Operator, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret for an operator-wide destination (the previous one signs for 24 h more).
#[utoipa::path(post, path = "/api/admin/destinations/{destinationId}/rotate-secret", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationWithSecret>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_operator_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Envelope<DestinationWithSecret>> {
    let rotated = destinations::rotate_secret(&state, &DestinationOwner::Operator, &id).await?;
    Ok(Envelope::ok(rotated.into()))
}

/// An operator-wide destination's messages, newest first.
#[utoipa::path(get, path = "/api/admin/destinations/{destinationId}/messages", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path), MessagesQuery),
    responses((status = 200, body = Envelope<MessageList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_operator_messages(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<Envelope<MessageList>> {
    messages(&state, &DestinationOwner::Operator, &id, q).await
}

/// Sends a message of an operator-wide destination again now.
#[utoipa::path(post, path = "/api/admin/destinations/{destinationId}/messages/{messageId}/retry", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path), ("messageId" = String, Path)),
    responses((status = 202, description = "queued", body = Envelope<MessageView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn retry_operator_message(
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Envelope<MessageView>)> {
    retry(&state, &DestinationOwner::Operator, &id, &message_id).await
}

/// Sends every message of an operator-wide destination from `since` on again.
#[utoipa::path(post, path = "/api/admin/destinations/{destinationId}/replay", tag = "admin",
    security(("bearer" = [])),
    params(("destinationId" = String, Path)),
    request_body = ReplayBody,
    responses((status = 202, description = "queued", body = Envelope<ReplayQueued>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replay_operator(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplayBody>,
) -> ApiResult<(StatusCode, Envelope<ReplayQueued>)> {
    replay_since(&state, &DestinationOwner::Operator, &id, body).await
}
