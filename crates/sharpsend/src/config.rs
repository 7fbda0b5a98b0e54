//! Configuration (CONTRACT §1): environment variables (a `.env` file is read too), validated once
//! at start. Every problem is reported at once, each naming its variable and what is wrong.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use connectors::Upstreams;
use secrecy::SecretString;
use url::Url;
use vault::KeySource;

/// The folder that holds the default SQLite file and the generated master key.
pub const DATA_DIR: &str = "data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/sharpsend.db";

/// The validated configuration. `Debug` never shows a secret.
#[derive(Clone)]
pub struct Config {
    /// `SHARPSEND_LISTEN`: the HTTP server's address.
    pub listen: SocketAddr,
    /// `SHARPSEND_DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: SecretString,
    /// `SHARPSEND_REDIS_URL`: shared rate-limit budgets between replicas, when set.
    pub redis_url: Option<SecretString>,
    /// `SHARPSEND_MASTER_KEY` (+ `SHARPSEND_MASTER_KEY_RETIRED`), or the key file `data/master.key`.
    pub master_key: KeySource,
    /// `SHARPSEND_ADMIN_TOKEN`: the operator token; generated on first start when unset.
    pub admin_token: Option<SecretString>,
    /// `SHARPSEND_PUBLIC_URL`: the externally reachable origin for webhook and OAuth URLs;
    /// `None` means `http://{the bound listen address}`.
    pub public_url: Option<Url>,
    /// `SHARPSEND_*_URL`: the platform origins.
    pub upstreams: Upstreams,
    /// `SHARPSEND_UPSTREAM_TIMEOUT_MS`: per upstream request.
    pub upstream_timeout: Duration,
    /// `SHARPSEND_SYNC_INTERVAL_MINUTES`: automatic sync period; 0 turns the scheduler off.
    pub sync_interval_minutes: u32,
    /// `SHARPSEND_SYNC_WORKERS` (default 2): sync jobs this process runs at once; 0 runs none, so
    /// API replicas and worker replicas can scale apart.
    pub sync_workers: u32,
    /// `SHARPSEND_SYNC_LEASE_SECONDS` (default 30): how long a claimed job stays with a worker
    /// that stops renewing it (it renews every third of this) before another worker resumes it.
    pub sync_lease: Duration,
    /// `SHARPSEND_RATE_BUDGET_PERCENT` (default 100): every platform's proactive budget as a
    /// percentage of its published limits — raise it only when a platform has raised yours.
    pub rate_budget_percent: u32,
    /// `SHARPSEND_KEAP_CLIENT_ID` / `SHARPSEND_KEAP_CLIENT_SECRET`: the operator's Keap OAuth
    /// app, used by the authorize flow when the publisher brings no client of their own.
    pub keap_client: Option<(String, SecretString)>,
    /// `SHARPSEND_HEADER_READ_TIMEOUT_SECONDS` (default 10, at most 20): a connection that has
    /// not sent a whole request head within this is closed.
    pub header_read_timeout: Duration,
    /// `SHARPSEND_REQUEST_TIMEOUT_SECONDS` (default 120): reading the body and answering one
    /// request; beyond it, `408 REQUEST_TIMEOUT` and the connection is closed.
    pub request_timeout: Duration,
    /// `SHARPSEND_MAX_CONNECTIONS` (default 1024): open client connections; further ones wait
    /// (the listener stops accepting) until one closes.
    pub max_connections: u32,
    /// `SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS` (default 20): how long a stop waits for in-flight
    /// requests before closing their connections.
    pub shutdown_timeout: Duration,
    /// `SHARPSEND_METRICS_LISTEN`: when set, `/metrics` is served on this address only (and the
    /// public one answers 404).
    pub metrics_listen: Option<SocketAddr>,
    /// `SHARPSEND_API_RATE_LIMIT` (default `50/s`, burst 100): every `/api/` call per principal
    /// (the admin token, or one publisher key); `None` (`0`) turns it off.
    pub api_rate_limit: Option<Rate>,
    /// `SHARPSEND_TEST_CONNECTION_RATE_LIMIT` (default `10/m`): `test-connection` and `connect`
    /// calls per principal, on top of the API limit.
    pub test_connection_rate_limit: Option<Rate>,
    /// `SHARPSEND_AUTH_FAILURE_RATE_LIMIT` (default `20/m`): failed authentications per client
    /// address (IPv6 by /64); over it, the address is refused until it has room again.
    pub auth_failure_rate_limit: Option<Rate>,
    /// `SHARPSEND_DESTINATIONS_ALLOW_PRIVATE` (default `false`; `true` under `serve --sandbox`
    /// unless set): event destinations may be `http://` and resolve to loopback, private and
    /// link-local addresses. Off, only `https://` to public addresses is delivered to.
    pub destinations_allow_private: bool,
    /// Set by `serve --sandbox` (not an environment variable): the upstreams are the built-in
    /// simulators, so connecting an integration also points the simulator's webhooks at us.
    pub sandbox: bool,
}

/// A rate from the environment: `N/s` or `N/m`. The burst is `2N` for a per-second rate (so a
/// page of parallel calls fits), `N` for a per-minute one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: std::num::NonZeroU32,
    pub per_minute: bool,
}

impl Rate {
    /// The largest `N` accepted (so `2N` still fits).
    pub const MAX: u32 = 1_000_000;

    /// `Ok(None)` for `0` (off); an error sentence for anything but `N/s`, `N/m` or `0`.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(None);
        }
        let bad = || {
            format!(
                "`{text}` must be `N/s`, `N/m` (N from 1 to {}) or `0` (off)",
                Self::MAX
            )
        };
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let per_minute = match unit.trim() {
            "s" => false,
            "m" => true,
            _ => return Err(bad()),
        };
        let count = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= Self::MAX)
            .and_then(std::num::NonZeroU32::new)
            .ok_or_else(bad)?;
        Ok(Some(Self { count, per_minute }))
    }

    /// How many calls may come at once.
    pub fn burst(self) -> u32 {
        if self.per_minute {
            self.count.get()
        } else {
            self.count.get() * 2
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            if self.per_minute { "m" } else { "s" }
        )
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use secrecy::ExposeSecret;
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &store::redact_url(self.database_url.expose_secret()),
            )
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .field("master_key", &self.master_key)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("upstreams", &self.upstreams)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("sync_interval_minutes", &self.sync_interval_minutes)
            .field("sync_workers", &self.sync_workers)
            .field("sync_lease", &self.sync_lease)
            .field("rate_budget_percent", &self.rate_budget_percent)
            .field(
                "keap_client",
                &self.keap_client.as_ref().map(|(id, _)| (id, "[redacted]")),
            )
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("metrics_listen", &self.metrics_listen)
            .field("api_rate_limit", &self.api_rate_limit)
            .field(
                "test_connection_rate_limit",
                &self.test_connection_rate_limit,
            )
            .field("auth_failure_rate_limit", &self.auth_failure_rate_limit)
            .field(
                "destinations_allow_private",
                &self.destinations_allow_private,
            )
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

/// Every problem found in the configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads the process environment (after loading `.env` from the working directory), with
    /// `overrides` (command-line flags) taking precedence.
    pub fn from_env(overrides: &[(&str, Option<&String>)]) -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth saying.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            return Err(ConfigError(vec![format!(".env: {e}")]));
        }
        Self::from_lookup(|var| {
            overrides
                .iter()
                .find(|(k, v)| *k == var && v.is_some())
                .and_then(|(_, v)| v.cloned())
                .or_else(|| std::env::var(var).ok())
        })
    }

    /// Builds and validates the configuration from a variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();

        let listen_text = get("SHARPSEND_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "SHARPSEND_LISTEN: `{listen_text}` is not an address with a port (e.g. 127.0.0.1:8080 or 0.0.0.0:8080)"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let database_url =
            get("SHARPSEND_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if store::Backend::of_url(&database_url).is_none() {
            problems.push(format!(
                "SHARPSEND_DATABASE_URL: `{}` must start with sqlite:// (one machine) or postgres:// (several replicas)",
                store::redact_url(&database_url)
            ));
        }

        let redis_url = get("SHARPSEND_REDIS_URL");
        if let Some(r) = &redis_url
            && !(r.starts_with("redis://") || r.starts_with("rediss://"))
        {
            problems.push("SHARPSEND_REDIS_URL: must start with redis:// or rediss://".to_owned());
        }

        let master_key = match get("SHARPSEND_MASTER_KEY") {
            Some(active) => {
                let source = KeySource::Env {
                    active: SecretString::from(active),
                    retired: get("SHARPSEND_MASTER_KEY_RETIRED").map(SecretString::from),
                };
                // Validate now so a typo is reported with the rest, not at first use.
                if let Err(e) = source.load() {
                    problems.push(e.to_string());
                }
                source
            }
            None => {
                if get("SHARPSEND_MASTER_KEY_RETIRED").is_some() {
                    problems.push(
                        "SHARPSEND_MASTER_KEY_RETIRED: only meaningful with SHARPSEND_MASTER_KEY set".to_owned(),
                    );
                }
                KeySource::File(PathBuf::from(DATA_DIR).join("master.key"))
            }
        };

        let admin_token = get("SHARPSEND_ADMIN_TOKEN");
        if let Some(t) = &admin_token
            && t.len() < 16
        {
            problems.push("SHARPSEND_ADMIN_TOKEN: must be at least 16 characters".to_owned());
        }

        let public_url = get("SHARPSEND_PUBLIC_URL").and_then(|text| match Url::parse(&text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                problems.push(format!(
                    "SHARPSEND_PUBLIC_URL: `{text}` is not an http(s) origin (e.g. https://integrations.example.com)"
                ));
                None
            }
        });

        let upstreams = Upstreams::from_lookup(get).unwrap_or_else(|e| {
            problems.push(e.to_string());
            Upstreams::defaults()
        });

        let timeout_ms = parse_number(
            &get,
            "SHARPSEND_UPSTREAM_TIMEOUT_MS",
            10_000,
            1..=600_000,
            &mut problems,
        );
        let sync_interval_minutes = parse_number(
            &get,
            "SHARPSEND_SYNC_INTERVAL_MINUTES",
            60,
            0..=(60 * 24 * 31),
            &mut problems,
        );
        let sync_workers = parse_number(&get, "SHARPSEND_SYNC_WORKERS", 2, 0..=64, &mut problems);
        let sync_lease_seconds = parse_number(
            &get,
            "SHARPSEND_SYNC_LEASE_SECONDS",
            30,
            1..=3600,
            &mut problems,
        );
        let rate_budget_percent = parse_number(
            &get,
            "SHARPSEND_RATE_BUDGET_PERCENT",
            100,
            1..=100_000,
            &mut problems,
        );

        let header_read_timeout = parse_number(
            &get,
            "SHARPSEND_HEADER_READ_TIMEOUT_SECONDS",
            10,
            1..=20,
            &mut problems,
        );
        let request_timeout = parse_number(
            &get,
            "SHARPSEND_REQUEST_TIMEOUT_SECONDS",
            120,
            1..=3600,
            &mut problems,
        );
        let max_connections = parse_number(
            &get,
            "SHARPSEND_MAX_CONNECTIONS",
            1024,
            1..=1_000_000,
            &mut problems,
        );
        let shutdown_timeout = parse_number(
            &get,
            "SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS",
            20,
            0..=3600,
            &mut problems,
        );
        let metrics_listen = get("SHARPSEND_METRICS_LISTEN").and_then(|text| {
            text.parse::<SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "SHARPSEND_METRICS_LISTEN: `{text}` is not an address with a port (e.g. 127.0.0.1:9090)"
                    ));
                })
                .ok()
        });

        let keap_client = match (
            get("SHARPSEND_KEAP_CLIENT_ID"),
            get("SHARPSEND_KEAP_CLIENT_SECRET"),
        ) {
            (Some(id), Some(secret)) => Some((id, SecretString::from(secret))),
            (None, None) => None,
            _ => {
                problems.push("SHARPSEND_KEAP_CLIENT_ID and SHARPSEND_KEAP_CLIENT_SECRET: set both or neither".to_owned());
                None
            }
        };

        let mut rate = |var: &str, default: &str| {
            let text = get(var).unwrap_or_else(|| default.to_owned());
            Rate::parse(&text).unwrap_or_else(|e| {
                problems.push(format!("{var}: {e}"));
                None
            })
        };
        let api_rate_limit = rate("SHARPSEND_API_RATE_LIMIT", "50/s");
        let test_connection_rate_limit = rate("SHARPSEND_TEST_CONNECTION_RATE_LIMIT", "10/m");
        let auth_failure_rate_limit = rate("SHARPSEND_AUTH_FAILURE_RATE_LIMIT", "20/m");
        let destinations_allow_private = match get("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE")
            .as_deref()
            .map(str::trim)
        {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                problems.push(format!(
                    "SHARPSEND_DESTINATIONS_ALLOW_PRIVATE: `{other}` is not true or false"
                ));
                false
            }
        };

        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Self {
            listen,
            database_url: SecretString::from(database_url),
            redis_url: redis_url.map(SecretString::from),
            master_key,
            admin_token: admin_token.map(SecretString::from),
            public_url,
            upstreams,
            upstream_timeout: Duration::from_millis(u64::from(timeout_ms)),
            sync_interval_minutes,
            sync_workers,
            sync_lease: Duration::from_secs(u64::from(sync_lease_seconds)),
            rate_budget_percent,
            keap_client,
            header_read_timeout: Duration::from_secs(u64::from(header_read_timeout)),
            request_timeout: Duration::from_secs(u64::from(request_timeout)),
            max_connections,
            shutdown_timeout: Duration::from_secs(u64::from(shutdown_timeout)),
            metrics_listen,
            api_rate_limit,
            test_connection_rate_limit,
            auth_failure_rate_limit,
            destinations_allow_private,
            sandbox: false,
        })
    }

    /// The public origin without a trailing slash, for building absolute URLs; `bound` is the
    /// address the server actually listens on (port 0 resolved).
    pub fn public_origin(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
    problems: &mut Vec<String>,
) -> u32 {
    let Some(text) = get(var) else {
        return default;
    };
    match text.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            problems.push(format!(
                "{var}: `{text}` must be a whole number from {} to {}",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose_secret(), "sqlite://data/sharpsend.db");
        assert_eq!(c.public_origin(c.listen), "http://127.0.0.1:8080");
        assert_eq!(c.upstream_timeout, Duration::from_secs(10));
        assert_eq!(c.sync_interval_minutes, 60);
        assert!(matches!(c.master_key, KeySource::File(ref p) if p.ends_with("data/master.key")));
        assert_eq!(c.upstreams, Upstreams::defaults());
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(120));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(c.metrics_listen, None);
        let api = c.api_rate_limit.unwrap();
        assert_eq!((api.to_string(), api.burst()), ("50/s".into(), 100));
        let test = c.test_connection_rate_limit.unwrap();
        assert_eq!((test.to_string(), test.burst()), ("10/m".into(), 10));
        let failures = c.auth_failure_rate_limit.unwrap();
        assert_eq!(
            (failures.to_string(), failures.burst()),
            ("20/m".into(), 20)
        );
    }

    #[test]
    fn rate_limits_parse_and_zero_turns_them_off() {
        assert_eq!(Rate::parse("0"), Ok(None));
        let r = Rate::parse(" 5/s ").unwrap().unwrap();
        assert_eq!((r.count.get(), r.per_minute, r.burst()), (5, false, 10));
        let r = Rate::parse("7/m").unwrap().unwrap();
        assert_eq!((r.count.get(), r.per_minute, r.burst()), (7, true, 7));
        for bad in ["5", "5/h", "-1/s", "0/s", "x/m", "1000001/s", "/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let c = config(&[
            ("SHARPSEND_API_RATE_LIMIT", "0"),
            ("SHARPSEND_TEST_CONNECTION_RATE_LIMIT", "0"),
            ("SHARPSEND_AUTH_FAILURE_RATE_LIMIT", "0"),
        ])
        .unwrap();
        assert_eq!(c.api_rate_limit, None);
        assert_eq!(c.test_connection_rate_limit, None);
        assert_eq!(c.auth_failure_rate_limit, None);
        let err = config(&[("SHARPSEND_API_RATE_LIMIT", "fast")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHARPSEND_API_RATE_LIMIT"), "{err}");
    }

    #[test]
    fn server_limits_are_bounded() {
        let err = config(&[
            ("SHARPSEND_HEADER_READ_TIMEOUT_SECONDS", "21"),
            ("SHARPSEND_REQUEST_TIMEOUT_SECONDS", "0"),
            ("SHARPSEND_MAX_CONNECTIONS", "0"),
            ("SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS", "x"),
            ("SHARPSEND_METRICS_LISTEN", "nope"),
        ])
        .unwrap_err()
        .to_string();
        for var in [
            "SHARPSEND_HEADER_READ_TIMEOUT_SECONDS",
            "SHARPSEND_REQUEST_TIMEOUT_SECONDS",
            "SHARPSEND_MAX_CONNECTIONS",
            "SHARPSEND_SHUTDOWN_TIMEOUT_SECONDS",
            "SHARPSEND_METRICS_LISTEN",
        ] {
            assert!(err.contains(var), "{var} missing from: {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let err = config(&[
            ("SHARPSEND_LISTEN", "nope"),
            ("SHARPSEND_DATABASE_URL", "mysql://x"),
            ("SHARPSEND_MASTER_KEY", "short"),
            ("SHARPSEND_UPSTREAM_TIMEOUT_MS", "-5"),
            ("SHARPSEND_SYNC_INTERVAL_MINUTES", "soon"),
            ("SHARPSEND_ITERABLE_EU_URL", "http://h/api"),
            ("SHARPSEND_PUBLIC_URL", "not a url"),
            ("SHARPSEND_RATE_BUDGET_PERCENT", "0"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for var in [
            "SHARPSEND_LISTEN",
            "SHARPSEND_DATABASE_URL",
            "SHARPSEND_MASTER_KEY",
            "SHARPSEND_UPSTREAM_TIMEOUT_MS",
            "SHARPSEND_SYNC_INTERVAL_MINUTES",
            "SHARPSEND_ITERABLE_EU_URL",
            "SHARPSEND_PUBLIC_URL",
            "SHARPSEND_RATE_BUDGET_PERCENT",
        ] {
            assert!(text.contains(var), "{var} missing from: {text}");
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = config(&[
            ("SHARPSEND_DATABASE_URL", "postgres://u:dbpassword@h/db"),
            ("SHARPSEND_ADMIN_TOKEN", "admin-token-0123456789"),
            (
                "SHARPSEND_MASTER_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("SHARPSEND_REDIS_URL", "redis://:redispw@h"),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        for secret in [
            "dbpassword",
            "admin-token-0123456789",
            "AAAAAAAAAAAAAAAA",
            "redispw",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked: {dbg}");
        }
    }

    #[test]
    fn public_url_defaults_to_bound_address() {
        let c = config(&[("SHARPSEND_LISTEN", "127.0.0.1:0")]).unwrap();
        assert_eq!(
            c.public_origin("127.0.0.1:4567".parse().unwrap()),
            "http://127.0.0.1:4567"
        );
        let c = config(&[("SHARPSEND_PUBLIC_URL", "https://hooks.example.com/")]).unwrap();
        assert_eq!(c.public_origin(c.listen), "https://hooks.example.com");
    }
}
