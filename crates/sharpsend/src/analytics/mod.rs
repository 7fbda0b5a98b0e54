//! Analytics and rate-limit visibility (issue 9, API side): campaign metrics normalised across
//! the three platforms, Keap's own reporting (sent-email metrics, campaign counts), our own
//! counts from received webhook events, the `…/limits` view of the rate budgets, and pure SVG
//! chart renderers for the dashboard.

pub mod buckets;
pub mod chart;
pub mod history;
pub mod keap;
pub mod limits;
pub mod metrics;
