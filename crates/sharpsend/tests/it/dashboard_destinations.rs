//! The dashboard's Destinations page (issue 19) over plain HTTP: adding a destination shows its
//! secret once, deliveries and their attempts are listed escaped, the actions work behind the
//! session's CSRF token, a refused URL shows the guard's error, and another publisher's session
//! gets 404 for all of it.
#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::routing::post;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    dashboard::Web,
    helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key},
};

const ALLOW_PRIVATE: (&str, &str) = ("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE", "true");
/// What the receiver answers: markup that must show as text.
const HOSTILE: &str = "<script>alert('answer')</script>";

/// An endpoint on a real socket that fails every delivery with [`HOSTILE`].
async fn failing_receiver() -> SocketAddr {
    let app = axum::Router::new().route(
        "/hook",
        post(|| async { (axum::http::StatusCode::BAD_GATEWAY, HOSTILE) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The `/destinations/dst_…` a page links to first.
fn destination_id(body: &str) -> String {
    let marker = "href=\"/destinations/dst_";
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("no link: {body}"))
        + marker.len()
        - 4;
    let end = body[at..].find('"').unwrap();
    body[at..at + end].to_owned()
}

/// The value of the read-only secret field.
fn secret(body: &str) -> String {
    let marker = "id=\"signing-secret\" readonly value=\"";
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("no secret: {body}"))
        + marker.len();
    let end = body[at..].find('"').unwrap();
    body[at..at + end].to_owned()
}

#[tokio::test]
async fn the_destinations_page_adds_shows_the_secret_once_and_acts_on_messages() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(&db, &random_master_key(), &[ALLOW_PRIVATE]).await;
    let (_, key) = app.create_key("acme").await;
    let receiver = failing_receiver().await;
    let url = format!("http://{receiver}/hook");
    let mut web = Web::new(&app);
    web.sign_in(&key).await;

    let page = web.get("/destinations").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("href=\"/destinations\" aria-current=\"page\">Destinations"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"no-destinations\""));
    let csrf = page.csrf();

    // Without the session's token nothing is added.
    let p = web
        .post("/destinations", &[("csrf", "x"), ("url", &url)])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(
        web.get("/destinations")
            .await
            .body
            .contains("id=\"no-destinations\"")
    );

    // A bad event type is the use case's error, with the form's values kept.
    let p = web
        .post(
            "/destinations",
            &[("csrf", &csrf), ("url", &url), ("event_types", "nonsense")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"add-error\""), "{}", p.body);
    assert!(p.body.contains("is not an event type"), "{}", p.body);
    assert!(p.body.contains(&format!("value=\"{url}\"")), "{}", p.body);

    let p = web
        .post(
            "/destinations",
            &[
                ("csrf", &csrf),
                ("url", &url),
                ("event_types", "suppression.created, email.*"),
                ("description", "<b>bold</b> backend"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("shown only this once"), "{}", p.body);
    let first_secret = secret(&p.body);
    assert!(first_secret.starts_with("whsec_"), "{first_secret}");

    // Listed, with its filters, escaped, and the secret never again.
    let list = web.get("/destinations").await;
    assert!(list.body.contains(&url), "{}", list.body);
    assert!(list.body.contains("suppression.created, email.*"));
    assert!(
        list.body.contains("&#60;b&#62;bold&#60;/b&#62; backend"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<b>bold</b>"));
    assert!(!list.body.contains(&first_secret));
    let id = destination_id(&list.body);
    let path = format!("/destinations/{id}");
    let detail = web.get(&path).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert!(!detail.body.contains(&first_secret));
    assert!(
        detail.body.contains("id=\"no-messages\""),
        "{}",
        detail.body
    );

    // One of our own events: the receiver fails it with a hostile answer, shown as text.
    app.call(
        Method::POST,
        "/api/integrations/acme/suppressions",
        Some(ADMIN_TOKEN),
        Some(json!({"email": "gone@example.com", "reason": "unsubscribed"})),
    )
    .await
    .expect_ok(201);
    let start = Instant::now();
    let detail = loop {
        let p = web.get(&path).await;
        if p.body.contains("<strong>502</strong>") {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{}", p.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(detail.body.contains("suppression.created"));
    assert!(
        detail.body.contains("&#60;script&#62;alert("),
        "{}",
        detail.body
    );
    assert!(!detail.body.contains(HOSTILE));
    let marker = "id=\"retry-";
    let at = detail.body.find(marker).unwrap() + marker.len();
    let message_id = &detail.body[at..at + detail.body[at..].find('"').unwrap()];
    assert!(message_id.starts_with("msg_"), "{message_id}");

    // The status filter and the API's cursor.
    let failed = web.get(&format!("{path}?status=failed")).await;
    assert!(
        failed.body.contains("id=\"no-messages\""),
        "{}",
        failed.body
    );
    let pending = web.get(&format!("{path}?status=pending")).await;
    assert!(pending.body.contains(message_id), "{}", pending.body);
    let bad = web.get(&format!("{path}?cursor=nonsense")).await;
    assert!(bad.body.contains("id=\"messages-error\""), "{}", bad.body);

    // Retry, replay, disable and enable, each behind the token.
    let retry = format!("{path}/messages/{message_id}/retry");
    assert_eq!(
        web.post(&retry, &[("csrf", "x")]).await.status,
        StatusCode::FORBIDDEN
    );
    let p = web.post(&retry, &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), format!("{path}?done=retried"));

    let replay = format!("{path}/replay");
    let p = web
        .post(&replay, &[("csrf", &csrf), ("since", "yesterday")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"action-error\""), "{}", p.body);
    let since = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    assert_eq!(
        web.post(&replay, &[("csrf", "x"), ("since", &since)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let p = web
        .post(&replay, &[("csrf", &csrf), ("since", &since)])
        .await;
    assert_eq!(p.location(), format!("{path}?done=replayed"), "{}", p.body);

    let enabled = format!("{path}/enabled");
    assert_eq!(
        web.post(&enabled, &[("csrf", "x"), ("enabled", "false")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let p = web
        .post(&enabled, &[("csrf", &csrf), ("enabled", "false")])
        .await;
    assert_eq!(p.location(), format!("{path}?done=disabled"), "{}", p.body);
    let page = web.get(p.location()).await;
    assert!(page.body.contains("id=\"state\">disabled"), "{}", page.body);
    assert!(page.body.contains("id=\"enable\""));
    let p = web
        .post(&enabled, &[("csrf", &csrf), ("enabled", "true")])
        .await;
    assert_eq!(p.location(), format!("{path}?done=enabled"));
    assert!(web.get(&path).await.body.contains("id=\"state\">enabled"));

    // Rotation shows the new secret once and says the old one signs 24 hours more.
    let rotate = format!("{path}/rotate");
    assert_eq!(
        web.post(&rotate, &[("csrf", "x")]).await.status,
        StatusCode::FORBIDDEN
    );
    let p = web.post(&rotate, &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let second_secret = secret(&p.body);
    assert_ne!(second_secret, first_secret);
    assert!(p.body.contains("id=\"previous-secret\""), "{}", p.body);
    assert!(p.body.contains("24 hours"));
    assert!(!web.get(&path).await.body.contains(&second_secret));

    // Delete asks for the id first; a wrong one deletes nothing.
    let delete = format!("{path}/delete");
    assert_eq!(
        web.post(&delete, &[("csrf", "x"), ("confirm", &id)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let p = web.post(&delete, &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("id=\"delete-confirm\""), "{}", p.body);
    let p = web
        .post(&delete, &[("csrf", &csrf), ("confirm", "dst_wrong")])
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"confirm-error\""));
    assert_eq!(web.get(&path).await.status, StatusCode::OK);
    let p = web
        .post(&delete, &[("csrf", &csrf), ("confirm", &id)])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/destinations?done=deleted");
    let list = web.get(p.location()).await;
    assert!(list.body.contains("id=\"flash\""), "{}", list.body);
    assert!(
        list.body.contains("id=\"no-destinations\""),
        "{}",
        list.body
    );
    assert_eq!(web.get(&path).await.status, StatusCode::NOT_FOUND);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn another_publishers_session_cannot_see_or_act_on_a_destination() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(&db, &random_master_key(), &[ALLOW_PRIVATE]).await;
    let (_, acme) = app.create_key("acme").await;
    let (_, other) = app.create_key("other").await;
    let url = format!("http://{}/hook", failing_receiver().await);
    let mut web = Web::new(&app);
    web.sign_in(&acme).await;
    let csrf = web.get("/destinations").await.csrf();
    let p = web
        .post("/destinations", &[("csrf", &csrf), ("url", &url)])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let id = destination_id(&web.get("/destinations").await.body);
    let path = format!("/destinations/{id}");

    let mut theirs = Web::new(&app);
    theirs.sign_in(&other).await;
    let list = theirs.get("/destinations").await;
    assert!(!list.body.contains(&url), "{}", list.body);
    assert!(!list.body.contains(&id));
    let csrf = list.csrf();
    assert_eq!(theirs.get(&path).await.status, StatusCode::NOT_FOUND);
    for (action, fields) in [
        ("rotate", vec![("csrf", csrf.as_str())]),
        (
            "delete",
            vec![("csrf", csrf.as_str()), ("confirm", id.as_str())],
        ),
        (
            "enabled",
            vec![("csrf", csrf.as_str()), ("enabled", "false")],
        ),
        (
            "replay",
            vec![("csrf", csrf.as_str()), ("since", "2026-01-01T00:00")],
        ),
        ("messages/msg_x/retry", vec![("csrf", csrf.as_str())]),
    ] {
        let p = theirs.post(&format!("{path}/{action}"), &fields).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{action}: {}", p.body);
        assert!(!p.body.contains("whsec_"), "{action}");
    }
    // Still there, unchanged, for its owner.
    let page = web.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"state\">enabled"), "{}", page.body);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_private_url_is_refused_with_the_guards_reason() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("acme").await;
    let mut web = Web::new(&app);
    web.sign_in(&key).await;
    let csrf = web.get("/destinations").await.csrf();
    let p = web
        .post(
            "/destinations",
            &[("csrf", &csrf), ("url", "https://127.0.0.1/hook")],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"add-error\""), "{}", p.body);
    assert!(p.body.contains("resolves to 127.0.0.1"), "{}", p.body);
    assert!(
        p.body
            .contains("destinations must be reachable on the public internet")
    );
    assert!(p.body.contains("value=\"https://127.0.0.1/hook\""));
    assert!(p.body.contains("id=\"no-destinations\""));
    app.stop().await;
    db.cleanup().await;
}
