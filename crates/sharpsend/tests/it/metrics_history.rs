//! The opt-in `metrics` sync kind against the simulators: daily records equal to the
//! platform's per-day figures, completed days fetched once, never run without being asked,
//! history kept through full runs, and stored days answering for windows the platform cannot.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{NaiveDate, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::Sandbox;
use sim_core::SimClient;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

fn sim(sandbox: &Sandbox, env: &str) -> SimClient {
    SimClient::new(origin(sandbox, env))
}

fn origin(sandbox: &Sandbox, env: &str) -> String {
    sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == env)
        .map(|(_, v)| v)
        .expect("simulator origin")
}

async fn sync(app: &TestApp, publisher: &str, platform: &str, body: Value) -> Value {
    let job = app
        .call(
            Method::POST,
            &format!("/api/integrations/{publisher}/{platform}/sync"),
            Some(ADMIN_TOKEN),
            Some(body),
        )
        .await
        .expect_ok(202)
        .clone();
    let id = job["jobId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = app
            .get(
                &format!("/api/integrations/{publisher}/{platform}/sync/{id}"),
                ADMIN_TOKEN,
            )
            .await
            .expect_ok(200)
            .clone();
        if j["status"] == "succeeded" || j["status"] == "failed" {
            assert_eq!(j["status"], "succeeded", "{j}");
            return j;
        }
        assert!(Instant::now() < deadline, "sync did not end: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live `metrics` records, by platform id (`data`).
async fn stored_days(app: &TestApp, publisher: &str, platform: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            format!("/api/integrations/{publisher}/{platform}/records/metrics?limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, ADMIN_TOKEN).await.expect_ok(200).clone();
        for r in page["records"].as_array().unwrap() {
            out.insert(
                r["platformId"].as_str().unwrap().to_owned(),
                r["data"].clone(),
            );
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn day(offset: i64) -> NaiveDate {
    Utc::now().date_naive() + chrono::Duration::days(offset)
}

fn ms(d: NaiveDate, hour: u32) -> i64 {
    d.and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

#[tokio::test]
async fn iterable_metrics_history_stores_completed_days_once_and_keeps_them() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let it = sim(&sandbox, sim_iterable::ENV_US);
    let campaign = |id: u64, state: &str, created: i64| {
        json!({"id": id, "name": format!("c{id}"), "campaignState": state, "type": "Triggered",
            "messageMedium": "Email", "createdAt": created, "updatedAt": created,
            "templateId": 1, "createdByUserId": "e@example.com", "listIds": [],
            "suppressionListIds": [], "labels": []})
    };
    // 7001 runs since three days ago; 7003 since two days ago but Iterable reports no row for
    // it; 7002 finished long ago (not followed).
    let figures = |d: i64| {
        json!({"id": 7001, "date": day(d).to_string(), "Total Email Sends": 100 + d * 10,
            "Unique Email Opens": 40 + d, "Total Emails Clicked": "1,00" })
    };
    it.post(
        "/_sim/fixtures",
        &json!({
            "campaigns": [
                campaign(7001, "Running", ms(day(-3), 10)),
                campaign(7002, "Finished", ms(day(-200), 10)),
                campaign(7003, "Running", ms(day(-2), 10)),
            ],
            "campaignMetrics": [figures(-3), figures(-2), figures(-1), figures(0)],
        }),
    )
    .await
    .unwrap();
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": "pub-m", "apiKey": sim_iterable::US_SERVER_KEY,
            "region": "us", "config": {"metricsHistory": true}}),
        ),
    )
    .await
    .expect_ok(200);
    let metrics_calls = || async {
        it.requests(Some("/api/campaigns/metrics"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.query.unwrap_or_default())
            .collect::<Vec<_>>()
    };

    // The platforms list offers it as opt-in; a sync without kinds does not run it.
    let p = app.get("/api/platforms", ADMIN_TOKEN).await;
    let iterable = p.expect_ok(200)["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["platform"] == "iterable")
        .cloned()
        .unwrap();
    assert_eq!(iterable["optionalSyncKinds"], json!(["metrics"]));
    assert!(!iterable["syncKinds"].to_string().contains("metrics"));
    sync(&app, "pub-m", "iterable", json!({"kinds": ["campaigns"]})).await;
    assert!(metrics_calls().await.is_empty());

    // Asked for: one request per completed day (7001 and 7003 together), newest first.
    let run = sync(&app, "pub-m", "iterable", json!({"kinds": ["metrics"]})).await;
    assert_eq!(run["counts"]["metrics"], 5, "{run}");
    let calls = metrics_calls().await;
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls[0].contains("campaignId=7001&campaignId=7003"),
        "{calls:?}"
    );
    let days = stored_days(&app, "pub-m", "iterable").await;
    assert_eq!(days.len(), 5, "{days:?}");
    for d in [-3, -2, -1] {
        let rec = &days[&format!("7001:{}", day(d))];
        // The simulator's figures of that day, mapped; today is never stored.
        assert_eq!(rec["sent"], 100 + d * 10, "{rec}");
        assert_eq!(rec["uniqueOpens"], 40 + d);
        assert_eq!(rec["clicks"], 100);
        assert_eq!(rec["date"], day(d).to_string());
        assert_eq!(rec["campaignId"], "7001");
        assert!(rec.get("delivered").is_none(), "absent, not zero: {rec}");
    }
    assert!(!days.contains_key(&format!("7001:{}", day(0))));
    let silent = &days[&format!("7003:{}", day(-1))];
    assert!(silent.get("sent").is_none(), "{silent}");
    assert!(!days.keys().any(|k| k.starts_with("7002:")));

    // Again: nothing stored is fetched again.
    let again = sync(&app, "pub-m", "iterable", json!({"kinds": ["metrics"]})).await;
    assert_eq!(again["counts"]["metrics"], 0, "{again}");
    assert_eq!(metrics_calls().await.len(), 3);

    // 7001 disappears from Iterable: a full run marks the campaign deleted but keeps its
    // history.
    it.post(
        "/_sim/fixtures",
        &json!({"campaigns": [campaign(7003, "Running", ms(day(-2), 10))]}),
    )
    .await
    .unwrap();
    let full = sync(
        &app,
        "pub-m",
        "iterable",
        json!({"kinds": ["campaigns", "metrics"], "full": true}),
    )
    .await;
    assert_eq!(full["counts"]["metrics"], 0, "{full}");
    let kept = stored_days(&app, "pub-m", "iterable").await;
    assert_eq!(kept.len(), 5, "history outlives the campaign: {kept:?}");

    // The answer: totals live from the CSV over the window; the series from stored days
    // (Iterable does not break down by day), today's point without them.
    let a = app
        .get(
            &format!(
                "/api/integrations/pub-m/iterable/campaigns/7001/metrics?from={}&to={}",
                day(-3),
                day(1)
            ),
            ADMIN_TOKEN,
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["sources"]["sent"], "platform", "{d}");
    assert_eq!(d["totals"]["sent"], 70 + 80 + 90 + 100);
    assert_eq!(d["seriesSources"]["sent"], "stored", "{d}");
    assert_eq!(d["seriesSources"]["uniqueOpens"], "stored");
    // A key no stored day has would be our webhook count; no webhook event was ever received
    // here, so it is absent rather than a false 0.
    assert_eq!(d["webhooksReceived"], false, "{d}");
    assert!(d["seriesSources"].get("bounces").is_none(), "{d}");
    let series = d["series"].as_array().unwrap();
    assert_eq!(series.len(), 4);
    assert_eq!(series[0]["sent"], 70);
    assert_eq!(series[2]["sent"], 90);
    assert!(series[3].get("sent").is_none(), "{d}");
    // Weekly buckets sum the stored days.
    let w = app
        .get(
            &format!(
                "/api/integrations/pub-m/iterable/campaigns/7001/metrics?from={}&to={}&interval=week",
                day(-3),
                day(0)
            ),
            ADMIN_TOKEN,
        )
        .await;
    let w = w.expect_ok(200);
    let weekly: u64 = w["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["sent"].as_u64())
        .sum();
    assert_eq!(weekly, 70 + 80 + 90, "{w}");
    let h = app
        .get(
            &format!(
                "/api/integrations/pub-m/iterable/campaigns/7001/metrics?from={}&to={}&interval=hour",
                day(-1),
                day(0)
            ),
            ADMIN_TOKEN,
        )
        .await;
    // Hourly: stored days cannot be split, and without any webhook event received there is no
    // hourly source at all: the series leaves `sent` out.
    assert!(
        h.expect_ok(200)["seriesSources"].get("sent").is_none(),
        "{}",
        h.body
    );

    // Unknown kinds stay a validation error naming `kinds`; Keap offers no metrics kind.
    for (platform, body) in [
        ("iterable", json!({"kinds": ["metrics", "nope"]})),
        ("keap", json!({"kinds": ["metrics"]})),
    ] {
        let a = app
            .call(
                Method::POST,
                &format!("/api/integrations/pub-m/{platform}/sync"),
                Some(ADMIN_TOKEN),
                Some(body),
            )
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), "kinds", "{}", a.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn customerio_metrics_history_keeps_its_daily_series_past_its_retention() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let us = &sim_customerio::US;
    let connect = |config: Value| {
        json!({"publisherId": "pub-c", "siteId": us.site_id, "apiKey": us.app_api_key,
            "trackingKey": us.tracking_key, "region": "us", "config": config})
    };
    // The knob is checked: a bool or nothing.
    let bad = app
        .call(
            Method::POST,
            "/api/integrations/customerio/connect",
            Some(ADMIN_TOKEN),
            Some(connect(json!({"metricsHistory": "yes"}))),
        )
        .await;
    bad.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.field(), "config.metricsHistory", "{}", bad.body);
    let i = app
        .call(
            Method::POST,
            "/api/integrations/customerio/connect",
            Some(ADMIN_TOKEN),
            Some(connect(json!({"metricsHistory": true}))),
        )
        .await;
    assert_eq!(i.expect_ok(200)["config"]["metricsHistory"], true);
    let cio = sim(&sandbox, "SHARPSEND_CUSTOMERIO_APP_US_URL");
    let metric_calls = || async {
        cio.requests(Some("/v1/"))
            .await
            .unwrap()
            .into_iter()
            // Answered ones (a 429 the connector retried is not a second read).
            .filter(|r| r.path.ends_with("/metrics") && r.status == Some(200))
            .count()
    };

    // A sync without kinds runs the contract's kinds, not the opt-in one.
    let all = sync(&app, "pub-c", "customerio", json!({})).await;
    assert!(all["counts"].get("metrics").is_none(), "{all}");
    assert!(!all["kinds"].to_string().contains("metrics"));
    assert_eq!(metric_calls().await, 0);

    let run = sync(&app, "pub-c", "customerio", json!({"kinds": ["metrics"]})).await;
    let stored = stored_days(&app, "pub-c", "customerio").await;
    assert_eq!(run["counts"]["metrics"], stored.len(), "{run}");
    let first_calls = metric_calls().await;
    assert!(first_calls > 0);
    // Group by object key; each followed object's days equal the simulator's daily series.
    let mut by_key: BTreeMap<String, Vec<(NaiveDate, Value)>> = BTreeMap::new();
    for (id, data) in &stored {
        let (key, date) = id.rsplit_once(':').unwrap();
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        by_key
            .entry(key.to_owned())
            .or_default()
            .push((date, data.clone()));
    }
    assert_eq!(by_key.len(), first_calls, "one request per followed object");
    let app_origin = origin(&sandbox, "SHARPSEND_CUSTOMERIO_APP_US_URL");
    let campaign_key = by_key
        .keys()
        .find(|k| !k.contains(':'))
        .cloned()
        .expect("a running campaign is followed");
    // Read straight from the simulator, whose 10/s App API bucket the sync may just have
    // emptied: wait out its 429s.
    let platform: Value = loop {
        let r = reqwest::Client::new()
            .get(format!(
                "{app_origin}/v1/campaigns/{campaign_key}/metrics?period=days&steps=45"
            ))
            .bearer_auth(us.app_api_key)
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        break r.json().await.unwrap();
    };
    let series = &platform["metric"]["series"];
    let today = day(0);
    let days = &by_key[&campaign_key];
    assert!(!days.is_empty());
    for (date, data) in days {
        assert!(*date < today, "today is never stored");
        let back = (today - *date).num_days() as usize;
        let i = 44 - back;
        assert_eq!(data["sent"], series["sent"][i], "{date}: {data}");
        assert_eq!(data["opens"], series["opened"][i]);
        assert_eq!(data["complaints"], series["spammed"][i]);
        assert!(
            data.get("uniqueOpens").is_none(),
            "Customer.io has no unique counts"
        );
    }
    if by_key.keys().any(|k| k.starts_with("broadcast:")) {
        assert!(stored.values().any(|d| d["object"] == "broadcast"));
    }

    // A second run asks for nothing it has.
    let again = sync(&app, "pub-c", "customerio", json!({"kinds": ["metrics"]})).await;
    assert_eq!(again["counts"]["metrics"], 0, "{again}");
    assert_eq!(
        metric_calls().await,
        first_calls + 1,
        "only our own comparison call"
    );

    // A window reaching past Customer.io's 45 days: the stored days answer, source `stored`.
    let from = today - chrono::Duration::days(60);
    let a = app
        .get(
            &format!(
                "/api/integrations/pub-c/customerio/campaigns/{campaign_key}/metrics?from={from}&to={today}"
            ),
            ADMIN_TOKEN,
        )
        .await;
    let d = a.expect_ok(200);
    let expected: u64 = days.iter().map(|(_, v)| v["sent"].as_u64().unwrap()).sum();
    assert_eq!(d["sources"]["sent"], "stored", "{d}");
    assert_eq!(d["totals"]["sent"], expected);
    assert_eq!(d["seriesSources"]["opens"], "stored");
    let points = d["series"].as_array().unwrap();
    assert_eq!(points.len(), 60);
    let oldest_stored = days.iter().map(|(d, _)| *d).min().unwrap();
    let old_point = &points[0];
    if from < oldest_stored {
        assert!(
            old_point.get("sent").is_none(),
            "no stored day there: {old_point}"
        );
    }
    // Unique counts would be ours; with no webhook event received they are absent, not 0.
    assert!(d["sources"].get("uniqueOpens").is_none(), "{d}");
    app.stop().await;
}
