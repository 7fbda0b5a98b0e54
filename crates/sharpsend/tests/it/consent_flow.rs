//! Issue 17 end to end: an unsubscribe seen on one platform reaches every other connected
//! platform through the ledger's durable jobs (the server's own consent worker runs them), once
//! each and without a loop; an API suppression does the same; an erasure removes the reader
//! from all three simulators and from our own records; a failing platform call is retried and
//! ends `failed` with the reason.

use std::time::{Duration, Instant};

use domain::Platform;
use reqwest::Method;
use serde_json::{Value, json};
use sim_core::{Fault, SimClient};

use crate::{
    consent_wire::{PUBLISHER, connect, count, iterable_user, origin},
    helpers::{ADMIN_TOKEN, TestApp, fresh_db},
};

struct World {
    app: TestApp,
    iterable: SimClient,
    iterable_origin: String,
    track: SimClient,
    track_origin: String,
    keap: SimClient,
    keap_origin: String,
    /// Each integration's connect answer.
    connected: Vec<(Platform, Value)>,
    _sandbox: sharpsend::sandbox::Sandbox,
}

/// The three platforms connected for [`PUBLISHER`], each simulator's webhooks pointed at us.
async fn world(db: &store::testing::TestDb) -> World {
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(db).await;
    let iterable_origin = origin(&sandbox, "iterable", sim_iterable::ENV_US);
    let track_origin = origin(&sandbox, "customerio", sim_customerio::ENV_TRACK_US);
    let keap_origin = origin(&sandbox, "keap", sim_keap::API_URL_ENV);
    let mut connected = Vec::new();
    for p in [Platform::Iterable, Platform::Customerio, Platform::Keap] {
        connected.push((p, connect(&app, p).await));
    }
    let w = World {
        iterable: SimClient::new(&iterable_origin),
        track: SimClient::new(&track_origin),
        keap: SimClient::new(&keap_origin),
        app,
        iterable_origin,
        track_origin,
        keap_origin,
        connected,
        _sandbox: sandbox,
    };
    // Iterable's system webhook (Basic auth with the secret the connect showed once) and
    // Customer.io's reporting webhook (signed with the key given at connect) come to us, so
    // the echoes of our own writes arrive as they would in production.
    let it = w.integration(Platform::Iterable);
    w.iterable
        .post(
            "/_sim/webhooks",
            &json!({"endpoint": it["webhookUrl"], "authType": "Basic",
                "authToken": it["webhookSecret"]}),
        )
        .await
        .unwrap();
    let cio = w.integration(Platform::Customerio);
    w.track
        .post(
            "/_sim/webhooks/reporting",
            &json!({"workspace": "us", "url": cio["webhookUrl"]}),
        )
        .await
        .unwrap();
    w
}

impl World {
    fn integration(&self, p: Platform) -> &Value {
        &self.connected.iter().find(|(q, _)| *q == p).unwrap().1
    }

    /// The reader exists on all three platforms.
    async fn reader(&self, email: &str) {
        let http = reqwest::Client::new();
        iterable_user(&http, &self.iterable_origin, email, json!([])).await;
        let cio = sim_customerio::US;
        let r = http
            .put(format!("{}/api/v1/customers/{email}", self.track_origin))
            .basic_auth(cio.site_id, Some(cio.tracking_key))
            .json(&json!({"email": email, "first_name": "Ada"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = http
            .post(format!("{}/crm/rest/v2/contacts", self.keap_origin))
            .bearer_auth(sim_keap::ACCESS_TOKEN)
            .json(&json!({"given_name": "Ada", "email_addresses": [
                {"email": email, "field": "EMAIL1", "opt_in_reason": "form"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    async fn suppression(&self, email: &str) -> Value {
        let a = self
            .app
            .get(
                &format!("/api/integrations/{PUBLISHER}/suppressions?email={email}"),
                ADMIN_TOKEN,
            )
            .await;
        a.expect_ok(200)["suppressions"]
            .as_array()
            .and_then(|s| s.first().cloned())
            .unwrap_or(Value::Null)
    }

    /// Waits (at most `limit`) until every platform row of the address's entry is settled
    /// (`done`, `failed` or `skipped`); answers the entry.
    async fn settled(&self, email: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let s = self.suppression(email).await;
            let rows = s["platforms"].as_array().cloned().unwrap_or_default();
            if rows.len() == 3 && rows.iter().all(|r| r["status"] != "pending") {
                return s;
            }
            assert!(
                started.elapsed() < limit,
                "not settled within {limit:?}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn status_of(entry: &Value, platform: &str) -> String {
    entry["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["platform"] == platform)
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_customerio_unsubscribe_reaches_iterable_and_keap_once_each_without_a_loop() {
    let db = fresh_db().await;
    let w = world(&db).await;
    let email = "reader@example.com";
    w.reader(email).await;
    let cio_puts_before = count(&w.track, "PUT", "/api/v1/customers/").await;

    // The reader unsubscribes in Customer.io: its signed reporting webhook reaches us.
    let cio = sim_customerio::US;
    let r = reqwest::Client::new()
        .put(format!("{}/api/v1/customers/{email}", w.track_origin))
        .basic_auth(cio.site_id, Some(cio.tracking_key))
        .json(&json!({"unsubscribed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let entry = w.settled(email, Duration::from_secs(60)).await;
    assert_eq!(entry["reason"], "unsubscribed");
    assert_eq!(entry["source"]["kind"], "webhook");
    assert_eq!(entry["source"]["platform"], "customerio");
    assert_eq!(status_of(&entry, "customerio"), "done", "{entry}");
    assert_eq!(status_of(&entry, "iterable"), "done", "{entry}");
    assert_eq!(status_of(&entry, "keap"), "done", "{entry}");

    // Iterable holds it on both marketing email channels; Keap's address is opted out.
    let it = w
        .iterable
        .get(&format!("/_sim/consent?email={email}"))
        .await
        .unwrap();
    assert_eq!(it["unsubscribedChannelIds"], json!([41001, 41007]), "{it}");
    let keap = w
        .keap
        .get(&format!("/_sim/consent?email={email}"))
        .await
        .unwrap();
    assert_eq!(keap["optedIn"], false, "{keap}");

    // Give echoes time to come back (Iterable's emailUnSubscribe of our own DELETEs), then
    // count: one DELETE per channel, one Keap PATCH, nothing written back to Customer.io.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let echoed = w
        .app
        .get(
            &format!("/api/integrations/{PUBLISHER}/events?type=email.unsubscribed"),
            ADMIN_TOKEN,
        )
        .await;
    let platforms: Vec<_> = echoed.expect_ok(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["platform"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        platforms.iter().any(|p| p == "iterable"),
        "Iterable's echo arrived: {platforms:?}"
    );
    assert_eq!(count(&w.iterable, "DELETE", "/api/subscriptions/").await, 2);
    assert_eq!(
        count(&w.keap, "PATCH", "/crm/rest/v2/emailAddresses/").await,
        1
    );
    assert_eq!(
        count(&w.track, "PUT", "/api/v1/customers/").await,
        cio_puts_before + 1,
        "only the reader's own unsubscribe reached Customer.io"
    );
    let all = w
        .app
        .get(
            &format!("/api/integrations/{PUBLISHER}/suppressions"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(
        all.expect_ok(200)["suppressions"].as_array().unwrap().len(),
        1
    );

    w.app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_api_suppression_reaches_every_platform_and_an_erasure_removes_the_reader() {
    let db = fresh_db().await;
    let w = world(&db).await;
    let email = "api-reader@example.com";
    w.reader(email).await;

    let r = w
        .app
        .call(
            Method::POST,
            &format!("/api/integrations/{PUBLISHER}/suppressions"),
            Some(ADMIN_TOKEN),
            Some(json!({"email": email, "reason": "unsubscribed"})),
        )
        .await;
    r.expect_ok(201);
    let entry = w.settled(email, Duration::from_secs(60)).await;
    for p in ["iterable", "customerio", "keap"] {
        assert_eq!(status_of(&entry, p), "done", "{p}: {entry}");
    }
    let cio = w
        .track
        .get(&format!("/_sim/consent?workspace=us&email={email}"))
        .await
        .unwrap();
    assert_eq!(cio["unsubscribed"], true, "{cio}");

    // Erasure: every platform forgets the reader, and so do we.
    let r = w
        .app
        .call(
            Method::POST,
            &format!("/api/integrations/{PUBLISHER}/erasures"),
            Some(ADMIN_TOKEN),
            Some(json!({"email": email})),
        )
        .await;
    let id = r.expect_ok(202)["erasureId"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let erasure = loop {
        let e = w
            .app
            .get(
                &format!("/api/integrations/{PUBLISHER}/erasures/{id}"),
                ADMIN_TOKEN,
            )
            .await;
        let e = e.expect_ok(200).clone();
        if e["status"] != "pending" {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(erasure["status"], "done", "{erasure}");
    assert!(!erasure.to_string().contains(email), "{erasure}");
    let it = w
        .iterable
        .get(&format!("/_sim/consent?email={email}"))
        .await
        .unwrap();
    assert_eq!(
        (it["forgotten"].clone(), it["exists"].clone()),
        (json!(true), json!(false))
    );
    let cio = w
        .track
        .get(&format!("/_sim/consent?workspace=us&email={email}"))
        .await
        .unwrap();
    assert_eq!(
        (cio["exists"].clone(), cio["suppressed"].clone()),
        (json!(false), json!(true))
    );
    let keap = w
        .keap
        .get(&format!("/_sim/consent?email={email}"))
        .await
        .unwrap();
    assert_eq!(keap["contacts"], json!([]), "{keap}");
    // Our ledger keeps only the salted hash: the address reads as erased.
    let entry = w.suppression(email).await;
    assert_eq!(entry["erased"], true, "{entry}");
    assert!(!entry.to_string().contains("unsubscribed"), "{entry}");

    w.app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_failing_platform_is_retried_then_failed_with_the_reason() {
    let db = fresh_db().await;
    let w = world(&db).await;
    let email = "flaky@example.com";
    w.reader(email).await;
    // Keap's address status answers 503 every time.
    w.keap
        .inject(&Fault::status("/crm/rest/v2/emailAddresses/", 503))
        .await
        .unwrap();
    w.app
        .call(
            Method::POST,
            &format!("/api/integrations/{PUBLISHER}/suppressions"),
            Some(ADMIN_TOKEN),
            Some(json!({"email": email, "reason": "unsubscribed"})),
        )
        .await
        .expect_ok(201);
    // The server's worker runs the first attempt; a test clock a day ahead runs the retries
    // without waiting out their backoff.
    let started = Instant::now();
    let entry = loop {
        let ahead = chrono::Utc::now() + chrono::Duration::days(1);
        sharpsend::consent::worker::run_next_at(&w.app.state, "test-clock", ahead)
            .await
            .unwrap();
        let e = w.suppression(email).await;
        if status_of(&e, "keap") == "failed" {
            break e;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let keap = entry["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["platform"] == "keap")
        .unwrap()
        .clone();
    assert!(
        keap["error"]
            .as_str()
            .unwrap_or_default()
            .contains("CONNECTION_FAILED")
            || keap["error"].as_str().unwrap_or_default().contains("503"),
        "{keap}"
    );
    // Six runs in all, each reaching Keap (after the connector's own quick retries).
    let patches = count(&w.keap, "PATCH", "/crm/rest/v2/emailAddresses/").await;
    assert!(
        patches >= sharpsend::consent::worker::MAX_ATTEMPTS as usize,
        "{patches}"
    );
    // The other platforms were not held up by Keap.
    assert_eq!(status_of(&entry, "iterable"), "done", "{entry}");
    assert_eq!(status_of(&entry, "customerio"), "done", "{entry}");

    w.app.stop().await;
    db.cleanup().await;
}

/// Keap sends no unsubscribe webhook: an opt-out made in Keap arrives as the `contact.edit` hook
/// of each contact holding the address, whose re-read shows the new status; the ledger records
/// it with Keap as the source and pushes it to the other platforms.
#[tokio::test]
async fn a_keap_opt_out_arrives_by_its_contact_hook_and_reaches_the_others() {
    let db = fresh_db().await;
    let w = world(&db).await;
    let email = "keap-reader@example.com";
    w.reader(email).await;

    // The reader opts out in Keap (here: Keap's own API, as its unsubscribe link would).
    let r = reqwest::Client::new()
        .patch(format!(
            "{}/crm/rest/v2/emailAddresses/{email}/status",
            w.keap_origin
        ))
        .bearer_auth(sim_keap::ACCESS_TOKEN)
        .json(&json!({"opted_in": false, "reason": "unsubscribe link"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let entry = w.settled(email, Duration::from_secs(60)).await;
    assert_eq!(entry["reason"], "unsubscribed", "{entry}");
    assert_eq!(entry["source"]["platform"], "keap", "{entry}");
    assert_eq!(status_of(&entry, "keap"), "done", "{entry}");
    assert_eq!(status_of(&entry, "iterable"), "done", "{entry}");
    assert_eq!(status_of(&entry, "customerio"), "done", "{entry}");
    let cio = w
        .track
        .get(&format!("/_sim/consent?workspace=us&email={email}"))
        .await
        .unwrap();
    assert_eq!(cio["unsubscribed"], true, "{cio}");
    // Nothing was written back to Keap: its own opt-out was the only PATCH.
    assert_eq!(
        count(&w.keap, "PATCH", "/crm/rest/v2/emailAddresses/").await,
        1
    );

    w.app.stop().await;
    db.cleanup().await;
}
