use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{
    Sim,
    receiver::{self, Mode},
    sim, start,
};

async fn subscribe(s: &Sim, event: &str, url: &str) -> serde_json::Value {
    let r = s
        .post(
            "/crm/rest/v1/hooks",
            json!({"eventKey": event, "hookUrl": url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

#[tokio::test]
async fn event_keys_and_crud() {
    let s = sim().await;
    let keys = s.get("/crm/rest/v1/hooks/event_keys").await.json();
    assert!(keys.as_array().unwrap().contains(&json!("contact.add")));
    let mut rx = receiver::start(Mode::Echo).await;
    let h = subscribe(&s, "contact.add", &rx.url).await;
    assert_eq!(h["status"], "Verified");
    assert_eq!(h["eventKey"], "contact.add");
    let key = h["key"].as_str().unwrap().to_owned();
    // The handshake: empty body, X-Hook-Secret header.
    let v = rx.next().await;
    assert!(v.body.is_empty());
    assert!(v.headers.contains_key("x-hook-secret"));
    assert_eq!(
        s.get(&format!("/crm/rest/v1/hooks/{key}")).await.json()["hookUrl"],
        rx.url.as_str()
    );
    assert_eq!(
        s.get("/crm/rest/v1/hooks")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s
        .call(
            Method::PUT,
            &format!("/crm/rest/v1/hooks/{key}"),
            Some(json!({"eventKey": "contact.edit", "hookUrl": rx.url})),
        )
        .await;
    assert_eq!(r.json()["eventKey"], "contact.edit");
    assert_eq!(r.json()["status"], "Verified");
    assert_eq!(
        s.call(Method::DELETE, &format!("/crm/rest/v1/hooks/{key}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get(&format!("/crm/rest/v1/hooks/{key}")).await.status,
        StatusCode::NOT_FOUND
    );
    let bad = s
        .post(
            "/crm/rest/v1/hooks",
            json!({"eventKey": "contact.explode", "hookUrl": rx.url}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unechoed_secret_leaves_the_hook_unverified_until_delayed_verify() {
    let s = sim().await;
    let mut rx = receiver::start(Mode::NoEcho).await;
    let h = subscribe(&s, "contact.add", &rx.url).await;
    assert_eq!(h["status"], "Unverified");
    let secret = rx.next().await.headers["x-hook-secret"]
        .to_str()
        .unwrap()
        .to_owned();
    let key = h["key"].as_str().unwrap();
    // Unverified hooks get no events.
    s.post(
        "/crm/rest/v1/contacts",
        json!({"email_addresses": [{"email": "a@example.com", "field": "EMAIL1"}]}),
    )
    .await;
    let report = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert_eq!(report["attempted"], 0);
    let wrong = s
        .http
        .post(s.url(&format!("/crm/rest/v1/hooks/{key}/delayedVerify")))
        .bearer_auth(sim_keap::ACCESS_TOKEN)
        .header("X-Hook-Secret", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let ok = s
        .http
        .post(s.url(&format!("/crm/rest/v1/hooks/{key}/delayedVerify")))
        .bearer_auth(sim_keap::ACCESS_TOKEN)
        .header("X-Hook-Secret", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.json::<serde_json::Value>().await.unwrap()["status"],
        "Verified"
    );
    // Also a 500 on verification leaves it Unverified.
    rx.set(Mode::Status(500));
    let r = s
        .post(&format!("/crm/rest/v1/hooks/{key}/verify"), json!({}))
        .await;
    assert_eq!(r.json()["status"], "Unverified");
}

#[tokio::test]
async fn changes_are_delivered_in_batches_of_ids() {
    let s = sim().await;
    let mut rx = receiver::start(Mode::Echo).await;
    subscribe(&s, "contact.add", &rx.url).await;
    subscribe(&s, "contact.edit", &rx.url).await;
    rx.next().await;
    rx.next().await;
    let a = s
        .post(
            "/crm/rest/v1/contacts",
            json!({"email_addresses": [{"email": "x1@example.com", "field": "EMAIL1"}]}),
        )
        .await
        .json();
    let b = s
        .post(
            "/crm/rest/v1/contacts",
            json!({"email_addresses": [{"email": "x2@example.com", "field": "EMAIL1"}]}),
        )
        .await
        .json();
    s.call(
        Method::PATCH,
        "/crm/rest/v1/contacts/4",
        Some(json!({"given_name": "Zed"})),
    )
    .await;
    let report = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert_eq!(report["delivered"], 2);
    let d1 = rx.next().await;
    assert!(
        !d1.headers.contains_key("x-hook-secret"),
        "deliveries carry no secret"
    );
    let d1: serde_json::Value = serde_json::from_slice(&d1.body).unwrap();
    assert_eq!(d1["event_key"], "contact.add");
    assert_eq!(d1["object_type"], "contact");
    let ids: Vec<&serde_json::Value> = d1["object_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["id"])
        .collect();
    assert_eq!(ids, vec![&a["id"], &b["id"]]);
    assert!(d1["object_keys"][0]["timestamp"].is_string());
    let d2 = rx.next_delivery().await;
    assert_eq!(d2["event_key"], "contact.edit");
    assert_eq!(d2["object_keys"][0]["id"], 4);
    assert_eq!(s.ctl.counter("hook_delivered").await.unwrap(), 2);
}

#[tokio::test]
async fn batches_hold_at_most_1000_keys() {
    let mut o = crate::common::opts();
    o.contacts = 1500;
    let s = start(o).await;
    let mut rx = receiver::start(Mode::Echo).await;
    subscribe(&s, "contactGroup.applied", &rx.url).await;
    rx.next().await;
    let tag = s.get("/crm/rest/v1/tags?limit=1").await.json()["tags"][0]["id"]
        .as_u64()
        .unwrap();
    // Contacts that do not have the tag yet.
    let ids: Vec<u64> = (1..=1500u64).collect();
    let res = s
        .post(
            &format!("/crm/rest/v1/tags/{tag}/contacts"),
            json!({"ids": ids}),
        )
        .await
        .json();
    let applied = res
        .as_object()
        .unwrap()
        .values()
        .filter(|v| *v == "SUCCESS")
        .count();
    assert!(applied > 1000, "{applied}");
    s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    let first = rx.next_delivery().await;
    let second = rx.next_delivery().await;
    assert_eq!(first["object_keys"].as_array().unwrap().len(), 1000);
    assert_eq!(
        second["object_keys"].as_array().unwrap().len(),
        applied - 1000
    );
    assert_eq!(first["event_key"], "contactGroup.applied");
}

#[tokio::test]
async fn four_failures_make_a_hook_inactive_and_verify_reactivates_it() {
    let s = sim().await;
    let mut rx = receiver::start(Mode::Echo).await;
    let key = subscribe(&s, "contact.delete", &rx.url).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    rx.next().await;
    rx.set(Mode::Status(500));
    s.call(Method::DELETE, "/crm/rest/v1/contacts/9", None)
        .await;
    for attempt in 1..=4 {
        let r = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
        assert_eq!(r["failed"], 1, "attempt {attempt}");
        let status = s.get(&format!("/crm/rest/v1/hooks/{key}")).await.json()["status"].clone();
        assert_eq!(
            status,
            if attempt < 4 { "Verified" } else { "Inactive" },
            "after attempt {attempt}"
        );
    }
    assert_eq!(
        s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap()["attempted"],
        0
    );
    rx.set(Mode::Echo);
    let r = s
        .post(&format!("/crm/rest/v1/hooks/{key}/verify"), json!({}))
        .await;
    assert_eq!(r.json()["status"], "Verified");
}

#[tokio::test]
async fn a_410_makes_the_hook_inactive_at_once() {
    let s = sim().await;
    let mut rx = receiver::start(Mode::Echo).await;
    let key = subscribe(&s, "contact.add", &rx.url).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    rx.next().await;
    rx.set(Mode::Status(410));
    s.post(
        "/crm/rest/v1/contacts",
        json!({"email_addresses": [{"email": "g@example.com", "field": "EMAIL1"}]}),
    )
    .await;
    let r = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert_eq!(r["deactivated"], json!([key]));
    assert_eq!(
        s.get(&format!("/crm/rest/v1/hooks/{key}")).await.json()["status"],
        "Inactive"
    );
}

#[tokio::test]
async fn background_delivery_and_retry_without_fire() {
    let mut o = crate::common::opts();
    o.hook_delay_ms = 0;
    o.hook_retry_ms = vec![0, 0, 0];
    let s = start(o).await;
    let mut rx = receiver::start(Mode::Echo).await;
    subscribe(&s, "contact.add", &rx.url).await;
    rx.next().await;
    rx.set(Mode::Status(503));
    s.post(
        "/crm/rest/v1/contacts",
        json!({"email_addresses": [{"email": "bg@example.com", "field": "EMAIL1"}]}),
    )
    .await;
    // First attempt fails, the worker retries on its own; let the second succeed.
    let first = rx.next().await;
    rx.set(Mode::Echo);
    let second = rx.next().await;
    assert_eq!(first.body, second.body, "a retry resends the same batch");
    let d: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(d["event_key"], "contact.add");
}

#[tokio::test]
async fn order_changes_are_delivered() {
    let s = sim().await;
    let mut rx = receiver::start(Mode::Echo).await;
    subscribe(&s, "order.add", &rx.url).await;
    rx.next().await;
    let r = s
        .post(
            "/crm/rest/v1/orders",
            json!({"contact_id": 3, "order_date": "2026-01-02T03:04:05.000Z", "order_title": "Hook order", "order_type": "Online", "order_items": [{"product_id": 1, "quantity": 2}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json()["id"].clone();
    assert_eq!(
        s.get(&format!("/crm/rest/v1/orders/{id}")).await.json()["title"],
        "Hook order"
    );
    s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    let d = rx.next_delivery().await;
    assert_eq!(d["event_key"], "order.add");
    assert_eq!(d["object_type"], "order");
    assert_eq!(d["object_keys"][0]["id"], id);
    let bad = s
        .post("/crm/rest/v1/orders", json!({"contact_id": 3}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.call(Method::DELETE, &format!("/crm/rest/v1/orders/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_slow_receiver_fails_the_attempt() {
    let s = sim().await;
    s.ctl
        .post("/_sim/config", &json!({"hookTimeoutMs": 200}))
        .await
        .unwrap();
    let mut rx = receiver::start(Mode::Echo).await;
    let key = subscribe(&s, "contact.add", &rx.url).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    rx.next().await;
    rx.set(Mode::Slow(1_000));
    s.post(
        "/crm/rest/v1/contacts",
        json!({"email_addresses": [{"email": "slow@example.com", "field": "EMAIL1"}]}),
    )
    .await;
    let r = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert_eq!(r["failed"], 1);
    assert_eq!(s.ctl.get("/_sim/hooks").await.unwrap()["pendingRetries"], 1);
    assert_eq!(
        s.get(&format!("/crm/rest/v1/hooks/{key}")).await.json()["status"],
        "Verified"
    );
}
