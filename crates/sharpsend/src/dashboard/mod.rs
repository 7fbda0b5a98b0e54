//! The publisher's dashboard at `/`: server-rendered pages (askama templates in
//! `crates/sharpsend/templates/`), a plain CSS file and a little JavaScript for progressive
//! enhancement (copy buttons, live sync progress). Every form works as a plain POST and redirect.
//!
//! The dashboard holds no rules of its own: every read and write goes through the real `/api/`
//! router in-process with the session's bearer token ([`api::ApiRouter`]), so tenancy,
//! validation and errors are the API's, and API errors with `details.field` become inline
//! per-field errors. Sessions, CSRF and the security headers are described in [`session`] and
//! docs/dashboard.md.

pub mod api;
mod consent;
mod destinations;
pub mod session;
pub mod views;

use askama::Template;
use axum::{
    Extension, Router,
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{Next, from_fn},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use domain::{Platform, PublisherId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use self::{
    api::{ApiRouter, Failure},
    session::Session,
    views::*,
};
use crate::state::AppState;

/// The Content-Security-Policy of every dashboard response: our own scripts and styles only,
/// no inline code, no framing, forms post only to us.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

/// Rows per page in the records tables.
const RECORDS_PAGE: u32 = 20;

/// The dashboard's routes; `api` is the finished application router the pages call.
pub fn routes(api: Router) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/publisher", post(pick_publisher))
        .route(
            "/connect/{platform}",
            get(connect_page).post(connect_submit),
        )
        .route("/connect/keap/oauth", post(keap_oauth))
        .route(
            "/disconnect/{platform}",
            get(disconnect_page).post(disconnect),
        )
        .route("/sync/{platform}", get(sync_page).post(start_sync))
        .route("/sync/{platform}/jobs/{job_id}", get(job_json))
        .route(
            "/sync/{platform}/campaigns/{campaign_id}",
            get(campaign_page),
        )
        .route("/events", get(events_page))
        .route("/consent", get(consent::consent_page))
        .route("/consent/suppressions", post(consent::add_suppression))
        .route("/consent/settings", post(consent::save_settings))
        .route("/consent/erase", post(consent::erase))
        .route("/consent/erasures/{erasure_id}", get(consent::erasure_page))
        .route(
            "/destinations",
            get(destinations::destinations_page).post(destinations::add_destination),
        )
        .route("/destinations/{id}", get(destinations::destination_page))
        .route(
            "/destinations/{id}/enabled",
            post(destinations::set_enabled),
        )
        .route(
            "/destinations/{id}/messages/{message_id}/retry",
            post(destinations::retry_message),
        )
        .route("/destinations/{id}/replay", post(destinations::replay))
        .route("/destinations/{id}/rotate", post(destinations::rotate))
        .route("/destinations/{id}/delete", post(destinations::delete))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .layer(Extension(ApiRouter(api)))
        .layer(from_fn(security_headers))
}

/// CSP, nosniff, same-origin referrers, no framing, and no caching of pages (the dashboard's and
/// the Keap OAuth callback's).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A page may widen `form-action` for a form that leaves our origin (Keap's, below).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if is_asset { "no-cache" } else { "no-store" }),
    );
    resp
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

async fn app_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
                .into_response()
        }
    }
}

/// Renders a connect page. Keap's carries the one exception to [`CSP`]: its "Connect with
/// Keap" form is answered by a redirect to Keap's authorize page, and browsers check
/// `form-action` along a form's redirects, so that origin is allowed there, and only there.
fn render_connect(state: &AppState, status: StatusCode, page: &ConnectPage) -> Response {
    let mut resp = render(status, page);
    if page.platform == "keap" {
        let origin = state
            .config
            .upstreams
            .keap_authorize
            .origin()
            .ascii_serialization();
        let csp = CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            resp.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

fn chrome(session: &Session, title: &str, active: &str) -> Chrome {
    Chrome {
        title: title.to_owned(),
        signed_in: true,
        publisher: session.publisher.as_ref().map(|p| p.as_str().to_owned()),
        is_admin: session.is_admin(),
        csrf: session.csrf.clone(),
        nav: nav(active),
        flash: None,
    }
}

fn message(
    status: StatusCode,
    session: Option<&Session>,
    heading: &str,
    text: impl Into<String>,
) -> Response {
    let chrome = match session {
        Some(s) => chrome(s, heading, ""),
        None => Chrome {
            title: heading.to_owned(),
            ..Chrome::default()
        },
    };
    render(
        status,
        &MessagePage {
            chrome,
            heading: heading.to_owned(),
            text: text.into(),
        },
    )
}

fn platform_of(s: &str) -> Option<(Platform, &'static str)> {
    let p = Platform::parse(s)?;
    Some((p, p.display_name()))
}

fn unknown_platform(session: &Session) -> Response {
    message(
        StatusCode::NOT_FOUND,
        Some(session),
        "No such platform",
        "SharpSend connects Iterable, Customer.io and Keap.",
    )
}

/// A url-encoded form body.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Self(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A trimmed, non-empty value.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// Whether the request's `Origin`, when it sends one, is this server's.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // SameSite=Strict and the CSRF token still apply
    };
    if origin == state.public_origin {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// The CSRF token and origin checks of every state-changing form.
#[allow(clippy::result_large_err)] // the error is the page to answer, built once per request
fn guard(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<(), Response> {
    if same_origin(state, headers) && session.csrf_ok(fields.get("csrf")) {
        Ok(())
    } else {
        Err(message(
            StatusCode::FORBIDDEN,
            Some(session),
            "This form has expired",
            "The form was not sent from this page of SharpSend, or it is too old. Reload the page and try again.",
        ))
    }
}

/// A form posted about the chosen publisher: its fields, once the origin and CSRF token check
/// out and a publisher is chosen (else the page to answer).
#[allow(clippy::result_large_err)] // the error is the page to answer, built once per request
fn checked_form(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Fields, PublisherId), Response> {
    let form = Fields::parse(body);
    guard(state, session, headers, &form)?;
    Ok((form, publisher(session)?.clone()))
}

/// The publisher the session shows, or a page telling an admin to pick one.
#[allow(clippy::result_large_err)] // the error is the page to answer, built once per request
fn publisher(session: &Session) -> Result<&PublisherId, Response> {
    session
        .publisher
        .as_ref()
        .ok_or_else(|| Redirect::to("/").into_response())
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

async fn signin_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session::load(&state, &headers).await.is_ok() {
        return Redirect::to("/").into_response();
    }
    signin_form(&state, &headers, None, StatusCode::OK)
}

fn signin_form(
    state: &AppState,
    headers: &HeaderMap,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let csrf = session::random_token();
    let mut resp = render(
        status,
        &SignInPage {
            chrome: Chrome {
                title: "Sign in".into(),
                ..Chrome::default()
            },
            csrf: csrf.clone(),
            error,
        },
    );
    let cookie = session::set_cookie(
        session::SIGNIN_COOKIE,
        &csrf,
        3600,
        session::secure(state, headers),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The sign-in form again, 429 with `Retry-After`: this address failed too often (sign-in
/// failures count with the API's failed authentications, `SHARPSEND_AUTH_FAILURE_RATE_LIMIT`).
fn too_many_signins(state: &AppState, headers: &HeaderMap, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut resp = signin_form(
        state,
        headers,
        Some(format!(
            "Too many failed sign-ins from this address. Please try again in {secs} seconds."
        )),
        StatusCode::TOO_MANY_REQUESTS,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let address = crate::http::ratelimit::client_address(&extensions);
    if let Some(wait) = address.and_then(|a| state.rate_limits.blocked_for(a)) {
        return too_many_signins(&state, &headers, wait);
    }
    let fields = Fields::parse(&body);
    // Double-submit: the form's token must equal the sign-in cookie set with it.
    let csrf_ok = match (
        session::cookie(&headers, session::SIGNIN_COOKIE),
        fields.get("csrf"),
    ) {
        (Some(c), Some(f)) => {
            use subtle::ConstantTimeEq as _;
            bool::from(c.as_bytes().ct_eq(f.as_bytes()))
        }
        _ => false,
    };
    if !csrf_ok || !same_origin(&state, &headers) {
        return signin_form(
            &state,
            &headers,
            Some("The sign-in form expired. Please try again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let Some(token) = fields.text("token") else {
        return signin_form(
            &state,
            &headers,
            Some("Enter your API key.".into()),
            StatusCode::BAD_REQUEST,
        );
    };
    let principal = match state.auth.authenticate(&token).await {
        Ok(p) => p,
        Err(crate::auth::AuthError::Store(e)) => {
            tracing::error!(error = %e, "dashboard sign-in: store failed");
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "Sign-in is unavailable",
                "SharpSend cannot reach its database. Please try again shortly.",
            );
        }
        Err(_) => {
            if let Some(wait) = state.rate_limits.failed_authentication(address) {
                return too_many_signins(&state, &headers, wait);
            }
            return signin_form(
                &state,
                &headers,
                Some("This API key was not accepted: it is unknown or was revoked.".into()),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let token = SecretString::from(token);
    let id = match session::create(&state, &token, &principal).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "dashboard sign-in: cannot store the session");
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "Sign-in failed",
                "Something went wrong on our side. Please try again.",
            );
        }
    };
    let secure = session::secure(&state, &headers);
    let mut resp = Redirect::to("/").into_response();
    for cookie in [
        session::set_cookie(session::COOKIE, &id, session::TTL_HOURS * 3600, secure),
        session::set_cookie(session::SIGNIN_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn signout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    if let Err(r) = guard(&state, &session, &headers, &fields) {
        return r;
    }
    if let Err(e) = state.store.delete_session(&session.id_hash).await {
        tracing::error!(error = %e, "dashboard sign-out: cannot delete the session");
    }
    let mut resp = Redirect::to("/signin").into_response();
    let cookie = session::set_cookie(session::COOKIE, "", 0, session::secure(&state, &headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// An admin chooses which publisher to show.
async fn pick_publisher(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    if let Err(r) = guard(&state, &session, &headers, &fields) {
        return r;
    }
    if !session.is_admin() {
        return message(
            StatusCode::FORBIDDEN,
            Some(&session),
            "Not allowed",
            "Only the admin token may switch publisher.",
        );
    }
    let raw = fields.text("publisherId").unwrap_or_default();
    match PublisherId::parse(&raw) {
        Ok(p) => {
            if let Err(e) = state
                .store
                .set_session_publisher(&session.id_hash, p.as_str())
                .await
            {
                tracing::error!(error = %e, "dashboard: cannot switch publisher");
            }
            Redirect::to("/").into_response()
        }
        Err(e) => {
            let page = HomePage {
                chrome: chrome(&session, "Integrations", "/"),
                cards: cards(&api, &session).await.0,
                picker_error: Some(format!("{e}.")),
            };
            render(StatusCode::BAD_REQUEST, &page)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Home: one card per platform

#[derive(Deserialize)]
struct HomeQuery {
    done: Option<String>,
    platform: Option<String>,
    oauth: Option<String>,
}

/// The cards of the session's publisher, and an error to show when the API refused.
async fn cards(api: &ApiRouter, session: &Session) -> (Vec<Card>, Option<Failure>) {
    let Some(publisher) = &session.publisher else {
        return (vec![], None);
    };
    let platforms = api.get(&session.token, "/api/platforms").await;
    let integrations = api
        .get(&session.token, &format!("/api/integrations/{publisher}"))
        .await;
    let failure = [&platforms, &integrations]
        .into_iter()
        .find(|r| !r.is_ok())
        .map(api::Reply::failure);
    let empty = vec![];
    let infos = platforms.data()["platforms"].as_array().unwrap_or(&empty);
    let list = integrations.data()["integrations"]
        .as_array()
        .unwrap_or(&empty);
    let cards = Platform::ALL
        .into_iter()
        .map(|p| {
            let id = p.as_str();
            let info = infos
                .iter()
                .find(|i| i["platform"] == id)
                .cloned()
                .unwrap_or(Value::Null);
            let integration = list.iter().find(|i| i["platform"] == id);
            Card::build(id, &info, integration)
        })
        .collect();
    (cards, failure)
}

/// How the Keap authorize flow ended, written by the OAuth callback for the dashboard.
#[derive(Serialize, Deserialize)]
pub struct OAuthOutcome {
    pub publisher: String,
    pub ok: bool,
    pub title: String,
    pub text: String,
}

/// The settings key marking an authorize `state` as started from the dashboard.
pub fn oauth_marker_key(nonce: &str) -> String {
    format!("keap_oauth_state:{nonce}:dashboard")
}

/// The settings key of the outcome the callback leaves for the dashboard.
pub fn oauth_outcome_key(nonce: &str) -> String {
    format!("keap_oauth_state:{nonce}:outcome")
}

async fn home(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Query(q): Query<HomeQuery>,
) -> Response {
    let (mut cards, failure) = cards(&api, &session).await;
    let mut chrome = chrome(&session, "Integrations", "/");
    if let Some(f) = failure {
        chrome.flash = Some(Flash::fail(f.message));
    }
    // Notices after a redirect: fixed texts only, so a crafted link cannot put words here.
    if let (Some(done), Some(p)) = (q.done.as_deref(), q.platform.as_deref())
        && let Some(card) = cards.iter_mut().find(|c| c.platform == p)
    {
        card.flash = match done {
            "connected" => Some(Flash::ok(format!("{} is connected.", card.name))),
            "disconnected" => Some(Flash::ok(format!("{} was disconnected.", card.name))),
            _ => None,
        };
    }
    if let Some(nonce) = q.oauth.as_deref().filter(|n| n.len() == 64)
        && let Ok(Some(text)) = state.store.get_setting(&oauth_outcome_key(nonce)).await
        && let Ok(outcome) = serde_json::from_str::<OAuthOutcome>(&text)
        && session
            .publisher
            .as_ref()
            .is_some_and(|p| p.as_str() == outcome.publisher)
        && let Some(card) = cards.iter_mut().find(|c| c.platform == "keap")
    {
        let text = format!("{}: {}", outcome.title, outcome.text);
        card.flash = Some(if outcome.ok {
            Flash::ok(text)
        } else {
            Flash::fail(text)
        });
    }
    render(
        StatusCode::OK,
        &HomePage {
            chrome,
            cards,
            picker_error: None,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Connect, test, Keap's authorize flow, disconnect

fn field(name: &'static str, label: &'static str) -> Field {
    Field {
        name,
        label,
        secret: false,
        required: false,
        value: String::new(),
        options: vec![],
        help: None,
        error: None,
    }
}

fn fields_for(platform: Platform) -> Vec<Field> {
    let secret = |mut f: Field| {
        f.secret = true;
        f
    };
    let required = |mut f: Field| {
        f.required = true;
        f
    };
    let help = |mut f: Field, h: &'static str| {
        f.help = Some(h);
        f
    };
    let region = || {
        let mut f = field("region", "Region (data centre)");
        f.options = vec!["us", "eu"];
        f.value = "us".into();
        f
    };
    match platform {
        Platform::Iterable => vec![
            help(
                required(secret(field("apiKey", "API key"))),
                "Integrations › API Keys in Iterable: a server-side key.",
            ),
            region(),
            help(field("fromEmail", "From email"), "An email address."),
            field("replyTo", "Reply-to email"),
        ],
        Platform::Customerio => vec![
            help(
                required(field("siteId", "Site ID")),
                "Workspace Settings › API and webhook credentials › Tracking API keys.",
            ),
            required(secret(field("trackingKey", "Tracking API key"))),
            help(
                required(secret(field("apiKey", "App API key"))),
                "Workspace Settings › API and webhook credentials › App API keys.",
            ),
            region(),
            secret(field("cdpApiKey", "Data Pipelines API key")),
            secret(field("webhookSigningKey", "Webhook signing key")),
            help(field("segmentIds", "Segment ids"), "Comma-separated."),
            help(
                field("journeyIds", "Journey (campaign) ids"),
                "Comma-separated.",
            ),
        ],
        Platform::Keap => vec![
            help(
                required(secret(field(
                    "apiKey",
                    "Personal Access Token or Service Account Key",
                ))),
                "Starts with KeapAK-. Keap › Settings › API.",
            ),
            field("leadSourceId", "Lead source id"),
            help(field("campaignIds", "Campaign ids"), "Comma-separated."),
        ],
    }
}

fn id_list(fields: &Fields, name: &str) -> Vec<Value> {
    fields
        .get(name)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_owned()))
        .collect()
}

/// The bodies of the test and connect calls, from the form.
fn bodies(platform: Platform, publisher: &PublisherId, f: &Fields) -> (Value, Value) {
    let mut test = Map::new();
    let mut connect = Map::new();
    let mut both = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            test.insert(k.into(), Value::String(v.clone()));
            connect.insert(k.into(), Value::String(v));
        }
    };
    match platform {
        Platform::Iterable => {
            both("apiKey", f.text("apiKey"));
            both("region", f.text("region"));
            let mut config = Map::new();
            for k in ["fromEmail", "replyTo"] {
                if let Some(v) = f.text(k) {
                    config.insert(k.into(), Value::String(v));
                }
            }
            connect.insert("config".into(), Value::Object(config));
        }
        Platform::Customerio => {
            for k in ["siteId", "apiKey", "region", "trackingKey", "cdpApiKey"] {
                both(k, f.text(k));
            }
            if let Some(v) = f.text("webhookSigningKey") {
                connect.insert("webhookSigningKey".into(), Value::String(v));
            }
            connect.insert(
                "config".into(),
                json!({"segmentIds": id_list(f, "segmentIds"), "journeyIds": id_list(f, "journeyIds")}),
            );
        }
        Platform::Keap => {
            both("apiKey", f.text("apiKey"));
            let mut config = Map::new();
            if let Some(v) = f.text("leadSourceId") {
                config.insert("leadSourceId".into(), Value::String(v));
            }
            config.insert(
                "campaignIds".into(),
                Value::Array(id_list(f, "campaignIds")),
            );
            connect.insert("config".into(), Value::Object(config));
        }
    }
    connect.insert(
        "publisherId".into(),
        Value::String(publisher.as_str().to_owned()),
    );
    (Value::Object(test), Value::Object(connect))
}

/// Puts an API failure next to its field (`details.field`, e.g. `config.segmentIds[0]`), or
/// answers it as a form-level error. A refused key without a field goes to the first key field.
fn place_error(fields: &mut [Field], failure: &Failure) -> Option<String> {
    let name = failure.field.as_deref().map(|f| {
        let last = f.rsplit('.').next().unwrap_or(f);
        last.split('[').next().unwrap_or(last).to_owned()
    });
    let target = match name {
        Some(n) => fields.iter_mut().find(|f| f.name == n),
        None if failure.code == "INVALID_CREDENTIALS" => fields.iter_mut().find(|f| f.secret),
        None => None,
    };
    match target {
        Some(f) => {
            f.error = Some(failure.message.clone());
            None
        }
        None => Some(failure.message.clone()),
    }
}

async fn connect_page(
    State(state): State<AppState>,
    session: Session,
    Path(platform): Path<String>,
) -> Response {
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    if let Err(r) = publisher(&session) {
        return r;
    }
    render_connect(
        &state,
        StatusCode::OK,
        &ConnectPage {
            chrome: chrome(&session, &format!("Connect {name}"), "/"),
            platform: platform.as_str(),
            name,
            fields: fields_for(platform),
            test: None,
            form_error: None,
        },
    )
}

async fn connect_submit(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    Path(platform): Path<String>,
    body: Bytes,
) -> Response {
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut fields = fields_for(platform);
    // Non-secret values go back into the form; keys never do.
    for f in fields.iter_mut().filter(|f| !f.secret) {
        if let Some(v) = form.get(f.name) {
            f.value = v.to_owned();
        }
    }
    let (test_body, connect_body) = bodies(platform, &publisher, &form);
    let testing = form.get("action") == Some("test");
    let p = platform.as_str();
    let reply = if testing {
        api.post(
            &session.token,
            &format!("/api/integrations/{p}/test-connection"),
            &test_body,
        )
        .await
    } else {
        api.post(
            &session.token,
            &format!("/api/integrations/{p}/connect"),
            &connect_body,
        )
        .await
    };
    let mut page = ConnectPage {
        chrome: chrome(&session, &format!("Connect {name}"), "/"),
        platform: p,
        name,
        fields,
        test: None,
        form_error: None,
    };
    if reply.is_ok() {
        if testing {
            let data = reply.data();
            let mut facts = vec![];
            if let Some(r) = data["region"].as_str() {
                facts.push(("Region".to_owned(), r.to_owned()));
            }
            if let Some(ms) = data["latencyMs"].as_u64() {
                facts.push(("Latency".to_owned(), format!("{ms} ms")));
            }
            if let Some(account) = data["account"].as_object() {
                for (k, v) in account.iter().filter(|(_, v)| !v.is_null()).take(8) {
                    facts.push((k.clone(), v.to_string().trim_matches('"').to_owned()));
                }
            }
            page.test = Some(TestResult {
                ok: true,
                text: format!("{name} accepted these credentials. Save to connect."),
                facts,
            });
            return render_connect(&state, StatusCode::OK, &page);
        }
        // Iterable's webhook secret is shown once, in the connect answer: show it now, once.
        if let Some(secret) = reply.data()["webhookSecret"].as_str() {
            return render(
                StatusCode::OK,
                &SecretPage {
                    chrome: chrome(&session, &format!("{name} connected"), "/"),
                    platform: p,
                    name,
                    secret: secret.to_owned(),
                    webhook_url: reply.data()["webhookUrl"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                },
            );
        }
        return Redirect::to(&format!("/?done=connected&platform={p}#card-{p}")).into_response();
    }
    let failure = reply.failure();
    page.form_error = place_error(&mut page.fields, &failure);
    if testing {
        page.test = Some(TestResult {
            ok: false,
            text: failure.message.clone(),
            facts: vec![],
        });
    }
    render_connect(&state, StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// "Connect with Keap": asks the API for an authorize URL and sends the browser there (a full
/// page redirect, no popup). The callback comes back to the Keap card.
async fn keap_oauth(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let reply = api
        .get(
            &session.token,
            &format!("/api/integrations/keap/{publisher}/authorize-url"),
        )
        .await;
    let url = reply.data()["url"].as_str();
    let nonce = reply.data()["state"].as_str();
    if let (true, Some(url), Some(nonce)) = (reply.is_ok(), url, nonce) {
        if let Err(e) = state
            .store
            .put_setting_if_absent(&oauth_marker_key(nonce), publisher.as_str())
            .await
        {
            tracing::error!(error = %e, "dashboard: cannot mark the Keap authorize state");
        }
        return Redirect::to(url).into_response();
    }
    let failure = reply.failure();
    render_connect(
        &state,
        StatusCode::UNPROCESSABLE_ENTITY,
        &ConnectPage {
            chrome: chrome(&session, "Connect Keap", "/"),
            platform: "keap",
            name: "Keap",
            fields: fields_for(Platform::Keap),
            test: None,
            form_error: Some(failure.message),
        },
    )
}

async fn disconnect_page(session: Session, Path(platform): Path<String>) -> Response {
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    if let Err(r) = publisher(&session) {
        return r;
    }
    render(
        StatusCode::OK,
        &DisconnectPage {
            chrome: chrome(&session, &format!("Disconnect {name}"), "/"),
            platform: platform.as_str(),
            name,
        },
    )
}

async fn disconnect(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    Path(platform): Path<String>,
    body: Bytes,
) -> Response {
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    let (_, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = platform.as_str();
    let reply = api
        .call(
            &session.token,
            Method::DELETE,
            &format!("/api/integrations/{publisher}/{p}"),
            None,
        )
        .await;
    if reply.is_ok() {
        return Redirect::to(&format!("/?done=disconnected&platform={p}#card-{p}")).into_response();
    }
    message(
        reply.status,
        Some(&session),
        &format!("{name} was not disconnected"),
        reply.failure().message,
    )
}

// ---------------------------------------------------------------------------------------------
// Sync: start, progress, history, synced records

#[derive(Deserialize)]
struct SyncQuery {
    job: Option<String>,
    campaigns: Option<String>,
    contacts: Option<String>,
}

/// The record kinds the tables show: (query key, title, kind).
fn table_kinds(platform: Platform) -> [(&'static str, &'static str, &'static str); 2] {
    let contacts = match platform {
        Platform::Iterable => ("contacts", "Users", "users"),
        Platform::Customerio => ("contacts", "Segment members", "segment_members"),
        Platform::Keap => ("contacts", "Contacts", "contacts"),
    };
    [("campaigns", "Campaigns", "campaigns"), contacts]
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn sync_page(
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Path(platform): Path<String>,
    Query(q): Query<SyncQuery>,
) -> Response {
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    let publisher = match publisher(&session) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let p = platform.as_str();
    let base = format!("/api/integrations/{publisher}/{p}");
    let jobs_reply = api
        .get(&session.token, &format!("{base}/sync?limit=10"))
        .await;
    if !jobs_reply.is_ok() {
        let f = jobs_reply.failure();
        return message(
            jobs_reply.status,
            Some(&session),
            &format!("{name}: sync"),
            f.message,
        );
    }
    let jobs: Vec<JobView> = jobs_reply.data()["jobs"]
        .as_array()
        .map(|a| a.iter().map(JobView::from_json).collect())
        .unwrap_or_default();
    let current = match q.job.as_deref() {
        Some(id) => {
            let r = api
                .get(&session.token, &format!("{base}/sync/{}", urlencode(id)))
                .await;
            r.is_ok().then(|| JobView::from_json(r.data()))
        }
        None => jobs_reply.data()["jobs"].get(0).map(JobView::from_json),
    };
    let platforms = api.get(&session.token, "/api/platforms").await;
    let kinds_of = |field: &str| -> Vec<String> {
        platforms.data()["platforms"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["platform"] == p))
            .and_then(|i| i[field].as_array())
            .map(|k| {
                k.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let kinds = kinds_of("syncKinds");
    let optional_kinds = kinds_of("optionalSyncKinds");
    let mut tables = vec![];
    for (key, title, kind) in table_kinds(platform) {
        let cursor = match key {
            "campaigns" => q.campaigns.as_deref(),
            _ => q.contacts.as_deref(),
        };
        let mut path = format!("{base}/records/{kind}?limit={RECORDS_PAGE}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let r = api.get(&session.token, &path).await;
        let (headers, fields): (Vec<&'static str>, Vec<&'static str>) = if key == "campaigns" {
            (
                vec!["Id", "Name", "Status", "Type", "Channel"],
                vec!["id", "name", "status", "type", "channel"],
            )
        } else {
            (
                vec!["Id", "Email", "First name", "Last name"],
                vec!["id", "email", "firstName", "lastName"],
            )
        };
        let rows = r.data()["records"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|rec| {
                        let cells: Vec<String> = fields
                            .iter()
                            .map(|f| {
                                let v = &rec["data"][*f];
                                if *f == "id" && v.is_null() {
                                    cell(&rec["platformId"])
                                } else {
                                    cell(v)
                                }
                            })
                            .collect();
                        // Campaigns link to their metrics, keyed by the platform's id.
                        let href = (key == "campaigns")
                            .then(|| rec["platformId"].as_str())
                            .flatten()
                            .map(|id| campaign_href(p, id, &cells[1]));
                        RecordRow { cells, href }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let other = match key {
            "campaigns" => q
                .contacts
                .as_deref()
                .map(|c| format!("&contacts={}", urlencode(c))),
            _ => q
                .campaigns
                .as_deref()
                .map(|c| format!("&campaigns={}", urlencode(c))),
        }
        .unwrap_or_default();
        let here = format!("/sync/{p}?");
        tables.push(RecordTable {
            key,
            title: format!("Synced {}", title.to_lowercase()),
            headers,
            rows,
            error: (!r.is_ok()).then(|| r.failure().message),
            paged: cursor.is_some(),
            first_href: format!("{here}{}#records-{key}", other.trim_start_matches('&')),
            next_href: r.data()["nextCursor"]
                .as_str()
                .map(|n| format!("{here}{key}={}{other}#records-{key}", urlencode(n))),
        });
    }
    let limits = limits_panel(&api, &session, &base).await;
    render(
        StatusCode::OK,
        &SyncPage {
            chrome: chrome(&session, &format!("{name}: sync"), "/"),
            platform: p,
            name,
            kinds,
            optional_kinds,
            current,
            jobs,
            tables,
            limits,
        },
    )
}

/// The integration's rate budgets per endpoint class (`GET …/limits`).
async fn limits_panel(api: &ApiRouter, session: &Session, base: &str) -> LimitsPanel {
    let reply = api.get(&session.token, &format!("{base}/limits")).await;
    let now = chrono::Utc::now();
    LimitsPanel {
        rows: reply.data()["classes"]
            .as_array()
            .map(|a| a.iter().map(|c| LimitRow::from_json(c, now)).collect())
            .unwrap_or_default(),
        shared: reply.data()["scope"] == "shared",
        error: (!reply.is_ok()).then(|| reply.failure().message),
    }
}

/// The campaign page of `id`; `name` only labels the page (the metrics are read by id).
fn campaign_href(platform: &str, id: &str, name: &str) -> String {
    let mut href = format!("/sync/{platform}/campaigns/{}", urlencode(id));
    if !name.is_empty() {
        href.push_str(&format!("?name={}", urlencode(name)));
    }
    href
}

// ---------------------------------------------------------------------------------------------
// Campaign metrics

#[derive(Deserialize)]
struct CampaignQuery {
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
}

/// A series point's label: the bucket start, as short as the interval allows.
fn bucket_label(at: &str, interval: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) if interval == "hour" => t.format("%m-%d %H:00").to_string(),
        Ok(t) => t.format("%m-%d").to_string(),
        Err(_) => at.to_owned(),
    }
}

/// One campaign's metrics over a range: a line chart of opens and clicks per interval, a bar
/// chart of the totals, and where each number came from (`…/campaigns/{id}/metrics`).
async fn campaign_page(
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Path((platform, campaign_id)): Path<(String, String)>,
    Query(q): Query<CampaignQuery>,
) -> Response {
    use crate::analytics::{chart, keap};
    use domain::metrics::METRICS;
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    let publisher = match publisher(&session) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let p = platform.as_str();
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let (from, to) = (text(&q.from), text(&q.to));
    let interval = match text(&q.interval) {
        i if i.is_empty() => "day".to_owned(),
        i => i,
    };
    let mut path = format!(
        "/api/integrations/{publisher}/{p}/campaigns/{}/metrics?interval={}",
        urlencode(&campaign_id),
        urlencode(&interval)
    );
    for (k, v) in [("from", &from), ("to", &to)] {
        if !v.is_empty() {
            path.push_str(&format!("&{k}={}", urlencode(v)));
        }
    }
    let reply = api.get(&session.token, &path).await;
    let campaign_name = text(&q.name);
    let mut page = CampaignPage {
        chrome: chrome(
            &session,
            &format!(
                "{name} campaign {}",
                if campaign_name.is_empty() {
                    &campaign_id
                } else {
                    &campaign_name
                }
            ),
            "/",
        ),
        platform: p,
        name,
        action: format!("/sync/{p}/campaigns/{}", urlencode(&campaign_id)),
        campaign_id,
        campaign_name,
        from,
        to,
        interval,
        range: None,
        error: None,
        error_field: None,
        line_svg: None,
        bar_svg: None,
        metrics: vec![],
        absent: vec![],
        webhooks_received: true,
    };
    if !reply.is_ok() {
        let failure = reply.failure();
        page.error_field = failure.field.clone();
        page.error = Some(failure.message);
        return render(reply.status, &page);
    }
    let d = reply.data();
    let when = |v: &Value| views::Stamp::parse(&cell(v));
    page.range = Some((when(&d["from"]), when(&d["to"])));
    page.webhooks_received = d["webhooksReceived"].as_bool().unwrap_or(true);
    let series = d["series"].as_array().cloned().unwrap_or_default();
    let labels: Vec<String> = series
        .iter()
        .map(|pt| bucket_label(pt["at"].as_str().unwrap_or_default(), &page.interval))
        .collect();
    // Only the lines some source reports: an absent key is not drawn as zeros.
    let values: Vec<(&str, Vec<u64>)> = ["opens", "clicks"]
        .into_iter()
        .filter(|k| d["seriesSources"].get(*k).is_some())
        .map(|k| {
            let v = series
                .iter()
                .map(|pt| pt[k].as_u64().unwrap_or(0))
                .collect();
            (k, v)
        })
        .collect();
    let lines: Vec<chart::Line<'_>> = values
        .iter()
        .map(|(k, v)| chart::Line { name: k, values: v })
        .collect();
    let labels = if lines.is_empty() { vec![] } else { labels };
    page.line_svg = Some(chart::line_chart(
        &format!("Opens and clicks per {}", page.interval),
        &labels,
        &lines,
    ));
    // Keap's campaign counts are its only per-campaign figures: shown when present.
    for key in METRICS.into_iter().chain(keap::CAMPAIGN_KEYS) {
        match d["totals"][key].as_u64() {
            Some(total) => page.metrics.push(MetricRow {
                key,
                total,
                source: cell(&d["sources"][key]),
                series_source: match &d["seriesSources"][key] {
                    Value::Null => "not reported".to_owned(),
                    v => cell(v),
                },
            }),
            None if METRICS.contains(&key) => page.absent.push(key),
            None => {}
        }
    }
    let bars: Vec<(&str, u64)> = page.metrics.iter().map(|m| (m.key, m.total)).collect();
    page.bar_svg = Some(chart::bar_chart("Totals over the range", &bars));
    render(StatusCode::OK, &page)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn start_sync(
    State(state): State<AppState>,
    Extension(api): Extension<ApiRouter>,
    session: Session,
    headers: HeaderMap,
    Path(platform): Path<String>,
    body: Bytes,
) -> Response {
    let Some((platform, name)) = platform_of(&platform) else {
        return unknown_platform(&session);
    };
    let (form, publisher) = match checked_form(&state, &session, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let p = platform.as_str();
    let full = form.get("full") == Some("true");
    let kinds: Vec<&str> = form
        .0
        .iter()
        .filter(|(k, _)| k == "kinds")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut body = json!({"full": full});
    if !kinds.is_empty() {
        body["kinds"] = json!(kinds);
    }
    let reply = api
        .post(
            &session.token,
            &format!("/api/integrations/{publisher}/{p}/sync"),
            &body,
        )
        .await;
    match reply.data()["jobId"].as_str() {
        Some(job) if reply.is_ok() => {
            Redirect::to(&format!("/sync/{p}?job={}", urlencode(job))).into_response()
        }
        _ => message(
            reply.status,
            Some(&session),
            &format!("The {name} sync did not start"),
            reply.failure().message,
        ),
    }
}

/// One job as JSON, for the progress poller (same-origin, session-authenticated, read-only).
async fn job_json(
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Path((platform, job_id)): Path<(String, String)>,
) -> Response {
    let Some(publisher) = session.publisher.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let reply = api
        .get(
            &session.token,
            &format!(
                "/api/integrations/{publisher}/{}/sync/{}",
                urlencode(&platform),
                urlencode(&job_id)
            ),
        )
        .await;
    (
        reply.status,
        [(header::CONTENT_TYPE, "application/json")],
        reply.body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Deserialize)]
struct EventsQuery {
    platform: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    cursor: Option<String>,
}

async fn events_page(
    Extension(api): Extension<ApiRouter>,
    session: Session,
    Query(q): Query<EventsQuery>,
) -> Response {
    let publisher = match publisher(&session) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let platform = q.platform.unwrap_or_default();
    let kind = q.kind.unwrap_or_default();
    let mut filter = String::new();
    if !platform.is_empty() {
        filter.push_str(&format!("&platform={}", urlencode(&platform)));
    }
    if !kind.is_empty() {
        filter.push_str(&format!("&type={}", urlencode(&kind)));
    }
    let mut path = format!("/api/integrations/{publisher}/events?limit=50{filter}");
    if let Some(c) = &q.cursor {
        path.push_str(&format!("&cursor={}", urlencode(c)));
    }
    let reply = api.get(&session.token, &path).await;
    let events = reply.data()["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| EventRow {
                    received_at: views::Stamp::parse(&cell(&e["receivedAt"])),
                    platform: cell(&e["platform"]),
                    kind: cell(&e["type"]),
                    email: cell(&e["email"]),
                    campaign: cell(&e["campaignId"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let next_href = reply.data()["nextCursor"]
        .as_str()
        .map(|n| format!("/events?cursor={}{filter}", urlencode(n)));
    render(
        if reply.is_ok() {
            StatusCode::OK
        } else {
            reply.status
        },
        &EventsPage {
            chrome: chrome(&session, "Events", "/events"),
            platforms: Platform::ALL.iter().map(|p| p.as_str()).collect(),
            platform,
            kind,
            events,
            error: (!reply.is_ok()).then(|| reply.failure().message),
            next_href,
        },
    )
}

/// When a Keap authorize flow started from the dashboard ends, the callback leaves its outcome
/// for the Keap card and answers where to send the browser; `None` for flows started through
/// the API (they keep the callback's own page).
pub async fn keap_callback_redirect(
    state: &AppState,
    nonce: &str,
    ok: bool,
    title: &str,
    text: &str,
) -> Option<String> {
    let publisher = state
        .store
        .get_setting(&oauth_marker_key(nonce))
        .await
        .ok()
        .flatten()?;
    let outcome = OAuthOutcome {
        publisher,
        ok,
        title: title.to_owned(),
        text: text.to_owned(),
    };
    let text = serde_json::to_string(&outcome).ok()?;
    state
        .store
        .put_setting_if_absent(&oauth_outcome_key(nonce), &text)
        .await
        .ok()?;
    Some(format!("/?oauth={nonce}#card-keap"))
}
