//! Fidelity: responses validated against the vendored Customer.io OpenAPI schemas, the SDK's
//! live-recorded responses replayed as golden cases, the documented App API examples compared.
//! The material is `../shared/vendor/customerio` beside the clone; each test skips with a notice
//! without it, unless SHARPSEND_REQUIRE_VENDOR=1 (as in CI).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sim_customerio::{Options, US};

use crate::common::{Sim, start, start_with, us_track, vendor, vendor_json, vendor_missing};

/// A validator for the schema at `pointer` inside an OpenAPI document (refs resolve within it).
fn validator(spec: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = spec.clone();
    assert!(
        root.pointer(pointer).is_some(),
        "schema {pointer} is missing from the vendored spec"
    );
    // A URI fragment: braces of templated paths must be percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}"));
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("schema {pointer} compiles: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errs: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path))
        .collect();
    assert!(
        errs.is_empty(),
        "{what} violates the spec: {errs:#?}\n{instance}"
    );
}

fn track_spec() -> Value {
    vendor_json("openapi/journeys-track.openapi.json")
}

const SCHEMAS: &str = "/components/schemas";

#[tokio::test]
async fn app_lists_validate_against_the_shared_component_schemas() {
    if vendor_missing() {
        return;
    }
    let spec = track_spec();
    let sim = start().await;
    let cases = [
        ("/v1/campaigns", "campaigns", "campaignObject"),
        ("/v1/segments", "segments", "segmentResponseObject"),
        (
            "/v1/newsletters?limit=100",
            "newsletters",
            "newsletterObject",
        ),
        ("/v1/broadcasts", "broadcasts", "broadcastObject"),
        ("/v1/transactional", "messages", "transactionalObject"),
    ];
    for (path, key, schema) in cases {
        let v = validator(&spec, &format!("{SCHEMAS}/{schema}"));
        let (s, body) = sim.app_get(path).await;
        assert_eq!(s, 200, "{path}");
        let items = body[key].as_array().unwrap();
        assert!(!items.is_empty(), "{path}");
        for item in items {
            assert_valid(&v, item, path);
        }
        // The validator is not vacuous.
        let mut broken = items[0].clone();
        broken["id"] = json!("not-an-integer");
        assert!(!v.is_valid(&broken), "{schema} should reject a string id");
    }
    let next = validator(&spec, &format!("{SCHEMAS}/next"));
    let (_, body) = sim.app_get("/v1/newsletters?limit=2").await;
    assert_valid(&next, &body["next"], "newsletters next");

    let idents = validator(&spec, &format!("{SCHEMAS}/customer_identifiers"));
    let (_, m) = sim.app_get("/v1/segments/1/membership?limit=40").await;
    for i in m["identifiers"].as_array().unwrap() {
        assert_valid(&idents, i, "membership identifiers");
    }
    assert_valid(&next, &m["next"], "membership next");

    let trig = validator(&spec, &format!("{SCHEMAS}/broadcastTriggerObject"));
    let (_, t) = sim
        .app_post("/v1/campaigns/1001/triggers", &json!({}))
        .await;
    let (_, status) = sim
        .app_get(&format!("/v1/campaigns/1001/triggers/{}", t["id"]))
        .await;
    assert_valid(&trig, &status, "trigger status");
}

#[tokio::test]
async fn track_responses_validate_against_the_track_spec() {
    if vendor_missing() {
        return;
    }
    let mut spec = track_spec();
    let region_ptr =
        "/paths/~1api~1v1~1accounts~1region/get/responses/200/content/application~1json/schema";
    // The simulator answers its own origin as `url` (the spec enumerates the production hosts).
    spec.pointer_mut(&format!("{region_ptr}/properties/url"))
        .and_then(Value::as_object_mut)
        .map(|o| o.remove("enum"))
        .expect("region url schema");
    let sim = start().await;
    let r: Value = sim
        .http
        .get(sim.track_us("/api/v1/accounts/region"))
        .header("authorization", us_track())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid(&validator(&spec, region_ptr), &r, "region");
    assert!(r["environment_id"].is_u64());

    let v1_400 = validator(
        &spec,
        "/components/responses/400/content/application~1json/schema",
    );
    let r: Value = sim
        .http
        .post(sim.track_us("/api/v1/customers/x/events"))
        .header("authorization", us_track())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid(&v1_400, &r, "v1 400");

    let b207 = validator(
        &spec,
        "/paths/~1api~1v2~1batch/post/responses/207/content/application~1json/schema",
    );
    let r = sim
        .http
        .post(sim.track_us("/api/v2/batch"))
        .header("authorization", us_track())
        .json(&json!({"batch": [{"type": "person", "action": "identify"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    assert_valid(&b207, &body, "batch 207");
    for e in body["errors"].as_array().unwrap() {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["batch_index", "field", "message", "reason"])
        );
    }

    let e400 = validator(
        &spec,
        "/paths/~1api~1v2~1entity/post/responses/400/content/application~1json/schema",
    );
    let r: Value = sim
        .http
        .post(sim.track_us("/api/v2/entity"))
        .header("authorization", us_track())
        .json(&json!({"type": "person"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid(&e400, &r, "entity 400");

    // What we accept as valid v2 operations is what the spec's request schema accepts.
    let ops = validator(
        &spec,
        "/paths/~1api~1v2~1batch/post/requestBody/content/application~1json/schema",
    );
    let good = json!({"batch": [
        {"type": "person", "action": "identify", "identifiers": {"id": "42"}, "attributes": {"plan": "premium"}},
        {"type": "person", "action": "event", "identifiers": {"email": "a@example.com"}, "name": "purchase"},
        {"type": "person", "action": "delete", "identifiers": {"cio_id": "abc"}},
    ]});
    assert_valid(&ops, &good, "batch request");
    let r = sim
        .http
        .post(sim.track_us("/api/v2/batch"))
        .header("authorization", us_track())
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn cdp_strict_errors_validate_against_the_pipelines_spec() {
    if vendor_missing() {
        return;
    }
    let spec = vendor_json("openapi/pipelines.openapi.json");
    let v = validator(
        &spec,
        "/components/responses/400/content/application~1json/schema",
    );
    let sim = start().await;
    let r = sim
        .http
        .post(sim.cdp_us("/v1/track"))
        .basic_auth(US.cdp_api_key, Some(""))
        .header("X-Strict-Mode", "1")
        .json(&json!({"anonymousId": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_valid(&v, &body, "cdp 400");
    // Every documented path exists and answers 200 `{}` to a valid call.
    let paths = spec["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 7);
    for path in paths.keys() {
        let body = match path.as_str() {
            "/batch" => json!({"batch": [{"type": "identify", "userId": "u"}]}),
            "/track" => json!({"userId": "u", "event": "e"}),
            "/group" => json!({"userId": "u", "groupId": "g"}),
            "/alias" => json!({"userId": "u", "previousId": "p"}),
            _ => json!({"userId": "u"}),
        };
        let r = sim
            .http
            .post(sim.cdp_us(&format!("/v1{path}")))
            .basic_auth(US.cdp_api_key, Some(""))
            .header("X-Strict-Mode", "1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.unwrap(), "{}\n");
    }
}

#[tokio::test]
async fn named_webhook_events_validate_against_the_reporting_webhook_schema() {
    if vendor_missing() {
        return;
    }
    let spec = vendor_json("openapi/journeys-webhooks.openapi.json");
    let v = validator(
        &spec,
        "/webhooks/reportingWebhook/post/requestBody/content/application~1json/schema",
    );
    // The validator works on this document: the spec's customer example passes. (Its email_sent
    // and sms_sent examples lack fields that its own schemas require, e.g. email `subject`.)
    let examples = vendor_json("fixtures/reporting-webhook-examples.json");
    assert_valid(
        &v,
        &examples["examples"]["customer_subscribed"],
        "spec example",
    );
    assert!(!v.is_valid(&json!({"metric": "sent", "object_type": "email"})));
    let sim = start().await;
    let names = sim.ctl().get("/_sim/workspaces").await.unwrap()["namedWebhookEvents"].clone();
    let (srv, url) = sink().await;
    for name in names.as_array().unwrap() {
        let a = sim
            .ctl()
            .post(
                "/_sim/webhooks/fire",
                &json!({"url": url, "event": name, "wait": true}),
            )
            .await
            .unwrap();
        let body: Value = serde_json::from_str(a["body"].as_str().unwrap()).unwrap();
        assert_valid(&v, &body, name.as_str().unwrap());
        assert_eq!(a["delivered"], true);
    }
    drop(srv);
}

async fn sink() -> (sim_core::SimServer, String) {
    let app = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = sim_core::spawn(l, app).unwrap();
    let url = format!("{}/", s.origin());
    (s, url)
}

/// The request the recorded SDK call made, as (method, path, body).
fn recorded_request(fx: &Value) -> (String, String, Option<Value>) {
    let mock = &fx["mocks"][0];
    let method = mock["method"].as_str().unwrap().to_owned();
    let path = mock["path"].as_str().unwrap().to_owned();
    let args = &fx["sdkCall"]["args"];
    let body = match fx["sdkCall"]["method"].as_str().unwrap() {
        "identify" => Some(args[1].clone()),
        "track" => Some(args[1].clone()),
        "trackAnonymous" => {
            let mut b = args[1].clone();
            b["anonymous_id"] = args[0].clone();
            Some(b)
        }
        "trackPageView" => Some(json!({"type": "page", "name": args[1]})),
        "addDevice" => Some(json!({"device": {"id": args[1], "platform": args[2]}})),
        "batch" => Some(json!({"batch": args[0]})),
        _ => None,
    };
    (method, path, body)
}

async fn replay(sim: &Sim, fx: &Value) -> reqwest::Response {
    let (method, path, body) = recorded_request(fx);
    let host = fx["mocks"][0]["host"].as_str().unwrap();
    let (url, auth) = if host == "track.customer.io" {
        (sim.track_us(&path), us_track())
    } else {
        assert_eq!(host, "api.customer.io");
        (sim.app_us(&path), format!("Bearer {}", US.app_api_key))
    };
    let mut req = sim
        .http
        .request(method.parse().unwrap(), url)
        .header("authorization", auth);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn live_recorded_sdk_responses_replay_as_golden_cases() {
    if vendor_missing() {
        return;
    }
    let dir = vendor().join("fixtures/customerio-node-recorded");
    let mut live = 0;
    let sim = start_with(Options::default()).await;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if fx["kind"] != "live" {
            continue;
        }
        live += 1;
        let name = fx["scenario"].as_str().unwrap().to_owned();
        let mock = &fx["mocks"][0];
        let r = replay(&sim, &fx).await;
        assert_eq!(
            r.status().as_u16(),
            mock["status"].as_u64().unwrap() as u16,
            "{name}"
        );
        for h in [
            "content-type",
            "content-length",
            "cache-control",
            "access-control-allow-origin",
            "strict-transport-security",
        ] {
            if let Some(want) = mock["headers"].get(h).and_then(Value::as_str) {
                // The App API's CORS origin is its web app's; a simulator has none to name.
                if h == "access-control-allow-origin" && want != "*" {
                    continue;
                }
                assert_eq!(
                    r.headers().get(h).map(|v| v.to_str().unwrap()),
                    Some(want),
                    "{name}: header {h}"
                );
            }
        }
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, mock["body"], "{name}");
    }
    assert_eq!(live, 12, "every live-recorded fixture was replayed");
    // Replayed in file order: identify (after destroy) stored the person, suppress deleted it
    // (and ignored the track call for it), unsuppress freed the id but did not restore the profile.
    let id = "sdk-record-62f6187a-6306-4573-9344-b5e6d4046bf0";
    assert!(sim.person(&format!("id={id}")).await.is_none());
    let state = sim
        .ctl()
        .get(&format!("/_sim/consent?id={id}"))
        .await
        .unwrap();
    assert_eq!(state["suppressed"], false);
    assert_eq!(state["deleted"], true);
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn documented_app_examples_have_our_wrappers_and_fields() {
    if vendor_missing() {
        return;
    }
    let ex = vendor_json("fixtures/app-api-doc-examples.json");
    let sim = start().await;
    for (path, key) in [
        ("GET /v1/campaigns", "campaigns"),
        ("GET /v1/segments", "segments"),
        ("GET /v1/newsletters?limit=1&sort=asc&start=", "newsletters"),
        ("GET /v1/broadcasts", "broadcasts"),
    ] {
        let doc = &ex[path]["body"];
        let (s, ours) = sim.app_get(path.trim_start_matches("GET ")).await;
        assert_eq!(s, ex[path]["status"].as_u64().unwrap() as u16, "{path}");
        assert_eq!(keys(&ours), keys(doc), "{path}: wrapper keys");
        let doc_item = &doc[key][0];
        // Every documented field is served on some item (optional ones vary by type).
        let mut served = BTreeSet::new();
        for item in ours[key].as_array().unwrap() {
            served.extend(keys(item));
        }
        let missing: Vec<_> = keys(doc_item).difference(&served).cloned().collect();
        assert!(missing.is_empty(), "{path}: fields not served: {missing:?}");
        let first = &ours[key][0];
        for (k, dv) in doc_item.as_object().unwrap() {
            if k == "tags" || dv.is_null() {
                continue; // documented as "nil" / null; the schema says array
            }
            if let Some(ov) = first.get(k).filter(|v| !v.is_null()) {
                let kind = |v: &Value| match v {
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Bool(_) => "bool",
                    Value::Object(_) => "object",
                    Value::Null => "null",
                };
                assert_eq!(kind(ov), kind(dv), "{path}: field {k}");
            }
        }
    }
    let doc_status = &ex["GET /v1/campaigns/{broadcast_id}/triggers/{trigger_id}"]["body"];
    let (_, t) = sim
        .app_post("/v1/campaigns/1001/triggers", &json!({}))
        .await;
    let (_, ours) = sim
        .app_get(&format!("/v1/campaigns/1001/triggers/{}", t["id"]))
        .await;
    assert_eq!(keys(&ours), keys(doc_status));

    // Broadcast error bodies.
    let errs = &ex["POST /v1/campaigns/{broadcast_id}/triggers (errors)"]["examples"];
    let by_status = |s: u64| {
        errs.as_array()
            .unwrap()
            .iter()
            .find(|e| e["status"] == s)
            .unwrap()["body"]
            .clone()
    };
    let r = sim
        .http
        .post(sim.app_us("/v1/campaigns/1001/triggers"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), by_status(401));
    let reference = |d: &str, what: &str| {
        let rest = d
            .strip_prefix(&format!("{what} (reference "))
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{d}"));
        assert_eq!(rest.len(), 26, "a ULID reference: {d}");
    };
    let (s, ours) = sim.app_post("/v1/campaigns/9/triggers", &json!({})).await;
    assert_eq!(s, 404);
    let doc = by_status(404);
    assert_eq!(keys(&ours["errors"][0]), keys(&doc["errors"][0]));
    reference(ours["errors"][0]["detail"].as_str().unwrap(), "not found");
    reference(doc["errors"][0]["detail"].as_str().unwrap(), "not found");
    let (s, ours) = sim
        .app_post("/v1/campaigns/1002/triggers", &json!({"ids": 5}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(keys(&ours["errors"][0]), keys(&by_status(400)["errors"][0]));
    reference(ours["errors"][0]["detail"].as_str().unwrap(), "bad request");
    let (s, ours) = sim
        .app_post(
            "/v1/campaigns/1003/triggers",
            &json!({"per_user_data": [{"data": {}}]}),
        )
        .await;
    assert_eq!(s, 422);
    let doc = by_status(422);
    assert_eq!(keys(&ours["errors"][0]), keys(&doc["errors"][0]));
    assert_eq!(ours["errors"][0]["source"], doc["errors"][0]["source"]);

    let doc = &ex["POST /v1/newsletters/* (errors)"]["body"];
    let (s, ours) = sim.app_get("/v1/newsletters?limit=-1").await;
    assert_eq!(s, 400);
    assert_eq!(keys(&ours["errors"][0]), keys(&doc["errors"][0]));
}

#[tokio::test]
async fn send_and_trigger_requests_agree_with_the_request_schemas() {
    if vendor_missing() {
        return;
    }
    let spec = track_spec();
    let sim = start().await;
    sim.ctl()
        .post("/_sim/limits", &json!({"enabled": false}))
        .await
        .unwrap();
    // (endpoint, schema, body, accepted by the simulator)
    let cases = [
        (
            "/v1/send/email",
            "sendemail",
            json!({"transactional_message_id": 1, "to": "a@example.com", "identifiers": {"id": "1"}}),
            true,
        ),
        (
            "/v1/send/email",
            "sendemail",
            json!({"transactional_message_id": "welcome", "identifiers": {"email": "a@example.com"}}),
            false,
        ),
        (
            "/v1/send/push",
            "sendpush",
            json!({"transactional_message_id": 5, "identifiers": {"cio_id": "abc"}, "to": "last_used"}),
            true,
        ),
        (
            "/v1/send/push",
            "sendpush",
            json!({"identifiers": {"id": "1"}}),
            false,
        ),
        (
            "/v1/send/sms",
            "sendsms",
            json!({"transactional_message_id": 4, "identifiers": {"id": "1"}, "to": "+15551234567"}),
            true,
        ),
        (
            "/v1/send/sms",
            "sendsms",
            json!({"transactional_message_id": 4, "identifiers": {"id": "1"}}),
            false,
        ),
        (
            "/v1/send/in_app",
            "sendinapp",
            json!({"transactional_message_id": 6, "identifiers": {"id": "1"}, "message_data": {"a": 1}}),
            true,
        ),
        (
            "/v1/send/in_app",
            "sendinapp",
            json!({"transactional_message_id": 6}),
            false,
        ),
        // campaignRequest's oneOf overlaps (its "Default audience" branch takes any object), so
        // trigger bodies are checked against the branch of their audience.
        (
            "/v1/campaigns/1001/triggers",
            "campaignRequest/oneOf/3",
            json!({"ids": ["100001"], "data": {"x": 1}}),
            true,
        ),
        (
            "/v1/campaigns/1002/triggers",
            "campaignRequest/oneOf/4",
            json!({"per_user_data": [{"email": "a@example.com", "data": {"x": 1}}]}),
            true,
        ),
        (
            "/v1/campaigns/1003/triggers",
            "campaignRequest/oneOf/3",
            json!({"ids": [{"id": 1}]}),
            false,
        ),
    ];
    for (path, schema, body, accepted) in cases {
        let v = validator(&spec, &format!("{SCHEMAS}/{schema}"));
        assert_eq!(v.is_valid(&body), accepted, "{schema} on {body}");
        let (s, answer) = sim.app_post(path, &body).await;
        assert_eq!(s == 200, accepted, "{path} {body}: {s} {answer}");
    }
}

#[tokio::test]
async fn track_request_validation_agrees_with_the_request_schemas() {
    if vendor_missing() {
        return;
    }
    let spec = track_spec();
    let sim = start().await;
    let body_ptr = |path: &str, method: &str| {
        format!(
            "/paths/{}/{method}/requestBody/content/application~1json/schema",
            path.replace('/', "~1")
        )
    };
    let events = body_ptr("/api/v1/customers/{identifier}/events", "post");
    let anon = body_ptr("/api/v1/events", "post");
    let devices = body_ptr("/api/v1/customers/{identifier}/devices", "put");
    let identify = body_ptr("/api/v1/customers/{identifier}", "put");
    let entity = body_ptr("/api/v2/entity", "post");
    let cases = [
        (
            "POST",
            "/api/v1/customers/r-1/events",
            &events,
            json!({"name": "x"}),
            true,
        ),
        (
            "POST",
            "/api/v1/customers/r-1/events",
            &events,
            json!({"data": {}}),
            false,
        ),
        (
            "POST",
            "/api/v1/customers/r-1/events",
            &events,
            json!({"name": "x", "type": "click"}),
            false,
        ),
        (
            "POST",
            "/api/v1/customers/r-1/events",
            &events,
            json!({"name": "/p", "type": "page"}),
            true,
        ),
        (
            "POST",
            "/api/v1/events",
            &anon,
            json!({"name": "x", "anonymous_id": "a"}),
            true,
        ),
        (
            "POST",
            "/api/v1/events",
            &anon,
            json!({"anonymous_id": "a"}),
            false,
        ),
        (
            "PUT",
            "/api/v1/customers/r-1/devices",
            &devices,
            json!({"device": {"id": "t", "platform": "ios"}}),
            true,
        ),
        (
            "PUT",
            "/api/v1/customers/r-1/devices",
            &devices,
            json!({"device": {"id": "t"}}),
            false,
        ),
        (
            "PUT",
            "/api/v1/customers/r-1/devices",
            &devices,
            json!({"device": {"id": "t", "platform": "web"}}),
            false,
        ),
        (
            "PUT",
            "/api/v1/customers/r-1/devices",
            &devices,
            json!({}),
            false,
        ),
        (
            "PUT",
            "/api/v1/customers/r-1",
            &identify,
            json!({"email": "r1@example.com"}),
            true,
        ),
        (
            "POST",
            "/api/v2/entity",
            &entity,
            json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}}),
            true,
        ),
        (
            "POST",
            "/api/v2/entity",
            &entity,
            json!({"type": "person", "action": "identify", "identifiers": {"id": "1", "email": "a@b.c"}}),
            false,
        ),
        (
            "POST",
            "/api/v2/entity",
            &entity,
            json!({"type": "person", "action": "event", "identifiers": {"id": "1"}}),
            false,
        ),
        (
            "POST",
            "/api/v2/entity",
            &entity,
            json!({"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "n"}),
            true,
        ),
    ];
    for (method, path, ptr, body, valid) in cases {
        let v = validator(&spec, ptr);
        assert_eq!(v.is_valid(&body), valid, "spec on {path} {body}");
        let r = sim
            .http
            .request(method.parse().unwrap(), sim.track_us(path))
            .header("authorization", us_track())
            .json(&body)
            .send()
            .await
            .unwrap();
        let want = if valid { 200 } else { 400 };
        assert_eq!(r.status().as_u16(), want, "simulator on {path} {body}");
    }
}

#[tokio::test]
async fn failed_data_file_download_shows_the_documented_403_with_numeric_next() {
    if vendor_missing() {
        return;
    }
    let ex = vendor_json("fixtures/app-api-doc-examples.json");
    let doc = ex["POST /v1/campaigns/{broadcast_id}/triggers (errors)"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == 403)
        .unwrap()["body"]
        .clone();
    let files = axum::Router::new()
        .route(
            "/forbidden.csv",
            axum::routing::get(|| async { (axum::http::StatusCode::FORBIDDEN, "no") }),
        )
        .route(
            "/ok.csv",
            axum::routing::get(|| async { "id,data\n100001,{}\n" }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let srv = sim_core::spawn(l, files).unwrap();
    let sim = start().await;
    let (s, t) = sim
        .app_post(
            "/v1/campaigns/1001/triggers",
            &json!({"data_file_url": format!("{}/forbidden.csv", srv.origin())}),
        )
        .await;
    assert_eq!(s, 200, "the trigger itself is accepted");
    let (s, errs) = sim
        .app_get(&format!("/v1/campaigns/1001/triggers/{}/errors", t["id"]))
        .await;
    assert_eq!(s, 403);
    assert_eq!(errs, doc);

    let (s, t) = sim
        .app_post(
            "/v1/campaigns/1002/triggers",
            &json!({"data_file_url": format!("{}/ok.csv", srv.origin())}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, errs) = sim
        .app_get(&format!("/v1/campaigns/1002/triggers/{}/errors", t["id"]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(errs, json!({"errors": [], "next": ""}));
}

#[tokio::test]
async fn period_metrics_validate_against_period_message_metrics() {
    if vendor_missing() {
        return;
    }
    let spec = track_spec();
    let v = validator(&spec, &format!("{SCHEMAS}/periodMessageMetrics"));
    let props: BTreeSet<String> = spec
        .pointer(&format!("{SCHEMAS}/periodMessageMetrics/properties"))
        .and_then(Value::as_object)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let sim = start().await;
    for (path, steps) in [
        ("/v1/campaigns/1/metrics?period=days&steps=7", 7),
        ("/v1/campaigns/1/metrics", 45),
        ("/v1/broadcasts/1001/metrics?period=hours", 24),
        (
            "/v1/newsletters/5001/metrics?period=weeks&steps=12&type=email",
            12,
        ),
    ] {
        let (s, body) = sim.app_get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        let series = &body["metric"]["series"];
        assert_valid(&v, series, path);
        let keys: BTreeSet<String> = series.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, props, "{path}: every metric of the spec, no other");
        for (k, arr) in series.as_object().unwrap() {
            assert_eq!(arr.as_array().unwrap().len(), steps, "{path} {k}");
        }
        // Deterministic: the same answer again.
        assert_eq!(sim.app_get(path).await.1, body);
    }
    // The App API allows 10 requests a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Opens never exceed deliveries, deliveries never exceed sends.
    let (_, body) = sim
        .app_get("/v1/campaigns/2/metrics?period=days&steps=45")
        .await;
    let s = &body["metric"]["series"];
    for i in 0..45 {
        let n = |k: &str| s[k][i].as_u64().unwrap();
        assert!(n("opened") <= n("delivered") && n("delivered") <= n("sent"));
    }
    // Unknown objects 404 like their GET; steps beyond the retention and unknown periods 400.
    assert_eq!(sim.app_get("/v1/campaigns/9999/metrics").await.0, 404);
    assert_eq!(sim.app_get("/v1/newsletters/1/metrics").await.0, 404);
    assert_eq!(
        sim.app_get("/v1/campaigns/1/metrics?period=days&steps=46")
            .await
            .0,
        400
    );
    assert_eq!(
        sim.app_get("/v1/campaigns/1/metrics?period=months").await.0,
        400
    );
    assert_eq!(sim.app_get("/v1/campaigns/1/metrics?steps=0").await.0, 400);
}
