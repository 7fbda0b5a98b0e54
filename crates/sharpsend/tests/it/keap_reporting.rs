//! Keap's reporting as far as its API offers it (issue 9): lead scores on synced and listed
//! contacts, account email metrics from its sent-email records (totals, series, windows,
//! paging, the page cap), validation and tenancy; all against the Keap simulator.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::Sandbox;
use sim_core::SimClient;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

const PAT: &str = sim_keap::PERSONAL_ACCESS_TOKEN;

fn keap_sim(sandbox: &Sandbox) -> SimClient {
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == sim_keap::API_URL_ENV)
        .map(|(_, v)| v)
        .unwrap();
    SimClient::new(origin)
}

async fn connect_keap(app: &TestApp, publisher: &str) {
    app.call(
        Method::POST,
        "/api/integrations/keap/connect",
        Some(ADMIN_TOKEN),
        Some(json!({"publisherId": publisher, "apiKey": PAT})),
    )
    .await
    .expect_ok(200);
}

/// A GET on the simulator's Keap API with the sandbox PAT, waiting out its limits.
async fn keap_get(sim: &SimClient, path: &str) -> Value {
    let http = reqwest::Client::new();
    loop {
        let resp = http
            .get(format!("{}{path}", sim.origin()))
            .header("X-Keap-API-Key", PAT)
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        return resp.json().await.unwrap();
    }
}

/// Keap's `score_value` string as the number we report (absent when Keap has none).
fn score(v: &Value) -> Option<Value> {
    v.as_str()
        .map(|s| serde_json::from_str::<Value>(s.trim()).unwrap())
}

#[tokio::test]
async fn lead_scores_are_synced_and_listed_and_absent_when_keap_has_none() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    connect_keap(&app, "pub-l").await;

    // What Keap has: every contact's score_value (v2, as the sync reads it).
    let page = keap_get(
        &sim,
        "/crm/rest/v2/contacts?page_size=1000&fields=score_value",
    )
    .await;
    let want: BTreeMap<String, Option<Value>> = page["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                score(&c["score_value"]),
            )
        })
        .collect();
    assert!(want.values().any(Option::is_some) && want.values().any(Option::is_none));
    // Keap's per-contact lead score endpoint agrees with the field.
    let (id, s) = want.iter().find(|(_, s)| s.is_some()).unwrap();
    let ls = keap_get(&sim, &format!("/crm/rest/v2/contacts/{id}/leadScore")).await;
    assert_eq!(score(&ls["score"]).as_ref(), s.as_ref(), "{ls}");
    assert!(ls["last_updated"].is_string());

    // The sync stores it on each contact.
    let job = app
        .call(
            Method::POST,
            "/api/integrations/pub-l/keap/sync",
            Some(ADMIN_TOKEN),
            Some(json!({"kinds": ["contacts"]})),
        )
        .await
        .expect_ok(202)["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = app
            .get(
                &format!("/api/integrations/pub-l/keap/sync/{job}"),
                ADMIN_TOKEN,
            )
            .await;
        let status = j.expect_ok(200)["status"].clone();
        if status == "succeeded" {
            break;
        }
        assert!(
            status != "failed" && Instant::now() < deadline,
            "{}",
            j.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = app
        .get(
            "/api/integrations/pub-l/keap/records/contacts?limit=1000",
            ADMIN_TOKEN,
        )
        .await;
    let got: BTreeMap<String, Option<Value>> = records.expect_ok(200)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["platformId"].as_str().unwrap().to_owned(),
                r["data"].get("leadScore").cloned(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // The contacts read route (REST v1 `ScoreValue`) reports the same.
    let listed = app
        .get(
            "/api/integrations/keap/pub-l/contacts?limit=1000",
            ADMIN_TOKEN,
        )
        .await;
    let listed: BTreeMap<String, Option<Value>> = listed.expect_ok(200)["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c.get("leadScore").cloned(),
            )
        })
        .collect();
    assert_eq!(listed, want);
    app.stop().await;
}

fn keap_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    Some(
        DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z")
            .unwrap()
            .with_timezone(&Utc),
    )
}

/// What the metrics should say for `[from, to)`, computed from the simulator's records:
/// totals and one map per bucket start (`bucket` floors a time).
fn expected(
    emails: &[Value],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: impl Fn(DateTime<Utc>) -> DateTime<Utc>,
) -> (Value, BTreeMap<DateTime<Utc>, Value>) {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut series: BTreeMap<DateTime<Utc>, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut people: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut bucket_people: BTreeSet<(DateTime<Utc>, &str, String)> = BTreeSet::new();
    for key in ["sent", "opens", "uniqueOpens", "clicks", "uniqueClicks"] {
        totals.insert(key, 0);
    }
    for e in emails {
        let who = e["sent_to_address"].as_str().unwrap().to_ascii_lowercase();
        for (field, key, unique) in [
            ("sent_date", "sent", None),
            ("opened_date", "opens", Some("uniqueOpens")),
            ("clicked_date", "clicks", Some("uniqueClicks")),
        ] {
            let Some(at) = keap_time(&e[field]).filter(|t| *t >= from && *t < to) else {
                continue;
            };
            let b = bucket(at);
            *totals.get_mut(key).unwrap() += 1;
            *series.entry(b).or_default().entry(key).or_default() += 1;
            if let Some(u) = unique {
                if people.insert((u, who.clone())) {
                    *totals.get_mut(u).unwrap() += 1;
                }
                if bucket_people.insert((b, u, who.clone())) {
                    *series.entry(b).or_default().entry(u).or_default() += 1;
                }
            }
        }
    }
    (
        json!(totals),
        series.into_iter().map(|(b, m)| (b, json!(m))).collect(),
    )
}

/// Checks an answer's series against the expected buckets (absent ones are all zero).
fn assert_series(d: &Value, want: &BTreeMap<DateTime<Utc>, Value>) {
    let mut seen = 0;
    for point in d["series"].as_array().unwrap() {
        let at: DateTime<Utc> = point["at"].as_str().unwrap().parse().unwrap();
        for key in ["sent", "opens", "uniqueOpens", "clicks", "uniqueClicks"] {
            let w = want
                .get(&at)
                .and_then(|m| m.get(key))
                .and_then(Value::as_u64);
            assert_eq!(point[key].as_u64(), Some(w.unwrap_or(0)), "{key} at {at}");
        }
        seen += usize::from(want.contains_key(&at));
    }
    assert_eq!(
        seen,
        want.len(),
        "every bucket with records is in the series"
    );
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

#[tokio::test]
async fn keap_email_metrics_equal_its_sent_email_records() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    connect_keap(&app, "pub-k").await;
    let emails = sim.get("/_sim/emails").await.unwrap()["emails"]
        .as_array()
        .unwrap()
        .clone();
    assert!(emails.len() > 1000, "more than one page of Keap's");
    let metrics = |q: String| {
        let app = &app;
        async move {
            app.get(
                &format!("/api/integrations/pub-k/keap/emails/metrics{q}"),
                ADMIN_TOKEN,
            )
            .await
        }
    };

    // Every seeded record, by day: read over two pages.
    let today = Utc::now().date_naive();
    let (from, to) = (today - Days::new(15), today + Days::new(1));
    let a = metrics(format!("?from={from}&to={to}&interval=day")).await;
    let d = a.expect_ok(200);
    let (totals, series) = expected(&emails, midnight(from), midnight(to), |t| {
        midnight(t.date_naive())
    });
    assert_eq!(d["totals"], totals, "{}", a.body);
    assert!(d["totals"]["sent"].as_u64().unwrap() > 1000);
    assert!(d["totals"]["uniqueOpens"].as_u64() < d["totals"]["opens"].as_u64());
    assert!(d["totals"]["clicks"].as_u64().unwrap() > 0);
    assert_series(d, &series);
    assert_eq!(d["series"].as_array().unwrap().len(), 16);
    assert_eq!(d["platform"], "keap");
    assert_eq!(d["interval"], "day");
    assert_eq!(d["emailsRead"], emails.len());
    assert_eq!(d["truncated"], false);
    for key in ["sent", "opens", "uniqueOpens", "clicks", "uniqueClicks"] {
        assert_eq!(d["sources"][key], "platform");
        assert_eq!(d["seriesSources"][key], "platform");
    }
    for absent in [
        "delivered",
        "bounces",
        "unsubscribes",
        "complaints",
        "conversions",
    ] {
        assert!(d["totals"].get(absent).is_none(), "{absent}");
    }

    // A narrower window by the hour: only its records count; Keap is asked for the sends of
    // the 7 days before it too (opens of earlier emails), and no later ones.
    let (from, to) = (
        midnight(today - Days::new(3)),
        midnight(today - Days::new(2)),
    );
    let a = metrics(format!(
        "?from={}&to={}&interval=hour",
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true)
    ))
    .await;
    let d = a.expect_ok(200);
    let (totals, series) = expected(&emails, from, to, |t| {
        DateTime::from_timestamp(t.timestamp() / 3600 * 3600, 0).unwrap()
    });
    assert_eq!(d["totals"], totals, "{}", a.body);
    assert_eq!(d["series"].as_array().unwrap().len(), 24);
    assert_series(d, &series);
    let asked = emails
        .iter()
        .filter_map(|e| keap_time(&e["sent_date"]))
        .filter(|t| *t >= from - chrono::Duration::days(7) && *t <= to)
        .count();
    assert_eq!(d["emailsRead"], asked);
    assert!(asked < emails.len());

    // More records than the page cap (on a day long before the seeded ones): the answer says
    // it read only part.
    let day = today - Days::new(100);
    let added = sim
        .post(
            "/_sim/emails",
            &json!({"count": 20_500, "from": midnight(day), "to": midnight(day + Days::new(1))}),
        )
        .await
        .unwrap();
    assert_eq!(added["added"], 20_500);
    let a = metrics(format!("?from={day}&to={}", day + Days::new(2))).await;
    let d = a.expect_ok(200);
    assert_eq!(d["truncated"], true, "{}", a.body);
    assert_eq!(d["emailsRead"], 20_000);
    assert_eq!(d["totals"]["sent"], 20_000);

    // Validation names the field and asks Keap nothing.
    for (q, field) in [
        ("?from=2026-03-04&to=2026-03-01", "from"),
        ("?from=yesterday", "from"),
        ("?to=soon", "to"),
        ("?interval=month", "interval"),
        ("?from=2020-01-01&to=2026-01-01", "from"),
    ] {
        let a = metrics(q.into()).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{q}: {}", a.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn keap_email_metrics_keep_to_their_publisher() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    connect_keap(&app, "pub-k").await;
    let path = "/api/integrations/pub-k/keap/emails/metrics";
    let (_, key_b) = app.create_key("pub-b").await;
    app.get(path, &key_b)
        .await
        .expect_error(403, "PERMISSION_DENIED");
    app.get("/api/integrations/pub-b/keap/emails/metrics", &key_b)
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");
    app.get(path, "ssk_not-a-key")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let (_, key_k) = app.create_key("pub-k").await;
    let d = app.get(path, &key_k).await;
    assert_eq!(d.expect_ok(200)["platform"], "keap");
    app.stop().await;
}

#[tokio::test]
async fn an_email_sent_through_sharpsend_is_counted_once_keap_records_it() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    connect_keap(&app, "pub-m").await;
    let now = Utc::now();
    let (from, to) = (
        (now - chrono::Duration::hours(2)).to_rfc3339_opts(SecondsFormat::Secs, true),
        (now + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let path =
        format!("/api/integrations/pub-m/keap/emails/metrics?from={from}&to={to}&interval=hour");
    let before = app.get(&path, ADMIN_TOKEN).await.expect_ok(200)["totals"]["sent"]
        .as_u64()
        .unwrap();
    let contact = keap_get(&sim, "/crm/rest/v1/contacts?limit=1").await;
    let email = contact["contacts"][0]["email_addresses"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        Method::POST,
        "/api/integrations/pub-m/keap/messages",
        Some(ADMIN_TOKEN),
        Some(json!({"channel": "email", "to": {"email": email},
            "data": {"subject": "Hello", "html": "<p>Hi</p>", "text": "Hi"}})),
    )
    .await
    .expect_ok(200);
    let d = app.get(&path, ADMIN_TOKEN).await;
    let d = d.expect_ok(200);
    assert_eq!(d["totals"]["sent"].as_u64().unwrap(), before + 1, "{d}");
    let emails = sim.get("/_sim/emails").await.unwrap()["emails"]
        .as_array()
        .unwrap()
        .clone();
    let last = emails.iter().find(|e| e["subject"] == "Hello").unwrap();
    assert_eq!(last["sent_to_address"], email.as_str());
    app.stop().await;
}
