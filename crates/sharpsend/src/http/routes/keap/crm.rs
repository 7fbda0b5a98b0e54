//! Keap CRM reads (issue 6 item 5): opportunities with their pipeline stage, orders, and the
//! custom field models. Same envelope and paging as the contacts route (`limit` 1–1000,
//! `offset`, Keap's `count` of matches), through the token session (refresh on expiry or 401).

use axum::extract::State;
use connectors::keap::crm::{CUSTOM_FIELD_RECORDS, V1Collection};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::platforms::keap::tokens;
use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::{ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

/// The CRM read routes, with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_opportunities))
        .routes(routes!(list_orders))
        .routes(routes!(list_custom_fields))
}

/// `limit`/`offset` of a CRM list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CrmQuery {
    /// 1–1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Default 0, at most 10,000,000.
    #[param(minimum = 0, maximum = 10000000)]
    pub offset: Option<i64>,
}

fn paging(q: &CrmQuery) -> ApiResult<(u32, u64)> {
    Ok(crate::paging::window(
        q.limit,
        q.offset,
        50,
        crate::paging::MAX_LIMIT,
    )?)
}

/// A page of opportunities.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OpportunityList {
    /// `{id, title, contactId, contactEmail, stage: {id, name, order, probability}, userId,
    /// projectedRevenueLow, projectedRevenueHigh, estimatedCloseAt, createdAt, updatedAt,
    /// platform}`.
    #[schema(value_type = Vec<Object>)]
    pub opportunities: Vec<Value>,
    /// Keap's total of opportunities (not only this page).
    pub count: u64,
    pub limit: u32,
    pub offset: u64,
}

/// A page of orders.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrderList {
    /// `{id, title, status, contactId, contactEmail, total, totalPaid, totalDue, orderType,
    /// items: [{id, name, quantity, price}], orderedAt, createdAt, updatedAt, platform}`.
    #[schema(value_type = Vec<Object>)]
    pub orders: Vec<Value>,
    /// Keap's total of orders.
    pub count: u64,
    pub limit: u32,
    pub offset: u64,
}

async fn page(
    state: &AppState,
    scope: &Scope,
    collection: V1Collection,
    q: &CrmQuery,
) -> ApiResult<(Vec<Value>, u64, u32, u64)> {
    let publisher = scope.publisher()?;
    let (limit, offset) = paging(q)?;
    let mut session =
        crate::platforms::open_own::<crate::platforms::keap::KeapSession>(state, publisher).await?;
    let keap = state.connectors.keap.clone();
    let page = tokens::call(state, &mut session, |cred| {
        let keap = keap.clone();
        async move { keap.list_v1(&cred, collection, limit, offset).await }
    })
    .await?;
    let items = page
        .items
        .iter()
        .filter_map(|v| collection.normalize(v))
        .collect();
    Ok((items, page.count, limit, offset))
}

/// Lists the publisher's Keap opportunities (sales pipeline; REST v1), each with its stage.
#[utoipa::path(get, path = "/api/integrations/keap/{publisherId}/opportunities", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), CrmQuery),
    responses(
        (status = 200, body = Envelope<OpportunityList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS (reconnect needed)", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_opportunities(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<CrmQuery>,
) -> ApiResult<Envelope<OpportunityList>> {
    let (opportunities, count, limit, offset) =
        page(&state, &scope, V1Collection::Opportunities, &q).await?;
    Ok(Envelope::ok(OpportunityList {
        opportunities,
        count,
        limit,
        offset,
    }))
}

/// Lists the publisher's Keap orders (e-commerce; REST v1), with their items and amounts.
#[utoipa::path(get, path = "/api/integrations/keap/{publisherId}/orders", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), CrmQuery),
    responses(
        (status = 200, body = Envelope<OrderList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS (reconnect needed)", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<CrmQuery>,
) -> ApiResult<Envelope<OrderList>> {
    let (orders, count, limit, offset) = page(&state, &scope, V1Collection::Orders, &q).await?;
    Ok(Envelope::ok(OrderList {
        orders,
        count,
        limit,
        offset,
    }))
}

/// `GET …/custom-fields` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldsQuery {
    /// `contact` or `opportunity`; both when absent.
    #[param(pattern = "^(contact|opportunity)$")]
    pub record_type: Option<String>,
}

/// The custom fields Keap models.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldList {
    /// `{id, label, name, type, recordType, options, platform}`.
    #[schema(value_type = Vec<Object>)]
    pub custom_fields: Vec<Value>,
    pub count: usize,
}

/// Lists the custom fields of Keap contacts and opportunities (REST v1 `/{type}/model`): their
/// ids (what contact and opportunity `custom_fields` values are keyed by), labels and types.
#[utoipa::path(get, path = "/api/integrations/keap/{publisherId}/custom-fields", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), CustomFieldsQuery),
    responses(
        (status = 200, body = Envelope<CustomFieldList>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS (reconnect needed)", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn list_custom_fields(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<CustomFieldsQuery>,
) -> ApiResult<Envelope<CustomFieldList>> {
    let publisher = scope.publisher()?;
    // Exactly as the document's pattern says: anything else, an empty value too, is refused.
    let types: Vec<&'static str> = match q.record_type.as_deref() {
        None => CUSTOM_FIELD_RECORDS.to_vec(),
        Some(t) => match CUSTOM_FIELD_RECORDS.iter().find(|r| **r == t) {
            Some(r) => vec![*r],
            None => {
                return Err(ApiError::validation(
                    "recordType",
                    "`recordType` must be `contact` or `opportunity`.",
                ));
            }
        },
    };
    let mut session =
        crate::platforms::open_own::<crate::platforms::keap::KeapSession>(&state, publisher)
            .await?;
    let keap = state.connectors.keap.clone();
    let mut custom_fields = Vec::new();
    for record_type in types {
        let fields = tokens::call(&state, &mut session, |cred| {
            let keap = keap.clone();
            async move { keap.custom_fields(&cred, record_type).await }
        })
        .await?;
        custom_fields.extend(fields);
    }
    Ok(Envelope::ok(CustomFieldList {
        count: custom_fields.len(),
        custom_fields,
    }))
}
