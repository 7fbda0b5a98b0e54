//! The sync sources of each platform, behind [`open`].

mod customerio;
mod iterable;
mod keap;

use domain::Platform;
use store::IntegrationRecord;

use super::source::SyncSession;
use crate::{http::error::ApiError, state::AppState};

/// Opens the sync session of a connected integration: its credentials are read from the vault
/// (and, for Keap, refreshed first when close to expiry).
pub async fn open(
    state: &AppState,
    record: &IntegrationRecord,
) -> Result<Box<dyn SyncSession>, ApiError> {
    match record.platform {
        Platform::Iterable => iterable::open(state, record).await,
        Platform::Customerio => customerio::open(state, record).await,
        Platform::Keap => keap::open(state, record).await,
    }
}
