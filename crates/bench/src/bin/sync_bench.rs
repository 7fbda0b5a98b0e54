//! The sync benchmark (issue 7): Keap contacts from the simulator into SQLite (and PostgreSQL
//! with `BENCH_DATABASE_URL`), measured against the raw rate of fetching the same pages.
//!
//! For each size (`--small`, default 100,000, and `--contacts`, default 1,000,000) and backend:
//! 1. **raw**: this process fetches every page of `GET /crm/rest/v2/contacts` (1,000 a page, as
//!    the connector does), decodes it and throws it away;
//! 2. **sync**: a real `sharpsend serve` process (release build, next to this binary) connects
//!    Keap over its API and runs `POST …/keap/sync {"kinds":["contacts"]}`; its RSS is sampled
//!    from `/proc` every 50 ms, and its peak (`VmHWM`) read before it exits.
//!
//! Both run twice: with the simulator's limits lifted (what the engine costs), and with Keap's
//! limits enforced (25 requests/s spike arrest, 1,500/min), where the figure of merit is the share
//! of the allowed request rate reached and the 429s received (target: ≥ 90 %, zero).
//!
//!     cargo build --release -p sharpsend -p bench
//!     target/release/sync-bench                       # SQLite
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres target/release/sync-bench
//!     target/release/sync-bench --limits keap          # one half only (`lifted` or `keap`)
//!
//! `--iterable-users N` (issue 15) runs the Iterable `users` export instead, on each backend:
//! raw = this process streams `GET /api/export/data.json?dataTypeName=user` and counts its lines;
//! sync = the service's `users` sync of the same export (one export, so Iterable's 4 exports a
//! minute are enforced as shipped and never reached), with its RSS sampled the same way.
//!
//!     target/release/sync-bench --iterable-users 1000000
//!
//! `--streams` (issue 15) runs the biggest stream of each platform side by side, `--size` rows
//! each (default 1,000,000): Keap contacts, Iterable users, Iterable events of one type
//! (`emailSend`: the simulator's `event_type` makes every generated event one), Customer.io
//! members of one segment (the simulator's segment 1 holds every person). Per row: raw rate, sync
//! rate, their ratio, pages a second against the request rate the platform publishes (Keap 25/s,
//! Customer.io's App API 10/s; Iterable's exports are 4 a minute and one is used), the service's
//! RSS at the start and peak, and the 429s the raw client and the sync received; with the limits
//! lifted (simulator and service budgets) and enforced (as shipped). The simulators generate
//! their rows on demand, so none holds the stream in memory.
//!
//!     target/release/sync-bench --streams                       # all four, both halves
//!     target/release/sync-bench --streams --limits lifted --only iterable-events,customerio-members

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;

const ADMIN: &str = "bench-admin-token-0123456789";
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[derive(Clone, Copy, PartialEq)]
enum Limits {
    Lifted,
    Keap,
}

impl Limits {
    fn sim(self) -> sim_keap::Limits {
        match self {
            Limits::Keap => sim_keap::Limits::default(),
            Limits::Lifted => {
                let lots = sim_keap::ClassLimits {
                    spike_per_second: 1_000_000,
                    per_minute: 100_000_000,
                    per_day: 1_000_000_000,
                };
                sim_keap::Limits {
                    oauth: lots,
                    key: lots,
                    tenant_per_minute: 100_000_000,
                    tenant_per_day: 1_000_000_000,
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Limits::Lifted => "limits lifted",
            Limits::Keap => "Keap limits (25/s)",
        }
    }
}

struct Sim {
    _running: sim_core::Running,
    origin: String,
}

async fn start_sim(contacts: u64, limits: Limits) -> anyhow::Result<Sim> {
    let running = sim_keap::start(
        &mut sim_core::Binder::ephemeral(),
        sim_keap::Options {
            contacts,
            limits: limits.sim(),
            ..sim_keap::Options::default()
        },
    )
    .await?;
    let origin = running
        .origin("SHARPSEND_KEAP_API_URL")
        .context("keap origin")?
        .trim_end_matches('/')
        .to_owned();
    Ok(Sim {
        _running: running,
        origin,
    })
}

async fn counter(http: &reqwest::Client, sim: &Sim, name: &str) -> anyhow::Result<u64> {
    let c: Value = http
        .get(format!("{}/_sim/counters", sim.origin))
        .send()
        .await?
        .json()
        .await?;
    Ok(c[name].as_u64().unwrap_or(0))
}

struct Raw {
    records: u64,
    pages: u64,
    secs: f64,
}

/// Fetches every page of a cursor-paged list and discards it, as fast as the simulator answers
/// (a 429 waits 50 ms and asks again): `page` builds the request for a cursor, `items` names the
/// page's array, `next` the field that carries the next cursor.
async fn raw_walk(
    page: impl Fn(Option<&str>) -> reqwest::RequestBuilder,
    items: &str,
    next: &str,
) -> anyhow::Result<Raw> {
    let started = Instant::now();
    let (mut records, mut pages) = (0u64, 0u64);
    let mut cursor: Option<String> = None;
    loop {
        let resp = page(cursor.as_deref()).send().await?;
        if resp.status() == 429 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let body: Value = resp.error_for_status()?.json().await?;
        pages += 1;
        records += body[items].as_array().map_or(0, |a| a.len() as u64);
        match body[next].as_str() {
            Some(t) if !t.is_empty() => cursor = Some(t.to_owned()),
            _ => break,
        }
    }
    Ok(Raw {
        records,
        pages,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Every Keap contact page, fetched and discarded.
async fn raw_fetch(http: &reqwest::Client, origin: &str) -> anyhow::Result<Raw> {
    raw_walk(
        |token| {
            let req = http
                .get(format!("{origin}/crm/rest/v2/contacts"))
                .bearer_auth(sim_keap::ACCESS_TOKEN)
                // The same pages as the connector's: 1,000 a page, the same fields.
                .query(&[
                    ("page_size", "1000"),
                    ("fields", connectors::keap::crm::CONTACT_FIELDS),
                ]);
            match token {
                Some(t) => req.query(&[("page_token", t)]),
                None => req,
            }
        },
        "contacts",
        "next_page_token",
    )
    .await
}

struct Service {
    child: Child,
    origin: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// With the simulator's limits lifted, the service's own budgets are lifted too
/// (`SHARPSEND_RATE_BUDGET_PERCENT`), so the run measures the engine, not Keap's 24/s pace.
async fn start_service(db_url: &str, sim: &Sim, limits: Limits) -> anyhow::Result<Service> {
    let percent = if limits == Limits::Lifted {
        "100000"
    } else {
        "100"
    };
    start_service_with(
        db_url,
        &[
            ("SHARPSEND_KEAP_API_URL", sim.origin.as_str()),
            ("SHARPSEND_RATE_BUDGET_PERCENT", percent),
        ],
    )
    .await
}

/// A release `sharpsend serve` on a fresh port, with `env` (upstream origins, budgets) set.
async fn start_service_with(db_url: &str, env: &[(&str, &str)]) -> anyhow::Result<Service> {
    let exe: PathBuf = std::env::current_exe()?
        .parent()
        .context("binary folder")?
        .join("sharpsend");
    if !exe.exists() {
        bail!(
            "{} not found: cargo build --release -p sharpsend",
            exe.display()
        );
    }
    let port = free_port()?;
    let child = Command::new(exe)
        .arg("serve")
        .env("SHARPSEND_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHARPSEND_DATABASE_URL", db_url)
        .env("SHARPSEND_MASTER_KEY", MASTER_KEY)
        .env("SHARPSEND_ADMIN_TOKEN", ADMIN)
        .env("SHARPSEND_SYNC_INTERVAL_MINUTES", "0")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let service = Service {
        child,
        origin: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{}/readyz", service.origin))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(service);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the service did not become ready")
}

/// (current RSS, peak RSS) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Synced {
    records: u64,
    pages: u64,
    secs: f64,
    peak_rss_kib: u64,
    start_rss_kib: u64,
}

async fn sync(http: &reqwest::Client, service: &Service) -> anyhow::Result<Synced> {
    let connect = json!({
        "publisherId": "bench",
        "clientId": sim_keap::CLIENT_ID,
        "clientSecret": sim_keap::CLIENT_SECRET,
        "accessToken": sim_keap::ACCESS_TOKEN,
        "refreshToken": sim_keap::REFRESH_TOKEN,
        "expiresIn": 86_400,
    });
    sync_kind(http, service, "keap", &connect, "contacts").await
}

/// Connects `platform` with `connect` as publisher `bench`, syncs `kind` and times the job.
async fn sync_kind(
    http: &reqwest::Client,
    service: &Service,
    platform: &str,
    connect: &Value,
    kind: &str,
) -> anyhow::Result<Synced> {
    let pid = service.child.id();
    let api = |path: &str| format!("{}{path}", service.origin);
    let connect = http
        .post(api(&format!("/api/integrations/{platform}/connect")))
        .bearer_auth(ADMIN)
        .json(connect)
        .send()
        .await?;
    if !connect.status().is_success() {
        bail!("connect: {}", connect.text().await?);
    }
    let start_rss_kib = rss_kib(pid).0;
    let queued: Value = http
        .post(api(&format!("/api/integrations/bench/{platform}/sync")))
        .bearer_auth(ADMIN)
        .json(&json!({"kinds": [kind]}))
        .send()
        .await?
        .json()
        .await?;
    let job_id = queued["data"]["jobId"]
        .as_str()
        .context("jobId")?
        .to_owned();
    let mut peak = 0;
    let job = loop {
        peak = peak.max(rss_kib(pid).0);
        let job: Value = http
            .get(api(&format!(
                "/api/integrations/bench/{platform}/sync/{job_id}"
            )))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        match job["data"]["status"].as_str() {
            Some("succeeded") => break job["data"].clone(),
            Some("failed") => bail!("sync failed: {job}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    peak = peak.max(rss_kib(pid).1);
    let secs = {
        let t = |f: &str| {
            chrono::DateTime::parse_from_rfc3339(job[f].as_str().unwrap_or_default())
                .map(|t| t.timestamp_micros())
                .unwrap_or(0)
        };
        (t("finishedAt") - t("startedAt")) as f64 / 1e6
    };
    Ok(Synced {
        records: job["counts"][kind].as_u64().unwrap_or(0),
        pages: job["pages"].as_u64().unwrap_or(0),
        secs,
        peak_rss_kib: peak,
        start_rss_kib,
    })
}

struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

async fn fresh_db(pg_admin: Option<&str>) -> anyhow::Result<Db> {
    match pg_admin {
        None => {
            let dir = tempfile::tempdir()?;
            Ok(Db {
                url: format!("sqlite://{}", dir.path().join("bench.db").display()),
                _dir: Some(dir),
                pg: None,
            })
        }
        Some(admin) => {
            let name = format!("sharpsend_syncbench_{}", rand::random::<u32>());
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            let mut url = url::Url::parse(admin)?;
            url.set_path(&format!("/{name}"));
            Ok(Db {
                url: url.to_string(),
                _dir: None,
                pg: Some((admin.to_owned(), name)),
            })
        }
    }
}

async fn drop_db(db: Db) -> anyhow::Result<()> {
    if let Some((admin, name)) = &db.pg {
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

struct IterableSim {
    _running: sim_core::Running,
    origin: String,
}

async fn start_iterable(users: u64) -> anyhow::Result<IterableSim> {
    let running = sim_iterable::start(
        &mut sim_core::Binder::ephemeral(),
        sim_iterable::Options {
            users,
            ..sim_iterable::Options::default()
        },
    )
    .await?;
    let origin = running
        .origin(sim_iterable::ENV_US)
        .context("iterable origin")?
        .trim_end_matches('/')
        .to_owned();
    Ok(IterableSim {
        _running: running,
        origin,
    })
}

/// Streams the whole `user` export and counts its rows, keeping nothing.
async fn iterable_raw(http: &reqwest::Client, sim: &IterableSim) -> anyhow::Result<Raw> {
    iterable_export_raw(http, &sim.origin, "user").await
}

/// Streams the whole export of `data_type` and counts its rows (newlines), parsing nothing.
async fn iterable_export_raw(
    http: &reqwest::Client,
    origin: &str,
    data_type: &str,
) -> anyhow::Result<Raw> {
    let started = Instant::now();
    let mut resp = http
        .get(format!("{origin}/api/export/data.json"))
        .header("Api-Key", sim_iterable::US_SERVER_KEY)
        .query(&[("dataTypeName", data_type), ("range", "All")])
        .send()
        .await?
        .error_for_status()?;
    let mut records = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        records += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok(Raw {
        records,
        pages: records.div_ceil(1000),
        secs: started.elapsed().as_secs_f64(),
    })
}

/// `--iterable-users N`: the `users` export, raw and synced, on each backend.
async fn iterable_main(users: u64, backends: &[(&str, Option<&str>)]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    println!(
        "| backend | users | raw export rows/s | sync rows/s | sync / raw | pages/s | service RSS start → peak | exports | 429s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &(backend, pg_admin) in backends {
        let sim = start_iterable(users).await?;
        let raw = iterable_raw(&http, &sim).await?;
        drop(sim);
        let sim = start_iterable(users).await?;
        let db = fresh_db(pg_admin).await?;
        let service =
            start_service_with(&db.url, &[(sim_iterable::ENV_US, sim.origin.as_str())]).await?;
        let connect = json!({
            "publisherId": "bench",
            "apiKey": sim_iterable::US_SERVER_KEY,
            "region": "us",
            "config": {"fromEmail": "bench@example.com"},
        });
        let synced = sync_kind(&http, &service, "iterable", &connect, "users").await?;
        let counters: Value = http
            .get(format!("{}/_sim/counters", sim.origin))
            .send()
            .await?
            .json()
            .await?;
        drop(service);
        drop_db(db).await?;
        if synced.records != users || raw.records != users {
            bail!(
                "counts differ: raw {} sync {} of {users}",
                raw.records,
                synced.records
            );
        }
        let raw_rate = raw.records as f64 / raw.secs;
        let sync_rate = synced.records as f64 / synced.secs;
        println!(
            "| {backend} | {users} | {raw_rate:.0} ({:.1} s) | {sync_rate:.0} ({:.1} s) | {:.2} | {:.1} | {:.1} → {:.1} MiB | {} | {} |",
            raw.secs,
            synced.secs,
            sync_rate / raw_rate,
            synced.pages as f64 / synced.secs,
            synced.start_rss_kib as f64 / 1024.0,
            synced.peak_rss_kib as f64 / 1024.0,
            counters["exports"].as_u64().unwrap_or(0),
            counters["429"].as_u64().unwrap_or(0),
        );
    }
    Ok(())
}

/// `sync-bench`: sync throughput and memory against the simulators (see the module note).
#[derive(clap::Parser)]
#[command(
    name = "sync-bench",
    about = "Sync throughput and memory: raw fetch against a real `sharpsend serve` sync, on the simulators"
)]
struct Args {
    /// Keap contacts run: the smaller size.
    #[arg(long, default_value_t = 100_000)]
    small: u64,
    /// Keap contacts run: the larger size.
    #[arg(long, default_value_t = 1_000_000)]
    contacts: u64,
    /// Run one half only: `lifted`, or the platforms' limits enforced (`keap` or `enforced`).
    #[arg(long)]
    limits: Option<String>,
    /// Run the Iterable `users` export of N users instead (issue 15).
    #[arg(long)]
    iterable_users: Option<u64>,
    /// Run the biggest stream of each platform side by side, `--size` rows each (issue 15):
    /// keap-contacts, iterable-users, iterable-events, customerio-members.
    #[arg(long)]
    streams: bool,
    /// Rows per stream with `--streams`.
    #[arg(long, default_value_t = 1_000_000)]
    size: u64,
    /// With `--streams`: only these streams (comma-separated names as above).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let sizes = [args.small, args.contacts];
    let pg = std::env::var("BENCH_DATABASE_URL").ok();
    let mut backends: Vec<(&str, Option<&str>)> = vec![("SQLite", None)];
    if let Some(url) = pg.as_deref() {
        backends.push(("PostgreSQL", Some(url)));
    }
    if args.streams {
        return streams::run(&args, &backends).await;
    }
    if let Some(users) = args.iterable_users.filter(|&n| n > 0) {
        return iterable_main(users, &backends).await;
    }
    let http = reqwest::Client::new();
    println!(
        "| backend | limits | contacts | raw fetch records/s | sync records/s | sync / raw | pages/s | service RSS start → peak | 429s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    // `--limits lifted` or `--limits keap` runs one half (both by default).
    let only = args.limits.clone().unwrap_or_default().to_lowercase();
    let runs = [Limits::Lifted, Limits::Keap]
        .into_iter()
        .filter(|l| only.is_empty() || (only == "lifted") == (*l == Limits::Lifted));
    for limits in runs {
        for &(backend, pg_admin) in &backends {
            for &n in &sizes {
                let sim = start_sim(n, limits).await?;
                let raw = raw_fetch(&http, &sim.origin).await?;
                let raw_429 = counter(&http, &sim, "429").await?;
                drop(sim);
                // A fresh simulator: the raw run's quota use does not count against the sync.
                let sim = start_sim(n, limits).await?;
                let db = fresh_db(pg_admin).await?;
                let service = start_service(&db.url, &sim, limits).await?;
                let synced = sync(&http, &service).await?;
                let sync_429 = counter(&http, &sim, "429").await?;
                drop(service);
                drop_db(db).await?;
                if synced.records != n || raw.records != n {
                    bail!(
                        "counts differ: raw {} sync {} of {n}",
                        raw.records,
                        synced.records
                    );
                }
                let raw_rate = raw.records as f64 / raw.secs;
                let sync_rate = synced.records as f64 / synced.secs;
                println!(
                    "| {backend} | {} | {n} | {raw_rate:.0} ({} pages, {raw_429} 429s) | {sync_rate:.0} | {:.2} | {:.1} | {:.1} → {:.1} MiB | {sync_429} |",
                    limits.name(),
                    raw.pages,
                    sync_rate / raw_rate,
                    synced.pages as f64 / synced.secs,
                    synced.start_rss_kib as f64 / 1024.0,
                    synced.peak_rss_kib as f64 / 1024.0,
                );
            }
        }
    }
    Ok(())
}

/// `--streams` (issue 15): the biggest stream of each platform, side by side in one run — Keap
/// contacts, Iterable users and events (one event type: `emailSend`), Customer.io segment
/// members — each raw (this process fetches and discards the same pages or export) and synced
/// (a real `sharpsend serve` on a fresh database), with the limits lifted and enforced.
mod streams {
    use super::*;

    #[derive(Clone, Copy, PartialEq)]
    enum Stream {
        KeapContacts,
        IterableUsers,
        IterableEvents,
        CustomerioMembers,
    }

    /// The single event type of the events stream.
    const EVENT_TYPE: &str = "emailSend";

    impl Stream {
        const ALL: [Stream; 4] = [
            Stream::KeapContacts,
            Stream::IterableUsers,
            Stream::IterableEvents,
            Stream::CustomerioMembers,
        ];

        fn name(self) -> &'static str {
            match self {
                Stream::KeapContacts => "keap-contacts",
                Stream::IterableUsers => "iterable-users",
                Stream::IterableEvents => "iterable-events",
                Stream::CustomerioMembers => "customerio-members",
            }
        }

        fn label(self) -> &'static str {
            match self {
                Stream::KeapContacts => "Keap contacts",
                Stream::IterableUsers => "Iterable users (export)",
                Stream::IterableEvents => "Iterable events, emailSend (export)",
                Stream::CustomerioMembers => "Customer.io segment members",
            }
        }

        fn platform(self) -> &'static str {
            match self {
                Stream::KeapContacts => "keap",
                Stream::IterableUsers | Stream::IterableEvents => "iterable",
                Stream::CustomerioMembers => "customerio",
            }
        }

        fn kind(self) -> &'static str {
            match self {
                Stream::KeapContacts => "contacts",
                Stream::IterableUsers => "users",
                Stream::IterableEvents => "events",
                Stream::CustomerioMembers => "segment_members",
            }
        }

        /// The published request rate that binds this stream's reads (requests a second), or
        /// `None` for one export (Iterable: 4 exports a minute per key, one used).
        fn allowed_per_second(self) -> Option<f64> {
            match self {
                // Keap: 25 requests/s spike arrest, 1,500/min per OAuth app.
                Stream::KeapContacts => Some(25.0),
                Stream::IterableUsers | Stream::IterableEvents => None,
                // Customer.io App API: 10 requests/s.
                Stream::CustomerioMembers => Some(10.0),
            }
        }

        fn connect(self) -> Value {
            match self {
                Stream::KeapContacts => json!({
                    "publisherId": "bench",
                    "clientId": sim_keap::CLIENT_ID,
                    "clientSecret": sim_keap::CLIENT_SECRET,
                    "accessToken": sim_keap::ACCESS_TOKEN,
                    "refreshToken": sim_keap::REFRESH_TOKEN,
                    "expiresIn": 86_400,
                }),
                Stream::IterableUsers => json!({
                    "publisherId": "bench",
                    "apiKey": sim_iterable::US_SERVER_KEY,
                    "region": "us",
                    "config": {"fromEmail": "bench@example.com"},
                }),
                Stream::IterableEvents => json!({
                    "publisherId": "bench",
                    "apiKey": sim_iterable::US_SERVER_KEY,
                    "region": "us",
                    "config": {"fromEmail": "bench@example.com", "syncEventTypes": [EVENT_TYPE]},
                }),
                Stream::CustomerioMembers => {
                    let us = sim_customerio::US;
                    json!({
                        "publisherId": "bench",
                        "siteId": us.site_id,
                        "apiKey": us.app_api_key,
                        "trackingKey": us.tracking_key,
                        "region": "us",
                        "config": {"segmentIds": ["1"]},
                    })
                }
            }
        }
    }

    /// A simulator holding `n` rows of one stream.
    struct StreamSim {
        running: sim_core::Running,
        /// Where the stream is read (and `/_sim/counters` answered).
        origin: String,
    }

    impl StreamSim {
        /// Every upstream origin the service needs, as its configuration variables.
        fn env(&self) -> Vec<(&'static str, String)> {
            self.running
                .origins
                .iter()
                .map(|o| (o.env, o.url.trim_end_matches('/').to_owned()))
                .collect()
        }
    }

    async fn start(stream: Stream, n: u64, lifted: bool) -> anyhow::Result<StreamSim> {
        let binder = &mut sim_core::Binder::ephemeral();
        let (running, env) = match stream {
            Stream::KeapContacts => {
                let limits = if lifted { Limits::Lifted } else { Limits::Keap };
                let running = sim_keap::start(
                    binder,
                    sim_keap::Options {
                        contacts: n,
                        limits: limits.sim(),
                        ..sim_keap::Options::default()
                    },
                )
                .await?;
                (running, "SHARPSEND_KEAP_API_URL")
            }
            Stream::IterableUsers | Stream::IterableEvents => {
                let events = stream == Stream::IterableEvents;
                let running = sim_iterable::start(
                    binder,
                    sim_iterable::Options {
                        users: if events { 10_000 } else { n },
                        events: if events { n } else { 0 },
                        event_type: events.then_some(EVENT_TYPE),
                        rate_limits: !lifted,
                        ..sim_iterable::Options::default()
                    },
                )
                .await?;
                (running, sim_iterable::ENV_US)
            }
            Stream::CustomerioMembers => {
                // Segment 1 holds everyone: one segment of `n` members.
                let running = sim_customerio::start(
                    binder,
                    sim_customerio::Options {
                        people: n,
                        segments: 1,
                        ..sim_customerio::Options::default()
                    },
                )
                .await?;
                (running, sim_customerio::ENV_APP_US)
            }
        };
        let origin = running
            .origin(env)
            .context("simulator origin")?
            .trim_end_matches('/')
            .to_owned();
        if lifted && stream == Stream::CustomerioMembers {
            reqwest::Client::new()
                .post(format!("{origin}/_sim/limits"))
                .json(&json!({"enabled": false}))
                .send()
                .await?
                .error_for_status()?;
        }
        Ok(StreamSim { running, origin })
    }

    /// Every member page of segment 1, as the connector reads them, decoded and discarded.
    async fn customerio_raw(http: &reqwest::Client, origin: &str) -> anyhow::Result<Raw> {
        raw_walk(
            |start| {
                let req = http
                    .get(format!("{origin}/v1/segments/1/membership"))
                    .bearer_auth(sim_customerio::US.app_api_key)
                    .query(&[(
                        "limit",
                        connectors::customerio::sync::MEMBERS_PAGE.to_string(),
                    )]);
                match start {
                    Some(s) => req.query(&[("start", s)]),
                    None => req,
                }
            },
            "identifiers",
            "next",
        )
        .await
    }

    async fn raw(http: &reqwest::Client, stream: Stream, sim: &StreamSim) -> anyhow::Result<Raw> {
        match stream {
            Stream::KeapContacts => raw_fetch(http, &sim.origin).await,
            Stream::IterableUsers => iterable_export_raw(http, &sim.origin, "user").await,
            Stream::IterableEvents => iterable_export_raw(http, &sim.origin, EVENT_TYPE).await,
            Stream::CustomerioMembers => customerio_raw(http, &sim.origin).await,
        }
    }

    async fn counters(http: &reqwest::Client, sim: &StreamSim) -> anyhow::Result<Value> {
        Ok(http
            .get(format!("{}/_sim/counters", sim.origin))
            .send()
            .await?
            .json()
            .await?)
    }

    pub(super) async fn run(args: &Args, backends: &[(&str, Option<&str>)]) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let n = args.size;
        let streams: Vec<Stream> = Stream::ALL
            .into_iter()
            .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name()))
            .collect();
        if streams.is_empty() {
            bail!(
                "--only names none of keap-contacts, iterable-users, iterable-events, customerio-members"
            );
        }
        let only = args.limits.clone().unwrap_or_default().to_lowercase();
        let halves: Vec<bool> = [true, false]
            .into_iter()
            .filter(|&lifted| only.is_empty() || (only == "lifted") == lifted)
            .collect();
        println!(
            "| stream | backend | limits | rows | raw rows/s | sync rows/s | sync / raw | pages/s (share of the limit) | service RSS start → peak | 429s raw / sync |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for &lifted in &halves {
            for &(backend, pg_admin) in backends {
                for &stream in &streams {
                    let sim = start(stream, n, lifted).await?;
                    let raw = raw(&http, stream, &sim).await?;
                    let raw_429 = counters(&http, &sim).await?["429"].as_u64().unwrap_or(0);
                    drop(sim);
                    // A fresh simulator: the raw run's quota use does not count against the sync.
                    let sim = start(stream, n, lifted).await?;
                    let db = fresh_db(pg_admin).await?;
                    let mut env = sim.env();
                    env.push((
                        "SHARPSEND_RATE_BUDGET_PERCENT",
                        if lifted { "100000" } else { "100" }.to_owned(),
                    ));
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let service = start_service_with(&db.url, &env).await?;
                    let synced = sync_kind(
                        &http,
                        &service,
                        stream.platform(),
                        &stream.connect(),
                        stream.kind(),
                    )
                    .await?;
                    let c = counters(&http, &sim).await?;
                    drop(service);
                    drop_db(db).await?;
                    let sync_429 = c["429"].as_u64().unwrap_or(0);
                    let raw_rate = raw.records as f64 / raw.secs;
                    let sync_rate = synced.records as f64 / synced.secs;
                    let pages_per_s = synced.pages as f64 / synced.secs;
                    let pace = match stream.allowed_per_second() {
                        Some(allowed) => format!(
                            "{pages_per_s:.1} of {allowed:.0}/s ({:.0} %)",
                            100.0 * pages_per_s / allowed
                        ),
                        None => format!(
                            "{pages_per_s:.1} ({} export of 4/min)",
                            c["exports"].as_u64().unwrap_or(0)
                        ),
                    };
                    let rows = if synced.records == raw.records {
                        format!("{}", synced.records)
                    } else {
                        format!("raw {} ≠ sync {}", raw.records, synced.records)
                    };
                    println!(
                        "| {} | {backend} | {} | {rows} | {raw_rate:.0} ({:.1} s) | {sync_rate:.0} ({:.1} s) | {:.2} | {pace} | {:.1} → {:.1} MiB | {raw_429} / {sync_429} |",
                        stream.label(),
                        if lifted { "lifted" } else { "enforced" },
                        raw.secs,
                        synced.secs,
                        sync_rate / raw_rate,
                        synced.start_rss_kib as f64 / 1024.0,
                        synced.peak_rss_kib as f64 / 1024.0,
                    );
                }
            }
        }
        Ok(())
    }
}
