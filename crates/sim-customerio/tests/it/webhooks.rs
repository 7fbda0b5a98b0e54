//! Signed reporting webhooks: signature (against the vendored test vector), payloads, retries.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sim_core::SimServer;
use sim_customerio::US;

use crate::common::{start, vendor_json, vendor_missing};

/// One received POST: (X-CIO-Timestamp, X-CIO-Signature, raw body).
type Hit = (String, String, Vec<u8>);

#[derive(Clone, Default)]
struct Received {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Statuses to answer, in order; 200 after they run out.
    script: Arc<Mutex<Vec<u16>>>,
}

async fn receiver(script: Vec<u16>) -> (SimServer, Received, String) {
    let rec = Received {
        script: Arc::new(Mutex::new(script)),
        ..Received::default()
    };
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(rec): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    rec.hits.lock().unwrap().push((
                        h("x-cio-timestamp"),
                        h("x-cio-signature"),
                        body.to_vec(),
                    ));
                    let mut s = rec.script.lock().unwrap();
                    let status = if s.is_empty() { 200 } else { s.remove(0) };
                    axum::http::StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = sim_core::spawn(listener, app).unwrap();
    let url = format!("{}/hook", server.origin());
    (server, rec, url)
}

fn hmac_hex(key: &str, msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn signature_matches_the_vendored_test_vector() {
    if vendor_missing() {
        return;
    }
    let v = vendor_json("fixtures/webhook-signature-test-vector.json");
    let key = v["signing_key"].as_str().unwrap();
    let ts = v["x_cio_timestamp"].as_str().unwrap();
    let raw = v["raw_body"].as_str().unwrap();
    let want = v["x_cio_signature_hex"].as_str().unwrap();
    assert_eq!(sim_customerio::sign_webhook(key, ts, raw.as_bytes()), want);

    let sim = start().await;
    let (_srv, rec, url) = receiver(vec![]).await;
    let answer = sim
        .ctl()
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url, "rawBody": raw, "signingKey": key, "timestamp": ts, "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(answer["delivered"], true);
    assert_eq!(answer["signature"], want);
    let hits = rec.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, ts);
    assert_eq!(hits[0].1, want);
    assert_eq!(hits[0].2, raw.as_bytes());
    // The vector's negative cases: no `v0:` prefix, or one extra byte, must not verify.
    let wrong = v["negative_cases"][1]["wrong_signature_hex"]
        .as_str()
        .unwrap();
    assert_ne!(hits[0].1, wrong);
    assert_ne!(
        sim_customerio::sign_webhook(key, ts, format!("{raw} ").as_bytes()),
        want
    );
}

#[tokio::test]
async fn named_events_are_signed_with_the_workspace_key_and_carry_ulids() {
    let sim = start().await;
    let (_srv, rec, url) = receiver(vec![]).await;
    for name in ["email_delivered", "email_clicked", "customer_unsubscribed"] {
        let a = sim
            .ctl()
            .post(
                "/_sim/webhooks/fire",
                &json!({"url": url, "event": name, "wait": true}),
            )
            .await
            .unwrap();
        assert_eq!(a["delivered"], true, "{a}");
    }
    let hits = rec.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3);
    let mut ids = std::collections::HashSet::new();
    for (ts, sig, body) in &hits {
        let mut msg = format!("v0:{ts}:").into_bytes();
        msg.extend_from_slice(body);
        assert_eq!(*sig, hmac_hex(US.webhook_signing_key, &msg));
        let ev: Value = serde_json::from_slice(body).unwrap();
        let id = ev["event_id"].as_str().unwrap();
        assert_eq!(id.len(), 26);
        assert!(ids.insert(id.to_owned()), "event ids are unique");
        assert_eq!(ev["timestamp"].as_i64().unwrap().to_string(), *ts);
        assert!(ev["data"]["identifiers"]["cio_id"].is_string());
    }
    let first: Value = serde_json::from_slice(&hits[0].2).unwrap();
    assert_eq!(first["metric"], "delivered");
    assert_eq!(first["object_type"], "email");
    assert!(first["data"]["newsletter_id"].is_u64());
    let r = sim
        .http
        .post(sim.track_us("/_sim/webhooks/fire"))
        .json(&json!({"url": url, "event": "email_teleported"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_the_schedule() {
    let sim = start().await;
    let (_srv, rec, url) = receiver(vec![500, 401]).await;
    let a = sim
        .ctl()
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url, "event": {"metric": "sent", "object_type": "email", "timestamp": 1, "data": {}},
                    "retryScheduleMs": [10, 10, 10], "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(a["delivered"], true);
    let statuses: Vec<u64> = a["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![500, 401, 200]);
    let hits = rec.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.windows(2).all(|w| w[0].2 == w[1].2),
        "same body every attempt"
    );
    let body: Value = serde_json::from_slice(&hits[0].2).unwrap();
    assert_eq!(
        body["event_id"].as_str().unwrap().len(),
        26,
        "a ULID is added"
    );

    // Never succeeding: 1 + schedule attempts, then given up.
    let (_srv2, _rec2, url2) = receiver(vec![503; 10]).await;
    sim.ctl()
        .post(
            "/_sim/webhooks/config",
            &json!({"retryScheduleMs": [5, 5], "timeoutMs": 2000}),
        )
        .await
        .unwrap();
    let a = sim
        .ctl()
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url2, "event": "email_sent", "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(a["delivered"], false);
    assert_eq!(a["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(sim.ctl().counter("webhook_failed").await.unwrap(), 1);
    assert_eq!(sim.ctl().counter("webhook_delivered").await.unwrap(), 1);
    let log = sim.ctl().get("/_sim/webhooks/deliveries").await.unwrap();
    assert_eq!(log.as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn fire_without_wait_answers_202_and_delivers_in_the_background() {
    let sim = start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let app = Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body.to_vec());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = sim_core::spawn(listener, app).unwrap();
    let r = sim
        .http
        .post(sim.track_us("/_sim/webhooks/fire"))
        .json(&json!({"url": format!("{}/hook", server.origin()), "event": "email_opened", "workspace": "eu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("delivered")
        .unwrap();
    let ev: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ev["event_id"], answer["eventId"]);
    assert_eq!(ev["metric"], "opened");
}

#[tokio::test]
async fn later_events_wait_behind_a_failing_one_for_the_same_receiver() {
    let sim = start().await;
    let (_srv, rec, url) = receiver(vec![500, 500]).await;
    let first = sim
        .ctl()
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url, "event": "email_sent", "retryScheduleMs": [30, 30]}),
        )
        .await
        .unwrap();
    let second = sim
        .ctl()
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url, "event": "email_delivered", "wait": true}),
        )
        .await
        .unwrap();
    assert_eq!(second["delivered"], true);
    let order: Vec<String> = rec
        .hits
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| {
            serde_json::from_slice::<Value>(b).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let a = first["eventId"].as_str().unwrap();
    let b = second["eventId"].as_str().unwrap();
    assert_eq!(
        order,
        vec![a, a, a, b],
        "backlogged until the first succeeded"
    );
}
