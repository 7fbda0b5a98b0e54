//! Keap: an OAuth token set that the session keeps fresh ([`tokens`]: single-flight refresh
//! across tasks and replicas), or a Personal Access Token / Service Account Key.
//!
//! The common writes ([`writes`]): subscribers become CRM contacts upserted by email, messages
//! are emails queued to a contact; events are not Keap's (the trait's default answers).

pub mod consent;
pub mod reads;
pub mod settings;
pub mod sync;
pub mod tokens;
pub mod webhooks;
pub mod writes;

use async_trait::async_trait;
use axum::http::HeaderMap;
use connectors::customerio::metrics::MetricsObject;
use domain::reads::{Listing, Read, ReadQuery};
use domain::{
    Platform,
    operations::{BatchOutcome, MessageInput, Queued, SubscriberInput, Tested, Upserted},
};
use store::IntegrationRecord;

pub use settings::KeapSettings;
pub use tokens::Session as KeapSession;

use super::{OwnSession, PlatformSession, Reported};
use crate::{
    analytics::buckets::Window, error::Result, state::AppState, sync::source::SyncSession,
    webhooks::Reply,
};

#[async_trait]
impl OwnSession for KeapSession {
    const PLATFORM: Platform = Platform::Keap;

    /// Opens a stored Keap integration (the first call refreshes a token close to expiry).
    async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        tokens::open(state, record).await
    }

    fn check_read(read: Read, query: &ReadQuery) -> Result<()> {
        reads::plan(read, query).map(drop)
    }

    /// Unregisters the REST hooks connect registered.
    async fn disconnecting(state: &AppState, record: &IntegrationRecord) {
        let publisher = record.publisher_id.clone();
        match domain::PublisherId::parse(&publisher) {
            Ok(publisher) => webhooks::unregister(state, &publisher, record).await,
            Err(e) => tracing::warn!(error = %e, "stored publisher id does not parse"),
        }
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
impl PlatformSession for KeapSession {
    fn record(&self) -> &IntegrationRecord {
        &self.record
    }

    fn budget_keys(&self) -> Vec<String> {
        vec![self.cred.budget_key().to_owned()]
    }

    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession> {
        sync::reader(state, *self)
    }

    /// Keap's account profile, through the token the session keeps fresh.
    async fn test(&mut self, state: &AppState) -> Result<Tested> {
        let keap = state.connectors.keap.clone();
        let info = tokens::call(state, self, |cred| {
            let keap = keap.clone();
            async move { keap.test_connection(&cred).await }
        })
        .await?;
        Ok(Tested::new(
            Platform::Keap,
            None,
            info.account,
            info.latency,
        ))
    }

    /// The campaign's `activeContacts` and `completedContacts` as of now (Keap reports no email
    /// figures per campaign).
    async fn campaign_metrics(
        &mut self,
        state: &AppState,
        _object: MetricsObject,
        campaign_id: &str,
        _window: &Window,
    ) -> Result<Reported> {
        let keap = state.connectors.keap.clone();
        let extra = tokens::call(state, self, |cred| {
            let keap = keap.clone();
            let id = campaign_id.to_owned();
            async move { keap.campaign_counts(&cred, &id).await }
        })
        .await?
        .ok_or_else(|| {
            crate::error::Error::not_found(format!(
                "Keap has no campaign {campaign_id} in this account."
            ))
            .detail("campaignId", campaign_id.to_owned())
        })?;
        Ok(Reported {
            extra,
            ..Reported::default()
        })
    }

    async fn read(&mut self, state: &AppState, read: Read, query: &ReadQuery) -> Result<Listing> {
        reads::read(state, self, read, query).await
    }

    async fn upsert_subscriber(
        &mut self,
        state: &AppState,
        input: SubscriberInput,
    ) -> Result<Upserted> {
        writes::upsert_subscriber(state, self, input).await
    }

    async fn upsert_subscribers(
        &mut self,
        state: &AppState,
        items: Vec<(usize, SubscriberInput)>,
    ) -> Result<BatchOutcome> {
        writes::upsert_subscribers(state, self, items).await
    }

    async fn send_message(&mut self, state: &AppState, input: MessageInput) -> Result<Queued> {
        writes::send_message(state, self, input).await
    }

    /// `PATCH /crm/rest/v2/emailAddresses/{email}/status` `{"opted_in": false, "reason":
    /// "SharpSend: <reason>"}`: the status is the address's, so it covers every contact with it.
    async fn opt_out(
        &mut self,
        state: &AppState,
        opt_out: &domain::consent::OptOut,
    ) -> Result<domain::consent::Applied> {
        consent::opt_out(state, self, opt_out).await
    }

    /// Every contact holding the address (v2 `filter=email==…`), deleted one by one.
    async fn erase(&mut self, state: &AppState, email: &str) -> Result<domain::consent::Applied> {
        consent::erase(state, self, email).await
    }
}
