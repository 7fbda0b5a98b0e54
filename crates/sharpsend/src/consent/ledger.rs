//! Recording suppressions: the one function webhooks, sync and the API call.

use chrono::Utc;
use domain::{
    Platform, PublisherId,
    consent::{PropagationStatus, Reason},
};
use serde_json::json;
use store::{NewPlatformState, NewSuppression, Suppression, SuppressionSource};

use super::{SYSTEM, audit, email_ref, normalize};
use crate::{error::Error, state::AppState};

/// What [`record`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// A new entry, with its propagation rows (and jobs for the pending ones).
    New(Suppression),
    /// The publisher already had one for this address: the first is kept unchanged.
    Existing(Suppression),
    /// The address was erased: it stays suppressed by its salted hash, and nothing that would
    /// store it in clear again is recorded.
    Erased,
}

impl Recorded {
    pub fn suppression(&self) -> Option<&Suppression> {
        match self {
            Recorded::New(s) | Recorded::Existing(s) => Some(s),
            Recorded::Erased => None,
        }
    }
}

/// The reasons `publisher` pushes to its other platforms (its setting, else
/// [`Reason::DEFAULT_PROPAGATE`]).
pub async fn propagated_reasons(
    state: &AppState,
    publisher: &PublisherId,
) -> Result<Vec<Reason>, Error> {
    Ok(state
        .store
        .get_consent_propagate(publisher)
        .await?
        .unwrap_or_else(|| Reason::DEFAULT_PROPAGATE.to_vec()))
}

/// Replaces the propagate setting (already validated: reasons parse into [`Reason`]) and audits
/// the change. Duplicates are dropped; the stored order is [`Reason::ALL`]'s.
pub async fn set_propagated_reasons(
    state: &AppState,
    publisher: &PublisherId,
    reasons: &[Reason],
    principal: &str,
) -> Result<Vec<Reason>, Error> {
    let before = propagated_reasons(state, publisher).await?;
    let reasons: Vec<Reason> = Reason::ALL
        .into_iter()
        .filter(|r| reasons.contains(r))
        .collect();
    state
        .store
        .put_consent_propagate(publisher, &reasons, Utc::now())
        .await?;
    audit::append(
        state,
        publisher,
        principal,
        "consent.updated",
        json!({"before": before, "propagate": reasons}),
    )
    .await?;
    Ok(reasons)
}

/// Records that `email` must not be mailed by `publisher`, for `reason`, as seen by `source`.
///
/// The address is normalised (a bad one is a `VALIDATION_ERROR` naming `email`). A new entry
/// gets one propagation row per platform: the source platform's is `done` ("source"); each
/// other connected platform's is `pending` with a queued opt-out job when the publisher
/// propagates `reason`, else `skipped` with why. Platforms not connected get no row. Every new
/// entry is audited.
pub async fn record(
    state: &AppState,
    publisher: &PublisherId,
    email: &str,
    reason: Reason,
    source: SuppressionSource,
) -> Result<Recorded, Error> {
    let email = normalize(email, "email")?;
    if state.store.is_erased(publisher, &email).await? {
        tracing::info!(%publisher, email = %email_ref(&email), reason = reason.as_str(), "suppression of an erased address: kept by its hash only");
        return Ok(Recorded::Erased);
    }
    if let Some(existing) = state.store.get_suppression(publisher, &email).await? {
        return Ok(Recorded::Existing(existing));
    }
    let propagate = propagated_reasons(state, publisher)
        .await?
        .contains(&reason);
    let connected: Vec<Platform> = state
        .store
        .list_integrations(publisher)
        .await?
        .into_iter()
        .map(|i| i.platform)
        .collect();
    let mut platforms: Vec<NewPlatformState> = connected
        .iter()
        .filter(|p| Some(**p) != source.platform)
        .map(|&platform| {
            if propagate {
                NewPlatformState {
                    platform,
                    status: PropagationStatus::Pending,
                    note: None,
                }
            } else {
                NewPlatformState {
                    platform,
                    status: PropagationStatus::Skipped,
                    note: Some(format!(
                        "the publisher does not propagate '{}'",
                        reason.as_str()
                    )),
                }
            }
        })
        .collect();
    if let Some(origin) = source.platform {
        platforms.push(NewPlatformState {
            platform: origin,
            status: PropagationStatus::Done,
            note: Some("source".to_owned()),
        });
    }
    let principal = source
        .principal
        .clone()
        .unwrap_or_else(|| SYSTEM.to_owned());
    let detail = json!({
        "email": email,
        "reason": reason,
        "source": {
            "kind": source.kind.as_str(),
            "platform": source.platform,
            "eventId": source.event_id,
        },
    });
    let (stored, new) = state
        .store
        .record_suppression(NewSuppression {
            publisher: publisher.clone(),
            email: email.clone(),
            reason,
            source,
            platforms,
            now: Utc::now(),
        })
        .await?;
    if !new {
        // Another request recorded it between the read above and this write.
        return Ok(Recorded::Existing(stored));
    }
    let pending = stored
        .platforms
        .iter()
        .filter(|p| p.status == PropagationStatus::Pending)
        .count();
    tracing::info!(%publisher, email = %email_ref(&email), reason = reason.as_str(), pending, "suppression recorded");
    audit::append(state, publisher, &principal, "suppression.created", detail).await?;
    crate::destinations::events::suppression_created(state, &stored).await;
    Ok(Recorded::New(stored))
}

/// Removes an entry (re-subscribing no one); answers whether it existed. Audited.
pub async fn delete(
    state: &AppState,
    publisher: &PublisherId,
    email: &str,
    principal: &str,
) -> Result<bool, Error> {
    let email = normalize(email, "email")?;
    let existed = state.store.delete_suppression(publisher, &email).await?;
    if existed {
        tracing::info!(%publisher, email = %email_ref(&email), "suppression deleted");
        audit::append(
            state,
            publisher,
            principal,
            "suppression.deleted",
            json!({"email": email}),
        )
        .await?;
    }
    Ok(existed)
}
