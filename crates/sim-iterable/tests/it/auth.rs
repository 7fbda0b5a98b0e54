//! Api-Key auth as Iterable checks it: header forms, key kinds, data-centre binding, JWT keys.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sim_iterable::{
    EU_SERVER_KEY, US_JS_KEY, US_JWT_KEY, US_MOBILE_KEY, US_READ_ONLY_KEY, US_SERVER_KEY,
};

use crate::common::{send, sim};

fn assert_bad_key(status: StatusCode, body: &Value, endpoint: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        &json!({"msg": "Invalid API key", "code": "BadApiKey",
                "params": {"ip": "127.0.0.1", "endpoint": endpoint}})
    );
}

#[tokio::test]
async fn missing_and_unknown_keys_get_the_recorded_401() {
    let s = sim().await;
    let url = format!("{}/api/channels", s.us);
    let (st, body) = send(s.http.get(&url)).await;
    assert_bad_key(st, &body, "/api/channels");
    let (st, body) = send(s.http.get(&url).header("Api-Key", "0000")).await;
    assert_bad_key(st, &body, "/api/channels");
    assert_eq!(s.ctl.counter("auth_rejected").await.unwrap(), 2);
}

#[tokio::test]
async fn underscore_and_lower_case_header_forms_are_accepted() {
    let s = sim().await;
    let url = format!("{}/api/channels", s.us);
    for name in ["Api-Key", "api-key", "Api_Key", "api_key"] {
        let (st, body) = send(s.http.get(&url).header(name, US_SERVER_KEY)).await;
        assert_eq!(st, StatusCode::OK, "header {name}");
        assert!(body["channels"].is_array());
    }
}

#[tokio::test]
async fn keys_only_work_in_their_own_data_centre() {
    let s = sim().await;
    let (st, body) = send(
        s.http
            .get(format!("{}/api/lists", s.us))
            .header("Api-Key", EU_SERVER_KEY),
    )
    .await;
    assert_bad_key(st, &body, "/api/lists");
    let (st, body) = send(
        s.http
            .get(format!("{}/api/lists", s.eu))
            .header("Api-Key", US_SERVER_KEY),
    )
    .await;
    assert_bad_key(st, &body, "/api/lists");
    let (st, _) = send(
        s.http
            .get(format!("{}/api/lists", s.eu))
            .header("Api-Key", EU_SERVER_KEY),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn read_only_keys_read_metadata_but_cannot_write_or_export() {
    let s = sim().await;
    let get = |p: &str| {
        s.http
            .get(format!("{}{p}", s.us))
            .header("Api-Key", US_READ_ONLY_KEY)
    };
    assert_eq!(send(get("/api/campaigns")).await.0, StatusCode::OK);
    assert_eq!(send(get("/api/templates")).await.0, StatusCode::OK);
    let (st, body) = send(get("/api/export/data.json?dataTypeName=user&range=All")).await;
    assert_bad_key(st, &body, "/api/export/data.json");
    let (st, body) = send(
        s.http
            .post(format!("{}/api/users/update", s.us))
            .header("Api-Key", US_READ_ONLY_KEY)
            .json(&json!({"email": "a@b.co"})),
    )
    .await;
    assert_bad_key(st, &body, "/api/users/update");
}

#[tokio::test]
async fn mobile_keys_reach_only_the_mobile_endpoints() {
    let s = sim().await;
    let (st, body) = send(
        s.http
            .get(format!("{}/api/channels", s.us))
            .header("Api-Key", US_MOBILE_KEY),
    )
    .await;
    assert_bad_key(st, &body, "/api/channels");
    let (st, body) = send(
        s.http
            .post(format!("{}/api/events/track", s.us))
            .header("Api-Key", US_MOBILE_KEY)
            .json(&json!({"eventName": "appOpen", "email": "m@x.io"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn javascript_keys_are_client_side_too() {
    let s = sim().await;
    let (st, body) = send(
        s.http
            .get(format!("{}/api/campaigns", s.us))
            .header("Api-Key", US_JS_KEY),
    )
    .await;
    assert_bad_key(st, &body, "/api/campaigns");
    let (st, _) = send(
        s.http
            .post(format!("{}/api/users/update", s.us))
            .header("Api-Key", US_JS_KEY)
            .json(&json!({"email": "web@x.io", "dataFields": {"lastPage": "/home"}})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.running.credential("iterable us JavaScript API key"),
        Some(US_JS_KEY)
    );
}

#[tokio::test]
async fn jwt_enabled_keys_need_a_valid_unexpired_matching_jwt() {
    let s = sim().await;
    let track = |auth: Option<String>, email: &str| {
        let mut rb = s
            .http
            .post(format!("{}/api/events/track", s.us))
            .header("Api-Key", US_JWT_KEY)
            .json(&json!({"eventName": "appOpen", "email": email}));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        rb
    };
    // No JWT.
    let (st, body) = send(track(None, "j@x.io")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "InvalidJwtPayload");
    assert_eq!(body["params"]["endpoint"], "/api/events/track");
    // Expired: the recorded message.
    let expired = s
        .ctl
        .post("/_sim/jwt", &json!({"email": "j@x.io", "ttlSeconds": -60}))
        .await
        .unwrap();
    let (st, body) = send(track(
        Some(format!("Bearer {}", expired["token"].as_str().unwrap())),
        "j@x.io",
    ))
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"msg": "JWT token is expired", "code": "InvalidJwtPayload",
               "params": {"endpoint": "/api/events/track"}})
    );
    // Signed with another secret.
    let (st, body) = send(track(Some("Bearer a.b.c".into()), "j@x.io")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "InvalidJwtPayload");
    // Valid.
    let good = s
        .ctl
        .post("/_sim/jwt", &json!({"email": "j@x.io"}))
        .await
        .unwrap();
    let bearer = format!("Bearer {}", good["token"].as_str().unwrap());
    let (st, body) = send(track(Some(bearer.clone()), "j@x.io")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    // Valid JWT, but for another user.
    let (st, body) = send(track(Some(bearer), "other@x.io")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "JwtUserIdentifiersMismatched");
}

#[tokio::test]
async fn revoked_and_added_keys_take_effect_at_once() {
    let s = sim().await;
    let (st, _) = s.get("/api/channels").await;
    assert_eq!(st, StatusCode::OK);
    let resp = s
        .http
        .delete(format!("{}/_sim/keys/{US_SERVER_KEY}", s.us))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (st, body) = s.get("/api/channels").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "BadApiKey");

    s.ctl
        .post(
            "/_sim/keys",
            &json!({"value": "1234567890abcdef1234567890abcdef", "kind": "serverSide"}),
        )
        .await
        .unwrap();
    let (st, _) = send(
        s.http
            .request(Method::GET, format!("{}/api/channels", s.us))
            .header("Api-Key", "1234567890abcdef1234567890abcdef"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // Reset restores the sandbox keys.
    s.ctl.reset().await.unwrap();
    assert_eq!(s.get("/api/channels").await.0, StatusCode::OK);
}

#[tokio::test]
async fn credentials_and_origins_are_reported() {
    let s = sim().await;
    assert_eq!(s.running.platform, "iterable");
    assert_eq!(
        s.running.credential("iterable us server-side API key"),
        Some(US_SERVER_KEY)
    );
    assert_eq!(
        s.running.credential("iterable eu server-side API key"),
        Some(EU_SERVER_KEY)
    );
    assert!(s.running.origin("SHARPSEND_ITERABLE_US_URL").is_some());
    assert_ne!(s.us, s.eu);
    let info = s.ctl.get("/_sim/info").await.unwrap();
    assert_eq!(info["region"], "us");
    assert_eq!(info["projectId"], 11741);
    let eu = s.ctl_eu.get("/_sim/info").await.unwrap();
    assert_eq!(eu["region"], "eu");
    assert_eq!(eu["projectId"], 20417);
}

#[tokio::test]
async fn malformed_json_is_bad_json_body() {
    let s = sim().await;
    let (st, body) = send(
        s.req(Method::POST, "/api/users/update")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadJsonBody");
}
