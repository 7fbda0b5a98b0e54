//! Iterable's rules for the common writes (CONTRACT §7): what an input must hold before it goes
//! out, and how Iterable's per-item failures map back to the caller's positions. The wire JSON
//! is the connector's (`connectors::iterable::{UserUpdate, Event, Target}`).

use connectors::iterable::{BulkOutcome as WireOutcome, Event, Recipient, Target, UserUpdate};
use domain::{
    Platform,
    operations::{BatchOutcome, EventInput, ItemFailure, MessageInput, SubscriberInput, Upserted},
};
use serde_json::Value;

use crate::error::{Error, Result};

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || !c.is_ascii())
}

/// A trimmed, non-empty value.
fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// Our subscriber as an Iterable user, and the id Iterable keys it by (the email, else the
/// userId). `prefix` goes before field names (`subscribers[3].` in a batch).
pub fn user(s: SubscriberInput, prefix: &str) -> Result<(UserUpdate, String)> {
    let email = present(s.email.as_deref());
    let user_id = present(s.user_id.as_deref());
    if let Some(e) = email
        && !is_email(e)
    {
        return Err(Error::invalid(
            format!("{prefix}email"),
            format!("'{e}' is not an email address."),
        ));
    }
    let id = email.or(user_id).ok_or_else(|| {
        Error::invalid(
            format!("{prefix}email"),
            "Give the person's email (or userId, for a userId-based Iterable project).",
        )
    })?;
    // Iterable has no tags of its own: they are a profile field of strings.
    let tags = s
        .tags
        .map(|tags| {
            tags.into_iter()
                .map(|t| match t {
                    Value::String(t) => Ok(t),
                    other => Err(Error::invalid(
                        format!("{prefix}tags"),
                        format!("Iterable stores tags as strings: give \"tags\" as a list of strings, not {other}."),
                    )),
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let update = UserUpdate {
        email: email.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        first_name: s.first_name,
        last_name: s.last_name,
        phone: s.phone,
        attributes: s.attributes.unwrap_or_default(),
        tags,
    };
    Ok((update, id.to_owned()))
}

/// Our event as Iterable's, with a fresh id so that retries update it rather than duplicate it.
pub fn event(e: EventInput, prefix: &str) -> Result<Event> {
    let name = present(e.name.as_deref())
        .ok_or_else(|| Error::invalid(format!("{prefix}name"), "Give the event's name."))?;
    let email = present(e.email.as_deref());
    let user_id = present(e.user_id.as_deref());
    if email.is_none() && user_id.is_none() {
        return Err(Error::invalid(
            format!("{prefix}email"),
            "Give the email (or userId) of the person the event is about.",
        ));
    }
    if let Some(v) = email
        && !is_email(v)
    {
        return Err(Error::invalid(
            format!("{prefix}email"),
            format!("'{v}' is not an email address."),
        ));
    }
    let created_at = match e.timestamp.as_deref() {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| {
                Error::invalid(
                    format!("{prefix}timestamp"),
                    format!("timestamp must be RFC 3339 (2024-05-01T12:00:00Z), not '{t}'."),
                )
            })?
            .with_timezone(&chrono::Utc),
    };
    Ok(Event {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: name.to_owned(),
        email: email.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        created_at,
        data: e.data.unwrap_or_default(),
    })
}

/// Our message as a send through a triggered campaign (Iterable sends nothing else per user).
/// The campaign's template decides the content and, for email, the sender; Iterable's target
/// API takes no sender fields, so the integration's `fromEmail`/`replyTo` are not sent.
pub fn target(m: MessageInput) -> Result<Target> {
    let campaign_id = match &m.campaign_id {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        Error::invalid(
            "campaignId",
            "Iterable sends one message through a triggered campaign: give campaignId, the numeric id of a running triggered campaign of this channel.",
        )
    })?;
    let recipient = match (
        present(m.to.email.as_deref()),
        present(m.to.user_id.as_deref()),
    ) {
        (Some(e), _) if !is_email(e) => {
            return Err(Error::invalid(
                "to.email",
                format!("'{e}' is not an email address."),
            ));
        }
        (Some(e), _) => Recipient::Email(e.to_owned()),
        (None, Some(u)) => Recipient::UserId(u.to_owned()),
        (None, None) => {
            return Err(Error::invalid(
                "to.email",
                "Iterable sends to a user: give to.email (or to.userId); a phone number alone is not enough.",
            ));
        }
    };
    let send_at = m
        .send_at
        .as_deref()
        .map(|at| {
            chrono::DateTime::parse_from_rfc3339(at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    Error::invalid(
                        "sendAt",
                        format!("sendAt must be RFC 3339 (2024-05-01T12:00:00Z), not '{at}'."),
                    )
                })
        })
        .transpose()?;
    Ok(Target {
        medium: m.channel.into(),
        campaign_id,
        recipient,
        data: m.data,
        send_at,
    })
}

/// What is left of a batch after each item is checked: the wire items with the caller's
/// positions, and the items refused before any call.
pub struct Checked<T> {
    pub valid: Vec<T>,
    pub positions: Vec<usize>,
    pub failed: Vec<ItemFailure>,
}

/// Checks each item of a batch (field names prefixed `{field}[i].`).
pub fn check<I, T>(
    field: &str,
    items: Vec<(usize, I)>,
    convert: impl Fn(I, &str) -> Result<T>,
) -> Checked<T> {
    let mut out = Checked {
        valid: Vec::with_capacity(items.len()),
        positions: Vec::with_capacity(items.len()),
        failed: Vec::new(),
    };
    for (index, item) in items {
        match convert(item, &format!("{field}[{index}].")) {
            Ok(t) => {
                out.valid.push(t);
                out.positions.push(index);
            }
            Err(e) => out.failed.push(ItemFailure {
                index,
                code: e.code(),
                error: e.public_message().into_owned(),
            }),
        }
    }
    out
}

/// Iterable's answer to a batch, at the caller's positions, with the items refused before it.
pub fn outcome(
    wire: WireOutcome,
    positions: &[usize],
    mut failed: Vec<ItemFailure>,
) -> BatchOutcome {
    failed.extend(wire.failed.into_iter().map(|f| ItemFailure {
        index: positions.get(f.index).copied().unwrap_or(f.index),
        code: connectors::ConnectorError::new(Platform::Iterable, f.kind, "").code(),
        error: f.reason,
    }));
    failed.sort_by_key(|f| f.index);
    BatchOutcome {
        accepted: wire.accepted,
        failed,
    }
}

/// One person upserted, keyed by `id`.
pub fn upserted(id: String) -> Upserted {
    Upserted {
        platform: Platform::Iterable,
        id: Some(id),
        status: "upserted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors::{ErrorKind, iterable::ItemFailure as WireFailure};
    use domain::ErrorCode;
    use domain::operations::{Channel, Recipient as To};
    use serde_json::json;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "news+x@mail.example.com", "ü@bücher.de"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a b@c.co", "a@.co", "a@b.co.", "a@b..co", "a@b@c.co",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    fn field(e: &Error) -> Option<&str> {
        match e {
            Error::Coded { details, .. } => details.get("field").and_then(Value::as_str),
            _ => None,
        }
    }

    #[test]
    fn a_user_is_keyed_by_email_then_user_id_and_keeps_string_tags() {
        // Arrange
        let input = SubscriberInput {
            email: Some("  a@x.io ".into()),
            user_id: Some("u-1".into()),
            tags: Some(vec![json!("vip")]),
            ..SubscriberInput::default()
        };
        // Act
        let (update, id) = user(input, "").unwrap();
        // Assert
        assert_eq!(id, "a@x.io");
        assert_eq!(update.email.as_deref(), Some("a@x.io"));
        assert_eq!(update.tags, Some(vec!["vip".to_owned()]));

        let (_, id) = user(
            SubscriberInput {
                user_id: Some("u-2".into()),
                ..SubscriberInput::default()
            },
            "",
        )
        .unwrap();
        assert_eq!(id, "u-2");

        for (input, want) in [
            (SubscriberInput::default(), "subscribers[4].email"),
            (
                SubscriberInput {
                    email: Some("nope".into()),
                    ..SubscriberInput::default()
                },
                "subscribers[4].email",
            ),
            (
                SubscriberInput {
                    email: Some("a@x.io".into()),
                    tags: Some(vec![json!(1)]),
                    ..SubscriberInput::default()
                },
                "subscribers[4].tags",
            ),
        ] {
            let e = user(input, "subscribers[4].").unwrap_err();
            assert_eq!(e.code(), ErrorCode::ValidationError);
            assert_eq!(field(&e), Some(want));
        }
    }

    #[test]
    fn events_get_fresh_ids_and_checked_fields() {
        let ok = EventInput {
            name: Some("open".into()),
            user_id: Some("u-1".into()),
            timestamp: Some("2024-05-01T14:00:00+02:00".into()),
            ..EventInput::default()
        };
        let a = event(ok.clone(), "").unwrap();
        let b = event(ok, "").unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.created_at.timestamp(), 1_714_564_800);

        for (input, want) in [
            (EventInput::default(), "name"),
            (
                EventInput {
                    name: Some("x".into()),
                    ..EventInput::default()
                },
                "email",
            ),
            (
                EventInput {
                    name: Some("x".into()),
                    email: Some("a@x.io".into()),
                    timestamp: Some("yesterday".into()),
                    ..EventInput::default()
                },
                "timestamp",
            ),
        ] {
            assert_eq!(field(&event(input, "").unwrap_err()), Some(want));
        }
    }

    #[test]
    fn a_message_needs_a_numeric_campaign_and_a_user() {
        let m = |campaign: Value, to: To, send_at: Option<&str>| MessageInput {
            channel: Channel::Sms,
            campaign_id: Some(campaign),
            to,
            data: None,
            send_at: send_at.map(str::to_owned),
        };
        let email = || To {
            email: Some("r@x.io".into()),
            ..To::default()
        };
        let t = target(m(json!(" 42 "), email(), Some("2024-05-01T12:00:00Z"))).unwrap();
        assert_eq!(t.campaign_id, 42);
        assert_eq!(t.recipient, Recipient::Email("r@x.io".into()));
        assert_eq!(t.send_at.unwrap().timestamp(), 1_714_564_800);

        for (input, want) in [
            (m(json!("abc"), email(), None), "campaignId"),
            (
                m(
                    json!(1),
                    To {
                        phone: Some("+15550100".into()),
                        ..To::default()
                    },
                    None,
                ),
                "to.email",
            ),
            (m(json!(1), email(), Some("soon")), "sendAt"),
        ] {
            assert_eq!(field(&target(input).unwrap_err()), Some(want));
        }
    }

    #[test]
    fn batch_failures_come_back_at_the_callers_positions() {
        // Arrange: items 0 and 2 pass, 1 is refused here; Iterable refuses its second (ours 2).
        let items = vec![
            (0, json!("a@x.io")),
            (1, json!("nope")),
            (2, json!("b@x.io")),
        ];
        let checked = check("subscribers", items, |v: Value, prefix| {
            let input = SubscriberInput {
                email: v.as_str().map(str::to_owned),
                ..SubscriberInput::default()
            };
            user(input, prefix).map(|(u, _)| u)
        });
        assert_eq!(checked.positions, vec![0, 2]);
        let wire = WireOutcome {
            accepted: 1,
            failed: vec![WireFailure {
                index: 1,
                kind: ErrorKind::NotFound,
                reason: "Iterable has no such user (b@x.io).".into(),
            }],
        };
        // Act
        let out = outcome(wire, &checked.positions, checked.failed);
        // Assert
        assert_eq!(out.accepted, 1);
        let got: Vec<_> = out.failed.iter().map(|f| (f.index, f.code)).collect();
        assert_eq!(
            got,
            vec![(1, ErrorCode::ValidationError), (2, ErrorCode::NotFound)]
        );
    }
}
