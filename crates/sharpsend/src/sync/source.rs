//! What a platform gives the sync engine: pages of records for one kind, with a cursor.
//!
//! The engine owns durability (jobs, leases, one transaction per page, checkpoints, deletes);
//! a source only knows how to read its platform. Cursors are opaque strings the source makes and
//! reads back (usually small JSON), so each platform can keep what it needs — a page token, an
//! offset, an `updated_at` high-water mark — without the engine knowing.
//!
//! The contract between the two:
//!
//! * [`SyncSession::page`] with `cursor: None` reads the kind **from the beginning** (a full
//!   listing). The engine calls it so on a `full` run, on the first run, and whenever the source
//!   left no watermark.
//! * `Some(cursor)` continues from a cursor the source returned earlier: either a [`Page::next`]
//!   (the rest of the same listing, after a crash or a retry) or a [`Page::watermark`] (a new
//!   incremental listing of what changed since the last completed run).
//! * Each page's records and its `next` cursor are committed in one transaction, so a page is
//!   never half-applied and a resumed run starts at the first uncommitted page.
//! * Records are keyed by `platform_id` and upserted, so cursors should be **inclusive**: a
//!   source that re-reads the boundary record (same `updated_at` as the watermark) costs one
//!   write and loses nothing. Sources with eventual consistency subtract a lookback from their
//!   watermark for the same reason.
//! * Only a listing that started from `None` and reached its end marks stored records it did not
//!   see as deleted; incremental, partial and failed runs never delete.

use async_trait::async_trait;
use domain::Platform;

use domain::consent::Reason;

use crate::error::Error;

/// One record as the platform gave it (`raw`, its JSON unchanged) and as we normalise it
/// (`normalized`: CONTRACT §6 Campaign, Contact, or the kind's own camelCase fields), keyed by
/// the platform's id (a string even when the platform uses numbers). Both are JSON text, so a
/// page goes from the platform's bytes to the `INSERT` without a `Value` tree per record.
pub use store::NewRecord as SyncRecord;

/// One page of one kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub records: Vec<SyncRecord>,
    /// Where the rest of this listing starts; `None` when this was its last page.
    pub next: Option<String>,
    /// On the last page only: where the next incremental run should start (for example the
    /// newest `updated_at` seen, minus a lookback). `None` means the kind has no incremental read
    /// and every run lists it in full.
    pub watermark: Option<String>,
}

impl Page {
    /// The last page of a listing that has no incremental form.
    pub fn last(records: Vec<SyncRecord>) -> Self {
        Self {
            records,
            next: None,
            watermark: None,
        }
    }
}

/// One platform's sync kinds, opened for one integration (credentials already at hand).
///
/// Errors are the contract's: `INVALID_CREDENTIALS`/`PERMISSION_DENIED` fail the job at once
/// (and `INVALID_CREDENTIALS` from a refused token refresh marks the integration
/// `reauth_required`); `RATE_LIMIT_EXCEEDED` and `CONNECTION_FAILED` are retried by the engine
/// from the last checkpoint, after the error's `Retry-After` when it has one.
#[async_trait]
pub trait SyncSession: Send {
    /// Reads one page of `kind` (one of `Platform::sync_kinds`), starting at `cursor`.
    async fn page(&mut self, kind: &str, cursor: Option<&str>) -> Result<Page, Error>;

    /// The addresses among `records` (a page of `kind` this session read) whose stored
    /// subscription state says they must not be mailed, for the consent ledger
    /// ([`crate::consent::feed`]). Kinds that hold no subscription state have none (the
    /// default). An error skips the page's opt-outs; it never fails the sync.
    async fn opt_outs(
        &mut self,
        kind: &str,
        records: &[SyncRecord],
    ) -> Result<Vec<SyncedOptOut>, Error> {
        let _ = (kind, records);
        Ok(Vec::new())
    }
}

/// Reads back a cursor a source made (small JSON); anything else is refused.
pub fn decode_cursor<T: serde::de::DeserializeOwned>(kind: &str, cursor: &str) -> Result<T, Error> {
    serde_json::from_str(cursor).map_err(|_| {
        Error::invalid(
            "cursor",
            format!("`{cursor}` is not a cursor of the `{kind}` sync kind."),
        )
    })
}

/// Writes a cursor as compact JSON.
pub fn encode_cursor<T: serde::Serialize>(cursor: &T) -> Result<String, Error> {
    serde_json::to_string(cursor).map_err(Error::internal)
}

/// A kind the platform does not sync.
pub fn unknown_kind(platform: Platform, kind: &str) -> Error {
    Error::coded(
        domain::ErrorCode::UnsupportedOperation,
        format!(
            "{} has no sync kind `{kind}`; its kinds are {}.",
            platform.display_name(),
            platform.sync_kinds().join(", ")
        ),
    )
}

/// One synced record's address that must not be mailed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncedOptOut {
    /// As the platform stored it; `consent::ledger::record` normalises it.
    pub email: String,
    pub reason: Reason,
}
