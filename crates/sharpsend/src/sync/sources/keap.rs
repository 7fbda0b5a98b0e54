//! Sync kinds of this platform (not built yet: every kind answers UNSUPPORTED_OPERATION).

use async_trait::async_trait;
use domain::ErrorCode;
use store::IntegrationRecord;

use crate::{
    http::error::ApiError,
    state::AppState,
    sync::source::{Page, SyncSession},
};

pub async fn open(
    _state: &AppState,
    _record: &IntegrationRecord,
) -> Result<Box<dyn SyncSession>, ApiError> {
    Ok(Box::new(Pending))
}

struct Pending;

#[async_trait]
impl SyncSession for Pending {
    async fn page(&mut self, kind: &str, _cursor: Option<&str>) -> Result<Page, ApiError> {
        Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            format!("syncing `{kind}` is not built yet"),
        ))
    }
}
