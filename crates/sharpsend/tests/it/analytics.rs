//! Analytics and rate-limit visibility (issue 9): campaign metrics against the simulators,
//! our own webhook counts, the limits endpoint under a burst, tenancy.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::Sandbox;
use sim_core::SimClient;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, fresh_db};

fn sim(sandbox: &Sandbox, env: &str) -> SimClient {
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == env)
        .map(|(_, v)| v)
        .expect("simulator origin");
    SimClient::new(origin)
}

async fn connect_iterable(app: &TestApp, publisher: &str) -> Value {
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": publisher, "apiKey": sim_iterable::US_SERVER_KEY, "region": "us",
            "config": {"fromEmail": "news@example.com", "replyTo": "editor@example.com"}}),
        ),
    )
    .await
    .expect_ok(200)
    .clone()
}

async fn metrics(app: &TestApp, publisher: &str, campaign: &str, query: &str) -> Answer {
    app.get(
        &format!("/api/integrations/{publisher}/iterable/campaigns/{campaign}/metrics{query}"),
        ADMIN_TOKEN,
    )
    .await
}

/// Recorded-style rows with quoted fields (a comma, doubled quotes) and empty cells.
fn metric_fixtures() -> Value {
    json!({"campaignMetrics": [
        {"id": 5001, "Total Email Sends": 1000, "Unique Email Sends": 990,
         "Total Emails Delivered": "970", "Total Email Opens": "1,234",
         "Unique Email Opens": 300, "Total Emails Clicked": 80, "Unique Email Clicks": 50,
         "Total Emails Bounced": 20, "Total Unsubscribes": 5,
         "Campaign Label": "Spring \"Sale\", part 2"},
        {"id": 5002, "Total Pushes Sent": 10}
    ]})
}

/// Fires one Iterable system webhook for campaign 5001.
async fn fire(
    it: &SimClient,
    url: &str,
    secret: &str,
    event: &str,
    email: &str,
    msg: &str,
    at: &str,
) {
    let records = it
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": url, "authType": "Basic", "authToken": secret, "eventName": event,
                "email": email, "retryDelaysMs": [],
                "dataFields": {"campaignId": 5001, "messageId": msg, "createdAt": at}}),
        )
        .await
        .unwrap();
    assert_eq!(records[0]["status"], 200, "{records}");
}

#[tokio::test]
async fn iterable_metrics_from_the_csv_and_webhook_counts_with_sources() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let it = sim(&sandbox, sim_iterable::ENV_US);
    it.post("/_sim/fixtures", &metric_fixtures()).await.unwrap();
    let conn = connect_iterable(&app, "pub-a").await;
    let url = conn["webhookUrl"].as_str().unwrap().to_owned();
    let secret = conn["webhookSecret"].as_str().unwrap().to_owned();

    // Opens on two days; one delivered twice (same messageId and time): counted once.
    fire(
        &it,
        &url,
        &secret,
        "emailOpen",
        "a@example.com",
        "m1",
        "2026-03-01 10:00:00 +00:00",
    )
    .await;
    fire(
        &it,
        &url,
        &secret,
        "emailOpen",
        "a@example.com",
        "m1",
        "2026-03-01 10:00:00 +00:00",
    )
    .await;
    fire(
        &it,
        &url,
        &secret,
        "emailOpen",
        "a@example.com",
        "m1",
        "2026-03-01 12:00:00 +00:00",
    )
    .await;
    fire(
        &it,
        &url,
        &secret,
        "emailOpen",
        "b@example.com",
        "m2",
        "2026-03-02 09:00:00 +00:00",
    )
    .await;
    fire(
        &it,
        &url,
        &secret,
        "emailClick",
        "b@example.com",
        "m2",
        "2026-03-02 09:05:00 +00:00",
    )
    .await;
    // Outside the range.
    fire(
        &it,
        &url,
        &secret,
        "emailOpen",
        "c@example.com",
        "m3",
        "2026-03-05 09:00:00 +00:00",
    )
    .await;

    let a = metrics(&app, "pub-a", "5001", "?from=2026-03-01&to=2026-03-04").await;
    let d = a.expect_ok(200);
    assert_eq!(d["campaignId"], "5001");
    assert_eq!(d["platform"], "iterable");
    assert_eq!(d["interval"], "day");
    assert_eq!(d["from"], "2026-03-01T00:00:00Z");
    let totals = &d["totals"];
    // From the CSV: the quoted "1,234" is one cell; strings with quotes do not break the row.
    assert_eq!(totals["sent"], 1000);
    assert_eq!(totals["delivered"], 970);
    assert_eq!(totals["opens"], 1234);
    assert_eq!(totals["uniqueOpens"], 300);
    assert_eq!(totals["clicks"], 80);
    assert_eq!(totals["uniqueClicks"], 50);
    assert_eq!(totals["bounces"], 20);
    assert_eq!(totals["unsubscribes"], 5);
    // Empty cells (no complaints column for this row) fall back to our webhook count; a metric
    // neither reports is absent, not 0.
    assert_eq!(totals["complaints"], 0);
    assert_eq!(d["sources"]["complaints"], "webhooks");
    assert!(totals.get("conversions").is_none(), "{d}");
    assert!(d["sources"].get("conversions").is_none());
    assert_eq!(d["sources"]["sent"], "platform");
    // The series: our webhook counts, per day, de-duplicated.
    let series = d["series"].as_array().unwrap();
    assert_eq!(series.len(), 3, "{d}");
    assert_eq!(series[0]["at"], "2026-03-01T00:00:00+00:00");
    assert_eq!(series[0]["opens"], 2, "{d}");
    assert_eq!(series[0]["uniqueOpens"], 1);
    assert_eq!(series[1]["opens"], 1);
    assert_eq!(series[1]["clicks"], 1);
    assert_eq!(series[2]["opens"], 0);
    assert!(
        series[0].get("delivered").is_none(),
        "Iterable sends no delivered webhook"
    );
    assert_eq!(d["seriesSources"]["opens"], "webhooks");

    // Hourly.
    let a = metrics(
        &app,
        "pub-a",
        "5001",
        "?from=2026-03-01T09:30:00Z&to=2026-03-01T13:00:00Z&interval=hour",
    )
    .await;
    let d = a.expect_ok(200);
    let series = d["series"].as_array().unwrap();
    assert_eq!(series.len(), 4);
    assert_eq!(series[1]["at"], "2026-03-01T10:00:00+00:00");
    assert_eq!(series[1]["opens"], 1);
    assert_eq!(series[3]["opens"], 1);
    // Weekly (2026-03-01 is a Sunday: its week starts Monday 23 February).
    let d = metrics(
        &app,
        "pub-a",
        "5001",
        "?from=2026-03-01&to=2026-03-09&interval=week",
    )
    .await;
    let d = d.expect_ok(200);
    assert_eq!(d["series"][0]["at"], "2026-02-23T00:00:00+00:00");
    assert_eq!(d["series"][0]["opens"], 2);
    assert_eq!(d["series"][1]["opens"], 2);

    // A push campaign: its own columns.
    let d = metrics(&app, "pub-a", "5002", "?from=2026-03-01&to=2026-03-04").await;
    assert_eq!(d.expect_ok(200)["totals"]["sent"], 10);

    // Validation names the field.
    for (q, field) in [
        ("?from=2026-03-04&to=2026-03-01", "from"),
        ("?from=yesterday", "from"),
        ("?to=soon", "to"),
        ("?interval=month", "interval"),
        ("?from=2020-01-01&to=2026-01-01", "from"),
        ("?from=2026-01-01&to=2026-03-01&interval=hour", "from"),
    ] {
        let a = metrics(&app, "pub-a", "5001", q).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{q}: {}", a.body);
    }
    // Unknown campaign: NOT_FOUND; no integration: INTEGRATION_NOT_FOUND.
    metrics(&app, "pub-a", "999999", "?from=2026-03-01&to=2026-03-04")
        .await
        .expect_error(404, "NOT_FOUND");
    metrics(&app, "pub-b", "5001", "")
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");
    // Tenancy: another publisher's key is refused before anything runs.
    let (_, key_b) = app.create_key("pub-b").await;
    let a = app
        .get(
            "/api/integrations/pub-a/iterable/campaigns/5001/metrics",
            &key_b,
        )
        .await;
    a.expect_error(403, "PERMISSION_DENIED");
    let a = app
        .get("/api/integrations/pub-a/iterable/limits", &key_b)
        .await;
    a.expect_error(403, "PERMISSION_DENIED");
    let (_, key_a) = app.create_key("pub-a").await;
    app.get("/api/integrations/pub-a/iterable/limits", &key_a)
        .await
        .expect_ok(200);
    app.stop().await;
}

#[tokio::test]
async fn limits_show_a_burst_that_hits_the_platforms_limit() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let it = sim(&sandbox, sim_iterable::ENV_US);
    it.post("/_sim/fixtures", &metric_fixtures()).await.unwrap();
    connect_iterable(&app, "pub-a").await;

    let before = app
        .get("/api/integrations/pub-a/iterable/limits", ADMIN_TOKEN)
        .await;
    let d = before.expect_ok(200);
    assert_eq!(d["platform"], "iterable");
    let class = |d: &Value, name: &str| {
        d["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["class"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no class {name} in {d}"))
    };
    let m = class(d, "campaigns_metrics");
    assert_eq!(m["budget"]["rate"], 10);
    assert_eq!(m["budget"]["perSeconds"], 60.0);
    assert_eq!(m["used"], 0);
    assert_eq!(m["rateLimitedLastHour"], 0);

    // Another key of the same Iterable project spends the project's 10 a minute.
    let http = reqwest::Client::new();
    for _ in 0..10 {
        let r = http
            .get(format!(
                "{}/api/campaigns/metrics?campaignId=5001",
                it.origin()
            ))
            .header("Api-Key", sim_iterable::US_READ_ONLY_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Our calls now meet 429s (retried, then RATE_LIMIT_EXCEEDED).
    let a = metrics(&app, "pub-a", "5001", "?from=2026-03-01&to=2026-03-04").await;
    a.expect_error(429, "RATE_LIMIT_EXCEEDED");

    let d = app
        .get("/api/integrations/pub-a/iterable/limits", ADMIN_TOKEN)
        .await;
    let m = class(d.expect_ok(200), "campaigns_metrics");
    let used = m["used"].as_u64().unwrap();
    let limited = m["rateLimitedLastHour"].as_u64().unwrap();
    assert!(used >= 2, "{m}");
    assert_eq!(limited, used, "every attempt met a 429: {m}");
    assert!(m["nextFreeAt"].as_str().is_some());
    // Another class is untouched.
    assert_eq!(class(d.expect_ok(200), "export")["used"], 0);

    // The same figures on /metrics, by platform and class only.
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("sharpsend_upstream_rate_limited_total{")
                && l.contains("class=\"campaigns_metrics\"")
        })
        .unwrap_or_else(|| panic!("no 429 counter in {text}"));
    assert!(line.contains("platform=\"iterable\""), "{line}");
    assert!(line.ends_with(&format!(" {limited}")), "{line}");
    assert!(text.contains("sharpsend_rate_budget_used{"));
    assert!(text.contains("sharpsend_rate_budget_requests_per_second{"));
    assert!(!text.contains("pub-a"));
    assert!(!text.contains(sim_iterable::US_SERVER_KEY));
    app.stop().await;
}

#[tokio::test]
async fn customerio_metrics_map_its_period_series_within_its_retention() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let us = &sim_customerio::US;
    app.call(
        Method::POST,
        "/api/integrations/customerio/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": "pub-c", "siteId": us.site_id, "apiKey": us.app_api_key,
            "trackingKey": us.tracking_key, "region": "us", "config": {}}),
        ),
    )
    .await
    .expect_ok(200);
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == "SHARPSEND_CUSTOMERIO_APP_US_URL")
        .map(|(_, v)| v)
        .unwrap();
    let platform: Value = reqwest::Client::new()
        .get(format!(
            "{origin}/v1/campaigns/1/metrics?period=days&steps=3"
        ))
        .bearer_auth(us.app_api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = &platform["metric"]["series"];
    assert_eq!(raw["sent"].as_array().unwrap().len(), 3, "{platform}");

    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Duration::days(2);
    let to = today + chrono::Duration::days(1);
    let path =
        |id: &str, q: &str| format!("/api/integrations/pub-c/customerio/campaigns/{id}/metrics{q}");
    let a = app
        .get(&path("1", &format!("?from={from}&to={to}")), ADMIN_TOKEN)
        .await;
    let d = a.expect_ok(200);
    let series = d["series"].as_array().unwrap();
    assert_eq!(series.len(), 3, "{d}");
    let mut sent = 0;
    for (i, point) in series.iter().enumerate() {
        assert_eq!(point["sent"], raw["sent"][i], "{d}");
        assert_eq!(point["opens"], raw["opened"][i]);
        assert_eq!(point["complaints"], raw["spammed"][i]);
        assert_eq!(point["conversions"], raw["converted"][i]);
        sent += point["sent"].as_u64().unwrap();
    }
    assert_eq!(d["totals"]["sent"], sent);
    assert_eq!(d["sources"]["sent"], "platform");
    assert_eq!(d["seriesSources"]["opens"], "platform");
    // Customer.io reports no unique counts: those would be our webhook counts, but this
    // integration has received no webhook event, so they are absent rather than a false 0.
    assert_eq!(d["webhooksReceived"], false, "{d}");
    assert!(d["sources"].get("uniqueOpens").is_none(), "{d}");
    assert!(d["totals"].get("uniqueOpens").is_none(), "{d}");

    // A window older than its 45 days of daily metrics: only our own counts.
    let old = today - chrono::Duration::days(100);
    let a = app
        .get(&path("1", &format!("?from={old}&to={from}")), ADMIN_TOKEN)
        .await;
    let d = a.expect_ok(200);
    assert!(d["sources"].get("sent").is_none(), "{d}");
    assert!(d["totals"].get("sent").is_none(), "{d}");

    // Broadcasts and newsletters; unknown objects are NOT_FOUND; a bad object is named.
    app.get(&path("1001", "?object=broadcast"), ADMIN_TOKEN)
        .await
        .expect_ok(200);
    app.get(&path("99999", ""), ADMIN_TOKEN)
        .await
        .expect_error(404, "NOT_FOUND");
    let a = app.get(&path("1", "?object=journey"), ADMIN_TOKEN).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "object");
    // Limits: the App API class shows the calls.
    let l = app
        .get("/api/integrations/pub-c/customerio/limits", ADMIN_TOKEN)
        .await;
    let l = l.expect_ok(200);
    let app_class = l["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "app")
        .cloned()
        .unwrap_or_else(|| panic!("{l}"));
    assert!(app_class["used"].as_u64().unwrap() >= 4, "{l}");
    app.stop().await;
}

#[tokio::test]
async fn keap_reports_its_campaign_counts_only_and_knows_its_campaigns() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    app.call(
        Method::POST,
        "/api/integrations/keap/connect",
        Some(ADMIN_TOKEN),
        Some(json!({"publisherId": "pub-k", "apiKey": sim_keap::PERSONAL_ACCESS_TOKEN})),
    )
    .await
    .expect_ok(200);
    let campaigns = app
        .get("/api/integrations/pub-k/keap/campaigns", ADMIN_TOKEN)
        .await;
    let id = campaigns.expect_ok(200)["campaigns"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = app
        .get(
            &format!(
                "/api/integrations/pub-k/keap/campaigns/{id}/metrics?from=2026-03-01&to=2026-03-03"
            ),
            ADMIN_TOKEN,
        )
        .await;
    let d = a.expect_ok(200);
    // Keap's campaign object: its contact counts, and none of the shared keys.
    let keap = reqwest::Client::new()
        .get(format!(
            "{}/crm/rest/v2/campaigns/{id}",
            sim(&sandbox, sim_keap::API_URL_ENV).origin()
        ))
        .header("X-Keap-API-Key", sim_keap::PERSONAL_ACCESS_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        d["totals"],
        json!({"activeContacts": keap["active_contact_count"],
            "completedContacts": keap["completed_contact_count"]}),
        "{d}"
    );
    assert!(keap["completed_contact_count"].as_u64().is_some());
    assert_eq!(
        d["sources"],
        json!({"activeContacts": "platform", "completedContacts": "platform"})
    );
    assert_eq!(d["seriesSources"], json!({}));
    assert_eq!(d["series"].as_array().unwrap().len(), 2);
    assert_eq!(d["series"][0], json!({"at": "2026-03-01T00:00:00+00:00"}));
    app.get(
        "/api/integrations/pub-k/keap/campaigns/999999/metrics",
        ADMIN_TOKEN,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    let l = app
        .get("/api/integrations/pub-k/keap/limits", ADMIN_TOKEN)
        .await;
    let l = l.expect_ok(200);
    let key = l["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "key")
        .cloned()
        .unwrap_or_else(|| panic!("{l}"));
    assert_eq!(key["budget"]["rate"], 5);
    // Its window is 1.3 s: the calls above may have left it already.
    assert!(key["used"].as_u64().unwrap() <= 5, "{l}");
    assert_eq!(key["windowSeconds"], 1.3);
    app.stop().await;
}
