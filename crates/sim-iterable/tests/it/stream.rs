//! The sandbox's event stream: nothing until the project has a system webhook, then a steady
//! flow of email activity about generated users and email campaigns, with the webhook's auth.

use std::time::{Duration, Instant};

use axum::{Router, http::HeaderMap, routing::post};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{opts, sim_with};

#[tokio::test]
async fn a_configured_webhook_receives_a_stream_of_email_activity() {
    let s = sim_with(sim_iterable::Options {
        event_stream: Some(Duration::from_millis(50)),
        ..opts()
    })
    .await;
    // The receiver accepts only the webhook's Basic token, so a delivery counts as delivered
    // only when the stream sends the configured auth.
    let app = Router::new().route(
        "/hook",
        post(|headers: HeaderMap| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("s3cret") {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.ctl.counter("stream_events").await.unwrap(),
        0,
        "no webhook, no stream"
    );

    s.ctl
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": format!("http://{addr}/hook"), "authType": "Basic",
                "authToken": "s3cret"}),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let records = loop {
        let d = s.ctl.get("/_sim/webhooks/deliveries").await.unwrap();
        let d = d.as_array().unwrap().clone();
        if d.len() >= 5 {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no stream: {d:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for r in &records {
        assert_eq!(r["delivered"], true, "{r}");
        let body = &r["body"];
        let name = body["eventName"].as_str().unwrap();
        assert!(
            [
                "emailSend",
                "emailOpen",
                "emailClick",
                "emailBounce",
                "emailUnSubscribe"
            ]
            .contains(&name),
            "{body}"
        );
        let email = body["email"].as_str().unwrap();
        let (st, user) = s.get(&format!("/api/users/getByEmail?email={email}")).await;
        assert_eq!(st, StatusCode::OK, "a generated user: {email}");
        assert_eq!(user["user"]["email"], email, "{user}");
        assert!(
            body["dataFields"]["campaignId"].as_u64().is_some(),
            "{body}"
        );
        assert_eq!(body["dataFields"]["email"], Value::String(email.to_owned()));
    }
}
