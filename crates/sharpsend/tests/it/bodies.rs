//! Every route that takes a JSON body, fed the bodies that once slipped past the tenancy gate:
//! trailing bytes, a trailing NUL, a duplicate `publisherId`, huge numbers, deep nesting and
//! invalid UTF-8. Each is refused `400 VALIDATION_ERROR` before anything else happens, and the
//! other publisher's data is unchanged (docs/security.md#security-model: one strict parse per body).

use reqwest::{Method, header};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

/// The attacker's bodies, each naming the victim (`pub-b`) somewhere.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!(
        r#"{{"publisherId":"pub-a","apiKey":"k","region":"us","config":{}1{}}}"#,
        r#"{"a":"#.repeat(200),
        "}".repeat(200)
    );
    vec![
        (
            "trailing bytes",
            br#"{"publisherId":"pub-b","apiKey":"k","region":"us"} x"#.to_vec(),
        ),
        (
            "trailing NUL",
            b"{\"publisherId\":\"pub-b\",\"apiKey\":\"k\",\"region\":\"us\"}\x00".to_vec(),
        ),
        (
            "duplicate publisherId",
            br#"{"publisherId":"pub-a","apiKey":"k","region":"us","publisherId":"pub-b"}"#.to_vec(),
        ),
        (
            "number past f64",
            br#"{"publisherId":"pub-b","apiKey":"k","region":"us","unused":1e400}"#.to_vec(),
        ),
        (
            "number past 2^63",
            br#"{"publisherId":"pub-b","apiKey":"k","region":"us","unused":1e300}"#.to_vec(),
        ),
        ("nested 200 deep", deep.into_bytes()),
        (
            "invalid UTF-8 inside",
            b"{\"publisherId\":\"pub-b\",\"apiKey\":\"k\xff\",\"region\":\"us\"}".to_vec(),
        ),
        ("invalid UTF-8 after", b"{\"full\":true}\xff".to_vec()),
    ]
}

/// Every operation of the served OpenAPI document that declares a request body, with its path
/// filled in for `pub-a` (so a publisher key for `pub-a` passes the path's tenancy check).
fn body_operations(doc: &Value) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let filled = path
                .replace("{publisherId}", "pub-a")
                .replace("{platform}", "iterable")
                .split('/')
                .map(|seg| if seg.starts_with('{') { "id1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            ops.push((method.to_uppercase().parse().unwrap(), filled));
        }
    }
    ops
}

#[tokio::test]
async fn hostile_bodies_are_400_on_every_json_route_and_change_nothing() {
    let db = fresh_db().await;
    // Hundreds of calls, many of them test-connection and connect: our own rate limits would
    // answer 429 before the body is read (they have their own tests, `api_ratelimit`).
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let (_, key_a) = app.create_key("pub-a").await;
    // The victim has a connected Iterable integration.
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": "pub-b", "apiKey": sim_iterable::US_SERVER_KEY, "region": "us"}),
        ),
    )
    .await
    .expect_ok(200);
    let victim_before = app
        .get("/api/integrations/pub-b", ADMIN_TOKEN)
        .await
        .expect_ok(200)
        .clone();

    let doc = app.get("/api/openapi.json", ADMIN_TOKEN).await.body;
    let ops = body_operations(&doc);
    assert!(
        ops.iter()
            .any(|(_, p)| p == "/api/integrations/iterable/connect"),
        "{ops:?}"
    );
    // Connect and test-connection for each platform, the generic writes, sync, webhooks.
    assert!(ops.len() >= 10, "only {} body routes found", ops.len());

    let mut checked = 0;
    for (method, path) in &ops {
        let api = path.starts_with("/api/");
        let tokens: &[Option<&str>] = if api {
            &[Some(key_a.as_str()), Some(ADMIN_TOKEN)]
        } else {
            &[None]
        };
        for token in tokens {
            for (name, body) in hostile_bodies() {
                let mut req = app
                    .http
                    .request(method.clone(), app.url(path))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let a = TestApp::answer(req.send().await.unwrap()).await;
                let who = if *token == Some(ADMIN_TOKEN) {
                    "admin"
                } else {
                    "pub-a"
                };
                let case = format!("{method} {path} as {who}, {name}: {} {}", a.status, a.body);
                assert!(
                    a.status.is_client_error(),
                    "{case}: must be a 4xx, never 2xx or 5xx"
                );
                assert_eq!(a.body["success"], false, "{case}");
                assert!(a.body["code"].is_string(), "{case}");
                if api && !(path.starts_with("/api/admin/") && who == "pub-a") {
                    // Past the bearer and path checks, the body is the first thing refused.
                    assert_eq!(a.status, 400, "{case}");
                    assert_eq!(a.body["code"], "VALIDATION_ERROR", "{case}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked}");

    let victim_after = app
        .get("/api/integrations/pub-b", ADMIN_TOKEN)
        .await
        .expect_ok(200)
        .clone();
    assert_eq!(
        victim_before, victim_after,
        "the victim's integrations changed"
    );
    let attacker = app.get("/api/integrations/pub-a", &key_a).await;
    assert_eq!(
        attacker.expect_ok(200)["integrations"],
        json!([]),
        "pub-a gained an integration"
    );
    app.stop().await;
    drop(sandbox);
    db.cleanup().await;
}

#[tokio::test]
async fn the_trailing_bytes_attack_from_the_report_is_refused_and_a_clean_body_still_works() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key_a) = app.create_key("pub-a").await;
    let send = |body: Vec<u8>| {
        app.http
            .post(app.url("/api/integrations/iterable/connect"))
            .bearer_auth(&key_a)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let victim = format!(
        r#"{{"publisherId":"victim","apiKey":"{}","region":"us"}} x"#,
        sim_iterable::US_SERVER_KEY
    );
    let a = TestApp::answer(send(victim.into_bytes()).await.unwrap()).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "body");
    assert!(
        app.get("/api/integrations/victim", ADMIN_TOKEN)
            .await
            .expect_ok(200)["integrations"]
            == json!([])
    );
    // Without the trailing byte it is an ordinary cross-tenant attempt: 403.
    let victim = format!(
        r#"{{"publisherId":"victim","apiKey":"{}","region":"us"}}"#,
        sim_iterable::US_SERVER_KEY
    );
    TestApp::answer(send(victim.into_bytes()).await.unwrap())
        .await
        .expect_error(403, "PERMISSION_DENIED");
    // The same connect for pub-a itself, whitespace around it, works.
    let mine = format!(
        " {{\"publisherId\":\"pub-a\",\"apiKey\":\"{}\",\"region\":\"us\"}}\r\n",
        sim_iterable::US_SERVER_KEY
    );
    let a = TestApp::answer(send(mine.into_bytes()).await.unwrap()).await;
    assert_eq!(a.expect_ok(200)["publisherId"], "pub-a");
    // A publisher key may leave publisherId out: the scope names its own publisher.
    let implied = format!(
        r#"{{"apiKey":"{}","region":"us"}}"#,
        sim_iterable::US_SERVER_KEY
    );
    let a = TestApp::answer(send(implied.into_bytes()).await.unwrap()).await;
    assert_eq!(a.expect_ok(200)["publisherId"], "pub-a", "{}", a.body);
    app.stop().await;
    drop(sandbox);
    db.cleanup().await;
}

#[tokio::test]
async fn path_parameters_that_are_not_utf8_answer_the_envelope_after_the_401() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let path = "/api/integrations/%FF%FE/iterable/campaigns";
    let a = app.call(Method::GET, path, None, None).await;
    a.expect_error(401, "UNAUTHORIZED");
    let a = app.get(path, ADMIN_TOKEN).await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(
        a.headers[header::CONTENT_TYPE],
        "application/json",
        "{}",
        a.body
    );
    // Outside the gate too (a webhook route's path parameter).
    let a = app
        .call(Method::POST, "/webhooks/%FF/keap", None, Some(json!({})))
        .await;
    assert!(a.status.is_client_error(), "{} {}", a.status, a.body);
    assert_eq!(a.body["success"], false, "{}", a.body);
    app.stop().await;
    db.cleanup().await;
}
