//! Iterable through the real server against its simulator.

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::{Sandbox, SandboxOptions};
use sim_core::{Fault, FaultKind, SimClient};
use sim_iterable::{
    ENV_EU, ENV_US, EU_SERVER_KEY, US_JS_KEY, US_JWT_KEY, US_MOBILE_KEY, US_READ_ONLY_KEY,
    US_SERVER_KEY,
};
use store::testing::TestDb;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const TEST: &str = "/api/integrations/iterable/test-connection";
const CONNECT: &str = "/api/integrations/iterable/connect";

struct Env {
    app: TestApp,
    _sandbox: Sandbox,
    us: SimClient,
    eu: SimClient,
    _db: TestDb,
}

async fn env() -> Env {
    env_with(&[]).await
}

/// The server and the simulators, with extra configuration (a short upstream timeout, say).
async fn env_with(extra: &[(&str, &str)]) -> Env {
    let db = fresh_db().await;
    let sandbox = Sandbox::start(
        &mut sim_core::Binder::ephemeral(),
        &SandboxOptions::default(),
    )
    .await
    .expect("simulators start");
    let overrides = sandbox.upstream_overrides();
    let mut vars: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend_from_slice(extra);
    let app = TestApp::spawn_with(&db, &random_master_key(), &vars).await;
    let origin = |env: &str| {
        overrides
            .iter()
            .find(|(k, _)| *k == env)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    Env {
        us: SimClient::new(origin(ENV_US)),
        eu: SimClient::new(origin(ENV_EU)),
        app,
        _sandbox: sandbox,
        _db: db,
    }
}

impl Env {
    async fn post(&self, path: &str, body: Value) -> crate::helpers::Answer {
        self.app
            .call(Method::POST, path, Some(ADMIN_TOKEN), Some(body))
            .await
    }

    async fn connect_us(&self, publisher: &str) -> Value {
        self.post(
            CONNECT,
            json!({"publisherId": publisher, "apiKey": US_SERVER_KEY, "region": "us",
                "config": {"fromEmail": "news@example.com", "replyTo": "editor@example.com"}}),
        )
        .await
        .expect_ok(200)
        .clone()
    }

    /// Forgets what the US simulator received so far.
    async fn clear_requests(&self) {
        self.app
            .http
            .delete(format!("{}/_sim/requests", self.us.origin()))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    async fn get(&self, path: &str) -> crate::helpers::Answer {
        self.app.get(path, ADMIN_TOKEN).await
    }
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

// ---------------------------------------------------------------- test-connection

#[tokio::test]
async fn test_connection_reports_the_account_and_sends_the_key_as_api_key_header() {
    let e = env().await;
    let a = e.post(TEST, json!({"apiKey": US_SERVER_KEY})).await;
    let data = a.expect_ok(200);
    assert_eq!(data["platform"], "iterable");
    assert_eq!(data["ok"], true);
    assert_eq!(data["region"], "us");
    assert_eq!(data["account"]["dataCenter"], "US");
    assert!(data["account"]["channelCount"].as_u64().unwrap() > 0);
    assert!(
        data["account"]["media"]
            .as_array()
            .unwrap()
            .contains(&json!("email"))
    );
    assert!(data["account"]["channels"][0]["id"].is_string());
    assert!(data["latencyMs"].is_u64());
    assert!(!a.body.to_string().contains(US_SERVER_KEY));

    let reqs = e.us.requests(Some("/api/channels")).await.unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].header("api-key"), Some(US_SERVER_KEY));

    // The EU project's key in its own region; a read-only key passes the test too.
    let a = e
        .post(TEST, json!({"apiKey": EU_SERVER_KEY, "region": "eu"}))
        .await;
    assert_eq!(a.expect_ok(200)["account"]["dataCenter"], "EU");
    e.post(TEST, json!({"apiKey": US_READ_ONLY_KEY}))
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn a_key_of_the_other_data_centre_is_named_as_such() {
    let e = env().await;
    let a = e
        .post(TEST, json!({"apiKey": EU_SERVER_KEY, "region": "us"}))
        .await;
    let body = a.expect_error(422, "INVALID_CREDENTIALS");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("EU data centre"), "{msg}");
    assert!(msg.contains("\"region\" to \"eu\""), "{msg}");
    assert_eq!(body["details"]["platform"], "iterable");
    assert_eq!(body["details"]["platformStatus"], 401);
    assert!(!body.to_string().contains(EU_SERVER_KEY));
    // It was tried in the EU data centre to say so.
    let tried = e.eu.requests(Some("/api/channels")).await.unwrap();
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0].header("api-key"), Some(EU_SERVER_KEY));
    // The same the other way round.
    let a = e
        .post(TEST, json!({"apiKey": US_SERVER_KEY, "region": "eu"}))
        .await;
    let msg = a.expect_error(422, "INVALID_CREDENTIALS")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("US data centre"), "{msg}");
}

#[tokio::test]
async fn client_side_jwt_and_mangled_keys_are_diagnosed() {
    let e = env().await;
    for key in [US_MOBILE_KEY, US_JS_KEY] {
        let a = e.post(TEST, json!({"apiKey": key})).await;
        let msg = a.expect_error(422, "INVALID_CREDENTIALS")["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            msg.contains("server-side") && msg.contains("client-side"),
            "{msg}"
        );
    }
    let a = e.post(TEST, json!({"apiKey": US_JWT_KEY})).await;
    let msg = a.expect_error(422, "INVALID_CREDENTIALS")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("JWT-enabled"), "{msg}");

    let a = e.post(TEST, json!({"apiKey": "a1b2c3d4e5f6"})).await;
    let msg = a.expect_error(422, "INVALID_CREDENTIALS")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("12 characters long"), "{msg}");

    // A revoked key.
    e.app
        .http
        .delete(format!("{}/_sim/keys/{US_READ_ONLY_KEY}", e.us.origin()))
        .send()
        .await
        .unwrap();
    let a = e.post(TEST, json!({"apiKey": US_READ_ONLY_KEY})).await;
    let msg = a.expect_error(422, "INVALID_CREDENTIALS")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("revoked"), "{msg}");
}

#[tokio::test]
async fn test_connection_validates_its_body() {
    let e = env().await;
    let cases = [
        (json!({}), "apiKey"),
        (json!({"apiKey": ""}), "apiKey"),
        (json!({"apiKey": "   "}), "apiKey"),
        (json!({"apiKey": 5}), "apiKey"),
        (json!({"apiKey": US_SERVER_KEY, "region": "asia"}), "region"),
    ];
    for (body, field) in cases {
        let a = e.post(TEST, body.clone()).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{body}");
    }
    assert!(e.us.requests(Some("/api/")).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- connect

#[tokio::test]
async fn connect_tests_first_stores_masked_and_replaces() {
    let e = env().await;
    let data = e.connect_us("pub-a").await;
    assert_eq!(data["platform"], "iterable");
    assert_eq!(data["publisherId"], "pub-a");
    assert_eq!(data["status"], "connected");
    assert_eq!(data["region"], "us");
    assert_eq!(data["config"]["fromEmail"], "news@example.com");
    assert_eq!(data["config"]["replyTo"], "editor@example.com");
    assert_eq!(data["credentials"]["apiKey"], "…8f90");
    assert_eq!(data["replaced"], false);
    assert!(
        data["webhookUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1")
    );
    assert!(!data.to_string().contains(US_SERVER_KEY));
    assert_eq!(e.us.requests(Some("/api/channels")).await.unwrap().len(), 1);

    // Again, to the EU project: replaces.
    let a = e
        .post(
            CONNECT,
            json!({"publisherId": "pub-a", "apiKey": EU_SERVER_KEY, "region": "eu", "config": {}}),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["replaced"], true);
    assert_eq!(data["region"], "eu");
    assert_eq!(data["credentials"]["apiKey"], "…a1b0");

    let list = e.get("/api/integrations/pub-a").await;
    let list = list.expect_ok(200);
    assert_eq!(list["integrations"].as_array().unwrap().len(), 1);
    assert_eq!(list["integrations"][0]["region"], "eu");

    // A publisher key acts for its own publisher only, body included.
    let (_, key) = e.app.create_key("pub-b").await;
    e.app
        .call(
            Method::POST,
            CONNECT,
            Some(&key),
            Some(json!({"publisherId": "pub-a", "apiKey": US_SERVER_KEY})),
        )
        .await
        .expect_error(403, "PERMISSION_DENIED");
    e.app
        .call(
            Method::POST,
            CONNECT,
            Some(&key),
            Some(json!({"publisherId": "pub-b", "apiKey": US_SERVER_KEY})),
        )
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn a_failed_connect_stores_nothing() {
    let e = env().await;
    // Bad key: the test's error, nothing stored.
    let a = e
        .post(
            CONNECT,
            json!({"publisherId": "pub-a", "apiKey": EU_SERVER_KEY, "region": "us"}),
        )
        .await;
    assert!(
        a.expect_error(422, "INVALID_CREDENTIALS")["error"]
            .as_str()
            .unwrap()
            .contains("EU data centre")
    );
    // Platform down: CONNECTION_FAILED, nothing stored.
    e.us.inject(&Fault::status("/api/channels", 503))
        .await
        .unwrap();
    e.post(
        CONNECT,
        json!({"publisherId": "pub-a", "apiKey": US_SERVER_KEY}),
    )
    .await
    .expect_error(502, "CONNECTION_FAILED");
    e.us.clear_faults().await.unwrap();
    let list = e.get("/api/integrations/pub-a").await;
    assert_eq!(list.expect_ok(200)["integrations"], json!([]));
}

#[tokio::test]
async fn connect_validates_emails_and_fields_before_calling_iterable() {
    let e = env().await;
    let base = json!({"publisherId": "pub-a", "apiKey": US_SERVER_KEY});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            with(json!({"config": {"fromEmail": "not-an-email"}})),
            "config.fromEmail",
        ),
        (
            with(json!({"config": {"fromEmail": "a@b.co", "replyTo": "x@y"}})),
            "config.replyTo",
        ),
        (
            with(json!({"config": {"fromEmail": 7}})),
            "config.fromEmail",
        ),
        (
            with(json!({"config": {"syncEventTypes": ["emailOpen", "emailTeleport"]}})),
            "config.syncEventTypes",
        ),
        (with(json!({"region": "mars"})), "region"),
        (json!({"publisherId": "pub-a"}), "apiKey"),
        (json!({"apiKey": US_SERVER_KEY}), "publisherId"),
        (with(json!({"publisherId": "admin"})), "publisherId"),
    ];
    for (body, field) in cases {
        let a = e.post(CONNECT, body.clone()).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{body}: {}", a.body);
    }
    assert!(e.us.requests(Some("/api/")).await.unwrap().is_empty());
    let list = e.get("/api/integrations/pub-a").await;
    assert_eq!(list.expect_ok(200)["integrations"], json!([]));

    // The event types the events sync exports are kept (once each), not dropped.
    let ok = e
        .post(
            CONNECT,
            with(json!({"config": {"syncEventTypes": ["emailOpen", "emailClick", "emailOpen"]}})),
        )
        .await;
    assert_eq!(
        ok.expect_ok(200)["config"]["syncEventTypes"],
        json!(["emailOpen", "emailClick"])
    );
}

// ---------------------------------------------------------------- campaigns

#[tokio::test]
async fn campaigns_default_window_ids_as_strings_and_rfc3339() {
    let e = env().await;
    e.connect_us("pub-a").await;
    e.clear_requests().await;
    let a = e.get("/api/integrations/iterable/pub-a/campaigns").await;
    let data = a.expect_ok(200);
    assert_eq!(data["limit"], 100);
    assert_eq!(data["offset"], 0);
    assert_eq!(data["total"], 60);
    let campaigns = data["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 60);
    for c in campaigns {
        assert!(c["id"].is_string(), "{c}");
        assert_eq!(c["platform"], "iterable");
        assert!(c["name"].is_string());
        let created = c["createdAt"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
        assert!(["blast", "triggered"].contains(&c["type"].as_str().unwrap()));
    }
    let channels: std::collections::BTreeSet<&str> = campaigns
        .iter()
        .filter_map(|c| c["channel"].as_str())
        .collect();
    assert!(
        channels.contains("email") && channels.contains("in_app"),
        "{channels:?}"
    );
    let reqs = e.us.requests(Some("/api/campaigns")).await.unwrap();
    assert_eq!(reqs.len(), 1);
    let q = query_pairs(&reqs[0].query);
    assert!(q.contains(&("page".into(), "1".into())), "{q:?}");
    assert!(q.contains(&("pageSize".into(), "100".into())), "{q:?}");

    // The §7 path answers the same.
    let b = e
        .get("/api/integrations/pub-a/iterable/campaigns?limit=5")
        .await;
    let b = b.expect_ok(200);
    assert_eq!(b["campaigns"].as_array().unwrap().len(), 5);
    assert_eq!(b["campaigns"][0], campaigns[0]);
}

#[tokio::test]
async fn campaigns_window_spans_several_iterable_pages() {
    let e = env().await;
    let fixtures: Vec<Value> = (0..2500u64)
        .map(|i| {
            json!({"id": 900_000 + i, "name": format!("c{i}"), "type": "Blast",
                "campaignState": "Finished", "messageMedium": "Email",
                "createdAt": 1_700_000_000_000u64 + i, "updatedAt": 1_700_000_000_000u64 + i,
                "createdByUserId": "x@example.com"})
        })
        .collect();
    e.us.post("/_sim/fixtures", &json!({"campaigns": fixtures}))
        .await
        .unwrap();
    e.connect_us("pub-a").await;
    e.clear_requests().await;
    let a = e
        .get("/api/integrations/iterable/pub-a/campaigns?limit=1000&offset=1500")
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 2500);
    assert_eq!(data["offset"], 1500);
    let campaigns = data["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1000);
    assert_eq!(campaigns[0]["id"], "901500");
    assert_eq!(campaigns[999]["id"], "902499");
    assert_eq!(campaigns[0]["createdAt"], "2023-11-14T22:13:21.500Z");
    let pages: Vec<Vec<(String, String)>> =
        e.us.requests(Some("/api/campaigns"))
            .await
            .unwrap()
            .iter()
            .map(|r| query_pairs(&r.query))
            .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[0].contains(&("page".into(), "2".into())));
    assert!(pages[1].contains(&("page".into(), "3".into())));
    assert!(
        pages
            .iter()
            .all(|p| p.contains(&("pageSize".into(), "1000".into())))
    );

    // A window inside one page costs one request; past the end answers empty.
    e.clear_requests().await;
    let a = e
        .get("/api/integrations/iterable/pub-a/campaigns?limit=50&offset=25")
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["campaigns"][0]["id"], "900025");
    assert_eq!(data["campaigns"].as_array().unwrap().len(), 50);
    assert_eq!(
        e.us.requests(Some("/api/campaigns")).await.unwrap().len(),
        1
    );
    let a = e
        .get("/api/integrations/iterable/pub-a/campaigns?limit=10&offset=5000")
        .await;
    assert_eq!(a.expect_ok(200)["campaigns"], json!([]));
}

#[tokio::test]
async fn campaigns_state_filter_and_query_validation() {
    let e = env().await;
    e.connect_us("pub-a").await;
    e.clear_requests().await;
    let a = e
        .get("/api/integrations/iterable/pub-a/campaigns?state=running,FINISHED")
        .await;
    let data = a.expect_ok(200);
    let campaigns = data["campaigns"].as_array().unwrap();
    assert!(!campaigns.is_empty());
    assert!(
        campaigns
            .iter()
            .all(|c| ["running", "finished"].contains(&c["status"].as_str().unwrap()))
    );
    assert_eq!(data["total"].as_u64().unwrap() as usize, campaigns.len());
    let q = query_pairs(&e.us.requests(Some("/api/campaigns")).await.unwrap()[0].query);
    assert!(
        q.contains(&("campaignState".into(), "Running".into())),
        "{q:?}"
    );
    assert!(
        q.contains(&("campaignState".into(), "Finished".into())),
        "{q:?}"
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("state=paused", "state"),
    ] {
        let a = e
            .get(&format!(
                "/api/integrations/iterable/pub-a/campaigns?{query}"
            ))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{query}");
    }
    e.get("/api/integrations/iterable/pub-nobody/campaigns")
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");
    let (_, key) = e.app.create_key("pub-b").await;
    e.app
        .get("/api/integrations/iterable/pub-a/campaigns", &key)
        .await
        .expect_error(403, "PERMISSION_DENIED");
}

// ---------------------------------------------------------------- the error table, row by row

#[tokio::test]
async fn error_table_rate_limits_5xx_malformed_and_resets() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let path = "/api/integrations/iterable/pub-a/campaigns?limit=5";

    // Transient 429s and 5xx are retried away.
    e.us.inject(&Fault::new("/api/campaigns", FaultKind::RateLimit).times(2))
        .await
        .unwrap();
    e.clear_requests().await;
    e.get(path).await.expect_ok(200);
    assert_eq!(
        e.us.requests(Some("/api/campaigns")).await.unwrap().len(),
        3
    );
    e.us.inject(&Fault::status("/api/campaigns", 503).times(1))
        .await
        .unwrap();
    e.get(path).await.expect_ok(200);

    // Persistent 429: RATE_LIMIT_EXCEEDED with Retry-After.
    e.us.inject(&Fault::new("/api/campaigns", FaultKind::RateLimit))
        .await
        .unwrap();
    let a = e.get(path).await;
    let body = a.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(body["details"]["platformStatus"], 429);
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    e.us.clear_faults().await.unwrap();

    // Persistent 5xx, malformed bodies and resets: CONNECTION_FAILED.
    for fault in [
        Fault::status("/api/campaigns", 500),
        Fault::new("/api/campaigns", FaultKind::Malformed),
        Fault::new("/api/campaigns", FaultKind::Reset),
    ] {
        e.us.inject(&fault).await.unwrap();
        let a = e.get(path).await;
        a.expect_error(502, "CONNECTION_FAILED");
        e.us.clear_faults().await.unwrap();
    }
    // A 403 from Iterable: PERMISSION_DENIED.
    e.us.inject(&Fault::status("/api/campaigns", 403))
        .await
        .unwrap();
    let a = e.get(path).await;
    assert!(
        a.expect_error(403, "PERMISSION_DENIED")["error"]
            .as_str()
            .unwrap()
            .contains("permission")
    );
    e.us.clear_faults().await.unwrap();

    // The stored key revoked on Iterable's side: INVALID_CREDENTIALS.
    e.app
        .http
        .delete(format!("{}/_sim/keys/{US_SERVER_KEY}", e.us.origin()))
        .send()
        .await
        .unwrap();
    e.get(path).await.expect_error(422, "INVALID_CREDENTIALS");
    // And the stored-credentials test says so, changing nothing.
    e.post("/api/integrations/pub-a/iterable/test", json!({}))
        .await
        .expect_error(422, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn an_upstream_timeout_is_connection_failed() {
    let e = env_with(&[("SHARPSEND_UPSTREAM_TIMEOUT_MS", "300")]).await;
    e.us.inject(&Fault::latency("/api/channels", 3000))
        .await
        .unwrap();
    let a = e.post(TEST, json!({"apiKey": US_SERVER_KEY})).await;
    let msg = a.expect_error(502, "CONNECTION_FAILED")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("in time"), "{msg}");
}

// ---------------------------------------------------------------- lists, templates, channels

#[tokio::test]
async fn lists_templates_and_channels() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let a = e.get("/api/integrations/pub-a/iterable/lists").await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 8);
    let lists = data["lists"].as_array().unwrap();
    assert!(
        lists
            .iter()
            .all(|l| l["id"].is_string() && l["platform"] == "iterable")
    );
    assert!(
        lists.iter().any(|l| l["type"] == "suppression"),
        "{lists:?}"
    );

    let a = e
        .get("/api/integrations/pub-a/iterable/templates?limit=30&offset=10")
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["total"], 80);
    assert_eq!(data["templates"].as_array().unwrap().len(), 30);
    assert!(data["templates"][0]["id"].is_string());
    assert!(
        chrono::DateTime::parse_from_rfc3339(data["templates"][0]["createdAt"].as_str().unwrap())
            .is_ok()
    );
    e.clear_requests().await;
    let a = e
        .get("/api/integrations/pub-a/iterable/templates?type=triggered&channel=email")
        .await;
    let data = a.expect_ok(200);
    assert!(
        data["templates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["type"] == "triggered" && t["channel"] == "email")
    );
    let q = query_pairs(&e.us.requests(Some("/api/templates")).await.unwrap()[0].query);
    assert!(q.contains(&("templateType".into(), "Triggered".into())));
    assert!(q.contains(&("messageMedium".into(), "Email".into())));
    let a = e
        .get("/api/integrations/pub-a/iterable/templates?channel=fax")
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "channel");

    let a = e.get("/api/integrations/pub-a/iterable/channels").await;
    let data = a.expect_ok(200);
    assert!(data["total"].as_u64().unwrap() > 0);
    assert!(data["channels"][0]["id"].is_string());

    e.get("/api/integrations/pub-z/iterable/lists")
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");
}

// ---------------------------------------------------------------- writes

#[tokio::test]
async fn subscribers_upsert_one_and_many_with_per_item_failures() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let path = "/api/integrations/pub-a/iterable/subscribers";
    let a = e
        .post(
            path,
            json!({"email": "new.reader@example.com", "firstName": "Ada", "phone": "+15550100",
                "attributes": {"plan": "pro"}, "tags": ["vip"]}),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["platform"], "iterable");
    assert_eq!(data["status"], "upserted");
    assert_eq!(data["id"], "new.reader@example.com");
    let user =
        e.us.get("/_sim/users?email=new.reader@example.com")
            .await
            .unwrap();
    let fields = &user["user"]["dataFields"];
    assert_eq!(fields["firstName"], "Ada");
    assert_eq!(fields["phoneNumber"], "+15550100");
    assert_eq!(fields["plan"], "pro");
    assert_eq!(fields["tags"], json!(["vip"]));

    for (body, field) in [
        (json!({"firstName": "x"}), "email"),
        (json!({"email": "nope"}), "email"),
    ] {
        let a = e.post(path, body).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }

    // Many: bad items are reported by position, good ones go in batches of ≤ 1,000.
    let mut many: Vec<Value> = (0..2100)
        .map(|i| json!({"email": format!("bulk{i}@example.com"), "attributes": {"n": i}}))
        .collect();
    many[1] = json!({"firstName": "no email"});
    many[7] = json!({"email": 42});
    e.clear_requests().await;
    let a = e.post(path, json!({"subscribers": many})).await;
    let data = a.expect_ok(200);
    assert_eq!(data["accepted"], 2098);
    let failed = data["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0]["index"], 1);
    assert_eq!(failed[0]["code"], "VALIDATION_ERROR");
    assert_eq!(failed[1]["index"], 7);
    let calls = e.us.requests(Some("/api/users/bulkUpdate")).await.unwrap();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|c| c.json()["users"].as_array().unwrap().len() <= 1000)
    );
    let user =
        e.us.get("/_sim/users?email=bulk2099@example.com")
            .await
            .unwrap();
    assert_eq!(user["user"]["dataFields"]["n"], 2099);
    e.post(path, json!({"subscribers": []}))
        .await
        .expect_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn events_track_one_and_many_with_ids_for_safe_retries() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let path = "/api/integrations/pub-a/iterable/events";
    e.clear_requests().await;
    // A 503 once: the event carries an id, so it is retried.
    e.us.inject(&Fault::status("/api/events/track", 503).times(1))
        .await
        .unwrap();
    let a = e
        .post(
            path,
            json!({"name": "signup", "email": "a@example.com", "data": {"plan": "pro"},
                "timestamp": "2024-05-01T12:00:00Z"}),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["status"], "accepted");
    assert_eq!(data["platform"], "iterable");
    let sent = e.us.requests(Some("/api/events/track")).await.unwrap();
    assert_eq!(sent.len(), 2);
    let body = sent[1].json();
    assert_eq!(body["eventName"], "signup");
    assert_eq!(body["createdAt"], 1_714_564_800);
    assert_eq!(body["dataFields"]["plan"], "pro");
    assert_eq!(body["id"], data["id"]);
    assert_eq!(sent[0].json()["id"], data["id"]);

    for (body, field) in [
        (json!({"email": "a@example.com"}), "name"),
        (json!({"name": "x"}), "email"),
        (
            json!({"name": "x", "email": "a@example.com", "timestamp": "yesterday"}),
            "timestamp",
        ),
    ] {
        let a = e.post(path, body).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }

    let a = e
        .post(
            path,
            json!({"events": [{"name": "open", "email": "a@example.com"}, {"name": ""},
                {"name": "click", "userId": "u-1"}]}),
        )
        .await;
    let data = a.expect_ok(200);
    assert_eq!(data["accepted"], 2);
    assert_eq!(data["failed"][0]["index"], 1);
    let bulk = e.us.requests(Some("/api/events/trackBulk")).await.unwrap();
    assert_eq!(bulk.len(), 1);
    assert_eq!(bulk[0].json()["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn messages_per_channel_through_triggered_campaigns() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let a = e
        .get("/api/integrations/iterable/pub-a/campaigns?state=running&limit=1000")
        .await;
    let campaigns = a.expect_ok(200)["campaigns"].as_array().unwrap().clone();
    let path = "/api/integrations/pub-a/iterable/messages";
    let at = chrono::Utc::now() + chrono::Duration::days(1);
    let send_at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let iterable_at = at.format("%Y-%m-%d %H:%M:%S").to_string();
    for (channel, medium_path) in [
        ("email", "/api/email/target"),
        ("sms", "/api/sms/target"),
        ("push", "/api/push/target"),
        ("in_app", "/api/inApp/target"),
    ] {
        let c = campaigns
            .iter()
            .find(|c| c["type"] == "triggered" && c["channel"] == channel)
            .unwrap_or_else(|| panic!("a running triggered {channel} campaign"));
        let a = e
            .post(
                path,
                json!({"channel": channel, "campaignId": c["id"], "to": {"email": "reader@example.com"},
                    "data": {"issue": 12}, "sendAt": send_at}),
            )
            .await;
        let data = a.expect_ok(200);
        assert_eq!(data["status"], "queued");
        assert_eq!(data["channel"], channel);
        let sent = e.us.requests(Some(medium_path)).await.unwrap();
        assert_eq!(sent.len(), 1, "{channel}");
        let body = sent[0].json();
        assert_eq!(body["campaignId"].to_string(), c["id"].as_str().unwrap());
        assert_eq!(body["recipientEmail"], "reader@example.com");
        assert_eq!(body["dataFields"]["issue"], 12);
        assert_eq!(body["sendAt"], iterable_at.as_str());
    }

    let email_campaign = campaigns
        .iter()
        .find(|c| c["type"] == "triggered" && c["channel"] == "email")
        .unwrap()["id"]
        .clone();
    for (body, field) in [
        (
            json!({"channel": "fax", "campaignId": email_campaign, "to": {"email": "r@example.com"}}),
            "channel",
        ),
        (
            json!({"channel": "email", "to": {"email": "r@example.com"}}),
            "campaignId",
        ),
        (
            json!({"channel": "email", "campaignId": "abc", "to": {"email": "r@example.com"}}),
            "campaignId",
        ),
        (
            json!({"channel": "sms", "campaignId": email_campaign, "to": {"phone": "+15550100"}}),
            "to.email",
        ),
        (
            json!({"channel": "email", "campaignId": email_campaign, "to": {"email": "r@example.com"}, "sendAt": "soon"}),
            "sendAt",
        ),
    ] {
        let a = e.post(path, body.clone()).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{body}");
    }
    // Iterable's own refusal (a blast campaign cannot be targeted): VALIDATION_ERROR with its reason.
    let blast = campaigns.iter().find(|c| c["type"] == "blast").unwrap()["id"].clone();
    let a = e
        .post(
            path,
            json!({"channel": "email", "campaignId": blast, "to": {"email": "r@example.com"}}),
        )
        .await;
    let body = a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(body["details"]["platformStatus"], 400);

    // A send is not retried after a 5xx: it may have gone out.
    e.clear_requests().await;
    e.us.inject(&Fault::status("/api/email/target", 500).times(1))
        .await
        .unwrap();
    let a = e
        .post(path, json!({"channel": "email", "campaignId": email_campaign, "to": {"email": "r@example.com"}}))
        .await;
    a.expect_error(502, "CONNECTION_FAILED");
    assert_eq!(
        e.us.requests(Some("/api/email/target"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_read_only_key_may_read_but_writes_answer_permission_denied() {
    let e = env().await;
    e.post(
        CONNECT,
        json!({"publisherId": "pub-a", "apiKey": US_READ_ONLY_KEY}),
    )
    .await
    .expect_ok(200);
    e.get("/api/integrations/iterable/pub-a/campaigns?limit=1")
        .await
        .expect_ok(200);
    let a = e
        .post(
            "/api/integrations/pub-a/iterable/subscribers",
            json!({"email": "r@example.com"}),
        )
        .await;
    let body = a.expect_error(403, "PERMISSION_DENIED");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("read-only"), "{msg}");
    assert_eq!(body["details"]["platformStatus"], 401);
    let a = e
        .post(
            "/api/integrations/pub-a/iterable/events",
            json!({"name": "x", "email": "r@example.com"}),
        )
        .await;
    a.expect_error(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn export_reads_users_and_events_within_a_window_for_sync() {
    use connectors::iterable::Credentials;
    use secrecy::SecretString;
    let e = env().await;
    let creds = Credentials::new(
        SecretString::from(US_SERVER_KEY.to_owned()),
        domain::Region::Us,
    );
    let now = chrono::Utc::now();
    let connector = &e.app.state.connectors.iterable;
    let users = connector
        .export_since(
            &creds,
            "user",
            None,
            connectors::iterable::DEFAULT_LOOKBACK,
            now,
        )
        .await
        .unwrap();
    assert_eq!(users.rows.len(), 500);
    assert!(users.rows[0]["email"].is_string());
    assert_eq!(users.cursor, now);
    let sends = connector
        .export(&creds, "emailSend", now - chrono::Duration::days(400), now)
        .await
        .unwrap();
    assert!(!sends.is_empty());
    let reqs = e.us.requests(Some("/api/export/data.json")).await.unwrap();
    assert_eq!(reqs.len(), 2);
    let q = query_pairs(&reqs[1].query);
    assert!(
        q.contains(&("dataTypeName".into(), "emailSend".into())),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(k, v)| k == "startDateTime" && v.ends_with("+00:00"))
    );
    // A read-only key may not export: Iterable's 401 is diagnosed as a permission.
    let ro = Credentials::new(
        SecretString::from(US_READ_ONLY_KEY.to_owned()),
        domain::Region::Us,
    );
    let err = connector.export(&ro, "user", now, now).await.unwrap_err();
    assert_eq!(err.code(), domain::ErrorCode::PermissionDenied);
    assert!(err.message.contains("read-only"), "{}", err.message);
}

#[tokio::test]
async fn the_iterable_key_never_reaches_the_logs_even_at_trace() {
    use std::{
        io::{BufRead, BufReader},
        process::{Command, Stdio},
        time::Duration,
    };
    let sims = Sandbox::start(
        &mut sim_core::Binder::ephemeral(),
        &SandboxOptions::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharpsend"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("SHARPSEND_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHARPSEND_MASTER_KEY", random_master_key())
        .env("SHARPSEND_DATABASE_URL", &db_url)
        .env("RUST_LOG", "trace")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in sims.upstream_overrides() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    for stream in [
        Box::new(stderr) as Box<dyn std::io::Read + Send>,
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
    ] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let mut log = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server starts");
        let found = line
            .split("addr=")
            .nth(1)
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
        log.push(line);
        if let Some(a) = found.filter(|a| !a.is_empty()) {
            break a;
        }
    };
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let r = post(
        CONNECT,
        json!({"publisherId": "pub-a", "apiKey": US_SERVER_KEY}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    post(TEST, json!({"apiKey": EU_SERVER_KEY})).await.unwrap();
    post(TEST, json!({"apiKey": US_MOBILE_KEY})).await.unwrap();
    post(
        "/api/integrations/pub-a/iterable/subscribers",
        json!({"email": "r@example.com"}),
    )
    .await
    .unwrap();
    let r = http
        .get(format!(
            "{base}/api/integrations/iterable/pub-a/campaigns?limit=2"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    child.kill().unwrap();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert!(text.contains("Iterable connected"), "logs were captured");
    for secret in [US_SERVER_KEY, EU_SERVER_KEY, US_MOBILE_KEY] {
        assert!(!text.contains(secret), "key {secret} appeared in the logs");
    }
}

// ---------------------------------------------------------------- Idempotency-Key

impl Env {
    async fn post_keyed(&self, path: &str, key: &str, body: &Value) -> crate::helpers::Answer {
        let resp = self
            .app
            .http
            .post(self.app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        TestApp::answer(resp).await
    }
}

#[tokio::test]
async fn a_retried_message_with_its_idempotency_key_is_sent_once() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let a = e
        .get("/api/integrations/iterable/pub-a/campaigns?state=running&limit=1000")
        .await;
    let campaigns = a.expect_ok(200)["campaigns"].as_array().unwrap().clone();
    let campaign = campaigns
        .iter()
        .find(|c| c["type"] == "triggered" && c["channel"] == "email")
        .unwrap()["id"]
        .clone();
    let path = "/api/integrations/pub-a/iterable/messages";
    let body =
        json!({"channel": "email", "campaignId": campaign, "to": {"email": "reader@example.com"}});
    let sent = || async {
        e.us.requests(Some("/api/email/target"))
            .await
            .unwrap()
            .len()
    };

    // The first answer, then the same answer replayed: Iterable is called once.
    let first = e.post_keyed(path, "order-1", &body).await;
    let data = first.expect_ok(200).clone();
    assert!(first.headers.get("idempotency-replayed").is_none());
    let again = e.post_keyed(path, "order-1", &body).await;
    assert_eq!(again.expect_ok(200), &data);
    assert_eq!(again.headers["idempotency-replayed"], "true");
    assert_eq!(sent().await, 1, "a replay reaches Iterable");

    // The same key with another body is refused, naming the header; nothing is sent.
    let other =
        json!({"channel": "email", "campaignId": campaign, "to": {"email": "other@example.com"}});
    let refused = e.post_keyed(path, "order-1", &other).await;
    refused.expect_error(422, "VALIDATION_ERROR");
    assert_eq!(refused.field(), "Idempotency-Key");
    assert_eq!(sent().await, 1);

    // Another publisher key's same key is its own; a new key sends again.
    let (_, token) = e.app.create_key("pub-a").await;
    let resp = e
        .app
        .http
        .post(e.app.url(path))
        .bearer_auth(&token)
        .header("Idempotency-Key", "order-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let theirs = TestApp::answer(resp).await;
    theirs.expect_ok(200);
    assert!(theirs.headers.get("idempotency-replayed").is_none());
    assert_eq!(sent().await, 2);

    // A failure of the platform is not kept: the retry runs again and succeeds.
    e.us.inject(&Fault::status("/api/email/target", 500))
        .await
        .unwrap();
    e.post_keyed(path, "order-2", &body)
        .await
        .expect_error(502, "CONNECTION_FAILED");
    e.us.clear_faults().await.unwrap();
    let retried = e.post_keyed(path, "order-2", &body).await;
    retried.expect_ok(200);
    assert!(retried.headers.get("idempotency-replayed").is_none());

    // A malformed key is refused before anything runs.
    let long = "k".repeat(256);
    let bad = e.post_keyed(path, &long, &body).await;
    bad.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.field(), "Idempotency-Key");
}

#[tokio::test]
async fn a_repeat_while_the_first_runs_is_a_conflict() {
    let e = env().await;
    e.connect_us("pub-a").await;
    let path = "/api/integrations/pub-a/iterable/subscribers";
    let body = json!({"email": "slow@example.com", "firstName": "Ada"});
    e.us.inject(&Fault::latency("/api/users/update", 1500))
        .await
        .unwrap();
    let (first, second) = tokio::join!(e.post_keyed(path, "same", &body), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        e.post_keyed(path, "same", &body).await
    });
    first.expect_ok(200);
    second.expect_error(409, "CONFLICT");
    assert!(second.headers.contains_key("retry-after"));
    assert_eq!(
        e.us.requests(Some("/api/users/update"))
            .await
            .unwrap()
            .len(),
        1
    );
    // Once it finished, the repeat is the stored answer.
    let replay = e.post_keyed(path, "same", &body).await;
    replay.expect_ok(200);
    assert_eq!(replay.headers["idempotency-replayed"], "true");
}
