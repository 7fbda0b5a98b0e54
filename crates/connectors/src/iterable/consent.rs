//! Iterable consent calls (issue 17; fact sheet `consent.md` §1): the Subscriptions API's
//! one-group unsubscribe, the read and the overwriting `updateSubscriptions` of its fallback, and
//! GDPR `users/forget`. What to call when is the session's business; these are the wire.

use serde_json::{Value, json};

use super::{Credentials, IterableConnector, errors};
use crate::{ConnectorError, ErrorKind, http::Call, http::path_segment};

/// What `DELETE /api/subscriptions/messageChannel/{id}/user/{email}` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelUnsubscribe {
    /// 200, or 202 (accepted, applied later).
    Done,
    /// 404 "Endpoint not found": the project's CSM has not enabled the Subscriptions API.
    NotEnabled,
    /// Iterable has no such user.
    UnknownUser,
}

/// A user's subscription arrays as `GET /api/users/{email}` shows them in `dataFields`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscriptions {
    pub email_list_ids: Vec<u64>,
    pub unsubscribed_channel_ids: Vec<u64>,
    pub unsubscribed_message_type_ids: Vec<u64>,
}

fn ids(fields: &Value, key: &str) -> Vec<u64> {
    fields
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

impl IterableConnector {
    /// Ids of the project's marketing email channels (`GET /api/channels`, `channelType`
    /// Marketing and `messageMedium` Email): the channels an "all marketing email" opt-out needs
    /// (there is no global unsubscribe field).
    pub async fn marketing_email_channel_ids(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<u64>, ConnectorError> {
        let channels = self.list_channels(creds).await?;
        Ok(channels
            .iter()
            .filter(|c| c.kind == "marketing" && c.channel == "email")
            .filter_map(|c| c.id.parse().ok())
            .collect())
    }

    /// Unsubscribes `email` from one message channel through the Subscriptions API
    /// (`DELETE /api/subscriptions/messageChannel/{id}/user/{email}`), leaving every other
    /// subscription as it is. Safe to repeat.
    pub async fn unsubscribe_channel(
        &self,
        creds: &Credentials,
        channel_id: u64,
        email: &str,
    ) -> Result<ChannelUnsubscribe, ConnectorError> {
        const OP: &str = "unsubscribe_channel";
        let header = creds.header()?;
        let path = format!(
            "/api/subscriptions/messageChannel/{channel_id}/user/{}",
            path_segment(domain::Platform::Iterable, email)?
        );
        let url = self.url(creds.region, &path);
        let call = Call {
            operation: OP,
            class: "subscriptions",
            budget_key: creds.budget_key(),
            idempotent: true,
        };
        let answer = self
            .client
            .send(call, |http| {
                http.delete(&url).header("Api-Key", header.clone())
            })
            .await?;
        if answer.is_success() {
            return Ok(ChannelUnsubscribe::Done);
        }
        let err = errors::IterableError::parse(&answer.body);
        match answer.status.as_u16() {
            404 => Ok(ChannelUnsubscribe::NotEnabled),
            400 if err.code == "UnknownEmailError" => Ok(ChannelUnsubscribe::UnknownUser),
            _ => Err(errors::map(&answer, OP)),
        }
    }

    /// The user's subscription arrays (`GET /api/users/{email}`); `None` when Iterable has no
    /// such user (it answers `{}`).
    pub async fn subscriptions(
        &self,
        creds: &Credentials,
        email: &str,
    ) -> Result<Option<Subscriptions>, ConnectorError> {
        let path = format!(
            "/api/users/{}",
            path_segment(domain::Platform::Iterable, email)?
        );
        let v = self
            .get_json(creds, "read_subscriptions", "users_read", &path, &[])
            .await?;
        let Some(fields) = v.get("user").and_then(|u| u.get("dataFields")) else {
            return Ok(None);
        };
        Ok(Some(Subscriptions {
            email_list_ids: ids(fields, "emailListIds"),
            unsubscribed_channel_ids: ids(fields, "unsubscribedChannelIds"),
            unsubscribed_message_type_ids: ids(fields, "unsubscribedMessageTypeIds"),
        }))
    }

    /// Writes the user's whole `unsubscribedChannelIds` (`POST /api/users/updateSubscriptions`
    /// with only that array, so lists and message types stay as they are). Iterable
    /// **overwrites** the array: the caller passes the stored ids merged with the new ones, read
    /// under its own lock.
    pub async fn set_unsubscribed_channels(
        &self,
        creds: &Credentials,
        email: &str,
        channel_ids: &[u64],
    ) -> Result<(), ConnectorError> {
        self.post_json(
            creds,
            "update_subscriptions",
            "users_update_subscriptions",
            "/api/users/updateSubscriptions",
            &json!({"email": email, "unsubscribedChannelIds": channel_ids}),
            true,
        )
        .await
        .map(|_| ())
    }

    /// Forgets a user (GDPR, `POST /api/users/forget {email}`): Iterable deletes their data and
    /// collects nothing more about them. 3 per second and 1,000 per day per project; a repeat
    /// counts against the daily cap, so callers forget an address once.
    pub async fn forget_user(
        &self,
        creds: &Credentials,
        email: &str,
    ) -> Result<(), ConnectorError> {
        if email.trim().is_empty() {
            return Err(ConnectorError::new(
                domain::Platform::Iterable,
                ErrorKind::InvalidRequest,
                "An email address is needed to forget a user.",
            ));
        }
        self.post_json(
            creds,
            "forget_user",
            "users_forget",
            "/api/users/forget",
            &json!({ "email": email }),
            true,
        )
        .await
        .map(|_| ())
    }
}
