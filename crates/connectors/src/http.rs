//! The HTTP machinery every connector shares: one rustls `reqwest` client, proactive rate limits
//! per (credential, endpoint class), and one retry policy.
//!
//! A call goes: wait for a token from the budget of its endpoint class (so we slow down before
//! the platform has to say 429) → send with the configured timeout → classify. Timeouts, resets,
//! 5xx and 429 are temporary; they are retried with full-jitter exponential backoff (AWS
//! "Exponential Backoff and Jitter"), honouring an RFC 9110 `Retry-After` (seconds or HTTP-date)
//! when the platform sends one, within a bounded total wait. Only calls marked idempotent are
//! retried after an ambiguous failure (a timeout or reset may have been processed); a 429 or a
//! refused connection was certainly not processed, so those are retried for every call.
//!
//! A request that cannot be built (a header value with a control character, say) is never sent
//! and never retried: it answers `InvalidRequest` at once. Every answer is read with a size cap
//! ([`DEFAULT_MAX_BODY`], [`UpstreamClient::with_max_body`]): a larger one is refused as
//! `Unavailable` (`CONNECTION_FAILED`) without being held in memory. Ids placed in a URL path go
//! through [`path_segment`].

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::{Bytes, BytesMut};
use domain::Platform;
use rand::Rng as _;
use reqwest::{StatusCode, header::HeaderMap};

use crate::{
    ConnectorError, ErrorKind, Retry,
    budget::{BudgetEvent, LocalBudget, RateBudget, RedisBudget, SharedBudgets},
    limits::{ClassLimits, LimitsTracker},
    rate::Rate,
};

/// The largest upstream answer read into memory (32 MiB), unless [`UpstreamClient::with_max_body`]
/// says otherwise. No platform answer we read whole comes near it; streamed exports are read
/// their own way.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// How much of a 429's body is read for a rate-limit hint.
const HINT_MAX_BODY: usize = 64 * 1024;

/// An id as one URL path segment: every byte but RFC 3986's unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) percent-encoded, so `/`, `?`, `#` and `%` cannot change the path.
/// Empty ids and the dot segments `.` and `..` are refused (`InvalidRequest`): URL parsers
/// resolve those even when percent-encoded, so no encoding makes them safe. Every id a connector
/// puts in an upstream path goes through here.
pub fn path_segment(platform: Platform, id: &str) -> Result<String, ConnectorError> {
    if id.is_empty() || id == "." || id == ".." {
        return Err(ConnectorError::new(
            platform,
            ErrorKind::InvalidRequest,
            format!(
                "An id that is empty, `.` or `..` cannot be placed in a {} URL.",
                platform.display_name()
            ),
        ));
    }
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// Why a capped read stopped.
enum ReadError {
    /// The answer is larger than the cap (declared or seen).
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads `resp`'s body, refusing it (without reading further) once it passes `max` bytes. A
/// declared `Content-Length` over the cap is refused before any of it is read.
async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Bytes, ReadError> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The longest a streamed answer may take from start to end (its waits are bounded one by one
/// by the client's timeout; this only stops a body that trickles forever).
pub const STREAM_MAX_DURATION: Duration = Duration::from_secs(6 * 3600);

/// What a send ended with, before the caller's shape.
enum Reply {
    Whole(Answer),
    Stream(reqwest::Response),
}

/// Why an attempt got no answer.
enum Failure {
    Http(reqwest::Error),
    /// A streamed request's head did not come within the client's timeout.
    HeadTimeout,
}

/// The answer of [`UpstreamClient::send_streamed`]: an error (or other non-2xx) answer read whole,
/// or a 2xx whose body is still to be read.
pub enum Streamed {
    Answer(Answer),
    Body(StreamedBody),
}

/// A 2xx answer's body, read a chunk at a time; dropping it closes the connection.
pub struct StreamedBody {
    pub status: StatusCode,
    body: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, String>> + Send>>,
    idle: Duration,
}

impl std::fmt::Debug for StreamedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedBody")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Why a streamed body stopped before its end.
#[derive(Debug)]
pub enum BodyBreak {
    /// No more came within the client's timeout.
    Idle,
    /// The connection failed or was cut (a description without the URL).
    Cut(String),
}

impl StreamedBody {
    /// The next piece of the body; `Ok(None)` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyBreak> {
        use futures::StreamExt as _;
        match tokio::time::timeout(self.idle, self.body.next()).await {
            Err(_) => Err(BodyBreak::Idle),
            Ok(None) => Ok(None),
            Ok(Some(Ok(b))) => Ok(Some(b)),
            Ok(Some(Err(e))) => Err(BodyBreak::Cut(e)),
        }
    }

    /// A 200 body made of `chunks` (an `Err` is a cut connection): for tests of the readers
    /// built on it.
    pub fn from_chunks(chunks: Vec<Result<Bytes, String>>) -> Self {
        Self {
            status: StatusCode::OK,
            body: Box::pin(futures::stream::iter(chunks)),
            idle: Duration::from_secs(5),
        }
    }
}

/// Who observes upstream calls (the service's metrics).
pub trait UpstreamObserver: Send + Sync {
    /// One attempt finished: `outcome` is `ok`, `client_error`, `rate_limited`, `server_error`,
    /// `malformed`, `timeout` or `transport_error`.
    fn attempt(&self, platform: Platform, outcome: &'static str);

    /// The platform answered 429 to a call of endpoint class `class`.
    fn rate_limited(&self, _platform: Platform, _class: &'static str) {}

    /// Our own budget of `class` refused a call (its turn was too far away).
    fn budget_refused(&self, _platform: Platform, _class: &'static str) {}
}

/// An observer that records nothing.
pub struct NoObserver;

impl UpstreamObserver for NoObserver {
    fn attempt(&self, _: Platform, _: &'static str) {}
}

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling; doubles per attempt.
    pub base: Duration,
    /// Largest single backoff.
    pub cap: Duration,
    /// Largest total time spent waiting between attempts (and for a rate-limit token).
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            max_total_wait: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a uniform wait in `[0, min(cap, base · 2^attempt))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What one call is.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// A name for logs and errors (`list_campaigns`).
    pub operation: &'static str,
    /// The endpoint class whose budget it spends (`campaigns`, `users_update`, …).
    pub class: &'static str,
    /// The budget's owner: a digest of the credential, never the credential itself.
    pub budget_key: &'a str,
    /// Whether repeating it after an ambiguous failure is safe.
    pub idempotent: bool,
}

/// A platform's answer that got past transport and retry classification: any 2xx, or a 4xx the
/// connector maps with its own error table.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

/// One platform's HTTP client, budgets and retry policy. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    platform: Platform,
    http: reqwest::Client,
    policy: RetryPolicy,
    /// The endpoint classes' published limits.
    budgets: Arc<[(&'static str, Rate)]>,
    /// Where calls take their turn: this process, or Redis shared by every replica.
    budget: Arc<dyn RateBudget>,
    observer: Arc<dyn UpstreamObserver>,
    /// A platform's own reading of a 429 without `Retry-After` (headers, body, now).
    rate_limit_hint: Option<RateLimitHint>,
    /// Classes whose calls wait at most this long for a turn (instead of the policy's total).
    class_max_wait: Arc<[(&'static str, Duration)]>,
    /// What the budgets are doing (sent, 429s, refusals, next free turn), for `…/limits`.
    limits: Arc<LimitsTracker>,
    /// The largest answer read into memory, in bytes.
    max_body: usize,
    /// The per-request timeout (for a streamed read: per wait for its head or for more body).
    timeout: Duration,
}

/// How long a platform's 429 asks to wait, read from its headers and body.
pub type RateLimitHint = fn(&HeaderMap, &[u8], SystemTime) -> Option<Duration>;

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("platform", &self.platform)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// `budgets` maps endpoint classes to the platform's published limits; a class without one
    /// is not throttled ahead of time.
    pub fn new(
        platform: Platform,
        timeout: Duration,
        budgets: &[(&'static str, Rate)],
        observer: Arc<dyn UpstreamObserver>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("sharpsend/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed within the same origin by the platforms' own rules; a
            // cross-origin redirect would carry credentials away, so none are followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            platform,
            http,
            policy: RetryPolicy::default(),
            budgets: budgets.into(),
            budget: Arc::new(LocalBudget::new(budgets)),
            observer,
            rate_limit_hint: None,
            class_max_wait: Arc::new([]),
            limits: Arc::new(LimitsTracker::new(budgets)),
            max_body: DEFAULT_MAX_BODY,
            timeout,
        }
    }

    /// Reads answers of at most `bytes` (default [`DEFAULT_MAX_BODY`]); a larger one is
    /// `Unavailable` (`CONNECTION_FAILED`) and is not retried.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The largest answer this client reads into memory.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// What this client's budgets are doing, as this process saw it.
    pub fn limits(&self) -> &Arc<LimitsTracker> {
        &self.limits
    }

    /// The classes' figures for the credentials `keys` (see [`LimitsTracker::snapshot`]), and
    /// whether they are every replica's: with budgets shared through Redis, each class's fill,
    /// 429s, refusals and next free turn are read from Redis; a class Redis cannot answer for
    /// keeps this process's figures, and the answer says `false`.
    pub async fn limits_view(&self, keys: &[&str]) -> (Vec<ClassLimits>, bool) {
        let mut classes = self.limits.snapshot(keys);
        let mut all_shared = true;
        for c in &mut classes {
            let mut shared = Vec::with_capacity(keys.len());
            for key in keys {
                match self.budget.shared_figures(c.class, key).await {
                    Some(f) => shared.push(f),
                    None => break,
                }
            }
            if shared.len() != keys.len() || keys.is_empty() {
                all_shared = false;
                continue;
            }
            if shared.iter().all(|f| f.used.is_some()) {
                c.used = shared.iter().filter_map(|f| f.used).sum();
            }
            c.rate_limited_last_hour = shared.iter().map(|f| f.rate_limited_last_hour).sum();
            c.refused_last_hour = shared.iter().map(|f| f.refused_last_hour).sum();
            let next = shared
                .iter()
                .map(|f| f.next_free_in)
                .max()
                .unwrap_or_default();
            c.next_free_at = c.next_free_at.max(SystemTime::now() + next);
        }
        (classes, all_shared)
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Calls of `class` wait at most `max` for a turn, then answer `RateLimited` with the wait
    /// as the retry hint (e.g. Customer.io's broadcast triggers, one per 10 s: an API request
    /// should not hang for 10 s).
    pub fn with_class_max_wait(mut self, class: &'static str, max: Duration) -> Self {
        let mut v: Vec<_> = self.class_max_wait.iter().copied().collect();
        v.push((class, max));
        self.class_max_wait = v.into();
        self
    }

    /// Reads 429s that carry no `Retry-After` the platform's way (Keap's quota faults).
    pub fn with_rate_limit_hint(mut self, hint: RateLimitHint) -> Self {
        self.rate_limit_hint = Some(hint);
        self
    }

    /// Takes the budgets from Redis (shared by every replica) when `shared` is set; this
    /// process's own budgets stay the fallback while Redis does not answer.
    pub fn with_shared_budgets(mut self, shared: Option<Arc<SharedBudgets>>) -> Self {
        if let Some(shared) = shared {
            self.budget = Arc::new(RedisBudget::new(self.platform, &self.budgets, shared));
        }
        self
    }

    /// Any budget implementation (tests, or a different store).
    pub fn with_budget(mut self, budget: Arc<dyn RateBudget>) -> Self {
        self.budget = budget;
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn err(&self, kind: ErrorKind, message: String) -> ConnectorError {
        ConnectorError::new(self.platform, kind, message)
    }

    /// The error of a request that could not be built: nothing was sent, and trying again
    /// cannot help.
    fn unbuildable(&self, call: Call<'_>, e: &reqwest::Error) -> ConnectorError {
        tracing::warn!(
            platform = %self.platform,
            operation = call.operation,
            error = %short(e),
            "upstream request could not be built"
        );
        self.err(
            ErrorKind::InvalidRequest,
            format!(
                "The request to {} could not be built, so nothing was sent: a credential or id holds characters that cannot be sent over HTTP ({}). Connect again with the value as the platform shows it.",
                self.platform.display_name(),
                short(e)
            ),
        )
        .with_retry(Retry::Permanent)
    }

    /// Sends the request `build` makes (called again for each attempt), with budgets and
    /// retries. Answers a 2xx or a non-429 4xx for the connector to interpret; everything else
    /// becomes a [`ConnectorError`] once retries run out.
    pub async fn send(
        &self,
        call: Call<'_>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ConnectorError> {
        match self.send_inner(call, build, false).await? {
            Reply::Whole(a) => Ok(a),
            // Only a streamed send answers a stream; read it whole, capped, all the same.
            Reply::Stream(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = read_capped(resp, self.max_body).await.map_err(|_| {
                    self.err(
                        ErrorKind::Unavailable,
                        format!(
                            "{}'s answer could not be read whole.",
                            self.platform.display_name()
                        ),
                    )
                })?;
                Ok(Answer {
                    status,
                    headers,
                    body,
                })
            }
        }
    }

    /// As [`send`](Self::send), but a 2xx answer's body is not read: it comes back as an open
    /// [`StreamedBody`] for the caller to read a piece at a time (Iterable's exports, whose size
    /// has no bound). Budgets, retries and error answers (read whole, capped) are as for
    /// `send`; once the head of a 2xx is in, nothing is retried here: a body cut off later is
    /// the caller's to resume.
    ///
    /// The client's timeout bounds the wait for the answer's head and, in
    /// [`StreamedBody::chunk`], each wait for more of the body, not the whole read.
    pub async fn send_streamed(
        &self,
        call: Call<'_>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Streamed, ConnectorError> {
        match self.send_inner(call, build, true).await? {
            Reply::Whole(a) => Ok(Streamed::Answer(a)),
            Reply::Stream(resp) => {
                use futures::StreamExt as _;
                let status = resp.status();
                let body = resp.bytes_stream().map(|r| r.map_err(|e| short(&e)));
                Ok(Streamed::Body(StreamedBody {
                    status,
                    body: Box::pin(body),
                    idle: self.timeout,
                }))
            }
        }
    }

    async fn send_inner(
        &self,
        call: Call<'_>,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        stream: bool,
    ) -> Result<Reply, ConnectorError> {
        let name = self.platform.display_name();
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        loop {
            // A request that cannot be built (a header value with a control character, a bad
            // URL) would fail the same way every time: refused at once, before any budget turn,
            // and never retried.
            let builder = if stream {
                // The client's total timeout would cut a long body off; a streamed read is
                // bounded per wait instead (head below, body in `StreamedBody::chunk`).
                build(&self.http).timeout(STREAM_MAX_DURATION)
            } else {
                build(&self.http)
            };
            let request = match builder.build() {
                Ok(r) => r,
                Err(e) => return Err(self.unbuildable(call, &e)),
            };
            // Proactive budget: wait for a turn rather than spend a request on a 429.
            let mut remaining = self.policy.max_total_wait.saturating_sub(waited);
            if let Some((_, max)) = self.class_max_wait.iter().find(|(c, _)| *c == call.class) {
                remaining = remaining.min(*max);
            }
            match self
                .budget
                .acquire(call.class, call.budget_key, remaining)
                .await
            {
                Ok(w) => waited += w,
                Err(e) => {
                    self.limits.refused(call.class, call.budget_key, e.after);
                    self.budget
                        .note(call.class, call.budget_key, BudgetEvent::Refused)
                        .await;
                    self.observer.budget_refused(self.platform, call.class);
                    return Err(self
                        .err(
                            ErrorKind::RateLimited,
                            format!(
                                "{name}'s rate limit for {} is used up; try again in {} s.",
                                call.class,
                                e.after.as_secs() + u64::from(e.after.subsec_nanos() > 0)
                            ),
                        )
                        .with_retry(Retry::Temporary {
                            after: Some(e.after),
                        }));
                }
            }
            attempt += 1;
            self.limits.sent(call.class, call.budget_key);
            let outcome = if stream {
                match tokio::time::timeout(self.timeout, self.http.execute(request)).await {
                    Ok(outcome) => outcome.map_err(Failure::Http),
                    Err(_) => Err(Failure::HeadTimeout),
                }
            } else {
                self.http.execute(request).await.map_err(Failure::Http)
            };
            let (failure, processed_maybe, retry_after) = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        self.observer.attempt(self.platform, "rate_limited");
                        let now = SystemTime::now();
                        let mut after = parse_retry_after(&headers, now);
                        if after.is_none()
                            && let Some(hint) = self.rate_limit_hint
                        {
                            let body = read_capped(resp, HINT_MAX_BODY.min(self.max_body))
                                .await
                                .unwrap_or_default();
                            after = hint(&headers, &body, now);
                        }
                        self.limits.rate_limited(call.class, call.budget_key, after);
                        self.budget
                            .note(call.class, call.budget_key, BudgetEvent::RateLimited)
                            .await;
                        self.observer.rate_limited(self.platform, call.class);
                        let e = self
                            .err(
                                ErrorKind::RateLimited,
                                format!("{name} answered 429: its rate limit was exceeded."),
                            )
                            .with_status(429)
                            .with_retry(Retry::Temporary { after });
                        (e, false, after)
                    } else if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
                        self.observer.attempt(self.platform, "server_error");
                        let e = self
                            .err(
                                ErrorKind::Unavailable,
                                format!("{name} answered {status} (a fault on their side)."),
                            )
                            .with_status(status.as_u16());
                        let after = parse_retry_after(&headers, SystemTime::now());
                        (e, true, after)
                    } else if stream && status.is_success() {
                        self.observer.attempt(self.platform, "ok");
                        return Ok(Reply::Stream(resp));
                    } else {
                        match read_capped(resp, self.max_body).await {
                            Ok(body)
                                if status.is_success()
                                    && declared_json_but_malformed(&headers, &body) =>
                            {
                                // A 2xx whose JSON does not parse: a truncated or garbled answer,
                                // treated like a 5xx (retried where safe).
                                self.observer.attempt(self.platform, "malformed");
                                let e = self
                                    .err(
                                        ErrorKind::Unavailable,
                                        format!(
                                            "{name} answered with a malformed body (not the JSON it declared)."
                                        ),
                                    )
                                    .with_status(status.as_u16());
                                (e, true, None)
                            }
                            Ok(body) => {
                                let outcome = if status.is_success() {
                                    "ok"
                                } else {
                                    "client_error"
                                };
                                self.observer.attempt(self.platform, outcome);
                                return Ok(Reply::Whole(Answer {
                                    status,
                                    headers,
                                    body,
                                }));
                            }
                            Err(ReadError::TooLarge) => {
                                // As large again on a retry: refused at once, never held.
                                self.observer.attempt(self.platform, "malformed");
                                tracing::warn!(
                                    platform = %self.platform,
                                    operation = call.operation,
                                    max_bytes = self.max_body,
                                    "upstream answer over the size cap"
                                );
                                return Err(self
                                    .err(
                                        ErrorKind::Unavailable,
                                        format!(
                                            "{name}'s answer is larger than {} bytes, the most we read; it was not used.",
                                            self.max_body
                                        ),
                                    )
                                    .with_status(status.as_u16())
                                    .with_retry(Retry::Permanent));
                            }
                            Err(ReadError::Transport(e)) => {
                                self.observer.attempt(self.platform, "transport_error");
                                let e = self.err(
                                    ErrorKind::Unavailable,
                                    format!("{name}'s answer was cut off ({}).", short(&e)),
                                );
                                (e, true, None)
                            }
                        }
                    }
                }
                Err(Failure::Http(e)) if e.is_builder() => {
                    return Err(self.unbuildable(call, &e));
                }
                Err(Failure::HeadTimeout) => {
                    self.observer.attempt(self.platform, "timeout");
                    (
                        self.err(
                            ErrorKind::Unavailable,
                            format!("{name} did not answer in time."),
                        ),
                        true,
                        None,
                    )
                }
                Err(Failure::Http(e)) if e.is_timeout() => {
                    self.observer.attempt(self.platform, "timeout");
                    (
                        self.err(
                            ErrorKind::Unavailable,
                            format!("{name} did not answer in time."),
                        ),
                        true,
                        None,
                    )
                }
                Err(Failure::Http(e)) => {
                    self.observer.attempt(self.platform, "transport_error");
                    // A refused connection never reached the platform.
                    let maybe = !e.is_connect();
                    (
                        self.err(
                            ErrorKind::Unavailable,
                            format!("{name} could not be reached ({}).", short(&e)),
                        ),
                        maybe,
                        None,
                    )
                }
            };
            let retryable = !processed_maybe || call.idempotent;
            if !retryable || attempt >= self.policy.max_attempts {
                return Err(failure.with_retry(Retry::Persistent));
            }
            let wait = retry_after.unwrap_or_else(|| self.policy.backoff(attempt - 1));
            if waited + wait > self.policy.max_total_wait {
                return Err(failure.with_retry(match retry_after {
                    Some(after) => Retry::Temporary { after: Some(after) },
                    None => Retry::Persistent,
                }));
            }
            tracing::debug!(
                platform = %self.platform,
                operation = call.operation,
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %failure.message,
                "retrying upstream call"
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }
}

/// Whether a body declared `application/json` fails to parse as JSON. Streams
/// (`application/x-json-stream`) and other types are the connector's to read.
fn declared_json_but_malformed(headers: &HeaderMap, body: &[u8]) -> bool {
    let json = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    json && !body.iter().all(u8::is_ascii_whitespace)
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err()
}

/// A transport error's description without the URL (which may carry a query with ids).
fn short(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "…");
    }
    // Transport errors nest their cause; the innermost one is the useful part.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_encoded_path_segment_and_dot_segments_are_refused() {
        let seg = |id: &str| path_segment(Platform::Customerio, id);
        assert_eq!(seg("12345").unwrap(), "12345");
        assert_eq!(seg("a.b-c_d~e").unwrap(), "a.b-c_d~e");
        assert_eq!(seg("a/b").unwrap(), "a%2Fb");
        assert_eq!(seg("a b+c").unwrap(), "a%20b%2Bc");
        assert_eq!(seg("%2E%2E").unwrap(), "%252E%252E");
        assert_eq!(seg("x?y#z").unwrap(), "x%3Fy%23z");
        assert_eq!(seg("é").unwrap(), "%C3%A9");
        assert_eq!(seg("...").unwrap(), "...");
        for bad in ["", ".", ".."] {
            let e = seg(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{bad:?}");
            assert_eq!(e.retry, Retry::Permanent);
        }
        // Whatever the id, the URL keeps its path: one segment, where it was put.
        for id in ["a/../b", "..%2F", "x/y/z", "?q=1", "#frag", "a%2Fb"] {
            let url = url::Url::parse(&format!(
                "https://api.example/v1/campaigns/{}/metrics",
                seg(id).unwrap()
            ))
            .unwrap();
            let parts: Vec<_> = url.path_segments().unwrap().collect();
            assert_eq!(parts.len(), 4, "{id}: {url}");
            assert_eq!(
                (parts[0], parts[1], parts[3]),
                ("v1", "campaigns", "metrics")
            );
            assert_eq!(url.query(), None);
            assert_eq!(url.fragment(), None);
        }
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert(reqwest::header::RETRY_AFTER, past.parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(350),
            max_total_wait: Duration::from_secs(5),
        };
        for attempt in 0..6 {
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_millis(350));
            for _ in 0..200 {
                assert!(p.backoff(attempt) <= ceiling);
            }
        }
        // Jitter: not always the same value.
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(samples.len() > 10);
    }
}
