//! Keap consent calls (issue 17; fact sheet `consent.md` §3): the per-address opt-in status of
//! REST v2, finding every contact holding an address, and deleting contacts.

use domain::Platform;
use reqwest::Method;
use serde_json::{Value, json};

use super::{KeapConnector, KeapCredential, KeapError, Req, errors};
use crate::{ConnectorError, ErrorKind};

/// `RestEmailAddressStatus`: one address's marketing status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddressStatus {
    pub email: String,
    pub opted_in: bool,
    /// The v2 enum (`MANUAL`, `HARD_BOUNCE`, `SINGLE_OPT_IN`, …).
    pub status: String,
}

fn status_of(v: &Value) -> Option<EmailAddressStatus> {
    Some(EmailAddressStatus {
        email: v.get("email")?.as_str()?.to_owned(),
        opted_in: v.get("opted_in")?.as_bool()?,
        status: v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Most contacts read per page when finding an address's holders.
const HOLDERS_PAGE: u32 = 100;

/// An address as one path segment; a `*` is refused because Keap's v2 email filter reads a
/// trailing `*` as a wildcard (the same address must never match others).
fn address(email: &str) -> Result<String, ConnectorError> {
    if email.contains('*') || email.trim().is_empty() {
        return Err(ConnectorError::new(
            Platform::Keap,
            ErrorKind::InvalidRequest,
            "An email address containing `*` cannot be looked up in Keap: its filter reads `*` as a wildcard.",
        ));
    }
    crate::http::path_segment(Platform::Keap, email)
}

impl KeapConnector {
    /// Reads one address's status (`GET /crm/rest/v2/emailAddresses/{email}/status`); `None`
    /// when Keap does not know the address.
    pub async fn email_status(
        &self,
        cred: &KeapCredential,
        email: &str,
    ) -> Result<Option<EmailAddressStatus>, KeapError> {
        let path = format!("crm/rest/v2/emailAddresses/{}/status", address(email)?);
        self.status_call(cred, email, &path, None).await
    }

    /// Sets one address's opt-in (`PATCH /crm/rest/v2/emailAddresses/{email}/status`
    /// `{"opted_in", "reason"}`, both required). The status belongs to the address, so an
    /// opt-out covers every contact holding it; Keap lets the API opt an address in again only
    /// from a few statuses. `None` when Keap does not know the address.
    pub async fn set_email_opt_in(
        &self,
        cred: &KeapCredential,
        email: &str,
        opted_in: bool,
        reason: &str,
    ) -> Result<Option<EmailAddressStatus>, KeapError> {
        let path = format!("crm/rest/v2/emailAddresses/{}/status", address(email)?);
        let body = json!({"opted_in": opted_in, "reason": reason});
        self.status_call(cred, email, &path, Some(&body)).await
    }

    async fn status_call(
        &self,
        cred: &KeapCredential,
        email: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<EmailAddressStatus>, KeapError> {
        let (operation, what, method) = match body {
            None => ("email_status", "read the email address status", Method::GET),
            Some(_) => (
                "set_email_opt_in",
                "update the email address status",
                Method::PATCH,
            ),
        };
        let answer = self
            .request(
                cred,
                Req {
                    operation,
                    what,
                    method,
                    path,
                    query: &[],
                    body,
                    // The same status again is the same state.
                    idempotent: true,
                },
            )
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(KeapError::Other(e)) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = Self::decode(&answer, "the email address status")?;
        let status = status_of(&v)
            .ok_or_else(|| KeapError::Other(errors::malformed("the email address status")))?;
        if !status.email.eq_ignore_ascii_case(email) {
            return Err(KeapError::Other(errors::malformed(
                "the email address status (another address)",
            )));
        }
        Ok(Some(status))
    }

    /// The ids of every contact holding `email` (REST v2 `GET /contacts?filter=email==…`, all
    /// pages). Several contacts may share an address. Each match is checked again here, so an
    /// ignored filter can never widen the set.
    pub async fn contact_ids_holding(
        &self,
        cred: &KeapCredential,
        email: &str,
    ) -> Result<Vec<String>, KeapError> {
        address(email)?;
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("filter", format!("email=={email}")),
                ("fields", "email_addresses".to_owned()),
                ("page_size", HOLDERS_PAGE.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let answer = self
                .request(
                    cred,
                    Req {
                        operation: "contacts_by_email",
                        what: "find the contacts holding an address",
                        method: Method::GET,
                        path: "crm/rest/v2/contacts",
                        query: &query,
                        body: None,
                        idempotent: true,
                    },
                )
                .await?;
            let v: Value = Self::decode(&answer, "the contacts list")?;
            let contacts = v
                .get("contacts")
                .and_then(Value::as_array)
                .ok_or_else(|| KeapError::Other(errors::malformed("the contacts list")))?;
            for c in contacts {
                let holds = c
                    .get("email_addresses")
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        a.iter().any(|e| {
                            e.get("email")
                                .and_then(Value::as_str)
                                .is_some_and(|x| x.eq_ignore_ascii_case(email))
                        })
                    });
                if let (true, Some(id)) = (holds, c.get("id").and_then(super::models::id_string))
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
            token = v
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() || contacts.is_empty() {
                return Ok(ids);
            }
        }
    }

    /// Deletes a contact (`DELETE /crm/rest/v2/contacts/{id}` → 204); `false` when it was
    /// already gone (404).
    pub async fn delete_contact(
        &self,
        cred: &KeapCredential,
        contact_id: &str,
    ) -> Result<bool, KeapError> {
        let path = format!(
            "crm/rest/v2/contacts/{}",
            crate::http::path_segment(Platform::Keap, contact_id)?
        );
        let r = self
            .request(
                cred,
                Req {
                    operation: "delete_contact",
                    what: "delete the contact",
                    method: Method::DELETE,
                    path: &path,
                    query: &[],
                    body: None,
                    // A repeat of a delete that went through answers 404, read as done.
                    idempotent: true,
                },
            )
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(KeapError::Other(e)) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
