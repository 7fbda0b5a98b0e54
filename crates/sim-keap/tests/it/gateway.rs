use reqwest::{Method, StatusCode};
use serde_json::json;
use sim_keap::{PERSONAL_ACCESS_TOKEN, SERVICE_ACCOUNT_KEY};

use crate::common::{into_resp, sim};

fn fault(faultstring: &str, code: &str) -> serde_json::Value {
    json!({"fault": {"faultstring": faultstring, "detail": {"errorcode": code}}})
}

#[tokio::test]
async fn missing_or_garbled_authorization_is_invalid_access_token_even_on_unknown_paths() {
    let s = sim().await;
    for path in [
        "/crm/rest/v1/contacts",
        "/crm/rest/v2/contacts",
        "/crm/rest/v1/nope",
    ] {
        let r = into_resp(s.http.get(s.url(path)).send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            r.json(),
            fault("Invalid access token", "oauth.v2.InvalidAccessToken")
        );
        assert_eq!(r.header("x-keap-tenant-id"), Some("ab123.infusionsoft.com"));
        assert!(
            r.header("x-keap-product-quota-limit").is_some(),
            "headers even on a 401"
        );
    }
    for auth in ["Basic Zm9vOmJhcg==", "Bearer", "Bearer   ", "token abc"] {
        let r = into_resp(
            s.http
                .get(s.url("/crm/rest/v1/contacts"))
                .header("Authorization", auth)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.json()["fault"]["detail"]["errorcode"],
            "oauth.v2.InvalidAccessToken",
            "{auth}"
        );
    }
    assert_eq!(s.ctl.counter("401").await.unwrap(), 7);
}

#[tokio::test]
async fn unknown_bearer_token_is_keymanagement_invalid() {
    let s = sim().await;
    let r = s
        .call_as("garbage", Method::GET, "/crm/rest/v1/contacts", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        fault(
            "Invalid Access Token",
            "keymanagement.service.invalid_access_token"
        )
    );
}

#[tokio::test]
async fn pat_and_sak_authenticate_with_lower_limits() {
    let s = sim().await;
    let r = into_resp(
        s.http
            .get(s.url("/crm/rest/v2/contacts?page_size=1"))
            .header("X-Keap-API-Key", PERSONAL_ACCESS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("x-keap-product-throttle-limit"), Some("240"));
    assert_eq!(r.header("x-keap-product-quota-limit"), Some("30000"));
    assert_eq!(r.header("x-keap-product-spike-limit"), Some("10ps"));
    // Keap's SDK samples send a SAK as a bearer token.
    let r = s
        .call_as(
            SERVICE_ACCOUNT_KEY,
            Method::GET,
            "/crm/rest/v1/contacts?limit=1",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-keap-product-throttle-limit"), Some("240"));
    let bad = into_resp(
        s.http
            .get(s.url("/crm/rest/v1/contacts"))
            .header("X-Keap-API-Key", "KeapAK-nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad.json()["fault"]["detail"]["errorcode"],
        "keymanagement.service.invalid_access_token"
    );
}

#[tokio::test]
async fn quota_headers_count_requests() {
    let s = sim().await;
    let a = s.get("/crm/rest/v1/contacts?limit=1").await;
    let b = s.get("/crm/rest/v1/contacts?limit=1").await;
    assert_eq!(a.header("x-keap-product-quota-limit"), Some("150000"));
    assert_eq!(a.header("x-keap-product-quota-time-unit"), Some("day"));
    assert_eq!(a.header("x-keap-product-quota-used"), Some("1"));
    assert_eq!(b.header("x-keap-product-quota-used"), Some("2"));
    assert_eq!(b.header("x-keap-product-quota-available"), Some("149998"));
    assert_eq!(a.header("x-keap-product-throttle-limit"), Some("1500"));
    assert_eq!(
        a.header("x-keap-product-throttle-time-unit"),
        Some("minute")
    );
    assert_eq!(a.header("x-keap-product-throttle-available"), Some("1499"));
    assert_eq!(b.header("x-keap-product-throttle-used"), Some("2"));
    assert_eq!(
        a.header("x-keap-tenant-throttle-limit"),
        Some("10000|250000")
    );
    assert_eq!(
        a.header("x-keap-tenant-throttle-time-unit"),
        Some("minute|day")
    );
    assert_eq!(b.header("x-keap-tenant-throttle-used"), Some("2|2"));
    assert!(
        a.header("x-keap-product-quota-expiry-time")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000_000
    );
    assert!(a.header("x-keap-product-spike-limit").is_none());
}

#[tokio::test]
async fn minute_quota_trips_with_the_apigee_fault_and_no_retry_after() {
    let s = sim().await;
    s.ctl
        .post("/_sim/limits", &json!({"oauth": {"perMinute": 3}}))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            s.get("/crm/rest/v1/contacts?limit=1").await.status,
            StatusCode::OK
        );
    }
    let r = s.get("/crm/rest/v1/contacts?limit=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json(),
        fault(
            "Rate limit quota violation. Quota limit exceeded. Identifier : keap-sandbox-client-id",
            "policies.ratelimit.QuotaViolation"
        )
    );
    assert!(r.header("retry-after").is_none());
    assert_eq!(r.header("x-keap-product-throttle-available"), Some("0"));
    assert_eq!(s.ctl.counter("429").await.unwrap(), 1);
    // The PAT has its own bucket.
    let pat = into_resp(
        s.http
            .get(s.url("/crm/rest/v1/contacts?limit=1"))
            .header("X-Keap-API-Key", PERSONAL_ACCESS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pat.status, StatusCode::OK);
}

#[tokio::test]
async fn spike_arrest_trips_on_bursts() {
    let s = sim().await;
    s.ctl
        .post("/_sim/limits", &json!({"key": {"spikePerSecond": 1}}))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = into_resp(
            s.http
                .get(s.url("/crm/rest/v1/contacts?limit=1"))
                .header("X-Keap-API-Key", PERSONAL_ACCESS_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        statuses.push((r.status, r.json()));
    }
    assert_eq!(statuses[0].0, StatusCode::OK);
    assert_eq!(statuses[1].0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        statuses[1].1["fault"]["detail"]["errorcode"],
        "policies.ratelimit.SpikeArrestViolation"
    );
    assert!(
        statuses[1].1["fault"]["faultstring"]
            .as_str()
            .unwrap()
            .starts_with("Spike arrest violation.")
    );
    assert_eq!(s.ctl.counter("429").await.unwrap(), 1);
}

#[tokio::test]
async fn daily_quota_and_tenant_limit() {
    let s = sim().await;
    s.ctl
        .post("/_sim/limits", &json!({"oauth": {"perDay": 2}}))
        .await
        .unwrap();
    s.get("/crm/rest/v1/contacts?limit=1").await;
    s.get("/crm/rest/v1/contacts?limit=1").await;
    let r = s.get("/crm/rest/v1/contacts?limit=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json()["fault"]["detail"]["errorcode"],
        "policies.ratelimit.QuotaViolation"
    );
    assert_eq!(r.header("x-keap-product-quota-available"), Some("0"));

    let s = sim().await;
    s.ctl
        .post("/_sim/limits", &json!({"tenantPerMinute": 1}))
        .await
        .unwrap();
    s.get("/crm/rest/v1/contacts?limit=1").await;
    let pat = into_resp(
        s.http
            .get(s.url("/crm/rest/v1/contacts?limit=1"))
            .header("X-Keap-API-Key", PERSONAL_ACCESS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        pat.status,
        StatusCode::TOO_MANY_REQUESTS,
        "tenant bucket is shared by all credentials"
    );
}

#[tokio::test]
async fn injected_rate_limit_fault_uses_keaps_body() {
    let s = sim().await;
    s.ctl
        .inject(
            &sim_core::Fault::new("/crm/rest/v1/contacts", sim_core::FaultKind::RateLimit).times(1),
        )
        .await
        .unwrap();
    let r = s.get("/crm/rest/v1/contacts").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json()["fault"]["detail"]["errorcode"],
        "policies.ratelimit.QuotaViolation"
    );
    assert_eq!(s.ctl.counter("429").await.unwrap(), 1);
    assert_eq!(
        s.get("/crm/rest/v1/contacts?limit=1").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn get_with_body_and_unknown_urls_are_html() {
    let s = sim().await;
    let r = into_resp(
        s.http
            .get(s.url("/crm/rest/v1/contacts"))
            .bearer_auth(sim_keap::ACCESS_TOKEN)
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text
            .contains("Your client has issued a malformed or illegal request.")
    );
    let r = s.get("/crm/rest/v1/no/such/thing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("<title>Keap - Page Not Found</title>"));
}

#[tokio::test]
async fn reset_restores_the_sandbox() {
    let s = sim().await;
    let r = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", sim_keap::REFRESH_TOKEN),
            ],
            Some((sim_keap::CLIENT_ID, sim_keap::CLIENT_SECRET)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.ctl
        .post("/_sim/limits", &json!({"oauth": {"perMinute": 1}}))
        .await
        .unwrap();
    s.ctl.reset().await.unwrap();
    assert_eq!(s.ctl.counter("token_refresh").await.unwrap(), 0);
    let again = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", sim_keap::REFRESH_TOKEN),
            ],
            Some((sim_keap::CLIENT_ID, sim_keap::CLIENT_SECRET)),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "sandbox refresh token is back"
    );
    assert_eq!(
        s.ctl.get("/_sim/limits").await.unwrap()["oauth"]["perMinute"],
        1500
    );
}

#[tokio::test]
async fn limits_scale_from_keaps_real_ones() {
    let s = sim().await;
    let l = s
        .ctl
        .post(
            "/_sim/limits",
            &json!({"scale": 0.002, "oauth": {"spikePerSecond": 100}}),
        )
        .await
        .unwrap();
    assert_eq!(l["oauth"]["perMinute"], 3);
    assert_eq!(l["oauth"]["perDay"], 300);
    assert_eq!(l["key"]["spikePerSecond"], 1, "never below 1");
    for _ in 0..3 {
        assert_eq!(
            s.get("/crm/rest/v1/contacts?limit=1").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        s.get("/crm/rest/v1/contacts?limit=1").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let bad = s
        .http
        .post(s.url("/_sim/limits"))
        .json(&json!({"scale": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
