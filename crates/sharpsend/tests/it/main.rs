//! The service's integration tests: one binary, a real server on port 0 per test, a fresh
//! SQLite database (or PostgreSQL when `TEST_DATABASE_URL` is set; CI runs both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod analytics;
mod api;
mod api_ratelimit;
mod bodies;
mod cli;
mod conformance;
mod consent;
mod consent_flow;
mod consent_sync;
mod consent_wire;
mod customerio;
mod dashboard;
mod dashboard_browser;
mod dashboard_campaign;
mod dashboard_destinations;
mod destinations;
mod edges;
mod helpers;
mod iterable;
mod iterable_export;
mod keap;
mod keap_reporting;
mod logs;
mod metrics_history;
mod openapi;
mod sandbox_alive;
mod server_hardening;
mod sync;
mod sync_sources;
mod tenancy;
mod vault;
mod webhook_abuse;
mod webhooks;
