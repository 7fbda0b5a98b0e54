//! Customer.io's three APIs: Track (Basic site id + tracking key), App (bearer App API key) and
//! Data Pipelines (Basic CDP key), each with US and EU origins, behind one connector.
//!
//! One [`UpstreamClient`] carries the documented budgets: App API 10/s, broadcast triggers one
//! per 10 s per broadcast, transactional sends 100/s, Track 100/s, Data Pipelines 3000 per 3 s.
//! Budget keys are SHA-256 digests of the credential, never the credential.
//!
//! - [`check`]: credential tests with wrong-kind and wrong-region diagnoses.
//! - [`reads`]: campaigns, segments, broadcasts, newsletters, people by email.
//! - [`writes`]: people upserts through Track (one, or many through `/api/v2/batch`).
//! - [`errors`]: Customer.io's answers mapped onto [`ConnectorError`] in one table.

pub mod check;
mod consent;
mod errors;
pub mod metrics;
pub mod reads;
pub mod sync;
pub mod webhooks;
pub mod writes;

use std::time::Duration;

use domain::{Platform, Region};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use crate::{
    Connector, ConnectorError, Settings,
    http::{Answer, Call, UpstreamClient},
    rate::Rate,
};

pub use check::{ApiCheck, ConnectionReport};
pub use reads::{CampaignFilter, NEWSLETTER_PAGE, Person, Segment};
pub use writes::{
    BroadcastAudience, ItemFailure, LimitError, PersonId, PersonUpsert, Profile, TrackEvent,
    Transactional, check_event, check_person,
};

/// Endpoint classes with their own budget.
pub(crate) mod class {
    pub const APP: &str = "app";
    pub const TRIGGER: &str = "trigger";
    pub const TRANSACTIONAL: &str = "transactional";
    pub const TRACK: &str = "track";
    pub const CDP: &str = "cdp";
}

/// Our budgets pace this many percent under the published limits: a budget at exactly the
/// limit meets Customer.io's bucket with no token to spare, and network jitter alone then draws
/// 429s.
pub const BUDGET_HEADROOM: u8 = 3;

/// The published limits (shared/platforms/customerio.md §1.4, §2.1, §3).
pub const BUDGETS: [(&str, Rate); 5] = [
    (class::APP, Rate::per_second(10)),
    (class::TRIGGER, Rate::new(1, Duration::from_secs(10))),
    (class::TRANSACTIONAL, Rate::per_second(100)),
    (class::TRACK, Rate::per_second(100)),
    (class::CDP, Rate::new(3000, Duration::from_secs(3))),
];

/// A publisher's Customer.io credentials. No `Debug`: the keys never reach a log.
pub struct Credentials {
    pub region: Region,
    /// The workspace's Site ID (not a secret: it is half of the Track pair).
    pub site_id: String,
    /// The App API key (bearer).
    pub api_key: SecretString,
    /// The Track API key; when absent, `api_key` is tried as the Track key (CONTRACT §4).
    pub tracking_key: Option<SecretString>,
    /// A Data Pipelines source key.
    pub cdp_api_key: Option<SecretString>,
}

impl Credentials {
    /// The key used with the site id on the Track API.
    pub fn track_key(&self) -> &SecretString {
        self.tracking_key.as_ref().unwrap_or(&self.api_key)
    }
}

/// Which of the three APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Track,
    App,
    Cdp,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Track => "Track API",
            Api::App => "App API",
            Api::Cdp => "Data Pipelines API",
        }
    }
}

/// The Customer.io connector.
pub struct CustomerioConnector {
    settings: Settings,
    client: UpstreamClient,
}

impl CustomerioConnector {
    /// What this connector's rate budgets are doing (for `…/limits` and metrics).
    pub fn limits(&self) -> &std::sync::Arc<crate::limits::LimitsTracker> {
        self.client.limits()
    }

    pub fn new(settings: &Settings) -> Self {
        Self {
            client: UpstreamClient::new(
                Platform::Customerio,
                settings.timeout,
                &settings.budgets(&BUDGETS, BUDGET_HEADROOM),
                settings.observer.clone(),
            )
            .with_shared_budgets(settings.shared_budgets.clone())
            // One trigger per 10 s: a second one answers RATE_LIMIT_EXCEEDED with the wait as
            // Retry-After at once, rather than holding the API request for up to 10 s.
            .with_class_max_wait(class::TRIGGER, Duration::ZERO),
            settings: settings.clone(),
        }
    }

    /// The origin of `api` in `region`.
    pub fn origin(&self, api: Api, region: Region) -> &Url {
        let u = &self.settings.upstreams;
        match (api, region) {
            (Api::Track, Region::Us) => &u.customerio_track_us,
            (Api::Track, Region::Eu) => &u.customerio_track_eu,
            (Api::App, Region::Us) => &u.customerio_app_us,
            (Api::App, Region::Eu) => &u.customerio_app_eu,
            (Api::Cdp, Region::Us) => &u.customerio_cdp_us,
            (Api::Cdp, Region::Eu) => &u.customerio_cdp_eu,
        }
    }

    fn url(&self, api: Api, region: Region, path: &str) -> String {
        let origin = self.origin(api, region).as_str().trim_end_matches('/');
        format!("{origin}{path}")
    }

    /// A GET on the App API with the bearer key; answers the 2xx or the mapped error.
    async fn app_get(
        &self,
        region: Region,
        key: &SecretString,
        operation: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, ConnectorError> {
        let url = self.url(Api::App, region, path);
        let digest = budget_key(key);
        self.client
            .send(
                Call {
                    operation,
                    class: class::APP,
                    budget_key: &digest,
                    idempotent: true,
                },
                |http| http.get(&url).bearer_auth(key.expose_secret()).query(query),
            )
            .await
    }
}

/// The budget owner of a credential: a hex SHA-256 prefix, never the credential itself.
pub fn budget_key(secret: &SecretString) -> String {
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    hex::encode(&digest[..12])
}

#[async_trait::async_trait]
impl Connector for CustomerioConnector {
    fn platform(&self) -> Platform {
        Platform::Customerio
    }

    fn client(&self) -> &crate::http::UpstreamClient {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_key_is_a_digest_not_the_key() {
        let key = SecretString::from("7c1e9a3f5b2d4e6a8c0f1b3d5e7a9c2e".to_owned());
        let k = budget_key(&key);
        assert_eq!(k.len(), 24);
        assert!(!k.contains("7c1e9a3f"));
        assert_eq!(k, budget_key(&key));
    }

    #[test]
    fn origins_by_api_and_region() {
        let c = CustomerioConnector::new(&Settings::defaults());
        assert_eq!(
            c.url(Api::Track, Region::Eu, "/api/v1/accounts/region"),
            "https://track-eu.customer.io/api/v1/accounts/region"
        );
        assert_eq!(
            c.url(Api::App, Region::Us, "/v1/campaigns"),
            "https://api.customer.io/v1/campaigns"
        );
        assert_eq!(
            c.url(Api::Cdp, Region::Eu, "/v1/identify"),
            "https://cdp-eu.customer.io/v1/identify"
        );
    }
}
