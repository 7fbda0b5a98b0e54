//! Customer.io: the App API key, the Track pair (site id and tracking key), an optional Data
//! Pipelines key, in the workspace's region.

mod metrics;
mod reads;
mod sync;
pub mod webhooks;
mod writes;

use async_trait::async_trait;
use axum::http::HeaderMap;
use chrono::Utc;
use connectors::customerio::{self, Credentials, metrics::MetricsObject};
use domain::reads::{Listing, Read, ReadQuery};
use domain::{
    ErrorCode, Platform,
    operations::{
        Accepted, BatchOutcome, EventInput, ItemFailure, MessageInput, Queued, SubscriberInput,
        Tested, Upserted,
    },
};
use serde::Deserialize;
use serde_json::Value;
use store::IntegrationRecord;

use super::{OwnSession, PlatformSession, Reported, fields, missing};
use crate::{
    analytics::buckets::Window,
    error::{Error, Result},
    integrations,
    state::AppState,
    sync::source::SyncSession,
    webhooks::Reply,
};

/// What the sessions read of a stored Customer.io integration's config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerioSettings {
    pub site_id: String,
    /// Segments whose members the `segment_members` sync reads (ids as strings).
    #[serde(deserialize_with = "ids")]
    pub segment_ids: Vec<String>,
}

/// Ids stored as strings or numbers, as strings.
fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let values = Vec::<Value>::deserialize(d)?;
    Ok(values
        .into_iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect())
}

/// A connected Customer.io workspace.
pub struct CustomerioSession {
    pub record: IntegrationRecord,
    pub creds: Credentials,
    pub settings: CustomerioSettings,
}

#[async_trait]
impl OwnSession for CustomerioSession {
    const PLATFORM: Platform = Platform::Customerio;

    async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        let mut secrets = integrations::open_secrets(state, &record).await?;
        let api_key = secrets
            .remove(fields::API_KEY)
            .ok_or_else(|| missing(&record, fields::API_KEY))?;
        let settings: CustomerioSettings =
            serde_json::from_value(record.config.clone()).unwrap_or_default();
        Ok(Self {
            creds: Credentials {
                region: record.region.unwrap_or_default(),
                site_id: settings.site_id.clone(),
                api_key,
                tracking_key: secrets.remove(fields::TRACKING_KEY),
                cdp_api_key: secrets.remove(fields::CDP_API_KEY),
            },
            settings,
            record,
        })
    }

    fn check_read(read: Read, query: &ReadQuery) -> Result<()> {
        reads::plan(read, query).map(drop)
    }

    async fn receive_webhook(
        state: &AppState,
        record: &IntegrationRecord,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply> {
        webhooks::receive(state, record, headers, body).await
    }
}

#[async_trait]
impl PlatformSession for CustomerioSession {
    fn record(&self) -> &IntegrationRecord {
        &self.record
    }

    fn budget_keys(&self) -> Vec<String> {
        [
            Some(&self.creds.api_key),
            self.creds.tracking_key.as_ref(),
            self.creds.cdp_api_key.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(customerio::budget_key)
        .collect()
    }

    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession> {
        sync::reader(state, *self)
    }

    /// Each API the stored keys are for, as test-connection.
    async fn test(&mut self, state: &AppState) -> Result<Tested> {
        let started = std::time::Instant::now();
        let report = state
            .connectors
            .customerio
            .test_connection(&self.creds)
            .await?;
        let account = serde_json::to_value(report)
            .map_err(|e| Error::internal_from("rendering the account", e))?;
        Ok(Tested::new(
            Platform::Customerio,
            Some(self.creds.region),
            account,
            started.elapsed(),
        ))
    }

    /// Customer.io's series for the window, when its retention covers the whole of it.
    async fn campaign_metrics(
        &mut self,
        state: &AppState,
        object: MetricsObject,
        campaign_id: &str,
        window: &Window,
    ) -> Result<Reported> {
        let series =
            metrics::series(state, &self.creds, object, campaign_id, window, Utc::now()).await?;
        Ok(Reported {
            series,
            ..Reported::default()
        })
    }

    async fn read(&mut self, state: &AppState, read: Read, query: &ReadQuery) -> Result<Listing> {
        reads::read(state, self, read, query).await
    }

    /// Track identify (`PUT /api/v1/customers/{id}`; a phone-only person through `/api/v2/batch`),
    /// keyed by `userId`, else `email`, else `phone`. Customer.io's limits are checked first.
    async fn upsert_subscriber(
        &mut self,
        state: &AppState,
        input: SubscriberInput,
    ) -> Result<Upserted> {
        let person =
            writes::person(input).map_err(|(field, message)| Error::invalid(field, message))?;
        state
            .connectors
            .customerio
            .upsert_person(&self.creds, &person)
            .await?;
        Ok(Upserted {
            platform: Platform::Customerio,
            id: Some(person.identifier.value().to_owned()),
            status: "upserted",
        })
    }

    /// Up to [`writes::MAX_SUBSCRIBERS`] people through `/api/v2/batch` (requests under 500 KB);
    /// people our checks refuse are failures before sending, people Customer.io refuses (its 207
    /// answer) failures at their position, and the rest are applied.
    async fn upsert_subscribers(
        &mut self,
        state: &AppState,
        items: Vec<(usize, SubscriberInput)>,
    ) -> Result<BatchOutcome> {
        writes::check_batch_size("subscribers", &items, writes::MAX_SUBSCRIBERS, "people")?;
        let mut failed = Vec::new();
        let mut people = Vec::new();
        let mut indexes = Vec::new();
        for (i, input) in items {
            match writes::person(input) {
                Ok(p) => {
                    people.push(p);
                    indexes.push(i);
                }
                Err(problem) => failed.push(writes::item_failure("subscribers", i, problem)),
            }
        }
        let mut accepted = people.len();
        if !people.is_empty() {
            let refused = state
                .connectors
                .customerio
                .upsert_batch(&self.creds, &people)
                .await?;
            for f in refused {
                if let Some(&index) = indexes.get(f.index) {
                    accepted -= 1;
                    failed.push(ItemFailure {
                        index,
                        code: ErrorCode::ValidationError,
                        error: f.message,
                    });
                }
            }
        }
        failed.sort_by_key(|f| f.index);
        Ok(BatchOutcome { accepted, failed })
    }

    /// Through Data Pipelines (`/v1/track`, strict mode) when a `cdpApiKey` is stored and a
    /// `userId` is given, else the Track API (by `userId`, else `email`, else anonymous).
    /// Customer.io's limits (name ≤100 bytes, data ≤100,000 bytes) are checked first.
    async fn track_event(&mut self, state: &AppState, input: EventInput) -> Result<Accepted> {
        let event =
            writes::event(input).map_err(|(field, message)| Error::invalid(field, message))?;
        state
            .connectors
            .customerio
            .track_event(&self.creds, &event)
            .await?;
        Ok(Accepted {
            platform: Platform::Customerio,
            status: "accepted",
            id: None,
        })
    }

    /// Up to [`writes::MAX_EVENTS`] events, one call each (Customer.io has no bulk event call
    /// that takes anonymous events and Data Pipelines alike). An item refused by our checks or
    /// by Customer.io is a failure at its position; an error about the whole workspace (its keys,
    /// its rate limit, Customer.io unreachable) stops the batch: before any event was accepted it
    /// is the answer, after, the remaining items fail with its code and are not sent.
    async fn track_events(
        &mut self,
        state: &AppState,
        items: Vec<(usize, EventInput)>,
    ) -> Result<BatchOutcome> {
        writes::check_batch_size("events", &items, writes::MAX_EVENTS, "events")?;
        let mut outcome = BatchOutcome::default();
        let mut stop: Option<(ErrorCode, String)> = None;
        for (i, input) in items {
            if let Some((code, error)) = &stop {
                outcome.failed.push(ItemFailure {
                    index: i,
                    code: *code,
                    error: error.clone(),
                });
                continue;
            }
            let event = match writes::event(input) {
                Ok(e) => e,
                Err(problem) => {
                    outcome
                        .failed
                        .push(writes::item_failure("events", i, problem));
                    continue;
                }
            };
            match state
                .connectors
                .customerio
                .track_event(&self.creds, &event)
                .await
            {
                Ok(_) => outcome.accepted += 1,
                Err(e) if item_specific(e.code()) => outcome.failed.push(ItemFailure {
                    index: i,
                    code: e.code(),
                    error: e.message,
                }),
                Err(e) if outcome.accepted == 0 => return Err(e.into()),
                Err(e) => {
                    let code = e.code();
                    let error = format!("Not sent: an earlier event failed ({})", e.message);
                    outcome.failed.push(ItemFailure {
                        index: i,
                        code,
                        error: e.message,
                    });
                    stop = Some((code, error));
                }
            }
        }
        Ok(outcome)
    }

    /// Track identify `PUT /api/v1/customers/{email}` with `{"unsubscribed": true, "_update":
    /// true}`: the profile stays, and `_update` keeps an address nobody holds from creating a
    /// person (Customer.io answers 200 either way, so an unknown address reads as done).
    async fn opt_out(
        &mut self,
        state: &AppState,
        opt_out: &domain::consent::OptOut,
    ) -> Result<domain::consent::Applied> {
        state
            .connectors
            .customerio
            .unsubscribe_person(&self.creds, &opt_out.email)
            .await?;
        Ok(domain::consent::Applied::Done {
            detail: "Track PUT /api/v1/customers/{email} unsubscribed=true _update=true".into(),
        })
    }

    /// Person suppress alone (`POST /api/v1/customers/{email}/suppress`), as the fact sheet
    /// recommends for a right-to-be-forgotten request: it deletes the profile itself and blocks
    /// both the email and the person's id from being added again. A DELETE first would gain
    /// nothing and lose the id: suppressing an address whose person is already gone can only
    /// block the address.
    async fn erase(&mut self, state: &AppState, email: &str) -> Result<domain::consent::Applied> {
        state
            .connectors
            .customerio
            .suppress_person(&self.creds, email)
            .await?;
        Ok(domain::consent::Applied::Done {
            detail: "Track POST /api/v1/customers/{email}/suppress (deletes and blocks re-adding)"
                .into(),
        })
    }

    /// A transactional message through `/v1/send/{channel}` (`campaignId` is its id or trigger
    /// name), or, for an email with `data.broadcastId`, that API-triggered broadcast
    /// (`POST /v1/campaigns/{id}/triggers`, one per 10 s: a second one within that answers
    /// `RATE_LIMIT_EXCEEDED` at once with `Retry-After`).
    async fn send_message(&mut self, state: &AppState, input: MessageInput) -> Result<Queued> {
        let channel = input.channel;
        let connector = &state.connectors.customerio;
        let message_id = match writes::message(input)? {
            writes::Send::Transactional(msg) => {
                connector.send_transactional(&self.creds, &msg).await?
            }
            writes::Send::Broadcast { id, audience, data } => {
                connector
                    .trigger_broadcast(&self.creds, &id, &audience, &data)
                    .await?
            }
        };
        Ok(Queued {
            platform: Platform::Customerio,
            channel,
            message_id: Some(message_id),
            status: "queued",
        })
    }
}

/// Whether an upstream refusal is about the item alone (so the batch goes on).
fn item_specific(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::ValidationError | ErrorCode::NotFound)
}
