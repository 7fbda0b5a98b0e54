//! The shared state of one Keap simulator.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sim_core::{Control, RateLimiter};

use crate::{
    Options,
    config::{self, Limits},
    contacts::ContactStore,
    emails::SentEmail,
    resources::{self, Campaign, Opportunity, Order, Product, Tag},
};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `GET /app/oauth/authorize` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizeMode {
    /// Show the consent page with Allow and Deny buttons.
    #[default]
    Page,
    /// Redirect with a code at once, as if the user clicked Allow.
    Approve,
    /// Redirect with `error=access_denied` at once.
    Deny,
}

/// Settings a test may change at run time (`POST /_sim/config`, `/_sim/limits`, `/_sim/authorize`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub hook_delay_ms: u64,
    pub hook_retry_ms: Vec<u64>,
    pub hook_timeout_ms: u64,
    pub authorize_mode: AuthorizeMode,
    pub limits: Limits,
}

impl Config {
    pub fn from_options(o: &Options) -> Self {
        Self {
            access_token_ttl_secs: o.access_token_ttl_secs,
            refresh_token_ttl_secs: config::REFRESH_TOKEN_TTL_SECS,
            hook_delay_ms: o.hook_delay_ms,
            hook_retry_ms: o.hook_retry_ms.clone(),
            hook_timeout_ms: o.hook_timeout_ms,
            authorize_mode: o.authorize_mode,
            limits: o.limits,
        }
    }
}

/// Who a request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// An OAuth access token of this client.
    OAuth { client_id: String },
    /// A Personal Access Token.
    Pat(String),
    /// A Service Account Key.
    Sak(String),
}

impl Principal {
    /// The identity Keap's product quota is kept per: the client id, or the key.
    pub fn quota_id(&self) -> String {
        match self {
            Self::OAuth { client_id } => format!("oauth:{client_id}"),
            Self::Pat(k) | Self::Sak(k) => format!("key:{k}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub expires: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub client_id: String,
    pub expires: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct OAuthState {
    /// client id → secret
    pub clients: HashMap<String, String>,
    pub codes: HashMap<String, CodeGrant>,
    pub access: HashMap<String, TokenGrant>,
    pub refresh: HashMap<String, TokenGrant>,
    /// PAT/SAK value → principal
    pub keys: HashMap<String, Principal>,
}

/// A token pair as the token endpoint answers it (field order as Keap's).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl OAuthState {
    pub fn sandbox() -> Self {
        let mut s = Self::default();
        s.clients
            .insert(crate::CLIENT_ID.to_owned(), crate::CLIENT_SECRET.to_owned());
        s.keys.insert(
            crate::PERSONAL_ACCESS_TOKEN.to_owned(),
            Principal::Pat(crate::PERSONAL_ACCESS_TOKEN.to_owned()),
        );
        s.keys.insert(
            crate::SERVICE_ACCOUNT_KEY.to_owned(),
            Principal::Sak(crate::SERVICE_ACCOUNT_KEY.to_owned()),
        );
        s
    }

    /// Issues a pair with the given values (or random ones).
    pub fn issue(
        &mut self,
        client_id: &str,
        access_ttl: u64,
        refresh_ttl: u64,
        fixed: Option<(&str, &str)>,
    ) -> TokenResponse {
        let now = Utc::now();
        let (access, refresh) = match fixed {
            Some((a, r)) => (a.to_owned(), r.to_owned()),
            None => (random_token(24), random_token(24)),
        };
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2_000));
        self.access.insert(
            access.clone(),
            TokenGrant {
                client_id: client_id.to_owned(),
                expires: now + secs(access_ttl),
            },
        );
        self.refresh.insert(
            refresh.clone(),
            TokenGrant {
                client_id: client_id.to_owned(),
                expires: now + secs(refresh_ttl),
            },
        );
        TokenResponse {
            access_token: access,
            token_type: config::TOKEN_TYPE.to_owned(),
            expires_in: access_ttl,
            refresh_token: refresh,
            scope: config::token_scope(),
        }
    }
}

/// Status of a REST hook subscription (V1B `RestHook.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookStatus {
    Unverified,
    Verified,
    Inactive,
}

#[derive(Clone, Debug)]
pub struct Hook {
    pub key: u64,
    pub event_key: String,
    pub hook_url: String,
    pub status: HookStatus,
    /// The last `X-Hook-Secret` sent, for `delayedVerify`.
    pub secret: Option<String>,
}

/// One changed object waiting to be delivered.
#[derive(Clone, Debug)]
pub struct PendingEvent {
    pub event_key: String,
    pub object_type: String,
    pub id: u64,
    pub at: DateTime<Utc>,
    pub due: tokio::time::Instant,
}

/// A batch that failed and waits for its next attempt.
#[derive(Clone, Debug)]
pub struct RetryBatch {
    pub hook_key: u64,
    pub body: serde_json::Value,
    pub attempts: u32,
    pub due: tokio::time::Instant,
}

#[derive(Debug, Default)]
pub struct HookState {
    pub hooks: BTreeMap<u64, Hook>,
    pub next_key: u64,
    pub events: Vec<PendingEvent>,
    pub retries: Vec<RetryBatch>,
}

/// Everything but the contacts: small, materialised sets.
#[derive(Debug)]
pub struct Data {
    pub contacts: ContactStore,
    pub tags: BTreeMap<u64, Tag>,
    pub next_tag_id: u64,
    pub campaigns: Vec<Campaign>,
    pub opportunities: Vec<Opportunity>,
    pub orders: Vec<Order>,
    pub products: Vec<Product>,
    /// Sent-email records in sent order.
    pub emails: Vec<SentEmail>,
    /// Address statuses written through `…/emailAddresses/{email}/status` (lower-cased email).
    pub address_status: HashMap<String, AddressStatus>,
    /// Lower-cased addresses of contacts deleted through the API (control reads).
    pub deleted_emails: HashSet<String>,
}

impl Data {
    pub fn seeded(o: &Options) -> Self {
        let tags = resources::tags(o.seed, o.tags);
        let tag_ids: Vec<u64> = tags.keys().copied().collect();
        let contacts = ContactStore::new(o.seed, o.contacts, tag_ids);
        let lookup = |id: u64| {
            contacts.get(id).map(|c| {
                (
                    c.id,
                    c.email1().unwrap_or_default().to_owned(),
                    c.given_name.clone(),
                    c.family_name.clone(),
                )
            })
        };
        let products = resources::products(o.seed, o.products);
        let opportunities = resources::opportunities(o.seed, o.opportunities, &lookup, o.contacts);
        let orders = resources::orders(o.seed, o.orders, &lookup, o.contacts, &products);
        let next_tag_id = tags.keys().last().map_or(91, |k| k + 2);
        let emails = crate::emails::seeded(o.seed, &contacts, o.emails, Utc::now());
        Self {
            contacts,
            tags,
            next_tag_id,
            campaigns: resources::campaigns(o.seed, o.campaigns),
            opportunities,
            orders,
            products,
            emails,
            address_status: HashMap::new(),
            deleted_emails: HashSet::new(),
        }
    }

    /// The id the next sent-email record gets.
    pub fn next_email_id(&self) -> u64 {
        self.emails
            .iter()
            .map(|e| e.id + 1)
            .max()
            .unwrap_or(config::EMAIL_FIRST_ID)
    }
}

/// Daily quota counters: identity → (UTC day number, used).
#[derive(Debug, Default)]
pub struct Quotas {
    pub days: HashMap<String, (i64, u64)>,
}

pub struct Sim {
    pub control: Control,
    pub options: Options,
    pub config: Mutex<Config>,
    pub oauth: Mutex<OAuthState>,
    pub data: Mutex<Data>,
    pub hooks: Mutex<HookState>,
    pub limiter: RateLimiter,
    pub quotas: Mutex<Quotas>,
    pub wake: tokio::sync::Notify,
    /// Serialises hook deliveries (background worker and `/_sim/hooks/fire`).
    pub delivering: tokio::sync::Mutex<()>,
    pub http: reqwest::Client,
}

pub type App = Arc<Sim>;

impl Sim {
    pub fn new(control: Control, options: Options) -> Self {
        let mut oauth = OAuthState::sandbox();
        oauth.issue(
            crate::CLIENT_ID,
            options.access_token_ttl_secs,
            config::REFRESH_TOKEN_TTL_SECS,
            Some((crate::ACCESS_TOKEN, crate::REFRESH_TOKEN)),
        );
        Self {
            control,
            config: Mutex::new(Config::from_options(&options)),
            oauth: Mutex::new(oauth),
            data: Mutex::new(Data::seeded(&options)),
            hooks: Mutex::new(HookState {
                next_key: 1,
                ..HookState::default()
            }),
            limiter: RateLimiter::new(),
            quotas: Mutex::new(Quotas::default()),
            wake: tokio::sync::Notify::new(),
            delivering: tokio::sync::Mutex::new(()),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            options,
        }
    }

    /// Back to the state `start` returned: sandbox tokens, seeded data, no hooks, fresh limits.
    pub fn reset(&self) {
        let fresh = Self::new(self.control.clone(), self.options.clone());
        *lock(&self.config) = fresh.config.into_inner().unwrap_or_else(|p| p.into_inner());
        *lock(&self.oauth) = fresh.oauth.into_inner().unwrap_or_else(|p| p.into_inner());
        *lock(&self.data) = fresh.data.into_inner().unwrap_or_else(|p| p.into_inner());
        *lock(&self.hooks) = fresh.hooks.into_inner().unwrap_or_else(|p| p.into_inner());
        *lock(&self.quotas) = Quotas::default();
        self.limiter.reset();
    }

    pub fn config(&self) -> Config {
        lock(&self.config).clone()
    }

    /// Queues a hook event for every Verified subscription to `event_key`.
    pub fn emit(&self, event_key: &str, id: u64) {
        let delay = Duration::from_millis(lock(&self.config).hook_delay_ms);
        let mut hooks = lock(&self.hooks);
        let subscribed = hooks
            .hooks
            .values()
            .any(|h| h.event_key == event_key && h.status == HookStatus::Verified);
        if !subscribed {
            return;
        }
        let object_type = event_key.split('.').next().unwrap_or(event_key).to_owned();
        hooks.events.push(PendingEvent {
            event_key: event_key.to_owned(),
            object_type,
            id,
            at: Utc::now(),
            due: tokio::time::Instant::now() + delay,
        });
        drop(hooks);
        self.wake.notify_one();
    }
}

/// An address's status once written through the API (before that it is its contacts').
#[derive(Clone, Debug)]
pub struct AddressStatus {
    /// v1 `email_status` name (`Manual`, `SingleOptIn`, …).
    pub status: String,
    pub create_time: DateTime<Utc>,
}
