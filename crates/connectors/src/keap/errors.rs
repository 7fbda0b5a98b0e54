//! Keap's error answers, mapped in one table onto [`ConnectorError`].
//!
//! Keap answers in three styles: the Apigee gateway's `{"fault": {"faultstring", "detail":
//! {"errorcode"}}}` (auth and rate limits), REST v1's `{"message"}`, and REST v2's
//! `{"code", "message", "status", "details"}`; the token endpoint answers OAuth's
//! `{"error", "error_description"}`.

use domain::Platform;
use serde::Deserialize;

use crate::{ConnectorError, ErrorKind, Retry, http::Answer};

/// Which credential a call carried, so the message can say what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// An OAuth access token (`Authorization: Bearer`).
    OAuth,
    /// A Personal Access Token or Service Account Key (`X-Keap-API-Key`).
    ApiKey,
}

#[derive(Deserialize, Default)]
struct Fault {
    fault: Option<FaultBody>,
    message: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize, Default)]
struct FaultBody {
    faultstring: Option<String>,
    detail: Option<FaultDetail>,
}

#[derive(Deserialize, Default)]
struct FaultDetail {
    errorcode: Option<String>,
}

/// The Apigee error code of a fault body (`keymanagement.service.access_token_expired`, …).
pub fn fault_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Fault>(body)
        .ok()?
        .fault?
        .detail?
        .errorcode
}

fn err(kind: ErrorKind, status: u16, message: String) -> ConnectorError {
    ConnectorError::new(Platform::Keap, kind, message).with_status(status)
}

/// A short, safe reason from Keap's body (never the whole body).
fn reason(body: &[u8]) -> Option<String> {
    let f: Fault = serde_json::from_slice(body).ok()?;
    let text = f
        .fault
        .and_then(|f| f.faultstring)
        .or(f.message)
        .or(f.error_description)
        .or(f.error)?;
    Some(text.chars().take(200).collect())
}

/// Maps a non-2xx answer of a REST call.
pub fn map_error(answer: &Answer, auth: AuthKind, what: &str) -> ConnectorError {
    let status = answer.status.as_u16();
    let why = reason(&answer.body);
    let code = fault_code(&answer.body).unwrap_or_default();
    match status {
        401 => {
            let message = match auth {
                AuthKind::OAuth if code.contains("access_token_expired") => {
                    "Keap says the access token has expired, and it could not be renewed; reconnect Keap to grant access again.".to_owned()
                }
                AuthKind::OAuth => "Keap rejected the access token (unknown or revoked). Check that `accessToken` is a current OAuth access token of this Keap app; a Personal Access Token or Service Account Key goes in `apiKey` instead.".to_owned(),
                AuthKind::ApiKey => "Keap rejected the API key. `apiKey` takes a Personal Access Token or Service Account Key (Keap: Settings › API Settings, it starts with `KeapAK-`) that has not been deleted; an OAuth access token goes in `accessToken`, and legacy (XML-RPC) API keys are not accepted.".to_owned(),
            };
            err(ErrorKind::InvalidCredentials, status, message)
        }
        403 => err(
            ErrorKind::PermissionDenied,
            status,
            match auth {
                AuthKind::ApiKey => format!(
                    "Keap refused to {what}: the user this Personal Access Token belongs to lacks the permission. Use a Service Account Key or a token of a user with access to it."
                ),
                AuthKind::OAuth => format!(
                    "Keap refused to {what}: the Keap user who granted access lacks the permission. Reconnect as a user (or admin) who has it."
                ),
            },
        ),
        // Keap's API answers a missing record in JSON; its web server answers a URL that is no
        // API route with an HTML "Page Not Found" page (keap.md, errors). Only the first says
        // the record is gone (a webhook's delete hint is settled on it); the second means the
        // origin or route is wrong, and no retry fixes that.
        404 if serde_json::from_slice::<serde_json::Value>(&answer.body).is_err() => err(
            ErrorKind::Unavailable,
            status,
            format!(
                "Keap answered the call to {what} with its 'Page Not Found' web page instead of an API answer: the Keap API origin (SHARPSEND_KEAP_API_URL) or the route is wrong."
            ),
        )
        .with_retry(Retry::Permanent),
        404 => err(
            ErrorKind::NotFound,
            status,
            format!(
                "Keap found nothing to {what}{}.",
                why.map(|w| format!(" ({w})")).unwrap_or_default()
            ),
        ),
        _ => err(
            ErrorKind::InvalidRequest,
            status,
            format!(
                "Keap refused to {what} (HTTP {status}){}.",
                why.map(|w| format!(": {w}")).unwrap_or_default()
            ),
        ),
    }
}

/// What a refresh or code exchange failure means.
pub fn map_token_error(answer: &Answer) -> ConnectorError {
    let status = answer.status.as_u16();
    let f: Fault = serde_json::from_slice(&answer.body).unwrap_or_default();
    let error = f.error.unwrap_or_default();
    let description = f.error_description.unwrap_or_default();
    let lower = description.to_ascii_lowercase();
    let message = if lower.contains("username and password") || error == "invalid_client" {
        "Keap did not accept the OAuth client id and secret (`clientId`, `clientSecret`): check them in the Keap developer portal (My Apps).".to_owned()
    } else if error == "invalid_grant" || lower.contains("refresh token") {
        "Keap refused to renew the access token: the refresh token was revoked, already used, or unused for 45 days.".to_owned()
    } else {
        format!(
            "Keap's token endpoint refused the request (HTTP {status}{}).",
            if error.is_empty() {
                String::new()
            } else {
                format!(", {error}")
            }
        )
    };
    err(ErrorKind::InvalidCredentials, status, message)
}

/// A 2xx body we could not read.
pub fn malformed(what: &str) -> ConnectorError {
    ConnectorError::new(
        Platform::Keap,
        ErrorKind::Unavailable,
        format!("Keap's answer to {what} could not be read (malformed JSON); try again later."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::{StatusCode, header::HeaderMap};

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn a_missing_record_is_not_found_but_a_web_page_404_is_a_wrong_url() {
        let gone = map_error(
            &answer(404, r#"{"message":"Unable to find this Contact"}"#),
            AuthKind::ApiKey,
            "read a contact",
        );
        assert_eq!(gone.kind, ErrorKind::NotFound);
        assert!(
            gone.message.contains("Unable to find this Contact"),
            "{}",
            gone.message
        );
        let page = map_error(
            &answer(
                404,
                "<html>\n<head>\n<title>Keap - Page Not Found</title>\n</head></html>",
            ),
            AuthKind::ApiKey,
            "read a contact",
        );
        assert_eq!(page.kind, ErrorKind::Unavailable);
        assert!(!page.is_temporary());
        assert!(
            page.message.contains("SHARPSEND_KEAP_API_URL"),
            "{}",
            page.message
        );
    }

    #[test]
    fn expired_and_invalid_tokens() {
        let expired = answer(
            401,
            r#"{"fault":{"faultstring":"Access Token expired","detail":{"errorcode":"keymanagement.service.access_token_expired"}}}"#,
        );
        assert_eq!(
            fault_code(&expired.body).as_deref(),
            Some("keymanagement.service.access_token_expired")
        );
        let invalid = answer(
            401,
            r#"{"fault":{"faultstring":"Invalid Access Token","detail":{"errorcode":"keymanagement.service.invalid_access_token"}}}"#,
        );
        let e = map_error(&invalid, AuthKind::ApiKey, "read contacts");
        assert_eq!(e.kind, ErrorKind::InvalidCredentials);
        assert!(e.message.contains("Personal Access Token"));
        let e = map_error(&answer(403, "{}"), AuthKind::ApiKey, "read contacts");
        assert_eq!(e.kind, ErrorKind::PermissionDenied);
    }

    #[test]
    fn token_errors_name_the_cause() {
        let e = map_token_error(&answer(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
        ));
        assert_eq!(e.kind, ErrorKind::InvalidCredentials);
        assert!(e.message.contains("refresh token"));
        let e = map_token_error(&answer(
            401,
            r#"{"error":"invalid_grant","error_description":"Unable to authenticate username and password"}"#,
        ));
        assert!(e.message.contains("clientSecret"));
    }
}
