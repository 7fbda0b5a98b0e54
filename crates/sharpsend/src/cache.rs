//! A read cache for the two hottest reads: who a bearer token belongs to, and a publisher's
//! rendered integration list.
//!
//! Entries are tagged with the store's epochs at the moment before they were read. The local
//! epoch moves on every write this process makes (so a revoke or a connect here is visible on the
//! very next request); the shared epoch moves on every write by any process and is polled every
//! [`POLL_INTERVAL`] (so a revoke by the CLI or another replica is visible within that interval).
//! An entry whose tag differs from the current epochs is never served.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use store::Store;
use tokio_util::sync::CancellationToken;

use crate::principal::Principal;

/// How often the shared epoch is read: the longest another process's write can stay unseen.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Entries per map before it is cleared (a bound on memory, not a tuning knob).
const MAX_ENTRIES: usize = 20_000;

/// The epochs an entry was read under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch {
    local: u64,
    shared: i64,
}

/// The shared epoch before the first successful poll, or after a failed one: nothing is cached.
const UNKNOWN: i64 = i64::MIN;

impl Epoch {
    fn known(self) -> bool {
        self.shared != UNKNOWN
    }
}

struct Tagged<V> {
    epoch: Epoch,
    value: V,
}

struct Map<K, V>(Mutex<HashMap<K, Tagged<V>>>);

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K, now: Epoch) -> Option<V> {
        if !now.known() {
            return None;
        }
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|t| t.epoch == now)
            .map(|t| t.value.clone())
    }

    fn put(&self, key: K, epoch: Epoch, value: V) {
        if !epoch.known() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, Tagged { epoch, value });
    }
}

/// The cache; shared by the authenticator and the handlers.
pub struct ReadCache {
    store: Arc<dyn Store>,
    shared: AtomicI64,
    principals: Map<[u8; 32], Principal>,
    integration_lists: Map<String, Bytes>,
}

impl ReadCache {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            shared: AtomicI64::new(UNKNOWN),
            principals: Map::new(),
            integration_lists: Map::new(),
        }
    }

    /// The current epochs; take them before reading what will be cached.
    pub fn epoch(&self) -> Epoch {
        Epoch {
            local: self.store.local_epoch(),
            shared: self.shared.load(Ordering::Acquire),
        }
    }

    pub fn principal(&self, token_digest: &[u8; 32]) -> Option<Principal> {
        self.principals.get(token_digest, self.epoch())
    }

    pub fn put_principal(&self, token_digest: [u8; 32], epoch: Epoch, principal: Principal) {
        self.principals.put(token_digest, epoch, principal);
    }

    /// A publisher's rendered `GET /api/integrations/{publisherId}` body.
    pub fn integration_list(&self, publisher: &str) -> Option<Bytes> {
        self.integration_lists
            .get(&publisher.to_owned(), self.epoch())
    }

    pub fn put_integration_list(&self, publisher: &str, epoch: Epoch, body: Bytes) {
        self.integration_lists
            .put(publisher.to_owned(), epoch, body);
    }

    /// Reads the shared epoch once.
    pub async fn poll(&self) {
        match self.store.shared_epoch().await {
            Ok(v) => self.shared.store(v, Ordering::Release),
            Err(e) => {
                // Unknown state: make every entry stale until the database answers again.
                tracing::warn!(error = %e, "cannot read the change epoch; read cache disabled until it answers");
                self.shared.store(UNKNOWN, Ordering::Release);
            }
        }
    }

    /// Polls the shared epoch until `shutdown`.
    pub fn spawn_poller(self: &Arc<Self>, shutdown: CancellationToken) {
        let cache = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => cache.poll().await,
                }
            }
        });
    }
}
