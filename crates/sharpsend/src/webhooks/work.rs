//! The upstream work Keap deliveries cause, bounded per integration (issue 14, items 1 and 2).
//!
//! Keap deliveries carry ids only and no signature, so the contacts they name are re-read from
//! Keap. Done naively that makes the webhook URL an amplifier: one 3,000-id delivery meant 3,000
//! reads with the publisher's token. Here a delivery only *queues* work, after it is answered:
//!
//! * **Re-reads** of named contacts run in one drain task per integration. Each read first takes
//!   a turn from a per-integration allowance ([`READ_BURST`] at once, then one per
//!   [`READ_EVERY`]) and then from the connector's own rate budget for the credential. An id
//!   already queued is not queued again, and at most [`COALESCE_ABOVE`] ids wait.
//! * **Coalescing**: a delivery naming more than [`COALESCE_ABOVE`] contacts, and whatever
//!   overflows the queue (a flood of small deliveries), becomes one `contacts` sync job of the
//!   integration instead: incremental for `contact.add`/`contact.edit`, a full listing for
//!   `contact.delete` (a full listing marks the contacts Keap no longer lists as deleted). The
//!   store keeps one active job per integration, so nothing is added while one is queued or
//!   running; this module asks for a job at most once per [`SYNC_EVERY`] (a full one at most once
//!   per [`FULL_SYNC_EVERY`]) and keeps a request made inside that window until it ends.
//! * **Deletes are hints** (item 1): a contact is marked deleted only when Keap answers 404 for
//!   its id (or a full listing no longer has it). A 200 means it is alive: it is upserted. Delete
//!   hints are first narrowed to the contacts we hold, so ids we never synced cost nothing.
//!
//! So a delivery of more than [`COALESCE_ABOVE`] contacts costs no per-id read, only (a share
//! of) one contacts sync; a smaller one at most its own ids; and a sustained flood at most
//! [`READ_BURST`] reads, then one per [`READ_EVERY`], and one sync per [`SYNC_EVERY`], per
//! integration. The allowance is per process (replicas each have their own).

use domain::{ErrorCode, Platform, PublisherId};
use store::IntegrationRecord;

pub use super::queue::{
    COALESCE_ABOVE, FULL_SYNC_EVERY, HookWork, READ_BURST, READ_EVERY, SYNC_EVERY,
};
use super::queue::{CONTACTS, Step, plausible_id};
use crate::{error::Result, platforms::keap::tokens, state::AppState};

/// Takes the contact ids a delivery named (`deleted` for `contact.delete`) and queues the
/// bounded work for them; nothing upstream happens before it returns (the drain task does it).
pub async fn submit(state: &AppState, record: &IntegrationRecord, ids: Vec<String>, deleted: bool) {
    let mut ids: Vec<String> = ids.into_iter().filter(|id| plausible_id(id)).collect();
    ids.sort_unstable();
    ids.dedup();
    if deleted && !ids.is_empty() {
        // Only contacts we hold can be marked deleted: hints about others cost nothing.
        match state.store.get_records(&record.id, CONTACTS, &ids).await {
            Ok(held) => ids = held.into_iter().map(|r| r.platform_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Keap hook: held contacts not looked up; the delete hints are left to a full sync");
                ids.clear();
                state.hook_work.owe(&record.id, true);
            }
        }
    }
    let named = ids.len();
    if state.hook_work.enqueue(&record.id, ids, deleted) {
        tracing::debug!(named, deleted, "Keap hook: contact work queued");
        let state = state.clone();
        let integration_id = record.id.clone();
        let publisher = record.publisher_id.clone();
        tokio::spawn(async move { drain(&state, &integration_id, &publisher).await });
    }
}

/// Works one integration's queue until it is empty.
async fn drain(state: &AppState, integration_id: &str, publisher: &str) {
    let work = &state.hook_work;
    let publisher = match PublisherId::parse(publisher) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "Keap hook: stored publisher id unreadable");
            work.abandon(integration_id);
            while !matches!(work.next(integration_id), Step::Done) {}
            return;
        }
    };
    let mut session: Option<tokens::Session> = None;
    let (mut read, mut alive, mut gone) = (0u32, 0u32, 0u32);
    loop {
        match work.next(integration_id) {
            Step::Read { id } => {
                work.allowance
                    .until_key_ready(&integration_id.to_owned())
                    .await;
                read += 1;
                match reread(state, &publisher, &mut session, &id).await {
                    Ok(true) => alive += 1,
                    Ok(false) => gone += 1,
                    Err(e) if stops(e.code()) => {
                        tracing::warn!(error = %e, "Keap hook: contacts not re-read; queue dropped");
                        work.abandon(integration_id);
                    }
                    Err(e) => {
                        // Left to the coalesced sync (it retries with backoff).
                        tracing::warn!(error = %e, "Keap hook: contact not re-read; a sync will catch up");
                        session = None;
                        work.owe(integration_id, false);
                    }
                }
            }
            Step::Sync { full } => request_sync(state, integration_id, &publisher, full).await,
            Step::Wait(d) => tokio::time::sleep(d).await,
            Step::Done => break,
        }
    }
    if read > 0 {
        tracing::info!(
            publisher = %publisher,
            read,
            alive,
            deleted = gone,
            "Keap hook: contacts re-read"
        );
    }
}

/// Errors after which nothing queued for the integration can succeed.
fn stops(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidCredentials | ErrorCode::IntegrationNotFound | ErrorCode::NotFound
    )
}

/// Re-reads one contact: Keap's 200 upserts it (`true`), Keap's 404 marks it deleted (`false`).
async fn reread(
    state: &AppState,
    publisher: &PublisherId,
    session: &mut Option<tokens::Session>,
    id: &str,
) -> Result<bool> {
    let s = match session {
        Some(s) => s,
        None => session.insert(
            crate::platforms::open_own::<crate::platforms::keap::KeapSession>(state, publisher)
                .await?,
        ),
    };
    let keap = &state.connectors.keap;
    let found = tokens::call(
        state,
        s,
        |cred| async move { keap.get_contact(&cred, id).await },
    )
    .await?;
    let integration_id = s.record.id.clone();
    match found {
        Some((contact, raw)) => {
            let record = store::NewRecord::from_values(contact.id.clone(), &contact, &raw)
                .map_err(crate::error::Error::internal)?;
            state
                .store
                .upsert_records(&integration_id, CONTACTS, vec![record])
                .await?;
            // Keap sends no unsubscribe, complaint or bounce webhooks: a hooked contact whose
            // status now says it may not be mailed is how one arrives (issue 17).
            if let Some((email, reason)) = crate::platforms::keap::consent::v1_contact_opt_out(&raw)
            {
                let source = store::SuppressionSource {
                    kind: store::SourceKind::Webhook,
                    platform: Some(Platform::Keap),
                    event_id: None,
                    principal: None,
                };
                if let Err(e) =
                    crate::consent::ledger::record(state, publisher, &email, reason, source).await
                {
                    tracing::warn!(%publisher, email = %crate::consent::email_ref(&email), error = %e, "recording a Keap opt-out failed");
                }
            }
            Ok(true)
        }
        None => {
            state
                .store
                .delete_records(&integration_id, CONTACTS, &[id.to_owned()])
                .await?;
            Ok(false)
        }
    }
}

/// Asks for one contacts sync of the integration; an active job stands for it, unless a full
/// listing is needed and the active job is not one (then it is asked for again later).
async fn request_sync(state: &AppState, integration_id: &str, publisher: &PublisherId, full: bool) {
    let work = &state.hook_work;
    match crate::sync::jobs::request(
        state,
        publisher,
        Platform::Keap,
        Some(vec![CONTACTS.to_owned()]),
        full,
    )
    .await
    {
        Ok((job, created)) => {
            tracing::info!(job_id = %job.id, created, full, "Keap hook: deliveries coalesced into a contacts sync");
            if !created && full && !(job.full && job.kinds.iter().any(|k| k == CONTACTS)) {
                work.owe(integration_id, true);
            } else if !created && !job.kinds.iter().any(|k| k == CONTACTS) {
                work.owe(integration_id, false);
            }
        }
        Err(e) if stops(e.code()) => {
            tracing::warn!(error = %e, "Keap hook: no contacts sync possible; queue dropped");
            work.abandon(integration_id);
        }
        Err(e) => {
            tracing::warn!(error = %e, "Keap hook: contacts sync not queued; trying again later");
            work.owe(integration_id, full);
        }
    }
}
