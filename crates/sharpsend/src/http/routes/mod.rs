//! One module per area, each with its handlers and their OpenAPI operations.

pub mod admin;
pub mod analytics;
pub mod consent;
pub mod customerio;
pub mod destinations;
pub mod events;
pub mod health;
pub mod integrations;
pub mod iterable;
pub mod keap;
pub mod operations;
pub mod platforms;
pub mod reads;
pub mod sync;
pub mod webhooks;
