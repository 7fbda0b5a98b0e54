//! Proactive rate budgets behind one abstraction, [`RateBudget`]: in this process (a keyed GCRA
//! from `governor`) or shared by every replica through Redis (GCRA in one Lua script).
//!
//! A budget is per (platform, endpoint class, credential digest). With `SHARPSEND_REDIS_URL` set,
//! all replicas draw on one Redis bucket per budget, so three `serve` processes using one Keap
//! app together stay under Keap's limits. Redis failures never fail a call: the budget falls back
//! to this process's own bucket, logs one warning per outage, and tries Redis again a few seconds
//! later.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use domain::Platform;
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};

use crate::rate::Rate;

/// The budget would make the caller wait longer than it may; `after` is when a turn would be
/// free (as far as the budget knows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted {
    pub after: Duration,
}

/// Where a call takes its turn before it is sent.
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Takes one request from the budget of `class` for `key` (a credential digest), sleeping
    /// until its turn. Answers how long it waited, or [`Exhausted`] (having taken nothing) when
    /// the turn is further away than `max_wait`. Classes without a budget answer at once.
    async fn acquire(
        &self,
        class: &'static str,
        key: &str,
        max_wait: Duration,
    ) -> Result<Duration, Exhausted>;

    /// Records a 429 or a refusal of `class` for `key` where every replica sees it. A budget
    /// of this process only has nothing to share ([`crate::limits::LimitsTracker`] keeps the
    /// process's own figures).
    async fn note(&self, _class: &'static str, _key: &str, _event: BudgetEvent) {}

    /// Every replica's figures of one budget, when budgets are shared and the store answers.
    async fn shared_figures(&self, _class: &'static str, _key: &str) -> Option<SharedFigures> {
        None
    }
}

/// What [`RateBudget::note`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetEvent {
    /// The platform answered 429.
    RateLimited,
    /// The budget refused a turn that was too far away.
    Refused,
}

impl BudgetEvent {
    fn tag(self) -> &'static str {
        match self {
            BudgetEvent::RateLimited => "429",
            BudgetEvent::Refused => "refused",
        }
    }
}

/// One budget as every replica together used it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedFigures {
    /// The bucket's fill: turns taken and not yet drained at the budget's rate (`None` for a
    /// class without a budget).
    pub used: Option<u64>,
    /// How far away the next turn is.
    pub next_free_in: Duration,
    /// 429s any replica received in the last hour.
    pub rate_limited_last_hour: u64,
    /// Turns any replica's budget refused in the last hour.
    pub refused_last_hour: u64,
}

impl Rate {
    fn quota(self) -> Quota {
        let amount = NonZeroU32::new(self.amount.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst()).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.interval().max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(amount))
            .allow_burst(burst)
    }
}

/// Budgets in this process only (`governor`'s keyed GCRA).
pub struct LocalBudget {
    limiters: HashMap<&'static str, DefaultKeyedRateLimiter<String>>,
}

impl LocalBudget {
    pub fn new(budgets: &[(&'static str, Rate)]) -> Self {
        Self {
            limiters: budgets
                .iter()
                .map(|(class, rate)| (*class, DefaultKeyedRateLimiter::keyed(rate.quota())))
                .collect(),
        }
    }
}

#[async_trait]
impl RateBudget for LocalBudget {
    async fn acquire(
        &self,
        class: &'static str,
        key: &str,
        max_wait: Duration,
    ) -> Result<Duration, Exhausted> {
        let Some(limiter) = self.limiters.get(class) else {
            return Ok(Duration::ZERO);
        };
        let key = key.to_owned();
        let after = match limiter.check_key(&key) {
            Ok(()) => return Ok(Duration::ZERO),
            Err(not_until) => not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
        };
        if after > max_wait {
            return Err(Exhausted { after });
        }
        let started = tokio::time::Instant::now();
        tokio::time::timeout(max_wait, limiter.until_key_ready(&key))
            .await
            .map_err(|_| Exhausted { after })?;
        Ok(started.elapsed())
    }
}

/// GCRA as a queue, atomically in Redis: the bucket's theoretical arrival time (TAT, µs on
/// Redis's clock) is read, the caller's turn computed, and — when the turn is within `max_wait`
/// — the TAT advanced by one emission interval and the wait returned (µs; negative = refused,
/// nothing taken, and `-(wait + 1)` says how far the turn is). Every replica therefore gets its own future slot and simply sleeps until it.
/// KEYS[1] = budget key; ARGV = interval µs, tolerance µs (interval × (burst − 1)), max wait µs.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > max_wait then return -wait - 1 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return wait
";

/// Counts a 429 or refusal in this minute's bucket (kept a little over an hour).
/// KEYS[1] = budget key; ARGV[1] = `429` or `refused`.
const NOTE: &str = r"
local t = redis.call('TIME')
local k = KEYS[1] .. ':' .. ARGV[1] .. ':' .. math.floor(tonumber(t[1]) / 60)
redis.call('INCR', k)
redis.call('EXPIRE', k, 3660)
return 1
";

/// A budget's state without taking a turn: Redis's clock (µs), the TAT (0 when idle), and the
/// 429s and refusals of the last 60 minute buckets. KEYS[1] = budget key.
const FIGURES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local minute = math.floor(tonumber(t[1]) / 60)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local limited, refused = 0, 0
for m = minute - 59, minute do
  limited = limited + tonumber(redis.call('GET', KEYS[1] .. ':429:' .. m) or '0')
  refused = refused + tonumber(redis.call('GET', KEYS[1] .. ':refused:' .. m) or '0')
end
return {string.format('%.0f', now), string.format('%.0f', tat), limited, refused}
";

/// The Redis connection every budget of the process shares (lazy, reconnecting).
pub struct SharedBudgets {
    client: redis::Client,
    prefix: String,
    script: redis::Script,
    note: redis::Script,
    figures: redis::Script,
    conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// While Redis is down: not before this instant do we try it again.
    retry_at: Mutex<Option<Instant>>,
    /// Whether the current outage was logged.
    warned: AtomicBool,
}

impl std::fmt::Debug for SharedBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the prefix is shown.
        f.debug_struct("SharedBudgets")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// How long one Redis round trip may take before the local budget is used instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failure, Redis is tried again no sooner than this.
const REDIS_COOLDOWN: Duration = Duration::from_secs(5);

impl SharedBudgets {
    /// Budgets in Redis at `url` (`redis://` or `rediss://`), under keys
    /// `{prefix}:{platform}:{class}:{digest}` (`sharpsend:budget` in the service). Nothing is
    /// connected until the first call.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("SHARPSEND_REDIS_URL is not a Redis URL ({:?})", e.kind()))?;
        Ok(Self {
            client,
            prefix: prefix.trim_end_matches(':').to_owned(),
            script: redis::Script::new(GCRA),
            note: redis::Script::new(NOTE),
            figures: redis::Script::new(FIGURES),
            conn: tokio::sync::Mutex::new(None),
            retry_at: Mutex::new(None),
            warned: AtomicBool::new(false),
        })
    }

    /// The Redis key of one budget: the credential appears only as a digest of its digest.
    pub fn key(&self, platform: Platform, class: &str, budget_key: &str) -> String {
        let digest = hex::encode(&Sha256::digest(budget_key.as_bytes())[..12]);
        format!("{}:{platform}:{class}:{digest}", self.prefix)
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        {
            let retry_at = self
                .retry_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if retry_at.is_some_and(|at| Instant::now() < at) {
                return None;
            }
        }
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Some(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => {
                *conn = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                drop(conn);
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&self, e: &redis::RedisError) {
        *self
            .retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now() + REDIS_COOLDOWN);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = ?e.kind(),
                "Redis (SHARPSEND_REDIS_URL) does not answer: rate budgets are per process until it is back"
            );
        }
    }

    /// Asks Redis for a turn: `Some(Ok(wait))`, `Some(Err(Exhausted))`, or `None` when Redis
    /// could not answer (the caller uses its local budget).
    async fn turn(
        &self,
        key: &str,
        rate: Rate,
        max_wait: Duration,
    ) -> Option<Result<Duration, Exhausted>> {
        let mut conn = self.connection().await?;
        let interval = micros(rate.interval()).max(1);
        let tolerance = interval.saturating_mul(u64::from(rate.burst().saturating_sub(1)));
        let answer: redis::RedisResult<i64> = self
            .script
            .key(key)
            .arg(interval)
            .arg(tolerance)
            .arg(micros(max_wait))
            .invoke_async(&mut conn)
            .await;
        match answer {
            Ok(wait) => {
                if self.warned.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate budgets are shared between replicas");
                }
                Some(match u64::try_from(wait) {
                    Ok(us) => Ok(Duration::from_micros(us)),
                    Err(_) => Err(Exhausted {
                        after: Duration::from_micros(wait.unsigned_abs().saturating_sub(1)),
                    }),
                })
            }
            Err(e) => {
                // A broken connection is rebuilt after the cool-down.
                *self.conn.lock().await = None;
                self.failed(&e);
                None
            }
        }
    }
}

impl SharedBudgets {
    /// Counts `event` for the budget at `key`; a Redis failure only costs the count.
    async fn note(&self, key: &str, event: BudgetEvent) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let done: redis::RedisResult<i64> = self
            .note
            .key(key)
            .arg(event.tag())
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = done {
            *self.conn.lock().await = None;
            self.failed(&e);
        }
    }

    /// The budget at `key` as every replica left it; `rate` is its budget, if it has one.
    async fn figures(&self, key: &str, rate: Option<Rate>) -> Option<SharedFigures> {
        let mut conn = self.connection().await?;
        let answer: redis::RedisResult<(String, String, u64, u64)> =
            self.figures.key(key).invoke_async(&mut conn).await;
        let (now, tat, limited, refused) = match answer {
            Ok(a) => a,
            Err(e) => {
                *self.conn.lock().await = None;
                self.failed(&e);
                return None;
            }
        };
        let now: u64 = now.parse().ok()?;
        let tat: u64 = tat.parse().ok()?;
        let (used, next_free_in) = match rate {
            Some(rate) => {
                let interval = micros(rate.interval()).max(1);
                let tolerance = interval.saturating_mul(u64::from(rate.burst().saturating_sub(1)));
                let backlog = tat.saturating_sub(now);
                (
                    Some(backlog.div_ceil(interval)),
                    Duration::from_micros(tat.saturating_sub(tolerance).saturating_sub(now)),
                )
            }
            None => (None, Duration::ZERO),
        };
        Some(SharedFigures {
            used,
            next_free_in,
            rate_limited_last_hour: limited,
            refused_last_hour: refused,
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A platform's budgets in Redis, with this process's budgets as the fallback.
pub struct RedisBudget {
    platform: Platform,
    rates: HashMap<&'static str, Rate>,
    shared: Arc<SharedBudgets>,
    local: LocalBudget,
}

impl RedisBudget {
    pub fn new(
        platform: Platform,
        budgets: &[(&'static str, Rate)],
        shared: Arc<SharedBudgets>,
    ) -> Self {
        Self {
            platform,
            rates: budgets.iter().copied().collect(),
            shared,
            local: LocalBudget::new(budgets),
        }
    }
}

#[async_trait]
impl RateBudget for RedisBudget {
    async fn acquire(
        &self,
        class: &'static str,
        key: &str,
        max_wait: Duration,
    ) -> Result<Duration, Exhausted> {
        let Some(rate) = self.rates.get(class).copied() else {
            return Ok(Duration::ZERO);
        };
        let redis_key = self.shared.key(self.platform, class, key);
        match self.shared.turn(&redis_key, rate, max_wait).await {
            Some(Ok(wait)) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(wait)
            }
            Some(Err(e)) => Err(e),
            None => self.local.acquire(class, key, max_wait).await,
        }
    }

    async fn note(&self, class: &'static str, key: &str, event: BudgetEvent) {
        let redis_key = self.shared.key(self.platform, class, key);
        self.shared.note(&redis_key, event).await;
    }

    async fn shared_figures(&self, class: &'static str, key: &str) -> Option<SharedFigures> {
        let redis_key = self.shared.key(self.platform, class, key);
        let rate = self.rates.get(class).copied();
        self.shared.figures(&redis_key, rate).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_keys_name_platform_and_class_but_never_the_credential() {
        let shared = SharedBudgets::new("redis://:pw@127.0.0.1:6379", "sharpsend:budget").unwrap();
        let key = shared.key(Platform::Keap, "oauth", "oauth:KeapSandboxAccessToken01");
        assert!(key.starts_with("sharpsend:budget:keap:oauth:"), "{key}");
        assert!(!key.contains("KeapSandbox"));
        assert_eq!(key.rsplit(':').next().unwrap().len(), 24);
        // The Redis URL's password never shows.
        assert!(!format!("{shared:?}").contains("pw"));
    }

    #[tokio::test]
    async fn the_local_budget_refuses_waits_beyond_the_maximum_with_the_wait() {
        let budget = LocalBudget::new(&[("t", Rate::new(1, Duration::from_secs(10)))]);
        assert_eq!(
            budget.acquire("t", "k", Duration::ZERO).await,
            Ok(Duration::ZERO)
        );
        let e = budget.acquire("t", "k", Duration::ZERO).await.unwrap_err();
        assert!(e.after > Duration::from_secs(9) && e.after <= Duration::from_secs(10));
        // Unbudgeted classes go at once.
        assert_eq!(
            budget.acquire("other", "k", Duration::ZERO).await,
            Ok(Duration::ZERO)
        );
    }
}
