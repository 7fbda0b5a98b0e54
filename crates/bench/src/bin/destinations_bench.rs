//! The destinations benchmark (issue 19): events per second from webhook receipt to delivery at
//! a destination, and the latency that path adds, on SQLite (default) and PostgreSQL
//! (`BENCH_DATABASE_URL`).
//!
//! The real service runs in this process (release build) with one publisher, its Iterable
//! integration and one destination: a bare axum handler on a local port answering 204. The
//! benchmark POSTs `--events` Iterable system webhooks (one `emailOpen` each, readers spread over
//! `--readers` addresses, so per-reader ordering is exercised) to the integration's webhook URL,
//! `--concurrency` at a time, and notes when each request was sent and when its event arrived
//! at the destination, signed. Latency = arrival − send; throughput = events ÷ (last arrival −
//! first send).
//!
//!     cargo build --release -p bench
//!     target/release/destinations-bench --events 5000
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/destinations-bench --events 5000
#![forbid(unsafe_code)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::StatusCode, routing::post};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use domain::{Platform, PublisherId, Region};
use futures::StreamExt as _;
use rand::RngCore as _;
use sharpsend::{
    Application, Config,
    destinations::{self, Registration},
    integrations::{self, NewConnection},
};
use store::DestinationOwner;
use tokio_util::sync::CancellationToken;

const PUBLISHER: &str = "bench-publisher";

#[derive(clap::Parser)]
struct Args {
    /// Webhook events to send.
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Distinct readers (addresses) the events are about.
    #[arg(long, default_value_t = 500)]
    readers: usize,
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = clap::Parser::parse();
    let tmp = tempfile::tempdir()?;
    let (db_url, backend) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(url) => (fresh_pg(&url).await?, "PostgreSQL"),
        Err(_) => (
            format!("sqlite://{}", tmp.path().join("bench.db").display()),
            "SQLite",
        ),
    };
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let vars: HashMap<&str, String> = HashMap::from([
        ("SHARPSEND_LISTEN", "127.0.0.1:0".to_owned()),
        ("SHARPSEND_DATABASE_URL", db_url),
        ("SHARPSEND_MASTER_KEY", STANDARD.encode(key)),
        (
            "SHARPSEND_ADMIN_TOKEN",
            "bench-admin-token-0123456789".to_owned(),
        ),
        ("SHARPSEND_SYNC_INTERVAL_MINUTES", "0".to_owned()),
        ("SHARPSEND_API_RATE_LIMIT", "0".to_owned()),
        ("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE", "true".to_owned()),
    ]);
    let config =
        Config::from_lookup(|k| vars.get(k).cloned()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = Application::build(config).await?;
    let state = app.state().clone();
    let ours = format!("http://{}", app.local_addr());
    let publisher = PublisherId::parse(PUBLISHER)?;
    let secret = "bench-webhook-secret-0123456789abcdef".to_owned();
    let integration = integrations::connect(
        &state,
        NewConnection {
            publisher: publisher.clone(),
            platform: Platform::Iterable,
            region: Some(Region::Us),
            config: serde_json::json!({}),
            secrets: vec![
                ("apiKey", "bench-key".to_owned().into()),
                (
                    sharpsend::platforms::iterable::webhooks::SECRET_FIELD,
                    secret.clone().into(),
                ),
            ],
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let webhook_url = integration.webhook_url.replace(&state.public_origin, &ours);

    // The destination: records when each event arrived.
    let arrivals: Arrivals = Arc::default();
    let receiver = axum::Router::new()
        .route(
            "/hook",
            post(|State(arrivals): State<Arrivals>, body: Bytes| async move {
                let now = Instant::now();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                    && let Some(id) = v["data"]["platformEventId"].as_str()
                {
                    arrivals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.to_owned(), now);
                }
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    destinations::create(
        &state,
        DestinationOwner::Publisher(publisher),
        Registration {
            url: hook,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let http = reqwest::Client::new();
    let started = Instant::now();
    let sent: Vec<(String, Instant)> = futures::stream::iter(0..args.events)
        .map(|i| {
            let http = http.clone();
            let url = webhook_url.clone();
            let secret = secret.clone();
            let readers = args.readers.max(1);
            async move {
                let body = serde_json::json!({
                    "email": format!("reader{}@example.com", i % readers),
                    "eventName": "emailOpen",
                    "dataFields": {"messageId": format!("m-{i}"), "campaignId": 1,
                        "createdAt": "2026-12-04 10:00:00 +00:00"},
                });
                let at = Instant::now();
                let resp = http
                    .post(&url)
                    .header("X-SharpSend-Webhook-Secret", &secret)
                    .json(&body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => eprintln!("webhook {i}: HTTP {}", r.status()),
                    Err(e) => eprintln!("webhook {i}: {e}"),
                }
                (format!("emailOpen:m-{i}:1796378400000"), at)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let accepted_in = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = arrivals.lock().unwrap_or_else(|e| e.into_inner()).len();
        if n >= args.events {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {} events arrived in 10 minutes",
            args.events
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(id, at)| {
            arrived
                .get(id)
                .map(|a| a.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    anyhow::ensure!(
        latencies.len() == args.events,
        "{} of {} arrivals matched their webhook (event id format changed?)",
        latencies.len(),
        args.events
    );
    latencies.sort_by(f64::total_cmp);
    let last = arrived.values().max().copied().unwrap_or(started);
    let total = last.duration_since(started).as_secs_f64();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "| {backend} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
        args.events,
        args.concurrency,
        args.events as f64 / accepted_in.as_secs_f64(),
        args.events as f64 / total,
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    shutdown.cancel();
    let _ = serving.await;
    Ok(())
}

/// A new database on the server `url` names, so runs never see each other's rows.
async fn fresh_pg(url: &str) -> anyhow::Result<String> {
    use sqlx::Executor as _;
    let name = format!("bench_dst_{}", std::process::id());
    let pool = sqlx::PgPool::connect(url).await?;
    pool.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await?;
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let mut parsed = url::Url::parse(url)?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}
