//! Keap's token lifecycle: proactive refresh before expiry, refresh-once-and-retry-once on a
//! 401, and a refresh that never races.
//!
//! Keap rotates refresh tokens on every refresh and kills the old one at once, so two refreshers
//! holding the same refresh token break each other (the loser gets `invalid_grant` and the
//! integration would need a reconnect). A refresh is therefore single-flight per integration:
//!
//! 1. in this process, a per-integration gate (`KeapConnector::refresh_gate`) queues concurrent
//!    tasks, so only one of them goes on;
//! 2. across processes, `Store::lock_credentials` takes the database lock on the credentials
//!    (PostgreSQL `SELECT … FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) and re-reads them;
//! 3. if the credentials' version moved past the one the caller used, someone else refreshed:
//!    their token is used and Keap is not called;
//! 4. otherwise the refresh runs under the lock, and the new access token, refresh token and
//!    expiry are written in the same transaction, with the version check (the commit moves
//!    `credentials_version` on).
//!
//! `accessTokenExpiresAt` (RFC 3339) is kept with the tokens as a sealed credential field, so it
//! is always written atomically with the token it describes.
//!
//! A refresh Keap refuses (`invalid_grant`, a 401) marks the integration `reauth_required`
//! (nothing else is lost) and answers `INVALID_CREDENTIALS`; calls on such an integration answer
//! the same without reaching Keap until the publisher reconnects.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use connectors::keap::{KeapCredential, KeapError, TokenSet};
use domain::{Platform, shapes::IntegrationStatus};
use secrecy::{ExposeSecret, SecretString};
use store::{IntegrationRecord, SealedField};

use crate::{
    error::{Error, Result},
    integrations::{open_fields, seal_field},
    state::AppState,
};

pub use crate::platforms::fields::ACCESS_TOKEN;
pub use crate::platforms::fields::API_KEY;
pub use crate::platforms::fields::CLIENT_ID;
pub use crate::platforms::fields::CLIENT_SECRET;
pub use crate::platforms::fields::EXPIRES_AT;
pub use crate::platforms::fields::REFRESH_TOKEN;

/// A connected Keap integration and the credential its calls use now.
pub struct Session {
    pub record: IntegrationRecord,
    /// The integration's config, read once when the session opens.
    pub settings: super::settings::KeapSettings,
    pub cred: KeapCredential,
    /// The credentials version `cred` came from.
    version: i64,
    /// Whether a refresh is possible (OAuth with a refresh token).
    oauth: bool,
    /// When `cred` expires (OAuth); the first call within the safety margin refreshes first.
    expires: Option<DateTime<Utc>>,
}

impl Session {
    /// The credentials version this session's credential came from.
    pub fn version(&self) -> i64 {
        self.version
    }
}

/// When an integration's stored OAuth access token expires, with the credentials version it was
/// read at; `None` for API keys and for tokens without a refresh token (nothing to keep alive).
pub async fn oauth_expiry(
    state: &AppState,
    integration_id: &str,
) -> Result<Option<(DateTime<Utc>, i64)>> {
    let Some(creds) = state.store.get_credentials(integration_id).await? else {
        return Ok(None);
    };
    let secrets = open_fields(state, integration_id, &creds.fields)?;
    let (_, expires, oauth) = credential_of(&secrets)?;
    Ok(expires.filter(|_| oauth).map(|e| (e, creds.version)))
}

/// The sealed fields of a token set.
pub fn seal_tokens(
    state: &AppState,
    integration_id: &str,
    tokens: &TokenSet,
) -> Result<Vec<SealedField>> {
    let expires = SecretString::from(tokens.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true));
    [
        (ACCESS_TOKEN, &tokens.access_token),
        (REFRESH_TOKEN, &tokens.refresh_token),
        (EXPIRES_AT, &expires),
    ]
    .into_iter()
    .map(|(field, value)| seal_field(state, integration_id, field, value))
    .collect()
}

fn reconnect_error(publisher: &str, reason: &str) -> Error {
    Error::ReauthRequired {
        publisher: publisher.to_owned(),
        platform: Platform::Keap,
        reason: reason.to_owned(),
        platform_status: None,
    }
}

fn credential_of(
    secrets: &BTreeMap<String, SecretString>,
) -> Result<(KeapCredential, Option<DateTime<Utc>>, bool)> {
    if let Some(key) = secrets.get(API_KEY) {
        return Ok((KeapCredential::api_key(key.clone()), None, false));
    }
    let token = secrets
        .get(ACCESS_TOKEN)
        .ok_or_else(|| Error::internal("Keap integration without accessToken or apiKey"))?;
    let client_id = secrets.get(CLIENT_ID).map(|c| c.expose_secret().to_owned());
    let expires = secrets
        .get(EXPIRES_AT)
        .and_then(|e| DateTime::parse_from_rfc3339(e.expose_secret()).ok())
        .map(|t| t.with_timezone(&Utc));
    Ok((
        KeapCredential::oauth(token.clone(), client_id.as_deref()),
        expires,
        secrets.contains_key(REFRESH_TOKEN),
    ))
}

/// Opens a stored Keap integration without calling Keap: the proactive refresh of a token close
/// to expiry happens in the first [`call`], so a request refused for its own input (checked after
/// the session opens) never rotates the tokens.
pub async fn open(state: &AppState, record: IntegrationRecord) -> Result<Session> {
    crate::platforms::ensure_usable(&record)?;
    let creds = state
        .store
        .get_credentials(&record.id)
        .await?
        .ok_or_else(|| Error::internal(format!("integration {} has no credentials", record.id)))?;
    let secrets = open_fields(state, &record.id, &creds.fields)?;
    let (cred, expires, oauth) = credential_of(&secrets)?;
    Ok(Session {
        settings: super::settings::KeapSettings::of(&record),
        record,
        cred,
        version: creds.version,
        oauth,
        expires,
    })
}

/// Runs one Keap call: refreshes first when the token expires within the safety margin, and on
/// a 401 refreshes the token once (single-flight) and retries once.
pub async fn call<T, F, Fut>(state: &AppState, session: &mut Session, op: F) -> Result<T>
where
    F: Fn(KeapCredential) -> Fut,
    Fut: std::future::Future<Output = Result<T, KeapError>>,
{
    if session.oauth && session.expires.is_some_and(connectors::keap::needs_refresh) {
        refresh(state, session).await?;
    }
    match op(session.cred.clone()).await {
        Ok(v) => Ok(v),
        Err(KeapError::Unauthorized(e)) if session.oauth => {
            tracing::info!(integration_id = %session.record.id, reason = %e.message, "Keap answered 401; refreshing the access token once");
            refresh(state, session).await?;
            op(session.cred.clone())
                .await
                .map_err(|e| connectors::ConnectorError::from(e).into())
        }
        Err(e) => Err(connectors::ConnectorError::from(e).into()),
    }
}

/// Refreshes the session's token unless someone already did since `session.version`.
pub async fn refresh(state: &AppState, session: &mut Session) -> Result<()> {
    let id = session.record.id.clone();
    let gate = state.connectors.keap.refresh_gate(&id);
    let _in_process = gate.lock().await;
    let lock = state.store.lock_credentials(&id).await?.ok_or_else(|| {
        Error::coded(
            domain::ErrorCode::IntegrationNotFound,
            "The Keap integration was disconnected meanwhile.",
        )
    })?;
    let current = lock.credentials().clone();
    let secrets = match open_fields(state, &id, &current.fields) {
        Ok(s) => s,
        Err(e) => {
            lock.release().await?;
            return Err(e);
        }
    };
    if current.version != session.version {
        // Someone else refreshed (or reconnected) while we waited: use theirs.
        lock.release().await?;
        let (cred, expires, oauth) = credential_of(&secrets)?;
        session.cred = cred;
        session.version = current.version;
        session.oauth = oauth;
        session.expires = expires;
        return Ok(());
    }
    let (Some(client_id), Some(client_secret), Some(refresh_token)) = (
        secrets.get(CLIENT_ID),
        secrets.get(CLIENT_SECRET),
        secrets.get(REFRESH_TOKEN),
    ) else {
        lock.release().await?;
        return Err(reconnect_error(
            &session.record.publisher_id,
            "This Keap integration has no refresh token or client credentials, so its access token cannot be renewed.",
        ));
    };
    let outcome = state
        .connectors
        .keap
        .refresh(client_id.expose_secret(), client_secret, refresh_token)
        .await;
    match outcome {
        Ok(tokens) => {
            let fields = seal_tokens(state, &id, &tokens)?;
            let version = lock.commit(fields).await.inspect_err(|e| {
                tracing::error!(integration_id = %id, error = %e, "Keap rotated the refresh token but storing it failed; the integration will need a reconnect");
            })?;
            tracing::info!(integration_id = %id, version, "Keap access token refreshed");
            session.cred =
                KeapCredential::oauth(tokens.access_token, Some(client_id.expose_secret()));
            session.version = version;
            session.expires = Some(tokens.expires_at);
            Ok(())
        }
        Err(e) if e.kind == connectors::ErrorKind::InvalidCredentials => {
            lock.release().await?;
            state
                .store
                .set_integration_status(&id, IntegrationStatus::ReauthRequired, Some(&e.message))
                .await?;
            crate::destinations::events::reauth_required(state, &id, Platform::Keap, &e.message)
                .await;
            tracing::warn!(integration_id = %id, "Keap refused the token refresh; integration needs reauthorisation");
            Err(Error::ReauthRequired {
                publisher: session.record.publisher_id.clone(),
                platform: Platform::Keap,
                reason: e.message.clone(),
                platform_status: Some(e.platform_status.unwrap_or(400)),
            })
        }
        Err(e) => {
            lock.release().await?;
            Err(e.into())
        }
    }
}
