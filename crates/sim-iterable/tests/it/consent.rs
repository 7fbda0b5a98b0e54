//! Consent calls: the Subscriptions API's one-group DELETE (and its "not enabled" 404), the
//! overwriting `updateSubscriptions`, and `users/forget` with its daily cap and 409 afterwards.

use axum::{Router, routing::post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{Sim, send, sim};

const READER: &str = "reader@example.com";
const NEWSLETTER: u64 = 41007;
const MARKETING: u64 = 41001;

/// A system webhook receiver that accepts everything; deliveries are read back from the sim.
async fn hook(s: &Sim) {
    let app = Router::new().route("/hook", post(|| async { StatusCode::OK }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    s.ctl
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": format!("http://{addr}/hook")}),
        )
        .await
        .unwrap();
}

async fn unsubscribe_events(s: &Sim) -> Vec<Value> {
    s.ctl
        .post("/_sim/webhooks/flush", &json!({}))
        .await
        .unwrap();
    let d = s.ctl.get("/_sim/webhooks/deliveries").await.unwrap();
    d.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["eventName"] == "emailUnSubscribe")
        .map(|r| r["body"].clone())
        .collect()
}

async fn reader(s: &Sim, fields: Value) {
    let (st, body) = s
        .post(
            "/api/users/update",
            &json!({"email": READER, "dataFields": fields}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

async fn delete(s: &Sim, path: &str) -> (StatusCode, Value) {
    send(s.req(Method::DELETE, path)).await
}

#[tokio::test]
async fn channels_hold_two_marketing_email_channels_and_a_transactional_one() {
    let s = sim().await;
    let (_, body) = s.get("/api/channels").await;
    let chans = body["channels"].as_array().unwrap();
    let count = |ty: &str| {
        chans
            .iter()
            .filter(|c| c["channelType"] == ty && c["messageMedium"] == "Email")
            .count()
    };
    assert!(count("Marketing") >= 2, "{body}");
    assert!(count("Transactional") >= 1, "{body}");
}

#[tokio::test]
async fn delete_removes_one_group_only_and_echoes_an_api_unsubscribe() {
    let s = sim().await;
    hook(&s).await;
    reader(&s, json!({"unsubscribedChannelIds": [MARKETING]})).await;

    // The group is case-insensitive; the email is percent-encoded in the path.
    let (st, body) = delete(
        &s,
        &format!("/api/subscriptions/MessageChannel/{NEWSLETTER}/user/reader%40example.com"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "Success");
    let (_, u) = s.get(&format!("/api/users/{READER}")).await;
    assert_eq!(
        u["user"]["dataFields"]["unsubscribedChannelIds"],
        json!([MARKETING, NEWSLETTER]),
        "the other unsubscribe is kept"
    );
    let state = s
        .ctl
        .get(&format!("/_sim/consent?email={READER}"))
        .await
        .unwrap();
    assert_eq!(state["unsubscribed"], true);

    let events = unsubscribe_events(&s).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["email"], READER);
    assert_eq!(events[0]["dataFields"]["unsubSource"], "API");
    assert_eq!(events[0]["dataFields"]["channelIds"], json!([NEWSLETTER]));

    // A repeat changes nothing and emits nothing.
    let (st, _) = delete(
        &s,
        &format!("/api/subscriptions/messagechannel/{NEWSLETTER}/user/{READER}"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(unsubscribe_events(&s).await.len(), 1);

    // emailList removes the list from emailListIds; messageType adds to the unsubscribed types.
    reader(&s, json!({"emailListIds": [5, 6]})).await;
    let (st, _) = delete(
        &s,
        &format!("/api/subscriptions/emailList/51006/user/{READER}"),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "51006 is a message type, not a list"
    );
    let (st, _) = delete(
        &s,
        &format!("/api/subscriptions/messageType/51006/user/{READER}"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, u) = s.get(&format!("/api/users/{READER}")).await;
    assert_eq!(
        u["user"]["dataFields"]["unsubscribedMessageTypeIds"],
        json!([51006])
    );

    for bad in [
        format!("/api/subscriptions/channel/{NEWSLETTER}/user/{READER}"),
        format!("/api/subscriptions/messageChannel/abc/user/{READER}"),
        format!("/api/subscriptions/messageChannel/{NEWSLETTER}/user/not-an-email"),
        format!("/api/subscriptions/messageChannel/{NEWSLETTER}/user/nobody@example.com"),
    ] {
        let (st, _) = delete(&s, &bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn a_project_without_the_subscriptions_api_answers_404_endpoint_not_found() {
    let s = sim().await;
    reader(&s, json!({})).await;
    s.ctl
        .post("/_sim/consent", &json!({"subscriptionsApi": false}))
        .await
        .unwrap();
    let (st, body) = delete(
        &s,
        &format!("/api/subscriptions/messageChannel/{NEWSLETTER}/user/{READER}"),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["msg"], "Endpoint not found");
    let (_, u) = s.get(&format!("/api/users/{READER}")).await;
    assert_eq!(u["user"]["dataFields"]["unsubscribedChannelIds"], json!([]));
    // A reset turns it back on.
    s.ctl.reset().await.unwrap();
    reader(&s, json!({})).await;
    let (st, _) = delete(
        &s,
        &format!("/api/subscriptions/messageChannel/{NEWSLETTER}/user/{READER}"),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn update_subscriptions_overwrites_given_arrays_and_leaves_the_rest() {
    let s = sim().await;
    hook(&s).await;
    reader(
        &s,
        json!({"emailListIds": [5], "unsubscribedChannelIds": [MARKETING],
               "unsubscribedMessageTypeIds": [51006]}),
    )
    .await;
    let (st, body) = s
        .post(
            "/api/users/updateSubscriptions",
            &json!({"email": READER, "unsubscribedChannelIds": [NEWSLETTER],
                    "emailListIds": null}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, u) = s.get(&format!("/api/users/{READER}")).await;
    let f = &u["user"]["dataFields"];
    assert_eq!(
        f["unsubscribedChannelIds"],
        json!([NEWSLETTER]),
        "replaced, not merged"
    );
    assert_eq!(
        f["unsubscribedMessageTypeIds"],
        json!([51006]),
        "absent: untouched"
    );
    assert_eq!(f["emailListIds"], json!([5]), "null: untouched");
    let events = unsubscribe_events(&s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["dataFields"]["channelIds"], json!([NEWSLETTER]));
    assert_eq!(events[0]["dataFields"]["unsubSource"], "API");

    let (st, _) = s
        .post(
            "/api/users/updateSubscriptions",
            &json!({"email": READER, "unsubscribedChannelIds": ["x"]}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = s
        .post(
            "/api/users/updateSubscriptions",
            &json!({"unsubscribedChannelIds": []}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn forget_deletes_blocks_updates_and_lists_the_hash() {
    let s = sim().await;
    reader(&s, json!({"plan": "pro"})).await;
    let (st, _) = s
        .post(
            "/api/users/forget",
            &json!({"email": READER, "userId": "u-1"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "email xor userId");
    let (st, _) = s.post("/api/users/forget", &json!({})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, body) = s
        .post(
            "/api/users/forget",
            &json!({"email": " Reader@Example.com "}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (_, u) = s.get(&format!("/api/users/{READER}")).await;
    assert_eq!(u, json!({}), "the profile is gone");
    let (st, body) = s
        .post(
            "/api/users/update",
            &json!({"email": READER, "dataFields": {"plan": "x"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(body["code"], "ForgottenUserError");
    let (_, u) = s.get(&format!("/api/users/{READER}")).await;
    assert_eq!(u, json!({}), "nothing collected again");

    let (st, body) = s.get("/api/users/forgotten").await;
    assert_eq!(st, StatusCode::OK);
    let want: String = Sha256::digest(READER.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(body["hashedEmails"], json!([want]));
    let state = s
        .ctl
        .get(&format!("/_sim/consent?email={READER}"))
        .await
        .unwrap();
    assert_eq!(state["forgotten"], true);
    assert_eq!(state["exists"], false);
}

#[tokio::test]
async fn forget_has_a_daily_cap_answered_with_the_usual_429() {
    let s = sim().await;
    s.ctl
        .post("/_sim/consent", &json!({"forgetDailyCap": 2}))
        .await
        .unwrap();
    for i in 0..2 {
        let (st, _) = s
            .post(
                "/api/users/forget",
                &json!({"email": format!("r{i}@example.com")}),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        // Stay under 3/s so only the daily cap can answer 429.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    let (st, body) = s
        .post("/api/users/forget", &json!({"email": "r9@example.com"}))
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "RateLimitExceeded");
    assert!(body["msg"].as_str().unwrap().contains("/api/users/forget"));
}

#[tokio::test]
async fn forget_is_limited_to_three_per_second() {
    let s = sim().await;
    let mut limited = 0;
    for i in 0..5 {
        let (st, _) = s
            .post(
                "/api/users/forget",
                &json!({"email": format!("r{i}@example.com")}),
            )
            .await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited >= 1, "five in a burst exceed 3/s");
}
