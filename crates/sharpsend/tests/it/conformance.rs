//! The platform conformance suite: every platform's session, against its simulator, through the
//! same checks — connect (which tests the credentials), the session opened from the store, a
//! first page of every sync kind, the common reads and writes on the generic routes (a page of
//! each read served, the refusals of the others, one write, a batch with a bad item, the
//! capability matrix's refusals), the limits view, the webhook receiver's
//! authenticity check, and the errors a caller meets (no integration, an unknown kind).
//!
//! A fourth platform adds one arm to [`case`] and one `#[tokio::test]`; everything else here
//! runs unchanged.

use domain::{ErrorCode, Platform, PublisherId, reads::Read};
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::platforms;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

/// What differs per platform: how to connect in the sandbox and one valid body per write.
struct Case {
    platform: Platform,
    connect: Value,
    /// A valid subscriber for this platform.
    subscriber: Value,
    /// A valid message on a channel the platform has (`None`: its messages need data the
    /// sandbox campaigns decide, checked in the platform's own tests).
    unsupported_channel: Option<&'static str>,
    /// The common reads the platform serves, each with a query it takes; every other read
    /// answers `NOT_FOUND` (matrix yes) or `UNSUPPORTED_OPERATION` (matrix no).
    reads: &'static [(Read, &'static str)],
}

/// The sandbox set-up of each platform; a new `Platform` variant does not compile until it has
/// one.
fn case(platform: Platform, publisher: &str) -> Case {
    let cio = sim_customerio::US;
    match platform {
        Platform::Iterable => Case {
            platform,
            connect: json!({"publisherId": publisher, "apiKey": sim_iterable::US_SERVER_KEY,
                "region": "us", "config": {"fromEmail": "news@example.com"}}),
            subscriber: json!({"email": "conformance@example.com", "firstName": "Ada"}),
            unsupported_channel: None,
            reads: &[
                (Read::Campaigns, "limit=2&state=Running,Finished"),
                (Read::Lists, ""),
                (Read::Templates, "limit=2&type=base&channel=email"),
            ],
        },
        Platform::Customerio => Case {
            platform,
            connect: json!({"publisherId": publisher, "siteId": cio.site_id, "apiKey": cio.app_api_key,
                "trackingKey": cio.tracking_key, "webhookSigningKey": cio.webhook_signing_key,
                "region": "us", "config": {"segmentIds": ["1"], "journeyIds": []}}),
            subscriber: json!({"email": "conformance@example.com", "userId": "conf-1", "firstName": "Ada"}),
            unsupported_channel: None,
            reads: &[
                (Read::Campaigns, "limit=2&state=running"),
                (Read::Segments, "limit=2"),
                (Read::Contacts, "email=conformance@example.com"),
            ],
        },
        Platform::Keap => Case {
            platform,
            connect: json!({"publisherId": publisher, "clientId": sim_keap::CLIENT_ID,
                "clientSecret": sim_keap::CLIENT_SECRET, "accessToken": sim_keap::ACCESS_TOKEN,
                "refreshToken": sim_keap::REFRESH_TOKEN, "config": {"campaignIds": []}}),
            subscriber: json!({"email": "conformance@example.com", "firstName": "Ada"}),
            unsupported_channel: Some("sms"),
            reads: &[
                (Read::Campaigns, "limit=2"),
                (Read::Segments, "limit=2"),
                (Read::Contacts, "limit=2&since=2020-01-01T00:00:00Z"),
            ],
        },
    }
}

async fn run(platform: Platform) {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let publisher = "pub-conf";
    conform(&app, publisher, &case(platform, publisher)).await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn iterable_conforms() {
    run(Platform::Iterable).await;
}

#[tokio::test]
async fn customerio_conforms() {
    run(Platform::Customerio).await;
}

#[tokio::test]
async fn keap_conforms() {
    run(Platform::Keap).await;
}

async fn conform(app: &TestApp, publisher: &str, case: &Case) {
    let p = case.platform.as_str();
    let ctx = |what: &str| format!("{p}: {what}");

    // Connect tests the credentials, then stores them.
    let connected = app
        .call(
            Method::POST,
            &format!("/api/integrations/{p}/connect"),
            Some(ADMIN_TOKEN),
            Some(case.connect.clone()),
        )
        .await;
    let integration = connected.expect_ok(200).clone();
    assert_eq!(integration["status"], "connected", "{}", ctx("connect"));
    assert_eq!(
        integration["capabilities"],
        serde_json::to_value(case.platform.capabilities()).unwrap(),
        "{}",
        ctx("capabilities come from the matrix")
    );

    // The session opens from the store alone, and reads every sync kind.
    let state = &app.state;
    let id = PublisherId::parse(publisher).unwrap();
    let session = platforms::open_for(state, &id, case.platform)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ctx("open")));
    assert_eq!(session.platform(), case.platform);
    assert!(!session.budget_keys().is_empty(), "{}", ctx("budget keys"));
    let mut sync = session.into_sync(state);
    for kind in case.platform.sync_kinds() {
        let page = sync
            .page(kind, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ctx(&format!("sync page of {kind}"))));
        for record in &page.records {
            assert!(
                !record.platform_id.is_empty(),
                "{}",
                ctx(&format!("{kind} record id"))
            );
        }
    }
    let unknown = sync.page("no_such_kind", None).await.err().unwrap();
    assert_eq!(
        unknown.code(),
        ErrorCode::UnsupportedOperation,
        "{}",
        ctx("unknown kind")
    );

    // The common writes, on the generic routes.
    let base = format!("/api/integrations/{publisher}/{p}");
    let one = app
        .call(
            Method::POST,
            &format!("{base}/subscribers"),
            Some(ADMIN_TOKEN),
            Some(case.subscriber.clone()),
        )
        .await;
    let upserted = one.expect_ok(200);
    assert_eq!(upserted["status"], "upserted", "{}", ctx("one subscriber"));
    assert_eq!(upserted["platform"], p);

    let batch = app
        .call(
            Method::POST,
            &format!("{base}/subscribers"),
            Some(ADMIN_TOKEN),
            Some(json!({"subscribers": [case.subscriber.clone(), {"email": 5}]})),
        )
        .await;
    let outcome = batch.expect_ok(200);
    assert_eq!(outcome["accepted"], 1, "{}: {outcome}", ctx("batch"));
    assert_eq!(
        outcome["failed"][0]["index"],
        1,
        "{}",
        ctx("batch failure index")
    );
    assert_eq!(outcome["failed"][0]["code"], "VALIDATION_ERROR");

    let empty = app
        .call(
            Method::POST,
            &format!("{base}/subscribers"),
            Some(ADMIN_TOKEN),
            Some(json!({"subscribers": []})),
        )
        .await;
    empty.expect_error(400, "VALIDATION_ERROR");

    let event = app
        .call(
            Method::POST,
            &format!("{base}/events"),
            Some(ADMIN_TOKEN),
            Some(
                json!({"name": "conformance_checked", "email": "conformance@example.com",
                "userId": "conf-1", "data": {"n": 1}}),
            ),
        )
        .await;
    if case
        .platform
        .support(domain::Capability::EventsTrack)
        .supported
    {
        assert_eq!(
            event.expect_ok(200)["status"],
            "accepted",
            "{}",
            ctx("event")
        );
    } else {
        let refused = event.expect_error(422, "UNSUPPORTED_OPERATION");
        assert_eq!(refused["details"]["capability"], "events_track");
    }

    let fax = app
        .call(
            Method::POST,
            &format!("{base}/messages"),
            Some(ADMIN_TOKEN),
            Some(json!({"channel": "fax", "campaignId": "1", "to": {"email": "r@example.com"}})),
        )
        .await;
    fax.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(fax.field(), "channel", "{}", ctx("unknown channel"));
    if let Some(channel) = case.unsupported_channel {
        let refused = app
            .call(
                Method::POST,
                &format!("{base}/messages"),
                Some(ADMIN_TOKEN),
                Some(json!({"channel": channel, "to": {"phone": "+15550100"}})),
            )
            .await;
        let body = refused.expect_error(422, "UNSUPPORTED_OPERATION");
        assert_eq!(body["details"]["platform"], p);
    }

    // Another publisher has no such integration: the same code on every platform.
    let stranger = app
        .call(
            Method::POST,
            &format!("/api/integrations/pub-none/{p}/subscribers"),
            Some(ADMIN_TOKEN),
            Some(case.subscriber.clone()),
        )
        .await;
    stranger.expect_error(404, "INTEGRATION_NOT_FOUND");

    // The stored credentials test as connect tested them.
    let tested = app
        .call(
            Method::POST,
            &format!("{base}/test"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    let tested = tested.expect_ok(200);
    assert_eq!(tested["platform"], p, "{}", ctx("test"));
    assert_eq!(tested["ok"], true);
    assert!(
        tested["account"].is_object(),
        "{}: {tested}",
        ctx("test account")
    );
    app.call(
        Method::POST,
        &format!("/api/integrations/pub-none/{p}/test"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .expect_error(404, "INTEGRATION_NOT_FOUND");

    // The common reads, on the generic routes: what the platform serves answers a page keyed by
    // the read; the rest is refused before any upstream call; a bad bound is refused first.
    for read in Read::ALL {
        let r = read.as_str();
        let path = format!("{base}/{r}");
        let answer = match case.reads.iter().find(|(served, _)| *served == read) {
            Some((_, query)) => {
                let a = app.get(&format!("{path}?{query}"), ADMIN_TOKEN).await;
                let page = a.expect_ok(200).clone();
                let items = page[r]
                    .as_array()
                    .unwrap_or_else(|| panic!("{}: {page}", ctx(r)));
                for item in items {
                    assert_eq!(
                        item["platform"],
                        p,
                        "{}",
                        ctx(&format!("{r} item platform"))
                    );
                }
                if let Some(limit) = page["limit"].as_u64() {
                    assert!(
                        items.len() as u64 <= limit,
                        "{}",
                        ctx(&format!("{r} limit"))
                    );
                }
                continue;
            }
            None => app.get(&path, ADMIN_TOKEN).await,
        };
        if case.platform.support(read.capability()).supported {
            answer.expect_error(404, "NOT_FOUND");
        } else {
            let refused = answer.expect_error(422, "UNSUPPORTED_OPERATION");
            assert_eq!(refused["details"]["platform"], p);
        }
    }
    for (read, query) in case.reads {
        let bad = app
            .get(&format!("{base}/{}?limit=0", read.as_str()), ADMIN_TOKEN)
            .await;
        bad.expect_error(400, "VALIDATION_ERROR");
        assert_eq!(bad.field(), "limit", "{}", ctx("read limit"));
        let stranger = app
            .get(
                &format!("/api/integrations/pub-none/{p}/{}?{query}", read.as_str()),
                ADMIN_TOKEN,
            )
            .await;
        stranger.expect_error(404, "INTEGRATION_NOT_FOUND");
    }

    // The limits view reads the session's budget keys.
    let limits = app.get(&format!("{base}/limits"), ADMIN_TOKEN).await;
    let view = limits.expect_ok(200);
    assert_eq!(view["platform"], p);
    assert!(
        view["classes"].as_array().is_some_and(|c| !c.is_empty()),
        "{}: {view}",
        ctx("limits classes")
    );

    // The webhook receiver checks authenticity before anything is stored.
    let url = integration["webhookUrl"].as_str().unwrap();
    let path = url.split_once("/webhooks/").map(|(_, rest)| rest).unwrap();
    let hook = reqwest::Client::new()
        .post(app.url(&format!("/webhooks/{path}")))
        .header("content-type", "application/json")
        // Iterable and Customer.io: no secret or signature. Keap signs nothing: a delivery for
        // an event key SharpSend did not subscribe to is what it refuses.
        .body(r#"{"eventName":"emailOpen","email":"a@b.co","event_key":"invoice.paid","object_keys":[{"id":"1"}],"metric":"opened","event_id":"E1","object_type":"email","timestamp":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        hook.status().as_u16(),
        401,
        "{}",
        ctx("an unauthenticated webhook is refused")
    );
}
