//! The keys of the `metrics` sync kind's day records, shared by the sync that writes them and
//! the analytics that read them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::Value;

/// The record key of one campaign's (broadcast's, newsletter's) metrics, without the day.
pub fn metrics_key(object: &str, id: &str) -> String {
    match object {
        "campaign" => id.to_owned(),
        other => format!("{other}:{id}"),
    }
}

/// The platform id of one day's record.
pub fn day_id(key: &str, day: NaiveDate) -> String {
    format!("{key}:{}", day.format("%Y-%m-%d"))
}

/// The metric keys of a stored day record (what the platform reported).
pub fn day_values(data: &Value) -> BTreeMap<&'static str, u64> {
    domain::metrics::METRICS
        .iter()
        .filter_map(|k| data.get(*k).and_then(Value::as_u64).map(|v| (*k, v)))
        .collect()
}
