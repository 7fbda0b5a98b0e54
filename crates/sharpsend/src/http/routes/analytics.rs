//! Analytics and rate-limit visibility: thin handlers over `crate::analytics`.

use axum::extract::{Path, State};
use chrono::Utc;
use domain::Platform;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    analytics::{
        buckets::Window,
        keap::{EmailMetricsQuery, KeapEmailMetrics},
        limits::LimitsView,
        metrics::{CampaignMetrics, MetricsQuery},
    },
    http::{
        checks,
        error::ApiResult,
        extract::{ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

/// The analytics routes (under `/api/`, behind the tenancy middleware like every other).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_limits))
        .routes(routes!(campaign_metrics))
        .routes(routes!(email_metrics))
}

/// The rate budgets of an integration's credentials, per endpoint class.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/limits", tag = "analytics",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    responses(
        (status = 200, body = Envelope<LimitsView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody)))]
pub async fn get_limits(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<LimitsView>> {
    let view =
        crate::analytics::limits::limits(&state, scope.publisher()?, scope.platform()?).await?;
    Ok(Envelope::ok(view))
}

/// A campaign's metrics over a time range, normalised across platforms.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/campaigns/{campaignId}/metrics",
    tag = "analytics", security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path),
        ("campaignId" = String, Path), MetricsQuery),
    responses(
        (status = 200, body = Envelope<CampaignMetrics>),
        (status = 400, description = "VALIDATION_ERROR (from, to, interval)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND, or NOT_FOUND for an unknown campaign", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn campaign_metrics(
    State(state): State<AppState>,
    scope: Scope,
    Path((_publisher, _platform, campaign_id)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> ApiResult<Envelope<CampaignMetrics>> {
    let platform = scope.platform()?;
    // It goes into the platform's URL path (Customer.io's metrics): no dot segments, no `/`.
    checks::path_id("campaignId", &campaign_id)?;
    let metrics = crate::analytics::metrics::campaign_metrics(
        &state,
        scope.publisher()?,
        platform,
        campaign_id,
        q,
    )
    .await?;
    Ok(Envelope::ok(metrics))
}

/// Email metrics of the whole Keap account over a time range, from its sent-email records
/// (Keap has no per-campaign email reporting).
#[utoipa::path(get, path = "/api/integrations/{publisherId}/keap/emails/metrics",
    tag = "analytics", security(("bearer" = [])),
    params(("publisherId" = String, Path), EmailMetricsQuery),
    responses(
        (status = 200, body = Envelope<KeapEmailMetrics>),
        (status = 400, description = "VALIDATION_ERROR (from, to, interval)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn email_metrics(
    State(state): State<AppState>,
    scope: Scope,
    Path(_publisher): Path<String>,
    ApiQuery(q): ApiQuery<EmailMetricsQuery>,
) -> ApiResult<Envelope<KeapEmailMetrics>> {
    let window = Window::parse(
        q.from.as_deref(),
        q.to.as_deref(),
        q.interval.as_deref(),
        Utc::now(),
    )?;
    let metrics = crate::analytics::keap::email_metrics(&state, scope.publisher()?, window).await?;
    Ok(Envelope::ok(metrics))
}
