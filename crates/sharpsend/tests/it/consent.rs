//! The consent ledger's HTTP API (issue 17): suppressions, the propagate setting, erasures and
//! the audit log. The job worker is not part of this: the tests assert the queued jobs and the
//! pending rows it will work from.

use chrono::Utc;
use domain::{Platform, PublisherId};
use reqwest::Method;
use serde_json::{Value, json};
use store::{ConsentJobKind, ConsentJobStatus, NewIntegration, NewRecord};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

/// Stores an integration directly (no platform call): enough for the ledger to see it connected.
async fn connect(app: &TestApp, publisher: &str, platform: Platform) -> String {
    let id = format!("int_{publisher}_{}", platform.as_str());
    app.state
        .store
        .save_integration(NewIntegration {
            id: id.clone(),
            publisher_id: PublisherId::parse(publisher).unwrap(),
            platform,
            region: None,
            config: json!({}),
            webhook_id: format!("wh_{id}"),
            credentials: vec![],
            now: Utc::now(),
        })
        .await
        .unwrap();
    id
}

fn platforms(entry: &Value) -> Vec<(String, String)> {
    entry["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_api_suppression_is_recorded_once_and_queued_for_every_connected_platform() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (key_id, key) = app.create_key("acme").await;
    connect(&app, "acme", Platform::Iterable).await;
    connect(&app, "acme", Platform::Keap).await;
    let path = "/api/integrations/acme/suppressions";

    // `manual` is not propagated by default: recorded, skipped everywhere, nothing queued.
    let a = app
        .call(
            Method::POST,
            path,
            Some(&key),
            Some(json!({"email": "  Ada@Example.COM "})),
        )
        .await;
    let entry = a.expect_ok(201).clone();
    assert_eq!(entry["email"], "ada@example.com");
    assert_eq!(entry["reason"], "manual");
    assert_eq!(entry["source"], json!({"kind": "api", "principal": key_id}));
    assert_eq!(
        platforms(&entry),
        vec![
            ("iterable".to_owned(), "skipped".to_owned()),
            ("keap".to_owned(), "skipped".to_owned())
        ]
    );
    assert!(
        entry["platforms"][0]["error"]
            .as_str()
            .unwrap()
            .contains("manual")
    );
    let acme = PublisherId::parse("acme").unwrap();
    assert!(
        app.state
            .store
            .list_consent_jobs(&acme, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Again: 200 with the first entry unchanged.
    let again = app
        .call(
            Method::POST,
            path,
            Some(&key),
            Some(json!({"email": "ada@example.com", "reason": "unsubscribed"})),
        )
        .await;
    let same = again.expect_ok(200);
    assert_eq!(same["reason"], "manual");
    assert_eq!(same["createdAt"], entry["createdAt"]);

    // `unsubscribed` is propagated by default: a pending row and a queued job per platform.
    let b = app
        .call(
            Method::POST,
            path,
            Some(&key),
            Some(json!({"email": "bob@example.com", "reason": "unsubscribed"})),
        )
        .await;
    let entry = b.expect_ok(201);
    assert_eq!(
        platforms(entry),
        vec![
            ("iterable".to_owned(), "pending".to_owned()),
            ("keap".to_owned(), "pending".to_owned())
        ]
    );
    let jobs = app.state.store.list_consent_jobs(&acme, 10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        assert_eq!(job.kind, ConsentJobKind::OptOut);
        assert_eq!(job.status, ConsentJobStatus::Queued);
        assert_eq!(job.email.as_deref(), Some("bob@example.com"));
    }

    // The list shows both, newest first, with each platform's progress.
    let list = app.get(path, &key).await;
    let data = list.expect_ok(200);
    let emails: Vec<&str> = data["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, vec!["bob@example.com", "ada@example.com"]);
    assert_eq!(data["nextCursor"], Value::Null);
    let filtered = app.get(&format!("{path}?reason=manual"), &key).await;
    assert_eq!(
        filtered.expect_ok(200)["suppressions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let one = app
        .get(&format!("{path}?email=BOB%40example.com"), &key)
        .await;
    assert_eq!(
        one.expect_ok(200)["suppressions"][0]["email"],
        "bob@example.com"
    );

    // Delete: 204, then 404.
    let del = format!("{path}/bob%40example.com");
    let gone = app.call(Method::DELETE, &del, Some(&key), None).await;
    assert_eq!(gone.status.as_u16(), 204);
    app.call(Method::DELETE, &del, Some(&key), None)
        .await
        .expect_error(404, "NOT_FOUND");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_propagate_setting_is_read_validated_and_applied_to_new_entries() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("acme").await;
    connect(&app, "acme", Platform::Customerio).await;
    let path = "/api/integrations/acme/consent";
    assert_eq!(
        app.get(path, &key).await.expect_ok(200)["propagate"],
        json!(["unsubscribed", "complained"])
    );
    let bad = app
        .call(
            Method::PUT,
            path,
            Some(&key),
            Some(json!({"propagate": ["unsubscribed", "soft_bounce"]})),
        )
        .await;
    bad.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.field(), "propagate[1]");
    app.call(
        Method::PUT,
        path,
        Some(&key),
        Some(json!({"propagate": ["unsubscribed"], "extra": 1})),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR");

    let put = app
        .call(
            Method::PUT,
            path,
            Some(&key),
            Some(json!({"propagate": ["manual", "manual"]})),
        )
        .await;
    assert_eq!(put.expect_ok(200)["propagate"], json!(["manual"]));
    assert_eq!(
        app.get(path, &key).await.expect_ok(200)["propagate"],
        json!(["manual"])
    );
    let added = app
        .call(
            Method::POST,
            "/api/integrations/acme/suppressions",
            Some(&key),
            Some(json!({"email": "ada@example.com"})),
        )
        .await;
    assert_eq!(
        platforms(added.expect_ok(201)),
        vec![("customerio".to_owned(), "pending".to_owned())]
    );
    // `[]` turns propagation off.
    app.call(
        Method::PUT,
        path,
        Some(&key),
        Some(json!({"propagate": []})),
    )
    .await
    .expect_ok(200);
    let added = app
        .call(
            Method::POST,
            "/api/integrations/acme/suppressions",
            Some(&key),
            Some(json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(
        platforms(added.expect_ok(201)),
        vec![("customerio".to_owned(), "skipped".to_owned())]
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn bad_addresses_reasons_fields_and_cursors_are_refused() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("acme").await;
    let path = "/api/integrations/acme/suppressions";
    let huge = format!("{}@example.com", "a".repeat(300));
    for (body, field) in [
        (json!({"email": "not an address"}), "email"),
        (json!({"email": "ada@localhost"}), "email"),
        (json!({"email": huge}), "email"),
        (json!({"email": "a*@example.com"}), "email"),
        (json!({"email": 42}), "email"),
        (json!({}), "email"),
        (
            json!({"email": "ada@example.com", "reason": "soft_bounce"}),
            "reason",
        ),
        (json!({"email": "ada@example.com", "note": "x"}), "body"),
    ] {
        let a = app
            .call(Method::POST, path, Some(&key), Some(body.clone()))
            .await;
        a.expect_error(400, "VALIDATION_ERROR");
        if field != "body" {
            assert_eq!(a.field(), field, "{body}");
        }
    }
    for query in [
        "email=nope",
        "reason=later",
        "limit=0",
        "limit=1001",
        "cursor=abc",
    ] {
        app.get(&format!("{path}?{query}"), &key)
            .await
            .expect_error(400, "VALIDATION_ERROR");
    }
    app.call(
        Method::POST,
        "/api/integrations/acme/erasures",
        Some(&key),
        Some(json!({"email": "x"})),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn another_publishers_key_and_a_publisher_id_in_the_body_are_refused() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, acme) = app.create_key("acme").await;
    let (_, globex) = app.create_key("globex").await;
    for (method, path, body) in [
        (Method::GET, "/api/integrations/acme/suppressions", None),
        (
            Method::POST,
            "/api/integrations/acme/suppressions",
            Some(json!({"email": "ada@example.com"})),
        ),
        (
            Method::DELETE,
            "/api/integrations/acme/suppressions/ada%40example.com",
            None,
        ),
        (Method::GET, "/api/integrations/acme/consent", None),
        (
            Method::PUT,
            "/api/integrations/acme/consent",
            Some(json!({"propagate": []})),
        ),
        (
            Method::POST,
            "/api/integrations/acme/erasures",
            Some(json!({"email": "ada@example.com"})),
        ),
        (Method::GET, "/api/integrations/acme/erasures/era_x", None),
        (Method::GET, "/api/integrations/acme/audit", None),
    ] {
        // The same answer every other publisher route gives for a foreign publisher.
        app.call(method, path, Some(&globex), body.clone())
            .await
            .expect_error(403, "PERMISSION_DENIED");
        app.call(Method::GET, "/api/integrations/acme", Some(&globex), None)
            .await
            .expect_error(403, "PERMISSION_DENIED");
    }
    // A publisher id in the body: another one is refused by the gate, the same one is an
    // unknown field here.
    app.call(
        Method::POST,
        "/api/integrations/acme/suppressions",
        Some(&acme),
        Some(json!({"email": "ada@example.com", "publisherId": "globex"})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");
    let same = app
        .call(
            Method::POST,
            "/api/integrations/acme/suppressions",
            Some(&acme),
            Some(json!({"email": "ada@example.com", "publisherId": "acme"})),
        )
        .await;
    same.expect_error(400, "VALIDATION_ERROR");
    // The admin token may act for any publisher.
    app.call(
        Method::POST,
        "/api/integrations/acme/suppressions",
        Some(ADMIN_TOKEN),
        Some(json!({"email": "ada@example.com"})),
    )
    .await
    .expect_ok(201);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_ledger_is_paged_with_opaque_cursors() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("acme").await;
    let path = "/api/integrations/acme/suppressions";
    for i in 0..5 {
        app.call(
            Method::POST,
            path,
            Some(&key),
            Some(json!({"email": format!("r{i}@example.com")})),
        )
        .await
        .expect_ok(201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let a = app.get(&url, &key).await;
        let data = a.expect_ok(200);
        for s in data["suppressions"].as_array().unwrap() {
            seen.push(s["email"].as_str().unwrap().to_owned());
        }
        match data["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5)
            .rev()
            .map(|i| format!("r{i}@example.com"))
            .collect::<Vec<_>>()
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_erasure_queues_every_connected_platform_deletes_our_copies_and_leaves_a_hash() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("acme").await;
    let (_, globex) = app.create_key("globex").await;
    let iterable = connect(&app, "acme", Platform::Iterable).await;
    connect(&app, "acme", Platform::Customerio).await;
    app.state
        .store
        .upsert_records(
            &iterable,
            "contacts",
            vec![
                NewRecord::from_values(
                    "u1".into(),
                    &json!({"email": "Ada@example.com"}),
                    &json!({"email": "Ada@example.com"}),
                )
                .unwrap(),
            ],
        )
        .await
        .unwrap();
    app.call(
        Method::POST,
        "/api/integrations/acme/suppressions",
        Some(&key),
        Some(json!({"email": "ada@example.com", "reason": "unsubscribed"})),
    )
    .await
    .expect_ok(201);

    let a = app
        .call(
            Method::POST,
            "/api/integrations/acme/erasures",
            Some(&key),
            Some(json!({"email": "ADA@example.com"})),
        )
        .await;
    let erasure = a.expect_ok(202).clone();
    let id = erasure["erasureId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("era_"));
    assert_eq!(erasure["status"], "pending");
    assert_eq!(
        platforms(&erasure),
        vec![
            ("customerio".to_owned(), "pending".to_owned()),
            ("iterable".to_owned(), "pending".to_owned()),
            ("keap".to_owned(), "skipped".to_owned())
        ]
    );
    assert!(!erasure.to_string().contains("ada@"), "{erasure}");
    let acme = PublisherId::parse("acme").unwrap();
    let jobs = app.state.store.list_consent_jobs(&acme, 10).await.unwrap();
    // The suppression's opt-out jobs are superseded; one erase job per connected platform.
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.kind == ConsentJobKind::Erase));
    assert_eq!(
        app.state
            .store
            .count_records(&iterable, "contacts")
            .await
            .unwrap(),
        0
    );

    let path = format!("/api/integrations/acme/erasures/{id}");
    assert_eq!(app.get(&path, &key).await.expect_ok(200)["erasureId"], id);
    app.get("/api/integrations/acme/erasures/era_nope", &key)
        .await
        .expect_error(404, "NOT_FOUND");
    // Another publisher's erasure is not found under its own publisher.
    app.get(&format!("/api/integrations/globex/erasures/{id}"), &globex)
        .await
        .expect_error(404, "NOT_FOUND");

    // The address is reported as erased, with nothing personal; a new suppression of it
    // stores nothing in clear.
    let lookup = app
        .get(
            "/api/integrations/acme/suppressions?email=ada%40example.com",
            &key,
        )
        .await;
    assert_eq!(
        lookup.expect_ok(200)["suppressions"],
        json!([{"erased": true}])
    );
    let again = app
        .call(
            Method::POST,
            "/api/integrations/acme/suppressions",
            Some(&key),
            Some(json!({"email": "ada@example.com"})),
        )
        .await;
    assert_eq!(again.expect_ok(200), &json!({"erased": true}));
    let all = app.get("/api/integrations/acme/suppressions", &key).await;
    assert_eq!(all.expect_ok(200)["suppressions"], json!([]));
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_audit_log_names_who_did_what_newest_first() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (key_id, key) = app.create_key("acme").await;
    app.call(
        Method::POST,
        "/api/integrations/acme/suppressions",
        Some(&key),
        Some(json!({"email": "ada@example.com"})),
    )
    .await
    .expect_ok(201);
    app.call(
        Method::PUT,
        "/api/integrations/acme/consent",
        Some(ADMIN_TOKEN),
        Some(json!({"propagate": ["bounced"]})),
    )
    .await
    .expect_ok(200);
    app.call(
        Method::DELETE,
        "/api/integrations/acme/suppressions/ada%40example.com",
        Some(&key),
        None,
    )
    .await;
    connect(&app, "acme", Platform::Keap).await;
    app.call(
        Method::DELETE,
        "/api/integrations/acme/keap",
        Some(&key),
        None,
    )
    .await
    .expect_ok(200);
    let (second_id, _) = app.create_key("acme").await;
    app.call(
        Method::DELETE,
        &format!("/api/admin/api-keys/{second_id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .expect_ok(200);

    let a = app.get("/api/integrations/acme/audit?limit=3", &key).await;
    let data = a.expect_ok(200).clone();
    let actions = |d: &Value| {
        d["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["principal"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        actions(&data),
        vec![
            ("api_key.revoked".to_owned(), "admin".to_owned()),
            ("api_key.created".to_owned(), "admin".to_owned()),
            ("integration.disconnected".to_owned(), key_id.clone()),
        ]
    );
    assert_eq!(data["entries"][0]["detail"]["keyId"], second_id);
    let next = data["nextCursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/api/integrations/acme/audit?cursor={next}"), &key)
        .await;
    let rest = rest.expect_ok(200);
    assert_eq!(
        actions(rest),
        vec![
            ("suppression.deleted".to_owned(), key_id.clone()),
            ("consent.updated".to_owned(), "admin".to_owned()),
            ("suppression.created".to_owned(), key_id.clone()),
            ("api_key.created".to_owned(), "admin".to_owned()),
        ]
    );
    assert_eq!(
        rest["entries"][1]["detail"]["propagate"],
        json!(["bounced"])
    );
    assert_eq!(rest["nextCursor"], Value::Null);
    app.get("/api/integrations/acme/audit?cursor=su1.5a5a5a5b", &key)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_credential_connect_is_audited_with_its_principal() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(ADMIN_TOKEN),
        Some(
            json!({"publisherId": "acme", "apiKey": sim_iterable::US_SERVER_KEY, "region": "us",
            "config": {"fromEmail": "news@example.com"}}),
        ),
    )
    .await
    .expect_ok(200);
    let a = app.get("/api/integrations/acme/audit", ADMIN_TOKEN).await;
    let entry = &a.expect_ok(200)["entries"][0];
    assert_eq!(entry["action"], "integration.connected");
    assert_eq!(entry["principal"], "admin");
    assert_eq!(entry["detail"], json!({"platform": "iterable"}));
    // No secret reaches the audit log.
    assert!(!a.body.to_string().contains(sim_iterable::US_SERVER_KEY));
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_webhook_suppression_is_done_at_its_source_and_pending_elsewhere() {
    use domain::consent::{PropagationStatus, Reason};
    use sharpsend::consent::ledger::{Recorded, record};
    use store::{SourceKind, SuppressionSource};

    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    for p in Platform::ALL {
        connect(&app, "acme", p).await;
    }
    let acme = PublisherId::parse("acme").unwrap();
    let source = SuppressionSource {
        kind: SourceKind::Webhook,
        platform: Some(Platform::Customerio),
        event_id: Some("evt_1".into()),
        principal: None,
    };
    let recorded = record(
        &app.state,
        &acme,
        "Ada@Example.com",
        Reason::Complained,
        source.clone(),
    )
    .await
    .unwrap();
    let Recorded::New(entry) = recorded else {
        panic!("not new: {recorded:?}");
    };
    let rows: Vec<_> = entry
        .platforms
        .iter()
        .map(|p| (p.platform, p.status, p.note.clone()))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                Platform::Customerio,
                PropagationStatus::Done,
                Some("source".to_owned())
            ),
            (Platform::Iterable, PropagationStatus::Pending, None),
            (Platform::Keap, PropagationStatus::Pending, None),
        ]
    );
    let jobs = app.state.store.list_consent_jobs(&acme, 10).await.unwrap();
    let mut queued: Vec<_> = jobs.iter().map(|j| j.platform).collect();
    queued.sort_by_key(|p| p.as_str());
    assert_eq!(queued, vec![Platform::Iterable, Platform::Keap]);
    // The echo of our own opt-out (the same address again) is the existing entry: nothing new
    // is queued, so nothing loops.
    let echo = record(
        &app.state,
        &acme,
        "ada@example.com",
        Reason::Unsubscribed,
        source.clone(),
    )
    .await
    .unwrap();
    assert!(matches!(echo, Recorded::Existing(_)));
    assert_eq!(
        app.state
            .store
            .list_consent_jobs(&acme, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // The audit names the system, not a caller.
    let audit = app.state.store.list_audit(&acme, 10, None).await.unwrap();
    assert_eq!(audit.entries[0].principal, "system");
    assert_eq!(audit.entries[0].detail["source"]["eventId"], "evt_1");
    // A bad address is a VALIDATION_ERROR naming `email`.
    let bad = record(&app.state, &acme, "nobody", Reason::Bounced, source)
        .await
        .unwrap_err();
    assert_eq!(bad.code(), domain::ErrorCode::ValidationError);
    app.stop().await;
    db.cleanup().await;
}
