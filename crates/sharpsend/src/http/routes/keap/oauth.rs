//! Keap's OAuth 2.0 authorization-code flow (CONTRACT §7): an authorize URL with a single-use,
//! expiring `state`, and the public callback that exchanges the code, tests the token and
//! connects.
//!
//! `state` is 32 random bytes (hex) that name a server-side record (publisher, which client,
//! expiry) in the store's settings; the callback consumes it once (`put_setting_if_absent` on a
//! "used" marker, atomic in both databases), so a forged, replayed or stale state is refused
//! before any call to Keap. The client id and secret come from the publisher's earlier connect
//! (`clientId`/`clientSecret`) or from the operator's `SHARPSEND_KEAP_CLIENT_ID`/`_SECRET`.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use domain::{Platform, PublisherId};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::platforms::keap::tokens;
use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::Scope,
        openapi::{Envelope, ErrorBody},
    },
    integrations::{self, NewConnection},
    state::AppState,
};

/// Where Keap sends the browser back.
pub const CALLBACK_PATH: &str = "/oauth/keap/callback";
/// How long an authorize URL's `state` stays valid.
const STATE_TTL_SECS: i64 = 600;

/// An authorize URL to send the publisher's browser to.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeUrl {
    /// Keap's authorize page with `client_id`, `redirect_uri`, `response_type=code`,
    /// `scope=full` and `state`.
    pub url: String,
    pub state: String,
    /// Our public callback (`SHARPSEND_PUBLIC_URL` + `/oauth/keap/callback`); register it as the
    /// redirect URI of the Keap app.
    pub redirect_uri: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct StateRecord {
    publisher: String,
    /// `stored` (the publisher's connected client) or `operator`.
    client: String,
    expires_at: DateTime<Utc>,
}

const STATE_PREFIX: &str = "keap_oauth_state:";

fn state_key(nonce: &str) -> String {
    format!("{STATE_PREFIX}{nonce}")
}

/// Deletes the rows of every `state` that expired more than [`STATE_TTL_SECS`] ago (the record,
/// its `:used` marker and the dashboard's `:dashboard`/`:outcome` rows), and rows left without
/// their record. Run on each new authorize URL, so the table holds at most the states of the
/// last two TTLs. Answers how many rows went.
pub async fn sweep_expired_states(state: &AppState) -> ApiResult<u64> {
    let cutoff = Utc::now() - chrono::Duration::seconds(STATE_TTL_SECS);
    let rows = state.store.settings_with_prefix(STATE_PREFIX).await?;
    let mut live = std::collections::HashSet::new();
    for (key, value) in &rows {
        let nonce = &key[STATE_PREFIX.len()..];
        if !nonce.contains(':')
            && serde_json::from_str::<StateRecord>(value).is_ok_and(|r| r.expires_at >= cutoff)
        {
            live.insert(nonce.to_owned());
        }
    }
    let stale: Vec<String> = rows
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| {
            let nonce = key[STATE_PREFIX.len()..].split(':').next().unwrap_or("");
            !live.contains(nonce)
        })
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    Ok(state.store.delete_settings(&stale).await?)
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.public_origin)
}

/// The client of `source`: the publisher's stored one, or the operator's.
async fn client(
    state: &AppState,
    publisher: &PublisherId,
    source: &str,
) -> ApiResult<Option<(String, SecretString)>> {
    if source == "operator" {
        return Ok(state
            .config
            .keap_client
            .as_ref()
            .map(|(id, secret)| (id.clone(), secret.clone())));
    }
    let Some(record) = state
        .store
        .get_integration(publisher, Platform::Keap)
        .await?
    else {
        return Ok(None);
    };
    let secrets = integrations::open_secrets(state, &record).await?;
    Ok(
        match (
            secrets.get(tokens::CLIENT_ID),
            secrets.get(tokens::CLIENT_SECRET),
        ) {
            (Some(id), Some(secret)) => Some((id.expose_secret().to_owned(), secret.clone())),
            _ => None,
        },
    )
}

/// Keap's authorize URL for this publisher, with a single-use `state` valid for 10 minutes.
/// Uses the OAuth client of the publisher's Keap connection, or the operator's
/// (`SHARPSEND_KEAP_CLIENT_ID`/`SHARPSEND_KEAP_CLIENT_SECRET`).
#[utoipa::path(get, path = "/api/integrations/keap/{publisherId}/authorize-url", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses(
        (status = 200, body = Envelope<AuthorizeUrl>),
        (status = 400, description = "VALIDATION_ERROR: no OAuth client is configured", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn authorize_url(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<AuthorizeUrl>> {
    let publisher = scope.publisher()?;
    let mut source = "stored";
    let mut found = client(&state, publisher, source).await?;
    if found.is_none() {
        source = "operator";
        found = client(&state, publisher, source).await?;
    }
    let Some((client_id, _)) = found else {
        return Err(ApiError::validation(
            "clientId",
            "No Keap OAuth client to authorize with: connect once with `clientId` and `clientSecret` (POST /api/integrations/keap/connect), or have the operator set SHARPSEND_KEAP_CLIENT_ID and SHARPSEND_KEAP_CLIENT_SECRET.",
        ));
    };
    // Expired states are never useful again: sweep them before adding one.
    if let Err(e) = sweep_expired_states(&state).await {
        tracing::warn!(error = %e.message, "sweeping expired Keap OAuth states failed");
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let nonce = hex::encode(bytes);
    let expires_at = Utc::now() + chrono::Duration::seconds(STATE_TTL_SECS);
    let record = StateRecord {
        publisher: publisher.as_str().to_owned(),
        client: source.to_owned(),
        expires_at,
    };
    let text = serde_json::to_string(&record).map_err(ApiError::internal)?;
    state
        .store
        .put_setting_if_absent(&state_key(&nonce), &text)
        .await?;
    let redirect = redirect_uri(&state);
    let url = state
        .connectors
        .keap
        .authorize_url(&client_id, &redirect, &nonce);
    Ok(Envelope::ok(AuthorizeUrl {
        url: url.to_string(),
        state: nonce,
        redirect_uri: redirect,
        expires_at,
    }))
}

/// What Keap appends to the callback.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// `access_denied` when the user denied access.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// What the callback answers: an HTML page, or (for a dashboard flow) a notice on the card.
struct Outcome {
    status: StatusCode,
    title: String,
    text: String,
}

fn page(status: StatusCode, title: &str, text: &str) -> Outcome {
    Outcome {
        status,
        title: title.to_owned(),
        text: text.to_owned(),
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        (
            self.status,
            Html(format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · SharpSend</title>\
                 <link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
                 <body><main><h1>{t}</h1><p>{x}</p></main></body></html>",
                t = esc(&self.title),
                x = esc(&self.text)
            )),
        )
            .into_response()
    }
}

/// Sends the browser back to the dashboard's Keap card. Not a 303: the navigation from Keap is
/// cross-site, so a SameSite=Strict session cookie would not ride along a redirect; a refresh
/// from this page of ours is a same-site navigation, and the link works without it.
fn back_to_dashboard(to: &str, title: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={to}\"><title>{t} · SharpSend</title></head>\
         <body><h1>{t}</h1><p><a href=\"{to}\">Back to SharpSend</a></p></body></html>",
        to = esc(to),
        t = esc(title)
    ))
    .into_response()
}

/// Keap's redirect after the publisher allowed or denied access (public: authenticated by the
/// single-use `state`). Exchanges the code, tests the token and connects; answers an HTML page
/// saying what happened.
#[utoipa::path(get, path = "/oauth/keap/callback", tag = "keap",
    params(CallbackQuery),
    responses(
        (status = 200, description = "Connected (an HTML page)", content_type = "text/html", body = String),
        (status = 400, description = "Denied, forged, used or expired state (an HTML page)", content_type = "text/html", body = String),
        (status = 502, description = "Keap refused the code or could not be reached (an HTML page)", content_type = "text/html", body = String)))]
pub async fn callback(State(state): State<AppState>, Query(q): Query<CallbackQuery>) -> Response {
    let nonce = q.state.clone().unwrap_or_default();
    let outcome = match run_callback(&state, q).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(error = %e, "Keap OAuth callback failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Keap could not be connected because of a fault on our side. Please start again from SharpSend.",
            )
        }
    };
    // A flow started from the dashboard returns to its Keap card, which shows this outcome.
    if nonce.len() == 64
        && nonce.chars().all(|c| c.is_ascii_hexdigit())
        && let Some(to) = crate::dashboard::keap_callback_redirect(
            &state,
            &nonce,
            outcome.status.is_success(),
            &outcome.title,
            &outcome.text,
        )
        .await
    {
        return back_to_dashboard(&to, &outcome.title);
    }
    outcome.into_response()
}

const RESTART: &str = "Start again from SharpSend to get a new Keap authorization link.";

async fn run_callback(state: &AppState, q: CallbackQuery) -> ApiResult<Outcome> {
    let bad = |title: &str, text: String| Ok(page(StatusCode::BAD_REQUEST, title, &text));
    let Some(nonce) = q
        .state
        .filter(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
    else {
        return bad(
            "Invalid authorization link",
            format!(
                "This request does not carry a valid SharpSend state, so it was not accepted. {RESTART}"
            ),
        );
    };
    let Some(text) = state.store.get_setting(&state_key(&nonce)).await? else {
        return bad(
            "Invalid authorization link",
            format!(
                "SharpSend did not issue this state (it may have been forged or tampered with). {RESTART}"
            ),
        );
    };
    let record: StateRecord = serde_json::from_str(&text).map_err(ApiError::internal)?;
    let first_use = state
        .store
        .put_setting_if_absent(
            &format!("{}:used", state_key(&nonce)),
            &Utc::now().to_rfc3339(),
        )
        .await?;
    if !first_use {
        return bad(
            "Authorization link already used",
            format!("This Keap authorization was already completed or refused. {RESTART}"),
        );
    }
    if record.expires_at < Utc::now() {
        return bad(
            "Authorization link expired",
            format!("This Keap authorization link expired (they last 10 minutes). {RESTART}"),
        );
    }
    if let Some(error) = q.error {
        let text = if error == "access_denied" {
            "Access to Keap was denied, so nothing was connected. To connect Keap, start again and choose Allow.".to_owned()
        } else {
            format!(
                "Keap did not grant access ({error}{}). {RESTART}",
                q.error_description
                    .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
                    .unwrap_or_default()
            )
        };
        return bad("Keap was not connected", text);
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return bad(
            "Keap was not connected",
            format!("Keap's answer carried no authorization code. {RESTART}"),
        );
    };
    let publisher = PublisherId::parse(&record.publisher).map_err(ApiError::internal)?;
    let Some((client_id, client_secret)) = client(state, &publisher, &record.client).await? else {
        return bad(
            "Keap was not connected",
            format!("The Keap OAuth client used for this link is no longer configured. {RESTART}"),
        );
    };
    let keap = &state.connectors.keap;
    let fail = |e: connectors::ConnectorError| {
        Ok(page(
            StatusCode::BAD_GATEWAY,
            "Keap was not connected",
            &format!("{} {RESTART}", e.message),
        ))
    };
    let pair = match keap
        .exchange_code(&client_id, &client_secret, &code, &redirect_uri(state))
        .await
    {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let cred = connectors::keap::KeapCredential::oauth(pair.access_token.clone(), Some(&client_id));
    let info = match keap.test_connection(&cred).await {
        Ok(i) => i,
        Err(e) => return fail(e.into()),
    };
    let existing = state
        .store
        .get_integration(&publisher, Platform::Keap)
        .await?;
    let previous_hooks = existing
        .as_ref()
        .map(|r| crate::platforms::keap::webhooks::hook_keys(&r.config))
        .unwrap_or_default();
    let mut config = existing
        .map(|r| r.config)
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"leadSourceId": null, "campaignIds": []}));
    config["tenantId"] = info.account.get("tenantId").cloned().unwrap_or(Value::Null);
    config["authType"] = json!("oauth");
    let expires = SecretString::from(
        pair.expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    integrations::connect(
        state,
        NewConnection {
            publisher: publisher.clone(),
            platform: Platform::Keap,
            region: None,
            config,
            secrets: vec![
                (tokens::CLIENT_ID, SecretString::from(client_id)),
                (tokens::CLIENT_SECRET, client_secret),
                (tokens::ACCESS_TOKEN, pair.access_token),
                (tokens::REFRESH_TOKEN, pair.refresh_token),
                (tokens::EXPIRES_AT, expires),
            ],
        },
    )
    .await?;
    // REST hooks at the webhook URL; failures are recorded in config.hooks, never fatal.
    crate::platforms::keap::webhooks::register(state, &publisher, &previous_hooks, Some(cred))
        .await;
    // The callback carries no bearer token: the browser that finished Keap's consent screen acts.
    crate::consent::audit::note(
        state,
        &publisher,
        "keap_oauth",
        "integration.connected",
        json!({"platform": Platform::Keap, "authType": "oauth"}),
    )
    .await;
    let tenant = info
        .account
        .get("tenantId")
        .and_then(Value::as_str)
        .unwrap_or("your Keap account")
        .to_owned();
    Ok(page(
        StatusCode::OK,
        "Keap connected",
        &format!("SharpSend is now connected to {tenant} for publisher {publisher}."),
    ))
}
