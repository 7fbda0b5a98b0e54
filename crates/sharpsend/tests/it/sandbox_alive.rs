//! Issue 19 item 5: under `serve --sandbox`, connecting Iterable or Customer.io points the
//! simulator's webhooks at the new integration, and the simulators' event stream makes events
//! arrive with no set-up; without the sandbox, a connect touches no simulator control route.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::{
    Application,
    sandbox::{Sandbox, SandboxOptions},
};
use sim_core::SimClient;

use crate::helpers::{
    ADMIN_TOKEN, NO_API_LIMITS, TestApp, fresh_db, random_master_key, test_config,
};

const PUBLISHER: &str = "pub-alive";
/// Not the sandbox workspace's key: events verify only if the connect handed it to the simulator.
const SIGNING_KEY: &str = "sandbox-alive-signing-key-0123456789abcdef";

/// The simulators with a fast stream, and the server over them with `sandbox` as given.
async fn start(db: &store::testing::TestDb, sandbox_mode: bool) -> (TestApp, Sandbox) {
    let opts = SandboxOptions {
        event_stream: Some(Duration::from_millis(150)),
        ..SandboxOptions::default()
    };
    let sandbox = Sandbox::start(&mut sim_core::Binder::ephemeral(), &opts)
        .await
        .expect("simulators start");
    let overrides = sandbox.upstream_overrides();
    let mut extra: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.extend_from_slice(NO_API_LIMITS);
    let mut config = test_config(&db.url, &random_master_key(), &extra);
    config.sandbox = sandbox_mode;
    let app = Application::build(config)
        .await
        .expect("application builds");
    (TestApp::run(app), sandbox)
}

fn sim(sandbox: &Sandbox, env: &str) -> SimClient {
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == env)
        .map(|(_, v)| v)
        .expect("simulator origin");
    SimClient::new(origin)
}

async fn connect_customerio(app: &TestApp) -> Value {
    let cio = sim_customerio::US;
    app.call(
        Method::POST,
        "/api/integrations/customerio/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": PUBLISHER, "siteId": cio.site_id, "apiKey": cio.app_api_key,
            "trackingKey": cio.tracking_key, "webhookSigningKey": SIGNING_KEY, "region": "us"}),
        ),
    )
    .await
    .expect_ok(200)
    .clone()
}

async fn connect_iterable(app: &TestApp) -> Value {
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": PUBLISHER, "apiKey": sim_iterable::US_SERVER_KEY,
            "region": "us"}),
        ),
    )
    .await
    .expect_ok(200)
    .clone()
}

/// Waits (at most `limit`) until the publisher has at least `n` events of `platform`.
async fn events_arrive(app: &TestApp, platform: &str, n: usize, limit: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let list = app
            .get(
                &format!("/api/integrations/{PUBLISHER}/events?platform={platform}"),
                ADMIN_TOKEN,
            )
            .await;
        let evs = list.expect_ok(200)["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if evs.len() >= n {
            return evs;
        }
        assert!(
            started.elapsed() < limit,
            "{platform}: {} events within {limit:?}",
            evs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connecting_in_the_sandbox_makes_events_arrive() {
    let db = fresh_db().await;
    let (app, sandbox) = start(&db, true).await;

    let cio = connect_customerio(&app).await;
    let reporting = sim(&sandbox, sim_customerio::ENV_TRACK_US)
        .get("/_sim/webhooks/reporting")
        .await
        .unwrap();
    assert_eq!(reporting["us"], cio["webhookUrl"], "{reporting}");
    let evs = events_arrive(&app, "customerio", 3, Duration::from_secs(10)).await;
    for e in &evs {
        assert!(
            e["type"].as_str().is_some_and(|t| t.starts_with("email.")),
            "{e}"
        );
        assert!(
            e["email"]
                .as_str()
                .is_some_and(|m| m.ends_with("@example.com")),
            "{e}"
        );
    }

    connect_iterable(&app).await;
    events_arrive(&app, "iterable", 2, Duration::from_secs(10)).await;
    // A reconnect edits the simulator's webhook in place: one webhook, not two.
    connect_iterable(&app).await;
    let info = sim(&sandbox, sim_iterable::ENV_US)
        .get("/_sim/info")
        .await
        .unwrap();
    assert_eq!(info["written"]["webhooks"], 1, "{info}");
    app.stop().await;
}

#[tokio::test]
async fn outside_the_sandbox_a_connect_configures_no_simulator() {
    let db = fresh_db().await;
    let (app, sandbox) = start(&db, false).await;
    connect_customerio(&app).await;
    connect_iterable(&app).await;
    let reporting = sim(&sandbox, sim_customerio::ENV_TRACK_US)
        .get("/_sim/webhooks/reporting")
        .await
        .unwrap();
    assert_eq!(reporting["us"], Value::Null, "{reporting}");
    let it = sim(&sandbox, sim_iterable::ENV_US);
    // Several stream periods pass, and nothing is delivered anywhere.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(it.counter("stream_events").await.unwrap(), 0);
    let events = app
        .get(
            &format!("/api/integrations/{PUBLISHER}/events"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(events.expect_ok(200)["events"], json!([]));
    app.stop().await;
}
