//! One module per area, each with its handlers and their OpenAPI operations.

pub mod admin;
pub mod health;
pub mod integrations;
pub mod platforms;
