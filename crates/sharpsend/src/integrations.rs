//! Integrations: sealing credentials on connect, rendering the contract's Integration shape
//! (secrets masked), and disconnecting. Platform connectors call [`connect`] once the platform
//! has accepted the credentials.

use std::collections::BTreeMap;

use chrono::Utc;
use domain::{
    Platform, PublisherId, Region, mask_secret, shapes::Integration, shapes::IntegrationStatus,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use store::{IntegrationRecord, NewIntegration, SealedField, StoreError};
use vault::Aad;

use crate::{error::Error, state::AppState};

/// What a connect stores.
pub struct NewConnection {
    pub publisher: PublisherId,
    pub platform: Platform,
    pub region: Option<Region>,
    /// Non-secret settings (`fromEmail`, `segmentIds`, …).
    pub config: Value,
    /// Secret fields by name (`apiKey`, `refreshToken`, …).
    pub secrets: Vec<(&'static str, SecretString)>,
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Seals one secret under the integration's identity and the field's name.
pub fn seal_field(
    state: &AppState,
    integration_id: &str,
    field: &str,
    value: &SecretString,
) -> Result<SealedField, Error> {
    let sealed = state
        .vault
        .seal(
            Aad {
                integration_id,
                field,
            },
            value,
        )
        .map_err(Error::internal)?;
    Ok(SealedField {
        field: field.to_owned(),
        key_id: sealed.key_id.0,
        ciphertext: sealed.bytes,
    })
}

fn seal_all(
    state: &AppState,
    integration_id: &str,
    secrets: &[(&'static str, SecretString)],
) -> Result<Vec<SealedField>, Error> {
    secrets
        .iter()
        .map(|(field, value)| seal_field(state, integration_id, field, value))
        .collect()
}

/// Opens sealed fields of an integration, by name.
pub fn open_fields(
    state: &AppState,
    integration_id: &str,
    fields: &[SealedField],
) -> Result<BTreeMap<String, SecretString>, Error> {
    fields
        .iter()
        .map(|f| {
            let aad = Aad {
                integration_id,
                field: &f.field,
            };
            let secret = state.vault.open(aad, &f.ciphertext).map_err(|e| {
                Error::internal(format!(
                    "cannot open {} of integration {integration_id}: {e}",
                    f.field
                ))
            })?;
            Ok((f.field.clone(), secret))
        })
        .collect()
}

/// Seals the secrets under the integration's identity and stores the integration, replacing an
/// existing connection to the same platform.
pub async fn connect(state: &AppState, conn: NewConnection) -> Result<Integration, Error> {
    // Two tries: a concurrent first connect may create the row under another id, in which case
    // we seal again under that id.
    for _ in 0..2 {
        let existing = state
            .store
            .get_integration(&conn.publisher, conn.platform)
            .await?;
        let id = existing.map_or_else(|| new_id("int_"), |e| e.id);
        let credentials = seal_all(state, &id, &conn.secrets)?;
        let saved = state
            .store
            .save_integration(NewIntegration {
                id,
                publisher_id: conn.publisher.clone(),
                platform: conn.platform,
                region: conn.region,
                config: conn.config.clone(),
                webhook_id: new_id("wh_"),
                credentials,
                now: Utc::now(),
            })
            .await;
        match saved {
            Ok(saved) => {
                let mut shape = render(state, &saved.integration).await?;
                shape.replaced = Some(saved.replaced);
                return Ok(shape);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::internal(
        "integration kept changing while connecting",
    ))
}

/// Opens every stored secret of an integration.
pub async fn open_secrets(
    state: &AppState,
    record: &IntegrationRecord,
) -> Result<BTreeMap<String, SecretString>, Error> {
    let creds = state
        .store
        .get_credentials(&record.id)
        .await?
        .ok_or_else(|| {
            Error::internal(format!("integration {} has no credentials row", record.id))
        })?;
    open_fields(state, &record.id, &creds.fields)
}

/// The contract's Integration shape: secrets masked, capabilities from the matrix, last sync.
/// A credential the vault cannot open (wrong master key, tampered row) is shown as `"…"` and the
/// integration as `error`, with the reason; it never fails the whole list.
pub async fn render(state: &AppState, record: &IntegrationRecord) -> Result<Integration, Error> {
    let creds = state.store.get_credentials(&record.id).await?;
    let mut masked = BTreeMap::new();
    let mut token_expires_at = None;
    let mut unreadable = false;
    for f in creds.iter().flat_map(|c| &c.fields) {
        let aad = Aad {
            integration_id: &record.id,
            field: &f.field,
        };
        let shown = match state.vault.open(aad, &f.ciphertext) {
            Ok(secret) => {
                if f.field == crate::platforms::fields::EXPIRES_AT {
                    token_expires_at = chrono::DateTime::parse_from_rfc3339(secret.expose_secret())
                        .ok()
                        .map(|t| t.with_timezone(&chrono::Utc));
                }
                mask_secret(secret.expose_secret())
            }
            Err(e) => {
                tracing::error!(integration_id = %record.id, field = %f.field, error = %e, "stored credential cannot be opened");
                unreadable = true;
                "…".to_owned()
            }
        };
        masked.insert(f.field.clone(), shown);
    }
    let (status, status_reason) = if unreadable {
        (
            IntegrationStatus::Error,
            Some("Stored credentials cannot be decrypted with the configured master key; check SHARPSEND_MASTER_KEY or reconnect.".to_owned()),
        )
    } else {
        (record.status, record.status_reason.clone())
    };
    let last_sync = state
        .store
        .latest_sync_job(&record.id)
        .await?
        .map(|j| j.to_shape());
    Ok(Integration {
        platform: record.platform,
        publisher_id: record.publisher_id.clone(),
        status,
        status_reason,
        region: record.region,
        config: record.config.clone(),
        credentials: masked,
        token_expires_at,
        capabilities: record.platform.capabilities(),
        connected_at: record.connected_at,
        updated_at: record.updated_at,
        last_sync,
        webhook_url: webhook_url(state, record.platform, &record.webhook_id),
        replaced: None,
        webhook_secret: None,
    })
}

/// The public URL a platform posts this integration's webhooks to (CONTRACT §8).
pub fn webhook_url(state: &AppState, platform: Platform, webhook_id: &str) -> String {
    format!(
        "{}/webhooks/{}/{}",
        state.public_origin,
        platform.as_str(),
        webhook_id
    )
}
