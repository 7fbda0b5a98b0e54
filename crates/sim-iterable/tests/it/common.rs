//! Starting a simulator and talking to it, and finding the vendors' reference data.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sim_core::{Binder, Running, SimClient};
use sim_iterable::{ENV_EU, ENV_US, Options, US_SERVER_KEY};

/// 2026-01-01T00:00:00Z: generated data ends here, so goldens do not move.
pub const ANCHOR_MS: i64 = 1_767_225_600_000;

pub struct Sim {
    pub running: Running,
    pub us: String,
    pub eu: String,
    pub http: reqwest::Client,
    pub ctl: SimClient,
    pub ctl_eu: SimClient,
}

pub fn opts() -> Options {
    Options {
        anchor_ms: Some(ANCHOR_MS),
        ..Options::default()
    }
}

pub async fn sim() -> Sim {
    sim_with(opts()).await
}

pub async fn sim_with(o: Options) -> Sim {
    let running = sim_iterable::start(&mut Binder::ephemeral(), o)
        .await
        .expect("simulator starts");
    let us = running.origin(ENV_US).expect("US origin").to_owned();
    let eu = running.origin(ENV_EU).expect("EU origin").to_owned();
    Sim {
        ctl: SimClient::new(&us),
        ctl_eu: SimClient::new(&eu),
        running,
        us,
        eu,
        http: reqwest::Client::new(),
    }
}

impl Sim {
    /// A request to the US origin with the US server-side key.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.us))
            .header("Api-Key", US_SERVER_KEY)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        send(self.req(Method::POST, path).json(body)).await
    }
}

/// Sends and decodes a JSON answer (`Null` when the body is not JSON).
pub async fn send(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Lines of a text or JSONL answer.
pub async fn lines(rb: reqwest::RequestBuilder) -> (StatusCode, String, Vec<String>) {
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    (
        status,
        ct,
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// The vendors' reference data for this simulator (see `sim_core::vendor`).
pub fn vendor() -> PathBuf {
    sim_core::vendor::dir(env!("CARGO_MANIFEST_DIR"), "iterable")
}

/// Whether a test that reads [`vendor`] must skip (see `sim_core::vendor::missing`).
pub fn vendor_missing() -> bool {
    sim_core::vendor::missing(env!("CARGO_MANIFEST_DIR"), "iterable")
}
