//! Track API: auth, regions, identifiers, limits, v2 batch, rate limit.

use base64::Engine as _;
use serde_json::{Value, json};
use sim_customerio::{EU, US};

use crate::common::{basic, eu_track, start, us_track};

#[tokio::test]
async fn identify_answers_the_recorded_success_and_stores_the_person() {
    let sim = start().await;
    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/reader-1"))
        .header("authorization", us_track())
        .json(&json!({"email": "reader1@example.org", "plan": "premium"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(r.headers()["content-length"], "3");
    assert_eq!(r.text().await.unwrap(), "{}\n");
    let p = sim.person("id=reader-1").await.expect("stored");
    assert_eq!(p["email"], "reader1@example.org");
    assert_eq!(p["attributes"]["plan"], "premium");
}

#[tokio::test]
async fn track_auth_rejects_missing_wrong_and_other_kinds_of_keys() {
    let sim = start().await;
    let url = sim.track_us("/api/v1/customers/x");
    let cases = [
        None,
        Some(basic(US.site_id, "wrong")),
        Some(basic(US.app_api_key, "")),
        Some(basic(US.cdp_api_key, "")),
        Some(format!("Bearer {}", US.app_api_key)),
        Some(basic(US.site_id, EU.tracking_key)),
        Some("Basic not-base64!".to_owned()),
    ];
    for auth in cases {
        let mut req = sim.http.put(&url).json(&json!({}));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.text().await.unwrap(), "", "401 has no body");
    }
    assert_eq!(sim.ctl().counter("401").await.unwrap(), 7);
}

#[tokio::test]
async fn track_auth_accepts_url_safe_base64() {
    let sim = start().await;
    let creds = format!("{}:{}", US.site_id, US.tracking_key);
    for engine in [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        let r = sim
            .http
            .get(sim.track_us("/auth"))
            .header("authorization", format!("Basic {}", engine.encode(&creds)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn region_lookup_answers_on_both_hosts_and_tells_the_workspace_region() {
    let sim = start().await;
    for url in [
        sim.track_us("/api/v1/accounts/region"),
        sim.track_eu("/api/v1/accounts/region"),
    ] {
        let us: Value = sim
            .http
            .get(&url)
            .header("authorization", us_track())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(us["region"], "us");
        assert_eq!(us["environment_id"], US.environment_id);
        assert_eq!(us["url"], sim.origin(sim_customerio::ENV_TRACK_US));
        let eu: Value = sim
            .http
            .get(&url)
            .header("authorization", eu_track())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(eu["region"], "eu");
        assert_eq!(eu["environment_id"], EU.environment_id);
        assert_eq!(eu["url"], sim.origin(sim_customerio::ENV_TRACK_EU));
    }
    let r = sim
        .http
        .get(sim.track_us("/api/v1/accounts/region"))
        .header("authorization", basic(US.site_id, "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn keys_work_only_in_their_region_unless_redirect_mode_is_on() {
    let sim = start().await;
    let put = |url: String, auth: String| {
        sim.http
            .put(url)
            .header("authorization", auth)
            .json(&json!({"email": "eu@example.com"}))
            .send()
    };
    let r = put(sim.track_us("/api/v1/customers/eu-1?x=1"), eu_track())
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = put(sim.track_eu("/api/v1/customers/eu-1"), us_track())
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = put(sim.track_eu("/api/v1/customers/eu-1"), eu_track())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.person("id=eu-1").await.is_none(), "US store untouched");
    assert!(sim.person("workspace=eu&id=eu-1").await.is_some());

    sim.ctl()
        .post("/_sim/redirect", &json!({"enabled": true}))
        .await
        .unwrap();
    let r = put(sim.track_us("/api/v1/customers/eu-2?x=1"), eu_track())
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(
        r.headers()["location"],
        sim.track_eu("/api/v1/customers/eu-2?x=1").as_str()
    );
    assert_eq!(sim.ctl().counter("redirect_307").await.unwrap(), 1);
    // Following it by hand (method, body and Authorization kept) lands in the EU workspace.
    let r = put(sim.track_eu("/api/v1/customers/eu-2?x=1"), eu_track())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn path_identifiers_are_percent_decoded_and_typed() {
    let sim = start().await;
    let put = |path: &str, body: Value| {
        sim.http
            .put(sim.track_us(path))
            .header("authorization", us_track())
            .json(&body)
            .send()
    };
    assert_eq!(
        put("/api/v1/customers/1%2F", json!({"plan": "a"}))
            .await
            .unwrap()
            .status(),
        200
    );
    let p = sim.person("id=1%2F").await.expect("id 1/ stored");
    assert_eq!(p["id"], "1/");

    // An email in the path identifies by email.
    put(
        "/api/v1/customers/new.reader%40example.com",
        json!({"plan": "b"}),
    )
    .await
    .unwrap();
    let p = sim
        .person("email=new.reader%40example.com")
        .await
        .expect("by email");
    assert_eq!(p["id"], Value::Null);
    assert_eq!(p["attributes"]["plan"], "b");

    // `cio_<id>` addresses a seeded person by cio_id.
    let (_, body) = sim.app_get("/v1/segments/1/membership?limit=1").await;
    let cio = body["identifiers"][0]["cio_id"]
        .as_str()
        .unwrap()
        .to_owned();
    put(
        &format!("/api/v1/customers/cio_{cio}"),
        json!({"plan": "gold"}),
    )
    .await
    .unwrap();
    let p = sim.person(&format!("cio_id={cio}")).await.unwrap();
    assert_eq!(p["attributes"]["plan"], "gold");

    // `_update: true` never creates.
    put(
        "/api/v1/customers/ghost",
        json!({"_update": true, "plan": "x"}),
    )
    .await
    .unwrap();
    assert!(sim.person("id=ghost").await.is_none());
}

#[tokio::test]
async fn size_limits_answer_400_with_meta_errors() {
    let sim = start().await;
    let long_id = "x".repeat(151);
    let r = sim
        .http
        .put(sim.track_us(&format!("/api/v1/customers/{long_id}")))
        .header("authorization", us_track())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["meta"]["errors"][0].as_str().unwrap().contains("150"));

    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/ok"))
        .header("authorization", us_track())
        .json(&json!({"bio": "y".repeat(1001), "n".repeat(151): 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["errors"].as_array().unwrap().len(), 2);

    let r = sim
        .http
        .post(sim.track_us("/api/v1/customers/ok/events"))
        .header("authorization", us_track())
        .json(&json!({"name": "big", "data": {"blob": "z".repeat(100_001)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/ok"))
        .header("authorization", us_track())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["meta"]["errors"].is_array());
}

#[tokio::test]
async fn events_need_a_name_and_are_kept() {
    let sim = start().await;
    let post = |path: &str, body: Value| {
        sim.http
            .post(sim.track_us(path))
            .header("authorization", us_track())
            .json(&body)
            .send()
    };
    let r = post("/api/v1/customers/ev-1/events", json!({"data": {"a": 1}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"meta": {"errors": ["name is required"]}}));

    let r = post(
        "/api/v1/customers/ev-1/events",
        json!({"name": "  purchased  ", "data": {"amount": 5}, "timestamp": 1_700_000_000}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    post(
        "/api/v1/customers/ev-1/events",
        json!({"type": "page", "name": "/pricing"}),
    )
    .await
    .unwrap();
    let r = post(
        "/api/v1/events",
        json!({"anonymous_id": "anon-9", "name": "viewed"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let evs: Value = sim.ctl().get("/_sim/events?customer=ev-1").await.unwrap();
    let evs = evs.as_array().unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0]["name"], "purchased", "name is trimmed");
    assert_eq!(evs[1]["type"], "page");
    let anon: Value = sim.ctl().get("/_sim/events?customer=anon-9").await.unwrap();
    assert_eq!(anon.as_array().unwrap().len(), 1);
    assert!(
        sim.person("id=ev-1").await.is_some(),
        "an event creates the person"
    );
}

#[tokio::test]
async fn devices_suppression_and_delete() {
    let sim = start().await;
    let auth = us_track();
    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/dev-1/devices"))
        .header("authorization", &auth)
        .json(&json!({"device": {"id": "tok-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["errors"][0], "device.platform is required");
    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/dev-1/devices"))
        .header("authorization", &auth)
        .json(&json!({"device": {"id": "tok-1", "platform": "ios", "last_used": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sim.person("id=dev-1").await.unwrap()["devices"][0]["id"],
        "tok-1"
    );
    sim.http
        .delete(sim.track_us("/api/v1/customers/dev-1/devices/tok-1"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(sim.person("id=dev-1").await.unwrap()["devices"], json!([]));

    // Suppress deletes the person; unsuppress frees the id but does not bring the profile back.
    for path in ["suppress", "unsuppress"] {
        let r = sim
            .http
            .post(sim.track_us(&format!("/api/v1/customers/dev-1/{path}")))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(sim.person("id=dev-1").await.is_none(), "{path}");
    }
    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/dev-1"))
        .header("authorization", &auth)
        .json(&json!({"plan": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sim.person("id=dev-1").await.unwrap()["attributes"]["plan"],
        "again"
    );
    let r = sim
        .http
        .delete(sim.track_us("/api/v1/customers/dev-1"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.person("id=dev-1").await.is_none());
}

#[tokio::test]
async fn v2_batch_answers_207_with_indexed_errors_and_applies_the_rest() {
    let sim = start().await;
    let batch = json!({"batch": [
        {"type": "person", "action": "identify", "identifiers": {"id": "b-1"}, "attributes": {"plan": "x"}},
        {"type": "person", "action": "identify", "identifiers": {"id": "b-2", "email": "b2@example.com"}},
        {"type": "person", "action": "event", "identifiers": {"id": "b-1"}},
        {"type": "thing", "action": "identify"},
        {"type": "person", "action": "event", "identifiers": {"id": "b-1"}, "name": "clicked"},
    ]});
    let r = sim
        .http
        .post(sim.track_us("/api/v2/batch"))
        .header("authorization", us_track())
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    let errs = body["errors"].as_array().unwrap();
    let idx: Vec<u64> = errs
        .iter()
        .map(|e| e["batch_index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![1, 2, 3]);
    assert_eq!(errs[0]["field"], "identifiers");
    assert_eq!(errs[1]["field"], "name");
    assert_eq!(errs[2]["field"], "type");
    for e in errs {
        assert!(e["reason"].is_string() && e["message"].is_string());
    }
    assert_eq!(
        sim.person("id=b-1").await.unwrap()["attributes"]["plan"],
        "x"
    );
    assert!(sim.person("id=b-2").await.is_none());
    let evs: Value = sim.ctl().get("/_sim/events?customer=b-1").await.unwrap();
    assert_eq!(evs.as_array().unwrap().len(), 1);

    // All valid: 200 {}.
    let r = sim
        .http
        .post(sim.track_us("/api/v2/batch"))
        .header("authorization", us_track())
        .json(&json!({"batch": [{"type": "person", "action": "delete", "identifiers": {"id": "b-1"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}\n");
    assert!(sim.person("id=b-1").await.is_none());
}

#[tokio::test]
async fn v2_size_limits() {
    let sim = start().await;
    let big_op = json!({"type": "person", "action": "identify", "identifiers": {"id": "s-1"},
        "attributes": {"a": "x".repeat(900), "b": "x".repeat(900)}});
    let mut ops = vec![big_op.clone(); 1];
    // One op over 32 KB inside a batch: 207 for that index only.
    let mut huge = big_op.clone();
    let attrs: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("k{i}"), json!("v".repeat(900))))
        .collect();
    huge["attributes"] = Value::Object(attrs);
    ops.push(huge.clone());
    let r = sim
        .http
        .post(sim.track_us("/api/v2/batch"))
        .header("authorization", us_track())
        .json(&json!({"batch": ops}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["batch_index"], 1);
    assert_eq!(body["errors"][0]["reason"], "too_large");

    // The same op alone on /entity: 400 {"errors":[…]}.
    let r = sim
        .http
        .post(sim.track_us("/api/v2/entity"))
        .header("authorization", us_track())
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["errors"][0]["message"].is_string());

    // A batch over 500 KB: 400.
    let ops: Vec<Value> = (0..300).map(|_| big_op.clone()).collect();
    let r = sim
        .http
        .post(sim.track_us("/api/v2/batch"))
        .header("authorization", us_track())
        .json(&json!({"batch": ops}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = sim
        .http
        .post(sim.track_us("/api/v2/entity"))
        .header("authorization", us_track())
        .json(&big_op)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn merge_needs_one_identifier_per_side() {
    let sim = start().await;
    let r = sim
        .http
        .post(sim.track_us("/api/v1/merge_customers"))
        .header("authorization", us_track())
        .json(&json!({"primary": {"id": "1", "email": "a@b.c"}, "secondary": {"id": "2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["meta"]["error"].is_string());
    for (id, email) in [("m-1", "m1@example.com"), ("m-2", "m2@example.com")] {
        sim.http
            .put(sim.track_us(&format!("/api/v1/customers/{id}")))
            .header("authorization", us_track())
            .json(&json!({"email": email, "from": id}))
            .send()
            .await
            .unwrap();
    }
    let r = sim
        .http
        .post(sim.track_us("/api/v1/merge_customers"))
        .header("authorization", us_track())
        .json(&json!({"primary": {"id": "m-1"}, "secondary": {"email": "m2@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.person("id=m-2").await.is_none());
    assert_eq!(
        sim.person("id=m-1").await.unwrap()["attributes"]["from"],
        "m-1"
    );
}

#[tokio::test]
async fn manual_segment_membership_through_track() {
    let sim = start().await;
    // Segment 3 is manual, 2 is dynamic.
    sim.http
        .put(sim.track_us("/api/v1/customers/seg-1"))
        .header("authorization", us_track())
        .json(&json!({"email": "seg1@example.com"}))
        .send()
        .await
        .unwrap();
    let (_, before) = sim.app_get("/v1/segments/3/customer_count").await;
    let r = sim
        .http
        .post(sim.track_us("/api/v1/segments/3/add_customers?id_type=email"))
        .header("authorization", us_track())
        .json(&json!({"ids": ["seg1@example.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, after) = sim.app_get("/v1/segments/3/customer_count").await;
    assert_eq!(
        after["count"].as_u64(),
        before["count"].as_u64().map(|c| c + 1)
    );
    let r = sim
        .http
        .post(sim.track_us("/api/v1/segments/2/add_customers"))
        .header("authorization", us_track())
        .json(&json!({"ids": ["seg-1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "dynamic segments take no manual members");
    let ids: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let r = sim
        .http
        .post(sim.track_us("/api/v1/segments/3/add_customers"))
        .header("authorization", us_track())
        .json(&json!({"ids": ids}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn unsubscribe_needs_json_content_type_and_no_auth() {
    let sim = start().await;
    let r = sim
        .http
        .post(sim.track_us("/unsubscribe/RPILAgUBcRhIBqSfeiIwdIYJKxTY"))
        .body(r#"{"unsubscribe":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = sim
        .http
        .post(sim.track_us("/unsubscribe/RPILAgUBcRhIBqSfeiIwdIYJKxTY"))
        .json(&json!({"unsubscribe": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = sim
        .http
        .post(sim.track_us("/api/v1/metrics"))
        .json(&json!({"delivery_id": "d", "metric": "opened", "timestamp": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "metrics need no auth");
}

#[tokio::test]
async fn track_rate_limit_answers_bare_429_and_counts_it() {
    let sim = start().await;
    sim.ctl()
        .post(
            "/_sim/limits",
            &json!({"track": {"amount": 3, "perMs": 60_000}}),
        )
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = sim
            .http
            .get(sim.track_us("/auth"))
            .header("authorization", us_track())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_none());
            assert!(r.headers().get("content-type").is_none());
            assert_eq!(r.text().await.unwrap(), "");
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert_eq!(sim.ctl().counter("429").await.unwrap(), 2);
    assert_eq!(sim.ctl().counter("429_track").await.unwrap(), 2);
    // The EU workspace has its own bucket.
    let r = sim
        .http
        .get(sim.track_eu("/auth"))
        .header("authorization", eu_track())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Reset restores the documented limits.
    sim.ctl().reset().await.unwrap();
    let limits = sim.ctl().get("/_sim/limits").await.unwrap();
    assert_eq!(limits["track"]["amount"], 100);
}

#[tokio::test]
async fn injected_rate_limit_fault_uses_the_platform_429() {
    let sim = start().await;
    sim.ctl()
        .inject(&sim_core::Fault::new("/api/v1/customers", sim_core::FaultKind::RateLimit).times(1))
        .await
        .unwrap();
    let r = sim
        .http
        .put(sim.track_us("/api/v1/customers/f-1"))
        .header("authorization", us_track())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(sim.ctl().counter("429").await.unwrap(), 1);
    let logged = sim.ctl().requests(Some("/api/v1/customers")).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].status, Some(429));
}
