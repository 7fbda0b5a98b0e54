//! App API: bearer auth, lists and paging, people lookups, transactional sends, broadcast triggers,
//! limits.

use std::collections::HashSet;

use serde_json::{Value, json};
use sim_customerio::{EU, Options, US};

use crate::common::{basic, start, start_with, us_track};

#[tokio::test]
async fn app_auth_takes_only_this_regions_app_key_as_bearer() {
    let sim = start().await;
    let url = sim.app_us("/v1/campaigns");
    let cases = [
        None,
        Some(format!("Bearer {}", US.tracking_key)),
        Some(format!("Bearer {}", US.cdp_api_key)),
        Some(format!("Bearer {}", US.webhook_signing_key)),
        Some(format!("Bearer {}", EU.app_api_key)),
        Some(us_track()),
        Some(basic(US.app_api_key, "")),
        Some("Bearer".to_owned()),
    ];
    for auth in &cases {
        let mut req = sim.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.text().await.unwrap(), "");
    }
    let r = sim
        .http
        .get(sim.app_eu("/v1/campaigns"))
        .bearer_auth(EU.app_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = sim
        .http
        .get(&url)
        .bearer_auth(US.app_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
}

#[tokio::test]
async fn campaigns_segments_broadcasts_are_seeded_and_deterministic() {
    let sim = start().await;
    let (s, c) = sim.app_get("/v1/campaigns").await;
    assert_eq!(s, 200);
    let campaigns = c["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 12);
    let states: HashSet<&str> = campaigns
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains("running") && states.len() >= 2,
        "{states:?}"
    );
    for c in campaigns {
        assert_eq!(c["active"], c["state"] == "running");
        assert!(c["created"].is_i64(), "unix seconds");
    }
    let (s, one) = sim.app_get("/v1/campaigns/3").await;
    assert_eq!(s, 200);
    assert_eq!(one["campaign"], campaigns[2]);
    assert_eq!(sim.app_get("/v1/campaigns/999").await.0, 404);

    let (_, segs) = sim.app_get("/v1/segments").await;
    assert_eq!(segs["segments"].as_array().unwrap().len(), 10);
    let (_, b) = sim.app_get("/v1/broadcasts").await;
    let b = b["broadcasts"].as_array().unwrap();
    assert_eq!(b.len(), 5);
    assert!(b.iter().all(|x| x["type"] == "triggered_broadcast"));

    // Same seed, same data; another seed, other data.
    let again = start().await;
    assert_eq!(again.app_get("/v1/campaigns").await.1, c);
    let other = start_with(Options {
        seed: 7,
        ..Options::default()
    })
    .await;
    assert_ne!(other.app_get("/v1/campaigns").await.1, c);
}

#[tokio::test]
async fn membership_pages_by_start_and_next_up_to_30000() {
    let sim = start_with(Options {
        people: 70_000,
        ..Options::default()
    })
    .await;
    let mut start = String::new();
    let mut pages = Vec::new();
    let mut seen = HashSet::new();
    let mut empty_ids = 0;
    loop {
        let (s, body) = sim
            .app_get(&format!(
                "/v1/segments/1/membership?limit=50000&start={start}"
            ))
            .await;
        assert_eq!(s, 200);
        let idents = body["identifiers"].as_array().unwrap();
        let ids = body["ids"].as_array().unwrap();
        assert_eq!(idents.len(), ids.len());
        for (ident, id) in idents.iter().zip(ids) {
            assert!(seen.insert(ident["cio_id"].as_str().unwrap().to_owned()));
            match ident["id"].as_str() {
                Some(x) => assert_eq!(id, x),
                None => {
                    assert_eq!(id, "");
                    empty_ids += 1;
                }
            }
        }
        pages.push(idents.len());
        let next = body["next"].as_str().unwrap();
        if next.is_empty() {
            break;
        }
        start = next.to_owned();
    }
    assert_eq!(pages, vec![30_000, 30_000, 10_000], "limit clamps to 30000");
    assert_eq!(seen.len(), 70_000);
    assert!(empty_ids > 0, "people without an id show as \"\" in ids");

    let (s, body) = sim.app_get("/v1/segments/1/membership?start=bogus").await;
    assert_eq!(s, 400);
    assert!(body["meta"]["error"].is_string());
    let (_, small) = sim.app_get("/v1/segments/2/membership").await;
    assert!(
        small["identifiers"].as_array().unwrap().len() <= 1000,
        "default limit"
    );
    assert_eq!(sim.app_get("/v1/segments/99/membership").await.0, 404);
}

#[tokio::test]
async fn newsletters_page_with_limit_sort_and_start() {
    let sim = start().await;
    // Many quick calls: the 10/s App limit is not what this test is about.
    sim.ctl()
        .post("/_sim/limits", &json!({"enabled": false}))
        .await
        .unwrap();
    for sort in ["asc", "desc"] {
        let mut start = String::new();
        let mut ids = Vec::new();
        loop {
            let (s, body) = sim
                .app_get(&format!(
                    "/v1/newsletters?limit=5&sort={sort}&start={start}"
                ))
                .await;
            assert_eq!(s, 200);
            let page = body["newsletters"].as_array().unwrap();
            assert!(page.len() <= 5);
            ids.extend(page.iter().map(|n| n["id"].as_u64().unwrap()));
            let next = body["next"].as_str().unwrap();
            if next.is_empty() {
                break;
            }
            start = next.to_owned();
        }
        assert_eq!(ids.len(), 36);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        if sort == "desc" {
            sorted.reverse();
        }
        assert_eq!(ids, sorted, "{sort}");
    }
    let (_, default) = sim.app_get("/v1/newsletters").await;
    assert_eq!(default["newsletters"].as_array().unwrap().len(), 10);
    let (s, body) = sim.app_get("/v1/newsletters?sort=sideways").await;
    assert_eq!(s, 400);
    assert!(
        body["errors"][0]["detail"].is_string(),
        "newsletter error shape"
    );
    assert!(body["errors"][0].get("status").is_none());
}

#[tokio::test]
async fn customers_by_email_sees_seeded_and_tracked_people() {
    let sim = start().await;
    let (_, body) = sim.app_get("/v1/segments/1/membership?limit=1").await;
    let email = body["identifiers"][0]["email"].as_str().unwrap().to_owned();
    let (s, found) = sim
        .app_get(&format!(
            "/v1/customers?email={}",
            email.replace('@', "%40")
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(found["results"][0], body["identifiers"][0]);

    let (_, none) = sim
        .app_get("/v1/customers?email=absent%40example.com")
        .await;
    assert_eq!(none, json!({"results": []}));

    sim.http
        .put(sim.track_us("/api/v1/customers/t-1"))
        .header("authorization", us_track())
        .json(&json!({"email": "a+b@example.com"}))
        .send()
        .await
        .unwrap();
    // `+` must be percent-encoded; a bare `+` decodes to a space and finds nothing.
    let (_, bare) = sim.app_get("/v1/customers?email=a+b@example.com").await;
    assert_eq!(bare["results"], json!([]));
    let (_, enc) = sim.app_get("/v1/customers?email=a%2Bb%40example.com").await;
    assert_eq!(enc["results"][0]["id"], "t-1");

    let (s, attrs) = sim.app_get("/v1/customers/t-1/attributes").await;
    assert_eq!(s, 200);
    assert_eq!(attrs["customer"]["attributes"]["email"], "a+b@example.com");
    assert_eq!(sim.app_get("/v1/customers/nobody/attributes").await.0, 404);

    let (s, search) = sim
        .app_post(
            "/v1/customers",
            &json!({"filter": {"attribute": {"field": "email", "operator": "eq", "value": "a+b@example.com"}}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(search["ids"], json!(["t-1"]), "{search}");
}

#[tokio::test]
async fn transactional_sends_validate_and_answer_delivery_id_and_queued_at() {
    let sim = start().await;
    let before = chrono::Utc::now().timestamp();
    let (s, ok) = sim
        .app_post(
            "/v1/send/email",
            &json!({"transactional_message_id": 1, "to": "reader@example.com",
                    "identifiers": {"email": "reader@example.com"}, "message_data": {"code": "1"}}),
        )
        .await;
    assert_eq!(s, 200, "{ok}");
    assert!(ok["delivery_id"].as_str().unwrap().len() >= 20);
    assert!(ok["queued_at"].as_i64().unwrap() >= before);
    assert!(ok.get("send_at").is_none());

    let cases: Vec<(Value, u16)> = vec![
        (
            json!({"transactional_message_id": 1, "identifiers": {"id": "1"}}),
            400,
        ), // no `to`
        (json!({"transactional_message_id": 1, "to": "a@b.c"}), 400), // no identifiers
        (
            json!({"transactional_message_id": 1, "to": "a@b.c", "identifiers": {"id": "1", "email": "a@b.c"}}),
            400,
        ),
        (
            json!({"transactional_message_id": 999, "to": "a@b.c", "identifiers": {"id": "1"}}),
            404,
        ),
        (
            json!({"transactional_message_id": 4, "to": "a@b.c", "identifiers": {"id": "1"}}),
            400,
        ), // an sms message
        (
            json!({"to": "a@b.c", "identifiers": {"id": "1"}, "subject": "s"}),
            400,
        ), // own content needs body+from
        (
            json!({"transactional_message_id": 1, "to": "a@b.c", "identifiers": {"id": "1"}, "attachments": {"a.pdf": "!!"}}),
            400,
        ),
        (
            json!({"transactional_message_id": 1, "to": "a@b.c", "identifiers": {"id": "1"}, "attachments": {"x.exe": "AAAA"}}),
            403,
        ),
        (
            json!({"transactional_message_id": 1, "to": (0..16).map(|i| format!("r{i}@example.com")).collect::<Vec<_>>().join(","), "identifiers": {"id": "1"}}),
            400,
        ),
        (
            json!({"transactional_message_id": 1, "to": "a@b.c", "identifiers": {"id": "1"}, "send_at": before + 91 * 86_400}),
            400,
        ),
    ];
    for (body, want) in cases {
        let (s, err) = sim.app_post("/v1/send/email", &body).await;
        assert_eq!(s, want, "{body}");
        assert!(err["meta"]["error"].is_string(), "{err}");
    }
    let (s, named) = sim
        .app_post(
            "/v1/send/email",
            &json!({"transactional_message_id": "Welcome", "to": "a@b.c",
                    "identifiers": {"id": "1"}, "send_at": before + 3600}),
        )
        .await;
    assert_eq!(s, 200, "trigger names are case-insensitive");
    assert_eq!(named["send_at"], before + 3600);

    let (s, _) = sim
        .app_post(
            "/v1/send/sms",
            &json!({"transactional_message_id": 4, "identifiers": {"id": "1"}, "to": "555-1234"}),
        )
        .await;
    assert_eq!(s, 400, "sms needs E.164");
    for (path, tm, extra) in [
        ("/v1/send/sms", 4, json!({"to": "+15551234567"})),
        ("/v1/send/push", 5, json!({})),
        ("/v1/send/in_app", 6, json!({})),
    ] {
        let mut body = json!({"transactional_message_id": tm, "identifiers": {"cio_id": "abc"}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, r) = sim.app_post(path, &body).await;
        assert_eq!(s, 200, "{path}: {r}");
        assert!(r["delivery_id"].is_string() && r["queued_at"].is_i64());
        let (s, _) = sim
            .app_post(path, &json!({"identifiers": {"id": "1"}}))
            .await;
        assert_eq!(s, 400, "{path} needs transactional_message_id");
    }
    let sends = sim.ctl().get("/_sim/sends").await.unwrap();
    assert_eq!(sends.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn broadcast_triggers_answer_id_and_allow_one_per_10_seconds() {
    let sim = start().await;
    let (s, t) = sim
        .app_post(
            "/v1/campaigns/1001/triggers",
            &json!({"data": {"headline": "x"}}),
        )
        .await;
    assert_eq!(s, 200);
    let tid = t["id"].as_u64().unwrap();
    let r = sim
        .http
        .post(sim.app_us("/v1/campaigns/1001/triggers"))
        .bearer_auth(US.app_api_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(sim.ctl().counter("429_trigger").await.unwrap(), 1);
    // Another broadcast has its own window.
    let (s, _) = sim
        .app_post("/v1/campaigns/1002/triggers", &json!({"ids": ["100001"]}))
        .await;
    assert_eq!(s, 200);

    let (s, status) = sim
        .app_get(&format!("/v1/campaigns/1001/triggers/{tid}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(status["id"], tid);
    assert_eq!(status["broadcast_id"], 1001);
    assert!(status["created_at"].is_i64() && status["processed_at"].is_i64());

    // Time-compressed limits let the same broadcast fire again once the window passed.
    sim.ctl()
        .post(
            "/_sim/limits",
            &json!({"trigger": {"amount": 1, "perMs": 1}}),
        )
        .await
        .unwrap();
    let (s, _) = sim
        .app_post("/v1/campaigns/1001/triggers", &json!({}))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn broadcast_trigger_errors_use_the_jsonapi_shape() {
    let sim = start().await;
    let r = sim
        .http
        .post(sim.app_us("/v1/campaigns/1001/triggers"))
        .bearer_auth("wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errors": [{"detail": "unauthorized", "status": "401"}]})
    );

    let (s, body) = sim.app_post("/v1/campaigns/3/triggers", &json!({})).await;
    assert_eq!(s, 404, "a campaign id is not a broadcast");
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("not found (reference "), "{detail}");
    assert_eq!(body["errors"][0]["status"], "404");

    let (s, body) = sim
        .app_post(
            "/v1/campaigns/1002/triggers",
            &json!({"ids": ["1"], "emails": ["a@b.c"]}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("bad request (reference ")
    );
    assert_eq!(body["errors"][0]["status"], "400");

    let (s, body) = sim
        .app_post(
            "/v1/campaigns/1003/triggers",
            &json!({"per_user_data": [{"id": "100001", "data": {"a": 1}}, {"data": {"b": 2}}]}),
        )
        .await;
    assert_eq!(s, 422);
    let e = &body["errors"][0];
    assert_eq!(e["status"], "422");
    assert_eq!(e["source"]["pointer"], "/data/attributes/per_user_data");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("errors endpoint for trigger")
    );

    // Missing ids are reported on the trigger's errors endpoint.
    let (s, t) = sim
        .app_post(
            "/v1/campaigns/1004/triggers",
            &json!({"ids": ["100001", "no-such-id"]}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, errs) = sim
        .app_get(&format!("/v1/campaigns/1004/triggers/{}/errors", t["id"]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(errs["errors"].as_array().unwrap().len(), 1);
    assert_eq!(errs["next"], "");

    // The last broadcast is a draft.
    let (s, _) = sim
        .app_post("/v1/campaigns/1005/triggers", &json!({}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn general_app_limit_is_10_per_second_per_key() {
    let sim = start().await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(sim.app_get("/v1/segments").await.0);
    }
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a burst of 10: {statuses:?}"
    );
    // 20 more at once: far over 10/s however slow the machine is.
    let burst = futures::future::join_all((0..20).map(|_| sim.app_get("/v1/segments"))).await;
    statuses.extend(burst.into_iter().map(|(s, _)| s));
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 10,
        "{statuses:?}"
    );
    let served = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(sim.ctl().counter("429_app").await.unwrap(), served);
    // The EU key has its own bucket.
    let r = sim
        .http
        .get(sim.app_eu("/v1/segments"))
        .bearer_auth(EU.app_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Limits can be switched off for load tests.
    sim.ctl()
        .post("/_sim/limits", &json!({"enabled": false}))
        .await
        .unwrap();
    for _ in 0..20 {
        assert_eq!(sim.app_get("/v1/segments").await.0, 200);
    }
}

#[tokio::test]
async fn exports_and_transactional_lists() {
    let sim = start().await;
    assert_eq!(sim.app_get("/v1/exports").await.1, json!({"exports": null}));
    let (_, t) = sim.app_get("/v1/transactional").await;
    assert_eq!(t["messages"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn transactional_payload_over_1_mb_is_413_meta_error() {
    let sim = start().await;
    let (s, body) = sim
        .app_post(
            "/v1/send/email",
            &json!({"transactional_message_id": 1, "to": "a@b.c", "identifiers": {"id": "1"},
                    "message_data": {"blob": "x".repeat(1024 * 1024)}}),
        )
        .await;
    assert_eq!(s, 413);
    assert!(body["meta"]["error"].is_string());
}

#[tokio::test]
async fn reset_forgets_writes_triggers_and_sends() {
    let sim = start().await;
    sim.http
        .put(sim.track_us("/api/v1/customers/r-1"))
        .header("authorization", us_track())
        .json(&json!({"email": "r1@example.com"}))
        .send()
        .await
        .unwrap();
    let (s, _) = sim
        .app_post("/v1/campaigns/1001/triggers", &json!({}))
        .await;
    assert_eq!(s, 200);
    let (_, segs) = sim.app_get("/v1/customers/r-1/segments").await;
    assert_eq!(
        segs["segments"][0]["id"], 1,
        "written people are in segment 1"
    );
    sim.ctl().reset().await.unwrap();
    assert!(sim.person("id=r-1").await.is_none());
    assert_eq!(sim.ctl().get("/_sim/triggers").await.unwrap(), json!([]));
    assert_eq!(sim.ctl().counters().await.unwrap().len(), 0);
    // The trigger window is forgotten too.
    let (s, t) = sim
        .app_post("/v1/campaigns/1001/triggers", &json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(t["id"], 1);
}

#[tokio::test]
async fn legacy_v1_api_prefix_is_an_alias() {
    let sim = start().await;
    let (s, body) = sim.app_get("/v1/api/campaigns").await;
    assert_eq!(s, 200);
    assert_eq!(body, sim.app_get("/v1/campaigns").await.1);
    let (s, t) = sim
        .app_post("/v1/api/campaigns/1001/triggers", &json!({}))
        .await;
    assert_eq!(s, 200);
    assert!(t["id"].is_u64());
    let (s, _) = sim.app_get("/v1/api/newsletters?limit=1&sort=asc").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn running_lists_six_origins_and_labelled_credentials() {
    let sim = start().await;
    let envs: Vec<&str> = sim.running.origins.iter().map(|o| o.env).collect();
    assert_eq!(
        envs,
        vec![
            "SHARPSEND_CUSTOMERIO_TRACK_US_URL",
            "SHARPSEND_CUSTOMERIO_TRACK_EU_URL",
            "SHARPSEND_CUSTOMERIO_APP_US_URL",
            "SHARPSEND_CUSTOMERIO_APP_EU_URL",
            "SHARPSEND_CUSTOMERIO_CDP_US_URL",
            "SHARPSEND_CUSTOMERIO_CDP_EU_URL",
        ]
    );
    assert_eq!(sim.running.platform, "customerio");
    assert_eq!(sim.running.servers.len(), 6);
    assert_eq!(
        sim.running.credential("customerio us app api key"),
        Some(US.app_api_key)
    );
    assert_eq!(
        sim.running.credential("customerio eu tracking key"),
        Some(EU.tracking_key)
    );
    assert_eq!(sim.running.credentials.len(), 10);
    // Every listener serves the shared control API.
    for o in &sim.running.origins {
        let c = sim_core::SimClient::new(o.url.clone());
        assert!(c.counters().await.is_ok(), "{}", o.env);
    }
}

#[tokio::test]
async fn a_million_people_are_served_lazily() {
    let sim = start_with(Options {
        people: 1_000_000,
        ..Options::default()
    })
    .await;
    let (_, count) = sim.app_get("/v1/segments/1/customer_count").await;
    assert_eq!(count["count"], 1_000_000);
    let (_, last) = sim.app_get("/v1/customers/1099999/attributes").await;
    let email = last["customer"]["email"].as_str().unwrap().to_owned();
    let (_, found) = sim
        .app_get(&format!(
            "/v1/customers?email={}",
            email.replace('@', "%40")
        ))
        .await;
    assert_eq!(found["results"][0]["id"], "1099999");
    let (s, page) = sim.app_get("/v1/segments/2/membership?limit=5").await;
    assert_eq!(s, 200);
    assert_eq!(page["ids"].as_array().unwrap().len(), 5);
}
