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

/// utoipa names a component after the Rust type, so two platforms' `ConnectBody` structs once
/// became one schema, and the document described Keap's connect body with Customer.io's fields
/// (a generated client then sent `siteId` to Keap). A schema a platform's own route takes or
/// answers must be that platform's alone.
#[tokio::test]
async fn platform_routes_do_not_share_their_body_schemas() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let doc: serde_json::Value = serde_json::from_str(&sharpsend::http::openapi::document_json(
        &sharpsend::http::openapi(&app.state),
    ))
    .unwrap();
    // schema name -> the platforms whose own routes use it as a request body or a 2xx body
    let mut users: std::collections::BTreeMap<String, std::collections::BTreeSet<&str>> =
        Default::default();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(platform) = ["iterable", "customerio", "keap"]
            .into_iter()
            .find(|p| path.split('/').any(|seg| seg == *p))
        else {
            continue;
        };
        for op in item.as_object().unwrap().values() {
            let mut bodies = vec![&op["requestBody"]["content"]["application/json"]["schema"]];
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                if status.starts_with('2') {
                    bodies.push(&response["content"]["application/json"]["schema"]);
                }
            }
            for schema in bodies {
                if let Some(name) = schema["$ref"].as_str() {
                    let name = name.trim_start_matches("#/components/schemas/");
                    users.entry(name.to_owned()).or_default().insert(platform);
                }
            }
        }
    }
    assert!(users.contains_key("KeapConnectBody"), "{users:?}");
    let shared: Vec<_> = users
        .iter()
        .filter(|(name, platforms)| {
            platforms.len() > 1 && !name.starts_with("Envelope_Integration")
        })
        .collect();
    assert!(
        shared.is_empty(),
        "platform routes share body schemas (give each platform's type its own `#[schema(as = …)]`): {shared:?}"
    );
}

/// utoipa names a schema after its Rust type and keeps one schema per name, so two types of the
/// same name (Iterable's `Channel` view and the message `Channel` enum once) silently become
/// one, and the document describes one of them wrongly. Every `ToSchema` type in the workspace
/// must have its own schema name (`#[schema(as = …)]` gives another).
#[test]
fn no_two_schema_types_share_a_name() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(&crates).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if !(line.starts_with("#[derive(") && line.contains("ToSchema")) {
                continue;
            }
            let mut alias = None;
            for next in lines.by_ref() {
                if let Some(rest) = next.split("schema(as = ").nth(1) {
                    alias = rest
                        .split([')', ','])
                        .next()
                        .map(|a| a.rsplit("::").next().unwrap_or(a).trim().to_owned());
                }
                let decl = next
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ");
                if let Some(rest) = decl
                    .strip_prefix("struct ")
                    .or_else(|| decl.strip_prefix("enum "))
                {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    seen.entry(alias.take().unwrap_or(name))
                        .or_default()
                        .push(file.display().to_string());
                    break;
                }
            }
        }
    }
    assert!(seen.len() > 50, "found too few schema types: {seen:?}");
    let shared: Vec<_> = seen.iter().filter(|(_, files)| files.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "schema names used by more than one type (add `#[schema(as = …)]`): {shared:?}"
    );
}
