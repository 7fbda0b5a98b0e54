//! Our own rate limits (issue 14, item 6): per principal, tighter on `test-connection` and
//! `connect`, and per client address on failed authentications (dashboard sign-ins included).
//! Small limits come from the configuration; per-minute rates keep the tests free of timing.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::{
    dashboard::Web,
    helpers::{ADMIN_TOKEN, Answer, TestApp, fresh_db},
};

fn header_u64(a: &Answer, name: &str) -> u64 {
    a.headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", a.headers))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[track_caller]
fn expect_refused(a: &Answer) {
    a.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert!(header_u64(a, "retry-after") >= 1, "{:?}", a.headers);
    assert_eq!(
        a.body["details"]["retryAfterSeconds"],
        header_u64(a, "retry-after")
    );
    assert_eq!(header_u64(a, "ratelimit-remaining"), 0);
    assert!(header_u64(a, "ratelimit-reset") >= 1);
}

#[tokio::test]
async fn a_principal_past_its_burst_is_refused_with_retry_after_and_the_headers_say_so() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        &[("SHARPSEND_API_RATE_LIMIT", "5/m")],
    )
    .await;
    let (_, key) = app.create_key("pub1").await; // the admin's first call

    for remaining in (0..4).rev() {
        let a = app.get("/api/platforms", ADMIN_TOKEN).await;
        a.expect_ok(200);
        assert_eq!(header_u64(&a, "ratelimit-limit"), 5);
        assert_eq!(header_u64(&a, "ratelimit-remaining"), remaining);
        // One call comes back every 12 s.
        assert!((1..=60).contains(&header_u64(&a, "ratelimit-reset")));
    }
    let refused = app.get("/api/platforms", ADMIN_TOKEN).await;
    expect_refused(&refused);
    assert!(header_u64(&refused, "retry-after") <= 12);
    assert_eq!(header_u64(&refused, "ratelimit-limit"), 5);
    // Refused before anything else: an admin route or a body that would be a 400 is 429 too.
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(json!({"publisherId": "pub1"})),
    )
    .await
    .expect_error(429, "RATE_LIMIT_EXCEEDED");

    // Another principal has its own budget.
    let a = app.get("/api/platforms", &key).await;
    a.expect_ok(200);
    assert_eq!(header_u64(&a, "ratelimit-remaining"), 4);
    // Gate errors past the limit carry the headers too.
    let denied = app.get("/api/integrations/otherpub", &key).await;
    denied.expect_error(403, "PERMISSION_DENIED");
    assert_eq!(header_u64(&denied, "ratelimit-remaining"), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_per_second_limit_lets_a_burst_of_twice_its_rate_through_in_parallel() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        &[("SHARPSEND_API_RATE_LIMIT", "5/s")],
    )
    .await;
    let started = std::time::Instant::now();
    let answers =
        futures::future::join_all((0..40).map(|_| app.get("/api/platforms", ADMIN_TOKEN))).await;
    let elapsed = started.elapsed().as_secs_f64();
    let passed = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    for a in answers.iter().filter(|a| a.status != StatusCode::OK) {
        expect_refused(a);
        assert_eq!(header_u64(a, "ratelimit-limit"), 10);
    }
    // The burst of 10, plus what came back (5 a second) while the 40 were served.
    let most = 10 + (elapsed * 5.0).ceil() as usize;
    assert!(
        (10..=most).contains(&passed),
        "{passed} passed in {elapsed:.2}s"
    );
    app.stop().await;
}

#[tokio::test]
async fn test_connection_and_connect_share_a_tighter_limit_per_principal() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        &[("SHARPSEND_TEST_CONNECTION_RATE_LIMIT", "3/m")],
    )
    .await;
    let (_, key) = app.create_key("pub1").await;
    let (_, other) = app.create_key("pub2").await;

    // Invalid bodies: counted all the same, and no upstream is called.
    for (i, route) in [
        "iterable/test-connection",
        "keap/test-connection",
        "customerio/connect",
    ]
    .iter()
    .enumerate()
    {
        let a = app
            .call(
                Method::POST,
                &format!("/api/integrations/{route}"),
                Some(&key),
                Some(json!({})),
            )
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(header_u64(&a, "ratelimit-limit"), 3, "{route}");
        assert_eq!(
            header_u64(&a, "ratelimit-remaining"),
            2 - i as u64,
            "{route}"
        );
    }
    for route in ["iterable/test-connection", "iterable/connect"] {
        let a = app
            .call(
                Method::POST,
                &format!("/api/integrations/{route}"),
                Some(&key),
                Some(json!({"apiKey": "stolen"})),
            )
            .await;
        expect_refused(&a);
        assert_eq!(header_u64(&a, "ratelimit-limit"), 3);
        assert!(
            a.body["error"].as_str().unwrap().contains("3/m"),
            "{}",
            a.body
        );
    }
    // Other routes answer under the API limit (50/s, bursts of 100) …
    let a = app.get("/api/platforms", &key).await;
    a.expect_ok(200);
    assert_eq!(header_u64(&a, "ratelimit-limit"), 100);
    // … and another key has its own credential checks.
    app.call(
        Method::POST,
        "/api/integrations/iterable/test-connection",
        Some(&other),
        Some(json!({})),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR");
    app.stop().await;
}

#[tokio::test]
async fn an_address_with_too_many_failed_authentications_is_refused_even_a_valid_token() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await; // the default: 20 failures a minute
    for i in 0..20 {
        let token = format!("ssk_guess{i}");
        let a = if i % 4 == 0 {
            app.call(Method::GET, "/api/platforms", None, None).await
        } else {
            app.get("/api/platforms", &token).await
        };
        a.expect_error(401, "UNAUTHORIZED");
    }
    let a = app.get("/api/platforms", "ssk_guess21").await;
    expect_refused(&a);
    assert!(
        header_u64(&a, "retry-after") <= 3,
        "one failure comes back every 3 s"
    );
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("failed authentications"),
        "{}",
        a.body
    );
    // While the address is refused, a valid token is too: otherwise the answer would tell a
    // valid guess from a wrong one.
    expect_refused(&app.get("/api/platforms", ADMIN_TOKEN).await);
    // Routes outside /api/ are not authenticated and not refused.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn failed_dashboard_sign_ins_count_as_failed_authentications() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        &[("SHARPSEND_AUTH_FAILURE_RATE_LIMIT", "3/m")],
    )
    .await;
    let mut web = Web::new(&app);
    for _ in 0..2 {
        assert_eq!(
            web.sign_in("ssk_wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    app.get("/api/platforms", "ssk_wrong")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let page = web.sign_in("ssk_wrong").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.headers.contains_key(header::RETRY_AFTER));
    assert!(
        page.body.contains("Too many failed sign-ins"),
        "{}",
        page.body
    );
    // The right key is refused too until the address has room again; so is the API.
    let page = web.sign_in(ADMIN_TOKEN).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    expect_refused(&app.get("/api/platforms", ADMIN_TOKEN).await);
    app.stop().await;
}

#[tokio::test]
async fn zero_turns_every_limit_off() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        &[
            ("SHARPSEND_API_RATE_LIMIT", "0"),
            ("SHARPSEND_TEST_CONNECTION_RATE_LIMIT", "0"),
            ("SHARPSEND_AUTH_FAILURE_RATE_LIMIT", "0"),
        ],
    )
    .await;
    for i in 0..30 {
        app.get("/api/platforms", &format!("ssk_guess{i}"))
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    // Past the default burst of 100, at once.
    let answers =
        futures::future::join_all((0..150).map(|_| app.get("/api/platforms", ADMIN_TOKEN))).await;
    for a in &answers {
        a.expect_ok(200);
        assert!(!a.headers.contains_key("ratelimit-limit"));
    }
    for _ in 0..15 {
        app.call(
            Method::POST,
            "/api/integrations/iterable/test-connection",
            Some(ADMIN_TOKEN),
            Some(json!({})),
        )
        .await
        .expect_error(400, "VALIDATION_ERROR");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_api_operation_documents_the_429_and_the_ratelimit_headers() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let doc = app.get("/api/openapi.json", ADMIN_TOKEN).await;
    assert_eq!(doc.status, StatusCode::OK);
    let mut operations = 0;
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = &op["responses"];
            if !path.starts_with("/api/") {
                continue;
            }
            operations += 1;
            let refusal = &responses["429"];
            assert!(
                refusal["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("SHARPSEND_API_RATE_LIMIT")),
                "{method} {path}: {refusal}"
            );
            assert!(
                refusal["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
            for (status, response) in responses.as_object().unwrap() {
                let documented = response["headers"]["RateLimit-Remaining"].is_object();
                let expected = status.starts_with('2') || status == "429";
                assert_eq!(documented, expected, "{method} {path} {status}");
            }
        }
    }
    assert!(operations > 20, "{operations}");
    app.stop().await;
}
