//! Testing a set of Customer.io keys, with a diagnosis a person can act on.
//!
//! Three probes run at once, none of which writes anything:
//! - Track: `GET /api/v1/accounts/region` with Basic `siteId:trackingKey` (or `apiKey` when no
//!   tracking key was given). It answers on either regional host and says the pair's region, so a
//!   pair of the other region is recognised without a second call.
//! - App: `GET /v1/workspaces` with the bearer App API key (region-bound).
//! - Data Pipelines (when a `cdpApiKey` is given): `POST /v1/identify` in strict mode
//!   (`X-Strict-Mode: 1`) with an empty call, which a valid key gets back as 400 (nothing
//!   stored) and a bad key as 401.
//!
//! A rejected key is then tried as the other kinds and in the other region, so the error can
//! say "this is an App API key, not a Track key" or "this key belongs to the EU region".

use domain::{Platform, Region};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Api, CustomerioConnector, budget_key, class, errors};
use crate::{ConnectorError, ErrorKind, http::Call};

/// Whether a probe's key was accepted.
enum Probe<T> {
    Accepted(T),
    Rejected,
}

impl<T> Probe<T> {
    fn accepted(&self) -> bool {
        matches!(self, Probe::Accepted(_))
    }
}

#[derive(Deserialize)]
struct TrackRegion {
    region: String,
    #[serde(default)]
    environment_id: Option<i64>,
}

#[derive(Deserialize)]
struct Workspaces {
    #[serde(default)]
    workspaces: Vec<Workspace>,
}

#[derive(Clone, Deserialize)]
struct Workspace {
    id: i64,
    #[serde(default)]
    name: Option<String>,
}

/// Which APIs accepted the keys (`account.apis`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ApiCheck {
    /// The Track API accepted `siteId` with `trackingKey` (or `apiKey`), in this region.
    pub track: bool,
    /// The App API accepted `apiKey` in this region.
    pub app: bool,
    /// The Data Pipelines API accepted `cdpApiKey`; `null` when none was given.
    pub cdp: Option<bool>,
}

/// What Customer.io told us about the account (`account` of a test-connection answer).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionReport {
    pub site_id: String,
    /// The workspace (`environment_id`) the Track pair belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    pub apis: ApiCheck,
    /// What was not checked, and why.
    pub notes: Vec<String>,
}

fn region_name(r: Region) -> &'static str {
    match r {
        Region::Us => "US",
        Region::Eu => "EU",
    }
}

impl CustomerioConnector {
    async fn probe_track(
        &self,
        region: Region,
        site_id: &str,
        key: &SecretString,
    ) -> Result<Probe<TrackRegion>, ConnectorError> {
        let url = self.url(Api::Track, region, "/api/v1/accounts/region");
        let digest = budget_key(key);
        let answer = self
            .client
            .send(
                Call {
                    operation: "track_region",
                    class: class::TRACK,
                    budget_key: &digest,
                    idempotent: true,
                },
                |http| {
                    http.get(&url)
                        .basic_auth(site_id, Some(key.expose_secret()))
                },
            )
            .await?;
        match answer.status.as_u16() {
            401 | 403 => Ok(Probe::Rejected),
            _ => errors::parse(Api::Track, "checking the Track credentials", &answer)
                .map(Probe::Accepted),
        }
    }

    async fn probe_app(
        &self,
        region: Region,
        key: &SecretString,
    ) -> Result<Probe<Vec<Workspace>>, ConnectorError> {
        let answer = self
            .app_get(region, key, "list_workspaces", "/v1/workspaces", &[])
            .await?;
        match answer.status.as_u16() {
            401 => Ok(Probe::Rejected),
            _ => errors::parse::<Workspaces>(Api::App, "checking the App API key", &answer)
                .map(|w| Probe::Accepted(w.workspaces)),
        }
    }

    async fn probe_cdp(
        &self,
        region: Region,
        key: &SecretString,
    ) -> Result<Probe<()>, ConnectorError> {
        let url = self.url(Api::Cdp, region, "/v1/identify");
        let digest = budget_key(key);
        let answer = self
            .client
            .send(
                Call {
                    operation: "cdp_check",
                    class: class::CDP,
                    budget_key: &digest,
                    idempotent: true,
                },
                |http| {
                    http.post(&url)
                        .basic_auth(key.expose_secret(), Some(""))
                        .header("X-Strict-Mode", "1")
                        .json(&serde_json::json!({}))
                },
            )
            .await?;
        match answer.status.as_u16() {
            // The empty call is invalid on purpose: a valid key gets 400 and nothing is stored.
            200..=299 | 400 => Ok(Probe::Accepted(())),
            401 | 403 => Ok(Probe::Rejected),
            _ => Err(errors::map_answer(
                Api::Cdp,
                "checking the Data Pipelines key",
                &answer,
            )),
        }
    }

    /// Tests the keys against the three APIs. Succeeds when the App API accepts `apiKey`, the
    /// Track API accepts `siteId` with `trackingKey` (when given) and Data Pipelines accepts
    /// `cdpApiKey` (when given); otherwise `INVALID_CREDENTIALS` with every diagnosis.
    pub async fn test_connection(
        &self,
        creds: &super::Credentials,
    ) -> Result<ConnectionReport, ConnectorError> {
        let region = creds.region;
        let site = creds.site_id.as_str();
        let track_given = creds.tracking_key.is_some();
        let (track, app, cdp) = tokio::join!(
            self.probe_track(region, site, creds.track_key()),
            self.probe_app(region, &creds.api_key),
            async {
                match &creds.cdp_api_key {
                    Some(k) => Some(self.probe_cdp(region, k).await),
                    None => None,
                }
            }
        );
        let (track, app, cdp) = (track?, app?, cdp.transpose()?);

        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut workspace_id = None;
        let mut workspace_name = None;

        let track_ok = match &track {
            Probe::Accepted(t) if t.region.eq_ignore_ascii_case(region.as_str()) => {
                workspace_id = t.environment_id;
                true
            }
            Probe::Accepted(t) => {
                let which = if track_given { "trackingKey" } else { "apiKey" };
                problems.push(format!(
                    "The Track credentials (siteId + {which}) belong to a workspace in Customer.io's {} region, but region is \"{}\": set region to \"{}\".",
                    t.region.to_ascii_uppercase(),
                    region.as_str(),
                    t.region.to_ascii_lowercase()
                ));
                false
            }
            Probe::Rejected if track_given => {
                problems.push(self.diagnose_track(creds).await?);
                false
            }
            Probe::Rejected => {
                notes.push("No trackingKey was given and apiKey is not a Track API key, so the Track API (people and events) is not usable: add trackingKey, the Tracking API key shown beside the Site ID.".to_owned());
                false
            }
        };

        let app_ok = match &app {
            Probe::Accepted(workspaces) => {
                match workspace_id {
                    Some(id) => {
                        match workspaces.iter().find(|w| w.id == id) {
                            Some(w) => workspace_name = w.name.clone(),
                            None if !workspaces.is_empty() => problems.push(format!(
                                "siteId and the Track key belong to workspace {id}, but the App API key belongs to another workspace ({}): use keys of one workspace.",
                                workspaces.iter().map(|w| w.id.to_string()).collect::<Vec<_>>().join(", ")
                            )),
                            None => {}
                        }
                    }
                    None => {
                        if let Some(w) = workspaces.first() {
                            workspace_id = Some(w.id);
                            workspace_name = w.name.clone();
                        }
                    }
                }
                true
            }
            Probe::Rejected => {
                let api_key_is_track = (!track_given).then(|| track.accepted());
                problems.push(self.diagnose_app(creds, api_key_is_track).await?);
                false
            }
        };

        let cdp_ok = match &cdp {
            None => None,
            Some(Probe::Accepted(())) => Some(true),
            Some(Probe::Rejected) => {
                problems.push(self.diagnose_cdp(creds).await?);
                Some(false)
            }
        };
        if cdp_ok.is_none() {
            notes.push("No cdpApiKey was given: events go through the Track API.".to_owned());
        }

        if !problems.is_empty() {
            return Err(ConnectorError::new(
                Platform::Customerio,
                ErrorKind::InvalidCredentials,
                problems.join(" "),
            )
            .with_status(401));
        }
        Ok(ConnectionReport {
            site_id: creds.site_id.clone(),
            workspace_id,
            workspace_name,
            apis: ApiCheck {
                track: track_ok,
                app: app_ok,
                cdp: cdp_ok,
            },
            notes,
        })
    }

    /// Why the Track API refused `siteId` + `trackingKey`.
    async fn diagnose_track(&self, creds: &super::Credentials) -> Result<String, ConnectorError> {
        let region = creds.region;
        let key = creds.track_key();
        for r in [region, region.other()] {
            if self.probe_app(r, key).await?.accepted() {
                return Ok(format!(
                    "trackingKey is an App API key{}, not a Tracking API key: send it as apiKey, and as trackingKey the Tracking API key shown beside the Site ID (Settings → Workspace Settings → API and webhook credentials).",
                    if r == region {
                        String::new()
                    } else {
                        format!(" (of the {} region)", region_name(r))
                    }
                ));
            }
        }
        if self.probe_cdp(region, key).await?.accepted() {
            return Ok("trackingKey is a Data Pipelines source key, not a Tracking API key: send it as cdpApiKey, and as trackingKey the Tracking API key shown beside the Site ID.".to_owned());
        }
        Ok("The Track API rejected siteId + trackingKey: check that both come from the same workspace (Settings → Workspace Settings → API and webhook credentials → Tracking API Keys) and that the key was not revoked.".to_owned())
    }

    /// Why the App API refused `apiKey`. `api_key_is_track` is known when no tracking key was
    /// given (the key was already tried on Track).
    async fn diagnose_app(
        &self,
        creds: &super::Credentials,
        api_key_is_track: Option<bool>,
    ) -> Result<String, ConnectorError> {
        let region = creds.region;
        let key = &creds.api_key;
        let other = region.other();
        if self.probe_app(other, key).await?.accepted() {
            return Ok(format!(
                "The App API key belongs to a workspace in Customer.io's {} region, but region is \"{}\": set region to \"{}\".",
                region_name(other),
                region.as_str(),
                other.as_str()
            ));
        }
        let is_track = match api_key_is_track {
            Some(known) => known,
            None => self
                .probe_track(region, &creds.site_id, key)
                .await?
                .accepted(),
        };
        if is_track {
            return Ok("apiKey is a Tracking API key, not an App API key: send it as trackingKey, and as apiKey an App API key (Settings → Account Settings → API Credentials → App API Keys).".to_owned());
        }
        for r in [region, other] {
            if self.probe_cdp(r, key).await?.accepted() {
                return Ok("apiKey is a Data Pipelines source key, not an App API key: send it as cdpApiKey, and as apiKey an App API key (Settings → Account Settings → API Credentials → App API Keys).".to_owned());
            }
        }
        Ok(format!(
            "The App API ({} region) rejected apiKey: create or copy an App API key under Settings → Account Settings → API Credentials → App API Keys, and check that it was not revoked.",
            region_name(region)
        ))
    }

    /// Why Data Pipelines refused `cdpApiKey`.
    async fn diagnose_cdp(&self, creds: &super::Credentials) -> Result<String, ConnectorError> {
        let region = creds.region;
        let Some(key) = &creds.cdp_api_key else {
            return Ok(String::new());
        };
        let other = region.other();
        if self.probe_cdp(other, key).await?.accepted() {
            return Ok(format!(
                "cdpApiKey belongs to a Data Pipelines source in Customer.io's {} region, but region is \"{}\": set region to \"{}\".",
                region_name(other),
                region.as_str(),
                other.as_str()
            ));
        }
        if self.probe_app(region, key).await?.accepted() {
            return Ok("cdpApiKey is an App API key, not a Data Pipelines source key: send it as apiKey, and as cdpApiKey the API key of a Data Pipelines source (Data Pipelines → Sources → your source → Settings).".to_owned());
        }
        if self
            .probe_track(region, &creds.site_id, key)
            .await?
            .accepted()
        {
            return Ok("cdpApiKey is a Tracking API key, not a Data Pipelines source key: send it as trackingKey, and as cdpApiKey the API key of a Data Pipelines source.".to_owned());
        }
        Ok("Data Pipelines rejected cdpApiKey: copy the API key of an HTTP API source (Data Pipelines → Sources → your source → Settings), or leave cdpApiKey out to send events through the Track API.".to_owned())
    }
}
