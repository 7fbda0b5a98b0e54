//! The capability matrix of CONTRACT §9: what each platform can do. `GET /api/platforms` serves
//! it, integrations list their capabilities from it, and an operation whose capability is "no"
//! answers `UNSUPPORTED_OPERATION` before any upstream call.

use serde::Serialize;

use crate::Platform;

/// One row of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Send email messages.
    Email,
    /// Send SMS messages.
    Sms,
    /// Send push notifications.
    Push,
    /// Send in-app messages.
    InApp,
    /// List and sync campaigns.
    Campaigns,
    /// Read and sync contacts / people.
    Contacts,
    /// Segments, lists or tags.
    Segments,
    /// Message templates.
    Templates,
    /// Create or update a subscriber.
    SubscribersUpsert,
    /// Track events.
    EventsTrack,
    /// Receive the platform's webhooks.
    Webhooks,
    /// Sales pipeline, orders and custom fields.
    Crm,
    /// Opt one address out of marketing email (the consent ledger's propagation, issue 17).
    Unsubscribe,
    /// Erase one reader (the consent ledger's erasure, issue 17).
    Erasure,
}

impl Capability {
    pub const ALL: [Capability; 14] = [
        Capability::Email,
        Capability::Sms,
        Capability::Push,
        Capability::InApp,
        Capability::Campaigns,
        Capability::Contacts,
        Capability::Segments,
        Capability::Templates,
        Capability::SubscribersUpsert,
        Capability::EventsTrack,
        Capability::Webhooks,
        Capability::Crm,
        Capability::Unsubscribe,
        Capability::Erasure,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Capability::Email => "email",
            Capability::Sms => "sms",
            Capability::Push => "push",
            Capability::InApp => "in_app",
            Capability::Campaigns => "campaigns",
            Capability::Contacts => "contacts",
            Capability::Segments => "segments",
            Capability::Templates => "templates",
            Capability::SubscribersUpsert => "subscribers_upsert",
            Capability::EventsTrack => "events_track",
            Capability::Webhooks => "webhooks",
            Capability::Crm => "crm",
            Capability::Unsubscribe => "unsubscribe",
            Capability::Erasure => "erasure",
        }
    }
}

/// Whether a platform supports a capability, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Support {
    pub supported: bool,
    /// What the platform calls it or how we do it ("lists", "Track identify", …).
    pub note: Option<&'static str>,
}

const fn yes(note: &'static str) -> Support {
    Support {
        supported: true,
        note: Some(note),
    }
}

const NO: Support = Support {
    supported: false,
    note: None,
};

impl Platform {
    /// The matrix cell for this platform and capability.
    pub const fn support(self, capability: Capability) -> Support {
        use Capability as C;
        use Platform as P;
        match (self, capability) {
            (P::Iterable, C::Email) => yes("email target"),
            (P::Iterable, C::Sms) => yes("SMS target"),
            (P::Iterable, C::Push) => yes("push target"),
            (P::Iterable, C::InApp) => yes("in-app target"),
            (P::Iterable, C::Campaigns) => yes("campaigns"),
            (P::Iterable, C::Contacts) => yes("users export"),
            (P::Iterable, C::Segments) => yes("lists"),
            (P::Iterable, C::Templates) => yes("templates"),
            (P::Iterable, C::SubscribersUpsert) => yes("users/update"),
            (P::Iterable, C::EventsTrack) => yes("events/track"),
            (P::Iterable, C::Webhooks) => yes("system webhooks"),
            (P::Iterable, C::Crm) => NO,
            (P::Iterable, C::Unsubscribe) => yes(
                "Subscriptions API DELETE per marketing email channel; merged updateSubscriptions where that API is off",
            ),
            (P::Iterable, C::Erasure) => yes("users/forget (1,000 a day per project)"),

            (P::Customerio, C::Email) => yes("transactional, broadcasts"),
            (P::Customerio, C::Sms) => yes("transactional SMS"),
            (P::Customerio, C::Push) => yes("transactional push"),
            (P::Customerio, C::InApp) => yes("transactional in-app"),
            (P::Customerio, C::Campaigns) => yes("campaigns, broadcasts, newsletters"),
            (P::Customerio, C::Contacts) => yes("people search"),
            (P::Customerio, C::Segments) => yes("segments"),
            (P::Customerio, C::Templates) => NO,
            (P::Customerio, C::SubscribersUpsert) => yes("Track identify"),
            (P::Customerio, C::EventsTrack) => yes("Track and Data Pipelines"),
            (P::Customerio, C::Webhooks) => yes("reporting webhooks, signed"),
            (P::Customerio, C::Crm) => NO,
            (P::Customerio, C::Unsubscribe) => yes("Track identify unsubscribed, _update"),
            (P::Customerio, C::Erasure) => yes("suppress: deletes the person, blocks re-adding"),

            (P::Keap, C::Email) => yes("email only"),
            (P::Keap, C::Sms | C::Push | C::InApp) => NO,
            (P::Keap, C::Campaigns) => yes("campaigns"),
            (P::Keap, C::Contacts) => yes("CRM contacts"),
            (P::Keap, C::Segments) => yes("tags"),
            (P::Keap, C::Templates) => NO,
            (P::Keap, C::SubscribersUpsert) => yes("contacts upsert"),
            (P::Keap, C::EventsTrack) => NO,
            (P::Keap, C::Webhooks) => yes("REST hooks"),
            (P::Keap, C::Crm) => yes("opportunities, orders, custom fields"),
            (P::Keap, C::Unsubscribe) => yes("address opt-out (emailAddresses status)"),
            (P::Keap, C::Erasure) => yes("deletes every contact holding the address"),
        }
    }

    /// The capabilities this platform supports, in matrix order.
    pub fn capabilities(self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.support(*c).supported)
            .collect()
    }

    /// How a publisher authenticates to the platform (the matrix's `auth` row).
    pub const fn auth_description(self) -> &'static str {
        match self {
            Platform::Iterable => "API key + region",
            Platform::Customerio => "Track pair + App key + region",
            Platform::Keap => "OAuth 2.0 with refresh, or PAT/SAK",
        }
    }

    /// The sync kinds of CONTRACT §6, in the order a full sync runs them.
    pub const fn sync_kinds(self) -> &'static [&'static str] {
        match self {
            Platform::Iterable => &["campaigns", "lists", "templates", "users", "events"],
            Platform::Customerio => &[
                "campaigns",
                "segments",
                "broadcasts",
                "newsletters",
                "segment_members",
            ],
            Platform::Keap => &["contacts", "tags", "campaigns", "opportunities", "orders"],
        }
    }

    /// Opt-in sync kinds beyond CONTRACT §6: they run only when asked for in `kinds` (or, for
    /// `metrics`, when the integration's `config.metricsHistory` is true and the scheduler adds
    /// it), never in a sync without `kinds`.
    pub const fn optional_sync_kinds(self) -> &'static [&'static str] {
        match self {
            Platform::Iterable | Platform::Customerio => &["metrics"],
            Platform::Keap => &[],
        }
    }
}

/// Whether a sync kind keeps history: its records are never marked deleted for being absent
/// from a complete listing (daily `metrics` must outlive the platform's retention).
pub fn sync_kind_keeps_history(kind: &str) -> bool {
    kind == "metrics"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_matches_contract_section_9() {
        // The "no" cells of the contract's table, and nothing else.
        let no = [
            (Platform::Iterable, Capability::Crm),
            (Platform::Customerio, Capability::Templates),
            (Platform::Customerio, Capability::Crm),
            (Platform::Keap, Capability::Sms),
            (Platform::Keap, Capability::Push),
            (Platform::Keap, Capability::InApp),
            (Platform::Keap, Capability::Templates),
            (Platform::Keap, Capability::EventsTrack),
        ];
        for p in Platform::ALL {
            for c in Capability::ALL {
                let expected = !no.contains(&(p, c));
                assert_eq!(p.support(c).supported, expected, "{p} {c:?}");
            }
        }
    }
}
