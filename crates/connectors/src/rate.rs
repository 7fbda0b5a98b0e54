//! A platform's published request limit ([`Rate`]): the one figure the proactive budgets
//! ([`crate::budget`]), the limits view ([`crate::limits`]) and the HTTP client
//! ([`crate::http`]) all pace by. It sits below all three so none of them imports another for it.

use std::time::Duration;

/// A published limit: `amount` requests per `per`, of which up to `burst` may go at once
/// (`amount` unless [`Rate::with_burst`] says otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub amount: u32,
    pub per: Duration,
    burst: Option<u32>,
    /// How much slower than `amount` per `per` the budget paces, in percent.
    headroom: u8,
}

impl Rate {
    pub const fn per_second(amount: u32) -> Self {
        Self::new(amount, Duration::from_secs(1))
    }

    pub const fn per_minute(amount: u32) -> Self {
        Self::new(amount, Duration::from_secs(60))
    }

    pub const fn new(amount: u32, per: Duration) -> Self {
        Self {
            amount,
            per,
            burst: None,
            headroom: 0,
        }
    }

    /// Paces `percent` % slower than the limit (the limit shown stays the published one). A
    /// budget at exactly the platform's rate meets its bucket with no token to spare, so two
    /// requests that network jitter brings a millisecond closer draw a 429; the headroom lets
    /// the platform's bucket refill a little faster than we draw on it.
    pub const fn with_headroom(mut self, percent: u8) -> Self {
        self.headroom = percent;
        self
    }

    /// A smaller (or larger) burst than `amount`: a steady pace that leaves the platform's own
    /// bucket room for network jitter and for other replicas.
    pub const fn with_burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// How many requests may go at once (at least 1).
    pub fn burst(self) -> u32 {
        self.burst.unwrap_or(self.amount).max(1)
    }

    /// This limit at `percent` % (amount and burst, at least 1 each).
    pub fn scaled_percent(self, percent: u32) -> Self {
        let scale = |n: u32| {
            u32::try_from((u64::from(n) * u64::from(percent)).div_ceil(100))
                .unwrap_or(u32::MAX)
                .max(1)
        };
        Self {
            amount: scale(self.amount),
            burst: self.burst.map(scale),
            ..self
        }
    }

    /// The steady spacing between requests (with the headroom).
    pub fn interval(self) -> Duration {
        self.per / self.amount.max(1) * (100 + u32::from(self.headroom)) / 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_slows_the_pace_but_not_the_published_limit() {
        let r = Rate::per_second(10).with_headroom(3);
        assert_eq!(r.interval(), Duration::from_millis(103));
        assert_eq!(
            (r.amount, r.per, r.burst()),
            (10, Duration::from_secs(1), 10)
        );
        // Scaling keeps the headroom.
        let doubled = r.scaled_percent(200);
        assert_eq!(doubled.interval(), Duration::from_micros(51_500));
        assert_eq!(Rate::per_minute(4).interval(), Duration::from_secs(15));
    }

    #[test]
    fn budgets_scale_by_percent_and_never_reach_zero() {
        let keap = Rate::new(24, Duration::from_secs(1)).with_burst(6);
        assert_eq!(keap.scaled_percent(100), keap);
        let half = keap.scaled_percent(50);
        assert_eq!((half.amount, half.burst()), (12, 3));
        let lifted = keap.scaled_percent(100_000);
        assert_eq!((lifted.amount, lifted.burst()), (24_000, 6_000));
        let tiny = Rate::per_minute(4).scaled_percent(1);
        assert_eq!(
            (tiny.amount, tiny.burst(), tiny.per),
            (1, 1, Duration::from_secs(60))
        );
    }
}
