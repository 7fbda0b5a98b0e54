//! The vocabulary of received events (CONTRACT §6 Event `type`), shared by all three platforms.
//!
//! A type is `{subject}.{action}`: the subject is a message channel (`email`, `sms`, `push`,
//! `in_app`, `web_push`, `whatsapp`, `embedded`, `webhook`, `slack`) or a CRM object (`contact`,
//! `customer`, `opportunity`, `order`, `tag`, …); the action is a past-tense verb from
//! [`ACTIONS`]. Each platform's receiver maps its own names onto these, so a publisher can filter
//! `?type=email.opened` across Iterable, Customer.io and Keap alike. A name a platform adds later
//! that we do not know yet keeps its subject and passes its own verb through in snake case, so it
//! is stored rather than lost.

/// A received event in our terms, as a platform's receiver normalises it, before it gets our
/// id and receipt time.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingEvent {
    /// Our vocabulary: `email.sent`, `email.opened`, `contact.updated`, …
    pub kind: String,
    /// What de-duplicates the platform's redeliveries (its event id, or one derived from the
    /// body where it has none).
    pub platform_event_id: String,
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    /// The campaign (broadcast, newsletter, transactional message) it belongs to.
    pub campaign_id: Option<String>,
    /// The platform's own event data.
    pub data: serde_json::Value,
}

/// Message channels an event may be about.
pub const CHANNELS: &[&str] = &[
    "email", "sms", "push", "in_app", "web_push", "whatsapp", "embedded", "webhook", "slack",
];

/// The actions of the vocabulary (past tense).
pub const ACTIONS: &[&str] = &[
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "unsubscribed",
    "subscribed",
    "converted",
    "complained",
    "failed",
    "dropped",
    "skipped",
    "received",
    "replied",
    "deleted",
    "created",
    "updated",
    "exited",
    "preferences_changed",
    "attempted",
    "drafted",
    "deferred",
    "undeliverable",
    "uninstalled",
    "closed",
    "applied",
    "removed",
    "stage_moved",
];

/// `subject.action`.
pub fn event_type(subject: &str, action: &str) -> String {
    format!("{subject}.{action}")
}

/// Whether `s` looks like an event type (`subject.action`, lowercase letters, digits and `_`):
/// what the events API accepts as its `type` filter.
pub fn is_event_type(s: &str) -> bool {
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match s.split_once('.') {
        Some((a, b)) => ok(a) && ok(b),
        None => false,
    }
}

/// camelCase or PascalCase to snake_case (`stageMove` → `stage_move`).
pub fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' || c == ' ' || c == '.' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_checks() {
        assert_eq!(event_type("email", "opened"), "email.opened");
        assert!(is_event_type("email.opened"));
        assert!(is_event_type("in_app.clicked"));
        assert!(!is_event_type("email"));
        assert!(!is_event_type("Email.Opened"));
        assert!(!is_event_type("email.opened.x"));
        assert_eq!(snake("stageMove"), "stage_move");
        assert_eq!(snake("InApp"), "in_app");
    }
}
