//! Webhooks we receive (CONTRACT §8) and the events API, through the real server and the
//! platform simulators.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::sandbox::Sandbox;
use sim_core::SimClient;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, fresh_db};

fn sim(sandbox: &Sandbox, env: &str) -> SimClient {
    let origin = sandbox
        .upstream_overrides()
        .into_iter()
        .find(|(k, _)| *k == env)
        .map(|(_, v)| v)
        .expect("simulator origin");
    SimClient::new(origin)
}

async fn post(app: &TestApp, path: &str, body: Value) -> Answer {
    app.call(Method::POST, path, Some(ADMIN_TOKEN), Some(body))
        .await
}

/// POSTs raw bytes to a webhook URL with headers.
async fn deliver(app: &TestApp, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut req = app
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    TestApp::answer(req.send().await.unwrap()).await
}

async fn events(app: &TestApp, publisher: &str, query: &str, token: &str) -> Answer {
    app.get(
        &format!("/api/integrations/{publisher}/events{query}"),
        token,
    )
    .await
}

async fn connect_iterable(app: &TestApp, publisher: &str, extra: Value) -> Value {
    let mut body = json!({"publisherId": publisher, "apiKey": sim_iterable::US_SERVER_KEY, "region": "us",
        "config": {"fromEmail": "news@example.com", "replyTo": "editor@example.com"}});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    post(app, "/api/integrations/iterable/connect", body)
        .await
        .expect_ok(200)
        .clone()
}

#[tokio::test]
async fn iterable_system_webhooks_secret_check_dedupe_and_one_time_reveal() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let it = sim(&sandbox, sim_iterable::ENV_US);

    let d = connect_iterable(&app, "pub-a", json!({})).await;
    let secret = d["webhookSecret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "32 bytes, URL-safe base64");
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(
        d["credentials"]["webhookSecret"],
        format!("…{}", &secret[39..])
    );
    let url = d["webhookUrl"].as_str().unwrap().to_owned();
    assert!(url.contains("/webhooks/iterable/"));
    // Never again in clear: not in the list, not on a reconnect (which keeps the secret).
    let listed = app.get("/api/integrations/pub-a", ADMIN_TOKEN).await;
    assert!(!listed.body.to_string().contains(&secret));
    let again = connect_iterable(&app, "pub-a", json!({})).await;
    assert!(again.get("webhookSecret").is_none(), "{again}");
    assert_eq!(again["replaced"], true);
    assert_eq!(again["webhookUrl"], url.as_str());

    // Iterable (the simulator) delivers with Basic auth = the secret.
    let fields = json!({"campaignId": 1001, "messageId": "m-1", "templateId": 7,
        "createdAt": "2024-01-01 12:00:00 +00:00"});
    let fire = |auth_type: &str, token: &str, name: &str| {
        json!({"url": url, "authType": auth_type, "authToken": token, "eventName": name,
            "email": "r@example.com", "dataFields": fields, "retryDelaysMs": []})
    };
    let records = it
        .post("/_sim/webhooks/fire", &fire("Basic", &secret, "emailOpen"))
        .await
        .unwrap();
    assert_eq!(records[0]["status"], 200, "{records}");
    assert_eq!(records[0]["delivered"], true, "{records}");
    // The same event again (a retry): stored once.
    it.post("/_sim/webhooks/fire", &fire("OAuth2", &secret, "emailOpen"))
        .await
        .unwrap();
    // Wrong token through Iterable: rejected, nothing stored.
    let refused = it
        .post(
            "/_sim/webhooks/fire",
            &fire("Basic", "not-the-secret", "emailClick"),
        )
        .await
        .unwrap();
    assert_eq!(refused[0]["status"], 401, "{refused}");

    let body = json!({"email": "r@example.com", "eventName": "emailClick", "dataFields": fields})
        .to_string();
    // Missing, wrong: 401 in the envelope.
    deliver(&app, &url, &[], body.as_bytes())
        .await
        .expect_error(401, "UNAUTHORIZED");
    deliver(
        &app,
        &url,
        &[("x-sharpsend-webhook-secret", "nope")],
        body.as_bytes(),
    )
    .await
    .expect_error(401, "UNAUTHORIZED");
    deliver(
        &app,
        &url,
        &[("authorization", "Basic d3Jvbmc6d3Jvbmc=")],
        body.as_bytes(),
    )
    .await
    .expect_error(401, "UNAUTHORIZED");
    // The custom header works.
    let ok = deliver(
        &app,
        &url,
        &[("X-SharpSend-Webhook-Secret", &secret)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(ok.expect_ok(200)["received"], 1);
    let dup = deliver(
        &app,
        &url,
        &[("X-SharpSend-Webhook-Secret", &secret)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(dup.expect_ok(200)["duplicates"], 1);

    let list = events(&app, "pub-a", "", ADMIN_TOKEN).await;
    let evs = list.expect_ok(200)["events"].as_array().unwrap().clone();
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["email.clicked", "email.opened"], "{evs:?}");
    let open = &evs[1];
    assert_eq!(open["platform"], "iterable");
    assert_eq!(open["email"], "r@example.com");
    assert_eq!(open["campaignId"], "1001");
    assert_eq!(open["occurredAt"], "2024-01-01T12:00:00Z");
    assert!(open["id"].as_str().unwrap().starts_with("evt_"));
    assert!(open["receivedAt"].is_string());
    assert_eq!(open["data"]["templateId"], 7);

    // Rotating on request reveals a new secret; the old one stops working.
    let rotated = connect_iterable(&app, "pub-a", json!({"rotateWebhookSecret": true})).await;
    let new_secret = rotated["webhookSecret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    deliver(&app, &url, &[("authorization", &secret)], body.as_bytes())
        .await
        .expect_error(401, "UNAUTHORIZED");
    drop(sandbox);
}

fn cio_connect_body(publisher: &str, signing_key: Option<&str>) -> Value {
    let us = &sim_customerio::US;
    let mut b = json!({
        "publisherId": publisher,
        "siteId": us.site_id,
        "apiKey": us.app_api_key,
        "trackingKey": us.tracking_key,
        "region": "us",
        "config": {"segmentIds": [], "journeyIds": []},
    });
    if let Some(k) = signing_key {
        b["webhookSigningKey"] = json!(k);
    }
    b
}

/// A vendored Customer.io fixture (copied from shared/vendor/customerio/fixtures).
fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/it/fixtures/customerio/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).unwrap()
}

#[tokio::test]
async fn customerio_signed_reporting_webhooks() {
    // The computed vector: our signer agrees with it, and the verifier takes it only in its window.
    let v = fixture("webhook-signature-test-vector.json");
    let key = v["signing_key"].as_str().unwrap();
    let ts = v["x_cio_timestamp"].as_str().unwrap();
    let raw = v["raw_body"].as_str().unwrap().as_bytes();
    let sig = v["x_cio_signature_hex"].as_str().unwrap();
    assert_eq!(sim_customerio::sign_webhook(key, ts, raw), sig);
    let at = chrono::DateTime::from_timestamp(ts.parse().unwrap(), 0).unwrap();
    use sharpsend::platforms::customerio::webhooks::verify;
    assert!(verify(key, Some(ts), Some(sig), raw, at).is_ok());
    assert!(
        verify(
            key,
            Some(ts),
            Some(sig),
            raw,
            at + chrono::Duration::seconds(299)
        )
        .is_ok()
    );
    assert!(
        verify(
            key,
            Some(ts),
            Some(sig),
            raw,
            at + chrono::Duration::minutes(6)
        )
        .is_err()
    );
    let mut spaced = raw.to_vec();
    spaced.push(b' ');
    assert!(verify(key, Some(ts), Some(sig), &spaced, at).is_err());
    let no_prefix = v["negative_cases"][1]["wrong_signature_hex"]
        .as_str()
        .unwrap();
    assert!(verify(key, Some(ts), Some(no_prefix), raw, at).is_err());

    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let d = post(
        &app,
        "/api/integrations/customerio/connect",
        cio_connect_body("pub-c", Some(key)),
    )
    .await
    .expect_ok(200)
    .clone();
    assert!(!d.to_string().contains(key));
    let url = d["webhookUrl"].as_str().unwrap().to_owned();

    let examples = fixture("reporting-webhook-examples.json");
    let now = chrono::Utc::now().timestamp().to_string();
    let signed = |body: &[u8], key: &str, ts: &str| {
        vec![
            ("x-cio-timestamp".to_owned(), ts.to_owned()),
            (
                "x-cio-signature".to_owned(),
                sim_customerio::sign_webhook(key, ts, body),
            ),
        ]
    };
    let send = |body: Vec<u8>, headers: Vec<(String, String)>| {
        let app = &app;
        let url = url.clone();
        async move {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            deliver(app, &url, &h, &body).await
        }
    };
    // The recorded examples, each with its own event id (they share one in the spec).
    let mut expected = Vec::new();
    for (i, name) in ["customer_subscribed", "email_sent", "sms_sent"]
        .iter()
        .enumerate()
    {
        let mut ex = examples["examples"][name].clone();
        ex["event_id"] = json!(format!("01E4C4CT6YDC7Y5M7FE1GWWPQ{i}"));
        let body = serde_json::to_vec(&ex).unwrap();
        let a = send(body.clone(), signed(&body, key, &now)).await;
        assert_eq!(a.expect_ok(200)["received"], 1, "{name}");
        expected.push(name);
    }
    // Replayed event id (a retry, re-signed now): stored once.
    let mut ex = examples["examples"]["email_sent"].clone();
    ex["event_id"] = json!("01E4C4CT6YDC7Y5M7FE1GWWPQ1");
    let body = serde_json::to_vec(&ex).unwrap();
    assert_eq!(
        send(body.clone(), signed(&body, key, &now))
            .await
            .expect_ok(200)["duplicates"],
        1
    );
    // Tampered body, wrong key, stale timestamp, missing headers: 401, nothing stored.
    let mut tampered = ex.clone();
    tampered["event_id"] = json!("01TAMPERED00000000000000000");
    let headers = signed(&body, key, &now);
    send(serde_json::to_vec(&tampered).unwrap(), headers)
        .await
        .expect_error(401, "UNAUTHORIZED");
    let mut fresh = ex.clone();
    fresh["event_id"] = json!("01FRESH0000000000000000000");
    let fresh = serde_json::to_vec(&fresh).unwrap();
    send(fresh.clone(), signed(&fresh, "wrong-key", &now))
        .await
        .expect_error(401, "UNAUTHORIZED");
    let stale = (chrono::Utc::now().timestamp() - 600).to_string();
    let a = send(fresh.clone(), signed(&fresh, key, &stale)).await;
    assert!(
        a.expect_error(401, "UNAUTHORIZED")["error"]
            .as_str()
            .unwrap()
            .contains("Stale")
    );
    send(fresh.clone(), vec![])
        .await
        .expect_error(401, "UNAUTHORIZED");

    let list = events(&app, "pub-c", "?platform=customerio", ADMIN_TOKEN).await;
    let evs = list.expect_ok(200)["events"].as_array().unwrap().clone();
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["sms.sent", "email.sent", "customer.subscribed"]);
    assert_eq!(evs[1]["email"], "test@example.com");
    assert_eq!(evs[1]["userId"], "42");
    assert_eq!(evs[1]["campaignId"], "9", "broadcast id when no campaign");
    assert_eq!(evs[1]["occurredAt"], "2021-02-11T17:04:49Z");
    assert_eq!(evs[1]["platformEventId"], "01E4C4CT6YDC7Y5M7FE1GWWPQ1");

    // An integration without a signing key says how to fix it.
    let d = post(
        &app,
        "/api/integrations/customerio/connect",
        cio_connect_body("pub-d", None),
    )
    .await
    .expect_ok(200)
    .clone();
    let url_d = d["webhookUrl"].as_str().unwrap();
    let a = deliver(
        &app,
        url_d,
        &[("x-cio-timestamp", &now), ("x-cio-signature", "00")],
        &fresh,
    )
    .await;
    assert!(
        a.expect_error(401, "UNAUTHORIZED")["error"]
            .as_str()
            .unwrap()
            .contains("webhookSigningKey")
    );
    drop(sandbox);
}

#[tokio::test]
async fn unknown_webhook_ids_tenancy_paging_and_bad_queries() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let a = deliver(&app, &app.url("/webhooks/iterable/wh_nope"), &[], b"{}").await;
    a.expect_error(404, "NOT_FOUND");
    let a = deliver(&app, &app.url("/webhooks/mailchimp/wh_nope"), &[], b"{}").await;
    a.expect_error(404, "NOT_FOUND");

    let d = connect_iterable(&app, "pub-a", json!({})).await;
    let secret = d["webhookSecret"].as_str().unwrap().to_owned();
    let url = d["webhookUrl"].as_str().unwrap().to_owned();
    // The same webhook id under another platform is unknown.
    let other = url.replace("/webhooks/iterable/", "/webhooks/customerio/");
    deliver(&app, &other, &[], b"{}")
        .await
        .expect_error(404, "NOT_FOUND");
    for i in 0..5 {
        let body = json!({"email": "r@example.com", "eventName": if i % 2 == 0 { "emailSend" } else { "smsSend" },
            "dataFields": {"messageId": format!("m-{i}"), "createdAt": 1_700_000_000_000_i64 + i}});
        deliver(
            &app,
            &url,
            &[("authorization", &secret)],
            body.to_string().as_bytes(),
        )
        .await
        .expect_ok(200);
    }
    let (_, key_a) = app.create_key("pub-a").await;
    let (_, key_b) = app.create_key("pub-b").await;

    // Paging newest first with the cursor.
    let p1 = events(&app, "pub-a", "?limit=2", &key_a).await;
    let p1 = p1.expect_ok(200).clone();
    assert_eq!(p1["events"].as_array().unwrap().len(), 2);
    let c1 = p1["nextCursor"].as_str().unwrap();
    let p2 = events(&app, "pub-a", &format!("?limit=2&cursor={c1}"), &key_a).await;
    let p2 = p2.expect_ok(200).clone();
    let c2 = p2["nextCursor"].as_str().unwrap();
    let p3 = events(&app, "pub-a", &format!("?limit=2&cursor={c2}"), &key_a).await;
    let p3 = p3.expect_ok(200).clone();
    assert_eq!(p3["events"].as_array().unwrap().len(), 1);
    assert!(p3["nextCursor"].is_null());
    let mut ids: Vec<String> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["platformEventId"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids[0].contains("m-4") && ids[4].contains("m-0"), "{ids:?}");
    ids.dedup();
    assert_eq!(ids.len(), 5);
    // Filters.
    let sms = events(&app, "pub-a", "?type=sms.sent", &key_a).await;
    assert_eq!(sms.expect_ok(200)["events"].as_array().unwrap().len(), 2);
    let none = events(&app, "pub-a", "?platform=keap", &key_a).await;
    assert!(none.expect_ok(200)["events"].as_array().unwrap().is_empty());
    // Validation.
    events(&app, "pub-a", "?cursor=bogus", &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    assert_eq!(
        events(&app, "pub-a", "?cursor=bogus", &key_a).await.field(),
        "cursor"
    );
    events(&app, "pub-a", "?limit=0", &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    events(&app, "pub-a", "?limit=1001", &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    events(&app, "pub-a", "?platform=mailchimp", &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    events(&app, "pub-a", "?type=Email", &key_a)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    // Tenancy: B cannot list A's events, and sees none of its own.
    events(&app, "pub-a", "", &key_b)
        .await
        .expect_error(403, "PERMISSION_DENIED");
    let b = events(&app, "pub-b", "", &key_b).await;
    assert!(b.expect_ok(200)["events"].as_array().unwrap().is_empty());
    events(&app, "pub-a", "", "ssk_nope")
        .await
        .expect_error(401, "UNAUTHORIZED");
    drop(sandbox);
}

#[tokio::test]
async fn keap_rest_hooks_handshake_delivery_upsert_and_disconnect() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let keap = sim(&sandbox, "SHARPSEND_KEAP_API_URL");
    let t = keap.post("/_sim/tokens", &json!({})).await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let d = post(
        &app,
        "/api/integrations/keap/connect",
        json!({"publisherId": "pub-k", "clientId": sim_keap::CLIENT_ID, "clientSecret": sim_keap::CLIENT_SECRET,
            "accessToken": access, "refreshToken": t["refresh_token"], "config": {"campaignIds": []}}),
    )
    .await
    .expect_ok(200)
    .clone();
    let url = d["webhookUrl"].as_str().unwrap().to_owned();
    // Registered and verified through the handshake at connect.
    assert_eq!(
        d["config"]["hooks"]["status"], "registered",
        "{}",
        d["config"]
    );
    let regs = d["config"]["hooks"]["registrations"].as_array().unwrap();
    assert_eq!(regs.len(), connectors::keap::hooks::EVENT_KEYS.len());
    assert!(regs.iter().all(|r| r["status"] == "Verified"));
    let at_sim = keap.get("/_sim/hooks").await.unwrap();
    let hooks = at_sim["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), regs.len());
    assert!(
        hooks
            .iter()
            .all(|h| h["hookUrl"] == url.as_str() && h["status"] == "Verified")
    );

    // The handshake answers by echoing the header.
    let resp = app
        .http
        .post(&url)
        .header("X-Hook-Secret", "abc123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-hook-secret"], "abc123");

    // A change on Keap → a delivery → an event, and the contact re-read and upserted.
    let contacts = app
        .get("/api/integrations/keap/pub-k/contacts?limit=1", ADMIN_TOKEN)
        .await;
    let id = contacts.expect_ok(200)["contacts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = app
        .http
        .patch(format!("{}/crm/rest/v1/contacts/{id}", keap.origin()))
        .bearer_auth(&access)
        .json(&json!({"given_name": "Hooked"}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.status());
    let fired = keap.post("/_sim/hooks/fire", &json!({})).await.unwrap();
    assert_eq!(fired["delivered"], 1, "{fired}");
    let record = app
        .state
        .store
        .get_integration(
            &domain::PublisherId::parse("pub-k").unwrap(),
            domain::Platform::Keap,
        )
        .await
        .unwrap()
        .unwrap();
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = app
            .state
            .store
            .list_records(&record.id, "contacts", 10, None, false)
            .await
            .unwrap();
        if !stored.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored.len(), 1, "the changed contact is upserted");
    assert_eq!(stored[0].platform_id, id);
    let evs = events(&app, "pub-k", "?platform=keap", ADMIN_TOKEN).await;
    let evs = evs.expect_ok(200)["events"].as_array().unwrap().clone();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["type"], "contact.updated");
    assert_eq!(evs[0]["userId"], id.as_str());
    // The same delivery again (Keap retries): stored once.
    let body = json!({"event_key": "contact.edit", "object_type": "contact",
        "object_keys": [{"id": id.parse::<u64>().unwrap(), "apiUrl": "", "timestamp": evs[0]["data"]["timestamp"]}]});
    let again = deliver(&app, &url, &[], body.to_string().as_bytes()).await;
    assert_eq!(again.expect_ok(200)["duplicates"], 1);
    // Event keys we never subscribed to are refused; garbage is a 400.
    let foreign =
        json!({"event_key": "invoice.add", "object_type": "invoice", "object_keys": [{"id": 1}]});
    deliver(&app, &url, &[], foreign.to_string().as_bytes())
        .await
        .expect_error(401, "UNAUTHORIZED");
    deliver(&app, &url, &[], b"{}")
        .await
        .expect_error(400, "VALIDATION_ERROR");

    // Disconnect deletes the hooks on Keap.
    app.call(
        Method::DELETE,
        "/api/integrations/pub-k/keap",
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .expect_ok(200);
    let at_sim = keap.get("/_sim/hooks").await.unwrap();
    assert!(at_sim["hooks"].as_array().unwrap().is_empty(), "{at_sim}");
    deliver(&app, &url, &[], body.to_string().as_bytes())
        .await
        .expect_error(404, "NOT_FOUND");
    drop(sandbox);
}
