//! The `sharpsend` command line (CONTRACT §1).

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use domain::PublisherId;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::{
    Application, Config,
    auth::Authenticator,
    sandbox::{Sandbox, SandboxOptions},
    vault_ops,
};

/// SharpSend integrations: connect publishers' Iterable, Customer.io and Keap accounts.
///
/// Configuration comes from SHARPSEND_* environment variables (a .env file in the working
/// directory is read too); the flags below override them. With nothing set, `sharpsend serve`
/// runs on 127.0.0.1:8080 with a SQLite database in ./data/.
#[derive(Debug, Parser)]
#[command(name = "sharpsend", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the sync workers (SHARPSEND_SYNC_WORKERS) and scheduler. Applies
    /// migrations first. On first start without SHARPSEND_ADMIN_TOKEN it prints a new admin token
    /// once; keep it. With --sandbox, the built-in platform simulators run in-process and every
    /// upstream points at them: connect with the sandbox credentials it prints, no account needed.
    Serve(ServeArgs),
    /// Run only the platform simulators (Iterable US/EU, Customer.io Track/App/CDP US/EU, Keap) on
    /// local ports, print their origins as SHARPSEND_* settings and their sandbox credentials, and
    /// wait for Ctrl-C. For other programs' tests and demos.
    Sim(SimArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Manage publisher API keys (`ssk_…`), which act for one publisher only.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Manage the master key that encrypts stored credentials.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Sync a publisher's platform now and follow it with a progress bar. Queues a job (or
    /// follows the one already queued or running); when no server's worker takes it, runs it in
    /// this process. Ctrl-C gives the job back: it resumes from its checkpoint later.
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The publisher whose integration to sync.
    pub publisher: String,
    /// iterable, customerio or keap.
    pub platform: String,
    /// Kinds to sync, comma-separated (default: all of the platform's contract kinds; the
    /// opt-in `metrics` runs only when named).
    #[arg(long, value_delimiter = ',', value_name = "KIND,…")]
    pub kinds: Option<Vec<String>>,
    /// Read everything from the start (and mark records gone from the platform deleted).
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database URL: sqlite://path or postgres://… [env: SHARPSEND_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 [env: SHARPSEND_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Start the built-in simulators and point every platform origin at them.
    #[arg(long)]
    pub sandbox: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// First port; the simulators take consecutive ports from it (0: ports the OS picks).
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    /// Seed of the generated data (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Iterable users to generate (lazily; 1000000 is fine).
    #[arg(long)]
    pub iterable_users: Option<u64>,
    /// Customer.io people to generate.
    #[arg(long)]
    pub customerio_people: Option<u64>,
    /// Keap contacts to generate (lazily; 1000000 is fine).
    #[arg(long)]
    pub keap_contacts: Option<u64>,
}

impl SimArgs {
    fn options(&self) -> SandboxOptions {
        let d = SandboxOptions::default();
        SandboxOptions {
            seed: self.seed,
            iterable_users: self.iterable_users.unwrap_or(d.iterable_users),
            customerio_people: self.customerio_people.unwrap_or(d.customerio_people),
            keap_contacts: self.keap_contacts.unwrap_or(d.keap_contacts),
            event_stream: Some(SandboxOptions::EVENT_STREAM),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key for a publisher and print it (it is shown this once only).
    Create {
        /// The publisher the key acts for.
        #[arg(long, value_name = "ID")]
        publisher: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a publisher's keys (without secrets).
    List {
        #[arg(long, value_name = "ID")]
        publisher: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key's id (`key_…`), as `create` and `list` print it.
        key_id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-encrypt every stored credential under the newest master key.
    ///
    /// With a key file (data/master.key, SHARPSEND_MASTER_KEY unset): generates a new key, puts it
    /// first in the file (older keys stay, so running servers keep reading old rows and pick up the
    /// new key by themselves), then re-encrypts every row. With SHARPSEND_MASTER_KEY: re-encrypts
    /// every row still under a key listed in SHARPSEND_MASTER_KEY_RETIRED. See
    /// docs/security.md#rotating-the-master-key.
    Rotate {
        /// After re-encrypting, drop retired keys from the key file (only when no row needs them).
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show how many credentials each master key encrypts.
    Status {
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Loads the configuration with flag overrides on top of the environment.
fn load_config(overrides: &[(&str, Option<&String>)]) -> anyhow::Result<Config> {
    Ok(Config::from_env(overrides)?)
}

fn db_config(db: &DbArgs) -> anyhow::Result<Config> {
    load_config(&[("SHARPSEND_DATABASE_URL", db.database_url.as_ref())])
}

async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    store::open(config.database_url.expose_secret())
        .await
        .with_context(|| {
            format!(
                "opening {}",
                store::redact_url(config.database_url.expose_secret())
            )
        })
}

fn publisher(id: &str) -> anyhow::Result<PublisherId> {
    PublisherId::parse(id).map_err(|e| anyhow::anyhow!("--publisher: {e}"))
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Sim(args) => sim(args).await,
        Command::Migrate(db) => {
            let config = db_config(&db)?;
            let store = open_store(&config).await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::ApiKeys(cmd) => api_keys(cmd).await,
        Command::Vault(cmd) => vault(cmd).await,
        Command::Sync(args) => sync(args).await,
    }
}

async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let platform = domain::Platform::parse(&args.platform).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown platform '{}': use iterable, customerio or keap",
            args.platform
        )
    })?;
    let publisher =
        PublisherId::parse(&args.publisher).map_err(|e| anyhow::anyhow!("PUBLISHER: {e}"))?;
    let config = db_config(&args.db)?;
    let listen = config.listen;
    let (state, boot) = crate::app::assemble(config, listen).await?;
    if let crate::auth::AdminBootstrap::Generated(token) = &boot {
        announce_admin_token(token);
    }
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal.cancel();
    });
    crate::sync::follow::run(
        &state,
        crate::sync::follow::SyncCommand {
            publisher,
            platform,
            kinds: args.kinds,
            full: args.full,
        },
        stop,
    )
    .await
    .map(|_| ())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let sandbox = if args.sandbox {
        let sandbox = Sandbox::start(
            &mut sim_core::Binder::ephemeral(),
            &SandboxOptions {
                event_stream: Some(SandboxOptions::EVENT_STREAM),
                ..SandboxOptions::default()
            },
        )
        .await
        .context("starting the sandbox simulators")?;
        Some(sandbox)
    } else {
        None
    };
    let upstreams: Vec<(&str, String)> = sandbox
        .as_ref()
        .map(Sandbox::upstream_overrides)
        .unwrap_or_default();
    let mut overrides: Vec<(&str, Option<&String>)> = vec![
        ("SHARPSEND_LISTEN", args.listen.as_ref()),
        ("SHARPSEND_DATABASE_URL", args.db.database_url.as_ref()),
    ];
    overrides.extend(upstreams.iter().map(|(var, url)| (*var, Some(url))));
    // In the sandbox, "Connect with Keap" (the dashboard's authorize flow) uses the simulator's
    // OAuth client unless the operator configured one.
    let (keap_id, keap_secret) = (
        sim_keap::CLIENT_ID.to_owned(),
        sim_keap::CLIENT_SECRET.to_owned(),
    );
    if sandbox.is_some() && std::env::var_os("SHARPSEND_KEAP_CLIENT_ID").is_none() {
        overrides.push(("SHARPSEND_KEAP_CLIENT_ID", Some(&keap_id)));
        overrides.push(("SHARPSEND_KEAP_CLIENT_SECRET", Some(&keap_secret)));
    }
    // The sandbox's receiving endpoint is on this machine: destinations may be private there.
    let allow_private = "true".to_owned();
    if sandbox.is_some() && std::env::var_os("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE").is_none() {
        overrides.push(("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE", Some(&allow_private)));
    }
    let mut config = load_config(&overrides)?;
    config.sandbox = sandbox.is_some();
    let app = Application::build(config).await?;
    if let Some(sandbox) = &sandbox {
        eprintln!(
            "\n  SANDBOX: every platform origin points at the built-in simulators. Connect with these\n  \
             sandbox credentials (no real account needed):\n{}",
            sandbox.describe()
        );
    }
    if let Some(token) = &app.generated_admin_token {
        announce_admin_token(token);
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        signal.cancel();
    });
    app.run_until_stopped(shutdown).await
}

/// Prints a just-generated admin token, the one time it can be seen (whichever command
/// happened to start first on a new database). Printed to the terminal, never logged: only its
/// digest is stored.
fn announce_admin_token(token: &secrecy::SecretString) {
    eprintln!(
        "\n  A new admin token was generated. It is shown this once; store it safely:\n\n    {}\n\n  \
         Use it as `Authorization: Bearer <token>`, or set SHARPSEND_ADMIN_TOKEN to choose your own.\n",
        token.expose_secret()
    );
}

async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let mut binder = if args.base_port == 0 {
        sim_core::Binder::ephemeral()
    } else {
        sim_core::Binder::from_base(args.host.clone(), args.base_port)
    };
    let sandbox = Sandbox::start(&mut binder, &args.options())
        .await
        .context("starting the simulators")?;
    println!("# Platform simulators are running. Point SharpSend (or your tests) at them:");
    for (var, url) in sandbox.upstream_overrides() {
        println!("export {var}={url}");
    }
    println!(
        "# Sandbox credentials:{}",
        sandbox.describe().replace('\n', "\n# ")
    );
    println!(
        "# Control API on every origin: /_sim/requests, /_sim/counters, /_sim/faults, /_sim/reset"
    );
    shutdown_signal().await;
    drop(sandbox);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

async fn api_keys(cmd: ApiKeysCommand) -> anyhow::Result<()> {
    match cmd {
        ApiKeysCommand::Create { publisher: p, db } => {
            let p = publisher(&p)?;
            let config = db_config(&db)?;
            let store = open_store(&config).await?;
            let cache = std::sync::Arc::new(crate::cache::ReadCache::new(store.clone()));
            let (auth, boot) =
                Authenticator::bootstrap(store, cache, config.admin_token.as_ref()).await?;
            if let crate::auth::AdminBootstrap::Generated(token) = &boot {
                announce_admin_token(token);
            }
            let (record, key) = auth.create_api_key(&p).await?;
            println!("id:        {}", record.id);
            println!("publisher: {}", record.publisher_id);
            println!("key:       {}", key.expose_secret());
            eprintln!("The key is shown this once; only its hash is stored.");
        }
        ApiKeysCommand::List { publisher: p, db } => {
            let p = publisher(&p)?;
            let store = open_store(&db_config(&db)?).await?;
            let keys = store.list_api_keys(&p).await?;
            if keys.is_empty() {
                println!("no API keys for {p}");
            }
            for k in keys {
                let state = k.revoked_at.map_or_else(
                    || "active".to_owned(),
                    |t| format!("revoked {}", t.to_rfc3339()),
                );
                println!(
                    "{}  {}…  created {}  {state}",
                    k.id,
                    k.prefix,
                    k.created_at.to_rfc3339()
                );
            }
        }
        ApiKeysCommand::Revoke { key_id, db } => {
            let store = open_store(&db_config(&db)?).await?;
            match store.revoke_api_key(&key_id).await? {
                Some(k) => println!("revoked {} (publisher {})", k.id, k.publisher_id),
                None => anyhow::bail!("no API key with id {key_id}"),
            }
        }
    }
    Ok(())
}

async fn vault(cmd: VaultCommand) -> anyhow::Result<()> {
    match cmd {
        VaultCommand::Status { db } => {
            let config = db_config(&db)?;
            let store = open_store(&config).await?;
            let keyring = config.master_key.load()?;
            println!("active key: {}", keyring.active().id());
            for k in keyring.retired() {
                println!("retired key: {}", k.id());
            }
            for (key_id, n) in store.credential_key_counts().await? {
                let known = keyring.get(vault::KeyId(key_id)).is_some();
                println!(
                    "{key_id:08x}: {n} credential(s){}",
                    if known {
                        ""
                    } else {
                        "  (NOT in the keyring: cannot be opened)"
                    }
                );
            }
        }
        VaultCommand::Rotate { prune, db } => {
            let config = db_config(&db)?;
            let store = open_store(&config).await?;
            let (vault, report) = vault_ops::rotate(&store, &config.master_key).await?;
            println!(
                "re-encrypted {} credential(s) under key {}{}",
                report.resealed,
                vault.active_key_id(),
                if report.changed_concurrently > 0 {
                    format!(
                        " ({} changed concurrently and were already current)",
                        report.changed_concurrently
                    )
                } else {
                    String::new()
                }
            );
            if prune {
                vault_ops::prune(&store, &config.master_key).await?;
                println!("retired keys removed from the key file");
            }
        }
    }
    Ok(())
}
