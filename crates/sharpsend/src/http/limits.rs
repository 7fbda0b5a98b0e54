//! Our own API rate limits, the data: per-principal and per-address token buckets (governor),
//! the blocked addresses, and the decision a request gets. No request handling here: the
//! middleware in [`super::ratelimit`] applies them.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::ConnectInfo,
    http::{Extensions, HeaderMap, HeaderName, HeaderValue},
    response::{IntoResponse, Response},
};
use domain::ErrorCode;
use governor::{
    Quota, RateLimiter,
    clock::{Clock as _, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use super::error::ApiError;
use crate::{
    config::{Config, Rate},
    principal::Principal,
};

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// How often idle keys are dropped.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// A keyed map this large is swept at once, whatever the time.
pub const SWEEP_AT: usize = 100_000;

/// The client address a request came from, for the per-address limit: the TCP peer from the
/// `ConnectInfo` extension (`into_make_service_with_connect_info`), IPv4-mapped IPv6 as IPv4 and
/// IPv6 by its /64 (one subscriber's whole prefix). `None` without connect info.
pub fn client_address(extensions: &Extensions) -> Option<IpAddr> {
    let ConnectInfo(peer) = extensions.get::<ConnectInfo<SocketAddr>>()?;
    Some(address_key(peer.ip()))
}

fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// What one check decided, as the `RateLimit-*` headers say it.
#[derive(Clone, Copy, Debug)]
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    /// Until the whole burst is available again.
    pub reset: Duration,
    /// `Some` when refused: until the next call may pass.
    pub retry_after: Option<Duration>,
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Decision {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(
            RATELIMIT_RESET,
            HeaderValue::from(whole_seconds(self.reset)),
        );
    }

    /// The 429 answer of a refusal, with `Retry-After` and the `RateLimit-*` headers.
    pub fn refusal(&self, message: String) -> Response {
        let wait = self.retry_after.unwrap_or(Duration::from_secs(1));
        let mut response = ApiError::new(ErrorCode::RateLimitExceeded, message)
            .detail("limit", self.limit)
            .retry_after(wait)
            .into_response();
        self.write_headers(response.headers_mut());
        response
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One keyed limit.
struct Limit<K: Hash + Eq + Clone> {
    rate: Rate,
    quota: Quota,
    keyed: Keyed<K>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(rate: Option<Rate>) -> Option<Self> {
        let rate = rate?;
        let burst = std::num::NonZeroU32::new(rate.burst())?;
        let quota = if rate.per_minute {
            Quota::per_minute(rate.count)
        } else {
            Quota::per_second(rate.count)
        }
        .allow_burst(burst);
        let keyed = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Some(Self { rate, quota, keyed })
    }

    fn check(&self, key: &K) -> Decision {
        if self.keyed.len() > SWEEP_AT {
            self.sweep();
        }
        let limit = self.quota.burst_size().get();
        let cell = self.quota.replenish_interval();
        match self.keyed.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    limit,
                    remaining,
                    reset: cell * (limit - remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.keyed.clock().now());
                Decision {
                    limit,
                    remaining: 0,
                    reset: wait + cell * (limit - 1),
                    retry_after: Some(wait),
                }
            }
        }
    }

    fn sweep(&self) {
        self.keyed.retain_recent();
        self.keyed.shrink_to_fit();
    }
}

/// Every limit of this process (per replica: the limits are not shared through Redis).
pub struct RateLimits {
    api: Option<Limit<String>>,
    test_connection: Option<Limit<String>>,
    auth_failures: Option<Limit<IpAddr>>,
    /// Addresses over their failure limit, and until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("api", &self.api.as_ref().map(|l| l.rate))
            .field(
                "test_connection",
                &self.test_connection.as_ref().map(|l| l.rate),
            )
            .field(
                "auth_failures",
                &self.auth_failures.as_ref().map(|l| l.rate),
            )
            .finish()
    }
}

/// Routes that try platform credentials: the tighter per-principal limit applies.
pub fn tries_credentials(route: &str) -> bool {
    route.starts_with("/api/integrations/")
        && (route.ends_with("/test-connection") || route.ends_with("/connect"))
}

fn principal_key(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Publisher { key_id, .. } => key_id.clone(),
    }
}

impl RateLimits {
    pub fn new(config: &Config) -> Self {
        Self {
            api: Limit::new(config.api_rate_limit),
            test_connection: Limit::new(config.test_connection_rate_limit),
            auth_failures: Limit::new(config.auth_failure_rate_limit),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a call of `principal` on `route`: `Ok` with the headers to send (none when every
    /// limit is off), `Err` with the refusal and its sentence.
    pub fn check_principal(
        &self,
        principal: &Principal,
        route: &str,
    ) -> Result<Option<Decision>, (Decision, String)> {
        let key = principal_key(principal);
        let mut binding = None;
        if let Some(limit) = &self.api {
            let d = limit.check(&key);
            if d.retry_after.is_some() {
                return Err((
                    d,
                    format!(
                        "Too many requests with this token: the limit is {} (bursts of {}); retry after the time in Retry-After.",
                        limit.rate, d.limit
                    ),
                ));
            }
            binding = Some(d);
        }
        if tries_credentials(route)
            && let Some(limit) = &self.test_connection
        {
            let d = limit.check(&key);
            if d.retry_after.is_some() {
                return Err((
                    d,
                    format!(
                        "Too many credential checks with this token: test-connection and connect together allow {}; retry after the time in Retry-After.",
                        limit.rate
                    ),
                ));
            }
            binding = Some(d);
        }
        Ok(binding)
    }

    /// How long `address` stays refused for its failed authentications, if it is.
    pub fn blocked_for(&self, address: IpAddr) -> Option<Duration> {
        self.auth_failures.as_ref()?;
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&address)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            blocked.remove(&address);
            None
        }
    }

    /// Counts a failed authentication from `address`; `Some(wait)` when that put the address
    /// over its limit (it is then refused everything for `wait`).
    pub fn failed_authentication(&self, address: Option<IpAddr>) -> Option<Duration> {
        let (limit, address) = (self.auth_failures.as_ref()?, address?);
        let wait = limit.check(&address).retry_after?;
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() > SWEEP_AT {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(address, Instant::now() + wait);
        Some(wait)
    }

    /// The 429 of an address over its failure limit.
    pub fn refuse_address(&self, wait: Duration) -> Response {
        let limit = self
            .auth_failures
            .as_ref()
            .map_or(0, |l| l.quota.burst_size().get());
        let rate = self
            .auth_failures
            .as_ref()
            .map_or_else(String::new, |l| l.rate.to_string());
        Decision {
            limit,
            remaining: 0,
            reset: wait,
            retry_after: Some(wait),
        }
        .refusal(format!(
            "Too many failed authentications from this address (the limit is {rate}): every request from it, even with a valid token, is refused until the time in Retry-After has passed."
        ))
    }

    /// Drops keys that are back to a full burst (they hold nothing a new key would not).
    pub fn sweep(&self) {
        for limit in [&self.api, &self.test_connection].into_iter().flatten() {
            limit.sweep();
        }
        if let Some(limit) = &self.auth_failures {
            limit.sweep();
        }
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
    }

    /// Keys held now (for tests of the sweep).
    pub fn keys(&self) -> usize {
        self.api.as_ref().map_or(0, |l| l.keyed.len())
            + self.test_connection.as_ref().map_or(0, |l| l.keyed.len())
            + self.auth_failures.as_ref().map_or(0, |l| l.keyed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Option<Rate> {
        Rate::parse(text).unwrap()
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_per_second_rate_allows_a_burst_of_twice_its_count() {
        let limit = Limit::<String>::new(rate("5/s")).unwrap();
        let key = "k".to_owned();
        let first = limit.check(&key);
        assert_eq!((first.limit, first.remaining), (10, 9));
        for _ in 0..9 {
            assert!(limit.check(&key).retry_after.is_none());
        }
        let refused = limit.check(&key);
        assert!(
            refused
                .retry_after
                .is_some_and(|w| w <= Duration::from_millis(200))
        );
        assert_eq!(refused.remaining, 0);
        assert!(refused.reset <= Duration::from_secs(2));
    }

    #[test]
    fn keys_are_apart_and_idle_ones_are_swept() {
        let limit = Limit::<String>::new(rate("1/m")).unwrap();
        assert!(limit.check(&"a".to_owned()).retry_after.is_none());
        assert!(limit.check(&"a".to_owned()).retry_after.is_some());
        assert!(limit.check(&"b".to_owned()).retry_after.is_none());
        assert_eq!(limit.keyed.len(), 2);
        // A key that is back to a full burst holds nothing worth keeping.
        let fast = Limit::<String>::new(rate("1000000/s")).unwrap();
        for i in 0..50 {
            fast.check(&i.to_string());
        }
        std::thread::sleep(Duration::from_millis(5));
        fast.sweep();
        assert_eq!(fast.keyed.len(), 0);
    }

    #[test]
    fn credential_routes_are_the_test_connection_and_connect_ones() {
        assert!(tries_credentials(
            "/api/integrations/iterable/test-connection"
        ));
        assert!(tries_credentials("/api/integrations/keap/connect"));
        assert!(!tries_credentials("/api/integrations/{publisherId}"));
        assert!(!tries_credentials("/api/platforms"));
    }
}
