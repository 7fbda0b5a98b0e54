//! The sync engine against the Keap simulator: jobs through the API, records that equal the
//! platform's, changes during a sync, retries that resume from the checkpoint, failed runs that
//! delete nothing, a killed worker resumed by another process, SIGTERM giving a job back, two
//! processes running each job once, and the scheduler.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::{Sandbox, SandboxOptions};
use sim_core::{Fault, FaultKind, SimClient};
use store::testing::TestDb;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const PAT: &str = sim_keap::PERSONAL_ACCESS_TOKEN;
const CONTACT_PAGES: &str = "/crm/rest/v2/contacts";

struct Env {
    db: TestDb,
    app: TestApp,
    sandbox: Sandbox,
    sim: SimClient,
    master_key: String,
}

async fn env(contacts: u64, settings: &[(&str, &str)]) -> Env {
    let db = fresh_db().await;
    let master_key = random_master_key();
    let opts = SandboxOptions {
        keap_contacts: contacts,
        ..SandboxOptions::default()
    };
    let (app, sandbox) = TestApp::spawn_sandboxed_with(&db, &opts, &master_key, settings).await;
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == "SHARPSEND_KEAP_API_URL")
        .unwrap()
        .1;
    Env {
        db,
        app,
        sandbox,
        sim: SimClient::new(origin),
        master_key,
    }
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

async fn start_sync(app: &TestApp, publisher: &str, body: Value) -> Value {
    app.call(
        Method::POST,
        &format!("/api/integrations/{publisher}/keap/sync"),
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
    .expect_ok(202)
    .clone()
}

async fn job(app: &TestApp, publisher: &str, job_id: &str) -> Value {
    app.get(
        &format!("/api/integrations/{publisher}/keap/sync/{job_id}"),
        ADMIN_TOKEN,
    )
    .await
    .expect_ok(200)
    .clone()
}

/// Polls the job until `done(job)` holds.
async fn wait_for(
    app: &TestApp,
    publisher: &str,
    job_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let j = job(app, publisher, job_id).await;
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

async fn wait_ended(app: &TestApp, publisher: &str, job_id: &str) -> Value {
    wait_for(app, publisher, job_id, "the job to end", |j| {
        j["status"] == "succeeded" || j["status"] == "failed"
    })
    .await
}

/// Every stored record of a kind, through the records API, keyed by platform id.
async fn stored(
    app: &TestApp,
    publisher: &str,
    kind: &str,
    deleted: bool,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/api/integrations/{publisher}/keap/records/{kind}?limit=1000&includeDeleted={deleted}"
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path, ADMIN_TOKEN).await.expect_ok(200).clone();
        for r in page["records"].as_array().unwrap() {
            let id = r["platformId"].as_str().unwrap().to_owned();
            assert!(
                out.insert(id.clone(), r.clone()).is_none(),
                "record {id} listed twice"
            );
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// A call to the simulator's Keap API with the sandbox PAT, waiting out its 10/s limit.
async fn keap_api(sim: &SimClient, method: Method, path: &str, body: Option<Value>) -> Value {
    let http = reqwest::Client::new();
    loop {
        let mut req = http
            .request(method.clone(), format!("{}{path}", sim.origin()))
            .header("X-Keap-API-Key", PAT);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        if resp.status() == 429 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        return resp.json().await.unwrap_or(Value::Null);
    }
}

/// Every contact the simulator holds: id → given name.
async fn platform_contacts(sim: &SimClient) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = keap_api(
            sim,
            Method::GET,
            &format!("/crm/rest/v1/contacts?limit=1000&offset={offset}"),
            None,
        )
        .await;
        let contacts = page["contacts"].as_array().unwrap();
        for c in contacts {
            out.insert(
                c["id"].to_string(),
                c["given_name"].as_str().map(str::to_owned),
            );
        }
        if contacts.len() < 1000 {
            return out;
        }
        offset += 1000;
    }
}

fn given_names(records: &BTreeMap<String, Value>) -> BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|(id, r)| {
            (
                id.clone(),
                r["data"]["firstName"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn sim_call(sim: &SimClient, method: Method, path: &str, body: Option<Value>) {
    keap_api(sim, method, path, body).await;
}

/// Removes the REST hooks connect registered, so that only the sync engine writes records
/// (webhook deliveries have their own tests in `webhooks.rs`).
async fn drop_hooks(sim: &SimClient) {
    let hooks = sim.get("/_sim/hooks").await.unwrap();
    for h in hooks["hooks"].as_array().unwrap() {
        let key = h["key"].as_str().unwrap();
        sim_call(
            sim,
            Method::DELETE,
            &format!("/crm/rest/v1/hooks/{key}"),
            None,
        )
        .await;
    }
    assert!(
        sim.get("/_sim/hooks").await.unwrap()["hooks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

fn slow_pages(ms: u64) -> Fault {
    Fault {
        latency_ms: Some(ms),
        ..Fault::new(CONTACT_PAGES, FaultKind::Latency)
    }
}

#[tokio::test]
async fn a_sync_stores_exactly_what_the_platform_has_and_one_job_runs_at_a_time() {
    let e = env(2_500, &[]).await;
    connect_keap(&e.app, "pub-s").await;
    e.sim.inject(&slow_pages(300)).await.unwrap();

    let queued = start_sync(&e.app, "pub-s", json!({"kinds": ["contacts"]})).await;
    let job_id = queued["jobId"].as_str().unwrap().to_owned();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["alreadyActive"], false);
    // While it runs, asking again answers the same job.
    let again = start_sync(&e.app, "pub-s", json!({})).await;
    assert_eq!(again["jobId"], job_id.as_str());
    assert_eq!(again["alreadyActive"], true);
    let running = wait_for(&e.app, "pub-s", &job_id, "progress", |j| {
        j["pages"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(running["status"], "running");
    assert_eq!(running["currentKind"], "contacts");

    let done = wait_ended(&e.app, "pub-s", &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["counts"], json!({"contacts": 2500}));
    assert_eq!(done["attempts"], 1);
    assert!(done["startedAt"].is_string() && done["finishedAt"].is_string());

    let records = stored(&e.app, "pub-s", "contacts", false).await;
    assert_eq!(given_names(&records), platform_contacts(&e.sim).await);
    let one = records.values().next().unwrap();
    assert!(one["data"]["email"].is_string(), "{one}");
    let raw_id = &one["raw"]["id"];
    let raw_id = raw_id
        .as_str()
        .map_or_else(|| raw_id.to_string(), str::to_owned);
    assert_eq!(raw_id, one["platformId"].as_str().unwrap());

    let metrics = e
        .app
        .http
        .get(e.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"sharpsend_sync_records_total{platform="keap",kind="contacts"} 2500"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sharpsend_sync_runs_total{platform="keap",outcome="succeeded"} 1"#),
        "{metrics}"
    );

    // The list and the integration show it.
    let list = e
        .app
        .get("/api/integrations/pub-s/keap/sync", ADMIN_TOKEN)
        .await;
    assert_eq!(list.expect_ok(200)["jobs"][0]["jobId"], job_id.as_str());
    let ints = e.app.get("/api/integrations/pub-s", ADMIN_TOKEN).await;
    assert_eq!(
        ints.expect_ok(200)["integrations"][0]["lastSync"]["jobId"],
        job_id.as_str()
    );
    drop(e.sandbox);
    e.app.stop().await;
    e.db.cleanup().await;
}

#[tokio::test]
async fn sync_requests_are_validated_and_scoped() {
    let e = env(10, &[]).await;
    connect_keap(&e.app, "pub-v").await;
    let (_, other) = e.app.create_key("pub-other").await;
    let post = |publisher: &'static str, token: String, body: Value| {
        let app = &e.app;
        async move {
            app.call(
                Method::POST,
                &format!("/api/integrations/{publisher}/keap/sync"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let a = post(
        "pub-v",
        ADMIN_TOKEN.into(),
        json!({"kinds": ["contacts", "users"]}),
    )
    .await;
    assert_eq!(
        a.expect_error(400, "VALIDATION_ERROR")["details"]["field"],
        "kinds"
    );
    assert!(
        a.body["error"].as_str().unwrap().contains("opportunities"),
        "{}",
        a.body
    );
    post("pub-v", ADMIN_TOKEN.into(), json!({"kinds": []}))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    post("pub-v", ADMIN_TOKEN.into(), json!({"full": "yes"}))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    post("pub-v", other.clone(), json!({}))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    post("pub-none", ADMIN_TOKEN.into(), json!({}))
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");

    let get = |path: String| {
        let app = &e.app;
        async move { app.get(&path, ADMIN_TOKEN).await }
    };
    get("/api/integrations/pub-v/keap/sync/job_nope".into())
        .await
        .expect_error(404, "NOT_FOUND");
    get("/api/integrations/pub-v/keap/records/users".into())
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let c = get("/api/integrations/pub-v/keap/records/contacts?cursor=%%%".into()).await;
    assert_eq!(
        c.expect_error(400, "VALIDATION_ERROR")["details"]["field"],
        "cursor"
    );
    get("/api/integrations/pub-v/keap/records/contacts?limit=0".into())
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let o = e
        .app
        .get("/api/integrations/pub-v/keap/records/contacts", &other)
        .await;
    o.expect_error(403, "PERMISSION_DENIED");
    // Another publisher's job is not found through one's own integration.
    connect_keap(&e.app, "pub-w").await;
    let theirs = start_sync(&e.app, "pub-w", json!({"kinds": ["tags"]})).await;
    let path = format!(
        "/api/integrations/pub-v/keap/sync/{}",
        theirs["jobId"].as_str().unwrap()
    );
    get(path).await.expect_error(404, "NOT_FOUND");
    e.app.stop().await;
    e.db.cleanup().await;
}

#[tokio::test]
async fn changes_during_a_sync_are_kept_and_a_failed_run_deletes_nothing() {
    let e = env(2_500, &[]).await;
    connect_keap(&e.app, "pub-c").await;
    drop_hooks(&e.sim).await;
    let first = platform_contacts(&e.sim).await;
    let (first_id, last_id) = (
        first
            .keys()
            .min_by_key(|k| k.parse::<u64>().unwrap())
            .unwrap()
            .clone(),
        first
            .keys()
            .max_by_key(|k| k.parse::<u64>().unwrap())
            .unwrap()
            .clone(),
    );

    // A contact already read, and one not yet read, change while the sync runs.
    e.sim.inject(&slow_pages(400)).await.unwrap();
    let j = start_sync(&e.app, "pub-c", json!({"kinds": ["contacts"]})).await;
    let job_id = j["jobId"].as_str().unwrap().to_owned();
    wait_for(&e.app, "pub-c", &job_id, "the first page", |j| {
        j["pages"].as_i64() >= Some(1)
    })
    .await;
    for id in [&first_id, &last_id] {
        sim_call(
            &e.sim,
            Method::PATCH,
            &format!("/crm/rest/v1/contacts/{id}?update_mask=given_name"),
            Some(json!({"given_name": format!("Changed{id}")})),
        )
        .await;
    }
    assert_eq!(
        wait_ended(&e.app, "pub-c", &job_id).await["status"],
        "succeeded"
    );
    e.sim.clear_faults().await.unwrap();
    // The next (incremental) run picks up whatever the first passed before it changed.
    let j = start_sync(&e.app, "pub-c", json!({"kinds": ["contacts"]})).await;
    let second = wait_ended(&e.app, "pub-c", j["jobId"].as_str().unwrap()).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert!(
        second["counts"]["contacts"].as_u64().unwrap() < 2500,
        "incremental: {second}"
    );
    let records = stored(&e.app, "pub-c", "contacts", false).await;
    assert_eq!(given_names(&records), platform_contacts(&e.sim).await);
    assert_eq!(
        records[&first_id]["data"]["firstName"],
        format!("Changed{first_id}")
    );

    // A contact is deleted upstream; a full run fails after its first page: nothing is deleted.
    sim_call(
        &e.sim,
        Method::DELETE,
        &format!("/crm/rest/v1/contacts/{last_id}"),
        None,
    )
    .await;
    e.sim
        .inject(&Fault {
            status: Some(500),
            after: Some(1),
            ..Fault::new(CONTACT_PAGES, FaultKind::Status)
        })
        .await
        .unwrap();
    let j = start_sync(
        &e.app,
        "pub-c",
        json!({"kinds": ["contacts"], "full": true}),
    )
    .await;
    let job_id = j["jobId"].as_str().unwrap().to_owned();
    let retrying = wait_for(&e.app, "pub-c", &job_id, "a retry", |j| {
        j["status"] == "queued" && j["attempts"] == 1
    })
    .await;
    assert_eq!(retrying["error"]["code"], "CONNECTION_FAILED", "{retrying}");
    assert!(retrying["nextAttemptAt"].is_string(), "{retrying}");
    assert_eq!(retrying["pages"], 1, "the first page was kept: {retrying}");
    assert_eq!(stored(&e.app, "pub-c", "contacts", false).await.len(), 2500);
    // Keap recovers; the retry resumes from the checkpoint and the complete listing deletes.
    e.sim.clear_faults().await.unwrap();
    let done = wait_ended(&e.app, "pub-c", &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2);
    assert_eq!(done["deleted"]["contacts"], 1);
    assert_eq!(done["error"], Value::Null);
    let live = stored(&e.app, "pub-c", "contacts", false).await;
    assert_eq!(given_names(&live), platform_contacts(&e.sim).await);
    let all = stored(&e.app, "pub-c", "contacts", true).await;
    assert!(all[&last_id]["deletedAt"].is_string());
    e.app.stop().await;
    e.db.cleanup().await;
}

#[tokio::test]
async fn refused_credentials_fail_the_job_and_stop_syncs_until_reconnected() {
    let e = env(10, &[]).await;
    connect_keap(&e.app, "pub-r").await;
    e.sim
        .inject(&Fault {
            status: Some(401),
            ..Fault::new("/crm/rest", FaultKind::Status)
        })
        .await
        .unwrap();
    let j = start_sync(&e.app, "pub-r", json!({"kinds": ["contacts"]})).await;
    let done = wait_ended(&e.app, "pub-r", j["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "INVALID_CREDENTIALS", "{done}");
    let ints = e.app.get("/api/integrations/pub-r", ADMIN_TOKEN).await;
    assert_eq!(
        ints.expect_ok(200)["integrations"][0]["status"],
        "reauth_required"
    );
    let again = e
        .app
        .call(
            Method::POST,
            "/api/integrations/pub-r/keap/sync",
            Some(ADMIN_TOKEN),
            Some(json!({})),
        )
        .await;
    assert!(
        again.expect_error(422, "INVALID_CREDENTIALS")["error"]
            .as_str()
            .unwrap()
            .contains("reconnect")
    );
    // Not scheduled either.
    assert!(
        e.app
            .state
            .store
            .due_integrations(chrono::Utc::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Reconnecting puts it back.
    e.sim.clear_faults().await.unwrap();
    connect_keap(&e.app, "pub-r").await;
    let j = start_sync(&e.app, "pub-r", json!({"kinds": ["contacts"]})).await;
    assert_eq!(
        wait_ended(&e.app, "pub-r", j["jobId"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    e.app.stop().await;
    e.db.cleanup().await;
}

#[tokio::test]
async fn the_scheduler_queues_each_due_integration_once() {
    let e = env(
        10,
        &[
            ("SHARPSEND_SYNC_INTERVAL_MINUTES", "60"),
            ("SHARPSEND_SYNC_WORKERS", "0"),
        ],
    )
    .await;
    connect_keap(&e.app, "pub-t").await;
    let state = &e.app.state;
    // First sight: the first sync is placed within a minute, nothing queued yet.
    assert_eq!(sharpsend::sync::scheduler::tick(state).await.unwrap(), 0);
    let none_due = state
        .store
        .due_integrations(chrono::Utc::now(), 10)
        .await
        .unwrap();
    assert!(none_due.is_empty());
    let later = chrono::Utc::now() + chrono::Duration::minutes(2);
    let due = state.store.due_integrations(later, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    // Make it due now; two schedulers (replicas) tick together; one job.
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert!(
        state
            .store
            .set_next_sync(&due[0].id, due[0].next_sync_at, past)
            .await
            .unwrap()
    );
    let (a, b) = tokio::join!(
        sharpsend::sync::scheduler::tick(state),
        sharpsend::sync::scheduler::tick(state)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let jobs = e
        .app
        .get("/api/integrations/pub-t/keap/sync", ADMIN_TOKEN)
        .await;
    let jobs = jobs.expect_ok(200)["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["kinds"].as_array().unwrap().len(), 5);
    assert_eq!(jobs[0]["status"], "queued");
    e.app.stop().await;
    e.db.cleanup().await;
}

// --- several processes ---

/// A `sharpsend serve` process on the test's database, as a sync worker.
fn worker_process(e: &Env, workers: u32) -> Child {
    worker_process_with(e, workers, &[])
}

fn worker_process_with(e: &Env, workers: u32, extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharpsend"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHARPSEND_LISTEN", "127.0.0.1:0")
        .env("SHARPSEND_DATABASE_URL", &e.db.url)
        .env("SHARPSEND_MASTER_KEY", &e.master_key)
        .env("SHARPSEND_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHARPSEND_SYNC_INTERVAL_MINUTES", "0")
        .env("SHARPSEND_SYNC_WORKERS", workers.to_string())
        .env("SHARPSEND_SYNC_LEASE_SECONDS", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in e.sandbox.upstream_overrides() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// The in-process app serves the API only; worker processes run the jobs.
async fn api_only_env(contacts: u64) -> Env {
    env(contacts, &[("SHARPSEND_SYNC_WORKERS", "0")]).await
}

#[tokio::test]
async fn a_killed_worker_is_resumed_by_another_process_and_nothing_is_lost_or_doubled() {
    let e = api_only_env(6_000).await;
    connect_keap(&e.app, "pub-k").await;
    e.sim.inject(&slow_pages(250)).await.unwrap();
    let j = start_sync(&e.app, "pub-k", json!({"kinds": ["contacts"]})).await;
    let job_id = j["jobId"].as_str().unwrap().to_owned();

    let mut a = worker_process(&e, 1);
    wait_for(&e.app, "pub-k", &job_id, "two pages", |j| {
        j["pages"].as_i64() >= Some(2)
    })
    .await;
    a.kill().unwrap(); // SIGKILL: no chance to give the job back
    a.wait().unwrap();
    let mid = job(&e.app, "pub-k", &job_id).await;
    assert_eq!(mid["status"], "running", "{mid}");

    let mut b = worker_process(&e, 1);
    let done = wait_ended(&e.app, "pub-k", &job_id).await;
    b.kill().unwrap();
    b.wait().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    let records = stored(&e.app, "pub-k", "contacts", false).await;
    assert_eq!(given_names(&records), platform_contacts(&e.sim).await);
    assert_eq!(records.len(), 6_000);
    e.app.stop().await;
    e.db.cleanup().await;
}

#[tokio::test]
async fn sigterm_lets_the_page_commit_and_gives_the_job_back() {
    let e = api_only_env(5_000).await;
    connect_keap(&e.app, "pub-g").await;
    e.sim.inject(&slow_pages(300)).await.unwrap();
    let j = start_sync(&e.app, "pub-g", json!({"kinds": ["contacts"]})).await;
    let job_id = j["jobId"].as_str().unwrap().to_owned();
    let mut a = worker_process(&e, 1);
    wait_for(&e.app, "pub-g", &job_id, "a page", |j| {
        j["pages"].as_i64() >= Some(1)
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &a.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || a.wait().unwrap())
        .await
        .unwrap();
    assert!(exited.success(), "{exited:?}");
    let back = job(&e.app, "pub-g", &job_id).await;
    assert_eq!(back["status"], "queued", "{back}");
    assert_eq!(back["attempts"], 0, "a released run is not counted: {back}");
    assert!(back["pages"].as_i64().unwrap() >= 1);

    let mut b = worker_process(&e, 1);
    let done = wait_ended(&e.app, "pub-g", &job_id).await;
    b.kill().unwrap();
    b.wait().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        stored(&e.app, "pub-g", "contacts", false).await.len(),
        5_000
    );
    e.app.stop().await;
    e.db.cleanup().await;
}

#[tokio::test]
async fn two_processes_run_each_job_exactly_once() {
    let e = api_only_env(1_500).await;
    let publishers: Vec<String> = (0..6).map(|i| format!("pub-m{i}")).collect();
    for p in &publishers {
        connect_keap(&e.app, p).await;
    }
    let mut a = worker_process(&e, 2);
    let mut b = worker_process(&e, 2);
    let mut ids = Vec::new();
    for p in &publishers {
        let j = start_sync(&e.app, p, json!({"kinds": ["contacts"]})).await;
        ids.push((p.clone(), j["jobId"].as_str().unwrap().to_owned()));
    }
    for (p, id) in &ids {
        let done = wait_ended(&e.app, p, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["attempts"], 1, "run once: {done}");
        assert_eq!(done["counts"]["contacts"], 1500);
    }
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    // Each job read each page once: 6 jobs × 2 pages.
    let pages = e.sim.requests(Some(CONTACT_PAGES)).await.unwrap();
    assert_eq!(pages.len(), 12, "{pages:?}");
    e.app.stop().await;
    e.db.cleanup().await;
}

const REDIS: &str = "redis://127.0.0.1:6379";

#[tokio::test]
async fn three_processes_sharing_redis_stay_under_keaps_limits() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        eprintln!("skipped: no Redis on 127.0.0.1:6379 (.ci/run starts one)");
        return;
    }
    // The API process shares the budget too: its connect calls count against the same app.
    let e = env(
        30_000,
        &[
            ("SHARPSEND_SYNC_WORKERS", "0"),
            ("SHARPSEND_REDIS_URL", REDIS),
        ],
    )
    .await;
    let publishers = ["pub-x0", "pub-x1", "pub-x2"];
    for p in publishers {
        // Each publisher has its own tokens from the one Keap app: Keap limits the app.
        let t = e.sim.post("/_sim/tokens", &json!({})).await.unwrap();
        e.app
            .call(
                Method::POST,
                "/api/integrations/keap/connect",
                Some(ADMIN_TOKEN),
                Some(json!({
                    "publisherId": p,
                    "clientId": sim_keap::CLIENT_ID,
                    "clientSecret": sim_keap::CLIENT_SECRET,
                    "accessToken": t["access_token"],
                    "refreshToken": t["refresh_token"],
                    "expiresIn": 86_400,
                })),
            )
            .await
            .expect_ok(200);
    }
    let before = e.sim.counter("429").await.unwrap();
    let redis = [("SHARPSEND_REDIS_URL", REDIS)];
    let mut workers: Vec<Child> = (0..3).map(|_| worker_process_with(&e, 1, &redis)).collect();
    let mut jobs = Vec::new();
    for p in publishers {
        let j = start_sync(&e.app, p, json!({"kinds": ["contacts"]})).await;
        jobs.push((p, j["jobId"].as_str().unwrap().to_owned()));
    }
    let started = Instant::now();
    for (p, id) in &jobs {
        let done = wait_ended(&e.app, p, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["counts"]["contacts"], 30_000);
    }
    let secs = started.elapsed().as_secs_f64();
    // The API process sent none of those pages, yet its limits view is every replica's.
    let limits = e
        .app
        .get("/api/integrations/pub-x0/keap/limits", ADMIN_TOKEN)
        .await;
    let limits = limits.expect_ok(200);
    assert_eq!(limits["scope"], "shared", "{limits}");
    assert_eq!(limits["sharedBudgets"], true);
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    // 90 pages from three processes at once: Keap's 25/s spike arrest never tripped.
    assert_eq!(e.sim.counter("429").await.unwrap(), before, "429s received");
    eprintln!(
        "3 processes, 90 pages in {secs:.1} s ({:.1}/s of Keap's 25/s)",
        90.0 / secs
    );
    e.app.stop().await;
    e.db.cleanup().await;
}
