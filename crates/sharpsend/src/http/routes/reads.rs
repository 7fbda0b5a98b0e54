//! The common reads (CONTRACT §7), one route each for every platform:
//! `GET /api/integrations/{publisherId}/{platform}/{campaigns,contacts,segments,lists,templates}`,
//! and the seed paths of CONTRACT §4 for Iterable's campaigns and Keap's contacts. Each handler
//! parses the query and calls `platforms::operations::read`; the platform's session does the
//! rest. `UNSUPPORTED_OPERATION` where the matrix says no, `NOT_FOUND` for a read a platform does
//! not serve, both before any upstream call.

use axum::extract::State;
use connectors::iterable::{List, Template};
use domain::{
    Platform, PublisherId,
    reads::{Listing, Read, ReadQuery},
    shapes::{Campaign, Contact, SegmentView},
};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        error::ApiResult,
        extract::{ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    platforms::operations as ops,
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns))
        .routes(routes!(list_contacts))
        .routes(routes!(list_segments))
        .routes(routes!(list_lists))
        .routes(routes!(list_templates))
        .routes(routes!(iterable_campaigns))
        .routes(routes!(keap_contacts))
}

/// A page of campaigns.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
    /// Campaigns matching the filter in the whole account.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// Contacts or people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
    /// Keap: its total of contacts matching the query (not only this page); Customer.io: the
    /// people found.
    pub count: u64,
    /// Keap only (Customer.io's search is not paged).
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// A Keap tag, Keap's way of segmenting contacts.
#[derive(Serialize, utoipa::ToSchema)]
// Only for the document: `additionalProperties: false` keeps a Customer.io segment from also
// matching this schema inside `Segment`'s `oneOf` (serialisation ignores the attribute).
#[serde(deny_unknown_fields)]
pub struct KeapTag {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub platform: Platform,
}

/// A segment: Customer.io's, or a Keap tag.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Segment {
    Customerio(SegmentView),
    Keap(KeapTag),
}

/// A page of segments.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    pub segments: Vec<Segment>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// Iterable's lists (not paged by Iterable).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListList {
    pub lists: Vec<List>,
    pub total: u64,
}

/// A page of templates.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub templates: Vec<Template>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

async fn read(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    read: Read,
    query: ReadQuery,
) -> ApiResult<Envelope<Listing>> {
    Ok(Envelope::ok(
        ops::read(state, publisher, platform, read, query).await?,
    ))
}

/// A publisher's campaigns. Iterable: in id order, `state` (comma-separated Iterable states)
/// mapped onto `campaignState`; Customer.io: campaigns (journeys) filtered by `state`
/// (`running`, `draft`, `stopped`), `active` and `type`; Keap: Campaign Builder campaigns
/// (`published` or `draft`).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/campaigns", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ReadQuery),
    responses(
        (status = 200, body = Envelope<CampaignList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        scope.platform()?,
        Read::Campaigns,
        q,
    )
    .await
}

/// A publisher's contacts. Keap: CRM contacts (REST v1) paged by `limit` (default 50) and
/// `offset`, filtered by `email` and `since`; Customer.io: the people with this `email`
/// (required: Customer.io finds people only by search), `id` the person's id or `cio_{cio_id}`;
/// Iterable: `NOT_FOUND` (its users are read by the `users` sync).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/contacts", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ReadQuery),
    responses(
        (status = 200, body = Envelope<ContactList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND, or a platform that does not serve this read", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_contacts(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        scope.platform()?,
        Read::Contacts,
        q,
    )
    .await
}

/// A publisher's segments: Customer.io segments, or Keap tags (REST v1 `/tags`). Iterable calls
/// its segments lists: `…/iterable/lists`.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/segments", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ReadQuery),
    responses(
        (status = 200, body = Envelope<SegmentList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND, or a platform that does not serve this read", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_segments(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        scope.platform()?,
        Read::Segments,
        q,
    )
    .await
}

/// A publisher's Iterable lists (`GET /api/lists`; Iterable does not page them). Customer.io
/// and Keap: `NOT_FOUND` (their segments are `…/segments`).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/lists", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    responses(
        (status = 200, body = Envelope<ListList>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND, or a platform that does not serve this read", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_lists(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        scope.platform()?,
        Read::Lists,
        q,
    )
    .await
}

/// A publisher's Iterable templates in id order, optionally of one `type` (`base`, `blast`,
/// `triggered`, `workflow`) and `channel`. Customer.io and Keap: `UNSUPPORTED_OPERATION`.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/templates", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ReadQuery),
    responses(
        (status = 200, body = Envelope<TemplateList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "UNSUPPORTED_OPERATION, or INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_templates(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        scope.platform()?,
        Read::Templates,
        q,
    )
    .await
}

/// Iterable's campaigns on the seed path (CONTRACT §4); the same as
/// `…/{publisherId}/iterable/campaigns`.
#[utoipa::path(get, path = "/api/integrations/iterable/{publisherId}/campaigns", tag = "iterable",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ReadQuery),
    responses(
        (status = 200, body = Envelope<CampaignList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn iterable_campaigns(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        Platform::Iterable,
        Read::Campaigns,
        q,
    )
    .await
}

/// Keap's contacts on the seed path (CONTRACT §4); the same as `…/{publisherId}/keap/contacts`.
#[utoipa::path(get, path = "/api/integrations/keap/{publisherId}/contacts", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ReadQuery),
    responses(
        (status = 200, body = Envelope<ContactList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS (reconnect needed)", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn keap_contacts(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Envelope<Listing>> {
    read(
        &state,
        scope.publisher()?,
        Platform::Keap,
        Read::Contacts,
        q,
    )
    .await
}
