//! Issue 14, items 8–10: what we pass on to a platform is checked at our edge. Credentials that
//! cannot be an HTTP header value, ids that would be dot segments or hold `/` in an upstream
//! path, and `limit`/`offset` beyond the one documented bound are each `400 VALIDATION_ERROR`
//! naming the field, and no simulator receives a request. (Item 11, the upstream body cap, is
//! tested in `connectors/tests/edges.rs`.)

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::Sandbox;
use sim_core::SimClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, fresh_db};

/// How many requests each simulator (by origin) has logged.
async fn upstream_requests(sandbox: &Sandbox) -> Vec<(String, usize)> {
    let mut origins: Vec<String> = sandbox
        .upstream_overrides()
        .into_iter()
        .map(|(_, u)| {
            let u = url::Url::parse(&u).unwrap();
            format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap(),
                u.port_or_known_default().unwrap()
            )
        })
        .collect();
    origins.sort();
    origins.dedup();
    let mut out = Vec::new();
    for origin in origins {
        let n = SimClient::new(origin.clone())
            .requests(None)
            .await
            .unwrap()
            .len();
        out.push((origin, n));
    }
    out
}

fn with_control(s: &str, c: char) -> String {
    let mut s = s.to_owned();
    s.insert(s.len() / 2, c);
    s
}

#[tokio::test]
async fn credentials_that_cannot_be_a_header_value_are_400_before_any_upstream_call() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let before = upstream_requests(&sandbox).await;
    let iterable_key = sim_iterable::US_SERVER_KEY;
    let cio = &sim_customerio::US;
    let keap_oauth = |field: &str, value: String| {
        let mut b = json!({
            "publisherId": "pub-e",
            "clientId": sim_keap::CLIENT_ID,
            "clientSecret": sim_keap::CLIENT_SECRET,
            "accessToken": sim_keap::ACCESS_TOKEN,
            "refreshToken": "refresh-token-1",
        });
        b[field] = json!(value);
        b
    };
    let cio_connect = |field: &str, value: String| {
        let mut b = json!({
            "publisherId": "pub-e",
            "siteId": cio.site_id,
            "apiKey": cio.app_api_key,
            "trackingKey": cio.tracking_key,
            "region": "us",
        });
        b[field] = json!(value);
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/integrations/iterable/test-connection",
            json!({"apiKey": with_control(iterable_key, '\u{1}'), "region": "us"}),
            "apiKey",
        ),
        (
            "/api/integrations/iterable/test-connection",
            json!({"apiKey": with_control(iterable_key, 'é')}),
            "apiKey",
        ),
        (
            "/api/integrations/iterable/connect",
            json!({"publisherId": "pub-e", "apiKey": with_control(iterable_key, '\u{7f}')}),
            "apiKey",
        ),
        (
            "/api/integrations/customerio/test-connection",
            json!({"siteId": cio.site_id, "apiKey": with_control(cio.app_api_key, '\0')}),
            "apiKey",
        ),
        (
            "/api/integrations/customerio/test-connection",
            json!({"siteId": cio.site_id, "apiKey": cio.app_api_key,
                   "trackingKey": with_control(cio.tracking_key, '\u{b}')}),
            "trackingKey",
        ),
        (
            "/api/integrations/customerio/test-connection",
            json!({"siteId": cio.site_id, "apiKey": cio.app_api_key,
                   "cdpApiKey": with_control(cio.cdp_api_key, '\u{1b}')}),
            "cdpApiKey",
        ),
        (
            "/api/integrations/customerio/test-connection",
            json!({"siteId": with_control(cio.site_id, '\u{1}'), "apiKey": cio.app_api_key}),
            "siteId",
        ),
        (
            "/api/integrations/customerio/connect",
            cio_connect("trackingKey", with_control(cio.tracking_key, '\r')),
            "trackingKey",
        ),
        (
            "/api/integrations/customerio/connect",
            cio_connect("apiKey", with_control(cio.app_api_key, '\u{85}')),
            "apiKey",
        ),
        (
            "/api/integrations/keap/test-connection",
            json!({"accessToken": with_control(sim_keap::ACCESS_TOKEN, '\u{1}')}),
            "accessToken",
        ),
        (
            "/api/integrations/keap/test-connection",
            json!({"apiKey": "KeapAK-abc\u{7}def"}),
            "apiKey",
        ),
        (
            "/api/integrations/keap/connect",
            json!({"publisherId": "pub-e", "apiKey": "KeapAK-a\nb"}),
            "apiKey",
        ),
        (
            "/api/integrations/keap/connect",
            keap_oauth("clientId", with_control(sim_keap::CLIENT_ID, '\u{2}')),
            "clientId",
        ),
        (
            "/api/integrations/keap/connect",
            keap_oauth(
                "clientSecret",
                with_control(sim_keap::CLIENT_SECRET, '\u{7f}'),
            ),
            "clientSecret",
        ),
        (
            "/api/integrations/keap/connect",
            keap_oauth("accessToken", with_control(sim_keap::ACCESS_TOKEN, '\u{0}')),
            "accessToken",
        ),
        (
            "/api/integrations/keap/connect",
            keap_oauth("refreshToken", "refresh token".to_owned()),
            "refreshToken",
        ),
    ];
    for (path, body, field) in cases {
        let started = std::time::Instant::now();
        let a = app
            .call(Method::POST, path, Some(ADMIN_TOKEN), Some(body.clone()))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(a.field(), field, "{path} {body}: {}", a.body);
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{path}: refused at once, not retried"
        );
    }
    assert_eq!(
        upstream_requests(&sandbox).await,
        before,
        "no simulator received a request"
    );
    // Nothing was stored.
    let a = app.get("/api/integrations/pub-e", ADMIN_TOKEN).await;
    assert_eq!(a.expect_ok(200)["integrations"], json!([]));
}

/// Sends a GET exactly as written (reqwest would resolve `%2E%2E` before sending): answers the
/// status and the JSON body.
async fn raw_get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, mut body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut text_body = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        while let Some((size, rest)) = body.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            text_body.push_str(&rest[..n]);
            body = &rest[n + 2..];
        }
    } else {
        text_body = body.to_owned();
    }
    (
        status,
        serde_json::from_str(&text_body).unwrap_or(Value::String(text_body)),
    )
}

#[tokio::test]
async fn ids_that_are_dot_segments_or_hold_a_slash_never_reach_the_platform() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let cio = &sim_customerio::US;
    let (_, key) = app.create_key("pub-m").await;
    app.call(
        Method::POST,
        "/api/integrations/customerio/connect",
        Some(&key),
        Some(json!({
            "siteId": cio.site_id, "apiKey": cio.app_api_key,
            "trackingKey": cio.tracking_key, "region": "us",
        })),
    )
    .await
    .expect_ok(200);
    let before = upstream_requests(&sandbox).await;
    for id in [
        "%2E%2E",
        "%2e%2E",
        "..",
        "%2E",
        ".",
        "a%2Fb",
        "%2F",
        "..%2F..%2Fv1",
    ] {
        let path = format!("/api/integrations/pub-m/customerio/campaigns/{id}/metrics");
        let (status, body) = raw_get(&app, &path, &key).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "VALIDATION_ERROR", "{path}: {body}");
        assert_eq!(body["details"]["field"], "campaignId", "{path}: {body}");
    }
    // Ids in bodies that go into a Track URL path.
    let a = app
        .call(
            Method::POST,
            "/api/integrations/pub-m/customerio/subscribers",
            Some(&key),
            Some(json!({"userId": "..", "attributes": {"plan": "pro"}})),
        )
        .await;
    a.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(a.field(), "userId", "{}", a.body);
    assert_eq!(
        upstream_requests(&sandbox).await,
        before,
        "no simulator received a request"
    );

    // An ordinary id still reaches Customer.io, as one segment of the documented path.
    let cio_sim = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == "SHARPSEND_CUSTOMERIO_APP_US_URL")
        .map(|(_, v)| SimClient::new(v))
        .unwrap();
    let (status, body) = raw_get(
        &app,
        "/api/integrations/pub-m/customerio/campaigns/1/metrics",
        &key,
    )
    .await;
    assert!(status == 200 || status == 404, "{status}: {body}");
    let asked: Vec<String> = cio_sim
        .requests(Some("/v1/"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.ends_with("/metrics"))
        .collect();
    assert_eq!(asked, ["/v1/campaigns/1/metrics"], "{asked:?}");
}

/// Every GET of the served OpenAPI document with a `limit` or `offset` query parameter, its path
/// filled in for `pub-p` (which has no integrations: a value within bounds answers 404).
fn paged_operations(doc: &Value) -> Vec<(String, Vec<(String, Value)>)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else {
            continue;
        };
        let params: Vec<(String, Value)> = get["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter(|p| p["name"] == "limit" || p["name"] == "offset")
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p["schema"].clone()))
            .collect();
        if params.is_empty() {
            continue;
        }
        let filled = path
            .replace("{publisherId}", "pub-p")
            .replace("{platform}", "iterable")
            .replace("{kind}", "campaigns")
            .split('/')
            .map(|seg| if seg.starts_with('{') { "id1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        ops.push((filled, params));
    }
    ops
}

#[tokio::test]
async fn limit_and_offset_have_one_documented_bound_on_every_route() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        crate::helpers::NO_API_LIMITS,
    )
    .await;
    let doc = app.get("/api/openapi.json", ADMIN_TOKEN).await.body;
    let ops = paged_operations(&doc);
    // The common reads are one path per read (`{platform}` filled in as iterable).
    assert!(ops.len() >= 13, "the paged routes: {ops:?}");
    let mut offsets = 0;
    for (path, params) in ops {
        for (name, schema) in params {
            // Documented: minimum and maximum in the parameter's schema.
            let (min, max) = (schema["minimum"].as_u64(), schema["maximum"].as_u64());
            let max = match name.as_str() {
                "offset" => {
                    offsets += 1;
                    assert_eq!((min, max), (Some(0), Some(10_000_000)), "{path} offset");
                    10_000_000u64
                }
                _ => {
                    assert_eq!(min, Some(1), "{path} limit: {schema}");
                    let max = max.unwrap_or_else(|| panic!("{path} limit: {schema}"));
                    assert!(max <= 1000, "{path} limit max {max}");
                    max
                }
            };
            let min = min.unwrap();
            let beyond = [
                (max + 1).to_string(),
                "9223372036854775807".to_owned(),
                "18446744073709551615".to_owned(),
                "-1".to_owned(),
                (min.wrapping_sub(1)).to_string(),
            ];
            for value in beyond {
                let a = app
                    .get(&format!("{path}?{name}={value}"), ADMIN_TOKEN)
                    .await;
                check_refused(&a, &path, &name, &value);
            }
            // The bounds themselves are accepted (404: pub-p has no integration).
            for value in [min, max] {
                let a = app
                    .get(&format!("{path}?{name}={value}"), ADMIN_TOKEN)
                    .await;
                assert!(
                    a.status != 400,
                    "{path}?{name}={value} is within bounds: {}",
                    a.body
                );
            }
        }
    }
    assert!(offsets >= 10, "every offset route was tried ({offsets})");
}

#[track_caller]
fn check_refused(a: &Answer, path: &str, name: &str, value: &str) {
    assert_eq!(
        (a.status.as_u16(), a.body["code"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{path}?{name}={value}: {}",
        a.body
    );
    assert_eq!(a.field(), name, "{path}?{name}={value}: {}", a.body);
}
