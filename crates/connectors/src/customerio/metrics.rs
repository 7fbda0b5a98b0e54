//! Customer.io's delivery metrics of a campaign, broadcast or newsletter (App API
//! `GET /v1/{campaigns|broadcasts|newsletters}/{id}/metrics?period&steps`): one array per metric,
//! a period per entry, oldest first, the last the current period. Customer.io serves at most 24
//! hours, 45 days or 12 weeks back; older history comes from our own stores.

use std::collections::BTreeMap;

use domain::Platform;
use serde::Deserialize;

use super::{Api, Credentials, CustomerioConnector, errors};
use crate::ConnectorError;

/// Which object a metrics id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsObject {
    Campaign,
    Broadcast,
    Newsletter,
}

impl MetricsObject {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "campaign" => Self::Campaign,
            "broadcast" => Self::Broadcast,
            "newsletter" => Self::Newsletter,
            _ => return None,
        })
    }

    fn path(self) -> &'static str {
        match self {
            Self::Campaign => "campaigns",
            Self::Broadcast => "broadcasts",
            Self::Newsletter => "newsletters",
        }
    }
}

/// A period Customer.io reports by, with how far back it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Hours,
    Days,
    Weeks,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hours => "hours",
            Self::Days => "days",
            Self::Weeks => "weeks",
        }
    }

    /// The most periods Customer.io answers.
    pub fn max_steps(self) -> u32 {
        match self {
            Self::Hours => 24,
            Self::Days => 45,
            Self::Weeks => 12,
        }
    }
}

#[derive(Deserialize)]
struct MetricsBody {
    metric: MetricBody,
}

#[derive(Deserialize)]
struct MetricBody {
    series: BTreeMap<String, Vec<u64>>,
}

impl CustomerioConnector {
    /// The last `steps` periods of an object's metrics (metric → counts, oldest first);
    /// `None` when Customer.io does not know the object (404).
    pub async fn period_metrics(
        &self,
        creds: &Credentials,
        object: MetricsObject,
        id: &str,
        period: Period,
        steps: u32,
    ) -> Result<Option<BTreeMap<String, Vec<u64>>>, ConnectorError> {
        let path = format!(
            "/v1/{}/{}/metrics",
            object.path(),
            crate::http::path_segment(Platform::Customerio, id)?
        );
        let answer = self
            .app_get(
                creds.region,
                &creds.api_key,
                "period_metrics",
                &path,
                &[
                    ("period", period.as_str().to_owned()),
                    ("steps", steps.clamp(1, period.max_steps()).to_string()),
                ],
            )
            .await?;
        if answer.status.as_u16() == 404 {
            return Ok(None);
        }
        let body: MetricsBody = errors::parse(Api::App, "reading metrics", &answer)?;
        Ok(Some(body.metric.series))
    }
}

/// Customer.io's names of our metrics (its `opened` counts opened messages, once each).
pub const KEYS: [(&str, &str); 8] = [
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("opens", "opened"),
    ("clicks", "clicked"),
    ("bounces", "bounced"),
    ("unsubscribes", "unsubscribed"),
    ("complaints", "spammed"),
    ("conversions", "converted"),
];

/// Our keys from Customer.io's figures of one period (`get` answers one of its metrics), for
/// the `metrics` sync kind's day records; metrics it did not report stay absent.
pub fn values(get: impl Fn(&str) -> Option<u64>) -> BTreeMap<&'static str, u64> {
    KEYS.iter()
        .filter_map(|(ours, theirs)| get(theirs).map(|v| (*ours, v)))
        .collect()
}
