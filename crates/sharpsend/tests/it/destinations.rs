//! Issue 19: event destinations. Events pushed, signed per Standard Webhooks (checked with the
//! specification's own Python library), retried on the schedule, resumed after a restart,
//! delivered once by two replicas, and never to an internal address without the operator's
//! setting.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post};
use chrono::Utc;
use domain::Platform;
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::destinations::worker::{SCHEDULE, run_next_at};
use store::{DestinationOwner, OutboundEvent};

use crate::{
    consent_wire::{PUBLISHER, connect, origin},
    helpers::{ADMIN_TOKEN, NO_API_LIMITS, TestApp, fresh_db, random_master_key},
};

const ALLOW_PRIVATE: (&str, &str) = ("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE", "true");

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Inbox = (Arc<Mutex<Vec<Delivery>>>, Arc<AtomicU16>);

/// A destination endpoint on a real socket: records what arrives, answers `status`.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Delivery>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Self {
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(204));
        let state = (got.clone(), status.clone());
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State((got, status)): State<Inbox>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        let h = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        got.lock().unwrap().push(Delivery {
                            id: h("webhook-id"),
                            timestamp: h("webhook-timestamp"),
                            signature: h("webhook-signature"),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let code = status.load(Ordering::SeqCst);
                        (
                            axum::http::StatusCode::from_u16(code).unwrap(),
                            "receiver says hi",
                        )
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, got, status }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` deliveries arrived; answers them and how long it took.
    async fn wait_for(&self, n: usize, within: Duration) -> (Vec<Delivery>, Duration) {
        let start = Instant::now();
        loop {
            let got = self.deliveries();
            if got.len() >= n {
                return (got, start.elapsed());
            }
            assert!(
                start.elapsed() < within,
                "{} of {n} deliveries within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether Python has the Standard Webhooks reference library (`pip install standardwebhooks`),
/// an implementation independent of ours. Without it the checks that use it print a notice and
/// are skipped (our signer is still checked against the specification's example in its unit
/// tests); `SHARPSEND_REQUIRE_STANDARDWEBHOOKS=1` (set by CI, which installs it) makes that a
/// failure instead.
fn python_verifier() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SHARPSEND_REQUIRE_STANDARDWEBHOOKS").is_none(),
            "the independent verifier is missing: pip install standardwebhooks"
        );
        eprintln!(
            "notice: python3 -c 'import standardwebhooks' failed; skipping the independent signature checks (pip install standardwebhooks)"
        );
    }
    found
}

/// Verifies a delivery with the Standard Webhooks reference library for Python.
fn verify_with_standardwebhooks(secret: &str, d: &Delivery) -> Result<(), String> {
    let script = r#"
import os, sys
from standardwebhooks import Webhook
Webhook(os.environ["SECRET"]).verify(sys.stdin.read(), {
    "webhook-id": os.environ["ID"],
    "webhook-timestamp": os.environ["TS"],
    "webhook-signature": os.environ["SIG"],
})
print("verified")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .env("SECRET", secret)
        .env("ID", &d.id)
        .env("TS", &d.timestamp)
        .env("SIG", &d.signature)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(d.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("verified") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn register(app: &TestApp, body: Value) -> Value {
    app.call(
        Method::POST,
        &format!("/api/integrations/{PUBLISHER}/destinations"),
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
    .expect_ok(201)
    .clone()
}

async fn messages(app: &TestApp, destination: &str, query: &str) -> Value {
    app.get(
        &format!("/api/integrations/{PUBLISHER}/destinations/{destination}/messages{query}"),
        ADMIN_TOKEN,
    )
    .await
    .expect_ok(200)
    .clone()
}

fn own_event(id: &str, reader: &str) -> OutboundEvent {
    OutboundEvent {
        event_id: id.into(),
        publisher_id: PUBLISHER.into(),
        event_type: "suppression.created".into(),
        platform: None,
        reader: Some(reader.into()),
        occurred_at: Utc::now(),
        data: json!({"email": reader, "eventId": id}),
    }
}

#[tokio::test]
async fn a_signed_customerio_webhook_reaches_a_destination_signed_within_five_seconds() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_with(
        &db,
        &Default::default(),
        &random_master_key(),
        &[ALLOW_PRIVATE],
    )
    .await;
    let receiver = Receiver::start().await;
    let cio = connect(&app, Platform::Customerio).await;
    let created = register(
        &app,
        json!({"url": receiver.url(), "eventTypes": ["email.*"], "description": "backend"}),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["eventTypes"], json!(["email.*"]));

    // Customer.io signs its reporting webhook with the key given at connect.
    let track =
        sim_core::SimClient::new(origin(&sandbox, "customerio", sim_customerio::ENV_TRACK_US));
    let started = Instant::now();
    let fired = track
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": cio["webhookUrl"], "event": "email_opened", "workspace": "us",
                "signingKey": sim_customerio::US.webhook_signing_key, "wait": true}),
        )
        .await
        .unwrap();
    assert!(fired.to_string().contains("200"), "{fired}");
    let (got, _) = receiver.wait_for(1, Duration::from_secs(5)).await;
    let latency = started.elapsed();
    assert!(latency < Duration::from_secs(5), "{latency:?}");
    let d = &got[0];
    if python_verifier() {
        verify_with_standardwebhooks(&secret, d).expect("a valid Standard Webhooks signature");
        // A tampered body does not verify (the check can fail).
        let tampered = Delivery {
            body: d.body.replace("email.opened", "email.clicked"),
            ..d.clone()
        };
        assert!(verify_with_standardwebhooks(&secret, &tampered).is_err());
    }
    let body = d.json();
    assert_eq!(body["type"], "email.opened");
    assert_eq!(body["data"]["platform"], "customerio");
    assert_eq!(body["data"]["publisherId"], PUBLISHER);
    assert!(d.id.starts_with("msg_"));

    // Visible with its attempt.
    let id = created["destinationId"].as_str().unwrap();
    // The attempt is recorded once the answer is in.
    let listed = loop {
        let listed = messages(&app, id, "").await;
        if listed["messages"][0]["status"] != "pending" {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let m = &listed["messages"][0];
    assert_eq!(m["messageId"], d.id.as_str());
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["attempts"][0]["statusCode"], 204);
    assert_eq!(m["eventType"], "email.opened");
    // Filters hold: a customer event (not email.*) is not delivered.
    track
        .post(
            "/_sim/webhooks/fire",
            &json!({"url": cio["webhookUrl"], "event": "customer_subscribed", "workspace": "us",
                "signingKey": sim_customerio::US.webhook_signing_key, "wait": true}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.deliveries().len(), 1);
}

#[tokio::test]
async fn a_failing_destination_gets_the_retry_schedule_then_fails() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(&db, &random_master_key(), &[ALLOW_PRIVATE]).await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let created = register(&app, json!({"url": receiver.url()})).await;
    let id = created["destinationId"].as_str().unwrap().to_owned();

    sharpsend::destinations::events::publish(&app.state, own_event("e1", "r@example.com")).await;
    // The first attempt goes at once (the server's own worker).
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let mut last_at = Utc::now();
    for (i, wait) in SCHEDULE.iter().enumerate() {
        // Wait until the previous attempt is recorded, then read when the next is due.
        let m = loop {
            let listed = messages(&app, &id, "").await;
            let m = listed["messages"][0].clone();
            if m["attempts"].as_array().unwrap().len() == i + 1 {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(m["status"], "pending", "after attempt {}", i + 1);
        assert_eq!(m["attempts"][i]["statusCode"], 500);
        assert_eq!(m["attempts"][i]["response"], "receiver says hi");
        let at: chrono::DateTime<Utc> = m["attempts"][i]["at"].as_str().unwrap().parse().unwrap();
        let due: chrono::DateTime<Utc> = m["nextAttemptAt"].as_str().unwrap().parse().unwrap();
        let gap = (due - at).to_std().unwrap().as_secs_f64();
        let want = wait.as_secs_f64();
        assert!(
            gap >= want * 0.9 - 0.01 && gap <= want * 1.1 + 0.01,
            "wait after attempt {}: {gap} s, schedule {want} s",
            i + 1
        );
        // Not before it is due; then it goes.
        assert!(
            !run_next_at(
                &app.state,
                "test",
                due - chrono::Duration::milliseconds(100)
            )
            .await
            .unwrap()
        );
        assert!(run_next_at(&app.state, "test", due).await.unwrap());
        last_at = due;
    }
    let listed = messages(&app, &id, "?status=failed").await;
    let m = &listed["messages"][0];
    assert_eq!(m["status"], "failed");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 8);
    assert!(m["nextAttemptAt"].is_null());
    assert_eq!(receiver.deliveries().len(), 8);
    // Every attempt of one message carries the same webhook-id.
    let ids: HashSet<_> = receiver.deliveries().into_iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), 1);
    assert!(
        !run_next_at(&app.state, "test", last_at + chrono::Duration::days(1))
            .await
            .unwrap()
    );

    // A manual retry starts a new schedule; this time the receiver is back.
    receiver.status.store(200, Ordering::SeqCst);
    let message_id = m["messageId"].as_str().unwrap();
    let retried = app
        .call(
            Method::POST,
            &format!("/api/integrations/{PUBLISHER}/destinations/{id}/messages/{message_id}/retry"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(retried.expect_ok(202)["status"], "pending");
    receiver.wait_for(9, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_killed_server_resumes_pending_deliveries_after_restart() {
    let db = fresh_db().await;
    let key = random_master_key();
    let receiver = Receiver::start().await;
    let first = TestApp::spawn_with(&db, &key, &[ALLOW_PRIVATE]).await;
    let created = register(&first, json!({"url": receiver.url()})).await;
    let id = created["destinationId"].as_str().unwrap().to_owned();
    first.stop().await;

    // While no server runs: two events stored, and one claimed by a worker that then died
    // mid-attempt (its lease still holds).
    let store = db.open().await.unwrap();
    let now = Utc::now();
    store
        .publish_events(
            &[
                own_event("e1", "a@example.com"),
                own_event("e2", "b@example.com"),
            ],
            now,
        )
        .await
        .unwrap();
    let orphan = store
        .claim_message("dead-worker", now, now + chrono::Duration::seconds(60), 8)
        .await
        .unwrap()
        .unwrap();

    let second = TestApp::spawn_with(&db, &key, &[ALLOW_PRIVATE]).await;
    let (got, _) = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_ne!(got[0].id, orphan.id, "the orphan waits for its lease");
    // Once the dead worker's lease has run out, the orphan goes too.
    assert!(
        run_next_at(&second.state, "test", now + chrono::Duration::seconds(61))
            .await
            .unwrap()
    );
    let (got, _) = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].id, orphan.id);
    let listed = messages(&second, &id, "?status=succeeded").await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 2);
    second.stop().await;
}

#[tokio::test]
async fn two_replicas_deliver_each_message_once_and_each_readers_in_order() {
    let db = fresh_db().await;
    let key = random_master_key();
    let receiver = Receiver::start().await;
    let a = TestApp::spawn_with(&db, &key, &[ALLOW_PRIVATE]).await;
    let b = TestApp::spawn_with(&db, &key, &[ALLOW_PRIVATE]).await;
    register(&a, json!({"url": receiver.url()})).await;

    // 60 events for 6 readers, published through both replicas.
    let events: Vec<_> = (0..60)
        .map(|i| own_event(&format!("e{i:02}"), &format!("r{}@example.com", i % 6)))
        .collect();
    for (i, chunk) in events.chunks(10).enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        app.state
            .store
            .publish_events(chunk, Utc::now())
            .await
            .unwrap();
        app.state.outbound.wake();
    }
    let (_, _) = receiver.wait_for(60, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.deliveries();
    let ids: HashSet<_> = got.iter().map(|d| d.id.clone()).collect();
    assert_eq!(got.len(), 60, "each message once: {} arrived", got.len());
    assert_eq!(ids.len(), 60);
    // Per reader, in the order published (event ids e00…e59 sort in that order).
    for r in 0..6 {
        let reader = format!("r{r}@example.com");
        let arrived: Vec<String> = got
            .iter()
            .map(Delivery::json)
            .filter(|v| v["data"]["email"] == reader.as_str())
            .map(|v| v["data"]["eventId"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = arrived.clone();
        sorted.sort();
        assert_eq!(arrived.len(), 10);
        assert_eq!(arrived, sorted, "reader {reader} out of order");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn internal_addresses_are_refused_without_the_allow_setting() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let path = format!("/api/integrations/{PUBLISHER}/destinations");
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.8/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let r = app
            .call(
                Method::POST,
                &path,
                Some(ADMIN_TOKEN),
                Some(json!({"url": url})),
            )
            .await;
        r.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(r.field(), "url", "{url}: {}", r.body);
    }
    assert!(
        app.get(&path, ADMIN_TOKEN).await.expect_ok(200)["destinations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A name that resolves to loopback at delivery time (DNS rebinding: it was public when
    // registered) is refused at connection time.
    let receiver = Receiver::start().await;
    let store = &app.state.store;
    let secret = app
        .state
        .vault
        .seal(
            ::vault::Aad {
                integration_id: "dst_rebound",
                field: "signingSecret",
            },
            &sharpsend::destinations::signing::new_secret(),
        )
        .unwrap();
    store
        .create_destination(store::NewDestination {
            id: "dst_rebound".into(),
            owner: DestinationOwner::Publisher(domain::PublisherId::parse(PUBLISHER).unwrap()),
            url: format!("https://localhost:{}/hook", receiver.addr.port()),
            description: None,
            event_types: Vec::new(),
            platforms: Vec::new(),
            secret_key_id: secret.key_id.0,
            secret: secret.bytes,
            now: Utc::now(),
        })
        .await
        .unwrap();
    sharpsend::destinations::events::publish(&app.state, own_event("e1", "r@example.com")).await;
    let m = loop {
        let listed = messages(&app, "dst_rebound", "").await;
        let m = listed["messages"][0].clone();
        if !m["attempts"].as_array().unwrap().is_empty() {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(m["attempts"][0]["statusCode"].is_null());
    let error = m["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("public"), "{error}");
    assert!(receiver.deliveries().is_empty());
}

#[tokio::test]
async fn destinations_are_a_publishers_own_and_their_secret_is_shown_once() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &random_master_key(),
        &[ALLOW_PRIVATE, NO_API_LIMITS[0]],
    )
    .await;
    let (_, key_a) = app.create_key(PUBLISHER).await;
    let (_, key_b) = app.create_key("pub-other").await;
    let receiver = Receiver::start().await;
    let base = format!("/api/integrations/{PUBLISHER}/destinations");
    let created = app
        .call(
            Method::POST,
            &base,
            Some(&key_a),
            Some(json!({"url": receiver.url(), "platforms": ["customerio", "customerio"]})),
        )
        .await
        .expect_ok(201)
        .clone();
    let id = created["destinationId"].as_str().unwrap().to_owned();
    assert_eq!(created["platforms"], json!(["customerio"]));
    assert_eq!(created["publisherId"], PUBLISHER);
    let one = format!("{base}/{id}");

    // Never shown again.
    let got = app.get(&one, &key_a).await.expect_ok(200).clone();
    assert!(got.get("secret").is_none(), "{got}");
    assert!(!got.to_string().contains("whsec_"));

    // Another publisher: 403 on this publisher's path, 404 for the id under its own.
    app.get(&one, &key_b)
        .await
        .expect_error(403, "PERMISSION_DENIED");
    app.get(
        &format!("/api/integrations/pub-other/destinations/{id}"),
        &key_b,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    app.call(
        Method::DELETE,
        &format!("/api/integrations/pub-other/destinations/{id}"),
        Some(&key_b),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    // A publisher key cannot register operator-wide destinations.
    app.call(
        Method::POST,
        "/api/admin/destinations",
        Some(&key_a),
        Some(json!({"url": receiver.url()})),
    )
    .await
    .expect_error(403, "PERMISSION_DENIED");

    // Bad bodies change nothing.
    for (body, field) in [
        (json!({"url": receiver.url(), "extra": 1}), ""),
        (
            json!({"url": receiver.url(), "eventTypes": ["Email Opened"]}),
            "eventTypes",
        ),
        (
            json!({"url": receiver.url(), "platforms": ["mailchimp"]}),
            "",
        ),
        (
            json!({"url": format!("https://e.com/{}", "a".repeat(3000))}),
            "url",
        ),
        (
            json!({"url": receiver.url(), "description": "d".repeat(501)}),
            "description",
        ),
        (json!({}), ""),
    ] {
        let r = app
            .call(Method::POST, &base, Some(&key_a), Some(body))
            .await;
        r.expect_error(400, "VALIDATION_ERROR");
        if !field.is_empty() {
            assert_eq!(r.field(), field, "{}", r.body);
        }
    }
    let listed = app.get(&base, &key_a).await.expect_ok(200).clone();
    assert_eq!(listed["destinations"].as_array().unwrap().len(), 1);

    // PATCH: filters and enabled; an empty description clears it.
    let patched = app
        .call(
            Method::PATCH,
            &one,
            Some(&key_a),
            Some(
                json!({"eventTypes": ["suppression.created"], "platforms": [],
                "description": "", "enabled": false}),
            ),
        )
        .await
        .expect_ok(200)
        .clone();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["eventTypes"], json!(["suppression.created"]));
    assert!(patched["description"].is_null());
    app.call(
        Method::PATCH,
        &one,
        Some(&key_a),
        Some(json!({"url": "http://[::1"})),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR");

    // Replay: `since` must be a time.
    app.call(
        Method::POST,
        &format!("{one}/replay"),
        Some(&key_a),
        Some(json!({"since": "yesterday"})),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR");
    app.get(&format!("{one}/messages?status=lost"), &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    app.get(&format!("{one}/messages?cursor=zz"), &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");

    app.call(Method::DELETE, &one, Some(&key_a), None).await;
    app.get(&one, &key_a).await.expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_and_replay_resends() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(&db, &random_master_key(), &[ALLOW_PRIVATE]).await;
    let receiver = Receiver::start().await;
    let created = register(&app, json!({"url": receiver.url()})).await;
    let id = created["destinationId"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();
    let rotated = app
        .call(
            Method::POST,
            &format!("/api/integrations/{PUBLISHER}/destinations/{id}/rotate-secret"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await
        .expect_ok(200)
        .clone();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    let until: chrono::DateTime<Utc> = rotated["previousSecretExpiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let hours = (until - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");

    // A suppression through the API is one of our own events.
    app.call(
        Method::POST,
        &format!("/api/integrations/{PUBLISHER}/suppressions"),
        Some(ADMIN_TOKEN),
        Some(json!({"email": "Gone@Example.com", "reason": "unsubscribed"})),
    )
    .await
    .expect_ok(201);
    let (got, _) = receiver.wait_for(1, Duration::from_secs(5)).await;
    let d = &got[0];
    assert_eq!(d.json()["type"], "suppression.created");
    assert_eq!(d.json()["data"]["email"], "gone@example.com");
    assert_eq!(d.signature.split(' ').count(), 2, "{}", d.signature);
    if python_verifier() {
        verify_with_standardwebhooks(&new, d).expect("the new secret verifies");
        verify_with_standardwebhooks(&old, d).expect("the old secret still verifies");
        assert!(verify_with_standardwebhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", d).is_err());
    }

    // Replay from before it: sent again, same webhook-id.
    let replayed = app
        .call(
            Method::POST,
            &format!("/api/integrations/{PUBLISHER}/destinations/{id}/replay"),
            Some(ADMIN_TOKEN),
            Some(json!({"since": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339()})),
        )
        .await
        .expect_ok(202)
        .clone();
    assert_eq!(replayed["queued"], 1);
    let (got, _) = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].id, got[0].id);
}

#[tokio::test]
async fn an_operator_destination_receives_every_publishers_events() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(&db, &random_master_key(), &[ALLOW_PRIVATE]).await;
    let receiver = Receiver::start().await;
    let created = app
        .call(
            Method::POST,
            "/api/admin/destinations",
            Some(ADMIN_TOKEN),
            Some(json!({"url": receiver.url(), "eventTypes": ["suppression.created"]})),
        )
        .await
        .expect_ok(201)
        .clone();
    assert!(created["publisherId"].is_null());
    let id = created["destinationId"].as_str().unwrap();
    for publisher in ["pub-one", "pub-two"] {
        app.call(
            Method::POST,
            &format!("/api/integrations/{publisher}/suppressions"),
            Some(ADMIN_TOKEN),
            Some(json!({"email": "x@example.com"})),
        )
        .await
        .expect_ok(201);
    }
    let (got, _) = receiver.wait_for(2, Duration::from_secs(5)).await;
    let publishers: HashSet<_> = got
        .iter()
        .map(|d| d.json()["data"]["publisherId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        publishers,
        HashSet::from(["pub-one".into(), "pub-two".into()])
    );
    // Not a publisher's: its own path does not find it.
    app.get(
        &format!("/api/integrations/pub-one/destinations/{id}"),
        ADMIN_TOKEN,
    )
    .await
    .expect_error(404, "NOT_FOUND");
    let listed = app
        .get(
            &format!("/api/admin/destinations/{id}/messages"),
            ADMIN_TOKEN,
        )
        .await
        .expect_ok(200)
        .clone();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 2);
}
