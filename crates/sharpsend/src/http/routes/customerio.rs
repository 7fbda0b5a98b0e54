//! Customer.io endpoints (CONTRACT §4 and §7): test-connection, connect, and Customer.io's own reads and
//! writes. Registered under the `authorize` middleware with every other `/api/` route.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Customer.io's routes, with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
