//! The dashboard's campaign page (line and bar SVG charts of one campaign's metrics, sources
//! per metric, the range form) and the limits panel of the sync page, over plain HTTP.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sharpsend::dashboard::CSP;
use sim_core::SimClient;

use crate::{
    dashboard::Web,
    helpers::{TestApp, fresh_db},
};

const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Fires one Iterable system webhook for campaign 700001.
async fn fire(it: &SimClient, conn: &Value, event: &str, email: &str, msg: &str, at: &str) {
    let records = it
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": conn["webhookUrl"], "authType": "Basic",
                "authToken": conn["webhookSecret"], "eventName": event,
                "email": email, "retryDelaysMs": [],
                "dataFields": {"campaignId": 700_001, "messageId": msg, "createdAt": at}}),
        )
        .await
        .unwrap();
    assert_eq!(records[0]["status"], 200, "{records}");
}

#[tokio::test]
async fn the_campaign_page_charts_metrics_and_the_sync_page_shows_limits() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key_a) = app.create_key("pub-a").await;
    let (_, key_b) = app.create_key("pub-b").await;
    let origin = sandbox
        .platforms
        .iter()
        .find_map(|r| r.origin(sim_iterable::ENV_US))
        .unwrap()
        .to_owned();
    let it = SimClient::new(origin);
    it.post(
        "/_sim/fixtures",
        &json!({"campaigns": [{"id": 700_001, "name": HOSTILE, "type": "Blast",
            "campaignState": "Finished", "messageMedium": "Email",
            "createdAt": 1_700_000_000_000u64, "updatedAt": 1_700_000_000_000u64,
            "createdByUserId": "x@example.com"}]}),
    )
    .await
    .unwrap();
    let conn = app
        .call(
            Method::POST,
            "/api/integrations/iterable/connect",
            Some(&key_a),
            Some(
                json!({"publisherId": "pub-a", "apiKey": sim_iterable::US_SERVER_KEY,
                "region": "us", "config": {}}),
            ),
        )
        .await
        .expect_ok(200)
        .clone();
    for (event, email, msg, at) in [
        (
            "emailOpen",
            "a@example.com",
            "m1",
            "2026-03-01 10:00:00 +00:00",
        ),
        (
            "emailOpen",
            "b@example.com",
            "m2",
            "2026-03-02 09:00:00 +00:00",
        ),
        (
            "emailClick",
            "b@example.com",
            "m2",
            "2026-03-02 09:05:00 +00:00",
        ),
    ] {
        fire(&it, &conn, event, email, msg, at).await;
    }
    let job = app
        .call(
            Method::POST,
            "/api/integrations/pub-a/iterable/sync",
            Some(&key_a),
            Some(json!({"kinds": ["campaigns"]})),
        )
        .await;
    let job_id = job.expect_ok(202)["jobId"].as_str().unwrap().to_owned();
    let mut status = Value::Null;
    for _ in 0..400 {
        let j = app
            .get(
                &format!("/api/integrations/pub-a/iterable/sync/{job_id}"),
                &key_a,
            )
            .await;
        status = j.expect_ok(200)["status"].clone();
        if status == "succeeded" || status == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "succeeded");

    let mut web = Web::new(&app);
    web.sign_in(&key_a).await;
    // The sync page: the limits panel lists the endpoint classes, the campaign links to its page.
    let sync = web.get("/sync/iterable").await;
    assert_eq!(sync.status, StatusCode::OK);
    assert!(sync.body.contains("id=\"limits-table\""), "{}", sync.body);
    for class in ["campaigns", "campaigns_metrics", "export"] {
        assert!(
            sync.body
                .contains(&format!("<th scope=\"row\">{class}</th>")),
            "no class {class}: {}",
            sync.body
        );
    }
    assert!(sync.body.contains("429s last hour"));
    // Iterable's campaign metrics: 10 a minute.
    assert!(
        sync.body
            .contains("<th scope=\"row\">campaigns_metrics</th><td>10 per 60 s, burst"),
        "{}",
        sync.body
    );
    assert!(
        sync.body
            .contains("href=\"/sync/iterable/campaigns/700001?name="),
        "{}",
        sync.body
    );
    assert!(!sync.body.contains("<script>alert"), "{}", sync.body);

    // The campaign page: two SVG charts, the hostile name as text, sources per metric.
    let path = format!(
        "/sync/iterable/campaigns/700001?name={}&from=2026-03-01&to=2026-03-04&interval=day",
        urlencode(HOSTILE)
    );
    let page = web.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers["content-security-policy"], CSP);
    let body = &page.body;
    assert_eq!(body.matches("<svg xmlns=").count(), 2, "{body}");
    assert!(body.contains("id=\"chart-series\""));
    assert!(body.contains("id=\"chart-totals\""));
    // Our webhook counts draw the lines: 2 opens and 1 click over three days.
    assert!(body.contains("opens: total 2; clicks: total 1"), "{body}");
    // Webhook events were received, so no note about missing webhook figures.
    assert!(!body.contains("id=\"no-webhooks\""), "{body}");
    assert_eq!(body.matches("<polyline").count(), 2);
    assert!(body.contains(">03-01</text>") && body.contains(">03-03</text>"));
    // Nothing executable or styled inline reaches the page (the CSP forbids inline styles).
    let lower = body.to_ascii_lowercase();
    assert!(!lower.contains("<script>alert"), "{body}");
    assert!(!lower.contains("<img"), "{body}");
    assert!(!lower.contains("style="), "{body}");
    assert_eq!(lower.matches("<script").count(), 1, "only app.js: {body}");
    assert!(body.contains("id=\"campaign-name\">&"), "{body}");
    assert!(body.contains("alert(1)"), "the name is shown, escaped");
    // Sources per metric: totals from Iterable's API, series from our webhook counts.
    assert!(body.contains("<th scope=\"row\">opens</th><td>"), "{body}");
    assert!(
        body.contains("<td>platform</td><td>webhooks</td>"),
        "{body}"
    );
    // The range form is labelled and keeps its values.
    for (id, label) in [
        ("m-from", "From"),
        ("m-to", "To"),
        ("m-interval", "Interval"),
    ] {
        assert!(
            body.contains(&format!("<label for=\"{id}\">{label}")),
            "{body}"
        );
    }
    assert!(body.contains("value=\"2026-03-01\""));
    assert!(body.contains("<option value=\"day\" selected>"));

    // A backwards range: the API's error, next to the field.
    let bad = web
        .get("/sync/iterable/campaigns/700001?from=2026-03-05&to=2026-03-01")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("id=\"metrics-error\""), "{}", bad.body);
    assert!(
        bad.body
            .contains("id=\"m-from\" name=\"from\" value=\"2026-03-05\" aria-invalid=\"true\""),
        "{}",
        bad.body
    );
    assert!(!bad.body.contains("<svg"));
    // An unknown campaign: NOT_FOUND, no chart.
    let unknown = web.get("/sync/iterable/campaigns/424242").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert!(!unknown.body.contains("<svg"));

    // Another publisher reaches neither the campaign nor the limits.
    let mut b = Web::new(&app);
    b.sign_in(&key_b).await;
    let p = b.get("/sync/iterable/campaigns/700001").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert!(!p.body.contains("<svg"));
    assert!(!p.body.contains("alert(1)"));

    drop(sandbox);
    app.stop().await;
    db.cleanup().await;
}
