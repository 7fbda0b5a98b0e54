//! The sync sources against the simulators: every kind of every platform paged to its end
//! through the cursor contract, incremental reads from a watermark, and the error codes the
//! engine acts on.

use std::collections::BTreeSet;

use domain::{ErrorCode, Platform, PublisherId};
use reqwest::Method;
use serde_json::{Value, json};
use sharpsend::{
    error::Error,
    sandbox::Sandbox,
    sync::{
        source::{Page, SyncRecord, SyncSession},
        sources,
    },
};
use sim_core::{Fault, FaultKind, SimClient};
use store::{IntegrationRecord, testing::TestDb};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const KEAP_CONTACTS: u64 = 2_500;
const ITERABLE_USERS: u64 = 2_500;
const CIO_PEOPLE: u64 = 3_000;
const CIO_NEWSLETTERS: u64 = 250;

struct Env {
    app: TestApp,
    sandbox: Sandbox,
    _db: TestDb,
}

/// The simulators with enough data that each paged kind spans several pages (Iterable's own
/// rate limits off, so the test can read exports directly to compare).
async fn env() -> Env {
    let db = fresh_db().await;
    let binder = &mut sim_core::Binder::ephemeral();
    let iterable = sim_iterable::start(
        binder,
        sim_iterable::Options {
            users: ITERABLE_USERS,
            rate_limits: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let customerio = sim_customerio::start(
        binder,
        sim_customerio::Options {
            people: CIO_PEOPLE,
            newsletters: CIO_NEWSLETTERS,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let keap = sim_keap::start(
        binder,
        sim_keap::Options {
            contacts: KEAP_CONTACTS,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let sandbox = Sandbox {
        platforms: vec![iterable, customerio, keap],
        receiver: sim_core::receiver::start(binder).await.unwrap(),
    };
    let overrides = sandbox.upstream_overrides();
    let extra: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(&db, &random_master_key(), &extra).await;
    Env {
        app,
        sandbox,
        _db: db,
    }
}

impl Env {
    fn origin(&self, env: &str) -> String {
        self.sandbox
            .platforms
            .iter()
            .find_map(|r| r.origin(env))
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    }

    async fn record(&self, publisher: &str, platform: Platform) -> IntegrationRecord {
        self.app
            .state
            .store
            .get_integration(&PublisherId::parse(publisher).unwrap(), platform)
            .await
            .unwrap()
            .unwrap()
    }

    async fn connect(&self, path: &str, body: Value) {
        self.app
            .call(Method::POST, path, Some(ADMIN_TOKEN), Some(body))
            .await
            .expect_ok(200);
    }
}

/// Every page of `kind` from `cursor` to the end: the records, the number of pages, the
/// watermark of the last page. Each `next` is fed back as the contract says.
async fn drain(
    s: &mut Box<dyn SyncSession>,
    kind: &str,
    cursor: Option<String>,
) -> (Vec<SyncRecord>, usize, Option<String>) {
    let mut cursor = cursor;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let Page {
            records,
            next,
            watermark,
        } = s.page(kind, cursor.as_deref()).await.unwrap();
        pages += 1;
        out.extend(records);
        match next {
            Some(n) => {
                assert!(
                    watermark.is_none(),
                    "{kind}: a watermark before the last page"
                );
                cursor = Some(n);
            }
            None => return (out, pages, watermark),
        }
        assert!(pages < 10_000, "{kind}: the listing does not end");
    }
}

fn ids(records: &[SyncRecord]) -> BTreeSet<String> {
    let set: BTreeSet<String> = records.iter().map(|r| r.platform_id.clone()).collect();
    assert_eq!(set.len(), records.len(), "a listing repeated a record");
    set
}

fn expect_code(r: Result<Page, Error>, code: ErrorCode) {
    match r {
        Ok(_) => panic!("expected {code:?}, got a page"),
        Err(e) => assert_eq!(e.code(), code, "{e:?}"),
    }
}

/// A direct read from a simulator (waiting out its own rate limit).
async fn http_json(req: reqwest::RequestBuilder) -> Value {
    for _ in 0..20 {
        let resp = req.try_clone().unwrap().send().await.unwrap();
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        }
        assert!(resp.status().is_success(), "{}", resp.status());
        return resp.json().await.unwrap();
    }
    panic!("the simulator kept answering 429");
}

fn id_set(v: &Value, key: &str, id: &str) -> BTreeSet<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| match &x[id] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

// ------------------------------------------------------------------------------------- Keap

#[tokio::test]
async fn keap_every_kind_pages_to_the_simulators_contents_and_contacts_are_incremental() {
    let e = env().await;
    let origin = e.origin("SHARPSEND_KEAP_API_URL");
    let sim = SimClient::new(format!("{origin}/"));
    let t = sim.post("/_sim/tokens", &json!({})).await.unwrap();
    let (access, refresh) = (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    );
    e.connect(
        "/api/integrations/keap/connect",
        json!({"publisherId": "pub-s", "clientId": sim_keap::CLIENT_ID,
               "clientSecret": sim_keap::CLIENT_SECRET, "accessToken": access,
               "refreshToken": refresh}),
    )
    .await;
    let record = e.record("pub-s", Platform::Keap).await;
    let mut s = sources::open(&e.app.state, &record).await.unwrap();
    let http = reqwest::Client::new();
    let keap_get = |path: &str| {
        http.get(format!("{origin}/crm/rest/v1/{path}"))
            .bearer_auth(sim_keap::PERSONAL_ACCESS_TOKEN)
            .header("X-Keap-API-Key", sim_keap::PERSONAL_ACCESS_TOKEN)
    };

    // contacts: a full listing across pages, every generated contact once, in our shape.
    let (contacts, pages, watermark) = drain(&mut s, "contacts", None).await;
    assert!(pages >= 3, "{pages} pages");
    let expected: BTreeSet<String> = (1..=KEAP_CONTACTS).map(|i| i.to_string()).collect();
    assert_eq!(ids(&contacts), expected);
    let c = &contacts[0];
    assert_eq!(c.normalized_value()["platform"], "keap");
    assert_eq!(c.normalized_value()["id"], c.platform_id);
    assert!(
        c.normalized_value()["email"]
            .as_str()
            .unwrap()
            .contains('@')
    );
    assert!(c.normalized_value()["tagIds"].is_array());
    assert!(
        c.raw_value()["email_addresses"].is_array(),
        "raw is Keap's v2 contact"
    );
    let watermark = watermark.expect("contacts are incremental");

    // A run resumed from a `next` cursor in a new session (after a crash) reads the rest.
    let first = s.page("contacts", None).await.unwrap();
    let mut resumed = sources::open(&e.app.state, &record).await.unwrap();
    let (rest, _, _) = drain(&mut resumed, "contacts", first.next.clone()).await;
    let mut union = ids(&first.records);
    union.extend(ids(&rest));
    assert_eq!(union, expected);
    expect_code(
        s.page("contacts", Some("not a cursor")).await,
        ErrorCode::ValidationError,
    );

    // Change one contact through Keap's API; the incremental read from the watermark has it.
    let patched = http
        .patch(format!("{origin}/crm/rest/v1/contacts/42"))
        .header("X-Keap-API-Key", sim_keap::PERSONAL_ACCESS_TOKEN)
        .json(&json!({"given_name": "Changed"}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.status());
    let (changed, _, next_mark) = drain(&mut s, "contacts", Some(watermark)).await;
    let c42 = changed
        .iter()
        .find(|r| r.platform_id == "42")
        .expect("the changed contact");
    assert_eq!(c42.normalized_value()["firstName"], "Changed");
    assert!(
        changed.len() < 100,
        "an incremental read is not a full listing: {}",
        changed.len()
    );
    assert!(next_mark.is_some());

    // Inclusive: from a watermark equal to a contact's update time, that contact is read.
    let at = contacts[99].raw_value()["update_time"]
        .as_str()
        .unwrap()
        .to_owned();
    let mark = json!({"since": at}).to_string();
    let (from_mark, _, _) = drain(&mut s, "contacts", Some(mark)).await;
    assert!(
        from_mark
            .iter()
            .any(|r| r.platform_id == contacts[99].platform_id),
        "a contact updated exactly at the watermark is read again"
    );

    // The other kinds: the same ids as Keap's own listing.
    for (kind, key, path) in [
        ("tags", "tags", "tags?limit=1000"),
        ("campaigns", "campaigns", "campaigns?limit=1000"),
        ("opportunities", "opportunities", "opportunities?limit=1000"),
        ("orders", "orders", "orders?limit=1000"),
    ] {
        let (records, _, mark) = drain(&mut s, kind, None).await;
        let want = id_set(&http_json(keap_get(path)).await, key, "id");
        assert!(!want.is_empty(), "{kind}");
        assert_eq!(ids(&records), want, "{kind}");
        assert!(mark.is_none(), "{kind} is a full listing");
        assert_eq!(records[0].normalized_value()["platform"], "keap");
    }
    let (opps, _, _) = drain(&mut s, "opportunities", None).await;
    assert!(
        opps[0].normalized_value()["stage"]["name"].is_string(),
        "{}",
        opps[0].normalized
    );

    // Faults: 5xx after retries → CONNECTION_FAILED, 429 → RATE_LIMIT_EXCEEDED.
    sim.inject(&Fault::status("/crm/rest/v2/contacts", 503))
        .await
        .unwrap();
    expect_code(s.page("contacts", None).await, ErrorCode::ConnectionFailed);
    sim.clear_faults().await.unwrap();
    sim.inject(&Fault::new("/crm/rest/v1/orders", FaultKind::RateLimit))
        .await
        .unwrap();
    expect_code(s.page("orders", None).await, ErrorCode::RateLimitExceeded);
    sim.clear_faults().await.unwrap();
    expect_code(
        s.page("invoices", None).await,
        ErrorCode::UnsupportedOperation,
    );

    // Revoked grant: the refresh is refused → INVALID_CREDENTIALS, integration reauth_required.
    let secrets = sharpsend::integrations::open_secrets(&e.app.state, &record)
        .await
        .unwrap();
    use secrecy::ExposeSecret as _;
    sim.post(
        "/_sim/tokens/revoke",
        &json!({"accessToken": secrets["accessToken"].expose_secret(),
                "refreshToken": secrets["refreshToken"].expose_secret()}),
    )
    .await
    .ok();
    expect_code(s.page("tags", None).await, ErrorCode::InvalidCredentials);
}

#[tokio::test]
async fn keap_crm_routes_list_opportunities_orders_and_custom_fields() {
    let e = env().await;
    let app = &e.app;
    e.connect(
        "/api/integrations/keap/connect",
        json!({"publisherId": "pub-c", "apiKey": sim_keap::PERSONAL_ACCESS_TOKEN}),
    )
    .await;
    let (_, key) = app.create_key("pub-c").await;
    let base = "/api/integrations/keap/pub-c";

    let a = app
        .get(&format!("{base}/opportunities?limit=15&offset=30"), &key)
        .await;
    let d = a.expect_ok(200);
    assert_eq!(d["count"], 40);
    assert_eq!(d["limit"], 15);
    assert_eq!(d["offset"], 30);
    let opps = d["opportunities"].as_array().unwrap();
    assert_eq!(opps.len(), 10);
    assert!(opps[0]["id"].is_string());
    assert!(opps[0]["stage"]["id"].is_string() && opps[0]["stage"]["name"].is_string());
    assert!(opps[0]["contactId"].is_string());

    let a = app.get(&format!("{base}/orders"), &key).await;
    let d = a.expect_ok(200);
    assert_eq!(d["count"], 60);
    assert_eq!(
        d["orders"].as_array().unwrap().len(),
        50,
        "default limit 50"
    );
    let o = &d["orders"][0];
    assert!(o["total"].is_number() && o["status"].is_string() && o["items"].is_array());

    let a = app.get(&format!("{base}/custom-fields"), &key).await;
    let d = a.expect_ok(200);
    let fields = d["customFields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["recordType"] == "contact"));
    assert!(fields.iter().any(|f| f["recordType"] == "opportunity"));
    assert_eq!(d["count"], fields.len());
    let a = app
        .get(
            &format!("{base}/custom-fields?recordType=opportunity"),
            &key,
        )
        .await;
    let d = a.expect_ok(200);
    assert!(
        d["customFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["recordType"] == "opportunity")
    );

    app.get(&format!("{base}/custom-fields?recordType=invoice"), &key)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    app.get(&format!("{base}/orders?limit=0"), &key)
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let (_, other) = app.create_key("pub-other").await;
    app.get("/api/integrations/keap/pub-other/orders", &other)
        .await
        .expect_error(404, "INTEGRATION_NOT_FOUND");
    app.get(&format!("{base}/orders"), &other)
        .await
        .expect_error(403, "PERMISSION_DENIED");
}

// ---------------------------------------------------------------------------------- Iterable

#[tokio::test]
async fn iterable_every_kind_pages_to_the_simulators_contents_and_exports_are_incremental() {
    let e = env().await;
    let origin = e.origin(sim_iterable::ENV_US);
    e.connect(
        "/api/integrations/iterable/connect",
        json!({"publisherId": "pub-i", "apiKey": sim_iterable::US_SERVER_KEY, "region": "us",
               "config": {"fromEmail": "news@example.com"}}),
    )
    .await;
    let mut record = e.record("pub-i", Platform::Iterable).await;
    // Two event types: each costs one export of the key's 4 a minute.
    record.config["syncEventTypes"] = json!(["emailSend", "emailOpen"]);
    let mut s = sources::open(&e.app.state, &record).await.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{origin}{path}"))
            .header("Api-Key", sim_iterable::US_SERVER_KEY)
    };

    for (kind, path, key) in [
        (
            "campaigns",
            "/api/campaigns?pageSize=1000&page=1",
            "campaigns",
        ),
        (
            "templates",
            "/api/templates?pageSize=1000&page=1",
            "templates",
        ),
        ("lists", "/api/lists", "lists"),
    ] {
        let (records, _, mark) = drain(&mut s, kind, None).await;
        let want_key = if kind == "templates" {
            "templateId"
        } else {
            "id"
        };
        let want = id_set(&http_json(get(path)).await, key, want_key);
        assert!(!want.is_empty(), "{kind}");
        assert_eq!(ids(&records), want, "{kind}");
        assert!(mark.is_none(), "{kind} is a full listing");
        assert_eq!(records[0].normalized_value()["platform"], "iterable");
    }

    // users: one export, served 1000 rows a page, every user once.
    let (users, pages, mark) = drain(&mut s, "users", None).await;
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(users.len() as u64, ITERABLE_USERS);
    let export = |t: &str| get(&format!("/api/export/data.json?dataTypeName={t}&range=All"));
    let text = export("user").send().await.unwrap().text().await.unwrap();
    let want: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            connectors::iterable::sync::user_key(&v).unwrap()
        })
        .collect();
    assert_eq!(ids(&users), want);
    let mark = mark.expect("users are incremental");

    // A user updated through the API comes back from the watermark.
    let a = http
        .post(format!("{origin}/api/users/update"))
        .header("Api-Key", sim_iterable::US_SERVER_KEY)
        .json(&json!({"email": "synced-later@example.com", "dataFields": {"plan": "pro"}}))
        .send()
        .await
        .unwrap();
    assert!(a.status().is_success());
    // Exports take whole seconds: the update is in the window once its second has passed.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (changed, _, _) = drain(&mut s, "users", Some(mark)).await;
    assert!(
        changed
            .iter()
            .any(|r| r.platform_id == "synced-later@example.com"),
        "the updated user is in the incremental read"
    );

    // events: one export per configured type, ids derived and stable.
    let (events, _, mark) = drain(&mut s, "events", None).await;
    let mut want = BTreeSet::new();
    for t in ["emailSend", "emailOpen"] {
        let text = export(t).send().await.unwrap().text().await.unwrap();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(l).unwrap();
            want.insert(connectors::iterable::sync::event_id(t, &v));
        }
    }
    assert!(want.len() > 1000, "several pages of events: {}", want.len());
    assert_eq!(ids(&events), want);
    assert!(mark.is_some());
    assert!(events.iter().all(|r| {
        let n = r.normalized_value();
        let t = n["type"].as_str().unwrap();
        t == "emailSend" || t == "emailOpen"
    }));

    // Faults on a listing: 5xx → CONNECTION_FAILED, 429 → RATE_LIMIT_EXCEEDED.
    let sim = SimClient::new(format!("{origin}/"));
    sim.inject(&Fault::status("/api/campaigns", 500))
        .await
        .unwrap();
    expect_code(s.page("campaigns", None).await, ErrorCode::ConnectionFailed);
    sim.clear_faults().await.unwrap();
    sim.inject(&Fault::new("/api/lists", FaultKind::RateLimit))
        .await
        .unwrap();
    expect_code(s.page("lists", None).await, ErrorCode::RateLimitExceeded);
    sim.clear_faults().await.unwrap();

    // A key Iterable refuses → INVALID_CREDENTIALS.
    let bad = bad_credentials(
        &e,
        "pub-bad-i",
        Platform::Iterable,
        json!({}),
        vec![("apiKey", "0123456789abcdef0123456789abcdef")],
    )
    .await;
    let mut s = sources::open(&e.app.state, &bad).await.unwrap();
    expect_code(s.page("lists", None).await, ErrorCode::InvalidCredentials);
}

/// Stores credentials without testing them (as a key revoked since connect would be).
async fn bad_credentials(
    e: &Env,
    publisher: &str,
    platform: Platform,
    config: Value,
    secrets: Vec<(&'static str, &str)>,
) -> IntegrationRecord {
    sharpsend::integrations::connect(
        &e.app.state,
        sharpsend::integrations::NewConnection {
            publisher: PublisherId::parse(publisher).unwrap(),
            platform,
            region: Some(domain::Region::Us),
            config,
            secrets: secrets
                .into_iter()
                .map(|(k, v)| (k, secrecy::SecretString::from(v.to_owned())))
                .collect(),
        },
    )
    .await
    .unwrap();
    e.record(publisher, platform).await
}

// ------------------------------------------------------------------------------- Customer.io

#[tokio::test]
async fn customerio_every_kind_pages_to_the_simulators_contents() {
    let e = env().await;
    let us = sim_customerio::US;
    let origin = e.origin("SHARPSEND_CUSTOMERIO_APP_US_URL");
    e.connect(
        "/api/integrations/customerio/connect",
        json!({"publisherId": "pub-o", "siteId": us.site_id, "apiKey": us.app_api_key,
               "trackingKey": us.tracking_key, "region": "us",
               "config": {"segmentIds": ["1", "3"]}}),
    )
    .await;
    let record = e.record("pub-o", Platform::Customerio).await;
    let mut s = sources::open(&e.app.state, &record).await.unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{origin}{path}"))
            .bearer_auth(us.app_api_key)
    };

    for (kind, path, key) in [
        ("campaigns", "/v1/campaigns", "campaigns"),
        ("segments", "/v1/segments", "segments"),
        ("broadcasts", "/v1/broadcasts", "broadcasts"),
    ] {
        let (records, _, mark) = drain(&mut s, kind, None).await;
        let want = id_set(&http_json(get(path)).await, key, "id");
        assert!(!want.is_empty(), "{kind}");
        assert_eq!(ids(&records), want, "{kind}");
        assert!(mark.is_none());
        assert_eq!(records[0].normalized_value()["platform"], "customerio");
    }

    // newsletters: Customer.io's start/next cursor, 100 a page.
    let (newsletters, pages, _) = drain(&mut s, "newsletters", None).await;
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(newsletters.len() as u64, CIO_NEWSLETTERS);
    assert!(
        newsletters
            .iter()
            .all(|r| r.normalized_value()["type"] == "newsletter")
    );

    // segment_members: each configured segment's membership, page after page.
    let (members, pages, _) = drain(&mut s, "segment_members", None).await;
    let mut want = BTreeSet::new();
    for seg in ["1", "3"] {
        let mut start = String::new();
        loop {
            let v = http_json(get(&format!(
                "/v1/segments/{seg}/membership?limit=30000&start={start}"
            )))
            .await;
            for i in v["identifiers"].as_array().unwrap() {
                let id = i["id"].as_str().filter(|s| !s.is_empty()).map_or_else(
                    || format!("cio_{}", i["cio_id"].as_str().unwrap()),
                    str::to_owned,
                );
                want.insert(format!("{seg}:{id}"));
            }
            match v["next"].as_str() {
                Some(n) if !n.is_empty() => start = n.to_owned(),
                _ => break,
            }
        }
    }
    assert!(
        want.len() > 1000,
        "several pages of members: {}",
        want.len()
    );
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(ids(&members), want);
    assert!(members[0].normalized_value()["segmentId"].is_string());

    // Faults: 5xx → CONNECTION_FAILED, 429 → RATE_LIMIT_EXCEEDED.
    let sim = SimClient::new(format!("{origin}/"));
    sim.inject(&Fault::status("/v1/newsletters", 502))
        .await
        .unwrap();
    expect_code(
        s.page("newsletters", None).await,
        ErrorCode::ConnectionFailed,
    );
    sim.clear_faults().await.unwrap();
    sim.inject(&Fault::new("/v1/segments", FaultKind::RateLimit))
        .await
        .unwrap();
    expect_code(
        s.page("segment_members", None).await,
        ErrorCode::RateLimitExceeded,
    );
    sim.clear_faults().await.unwrap();

    let bad = bad_credentials(
        &e,
        "pub-bad-o",
        Platform::Customerio,
        json!({"siteId": us.site_id}),
        vec![
            ("apiKey", "not-an-app-key-0000"),
            ("trackingKey", us.tracking_key),
        ],
    )
    .await;
    let mut s = sources::open(&e.app.state, &bad).await.unwrap();
    expect_code(
        s.page("campaigns", None).await,
        ErrorCode::InvalidCredentials,
    );
}
