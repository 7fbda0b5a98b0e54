//! A Keap (formerly Infusionsoft) simulator: what SharpSend's Keap connector talks to in tests and
//! in `sharpsend serve --sandbox`.
//!
//! One listener serves both CONTRACT §1 origins:
//! - `SHARPSEND_KEAP_API_URL`: `POST /token`, REST v1 `/crm/rest/v1/…` (with REST hooks) and REST
//!   v2 `/crm/rest/v2/…`, behind a simulated Apigee gateway (auth faults, quotas, spike arrest,
//!   `x-keap-*` headers);
//! - `SHARPSEND_KEAP_AUTHORIZE_URL`: `{origin}/app/oauth/authorize`, a consent page with Allow and
//!   Deny buttons (or auto-approve / auto-deny via `POST /_sim/authorize`).
//!
//! Facts follow shared/platforms/keap.md; every inferred one is a constant in [`config`].
#![forbid(unsafe_code)]
// Handlers return ready-made platform error responses as `Err`; their size does not matter here.
#![allow(clippy::result_large_err)]

mod addresses;
pub mod config;
mod contacts;
mod emails;
mod gateway;
mod hooks;
mod oauth;
mod resources;
mod sim;
mod state;
mod v1;
mod v2;
mod wire;

use std::sync::Arc;

use axum::{Router, middleware};
use sim_core::{Binder, Control, Credential, Origin, Running};

pub use config::{ClassLimits, Limits};
pub use state::AuthorizeMode;

/// The sandbox OAuth client (registered at start).
pub const CLIENT_ID: &str = "keap-sandbox-client-id";
pub const CLIENT_SECRET: &str = "keap-sandbox-client-secret";
/// A ready access + refresh token pair of the sandbox client, valid when [`start`] returns (until
/// it is refreshed: refresh tokens rotate).
pub const ACCESS_TOKEN: &str = "KeapSandboxAccessToken01";
pub const REFRESH_TOKEN: &str = "KeapSandboxRefreshToken1";
/// A Personal Access Token and a Service Account Key (`X-Keap-API-Key`; lower limits).
pub const PERSONAL_ACCESS_TOKEN: &str = "KeapAK-sandbox-personal-access-token-0001";
pub const SERVICE_ACCOUNT_KEY: &str = "KeapAK-sandbox-service-account-key-0001";

/// Labels of [`Running::credentials`].
pub mod labels {
    pub const CLIENT_ID: &str = "keap client id";
    pub const CLIENT_SECRET: &str = "keap client secret";
    pub const ACCESS_TOKEN: &str = "keap access token";
    pub const REFRESH_TOKEN: &str = "keap refresh token";
    pub const PERSONAL_ACCESS_TOKEN: &str = "keap personal access token";
    pub const SERVICE_ACCOUNT_KEY: &str = "keap service account key";
}

/// The CONTRACT §1 variables this simulator answers.
pub const API_URL_ENV: &str = "SHARPSEND_KEAP_API_URL";
pub const AUTHORIZE_URL_ENV: &str = "SHARPSEND_KEAP_AUTHORIZE_URL";

/// How to start the simulator.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Generated contacts (lazily: 1,000,000 is fine).
    pub contacts: u64,
    pub tags: u64,
    pub campaigns: u64,
    pub opportunities: u64,
    pub orders: u64,
    pub products: u64,
    /// Sent-email records seeded over the days before start (`GET /emails`).
    pub emails: u64,
    /// Access-token lifetime in seconds (Keap: 24 h).
    pub access_token_ttl_secs: u64,
    /// Delay between a change and its hook delivery (Keap: 30-60 s; see `config::HOOK_REAL_*`).
    pub hook_delay_ms: u64,
    /// Waits before the 2nd, 3rd and 4th delivery attempt (Keap: 30-60 s, 5 min, 30 min).
    pub hook_retry_ms: Vec<u64>,
    /// A hook receiver slower than this fails the attempt (Keap: 30 s).
    pub hook_timeout_ms: u64,
    pub limits: Limits,
    pub authorize_mode: AuthorizeMode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 42,
            contacts: 250,
            tags: 12,
            campaigns: 12,
            opportunities: 40,
            orders: 60,
            products: 10,
            emails: 1500,
            access_token_ttl_secs: config::ACCESS_TOKEN_TTL_SECS,
            // Short, so a sandbox demo sees hooks quickly; tests use 0 or `/_sim/hooks/fire`.
            hook_delay_ms: 2_000,
            hook_retry_ms: vec![2_000, 10_000, 60_000],
            hook_timeout_ms: config::HOOK_TIMEOUT_MS,
            limits: Limits::default(),
            authorize_mode: AuthorizeMode::Page,
        }
    }
}

/// The platform router (without sim-core's wrapping), for embedding.
fn platform(app: &state::App) -> Router {
    Router::new()
        .merge(oauth::router())
        .merge(v1::router())
        .merge(hooks::router())
        .merge(v2::router())
        .fallback(gateway::page_not_found)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            gateway::gateway,
        ))
        .with_state(app.clone())
}

/// Builds the whole simulator router: platform routes wrapped by sim-core's control layer, plus
/// the Keap control routes. Needs a Tokio runtime (the hook worker is spawned).
pub fn router(opts: Options) -> Router {
    let control = Control::new(
        "keap",
        Arc::new(|_path: &str| gateway::quota_violation(CLIENT_ID)),
    );
    let app: state::App = Arc::new(state::Sim::new(control.clone(), opts));
    let weak = Arc::downgrade(&app);
    control.on_reset(move || {
        if let Some(app) = weak.upgrade() {
            app.reset();
        }
    });
    hooks::spawn_worker(&app);
    control
        .wrap(platform(&app))
        .merge(sim::router().with_state(app))
}

/// Starts the simulator on one listener from `binder`.
pub async fn start(binder: &mut Binder, opts: Options) -> std::io::Result<Running> {
    let listener = binder.bind().await?;
    let server = sim_core::spawn(listener, router(opts))?;
    let origin = server.origin();
    Ok(Running {
        platform: "keap",
        origins: vec![
            Origin {
                env: API_URL_ENV,
                url: origin.clone(),
            },
            Origin {
                env: AUTHORIZE_URL_ENV,
                url: format!("{origin}/app/oauth/authorize"),
            },
        ],
        credentials: [
            (labels::CLIENT_ID, CLIENT_ID),
            (labels::CLIENT_SECRET, CLIENT_SECRET),
            (labels::ACCESS_TOKEN, ACCESS_TOKEN),
            (labels::REFRESH_TOKEN, REFRESH_TOKEN),
            (labels::PERSONAL_ACCESS_TOKEN, PERSONAL_ACCESS_TOKEN),
            (labels::SERVICE_ACCOUNT_KEY, SERVICE_ACCOUNT_KEY),
        ]
        .into_iter()
        .map(|(label, value)| Credential {
            label: label.to_owned(),
            value: value.to_owned(),
        })
        .collect(),
        servers: vec![server],
    })
}
