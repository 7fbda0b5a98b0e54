//! The audit log: who changed a publisher's consent data or credentials, and when.

use chrono::Utc;
use domain::PublisherId;
use serde_json::Value;
use store::NewAuditEntry;

use crate::{error::Error, state::AppState};

/// Appends an entry; `detail` is a JSON object (it may name an address: an erasure redacts it).
pub async fn append(
    state: &AppState,
    publisher: &PublisherId,
    principal: &str,
    action: &str,
    detail: Value,
) -> Result<(), Error> {
    state
        .store
        .append_audit(NewAuditEntry {
            publisher: publisher.clone(),
            at: Utc::now(),
            principal: principal.to_owned(),
            action: action.to_owned(),
            detail,
        })
        .await?;
    Ok(())
}

/// [`append`] for an action that already happened (a connect, a key revoked): a failure to
/// record it is logged, not answered, since the action stands either way.
pub async fn note(
    state: &AppState,
    publisher: &PublisherId,
    who: &str,
    action: &str,
    detail: Value,
) {
    if let Err(e) = append(state, publisher, who, action, detail).await {
        tracing::warn!(%publisher, action, error = %e, "audit entry not recorded");
    }
}
