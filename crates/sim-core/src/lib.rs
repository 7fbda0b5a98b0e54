//! Shared machinery of the platform simulators.
//!
//! Every simulated platform is an axum [`Router`] serving the platform's own paths. This crate wraps
//! it with what tests and demos need and the real platforms lack:
//!
//! - a request log and named counters (`/_sim/requests`, `/_sim/counters`);
//! - fault injection per path: latency, a status, a connection reset, a malformed body, or a burst
//!   of the platform's own 429 (`/_sim/faults`);
//! - a reset that clears the log, faults and counters and calls the platform's own reset hooks;
//! - a token-bucket [`RateLimiter`] the platforms use to enforce their published limits;
//! - [`Binder`] and [`spawn`] to serve a router on a real socket (port 0 in tests);
//! - [`SimClient`], a typed client of the control API for connector tests, so no test sleeps;
//! - [`receiver`], a small inbox for signed webhooks that checks Standard Webhooks signatures.
#![forbid(unsafe_code)]

mod client;
mod control;
mod faults;
mod ratelimit;
pub mod receiver;
mod running;
mod server;
pub mod vendor;

pub use client::SimClient;
pub use control::{Control, LoggedRequest, RateLimitedResponder};
pub use faults::{Fault, FaultKind};
pub use ratelimit::{Rate, RateLimiter};
pub use running::{Credential, Origin, Running};
pub use server::{Binder, SimServer, spawn};

/// Locks a simulator mutex, taking over a poisoned one: a panic while holding a simulator lock
/// must not wedge every later request.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A deterministic 64-bit mix (SplitMix64). Simulators derive record `i` of a data set from
/// `mix(seed ^ i)` so that a million records can be served page by page without being stored.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Picks one element of `items` deterministically from `h`.
pub fn pick<T>(items: &[T], h: u64) -> &T {
    // Truncation is the point: any bits of the hash are as good as any others.
    #[allow(clippy::cast_possible_truncation)]
    let i = (h % items.len() as u64) as usize;
    &items[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_deterministic_and_spreads() {
        assert_eq!(mix(1), mix(1));
        assert_ne!(mix(1), mix(2));
        let firsts: std::collections::HashSet<u64> = (0..1000).map(|i| mix(i) % 1000).collect();
        assert!(firsts.len() > 500, "mix should spread small inputs");
    }
}
