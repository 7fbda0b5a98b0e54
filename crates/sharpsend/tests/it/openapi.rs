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
    assert_eq!(served.body, serde_json::to_value(&doc).unwrap());
    app.stop().await;
    db.cleanup().await;
}
