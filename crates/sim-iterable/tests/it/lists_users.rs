//! Lists, list members, users and events.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{lines, send, sim};

#[tokio::test]
async fn list_members_are_plain_text_and_agree_with_user_profiles() {
    let s = sim().await;
    let (_, lists) = s.get("/api/lists").await;
    let lists = lists["lists"].as_array().unwrap().clone();
    assert_eq!(lists.len(), 8);
    assert_eq!(lists[0]["listType"], "Suppression");
    assert_eq!(lists[0]["isGlobalSuppressionEnabled"], true);
    let list = &lists[3];
    let id = list["id"].as_u64().unwrap();
    let (st, ct, members) =
        lines(s.req(Method::GET, &format!("/api/lists/getUsers?listId={id}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(!members.is_empty());
    // Every member's profile lists that list.
    for email in members.iter().take(5) {
        let (_, u) = send(
            s.req(Method::GET, "/api/users/getByEmail")
                .query(&[("email", email)]),
        )
        .await;
        let ids = u["user"]["dataFields"]["emailListIds"].as_array().unwrap();
        assert!(
            ids.iter().any(|x| x.as_u64() == Some(id)),
            "{email} on {id}"
        );
    }
    // preferUserId answers userIds.
    let (_, _, by_id) = lines(s.req(
        Method::GET,
        &format!("/api/lists/getUsers?listId={id}&preferUserId=true"),
    ))
    .await;
    assert_eq!(by_id.len(), members.len());
    assert!(by_id[0].starts_with("usr"));

    let (st, body) = s.get("/api/lists/getUsers?listId=1").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");
    let (st, _) = s.get("/api/lists/getUsers").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn subscribe_and_unsubscribe_change_membership() {
    let s = sim().await;
    let (st, created) = s
        .post(
            "/api/lists",
            &json!({"name": "Launch list", "description": "new"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let id = created["listId"].as_u64().unwrap();
    let (st, r) = s
        .post(
            "/api/lists/subscribe",
            &json!({"listId": id, "subscribers": [
                {"email": "new.reader@example.com", "dataFields": {"firstName": "New"}},
                {"email": "not-an-email"}
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["successCount"], 1);
    assert_eq!(r["failCount"], 1);
    assert_eq!(r["failedUpdates"]["invalidEmails"], json!(["not-an-email"]));
    let (_, _, members) =
        lines(s.req(Method::GET, &format!("/api/lists/getUsers?listId={id}"))).await;
    assert_eq!(members, vec!["new.reader@example.com".to_owned()]);

    let (_, r) = s
        .post(
            "/api/lists/unsubscribe",
            &json!({"listId": id, "subscribers": [{"email": "new.reader@example.com"}, {"email": "ghost@example.com"}]}),
        )
        .await;
    assert_eq!(r["successCount"], 1);
    assert_eq!(
        r["failedUpdates"]["notFoundEmails"],
        json!(["ghost@example.com"])
    );
    let (_, _, members) =
        lines(s.req(Method::GET, &format!("/api/lists/getUsers?listId={id}"))).await;
    assert!(members.is_empty());
    let (st, _) = s
        .post(
            "/api/lists/subscribe",
            &json!({"listId": 5, "subscribers": []}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_users_are_200_with_an_empty_object() {
    let s = sim().await;
    for path in [
        "/api/users/getByEmail?email=nobody@example.com",
        "/api/users/nobody@example.com",
        "/api/users/byUserId/nobody",
        "/api/users/byUserId?userId=nobody",
    ] {
        let (st, body) = s.get(path).await;
        assert_eq!(st, StatusCode::OK, "{path}");
        assert_eq!(body, json!({}), "{path}");
    }
}

#[tokio::test]
async fn update_merges_fields_and_type_mismatches_are_rejected() {
    let s = sim().await;
    let (_, members) = s.get("/api/users/byUserId/usr0000007").await;
    let email = members["user"]["email"].as_str().unwrap().to_owned();
    let first = members["user"]["dataFields"]["firstName"].clone();
    assert!(first.is_string());

    let (st, body) = s
        .post(
            "/api/users/update",
            &json!({"email": email, "dataFields": {"plan": "pro", "score": 4}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["code"], "Success");
    let (_, u) = s.get(&format!("/api/users/{email}")).await;
    assert_eq!(u["user"]["dataFields"]["plan"], "pro");
    assert_eq!(
        u["user"]["dataFields"]["firstName"], first,
        "missing fields are kept"
    );
    assert_eq!(u["user"]["userId"], "usr0000007");

    // `score` is now a long project-wide; a string must be refused.
    let (st, body) = s
        .post(
            "/api/users/update",
            &json!({"email": "x@example.com", "dataFields": {"score": "high"}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "RequestFieldsTypesMismatched");
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .starts_with("Project 11741: The request does not have the same data types")
    );
    assert_eq!(
        body["params"]["validationErrors"]["11741:::score"],
        json!({"incomingTypes": ["string", "keyword"], "expectedType": "long", "category": "user",
               "offendingValue": "high", "_type": "UnexpectedType"})
    );
    let (_, fields) = s.get("/api/users/getFields").await;
    assert_eq!(fields["fields"]["score"], "long");
    assert_eq!(fields["fields"]["plan"], "string");
}

#[tokio::test]
async fn update_validates_identifiers() {
    let s = sim().await;
    let (st, body) = s
        .post("/api/users/update", &json!({"dataFields": {}}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");
    let (st, body) = s
        .post("/api/users/update", &json!({"email": "no-at-sign"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "InvalidEmailAddressError");
    // An email and a userId of two different users conflict: 409.
    let (_, a) = s.get("/api/users/byUserId/usr0000001").await;
    let (st, body) = s
        .post(
            "/api/users/update",
            &json!({"email": a["user"]["email"], "userId": "usr0000002"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(body["code"], "ExternalKeyConflict");
}

#[tokio::test]
async fn bulk_update_reports_per_user_failures_and_caps_the_body() {
    let s = sim().await;
    let (st, r) = s
        .post(
            "/api/users/bulkUpdate",
            &json!({"users": [
                {"email": "b1@example.com", "dataFields": {"tier": "gold"}},
                {"email": "b2@example.com", "dataFields": {"tier": 3}},
                {"email": "bad"},
                {"userId": "ext-77"}
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["successCount"], 2);
    assert_eq!(r["failCount"], 2);
    assert_eq!(
        r["failedUpdates"]["invalidDataEmails"],
        json!(["b2@example.com"])
    );
    assert_eq!(r["failedUpdates"]["invalidEmails"], json!(["bad"]));
    assert_eq!(r["createdFields"], json!(["tier"]));
    let (_, u) = s.get("/api/users/byUserId/ext-77").await;
    assert_eq!(u["user"]["email"], "ext-77@placeholder.email");

    // Over 1,000 users: 400 BatchTooLarge.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"email": format!("m{i}@example.com")}))
        .collect();
    let (st, body) = s
        .post("/api/users/bulkUpdate", &json!({"users": many}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BatchTooLarge");
    let (_, u) = s.get("/api/users/m0@example.com").await;
    assert_eq!(u, json!({}), "nothing of a refused batch is written");

    // Over 4 MB: 413 BatchTooLarge.
    let big = "x".repeat(4 * 1024 * 1024 + 10);
    let (st, body) = s
        .post(
            "/api/users/bulkUpdate",
            &json!({"users": [{"email": "c@example.com", "dataFields": {"blob": big}}]}),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "BatchTooLarge");
}

#[tokio::test]
async fn deleting_a_user_hides_it() {
    let s = sim().await;
    let (_, u) = s.get("/api/users/byUserId/usr0000003").await;
    let email = u["user"]["email"].as_str().unwrap().to_owned();
    let (st, body) = send(s.req(Method::DELETE, &format!("/api/users/{email}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["code"], "Success");
    assert_eq!(s.get(&format!("/api/users/{email}")).await.1, json!({}));
    assert_eq!(s.get("/api/users/byUserId/usr0000003").await.1, json!({}));
    let (st, _) = send(s.req(Method::DELETE, &format!("/api/users/{email}"))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn track_and_track_bulk() {
    let s = sim().await;
    let (st, body) = s
        .post(
            "/api/events/track",
            &json!({"eventName": "articleShared", "email": "t@example.com", "id": "evt-1",
                    "createdAt": 1_700_000_000, "dataFields": {"articleId": 9}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["code"], "Success");
    assert_eq!(body["params"]["id"], "evt-1");
    // Same id again updates, not duplicates.
    s.post(
        "/api/events/track",
        &json!({"eventName": "articleShared", "email": "t@example.com", "id": "evt-1", "dataFields": {"articleId": 10}}),
    )
    .await;
    let evs = s.ctl.get("/_sim/events").await.unwrap();
    assert_eq!(evs.as_array().unwrap().len(), 1);
    // The tracked user is kept.
    let (_, u) = s.get("/api/users/t@example.com").await;
    assert_eq!(u["user"]["email"], "t@example.com");
    assert_eq!(evs[0]["row"]["dataFields"]["articleId"], 10);

    let (st, body) = s
        .post("/api/events/track", &json!({"email": "t@example.com"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");

    let (st, r) = s
        .post(
            "/api/events/trackBulk",
            &json!({"events": [
                {"eventName": "a", "email": "t@example.com"},
                {"eventName": "b", "userId": "usr0000001"},
                {"eventName": "c", "email": "broken"}
            ]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["successCount"], 2);
    assert_eq!(r["failCount"], 1);
    assert_eq!(r["failedUpdates"]["invalidEmails"], json!(["broken"]));
    let _: Value = r;
}

#[tokio::test]
async fn merge_nested_objects_and_create_new_fields_false() {
    let s = sim().await;
    let e = "nested@example.com";
    s.post(
        "/api/users/update",
        &json!({"email": e, "dataFields": {"prefs": {"mobile": true}}}),
    )
    .await;
    // Without mergeNestedObjects a top-level object is replaced.
    s.post(
        "/api/users/update",
        &json!({"email": e, "dataFields": {"prefs": {"email": false}}}),
    )
    .await;
    let (_, u) = s.get(&format!("/api/users/{e}")).await;
    assert_eq!(u["user"]["dataFields"]["prefs"], json!({"email": false}));
    // With it, merged.
    s.post(
        "/api/users/update",
        &json!({"email": e, "mergeNestedObjects": true, "dataFields": {"prefs": {"mobile": true}}}),
    )
    .await;
    let (_, u) = s.get(&format!("/api/users/{e}")).await;
    assert_eq!(
        u["user"]["dataFields"]["prefs"],
        json!({"email": false, "mobile": true})
    );
    // Unknown fields are dropped when createNewFields is false; the update still succeeds.
    let (st, _) = s
        .post(
            "/api/users/update",
            &json!({"email": e, "createNewFields": false, "dataFields": {"brandNewField": 1, "prefs": {}}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, u) = s.get(&format!("/api/users/{e}")).await;
    assert!(u["user"]["dataFields"].get("brandNewField").is_none());
    let (_, f) = s.get("/api/users/getFields").await;
    assert!(f["fields"].get("brandNewField").is_none());
}

#[tokio::test]
async fn deleting_a_list_removes_it() {
    let s = sim().await;
    let (_, lists) = s.get("/api/lists").await;
    let id = lists["lists"][2]["id"].as_u64().unwrap();
    let (st, body) = send(s.req(Method::DELETE, &format!("/api/lists/{id}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["code"], "Success");
    let (_, lists) = s.get("/api/lists").await;
    assert_eq!(lists["lists"].as_array().unwrap().len(), 7);
    let (st, _) = send(s.req(Method::DELETE, &format!("/api/lists/{id}"))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn list_members_are_limited_to_five_requests_a_minute() {
    let s = sim().await;
    let (_, lists) = s.get("/api/lists").await;
    let id = lists["lists"][2]["id"].as_u64().unwrap();
    let path = format!("/api/lists/getUsers?listId={id}");
    for _ in 0..5 {
        let (st, _, _) = lines(s.req(Method::GET, &path)).await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, body) = s.get(&path).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body["msg"],
        "Exceeded rate limit for endpoint: /api/lists/getUsers, project: 11741 "
    );
}

#[tokio::test]
async fn a_users_events_read_back_newest_first() {
    let s = sim().await;
    let (_, u) = s.get("/api/users/byUserId/usr0000002").await;
    let email = u["user"]["email"].as_str().unwrap().to_owned();
    s.post(
        "/api/events/track",
        &json!({"eventName": "paywallHit", "email": email}),
    )
    .await;
    let (st, body) = s.get(&format!("/api/events/{email}?limit=5")).await;
    assert_eq!(st, StatusCode::OK);
    let evs = body["events"].as_array().unwrap();
    assert_eq!(evs.len(), 5);
    assert_eq!(
        evs[0]["eventName"], "paywallHit",
        "the tracked event is the newest"
    );
    assert_eq!(evs[0]["eventType"], "customEvent");
    assert!(evs.iter().all(|e| e["email"] == email.as_str()));
    let times: Vec<i64> = evs
        .iter()
        .map(|e| {
            chrono::DateTime::parse_from_str(
                e["createdAt"].as_str().unwrap(),
                "%Y-%m-%d %H:%M:%S %:z",
            )
            .unwrap()
            .timestamp()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));
    // Default 30, and the same by userId.
    let (_, body) = s.get("/api/events/byUserId/usr0000002").await;
    assert_eq!(
        body["events"].as_array().unwrap().len(),
        11,
        "10 generated + 1 tracked"
    );
    let (st, body) = s.get(&format!("/api/events/{email}?limit=201")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");
    assert_eq!(
        s.get("/api/events/nobody@example.com").await.1,
        json!({"events": []})
    );
}
