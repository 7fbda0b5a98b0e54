//! Shared test helpers.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;
use sim_core::{Binder, Running, SimClient};
use sim_customerio::{
    ENV_APP_EU, ENV_APP_US, ENV_CDP_EU, ENV_CDP_US, ENV_TRACK_EU, ENV_TRACK_US, Options,
};

pub struct Sim {
    pub running: Running,
    pub http: reqwest::Client,
}

pub async fn start() -> Sim {
    start_with(Options::default()).await
}

pub async fn start_with(opts: Options) -> Sim {
    let running = sim_customerio::start(&mut Binder::ephemeral(), opts)
        .await
        .expect("simulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Sim { running, http }
}

impl Sim {
    pub fn origin(&self, env: &str) -> String {
        self.running.origin(env).expect("origin").to_owned()
    }
    pub fn track_us(&self, path: &str) -> String {
        format!("{}{path}", self.origin(ENV_TRACK_US))
    }
    pub fn track_eu(&self, path: &str) -> String {
        format!("{}{path}", self.origin(ENV_TRACK_EU))
    }
    pub fn app_us(&self, path: &str) -> String {
        format!("{}{path}", self.origin(ENV_APP_US))
    }
    pub fn app_eu(&self, path: &str) -> String {
        format!("{}{path}", self.origin(ENV_APP_EU))
    }
    pub fn cdp_us(&self, path: &str) -> String {
        format!("{}{path}", self.origin(ENV_CDP_US))
    }
    pub fn cdp_eu(&self, path: &str) -> String {
        format!("{}{path}", self.origin(ENV_CDP_EU))
    }
    /// The control client (any origin works: they share one control state).
    pub fn ctl(&self) -> SimClient {
        SimClient::new(self.origin(ENV_TRACK_US))
    }

    pub async fn person(&self, query: &str) -> Option<Value> {
        let r = self
            .http
            .get(self.track_us(&format!("/_sim/people?{query}")))
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            None
        } else {
            assert_eq!(r.status(), 200);
            Some(r.json().await.unwrap())
        }
    }

    /// GET on the US App API with the US key.
    pub async fn app_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.app_us(path))
            .bearer_auth(sim_customerio::US.app_api_key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn app_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.app_us(path))
            .bearer_auth(sim_customerio::US.app_api_key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The US Track pair as an Authorization value.
pub fn us_track() -> String {
    basic(sim_customerio::US.site_id, sim_customerio::US.tracking_key)
}

pub fn eu_track() -> String {
    basic(sim_customerio::EU.site_id, sim_customerio::EU.tracking_key)
}

/// The vendors' reference data for this simulator (see `sim_core::vendor`).
pub fn vendor() -> PathBuf {
    sim_core::vendor::dir(env!("CARGO_MANIFEST_DIR"), "customerio")
}

/// Whether a test that reads [`vendor`] must skip (see `sim_core::vendor::missing`).
pub fn vendor_missing() -> bool {
    sim_core::vendor::missing(env!("CARGO_MANIFEST_DIR"), "customerio")
}

pub fn vendor_json(rel: &str) -> Value {
    let path = vendor().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
