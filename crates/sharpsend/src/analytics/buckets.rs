//! Time windows and their buckets: what a metrics request covers and how it is split.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

use crate::error::{Error, Result};

/// Metric values per bucket start.
pub type Series = BTreeMap<DateTime<Utc>, BTreeMap<&'static str, u64>>;

/// Series granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Week,
}

impl Interval {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("day") {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            other => Err(Error::invalid(
                "interval",
                format!("interval '{other}' is not one of hour, day, week."),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    pub fn step(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
            Self::Week => Duration::weeks(1),
        }
    }

    /// The most buckets one answer may hold (31 days of hours, 366 days, about 3 years of weeks).
    fn max_buckets(self) -> i64 {
        match self {
            Self::Hour => 24 * 31,
            Self::Day => 366,
            Self::Week => 157,
        }
    }

    /// The start of the bucket holding `t` (weeks start on Monday, UTC).
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let hour = t
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(t);
        let day = hour.with_hour(0).unwrap_or(hour);
        match self {
            Self::Hour => hour,
            Self::Day => day,
            Self::Week => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
        }
    }
}

/// Reads `from`/`to`: RFC 3339, or a date (`2026-03-01`, midnight UTC).
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(Utc.from_utc_datetime(&t));
    }
    Err(Error::invalid(
        field,
        format!("{field} '{value}' is not an RFC 3339 time or a YYYY-MM-DD date."),
    ))
}

/// The checked window of a request.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
}

impl Window {
    /// `to` defaults to now, `from` to 30 days before `to`; `from < to`, and the range holds at
    /// most the interval's maximum of buckets.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        interval: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let interval = Interval::parse(interval)?;
        // An empty value is refused like any other malformed one, as the document's format says.
        let to = match to {
            Some(s) => parse_time("to", s)?,
            None => now,
        };
        let from = match from {
            Some(s) => parse_time("from", s)?,
            None => to - Duration::days(30),
        };
        if from >= to {
            return Err(Error::invalid("from", "from must be before to."));
        }
        let buckets = (to - interval.floor(from)).num_seconds() / interval.step().num_seconds();
        if buckets >= interval.max_buckets() {
            return Err(Error::invalid(
                "from",
                format!(
                    "The range from–to holds more than {} {}s; narrow it or use a longer interval.",
                    interval.max_buckets(),
                    interval.as_str()
                ),
            ));
        }
        Ok(Self { from, to, interval })
    }

    /// Bucket starts from the one holding `from` up to `to` (exclusive).
    pub fn buckets(&self) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = self.interval.floor(self.from);
        while at < self.to {
            out.push(at);
            at += self.interval.step();
        }
        out
    }
}

/// Counts of our received events: totals over the range and per bucket.
#[derive(Debug, Default, PartialEq)]
pub struct EventCounts {
    pub totals: BTreeMap<&'static str, u64>,
    pub series: BTreeMap<DateTime<Utc>, BTreeMap<&'static str, u64>>,
}
