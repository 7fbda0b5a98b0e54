//! The control state of one simulator and the `/_sim/` routes over it.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Query, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::{
    faults::{ActiveFault, Fault, FaultKind},
    lock,
};

/// How many requests the log keeps; older ones are dropped first.
const LOG_CAPACITY: usize = 10_000;
/// Request bodies larger than this are logged truncated.
const LOGGED_BODY_MAX: usize = 64 * 1024;
/// Largest request body a simulator accepts (Iterable's bulk limit is 4 MB; leave room).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Builds the platform's own 429 response for a request path (body and headers as the platform
/// sends them), used by the `rateLimit` fault.
pub type RateLimitedResponder = Arc<dyn Fn(&str) -> Response + Send + Sync>;

/// One request as the simulator saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    pub seq: u64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The status answered; absent while the request is in flight.
    pub status: Option<u16>,
}

impl LoggedRequest {
    /// The body parsed as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

type ResetHook = Box<dyn Fn() + Send + Sync>;

struct Inner {
    name: String,
    log: Mutex<VecDeque<LoggedRequest>>,
    seq: Mutex<u64>,
    faults: Mutex<Vec<ActiveFault>>,
    counters: Mutex<BTreeMap<String, u64>>,
    reset_hooks: Mutex<Vec<ResetHook>>,
    rate_limited: RateLimitedResponder,
}

/// Shared control state of one simulator. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// `name` labels the simulator in logs; `rate_limited` answers the `rateLimit` fault with the
    /// platform's own 429.
    pub fn new(name: impl Into<String>, rate_limited: RateLimitedResponder) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                log: Mutex::new(VecDeque::new()),
                seq: Mutex::new(0),
                faults: Mutex::new(Vec::new()),
                counters: Mutex::new(BTreeMap::new()),
                reset_hooks: Mutex::new(Vec::new()),
                rate_limited,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Adds one to a named counter (`429`, `token_refresh`, …).
    pub fn incr(&self, counter: &str) {
        *lock(&self.inner.counters)
            .entry(counter.to_owned())
            .or_default() += 1;
    }

    pub fn counter(&self, counter: &str) -> u64 {
        lock(&self.inner.counters)
            .get(counter)
            .copied()
            .unwrap_or(0)
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.inner.counters).clone()
    }

    /// Registers platform state to clear on `POST /_sim/reset`.
    pub fn on_reset(&self, hook: impl Fn() + Send + Sync + 'static) {
        lock(&self.inner.reset_hooks).push(Box::new(hook));
    }

    pub fn reset(&self) {
        lock(&self.inner.log).clear();
        lock(&self.inner.faults).clear();
        lock(&self.inner.counters).clear();
        for hook in lock(&self.inner.reset_hooks).iter() {
            hook();
        }
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.inner.faults).push(ActiveFault::new(fault));
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// The logged requests, oldest first, optionally only those whose path starts with `path`.
    pub fn requests(&self, path: Option<&str>) -> Vec<LoggedRequest> {
        lock(&self.inner.log)
            .iter()
            .filter(|r| path.is_none_or(|p| r.path.starts_with(p)))
            .cloned()
            .collect()
    }

    /// The platform's 429 response for `path`; also counts it.
    pub fn rate_limited(&self, path: &str) -> Response {
        self.incr("429");
        (self.inner.rate_limited)(path)
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.inner.faults);
        let mut hit = None;
        for f in faults.iter_mut() {
            if f.fault.matches(method, path) && !f.exhausted() && f.take() {
                hit = Some(f.fault.clone());
                break;
            }
        }
        faults.retain(|f| !f.exhausted());
        hit
    }

    fn log_start(&self, mut req: LoggedRequest) -> u64 {
        let seq = {
            let mut s = lock(&self.inner.seq);
            *s += 1;
            *s
        };
        req.seq = seq;
        let mut log = lock(&self.inner.log);
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(req);
        seq
    }

    fn log_status(&self, seq: u64, status: StatusCode) {
        if let Some(r) = lock(&self.inner.log)
            .iter_mut()
            .rev()
            .find(|r| r.seq == seq)
        {
            r.status = Some(status.as_u16());
        }
    }

    /// Wraps a platform router with logging and fault injection, and adds the `/_sim/` routes.
    /// Control routes are neither logged nor faulted.
    pub fn wrap(&self, platform: Router) -> Router {
        let control_routes = Router::new()
            .route(
                "/_sim/requests",
                get(get_requests).delete(|State(c): State<Control>| async move {
                    lock(&c.inner.log).clear();
                    StatusCode::NO_CONTENT
                }),
            )
            .route("/_sim/counters", get(get_counters))
            .route(
                "/_sim/faults",
                post(post_fault).delete(|State(c): State<Control>| async move {
                    c.clear_faults();
                    StatusCode::NO_CONTENT
                }),
            )
            .route(
                "/_sim/reset",
                post(|State(c): State<Control>| async move {
                    c.reset();
                    StatusCode::NO_CONTENT
                }),
            )
            .with_state(self.clone());
        platform
            .layer(middleware::from_fn_with_state(self.clone(), observe))
            .merge(control_routes)
    }
}

#[derive(Deserialize)]
struct RequestsQuery {
    path: Option<String>,
}

async fn get_requests(
    State(c): State<Control>,
    Query(q): Query<RequestsQuery>,
) -> Json<Vec<LoggedRequest>> {
    Json(c.requests(q.path.as_deref()))
}

async fn get_counters(State(c): State<Control>) -> Json<BTreeMap<String, u64>> {
    Json(c.counters())
}

async fn post_fault(State(c): State<Control>, Json(f): Json<Fault>) -> StatusCode {
    c.inject(f);
    StatusCode::CREATED
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The middleware: log the request, apply a matching fault, record the status.
async fn observe(State(c): State<Control>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let logged_body =
        String::from_utf8_lossy(&bytes[..bytes.len().min(LOGGED_BODY_MAX)]).into_owned();
    let seq = c.log_start(LoggedRequest {
        seq: 0,
        at: chrono::Utc::now(),
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: header_map(&parts.headers),
        body: logged_body,
        status: None,
    });

    let response = match c.take_fault(&method, &path) {
        Some(fault) => {
            apply_fault(
                &c,
                fault,
                Request::from_parts(parts, Body::from(bytes)),
                next,
            )
            .await
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    c.log_status(seq, response.status());
    response
}

async fn apply_fault(c: &Control, fault: Fault, req: Request, next: Next) -> Response {
    c.incr(&format!("fault_{:?}", fault.kind).to_ascii_lowercase());
    match fault.kind {
        FaultKind::Latency => {
            tokio::time::sleep(Duration::from_millis(fault.latency_ms.unwrap_or(1000))).await;
            next.run(req).await
        }
        FaultKind::Status => {
            let status = StatusCode::from_u16(fault.status.unwrap_or(503))
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (
                status,
                Json(serde_json::json!({"simulatedFault": status.as_u16()})),
            )
                .into_response()
        }
        FaultKind::Reset => {
            // Promise a body, then fail the stream: hyper aborts the connection mid-response,
            // which the client sees as a reset / incomplete message.
            let stream = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated reset",
                ))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "1024")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        FaultKind::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"truncated\": [1, 2,",
        )
            .into_response(),
        FaultKind::RateLimit => c.rate_limited(req.uri().path()),
    }
}
