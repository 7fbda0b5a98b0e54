//! SharpSend integrations service: the HTTP API, the credential vault in use, tenancy, and the
//! operator commands. `main.rs` is a thin CLI over this library; tests drive it the same way.
#![forbid(unsafe_code)]

pub mod analytics;
pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod consent;
pub mod dashboard;
pub mod destinations;
pub mod error;
pub mod http;
pub mod integrations;
pub mod keap_sweep;
pub mod paging;
pub mod platforms;
pub mod principal;
pub mod sandbox;
pub mod server;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod vault_ops;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
