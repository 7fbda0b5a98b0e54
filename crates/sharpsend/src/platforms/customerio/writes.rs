//! Customer.io's rules for the common writes (CONTRACT §7): who a person or event is keyed by,
//! email and E.164 checks, Customer.io's size limits (checked before any call, so the caller gets
//! a validation error naming the field rather than a platform rejection), the 90-day schedule
//! limit, batch sizes and the per-item failures of a batch. The wire JSON is built by
//! `connectors::customerio`.

use chrono::{DateTime, Utc};
use connectors::customerio::{
    BroadcastAudience, LimitError, PersonId, PersonUpsert, Profile, TrackEvent, Transactional,
    check_event, check_person,
};
use domain::{
    ErrorCode,
    operations::{Channel, EventInput, ItemFailure, MessageInput, SubscriberInput},
};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Most people in one `subscribers` call.
pub const MAX_SUBSCRIBERS: usize = 1000;
/// Most events in one `events` call (each is its own Track or Data Pipelines request).
pub const MAX_EVENTS: usize = 100;
/// How far ahead Customer.io schedules a transactional message.
const MAX_SCHEDULE_DAYS: i64 = 90;

/// A value trimmed, or `None` when blank.
pub fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Our name for a field a Customer.io limit names (`id` is the caller's `userId`).
fn ours(e: LimitError) -> (String, String) {
    let field = match e.field.as_str() {
        "id" => "userId".to_owned(),
        other => other.to_owned(),
    };
    (field, e.message)
}

/// The person to send, or the field (relative to the item) and sentence of what is wrong.
pub fn person(input: SubscriberInput) -> Result<PersonUpsert, (String, String)> {
    let email = non_empty(input.email);
    let user_id = non_empty(input.user_id);
    let phone = non_empty(input.phone);
    if let Some(e) = &email
        && (!e.contains('@') || e.starts_with('@') || e.ends_with('@'))
    {
        return Err(("email".into(), format!("`{e}` is not an email address.")));
    }
    let identifier = match (&user_id, &email, &phone) {
        (Some(id), _, _) => PersonId::Id(id.clone()),
        (None, Some(e), _) => PersonId::Email(e.clone()),
        (None, None, Some(p)) => PersonId::Phone(p.clone()),
        (None, None, None) => {
            return Err((
                "email".into(),
                "Give the person's email (or userId, or an E.164 phone).".into(),
            ));
        }
    };
    let tags = match input.tags {
        None => None,
        Some(tags) => Some(
            tags.into_iter()
                .enumerate()
                .map(|(i, t)| match t {
                    Value::String(s) => Ok(s),
                    _ => Err((
                        format!("tags[{i}]"),
                        "Customer.io tags are strings (stored as the `tags` attribute).".into(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let p = PersonUpsert::new(
        identifier,
        Profile {
            email,
            first_name: non_empty(input.first_name),
            last_name: non_empty(input.last_name),
            phone,
            tags,
            attributes: input.attributes.unwrap_or_default(),
        },
    );
    check_person(&p).map_err(ours)?;
    Ok(p)
}

/// A batch's size, checked whole: the parsed items' highest position tells how many the caller
/// sent (items that did not parse are not passed on, so a list whose tail did not parse can
/// exceed the limit unseen; it is still bounded by the body size).
pub fn check_batch_size<T>(
    field: &str,
    items: &[(usize, T)],
    max: usize,
    what: &str,
) -> Result<()> {
    let sent = items
        .iter()
        .map(|(i, _)| i + 1)
        .max()
        .unwrap_or(0)
        .max(items.len());
    if sent == 0 || sent > max {
        return Err(Error::invalid(
            field.to_owned(),
            format!("`{field}` must hold 1–{max} {what}."),
        ));
    }
    Ok(())
}

/// A per-item validation failure, its field prefixed with the item's position.
pub fn item_failure(list: &str, index: usize, (field, message): (String, String)) -> ItemFailure {
    ItemFailure {
        index,
        code: ErrorCode::ValidationError,
        error: format!("{list}[{index}].{field}: {message}"),
    }
}

/// An RFC 3339 time, or a validation error on `field`.
fn time(field: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, (String, String)> {
    match non_empty(value) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(&v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                (
                    field.to_owned(),
                    format!("`{v}` is not an RFC 3339 time (2026-01-02T03:04:05Z)."),
                )
            }),
    }
}

/// The event to track, checked against Customer.io's limits.
pub fn event(input: EventInput) -> Result<TrackEvent, (String, String)> {
    let Some(name) = input.name else {
        return Err(("name".into(), "Give the event's name (1–100 bytes).".into()));
    };
    let person = match (non_empty(input.user_id), non_empty(input.email)) {
        (Some(id), _) => Some(PersonId::Id(id)),
        (None, Some(e)) => Some(PersonId::Email(e)),
        (None, None) => None,
    };
    let event = TrackEvent {
        name,
        person,
        data: input.data.unwrap_or_default(),
        timestamp: time("timestamp", input.timestamp)?,
    };
    check_event(&event).map_err(ours)?;
    Ok(event)
}

/// What `messages` sends: a transactional message, or (email with `data.broadcastId`) an
/// API-triggered broadcast for one person.
pub enum Send {
    Transactional(Transactional),
    Broadcast {
        id: String,
        audience: BroadcastAudience,
        data: Map<String, Value>,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field.to_owned(), message.into())
}

/// The message to send, checked: the transactional message id, the person, the channel's
/// address (email, or an E.164 number for SMS) and the 90-day schedule limit.
pub fn message(input: MessageInput) -> Result<Send> {
    if let Some(broadcast) = input.data.as_ref().and_then(|d| d.get("broadcastId")) {
        let broadcast = broadcast.clone();
        return trigger(broadcast, input);
    }
    let message_id = match input.campaign_id {
        Some(Value::String(s)) => non_empty(Some(s)),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Null) | None => None,
        Some(_) => {
            return Err(invalid(
                "campaignId",
                "campaignId is the id (a number or a string) or trigger name of a Customer.io transactional message.",
            ));
        }
    };
    let Some(message_id) = message_id else {
        return Err(invalid(
            "campaignId",
            "Give campaignId: the id or trigger name of a Customer.io transactional message.",
        ));
    };
    let email = non_empty(input.to.email);
    let person = match (non_empty(input.to.user_id), &email) {
        (Some(id), _) => PersonId::Id(id),
        (None, Some(e)) => PersonId::Email(e.clone()),
        (None, None) => {
            return Err(invalid(
                "to.userId",
                "Give to.userId or to.email: the person the message is for.",
            ));
        }
    };
    let to = match input.channel {
        Channel::Email => {
            Some(email.ok_or_else(|| invalid("to.email", "An email message needs to.email."))?)
        }
        Channel::Sms => {
            let phone = non_empty(input.to.phone).ok_or_else(|| {
                invalid("to.phone", "An SMS needs to.phone (E.164, +15551234567).")
            })?;
            let digits = phone.strip_prefix('+').unwrap_or("");
            if digits.is_empty() || digits.len() > 15 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                return Err(invalid(
                    "to.phone",
                    format!("`{phone}` is not an E.164 number (+ then up to 15 digits)."),
                ));
            }
            Some(phone)
        }
        Channel::Push | Channel::InApp => None,
    };
    let send_at = time("sendAt", input.send_at).map_err(|(f, m)| invalid(&f, m))?;
    if let Some(at) = send_at
        && at > Utc::now() + chrono::Duration::days(MAX_SCHEDULE_DAYS)
    {
        return Err(invalid(
            "sendAt",
            "Customer.io schedules at most 90 days ahead.",
        ));
    }
    Ok(Send::Transactional(Transactional {
        channel: input.channel,
        message_id,
        person,
        to,
        data: input.data.unwrap_or_default(),
        send_at,
    }))
}

/// `messages` with `data.broadcastId`: an API-triggered broadcast for one person.
fn trigger(broadcast: Value, input: MessageInput) -> Result<Send> {
    if input.channel != Channel::Email {
        return Err(invalid(
            "channel",
            "Broadcast triggers (data.broadcastId) are sent with channel \"email\"; the broadcast's own actions decide what goes out.",
        ));
    }
    let id = match &broadcast {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.clone(),
        _ => {
            return Err(invalid(
                "data.broadcastId",
                "data.broadcastId is the numeric id of an API-triggered broadcast (GET …/customerio/campaigns lists them as triggered_broadcast).",
            ));
        }
    };
    if input.campaign_id.is_some() {
        return Err(invalid(
            "campaignId",
            "Give either campaignId (a transactional message) or data.broadcastId (a broadcast), not both.",
        ));
    }
    if input.send_at.is_some() {
        return Err(invalid(
            "sendAt",
            "Broadcast triggers are sent at once; sendAt applies to transactional messages.",
        ));
    }
    let audience = match (non_empty(input.to.user_id), non_empty(input.to.email)) {
        (Some(id), _) => BroadcastAudience::Ids(vec![id]),
        (None, Some(e)) => BroadcastAudience::Emails(vec![e]),
        (None, None) => {
            return Err(invalid(
                "to.userId",
                "Give to.userId or to.email: the person the broadcast is triggered for.",
            ));
        }
    };
    let mut data = input.data.unwrap_or_default();
    data.remove("broadcastId");
    Ok(Send::Broadcast { id, audience, data })
}

#[cfg(test)]
mod tests {
    use domain::operations::Recipient;
    use serde_json::json;

    use super::*;

    fn msg(channel: Channel, campaign: Value, to: Recipient) -> MessageInput {
        MessageInput {
            channel,
            campaign_id: Some(campaign),
            to,
            data: None,
            send_at: None,
        }
    }

    fn field(e: Error) -> Value {
        match e {
            Error::Coded { details, .. } => details["field"].clone(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_person_is_keyed_by_user_id_then_email_then_phone() {
        let p = person(SubscriberInput {
            email: Some(" a@example.com ".into()),
            user_id: Some("7".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.identifier, PersonId::Id("7".into()));
        assert_eq!(p.attributes["email"], "a@example.com");
        let p = person(SubscriberInput {
            phone: Some("+15551234567".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.identifier, PersonId::Phone("+15551234567".into()));
        let (f, _) = person(SubscriberInput {
            email: Some("a@example.com".into()),
            tags: Some(vec![json!("ok"), json!(3)]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(f, "tags[1]");
        let (f, _) = person(SubscriberInput {
            user_id: Some("x".repeat(151)),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(f, "userId");
    }

    #[test]
    fn messages_keep_customerio_rules() {
        let to = Recipient {
            email: Some("r@example.com".into()),
            ..Default::default()
        };
        // A numeric campaignId is the transactional message's id.
        let Send::Transactional(t) = message(msg(Channel::Email, json!(12), to.clone())).unwrap()
        else {
            panic!("a transactional message");
        };
        assert_eq!(t.message_id, "12");
        assert_eq!(t.to.as_deref(), Some("r@example.com"));
        // At most 90 days ahead.
        let mut m = msg(Channel::Email, json!("1"), to.clone());
        m.send_at = Some((Utc::now() + chrono::Duration::days(91)).to_rfc3339());
        assert_eq!(field(message(m).err().unwrap()), "sendAt");
        let mut m = msg(Channel::Email, json!("1"), to.clone());
        m.send_at = Some("tomorrow".into());
        assert_eq!(field(message(m).err().unwrap()), "sendAt");
        let mut m = msg(Channel::Email, json!("1"), to);
        m.send_at = Some((Utc::now() + chrono::Duration::days(89)).to_rfc3339());
        assert!(message(m).is_ok());
        // SMS needs an E.164 number.
        let sms = Recipient {
            user_id: Some("1".into()),
            phone: Some("+1 555".into()),
            ..Default::default()
        };
        assert_eq!(
            field(message(msg(Channel::Sms, json!("4"), sms)).err().unwrap()),
            "to.phone"
        );
    }

    #[test]
    fn batch_sizes_count_the_callers_positions() {
        let items: Vec<(usize, ())> = vec![(0, ()), (1000, ())];
        assert!(check_batch_size("subscribers", &items, 1000, "people").is_err());
        let items: Vec<(usize, ())> = vec![(0, ()), (999, ())];
        assert!(check_batch_size("subscribers", &items, 1000, "people").is_ok());
        assert!(check_batch_size::<()>("events", &[], 100, "events").is_err());
    }
}
