//! Iterable: one project's API key in its region.

mod consent;
mod reads;
mod sync;
pub mod webhooks;
mod writes;

use async_trait::async_trait;
use axum::http::HeaderMap;
use connectors::{
    customerio::metrics::MetricsObject,
    iterable::{BulkOutcome as WireOutcome, Credentials},
};
use domain::reads::{Listing, Read, ReadQuery};
use domain::{
    Platform,
    operations::{
        Accepted, BatchOutcome, EventInput, MessageInput, Queued, SubscriberInput, Tested, Upserted,
    },
};
use serde::Deserialize;
use store::IntegrationRecord;

pub use writes::is_email;

use super::{OwnSession, PlatformSession, Reported, fields, missing};
use crate::{
    analytics::buckets::Window, error::Result, integrations, state::AppState,
    sync::source::SyncSession, webhooks::Reply,
};

/// What the sessions read of a stored Iterable integration's config (other keys are shown to
/// the publisher but not used here).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IterableSettings {
    /// Message event types the `events` sync exports; empty means the connector's default set.
    pub sync_event_types: Vec<String>,
    /// The channels an opt-out unsubscribes the reader from (issue 17); absent or empty: every
    /// Marketing + Email channel of `GET /api/channels`. Read leniently (ids as numbers or
    /// numeric strings), so a bad value here never costs the other settings.
    #[serde(deserialize_with = "consent::channel_ids")]
    pub consent_channel_ids: Option<Vec<u64>>,
}

/// A connected Iterable project.
pub struct IterableSession {
    pub record: IntegrationRecord,
    pub creds: Credentials,
    pub settings: IterableSettings,
}

#[async_trait]
impl OwnSession for IterableSession {
    const PLATFORM: Platform = Platform::Iterable;

    async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        let mut secrets = integrations::open_secrets(state, &record).await?;
        let key = secrets
            .remove(fields::API_KEY)
            .ok_or_else(|| missing(&record, fields::API_KEY))?;
        // Written by our own connect; a config that does not read is treated as the default.
        let settings = serde_json::from_value(record.config.clone()).unwrap_or_default();
        Ok(Self {
            creds: Credentials::new(key, record.region.unwrap_or_default()),
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
impl PlatformSession for IterableSession {
    fn record(&self) -> &IntegrationRecord {
        &self.record
    }

    fn budget_keys(&self) -> Vec<String> {
        vec![self.creds.budget_key().to_owned()]
    }

    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession> {
        sync::reader(state, *self)
    }

    /// `GET /api/channels`, as test-connection.
    async fn test(&mut self, state: &AppState) -> Result<Tested> {
        let (account, latency) = state
            .connectors
            .iterable
            .test_connection(&self.creds)
            .await?;
        let account = serde_json::to_value(account)
            .map_err(|e| crate::error::Error::internal_from("rendering the account", e))?;
        Ok(Tested::new(
            Platform::Iterable,
            Some(self.creds.region()),
            account,
            latency,
        ))
    }

    /// The campaign's totals over the window (`GET /api/campaigns/metrics`, one row); Iterable
    /// gives no breakdown, so the series comes from stored history or webhooks.
    async fn campaign_metrics(
        &mut self,
        state: &AppState,
        _object: MetricsObject,
        campaign_id: &str,
        window: &Window,
    ) -> Result<Reported> {
        let row = state
            .connectors
            .iterable
            .campaign_metrics(&self.creds, campaign_id, window.from, window.to)
            .await?
            .ok_or_else(|| {
                crate::error::Error::not_found(format!(
                    "Iterable has no campaign {campaign_id} in this project."
                ))
                .detail("campaignId", campaign_id.to_owned())
            })?;
        Ok(Reported {
            totals: connectors::iterable::metric_totals(&row),
            ..Reported::default()
        })
    }

    async fn read(&mut self, state: &AppState, read: Read, query: &ReadQuery) -> Result<Listing> {
        reads::read(state, self, read, query).await
    }

    /// `users/update`, keyed by the email (else the userId).
    async fn upsert_subscriber(
        &mut self,
        state: &AppState,
        input: SubscriberInput,
    ) -> Result<Upserted> {
        let (user, id) = writes::user(input, "")?;
        state
            .connectors
            .iterable
            .upsert_user(&self.creds, &user)
            .await?;
        Ok(writes::upserted(id))
    }

    /// `users/bulkUpdate`, in batches within Iterable's limits (the connector's).
    async fn upsert_subscribers(
        &mut self,
        state: &AppState,
        items: Vec<(usize, SubscriberInput)>,
    ) -> Result<BatchOutcome> {
        let checked = writes::check("subscribers", items, |s, prefix| {
            writes::user(s, prefix).map(|(u, _)| u)
        });
        let wire = if checked.valid.is_empty() {
            WireOutcome::default()
        } else {
            state
                .connectors
                .iterable
                .bulk_upsert_users(&self.creds, &checked.valid)
                .await?
        };
        Ok(writes::outcome(wire, &checked.positions, checked.failed))
    }

    /// `events/track`, with our id on the event so that a retry never duplicates it.
    async fn track_event(&mut self, state: &AppState, input: EventInput) -> Result<Accepted> {
        let event = writes::event(input, "")?;
        state
            .connectors
            .iterable
            .track_event(&self.creds, &event)
            .await?;
        Ok(Accepted {
            platform: Platform::Iterable,
            status: "accepted",
            id: Some(event.id),
        })
    }

    /// `events/trackBulk`, in batches.
    async fn track_events(
        &mut self,
        state: &AppState,
        items: Vec<(usize, EventInput)>,
    ) -> Result<BatchOutcome> {
        let checked = writes::check("events", items, writes::event);
        let wire = if checked.valid.is_empty() {
            WireOutcome::default()
        } else {
            state
                .connectors
                .iterable
                .track_events(&self.creds, &checked.valid)
                .await?
        };
        Ok(writes::outcome(wire, &checked.positions, checked.failed))
    }

    /// Unsubscribes the reader from each consent channel through the Subscriptions API; on its
    /// 404 "not enabled", merges the channels into the user's stored unsubscribes under a lock.
    async fn opt_out(
        &mut self,
        state: &AppState,
        opt_out: &domain::consent::OptOut,
    ) -> Result<domain::consent::Applied> {
        consent::opt_out(state, self, &opt_out.email).await
    }

    /// `POST /api/users/forget`.
    async fn erase(&mut self, state: &AppState, email: &str) -> Result<domain::consent::Applied> {
        consent::erase(state, self, email).await
    }

    /// `/api/{medium}/target`: one user, through a running triggered campaign of the channel.
    async fn send_message(&mut self, state: &AppState, input: MessageInput) -> Result<Queued> {
        let channel = input.channel;
        let target = writes::target(input)?;
        let message_id = state
            .connectors
            .iterable
            .send_target(&self.creds, &target)
            .await?;
        Ok(Queued {
            platform: Platform::Iterable,
            channel,
            message_id,
            status: "queued",
        })
    }
}
