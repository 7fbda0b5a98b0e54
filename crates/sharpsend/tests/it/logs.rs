//! No secret, and no reader's address, reaches a log line at any level: run the real binary at
//! `trace`, use secrets and addresses, grep.

use std::process::{Command, Stdio};

use crate::helpers::{ServedBinary, random_master_key};

#[tokio::test]
async fn secrets_never_reach_the_logs_even_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "admin-SECRET-token-5555-abcdef";
    let master = random_master_key();
    let db_url = format!("sqlite://{}", dir.path().join("logs.db").display());
    // The sandbox: platform calls go to the built-in simulators, never to a real platform.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharpsend"));
    cmd.args(["serve", "--sandbox", "--listen", "127.0.0.1:0"])
        .env("SHARPSEND_ADMIN_TOKEN", admin)
        .env("SHARPSEND_MASTER_KEY", &master)
        .env("SHARPSEND_DATABASE_URL", &db_url)
        .env("RUST_LOG", "trace")
        .current_dir(dir.path())
        .stdout(Stdio::null());
    let server = ServedBinary::start(cmd);
    let addr = server.addr.clone();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    // Use every kind of secret: the admin token, a publisher key, a body carrying a platform key.
    let created: serde_json::Value = http
        .post(format!("{base}/api/admin/publishers/pub-a/api-keys"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    http.get(format!("{base}/api/integrations/pub-a"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    http.get(format!("{base}/api/integrations/pub-b"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let platform_key = "iterable-PLATFORM-secret-9911";
    // A real sandbox key, which the server stores and uses.
    http.post(format!("{base}/api/integrations/iterable/connect"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"publisherId": "pub-a", "apiKey": sim_iterable::US_SERVER_KEY, "region": "us"}))
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/api/integrations/iterable/test-connection"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"apiKey": platform_key, "region": "us"}))
        .send()
        .await
        .unwrap();
    // A reader's address, suppressed (pushed nowhere else: one platform), then erased: the
    // consent ledger names addresses in logs only by a short hash (issue 17).
    let reader = "Reader.LogCheck@example.com";
    for (path, body) in [
        ("suppressions", serde_json::json!({"email": reader})),
        ("erasures", serde_json::json!({"email": reader})),
    ] {
        let r = http
            .post(format!("{base}/api/integrations/pub-a/{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    // The consent worker runs the erasure (Iterable's forget) meanwhile.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    http.get(format!("{base}/api/integrations/pub-a"))
        .bearer_auth("ssk_wrong-SECRET-guess")
        .send()
        .await
        .unwrap();

    let log = server.stop();
    // Log lines only (they start with their timestamp): the sandbox banner prints the sandbox
    // credentials on purpose, as `serve --sandbox` is meant to.
    let text = log
        .iter()
        .filter(|l| l.starts_with("20"))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("request answered") || text.contains("request rejected"),
        "logs were captured"
    );
    for secret in [
        admin,
        key.as_str(),
        master.as_str(),
        platform_key,
        "wrong-SECRET-guess",
        "reader.logcheck@example.com",
        "Reader.LogCheck",
    ] {
        assert!(
            !text.contains(secret),
            "secret {secret} appeared in the logs"
        );
    }
}
