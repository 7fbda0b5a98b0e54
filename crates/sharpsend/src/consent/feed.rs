//! The sync's feed into the consent ledger (issue 17): when a sync page of users, people or
//! contacts is committed, every record whose stored subscription state says the address must not
//! be mailed is recorded with [`ledger::record`] (source kind `sync`, the platform synced).
//!
//! Which records those are is the platform's business ([`SyncSession::opt_outs`], in each
//! platform's `sync.rs`); what is done with them is decided here, once for all platforms:
//!
//! * a recording is idempotent (an address already suppressed is left as it was), so a page read
//!   twice — a retry, a resumed run, every full sync — records nothing new;
//! * the feed runs **before** the page's commit, so a crash between the two loses nothing: the
//!   uncommitted page is read again and recorded again (a no-op);
//! * a failure (reading the opt-outs, or recording one) is logged — by [`email_ref`], never the
//!   address — and never fails the sync: the records are still stored, and the next full sync
//!   offers the address again.

use std::collections::BTreeSet;

use domain::{Platform, PublisherId};
use store::{SourceKind, SuppressionSource};

use super::{
    email_ref,
    ledger::{self, Recorded},
};
use crate::{
    state::AppState,
    sync::source::{SyncRecord, SyncSession, SyncedOptOut},
};

/// What [`from_synced_records`] did with a page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// New ledger entries.
    pub recorded: usize,
    /// Addresses already in the ledger (or erased): nothing changed.
    pub unchanged: usize,
    /// Recordings that failed (logged; offered again by a later sync).
    pub failed: usize,
}

/// The opt-outs of one page of `kind`, as the platform's session reads them from its records;
/// none when that read fails (logged: the page is still stored, and a later sync offers them
/// again). Cheap: the records' own JSON, plus at most one lookup a session (Iterable's
/// channels).
pub async fn read_opt_outs(
    publisher: &PublisherId,
    platform: Platform,
    kind: &str,
    session: &mut dyn SyncSession,
    records: &[SyncRecord],
) -> Vec<SyncedOptOut> {
    match session.opt_outs(kind, records).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(%publisher, %platform, kind, code = %e.code(), error = %e.public_message(),
                "reading the subscription state of a synced page failed; its opt-outs wait for the next sync");
            Vec::new()
        }
    }
}

/// Records a synced page's `opt_outs` (each address once) in `publisher`'s ledger, as seen by a
/// sync of `platform`. Never fails: see the module's notes.
pub async fn from_synced_records(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
    opt_outs: &[SyncedOptOut],
) -> Fed {
    let mut fed = Fed::default();
    let mut seen = BTreeSet::new();
    for o in opt_outs {
        // Several contacts can hold one address: the first one's reason is recorded.
        let key = o.email.trim().to_lowercase();
        if !seen.insert(key) {
            continue;
        }
        let source = SuppressionSource {
            kind: SourceKind::Sync,
            platform: Some(platform),
            event_id: None,
            principal: None,
        };
        match ledger::record(state, publisher, &o.email, o.reason, source).await {
            Ok(Recorded::New(_)) => fed.recorded += 1,
            Ok(Recorded::Existing(_) | Recorded::Erased) => fed.unchanged += 1,
            Err(e) => {
                fed.failed += 1;
                tracing::warn!(%publisher, %platform, email = %email_ref(&o.email), reason = o.reason.as_str(),
                    code = %e.code(), error = %e.public_message(),
                    "recording a synced opt-out failed; the next sync offers it again");
            }
        }
    }
    if fed.recorded > 0 || fed.failed > 0 {
        tracing::info!(%publisher, %platform, recorded = fed.recorded, unchanged = fed.unchanged,
            failed = fed.failed, "synced opt-outs fed to the consent ledger");
    }
    fed
}
