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

use chrono::{DateTime, Utc};
use connectors::limits::ClassLimits;
use domain::{Platform, PublisherId};
use serde::Serialize;

use crate::{error::Result, platforms, state::AppState};

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
pub async fn limits(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
) -> Result<LimitsView> {
    let session = platforms::open_for(state, publisher, platform).await?;
    let keys = session.budget_keys();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (classes, shared) = state.connectors.get(platform).limits_view(&keys).await;
    Ok(LimitsView {
        platform,
        scope: if shared { "shared" } else { "process" },
        shared_budgets: state.config.redis_url.is_some(),
        classes: classes.into_iter().map(view).collect(),
    })
}
