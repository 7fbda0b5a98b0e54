//! Every Keap fact the simulator encodes that a test may want to change, in one place.
//!
//! Facts come from shared/platforms/keap.md; those marked "inferred" there (or chosen here because
//! the sources are silent) say so in their comment, so a later finding changes one constant.

use serde::{Deserialize, Serialize};

/// Access-token lifetime. 24 h is documented (C-TOKEN); the exact `expires_in` value is inferred.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 86_400;
/// Refresh-token lifetime: 45 days (C-TOKEN). Each refresh issues a new one (inferred: new TTL).
pub const REFRESH_TOKEN_TTL_SECS: u64 = 45 * 86_400;
/// Authorization-code lifetime. Inferred (not documented); codes are single use.
pub const AUTH_CODE_TTL_SECS: u64 = 600;
/// `token_type` exactly as Keap writes it (lower case, PHP#61).
pub const TOKEN_TYPE: &str = "bearer";
/// The sandbox tenant's app host, as in `x-keap-tenant-id` and the token `scope`.
pub const TENANT_HOST: &str = "ab123.infusionsoft.com";
/// The only scope Keap has.
pub const SCOPE: &str = "full";

/// `scope` of a token response: `full|<tenant host>` (PHP#61).
pub fn token_scope() -> String {
    format!("{SCOPE}|{TENANT_HOST}")
}

// ---- Token endpoint error bodies (§1) ----
/// Reused / expired / unknown refresh token: 400 (PHP#61, #137, #228).
pub const ERR_INVALID_REFRESH: (&str, &str) = ("invalid_grant", "Invalid refresh token");
/// Bad client credentials: 401 (PHP#260, seen on code exchange; inferred for refresh too).
pub const ERR_BAD_CLIENT: (&str, &str) = (
    "invalid_grant",
    "Unable to authenticate username and password",
);
/// JSON (or no) body instead of a form: 400 (C-KEYREFRESH; status inferred).
pub const ERR_NOT_FORM: (&str, &str) =
    ("invalid_request", "response_type or grant_type is required");
/// No client credentials at all. Inferred (RFC 6749 wording; Keap's not observed): 401.
pub const ERR_NO_CLIENT: (&str, &str) = ("invalid_client", "Client authentication is required");
/// Unknown, used or expired authorization code. Inferred wording: 400.
pub const ERR_INVALID_CODE: (&str, &str) = ("invalid_grant", "Invalid authorization code");
/// `redirect_uri` differs from the authorize request's. Inferred wording: 400.
pub const ERR_REDIRECT_MISMATCH: (&str, &str) = ("invalid_grant", "Redirect URI mismatch");
/// A grant type other than the two supported ones. Inferred wording: 400.
pub const ERR_UNSUPPORTED_GRANT: (&str, &str) =
    ("unsupported_grant_type", "Unsupported grant type");

// ---- Gateway 401 faults (§7) ----
/// No, empty or non-Bearer `Authorization` header (W6W, measured).
pub const FAULT_NO_TOKEN: (&str, &str) = ("Invalid access token", "oauth.v2.InvalidAccessToken");
/// Unknown bearer token (W6W, measured). Also used for an unknown `X-Keap-API-Key` (inferred).
pub const FAULT_BAD_TOKEN: (&str, &str) = (
    "Invalid Access Token",
    "keymanagement.service.invalid_access_token",
);
/// Expired access token (PMPRO code; wording inferred from generic Apigee fixtures).
pub const FAULT_EXPIRED: (&str, &str) = (
    "Access Token expired",
    "keymanagement.service.access_token_expired",
);
/// Quota (minute or day) exceeded: 429 (C-APIGEE).
pub const QUOTA_ERRORCODE: &str = "policies.ratelimit.QuotaViolation";
/// Spike arrest: 429 (C-SPIKE; the status is inferred).
pub const SPIKE_ERRORCODE: &str = "policies.ratelimit.SpikeArrestViolation";
/// Keap sends no `Retry-After` on 429 (W6W); flip to send one (seconds) if that turns out wrong.
pub const SEND_RETRY_AFTER: bool = false;

// ---- v1 / v2 list conventions ----
/// v1 default and maximum `limit` (inferred from `previous` URLs defaulting to 1000).
pub const V1_MAX_LIMIT: u64 = 1000;
/// v2 `page_size` maximum (V2SPEC) and the default when absent or 0 (inferred).
pub const V2_MAX_PAGE_SIZE: u64 = 1000;
pub const V2_DEFAULT_PAGE_SIZE: u64 = 1000;
/// The v2 `next_page_token` on the last page (inferred: empty string, not absent).
pub const V2_LAST_PAGE_TOKEN: &str = "";
/// Fields a v2 contact carries when the request names no `fields` (inferred).
pub const V2_DEFAULT_CONTACT_FIELDS: &[&str] = &[
    "id",
    "given_name",
    "family_name",
    "middle_name",
    "email_addresses",
    "phone_numbers",
    "company",
    "create_time",
    "update_time",
];
// ---- Sent-email records (v1 `GET /emails`) ----
/// Seeded records are sent over this many days before the simulator starts.
pub const EMAIL_SEED_DAYS: i64 = 14;
/// A seeded record is opened (if at all) within this many hours of being sent.
pub const EMAIL_OPEN_WITHIN_HOURS: u64 = 72;
/// The first sent-email id (Keap's ids are large integers; the value is arbitrary).
pub const EMAIL_FIRST_ID: u64 = 30_001;
/// `sent_from_address` of every record.
pub const EMAIL_FROM: &str = "news@ab123.example.com";

/// Email status given to a contact opted in through the API with `opt_in_reason` (inferred).
pub const OPTED_IN_STATUS: &str = "UnengagedMarketable";
/// Statuses `opt_in_reason` may move to marketable (V1B/V1CUR description; "Opt-Out: Manual" is
/// `Manual`).
pub const OPT_IN_MOVABLE: &[&str] = &[
    "UnengagedMarketable",
    "UnengagedNonMarketable",
    "NonMarketable",
    "Manual",
];

/// Status an address gets from an API opt-out (`PATCH …/emailAddresses/{email}/status` with
/// `opted_in: false`). Not documented: consent.md §3.2 expects MANUAL or ADMIN; MANUAL ("Opt-Out:
/// Manual") is taken, which the API can opt in again, the less forgiving case for a client.
pub const API_OPT_OUT_STATUS: &str = "Manual";

// ---- REST hooks (§5) ----
/// Delivery attempts before a subscription turns Inactive (HOOKDOC).
pub const HOOK_ATTEMPTS: u32 = 4;
/// Largest batch of object keys in one delivery (HOOKDOC).
pub const HOOK_BATCH_MAX: usize = 1000;
/// Real first delivery delay (30-60 s) and retry waits (30-60 s, 5 min, 30 min), in ms. `start`
/// uses [`crate::Options`] values instead, which default to short ones for demos and tests.
pub const HOOK_REAL_DELAY_MS: u64 = 30_000;
pub const HOOK_REAL_RETRY_MS: [u64; 3] = [30_000, 300_000, 1_800_000];
/// A receiver that takes longer than this fails the attempt (HOOKDOC: 30 s).
pub const HOOK_TIMEOUT_MS: u64 = 30_000;
/// Event keys served by `GET /hooks/event_keys` (EVKEYS list).
pub const EVENT_KEYS: &[&str] = &[
    "appointment.add",
    "appointment.delete",
    "appointment.edit",
    "company.add",
    "company.delete",
    "company.edit",
    "contact.add",
    "contact.delete",
    "contact.edit",
    "contactGroup.add",
    "contactGroup.applied",
    "contactGroup.delete",
    "contactGroup.edit",
    "contactGroup.removed",
    "invoice.add",
    "invoice.delete",
    "invoice.edit",
    "invoice.payment.add",
    "invoice.payment.delete",
    "invoice.payment.edit",
    "leadsource.add",
    "leadsource.delete",
    "leadsource.edit",
    "note.add",
    "note.delete",
    "note.edit",
    "opportunity.add",
    "opportunity.delete",
    "opportunity.edit",
    "opportunity.stage_move",
    "order.add",
    "order.delete",
    "order.edit",
    "product.add",
    "product.delete",
    "product.edit",
    "subscription.add",
    "subscription.delete",
    "subscription.edit",
    "task.add",
    "task.complete",
    "task.delete",
    "task.edit",
    "task.incomplete",
    "user.activate",
    "user.add",
    "user.edit",
];

// ---- Limits (§6) ----
/// The limits of one credential class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassLimits {
    pub spike_per_second: u32,
    pub per_minute: u32,
    pub per_day: u32,
}

/// All limits the gateway enforces. Overridable with `POST /_sim/limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Per OAuth client id, across tenants: 1,500/min, 150,000/day (QUOTA); spike 25/s (QUOTA).
    pub oauth: ClassLimits,
    /// Per PAT or SAK: 10/s, 240/min, 30,000/day (QUOTA, FAQTHR).
    pub key: ClassLimits,
    /// Per tenant, any credential: 10,000/min, 250,000/day (QUOTA, effective 2026-06-08).
    pub tenant_per_minute: u32,
    pub tenant_per_day: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            oauth: ClassLimits {
                spike_per_second: 25,
                per_minute: 1500,
                per_day: 150_000,
            },
            key: ClassLimits {
                spike_per_second: 10,
                per_minute: 240,
                per_day: 30_000,
            },
            tenant_per_minute: 10_000,
            tenant_per_day: 250_000,
        }
    }
}
