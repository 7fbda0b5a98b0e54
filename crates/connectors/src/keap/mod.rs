//! Keap's REST v1/v2 API: OAuth 2.0 bearer tokens with rotating refresh tokens, or a PAT/SAK in
//! `X-Keap-API-Key`.
//!
//! The connector is stateless apart from its HTTP client and the per-integration refresh gates:
//! the caller passes a [`KeapCredential`] on every call. A 401 on an OAuth call answers
//! [`KeapError::Unauthorized`] so that the caller (which owns the stored tokens) can refresh once
//! and retry once; everything else is a [`ConnectorError`].

mod consent;
pub mod crm;
mod errors;
pub mod hooks;
mod models;
pub mod throttle;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{Platform, shapes::Contact};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    Connector, ConnectorError, ErrorKind, Settings,
    http::{Answer, Call, UpstreamClient},
    rate::Rate,
};

pub use consent::EmailAddressStatus;
pub use errors::AuthKind;
pub use models::{parse_time, v2_contact};

/// Endpoint classes and Keap's published limits (platforms/keap.md §6), as proactive budgets
/// that satisfy both the spike arrest and the per-minute quota: a GCRA bucket allows its burst
/// plus its rate over any window, so OAuth gets 6 burst + 24/s (≤ 25/s spike, 1,446 ≤ 1,500 a
/// minute; the small burst leaves Keap's 25-token spike bucket room for network jitter, so
/// requests that arrive bunched still pass) and a PAT/SAK 5 burst + 1 per 260 ms (≤ 10/s
/// spike, 236 ≤ 240 a minute). OAuth budgets are keyed by the app's client id (the quota is per
/// client), keys by the key. With `SHARPSEND_REDIS_URL` the same buckets live in Redis.
const BUDGETS: &[(&str, Rate)] = &[
    ("oauth", Rate::new(24, Duration::from_secs(1)).with_burst(6)),
    ("key", Rate::new(5, Duration::from_millis(1300))),
];

/// Longer pacing than this answers RATE_LIMIT_EXCEEDED with the wait as `Retry-After`.
const PACE_MAX_WAIT: Duration = Duration::from_secs(20);

/// Refresh an access token when it expires within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A credential for one call. `Debug` never shows the secret.
#[derive(Clone)]
pub struct KeapCredential {
    kind: AuthKind,
    secret: SecretString,
    budget_key: String,
}

impl std::fmt::Debug for KeapCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeapCredential")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A hex SHA-256 prefix: a budget key that never is the credential.
fn digest(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..12])
}

impl KeapCredential {
    /// An OAuth access token; its budget is the app's (`client_id`) when known.
    pub fn oauth(access_token: SecretString, client_id: Option<&str>) -> Self {
        let budget_key = format!(
            "oauth:{}",
            digest(client_id.unwrap_or(access_token.expose_secret()))
        );
        Self {
            kind: AuthKind::OAuth,
            secret: access_token,
            budget_key,
        }
    }

    /// A Personal Access Token or Service Account Key.
    pub fn api_key(key: SecretString) -> Self {
        let budget_key = format!("key:{}", digest(key.expose_secret()));
        Self {
            kind: AuthKind::ApiKey,
            secret: key,
            budget_key,
        }
    }

    pub fn kind(&self) -> AuthKind {
        self.kind
    }

    /// The budget owner (`oauth:<digest of the client id>` or `key:<digest>`), never a secret.
    pub fn budget_key(&self) -> &str {
        &self.budget_key
    }

    fn class(&self) -> &'static str {
        match self.kind {
            AuthKind::OAuth => "oauth",
            AuthKind::ApiKey => "key",
        }
    }
}

/// A Keap call's failure: a 401 on an OAuth call (refresh and retry once), or anything else.
#[derive(Debug)]
pub enum KeapError {
    Unauthorized(ConnectorError),
    Other(ConnectorError),
}

impl From<ConnectorError> for KeapError {
    fn from(e: ConnectorError) -> Self {
        KeapError::Other(e)
    }
}

impl From<KeapError> for ConnectorError {
    fn from(e: KeapError) -> Self {
        match e {
            KeapError::Unauthorized(e) | KeapError::Other(e) => e,
        }
    }
}

/// A fresh token pair from Keap's token endpoint.
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_at: DateTime<Utc>,
    /// The tenant's app host from `scope` (`full|ab123.infusionsoft.com`).
    pub tenant: Option<String>,
}

/// What `test-connection` reports.
pub struct AccountInfo {
    pub account: Value,
    pub latency: Duration,
}

/// The v1 contact query.
#[derive(Clone, Debug, Default)]
pub struct ContactQuery {
    pub limit: u32,
    pub offset: u64,
    pub email: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// A contact to create or update, matched by email (what a subscriber upsert becomes on Keap).
#[derive(Clone, Debug, Default)]
pub struct ContactUpsert {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub lead_source_id: Option<String>,
    /// Keap tag ids to apply.
    pub tag_ids: Vec<String>,
}

/// A page of contacts; `count` is Keap's total of matches.
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub count: u64,
}

/// One email to queue through Keap (REST v1 `POST /emails/queue`).
#[derive(Clone, Debug)]
pub struct EmailInput {
    /// The Keap contact ids (numeric strings) that each receive a copy.
    pub recipients: Vec<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    /// The Keap user the email is sent on behalf of.
    pub user_id: u64,
}

/// One REST request.
struct Req<'a> {
    operation: &'static str,
    what: &'a str,
    method: reqwest::Method,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<&'a Value>,
    /// Safe to repeat after an ambiguous failure (GETs, upserts by email, tag applications).
    idempotent: bool,
}

/// The Keap connector.
pub struct KeapConnector {
    settings: Settings,
    client: UpstreamClient,
    /// One gate per integration, so concurrent refreshes in this process queue up before they
    /// reach the database lock.
    gates: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Spacing learnt from Keap's quota headers, per budget key.
    pacer: throttle::Pacer,
}

impl KeapConnector {
    /// What this connector's rate budgets are doing (for `…/limits` and metrics).
    pub fn limits(&self) -> &std::sync::Arc<crate::limits::LimitsTracker> {
        self.client.limits()
    }

    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
            client: UpstreamClient::new(
                Platform::Keap,
                settings.timeout,
                // Already under Keap's limits by design (above): no further headroom.
                &settings.budgets(BUDGETS, 0),
                settings.observer.clone(),
            )
            .with_shared_budgets(settings.shared_budgets.clone())
            .with_rate_limit_hint(throttle::quota_wait),
            gates: Mutex::new(HashMap::new()),
            pacer: throttle::Pacer::default(),
        }
    }

    /// The refresh gate of one integration (shared by every task of this process).
    pub fn refresh_gate(&self, integration_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(gate) = gates.get(integration_id).and_then(Weak::upgrade) {
            return gate;
        }
        gates.retain(|_, g| g.strong_count() > 0);
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        gates.insert(integration_id.to_owned(), Arc::downgrade(&gate));
        gate
    }

    fn url(&self, path: &str) -> Result<url::Url, ConnectorError> {
        self.settings.upstreams.keap_api.join(path).map_err(|e| {
            ConnectorError::new(
                Platform::Keap,
                ErrorKind::Unavailable,
                format!("SHARPSEND_KEAP_API_URL cannot take the path {path}: {e}"),
            )
        })
    }

    /// Sends one authenticated REST request and answers a 2xx; a 401 on OAuth is
    /// [`KeapError::Unauthorized`].
    async fn request(&self, cred: &KeapCredential, r: Req<'_>) -> Result<Answer, KeapError> {
        let Req {
            operation,
            what,
            method,
            path,
            query,
            body,
            idempotent,
        } = r;
        let url = self.url(path)?;
        // Keap's headers said a window is nearly used up: spread what is left.
        let pace = self.pacer.turn(&cred.budget_key);
        if pace > PACE_MAX_WAIT {
            return Err(KeapError::Other(
                ConnectorError::new(
                    Platform::Keap,
                    ErrorKind::RateLimited,
                    "Keap's quota for this app or account is nearly used up; try again after its window resets.",
                )
                .with_retry(crate::Retry::Temporary { after: Some(pace) }),
            ));
        }
        if !pace.is_zero() {
            tracing::debug!(
                operation,
                wait_ms = pace.as_millis() as u64,
                "Keap quota low: pacing"
            );
            tokio::time::sleep(pace).await;
        }
        let answer = self
            .client
            .send(
                Call {
                    operation,
                    class: cred.class(),
                    budget_key: &cred.budget_key,
                    idempotent,
                },
                |http| {
                    let mut req = http.request(method.clone(), url.clone()).query(query);
                    req = match cred.kind {
                        AuthKind::OAuth => req.bearer_auth(cred.secret.expose_secret()),
                        AuthKind::ApiKey => {
                            req.header("X-Keap-API-Key", cred.secret.expose_secret())
                        }
                    };
                    if let Some(b) = body {
                        req = req.json(b);
                    }
                    req
                },
            )
            .await?;
        self.pacer.observe(&cred.budget_key, &answer.headers);
        if answer.is_success() {
            return Ok(answer);
        }
        let e = errors::map_error(&answer, cred.kind, what);
        if answer.status.as_u16() == 401 && cred.kind == AuthKind::OAuth {
            Err(KeapError::Unauthorized(e))
        } else {
            Err(KeapError::Other(e))
        }
    }

    fn decode<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, KeapError> {
        serde_json::from_slice(&answer.body).map_err(|_| KeapError::Other(errors::malformed(what)))
    }

    /// Checks the credential with Keap's userinfo (REST v2) and reports who and which tenant.
    pub async fn test_connection(&self, cred: &KeapCredential) -> Result<AccountInfo, KeapError> {
        let started = Instant::now();
        let answer = self
            .request(
                cred,
                Req {
                    operation: "userinfo",
                    what: "read the user's profile",
                    method: reqwest::Method::GET,
                    path: "crm/rest/v2/oauth/connect/userinfo",
                    query: &[],
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let latency = started.elapsed();
        let info: Value = Self::decode(&answer, "userinfo")?;
        let header_tenant = answer
            .headers
            .get("x-keap-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let s = |k: &str| info.get(k).and_then(models::id_string);
        let account = json!({
            "tenantId": s("tenant_id").or(header_tenant),
            "userId": s("id").or_else(|| s("sub")),
            "email": s("email"),
            "name": s("preferred_name"),
            "isAdmin": info.get("is_admin").and_then(Value::as_bool),
            "authType": match cred.kind {
                AuthKind::OAuth => "oauth",
                AuthKind::ApiKey => "apiKey",
            },
        });
        Ok(AccountInfo { account, latency })
    }

    /// One page of contacts (REST v1 `GET /contacts`).
    pub async fn list_contacts(
        &self,
        cred: &KeapCredential,
        q: &ContactQuery,
    ) -> Result<ContactPage, KeapError> {
        let mut query = vec![
            ("limit", q.limit.to_string()),
            ("offset", q.offset.to_string()),
        ];
        if let Some(email) = &q.email {
            query.push(("email", email.clone()));
        }
        if let Some(since) = q.since {
            query.push(("since", since.to_rfc3339_opts(SecondsFormat::Millis, true)));
        }
        let answer = self
            .request(
                cred,
                Req {
                    operation: "list_contacts",
                    what: "list contacts",
                    method: reqwest::Method::GET,
                    path: "crm/rest/v1/contacts",
                    query: &query,
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let page: models::V1ContactPage = Self::decode(&answer, "the contact list")?;
        let contacts: Vec<Contact> = page
            .contacts
            .into_iter()
            .filter_map(models::V1Contact::into_contact)
            .collect();
        Ok(ContactPage {
            count: page.count.unwrap_or(contacts.len() as u64),
            contacts,
        })
    }

    /// One page of campaigns (REST v1 `GET /campaigns`); answers them and Keap's total.
    pub async fn list_campaigns(
        &self,
        cred: &KeapCredential,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<domain::shapes::Campaign>, u64), KeapError> {
        let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
        let answer = self
            .request(
                cred,
                Req {
                    operation: "list_campaigns",
                    what: "list campaigns",
                    method: reqwest::Method::GET,
                    path: "crm/rest/v1/campaigns",
                    query: &query,
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let page: Value = Self::decode(&answer, "the campaign list")?;
        let items = page
            .get("campaigns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let campaigns: Vec<_> = items.iter().filter_map(models::campaign).collect();
        let total = page
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(campaigns.len() as u64);
        Ok((campaigns, total))
    }

    /// One page of tags (REST v1 `GET /tags`): `{id, name, description, category}` with ids as
    /// strings, and Keap's total.
    pub async fn list_tags(
        &self,
        cred: &KeapCredential,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<Value>, u64), KeapError> {
        let query = [("limit", limit.to_string()), ("offset", offset.to_string())];
        let answer = self
            .request(
                cred,
                Req {
                    operation: "list_tags",
                    what: "list tags",
                    method: reqwest::Method::GET,
                    path: "crm/rest/v1/tags",
                    query: &query,
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let page: Value = Self::decode(&answer, "the tag list")?;
        let tags: Vec<Value> = page
            .get("tags")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|t| {
                        Some(json!({
                            "id": models::id_string(t.get("id")?)?,
                            "name": t.get("name").and_then(Value::as_str),
                            "description": t.get("description").and_then(Value::as_str),
                            "category": t.get("category").and_then(|c| c.get("name")).and_then(Value::as_str),
                            "platform": "keap",
                        }))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let total = page
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(tags.len() as u64);
        Ok((tags, total))
    }

    /// Whether a lead source exists (REST v2 `GET /leadSources`).
    pub async fn lead_source_exists(
        &self,
        cred: &KeapCredential,
        id: &str,
    ) -> Result<bool, KeapError> {
        let mut token = String::new();
        loop {
            let mut query = vec![("page_size", "1000".to_owned())];
            if !token.is_empty() {
                query.push(("page_token", token.clone()));
            }
            let answer = self
                .request(
                    cred,
                    Req {
                        operation: "list_lead_sources",
                        what: "list lead sources",
                        method: reqwest::Method::GET,
                        path: "crm/rest/v2/leadSources",
                        query: &query,
                        body: None,
                        idempotent: true,
                    },
                )
                .await?;
            let page: Value = Self::decode(&answer, "the lead source list")?;
            let found = page
                .get("lead_sources")
                .and_then(Value::as_array)
                .is_some_and(|items| {
                    items
                        .iter()
                        .any(|l| l.get("id").and_then(models::id_string).as_deref() == Some(id))
                });
            if found {
                return Ok(true);
            }
            match page.get("next_page_token").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && next != token => token = next.to_owned(),
                _ => return Ok(false),
            }
        }
    }

    /// A campaign's contact counts in our terms (`activeContacts`, `completedContacts`: how many
    /// contacts are in it now and how many finished it), those Keap reports; `None` when Keap
    /// has no campaign with this id.
    pub async fn campaign_counts(
        &self,
        cred: &KeapCredential,
        id: &str,
    ) -> Result<Option<std::collections::BTreeMap<&'static str, u64>>, KeapError> {
        Ok(self.campaign(cred, id).await?.map(|c| campaign_counts(&c)))
    }

    /// Whether a campaign exists (REST v2 `GET /campaigns/{id}`).
    pub async fn campaign_exists(
        &self,
        cred: &KeapCredential,
        id: &str,
    ) -> Result<bool, KeapError> {
        Ok(self.campaign(cred, id).await?.is_some())
    }

    /// A campaign as Keap sends it (REST v2 `GET /campaigns/{id}`: `active_contact_count`,
    /// `completed_contact_count`, …), or `None` when Keap has none with this id.
    pub async fn campaign(
        &self,
        cred: &KeapCredential,
        id: &str,
    ) -> Result<Option<Value>, KeapError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Ok(None);
        }
        match self
            .request(
                cred,
                Req {
                    operation: "get_campaign",
                    what: "read the campaign",
                    method: reqwest::Method::GET,
                    path: &format!(
                        "crm/rest/v2/campaigns/{}",
                        crate::http::path_segment(Platform::Keap, id)?
                    ),
                    query: &[],
                    body: None,
                    idempotent: true,
                },
            )
            .await
        {
            Ok(answer) => Self::decode(&answer, "the campaign").map(Some),
            Err(KeapError::Other(e)) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates or updates a contact by email (REST v2 `POST /contacts?duplicate_option=Email`),
    /// then applies its tags; answers the contact id.
    pub async fn upsert_contact(
        &self,
        cred: &KeapCredential,
        s: &ContactUpsert,
    ) -> Result<String, KeapError> {
        let mut body = json!({
            "email_addresses": [{"email": s.email, "field": "EMAIL1"}],
        });
        if let Some(v) = &s.first_name {
            body["given_name"] = json!(v);
        }
        if let Some(v) = &s.last_name {
            body["family_name"] = json!(v);
        }
        if let Some(v) = &s.phone {
            body["phone_numbers"] = json!([{"number": v, "field": "PHONE1"}]);
        }
        if let Some(v) = &s.lead_source_id {
            body["leadsource_id"] = json!(v);
        }
        let answer = self
            .request(
                cred,
                Req {
                    operation: "upsert_contact",
                    what: "create or update the contact",
                    method: reqwest::Method::POST,
                    path: "crm/rest/v2/contacts",
                    query: &[("duplicate_option", "Email".to_owned())],
                    body: Some(&body),
                    idempotent: true,
                },
            )
            .await?;
        let created: Value = Self::decode(&answer, "the contact upsert")?;
        let id = created
            .get("id")
            .and_then(models::id_string)
            .ok_or_else(|| KeapError::Other(errors::malformed("the contact upsert")))?;
        for tag in &s.tag_ids {
            let body = json!({"contact_ids": [id]});
            self.request(
                cred,
                Req {
                    operation: "apply_tags",
                    what: &format!("apply tag {tag}"),
                    method: reqwest::Method::POST,
                    path: &format!(
                        "crm/rest/v2/tags/{}/contacts:applyTags",
                        crate::http::path_segment(Platform::Keap, tag)?
                    ),
                    query: &[],
                    body: Some(&body),
                    idempotent: true,
                },
            )
            .await?;
        }
        Ok(id)
    }

    /// The id of the contact with this email, if Keap has one (REST v1 `GET /contacts?email=`).
    pub async fn contact_id_by_email(
        &self,
        cred: &KeapCredential,
        email: &str,
    ) -> Result<Option<String>, KeapError> {
        let page = self
            .list_contacts(
                cred,
                &ContactQuery {
                    limit: 1,
                    email: Some(email.to_owned()),
                    ..ContactQuery::default()
                },
            )
            .await?;
        Ok(page.contacts.into_iter().next().map(|c| c.id))
    }

    /// Queues an email to contacts (REST v1 `POST /emails/queue`, `EmailSendRequest`): the
    /// bodies go Base64-encoded as Keap requires; Keap answers 202 with no body. Not repeated
    /// after an ambiguous failure (a second copy would be sent).
    pub async fn queue_email(
        &self,
        cred: &KeapCredential,
        e: &EmailInput,
    ) -> Result<(), KeapError> {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let contacts: Vec<Value> = e
            .recipients
            .iter()
            .map(|id| id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)))
            .collect();
        let mut body = json!({
            "contacts": contacts,
            "subject": e.subject,
            "user_id": e.user_id,
        });
        if let Some(html) = &e.html {
            body["html_content"] = json!(b64(html));
        }
        if let Some(text) = &e.text {
            body["plain_content"] = json!(b64(text));
        }
        self.request(
            cred,
            Req {
                operation: "queue_email",
                what: "send the email",
                method: reqwest::Method::POST,
                path: "crm/rest/v1/emails/queue",
                query: &[],
                body: Some(&body),
                idempotent: false,
            },
        )
        .await?;
        Ok(())
    }

    /// Exchanges a refresh token for a new pair (form body, client credentials in Basic auth).
    /// Not retried after an ambiguous failure: Keap may have rotated the token already.
    pub async fn refresh(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ConnectorError> {
        let url = self.url("token")?;
        let budget_key = format!("token:{}", digest(client_id));
        let answer = self
            .client
            .send(
                Call {
                    operation: "refresh_token",
                    class: "token",
                    budget_key: &budget_key,
                    idempotent: false,
                },
                |http| {
                    http.post(url.clone())
                        .basic_auth(client_id, Some(client_secret.expose_secret()))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", refresh_token.expose_secret()),
                        ])
                },
            )
            .await?;
        if !answer.is_success() {
            return Err(errors::map_token_error(&answer));
        }
        token_set(&answer.body)
    }
}

impl KeapConnector {
    /// Keap's authorize URL for a browser: `client_id`, `redirect_uri`, `response_type=code`,
    /// `scope=full` and our `state`.
    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> url::Url {
        let mut url = self.settings.upstreams.keap_authorize.clone();
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "full")
            .append_pair("state", state);
        url
    }

    /// Exchanges an authorization code (form body with the client credentials, as Keap
    /// documents for this grant). Not retried after an ambiguous failure: codes are single-use.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenSet, ConnectorError> {
        let url = self.url("token")?;
        let budget_key = format!("token:{}", digest(client_id));
        let answer = self
            .client
            .send(
                Call {
                    operation: "exchange_code",
                    class: "token",
                    budget_key: &budget_key,
                    idempotent: false,
                },
                |http| {
                    http.post(url.clone()).form(&[
                        ("client_id", client_id),
                        ("client_secret", client_secret.expose_secret()),
                        ("code", code),
                        ("grant_type", "authorization_code"),
                        ("redirect_uri", redirect_uri),
                    ])
                },
            )
            .await?;
        if !answer.is_success() {
            return Err(errors::map_token_error(&answer));
        }
        token_set(&answer.body)
    }
}

fn token_set(body: &[u8]) -> Result<TokenSet, ConnectorError> {
    let token: models::TokenResponse =
        serde_json::from_slice(body).map_err(|_| errors::malformed("the token request"))?;
    Ok(TokenSet {
        expires_at: expires_at(token.expires_in),
        tenant: token
            .scope
            .as_deref()
            .and_then(|s| s.split_once('|'))
            .map(|(_, t)| t.to_owned()),
        access_token: SecretString::from(token.access_token),
        refresh_token: SecretString::from(token.refresh_token),
    })
}

/// When a token given `expires_in` seconds now expires (Keap's 24 h when absent).
pub fn expires_at(expires_in: Option<i64>) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(expires_in.unwrap_or(86_400).clamp(0, 10 * 365 * 86_400))
}

/// Whether a token expiring at `at` should be refreshed before use.
pub fn needs_refresh(at: DateTime<Utc>) -> bool {
    let margin = chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default();
    at - Utc::now() <= margin
}

/// Our keys for Keap's per-campaign counts, in answer order, and Keap's fields for them.
pub const CAMPAIGN_COUNTS: [(&str, &str); 2] = [
    ("activeContacts", "active_contact_count"),
    ("completedContacts", "completed_contact_count"),
];

/// The counts a REST v2 campaign object carries, under our keys.
pub fn campaign_counts(campaign: &Value) -> std::collections::BTreeMap<&'static str, u64> {
    CAMPAIGN_COUNTS
        .iter()
        .filter_map(|(ours, theirs)| Some((*ours, campaign.get(*theirs)?.as_u64()?)))
        .collect()
}

#[async_trait::async_trait]
impl Connector for KeapConnector {
    fn platform(&self) -> Platform {
        Platform::Keap
    }

    fn client(&self) -> &crate::http::UpstreamClient {
        &self.client
    }
}
