//! Customer.io's own campaign, broadcast and newsletter metrics (`…/metrics` of the App API),
//! per hour, day or week as far back as its retention goes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use connectors::customerio::{
    Credentials,
    metrics::{MetricsObject, Period},
};
use domain::ErrorCode;

use crate::{
    analytics::buckets::{Interval, Series, Window},
    error::{Error, Result},
    state::AppState,
};

/// Customer.io's series for the window, when its retention covers the whole window (`None`
/// otherwise: the window starts before the oldest period it serves); `NOT_FOUND` for an object
/// it does not know.
pub(super) async fn series(
    state: &AppState,
    creds: &Credentials,
    object: MetricsObject,
    campaign_id: &str,
    window: &Window,
    now: DateTime<Utc>,
) -> Result<Option<Series>> {
    let period = match window.interval {
        Interval::Hour => Period::Hours,
        Interval::Day => Period::Days,
        Interval::Week => Period::Weeks,
    };
    let step = window.interval.step();
    let current = window.interval.floor(now);
    let first = window.interval.floor(window.from);
    let needed = (current - first).num_seconds() / step.num_seconds() + 1;
    let steps = u32::try_from(needed.clamp(1, i64::from(period.max_steps()))).unwrap_or(1);
    let raw = state
        .connectors
        .customerio
        .period_metrics(creds, object, campaign_id, period, steps)
        .await?
        .ok_or_else(|| {
            Error::coded(
                ErrorCode::NotFound,
                format!(
                    "Customer.io has no {} {campaign_id} in this workspace.",
                    match object {
                        MetricsObject::Campaign => "campaign",
                        MetricsObject::Broadcast => "broadcast",
                        MetricsObject::Newsletter => "newsletter",
                    }
                ),
            )
            .detail("campaignId", campaign_id.to_owned())
        })?;
    if needed > i64::from(period.max_steps()) {
        return Ok(None);
    }
    let len = steps as usize;
    let mut series = Series::new();
    for at in window.buckets() {
        let mut values = BTreeMap::new();
        // Index of this bucket in Customer.io's arrays (the last one is the current period);
        // buckets after now have nothing yet.
        let back = (current - at).num_seconds() / step.num_seconds();
        for (ours, theirs) in connectors::customerio::metrics::KEYS {
            let Some(arr) = raw.get(theirs) else { continue };
            let v = usize::try_from(back)
                .ok()
                .and_then(|b| len.checked_sub(b + 1))
                .and_then(|i| arr.get(i).copied())
                .unwrap_or(0);
            values.insert(ours, v);
        }
        series.insert(at, values);
    }
    Ok(Some(series))
}
