//! A faithful local simulator of Iterable's REST API, one server per data centre (US and EU).
//!
//! It serves Iterable's own paths under `/api/…` with `Api-Key` auth (key kinds, region binding,
//! JWT-enabled keys), Iterable's `{msg, code, params}` errors, page/pageSize paging with absolute
//! `nextPageUrl`s, streamed JSONL exports and `text/plain` list members, per-endpoint rate limits
//! answered with Iterable's 429 (no `Retry-After`), and system webhooks delivered to the
//! configured endpoint. Facts and their sources: `shared/platforms/iterable.md`; what is inferred
//! is listed in this crate's README and marked where it is coded.
#![forbid(unsafe_code)]
// Handlers return `Result<_, Response>` so an early error is the platform's own answer; boxing
// every error response would only add noise to a simulator.
#![allow(clippy::result_large_err)]

mod api;
pub mod consent;
mod control;
pub mod data;
pub mod errors;
mod export;
pub mod keys;
pub mod limits;
mod metrics;
mod project;
mod query;
mod stream;
pub mod users;
mod webhooks;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::Router;
use sim_core::{Binder, Control, Credential, Origin, RateLimiter, Running};

pub use keys::{
    ApiKey, EU_READ_ONLY_KEY, EU_SERVER_KEY, KeyKind, US_JS_KEY, US_JWT_KEY, US_JWT_SECRET,
    US_MOBILE_KEY, US_READ_ONLY_KEY, US_SERVER_KEY,
};
pub use project::DEFAULT_RETRY_DELAYS_MS;
pub use webhooks::{BASIC_PREFIX, MAX_ATTEMPTS, OAUTH2_PREFIX};

/// The CONTRACT §1 variables this simulator answers for.
pub const ENV_US: &str = "SHARPSEND_ITERABLE_US_URL";
pub const ENV_EU: &str = "SHARPSEND_ITERABLE_EU_URL";

/// Iterable project ids of the two sandbox projects (appear in 429 and type-mismatch messages).
pub const US_PROJECT_ID: u64 = 11_741;
pub const EU_PROJECT_ID: u64 = 20_417;

/// Label of the JWT secret in [`Running::credentials`].
pub const LABEL_US_JWT_SECRET: &str = "iterable us JWT secret (for the JWT-enabled key)";

/// An Iterable data centre.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Us,
    Eu,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
        }
    }
}

/// What to generate and how the projects behave.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub campaigns: u64,
    /// Templates in all; the first `campaigns` belong to the campaigns, the rest are `Base`.
    pub templates: u64,
    /// Lists; list 0 is the global suppression list, list 1 a dynamic list.
    pub lists: u64,
    pub users: u64,
    /// Generated message and custom events over the year before `anchor_ms`.
    pub events: u64,
    /// Every generated event is a campaign event of this export `dataTypeName` (a benchmark's
    /// single-type stream: `events` rows in one export); `None`: the usual mix of message types
    /// and custom events. The row keeps its campaign's fields whatever the type.
    pub event_type: Option<&'static str>,
    /// Generated data ends here (epoch ms); `None` is the start time. Fix it for goldens.
    pub anchor_ms: Option<i64>,
    /// Whether `GET /api/campaigns` / `templates` without paging parameters return everything
    /// (the deprecated per-project flag). Off: they answer page 1 of 20 (inferred).
    pub unpaginated_allowed: bool,
    /// Enforce the published per-endpoint rate limits.
    pub rate_limits: bool,
    /// Deliver an `emailSend`/`smsSend`/… system webhook after each target send.
    pub webhook_on_send: bool,
    /// Deliver one event of email activity this often to the project's system webhooks, once
    /// one is configured (the sandbox's stream); `None`: only the events tests fire or the API
    /// causes.
    pub event_stream: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 42,
            campaigns: 60,
            templates: 80,
            lists: 8,
            users: 500,
            events: 5000,
            event_type: None,
            anchor_ms: None,
            unpaginated_allowed: false,
            rate_limits: true,
            webhook_on_send: true,
            event_stream: None,
        }
    }
}

fn project(region: Region, opts: &Options) -> Arc<project::Project> {
    let project_id = match region {
        Region::Us => US_PROJECT_ID,
        Region::Eu => EU_PROJECT_ID,
    };
    let responder: sim_core::RateLimitedResponder =
        Arc::new(move |path: &str| errors::rate_limited(path, project_id));
    let control = Control::new(format!("iterable-{}", region.as_str()), responder);
    let seed = match region {
        Region::Us => opts.seed,
        Region::Eu => opts.seed ^ 0x00E0_00E0,
    };
    let anchor_ms = opts
        .anchor_ms
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let p = Arc::new(project::Project {
        region,
        project_id,
        ds: data::Gen {
            seed,
            anchor_ms,
            campaigns: opts.campaigns,
            templates: opts.templates,
            lists: opts.lists,
            users: opts.users,
            events: opts.events,
            event_type: opts.event_type,
        },
        settings: project::Settings {
            unpaginated_allowed: opts.unpaginated_allowed,
            rate_limits: opts.rate_limits,
            webhook_on_send: opts.webhook_on_send,
        },
        keys: Mutex::new(keys::KeyTable::new(keys::sandbox_keys(region))),
        limiter: RateLimiter::new(),
        overrides: Mutex::new(Default::default()),
        store: Mutex::new(project::Store::new()),
        control: control.clone(),
        http: reqwest::Client::new(),
        pending: Mutex::new(Vec::new()),
        retry_delays: Mutex::new(project::DEFAULT_RETRY_DELAYS_MS.to_vec()),
        time_scale: Mutex::new(1.0),
        export_faults: Mutex::new(Default::default()),
    });
    let weak = Arc::downgrade(&p);
    control.on_reset(move || {
        if let Some(p) = weak.upgrade() {
            p.reset();
        }
    });
    p
}

/// The full router of one data centre's project: Iterable's paths plus the `/_sim/` routes.
pub fn router(region: Region, opts: &Options) -> Router {
    project_router(project(region, opts))
}

fn project_router(p: Arc<project::Project>) -> Router {
    let control = p.control.clone();
    // Iterable-specific control routes join after the wrap: like sim-core's own, they are
    // neither logged nor faulted.
    control
        .wrap(api::router(p.clone()))
        .merge(control::router(p))
}

/// Starts the US and the EU servers (in that order on the binder).
pub async fn start(binder: &mut Binder, opts: Options) -> std::io::Result<Running> {
    let (us, eu) = (project(Region::Us, &opts), project(Region::Eu, &opts));
    if let Some(every) = opts.event_stream {
        stream::spawn(&us, every);
        stream::spawn(&eu, every);
    }
    let us = sim_core::spawn(binder.bind().await?, project_router(us))?;
    let eu = sim_core::spawn(binder.bind().await?, project_router(eu))?;
    let mut credentials: Vec<Credential> = keys::sandbox_keys(Region::Us)
        .into_iter()
        .chain(keys::sandbox_keys(Region::Eu))
        .map(|k| Credential {
            label: k.label,
            value: k.value,
        })
        .collect();
    credentials.push(Credential {
        label: LABEL_US_JWT_SECRET.into(),
        value: US_JWT_SECRET.into(),
    });
    Ok(Running {
        platform: "iterable",
        origins: vec![
            Origin {
                env: ENV_US,
                url: us.origin(),
            },
            Origin {
                env: ENV_EU,
                url: eu.origin(),
            },
        ],
        credentials,
        servers: vec![us, eu],
    })
}
