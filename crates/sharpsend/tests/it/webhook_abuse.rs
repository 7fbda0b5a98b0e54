//! Webhook deliveries as an attacker would send them (issue 14, items 1 and 2): Keap signs
//! nothing, so a `contact.delete` is only a hint that Keap's own 404 confirms, and the upstream
//! work deliveries cause is bounded per integration (a 3,000-id delivery or a flood of small
//! ones costs at most 50 upstream calls, and is still answered at once).

use std::time::{Duration, Instant};

use domain::shapes::SyncStatus;
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::{sandbox::Sandbox, webhooks::work};
use sim_core::SimClient;
use store::testing::TestDb;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, fresh_db};

/// At most this many upstream calls for any of the deliveries below (issue 14, item 2).
const MAX_UPSTREAM: usize = 50;

struct Env {
    _db: TestDb,
    app: TestApp,
    _sandbox: Sandbox,
    sim: SimClient,
    /// The integration's webhook URL.
    url: String,
    integration_id: String,
    /// An OAuth access token of the simulator (to change contacts out of band).
    access: String,
}

/// A sandboxed server with a Keap integration of `publisher` (OAuth), its REST hooks
/// registered, and the simulator's own deliveries held back (the tests send theirs).
async fn env(publisher: &str) -> Env {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == "SHARPSEND_KEAP_API_URL")
        .map(|(_, v)| v)
        .unwrap();
    let sim = SimClient::new(origin);
    sim.post("/_sim/config", &json!({"hookDelayMs": 3_600_000u64}))
        .await
        .unwrap();
    let t = sim.post("/_sim/tokens", &json!({})).await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let d = app
        .call(
            Method::POST,
            "/api/integrations/keap/connect",
            Some(ADMIN_TOKEN),
            Some(
                json!({"publisherId": publisher, "clientId": sim_keap::CLIENT_ID,
                "clientSecret": sim_keap::CLIENT_SECRET, "accessToken": access,
                "refreshToken": t["refresh_token"], "config": {"campaignIds": []}}),
            ),
        )
        .await
        .expect_ok(200)
        .clone();
    let url = d["webhookUrl"].as_str().unwrap().to_owned();
    let integration_id = app
        .state
        .store
        .get_integration(
            &domain::PublisherId::parse(publisher).unwrap(),
            domain::Platform::Keap,
        )
        .await
        .unwrap()
        .unwrap()
        .id;
    Env {
        _db: db,
        app,
        _sandbox: sandbox,
        sim,
        url,
        integration_id,
        access,
    }
}

impl Env {
    /// Posts a Keap delivery naming `ids`; answers the response and how long it took.
    async fn deliver(&self, event_key: &str, ids: &[u64], stamp: &str) -> (Answer, Duration) {
        let keys: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "apiUrl": "", "timestamp": stamp}))
            .collect();
        let body = json!({"event_key": event_key, "object_type": "contact", "object_keys": keys});
        let started = Instant::now();
        let resp = self
            .app
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let answer = TestApp::answer(resp).await;
        (answer, started.elapsed())
    }

    /// Forgets what the simulator has logged so far.
    async fn clear_log(&self) {
        let resp = self
            .app
            .http
            .delete(format!("{}/_sim/requests", self.sim.origin()))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// Keap API calls the simulator received since the log was cleared, as `METHOD path`.
    async fn upstream(&self) -> Vec<String> {
        self.sim
            .requests(Some("/crm/rest"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Waits until the queued delivery work is done and no sync job is active.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self
                .app
                .state
                .store
                .latest_sync_job(&self.integration_id)
                .await
                .unwrap();
            let active =
                job.is_some_and(|j| matches!(j.status, SyncStatus::Queued | SyncStatus::Running));
            if !active && self.app.state.hook_work.is_idle(&self.integration_id) {
                return;
            }
            assert!(Instant::now() < deadline, "delivery work did not settle");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until a sync job with `full` has ended, and answers its status.
    async fn coalesced_job(&self, full: bool) -> SyncStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self
                .app
                .state
                .store
                .latest_sync_job(&self.integration_id)
                .await
                .unwrap();
            if let Some(j) = job.filter(|j| {
                j.full == full
                    && j.kinds == ["contacts"]
                    && matches!(j.status, SyncStatus::Succeeded | SyncStatus::Failed)
            }) {
                return j.status;
            }
            assert!(
                Instant::now() < deadline,
                "no coalesced contacts sync ended"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A stored contact: `None` when never stored, else whether it is marked deleted.
    async fn contact(&self, id: u64) -> Option<bool> {
        let all = self
            .app
            .state
            .store
            .list_records(&self.integration_id, "contacts", 10_000, None, true)
            .await
            .unwrap();
        all.into_iter()
            .find(|r| r.platform_id == id.to_string())
            .map(|r| r.deleted_at.is_some())
    }

    async fn live_contacts(&self) -> u64 {
        self.app
            .state
            .store
            .count_records(&self.integration_id, "contacts")
            .await
            .unwrap()
    }

    /// Deletes a contact on Keap itself.
    async fn delete_on_keap(&self, id: u64) {
        let resp = self
            .app
            .http
            .delete(format!("{}/crm/rest/v1/contacts/{id}", self.sim.origin()))
            .bearer_auth(&self.access)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }
}

fn stamp(n: usize) -> String {
    format!("2026-01-01T00:{:02}:{:02}.000Z", (n / 60) % 60, n % 60)
}

#[tokio::test]
async fn forged_keap_delete_leaves_a_live_contact_and_a_real_one_is_marked_deleted() {
    let e = env("pub-forged").await;
    // Two contacts re-read into the synced records by an edit delivery.
    let (a, b) = (7u64, 8u64);
    let (r, _) = e.deliver("contact.edit", &[a, b], &stamp(1)).await;
    assert_eq!(r.expect_ok(200)["received"], 2);
    e.settle().await;
    assert_eq!(e.contact(a).await, Some(false));
    assert_eq!(e.contact(b).await, Some(false));

    // A forged delete for a live contact: Keap answers 200 for it, so it stays.
    e.clear_log().await;
    let (r, _) = e.deliver("contact.delete", &[a], &stamp(2)).await;
    assert_eq!(r.expect_ok(200)["received"], 1);
    e.settle().await;
    assert_eq!(
        e.contact(a).await,
        Some(false),
        "a forged delete deleted data"
    );
    assert_eq!(
        e.upstream().await,
        vec![format!("GET /crm/rest/v1/contacts/{a}")],
        "the delete is checked with Keap itself"
    );

    // A real delete: Keap answers 404, so it is marked deleted.
    e.delete_on_keap(b).await;
    let (r, _) = e.deliver("contact.delete", &[b], &stamp(3)).await;
    assert_eq!(r.expect_ok(200)["received"], 1);
    e.settle().await;
    assert_eq!(
        e.contact(b).await,
        Some(true),
        "Keap's 404 marks it deleted"
    );
    assert_eq!(e.contact(a).await, Some(false));

    // Delete hints for contacts we never held cost no upstream call at all.
    e.clear_log().await;
    let (r, _) = e.deliver("contact.delete", &[9, 10, 11], &stamp(4)).await;
    r.expect_ok(200);
    e.settle().await;
    assert!(e.upstream().await.is_empty(), "{:?}", e.upstream().await);
    assert_eq!(e.contact(9).await, None);
}

#[tokio::test]
async fn a_3000_id_delivery_and_a_flood_cost_at_most_50_upstream_calls() {
    let e = env("pub-flood").await;
    e.clear_log().await;
    // One delivery naming 3,000 contacts: acknowledged at once, before any work.
    let ids: Vec<u64> = (1..=3000).collect();
    let (r, took) = e.deliver("contact.edit", &ids, &stamp(1)).await;
    assert_eq!(r.expect_ok(200)["received"], 3000);
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    // It became one incremental contacts sync (the integration's first: a full listing).
    assert_eq!(e.coalesced_job(false).await, SyncStatus::Succeeded);
    assert_eq!(e.live_contacts().await, 250, "the sync took the changes in");
    let calls = e.upstream().await;
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("GET /crm/rest/v1/contacts/")),
        "no per-id reads for a large delivery: {calls:?}"
    );
    assert!(calls.len() <= 5, "{calls:?}");

    // A flood: 40 small deliveries at once (overlapping ids, each new to the event store), the
    // large one repeated with new timestamps, and a 3,000-id delete.
    let mut flood = Vec::new();
    for n in 0..40u64 {
        let ids: Vec<u64> = (n * 10..n * 10 + 20).map(|i| 1 + i % 300).collect();
        flood.push(("contact.edit", ids, stamp(100 + n as usize)));
    }
    for n in 0..5 {
        flood.push(("contact.add", (1..=100).collect(), stamp(200 + n)));
    }
    flood.push(("contact.delete", (1..=3000).collect(), stamp(300)));
    let started = Instant::now();
    let answers = futures::future::join_all(
        flood
            .iter()
            .map(|(key, ids, stamp)| e.deliver(key, ids, stamp)),
    )
    .await;
    for (a, took) in &answers {
        assert!(a.status.is_success(), "{}", a.body);
        assert!(*took < Duration::from_secs(5), "answered after {took:?}");
    }
    // Whatever the flood asked for is either read within the allowance or owed to the next
    // coalesced sync (at most one a minute): wait for the allowance's burst to be spent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.app.state.hook_work.queued(&e.integration_id) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = e.upstream().await;
    let elapsed = started.elapsed();
    assert!(
        calls.len() <= MAX_UPSTREAM,
        "{} upstream calls in {elapsed:?}: {calls:?}",
        calls.len()
    );
    let reads = calls
        .iter()
        .filter(|c| c.starts_with("GET /crm/rest/v1/contacts/"))
        .count();
    let allowed = work::READ_BURST as usize
        + (elapsed.as_secs_f64() / work::READ_EVERY.as_secs_f64()).ceil() as usize;
    assert!(
        reads <= allowed,
        "{reads} re-reads in {elapsed:?}, allowance {allowed}"
    );
    assert!(reads > 0, "small deliveries are still re-read");
    // The 3,000-id delete was a hint: nothing was deleted without Keap's word.
    assert_eq!(e.live_contacts().await, 250);
}

#[tokio::test]
async fn a_large_delete_batch_is_settled_by_one_full_listing() {
    let e = env("pub-bulk").await;
    // The contacts synced by a sync the publisher asked for.
    e.app
        .call(
            Method::POST,
            "/api/integrations/pub-bulk/keap/sync",
            Some(ADMIN_TOKEN),
            Some(json!({"kinds": ["contacts"]})),
        )
        .await
        .expect_ok(202);
    e.settle().await;
    assert_eq!(e.live_contacts().await, 250);
    let gone = 42u64;
    e.delete_on_keap(gone).await;
    e.clear_log().await;
    // 3,000 ids, 250 of them held: 249 forged, one real.
    let ids: Vec<u64> = (1..=3000).collect();
    let (r, took) = e.deliver("contact.delete", &ids, &stamp(2)).await;
    assert_eq!(r.expect_ok(200)["received"], 3000);
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    // Too many to check one by one: one full contacts listing settles them, and marks deleted
    // only the contact Keap no longer lists.
    assert_eq!(e.coalesced_job(true).await, SyncStatus::Succeeded);
    e.settle().await;
    assert_eq!(e.contact(gone).await, Some(true));
    assert_eq!(e.live_contacts().await, 249);
    let calls = e.upstream().await;
    assert!(calls.len() <= MAX_UPSTREAM, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("GET /crm/rest/v1/contacts/")),
        "no per-id checks: {calls:?}"
    );
}
