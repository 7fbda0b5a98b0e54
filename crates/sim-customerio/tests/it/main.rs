//! Integration tests: the simulator on real sockets (port 0), driven with reqwest and SimClient.
// Test helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod app;
mod cdp;
mod common;
mod consent;
mod fidelity;
mod stream;
mod track;
mod webhooks;
