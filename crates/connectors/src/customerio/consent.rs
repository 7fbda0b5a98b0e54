//! Customer.io consent calls through the Track API (issue 17; fact sheet `consent.md` §2): the
//! `unsubscribed` attribute (an opt-out that keeps the profile), person delete, and person
//! suppress (deletes the profile and blocks re-adding it: an erasure).

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{Api, Credentials, CustomerioConnector, budget_key, errors};

use crate::ConnectorError;

impl CustomerioConnector {
    /// One Track call on `/api/v1/customers/{identifier}{suffix}`.
    async fn track_person_call(
        &self,
        creds: &Credentials,
        (operation, what): (&'static str, &str),
        method: Method,
        identifier: &str,
        suffix: &str,
        body: Option<&Value>,
    ) -> Result<(), ConnectorError> {
        let key = creds.track_key();
        let digest = budget_key(key);
        let segment = crate::http::path_segment(domain::Platform::Customerio, identifier)?;
        let url = self.url(
            Api::Track,
            creds.region,
            &format!("/api/v1/customers/{segment}{suffix}"),
        );
        let answer = self
            .client
            .send(self.track_call(operation, &digest), |http| {
                let rb = http
                    .request(method.clone(), &url)
                    .basic_auth(&creds.site_id, Some(key.expose_secret()));
                match body {
                    Some(b) => rb.json(b),
                    None => rb,
                }
            })
            .await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(errors::map_answer(Api::Track, what, &answer))
        }
    }

    /// Opts a person out of marketing: `PUT /api/v1/customers/{identifier}` with
    /// `{"unsubscribed": true, "_update": true}`. `_update` makes an identifier nobody holds (an
    /// email too) create no one; Customer.io answers 200 either way, so the call cannot tell.
    pub async fn unsubscribe_person(
        &self,
        creds: &Credentials,
        identifier: &str,
    ) -> Result<(), ConnectorError> {
        self.track_person_call(
            creds,
            ("unsubscribe_person", "unsubscribing a person"),
            Method::PUT,
            identifier,
            "",
            Some(&json!({"unsubscribed": true, "_update": true})),
        )
        .await
    }

    /// Deletes a person (`DELETE /api/v1/customers/{identifier}`). A later identify, from the
    /// publisher's own site too, can create them again.
    pub async fn delete_person(
        &self,
        creds: &Credentials,
        identifier: &str,
    ) -> Result<(), ConnectorError> {
        self.track_person_call(
            creds,
            ("delete_person", "deleting a person"),
            Method::DELETE,
            identifier,
            "",
            None,
        )
        .await
    }

    /// Suppresses a person (`POST /api/v1/customers/{identifier}/suppress`): Customer.io deletes
    /// the profile and ignores every later call naming its id or email until it is unsuppressed.
    pub async fn suppress_person(
        &self,
        creds: &Credentials,
        identifier: &str,
    ) -> Result<(), ConnectorError> {
        self.track_person_call(
            creds,
            ("suppress_person", "suppressing a person"),
            Method::POST,
            identifier,
            "/suppress",
            None,
        )
        .await
    }
}
