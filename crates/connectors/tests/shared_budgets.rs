//! Budgets shared through Redis: three connectors (standing in for three replicas, each with its
//! own UpstreamClient and Redis connection) hammer one Keap app on the simulator, whose 25/s spike
//! arrest is enforced. With Redis they receive no 429 and together reach ≥ 90 % of the allowed
//! rate; with per-process budgets the same run does get 429s.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use connectors::{
    Connector as _, Settings,
    budget::SharedBudgets,
    keap::{ContactQuery, KeapConnector, KeapCredential},
};
use secrecy::SecretString;
use sim_core::{Binder, SimClient};

const REDIS: &str = "redis://127.0.0.1:6379";
const RUN: Duration = Duration::from_secs(4);
/// The simulator's (and Keap's) OAuth spike arrest.
const ALLOWED_PER_SECOND: f64 = 25.0;

async fn redis_answers() -> bool {
    let Ok(client) = redis::Client::open(REDIS) else {
        return false;
    };
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Ok(mut c) => redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

struct Outcome {
    ok: u64,
    rate: f64,
    received_429: u64,
}

/// Three replicas, six workers each, for [`RUN`]; `redis_prefix` shares their budgets.
async fn hammer(redis_prefix: Option<&str>) -> Outcome {
    let sim = sim_keap::start(&mut Binder::ephemeral(), sim_keap::Options::default())
        .await
        .unwrap();
    let origin = sim.origin("SHARPSEND_KEAP_API_URL").unwrap();
    let control = SimClient::new(origin);
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + RUN;
    let mut tasks = Vec::new();
    for _replica in 0..3 {
        let mut settings = Settings::defaults();
        settings.upstreams.keap_api = format!("{origin}/").parse().unwrap();
        settings.shared_budgets =
            redis_prefix.map(|p| Arc::new(SharedBudgets::new(REDIS, p).unwrap()));
        let keap = Arc::new(KeapConnector::new(&settings));
        for _worker in 0..6 {
            let keap = keap.clone();
            let ok = ok.clone();
            tasks.push(tokio::spawn(async move {
                let cred = KeapCredential::oauth(
                    SecretString::from(sim_keap::ACCESS_TOKEN),
                    Some(sim_keap::CLIENT_ID),
                );
                let q = ContactQuery {
                    limit: 1,
                    ..ContactQuery::default()
                };
                while Instant::now() < deadline {
                    if keap.list_contacts(&cred, &q).await.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    Outcome {
        ok,
        rate: ok as f64 / elapsed,
        received_429: control.counter("429").await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_keap_budget_through_redis() {
    if !redis_answers().await {
        println!("note: Redis does not answer at {REDIS}; the shared-budget test is skipped");
        return;
    }
    let prefix = format!("sharpsend-test:{}:budget", uuid_like());
    let shared = hammer(Some(&prefix)).await;
    println!(
        "with Redis: {} calls, {:.1}/s, {} × 429",
        shared.ok, shared.rate, shared.received_429
    );
    assert_eq!(shared.received_429, 0, "no 429 with shared budgets");
    assert!(
        shared.rate >= 0.9 * ALLOWED_PER_SECOND,
        "together at least 90% of Keap's 25/s: {:.1}/s",
        shared.rate
    );

    // The same run with per-process budgets oversubscribes Keap: the test can fail.
    let local = hammer(None).await;
    println!(
        "per process: {} calls, {:.1}/s, {} × 429",
        local.ok, local.rate, local.received_429
    );
    assert!(local.received_429 > 0, "three local budgets exceed Keap's");
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_the_local_budget() {
    // Nothing listens on port 1: every call still goes through, on the local budget.
    let sim = sim_keap::start(&mut Binder::ephemeral(), sim_keap::Options::default())
        .await
        .unwrap();
    let origin = sim.origin("SHARPSEND_KEAP_API_URL").unwrap();
    let mut settings = Settings::defaults();
    settings.upstreams.keap_api = format!("{origin}/").parse().unwrap();
    settings.shared_budgets = Some(Arc::new(
        SharedBudgets::new("redis://127.0.0.1:1", "sharpsend-test:down").unwrap(),
    ));
    let keap = KeapConnector::new(&settings);
    let cred = KeapCredential::oauth(
        SecretString::from(sim_keap::ACCESS_TOKEN),
        Some(sim_keap::CLIENT_ID),
    );
    let q = ContactQuery {
        limit: 1,
        ..ContactQuery::default()
    };
    let started = Instant::now();
    for _ in 0..10 {
        keap.list_contacts(&cred, &q).await.unwrap();
    }
    // The first call tried Redis once; later ones skip it during the cool-down.
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A per-run key prefix (no uuid dependency needed).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}-{}", std::process::id())
}

/// A Keap stand-in whose headers say `available` of 100 calls are left in a one-second window.
async fn keap_with_headroom(available: u32) -> (sim_core::SimServer, String) {
    use axum::{Router, routing::get};
    let router = Router::new().route(
        "/crm/rest/v1/contacts",
        get(move || async move {
            (
                [
                    ("content-type", "application/json".to_owned()),
                    ("x-keap-product-throttle-limit", "100".to_owned()),
                    ("x-keap-product-throttle-time-unit", "second".to_owned()),
                    ("x-keap-product-throttle-interval", "1".to_owned()),
                    ("x-keap-product-throttle-available", available.to_string()),
                ],
                r#"{"contacts":[],"count":0}"#,
            )
        }),
    );
    let server = sim_core::spawn(Binder::ephemeral().bind().await.unwrap(), router).unwrap();
    let origin = format!("{}/", server.origin());
    (server, origin)
}

async fn four_calls(origin: &str) -> Duration {
    let mut settings = Settings::defaults();
    settings.upstreams.keap_api = origin.parse().unwrap();
    let keap = KeapConnector::new(&settings);
    let cred = KeapCredential::oauth(SecretString::from("token"), Some("client"));
    let q = ContactQuery {
        limit: 1,
        ..ContactQuery::default()
    };
    let started = Instant::now();
    for _ in 0..4 {
        keap.list_contacts(&cred, &q).await.unwrap();
    }
    started.elapsed()
}

#[tokio::test]
async fn keap_headers_showing_a_low_window_slow_calls_down() {
    // Plenty left: four calls go at once (well inside the 6-call burst).
    let (_srv, origin) = keap_with_headroom(90).await;
    let fast = four_calls(&origin).await;
    assert!(fast < Duration::from_millis(300), "{fast:?}");
    // 3 of 100 left in a one-second window: the calls are spread ⅓ s apart.
    let (_srv, origin) = keap_with_headroom(3).await;
    let slow = four_calls(&origin).await;
    assert!(slow >= Duration::from_millis(950), "{slow:?}");
}

#[tokio::test]
async fn redis_budgets_queue_callers_and_refuse_waits_beyond_the_maximum() {
    use connectors::{
        budget::{RateBudget, RedisBudget},
        rate::Rate,
    };
    if !redis_answers().await {
        println!("note: Redis does not answer at {REDIS}; skipped");
        return;
    }
    let prefix = format!("sharpsend-test:{}:budget", uuid_like());
    let budgets = [
        ("trigger", Rate::new(1, Duration::from_secs(10))),
        ("app", Rate::per_second(10).with_burst(1)),
    ];
    // Two replicas: one trigger per 10 s between them, the second told how long to wait.
    let a = RedisBudget::new(
        domain::Platform::Customerio,
        &budgets,
        Arc::new(SharedBudgets::new(REDIS, &prefix).unwrap()),
    );
    let b = RedisBudget::new(
        domain::Platform::Customerio,
        &budgets,
        Arc::new(SharedBudgets::new(REDIS, &prefix).unwrap()),
    );
    assert_eq!(
        a.acquire("trigger", "k", Duration::ZERO).await,
        Ok(Duration::ZERO)
    );
    let e = b.acquire("trigger", "k", Duration::ZERO).await.unwrap_err();
    assert!(
        e.after > Duration::from_secs(9) && e.after <= Duration::from_secs(10),
        "{:?}",
        e.after
    );
    // Within the maximum, callers queue: 10/s without burst → the fifth waits ~400 ms.
    let started = Instant::now();
    for i in 0..5 {
        let budget = if i % 2 == 0 { &a } else { &b };
        budget
            .acquire("app", "k", Duration::from_secs(5))
            .await
            .unwrap();
    }
    let spent = started.elapsed();
    assert!(
        spent >= Duration::from_millis(350) && spent < Duration::from_secs(2),
        "{spent:?}"
    );
}

#[tokio::test]
async fn every_replica_sees_the_shared_budgets_use_and_429s() {
    use sim_core::{Fault, FaultKind};
    if !redis_answers().await {
        println!("note: Redis does not answer at {REDIS}; skipped");
        return;
    }
    let sim = sim_keap::start(&mut Binder::ephemeral(), sim_keap::Options::default())
        .await
        .unwrap();
    let origin = sim.origin("SHARPSEND_KEAP_API_URL").unwrap();
    let control = SimClient::new(origin);
    let prefix = format!("sharpsend-test:{}:budget", uuid_like());
    let replica = |shared: bool| {
        let mut settings = Settings::defaults();
        settings.upstreams.keap_api = format!("{origin}/").parse().unwrap();
        settings.shared_budgets =
            shared.then(|| Arc::new(SharedBudgets::new(REDIS, &prefix).unwrap()));
        KeapConnector::new(&settings)
    };
    let (a, b, alone) = (replica(true), replica(true), replica(false));
    let cred = KeapCredential::oauth(
        SecretString::from(sim_keap::ACCESS_TOKEN),
        Some(sim_keap::CLIENT_ID),
    );
    let key = cred.budget_key().to_owned();
    let q = ContactQuery {
        limit: 1,
        ..ContactQuery::default()
    };
    for _ in 0..4 {
        a.list_contacts(&cred, &q).await.unwrap();
    }
    // Replica B sent nothing, yet sees A's turns in the shared bucket (24/s: at most one of
    // the four drained meanwhile).
    let (classes, shared) = b.limits_view(&[&key]).await;
    assert!(shared);
    let oauth = classes.iter().find(|c| c.class == "oauth").unwrap();
    assert!((3..=4).contains(&oauth.used), "{oauth:?}");
    assert_eq!(b.limits().snapshot(&[&key])[0].used, 0);

    // A 429 that A received is counted for B too.
    control
        .inject(&Fault::new("/crm/rest/v1/contacts", FaultKind::RateLimit).times(1))
        .await
        .unwrap();
    let _ = a.list_contacts(&cred, &q).await;
    let mine = a.limits().snapshot(&[&key]);
    let oauth = mine.iter().find(|c| c.class == "oauth").unwrap();
    assert_eq!(oauth.rate_limited_last_hour, 1, "{oauth:?}");
    let (classes, _) = b.limits_view(&[&key]).await;
    let oauth = classes.iter().find(|c| c.class == "oauth").unwrap();
    assert_eq!(oauth.rate_limited_last_hour, 1, "{oauth:?}");

    // Without Redis the figures are the process's own, and say so.
    let (classes, shared) = alone.limits_view(&[&key]).await;
    assert!(!shared);
    let oauth = classes.iter().find(|c| c.class == "oauth").unwrap();
    assert_eq!((oauth.used, oauth.rate_limited_last_hour), (0, 0));
}
