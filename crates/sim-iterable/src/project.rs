//! One simulated Iterable project (one per data centre): keys, limits, generated data and the
//! writes made through the API, plus the gate every API request passes.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    body::Bytes,
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sim_core::{Control, Rate, RateLimiter};
use tokio::task::JoinHandle;

use crate::{
    Region,
    data::{Gen, TemplateRec},
    errors,
    keys::{self, ApiKey, JwtError, KeyTable},
    limits::{self, Scope},
};

/// SPEC `users/forget`: "Daily Cap: 1000 requests per 24 hour period, per project".
pub const FORGET_DAILY_CAP: usize = 1000;

/// Project-level switches taken from [`crate::Options`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub unpaginated_allowed: bool,
    pub rate_limits: bool,
    pub webhook_on_send: bool,
}

/// A user profile written through the API (or a generated one that was written to).
#[derive(Clone, Debug)]
pub struct StoredUser {
    pub email: String,
    pub user_id: Option<String>,
    pub fields: Map<String, Value>,
    pub updated_ms: i64,
}

/// An event stored by `events/track`, `trackBulk` or a target send, exported by `dataTypeName`.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub data_type: String,
    pub at_ms: i64,
    pub id: String,
    pub row: Map<String, Value>,
}

/// A system webhook as configured in the Iterable UI (`/_sim/webhooks` stands in for the UI).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default)]
    pub id: u64,
    #[serde(alias = "url")]
    pub endpoint: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "no_auth")]
    pub auth_type: String,
    #[serde(default)]
    pub auth_token: Option<String>,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default = "yes")]
    pub blast_send_enabled: bool,
    #[serde(default = "yes")]
    pub triggered_send_enabled: bool,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Header {
    pub key: String,
    pub value: String,
}

fn yes() -> bool {
    true
}

fn no_auth() -> String {
    "NoAuth".into()
}

/// Data loaded through `/_sim/fixtures`, served verbatim instead of the generated sets.
#[derive(Debug, Default)]
pub struct Fixtures {
    pub campaigns: Option<Vec<Value>>,
    pub lists: Option<Vec<Value>>,
    pub channels: Option<Vec<Value>>,
    pub message_types: Option<Vec<Value>>,
    pub templates: Option<Vec<TemplateRec>>,
    /// Rows of `GET /api/campaigns/metrics` (`id` plus metric columns).
    pub campaign_metrics: Option<Vec<Map<String, Value>>>,
    /// When users are loaded, generated users are hidden.
    pub users_replace_generated: bool,
}

/// Bounds of what the simulator keeps from writes: beyond them the oldest entries are dropped, so
/// a long load test cannot grow memory without limit.
pub const MAX_STORED_USERS: usize = 100_000;
pub const MAX_STORED_EVENTS: usize = 200_000;
pub const MAX_STORED_RECORDS: usize = 10_000;

/// The mutable part of a project.
#[derive(Debug, Default)]
pub struct Store {
    /// By lower-cased email.
    pub users: HashMap<String, StoredUser>,
    /// userId → lower-cased email.
    pub user_ids: HashMap<String, String>,
    /// Generated users deleted through the API (lower-cased email).
    pub deleted: HashSet<String>,
    /// Project-wide user field types (`string`, `long`, `double`, `boolean`, `date`, `object`).
    pub field_types: BTreeMap<String, String>,
    pub events: VecDeque<StoredEvent>,
    pub sends: Vec<Value>,
    pub lists_created: Vec<Value>,
    pub lists_deleted: HashSet<u64>,
    pub webhooks: Vec<Webhook>,
    pub deliveries: Vec<Value>,
    pub fixtures: Fixtures,
    /// `users/forget`: trimmed lower-cased emails and userIds whose data may not be collected
    /// again (later upserts answer 409 `ForgottenUserError`).
    pub forgotten_emails: HashSet<String>,
    pub forgotten_user_ids: HashSet<String>,
    /// When each `users/forget` of the last 24 h was accepted (the per-project daily cap).
    pub forget_log: VecDeque<i64>,
    /// Set through `POST /_sim/consent`: the project's Subscriptions API is not enabled by its CSM,
    /// so `/api/subscriptions/...` answers 404 "Endpoint not found".
    pub subscriptions_api_disabled: bool,
    /// `users/forget`'s daily cap (SPEC: 1000 per 24 h per project); lowered by tests.
    pub forget_daily_cap: usize,
}

impl Store {
    /// Keeps an event (an existing id of the same type is replaced), dropping the oldest beyond
    /// [`MAX_STORED_EVENTS`].
    pub fn push_event(&mut self, ev: StoredEvent) {
        if let Some(old) = self
            .events
            .iter_mut()
            .find(|e| e.data_type == ev.data_type && e.id == ev.id)
        {
            *old = ev;
            return;
        }
        if self.events.len() >= MAX_STORED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(ev);
    }

    /// Appends to a record log (sends, deliveries), dropping the oldest beyond the bound.
    pub fn push_record(log: &mut Vec<Value>, v: Value) {
        if log.len() >= MAX_STORED_RECORDS {
            log.remove(0);
        }
        log.push(v);
    }

    /// Drops the least recently updated written users beyond [`MAX_STORED_USERS`].
    pub fn evict_users(&mut self) {
        while self.users.len() > MAX_STORED_USERS {
            let Some(oldest) = self
                .users
                .iter()
                .min_by_key(|(_, u)| u.updated_ms)
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            if let Some(u) = self.users.remove(&oldest)
                && let Some(id) = u.user_id
            {
                self.user_ids.remove(&id);
            }
        }
    }

    pub fn new() -> Self {
        let mut s = Self {
            forget_daily_cap: FORGET_DAILY_CAP,
            ..Self::default()
        };
        for (f, t) in [
            ("email", "string"),
            ("userId", "string"),
            ("firstName", "string"),
            ("lastName", "string"),
            ("city", "string"),
            ("phoneNumber", "string"),
            ("signupDate", "date"),
            ("signupSource", "string"),
            ("profileUpdatedAt", "date"),
            ("emailListIds", "long"),
            ("unsubscribedChannelIds", "long"),
            ("unsubscribedMessageTypeIds", "long"),
        ] {
            s.field_types.insert(f.into(), t.into());
        }
        s
    }
}

/// Waits between system-webhook delivery attempts (so attempts = delays + 1), the schedule a
/// project starts and resets with (`Project::retry_delays`). Iterable's retry schedule is not
/// public ("Delivery is not guaranteed. Iterable retries f…"); this default is inferred and can be
/// changed per project (`POST /_sim/webhooks/schedule`) or per call (`/_sim/webhooks/fire`).
pub const DEFAULT_RETRY_DELAYS_MS: [u64; 2] = [100, 500];

/// One project: shared by the handlers of its data centre's server.
pub struct Project {
    pub region: Region,
    pub project_id: u64,
    pub ds: Gen,
    pub settings: Settings,
    pub keys: Mutex<KeyTable>,
    pub limiter: RateLimiter,
    /// `"METHOD route"` → rate, set through `/_sim/rate-limits`.
    pub overrides: Mutex<HashMap<String, Rate>>,
    pub store: Mutex<Store>,
    pub control: Control,
    pub http: reqwest::Client,
    pub pending: Mutex<Vec<JoinHandle<()>>>,
    /// Waits between webhook delivery attempts.
    pub retry_delays: Mutex<Vec<u64>>,
    /// Multiplies every limit's refill period (`/_sim/rate-limits {"scale": 0.01}`): below 1,
    /// windows shrink so a test sees a limit recover quickly.
    pub time_scale: Mutex<f64>,
    /// Export responses cut off or held mid-stream (`/_sim/export/faults`).
    pub export_faults: Mutex<ExportFaults>,
}

/// What happens to export responses mid-stream, set through `POST /_sim/export/faults`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportFaults {
    /// Each export response sends this many rows and half of the next line, then the connection
    /// drops (as Iterable drops long-running exports).
    #[serde(default)]
    pub cut_after_rows: Option<u64>,
    /// How many responses are cut; absent: every one until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    /// Each export response pauses after this many rows until the faults are cleared
    /// (`DELETE /_sim/export/faults`): a test sees what was committed while the download is
    /// still open.
    #[serde(default)]
    pub hold_after_rows: Option<u64>,
}

pub type Shared = Arc<Project>;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Project {
    /// Back to the state of a fresh start (used by `POST /_sim/reset`).
    pub fn reset(&self) {
        *lock(&self.store) = Store::new();
        *lock(&self.keys) = KeyTable::new(keys::sandbox_keys(self.region));
        lock(&self.overrides).clear();
        self.limiter.reset();
        *lock(&self.retry_delays) = DEFAULT_RETRY_DELAYS_MS.to_vec();
        *lock(&self.time_scale) = 1.0;
        *lock(&self.export_faults) = ExportFaults::default();
        for h in lock(&self.pending).drain(..) {
            h.abort();
        }
    }

    pub fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Generated users are visible unless fixtures replaced them.
    pub fn generated_users(&self) -> u64 {
        if lock(&self.store).fixtures.users_replace_generated {
            0
        } else {
            self.ds.users
        }
    }

    /// Whether a generated user is hidden by a written copy or a deletion.
    pub fn generated_shadowed(store: &Store, email: &str) -> bool {
        let lower = email.to_ascii_lowercase();
        store.users.contains_key(&lower) || store.deleted.contains(&lower)
    }

    pub fn campaigns(&self) -> Vec<Value> {
        if let Some(c) = &lock(&self.store).fixtures.campaigns {
            return c.clone();
        }
        (0..self.ds.campaigns)
            .map(|i| self.ds.campaign(i))
            .collect()
    }

    /// One campaign by id (`GET /api/campaigns/{id}`, metrics): from the fixtures when they
    /// replace the generated ones, else generated (ids step by 13 from the base).
    pub fn campaign(&self, id: u64) -> Option<Value> {
        if lock(&self.store).fixtures.campaigns.is_some() {
            return self
                .campaigns()
                .into_iter()
                .find(|c| c.get("id").and_then(Value::as_u64) == Some(id));
        }
        let off = id.checked_sub(crate::data::CAMPAIGN_ID_BASE)?;
        (off % 13 == 0 && off / 13 < self.ds.campaigns).then(|| self.ds.campaign(off / 13))
    }

    pub fn templates(&self) -> Vec<TemplateRec> {
        if let Some(t) = &lock(&self.store).fixtures.templates {
            return t.clone();
        }
        (0..self.ds.templates_total())
            .map(|i| self.ds.template(i))
            .collect()
    }

    pub fn lists(&self) -> Vec<Value> {
        let store = lock(&self.store);
        let mut out: Vec<Value> = match &store.fixtures.lists {
            Some(l) => l.clone(),
            None => (0..self.ds.lists).map(|j| self.ds.list(j)).collect(),
        };
        out.extend(store.lists_created.iter().cloned());
        out.retain(|l| {
            l.get("id")
                .and_then(Value::as_u64)
                .is_none_or(|id| !store.lists_deleted.contains(&id))
        });
        out
    }

    /// The generated index of a list id, when it is a generated list.
    pub fn generated_list_index(&self, list_id: u64) -> Option<u64> {
        if lock(&self.store).fixtures.lists.is_some() {
            return None;
        }
        let off = list_id.checked_sub(crate::data::LIST_ID_BASE)?;
        (off % 3 == 0 && off / 3 < self.ds.lists).then_some(off / 3)
    }
}

/// Parses a JSON body, answering Iterable's `BadJsonBody` when it is not JSON of that shape.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|_| errors::bad_json())
}

/// The gate in front of every API route: the key (present, known, of a kind allowed here, with a
/// valid JWT when JWT-enabled), then the rate limit of the endpoint. Order as Iterable: auth
/// before limits (the limit is per project, which the key names).
pub async fn gate(
    State(p): State<Shared>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let route = matched.map_or_else(|| path.clone(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let key = keys::presented_key(req.headers()).and_then(|v| lock(&p.keys).get(v).cloned());
    let Some(key) = key else {
        p.control.incr("auth_rejected");
        return errors::bad_api_key(&path);
    };
    if !keys::allows(key.kind, &method, &route) {
        p.control.incr("auth_rejected");
        return errors::bad_api_key(&path);
    }
    if let Some(secret) = &key.jwt_secret {
        match keys::verify_jwt(req.headers(), secret, Project::now_ms() / 1000) {
            Ok(id) => {
                req.extensions_mut().insert(Arc::new(id));
            }
            Err(e) => {
                p.control.incr("auth_rejected");
                let msg = match e {
                    JwtError::Missing => errors::MSG_JWT_MISSING,
                    JwtError::Invalid => errors::MSG_JWT_INVALID,
                    JwtError::Expired => errors::MSG_JWT_EXPIRED,
                };
                return errors::bad_jwt(msg, &path);
            }
        }
    }
    if p.settings.rate_limits {
        let override_key = format!("{} {route}", method.as_str());
        let limit = match lock(&p.overrides).get(&override_key) {
            Some(r) => Some((*r, Scope::Project)),
            None => limits::limit_for(method.as_str(), &route),
        };
        if let Some((mut rate, scope)) = limit {
            let scale = *lock(&p.time_scale);
            if (scale - 1.0).abs() > f64::EPSILON {
                rate.per = rate.per.mul_f64(scale.max(1e-6));
            }
            let owner = match scope {
                Scope::Project => p.project_id.to_string(),
                Scope::ApiKey => key.value.clone(),
            };
            if p.limiter
                .check(&format!("{owner}:{override_key}"), rate)
                .is_err()
            {
                return p.control.rate_limited(&path);
            }
        }
    }
    req.extensions_mut().insert(key_arc(key));
    next.run(req).await
}

fn key_arc(key: ApiKey) -> Arc<ApiKey> {
    Arc::new(key)
}
