//! The sandbox's event stream: nothing until the workspace has a reporting webhook, then a steady
//! flow of signed newsletter events about seeded people, signed with the key the webhook was
//! configured with.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use sim_customerio::{Options, sign_webhook};

use crate::common::start_with;

type Hits = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

const KEY: &str = "a-key-the-connect-chose";

#[tokio::test]
async fn a_configured_workspace_receives_a_signed_stream_of_newsletter_events() {
    let sim = start_with(Options {
        event_stream: Some(Duration::from_millis(50)),
        ..Options::default()
    })
    .await;
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(h): State<Hits>, headers: HeaderMap, body: Bytes| async move {
                    h.lock().unwrap().push((headers, body));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = sim_core::spawn(listener, app).unwrap();

    // No reporting webhook yet: several periods pass and nothing is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.ctl().counter("stream_events").await.unwrap(), 0);

    sim.ctl()
        .post(
            "/_sim/webhooks/reporting",
            &json!({"workspace": "us", "url": format!("{}/hook", server.origin()),
                "signingKey": KEY}),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while hits.lock().unwrap().len() < 5 {
        assert!(started.elapsed() < Duration::from_secs(5), "no stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hits = hits.lock().unwrap().clone();
    let mut ids = std::collections::BTreeSet::new();
    for (headers, body) in &hits {
        let ts = headers["x-cio-timestamp"].to_str().unwrap();
        assert_eq!(
            headers["x-cio-signature"].to_str().unwrap(),
            sign_webhook(KEY, ts, body),
            "signed with the configured key"
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["object_type"], "email", "{v}");
        let email = v["data"]["recipient"].as_str().unwrap();
        assert!(email.ends_with("@example.com"), "{v}");
        let person = sim.person(&format!("email={email}")).await;
        assert!(person.is_some(), "a seeded person: {email}");
        let newsletter = v["data"]["newsletter_id"].as_u64().unwrap();
        // Sent newsletters only: 5001 … 5035 (the newest, 5036, is a draft).
        assert!((5001..5036).contains(&newsletter), "{v}");
        ids.insert(v["event_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), hits.len(), "each event has its own id");
}
