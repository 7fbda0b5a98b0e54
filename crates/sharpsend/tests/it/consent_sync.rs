//! The sync's feed into the consent ledger (issue 17): a simulator holds readers who must not be
//! mailed, a sync runs through the API, and the ledger holds each of them once — source kind
//! `sync`, the synced platform `done` as the source, the publisher's other connected platform
//! queued for propagation — and nobody else; a second sync adds nothing.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use domain::{Platform, PublisherId};
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::{Sandbox, SandboxOptions};
use sim_core::{Fault, SimClient};
use store::{ConsentJobKind, testing::TestDb};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const PUBLISHER: &str = "pub-csync";
const PAT: &str = sim_keap::PERSONAL_ACCESS_TOKEN;

/// The Keap statuses that must suppress (fact sheet `consent.md` §3.3), written out here rather
/// than taken from the code under test.
fn keap_reason(status: &str) -> Option<&'static str> {
    match status {
        "MANUAL" | "ADMIN" | "LIST_UNSUBSCRIBE" => Some("unsubscribed"),
        "SPAM" | "FEEDBACK" => Some("complained"),
        "HARD_BOUNCE" | "INVALID" | "DEACTIVATED" => Some("bounced"),
        _ => None,
    }
}

struct Env {
    db: TestDb,
    app: TestApp,
    _sandbox: Sandbox,
    keap: String,
    iterable: String,
    http: reqwest::Client,
}

/// Small data sets (every Keap contact fits one page) and both platforms connected.
async fn env(iterable_config: Value) -> Env {
    let db = fresh_db().await;
    let opts = SandboxOptions {
        keap_contacts: 40,
        iterable_users: 20,
        ..SandboxOptions::default()
    };
    let (app, sandbox) = TestApp::spawn_sandboxed_with(
        &db,
        &opts,
        &random_master_key(),
        crate::helpers::NO_API_LIMITS,
    )
    .await;
    let upstream = |name: &str| {
        sandbox
            .upstream_overrides()
            .into_iter()
            .find(|(k, _)| *k == name)
            .unwrap()
            .1
    };
    let keap = upstream("SHARPSEND_KEAP_API_URL");
    let iterable = sandbox
        .platforms
        .iter()
        .find(|r| r.platform == "iterable")
        .and_then(|r| r.origin(sim_iterable::ENV_US))
        .unwrap()
        .to_owned();
    for (path, body) in [
        (
            "/api/integrations/keap/connect",
            json!({"publisherId": PUBLISHER, "apiKey": PAT}),
        ),
        (
            "/api/integrations/iterable/connect",
            json!({"publisherId": PUBLISHER, "apiKey": sim_iterable::US_SERVER_KEY,
                   "region": "us", "config": iterable_config}),
        ),
    ] {
        app.call(Method::POST, path, Some(ADMIN_TOKEN), Some(body))
            .await
            .expect_ok(200);
    }
    Env {
        db,
        app,
        _sandbox: sandbox,
        keap,
        iterable,
        http: reqwest::Client::new(),
    }
}

impl Env {
    /// Runs a sync of `kinds` on `platform` through the API, to success.
    async fn sync(&self, platform: &str, kinds: &[&str]) {
        let queued = self
            .app
            .call(
                Method::POST,
                &format!("/api/integrations/{PUBLISHER}/{platform}/sync"),
                Some(ADMIN_TOKEN),
                Some(json!({"kinds": kinds, "full": true})),
            )
            .await
            .expect_ok(202)
            .clone();
        let job_id = queued["jobId"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let job = self
                .app
                .get(
                    &format!("/api/integrations/{PUBLISHER}/{platform}/sync/{job_id}"),
                    ADMIN_TOKEN,
                )
                .await
                .expect_ok(200)
                .clone();
            match job["status"].as_str().unwrap() {
                "succeeded" => return,
                "failed" => panic!("the sync failed: {job}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "the sync did not end: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whole ledger, by address.
    async fn ledger(&self) -> BTreeMap<String, Value> {
        let data = self
            .app
            .get(
                &format!("/api/integrations/{PUBLISHER}/suppressions?limit=1000"),
                ADMIN_TOKEN,
            )
            .await
            .expect_ok(200)
            .clone();
        assert_eq!(data["nextCursor"], Value::Null);
        data["suppressions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["email"].as_str().unwrap().to_owned(), s.clone()))
            .collect()
    }

    async fn opt_out_jobs(&self, platform: Platform) -> usize {
        self.app
            .state
            .store
            .list_consent_jobs(&PublisherId::parse(PUBLISHER).unwrap(), 1000)
            .await
            .unwrap()
            .iter()
            .filter(|j| j.kind == ConsentJobKind::OptOut && j.platform == platform)
            .count()
    }

    async fn keap_json(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/crm/rest/v2/{path}", self.keap))
            .header("X-Keap-API-Key", PAT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn iterable_user(&self, email: &str, channels: Value) {
        let r = self
            .http
            .post(format!("{}/api/users/update", self.iterable))
            .header("Api-Key", sim_iterable::US_SERVER_KEY)
            .json(&json!({"email": email, "dataFields": {"unsubscribedChannelIds": channels}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn stop(self) {
        self.app.stop().await;
        self.db.cleanup().await;
    }
}

/// `(platform, status)` of each propagation row.
fn progress(entry: &Value) -> BTreeMap<String, String> {
    entry["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Asserts an entry came from a sync of `source` and is queued for `other`.
fn assert_from_sync(entry: &Value, source: &str, other: &str) {
    assert_eq!(
        entry["source"],
        json!({"kind": "sync", "platform": source}),
        "{entry}"
    );
    let p = progress(entry);
    assert_eq!(p[source], "done", "{entry}");
    // Pending until the consent worker has pushed it (then done); never skipped or absent.
    assert!(matches!(p[other].as_str(), "pending" | "done"), "{entry}");
}

#[tokio::test]
async fn a_keap_sync_records_every_non_marketable_address_once_and_queues_it_for_iterable() {
    let e = env(json!({})).await;

    // A reader who opted in, then unsubscribed through Keap (the API's opt-out: `MANUAL`).
    let created = e
        .keap_json(
            Method::POST,
            "contacts",
            Some(json!({"given_name": "Ada", "email_addresses": [
                {"email": "Ada.Unsub@Example.com", "field": "EMAIL1", "opt_in_reason": "signup form"}]})),
        )
        .await;
    assert!(created["id"].is_string(), "{created}");
    let status = e
        .keap_json(
            Method::PATCH,
            "emailAddresses/Ada.Unsub%40Example.com/status",
            Some(json!({"opted_in": false, "reason": "reader asked"})),
        )
        .await;
    assert_eq!(status["opted_in"], false, "{status}");

    // What Keap holds: every contact's address and status, through the v2 API.
    let listed = e
        .keap_json(
            Method::GET,
            "contacts?page_size=1000&fields=email_addresses",
            None,
        )
        .await;
    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    let mut marketable = 0;
    for c in listed["contacts"].as_array().unwrap() {
        for a in c["email_addresses"].as_array().into_iter().flatten() {
            let email = a["email"].as_str().unwrap().to_lowercase();
            match keap_reason(a["email_opt_status"].as_str().unwrap()) {
                Some(r) => {
                    expected.entry(email).or_insert(r);
                }
                None => marketable += 1,
            }
        }
    }
    assert_eq!(expected.get("ada.unsub@example.com"), Some(&"unsubscribed"));
    assert!(
        expected.len() >= 2 && marketable > 0,
        "the seeded contacts mix statuses: {expected:?}"
    );

    e.sync("keap", &["contacts"]).await;
    let ledger = e.ledger().await;
    let got: BTreeMap<String, &str> = ledger
        .iter()
        .map(|(k, v)| (k.clone(), v["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(got, expected);
    for entry in ledger.values() {
        assert_from_sync(entry, "keap", "iterable");
    }
    // `bounced` is not propagated by default: skipped for Iterable, no job.
    let propagated = expected.values().filter(|r| **r != "bounced").count();
    assert_eq!(e.opt_out_jobs(Platform::Iterable).await, propagated);
    assert_eq!(e.opt_out_jobs(Platform::Keap).await, 0);
    for entry in ledger.values().filter(|v| v["reason"] == "bounced") {
        assert_eq!(progress(entry)["iterable"], "skipped", "{entry}");
    }

    // A second full sync reads the same contacts: nothing new, nothing queued twice.
    e.sync("keap", &["contacts"]).await;
    let again = e.ledger().await;
    assert_eq!(again.len(), ledger.len());
    for (email, entry) in &again {
        assert_eq!(entry["createdAt"], ledger[email]["createdAt"], "{email}");
    }
    assert_eq!(e.opt_out_jobs(Platform::Iterable).await, propagated);
    e.stop().await;
}

#[tokio::test]
async fn an_iterable_sync_records_users_off_every_consent_channel_and_queues_them_for_keap() {
    let e = env(json!({})).await;
    // 41001 and 41007 are the project's marketing email channels; 41003 is push.
    e.iterable_user("off@example.com", json!([41001, 41007, 41003]))
        .await;
    e.iterable_user("partly@example.com", json!([41001])).await;
    e.iterable_user("push-only@example.com", json!([41003]))
        .await;
    // The export's window ends at the current whole second: let these writes fall inside it.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    e.sync("iterable", &["users"]).await;
    let ledger = e.ledger().await;
    assert_eq!(
        ledger.keys().collect::<Vec<_>>(),
        vec!["off@example.com"],
        "{ledger:?}"
    );
    let entry = &ledger["off@example.com"];
    assert_eq!(entry["reason"], "unsubscribed");
    assert_from_sync(entry, "iterable", "keap");
    assert_eq!(e.opt_out_jobs(Platform::Keap).await, 1);
    e.stop().await;
}

#[tokio::test]
async fn an_iterable_sync_reads_the_configured_consent_channels() {
    // Only channel 41001 counts for this publisher: off it is off.
    let e = env(json!({"consentChannelIds": [41001]})).await;
    e.iterable_user("partly@example.com", json!([41001])).await;
    e.iterable_user("other@example.com", json!([41007])).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    e.sync("iterable", &["users"]).await;
    let ledger = e.ledger().await;
    assert_eq!(
        ledger.keys().collect::<Vec<_>>(),
        vec!["partly@example.com"],
        "{ledger:?}"
    );
    assert_from_sync(&ledger["partly@example.com"], "iterable", "keap");
    e.stop().await;
}

#[tokio::test]
async fn a_failed_channel_lookup_skips_a_pages_opt_outs_but_never_fails_the_sync() {
    let e = env(json!({})).await;
    e.iterable_user("off@example.com", json!([41001, 41007]))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A key that may not list the project's channels: the feed cannot tell who is off them all.
    let sim = SimClient::new(&e.iterable);
    sim.inject(&Fault::status("/api/channels", 403))
        .await
        .unwrap();

    e.sync("iterable", &["users"]).await;
    assert!(e.ledger().await.is_empty());
    let stored = e
        .app
        .get(
            &format!("/api/integrations/{PUBLISHER}/iterable/records/users?limit=1000"),
            ADMIN_TOKEN,
        )
        .await
        .expect_ok(200)
        .clone();
    assert!(
        stored["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["data"]["email"] == "off@example.com"),
        "the user is stored all the same: {stored}"
    );

    // The next full sync offers the address again, and now it is recorded.
    sim.clear_faults().await.unwrap();
    e.sync("iterable", &["users"]).await;
    let ledger = e.ledger().await;
    assert_eq!(ledger.keys().collect::<Vec<_>>(), vec!["off@example.com"]);
    assert_from_sync(&ledger["off@example.com"], "iterable", "keap");
    e.stop().await;
}
