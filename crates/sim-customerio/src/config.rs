//! Every number, credential and "inferred" choice of the simulator in one place.
//!
//! Facts come from `shared/platforms/customerio.md` (the fact sheet) and the vendored Customer.io
//! OpenAPI documents. Where the fact sheet marks a value as inferred, the constant says so; change
//! it here and nowhere else.

use std::time::Duration;

use sim_core::Rate;

/// One sandbox workspace: all the keys a Customer.io workspace has, bound to one region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxWorkspace {
    /// `us` or `eu`.
    pub region: &'static str,
    /// What `GET /api/v1/accounts/region` answers as `environment_id`.
    pub environment_id: u64,
    /// Track API Basic-auth user name.
    pub site_id: &'static str,
    /// Track API Basic-auth password ("Tracking API Key").
    pub tracking_key: &'static str,
    /// App API bearer key.
    pub app_api_key: &'static str,
    /// Data Pipelines source key (Basic user name, blank password).
    pub cdp_api_key: &'static str,
    /// Reporting-webhook signing key (HMAC-SHA256).
    pub webhook_signing_key: &'static str,
}

/// The US sandbox workspace.
pub const US: SandboxWorkspace = SandboxWorkspace {
    region: "us",
    environment_id: 120_001,
    site_id: "5f1a9c3e7b2d4a6c8e01",
    tracking_key: "a7d3f9c1e5b2048d6f3a",
    app_api_key: "7c1e9a3f5b2d4e6a8c0f1b3d5e7a9c2e",
    cdp_api_key: "cdpus3b7e1f9a5c2d4e6f8a0b2c4d6e8f",
    webhook_signing_key: "2f8a6c4e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d1f3a5c7e9b0d2f4a",
};

/// The EU sandbox workspace.
pub const EU: SandboxWorkspace = SandboxWorkspace {
    region: "eu",
    environment_id: 220_002,
    site_id: "e4b8d2f6a0c3e5b7d901",
    tracking_key: "0b6e2a8c4f1d3b5e7a9c",
    app_api_key: "3e9c5a1f7d2b8e4a6c0d2f4b6a8e1c3d",
    cdp_api_key: "cdpeu9d3b7f1e5a2c8d4f6b0e2a4c6d8f",
    webhook_signing_key: "9e1c3a5f7b0d2e4c6a8f1b3d5e7c9a0f2d4b6e8a1c3f5d7b9e0a2c4f6d8b1e3a",
};

/// Both sandbox workspaces, US first.
pub const WORKSPACES: [SandboxWorkspace; 2] = [US, EU];

/// The workspace of a region name.
pub fn workspace(region: &str) -> Option<&'static SandboxWorkspace> {
    WORKSPACES.iter().find(|w| w.region == region)
}

// ---------------------------------------------------------------- rate limits

/// App API, most endpoints: 10 requests per second [AS info "Rate Limits"].
pub const APP_RATE: Rate = Rate::per_second(10);
/// API-triggered broadcasts: 1 request per 10 seconds, per broadcast [AS info].
pub const TRIGGER_RATE: Rate = Rate::new(1, Duration::from_secs(10));
/// Track API. The current spec says 1000/s "not strictly enforced"; older docs say 100/s. The
/// brief asks for ~100/s (inferred: enforced as a token bucket).
pub const TRACK_RATE: Rate = Rate::per_second(100);
/// Transactional `/v1/send/*`: current docs "3000 per 3 s, soft", older docs 100/s. Inferred: 100/s.
pub const TRANSACTIONAL_RATE: Rate = Rate::per_second(100);
/// Data Pipelines: 3000 requests per 3 s, soft [PS info].
pub const CDP_RATE: Rate = Rate::new(3000, Duration::from_secs(3));

// ---------------------------------------------------------------- Track limits [TS info]

/// Max bytes of a person id (path identifier or `id` attribute).
pub const MAX_ID_BYTES: usize = 150;
/// Max bytes of an attribute name.
pub const MAX_ATTR_NAME_BYTES: usize = 150;
/// Max bytes of an attribute value (string form).
pub const MAX_ATTR_VALUE_BYTES: usize = 1000;
/// Max attributes in one identify call.
pub const MAX_ATTRIBUTES: usize = 300;
/// Max bytes of an event name.
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// Max bytes of an event's `data` (serialised JSON).
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;
/// `/api/v2/entity` request, and each operation inside `/api/v2/batch`: 32 KB.
pub const MAX_V2_OP_BYTES: usize = 32 * 1024;
/// `/api/v2/batch` request: 500 KB.
pub const MAX_V2_BATCH_BYTES: usize = 500 * 1024;
/// Segment add/remove: at most 1000 ids per request.
pub const MAX_SEGMENT_IDS: usize = 1000;

// ---------------------------------------------------------------- CDP limits [PS info]

/// A Pipelines call is limited to 32 KB (over it: 200 and dropped, or 400 in strict mode).
pub const MAX_CDP_CALL_BYTES: usize = 32 * 1024;
/// A Pipelines batch is limited to 500 KB.
pub const MAX_CDP_BATCH_BYTES: usize = 500 * 1024;

// ---------------------------------------------------------------- App limits

/// `GET /v1/segments/{id}/membership` page size maximum [DOC:membership].
pub const MEMBERSHIP_MAX_LIMIT: u64 = 30_000;
/// Membership default page size (inferred: not documented).
pub const MEMBERSHIP_DEFAULT_LIMIT: u64 = 1000;
/// `GET /v1/newsletters` default and maximum page size (inferred: not documented).
pub const NEWSLETTERS_DEFAULT_LIMIT: u64 = 10;
pub const NEWSLETTERS_MAX_LIMIT: u64 = 100;
/// Trigger: at most 10,000 ids / emails / per_user_data entries [AS tag "Send Messages"].
pub const MAX_TRIGGER_RECIPIENTS: usize = 10_000;
/// Trigger `data`: at most 50,000 bytes.
pub const MAX_TRIGGER_DATA_BYTES: usize = 50_000;
/// Transactional payload: 1 MB (excluding attachments) → 413 `{"meta":{"error"}}`.
pub const MAX_TRANSACTIONAL_BYTES: usize = 1024 * 1024;
/// Transactional attachments: 2 MB in total (decoded).
pub const MAX_ATTACHMENT_BYTES: usize = 2 * 1024 * 1024;
/// Transactional: at most 15 recipients across to/cc/bcc.
pub const MAX_TRANSACTIONAL_RECIPIENTS: usize = 15;
/// Transactional `send_at`: at most 90 days ahead.
pub const MAX_SEND_AT_AHEAD_SECS: i64 = 90 * 24 * 3600;
/// The value of `next` on the last page (inferred: the docs only say "empty").
pub const LAST_PAGE_NEXT: &str = "";

// ---------------------------------------------------------------- inferred behaviour

/// `GET /v1/newsletters` without `sort` lists newest first (inferred).
pub const NEWSLETTERS_DEFAULT_SORT_ASC: bool = false;
/// Status for an unknown `transactional_message_id` on `/v1/send/*` (inferred).
pub const UNKNOWN_TRANSACTIONAL_STATUS: u16 = 404;
/// Status for triggering a draft broadcast (inferred: the JSON:API "bad request").
pub const DRAFT_BROADCAST_STATUS: u16 = 400;
/// Transactional attachment types refused with 403 (inferred list).
pub const FORBIDDEN_ATTACHMENTS: &[&str] = &[".exe", ".bat", ".cmd", ".com", ".js", ".vbs", ".scr"];
/// A Track event for an unknown person creates the person (inferred).
pub const EVENTS_CREATE_PEOPLE: bool = true;
/// `reason` values of Track v2 errors (inferred: the spec names the field, not its values).
pub const REASON_REQUIRED: &str = "required";
pub const REASON_INVALID: &str = "invalid";
pub const REASON_TOO_LARGE: &str = "too_large";
pub const REASON_TOO_LONG: &str = "too_long";

// ---------------------------------------------------------------- bodies

/// Track and CDP 401 body: the spec gives a description only (no schema); inferred empty body.
pub const TRACK_401_BODY: &str = "";
/// App API 401 body on most endpoints: no schema in the spec; inferred empty body.
pub const APP_401_BODY: &str = "";
/// Broadcast-trigger 401 body, as on the "API-triggered broadcast errors" page.
pub const TRIGGER_401_DETAIL: &str = "unauthorized";

/// Content type of every JSON answer, as recorded live.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Track success headers as recorded live (`customerio-node-recorded/*__success.json`).
pub const TRACK_CACHE_CONTROL: &str = "no-cache, no-store, must-revalidate, max-age=0";
/// App API cache header as recorded live (`getCustomersByEmail__not_found.json`).
pub const APP_CACHE_CONTROL: &str = "must-revalidate,no-cache,no-store";
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

// ---------------------------------------------------------------- people and events memory

/// People written through Track/CDP kept in memory per workspace (oldest evicted first).
pub const MAX_STORED_PEOPLE: usize = 100_000;
/// Events kept in memory per workspace (oldest dropped first).
pub const MAX_STORED_EVENTS: usize = 20_000;
/// Transactional sends and broadcast triggers kept per workspace.
pub const MAX_STORED_SENDS: usize = 10_000;
/// Manually added segment members kept per segment.
pub const MAX_SEGMENT_ADDITIONS: usize = 100_000;

// ---------------------------------------------------------------- reporting webhooks [WS info]

/// Per-attempt timeout of a webhook delivery (Customer.io: 4 s).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(4);
/// Default retry schedule after a failed attempt (the real one backs off for up to 7 days;
/// inferred short schedule so tests and demos see retries, configurable by `/_sim/webhooks/config`).
pub const WEBHOOK_RETRY_SCHEDULE_MS: [u64; 3] = [200, 1000, 5000];
/// Deliveries remembered for `/_sim/webhooks/deliveries`.
pub const MAX_WEBHOOK_DELIVERIES: usize = 1000;

/// Unix seconds of "now" for seeded data: records are dated before this.
pub const SEED_EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
