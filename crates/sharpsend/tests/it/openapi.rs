//! The committed OpenAPI document (`docs/openapi.json`) must match the code, and cover every
//! route. Regenerate with `UPDATE_OPENAPI=1 cargo test -p sharpsend openapi`.

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

#[tokio::test]
async fn committed_openapi_document_matches_the_code() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let doc = sharpsend::http::openapi(&app.state);
    let generated = sharpsend::http::openapi::document_json(&doc);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var("UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p sharpsend openapi` and commit it"
    );

    // Every route the server answers is in the document, and the served copy is the same.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/platforms",
        "/api/integrations/{publisherId}",
        "/api/integrations/{publisherId}/{platform}",
        "/api/admin/publishers/{publisherId}/api-keys",
        "/api/admin/api-keys/{keyId}",
    ] {
        assert!(
            doc.paths.paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    let served = app.get("/api/openapi.json", ADMIN_TOKEN).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, sharpsend::http::openapi::document_value(&doc));
    app.stop().await;
    db.cleanup().await;
}

/// Every OpenAPI link names an operation the document has, and every parameter it fills is one
/// that operation takes (a generated client and the fuzzer's stateful phase follow them).
#[tokio::test]
async fn links_lead_to_real_operations_and_their_parameters() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"),
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut operations = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                operations.insert(id.to_owned(), op.clone());
            }
        }
    }
    let mut links = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().into_iter().flatten() {
                for (name, link) in response.1["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let Some(target_op) = operations.get(target) else {
                        panic!("link {name} leads to no operation {target}");
                    };
                    let takes: Vec<&str> = target_op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["name"].as_str())
                        .collect();
                    for param in link["parameters"].as_object().unwrap().keys() {
                        assert!(
                            takes.contains(&param.as_str()),
                            "link {name}: {target} takes no {param}"
                        );
                    }
                }
            }
        }
    }
    assert!(links >= 7, "the sync and connect links: {links}");
}
