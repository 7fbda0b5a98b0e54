//! Iterable's `users` export through the sync engine, streamed: pages are committed while the
//! download is still open, a stream cut off mid-way resumes with nothing lost or doubled (and a
//! slice that keeps breaking is split, within the 4 exports a minute), and a line over the limit
//! fails the job with a message naming the export.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::{Sandbox, SandboxOptions};
use sim_core::SimClient;
use store::testing::TestDb;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const PUBLISHER: &str = "pub-export";

struct Env {
    _db: TestDb,
    app: TestApp,
    _sandbox: Sandbox,
    sim: SimClient,
}

async fn env(users: u64) -> Env {
    let db = fresh_db().await;
    let opts = SandboxOptions {
        iterable_users: users,
        ..SandboxOptions::default()
    };
    let (app, sandbox) = TestApp::spawn_sandboxed_with(&db, &opts, &random_master_key(), &[]).await;
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == sim_iterable::ENV_US)
        .unwrap()
        .1;
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": PUBLISHER, "apiKey": sim_iterable::US_SERVER_KEY,
                    "region": "us", "config": {"fromEmail": "news@example.com"}}),
        ),
    )
    .await
    .expect_ok(200);
    Env {
        _db: db,
        app,
        _sandbox: sandbox,
        sim: SimClient::new(origin),
    }
}

impl Env {
    async fn sync_users(&self) -> String {
        let j = self
            .app
            .call(
                Method::POST,
                &format!("/api/integrations/{PUBLISHER}/iterable/sync"),
                Some(ADMIN_TOKEN),
                Some(json!({"kinds": ["users"]})),
            )
            .await
            .expect_ok(202)
            .clone();
        j["jobId"].as_str().unwrap().to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        self.app
            .get(
                &format!("/api/integrations/{PUBLISHER}/iterable/sync/{id}"),
                ADMIN_TOKEN,
            )
            .await
            .expect_ok(200)
            .clone()
    }

    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let j = self.job(id).await;
            if done(&j) {
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {j}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_ended(&self, id: &str) -> Value {
        self.wait_for(id, "the job to end", |j| {
            j["status"] == "succeeded" || j["status"] == "failed"
        })
        .await
    }

    /// The stored users' ids, each listed once.
    async fn stored_users(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path =
                format!("/api/integrations/{PUBLISHER}/iterable/records/users?limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self
                .app
                .get(&path, ADMIN_TOKEN)
                .await
                .expect_ok(200)
                .clone();
            for r in page["records"].as_array().unwrap() {
                let id = r["platformId"].as_str().unwrap().to_owned();
                assert!(out.insert(id.clone()), "user {id} listed twice");
            }
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    async fn export_faults(&self, faults: Option<Value>) {
        match faults {
            Some(f) => {
                self.sim.post("/_sim/export/faults", &f).await.unwrap();
            }
            None => {
                let r = reqwest::Client::new()
                    .delete(format!("{}/_sim/export/faults", self.sim.origin()))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        }
    }

    /// Every user the simulator's export holds, read directly (its rate limits reset first, so
    /// this read costs the sync nothing).
    async fn platform_users(&self) -> BTreeSet<String> {
        let http = reqwest::Client::new();
        let r = http
            .delete(format!("{}/_sim/rate-limits", self.sim.origin()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let text = http
            .get(format!(
                "{}/api/export/data.json?dataTypeName=user&range=All",
                self.sim.origin()
            ))
            .header("Api-Key", sim_iterable::US_SERVER_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                connectors::iterable::sync::user_key(&v).unwrap()
            })
            .collect()
    }

    /// The `[startDateTime, endDateTime]` of each export request, in order.
    async fn export_windows(&self) -> Vec<(String, String)> {
        self.sim
            .requests(Some("/api/export/data.json"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let url =
                    reqwest::Url::parse(&format!("http://x/?{}", r.query.unwrap_or_default()))
                        .unwrap();
                let get = |k: &str| {
                    url.query_pairs()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (get("startDateTime"), get("endDateTime"))
            })
            .collect()
    }
}

#[tokio::test]
async fn a_streamed_export_commits_pages_before_the_download_ends() {
    let e = env(5_000).await;
    // The simulator pauses the export after 3,000 rows, until the test lets it go on.
    e.export_faults(Some(json!({"holdAfterRows": 3000}))).await;
    let id = e.sync_users().await;
    let j = e
        .wait_for(&id, "3 pages committed", |j| j["counts"]["users"] == 3000)
        .await;
    assert_eq!(j["status"], "running", "{j}");
    // The pages are in the store while the download is still open.
    assert_eq!(e.stored_users().await.len(), 3000);
    let counters = e.sim.counters().await.unwrap();
    assert_eq!(counters.get("exports_held"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("exports_finished"), None, "{counters:?}");

    e.export_faults(None).await;
    let j = e.wait_ended(&id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(j["counts"]["users"], 5000, "{j}");
    let counters = e.sim.counters().await.unwrap();
    assert_eq!(
        counters.get("exports"),
        Some(&1),
        "one export: {counters:?}"
    );
    assert_eq!(counters.get("exports_finished"), Some(&1), "{counters:?}");
    assert_eq!(e.stored_users().await, e.platform_users().await);
}

#[tokio::test]
async fn a_cut_export_resumes_with_nothing_lost_or_doubled_and_splits_a_slice_that_keeps_breaking()
{
    let e = env(5_000).await;
    // Every export response drops after 1,800 rows (and half of the next line).
    e.export_faults(Some(json!({"cutAfterRows": 1800}))).await;
    let id = e.sync_users().await;
    let j = e.wait_ended(&id).await;
    assert_eq!(j["status"], "succeeded", "{j}");
    // Every row served once: the job counted 5,000, not the rows of re-reads.
    assert_eq!(j["counts"]["users"], 5000, "{j}");
    let counters = e.sim.counters().await.unwrap();
    assert!(
        counters.get("exports_cut").copied().unwrap_or(0) >= 2,
        "{counters:?}"
    );
    // Within the key's 4 exports a minute, and never a 429.
    let exports = counters.get("exports").copied().unwrap_or(0);
    assert!((3..=4).contains(&exports), "{counters:?}");
    assert_eq!(counters.get("429"), None, "{counters:?}");

    // Resumed from where the last row was (later starts), and the slice that broke twice was
    // split (an end before the window's end), then the rest read in a later slice.
    let windows = e.export_windows().await;
    assert_eq!(windows.len() as u64, exports, "{windows:?}");
    let (first_start, window_end) = windows[0].clone();
    assert!(windows[1].0 > first_start, "resumed later: {windows:?}");
    assert!(
        windows.iter().any(|(_, end)| *end < window_end),
        "a split slice: {windows:?}"
    );
    assert_eq!(windows.last().unwrap().1, window_end, "{windows:?}");

    e.export_faults(None).await;
    let stored = e.stored_users().await;
    assert_eq!(stored.len(), 5000);
    assert_eq!(stored, e.platform_users().await);
}

#[tokio::test]
async fn an_export_line_over_the_limit_fails_the_sync_naming_the_export() {
    let e = env(10).await;
    let big = "x".repeat(connectors::iterable::MAX_EXPORT_LINE + 10);
    e.sim
        .post(
            "/_sim/fixtures",
            &json!({"users": [
                {"email": "small-1@example.com", "firstName": "A"},
                {"email": "huge@example.com", "bio": big},
                {"email": "small-2@example.com", "firstName": "B"},
            ]}),
        )
        .await
        .unwrap();
    // Exports take whole seconds: the fixtures are in the window once their second has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = e.sync_users().await;
    let j = e.wait_ended(&id).await;
    assert_eq!(j["status"], "failed", "{j}");
    assert_eq!(j["error"]["code"], "UNSUPPORTED_OPERATION", "{j}");
    let msg = j["error"]["error"].as_str().unwrap();
    assert!(msg.contains("`user` export"), "{msg}");
    assert!(
        msg.contains(&format!("{} bytes", connectors::iterable::MAX_EXPORT_LINE)),
        "{msg}"
    );
    // Not retried: trying again would meet the same line.
    assert_eq!(e.sim.counter("exports").await.unwrap(), 1);
}

/// The session itself, over an event type: two cut responses, every event served exactly once,
/// and the rows match the simulator's own export.
#[tokio::test]
async fn a_cut_event_export_serves_every_event_once_through_the_session() {
    use sharpsend::sync::{source::Page, sources};

    let e = env(100).await;
    let mut record = e
        .app
        .state
        .store
        .get_integration(
            &domain::PublisherId::parse(PUBLISHER).unwrap(),
            domain::Platform::Iterable,
        )
        .await
        .unwrap()
        .unwrap();
    record.config["syncEventTypes"] = json!(["emailSend"]);
    let mut s = sources::open(&e.app.state, &record).await.unwrap();
    e.export_faults(Some(json!({"cutAfterRows": 150, "times": 2})))
        .await;

    let mut served = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let Page {
            records,
            next,
            watermark,
        } = s.page("events", cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(pages < 50, "the listing ends");
        served.extend(records.into_iter().map(|r| r.platform_id));
        match next {
            Some(n) => cursor = Some(n),
            None => {
                assert!(watermark.is_some());
                break;
            }
        }
    }
    assert_eq!(e.sim.counter("exports_cut").await.unwrap(), 2);
    let unique: BTreeSet<String> = served.iter().cloned().collect();
    assert_eq!(unique.len(), served.len(), "an event served twice");

    let http = reqwest::Client::new();
    http.delete(format!("{}/_sim/rate-limits", e.sim.origin()))
        .send()
        .await
        .unwrap();
    let text = http
        .get(format!(
            "{}/api/export/data.json?dataTypeName=emailSend&range=All",
            e.sim.origin()
        ))
        .header("Api-Key", sim_iterable::US_SERVER_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            connectors::iterable::sync::event_id("emailSend", &v)
        })
        .collect();
    assert!(
        want.len() > 300,
        "more events than two cuts: {}",
        want.len()
    );
    assert_eq!(unique, want);
}
