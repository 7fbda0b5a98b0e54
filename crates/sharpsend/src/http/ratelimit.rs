//! Our own rate limits (CONTRACT §2, `RATE_LIMIT_EXCEEDED`), the first step of every `/api/`
//! route, in front of the tenancy gate:
//!
//! - **failed authentications per client address** (`SHARPSEND_AUTH_FAILURE_RATE_LIMIT`, IPv6 by
//!   /64): every 401 counts. An address over the limit is refused `429` for **every** request,
//!   a valid token included, until it has room again (`Retry-After`). Refusing only the failures
//!   would keep the oracle open: a valid token would still answer 200 where a wrong one answers
//!   429. The address is the TCP peer (`ConnectInfo`); without one (the dashboard's in-process
//!   calls, a server not served with connect info) there is no per-address limit;
//! - **calls per principal** (`SHARPSEND_API_RATE_LIMIT`): the admin token, or one publisher key;
//! - **`test-connection` and `connect` calls per principal**
//!   (`SHARPSEND_TEST_CONNECTION_RATE_LIMIT`), on top of the API limit: both try credentials
//!   against the platform, so they must not be an unthrottled oracle for stolen platform keys.
//!
//! Answers past authentication carry `RateLimit-Limit` (the burst), `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds until the whole burst is available again) of the limit that binds
//! the route (the tighter one on `test-connection`/`connect`). Refusals are `429
//! RATE_LIMIT_EXCEEDED` in the envelope with `Retry-After`. Keyed state is `governor`'s GCRA,
//! swept of idle keys by [`spawn_sweeper`] (and at once when a map grows past [`SWEEP_AT`]).

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use domain::ErrorCode;
use tokio_util::sync::CancellationToken;

pub use super::limits::{RateLimits, client_address, tries_credentials};
use super::{limits::SWEEP_EVERY, middleware::authenticate_bearer};
use crate::state::AppState;

/// Sweeps idle keys every [`SWEEP_EVERY`] until `shutdown`.
pub fn spawn_sweeper(state: AppState, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => state.rate_limits.sweep(),
            }
        }
    });
}

/// The first step of every `/api/` route: the per-address failure limit, authentication, the
/// per-principal limits. The [`Principal`] goes on to the tenancy gate as an extension; the
/// answer gets the binding limit's `RateLimit-*` headers.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = &state.rate_limits;
    let address = client_address(req.extensions());
    if let Some(wait) = address.and_then(|a| limits.blocked_for(a)) {
        return limits.refuse_address(wait);
    }
    let principal = match authenticate_bearer(&state, req.headers()).await {
        Ok(p) => p,
        Err(err) if err.code == ErrorCode::Unauthorized => {
            return match limits.failed_authentication(address) {
                Some(wait) => limits.refuse_address(wait),
                None => err.into_response(),
            };
        }
        Err(err) => return err.into_response(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let decision = match limits.check_principal(&principal, &route) {
        Ok(d) => d,
        Err((refused, message)) => return refused.refusal(message),
    };
    req.extensions_mut().insert(principal);
    let mut response = next.run(req).await;
    if let Some(d) = decision {
        d.write_headers(response.headers_mut());
    }
    response
}
