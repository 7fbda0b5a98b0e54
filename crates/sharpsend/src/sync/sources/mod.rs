//! The sync sources of each platform, behind [`open`].

pub mod customerio;
pub mod iterable;
pub mod keap;
pub mod metrics;

use domain::Platform;
use store::IntegrationRecord;

use super::source::SyncSession;
use crate::{error::Error, state::AppState};

/// Opens the sync session of a connected integration: its credentials are read from the vault
/// (and, for Keap, refreshed first when close to expiry).
pub async fn open(
    state: &AppState,
    record: &IntegrationRecord,
) -> Result<Box<dyn SyncSession>, Error> {
    Ok(crate::platforms::open(state, record.clone())
        .await?
        .into_sync(state))
}

/// Reads back a cursor this module made (small JSON); anything else is refused.
fn decode_cursor<T: serde::de::DeserializeOwned>(kind: &str, cursor: &str) -> Result<T, Error> {
    serde_json::from_str(cursor).map_err(|_| {
        Error::invalid(
            "cursor",
            format!("`{cursor}` is not a cursor of the `{kind}` sync kind."),
        )
    })
}

/// Writes a cursor as compact JSON.
fn encode_cursor<T: serde::Serialize>(cursor: &T) -> Result<String, Error> {
    serde_json::to_string(cursor).map_err(Error::internal)
}

/// A kind the platform does not sync.
fn unknown_kind(platform: Platform, kind: &str) -> Error {
    Error::coded(
        domain::ErrorCode::UnsupportedOperation,
        format!(
            "{} has no sync kind `{kind}`; its kinds are {}.",
            platform.display_name(),
            platform.sync_kinds().join(", ")
        ),
    )
}
