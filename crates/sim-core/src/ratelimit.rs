//! Token buckets keyed by (credential, endpoint class), as the platforms enforce their limits.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// `amount` requests per `per`, refilled continuously, with a burst of `amount`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub amount: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_second(amount: u32) -> Self {
        Self {
            amount,
            per: Duration::from_secs(1),
        }
    }

    pub const fn per_minute(amount: u32) -> Self {
        Self {
            amount,
            per: Duration::from_secs(60),
        }
    }

    pub const fn new(amount: u32, per: Duration) -> Self {
        Self { amount, per }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A set of token buckets. Cloning shares the buckets.
#[derive(Clone, Debug, Default)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

/// Outcome of [`RateLimiter::check`] when the bucket is empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limited {
    /// When one token will be available again.
    pub retry_after: Duration,
    /// The bucket's capacity, for `x-*-limit` style headers.
    pub limit: u32,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one token from the bucket `key` (created full at `rate`), or says when one frees.
    pub fn check(&self, key: &str, rate: Rate) -> Result<u32, Limited> {
        self.check_at(key, rate, Instant::now())
    }

    fn check_at(&self, key: &str, rate: Rate, now: Instant) -> Result<u32, Limited> {
        let capacity = f64::from(rate.amount);
        let per_token = rate.per.as_secs_f64() / capacity;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed / per_token).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            // Tokens are bounded by capacity, a u32.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(bucket.tokens.floor() as u32)
        } else {
            let wait = (1.0 - bucket.tokens) * per_token;
            Err(Limited {
                retry_after: Duration::from_secs_f64(wait),
                limit: rate.amount,
            })
        }
    }

    /// Forgets every bucket.
    pub fn reset(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        let rate = Rate::per_second(5);
        for _ in 0..5 {
            assert!(rl.check_at("k", rate, t0).is_ok());
        }
        let limited = rl.check_at("k", rate, t0).unwrap_err();
        assert!(limited.retry_after <= Duration::from_millis(200));
        assert!(
            rl.check_at("other", rate, t0).is_ok(),
            "keys are independent"
        );
        assert!(
            rl.check_at("k", rate, t0 + Duration::from_millis(210))
                .is_ok()
        );
    }
}
