//! The consent wire (issue 17): each platform session's `opt_out` and `erase` against its
//! simulator, the session opened from the store the way the job worker will open it. The
//! simulators' `/_sim/consent` routes say where the address stands afterwards, and their request
//! logs count the calls.

use domain::{
    Platform, PublisherId,
    consent::{Applied, OptOut, Reason},
};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sharpsend::{platforms, sandbox::Sandbox};
use sim_core::SimClient;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

pub(crate) const PUBLISHER: &str = "pub-consent";

pub(crate) fn origin(sandbox: &Sandbox, platform: &str, env: &str) -> String {
    sandbox
        .platforms
        .iter()
        .find(|r| r.platform == platform)
        .and_then(|r| r.origin(env))
        .expect("simulator origin")
        .to_owned()
}

/// Connects `platform` for [`PUBLISHER`] with the sandbox's credentials; answers the integration.
pub(crate) async fn connect(app: &TestApp, platform: Platform) -> Value {
    let cio = sim_customerio::US;
    let body = match platform {
        Platform::Iterable => {
            json!({"publisherId": PUBLISHER, "apiKey": sim_iterable::US_SERVER_KEY,
            "region": "us"})
        }
        Platform::Customerio => json!({"publisherId": PUBLISHER, "siteId": cio.site_id,
            "apiKey": cio.app_api_key, "trackingKey": cio.tracking_key,
            "webhookSigningKey": cio.webhook_signing_key, "region": "us",
            "config": {"segmentIds": ["1"], "journeyIds": []}}),
        Platform::Keap => json!({"publisherId": PUBLISHER, "clientId": sim_keap::CLIENT_ID,
            "clientSecret": sim_keap::CLIENT_SECRET, "accessToken": sim_keap::ACCESS_TOKEN,
            "refreshToken": sim_keap::REFRESH_TOKEN, "config": {"campaignIds": []}}),
    };
    let r = app
        .call(
            Method::POST,
            &format!("/api/integrations/{}/connect", platform.as_str()),
            Some(ADMIN_TOKEN),
            Some(body),
        )
        .await;
    r.expect_ok(200).clone()
}

async fn session(app: &TestApp, platform: Platform) -> Box<dyn platforms::PlatformSession> {
    platforms::open_for(
        &app.state,
        &PublisherId::parse(PUBLISHER).unwrap(),
        platform,
    )
    .await
    .unwrap()
}

fn opt_out(email: &str) -> OptOut {
    OptOut {
        email: email.to_owned(),
        reason: Reason::Unsubscribed,
    }
}

fn is_done(a: &Applied) -> bool {
    matches!(a, Applied::Done { .. })
}

/// Calls with `method` among the logged requests under `path`.
pub(crate) async fn count(sim: &SimClient, method: &str, path: &str) -> usize {
    sim.requests(Some(path))
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method == method)
        .count()
}

// ---------------------------------------------------------------- Iterable

pub(crate) async fn iterable_user(http: &reqwest::Client, us: &str, email: &str, channels: Value) {
    let r = http
        .post(format!("{us}/api/users/update"))
        .header("Api-Key", sim_iterable::US_SERVER_KEY)
        .json(&json!({"email": email, "dataFields": {"unsubscribedChannelIds": channels}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn iterable_channels(sim: &SimClient, email: &str) -> Value {
    sim.get(&format!("/_sim/consent?email={email}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn iterable_opt_out_deletes_each_marketing_email_channel_and_falls_back_to_a_merge() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let us = origin(&sandbox, "iterable", sim_iterable::ENV_US);
    let sim = SimClient::new(&us);
    let http = reqwest::Client::new();
    connect(&app, Platform::Iterable).await;
    let mut s = session(&app, Platform::Iterable).await;

    // The Subscriptions API path: one DELETE per Marketing+Email channel (41001, 41007); the
    // push unsubscribe the reader already had stays.
    iterable_user(&http, &us, "ada@example.com", json!([41003])).await;
    let applied = s
        .opt_out(&app.state, &opt_out("ada@example.com"))
        .await
        .unwrap();
    assert!(is_done(&applied), "{applied:?}");
    let st = iterable_channels(&sim, "ada@example.com").await;
    assert_eq!(st["unsubscribedChannelIds"], json!([41003, 41001, 41007]));
    assert_eq!(count(&sim, "DELETE", "/api/subscriptions/").await, 2);
    assert_eq!(
        count(&sim, "POST", "/api/users/updateSubscriptions").await,
        0
    );

    // An unknown user is nothing to do, and nobody is created.
    let applied = s
        .opt_out(&app.state, &opt_out("nobody@example.com"))
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::NothingToDo { .. }),
        "{applied:?}"
    );
    assert_eq!(
        iterable_channels(&sim, "nobody@example.com").await["exists"],
        false
    );

    // Subscriptions API not enabled: 404, then GET user → merge → updateSubscriptions, which
    // keeps the other unsubscribes (41003 and 41002).
    sim.post("/_sim/consent", &json!({"subscriptionsApi": false}))
        .await
        .unwrap();
    iterable_user(&http, &us, "bea@example.com", json!([41003, 41002])).await;
    let applied = s
        .opt_out(&app.state, &opt_out("bea@example.com"))
        .await
        .unwrap();
    match &applied {
        Applied::Done { detail } => assert!(detail.contains("updateSubscriptions"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let st = iterable_channels(&sim, "bea@example.com").await;
    assert_eq!(
        st["unsubscribedChannelIds"],
        json!([41003, 41002, 41001, 41007])
    );
    assert_eq!(
        count(&sim, "POST", "/api/users/updateSubscriptions").await,
        1
    );
    // A repeat writes nothing (and so echoes nothing).
    s.opt_out(&app.state, &opt_out("bea@example.com"))
        .await
        .unwrap();
    assert_eq!(
        count(&sim, "POST", "/api/users/updateSubscriptions").await,
        1
    );
    // The fallback's unknown user is nothing to do too.
    let applied = s
        .opt_out(&app.state, &opt_out("nobody@example.com"))
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::NothingToDo { .. }),
        "{applied:?}"
    );

    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn iterable_erase_forgets_the_user() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let us = origin(&sandbox, "iterable", sim_iterable::ENV_US);
    let sim = SimClient::new(&us);
    connect(&app, Platform::Iterable).await;
    iterable_user(&reqwest::Client::new(), &us, "ada@example.com", json!([])).await;
    let mut s = session(&app, Platform::Iterable).await;

    let applied = s.erase(&app.state, "ada@example.com").await.unwrap();
    assert!(is_done(&applied), "{applied:?}");
    assert_eq!(count(&sim, "POST", "/api/users/forget").await, 1);
    let st = iterable_channels(&sim, "ada@example.com").await;
    assert_eq!(
        (st["forgotten"].clone(), st["exists"].clone()),
        (json!(true), json!(false))
    );
    let forgotten = reqwest::Client::new()
        .get(format!("{us}/api/users/forgotten"))
        .header("Api-Key", sim_iterable::US_SERVER_KEY)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let hash = hex::encode(Sha256::digest(b"ada@example.com"));
    assert_eq!(forgotten["hashedEmails"], json!([hash]));

    app.stop().await;
    db.cleanup().await;
}

// ---------------------------------------------------------------- Customer.io

#[tokio::test]
async fn customerio_opt_out_never_creates_a_person_and_erase_suppresses() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let track = origin(&sandbox, "customerio", sim_customerio::ENV_TRACK_US);
    let sim = SimClient::new(&track);
    connect(&app, Platform::Customerio).await;
    let mut s = session(&app, Platform::Customerio).await;
    let state = |email: &'static str| {
        let sim = sim.clone();
        async move {
            sim.get(&format!("/_sim/consent?workspace=us&email={email}"))
                .await
                .unwrap()
        }
    };

    // `_update: true`: an address nobody holds creates nobody.
    s.opt_out(&app.state, &opt_out("nobody@example.com"))
        .await
        .unwrap();
    assert_eq!(state("nobody@example.com").await["exists"], false);

    // A person who exists is unsubscribed, and keeps the profile.
    let cio = sim_customerio::US;
    let r = reqwest::Client::new()
        .put(format!("{track}/api/v1/customers/ada@example.com"))
        .basic_auth(cio.site_id, Some(cio.tracking_key))
        .json(&json!({"first_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let applied = s
        .opt_out(&app.state, &opt_out("ada@example.com"))
        .await
        .unwrap();
    assert!(is_done(&applied));
    let st = state("ada@example.com").await;
    assert_eq!(
        (st["exists"].clone(), st["unsubscribed"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(count(&sim, "PUT", "/api/v1/customers/").await, 3);

    // Erase: suppress deletes the profile and blocks re-adding.
    let applied = s.erase(&app.state, "ada@example.com").await.unwrap();
    assert!(is_done(&applied));
    let st = state("ada@example.com").await;
    assert_eq!(st["exists"], false);
    assert_eq!(st["suppressed"], true);
    assert_eq!(count(&sim, "POST", "/api/v1/customers/").await, 1);

    app.stop().await;
    db.cleanup().await;
}

// ---------------------------------------------------------------- Keap

#[tokio::test]
async fn keap_opt_out_and_erase_cover_every_contact_sharing_the_address() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let api = origin(&sandbox, "keap", sim_keap::API_URL_ENV);
    let sim = SimClient::new(&api);
    connect(&app, Platform::Keap).await;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for name in ["Ada", "Bea"] {
        // Without duplicate_option, Keap makes a second contact with the same address.
        let r = http
            .post(format!("{api}/crm/rest/v2/contacts"))
            .bearer_auth(sim_keap::ACCESS_TOKEN)
            .json(&json!({"given_name": name, "email_addresses": [
                {"email": "shared@example.com", "field": "EMAIL1", "opt_in_reason": "form"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let state = || async {
        sim.get("/_sim/consent?email=shared@example.com")
            .await
            .unwrap()
    };
    assert_eq!(state().await["optedIn"], true);
    let mut s = session(&app, Platform::Keap).await;

    let applied = s
        .opt_out(
            &app.state,
            &OptOut {
                email: "shared@example.com".into(),
                reason: Reason::Complained,
            },
        )
        .await
        .unwrap();
    assert!(is_done(&applied), "{applied:?}");
    let st = state().await;
    assert_eq!(st["optedIn"], false);
    assert_eq!(st["status"], "MANUAL");
    let patches = sim
        .requests(Some("/crm/rest/v2/emailAddresses/"))
        .await
        .unwrap();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].method, "PATCH");
    let body: Value = serde_json::from_str(&patches[0].body).unwrap();
    assert_eq!(
        body,
        json!({"opted_in": false, "reason": "SharpSend: complained"})
    );

    // An address Keap does not know is nothing to do.
    let applied = s
        .opt_out(&app.state, &opt_out("nobody@example.com"))
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::NothingToDo { .. }),
        "{applied:?}"
    );

    // Erase: both contacts holding the address are deleted.
    let applied = s.erase(&app.state, "shared@example.com").await.unwrap();
    assert!(is_done(&applied), "{applied:?}");
    for id in &ids {
        let r = http
            .get(format!("{api}/crm/rest/v2/contacts/{id}"))
            .bearer_auth(sim_keap::ACCESS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "contact {id}");
    }
    let st = state().await;
    assert_eq!(st["contacts"], json!([]));
    assert_eq!(st["deleted"], true);
    assert_eq!(count(&sim, "DELETE", "/crm/rest/v2/contacts/").await, 2);
    // Again: nobody holds it any more.
    let applied = s.erase(&app.state, "shared@example.com").await.unwrap();
    assert!(
        matches!(applied, Applied::NothingToDo { .. }),
        "{applied:?}"
    );
    // A `*` never reaches Keap's wildcard filter.
    assert!(s.erase(&app.state, "shared*@example.com").await.is_err());

    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn iterable_consent_channel_ids_from_the_connect_config_choose_the_channels() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_unlimited(&db).await;
    let us = origin(&sandbox, "iterable", sim_iterable::ENV_US);
    let sim = SimClient::new(&us);
    let connect = |config: Value| {
        app.call(
            Method::POST,
            "/api/integrations/iterable/connect",
            Some(ADMIN_TOKEN),
            Some(
                json!({"publisherId": PUBLISHER, "apiKey": sim_iterable::US_SERVER_KEY,
                "region": "us", "config": config}),
            ),
        )
    };
    let bad = connect(json!({"consentChannelIds": [0]})).await;
    bad.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.field(), "config.consentChannelIds");
    connect(json!({"consentChannelIds": [41007, 41007]}))
        .await
        .expect_ok(200);
    iterable_user(&reqwest::Client::new(), &us, "ada@example.com", json!([])).await;
    let mut s = session(&app, Platform::Iterable).await;
    let applied = s
        .opt_out(&app.state, &opt_out("ada@example.com"))
        .await
        .unwrap();
    assert!(is_done(&applied), "{applied:?}");
    assert_eq!(count(&sim, "DELETE", "/api/subscriptions/").await, 1);
    assert_eq!(
        iterable_channels(&sim, "ada@example.com").await["unsubscribedChannelIds"],
        json!([41007])
    );
    app.stop().await;
    db.cleanup().await;
}
