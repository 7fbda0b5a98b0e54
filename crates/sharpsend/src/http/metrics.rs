//! Prometheus metrics: requests by route and status, a latency histogram, and upstream calls by
//! platform and outcome. Labels never carry a publisher id or a secret.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
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

/// A rate budget: platform and endpoint class only (never a publisher or a credential).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub platform: String,
    pub class: String,
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
    /// 429s received, by platform and endpoint class.
    pub rate_limited: Family<BudgetLabels, Counter>,
    /// Calls our own budgets refused (their turn was too far away).
    pub budget_refused: Family<BudgetLabels, Counter>,
    /// A budget's steady rate, requests per second.
    pub budget_rate: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// A budget's burst.
    pub budget_burst: Family<BudgetLabels, Gauge>,
    /// Requests sent in the budget's window (all credentials of this process).
    pub budget_used: Family<BudgetLabels, Gauge>,
    /// Seconds until the budget's next free turn (the latest over credentials; 0 = free now).
    pub budget_next_free: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
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
        let rate_limited = Family::<BudgetLabels, Counter>::default();
        let budget_refused = Family::<BudgetLabels, Counter>::default();
        let budget_rate =
            Family::<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let budget_burst = Family::<BudgetLabels, Gauge>::default();
        let budget_used = Family::<BudgetLabels, Gauge>::default();
        let budget_next_free =
            Family::<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "upstream_rate_limited",
            "429 answers from the platforms, by platform and endpoint class",
            rate_limited.clone(),
        );
        registry.register(
            "rate_budget_refused",
            "Calls refused by our own rate budget (turn too far away), by platform and endpoint class",
            budget_refused.clone(),
        );
        registry.register(
            "rate_budget_requests_per_second",
            "Steady rate of a proactive rate budget",
            budget_rate.clone(),
        );
        registry.register(
            "rate_budget_burst",
            "Burst of a proactive rate budget",
            budget_burst.clone(),
        );
        registry.register(
            "rate_budget_used",
            "Requests sent in the budget's window by this process (all credentials)",
            budget_used.clone(),
        );
        registry.register(
            "rate_budget_next_free_seconds",
            "Seconds until the budget's next free turn (latest over credentials; 0 = free now)",
            budget_next_free.clone(),
        );
        Self {
            rate_limited,
            budget_refused,
            budget_rate,
            budget_burst,
            budget_used,
            budget_next_free,
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

    /// Sets the budget gauges from the connectors' trackers (called before each render).
    pub fn observe_limits(&self, connectors: &connectors::Registry) {
        let now = std::time::SystemTime::now();
        for platform in domain::Platform::ALL {
            let tracker = connectors.get(platform).client().limits();
            for c in tracker.totals() {
                let labels = BudgetLabels {
                    platform: platform.as_str().to_owned(),
                    class: c.class.to_owned(),
                };
                if let Some(rate) = c.rate {
                    self.budget_rate
                        .get_or_create(&labels)
                        .set(f64::from(rate.amount) / rate.per.as_secs_f64().max(1e-9));
                    self.budget_burst
                        .get_or_create(&labels)
                        .set(i64::from(rate.burst()));
                }
                self.budget_used
                    .get_or_create(&labels)
                    .set(i64::try_from(c.used).unwrap_or(i64::MAX));
                self.budget_next_free.get_or_create(&labels).set(
                    c.next_free_at
                        .duration_since(now)
                        .unwrap_or_default()
                        .as_secs_f64(),
                );
            }
        }
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

    fn rate_limited(&self, platform: domain::Platform, class: &'static str) {
        self.rate_limited
            .get_or_create(&BudgetLabels {
                platform: platform.as_str().to_owned(),
                class: class.to_owned(),
            })
            .inc();
    }

    fn budget_refused(&self, platform: domain::Platform, class: &'static str) {
        self.budget_refused
            .get_or_create(&BudgetLabels {
                platform: platform.as_str().to_owned(),
                class: class.to_owned(),
            })
            .inc();
    }
}
