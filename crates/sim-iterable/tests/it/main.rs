//! Integration tests of the Iterable simulator: one binary, real sockets on port 0.
// Test helpers outside `#[test]` fns panic on purpose; clippy's test exemption does not see them.
#![allow(clippy::unwrap_used)]

mod auth;
mod common;
mod consent;
mod export;
mod fidelity;
mod lists_users;
mod paging;
mod rate_limits;
mod sends_webhooks;
mod stream;
