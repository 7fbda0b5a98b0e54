//! Target sends and system webhook delivery.

use std::sync::{Arc, Mutex};

use axum::{Router, http::HeaderMap, routing::post};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::sim;

/// A webhook receiver: records each request and answers the next status of `statuses` (the last
/// one repeats).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

async fn receiver(statuses: Vec<u16>) -> (String, Receiver, tokio::task::JoinHandle<()>) {
    let r = Receiver {
        statuses: Arc::new(Mutex::new(statuses)),
        ..Receiver::default()
    };
    let r2 = r.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let r = r2.clone();
            async move {
                r.got
                    .lock()
                    .unwrap()
                    .push((headers, serde_json::from_str(&body).unwrap_or(Value::Null)));
                let mut st = r.statuses.lock().unwrap();
                let code = if st.len() > 1 { st.remove(0) } else { st[0] };
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/hook"), r, task)
}

#[tokio::test]
async fn a_target_send_records_the_send_and_delivers_the_webhook_with_its_auth() {
    let s = sim().await;
    let (url, rx, _task) = receiver(vec![200]).await;
    let hook = s
        .ctl
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": url, "authType": "Basic", "authToken": "s3cr3t",
                    "headers": [{"key": "X-Publisher-Secret", "value": "abc"}]}),
        )
        .await
        .unwrap();
    assert!(hook["id"].as_u64().is_some());

    // Campaign 0 is the running triggered email campaign.
    let (_, list) = s.get("/api/campaigns?sort=id&pageSize=1").await;
    let campaign = list["campaigns"][0]["id"].as_u64().unwrap();
    let (st, body) = s
        .post(
            "/api/email/target",
            &json!({"campaignId": campaign, "recipientEmail": "reader@example.com",
                    "dataFields": {"articleTitle": "Hello"}, "metadata": {"ref": "r-1"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "Success");
    s.ctl
        .post("/_sim/webhooks/flush", &json!({}))
        .await
        .unwrap();

    let sends = s.ctl.get("/_sim/sends").await.unwrap();
    assert_eq!(sends.as_array().unwrap().len(), 1);
    assert_eq!(sends[0]["dataFields"]["articleTitle"], "Hello");
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, event) = &got[0];
    // Basic: the configured token, bare (as the System Webhooks page shows).
    assert_eq!(headers["authorization"], "s3cr3t");
    assert_eq!(headers["x-publisher-secret"], "abc");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(event["eventName"], "emailSend");
    assert_eq!(event["email"], "reader@example.com");
    assert_eq!(event["dataFields"]["campaignId"], campaign);
    assert_eq!(event["dataFields"]["metadata"]["ref"], "r-1");
    assert_eq!(s.ctl.counter("webhooks_delivered").await.unwrap(), 1);
    // The recipient became a user.
    let (_, u) = s.get("/api/users/reader@example.com").await;
    assert_eq!(u["user"]["email"], "reader@example.com");
}

#[tokio::test]
async fn target_sends_need_a_running_triggered_campaign_of_that_medium() {
    let s = sim().await;
    let (_, all) = s.get("/api/campaigns?pageSize=1000").await;
    let all = all["campaigns"].as_array().unwrap();
    let find =
        |pred: &dyn Fn(&Value) -> bool| all.iter().find(|c| pred(c)).map(|c| c["id"].clone());
    let blast = find(&|c| c["type"] == "Blast").unwrap();
    let (st, body) = s
        .post(
            "/api/email/target",
            &json!({"campaignId": blast, "recipientEmail": "r@example.com"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");
    let email_triggered = all[0]["id"].clone();
    let (st, _) = s
        .post(
            "/api/sms/target",
            &json!({"campaignId": email_triggered, "recipientEmail": "r@example.com"}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "medium must match the endpoint"
    );
    for body in [
        json!({"recipientEmail": "r@example.com"}),
        json!({"campaignId": 1, "recipientEmail": "r@example.com"}),
        json!({"campaignId": email_triggered}),
        json!({"campaignId": email_triggered, "recipientEmail": "r@example.com", "recipientUserId": "u"}),
        json!({"campaignId": email_triggered, "recipientEmail": "r@example.com", "sendAt": "2099-01-01 00:00:00"}),
    ] {
        let (st, resp) = s.post("/api/email/target", &body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} -> {resp}");
    }
    let (st, body) = s
        .post(
            "/api/email/target",
            &json!({"campaignId": email_triggered, "recipientUserId": "nobody"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "UnknownUserIdError");
    assert_eq!(s.ctl.counter("messages_sent").await.unwrap(), 0);
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_given_up() {
    let s = sim().await;
    let (url, rx, _task) = receiver(vec![500, 503, 200]).await;
    s.ctl
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": url, "authType": "OAuth2", "authToken": "tok"}),
        )
        .await
        .unwrap();
    let out = s
        .ctl
        .post(
            "/_sim/webhooks/emit",
            &json!({"eventName": "emailOpen", "email": "o@example.com",
                                             "dataFields": {"campaignId": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(out[0]["attempts"], 3);
    assert_eq!(out[0]["delivered"], true);
    {
        let got = rx.got.lock().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0["authorization"], "OAuth2 tok");
    }
    // Always failing: gives up after the last attempt.
    let (url2, _rx2, _t2) = receiver(vec![500]).await;
    s.ctl.reset().await.unwrap();
    s.ctl
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": url2, "authType": "NoAuth"}),
        )
        .await
        .unwrap();
    let out = s
        .ctl
        .post(
            "/_sim/webhooks/emit",
            &json!({"eventName": "emailClick", "email": "o@example.com"}),
        )
        .await
        .unwrap();
    assert_eq!(out[0]["attempts"], sim_iterable::MAX_ATTEMPTS);
    assert_eq!(out[0]["delivered"], false);
    assert_eq!(out[0]["status"], 500);
    assert_eq!(s.ctl.counter("webhooks_failed").await.unwrap(), 1);
}

#[tokio::test]
async fn the_webhooks_api_lists_and_updates_existing_webhooks() {
    let s = sim().await;
    let (url, rx, _task) = receiver(vec![200]).await;
    let created = s
        .ctl
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": url, "authType": "Basic", "authToken": "t"}),
        )
        .await
        .unwrap();
    let id = created["id"].as_u64().unwrap();
    let (st, list) = s.get("/api/webhooks").await;
    assert_eq!(st, StatusCode::OK);
    let w = &list["webhooks"][0];
    assert_eq!(w["id"], id);
    assert_eq!(w["authType"], "Basic");
    assert!(w.get("authToken").is_none(), "the token is never listed");

    let (st, updated) = s
        .post("/api/webhooks", &json!({"id": id, "enabled": false}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(updated["enabled"], false);
    let out = s
        .ctl
        .post(
            "/_sim/webhooks/emit",
            &json!({"eventName": "emailOpen", "email": "o@example.com"}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!([]), "disabled webhooks get nothing");
    assert!(rx.got.lock().unwrap().is_empty());

    let (st, body) = s
        .post("/api/webhooks", &json!({"id": 999_999, "enabled": true}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");
    let (st, _) = s
        .post("/api/webhooks", &json!({"id": id, "authType": "Digest"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Triggered-only flag: a blast-kind event skips a webhook with blastSendEnabled=false.
    s.post(
        "/api/webhooks",
        &json!({"id": id, "enabled": true, "blastSendEnabled": false}),
    )
    .await;
    let out = s
        .ctl
        .post(
            "/_sim/webhooks/emit",
            &json!({"eventName": "emailSend", "email": "o@example.com", "kind": "blast"}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!([]));
}

#[tokio::test]
async fn fire_posts_to_a_given_url_with_a_configurable_schedule() {
    let s = sim().await;
    let (url, rx, _task) = receiver(vec![502]).await;
    let out = s
        .ctl
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url, "authType": "Basic", "authToken": "k",
                    "headers": [{"key": "X-Iterable-Test", "value": "1"}],
                    "retryDelaysMs": [0, 0, 0],
                    "eventName": "emailBounce", "email": "b@example.com", "userId": "usr0000001",
                    "dataFields": {"campaignId": 5, "recipientState": "HardBounce"}}),
        )
        .await
        .unwrap();
    assert_eq!(out[0]["attempts"], 4);
    assert_eq!(out[0]["delivered"], false);
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].0["x-iterable-test"], "1");
    assert_eq!(got[0].0["authorization"], "k");
    assert_eq!(
        got[0].1,
        json!({"email": "b@example.com", "userId": "usr0000001", "eventName": "emailBounce",
               "dataFields": {"campaignId": 5, "recipientState": "HardBounce"}})
    );

    // The project schedule applies when the call gives none; `url` is accepted on create.
    let (url2, rx2, _t2) = receiver(vec![500]).await;
    s.ctl
        .post("/_sim/webhooks/schedule", &json!({"retryDelaysMs": [0]}))
        .await
        .unwrap();
    s.ctl
        .post(
            "/_sim/webhooks",
            &json!({"url": url2, "authType": "NoAuth"}),
        )
        .await
        .unwrap();
    let out = s
        .ctl
        .post(
            "/_sim/webhooks/fire",
            &json!({"eventName": "emailOpen", "email": "o@example.com"}),
        )
        .await
        .unwrap();
    assert_eq!(out.as_array().unwrap().len(), 1);
    assert_eq!(out[0]["attempts"], 2);
    assert!(
        rx2.got.lock().unwrap()[0].0.get("authorization").is_none(),
        "NoAuth"
    );
}
