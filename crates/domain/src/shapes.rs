//! The JSON shapes of CONTRACT §6. Field names are camelCase; times are RFC 3339 UTC; ids that
//! come from a platform are strings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Capability, Platform, Region};

/// Health of a connected integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    /// Credentials work.
    Connected,
    /// The platform refused our refresh; the publisher must reconnect.
    ReauthRequired,
    /// Something else is wrong; `statusReason` says what.
    Error,
}

impl IntegrationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Connected => "connected",
            IntegrationStatus::ReauthRequired => "reauth_required",
            IntegrationStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connected" => Some(Self::Connected),
            "reauth_required" => Some(Self::ReauthRequired),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// A publisher's connection to one platform.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub platform: Platform,
    pub publisher_id: String,
    pub status: IntegrationStatus,
    /// Why the status is not `connected`, in words for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// Non-secret settings given at connect.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Each stored secret by name, masked as `"…abcd"`.
    pub credentials: BTreeMap<String, String>,
    /// When the stored OAuth access token expires (Keap OAuth): a time, not a secret, so shown
    /// in clear. SharpSend refreshes the token before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<DateTime<Utc>>,
    pub capabilities: Vec<Capability>,
    pub connected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_sync: Option<SyncJob>,
    /// Where the platform should send its webhooks for this integration.
    pub webhook_url: String,
    /// Present on a connect answer: whether it replaced an earlier connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<bool>,
    /// Shown once, in the Iterable connect answer that generated it: the secret Iterable's
    /// system webhook must send (Basic auth token, or the `X-SharpSend-Webhook-Secret` header).
    /// Everywhere else it appears only masked, under `credentials.webhookSecret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// State of a sync job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl SyncStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Queued => "queued",
            SyncStatus::Running => "running",
            SyncStatus::Succeeded => "succeeded",
            SyncStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The code and message of the error that failed a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    pub code: String,
    pub error: String,
}

/// One run of a sync.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncJob {
    pub job_id: String,
    pub platform: Platform,
    pub status: SyncStatus,
    pub kinds: Vec<String>,
    pub counts: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The last error; on a `queued` job that already ran, the retryable error it will retry
    /// after (at `nextAttemptAt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Beyond the contract: progress and history of the job.
    pub full: bool,
    pub created_at: DateTime<Utc>,
    /// Runs so far (a retry after a retryable failure or a crashed worker adds one).
    pub attempts: i32,
    /// Pages committed so far, over all kinds and attempts.
    pub pages: i64,
    /// The kind being read now (running jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_kind: Option<String>,
    /// Records marked deleted per kind (only complete listings from the start delete).
    pub deleted: BTreeMap<String, u64>,
    /// When a queued job will next be tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A campaign on any platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    pub platform: Platform,
}

/// A contact or person on any platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub tag_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Keap only: the contact's lead score (Keap's `score_value`), when Keap gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub lead_score: Option<serde_json::Number>,
    pub platform: Platform,
}

/// A platform event received by webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub platform: Platform,
    #[serde(rename = "type")]
    pub kind: String,
    pub platform_event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A segment as the contract shows it (Customer.io segments).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentView {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `dynamic` or `manual`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `finished`, `build`, `events`, …
    pub state: String,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    pub platform: Platform,
}
