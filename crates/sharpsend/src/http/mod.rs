//! The HTTP layer: routes, extractors, errors, middleware, metrics and the OpenAPI document.

pub mod checks;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::HeaderName,
    middleware::{from_fn, from_fn_with_state},
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The routes under `/api/` (bearer token, tenancy) with their OpenAPI operations.
fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::platforms::list_platforms))
        .routes(routes!(routes::integrations::list_integrations))
        .routes(routes!(routes::integrations::disconnect))
        .routes(routes!(routes::events::list_events))
        .routes(routes!(
            routes::admin::create_api_key,
            routes::admin::list_api_keys
        ))
        .routes(routes!(routes::admin::revoke_api_key))
        .routes(routes!(routes::health::openapi_json))
        .merge(routes::iterable::routes())
        .merge(routes::customerio::routes())
        .merge(routes::keap::routes())
        .routes(routes!(
            routes::sync::start_sync,
            routes::sync::list_sync_jobs
        ))
        .routes(routes!(routes::sync::get_sync_job))
        .routes(routes!(routes::sync::list_records))
        .merge(routes::analytics::routes())
        .merge(routes::operations::routes())
        .merge(routes::reads::routes())
        .merge(routes::consent::routes())
        .merge(routes::destinations::routes())
        .routes(routes!(
            routes::operations::read_operation,
            routes::operations::write_operation
        ))
        // Inner to the gate: it needs the scope and the parsed body.
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotent))
        .route_layer(from_fn_with_state(state.clone(), middleware::authorize))
        .route_layer(from_fn_with_state(state.clone(), ratelimit::authenticate))
}

/// Routes outside `/api/`.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::health::metrics))
        .merge(routes::keap::public_routes())
        .routes(routes!(routes::webhooks::receive))
}

/// The OpenAPI document of every route.
pub fn openapi(state: &AppState) -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api_routes(state))
        .merge(public_routes())
        .split_for_parts()
        .1;
    openapi::add_rate_limits(&mut doc);
    openapi::add_common_errors(&mut doc);
    idempotency::document(&mut doc);
    openapi::add_links(&mut doc);
    doc
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (router, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api_routes(&state))
        .merge(public_routes())
        .split_for_parts();
    // Outermost of the route layers: a method the document does not list is 405 before any
    // check of the request runs.
    let router = router.route_layer(from_fn_with_state(
        middleware::documented_methods(&doc),
        middleware::only_documented_methods,
    ));
    // The dashboard calls the API in-process through the same layers a client meets.
    let api = finish(router.clone(), state.clone());
    finish(router.merge(crate::dashboard::routes(api)), state)
}

/// `/metrics` alone, for `SHARPSEND_METRICS_LISTEN` (an internal address).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(routes::health::render_metrics),
        )
        .fallback(middleware::not_found)
        .layer(from_fn(middleware::envelope_errors))
        .with_state(state)
}

/// Adds what every route shares: the 404 fallback, the envelope for every error (axum's own 405s and rejections too), the body limit,
/// request ids, observation (logs, metrics), panic recovery. Public so tests can mount extra
/// routes under exactly the same layers.
pub fn finish(router: Router<AppState>, state: AppState) -> Router {
    let request_id = HeaderName::from_static(middleware::REQUEST_ID);
    let routed = router
        .fallback(middleware::not_found)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(from_fn(middleware::api_headers))
                .layer(from_fn_with_state(state.clone(), middleware::observe))
                .layer(from_fn_with_state(
                    state.clone(),
                    middleware::request_timeout,
                ))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(from_fn(middleware::limit_body)),
        )
        .with_state(state);
    // The envelope wraps the whole router as one service, not each route: axum adds a 405's
    // `Allow` header outside the route's own layers, so only from here can the envelope name
    // the methods a path takes.
    Router::new()
        .fallback_service(routed)
        .layer(from_fn(middleware::envelope_errors))
}
