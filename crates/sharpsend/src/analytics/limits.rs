//! `GET /api/integrations/{publisherId}/{platform}/limits`: per endpoint class, the proactive
//! budget, what this integration's credentials used in its window, 429s in the last hour, calls
//! our budget refused, and when the next turn is free.
//!
//! Without Redis the figures are this process's (see `connectors::limits`): with several
//! replicas each shows its own calls. With budgets shared through Redis (`SHARPSEND_REDIS_URL`)
//! they are every replica's, read from the shared buckets and the 429 and refusal counts kept
//! beside them, and `scope` says `shared`. Budgets are per credential digest, so two
//! integrations sharing one key (or one Keap app) see the same numbers, which is what the
//! platform sees too.

use axum::extract::State;
use chrono::{DateTime, Utc};
use connectors::{customerio, iterable, keap::KeapCredential, limits::ClassLimits};
use domain::Platform;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::{
    http::{
        error::ApiResult,
        extract::Scope,
        openapi::{Envelope, ErrorBody},
        routes::keap::tokens,
    },
    integrations,
    state::AppState,
    sync::jobs,
};

/// A proactive budget: `rate` requests per `perSeconds`, `burst` at once.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub rate: u32,
    pub per_seconds: f64,
    pub burst: u32,
}

/// One endpoint class.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClassView {
    /// The endpoint class (`campaigns`, `export`, `oauth`, …).
    pub class: String,
    /// `null` for a class without a proactive budget (only the platform's 429s limit it).
    pub budget: Option<Budget>,
    /// Requests sent in the last `windowSeconds` (the budget's period).
    pub used: u64,
    pub window_seconds: f64,
    /// 429 answers from the platform in the last hour.
    pub rate_limited_last_hour: u64,
    /// Calls our budget refused in the last hour (answered `RATE_LIMIT_EXCEEDED` without
    /// calling the platform, because their turn was too far away).
    pub refused_last_hour: u64,
    /// When the next request may go without waiting (now, when it may go at once).
    pub next_free_at: DateTime<Utc>,
}

/// The budgets of one integration.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsView {
    pub platform: Platform,
    /// `shared`: every replica's figures, read from the Redis budgets (`used` is then the
    /// bucket's fill: turns taken and not yet drained at the budget's rate). `process`: this
    /// server process's own calls (no Redis, or Redis did not answer).
    pub scope: &'static str,
    /// Whether the budgets are shared with other replicas through Redis.
    pub shared_budgets: bool,
    pub classes: Vec<ClassView>,
}

fn view(c: ClassLimits) -> ClassView {
    ClassView {
        class: c.class.to_owned(),
        budget: c.rate.map(|r| Budget {
            rate: r.amount,
            per_seconds: r.per.as_secs_f64(),
            burst: r.burst(),
        }),
        used: c.used,
        window_seconds: c.window.as_secs_f64(),
        rate_limited_last_hour: c.rate_limited_last_hour,
        refused_last_hour: c.refused_last_hour,
        next_free_at: DateTime::<Utc>::from(c.next_free_at),
    }
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
    let platform = scope.platform()?;
    let record = jobs::integration(&state, scope.publisher()?, platform).await?;
    let secrets = integrations::open_secrets(&state, &record).await?;
    let keys: Vec<String> = match platform {
        Platform::Iterable => secrets
            .get("apiKey")
            .map(|k| {
                iterable::Credentials::new(k.clone(), record.region.unwrap_or_default())
                    .budget_key()
                    .to_owned()
            })
            .into_iter()
            .collect(),
        Platform::Customerio => ["apiKey", "trackingKey", "cdpApiKey"]
            .iter()
            .filter_map(|f| secrets.get(*f))
            .map(customerio::budget_key)
            .collect(),
        Platform::Keap => {
            let cred = match (
                secrets.get(tokens::API_KEY),
                secrets.get(tokens::ACCESS_TOKEN),
            ) {
                (Some(key), _) => Some(KeapCredential::api_key(key.clone())),
                (None, Some(token)) => Some(KeapCredential::oauth(
                    token.clone(),
                    secrets
                        .get(tokens::CLIENT_ID)
                        .map(|c| c.expose_secret().to_owned())
                        .as_deref(),
                )),
                _ => None,
            };
            cred.map(|c| c.budget_key().to_owned())
                .into_iter()
                .collect()
        }
    };
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (classes, shared) = match platform {
        Platform::Iterable => state.connectors.iterable.limits_view(&keys).await,
        Platform::Customerio => state.connectors.customerio.limits_view(&keys).await,
        Platform::Keap => state.connectors.keap.limits_view(&keys).await,
    };
    Ok(Envelope::ok(LimitsView {
        platform,
        scope: if shared { "shared" } else { "process" },
        shared_budgets: state.config.redis_url.is_some(),
        classes: classes.into_iter().map(view).collect(),
    }))
}
