//! Consent calls on the Track API: `unsubscribed` (with `_update`), the `customer`/`unsubscribed`
//! reporting webhook it causes, person delete and person suppress.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use sim_core::SimServer;
use sim_customerio::US;

use crate::common::{Sim, start, us_track};

type Hits = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A reporting-webhook receiver configured as the US workspace's webhook.
async fn reporting(sim: &Sim) -> (SimServer, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(h): State<Hits>, headers: HeaderMap, body: Bytes| async move {
                    h.lock()
                        .unwrap()
                        .push((headers, serde_json::from_slice(&body).unwrap()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = sim_core::spawn(listener, app).unwrap();
    sim.ctl()
        .post(
            "/_sim/webhooks/reporting",
            &json!({"workspace": "us", "url": format!("{}/hook", server.origin())}),
        )
        .await
        .unwrap();
    (server, hits)
}

async fn put(sim: &Sim, identifier: &str, body: Value) -> u16 {
    sim.http
        .put(sim.track_us(&format!("/api/v1/customers/{identifier}")))
        .header("authorization", us_track())
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn call(sim: &Sim, method: reqwest::Method, path: &str) -> u16 {
    sim.http
        .request(method, sim.track_us(path))
        .header("authorization", us_track())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn state(sim: &Sim, email: &str) -> Value {
    sim.ctl()
        .get(&format!("/_sim/consent?workspace=us&email={email}"))
        .await
        .unwrap()
}

/// Waits until `n` hits arrived (or a second passed) and returns them.
async fn hits_after(hits: &Hits, n: usize) -> Vec<(HeaderMap, Value)> {
    for _ in 0..100 {
        if hits.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hits.lock().unwrap().clone()
}

#[tokio::test]
async fn unsubscribed_accepts_true_in_any_case_and_one() {
    let sim = start().await;
    for (i, v) in [
        json!(true),
        json!("TRUE"),
        json!("True"),
        json!(1),
        json!("1"),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("t{i}@example.com");
        assert_eq!(put(&sim, &email, json!({"unsubscribed": v})).await, 200);
        assert_eq!(state(&sim, &email).await["unsubscribed"], true, "{v}");
    }
    for (i, v) in [
        json!(false),
        json!("false"),
        json!(0),
        json!("0"),
        json!("yes"),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("f{i}@example.com");
        assert_eq!(put(&sim, &email, json!({"unsubscribed": v})).await, 200);
        assert_eq!(state(&sim, &email).await["unsubscribed"], false, "{v}");
    }
}

#[tokio::test]
async fn update_only_never_creates_a_person_from_an_email_in_the_path() {
    let sim = start().await;
    let (_srv, hits) = reporting(&sim).await;
    let body = json!({"unsubscribed": true, "_update": true});
    assert_eq!(put(&sim, "nobody@example.com", body.clone()).await, 200);
    let s = state(&sim, "nobody@example.com").await;
    assert_eq!(s["exists"], false);
    assert!(sim.person("email=nobody@example.com").await.is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(hits.lock().unwrap().is_empty(), "nobody was unsubscribed");

    // An existing person (matched without regard to case) is updated, and `_update` is not kept
    // as an attribute.
    assert_eq!(
        put(&sim, "ada@example.com", json!({"plan": "pro"})).await,
        200
    );
    assert_eq!(put(&sim, "ADA@example.com", body).await, 200);
    let p = sim.person("email=ada@example.com").await.unwrap();
    assert_eq!(p["unsubscribed"], true);
    assert!(p["attributes"].get("_update").is_none());
}

#[tokio::test]
async fn becoming_unsubscribed_reports_customer_unsubscribed_once() {
    let sim = start().await;
    let (_srv, hits) = reporting(&sim).await;
    assert_eq!(
        put(&sim, "ada@example.com", json!({"id": "ada-1"})).await,
        200
    );
    let body = json!({"unsubscribed": true, "_update": true});
    assert_eq!(put(&sim, "ada@example.com", body.clone()).await, 200);
    let got = hits_after(&hits, 1).await;
    assert_eq!(got.len(), 1);
    let (headers, ev) = &got[0];
    assert!(headers.contains_key("x-cio-signature"));
    let ts = headers["x-cio-timestamp"].to_str().unwrap();
    let raw = serde_json::to_vec(ev).unwrap();
    // The signature covers the exact body; re-serialising the parsed JSON keeps key order.
    assert_eq!(
        headers["x-cio-signature"].to_str().unwrap(),
        sim_customerio::sign_webhook(US.webhook_signing_key, ts, &raw)
    );
    assert_eq!(ev["object_type"], "customer");
    assert_eq!(ev["metric"], "unsubscribed");
    assert_eq!(ev["data"]["email_address"], "ada@example.com");
    assert_eq!(ev["data"]["identifiers"]["id"], "ada-1");
    assert_eq!(ev["data"]["identifiers"]["email"], "ada@example.com");
    assert_eq!(ev["event_id"].as_str().unwrap().len(), 26);

    // Already unsubscribed: nothing changes, nothing is reported.
    assert_eq!(put(&sim, "ada@example.com", body).await, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(hits.lock().unwrap().len(), 1);
    assert_eq!(
        sim.ctl()
            .counter("customer_unsubscribed_reported")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn delete_removes_the_person_but_a_later_identify_recreates_it() {
    let sim = start().await;
    assert_eq!(
        put(&sim, "ada@example.com", json!({"plan": "pro"})).await,
        200
    );
    let del = call(
        &sim,
        reqwest::Method::DELETE,
        "/api/v1/customers/ada@example.com",
    )
    .await;
    assert_eq!(del, 200);
    let s = state(&sim, "ada@example.com").await;
    assert_eq!(
        (s["exists"].clone(), s["deleted"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(
        put(&sim, "ada@example.com", json!({"plan": "x"})).await,
        200
    );
    assert_eq!(state(&sim, "ada@example.com").await["exists"], true);
}

#[tokio::test]
async fn suppress_deletes_and_blocks_both_identifiers_until_unsuppressed() {
    let sim = start().await;
    assert_eq!(
        put(&sim, "ada-1", json!({"email": "ada@example.com"})).await,
        200
    );
    let st = call(
        &sim,
        reqwest::Method::POST,
        "/api/v1/customers/ada@example.com/suppress",
    )
    .await;
    assert_eq!(st, 200);
    let s = state(&sim, "ada@example.com").await;
    assert_eq!(s["exists"], false);
    assert_eq!(s["suppressed"], true);
    assert_eq!(s["deleted"], true);

    // Identify calls naming the email or the id are ignored (still 200).
    assert_eq!(
        put(&sim, "ada@example.com", json!({"plan": "x"})).await,
        200
    );
    assert_eq!(put(&sim, "ada-1", json!({"plan": "x"})).await, 200);
    assert_eq!(
        put(&sim, "other-7", json!({"email": "Ada@Example.com"})).await,
        200
    );
    assert!(sim.person("email=ada@example.com").await.is_none());
    assert!(sim.person("id=ada-1").await.is_none());
    assert!(sim.person("id=other-7").await.is_none());

    // v2 identify is ignored too.
    let r = sim
        .http
        .post(sim.track_us("/api/v2/entity"))
        .header("authorization", us_track())
        .json(&json!({"type": "person", "action": "identify",
                      "identifiers": {"email": "ada@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.person("email=ada@example.com").await.is_none());

    // Unsuppress by the id frees both; the profile stays deleted.
    let st = call(
        &sim,
        reqwest::Method::POST,
        "/api/v1/customers/ada-1/unsuppress",
    )
    .await;
    assert_eq!(st, 200);
    assert!(sim.person("id=ada-1").await.is_none());
    assert_eq!(state(&sim, "ada@example.com").await["suppressed"], false);
    assert_eq!(
        put(&sim, "ada@example.com", json!({"plan": "y"})).await,
        200
    );
    assert!(sim.person("email=ada@example.com").await.is_some());
}
