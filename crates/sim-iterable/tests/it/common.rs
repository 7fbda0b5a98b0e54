//! Starting a simulator and talking to it, and finding the vendors' reference data.

use std::{io::Write as _, path::PathBuf};

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

/// Set to `1` (as `.ci/run` does) to make a missing vendor folder fail the tests that need it.
pub const REQUIRE_VENDOR: &str = "SHARPSEND_REQUIRE_VENDOR";

/// The vendors' Iterable reference data: `../shared/vendor/iterable` beside the repository clone.
/// It is the vendors' text, not ours, so it is kept outside the repository; see
/// [`vendor_missing`] for a clone that has no such folder.
pub fn vendor() -> PathBuf {
    let dir = vendor_path();
    assert!(
        dir.join("SOURCE.txt").is_file(),
        "vendored Iterable reference data missing at {} (../shared/vendor/iterable beside the clone)",
        dir.display()
    );
    dir
}

fn vendor_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor/iterable")
}

/// Whether a test that reads [`vendor`] must skip: true, after a loud notice, when the folder is
/// absent (a plain clone of the repository); a failure instead when `SHARPSEND_REQUIRE_VENDOR` is
/// `1`, so CI runs every fidelity test. The notice goes straight to stderr: the test harness
/// hides `eprintln!` of a passing test.
pub fn vendor_missing() -> bool {
    let dir = vendor_path();
    if dir.join("SOURCE.txt").is_file() {
        return false;
    }
    let required = std::env::var(REQUIRE_VENDOR).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{REQUIRE_VENDOR} is set but the vendored Iterable reference data is missing at {}: \
         put the shared folder (with vendor/iterable/SOURCE.txt) beside the repository clone",
        dir.display()
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("a fidelity test")
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "\n  !!! SKIPPING {test}: the vendored Iterable reference data is missing at {}\n  \
         !!! (../shared/vendor/iterable beside the repository clone). Put the shared folder there to\n  \
         !!! run it; with {REQUIRE_VENDOR}=1 (as CI sets it) the test fails instead.\n",
        dir.display()
    );
    true
}
