//! Customer.io through the real server against its simulator.

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::Sandbox;
use sim_core::{Fault, FaultKind, SimClient};
use sim_customerio::{EU, US};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

const TEST: &str = "/api/integrations/customerio/test-connection";
const CONNECT: &str = "/api/integrations/customerio/connect";

fn sim(sandbox: &Sandbox) -> SimClient {
    let origin = sandbox
        .platforms
        .iter()
        .find_map(|r| r.origin("SHARPSEND_CUSTOMERIO_APP_US_URL"))
        .expect("customerio simulator");
    SimClient::new(origin)
}

fn us_keys() -> Value {
    json!({
        "siteId": US.site_id,
        "apiKey": US.app_api_key,
        "trackingKey": US.tracking_key,
        "region": "us",
    })
}

fn connect_body(publisher: &str) -> Value {
    json!({
        "publisherId": publisher,
        "siteId": US.site_id,
        "apiKey": US.app_api_key,
        "trackingKey": US.tracking_key,
        "cdpApiKey": US.cdp_api_key,
        "webhookSigningKey": US.webhook_signing_key,
        "region": "us",
        "config": {"segmentIds": ["1", 3], "journeyIds": ["2"]},
    })
}

async fn test_conn(app: &TestApp, body: Value) -> crate::helpers::Answer {
    app.call(Method::POST, TEST, Some(ADMIN_TOKEN), Some(body))
        .await
}

fn message(body: &Value) -> String {
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn test_connection_reports_which_apis_accepted_the_keys() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let mut body = us_keys();
    body["cdpApiKey"] = json!(US.cdp_api_key);
    let a = test_conn(&app, body).await;
    let data = a.expect_ok(200);
    assert_eq!(data["platform"], "customerio");
    assert_eq!(data["ok"], true);
    assert_eq!(data["region"], "us");
    assert!(data["latencyMs"].is_u64());
    let account = &data["account"];
    assert_eq!(
        account["apis"],
        json!({"track": true, "app": true, "cdp": true})
    );
    assert_eq!(account["workspaceId"], US.environment_id);
    assert_eq!(account["siteId"], US.site_id);

    // What the platform received: the documented region lookup with the Track pair, the App
    // key as a bearer, and a strict-mode Pipelines call that stores nothing.
    let region = sim.requests(Some("/api/v1/accounts/region")).await.unwrap();
    assert_eq!(region.len(), 1);
    assert!(region[0].headers["authorization"].starts_with("Basic "));
    let ws = sim.requests(Some("/v1/workspaces")).await.unwrap();
    assert_eq!(
        ws[0].headers["authorization"],
        format!("Bearer {}", US.app_api_key)
    );
    let cdp = sim.requests(Some("/v1/identify")).await.unwrap();
    assert_eq!(cdp.len(), 1);
    assert_eq!(cdp[0].headers["x-strict-mode"], "1");
    assert_eq!(cdp[0].status, Some(400), "the probe is refused, not stored");
    // Nothing secret in the answer.
    assert!(!a.body.to_string().contains(US.app_api_key));
    assert!(!a.body.to_string().contains(US.tracking_key));
}

#[tokio::test]
async fn without_tracking_key_the_app_key_is_tried_on_track_and_the_gap_is_noted() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let a = test_conn(
        &app,
        json!({"siteId": US.site_id, "apiKey": US.app_api_key}),
    )
    .await;
    let data = a.expect_ok(200);
    assert_eq!(data["region"], "us", "region defaults to us");
    assert_eq!(
        data["account"]["apis"],
        json!({"track": false, "app": true, "cdp": null})
    );
    let notes = data["account"]["notes"].to_string();
    assert!(notes.contains("trackingKey"), "{notes}");
    // The App key went to Track as the key of the pair.
    let region = sim.requests(Some("/api/v1/accounts/region")).await.unwrap();
    assert_eq!(region.len(), 1);
    assert_eq!(region[0].status, Some(401));
}

#[tokio::test]
async fn an_app_key_given_as_the_tracking_key_is_named() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let mut body = us_keys();
    body["trackingKey"] = json!(US.app_api_key);
    let a = test_conn(&app, body).await;
    let b = a.expect_error(422, "INVALID_CREDENTIALS");
    let m = message(b);
    assert!(m.contains("trackingKey is an App API key"), "{m}");
    assert_eq!(b["details"]["platform"], "customerio");
    assert!(!m.contains(US.app_api_key));
}

#[tokio::test]
async fn a_tracking_key_given_as_the_app_key_is_named() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    // The Track key where the App key belongs (with the right Track pair too).
    let mut body = us_keys();
    body["apiKey"] = json!(US.tracking_key);
    let m = message(
        test_conn(&app, body)
            .await
            .expect_error(422, "INVALID_CREDENTIALS"),
    );
    assert!(m.contains("apiKey is a Tracking API key"), "{m}");
    // Only a Track key, as apiKey, without trackingKey.
    let m = message(
        test_conn(
            &app,
            json!({"siteId": US.site_id, "apiKey": US.tracking_key}),
        )
        .await
        .expect_error(422, "INVALID_CREDENTIALS"),
    );
    assert!(m.contains("apiKey is a Tracking API key"), "{m}");
    // A Pipelines key as the App key.
    let mut body = us_keys();
    body["apiKey"] = json!(US.cdp_api_key);
    let m = message(
        test_conn(&app, body)
            .await
            .expect_error(422, "INVALID_CREDENTIALS"),
    );
    assert!(m.contains("apiKey is a Data Pipelines source key"), "{m}");
    // An App key as the Pipelines key.
    let mut body = us_keys();
    body["cdpApiKey"] = json!(US.app_api_key);
    let a = test_conn(&app, body).await;
    let m = message(a.expect_error(422, "INVALID_CREDENTIALS"));
    assert!(m.contains("cdpApiKey is an App API key"), "{m}");
}

#[tokio::test]
async fn keys_of_the_other_region_say_which_region() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    // EU keys sent as US.
    let a = test_conn(
        &app,
        json!({"siteId": EU.site_id, "apiKey": EU.app_api_key, "trackingKey": EU.tracking_key,
               "cdpApiKey": EU.cdp_api_key, "region": "us"}),
    )
    .await;
    let m = message(a.expect_error(422, "INVALID_CREDENTIALS"));
    assert!(m.contains("Track credentials"), "{m}");
    assert!(
        m.contains("App API key belongs to a workspace in Customer.io's EU region"),
        "{m}"
    );
    assert!(
        m.contains("cdpApiKey belongs to a Data Pipelines source in Customer.io's EU region"),
        "{m}"
    );
    assert!(m.contains("set region to \"eu\""), "{m}");
    // The same keys as EU pass.
    let a = test_conn(
        &app,
        json!({"siteId": EU.site_id, "apiKey": EU.app_api_key, "trackingKey": EU.tracking_key,
               "cdpApiKey": EU.cdp_api_key, "region": "eu"}),
    )
    .await;
    let data = a.expect_ok(200);
    assert_eq!(data["region"], "eu");
    assert_eq!(data["account"]["workspaceId"], EU.environment_id);
}

#[tokio::test]
async fn a_track_pair_of_the_other_region_is_named_beside_a_valid_app_key() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    // A valid US App key with an EU Track pair, all said to be US: the Track pair's region is
    // the diagnosis.
    let a = test_conn(
        &app,
        json!({"siteId": EU.site_id, "apiKey": US.app_api_key, "trackingKey": EU.tracking_key}),
    )
    .await;
    let m = message(a.expect_error(422, "INVALID_CREDENTIALS"));
    assert!(m.contains("set region to \"eu\""), "{m}");
}

#[tokio::test]
async fn unknown_keys_get_a_plain_diagnosis() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let a = test_conn(
        &app,
        json!({"siteId": "0000000000", "apiKey": "nope0000nope", "trackingKey": "nope1111nope"}),
    )
    .await;
    let b = a.expect_error(422, "INVALID_CREDENTIALS");
    let m = message(b);
    assert!(m.contains("The App API (US region) rejected apiKey"), "{m}");
    assert!(
        m.contains("The Track API rejected siteId + trackingKey"),
        "{m}"
    );
    assert_eq!(b["details"]["platformStatus"], 401);
}

#[tokio::test]
async fn test_connection_validates_its_body() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let a = test_conn(&app, json!({"apiKey": US.app_api_key})).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "siteId");
    let mut body = us_keys();
    body["region"] = json!("ap");
    let a = test_conn(&app, body).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "region");
    let mut body = us_keys();
    body["apiKey"] = json!("  ");
    let a = test_conn(&app, body).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "apiKey");
    let a = app.call(Method::POST, TEST, None, Some(us_keys())).await;
    a.expect_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_rate_limit_answers_429_with_retry_after() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    sim.inject(&Fault::new("/v1/workspaces", FaultKind::RateLimit))
        .await
        .unwrap();
    let a = test_conn(&app, us_keys()).await;
    let b = a.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert!(a.headers.get("retry-after").is_some());
    assert_eq!(b["details"]["platformStatus"], 429);
    // Retried before giving up.
    assert!(sim.requests(Some("/v1/workspaces")).await.unwrap().len() > 1);
}

#[tokio::test]
async fn server_errors_and_malformed_bodies_are_connection_failures() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    sim.inject(&Fault::status("/api/v1/accounts/region", 503))
        .await
        .unwrap();
    let a = test_conn(&app, us_keys()).await;
    a.expect_error(502, "CONNECTION_FAILED");
    sim.clear_faults().await.unwrap();
    sim.inject(&Fault::new("/v1/workspaces", FaultKind::Malformed))
        .await
        .unwrap();
    let a = test_conn(&app, us_keys()).await;
    let m = message(a.expect_error(502, "CONNECTION_FAILED"));
    assert!(m.contains("malformed"), "{m}");
    // A garbled answer to a read is retried before giving up.
    assert!(sim.requests(Some("/v1/workspaces")).await.unwrap().len() > 1);
}

#[tokio::test]
async fn connect_tests_stores_masked_and_replaces() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key) = app.create_key("pub-cio").await;
    let a = app
        .call(
            Method::POST,
            CONNECT,
            Some(&key),
            Some(connect_body("pub-cio")),
        )
        .await;
    let data = a.expect_ok(200).clone();
    assert_eq!(data["platform"], "customerio");
    assert_eq!(data["publisherId"], "pub-cio");
    assert_eq!(data["status"], "connected");
    assert_eq!(data["region"], "us");
    assert_eq!(data["replaced"], false);
    assert_eq!(data["config"]["siteId"], US.site_id);
    assert_eq!(data["config"]["segmentIds"], json!(["1", "3"]));
    assert_eq!(data["config"]["journeyIds"], json!(["2"]));
    let creds = &data["credentials"];
    let tail = |s: &str| format!("…{}", &s[s.len() - 4..]);
    assert_eq!(creds["apiKey"], tail(US.app_api_key));
    assert_eq!(creds["trackingKey"], tail(US.tracking_key));
    assert_eq!(creds["cdpApiKey"], tail(US.cdp_api_key));
    assert_eq!(creds["webhookSigningKey"], tail(US.webhook_signing_key));
    assert!(
        data["webhookUrl"]
            .as_str()
            .unwrap()
            .contains("/webhooks/customerio/")
    );
    let text = a.body.to_string();
    for secret in [
        US.app_api_key,
        US.tracking_key,
        US.cdp_api_key,
        US.webhook_signing_key,
    ] {
        assert!(!text.contains(secret));
    }

    let again = app
        .call(
            Method::POST,
            CONNECT,
            Some(&key),
            Some(connect_body("pub-cio")),
        )
        .await;
    assert_eq!(again.expect_ok(200)["replaced"], true);
    let list = app.get("/api/integrations/pub-cio", &key).await;
    assert_eq!(
        list.expect_ok(200)["integrations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_failed_connect_stores_nothing() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let mut body = connect_body("pub-cio");
    body["trackingKey"] = json!(US.app_api_key);
    let a = app
        .call(Method::POST, CONNECT, Some(ADMIN_TOKEN), Some(body))
        .await;
    let m = message(a.expect_error(422, "INVALID_CREDENTIALS"));
    assert!(m.contains("trackingKey is an App API key"), "{m}");
    let list = app.get("/api/integrations/pub-cio", ADMIN_TOKEN).await;
    assert_eq!(list.expect_ok(200)["integrations"], json!([]));

    // Missing trackingKey is a validation error before any upstream call.
    let mut body = connect_body("pub-cio");
    body.as_object_mut().unwrap().remove("trackingKey");
    let a = app
        .call(Method::POST, CONNECT, Some(ADMIN_TOKEN), Some(body))
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "trackingKey");

    // Another publisher's body.
    let (_, key) = app.create_key("pub-other").await;
    let a = app
        .call(
            Method::POST,
            CONNECT,
            Some(&key),
            Some(connect_body("pub-cio")),
        )
        .await;
    a.expect_error(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn connect_names_segment_and_journey_ids_the_workspace_lacks() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let mut body = connect_body("pub-cio");
    body["config"] = json!({"segmentIds": ["1", "999", 4242], "journeyIds": ["2", "777"]});
    let a = app
        .call(Method::POST, CONNECT, Some(ADMIN_TOKEN), Some(body))
        .await;
    let b = a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "config.segmentIds");
    let m = message(b);
    assert!(m.contains("999, 4242"), "{m}");
    assert!(m.contains("777"), "{m}");
    assert_eq!(b["details"]["missingIds"], json!(["999", "4242"]));
    let list = app.get("/api/integrations/pub-cio", ADMIN_TOKEN).await;
    assert_eq!(list.expect_ok(200)["integrations"], json!([]));

    let mut body = connect_body("pub-cio");
    body["config"] = json!({"segmentIds": [true]});
    let a = app
        .call(Method::POST, CONNECT, Some(ADMIN_TOKEN), Some(body))
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "config.segmentIds[0]");
}

async fn connected(app: &TestApp, publisher: &str) -> String {
    let (_, key) = app.create_key(publisher).await;
    app.call(
        Method::POST,
        CONNECT,
        Some(&key),
        Some(connect_body(publisher)),
    )
    .await
    .expect_ok(200);
    key
}

#[tokio::test]
async fn campaigns_are_listed_filtered_and_paged() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let a = app
        .get("/api/integrations/pub-cio/customerio/campaigns", &key)
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 12);
    assert_eq!(data["limit"], 100);
    assert_eq!(data["offset"], 0);
    let campaigns = data["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 12);
    let first = &campaigns[0];
    assert_eq!(first["id"], "1");
    assert_eq!(first["platform"], "customerio");
    assert!(first["name"].is_string());
    assert!(["running", "draft", "stopped"].contains(&first["status"].as_str().unwrap()));
    let created = first["createdAt"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    // One upstream call with the stored App key as the bearer.
    let upstream = sim.requests(Some("/v1/campaigns")).await.unwrap();
    assert_eq!(
        upstream.last().unwrap().headers["authorization"],
        format!("Bearer {}", US.app_api_key)
    );

    let running = app
        .get(
            "/api/integrations/pub-cio/customerio/campaigns?state=running",
            &key,
        )
        .await;
    let running = running.expect_ok(200);
    assert!(
        running["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "running")
    );
    let active = app
        .get(
            "/api/integrations/pub-cio/customerio/campaigns?active=true",
            &key,
        )
        .await;
    assert_eq!(active.expect_ok(200)["total"], running["total"]);
    let events = app
        .get(
            "/api/integrations/pub-cio/customerio/campaigns?type=event",
            &key,
        )
        .await;
    assert!(
        events.expect_ok(200)["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] == "event")
    );

    let paged = app
        .get(
            "/api/integrations/pub-cio/customerio/campaigns?limit=5&offset=10",
            &key,
        )
        .await;
    let paged = paged.expect_ok(200);
    assert_eq!(paged["campaigns"].as_array().unwrap().len(), 2);
    assert_eq!(paged["campaigns"][0]["id"], "11");
    assert_eq!(paged["total"], 12);

    for bad in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "state=paused",
        "active=maybe",
    ] {
        let a = app
            .get(
                &format!("/api/integrations/pub-cio/customerio/campaigns?{bad}"),
                &key,
            )
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), bad.split('=').next().unwrap(), "{bad}");
    }
}

#[tokio::test]
async fn reads_need_an_integration_and_the_right_publisher() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key) = app.create_key("pub-none").await;
    let a = app
        .get("/api/integrations/pub-none/customerio/campaigns", &key)
        .await;
    a.expect_error(404, "INTEGRATION_NOT_FOUND");
    let a = app
        .get("/api/integrations/pub-cio/customerio/segments", &key)
        .await;
    a.expect_error(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn segments_are_listed_and_upstream_errors_mapped() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let a = app
        .get(
            "/api/integrations/pub-cio/customerio/segments?limit=3",
            &key,
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 10);
    let segs = data["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[0]["id"], "1");
    assert_eq!(segs[0]["name"], "All readers");
    assert_eq!(segs[0]["type"], "dynamic");
    assert_eq!(segs[2]["type"], "manual");
    assert_eq!(segs[0]["platform"], "customerio");

    sim.inject(&Fault::status("/v1/segments", 500))
        .await
        .unwrap();
    let a = app
        .get("/api/integrations/pub-cio/customerio/segments", &key)
        .await;
    let b = a.expect_error(502, "CONNECTION_FAILED");
    assert_eq!(b["details"]["platformStatus"], 500);
    sim.clear_faults().await.unwrap();
    sim.inject(&Fault::status("/v1/segments", 401))
        .await
        .unwrap();
    let a = app
        .get("/api/integrations/pub-cio/customerio/segments", &key)
        .await;
    let m = message(a.expect_error(422, "INVALID_CREDENTIALS"));
    assert!(m.contains("App API key"), "{m}");
}

#[tokio::test]
async fn broadcasts_newsletters_and_people_are_read() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;

    let a = app
        .get("/api/integrations/pub-cio/customerio/broadcasts", &key)
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 5);
    let b = data["broadcasts"].as_array().unwrap();
    assert_eq!(b[0]["id"], "1001");
    assert_eq!(b[0]["type"], "triggered_broadcast");
    assert_eq!(
        b[4]["status"], "draft",
        "the last seeded broadcast is a draft"
    );
    assert!(
        b[0]["createdAt"].as_str().unwrap().ends_with('Z')
            || b[0]["createdAt"].as_str().unwrap().contains("+00:00")
    );

    let a = app
        .get(
            "/api/integrations/pub-cio/customerio/newsletters?limit=50",
            &key,
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 36);
    let n = data["newsletters"].as_array().unwrap();
    assert_eq!(n[0]["id"], "5001", "oldest first");
    assert_eq!(n[0]["type"], "newsletter");
    assert_eq!(n[0]["status"], "sent");
    assert_eq!(n[35]["status"], "draft", "the newest is a draft");
    let reqs = sim.requests(Some("/v1/newsletters")).await.unwrap();
    assert!(
        reqs.iter()
            .all(|r| r.query.as_deref().unwrap_or("").contains("limit=100"))
    );

    // People by email; `+` reaches the platform encoded.
    let person = sim
        .get("/_sim/people?workspace=us&id=100001")
        .await
        .unwrap();
    let email = person["email"]
        .as_str()
        .or_else(|| person["attributes"]["email"].as_str())
        .unwrap_or_else(|| panic!("{person}"))
        .to_owned();
    let a = app
        .get(
            &format!("/api/integrations/pub-cio/customerio/contacts?email={email}"),
            &key,
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["count"], 1, "{data}");
    assert_eq!(data["contacts"][0]["id"], "100001");
    assert_eq!(data["contacts"][0]["email"], email);
    assert_eq!(data["contacts"][0]["platform"], "customerio");
    let a = app
        .get(
            "/api/integrations/pub-cio/customerio/contacts?email=nobody%2Btag@example.com",
            &key,
        )
        .await;
    assert_eq!(a.expect_ok(200)["count"], 0);
    let last = sim.requests(Some("/v1/customers")).await.unwrap();
    assert!(
        last.last()
            .unwrap()
            .query
            .as_deref()
            .unwrap()
            .contains("%2B")
    );
    let a = app
        .get("/api/integrations/pub-cio/customerio/contacts", &key)
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "email");
}

const SUBSCRIBERS: &str = "/api/integrations/pub-cio/customerio/subscribers";

#[tokio::test]
async fn a_subscriber_is_identified_through_track() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let a = app
        .call(
            Method::POST,
            SUBSCRIBERS,
            Some(&key),
            Some(
                json!({"email": "new.reader+cio@example.com", "firstName": "Ada",
                        "attributes": {"plan": "pro"}, "tags": ["vip"]}),
            ),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(
        *data,
        json!({"platform": "customerio", "id": "new.reader+cio@example.com", "status": "upserted"})
    );
    let puts = sim.requests(Some("/api/v1/customers/")).await.unwrap();
    let put = puts.last().unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.headers["authorization"].starts_with("Basic "));
    assert_eq!(put.json()["first_name"], "Ada");
    assert_eq!(put.json()["plan"], "pro");
    let stored = sim
        .get("/_sim/people?workspace=us&email=new.reader%2Bcio@example.com")
        .await
        .unwrap();
    assert_eq!(stored["attributes"]["first_name"], "Ada");

    // By userId.
    let a = app
        .call(
            Method::POST,
            SUBSCRIBERS,
            Some(&key),
            Some(json!({"email": "u42@example.com", "userId": "u 42"})),
        )
        .await;
    assert_eq!(a.expect_ok(200)["id"], "u 42");
    let stored = sim
        .get("/_sim/people?workspace=us&id=u%2042")
        .await
        .unwrap();
    assert_eq!(stored["email"], "u42@example.com");
}

#[tokio::test]
async fn subscriber_limits_are_checked_before_sending() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let before = sim
        .requests(Some("/api/v1/customers/"))
        .await
        .unwrap()
        .len();
    let cases = [
        (
            json!({"email": "a@example.com", "attributes": {"bio": "x".repeat(1001)}}),
            "attributes.bio",
        ),
        (
            json!({"email": "a@example.com", "userId": "i".repeat(151)}),
            "userId",
        ),
        (json!({"firstName": "No id"}), "email"),
        (json!({"email": "not-an-email"}), "email"),
        (json!({"email": 5}), "email"),
    ];
    for (body, field) in cases {
        let a = app
            .call(Method::POST, SUBSCRIBERS, Some(&key), Some(body))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }
    let mut many = serde_json::Map::new();
    for i in 0..301 {
        many.insert(format!("a{i}"), json!(i));
    }
    let a = app
        .call(
            Method::POST,
            SUBSCRIBERS,
            Some(&key),
            Some(json!({"email": "a@example.com", "attributes": many})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "attributes");
    let after = sim
        .requests(Some("/api/v1/customers/"))
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing was sent");
}

#[tokio::test]
async fn many_subscribers_go_through_v2_batch_with_207_mapped_per_item() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let a = app
        .call(
            Method::POST,
            SUBSCRIBERS,
            Some(&key),
            Some(json!({"subscribers": [
                {"email": "one@example.com", "firstName": "One"},
                {"email": "two@example.com", "attributes": {"bio": "x".repeat(1001)}},
                {"phone": "555-1234"},
                {"userId": "three", "email": "three@example.com"},
            ]})),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["accepted"], 2, "{data}");
    let failed = data["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    // Ours: refused before sending.
    assert_eq!(failed[0]["index"], 1);
    assert_eq!(failed[0]["code"], "VALIDATION_ERROR");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("attributes.bio")
    );
    // Customer.io's: a 207 batch_index mapped back to the caller's index.
    assert_eq!(failed[1]["index"], 2);
    assert!(
        failed[1]["error"].as_str().unwrap().contains("phone"),
        "{}",
        failed[1]
    );
    let batches = sim.requests(Some("/api/v2/batch")).await.unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].status, Some(207));
    assert_eq!(batches[0].json()["batch"].as_array().unwrap().len(), 3);
    let stored = sim.get("/_sim/people?workspace=us&id=three").await.unwrap();
    assert_eq!(stored["email"], "three@example.com");
    let stored = sim
        .get("/_sim/people?workspace=us&email=one@example.com")
        .await
        .unwrap();
    assert_eq!(stored["attributes"]["first_name"], "One");

    let a = app
        .call(
            Method::POST,
            SUBSCRIBERS,
            Some(&key),
            Some(json!({"subscribers": []})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "subscribers");
}

#[tokio::test]
async fn events_go_through_track_or_pipelines_within_limits() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let events = "/api/integrations/pub-cio/customerio/events";
    // By email: Track.
    let a = app
        .call(
            Method::POST,
            events,
            Some(&key),
            Some(
                json!({"name": "article_read", "email": "reader@example.com",
                          "data": {"slug": "hello"}, "timestamp": "2026-01-02T03:04:05Z"}),
            ),
        )
        .await;
    // The unified answer (CONTRACT §7); which API took the event is seen at the simulators.
    assert_eq!(
        *a.expect_ok(200),
        json!({"platform": "customerio", "status": "accepted"})
    );
    let sent = sim
        .requests(Some("/api/v1/customers/reader%40example.com/events"))
        .await
        .unwrap();
    let sent = sent.last().expect("the Track event call");
    assert_eq!(sent.json()["name"], "article_read");
    assert_eq!(sent.json()["timestamp"], 1_767_323_045);
    // Anonymous: Track's anonymous endpoint.
    let a = app
        .call(
            Method::POST,
            events,
            Some(&key),
            Some(json!({"name": "page_view"})),
        )
        .await;
    assert_eq!(a.expect_ok(200)["status"], "accepted");
    assert_eq!(sim.requests(Some("/api/v1/events")).await.unwrap().len(), 1);
    // By user id with a stored cdpApiKey: Data Pipelines, strict mode.
    let a = app
        .call(
            Method::POST,
            events,
            Some(&key),
            Some(json!({"name": "subscribed", "userId": "100001"})),
        )
        .await;
    assert_eq!(a.expect_ok(200)["status"], "accepted");
    let cdp = sim.requests(Some("/v1/track")).await.unwrap();
    assert_eq!(cdp.last().unwrap().json()["event"], "subscribed");
    assert_eq!(cdp.last().unwrap().status, Some(200));
    // Limits, before any call.
    let before = sim.requests(None).await.unwrap().len();
    for (body, field) in [
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": " "}), "name"),
        (
            json!({"name": "big", "data": {"blob": "y".repeat(100_001)}}),
            "data",
        ),
        (json!({"name": "t", "timestamp": "yesterday"}), "timestamp"),
    ] {
        let a = app.call(Method::POST, events, Some(&key), Some(body)).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }
    assert_eq!(sim.requests(None).await.unwrap().len(), before);
}

#[tokio::test]
async fn many_events_are_tracked_one_call_each_with_failures_per_item() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let events = "/api/integrations/pub-cio/customerio/events";
    let before = sim.requests(None).await.unwrap().len();
    let a = app
        .call(
            Method::POST,
            events,
            Some(&key),
            Some(json!({"events": [
                {"name": "article_read", "email": "reader@example.com", "data": {"slug": "a"}},
                {"name": "x".repeat(101), "email": "reader@example.com"},
                {"name": 5},
                {"name": "page_view"},
                {"name": "late", "email": "reader@example.com", "timestamp": "yesterday"},
            ]})),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["accepted"], 2, "{data}");
    let failed = data["failed"].as_array().unwrap();
    let at: Vec<u64> = failed
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(at, [1, 2, 4], "{data}");
    for f in failed {
        assert_eq!(f["code"], "VALIDATION_ERROR");
    }
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("events[1].name: ")
    );
    assert!(
        failed[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("events[4].timestamp: ")
    );
    // Only the two accepted events reached Customer.io.
    assert_eq!(sim.requests(None).await.unwrap().len(), before + 2);
    let sent = sim
        .requests(Some("/api/v1/customers/reader%40example.com/events"))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["data"]["slug"], "a");

    // The batch's size is Customer.io's session's rule.
    let many: Vec<Value> = (0..101).map(|_| json!({"name": "n"})).collect();
    let a = app
        .call(
            Method::POST,
            events,
            Some(&key),
            Some(json!({"events": many})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "events");
}

#[tokio::test]
async fn transactional_messages_are_sent_per_channel() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let messages = "/api/integrations/pub-cio/customerio/messages";
    let a = app
        .call(
            Method::POST,
            messages,
            Some(&key),
            Some(json!({"channel": "email", "campaignId": "1",
                          "to": {"email": "reader@example.com"}, "data": {"name": "Ada"}})),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["status"], "queued");
    assert_eq!(data["channel"], "email");
    assert!(!data["messageId"].as_str().unwrap().is_empty());
    let sent = sim.requests(Some("/v1/send/email")).await.unwrap();
    let body = sent.last().unwrap().json();
    assert_eq!(body["transactional_message_id"], 1);
    assert_eq!(body["message_data"]["name"], "Ada");
    assert_eq!(body["identifiers"]["email"], "reader@example.com");

    let a = app
        .call(
            Method::POST,
            messages,
            Some(&key),
            Some(json!({"channel": "sms", "campaignId": "login_code",
                          "to": {"userId": "100001", "phone": "+15551234567"}})),
        )
        .await;
    assert_eq!(a.expect_ok(200)["channel"], "sms");
    let a = app
        .call(
            Method::POST,
            messages,
            Some(&key),
            Some(json!({"channel": "push", "campaignId": "5", "to": {"userId": "100001"}})),
        )
        .await;
    assert_eq!(a.expect_ok(200)["channel"], "push");

    // An unknown message is Customer.io's 404, named.
    let a = app
        .call(
            Method::POST,
            messages,
            Some(&key),
            Some(
                json!({"channel": "email", "campaignId": "999", "to": {"email": "r@example.com"}}),
            ),
        )
        .await;
    a.expect_error(404, "NOT_FOUND");

    for (body, field) in [
        (
            json!({"channel": "fax", "campaignId": "1", "to": {"email": "r@example.com"}}),
            "channel",
        ),
        (
            json!({"channel": "email", "to": {"email": "r@example.com"}}),
            "campaignId",
        ),
        (
            json!({"channel": "sms", "campaignId": "4", "to": {"userId": "1", "phone": "555"}}),
            "to.phone",
        ),
        (
            json!({"channel": "push", "campaignId": "5", "to": {}}),
            "to.userId",
        ),
    ] {
        let a = app
            .call(Method::POST, messages, Some(&key), Some(body))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }
}

#[tokio::test]
async fn the_app_budget_paces_calls_instead_of_spending_them_on_429s() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    // Connect spent App calls from the same budget; start from a fresh second on both sides.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    sim.post("/_sim/limits", &json!({"reset": true}))
        .await
        .unwrap();
    let before = sim.counter("429_app").await.unwrap_or(0);
    let started = std::time::Instant::now();
    let calls = (0..15).map(|_| app.get("/api/integrations/pub-cio/customerio/segments", &key));
    let answers = futures::future::join_all(calls).await;
    for a in &answers {
        a.expect_ok(200);
    }
    // 10 per second with a burst of 10: the last 5 wait for tokens.
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    let after = sim.counter("429_app").await.unwrap_or(0);
    assert!(
        after - before <= 2,
        "the simulator answered {} 429s",
        after - before
    );
}

#[tokio::test]
async fn broadcast_triggers_keep_their_one_per_ten_seconds_budget() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = sim(&sandbox);
    let key = connected(&app, "pub-cio").await;
    let messages = "/api/integrations/pub-cio/customerio/messages";
    let trigger = |who: Value| json!({"channel": "email", "to": who, "data": {"broadcastId": 1001, "coupon": "X1"}});

    // data.broadcastId: App API POST /v1/campaigns/{id}/triggers, the rest of data passed on.
    let a = app
        .call(
            Method::POST,
            messages,
            Some(&key),
            Some(trigger(json!({"email": "reader@example.com"}))),
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["status"], "queued");
    assert!(!d["messageId"].as_str().unwrap().is_empty());
    let sent = sim
        .requests(Some("/v1/campaigns/1001/triggers"))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(body["emails"], json!(["reader@example.com"]));
    assert_eq!(body["data"], json!({"coupon": "X1"}));

    // A second trigger within 10 s: RATE_LIMIT_EXCEEDED at once, Retry-After ≤ 11 s, and
    // Customer.io never saw it (no 429 spent).
    let started = std::time::Instant::now();
    let a = app
        .call(
            Method::POST,
            messages,
            Some(&key),
            Some(trigger(json!({"userId": "42"}))),
        )
        .await;
    a.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    // 10 s, paced with the budgets' 3 % headroom: at most 10.3 s, rounded up.
    assert!((1..=11).contains(&wait), "{wait}");
    assert_eq!(
        sim.requests(Some("/v1/campaigns/1001/triggers"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(sim.counter("429").await.unwrap_or(0), 0);

    // Checked before Customer.io: both ids, a bad id, another channel.
    for (body, field) in [
        (
            json!({"channel": "email", "campaignId": "1", "to": {"email": "a@example.com"},
                   "data": {"broadcastId": 1001}}),
            "campaignId",
        ),
        (
            json!({"channel": "email", "to": {"email": "a@example.com"},
                   "data": {"broadcastId": "nope"}}),
            "data.broadcastId",
        ),
        (
            json!({"channel": "sms", "to": {"phone": "+15550100"},
                   "data": {"broadcastId": 1001}}),
            "channel",
        ),
    ] {
        let a = app
            .call(Method::POST, messages, Some(&key), Some(body))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }
}
