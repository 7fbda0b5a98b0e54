//! The test harness: a real server on port 0 over a fresh database (SQLite, or PostgreSQL when
//! `TEST_DATABASE_URL` is set), with typed helpers.

use std::{collections::HashMap, net::SocketAddr};

use axum::Router;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sharpsend::{
    Application, Config,
    sandbox::{Sandbox, SandboxOptions},
    state::AppState,
};
use store::testing::TestDb;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Settings that turn our own API rate limits off, for tests that sweep many routes or send
/// many credential calls on purpose (the limits have their own tests, `api_ratelimit`).
#[allow(dead_code)]
pub const NO_API_LIMITS: &[(&str, &str)] = &[
    ("SHARPSEND_API_RATE_LIMIT", "0"),
    ("SHARPSEND_TEST_CONNECTION_RATE_LIMIT", "0"),
];

pub fn random_master_key() -> String {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    STANDARD.encode(k)
}

/// Configuration for a test server: port 0, the given database, a fixed admin token.
pub fn test_config(db_url: &str, master_key: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("SHARPSEND_LISTEN".into(), "127.0.0.1:0".into()),
        ("SHARPSEND_DATABASE_URL".into(), db_url.into()),
        ("SHARPSEND_MASTER_KEY".into(), master_key.into()),
        ("SHARPSEND_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        // Scheduled syncs would call the simulators behind a test's back; the sync tests turn
        // them on where they test them.
        ("SHARPSEND_SYNC_INTERVAL_MINUTES".into(), "0".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test config is valid")
}

/// A fresh database for this run's backend.
pub async fn fresh_db() -> TestDb {
    match TestDb::postgres().await {
        Some(pg) => pg,
        None => TestDb::sqlite(),
    }
}

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub state: AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A response: status, headers, JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts the error envelope with this status and code; answers the body.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["success"], false, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "error sentence: {}",
            self.body
        );
        &self.body
    }

    /// Asserts a success envelope; answers `data`.
    #[track_caller]
    pub fn expect_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["success"], true, "body: {}", self.body);
        &self.body["data"]
    }

    pub fn field(&self) -> &str {
        self.body["details"]["field"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Starts the real application on `db` with a new master key.
    pub async fn spawn(db: &TestDb) -> Self {
        Self::spawn_with(db, &random_master_key(), &[]).await
    }

    /// Starts the three platform simulators on port 0 and the application with every upstream
    /// pointed at them. Drive a simulator with `sim_core::SimClient::new(sandbox origin)`.
    #[allow(dead_code)] // used by the connector test modules
    pub async fn spawn_sandboxed(db: &TestDb) -> (Self, Sandbox) {
        Self::spawn_sandboxed_with(db, &SandboxOptions::default(), &random_master_key(), &[]).await
    }

    /// [`Self::spawn_sandboxed`] with our own API rate limits off ([`NO_API_LIMITS`]).
    #[allow(dead_code)]
    pub async fn spawn_sandboxed_unlimited(db: &TestDb) -> (Self, Sandbox) {
        Self::spawn_sandboxed_with(
            db,
            &SandboxOptions::default(),
            &random_master_key(),
            NO_API_LIMITS,
        )
        .await
    }

    /// [`Self::spawn_sandboxed`] with chosen simulator data, master key and settings.
    #[allow(dead_code)] // used by the sync tests
    pub async fn spawn_sandboxed_with(
        db: &TestDb,
        opts: &SandboxOptions,
        master_key: &str,
        settings: &[(&str, &str)],
    ) -> (Self, Sandbox) {
        let sandbox = Sandbox::start(&mut sim_core::Binder::ephemeral(), opts)
            .await
            .expect("simulators start");
        let overrides = sandbox.upstream_overrides();
        let mut extra: Vec<(&str, &str)> =
            overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
        extra.extend_from_slice(settings);
        let app = Self::spawn_with(db, master_key, &extra).await;
        (app, sandbox)
    }

    pub async fn spawn_with(db: &TestDb, master_key: &str, extra: &[(&str, &str)]) -> Self {
        let app = Application::build(test_config(&db.url, master_key, extra))
            .await
            .expect("application builds");
        Self::run(app)
    }

    /// Serves an application built by the test (to read its `metrics_addr`, say).
    pub fn run(app: Application) -> Self {
        let state = app.state().clone();
        Self::serve(app.local_addr(), state, |shutdown| {
            Box::pin(async move {
                let _ = app.run_until_stopped(shutdown).await;
            })
        })
    }

    /// Serves `extra` routes under the application's shared layers (`http::finish`), next to
    /// nothing else: for checking middleware on routes the foundation does not have yet.
    pub async fn spawn_router(db: &TestDb, extra: Router<AppState>) -> Self {
        let app = Application::build(test_config(&db.url, &random_master_key(), &[]))
            .await
            .expect("application builds");
        let state = app.state().clone();
        let router = sharpsend::http::finish(extra, state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state_for_limits = state.clone();
        Self::serve(addr, state, move |shutdown| {
            Box::pin(async move {
                let limits = sharpsend::server::Limits::of(&state_for_limits.config);
                sharpsend::server::serve(listener, router, limits, shutdown).await;
            })
        })
    }

    fn serve(
        addr: SocketAddr,
        state: AppState,
        run: impl FnOnce(
            CancellationToken,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shutdown.clone()));
        Self {
            addr,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            state,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(req.send().await.expect("request sent")).await
    }

    pub async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Creates a publisher API key through the admin API; answers (key id, key).
    pub async fn create_key(&self, publisher: &str) -> (String, String) {
        let a = self
            .call(
                Method::POST,
                &format!("/api/admin/publishers/{publisher}/api-keys"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
        let data = a.expect_ok(201);
        (
            data["id"].as_str().unwrap().to_owned(),
            data["key"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The real `sharpsend` binary, started from a prepared [`std::process::Command`], with its log
/// (stderr) read line by line on a thread; `addr` is the address its listening line names.
#[allow(dead_code)] // used by the log tests
pub struct ServedBinary {
    child: std::process::Child,
    pub addr: String,
    /// The lines read so far.
    pub log: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

#[allow(dead_code)]
impl ServedBinary {
    /// Starts `cmd` with stderr piped and reads its log until the listening line.
    pub fn start(mut cmd: std::process::Command) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = cmd
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut log = Vec::new();
        let addr = loop {
            let line = lines
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the server logs its address");
            let found = line
                .split("addr=")
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
            log.push(line);
            if let Some(a) = found.filter(|a| !a.is_empty()) {
                break a;
            }
        };
        Self {
            child,
            addr,
            log,
            lines,
            reader: Some(reader),
        }
    }

    /// Reads log lines until one satisfies `done` or `within` passes; answers whether one did.
    pub fn wait_for_line(
        &mut self,
        within: std::time::Duration,
        done: impl Fn(&str) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + within;
        while !self.log.iter().any(|l| done(l)) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            if let Ok(line) = self
                .lines
                .recv_timeout(std::time::Duration::from_millis(200))
            {
                self.log.push(line);
            }
        }
        true
    }

    /// Kills the process and answers every line it logged.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.log.extend(self.lines.try_iter());
        std::mem::take(&mut self.log)
    }
}

impl Drop for ServedBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
