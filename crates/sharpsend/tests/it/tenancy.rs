//! Who may call what: 401s, 403s across publishers on every route shape, admin-only routes.

use axum::{Json, Router, routing::post};
use reqwest::Method;
use serde_json::json;
use sharpsend::{
    http::{
        extract::{ApiJson, Scope},
        middleware::authorize,
    },
    state::AppState,
};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_tokens_get_401() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let path = "/api/integrations/pub-a";
    app.call(Method::GET, path, None, None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    for header in ["Bearer", "Bearer ", "Basic abc", "token"] {
        let resp = app
            .http
            .get(app.url(path))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        TestApp::answer(resp)
            .await
            .expect_error(401, "UNAUTHORIZED");
    }
    app.get(path, "ssk_not-a-real-key")
        .await
        .expect_error(401, "UNAUTHORIZED");
    app.get(path, "nonsense")
        .await
        .expect_error(401, "UNAUTHORIZED");

    let (key_id, key) = app.create_key("pub-a").await;
    app.get(path, &key).await.expect_ok(200);
    app.call(
        Method::DELETE,
        &format!("/api/admin/api-keys/{key_id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .expect_ok(200);
    // Revocation takes effect on the very next request.
    let a = app.get(path, &key).await;
    a.expect_error(401, "UNAUTHORIZED");
    assert!(a.body["error"].as_str().unwrap().contains("revoked"));
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn publisher_keys_cannot_reach_other_publishers_on_any_route_shape() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key_a) = app.create_key("pub-a").await;
    let (key_b_id, _) = app.create_key("pub-b").await;

    let forbidden = [
        (Method::GET, "/api/integrations/pub-b".to_owned()),
        (
            Method::DELETE,
            "/api/integrations/pub-b/iterable".to_owned(),
        ),
        (
            Method::GET,
            "/api/admin/publishers/pub-a/api-keys".to_owned(),
        ),
        (
            Method::POST,
            "/api/admin/publishers/pub-a/api-keys".to_owned(),
        ),
        (
            Method::GET,
            "/api/admin/publishers/pub-b/api-keys".to_owned(),
        ),
        (Method::DELETE, format!("/api/admin/api-keys/{key_b_id}")),
    ];
    for (method, path) in forbidden {
        app.call(method.clone(), &path, Some(&key_a), None)
            .await
            .expect_error(403, "PERMISSION_DENIED");
    }
    // Its own publisher is fine; the admin may do everything.
    app.get("/api/integrations/pub-a", &key_a)
        .await
        .expect_ok(200);
    app.get("/api/integrations/pub-b", ADMIN_TOKEN)
        .await
        .expect_ok(200);
    app.get("/api/platforms", &key_a).await.expect_ok(200);
    // Key b was not revoked by the forbidden attempt.
    let keys = app
        .get("/api/admin/publishers/pub-b/api-keys", ADMIN_TOKEN)
        .await;
    assert!(keys.expect_ok(200)["apiKeys"][0]["revokedAt"].is_null());
    app.stop().await;
    db.cleanup().await;
}

async fn echo_scope(
    scope: Scope,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Json<serde_json::Value> {
    Json(json!({"publisher": scope.publisher.map(|p| p.to_string()), "body": body}))
}

#[tokio::test]
async fn a_body_naming_another_publisher_is_refused_before_the_handler() {
    let db = fresh_db().await;
    // A body-taking route under the same authorize middleware every /api route has.
    let probe = TestApp::spawn(&db).await;
    let state: AppState = probe.state.clone();
    let extra = Router::new()
        .route("/api/integrations/iterable/connect", post(echo_scope))
        .route_layer(axum::middleware::from_fn_with_state(state, authorize));
    let (_, key_a) = probe.create_key("pub-a").await;
    probe.stop().await;
    let app = TestApp::spawn_router(&db, extra).await;

    let path = "/api/integrations/iterable/connect";
    let other = json!({"publisherId": "pub-b", "apiKey": "k"});
    app.call(Method::POST, path, Some(&key_a), Some(other))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    let bad = json!({"publisherId": "admin", "apiKey": "k"});
    let a = app.call(Method::POST, path, Some(&key_a), Some(bad)).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "publisherId");
    let mine = json!({"publisherId": "pub-a", "apiKey": "k"});
    let a = app.call(Method::POST, path, Some(&key_a), Some(mine)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["publisher"], "pub-a");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn malformed_and_reserved_publisher_ids_and_unknown_platforms_are_400() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    for bad in ["admin", "Keap", "_lead", "a.b", &"x".repeat(65)] {
        let a = app
            .get(&format!("/api/integrations/{bad}"), ADMIN_TOKEN)
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), "publisherId", "{bad}");
    }
    let a = app
        .call(
            Method::DELETE,
            "/api/integrations/pub-a/hubspot",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "platform");
    // 401 comes before 400: an anonymous caller learns nothing about the path.
    app.call(Method::GET, "/api/integrations/admin", None, None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_revoke_by_another_process_takes_effect_within_the_poll_interval() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (key_id, key) = app.create_key("pub-a").await;
    let path = "/api/integrations/pub-a";
    app.get(path, &key).await.expect_ok(200);
    app.get(path, &key).await.expect_ok(200); // now served from the read cache

    // The CLI, or another replica: its own connection to the same database.
    let other = db.open().await.unwrap();
    other.revoke_api_key(&key_id).await.unwrap();
    let deadline = std::time::Instant::now() + sharpsend::cache::POLL_INTERVAL * 4;
    loop {
        let a = app.get(path, &key).await;
        if a.status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revocation not seen within the poll interval"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.stop().await;
    db.cleanup().await;
}
