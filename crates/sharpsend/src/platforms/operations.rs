//! The common operations as use cases, the same for every platform: check the capability
//! matrix (before any upstream call), open the publisher's session, call it. Handlers parse the
//! request into these bodies and render what comes back.

use domain::{
    Capability, Platform, PublisherId,
    operations::{
        Accepted, BatchOutcome, EventInput, ItemFailure, MessageInput, Queued, SubscriberInput,
        Tested, Upserted,
    },
    reads::{Listing, Read, ReadQuery},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{open_for, require};
use crate::{
    error::{Error, Result},
    state::AppState,
};

/// `POST …/subscribers`: one person, or many as `{"subscribers": [...]}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribersRequest {
    #[serde(flatten)]
    #[schema(inline)]
    pub one: SubscriberInput,
    /// Many people, each shaped like the one-person body.
    #[schema(value_type = Option<Vec<Object>>)]
    pub subscribers: Option<Vec<Value>>,
}

/// `POST …/events`: one event, or many as `{"events": [...]}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsRequest {
    #[serde(flatten)]
    #[schema(inline)]
    pub one: EventInput,
    /// Many events, each shaped like the one-event body.
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<Vec<Value>>,
}

/// One item's answer, or a batch's.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrBatch<T> {
    One(T),
    Batch(BatchOutcome),
}

/// A batch's items that parsed, with their positions.
pub type Items<I> = Vec<(usize, I)>;

/// Parses a batch's items: those that parse go on with their positions, those that do not are
/// failures at theirs. An empty batch is refused whole (each platform bounds its own size).
pub fn parse_items<I: DeserializeOwned>(
    field: &str,
    items: Vec<Value>,
) -> Result<(Items<I>, Vec<ItemFailure>)> {
    if items.is_empty() {
        return Err(Error::invalid(
            field.to_owned(),
            format!("{field} is empty: give at least one item."),
        ));
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<I>(item) {
            Ok(i) => parsed.push((index, i)),
            Err(e) => failed.push(ItemFailure {
                index,
                code: domain::ErrorCode::ValidationError,
                error: format!("{e}."),
            }),
        }
    }
    Ok((parsed, failed))
}

fn merge(mut outcome: BatchOutcome, failed: Vec<ItemFailure>) -> BatchOutcome {
    outcome.failed.extend(failed);
    outcome.failed.sort_by_key(|f| f.index);
    outcome
}

/// Upserts one person or a batch.
pub async fn upsert_subscribers(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    body: SubscribersRequest,
) -> Result<OneOrBatch<Upserted>> {
    require(platform, Capability::SubscribersUpsert)?;
    let Some(items) = body.subscribers else {
        let mut session = open_for(state, publisher, platform).await?;
        return Ok(OneOrBatch::One(
            session.upsert_subscriber(state, body.one).await?,
        ));
    };
    let (parsed, failed) = parse_items::<SubscriberInput>("subscribers", items)?;
    // The integration must exist even when every item was refused.
    let mut session = open_for(state, publisher, platform).await?;
    let outcome = if parsed.is_empty() {
        BatchOutcome::default()
    } else {
        session.upsert_subscribers(state, parsed).await?
    };
    Ok(OneOrBatch::Batch(merge(outcome, failed)))
}

/// Tracks one event or a batch.
pub async fn track_events(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    body: EventsRequest,
) -> Result<OneOrBatch<Accepted>> {
    require(platform, Capability::EventsTrack)?;
    let Some(items) = body.events else {
        let mut session = open_for(state, publisher, platform).await?;
        return Ok(OneOrBatch::One(session.track_event(state, body.one).await?));
    };
    let (parsed, failed) = parse_items::<EventInput>("events", items)?;
    let mut session = open_for(state, publisher, platform).await?;
    let outcome = if parsed.is_empty() {
        BatchOutcome::default()
    } else {
        session.track_events(state, parsed).await?
    };
    Ok(OneOrBatch::Batch(merge(outcome, failed)))
}

/// Sends one message on its channel.
pub async fn send_message(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    input: MessageInput,
) -> Result<Queued> {
    require(platform, input.channel.capability())?;
    let mut session = open_for(state, publisher, platform).await?;
    session.send_message(state, input).await
}

/// One page of a common read: the matrix first (`UNSUPPORTED_OPERATION`), then the query
/// (`VALIDATION_ERROR`, or `NOT_FOUND` for a read the platform does not serve), all before the
/// integration is looked up, then the session.
pub async fn read(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    read: Read,
    query: ReadQuery,
) -> Result<Listing> {
    require(platform, read.capability())?;
    shared_filters(&query)?;
    super::driver(platform).check_read(read, &query)?;
    let mut session = open_for(state, publisher, platform).await?;
    session.read(state, read, &query).await
}

/// The checks every read's query gets, whatever the platform and whether or not it uses the
/// filter: the paging bounds, and the filters whose form the document fixes (`since` RFC 3339,
/// `channel` one of four), so a malformed value is refused the same way on every route.
fn shared_filters(query: &ReadQuery) -> Result<()> {
    crate::paging::window(query.limit, query.offset, 1, crate::paging::MAX_LIMIT)?;
    if let Some(since) = &query.since
        && chrono::DateTime::parse_from_rfc3339(since).is_err()
    {
        return Err(Error::invalid(
            "since",
            "`since` must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z.",
        ));
    }
    if let Some(channel) = &query.channel
        && !["email", "sms", "push", "in_app"].contains(&channel.as_str())
    {
        return Err(Error::invalid(
            "channel",
            format!("Unknown channel '{channel}': use email, sms, push or in_app."),
        ));
    }
    Ok(())
}

/// Tests the publisher's stored credentials (the integration's status is left as it is: a
/// refusal is answered, and a reconnect is what changes it).
pub async fn test(state: &AppState, publisher: &PublisherId, platform: Platform) -> Result<Tested> {
    let mut session = open_for(state, publisher, platform).await?;
    session.test(state).await
}
