//! Per-endpoint limits, per project, answered with Iterable's 429.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sim_core::{Fault, FaultKind};
use sim_iterable::{EU_SERVER_KEY, US_READ_ONLY_KEY};

use crate::common::{send, sim};

#[tokio::test]
async fn the_fifth_export_in_a_minute_gets_iterables_429() {
    // Fivetran: "On the 5th request, we receive the error, 429" (4 requests/minute).
    let s = sim().await;
    let q = "/api/export/data.json?dataTypeName=emailOpen&range=Yesterday";
    for _ in 0..4 {
        let resp = s.req(Method::GET, q).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().await.unwrap();
    }
    let resp = s.req(Method::GET, q).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        resp.headers().get("retry-after").is_none(),
        "Iterable sends no Retry-After"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"msg": "Exceeded rate limit for endpoint: /api/export/data.json, project: 11741 ",
               "code": "RateLimitExceeded", "params": {}})
    );
    assert_eq!(s.ctl.counter("429").await.unwrap(), 1);
}

#[tokio::test]
async fn limits_are_per_project_not_per_key_and_reset_clears_them() {
    let s = sim().await;
    s.ctl
        .post(
            "/_sim/rate-limits",
            &json!({"method": "GET", "endpoint": "/api/campaigns", "amount": 2, "perMs": 60000}),
        )
        .await
        .unwrap();
    assert_eq!(s.get("/api/campaigns").await.0, StatusCode::OK);
    assert_eq!(s.get("/api/campaigns").await.0, StatusCode::OK);
    let (st, body) = s.get("/api/campaigns?page=2").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body["msg"],
        "Exceeded rate limit for endpoint: /api/campaigns, project: 11741 "
    );
    // Another key of the same project shares the bucket.
    let (st, _) = send(
        s.http
            .get(format!("{}/api/campaigns", s.us))
            .header("Api-Key", US_READ_ONLY_KEY),
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    // Other endpoints are unaffected; the EU project has its own buckets.
    assert_eq!(s.get("/api/lists").await.0, StatusCode::OK);
    let (st, _) = send(
        s.http
            .get(format!("{}/api/campaigns", s.eu))
            .header("Api-Key", EU_SERVER_KEY),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.ctl.counter("429").await.unwrap(), 2);
    // Auth comes first: a bad key is 401, not 429.
    let (st, _) = send(
        s.http
            .get(format!("{}/api/campaigns", s.us))
            .header("Api-Key", "nope"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    s.ctl.reset().await.unwrap();
    assert_eq!(s.get("/api/campaigns").await.0, StatusCode::OK);
    assert_eq!(s.ctl.counter("429").await.unwrap(), 0);
}

#[tokio::test]
async fn the_rate_limit_fault_serves_iterables_own_429() {
    let s = sim().await;
    s.ctl
        .inject(&Fault::new("/api/lists", FaultKind::RateLimit).times(1))
        .await
        .unwrap();
    let (st, body) = s.get("/api/lists").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "RateLimitExceeded");
    assert_eq!(
        body["msg"],
        "Exceeded rate limit for endpoint: /api/lists, project: 11741 "
    );
    assert_eq!(s.get("/api/lists").await.0, StatusCode::OK);
    assert_eq!(s.ctl.counter("429").await.unwrap(), 1);
    let logged = s.ctl.requests(Some("/api/lists")).await.unwrap();
    assert_eq!(logged.len(), 2);
    // Control calls stay out of the log.
    s.ctl.get("/_sim/info").await.unwrap();
    assert!(
        s.ctl
            .requests(None)
            .await
            .unwrap()
            .iter()
            .all(|r| !r.path.starts_with("/_sim"))
    );
    assert_eq!(logged[0].status, Some(429));
}

#[tokio::test]
async fn bulk_endpoints_use_their_tight_published_limits() {
    // users/bulkUpdate: 5 requests/second per project: a burst of 5, then one per 200 ms.
    let s = sim().await;
    let started = std::time::Instant::now();
    let mut ok = 0u64;
    for _ in 0..20 {
        let (st, _) = s.post("/api/users/bulkUpdate", &json!({"users": []})).await;
        if st == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let refilled = (started.elapsed().as_secs_f64() * 5.0).ceil() as u64;
    assert!(ok >= 5, "the burst passes");
    assert!(ok <= 5 + refilled, "{ok} passed in {:?}", started.elapsed());
    assert_eq!(s.ctl.counter("429").await.unwrap(), 20 - ok);
}

#[tokio::test]
async fn scale_shrinks_windows_so_a_tripped_limit_recovers_fast() {
    let s = sim().await;
    s.ctl
        .post("/_sim/limits", &json!({"scale": 0.01}))
        .await
        .unwrap();
    let q = "/api/export/data.json?dataTypeName=emailOpen&range=Yesterday";
    let mut statuses = vec![];
    for _ in 0..5 {
        statuses.push(s.req(Method::GET, q).send().await.unwrap().status());
    }
    assert_eq!(statuses[..4], [StatusCode::OK; 4]);
    assert_eq!(
        statuses[4],
        StatusCode::TOO_MANY_REQUESTS,
        "the burst is still 4"
    );
    // Waiting on the clock is the point here: the scaled bucket refills within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(
        s.req(Method::GET, q).send().await.unwrap().status(),
        StatusCode::OK
    );
    let resp = s
        .http
        .post(format!("{}/_sim/limits", s.us))
        .json(&json!({"scale": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
