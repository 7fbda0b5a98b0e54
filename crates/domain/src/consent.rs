//! The consent ledger's vocabulary (issue 17): why an address is suppressed, what happened when
//! the suppression was pushed to each platform, and the normal form every ledger key uses.
//! Nothing here knows a platform's wire format; each platform session turns an [`OptOut`] into its
//! own calls.

use serde::{Deserialize, Serialize};

/// Why an address must not be mailed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The reader asked to stop (a platform unsubscribe, a hosted unsubscribe click).
    Unsubscribed,
    /// The reader reported a message as spam.
    Complained,
    /// A hard bounce only: the address does not exist. Soft bounces never suppress.
    Bounced,
    /// Added by a person or a program through the API.
    Manual,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Unsubscribed,
        Reason::Complained,
        Reason::Bounced,
        Reason::Manual,
    ];

    /// The wire name (`"unsubscribed"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsubscribed => "unsubscribed",
            Reason::Complained => "complained",
            Reason::Bounced => "bounced",
            Reason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reasons pushed to the other platforms when a publisher has not chosen.
    pub const DEFAULT_PROPAGATE: [Reason; 2] = [Reason::Unsubscribed, Reason::Complained];
}

/// Where one platform stands with one ledger entry or erasure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropagationStatus {
    /// Waiting for (or between) attempts.
    Pending,
    /// The platform holds it.
    Done,
    /// Gave up after the last retry; `error` says why.
    Failed,
    /// Not attempted; `error` says why (the platform is where it came from, it is not
    /// connected, or the publisher does not propagate this reason).
    Skipped,
}

impl PropagationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationStatus::Pending => "pending",
            PropagationStatus::Done => "done",
            PropagationStatus::Failed => "failed",
            PropagationStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<PropagationStatus> {
        [
            PropagationStatus::Pending,
            PropagationStatus::Done,
            PropagationStatus::Failed,
            PropagationStatus::Skipped,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An opt-out to push into one platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptOut {
    /// Already normalised with [`normalize_email`].
    pub email: String,
    pub reason: Reason,
}

/// What a platform session did with an opt-out or an erasure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The platform now holds it; `detail` names the calls made, for the ledger (never the
    /// address).
    Done { detail: String },
    /// The platform could not act and never will for this address (for example the person is
    /// unknown there); recorded as `done` with this note, not retried.
    NothingToDo { detail: String },
}

/// The ledger's key for an address: trimmed and lowercased, the way Iterable hashes forgotten
/// addresses and Customer.io matches email identifiers. `None` when it is not an address at all
/// (no `@`, whitespace or control characters inside, a `*` that Keap's filter reads as a
/// wildcard, or longer than RFC 5321's 254 characters).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || c == '*';
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || email.len() > 254
        || email.chars().any(bad)
    {
        return None;
    }
    Some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalise_to_one_key() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "a da@example.com",
            "ada*@example.com",
            "a\u{0}@example.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalize_email(&long), None);
    }

    #[test]
    fn reasons_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
        assert_eq!(Reason::parse("soft_bounce"), None);
    }
}
