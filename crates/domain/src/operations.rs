//! The common write operations of CONTRACT §7, in our terms: what a caller asks every platform
//! to do (a person to upsert, an event to track, a message to send) and what it answers. Each
//! platform session turns these into its own wire format; nothing here knows one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Capability, ErrorCode, Platform};

/// A person to create or update (`POST …/{platform}/subscribers`).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberInput {
    /// The address the platform keys the person by (Keap requires it; Iterable and Customer.io
    /// accept `userId` instead).
    #[serde(default)]
    pub email: Option<String>,
    /// The person's id on the platform (Iterable `userId`, Customer.io `id`, a Keap contact id).
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// E.164 (`+15551234567`) where the platform checks it (Customer.io).
    #[serde(default)]
    pub phone: Option<String>,
    /// More profile fields (Iterable `dataFields`, Customer.io attributes; Keap ignores them).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    /// Tags: stored as a `tags` field (Iterable, Customer.io) or applied as Keap tag ids.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tags: Option<Vec<Value>>,
}

/// An event about a person (`POST …/{platform}/events`).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
    /// RFC 3339; defaults to now.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// The channel of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    InApp,
}

impl Channel {
    /// The capability a message on this channel needs (CONTRACT §9).
    pub fn capability(self) -> Capability {
        match self {
            Self::Email => Capability::Email,
            Self::Sms => Capability::Sms,
            Self::Push => Capability::Push,
            Self::InApp => Capability::InApp,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::InApp => "in_app",
        }
    }
}

/// Who a message goes to.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// One message to send (`POST …/{platform}/messages`).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageInput {
    pub channel: Channel,
    /// The platform's campaign or template the message is sent through (a number or a string).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub campaign_id: Option<Value>,
    pub to: Recipient,
    /// Template data (and, for Keap, `subject`, `html`/`text`, `fromUserId`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
    /// RFC 3339, where the platform can schedule.
    #[serde(default)]
    pub send_at: Option<String>,
}

/// One person upserted.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Upserted {
    pub platform: Platform,
    /// The id the platform keys the person by, when it told us.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `upserted`.
    pub status: &'static str,
}

/// One event accepted.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub platform: Platform,
    /// Always `accepted`.
    pub status: &'static str,
    /// The event id we gave the platform, where it takes one (retries update, never duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One message queued.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub platform: Platform,
    pub channel: Channel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Always `queued`.
    pub status: &'static str,
}

/// One item of a batch that was not accepted, at its position in the caller's list.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ItemFailure {
    pub index: usize,
    pub code: ErrorCode,
    pub error: String,
}

/// What a batch did.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct BatchOutcome {
    pub accepted: usize,
    pub failed: Vec<ItemFailure>,
}

/// A test of an integration's stored credentials: the platform's cheapest authenticated call.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tested {
    pub platform: Platform,
    /// Always `true` (a refusal is an error: `INVALID_CREDENTIALS`, …).
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<crate::Region>,
    /// What the platform told us of the account, in its own terms (as test-connection shows).
    #[schema(value_type = Object)]
    pub account: serde_json::Value,
    /// Time the platform took to answer.
    pub latency_ms: u64,
}

impl Tested {
    pub fn new(
        platform: Platform,
        region: Option<crate::Region>,
        account: serde_json::Value,
        latency: std::time::Duration,
    ) -> Tested {
        Tested {
            platform,
            ok: true,
            region,
            account,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        }
    }
}
