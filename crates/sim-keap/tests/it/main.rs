//! Integration tests of the Keap simulator: each starts it on port 0 and drives it over HTTP.
#![allow(clippy::unwrap_used)] // a test binary: helpers panic on purpose when the simulator misbehaves

mod common;
mod consent;
mod fidelity;
mod gateway;
mod hooks;
mod memory;
mod oauth;
mod v1;
mod v2;
