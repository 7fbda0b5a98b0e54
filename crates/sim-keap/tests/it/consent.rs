//! Consent calls: the per-address opt-in status (`/v2/emailAddresses/{email}/status`), finding
//! contacts by email with the v2 filter, and deleting contacts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    Sim,
    receiver::{self, Mode},
    sim,
};

const SHARED: &str = "shared@example.com";

/// A v2 contact holding `email`, opted in through the API.
async fn contact(s: &Sim, email: &str, name: &str) -> String {
    let r = s
        .post(
            "/crm/rest/v2/contacts",
            json!({"given_name": name, "email_addresses": [
                {"email": email, "field": "EMAIL1", "opt_in_reason": "signed up"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn patch(s: &Sim, email: &str, body: Value) -> (StatusCode, Value) {
    let r = s
        .call(
            Method::PATCH,
            &format!("/crm/rest/v2/emailAddresses/{email}/status"),
            Some(body),
        )
        .await;
    let v = serde_json::from_str(&r.text).unwrap_or(Value::Null);
    (r.status, v)
}

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn status_patch_needs_both_fields() {
    let s = sim().await;
    contact(&s, SHARED, "Ada").await;
    for body in [
        json!({"opted_in": false}),
        json!({"reason": "x"}),
        json!({"opted_in": "no", "reason": "x"}),
        json!({"opted_in": false, "reason": ""}),
    ] {
        let (st, v) = patch(&s, SHARED, body.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["status"], "INVALID_ARGUMENT");
    }
    let (st, _) = patch(
        &s,
        "nobody@example.com",
        json!({"opted_in": false, "reason": "x"}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_opt_out_covers_every_contact_holding_the_address_and_fires_their_edits() {
    let s = sim().await;
    let mut rx = receiver::start(Mode::Echo).await;
    let hook = s
        .post(
            "/crm/rest/v1/hooks",
            json!({"eventKey": "contact.edit", "hookUrl": rx.url}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::OK);
    rx.next().await; // the verification handshake
    let a = contact(&s, SHARED, "Ada").await;
    let b = contact(&s, "Shared@Example.com", "Bea").await;

    let before = s
        .get(&format!("/crm/rest/v2/emailAddresses/{SHARED}/status"))
        .await
        .json();
    assert_eq!(before["opted_in"], true, "{before}");

    let (st, v) = patch(
        &s,
        SHARED,
        json!({"opted_in": false, "reason": "SharpSend: unsubscribed"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["email"], SHARED);
    assert_eq!(v["opted_in"], false);
    assert_eq!(v["status"], "MANUAL");
    assert!(v["create_time"].is_string());
    let got = s
        .get(&format!("/crm/rest/v2/emailAddresses/{SHARED}/status"))
        .await
        .json();
    assert_eq!(got, v);

    // Both contacts show the address as not opted in.
    let list = s
        .get("/crm/rest/v2/contacts?filter=email%3D%3Dshared%40example.com&fields=email_addresses")
        .await
        .json();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(ids(&list), want);
    for c in list["contacts"].as_array().unwrap() {
        assert_eq!(c["email_addresses"][0]["is_opt_in"], false);
        assert_eq!(c["email_addresses"][0]["email_opt_status"], "MANUAL");
    }

    // One contact.edit per holder.
    let report = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert!(report["attempted"].as_u64().unwrap() >= 1, "{report}");
    let delivery = rx.next_delivery().await;
    assert_eq!(delivery["event_key"], "contact.edit");
    let mut edited: Vec<String> = delivery["object_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].to_string().trim_matches('"').to_owned())
        .collect();
    edited.sort();
    assert_eq!(edited, want);

    // A repeat changes nothing and fires nothing.
    let (st, _) = patch(&s, SHARED, json!({"opted_in": false, "reason": "again"})).await;
    assert_eq!(st, StatusCode::OK);
    let report = s.ctl.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert_eq!(report["attempted"], 0, "{report}");

    let state = s
        .ctl
        .get(&format!("/_sim/consent?email={SHARED}"))
        .await
        .unwrap();
    assert_eq!(state["optedIn"], false);
    assert_eq!(state["status"], "MANUAL");
    assert_eq!(state["contacts"].as_array().unwrap().len(), 2);

    // A contact created later with the address takes its status (no opt-in asked here).
    let r = s
        .post(
            "/crm/rest/v2/contacts",
            json!({"given_name": "Cy", "email_addresses": [{"email": SHARED, "field": "EMAIL1"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["email_addresses"][0]["email_opt_status"], "MANUAL");
}

#[tokio::test]
async fn re_opt_in_by_api_moves_only_the_listed_statuses() {
    let s = sim().await;
    contact(&s, SHARED, "Ada").await;
    let (_, v) = patch(&s, SHARED, json!({"opted_in": false, "reason": "x"})).await;
    assert_eq!(v["status"], "MANUAL");
    // "Opt-Out: Manual" may be opted in again.
    let (st, v) = patch(&s, SHARED, json!({"opted_in": true, "reason": "web form"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["opted_in"], true);

    // A seeded address in a status the API may not move keeps it.
    let all = s
        .get("/crm/rest/v2/contacts?page_size=1000&fields=email_addresses")
        .await
        .json();
    let stuck = all["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["email_addresses"].get(0))
        .find(|e| {
            [
                "HARD_BOUNCE",
                "LIST_UNSUBSCRIBE",
                "SPAM",
                "ADMIN",
                "SYSTEM",
                "FEEDBACK",
            ]
            .contains(&e["email_opt_status"].as_str().unwrap_or(""))
        })
        .expect("the seeded contacts hold a non-movable status");
    let email = stuck["email"].as_str().unwrap();
    let status = stuck["email_opt_status"].clone();
    let (st, v) = patch(&s, email, json!({"opted_in": true, "reason": "web form"})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["status"], status);
    assert_eq!(v["opted_in"], false);
    // And an opt-out leaves it (a bounce stays a bounce).
    let (_, v) = patch(&s, email, json!({"opted_in": false, "reason": "x"})).await;
    assert_eq!(v["status"], status);
}

#[tokio::test]
async fn email_filter_is_exact_and_a_trailing_star_is_a_wildcard() {
    let s = sim().await;
    let a = contact(&s, SHARED, "Ada").await;
    contact(&s, "shared.other@example.com", "Bea").await;
    let exact = s
        .get("/crm/rest/v2/contacts?filter=email%3D%3Dshared%40example.com")
        .await
        .json();
    assert_eq!(ids(&exact), vec![a]);
    let wild = s
        .get("/crm/rest/v2/contacts?filter=email%3D%3Dshared*")
        .await
        .json();
    assert_eq!(ids(&wild).len(), 2, "{wild}");
}

#[tokio::test]
async fn deleting_contacts_answers_204_then_404() {
    let s = sim().await;
    let a = contact(&s, SHARED, "Ada").await;
    let b = contact(&s, SHARED, "Bea").await;
    for id in [&a, &b] {
        let r = s
            .call(Method::DELETE, &format!("/crm/rest/v2/contacts/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let r = s
        .call(Method::DELETE, &format!("/crm/rest/v2/contacts/{a}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let list = s
        .get("/crm/rest/v2/contacts?filter=email%3D%3Dshared%40example.com")
        .await
        .json();
    assert!(ids(&list).is_empty());
    let state = s
        .ctl
        .get(&format!("/_sim/consent?email={SHARED}"))
        .await
        .unwrap();
    assert_eq!(state["deleted"], true);
    assert_eq!(state["contacts"], json!([]));
}
