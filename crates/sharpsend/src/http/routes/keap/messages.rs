//! Keap messages (CONTRACT §7): email only, through REST v1 `POST /emails/queue` (platforms/keap.md
//! §4, "Send an Email to a list of Contacts"). SMS, push and in-app answer
//! `UNSUPPORTED_OPERATION` from the capability matrix, exactly as the generic route does.

use axum::{extract::State, http::Method};
use connectors::keap::EmailInput;
use domain::Platform;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{
    error::{ApiError, ApiResult},
    extract::{ApiJson, Scope},
    openapi::{Envelope, ErrorBody},
    routes::operations,
};
use crate::platforms::keap::tokens;
use crate::state::AppState;

/// Keap's first user (the account owner) sends when `data.fromUserId` is not given (inferred:
/// Infusionsoft numbers the owner 1).
const DEFAULT_SENDER: u64 = 1;

/// The recipient: a Keap contact id, or an email Keap has a contact for.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    #[serde(default)]
    pub email: Option<String>,
    /// The Keap contact id.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// An email through Keap. `data` carries `subject` (required), `html` and/or `text` (the body;
/// at least one), and optionally `fromUserId` (the Keap user it is sent on behalf of).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    /// `email` (Keap sends nothing else).
    pub channel: String,
    /// Not used by Keap's email API; must be absent.
    #[serde(default)]
    pub campaign_id: Option<String>,
    pub to: Recipient,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<serde_json::Map<String, Value>>,
    /// Keap cannot schedule an email; must be absent.
    #[serde(default)]
    pub send_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageQueued {
    pub platform: Platform,
    pub channel: String,
    /// Always `queued` (Keap answers 202 without an id).
    pub status: &'static str,
}

fn text(data: &serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::validation(
            format!("data.{key}"),
            format!("data.{key} must be a string."),
        )),
    }
}

/// Sends one email to a Keap contact (REST v1 `POST /emails/queue`): `to.userId` is the contact
/// id, or `to.email` is looked up; `data.subject` and `data.html` and/or `data.text` are the
/// email, `data.fromUserId` the Keap user sending it (default 1, the account owner). Other
/// channels answer `UNSUPPORTED_OPERATION`.
#[utoipa::path(post, path = "/api/integrations/{publisherId}/keap/messages", tag = "keap",
    security(("bearer" = [])),
    params(("publisherId" = String, Path)),
    request_body = MessageBody,
    responses(
        (status = 200, body = Envelope<MessageQueued>),
        (status = 400, description = "VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "INTEGRATION_NOT_FOUND, or NOT_FOUND: no Keap contact with that email", body = ErrorBody),
        (status = 422, description = "INVALID_CREDENTIALS, or UNSUPPORTED_OPERATION (sms, push, in_app)", body = ErrorBody),
        (status = 429, description = "RATE_LIMIT_EXCEEDED (Retry-After)", body = ErrorBody),
        (status = 502, description = "CONNECTION_FAILED", body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    scope: Scope,
    ApiJson(raw): ApiJson<Value>,
) -> ApiResult<Envelope<MessageQueued>> {
    let publisher = scope.publisher()?;
    if raw.get("channel").and_then(Value::as_str) != Some("email") {
        // The capability matrix's answer, the same as for any operation Keap lacks.
        return Err(operations::answer(
            Platform::Keap,
            &Method::POST,
            "messages",
            &raw,
        ));
    }
    let body: MessageBody = crate::http::extract::from_value(&raw)?;
    if body.campaign_id.is_some() {
        return Err(ApiError::validation(
            "campaignId",
            "Keap's email API sends the given subject and body; it takes no campaignId (Keap campaigns send their own emails).",
        ));
    }
    if body.send_at.is_some() {
        return Err(ApiError::validation(
            "sendAt",
            "Keap sends queued emails at once; it cannot schedule them.",
        ));
    }
    let data = body.data.unwrap_or_default();
    let subject = text(&data, "subject")?
        .ok_or_else(|| ApiError::validation("data.subject", "An email needs data.subject."))?;
    let html = text(&data, "html")?;
    let plain = text(&data, "text")?;
    if html.is_none() && plain.is_none() {
        return Err(ApiError::validation(
            "data.html",
            "An email needs a body: data.html and/or data.text.",
        ));
    }
    let user_id = match data.get("fromUserId") {
        None | Some(Value::Null) => DEFAULT_SENDER,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ApiError::validation(
                    "data.fromUserId",
                    "data.fromUserId is a Keap user id (a positive number).",
                )
            })?,
    };
    let contact = body
        .to
        .user_id
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(id) = &contact
        && !id.chars().all(|c| c.is_ascii_digit())
    {
        return Err(ApiError::validation(
            "to.userId",
            "to.userId is a Keap contact id (a number).",
        ));
    }
    let email = body
        .to
        .email
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if contact.is_none() && email.is_none() {
        return Err(ApiError::validation(
            "to.email",
            "Give to.email or to.userId (a Keap contact id): the contact the email is for.",
        ));
    }
    let mut session = tokens::session(&state, publisher).await?;
    let keap = state.connectors.keap.clone();
    let contact_id = match contact {
        Some(id) => id,
        None => {
            let email = email.unwrap_or_default();
            let found = tokens::call(&state, &mut session, |cred| {
                let keap = keap.clone();
                let email = email.clone();
                async move { keap.contact_id_by_email(&cred, &email).await }
            })
            .await?;
            found.ok_or_else(|| {
                ApiError::not_found(format!(
                    "Keap has no contact with the email {email}; add it first (POST …/keap/subscribers)."
                ))
            })?
        }
    };
    let input = EmailInput {
        contact_ids: vec![contact_id],
        subject,
        html,
        text: plain,
        user_id,
    };
    tokens::call(&state, &mut session, |cred| {
        let keap = keap.clone();
        let input = input.clone();
        async move { keap.queue_email(&cred, &input).await }
    })
    .await?;
    Ok(Envelope::ok(MessageQueued {
        platform: Platform::Keap,
        channel: "email".to_owned(),
        status: "queued",
    }))
}
