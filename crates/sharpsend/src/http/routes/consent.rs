//! The consent ledger over HTTP (issue 17): suppressions, the propagate setting, erasures and
//! the audit log of a publisher, under `/api/integrations/{publisherId}/…`. Each handler takes
//! the publisher from the gate's [`Scope`] and hands the work to `crate::consent`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use domain::{
    Platform,
    consent::{PropagationStatus, Reason},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{
    AuditEntry, ErasureRecord, PlatformState, SourceKind, Suppression, SuppressionFilter,
    SuppressionSource,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    consent::{self, ledger::Recorded},
    http::{
        error::{ApiError, ApiResult},
        extract::{ApiJson, ApiQuery, Scope},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_suppression, list_suppressions))
        .routes(routes!(delete_suppression))
        .routes(routes!(get_consent, put_consent))
        .routes(routes!(create_erasure))
        .routes(routes!(get_erasure))
        .routes(routes!(list_audit))
}

/// Where one platform stands with a suppression or an erasure.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformProgress {
    pub platform: Platform,
    pub status: PropagationStatus,
    /// When the status last changed.
    pub at: DateTime<Utc>,
    /// Why it failed or was skipped, or the last error of a `pending` one being retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&PlatformState> for PlatformProgress {
    fn from(p: &PlatformState) -> Self {
        Self {
            platform: p.platform,
            status: p.status,
            at: p.updated_at,
            // A `done` row's note says what was done, not an error.
            error: (p.status != PropagationStatus::Done)
                .then(|| p.note.clone())
                .flatten(),
        }
    }
}

/// Where a suppression came from.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    /// `webhook`, `sync` or `api`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `admin` or the API key id that added it (`api` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// A ledger entry.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionView {
    /// Trimmed and lowercased.
    pub email: String,
    pub reason: Reason,
    pub source: SourceView,
    pub created_at: DateTime<Utc>,
    /// One entry per platform connected when it was recorded.
    pub platforms: Vec<PlatformProgress>,
}

impl From<&Suppression> for SuppressionView {
    fn from(s: &Suppression) -> Self {
        Self {
            email: s.email.clone(),
            reason: s.reason,
            source: SourceView {
                kind: s.source.kind.as_str().to_owned(),
                platform: s.source.platform,
                event_id: s.source.event_id.clone(),
                principal: s.source.principal.clone(),
            },
            created_at: s.created_at,
            platforms: s.platforms.iter().map(Into::into).collect(),
        }
    }
}

/// An address that was erased: it stays suppressed, and nothing personal is kept.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErasedEntry {
    /// Always `true`.
    pub erased: bool,
}

/// A ledger entry, or the mark of an erased address.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SuppressionEntry {
    Entry(SuppressionView),
    Erased(ErasedEntry),
}

/// `POST …/suppressions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSuppressionBody {
    pub email: String,
    /// `unsubscribed`, `complained`, `bounced` or `manual` (the default).
    pub reason: Option<String>,
}

/// Query of the suppressions list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionsQuery {
    /// One address (normalised before the lookup). An erased address answers one
    /// `{"erased": true}` entry.
    pub email: Option<String>,
    /// `unsubscribed`, `complained`, `bounced` or `manual`.
    pub reason: Option<String>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of the ledger, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionList {
    pub suppressions: Vec<SuppressionEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The propagate setting.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentSettings {
    /// Reasons pushed to every other connected platform; `[]` turns propagation off. Default
    /// `["unsubscribed", "complained"]`.
    #[schema(value_type = Vec<domain::consent::Reason>)]
    pub propagate: Vec<String>,
}

/// `POST …/erasures`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewErasureBody {
    pub email: String,
}

/// An erasure request. It never shows (or keeps) the address.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureView {
    pub erasure_id: String,
    /// `pending` until every platform finished, then `done`, or `failed` if any platform failed.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Every platform: `pending`, `done`, `failed` (with the error) or `skipped` (not connected).
    pub platforms: Vec<PlatformProgress>,
}

impl From<&ErasureRecord> for ErasureView {
    fn from(e: &ErasureRecord) -> Self {
        Self {
            erasure_id: e.id.clone(),
            status: e.status.as_str().to_owned(),
            created_at: e.created_at,
            platforms: e.platforms.iter().map(Into::into).collect(),
        }
    }
}

/// Query of the audit log.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// One audited action.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    pub at: DateTime<Utc>,
    /// `admin`, the API key id, or `system` (a webhook or a sync).
    pub principal: String,
    /// `suppression.created`, `suppression.deleted`, `consent.updated`, `erasure.requested`,
    /// `integration.connected`, `integration.disconnected`, `api_key.created`, `api_key.revoked`.
    pub action: String,
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            at: e.at,
            principal: e.principal,
            action: e.action,
            detail: e.detail,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub entries: Vec<AuditEntryView>,
    pub next_cursor: Option<String>,
}

const SUPPRESSION_CURSOR: &str = "su1.";
const AUDIT_CURSOR: &str = "au1.";

fn parse_reason(raw: &str, field: &str) -> ApiResult<Reason> {
    Reason::parse(raw).ok_or_else(|| {
        ApiError::validation(
            field.to_owned(),
            format!(
                "Unknown reason '{}': use unsubscribed, complained, bounced or manual.",
                raw.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Adds an address to the ledger (201), pushed to the publisher's other connected platforms
/// when it propagates the reason. An address already in the ledger answers 200 with the entry
/// as first recorded (the new reason is not applied); an erased address answers 200
/// `{"erased": true}`.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/suppressions", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = NewSuppressionBody,
    responses(
        (status = 201, description = "recorded", body = Envelope<SuppressionEntry>),
        (status = 200, description = "already suppressed (or erased): the existing entry", body = Envelope<SuppressionEntry>),
        (status = 400, description = "VALIDATION_ERROR: bad email or reason, unknown field", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_suppression(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<NewSuppressionBody>,
) -> ApiResult<(StatusCode, Envelope<SuppressionEntry>)> {
    let publisher = scope.publisher()?;
    let reason = match body.reason.as_deref() {
        None => Reason::Manual,
        Some(r) => parse_reason(r, "reason")?,
    };
    let source = SuppressionSource {
        kind: SourceKind::Api,
        platform: None,
        event_id: None,
        principal: Some(consent::principal_name(&scope.principal)),
    };
    let recorded = consent::ledger::record(&state, publisher, &body.email, reason, source).await?;
    Ok(match recorded {
        Recorded::New(s) => (
            StatusCode::CREATED,
            Envelope::ok(SuppressionEntry::Entry((&s).into())),
        ),
        Recorded::Existing(s) => (
            StatusCode::OK,
            Envelope::ok(SuppressionEntry::Entry((&s).into())),
        ),
        Recorded::Erased => (
            StatusCode::OK,
            Envelope::ok(SuppressionEntry::Erased(ErasedEntry { erased: true })),
        ),
    })
}

/// Lists the ledger, newest first, with each entry's propagation per platform.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/suppressions", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), SuppressionsQuery),
    responses(
        (status = 200, body = Envelope<SuppressionList>),
        (status = 400, description = "VALIDATION_ERROR: bad email, reason, limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_suppressions(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<SuppressionsQuery>,
) -> ApiResult<Envelope<SuppressionList>> {
    let publisher = scope.publisher()?;
    let email = match q.email.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => Some(consent::normalize(e, "email")?),
    };
    let reason = match q.reason.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(parse_reason(r, "reason")?),
    };
    let limit = crate::paging::limit(q.limit, 100, crate::paging::MAX_LIMIT)?;
    let before = crate::paging::parse_seq_cursor(SUPPRESSION_CURSOR, q.cursor.as_deref())?;
    let page = state
        .store
        .list_suppressions(
            publisher,
            &SuppressionFilter {
                email: email.clone(),
                reason,
            },
            limit,
            before,
        )
        .await?;
    let mut suppressions: Vec<SuppressionEntry> = page
        .suppressions
        .iter()
        .map(|s| SuppressionEntry::Entry(s.into()))
        .collect();
    if let Some(email) = &email
        && suppressions.is_empty()
        && before.is_none()
        && state.store.is_erased(publisher, email).await?
    {
        suppressions.push(SuppressionEntry::Erased(ErasedEntry { erased: true }));
    }
    Ok(Envelope::ok(SuppressionList {
        suppressions,
        next_cursor: page
            .next
            .map(|seq| crate::paging::seq_cursor(SUPPRESSION_CURSOR, seq)),
    }))
}

/// Removes an address from the ledger. It re-subscribes no one on any platform (Keap's API
/// cannot opt an address back in); it only stops the ledger listing it.
#[utoipa::path(delete, path = "/api/integrations/{publisherId}/suppressions/{email}", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("email" = String, Path, description = "the address, URL-encoded")),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "VALIDATION_ERROR: not an address", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "NOT_FOUND: not in the ledger", body = ErrorBody)))]
pub async fn delete_suppression(
    State(state): State<AppState>,
    scope: Scope,
    Path(path): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let publisher = scope.publisher()?;
    let principal = consent::principal_name(&scope.principal);
    if consent::ledger::delete(&state, publisher, &path.1, &principal).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "That address is not in this publisher's suppression list.",
        ))
    }
}

/// The propagate setting: which reasons are pushed to every other connected platform.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/consent", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    responses(
        (status = 200, body = Envelope<ConsentSettings>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_consent(
    State(state): State<AppState>,
    scope: Scope,
) -> ApiResult<Envelope<ConsentSettings>> {
    let publisher = scope.publisher()?;
    let reasons = consent::ledger::propagated_reasons(&state, publisher).await?;
    Ok(Envelope::ok(ConsentSettings {
        propagate: reasons.iter().map(|r| r.as_str().to_owned()).collect(),
    }))
}

/// Replaces the propagate setting (`[]` turns propagation off). Entries already recorded keep
/// their platforms' status; the setting applies to the next ones.
#[utoipa::path(put, path = "/api/integrations/{publisherId}/consent", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = ConsentSettings,
    responses(
        (status = 200, body = Envelope<ConsentSettings>),
        (status = 400, description = "VALIDATION_ERROR: an unknown reason", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_consent(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<ConsentSettings>,
) -> ApiResult<Envelope<ConsentSettings>> {
    let publisher = scope.publisher()?;
    let reasons = body
        .propagate
        .iter()
        .enumerate()
        .map(|(i, r)| parse_reason(r, &format!("propagate[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    let principal = consent::principal_name(&scope.principal);
    let stored =
        consent::ledger::set_propagated_reasons(&state, publisher, &reasons, &principal).await?;
    Ok(Envelope::ok(ConsentSettings {
        propagate: stored.iter().map(|r| r.as_str().to_owned()).collect(),
    }))
}

/// Erases a reader: every connected platform forgets the address (durable, retried jobs), and
/// our synced records, stored events and ledger entry holding it are deleted at once; only a
/// salted hash stays so that the address remains suppressed.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/erasures", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = NewErasureBody,
    responses(
        (status = 202, body = Envelope<ErasureView>),
        (status = 400, description = "VALIDATION_ERROR: not an address, unknown field", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_erasure(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(body): ApiJson<NewErasureBody>,
) -> ApiResult<(StatusCode, Envelope<ErasureView>)> {
    let publisher = scope.publisher()?;
    let principal = consent::principal_name(&scope.principal);
    let erasure = consent::erasure::request(&state, publisher, &body.email, &principal).await?;
    Ok((StatusCode::ACCEPTED, Envelope::ok((&erasure).into())))
}

/// One erasure request and its platforms.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/erasures/{erasureId}", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("erasureId" = String, Path)),
    responses(
        (status = 200, body = Envelope<ErasureView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such erasure for this publisher", body = ErrorBody)))]
pub async fn get_erasure(
    State(state): State<AppState>,
    scope: Scope,
    Path(path): Path<(String, String)>,
) -> ApiResult<Envelope<ErasureView>> {
    let publisher = scope.publisher()?;
    let erasure = state
        .store
        .get_erasure(publisher, &path.1)
        .await?
        .ok_or_else(|| ApiError::not_found("No erasure with that id for this publisher."))?;
    Ok(Envelope::ok((&erasure).into()))
}

/// Who changed the publisher's consent data or credentials, newest first.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/audit", tag = "integrations",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), AuditQuery),
    responses(
        (status = 200, body = Envelope<AuditList>),
        (status = 400, description = "VALIDATION_ERROR: bad limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Envelope<AuditList>> {
    let publisher = scope.publisher()?;
    let limit = crate::paging::limit(q.limit, 100, crate::paging::MAX_LIMIT)?;
    let before = crate::paging::parse_seq_cursor(AUDIT_CURSOR, q.cursor.as_deref())?;
    let page = state.store.list_audit(publisher, limit, before).await?;
    Ok(Envelope::ok(AuditList {
        entries: page.entries.into_iter().map(Into::into).collect(),
        next_cursor: page
            .next
            .map(|seq| crate::paging::seq_cursor(AUDIT_CURSOR, seq)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        let t = crate::paging::seq_cursor(SUPPRESSION_CURSOR, 42);
        assert_eq!(
            crate::paging::parse_seq_cursor(SUPPRESSION_CURSOR, Some(&t)).unwrap(),
            Some(42)
        );
        assert!(crate::paging::parse_seq_cursor(AUDIT_CURSOR, Some(&t)).is_err());
        for bad in ["su1.", "su1.zz", "x", "su1.ffffffffffffffffff"] {
            assert!(
                crate::paging::parse_seq_cursor(SUPPRESSION_CURSOR, Some(bad)).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            crate::paging::parse_seq_cursor(SUPPRESSION_CURSOR, None).unwrap(),
            None
        );
    }
}
