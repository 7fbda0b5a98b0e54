//! Keap: an OAuth token set that the session keeps fresh ([`tokens`]: single-flight refresh
//! across tasks and replicas), or a Personal Access Token / Service Account Key.
//!
//! The common writes ([`writes`]): subscribers become CRM contacts upserted by email, messages
//! are emails queued to a contact; events are not Keap's (the trait's default answers).

pub mod reads;
pub mod settings;
pub mod sync;
pub mod tokens;
pub mod writes;

use async_trait::async_trait;
use axum::http::HeaderMap;
use domain::reads::{Listing, Read, ReadQuery};
use domain::{
    Platform,
    operations::{BatchOutcome, MessageInput, Queued, SubscriberInput, Tested, Upserted},
};
use store::IntegrationRecord;

pub use settings::KeapSettings;
pub use tokens::Session as KeapSession;

use super::{Driver, OwnSession, PlatformSession};
use crate::{error::Result, state::AppState, sync::source::SyncSession, webhooks::Reply};

#[async_trait]
impl OwnSession for KeapSession {
    const PLATFORM: Platform = Platform::Keap;

    /// Opens a stored Keap integration (the first call refreshes a token close to expiry).
    async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self> {
        tokens::open(state, record).await
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
}

/// Keap's entry in the registry.
pub struct Keap;

#[async_trait]
impl Driver for Keap {
    fn platform(&self) -> Platform {
        Platform::Keap
    }

    async fn open(
        &self,
        state: &AppState,
        record: IntegrationRecord,
    ) -> Result<Box<dyn PlatformSession>> {
        Ok(Box::new(KeapSession::open(state, record).await?))
    }

    fn check_read(&self, read: Read, query: &ReadQuery) -> Result<()> {
        reads::plan(read, query).map(drop)
    }

    async fn receive_webhook(
        &self,
        state: &AppState,
        record: &IntegrationRecord,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply> {
        crate::webhooks::keap::receive(state, record, headers, body).await
    }
}
