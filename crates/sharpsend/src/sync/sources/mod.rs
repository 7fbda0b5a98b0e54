//! The sync readers behind [`open`]: each platform's lives with its session
//! (`platforms::<platform>::sync`); the opt-in `metrics` kind, shared by two platforms, is here.

pub mod metrics;

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
