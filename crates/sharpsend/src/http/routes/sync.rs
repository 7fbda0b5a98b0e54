//! Sync jobs and what they stored: queue a sync, follow it, page through its records.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use domain::{ErrorCode, Platform, shapes::SyncJob};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    http::{
        error::{ApiError, ApiResult},
        extract::{ApiQuery, OptionalJson, Scope},
        openapi::{Envelope, ErrorBody},
    },
    state::AppState,
    sync::jobs,
};

/// `POST …/sync`: all optional; an empty body syncs every kind incrementally.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// Kinds to sync (CONTRACT §6); all of the platform's when absent.
    pub kinds: Option<Vec<String>>,
    /// Read every kind from the start (and mark records no longer on the platform deleted).
    #[serde(default)]
    pub full: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncQueued {
    pub job_id: String,
    pub status: domain::shapes::SyncStatus,
    /// `true` when the integration already had a queued or running job, which this is.
    pub already_active: bool,
    pub job: SyncJob,
}

/// Queues a sync (202). One job per integration at a time: while one is queued or running,
/// the answer is that job.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/{platform}/sync", tag = "sync",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path)),
    request_body(content = Option<SyncRequest>, description = "Optional: an empty body syncs every kind incrementally.", example = json!({"kinds": ["campaigns"]})),
    responses(
        (status = 202, body = Envelope<SyncQueued>),
        (status = 400, description = "VALIDATION_ERROR (unknown kind)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS: the integration must be reconnected", body = ErrorBody)))]
pub async fn start_sync(
    State(state): State<AppState>,
    scope: Scope,
    OptionalJson(request): OptionalJson<SyncRequest>,
) -> ApiResult<Response> {
    let publisher = scope.publisher()?;
    let platform = scope.platform()?;
    let request = request.unwrap_or_default();
    let (job, created) =
        jobs::request(&state, publisher, platform, request.kinds, request.full).await?;
    let shape = job.to_shape();
    Ok((
        StatusCode::ACCEPTED,
        Envelope::ok(SyncQueued {
            job_id: shape.job_id.clone(),
            status: shape.status,
            already_active: !created,
            job: shape,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncJobList {
    pub jobs: Vec<SyncJob>,
}

/// The integration's latest sync jobs, newest first.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/sync", tag = "sync",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), JobsQuery),
    responses(
        (status = 200, body = Envelope<SyncJobList>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody)))]
pub async fn list_sync_jobs(
    State(state): State<AppState>,
    scope: Scope,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> ApiResult<Envelope<SyncJobList>> {
    let limit = crate::paging::limit(q.limit, 20, 100)?;
    let record = jobs::integration(&state, scope.publisher()?, scope.platform()?).await?;
    let jobs = state.store.list_sync_jobs(&record.id, limit).await?;
    Ok(Envelope::ok(SyncJobList {
        jobs: jobs.iter().map(store::SyncJobRecord::to_shape).collect(),
    }))
}

/// One sync job, with its live progress.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/sync/{jobId}", tag = "sync",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ("jobId" = String, Path)),
    responses(
        (status = 200, body = Envelope<SyncJob>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such job for this integration", body = ErrorBody)))]
pub async fn get_sync_job(
    State(state): State<AppState>,
    scope: Scope,
    Path(path): Path<(String, String, String)>,
) -> ApiResult<Envelope<SyncJob>> {
    let job_id = path.2;
    let record = jobs::integration(&state, scope.publisher()?, scope.platform()?).await?;
    let job = state
        .store
        .get_sync_job(&record.id, &job_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No sync job '{job_id}' for this {} integration; GET …/sync lists its jobs.",
                record.platform
            ))
        })?;
    Ok(Envelope::ok(job.to_shape()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Include records a complete sync found gone from the platform (default false).
    pub include_deleted: Option<bool>,
}

/// One stored record.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncedRecord {
    pub platform_id: String,
    pub kind: String,
    /// Our normalised fields (Campaign, Contact, or the kind's own camelCase fields).
    pub data: Value,
    /// The platform's JSON as it came.
    pub raw: Value,
    /// When the record last changed here.
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage {
    pub records: Vec<SyncedRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What sync stored for a kind, most recently changed first. The cursor is stable: records
/// that do not change between requests are neither skipped nor repeated.
#[utoipa::path(get, path = "/api/integrations/{publisherId}/{platform}/records/{kind}", tag = "sync",
    security(("bearer" = [])),
    params(("publisherId" = String, Path), ("platform" = Platform, Path), ("kind" = String, Path), RecordsQuery),
    responses(
        (status = 200, body = Envelope<RecordPage>),
        (status = 400, description = "VALIDATION_ERROR (kind, limit, cursor)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND", body = ErrorBody)))]
pub async fn list_records(
    State(state): State<AppState>,
    scope: Scope,
    Path(path): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> ApiResult<Envelope<RecordPage>> {
    let kind = path.2;
    let platform = scope.platform()?;
    let kind = jobs::kinds(platform, Some(vec![kind]))?.remove(0);
    let limit = crate::paging::limit(q.limit, 100, crate::paging::MAX_LIMIT)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let record = jobs::integration(&state, scope.publisher()?, platform).await?;
    let mut rows = state
        .store
        .list_records(
            &record.id,
            &kind,
            limit + 1,
            after,
            q.include_deleted.unwrap_or(false),
        )
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| encode_cursor(r.seq, &r.platform_id)))
        .flatten();
    Ok(Envelope::ok(RecordPage {
        records: rows
            .into_iter()
            .map(|r| SyncedRecord {
                platform_id: r.platform_id,
                kind: r.kind,
                data: r.normalized,
                raw: r.raw,
                updated_at: r.updated_at,
                deleted_at: r.deleted_at,
            })
            .collect(),
        next_cursor,
    }))
}

fn encode_cursor(seq: i64, platform_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{seq}:{platform_id}"))
}

fn decode_cursor(cursor: &str) -> ApiResult<(i64, String)> {
    let bad = || {
        ApiError::new(
            ErrorCode::ValidationError,
            "`cursor` is not one this API gave out; pass `nextCursor` from the previous page unchanged.",
        )
        .detail("field", "cursor")
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (seq, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((seq.parse().map_err(|_| bad())?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(1_234_567, "a:b");
        assert_eq!(decode_cursor(&c).unwrap(), (1_234_567, "a:b".to_owned()));
        assert!(decode_cursor("not base64!").is_err());
        assert!(
            decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:y")).is_err()
        );
    }
}
