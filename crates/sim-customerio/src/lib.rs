//! Customer.io simulator: the Track, App and Data Pipelines APIs of a US and an EU sandbox
//! workspace on six real listeners, plus signed reporting webhooks, on the shared `sim-core`
//! control API. See README.md for the paths, credentials and control routes.
#![forbid(unsafe_code)]

mod app;
mod cdp;
pub mod config;
mod control;
mod data;
pub mod metrics;
mod reporting;
mod resp;
mod sim;
mod store;
mod stream;
mod track;
mod webhooks;

use std::{sync::Arc, time::Duration};

use axum::http::StatusCode;
use sim_core::{Binder, Control, Credential, Origin, RateLimitedResponder, Running};

pub use config::{EU, SandboxWorkspace, US, WORKSPACES};
pub use webhooks::{NAMED_EVENTS, sign as sign_webhook, ulid};

use crate::{
    data::{Seeded, Sizes},
    sim::{Ctx, Origins, Region, Sim},
    store::Store,
};

/// The platform name in `Running::platform` and the control API.
pub const PLATFORM: &str = "customerio";

/// CONTRACT §1 variables this simulator serves, in binding order.
pub const ENV_TRACK_US: &str = "SHARPSEND_CUSTOMERIO_TRACK_US_URL";
pub const ENV_TRACK_EU: &str = "SHARPSEND_CUSTOMERIO_TRACK_EU_URL";
pub const ENV_APP_US: &str = "SHARPSEND_CUSTOMERIO_APP_US_URL";
pub const ENV_APP_EU: &str = "SHARPSEND_CUSTOMERIO_APP_EU_URL";
pub const ENV_CDP_US: &str = "SHARPSEND_CUSTOMERIO_CDP_US_URL";
pub const ENV_CDP_EU: &str = "SHARPSEND_CUSTOMERIO_CDP_EU_URL";

/// Sizes of the seeded data of each sandbox workspace.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// People (lazily generated; a million is fine).
    pub people: u64,
    pub campaigns: u64,
    pub segments: u64,
    /// API-triggered broadcasts (ids 1001…; the last one is a draft when there are several).
    pub broadcasts: u64,
    /// Newsletters (ids 5001…, one a week; the newest is a draft).
    pub newsletters: u64,
    /// Transactional messages (ids 1…; email, email, email, sms, push, in_app, …).
    pub transactional: u64,
    /// Report one event of newsletter activity this often to each workspace's reporting
    /// webhook, once one is configured (the sandbox's stream); `None`: only the events tests
    /// fire or the API causes.
    pub event_stream: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 42,
            people: 250,
            campaigns: 12,
            segments: 10,
            broadcasts: 5,
            newsletters: 36,
            transactional: 6,
            event_stream: None,
        }
    }
}

/// Labels of the sandbox credentials in `Running::credentials`.
pub const LABEL_US_SITE_ID: &str = "customerio us site id";
pub const LABEL_US_TRACKING_KEY: &str = "customerio us tracking key";
pub const LABEL_US_APP_API_KEY: &str = "customerio us app api key";
pub const LABEL_US_CDP_API_KEY: &str = "customerio us cdp api key";
pub const LABEL_US_WEBHOOK_SIGNING_KEY: &str = "customerio us webhook signing key";
pub const LABEL_EU_SITE_ID: &str = "customerio eu site id";
pub const LABEL_EU_TRACKING_KEY: &str = "customerio eu tracking key";
pub const LABEL_EU_APP_API_KEY: &str = "customerio eu app api key";
pub const LABEL_EU_CDP_API_KEY: &str = "customerio eu cdp api key";
pub const LABEL_EU_WEBHOOK_SIGNING_KEY: &str = "customerio eu webhook signing key";

/// The sandbox credentials with their labels (`customerio us site id`, …).
pub fn credentials() -> Vec<Credential> {
    let c = |label: &str, value: &str| Credential {
        label: label.to_owned(),
        value: value.to_owned(),
    };
    vec![
        c(LABEL_US_SITE_ID, US.site_id),
        c(LABEL_US_TRACKING_KEY, US.tracking_key),
        c(LABEL_US_APP_API_KEY, US.app_api_key),
        c(LABEL_US_CDP_API_KEY, US.cdp_api_key),
        c(LABEL_US_WEBHOOK_SIGNING_KEY, US.webhook_signing_key),
        c(LABEL_EU_SITE_ID, EU.site_id),
        c(LABEL_EU_TRACKING_KEY, EU.tracking_key),
        c(LABEL_EU_APP_API_KEY, EU.app_api_key),
        c(LABEL_EU_CDP_API_KEY, EU.cdp_api_key),
        c(LABEL_EU_WEBHOOK_SIGNING_KEY, EU.webhook_signing_key),
    ]
}

/// Starts the six listeners (Track US/EU, App US/EU, CDP US/EU, bound in that order) sharing one
/// state and one control API.
pub async fn start(binder: &mut Binder, opts: Options) -> std::io::Result<Running> {
    let mut listeners = Vec::with_capacity(6);
    for _ in 0..6 {
        listeners.push(binder.bind().await?);
    }
    let mut urls = Vec::with_capacity(6);
    for l in &listeners {
        urls.push(format!("http://{}", l.local_addr()?));
    }
    let origins = Origins {
        track: [urls[0].clone(), urls[1].clone()],
        app: [urls[2].clone(), urls[3].clone()],
        cdp: [urls[4].clone(), urls[5].clone()],
    };
    let sizes = Sizes {
        seed: opts.seed,
        people: opts.people,
        campaigns: opts.campaigns,
        segments: opts.segments,
        broadcasts: opts.broadcasts,
        newsletters: opts.newsletters,
        transactional: opts.transactional,
    };
    let stores = [
        Store::new(Seeded::new(sizes.clone(), 0x05)),
        Store::new(Seeded::new(sizes, 0xE0)),
    ];
    // Every Customer.io 429 documented is bare: no body, no headers.
    let responder: RateLimitedResponder =
        Arc::new(|_path: &str| resp::empty(StatusCode::TOO_MANY_REQUESTS));
    let control = Control::new(PLATFORM, responder);
    let sim = Arc::new(Sim::new(control.clone(), stores, origins));
    if let Some(every) = opts.event_stream {
        stream::spawn(&sim, every);
    }
    let weak = Arc::downgrade(&sim);
    control.on_reset(move || {
        if let Some(s) = weak.upgrade() {
            s.reset();
        }
    });

    let ctx = |region| Ctx {
        sim: sim.clone(),
        region,
    };
    let routers = [
        track::router(ctx(Region::Us)),
        track::router(ctx(Region::Eu)),
        app::router(ctx(Region::Us)),
        app::router(ctx(Region::Eu)),
        cdp::router(ctx(Region::Us)),
        cdp::router(ctx(Region::Eu)),
    ];
    let envs = [
        ENV_TRACK_US,
        ENV_TRACK_EU,
        ENV_APP_US,
        ENV_APP_EU,
        ENV_CDP_US,
        ENV_CDP_EU,
    ];
    let mut servers = Vec::with_capacity(6);
    let mut out_origins = Vec::with_capacity(6);
    for ((listener, router), (env, url)) in listeners
        .into_iter()
        .zip(routers)
        .zip(envs.into_iter().zip(urls))
    {
        let router = control.wrap(router).merge(control::routes(sim.clone()));
        servers.push(sim_core::spawn(listener, router)?);
        out_origins.push(Origin { env, url });
    }
    Ok(Running {
        platform: PLATFORM,
        origins: out_origins,
        credentials: credentials(),
        servers,
    })
}
