//! Keap through the real server against its simulator.

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::{Sandbox, SandboxOptions};
use sim_core::{Fault, FaultKind, SimClient};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const CONTACTS: &str = "/api/integrations/keap/pub-k/contacts";

fn keap_sim(sandbox: &Sandbox) -> SimClient {
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == "SHARPSEND_KEAP_API_URL")
        .map(|(_, v)| v)
        .expect("keap origin");
    SimClient::new(origin)
}

/// A fresh token pair for the sandbox client (no browser).
async fn token_pair(sim: &SimClient) -> (String, String) {
    let t = sim.post("/_sim/tokens", &json!({})).await.unwrap();
    (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn oauth_body(access: &str, refresh: &str, expires_in: Option<i64>) -> Value {
    let mut b = json!({
        "publisherId": "pub-k",
        "clientId": sim_keap::CLIENT_ID,
        "clientSecret": sim_keap::CLIENT_SECRET,
        "accessToken": access,
        "refreshToken": refresh,
        "config": {"campaignIds": []},
    });
    if let Some(e) = expires_in {
        b["expiresIn"] = json!(e);
    }
    b
}

async fn connect(app: &TestApp, body: Value) -> Value {
    app.call(
        Method::POST,
        "/api/integrations/keap/connect",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
    .expect_ok(200)
    .clone()
}

#[tokio::test]
async fn test_connection_with_oauth_token_and_api_keys() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (_, key) = app.create_key("pub-k").await;

    let a = app
        .call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(&key),
            Some(json!({"accessToken": sim_keap::ACCESS_TOKEN})),
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["platform"], "keap");
    assert_eq!(d["ok"], true);
    assert_eq!(d["account"]["tenantId"], "ab123.infusionsoft.com");
    assert_eq!(d["account"]["authType"], "oauth");
    assert!(d["latencyMs"].is_u64());

    for k in [
        sim_keap::PERSONAL_ACCESS_TOKEN,
        sim_keap::SERVICE_ACCOUNT_KEY,
    ] {
        let a = app
            .call(
                Method::POST,
                "/api/integrations/keap/test-connection",
                Some(&key),
                Some(json!({"apiKey": k})),
            )
            .await;
        assert_eq!(a.expect_ok(200)["account"]["authType"], "apiKey");
    }
    // The key went as X-Keap-API-Key, the token as a bearer.
    let reqs = sim
        .requests(Some("/crm/rest/v2/oauth/connect/userinfo"))
        .await
        .unwrap();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[0].headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {}", sim_keap::ACCESS_TOKEN).as_str())
    );
    assert_eq!(
        reqs[1].headers.get("x-keap-api-key").map(String::as_str),
        Some(sim_keap::PERSONAL_ACCESS_TOKEN)
    );

    // Bad token, bad key: INVALID_CREDENTIALS naming the likely cause, never echoing the secret.
    let a = app
        .call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(&key),
            Some(json!({"accessToken": "not-a-real-token-1234"})),
        )
        .await;
    let b = a.expect_error(422, "INVALID_CREDENTIALS");
    assert!(b["error"].as_str().unwrap().contains("access token"));
    assert!(!b.to_string().contains("not-a-real-token-1234"));
    assert_eq!(b["details"]["platformStatus"], 401);
    let a = app
        .call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(&key),
            Some(json!({"apiKey": "KeapAK-wrong"})),
        )
        .await;
    let b = a.expect_error(422, "INVALID_CREDENTIALS");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("Personal Access Token")
    );

    // Wrong kind: a PAT sent as an access token.
    let a = app
        .call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(&key),
            Some(json!({"accessToken": sim_keap::PERSONAL_ACCESS_TOKEN})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "accessToken");
    // Nothing, or both.
    let a = app
        .call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(&key),
            Some(json!({})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "accessToken");
    let a = app
        .call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(&key),
            Some(json!({"accessToken": "a", "apiKey": "b"})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "apiKey");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn test_connection_upstream_failures() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let call = || {
        app.call(
            Method::POST,
            "/api/integrations/keap/test-connection",
            Some(ADMIN_TOKEN),
            Some(json!({"accessToken": sim_keap::ACCESS_TOKEN})),
        )
    };
    // 5xx until retries run out → CONNECTION_FAILED.
    sim.inject(&Fault::status("/crm/rest/v2/oauth", 503))
        .await
        .unwrap();
    let a = call().await;
    let b = a.expect_error(502, "CONNECTION_FAILED");
    assert_eq!(b["details"]["platformStatus"], 503);
    sim.clear_faults().await.unwrap();
    // Malformed 2xx body → CONNECTION_FAILED.
    sim.inject(&Fault::new("/crm/rest/v2/oauth", FaultKind::Malformed))
        .await
        .unwrap();
    call().await.expect_error(502, "CONNECTION_FAILED");
    sim.clear_faults().await.unwrap();
    // Keap's 429 (no Retry-After) that persists → RATE_LIMIT_EXCEEDED with Retry-After.
    sim.inject(&Fault::new("/crm/rest/v2/oauth", FaultKind::RateLimit))
        .await
        .unwrap();
    let a = call().await;
    a.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert!(a.headers.get("retry-after").is_some());
    sim.clear_faults().await.unwrap();
    // A 429 that passes is retried away.
    sim.inject(&Fault::new("/crm/rest/v2/oauth", FaultKind::RateLimit).times(1))
        .await
        .unwrap();
    call().await.expect_ok(200);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn connect_oauth_stores_masked_and_lists_contacts() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;

    let mut body = oauth_body(&access, &refresh, Some(86_400));
    body["config"] = json!({"leadSourceId": "1", "campaignIds": ["100", 101]});
    let d = connect(&app, body).await;
    assert_eq!(d["platform"], "keap");
    assert_eq!(d["publisherId"], "pub-k");
    assert_eq!(d["status"], "connected");
    assert_eq!(d["replaced"], false);
    assert_eq!(d["config"]["leadSourceId"], "1");
    assert_eq!(d["config"]["campaignIds"], json!(["100", "101"]));
    assert_eq!(d["config"]["tenantId"], "ab123.infusionsoft.com");
    // The token's expiry is a time, shown in clear (about a day from now), not masked.
    let expires = chrono::DateTime::parse_from_rfc3339(d["tokenExpiresAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24),
        "{d}"
    );
    let shown = d["credentials"].to_string();
    for secret in [access.as_str(), refresh.as_str(), sim_keap::CLIENT_SECRET] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(
        d["credentials"]["clientSecret"],
        format!(
            "…{}",
            &sim_keap::CLIENT_SECRET[sim_keap::CLIENT_SECRET.len() - 4..]
        )
    );

    // Contacts: limit/offset/email/since mapped onto v1.
    let a = app
        .get(&format!("{CONTACTS}?limit=3&offset=2"), ADMIN_TOKEN)
        .await;
    let d = a.expect_ok(200).clone();
    assert_eq!(d["limit"], 3);
    assert_eq!(d["offset"], 2);
    assert_eq!(d["contacts"].as_array().unwrap().len(), 3);
    assert!(d["count"].as_u64().unwrap() >= 250);
    let c = &d["contacts"][0];
    assert!(c["id"].is_string());
    assert_eq!(c["platform"], "keap");
    assert!(c["tagIds"].is_array());
    assert!(c["createdAt"].as_str().unwrap().ends_with('Z'));
    let email = c["email"].as_str().unwrap().to_owned();
    let reqs = sim.requests(Some("/crm/rest/v1/contacts")).await.unwrap();
    let q = reqs.last().unwrap().query.clone().unwrap();
    assert!(q.contains("limit=3") && q.contains("offset=2"), "{q}");

    let a = app
        .get(
            &format!(
                "{CONTACTS}?email={}&since=2000-01-01T00:00:00Z",
                urlencode(&email)
            ),
            ADMIN_TOKEN,
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["contacts"][0]["email"], email.as_str());
    assert_eq!(d["limit"], 50);
    let reqs = sim.requests(Some("/crm/rest/v1/contacts")).await.unwrap();
    let q = reqs.last().unwrap().query.clone().unwrap();
    assert!(q.contains("since=2000-01-01T00%3A00%3A00.000Z"), "{q}");

    // Validation.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
        ("since=yesterday", "since"),
        ("limit=abc", "limit"),
    ] {
        let a = app.get(&format!("{CONTACTS}?{query}"), ADMIN_TOKEN).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{query}");
    }
    // Another publisher has no Keap integration.
    app.get("/api/integrations/keap/pub-other/contacts", ADMIN_TOKEN)
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");

    // Connecting again replaces.
    let (access2, refresh2) = token_pair(&sim).await;
    let d = connect(&app, oauth_body(&access2, &refresh2, None)).await;
    assert_eq!(d["replaced"], true);
    app.stop().await;
    db.cleanup().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn connect_failures_store_nothing() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    let (_, key) = app.create_key("pub-k").await;
    let app_ref = &app;
    let post = |body: Value| {
        let key = key.clone();
        async move {
            app_ref
                .call(
                    Method::POST,
                    "/api/integrations/keap/connect",
                    Some(&key),
                    Some(body),
                )
                .await
        }
    };

    let a = post(oauth_body("bad-token-xyz", &refresh, None)).await;
    a.expect_error(422, "INVALID_CREDENTIALS");
    let mut b = oauth_body(&access, &refresh, None);
    b["config"]["leadSourceId"] = json!("999999");
    let a = post(b).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "config.leadSourceId");
    let mut b = oauth_body(&access, &refresh, None);
    b["config"]["campaignIds"] = json!(["100", "987654"]);
    let a = post(b).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "config.campaignIds[1]");
    for missing in ["clientId", "clientSecret", "refreshToken", "accessToken"] {
        let mut b = oauth_body(&access, &refresh, None);
        b.as_object_mut().unwrap().remove(missing);
        let a = post(b).await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), missing);
    }
    let a = post(oauth_body(&access, &refresh, Some(0))).await;
    assert_eq!(a.field(), "expiresIn");
    // Another publisher in the body.
    let mut b = oauth_body(&access, &refresh, None);
    b["publisherId"] = json!("pub-other");
    post(b).await.expect_error(403, "PERMISSION_DENIED");

    let list = app.get("/api/integrations/pub-k", &key).await;
    assert_eq!(list.expect_ok(200)["integrations"], json!([]));

    // A PAT connects, and its calls carry X-Keap-API-Key.
    let d = post(json!({"publisherId": "pub-k", "apiKey": sim_keap::PERSONAL_ACCESS_TOKEN}))
        .await
        .expect_ok(200)
        .clone();
    assert_eq!(d["config"]["authType"], "apiKey");
    assert!(
        d.get("tokenExpiresAt").is_none(),
        "a PAT has no expiry: {d}"
    );
    assert_eq!(
        d["credentials"]["apiKey"],
        format!(
            "…{}",
            &sim_keap::PERSONAL_ACCESS_TOKEN[sim_keap::PERSONAL_ACCESS_TOKEN.len() - 4..]
        )
    );
    app.get(&format!("{CONTACTS}?limit=1"), &key)
        .await
        .expect_ok(200);
    let reqs = sim.requests(Some("/crm/rest/v1/contacts")).await.unwrap();
    assert_eq!(
        reqs.last()
            .unwrap()
            .headers
            .get("x-keap-api-key")
            .map(String::as_str),
        Some(sim_keap::PERSONAL_ACCESS_TOKEN)
    );
    app.stop().await;
    db.cleanup().await;
}

/// 50 concurrent reads meet a token that expires within the margin: exactly one refresh, and
/// the rotated refresh token is the one used next time.
#[tokio::test]
async fn proactive_refresh_is_single_flight_and_rotates() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&app, oauth_body(&access, &refresh, Some(60))).await;
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 0);

    let path = format!("{CONTACTS}?limit=1");
    let calls = (0..50).map(|_| app.get(&path, ADMIN_TOKEN));
    for a in futures::future::join_all(calls).await {
        a.expect_ok(200);
    }
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 1);
    assert_eq!(sim.counter("token_refresh_rejected").await.unwrap(), 0);
    // The refresh was form-encoded with Basic client credentials and the original token.
    let token_reqs = sim.requests(Some("/token")).await.unwrap();
    assert_eq!(token_reqs.len(), 1);
    let r = &token_reqs[0];
    assert!(r.headers["authorization"].starts_with("Basic "));
    assert!(r.headers["content-type"].starts_with("application/x-www-form-urlencoded"));
    assert!(r.body.contains("grant_type=refresh_token"));
    assert!(r.body.contains(&format!("refresh_token={refresh}")));
    assert!(!r.body.contains("client_secret"));

    // The new access token is used from now on; the old one is never sent again.
    let before = sim
        .requests(Some("/crm/rest/v1/contacts"))
        .await
        .unwrap()
        .len();
    app.get(&format!("{CONTACTS}?limit=1"), ADMIN_TOKEN)
        .await
        .expect_ok(200);
    let reqs = sim.requests(Some("/crm/rest/v1/contacts")).await.unwrap();
    assert_eq!(reqs.len(), before + 1);
    assert_ne!(
        reqs.last().unwrap().headers["authorization"],
        format!("Bearer {access}")
    );
    // Expire the new token at Keap: the 401 refreshes once more, with the rotated refresh token.
    let current = reqs.last().unwrap().headers["authorization"]
        .trim_start_matches("Bearer ")
        .to_owned();
    sim.post("/_sim/tokens/expire", &json!({"accessToken": current}))
        .await
        .unwrap();
    app.get(&format!("{CONTACTS}?limit=1"), ADMIN_TOKEN)
        .await
        .expect_ok(200);
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 2);
    assert_eq!(sim.counter("token_refresh_rejected").await.unwrap(), 0);
    let token_reqs = sim.requests(Some("/token")).await.unwrap();
    assert!(
        !token_reqs[1].body.contains(&refresh),
        "the old refresh token is dead"
    );
    app.stop().await;
    db.cleanup().await;
}

/// A write refused for its own input never rotates the tokens: the proactive refresh of a token
/// near expiry happens at the first Keap call, not when the session opens.
#[tokio::test]
async fn a_refused_write_does_not_refresh_a_token_near_expiry() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&app, oauth_body(&access, &refresh, Some(60))).await;
    let subscribers = "/api/integrations/pub-k/keap/subscribers";
    let bad = app
        .call(
            Method::POST,
            subscribers,
            Some(ADMIN_TOKEN),
            Some(json!({"email": "not-an-email"})),
        )
        .await;
    bad.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 0);
    // The next call that reaches Keap refreshes first, once.
    app.call(
        Method::POST,
        subscribers,
        Some(ADMIN_TOKEN),
        Some(json!({"email": "fresh@example.com"})),
    )
    .await
    .expect_ok(200);
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 1);
    app.stop().await;
    db.cleanup().await;
}

/// 50 concurrent reads meet a token Keap says has expired (401): one refresh, every call
/// retried once and answered.
#[tokio::test]
async fn expired_token_401_refreshes_once_for_concurrent_calls() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&app, oauth_body(&access, &refresh, None)).await;
    sim.post("/_sim/tokens/expire", &json!({"accessToken": access}))
        .await
        .unwrap();
    let path = format!("{CONTACTS}?limit=1");
    let calls = (0..50).map(|_| app.get(&path, ADMIN_TOKEN));
    for a in futures::future::join_all(calls).await {
        a.expect_ok(200);
    }
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 1);
    assert_eq!(sim.counter("token_refresh_rejected").await.unwrap(), 0);
    app.stop().await;
    db.cleanup().await;
}

/// Two server processes on one database: still exactly one refresh.
#[tokio::test]
async fn two_servers_share_one_refresh() {
    let db = fresh_db().await;
    let sandbox = Sandbox::start(
        &mut sim_core::Binder::ephemeral(),
        &SandboxOptions::default(),
    )
    .await
    .unwrap();
    let overrides = sandbox.upstream_overrides();
    let extra: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let master = random_master_key();
    let a = TestApp::spawn_with(&db, &master, &extra).await;
    let b = TestApp::spawn_with(&db, &master, &extra).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&a, oauth_body(&access, &refresh, Some(1))).await;
    // 20 calls: each server keeps its own budget (shared budgets need SHARPSEND_REDIS_URL),
    // so two servers together stay under Keap's 25/s spike arrest only below its burst.
    let path = format!("{CONTACTS}?limit=1");
    let calls = (0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.get(&path, ADMIN_TOKEN)
    });
    for r in futures::future::join_all(calls).await {
        r.expect_ok(200);
    }
    assert_eq!(sim.counter("token_refresh").await.unwrap(), 1);
    assert_eq!(sim.counter("token_refresh_rejected").await.unwrap(), 0);
    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}

/// A revoked refresh token: `reauth_required`, a clear error, nothing else lost; no further
/// upstream calls until the publisher reconnects.
#[tokio::test]
async fn revoked_refresh_token_requires_reauth() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&app, oauth_body(&access, &refresh, Some(1))).await;
    sim.post("/_sim/tokens/revoke", &json!({"refreshToken": refresh}))
        .await
        .unwrap();
    let a = app.get(CONTACTS, ADMIN_TOKEN).await;
    let b = a.expect_error(422, "INVALID_CREDENTIALS");
    let msg = b["error"].as_str().unwrap();
    assert!(msg.contains("reconnect"), "{msg}");
    assert!(msg.contains("refresh token"), "{msg}");
    let list = app.get("/api/integrations/pub-k", ADMIN_TOKEN).await;
    let i = &list.expect_ok(200)["integrations"][0];
    assert_eq!(i["status"], "reauth_required");
    assert_eq!(i["config"]["campaignIds"], json!([]));
    assert!(i["credentials"]["refreshToken"].is_string());
    // No further refresh attempts while reauth is required.
    let rejected = sim.counter("token_refresh_rejected").await.unwrap();
    app.get(CONTACTS, ADMIN_TOKEN)
        .await
        .expect_error(422, "INVALID_CREDENTIALS");
    assert_eq!(
        sim.counter("token_refresh_rejected").await.unwrap(),
        rejected
    );
    // Reconnecting brings it back.
    let (access2, refresh2) = token_pair(&sim).await;
    let d = connect(&app, oauth_body(&access2, &refresh2, None)).await;
    assert_eq!(d["status"], "connected");
    app.get(CONTACTS, ADMIN_TOKEN).await.expect_ok(200);
    app.stop().await;
    db.cleanup().await;
}

/// Follows an authorize URL at the simulator (which redirects at once in approve/deny mode)
/// and answers the callback URL it redirected to.
async fn authorize_redirect(app: &TestApp, url: &str) -> String {
    let resp = app.http.get(url).send().await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        302,
        "{}",
        resp.text().await.unwrap()
    );
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&app.url("/oauth/keap/callback")),
        "{location}"
    );
    location
}

async fn authorize(app: &TestApp, key: &str) -> Value {
    app.get("/api/integrations/keap/pub-k/authorize-url", key)
        .await
        .expect_ok(200)
        .clone()
}

async fn html(app: &TestApp, url: &str) -> (u16, String) {
    let resp = app.http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn authorize_flow_with_operator_client_denial_forgery_and_replay() {
    let db = fresh_db().await;
    let sandbox = Sandbox::start(
        &mut sim_core::Binder::ephemeral(),
        &SandboxOptions::default(),
    )
    .await
    .unwrap();
    let mut extra: Vec<(&str, String)> = sandbox.upstream_overrides();
    extra.push(("SHARPSEND_KEAP_CLIENT_ID", sim_keap::CLIENT_ID.to_owned()));
    extra.push((
        "SHARPSEND_KEAP_CLIENT_SECRET",
        sim_keap::CLIENT_SECRET.to_owned(),
    ));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(&db, &random_master_key(), &extra).await;
    let sim = keap_sim(&sandbox);
    let (_, key) = app.create_key("pub-k").await;

    // Denied at Keap: a clear page, nothing connected.
    sim.post("/_sim/authorize", &json!({"mode": "deny"}))
        .await
        .unwrap();
    let d = authorize(&app, &key).await;
    let url = url::Url::parse(d["url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], sim_keap::CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "full");
    assert_eq!(q["redirect_uri"], app.url("/oauth/keap/callback"));
    assert_eq!(q["state"], d["state"].as_str().unwrap());
    let location = authorize_redirect(&app, url.as_str()).await;
    let (status, page) = html(&app, &location).await;
    assert_eq!(status, 400);
    assert!(page.contains("denied"), "{page}");
    let list = app.get("/api/integrations/pub-k", &key).await;
    assert_eq!(list.expect_ok(200)["integrations"], json!([]));

    // Forged state, missing state.
    let forged = format!("/oauth/keap/callback?code=abc&state={}", "ab".repeat(32));
    let (status, page) = html(&app, &app.url(&forged)).await;
    assert_eq!(status, 400);
    assert!(page.contains("did not issue"), "{page}");
    let (status, _) = html(&app, &app.url("/oauth/keap/callback?code=abc")).await;
    assert_eq!(status, 400);

    // Approved: the code is exchanged, the token tested, the integration connected.
    sim.post("/_sim/authorize", &json!({"mode": "approve"}))
        .await
        .unwrap();
    let d = authorize(&app, &key).await;
    let location = authorize_redirect(&app, d["url"].as_str().unwrap()).await;
    let (status, page) = html(&app, &location).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Keap connected"), "{page}");
    assert_eq!(sim.counter("token_code_exchange").await.unwrap(), 1);
    let exchange = sim.requests(Some("/token")).await.unwrap();
    assert!(exchange[0].body.contains("grant_type=authorization_code"));
    let list = app.get("/api/integrations/pub-k", &key).await;
    let i = &list.expect_ok(200)["integrations"][0];
    assert_eq!(i["status"], "connected");
    assert_eq!(i["config"]["authType"], "oauth");
    app.get(&format!("{CONTACTS}?limit=2"), &key)
        .await
        .expect_ok(200);

    // Replaying the callback: refused, no second exchange.
    let (status, page) = html(&app, &location).await;
    assert_eq!(status, 400);
    assert!(page.contains("already"), "{page}");
    assert_eq!(sim.counter("token_code_exchange").await.unwrap(), 1);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn authorize_url_needs_a_client() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let a = app
        .get("/api/integrations/keap/pub-k/authorize-url", ADMIN_TOKEN)
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "clientId");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn subscribers_upsert_by_email_with_tags_and_lead_source() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    let mut body = oauth_body(&access, &refresh, None);
    body["config"]["leadSourceId"] = json!("1");
    connect(&app, body).await;
    let path = "/api/integrations/pub-k/keap/subscribers";

    let a = app
        .call(
            Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(
                json!({"email": "new.reader@example.com", "firstName": "New", "tags": ["91", 93]}),
            ),
        )
        .await;
    let d = a.expect_ok(200).clone();
    assert_eq!(d["platform"], "keap");
    assert_eq!(d["status"], "upserted");
    let id = d["id"].as_str().unwrap().to_owned();
    let reqs = sim.requests(Some("/crm/rest/v2/contacts")).await.unwrap();
    let r = reqs.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(r.query.as_deref(), Some("duplicate_option=Email"));
    let sent = r.json();
    assert_eq!(
        sent["email_addresses"][0]["email"],
        "new.reader@example.com"
    );
    assert_eq!(sent["given_name"], "New");
    assert_eq!(sent["leadsource_id"], "1");
    let tagged = sim.requests(Some("/crm/rest/v2/tags/")).await.unwrap();
    assert_eq!(tagged.len(), 2);
    assert!(tagged[0].path.ends_with("contacts:applyTags"));
    // The same email again updates the same contact.
    let a = app
        .call(
            Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(json!({"email": "new.reader@example.com", "lastName": "Reader"})),
        )
        .await;
    assert_eq!(a.expect_ok(200)["id"], id.as_str());

    // Validation before any upstream call.
    let before = sim.requests(None).await.unwrap().len();
    for (b, field) in [
        (json!({"firstName": "x"}), "email"),
        (json!({"email": "nope"}), "email"),
        (json!({"email": "a@b.c", "tags": ["vip"]}), "tags[0]"),
        (json!({"subscribers": []}), "subscribers"),
    ] {
        let a = app
            .call(Method::POST, path, Some(ADMIN_TOKEN), Some(b))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field);
    }
    assert_eq!(sim.requests(None).await.unwrap().len(), before);

    // A batch: per-item failures, the rest accepted.
    let a = app
        .call(
            Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(json!({"subscribers": [
                {"email": "b1@example.com"},
                {"email": "bad"},
                {"email": "b3@example.com", "tags": ["999999"]},
                {"email": "b4@example.com"}
            ]})),
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["accepted"], 2, "{d}");
    assert_eq!(d["failed"][0]["index"], 1);
    assert_eq!(d["failed"][0]["code"], "VALIDATION_ERROR");
    assert_eq!(d["failed"][1]["index"], 2);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn subscriber_batches_keep_to_keaps_limit_and_stop_on_refused_credentials() {
    // Arrange: a Keap integration served by the generic subscribers route.
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&app, oauth_body(&access, &refresh, None)).await;
    let path = "/api/integrations/pub-k/keap/subscribers";
    let before = sim.requests(None).await.unwrap().len();

    // Act: 101 people, one more than Keap's batch takes.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"email": format!("r{i}@example.com")}))
        .collect();
    let a = app
        .call(
            Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(json!({"subscribers": many})),
        )
        .await;

    // Assert: refused whole, before any upstream call.
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "subscribers");
    assert_eq!(sim.requests(None).await.unwrap().len(), before);

    // An item that does not parse fails at its position; the rest go on.
    let a = app
        .call(
            Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(json!({"subscribers": [
                {"email": "ok1@example.com"},
                {"email": "ok2@example.com", "firstName": 5}
            ]})),
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["accepted"], 1, "{d}");
    assert_eq!(d["failed"][0]["index"], 1);
    assert_eq!(d["failed"][0]["code"], "VALIDATION_ERROR");

    // A revoked grant (the token refresh after Keap's 401 is refused too) stops the batch with
    // INVALID_CREDENTIALS, not one failure per item: the second person is never sent.
    sim.post(
        "/_sim/tokens/revoke",
        &json!({"accessToken": access, "refreshToken": refresh}),
    )
    .await
    .unwrap();
    let upserts =
        |reqs: Vec<sim_core::LoggedRequest>| reqs.iter().filter(|r| r.method == "POST").count();
    let sent = upserts(sim.requests(Some("/crm/rest/v2/contacts")).await.unwrap());
    let a = app
        .call(
            Method::POST,
            path,
            Some(ADMIN_TOKEN),
            Some(json!({"subscribers": [
                {"email": "late1@example.com"},
                {"email": "late2@example.com"}
            ]})),
        )
        .await;
    a.expect_error(422, "INVALID_CREDENTIALS");
    assert_eq!(
        upserts(sim.requests(Some("/crm/rest/v2/contacts")).await.unwrap()),
        sent + 1
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn campaigns_are_listed_with_paging() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    connect(
        &app,
        json!({"publisherId": "pub-k", "apiKey": sim_keap::SERVICE_ACCOUNT_KEY}),
    )
    .await;
    let path = "/api/integrations/pub-k/keap/campaigns";
    let a = app
        .get(&format!("{path}?limit=5&offset=2"), ADMIN_TOKEN)
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["limit"], 5);
    assert_eq!(d["offset"], 2);
    assert_eq!(d["total"], 12);
    let c = &d["campaigns"][0];
    assert!(c["id"].is_string());
    assert!(["published", "draft"].contains(&c["status"].as_str().unwrap()));
    assert_eq!(c["type"], "campaign");
    assert_eq!(c["platform"], "keap");
    assert!(c["createdAt"].as_str().unwrap().ends_with('Z'));
    let reqs = sim.requests(Some("/crm/rest/v1/campaigns")).await.unwrap();
    assert_eq!(reqs[0].query.as_deref(), Some("limit=5&offset=2"));
    let a = app.get(&format!("{path}?limit=0"), ADMIN_TOKEN).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "limit");
    // Tags are Keap's segments.
    let a = app
        .get("/api/integrations/pub-k/keap/segments?limit=3", ADMIN_TOKEN)
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["total"], 12);
    assert_eq!(d["segments"].as_array().unwrap().len(), 3);
    assert_eq!(d["segments"][0]["id"], "91");
    assert!(d["segments"][0]["name"].is_string());
    app.get("/api/integrations/pub-z/keap/campaigns", ADMIN_TOKEN)
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn idle_token_sweep_refreshes_old_tokens_exactly_once() {
    use sharpsend::keap_sweep::{IDLE_AFTER, SweepReport, sweep_once};
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    // An access token with one hour left was, by Keap's 24-hour lifetime, refreshed 23 hours ago.
    connect(&app, oauth_body(&access, &refresh, Some(3_600))).await;
    let before = sim.counter("token_refresh").await.unwrap();
    let now = chrono::Utc::now();

    // Refreshed four days before the sweep: younger than the threshold, left alone.
    let r = sweep_once(&app.state, now + chrono::Duration::days(3), IDLE_AFTER).await;
    assert_eq!(
        r,
        SweepReport {
            checked: 1,
            refreshed: 0,
            failed: 0
        }
    );
    assert_eq!(sim.counter("token_refresh").await.unwrap(), before);

    // Two sweeps at once (two replicas) when the stored token is 7 days 22 hours idle refresh it
    // exactly once. The sweeps' clock stands just under `IDLE_AFTER` after the real now, so a
    // sweep that reads the credentials after the other one's refresh sees a fresh token (its
    // refresh is real time), as a replica sweeping later would.
    let later = now + IDLE_AFTER - chrono::Duration::hours(1);
    let (a, b) = tokio::join!(
        sweep_once(&app.state, later, IDLE_AFTER),
        sweep_once(&app.state, later, IDLE_AFTER)
    );
    assert_eq!(a.failed + b.failed, 0);
    assert_eq!(sim.counter("token_refresh").await.unwrap(), before + 1);
    // A replica that sweeps only after that refresh finds the token fresh (the interleaving in
    // which the joined sweeps run one after the other).
    let r = sweep_once(&app.state, later, IDLE_AFTER).await;
    assert_eq!((r.checked, r.refreshed, r.failed), (1, 0, 0));
    assert_eq!(sim.counter("token_refresh").await.unwrap(), before + 1);

    // The rotated tokens were stored (the credentials version moved) and are the ones in use.
    let stored = app
        .state
        .store
        .list_platform_integrations(domain::Platform::Keap)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].credentials_version, 2);
    app.get(&format!("{CONTACTS}?limit=1"), ADMIN_TOKEN)
        .await
        .expect_ok(200);
    assert_eq!(sim.counter("token_refresh").await.unwrap(), before + 1);
}

#[tokio::test]
async fn email_messages_are_queued_through_keap() {
    use base64::Engine as _;
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let sim = keap_sim(&sandbox);
    let (access, refresh) = token_pair(&sim).await;
    connect(&app, oauth_body(&access, &refresh, Some(86_400))).await;
    let d = app
        .get(&format!("{CONTACTS}?limit=1"), ADMIN_TOKEN)
        .await
        .expect_ok(200)
        .clone();
    let email = d["contacts"][0]["email"].as_str().unwrap().to_owned();
    let id = d["contacts"][0]["id"].as_str().unwrap().to_owned();
    const MESSAGES: &str = "/api/integrations/pub-k/keap/messages";

    // By email: the contact is looked up, the bodies go Base64 as Keap requires.
    let a = app
        .call(
            Method::POST,
            MESSAGES,
            Some(ADMIN_TOKEN),
            Some(json!({"channel": "email", "to": {"email": email},
                "data": {"subject": "Hello", "html": "<p>Hi</p>", "text": "Hi"}})),
        )
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["platform"], "keap");
    assert_eq!(d["channel"], "email");
    assert_eq!(d["status"], "queued");
    let sent = sim
        .requests(Some("/crm/rest/v1/emails/queue"))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(body["contacts"], json!([id.parse::<u64>().unwrap()]));
    assert_eq!(body["subject"], "Hello");
    assert_eq!(body["user_id"], 1);
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        b64.decode(body["html_content"].as_str().unwrap()).unwrap(),
        b"<p>Hi</p>"
    );
    assert_eq!(sim.counter("email_queued").await.unwrap(), 1);

    // By contact id, with a sender.
    app.call(
        Method::POST,
        MESSAGES,
        Some(ADMIN_TOKEN),
        Some(json!({"channel": "email", "to": {"userId": id},
            "data": {"subject": "Again", "text": "Hi", "fromUserId": 7}})),
    )
    .await
    .expect_ok(200);
    assert_eq!(sim.counter("email_queued").await.unwrap(), 2);

    // Checked before Keap: no subject, no body, a schedule; an unknown email is NOT_FOUND.
    for (data, field) in [
        (json!({"text": "x"}), "data.subject"),
        (json!({"subject": "x"}), "data.html"),
    ] {
        let a = app
            .call(
                Method::POST,
                MESSAGES,
                Some(ADMIN_TOKEN),
                Some(json!({"channel": "email", "to": {"email": email}, "data": data})),
            )
            .await;
        assert_eq!(
            a.expect_error(400, "VALIDATION_ERROR")["details"]["field"],
            field
        );
    }
    app.call(
        Method::POST,
        MESSAGES,
        Some(ADMIN_TOKEN),
        Some(
            json!({"channel": "email", "to": {"email": "nobody@nowhere.example"},
            "data": {"subject": "x", "text": "y"}}),
        ),
    )
    .await
    .expect_error(404, "NOT_FOUND");
    // SMS still answers from the capability matrix.
    app.call(
        Method::POST,
        MESSAGES,
        Some(ADMIN_TOKEN),
        Some(json!({"channel": "sms", "to": {"phone": "+15550100"}})),
    )
    .await
    .expect_error(422, "UNSUPPORTED_OPERATION");
    assert_eq!(sim.counter("email_queued").await.unwrap(), 2);
}
