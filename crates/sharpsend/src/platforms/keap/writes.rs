//! Keap's common writes (CONTRACT §7). Keap's rules live here and are checked before any
//! upstream call: a subscriber needs an email and numeric tag ids, a batch holds at most
//! [`MAX_BATCH`] people, an email needs a subject and a body and cannot be scheduled. Every call
//! goes through [`tokens::call`] (a 401 refreshes the token once and retries once); the wire
//! JSON is the connector's (`connectors::keap`).

use connectors::keap::{ContactUpsert, EmailInput};
use domain::{
    ErrorCode, Platform,
    operations::{
        BatchOutcome, Channel, ItemFailure, MessageInput, Queued, SubscriberInput, Upserted,
    },
};
use serde_json::{Map, Value};

use super::{KeapSession, tokens};
use crate::{
    error::{Error, Result},
    state::AppState,
};

/// Largest batch of subscribers in one call (each is at least one Keap request).
pub const MAX_BATCH: usize = 100;

/// Keap's first user (the account owner) sends when `data.fromUserId` is not given (inferred:
/// Infusionsoft numbers the owner 1).
const DEFAULT_SENDER: u64 = 1;

/// Creates or updates one contact, matched by email, with the integration's lead source and the
/// given tags applied.
pub async fn upsert_subscriber(
    state: &AppState,
    session: &mut KeapSession,
    input: SubscriberInput,
) -> Result<Upserted> {
    let contact = contact(input, session.settings.lead_source_id.clone())?;
    let id = upsert(state, session, &contact).await?;
    Ok(Upserted {
        platform: Platform::Keap,
        id: Some(id),
        status: "upserted",
    })
}

/// Upserts a batch one contact at a time (Keap has no bulk upsert). An item Keap refuses, or
/// that breaks a Keap rule, fails at its position; refused credentials stop the batch, since
/// every further item would fail the same.
pub async fn upsert_subscribers(
    state: &AppState,
    session: &mut KeapSession,
    items: Vec<(usize, SubscriberInput)>,
) -> Result<BatchOutcome> {
    // Positions are the caller's, so an item at MAX_BATCH or beyond means a longer list.
    if items.len() > MAX_BATCH || items.iter().any(|(index, _)| *index >= MAX_BATCH) {
        return Err(Error::invalid(
            "subscribers",
            format!("`subscribers` takes 1 to {MAX_BATCH} subscribers."),
        ));
    }
    let lead_source = session.settings.lead_source_id.clone();
    let mut outcome = BatchOutcome::default();
    for (index, item) in items {
        let result = match contact(item, lead_source.clone()) {
            Ok(contact) => upsert(state, session, &contact).await.map(drop),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => outcome.accepted += 1,
            Err(e) if e.code() == ErrorCode::InvalidCredentials => return Err(e),
            Err(e) => outcome.failed.push(ItemFailure {
                index,
                code: e.code(),
                error: e.public_message().into_owned(),
            }),
        }
    }
    Ok(outcome)
}

/// Sends one email to a Keap contact (REST v1 `POST /emails/queue`): `to.userId` is the contact
/// id, or `to.email` is looked up; Keap answers without an id.
pub async fn send_message(
    state: &AppState,
    session: &mut KeapSession,
    input: MessageInput,
) -> Result<Queued> {
    let email = email(input)?;
    let keap = &state.connectors.keap;
    let contact_id = match email.to {
        To::Contact(id) => id,
        To::Address(address) => {
            let found = tokens::call(state, session, |cred| {
                let address = &address;
                async move { keap.contact_id_by_email(&cred, address).await }
            })
            .await?;
            found.ok_or_else(|| {
                Error::not_found(format!(
                    "Keap has no contact with the email {address}; add it first (POST …/keap/subscribers)."
                ))
            })?
        }
    };
    let input = EmailInput {
        recipients: vec![contact_id],
        subject: email.subject,
        html: email.html,
        text: email.text,
        user_id: email.from_user,
    };
    tokens::call(state, session, |cred| {
        let input = &input;
        async move { keap.queue_email(&cred, input).await }
    })
    .await?;
    Ok(Queued {
        platform: Platform::Keap,
        channel: Channel::Email,
        message_id: None,
        status: "queued",
    })
}

async fn upsert(
    state: &AppState,
    session: &mut KeapSession,
    contact: &ContactUpsert,
) -> Result<String> {
    let keap = &state.connectors.keap;
    tokens::call(state, session, |cred| async move {
        keap.upsert_contact(&cred, contact).await
    })
    .await
}

/// A subscriber as a Keap contact upsert: Keap keys contacts by email, so one is required;
/// tags are Keap's numeric tag ids. `userId` and `attributes` are accepted and not used (Keap
/// custom fields are not mapped yet).
pub fn contact(input: SubscriberInput, lead_source: Option<String>) -> Result<ContactUpsert> {
    let Some(email) = input.email else {
        return Err(Error::invalid(
            "email",
            "Invalid request body at `email`: missing field `email`.",
        ));
    };
    let email = email.trim().to_owned();
    if !email.contains('@') || email.len() > 254 {
        return Err(Error::invalid(
            "email",
            format!("`{email}` is not an email address."),
        ));
    }
    let tags = input.tags.unwrap_or_default();
    let mut tag_ids = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let id = match tag {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.clone(),
            _ => {
                return Err(Error::invalid(
                    format!("tags[{i}]"),
                    "Keap tags are given by their numeric tag id (GET /crm/rest/v2/tags lists them).",
                ));
            }
        };
        tag_ids.push(id);
    }
    let clean = |s: Option<String>| s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Ok(ContactUpsert {
        email,
        first_name: clean(input.first_name),
        last_name: clean(input.last_name),
        phone: clean(input.phone),
        lead_source_id: lead_source,
        tag_ids,
    })
}

/// Who an email goes to: a Keap contact id, or an address Keap has a contact for.
#[derive(Debug, PartialEq, Eq)]
pub enum To {
    Contact(String),
    Address(String),
}

/// An email Keap can send, checked.
#[derive(Debug)]
pub struct Email {
    pub to: To,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    /// The Keap user it is sent on behalf of.
    pub from_user: u64,
}

/// Checks a message against Keap's email API: `data.subject`, `data.html` and/or `data.text`,
/// optionally `data.fromUserId`; no `campaignId` (Keap campaigns send their own emails) and no
/// `sendAt` (Keap cannot schedule).
pub fn email(input: MessageInput) -> Result<Email> {
    if input.channel != Channel::Email {
        // The service checks the capability matrix first; this keeps the session honest alone.
        return Err(Error::Unsupported {
            platform: Platform::Keap,
            capability: input.channel.capability(),
        });
    }
    if input.campaign_id.is_some() {
        return Err(Error::invalid(
            "campaignId",
            "Keap's email API sends the given subject and body; it takes no campaignId (Keap campaigns send their own emails).",
        ));
    }
    if input.send_at.is_some() {
        return Err(Error::invalid(
            "sendAt",
            "Keap sends queued emails at once; it cannot schedule them.",
        ));
    }
    let data = input.data.unwrap_or_default();
    let subject = text(&data, "subject")?
        .ok_or_else(|| Error::invalid("data.subject", "An email needs data.subject."))?;
    let html = text(&data, "html")?;
    let plain = text(&data, "text")?;
    if html.is_none() && plain.is_none() {
        return Err(Error::invalid(
            "data.html",
            "An email needs a body: data.html and/or data.text.",
        ));
    }
    let from_user = match data.get("fromUserId") {
        None | Some(Value::Null) => DEFAULT_SENDER,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::invalid(
                    "data.fromUserId",
                    "data.fromUserId is a Keap user id (a positive number).",
                )
            })?,
    };
    let nonempty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let contact = nonempty(input.to.user_id);
    if let Some(id) = &contact
        && !id.chars().all(|c| c.is_ascii_digit())
    {
        return Err(Error::invalid(
            "to.userId",
            "to.userId is a Keap contact id (a number).",
        ));
    }
    let to = match (contact, nonempty(input.to.email)) {
        (Some(id), _) => To::Contact(id),
        (None, Some(address)) => To::Address(address),
        (None, None) => {
            return Err(Error::invalid(
                "to.email",
                "Give to.email or to.userId (a Keap contact id): the contact the email is for.",
            ));
        }
    };
    Ok(Email {
        to,
        subject,
        html,
        text: plain,
        from_user,
    })
}

/// A string of `data`, absent when empty; another type names the field.
fn text(data: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(
            format!("data.{key}"),
            format!("data.{key} must be a string."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The field a validation error names.
    fn field(e: Error) -> String {
        assert_eq!(e.code(), ErrorCode::ValidationError, "{e}");
        let crate::error::Error::Coded { details, .. } = e else {
            unreachable!()
        };
        details["field"].as_str().unwrap().to_owned()
    }

    fn subscriber(v: Value) -> SubscriberInput {
        serde_json::from_value(v).unwrap()
    }

    fn message(v: Value) -> MessageInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_subscriber_becomes_a_contact_with_the_lead_source_and_tag_ids() {
        // Arrange
        let input = subscriber(json!({
            "email": " new.reader@example.com ", "firstName": "New", "lastName": " ",
            "userId": "ignored", "attributes": {"plan": "pro"}, "tags": ["91", 93]
        }));
        // Act
        let c = contact(input, Some("1".into())).unwrap();
        // Assert
        assert_eq!(c.email, "new.reader@example.com");
        assert_eq!(c.first_name.as_deref(), Some("New"));
        assert_eq!(c.last_name, None);
        assert_eq!(c.lead_source_id.as_deref(), Some("1"));
        assert_eq!(c.tag_ids, ["91", "93"]);
    }

    #[test]
    fn a_subscriber_breaking_keaps_rules_names_the_field() {
        for (body, expected) in [
            (json!({"firstName": "x"}), "email"),
            (json!({"email": "nope"}), "email"),
            (json!({"email": "a@b.c", "tags": ["vip"]}), "tags[0]"),
            (json!({"email": "a@b.c", "tags": [91, -1]}), "tags[1]"),
        ] {
            let e = contact(subscriber(body.clone()), None).unwrap_err();
            assert_eq!(field(e), expected, "{body}");
        }
        let e = contact(subscriber(json!({"email": "nope"})), None).unwrap_err();
        assert_eq!(e.public_message(), "`nope` is not an email address.");
    }

    #[test]
    fn an_email_goes_to_a_contact_id_before_an_address() {
        let e = email(message(json!({"channel": "email",
            "to": {"email": "a@b.c", "userId": " 42 "},
            "data": {"subject": "Hi", "text": "x", "fromUserId": "7"}})))
        .unwrap();
        assert_eq!(e.to, To::Contact("42".into()));
        assert_eq!(e.from_user, 7);
        assert_eq!(e.html, None);
        let e = email(message(
            json!({"channel": "email", "to": {"email": "a@b.c"},
            "data": {"subject": "Hi", "html": "<p>x</p>"}}),
        ))
        .unwrap();
        assert_eq!(e.to, To::Address("a@b.c".into()));
        assert_eq!(e.from_user, DEFAULT_SENDER);
    }

    #[test]
    fn an_email_breaking_keaps_rules_names_the_field() {
        let ok = json!({"subject": "s", "text": "t"});
        for (body, expected) in [
            (
                json!({"campaignId": 5, "to": {"email": "a@b.c"}, "data": ok}),
                "campaignId",
            ),
            (
                json!({"sendAt": "2030-01-01T00:00:00Z", "to": {"email": "a@b.c"}, "data": ok}),
                "sendAt",
            ),
            (
                json!({"to": {"email": "a@b.c"}, "data": {"text": "x"}}),
                "data.subject",
            ),
            (
                json!({"to": {"email": "a@b.c"}, "data": {"subject": "x"}}),
                "data.html",
            ),
            (
                json!({"to": {"email": "a@b.c"}, "data": {"subject": "x", "html": 3}}),
                "data.html",
            ),
            (
                json!({"to": {"email": "a@b.c"}, "data": {"subject": "x", "text": "y", "fromUserId": 0}}),
                "data.fromUserId",
            ),
            (json!({"to": {"userId": "abc"}, "data": ok}), "to.userId"),
            (
                json!({"to": {"phone": "+15550100"}, "data": ok}),
                "to.email",
            ),
        ] {
            let mut body = body;
            body["channel"] = json!("email");
            let e = email(message(body.clone())).unwrap_err();
            assert_eq!(field(e), expected, "{body}");
        }
    }

    #[test]
    fn only_email_is_keaps_channel() {
        let e = email(message(
            json!({"channel": "sms", "to": {"phone": "+15550100"}}),
        ))
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
    }
}
