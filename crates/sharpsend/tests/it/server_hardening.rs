//! Issue 14, items 3, 4, 5 and 12: slow clients (header-read and request timeouts, the
//! connection cap, the shutdown deadline), bounded metric labels and the internal metrics
//! address, log lines nothing can forge, and the OAuth/file/header hygiene.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo, routing::get};
use reqwest::Method;
use sharpsend::{Application, state::AppState};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{
    ADMIN_TOKEN, ServedBinary, TestApp, fresh_db, random_master_key, test_config,
};

/// Reads until the server closes the connection (or `limit` passes: `None`).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn half_sent_headers_are_closed_at_the_header_timeout() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &random_master_key(),
        &[("SHARPSEND_HEADER_READ_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut stream, Duration::from_secs(6)).await;
    assert!(
        answer.is_some(),
        "a connection with half its headers stayed open"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn a_trickled_body_gets_408_request_timeout() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &random_master_key(),
        &[("SHARPSEND_REQUEST_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/admin/publishers/pub-a/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 200 ms: the body would take 40 s.
    let trickle = tokio::spawn(async move {
        for _ in 0..199 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), reader.read_to_end(&mut out)).await;
    trickle.abort();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "answer: {text}");
    assert!(
        text.contains("\"code\":\"REQUEST_TIMEOUT\""),
        "answer: {text}"
    );
    assert!(text.contains("\"success\":false"), "answer: {text}");
    // Nothing was created from half a body.
    let keys = app
        .get("/api/admin/publishers/pub-a/api-keys", ADMIN_TOKEN)
        .await;
    assert_eq!(
        keys.expect_ok(200)["apiKeys"].as_array().map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn shutdown_with_a_half_open_request_stops_within_the_deadline() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &random_master_key(),
        &[("SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/admin/publishers/pub-a/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The request is in flight, waiting for the rest of its body (the request timeout is 120 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(8), app.stop())
        .await
        .expect("the server stops within its shutdown deadline");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(
        read_to_close(&mut stream, Duration::from_secs(3))
            .await
            .is_some(),
        "the half-open connection was closed"
    );
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &random_master_key(),
        &[("SHARPSEND_MAX_CONNECTIONS", "2")],
    )
    .await;
    let first = TcpStream::connect(app.addr).await.unwrap();
    let second = TcpStream::connect(app.addr).await.unwrap();
    // Let the server accept both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::new();
    let url = app.url("/healthz");
    let third = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served at a cap of 2"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    drop(second);
}

#[tokio::test]
async fn handlers_still_get_the_peer_address() {
    let db = fresh_db().await;
    let app = TestApp::spawn_router(
        &db,
        Router::<AppState>::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        ),
    )
    .await;
    let resp = app.http.get(app.url("/peer")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "127.0.0.1");
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    for i in 0..30 {
        let method = Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        for path in ["/healthz", "/api/platforms", "/no/such/path"] {
            let _ = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
        }
    }
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("MADEUP"), "{text}");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sharpsend_http_requests_total{"))
        .collect();
    assert!(
        series.iter().any(|l| l.contains("method=\"OTHER\"")),
        "{series:?}"
    );
    // One series per (route, status) for the 90 requests, and unmatched paths share one route.
    assert!(series.len() <= 6, "{series:#?}");
    assert!(
        series.iter().any(|l| l.contains("route=\"unmatched\"")),
        "{series:?}"
    );
    for line in &series {
        let method = line.split("method=\"").nth(1).unwrap_or("");
        let method = method.split('"').next().unwrap_or("");
        assert!(
            [
                "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"
            ]
            .contains(&method),
            "{line}"
        );
    }
}

#[tokio::test]
async fn metrics_listen_serves_metrics_only_there() {
    let db = fresh_db().await;
    let app = Application::build(test_config(
        &db.url,
        &random_master_key(),
        &[("SHARPSEND_METRICS_LISTEN", "127.0.0.1:0")],
    ))
    .await
    .unwrap();
    let internal = app.metrics_addr().expect("a metrics listener");
    let app = TestApp::run(app);
    app.get("/healthz", ADMIN_TOKEN).await.expect_ok(200);

    let public = app.call(Method::GET, "/metrics", None, None).await;
    public.expect_error(404, "NOT_FOUND");

    let resp = app
        .http
        .get(format!("http://{internal}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("sharpsend_http_requests_total"), "{text}");
    // The internal address serves nothing else.
    let other = app
        .http
        .get(format!("http://{internal}/api/platforms"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn a_percent_encoded_newline_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("forge.db").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharpsend"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("SHARPSEND_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHARPSEND_MASTER_KEY", random_master_key())
        .env("SHARPSEND_DATABASE_URL", &db_url)
        .env("SHARPSEND_SYNC_INTERVAL_MINUTES", "0")
        .env("RUST_LOG", "info")
        .env_remove("SHARPSEND_LOG_FORMAT")
        .current_dir(dir.path())
        .stdout(Stdio::null());
    let mut server = ServedBinary::start(cmd);
    let addr = server.addr.clone();
    // The platform segment is percent-decoded and echoed in the rejection's message.
    let forged = "x%0A2026-01-01T00:00:00.000000Z%20%20WARN%20sharpsend:%20FORGED%20admin%20token%20leaked%0D%1B[2K";
    let resp = reqwest::Client::new()
        .get(format!(
            "http://{addr}/api/integrations/pub-a/{forged}/sync"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Wait for the request's log line, then stop.
    server.wait_for_line(Duration::from_secs(10), |l| l.contains("FORGED"));
    let log = server.stop();

    let with_forged: Vec<&String> = log.iter().filter(|l| l.contains("FORGED")).collect();
    assert!(
        !with_forged.is_empty(),
        "the rejection was logged: {log:#?}"
    );
    for line in with_forged {
        assert!(
            line.contains("request rejected") && line.contains("\\n2026-01-01"),
            "a forged line: {line:?}"
        );
        assert!(!line.contains('\r') && !line.contains('\u{1b}'), "{line:?}");
    }
}

#[tokio::test]
async fn expired_oauth_states_are_swept_on_a_new_authorize_url() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &random_master_key(),
        &[
            ("SHARPSEND_KEAP_CLIENT_ID", "operator-client"),
            ("SHARPSEND_KEAP_CLIENT_SECRET", "operator-secret"),
        ],
    )
    .await;
    let store = &app.state.store;
    let record = |expires: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({"publisher": "pub-a", "client": "operator", "expires_at": expires})
            .to_string()
    };
    let old = "a".repeat(64);
    let live = "b".repeat(64);
    let now = chrono::Utc::now();
    for (key, value) in [
        (
            format!("keap_oauth_state:{old}"),
            record(now - chrono::Duration::days(2)),
        ),
        (format!("keap_oauth_state:{old}:used"), now.to_rfc3339()),
        (format!("keap_oauth_state:{old}:dashboard"), "pub-a".into()),
        (
            format!("keap_oauth_state:{live}"),
            record(now + chrono::Duration::minutes(5)),
        ),
        (format!("keap_oauth_state:{live}:dashboard"), "pub-a".into()),
        // Left behind without its record.
        (
            format!("keap_oauth_state:{}:outcome", "c".repeat(64)),
            "{}".into(),
        ),
    ] {
        assert!(store.put_setting_if_absent(&key, &value).await.unwrap());
    }

    let fresh = app
        .get("/api/integrations/keap/pub-a/authorize-url", ADMIN_TOKEN)
        .await;
    let nonce = fresh.expect_ok(200)["state"].as_str().unwrap().to_owned();

    let keys: Vec<String> = store
        .settings_with_prefix("keap_oauth_state:")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut expected = vec![
        format!("keap_oauth_state:{live}"),
        format!("keap_oauth_state:{live}:dashboard"),
        format!("keap_oauth_state:{nonce}"),
    ];
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn the_oauth_callback_page_has_the_dashboards_security_headers() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let resp = app
        .http
        .get(app.url("/oauth/keap/callback?state=forged&code=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    // No inline style the CSP would block.
    assert!(!page.contains("style="), "{page}");
}

#[tokio::test]
async fn every_api_answer_is_no_store_and_nosniff() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let cases = [
        (Method::GET, "/api/platforms", Some(ADMIN_TOKEN), 200),
        (Method::GET, "/api/platforms", None, 401),
        (Method::GET, "/api/no-such-route", Some(ADMIN_TOKEN), 404),
        (Method::PUT, "/api/platforms", Some(ADMIN_TOKEN), 405),
        (
            Method::POST,
            "/api/admin/publishers/pub-a/api-keys",
            Some(ADMIN_TOKEN),
            201,
        ),
        (Method::GET, "/api/openapi.json", Some(ADMIN_TOKEN), 200),
    ];
    for (method, path, token, status) in cases {
        let a = app.call(method.clone(), path, token, None).await;
        assert_eq!(a.status.as_u16(), status, "{method} {path}: {}", a.body);
        assert_eq!(
            a.headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{method} {path}"
        );
        assert_eq!(
            a.headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{method} {path}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_is_0700_and_the_sqlite_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("sharpsend.db");
    let store = store::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    store.put_setting_if_absent("k", "v").await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&file), 0o600);
    for suffix in ["-wal", "-shm"] {
        let side = data.join(format!("sharpsend.db{suffix}"));
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }

    // A file left readable by others is narrowed when opened.
    let other = dir.path().join("old.db");
    std::fs::write(&other, b"").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _store = store::open(&format!("sqlite://{}", other.display()))
        .await
        .unwrap();
    assert_eq!(mode(&other), 0o600);
}
