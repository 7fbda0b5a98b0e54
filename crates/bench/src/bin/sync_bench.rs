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

/// Fetches every page and discards it, as fast as the simulator answers.
async fn raw_fetch(http: &reqwest::Client, sim: &Sim) -> anyhow::Result<Raw> {
    let started = Instant::now();
    let (mut records, mut pages) = (0u64, 0u64);
    let mut token: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{}/crm/rest/v2/contacts", sim.origin))
            .bearer_auth(sim_keap::ACCESS_TOKEN)
            .query(&[("page_size", "1000")]);
        if let Some(t) = &token {
            req = req.query(&[("page_token", t)]);
        }
        let resp = req.send().await?;
        if resp.status() == 429 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let page: Value = resp.error_for_status()?.json().await?;
        pages += 1;
        records += page["contacts"].as_array().map_or(0, |a| a.len() as u64);
        match page["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    Ok(Raw {
        records,
        pages,
        secs: started.elapsed().as_secs_f64(),
    })
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
        .env("SHARPSEND_KEAP_API_URL", &sim.origin)
        .env("SHARPSEND_SYNC_INTERVAL_MINUTES", "0")
        .env(
            "SHARPSEND_RATE_BUDGET_PERCENT",
            if limits == Limits::Lifted {
                "100000"
            } else {
                "100"
            },
        )
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
    let pid = service.child.id();
    let api = |path: &str| format!("{}{path}", service.origin);
    let connect = http
        .post(api("/api/integrations/keap/connect"))
        .bearer_auth(ADMIN)
        .json(&json!({
            "publisherId": "bench",
            "clientId": sim_keap::CLIENT_ID,
            "clientSecret": sim_keap::CLIENT_SECRET,
            "accessToken": sim_keap::ACCESS_TOKEN,
            "refreshToken": sim_keap::REFRESH_TOKEN,
            "expiresIn": 86_400,
        }))
        .send()
        .await?;
    if !connect.status().is_success() {
        bail!("connect: {}", connect.text().await?);
    }
    let start_rss_kib = rss_kib(pid).0;
    let queued: Value = http
        .post(api("/api/integrations/bench/keap/sync"))
        .bearer_auth(ADMIN)
        .json(&json!({"kinds": ["contacts"]}))
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
            .get(api(&format!("/api/integrations/bench/keap/sync/{job_id}")))
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
        records: job["counts"]["contacts"].as_u64().unwrap_or(0),
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

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes = [arg("--small", 100_000), arg("--contacts", 1_000_000)];
    let pg = std::env::var("BENCH_DATABASE_URL").ok();
    let mut backends: Vec<(&str, Option<&str>)> = vec![("SQLite", None)];
    if let Some(url) = pg.as_deref() {
        backends.push(("PostgreSQL", Some(url)));
    }
    let http = reqwest::Client::new();
    println!(
        "| backend | limits | contacts | raw fetch records/s | sync records/s | sync / raw | pages/s | service RSS start → peak | 429s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    // `--limits lifted` or `--limits keap` runs one half (both by default).
    let only = std::env::args()
        .skip_while(|a| a != "--limits")
        .nth(1)
        .unwrap_or_default();
    let runs = [Limits::Lifted, Limits::Keap]
        .into_iter()
        .filter(|l| only.is_empty() || l.name().to_lowercase().contains(&only));
    for limits in runs {
        for &(backend, pg_admin) in &backends {
            for &n in &sizes {
                let sim = start_sim(n, limits).await?;
                let raw = raw_fetch(&http, &sim).await?;
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
