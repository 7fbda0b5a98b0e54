//! OAuth 2.0 as Keap runs it (§1): the authorize page and `POST /token`.

use axum::{
    Form, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::{
    config,
    state::{App, AuthorizeMode, CodeGrant, lock, random_token},
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/token", post(token))
        .route("/app/oauth/authorize", get(authorize).post(decide))
}

/// A 302 to `location`, as Keap's authorize endpoint answers (axum's `Redirect::to` is a 303).
fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

fn token_error(status: StatusCode, (error, description): (&str, &str)) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Client credentials from `Authorization: Basic` (preferred) or the body.
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some((scheme, b64)) = v.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("basic")
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let (id, secret) = decoded.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    match (&form.client_id, &form.client_secret) {
        (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
        _ => None,
    }
}

async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form: TokenForm = if is_form {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    } else {
        TokenForm::default()
    };
    let Some(grant) = form.grant_type.clone().filter(|g| !g.is_empty()) else {
        return token_error(StatusCode::BAD_REQUEST, config::ERR_NOT_FORM);
    };
    let Some((client_id, secret)) = client_credentials(&headers, &form) else {
        return token_error(StatusCode::UNAUTHORIZED, config::ERR_NO_CLIENT);
    };
    let cfg = app.config();
    let mut oauth = lock(&app.oauth);
    if oauth.clients.get(&client_id) != Some(&secret) {
        return token_error(StatusCode::UNAUTHORIZED, config::ERR_BAD_CLIENT);
    }
    let now = Utc::now();
    match grant.as_str() {
        "authorization_code" => {
            let Some(code) = form.code.as_deref() else {
                return token_error(StatusCode::BAD_REQUEST, config::ERR_INVALID_CODE);
            };
            // Single use: a code is gone after the first attempt, good or bad.
            let Some(g) = oauth.codes.remove(code) else {
                return token_error(StatusCode::BAD_REQUEST, config::ERR_INVALID_CODE);
            };
            if g.client_id != client_id || g.expires <= now {
                return token_error(StatusCode::BAD_REQUEST, config::ERR_INVALID_CODE);
            }
            if form.redirect_uri.as_deref() != Some(g.redirect_uri.as_str()) {
                return token_error(StatusCode::BAD_REQUEST, config::ERR_REDIRECT_MISMATCH);
            }
            let pair = oauth.issue(
                &client_id,
                cfg.access_token_ttl_secs,
                cfg.refresh_token_ttl_secs,
                None,
            );
            drop(oauth);
            app.control.incr("token_code_exchange");
            axum::Json(pair).into_response()
        }
        "refresh_token" => {
            let Some(rt) = form.refresh_token.as_deref() else {
                return token_error(StatusCode::BAD_REQUEST, config::ERR_INVALID_REFRESH);
            };
            match oauth.refresh.get(rt) {
                Some(g) if g.client_id == client_id && g.expires > now => {}
                _ => {
                    drop(oauth);
                    app.control.incr("token_refresh_rejected");
                    return token_error(StatusCode::BAD_REQUEST, config::ERR_INVALID_REFRESH);
                }
            }
            // Rotation: the old refresh token dies at once (PHP#99).
            oauth.refresh.remove(rt);
            let pair = oauth.issue(
                &client_id,
                cfg.access_token_ttl_secs,
                cfg.refresh_token_ttl_secs,
                None,
            );
            drop(oauth);
            app.control.incr("token_refresh");
            axum::Json(pair).into_response()
        }
        _ => token_error(StatusCode::BAD_REQUEST, config::ERR_UNSUPPORTED_GRANT),
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    /// Set by the consent page's buttons.
    decision: Option<String>,
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!DOCTYPE html>\n<html><head><title>Keap - Authorization Error</title></head>\n<body><h1>Authorization error</h1><p>{}</p></body></html>\n",
            escape(message)
        )),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Keap requires HTTPS callbacks; loopback http is let through so local tests can receive them
/// (a simulator allowance).
fn redirect_allowed(u: &url::Url) -> bool {
    u.scheme() == "https"
        || (u.scheme() == "http"
            && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
}

fn with_query(base: &url::Url, pairs: &[(&str, &str)]) -> String {
    let mut u = base.clone();
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

fn validate(app: &App, q: &AuthorizeQuery) -> Result<url::Url, Response> {
    let Some(client_id) = q.client_id.as_deref() else {
        return Err(error_page(StatusCode::BAD_REQUEST, "Missing client_id"));
    };
    if !lock(&app.oauth).clients.contains_key(client_id) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid client_id: no application is registered with this key",
        ));
    }
    let Some(redirect) = q
        .redirect_uri
        .as_deref()
        .and_then(|r| url::Url::parse(r).ok())
    else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "Missing or invalid redirect_uri",
        ));
    };
    if !redirect_allowed(&redirect) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri must use HTTPS",
        ));
    }
    Ok(redirect)
}

fn approve(app: &App, q: &AuthorizeQuery, redirect: &url::Url) -> Response {
    let code = random_token(16);
    lock(&app.oauth).codes.insert(
        code.clone(),
        CodeGrant {
            client_id: q.client_id.clone().unwrap_or_default(),
            redirect_uri: q.redirect_uri.clone().unwrap_or_default(),
            expires: Utc::now()
                + chrono::Duration::seconds(
                    i64::try_from(config::AUTH_CODE_TTL_SECS).unwrap_or(600),
                ),
        },
    );
    app.control.incr("authorize_approved");
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = q.state.as_deref() {
        pairs.push(("state", s));
    }
    found(&with_query(redirect, &pairs)).into_response()
}

/// `?state=&error=access_denied&error_uri=...&error_description=User+denied+access+to+resource`
/// (PHP#115).
fn deny(app: &App, q: &AuthorizeQuery, redirect: &url::Url) -> Response {
    app.control.incr("authorize_denied");
    found(&with_query(
        redirect,
        &[
            ("state", q.state.as_deref().unwrap_or_default()),
            ("error", "access_denied"),
            ("error_uri", ""),
            ("error_description", "User denied access to resource"),
        ],
    ))
    .into_response()
}

fn first_checks(app: &App, q: &AuthorizeQuery) -> Result<url::Url, Response> {
    let redirect = validate(app, q)?;
    if q.response_type.as_deref() != Some("code") {
        return Err(found(&with_query(
            &redirect,
            &[
                ("state", q.state.as_deref().unwrap_or_default()),
                ("error", "unsupported_response_type"),
                ("error_description", "response_type must be code"),
            ],
        ))
        .into_response());
    }
    if q.scope.as_deref().is_some_and(|s| s != config::SCOPE) {
        return Err(found(&with_query(
            &redirect,
            &[
                ("state", q.state.as_deref().unwrap_or_default()),
                ("error", "invalid_scope"),
                ("error_description", "The only scope is full"),
            ],
        ))
        .into_response());
    }
    Ok(redirect)
}

async fn authorize(State(app): State<App>, Query(q): Query<AuthorizeQuery>) -> Response {
    let redirect = match first_checks(&app, &q) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match app.config().authorize_mode {
        AuthorizeMode::Approve => approve(&app, &q, &redirect),
        AuthorizeMode::Deny => deny(&app, &q, &redirect),
        AuthorizeMode::Page => {
            let hidden = |name: &str, v: &Option<String>| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    escape(v.as_deref().unwrap_or_default())
                )
            };
            let fields = [
                hidden("client_id", &q.client_id),
                hidden("redirect_uri", &q.redirect_uri),
                hidden("response_type", &q.response_type),
                hidden("scope", &q.scope),
                hidden("state", &q.state),
            ]
            .join("\n");
            Html(format!(
                "<!DOCTYPE html>\n<html><head><title>Keap - Allow access</title></head>\n<body>\n<h1>Allow access to your Keap account</h1>\n<p>The application <b>{client}</b> wants full access to <b>{tenant}</b>.</p>\n<form method=\"post\" action=\"/app/oauth/authorize\">\n{fields}\n<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>\n</body></html>\n",
                client = escape(q.client_id.as_deref().unwrap_or_default()),
                tenant = config::TENANT_HOST,
            ))
            .into_response()
        }
    }
}

async fn decide(State(app): State<App>, Form(q): Form<AuthorizeQuery>) -> Response {
    let redirect = match first_checks(&app, &q) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match q.decision.as_deref() {
        Some("allow") => approve(&app, &q, &redirect),
        _ => deny(&app, &q, &redirect),
    }
}
