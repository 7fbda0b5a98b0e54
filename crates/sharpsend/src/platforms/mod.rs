//! The platforms behind one abstraction.
//!
//! A [`PlatformSession`] is one connected integration, opened once from its stored record: the
//! vault is opened, the typed config read, and (Keap) the OAuth token refreshed inside it, the
//! way OpenDAL's signer sits inside its operator. Everything that needs a platform's credentials
//! — routes, the sync engine, the limits view, analytics, webhook work — opens a session through
//! [`open`] or [`open_for`], so credential loading exists once.
//!
//! [`driver`] is the registry: the one place that maps a [`Platform`] to its implementation, a
//! [`Driver`] (what a platform does before a session exists: open one, check a read's query,
//! verify a webhook delivery). The capability matrix (CONTRACT §9) answers through [`require`],
//! so `UNSUPPORTED_OPERATION` comes from one place, before any upstream call.

pub mod customerio;
pub mod iterable;
pub mod keap;
pub mod operations;

use std::{collections::BTreeMap, marker::PhantomData};

use async_trait::async_trait;
use axum::http::HeaderMap;
use connectors::customerio::metrics::MetricsObject;
use domain::{
    Capability, Platform, PublisherId,
    operations::{
        Accepted, BatchOutcome, EventInput, MessageInput, Queued, SubscriberInput, Tested, Upserted,
    },
    reads::{Listing, Read, ReadQuery},
    shapes::IntegrationStatus,
};
use store::IntegrationRecord;

use crate::{
    analytics::buckets::{Series, Window},
    error::{Error, Result},
    state::AppState,
    sync::source::SyncSession,
    webhooks::Reply,
};

/// What a platform does before (or without) a session: the registry's entry for it.
#[async_trait]
pub trait Driver: Send + Sync {
    fn platform(&self) -> Platform;

    /// Opens the session of a stored integration of this platform.
    async fn open(
        &self,
        state: &AppState,
        record: IntegrationRecord,
    ) -> Result<Box<dyn PlatformSession>>;

    /// Checks a read's query before the integration is opened: `VALIDATION_ERROR` naming a bad
    /// filter, `NOT_FOUND` for a read the matrix allows but this platform does not serve.
    fn check_read(&self, read: Read, query: &ReadQuery) -> Result<()>;

    /// Undoes, best effort, what connecting registered on the platform, before the integration
    /// is deleted (Keap: its REST hooks). Failures are logged, never fatal.
    async fn disconnecting(&self, _state: &AppState, _record: &IntegrationRecord) {}

    /// Runs the platform's authenticity check on one webhook delivery for `record` and stores
    /// its events (CONTRACT §8); a delivery that fails the check is `UNAUTHORIZED`.
    async fn receive_webhook(
        &self,
        state: &AppState,
        record: &IntegrationRecord,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply>;
}

/// The registry: each platform's driver, its session type's [`OwnSession`] behind
/// [`Registered`].
pub fn driver(platform: Platform) -> &'static dyn Driver {
    match platform {
        Platform::Iterable => &Registered::<iterable::IterableSession>(PhantomData),
        Platform::Customerio => &Registered::<customerio::CustomerioSession>(PhantomData),
        Platform::Keap => &Registered::<keap::KeapSession>(PhantomData),
    }
}

/// The [`Driver`] of a platform whose session type is `S`.
pub struct Registered<S>(PhantomData<fn() -> S>);

#[async_trait]
impl<S: OwnSession + 'static> Driver for Registered<S> {
    fn platform(&self) -> Platform {
        S::PLATFORM
    }

    async fn open(
        &self,
        state: &AppState,
        record: IntegrationRecord,
    ) -> Result<Box<dyn PlatformSession>> {
        Ok(Box::new(S::open(state, record).await?))
    }

    fn check_read(&self, read: Read, query: &ReadQuery) -> Result<()> {
        S::check_read(read, query)
    }

    async fn disconnecting(&self, state: &AppState, record: &IntegrationRecord) {
        S::disconnecting(state, record).await;
    }

    async fn receive_webhook(
        &self,
        state: &AppState,
        record: &IntegrationRecord,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply> {
        S::receive_webhook(state, record, headers, body).await
    }
}

/// The names of the sealed credential fields, in one place (the vault binds each ciphertext to
/// its integration and field name, so these names are part of what is stored).
pub mod fields {
    /// Iterable's server-side key; Customer.io's App API key; a Keap PAT or Service Account Key.
    pub const API_KEY: &str = "apiKey";
    /// Iterable: the secret its system webhooks must present.
    pub const WEBHOOK_SECRET: &str = "webhookSecret";
    /// Customer.io: the Track API key (with `siteId`).
    pub const TRACKING_KEY: &str = "trackingKey";
    /// Customer.io: a Data Pipelines source key.
    pub const CDP_API_KEY: &str = "cdpApiKey";
    /// Customer.io: the reporting webhooks' signing key.
    pub const WEBHOOK_SIGNING_KEY: &str = "webhookSigningKey";
    /// Keap OAuth: the app's client id and secret, and the token set.
    pub const CLIENT_ID: &str = "clientId";
    pub const CLIENT_SECRET: &str = "clientSecret";
    pub const ACCESS_TOKEN: &str = "accessToken";
    pub const REFRESH_TOKEN: &str = "refreshToken";
    pub const EXPIRES_AT: &str = "accessTokenExpiresAt";
}

/// What a platform reports of a campaign over a window.
#[derive(Debug, Default)]
pub struct Reported {
    /// Totals of the ten metrics (`domain::metrics::METRICS`) the platform gives as totals.
    pub totals: BTreeMap<&'static str, u64>,
    /// One value per bucket, where the platform breaks its figures down over the whole window
    /// (their sums become the totals).
    pub series: Option<Series>,
    /// Figures outside the ten metrics (Keap: `activeContacts`, `completedContacts`).
    pub extra: BTreeMap<&'static str, u64>,
}

/// One connected integration, ready to call its platform.
#[async_trait]
pub trait PlatformSession: Send + Sync {
    /// The stored integration this session was opened from.
    fn record(&self) -> &IntegrationRecord;

    fn platform(&self) -> Platform {
        self.record().platform
    }

    /// Refuses an operation the platform cannot do (CONTRACT §9), before any upstream call.
    fn require(&self, capability: Capability) -> Result<()> {
        require(self.platform(), capability)
    }

    /// The digests the platform's rate budgets are kept under for these credentials (one per
    /// key the session calls with).
    fn budget_keys(&self) -> Vec<String>;

    /// This integration's sync reader: pages of each of `Platform::sync_kinds`.
    fn into_sync(self: Box<Self>, state: &AppState) -> Box<dyn SyncSession>;

    /// Tests the stored credentials with the platform's cheapest authenticated call (the one a
    /// connect makes first).
    async fn test(&mut self, state: &AppState) -> Result<Tested>;

    /// What the platform's own API reports of one campaign (or Customer.io broadcast or
    /// newsletter) over `window`, for the metrics route; `NOT_FOUND` for one it does not know.
    /// The default reports nothing: the figures then come from webhooks and stored history.
    async fn campaign_metrics(
        &mut self,
        _state: &AppState,
        _object: MetricsObject,
        _campaign_id: &str,
        _window: &Window,
    ) -> Result<Reported> {
        Ok(Reported::default())
    }

    /// One page of a common read (CONTRACT §7), its query checked as [`Driver::check_read`]
    /// does. A platform keeps the default for the reads it has none of.
    async fn read(&mut self, _state: &AppState, read: Read, _query: &ReadQuery) -> Result<Listing> {
        Err(not_served(self.platform(), read))
    }

    // The common writes (CONTRACT §7). A platform without the capability keeps the default,
    // which answers `UNSUPPORTED_OPERATION`; the service checks the matrix before opening a
    // session, so the default is reached only when the matrix and the implementation disagree.

    /// Creates or updates one person.
    async fn upsert_subscriber(
        &mut self,
        _state: &AppState,
        _input: SubscriberInput,
    ) -> Result<Upserted> {
        Err(unsupported(self.platform(), Capability::SubscribersUpsert))
    }

    /// Creates or updates many people. `items` are the caller's items that parsed, with their
    /// positions; a per-item problem is an [`domain::operations::ItemFailure`] at that position
    /// (field names prefixed `subscribers[i].`), a problem with the whole call an error.
    async fn upsert_subscribers(
        &mut self,
        _state: &AppState,
        _items: Vec<(usize, SubscriberInput)>,
    ) -> Result<BatchOutcome> {
        Err(unsupported(self.platform(), Capability::SubscribersUpsert))
    }

    /// Tracks one event.
    async fn track_event(&mut self, _state: &AppState, _input: EventInput) -> Result<Accepted> {
        Err(unsupported(self.platform(), Capability::EventsTrack))
    }

    /// Tracks many events (as [`PlatformSession::upsert_subscribers`], prefix `events[i].`).
    async fn track_events(
        &mut self,
        _state: &AppState,
        _items: Vec<(usize, EventInput)>,
    ) -> Result<BatchOutcome> {
        Err(unsupported(self.platform(), Capability::EventsTrack))
    }

    /// Sends one message on `input.channel` (its capability already checked).
    async fn send_message(&mut self, _state: &AppState, input: MessageInput) -> Result<Queued> {
        Err(unsupported(self.platform(), input.channel.capability()))
    }

    // Consent (issue 17, fact sheet `consent.md`). The ledger's job worker calls these; the
    // address is already normalised (`domain::consent::normalize_email`) and never logged.

    /// Pushes one opt-out into the platform (CONTRACT consent): never clobbers other unsubscribes.
    async fn opt_out(
        &mut self,
        _state: &AppState,
        _opt_out: &domain::consent::OptOut,
    ) -> Result<domain::consent::Applied> {
        Err(unsupported(self.platform(), Capability::Unsubscribe))
    }

    /// Erases one reader from the platform.
    async fn erase(&mut self, _state: &AppState, _email: &str) -> Result<domain::consent::Applied> {
        Err(unsupported(self.platform(), Capability::Erasure))
    }
}

fn unsupported(platform: Platform, capability: Capability) -> Error {
    Error::Unsupported {
        platform,
        capability,
    }
}

/// `NOT_FOUND` for a read the matrix allows (or refuses: then `UNSUPPORTED_OPERATION`) that
/// this platform's session does not serve.
pub fn not_served(platform: Platform, read: Read) -> Error {
    let capability = read.capability();
    if !platform.support(capability).supported {
        return unsupported(platform, capability);
    }
    Error::not_found(format!(
        "{} supports {} but SharpSend does not serve …/{}/{} for it yet; see GET /api/platforms.",
        platform.display_name(),
        capability.as_str(),
        platform.as_str(),
        read.as_str()
    ))
}

/// `UNSUPPORTED_OPERATION` where the capability matrix says no.
pub fn require(platform: Platform, capability: Capability) -> Result<()> {
    if platform.support(capability).supported {
        Ok(())
    } else {
        Err(unsupported(platform, capability))
    }
}

/// Opens the session of a stored integration (through its platform's driver).
pub async fn open(state: &AppState, record: IntegrationRecord) -> Result<Box<dyn PlatformSession>> {
    driver(record.platform).open(state, record).await
}

/// A platform's own session type: what the platform does before a session exists (the
/// [`Driver`] the registry serves is made from it), and the typed opener for what only that
/// platform does (Keap's CRM, Customer.io's broadcasts, Iterable's channels): [`open_own`].
#[async_trait]
pub trait OwnSession: PlatformSession + Sized {
    const PLATFORM: Platform;

    /// Opens a stored integration of this platform.
    async fn open(state: &AppState, record: IntegrationRecord) -> Result<Self>;

    /// See [`Driver::check_read`].
    fn check_read(read: Read, query: &ReadQuery) -> Result<()>;

    /// See [`Driver::disconnecting`]; nothing by default.
    async fn disconnecting(_state: &AppState, _record: &IntegrationRecord) {}

    /// See [`Driver::receive_webhook`].
    async fn receive_webhook(
        state: &AppState,
        record: &IntegrationRecord,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply>;
}

/// Opens the publisher's integration of `S`'s platform as `S`, or `INTEGRATION_NOT_FOUND`.
pub async fn open_own<S: OwnSession>(state: &AppState, publisher: &PublisherId) -> Result<S> {
    S::open(state, integration(state, publisher, S::PLATFORM).await?).await
}

/// Opens the publisher's integration of `platform`.
pub async fn open_for(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
) -> Result<Box<dyn PlatformSession>> {
    open(state, integration(state, publisher, platform).await?).await
}

/// The publisher's stored integration of `platform`, or `INTEGRATION_NOT_FOUND`.
pub async fn integration(
    state: &AppState,
    publisher: &PublisherId,
    platform: Platform,
) -> Result<IntegrationRecord> {
    state
        .store
        .get_integration(publisher, platform)
        .await?
        .ok_or_else(|| Error::IntegrationNotFound {
            publisher: publisher.to_string(),
            platform,
        })
}

/// `REAUTH_REQUIRED` (as `INVALID_CREDENTIALS`) for an integration the platform no longer
/// accepts, before any upstream call.
pub fn ensure_usable(record: &IntegrationRecord) -> Result<()> {
    if record.status == IntegrationStatus::ReauthRequired {
        return Err(Error::ReauthRequired {
            publisher: record.publisher_id.clone(),
            platform: record.platform,
            reason: record.status_reason.clone().unwrap_or_else(|| {
                format!(
                    "{} no longer accepts this integration's credentials.",
                    record.platform.display_name()
                )
            }),
            platform_status: None,
        });
    }
    Ok(())
}

/// A required secret the vault did not hold: a fault of ours (connect stores every one).
fn missing(record: &IntegrationRecord, field: &str) -> Error {
    Error::internal(format!("integration {} has no {field}", record.id))
}
