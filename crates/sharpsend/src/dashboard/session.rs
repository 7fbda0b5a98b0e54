//! Dashboard sessions: a random id in an HttpOnly, SameSite=Strict cookie; the server keeps only
//! its SHA-256 with the publisher, the CSRF token, the expiry and the API token sealed by the
//! vault. Every request opens the token and authenticates it again through the API's
//! [`Authenticator`](crate::auth::Authenticator), so revoking a key ends its sessions at once.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use domain::PublisherId;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use store::SessionRecord;
use subtle::ConstantTimeEq as _;

use crate::{principal::Principal, state::AppState};

/// The session cookie.
pub const COOKIE: &str = "sharpsend_session";
/// The sign-in form's double-submit CSRF cookie (there is no session yet to hold a token).
pub const SIGNIN_COOKIE: &str = "sharpsend_signin";
/// Sessions end this long after sign-in, whatever the activity (absolute expiry).
pub const TTL_HOURS: i64 = 12;

/// A signed-in dashboard user, re-authenticated on this request.
pub struct Session {
    pub id_hash: String,
    pub csrf: String,
    pub token: SecretString,
    pub principal: Principal,
    /// The publisher shown: the key's own, or the one an admin picked.
    pub publisher: Option<PublisherId>,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.principal.is_admin()
    }

    /// Whether `submitted` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn aad(id_hash: &str) -> String {
    format!("dashboard-session:{id_hash}")
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether cookies must be `Secure`: the public origin is HTTPS, or a proxy says the request
/// came over HTTPS.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.public_origin.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Starts a session for a token the Authenticator accepted; answers the cookie's session id.
pub async fn create(
    state: &AppState,
    token: &SecretString,
    principal: &Principal,
) -> Result<String, String> {
    let id = random_token();
    let id_hash = digest(&id);
    let sealed = state
        .vault
        .seal(
            vault::Aad {
                integration_id: &aad(&id_hash),
                field: "apiToken",
            },
            token,
        )
        .map_err(|e| e.to_string())?;
    let now = Utc::now();
    let publisher = match principal {
        Principal::Admin => None,
        Principal::Publisher { publisher, .. } => Some(publisher.as_str().to_owned()),
    };
    state
        .store
        .create_session(SessionRecord {
            id_hash,
            publisher_id: publisher,
            is_admin: principal.is_admin(),
            csrf_token: random_token(),
            token_key_id: sealed.key_id.0,
            sealed_token: sealed.bytes,
            created_at: now,
            expires_at: now + Duration::hours(TTL_HOURS),
        })
        .await
        .map_err(|e| e.to_string())?;
    // Sweep expired rows now and then (sign-ins are rare enough to carry it).
    if rand::random::<u8>() < 16 {
        let _ = state.store.delete_expired_sessions(now).await;
    }
    Ok(id)
}

/// Why a request has no usable session: the page answers a redirect to the sign-in page.
pub struct SignedOut;

impl IntoResponse for SignedOut {
    fn into_response(self) -> Response {
        Redirect::to("/signin").into_response()
    }
}

/// Loads and re-authenticates the session named by the request's cookie.
pub async fn load(state: &AppState, headers: &HeaderMap) -> Result<Session, SignedOut> {
    let id = cookie(headers, COOKIE).ok_or(SignedOut)?;
    let id_hash = digest(id);
    let record = match state.store.get_session(&id_hash, Utc::now()).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(SignedOut),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: reading the session failed");
            return Err(SignedOut);
        }
    };
    let token = state
        .vault
        .open(
            vault::Aad {
                integration_id: &aad(&id_hash),
                field: "apiToken",
            },
            &record.sealed_token,
        )
        .map_err(|e| {
            // A pruned master key, or a tampered row: the user signs in again.
            tracing::warn!(error = %e, "dashboard: a session's token cannot be opened");
            SignedOut
        })?;
    let principal = match state.auth.authenticate(token.expose_secret()).await {
        Ok(p) => p,
        Err(_) => {
            // Revoked (or unknown) since sign-in: the session ends now.
            let _ = state.store.delete_session(&id_hash).await;
            return Err(SignedOut);
        }
    };
    let publisher = match &principal {
        Principal::Publisher { publisher, .. } => Some(publisher.clone()),
        Principal::Admin => record
            .publisher_id
            .as_deref()
            .and_then(|p| PublisherId::parse(p).ok()),
    };
    Ok(Session {
        id_hash,
        csrf: record.csrf_token,
        token,
        principal,
        publisher,
    })
}

impl FromRequestParts<AppState> for Session {
    type Rejection = SignedOut;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        load(state, &parts.headers).await
    }
}
