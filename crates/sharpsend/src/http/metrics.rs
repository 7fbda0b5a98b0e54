//! Prometheus metrics: requests by route and status, a latency histogram, and upstream calls by
//! platform and outcome. Labels never carry a publisher id or a secret.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The matched route template (`/api/integrations/{publisherId}`), never the raw path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub platform: String,
    /// `ok`, `client_error`, `rate_limited`, `server_error`, `timeout`, `transport_error`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncKindLabels {
    pub platform: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncJobLabels {
    pub platform: String,
    /// `succeeded`, `failed`, `retry`, `released`.
    pub outcome: String,
}

/// The service's metrics, one registry per application instance.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub upstream_calls: Family<UpstreamLabels, Counter>,
    pub sync_records: Family<SyncKindLabels, Counter>,
    pub sync_runs: Family<SyncJobLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sharpsend");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.25 ms … ~4 s.
            Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
        });
        let upstream_calls = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route",
            latency.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests to the platforms, by platform and outcome",
            upstream_calls.clone(),
        );
        let sync_records = Family::<SyncKindLabels, Counter>::default();
        let sync_runs = Family::<SyncJobLabels, Counter>::default();
        registry.register(
            "sync_records",
            "Records committed by sync jobs, by platform and kind",
            sync_records.clone(),
        );
        registry.register(
            "sync_runs",
            "Sync job runs ended, by platform and outcome",
            sync_runs.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
            upstream_calls,
            sync_records,
            sync_runs,
        }
    }

    /// Counts one upstream call.
    pub fn upstream(&self, platform: &str, outcome: &str) {
        self.upstream_calls
            .get_or_create(&UpstreamLabels {
                platform: platform.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts records a sync page committed.
    pub fn synced(&self, platform: &str, kind: &str, records: u64) {
        self.sync_records
            .get_or_create(&SyncKindLabels {
                platform: platform.to_owned(),
                kind: kind.to_owned(),
            })
            .inc_by(records);
    }

    /// Counts the end of a sync run.
    pub fn sync_run(&self, platform: &str, outcome: &str) {
        self.sync_runs
            .get_or_create(&SyncJobLabels {
                platform: platform.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

impl connectors::http::UpstreamObserver for Metrics {
    fn attempt(&self, platform: domain::Platform, outcome: &'static str) {
        self.upstream(platform.as_str(), outcome);
    }
}
