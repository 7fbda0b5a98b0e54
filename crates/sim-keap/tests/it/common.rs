#![allow(dead_code)] // helpers shared by test modules; not every module uses each one

use std::path::PathBuf;

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use sim_core::{Binder, Running, SimClient};
use sim_keap::Options;

pub struct Sim {
    pub running: Running,
    pub origin: String,
    pub ctl: SimClient,
    pub http: reqwest::Client,
}

/// Options for tests: hooks deliver at once and retry without waiting.
pub fn opts() -> Options {
    Options {
        hook_delay_ms: 60_000,
        hook_retry_ms: vec![60_000, 60_000, 60_000],
        hook_timeout_ms: 2_000,
        ..Options::default()
    }
}

pub async fn start(opts: Options) -> Sim {
    let running = sim_keap::start(&mut Binder::ephemeral(), opts)
        .await
        .expect("start keap simulator");
    let origin = running
        .origin(sim_keap::API_URL_ENV)
        .expect("api origin")
        .to_owned();
    Sim {
        ctl: SimClient::new(&origin),
        origin,
        running,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// A simulator whose rate limits no test run reaches: for tests about shapes, not limits (a
/// fast machine can send the 26 requests of one fidelity test within a second).
pub async fn unlimited_sim() -> Sim {
    let lots = sim_keap::ClassLimits {
        spike_per_second: 1_000_000,
        per_minute: 100_000_000,
        per_day: 1_000_000_000,
    };
    start(Options {
        limits: sim_keap::Limits {
            oauth: lots,
            key: lots,
            tenant_per_minute: 100_000_000,
            tenant_per_day: 1_000_000_000,
        },
        ..opts()
    })
    .await
}

pub async fn sim() -> Sim {
    start(opts()).await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    Resp {
        status: r.status(),
        headers: r.headers().clone(),
        text: r.text().await.unwrap(),
    }
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// A REST call with the sandbox bearer token.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_as(sim_keap::ACCESS_TOKEN, method, path, body)
            .await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_resp(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    /// POST /token with a form body and optional Basic credentials.
    pub async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Resp {
        let mut req = self.http.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        into_resp(req.send().await.unwrap()).await
    }
}

/// A local HTTP receiver for hook verification and deliveries.
pub mod receiver {
    use std::sync::{Arc, Mutex};

    use axum::{
        Router,
        body::Bytes,
        extract::State,
        http::{HeaderMap, HeaderValue, StatusCode},
        response::{IntoResponse, Response},
        routing::post,
    };
    use tokio::sync::mpsc;

    /// How the receiver answers.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Mode {
        /// 200, echoing `X-Hook-Secret`.
        Echo,
        /// 200 without echoing.
        NoEcho,
        /// This status for every request.
        Status(u16),
        /// 200 (echoing) after this many milliseconds.
        Slow(u64),
    }

    #[derive(Debug)]
    pub struct Received {
        pub headers: HeaderMap,
        pub body: Bytes,
    }

    #[derive(Clone)]
    struct St {
        mode: Arc<Mutex<Mode>>,
        tx: mpsc::UnboundedSender<Received>,
    }

    pub struct Receiver {
        pub url: String,
        mode: Arc<Mutex<Mode>>,
        pub rx: mpsc::UnboundedReceiver<Received>,
        _server: sim_core::SimServer,
    }

    impl Receiver {
        pub fn set(&self, m: Mode) {
            *self.mode.lock().unwrap() = m;
        }

        /// The next request (verification or delivery), failing after 10 s.
        pub async fn next(&mut self) -> Received {
            tokio::time::timeout(std::time::Duration::from_secs(10), self.rx.recv())
                .await
                .expect("receiver got nothing within 10 s")
                .expect("receiver channel closed")
        }

        /// The next delivery (skipping verification POSTs).
        pub async fn next_delivery(&mut self) -> serde_json::Value {
            loop {
                let r = self.next().await;
                if !r.headers.contains_key("x-hook-secret") {
                    return serde_json::from_slice(&r.body).expect("delivery JSON");
                }
            }
        }

        pub fn try_next(&mut self) -> Option<Received> {
            self.rx.try_recv().ok()
        }
    }

    async fn handle(State(st): State<St>, headers: HeaderMap, body: Bytes) -> Response {
        let mode = *st.mode.lock().unwrap();
        let secret = headers.get("x-hook-secret").cloned();
        let _ = st.tx.send(Received { headers, body });
        if let Mode::Slow(ms) = mode {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        match mode {
            Mode::Echo | Mode::Slow(_) => {
                let mut r = StatusCode::OK.into_response();
                if let Some(s) = secret {
                    r.headers_mut().insert("x-hook-secret", s);
                }
                r
            }
            Mode::NoEcho => {
                let mut r = StatusCode::OK.into_response();
                r.headers_mut()
                    .insert("x-hook-secret", HeaderValue::from_static("wrong"));
                r
            }
            Mode::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        }
    }

    pub async fn start(mode: Mode) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let mode = Arc::new(Mutex::new(mode));
        let st = St {
            mode: mode.clone(),
            tx,
        };
        let router = Router::new().route("/hook", post(handle)).with_state(st);
        let listener = sim_core::Binder::ephemeral().bind().await.unwrap();
        let server = sim_core::spawn(listener, router).unwrap();
        Receiver {
            url: format!("{}/hook", server.origin()),
            mode,
            rx,
            _server: server,
        }
    }
}

/// The vendors' reference data for this simulator (see `sim_core::vendor`).
pub fn vendor() -> PathBuf {
    sim_core::vendor::dir(env!("CARGO_MANIFEST_DIR"), "keap")
}

/// Whether a test that reads [`vendor`] must skip (see `sim_core::vendor::missing`).
pub fn vendor_missing() -> bool {
    sim_core::vendor::missing(env!("CARGO_MANIFEST_DIR"), "keap")
}
