//! The envelope and its rejections, the general endpoints, request ids, metrics, restarts.

use axum::{
    Json, Router,
    routing::{get, post},
};
use chrono::Utc;
use domain::{Platform, PublisherId, Region};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use sharpsend::{
    http::{
        extract::{ApiJson, ApiQuery},
        middleware::authorize,
    },
    integrations::{self, NewConnection},
};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ConnectBody {
    publisher_id: String,
    api_key: String,
    region: Option<String>,
    config: ConnectConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ConnectConfig {
    from_email: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Paging {
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn takes_json(ApiJson(_): ApiJson<ConnectBody>) -> Json<Value> {
    Json(json!({"success": true, "data": {}}))
}

async fn takes_query(ApiQuery(p): ApiQuery<Paging>) -> Json<Value> {
    Json(json!({"success": true, "data": {"limit": p.limit, "offset": p.offset}}))
}

async fn panics() -> Json<Value> {
    panic!("boom in a handler")
}

/// Routes shaped like the connector endpoints, under the real middleware stack.
async fn probe_app(db: &store::testing::TestDb) -> TestApp {
    let probe = TestApp::spawn(db).await;
    let state = probe.state.clone();
    probe.stop().await;
    let extra = Router::new()
        .route("/api/integrations/iterable/connect", post(takes_json))
        .route(
            "/api/integrations/{publisherId}/iterable/campaigns",
            get(takes_query),
        )
        .route("/api/boom", get(panics))
        .route_layer(axum::middleware::from_fn_with_state(state, authorize));
    TestApp::spawn_router(db, extra).await
}

#[tokio::test]
async fn every_body_and_query_rejection_answers_in_the_envelope() {
    let db = fresh_db().await;
    let app = probe_app(&db).await;
    let url = app.url("/api/integrations/iterable/connect");
    let send = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app.http.post(&url).bearer_auth(ADMIN_TOKEN).body(body);
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        async move { TestApp::answer(req.send().await.unwrap()).await }
    };
    let valid = r#"{"publisherId":"p1","apiKey":"k","config":{"fromEmail":"a@b.co"}}"#;
    send(valid, Some("application/json")).await.expect_ok(200);

    let a = send(valid, None).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "Content-Type");
    send(valid, Some("text/plain"))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let a = send(r#"{"publisherId": "p1", "#, Some("application/json")).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert!(a.body["error"].as_str().unwrap().contains("Malformed JSON"));
    let a = send(
        r#"{"publisherId":"p1","config":{"fromEmail":"a@b.co"}}"#,
        Some("application/json"),
    )
    .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "apiKey");
    let a = send(
        r#"{"publisherId":"p1","apiKey":7,"config":{"fromEmail":"a@b.co"}}"#,
        Some("application/json"),
    )
    .await;
    assert_eq!(a.field(), "apiKey");
    let a = send(
        r#"{"publisherId":"p1","apiKey":"k","config":{}}"#,
        Some("application/json"),
    )
    .await;
    assert_eq!(a.field(), "config.fromEmail");
    send("", Some("application/json"))
        .await
        .expect_error(400, "VALIDATION_ERROR");

    let a = app
        .get(
            "/api/integrations/p1/iterable/campaigns?limit=ten",
            ADMIN_TOKEN,
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "limit");
    let a = app
        .get(
            "/api/integrations/p1/iterable/campaigns?limit=5&offset=2",
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(a.expect_ok(200)["limit"], 5);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_get_413_on_any_route() {
    let db = fresh_db().await;
    let app = probe_app(&db).await;
    let big = format!(
        r#"{{"publisherId":"p1","apiKey":"{}","config":{{"fromEmail":"a@b.co"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    for path in [
        "/api/integrations/iterable/connect",
        "/api/integrations/p1",
        "/nowhere",
    ] {
        let resp = app
            .http
            .post(app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Content-Type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        TestApp::answer(resp)
            .await
            .expect_error(413, "PAYLOAD_TOO_LARGE");
    }
    // A streamed body without Content-Length is cut at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(big.clone().into_bytes())];
    let resp = app
        .http
        .post(app.url("/api/integrations/iterable/connect"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    TestApp::answer(resp)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_panics_answer_in_the_envelope() {
    let db = fresh_db().await;
    let app = probe_app(&db).await;
    app.get("/api/nothing-here", ADMIN_TOKEN)
        .await
        .expect_error(404, "NOT_FOUND");
    app.call(Method::GET, "/nothing", None, None)
        .await
        .expect_error(404, "NOT_FOUND");
    let a = app
        .call(
            Method::PUT,
            "/api/integrations/iterable/connect",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    a.expect_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(a.headers.get("allow").unwrap(), "POST");
    // The envelope names what the path takes, and the request id survives the rewrite.
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .ends_with("It takes: POST."),
        "{}",
        a.body
    );
    assert!(a.headers.get("x-request-id").is_some());
    let a = app.get("/api/boom", ADMIN_TOKEN).await;
    a.expect_error(500, "INTERNAL_ERROR");
    assert!(
        !a.body.to_string().contains("boom"),
        "the panic message stays in the log"
    );
    assert!(a.headers.get("x-request-id").is_some());
    // The server survived the panic.
    app.get("/api/integrations/pub-a", ADMIN_TOKEN).await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let resp = app
        .http
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    for path in ["/healthz", "/api/platforms", "/missing"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a UUID on {path}");
    }
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn health_readiness_platforms_and_metrics() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None)
            .await
            .expect_ok(200)["status"],
        "ok"
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.expect_ok(200)["database"], app.state.store.backend());

    let platforms = app.get("/api/platforms", ADMIN_TOKEN).await;
    let list = platforms.expect_ok(200)["platforms"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 3);
    let keap = list.iter().find(|p| p["platform"] == "keap").unwrap();
    assert_eq!(keap["capabilities"]["sms"]["supported"], false);
    assert_eq!(keap["capabilities"]["crm"]["supported"], true);
    assert_eq!(keap["regions"], json!([]));
    let iterable = list.iter().find(|p| p["platform"] == "iterable").unwrap();
    assert_eq!(iterable["capabilities"]["templates"]["supported"], true);
    assert_eq!(
        iterable["syncKinds"],
        json!(["campaigns", "lists", "templates", "users", "events"])
    );

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"sharpsend_http_requests_total{method="GET",route="/api/platforms",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("sharpsend_http_request_duration_seconds_bucket"));
    assert!(!metrics.contains("test-admin-token"));
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_and_listed_without_secrets() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (id, key) = app.create_key("pub-a").await;
    assert!(key.starts_with("ssk_") && key.len() > 40);
    let list = app
        .get("/api/admin/publishers/pub-a/api-keys", ADMIN_TOKEN)
        .await;
    let text = list.body.to_string();
    assert!(!text.contains(&key), "the key never appears again");
    let keys = list.expect_ok(200)["apiKeys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));
    app.call(
        Method::DELETE,
        "/api/admin/api-keys/key_missing",
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    app.stop().await;
    db.cleanup().await;
}

fn connection(publisher: &str, platform: Platform, secret: &str) -> NewConnection {
    NewConnection {
        publisher: PublisherId::parse(publisher).unwrap(),
        platform,
        region: platform.has_regions().then_some(Region::Eu),
        config: json!({"fromEmail": "news@example.com"}),
        secrets: vec![("apiKey", secret.to_owned().into())],
    }
}

#[tokio::test]
async fn list_and_disconnect_integrations_with_their_synced_data() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("pub-a").await;
    assert_eq!(
        app.get("/api/integrations/pub-a", &key)
            .await
            .expect_ok(200)["integrations"],
        json!([])
    );

    let first = integrations::connect(
        &app.state,
        connection("pub-a", Platform::Iterable, "it-key-0001-wxyz"),
    )
    .await
    .unwrap();
    assert_eq!(first.replaced, Some(false));
    let again = integrations::connect(
        &app.state,
        connection("pub-a", Platform::Iterable, "it-key-0002-abcd"),
    )
    .await
    .unwrap();
    assert_eq!(again.replaced, Some(true));
    assert_eq!(
        again.webhook_url, first.webhook_url,
        "the webhook URL survives a reconnect"
    );
    integrations::connect(
        &app.state,
        connection("pub-b", Platform::Keap, "other-publisher-secret"),
    )
    .await
    .unwrap();

    let listed = app.get("/api/integrations/pub-a", &key).await;
    let items = listed.expect_ok(200)["integrations"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1, "only pub-a's integrations");
    let it = &items[0];
    assert_eq!(it["platform"], "iterable");
    assert_eq!(it["publisherId"], "pub-a");
    assert_eq!(it["status"], "connected");
    assert_eq!(it["region"], "eu");
    assert_eq!(it["credentials"]["apiKey"], "…abcd");
    assert_eq!(it["config"]["fromEmail"], "news@example.com");
    assert!(
        it["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("templates"))
    );
    assert!(it["lastSync"].is_null());
    let hook = it["webhookUrl"].as_str().unwrap();
    assert!(
        hook.starts_with(&format!("http://{}/webhooks/iterable/wh_", app.addr)),
        "{hook}"
    );
    assert!(
        !listed.body.to_string().contains("it-key-0002"),
        "never the secret itself"
    );

    // A sync job belongs to the integration's synced data: it shows as lastSync, and goes on delete.
    let record = app
        .state
        .store
        .get_integration(&PublisherId::parse("pub-a").unwrap(), Platform::Iterable)
        .await
        .unwrap()
        .unwrap();
    app.state
        .store
        .insert_sync_job(store::NewSyncJob {
            id: "job_1".into(),
            integration_id: record.id.clone(),
            platform: Platform::Iterable,
            kinds: vec!["campaigns".into()],
            full: false,
            now: Utc::now(),
        })
        .await
        .unwrap();
    let listed = app.get("/api/integrations/pub-a", &key).await;
    assert_eq!(
        listed.expect_ok(200)["integrations"][0]["lastSync"]["jobId"],
        "job_1"
    );

    let gone = app
        .call(
            Method::DELETE,
            "/api/integrations/pub-a/iterable",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        gone.expect_ok(200).clone(),
        json!({"platform": "iterable", "disconnected": true})
    );
    app.call(
        Method::DELETE,
        "/api/integrations/pub-a/iterable",
        Some(&key),
        None,
    )
    .await
    .expect_error(404, "INTEGRATION_NOT_FOUND");
    assert!(
        app.state
            .store
            .get_credentials(&record.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .store
            .latest_sync_job(&record.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.get("/api/integrations/pub-a", &key)
            .await
            .expect_ok(200)["integrations"],
        json!([])
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_restart_keeps_keys_and_integrations() {
    let db = fresh_db().await;
    let master = random_master_key();
    let app = TestApp::spawn_with(&db, &master, &[]).await;
    let (_, key) = app.create_key("pub-a").await;
    integrations::connect(
        &app.state,
        connection("pub-a", Platform::Customerio, "cio-app-key-7788"),
    )
    .await
    .unwrap();
    app.stop().await;

    let app = TestApp::spawn_with(&db, &master, &[]).await;
    let listed = app.get("/api/integrations/pub-a", &key).await;
    let items = listed.expect_ok(200)["integrations"].clone();
    assert_eq!(items[0]["platform"], "customerio");
    assert_eq!(items[0]["credentials"]["apiKey"], "…7788");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn operations_a_platform_lacks_answer_unsupported_before_any_upstream_call() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key) = app.create_key("pub-a").await;
    let keap = sim_core::SimClient::new(
        sandbox
            .upstream_overrides()
            .into_iter()
            .find(|(v, _)| *v == "SHARPSEND_KEAP_API_URL")
            .unwrap()
            .1,
    );
    let before = keap.requests(None).await.unwrap().len();

    // The matrix says no: Keap has no SMS, push, in-app, events or templates; Customer.io no templates.
    for channel in ["sms", "push", "in_app"] {
        let a = app
            .call(
                Method::POST,
                "/api/integrations/pub-a/keap/messages",
                Some(&key),
                Some(json!({"channel": channel, "to": {"phone": "+15550100"}})),
            )
            .await;
        a.expect_error(422, "UNSUPPORTED_OPERATION");
        assert_eq!(a.body["details"]["capability"], channel);
    }
    let a = app
        .call(
            Method::POST,
            "/api/integrations/pub-a/keap/events",
            Some(&key),
            Some(json!({"name": "x"})),
        )
        .await;
    a.expect_error(422, "UNSUPPORTED_OPERATION");
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("Keap does not support events_track")
    );
    app.get("/api/integrations/pub-a/keap/templates", &key)
        .await
        .expect_error(422, "UNSUPPORTED_OPERATION");
    app.get("/api/integrations/pub-a/customerio/templates", &key)
        .await
        .expect_error(422, "UNSUPPORTED_OPERATION");
    assert_eq!(
        keap.requests(None).await.unwrap().len(),
        before,
        "no upstream call was made"
    );

    // Unknown platforms and operations, a missing channel, another publisher.
    let a = app
        .get("/api/integrations/pub-a/hubspot/campaigns", &key)
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "platform");
    app.get("/api/integrations/pub-a/keap/whatever", &key)
        .await
        .expect_error(404, "NOT_FOUND");
    let a = app
        .call(
            Method::POST,
            "/api/integrations/pub-a/keap/messages",
            Some(&key),
            Some(json!({"to": {}})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "channel");
    app.get("/api/integrations/pub-b/keap/templates", &key)
        .await
        .expect_error(403, "PERMISSION_DENIED");
    app.stop().await;
    db.cleanup().await;
}

/// A method a route does not take is 405 before any check of the request: a body the POST
/// handler would refuse, or no token at all, does not turn it into a 400 or a 401 (schemathesis
/// found `TRACE` with a body answered 400).
#[tokio::test]
async fn an_undocumented_method_is_405_before_the_gate() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let bad_body = serde_json::json!({"publisherId": "", "apiKey": ""});
    for (method, token) in [
        (Method::PUT, Some(ADMIN_TOKEN)),
        (Method::TRACE, Some(ADMIN_TOKEN)),
        (Method::PATCH, None),
    ] {
        let a = app
            .call(
                method.clone(),
                "/api/integrations/keap/connect",
                token,
                Some(bad_body.clone()),
            )
            .await;
        a.expect_error(405, "METHOD_NOT_ALLOWED");
        assert_eq!(a.headers.get("allow").unwrap(), "POST", "{method}");
    }
    app.stop().await;
    db.cleanup().await;
}

/// The read filters whose form the document fixes are refused when malformed on every read,
/// including one that does not use them (schemathesis: `since=null` was accepted on Iterable's
/// campaigns, which ignore `since`), before any integration is looked up.
#[tokio::test]
async fn malformed_read_filters_are_refused_on_every_read() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    for (query, field) in [
        ("since=null", "since"),
        ("since=", "since"),
        ("channel=EMAIL", "channel"),
        ("channel=", "channel"),
    ] {
        for path in [
            "/api/integrations/pub-a/iterable/campaigns",
            "/api/integrations/pub-a/keap/contacts",
            "/api/integrations/iterable/pub-a/campaigns",
        ] {
            let a = app.get(&format!("{path}?{query}"), ADMIN_TOKEN).await;
            a.expect_error(400, "VALIDATION_ERROR");
            assert_eq!(a.body["details"]["field"], field, "{path}?{query}");
        }
    }
    let a = app
        .get(
            "/api/integrations/pub-a/iterable/campaigns/1/metrics?to=",
            ADMIN_TOKEN,
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    app.stop().await;
    db.cleanup().await;
}
