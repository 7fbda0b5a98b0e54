//! The shared retry policy and budgets, against a real server with injected faults.
#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, routing::any};
use connectors::{
    ErrorKind, Retry,
    http::{Call, NoObserver, RetryPolicy, UpstreamClient},
    rate::Rate,
};
use domain::Platform;
use sim_core::{Binder, Control, Fault, FaultKind, SimClient};

async fn server() -> (sim_core::SimServer, SimClient) {
    let control = Control::new(
        "test",
        Arc::new(|_: &str| {
            axum::response::IntoResponse::into_response((
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            ))
        }),
    );
    let router = control.wrap(Router::new().route("/x", any(|| async { "ok" })));
    let server = sim_core::spawn(Binder::ephemeral().bind().await.unwrap(), router).unwrap();
    let client = SimClient::new(server.origin());
    (server, client)
}

fn client(budgets: &[(&'static str, Rate)]) -> UpstreamClient {
    UpstreamClient::new(
        Platform::Iterable,
        Duration::from_millis(500),
        budgets,
        Arc::new(NoObserver),
    )
    .with_policy(RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(40),
        max_total_wait: Duration::from_secs(3),
    })
}

fn call(idempotent: bool) -> Call<'static> {
    Call {
        operation: "test",
        class: "x",
        budget_key: "key-digest",
        idempotent,
    }
}

#[tokio::test]
async fn idempotent_calls_retry_5xx_and_resets_then_succeed() {
    let (srv, sim) = server().await;
    let url = format!("{}/x", srv.origin());
    sim.inject(&Fault::status("/x", 503).times(2))
        .await
        .unwrap();
    let answer = client(&[]).send(call(true), |h| h.get(&url)).await.unwrap();
    assert_eq!(answer.body, "ok");
    assert_eq!(sim.requests(Some("/x")).await.unwrap().len(), 3);

    sim.reset().await.unwrap();
    sim.inject(&Fault::new("/x", FaultKind::Reset).times(1))
        .await
        .unwrap();
    let answer = client(&[]).send(call(true), |h| h.get(&url)).await.unwrap();
    assert_eq!(answer.body, "ok");
}

#[tokio::test]
async fn non_idempotent_calls_are_not_repeated_after_an_ambiguous_failure() {
    let (srv, sim) = server().await;
    let url = format!("{}/x", srv.origin());
    sim.inject(&Fault::status("/x", 502).times(1))
        .await
        .unwrap();
    let err = client(&[])
        .send(call(false), |h| h.post(&url))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(err.platform_status, Some(502));
    assert_eq!(
        sim.requests(Some("/x")).await.unwrap().len(),
        1,
        "sent once"
    );
    // A 429 was certainly not processed: retried even for a write.
    sim.inject(&Fault::new("/x", FaultKind::RateLimit).times(1))
        .await
        .unwrap();
    let started = Instant::now();
    client(&[])
        .send(call(false), |h| h.post(&url))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test]
async fn persistent_failures_end_with_the_right_kind_and_retry_hint() {
    let (srv, sim) = server().await;
    let url = format!("{}/x", srv.origin());
    sim.inject(&Fault::status("/x", 500)).await.unwrap();
    let err = client(&[])
        .send(call(true), |h| h.get(&url))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retry),
        (ErrorKind::Unavailable, Retry::Persistent)
    );
    assert_eq!(
        sim.requests(Some("/x")).await.unwrap().len(),
        4,
        "max_attempts"
    );

    sim.reset().await.unwrap();
    sim.inject(&Fault::new("/x", FaultKind::RateLimit))
        .await
        .unwrap();
    let err = client(&[])
        .send(call(true), |h| h.get(&url))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());

    // Unreachable: a port nobody listens on.
    let port = Binder::ephemeral()
        .bind()
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}/x");
    let err = client(&[])
        .send(call(false), |h| h.get(&dead))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
}

#[tokio::test]
async fn budgets_slow_calls_down_before_the_platform_must() {
    let (srv, sim) = server().await;
    let url = format!("{}/x", srv.origin());
    let c = client(&[("x", Rate::per_second(5))]);
    let started = Instant::now();
    for _ in 0..8 {
        c.send(call(true), |h| h.get(&url)).await.unwrap();
    }
    // 5 at once (burst), then one every 200 ms.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    assert_eq!(sim.counter("429").await.unwrap(), 0);
    // Budgets are per credential: another key is not slowed by the first.
    let other = Call {
        budget_key: "another-key",
        ..call(true)
    };
    let started = Instant::now();
    for _ in 0..5 {
        c.send(other, |h| h.get(&url)).await.unwrap();
    }
    // Sharing the first key's empty bucket would take ~1 s.
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn malformed_json_is_retried_where_safe_then_a_connection_failure() {
    let (srv, sim) = server().await;
    let url = format!("{}/x", srv.origin());
    sim.inject(&Fault::new("/x", FaultKind::Malformed).times(1))
        .await
        .unwrap();
    let answer = client(&[]).send(call(true), |h| h.get(&url)).await.unwrap();
    assert_eq!(answer.body, "ok", "a garbled answer to a read is retried");

    sim.inject(&Fault::new("/x", FaultKind::Malformed))
        .await
        .unwrap();
    let err = client(&[])
        .send(call(true), |h| h.get(&url))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.retry),
        (ErrorKind::Unavailable, Retry::Persistent)
    );
    assert!(err.message.contains("malformed"), "{}", err.message);

    // A write that got a garbled answer may have happened: not repeated.
    sim.reset().await.unwrap();
    sim.inject(&Fault::new("/x", FaultKind::Malformed).times(1))
        .await
        .unwrap();
    let err = client(&[])
        .send(call(false), |h| h.post(&url))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(sim.requests(Some("/x")).await.unwrap().len(), 1);
}
