//! `bench-server`: starts the real service on a database (a temp SQLite file by default, or the
//! `--database-url` given) with one publisher holding all three integrations, and next to it a
//! bare axum handler answering the very same JSON bytes. Prints one `READY` line with both URLs
//! and the publisher's token, then serves until killed. `bench/run.sh` drives it with wrk.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use anyhow::Context as _;
use axum::{Router, http::header, routing::get};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use domain::{Platform, PublisherId, Region};
use rand::RngCore as _;
use sharpsend::{
    Application, Config,
    integrations::{self, NewConnection},
};
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "bench-admin-token-0123456789";
const PUBLISHER: &str = "bench-publisher";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tmp = tempfile::tempdir()?;
    let db_url = match args.iter().position(|a| a == "--database-url") {
        Some(i) => args
            .get(i + 1)
            .context("--database-url needs a value")?
            .clone(),
        None => format!("sqlite://{}", tmp.path().join("bench.db").display()),
    };
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let vars: HashMap<&str, String> = HashMap::from([
        ("SHARPSEND_LISTEN", "127.0.0.1:0".to_owned()),
        ("SHARPSEND_DATABASE_URL", db_url),
        ("SHARPSEND_MASTER_KEY", STANDARD.encode(key)),
        ("SHARPSEND_ADMIN_TOKEN", ADMIN.to_owned()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned())?;
    let app = Application::build(config).await?;
    let state = app.state().clone();
    let publisher = PublisherId::parse(PUBLISHER)?;
    for (platform, secrets) in [
        (
            Platform::Iterable,
            vec![("apiKey", "bench-iterable-api-key-0001")],
        ),
        (
            Platform::Customerio,
            vec![
                ("apiKey", "bench-cio-app-key-0002"),
                ("trackingKey", "bench-cio-track-0003"),
            ],
        ),
        (
            Platform::Keap,
            vec![
                ("accessToken", "bench-keap-access-0004"),
                ("refreshToken", "bench-keap-refresh-0005"),
                ("clientSecret", "bench-keap-secret-0006"),
            ],
        ),
    ] {
        integrations::connect(
            &state,
            NewConnection {
                publisher: publisher.clone(),
                platform,
                region: platform.has_regions().then_some(Region::Us),
                config: serde_json::json!({"note": "bench"}),
                secrets: secrets
                    .into_iter()
                    .map(|(f, v)| (f, v.to_owned().into()))
                    .collect(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let (_, token) = state.auth.create_api_key(&publisher).await?;
    let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();

    let ours = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    // The exact body our endpoint answers, served by a bare handler.
    let path = format!("/api/integrations/{PUBLISHER}");
    let body = reqwest::Client::new()
        .get(format!("{ours}{path}"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let bare_router = Router::new().route(
        "/api/integrations/{publisherId}",
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare = format!("http://{}", bare_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(bare_listener, bare_router).await });

    println!(
        "READY ours={ours}{path} bare={bare}{path} token={token} backend={}",
        state.store.backend()
    );
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    let _ = serving.await;
    Ok(())
}
