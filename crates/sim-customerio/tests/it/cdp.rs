//! Data Pipelines: key-only Basic auth, permissive 200s, strict mode.

use serde_json::{Value, json};
use sim_customerio::{EU, US};

use crate::common::{basic, start, us_track};

fn cdp_auth(key: &str) -> String {
    basic(key, "")
}

#[tokio::test]
async fn identify_and_track_with_the_source_key_are_stored() {
    let sim = start().await;
    let r = sim
        .http
        .post(sim.cdp_us("/v1/identify"))
        .header("authorization", cdp_auth(US.cdp_api_key))
        .json(&json!({"userId": "cdp-1", "traits": {"email": "cdp1@example.com", "plan": "pro"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}\n");
    let p = sim.person("id=cdp-1").await.expect("stored");
    assert_eq!(p["email"], "cdp1@example.com");
    let r = sim
        .http
        .post(sim.cdp_us("/v1/track"))
        .header("authorization", cdp_auth(US.cdp_api_key))
        .json(&json!({"userId": "cdp-1", "event": "Article Read", "properties": {"slug": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let evs: Value = sim.ctl().get("/_sim/events?customer=cdp-1").await.unwrap();
    let types: Vec<&str> = evs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["identify", "track"]);
    assert_eq!(evs[1]["name"], "Article Read");
    assert_eq!(evs[1]["data"]["slug"], "x");

    // Semantic delete event.
    sim.http
        .post(sim.cdp_us("/v1/track"))
        .header("authorization", cdp_auth(US.cdp_api_key))
        .json(&json!({"userId": "cdp-1", "event": "Delete Person"}))
        .send()
        .await
        .unwrap();
    assert!(sim.person("id=cdp-1").await.is_none());
}

#[tokio::test]
async fn bad_keys_get_200_unless_strict_mode() {
    let sim = start().await;
    let bad_auths = [
        None,
        Some(cdp_auth("not-a-key")),
        Some(us_track()),
        Some(format!("Bearer {}", US.cdp_api_key)),
        Some(cdp_auth(US.app_api_key)),
        Some(cdp_auth(EU.cdp_api_key)), // EU key on the US origin
    ];
    for auth in &bad_auths {
        for strict in [false, true] {
            let mut req = sim
                .http
                .post(sim.cdp_us("/v1/identify"))
                .json(&json!({"userId": "ghost", "traits": {}}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if strict {
                req = req.header("x-strict-mode", "1");
            }
            let r = req.send().await.unwrap();
            let want = if strict { 401 } else { 200 };
            assert_eq!(r.status(), want, "{auth:?} strict={strict}");
        }
    }
    assert!(sim.person("id=ghost").await.is_none(), "nothing stored");
    assert_eq!(sim.ctl().counter("cdp_dropped").await.unwrap(), 12);
    // The EU key works on the EU origin.
    let r = sim
        .http
        .post(sim.cdp_eu("/v1/identify"))
        .header("authorization", cdp_auth(EU.cdp_api_key))
        .header("x-strict-mode", "1")
        .json(&json!({"userId": "eu-cdp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.person("workspace=eu&id=eu-cdp").await.is_some());
}

#[tokio::test]
async fn strict_mode_turns_validation_failures_into_400_meta_errors() {
    let sim = start().await;
    let send = |path: &'static str, body: Value, strict: bool| {
        let mut req = sim
            .http
            .post(sim.cdp_us(path))
            .header("authorization", cdp_auth(US.cdp_api_key))
            .json(&body);
        if strict {
            req = req.header("X-Strict-Mode", "1");
        }
        req.send()
    };
    let r = send("/v1/track", json!({"userId": "v-1"}), false)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = send("/v1/track", json!({"userId": "v-1"}), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"meta": {"errors": ["event is required"]}}));
    assert!(sim.person("id=v-1").await.is_none());

    // Over 32 KB: dropped with 200, or 400 in strict mode.
    let big = json!({"userId": "v-2", "traits": {"blob": "x".repeat(33 * 1024)}});
    assert_eq!(
        send("/v1/identify", big.clone(), false)
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        sim.person("id=v-2").await.is_none(),
        "over-limit call dropped"
    );
    assert_eq!(send("/v1/identify", big, true).await.unwrap().status(), 400);

    // Batch: valid calls applied; in strict mode an invalid one rejects the batch.
    let batch = json!({"batch": [
        {"type": "identify", "userId": "v-3", "traits": {"a": 1}},
        {"type": "track", "userId": "v-3"},
    ]});
    let r = send("/v1/batch", batch.clone(), true).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["errors"][0], "batch[1].event is required");
    assert!(sim.person("id=v-3").await.is_none());
    assert_eq!(send("/v1/batch", batch, false).await.unwrap().status(), 200);
    assert!(sim.person("id=v-3").await.is_some());

    for path in ["/v1/page", "/v1/screen", "/v1/group", "/v1/alias"] {
        let r = send(path, json!({}), true).await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }
    let r = send("/v1/alias", json!({"userId": "a", "previousId": "b"}), true)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
