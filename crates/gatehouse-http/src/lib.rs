//! The HTTP layer: the axum router, its middleware, extractors, the one mapping from domain errors
//! to RFC 9457 problem details, and the OpenAPI document generated from the handlers. It binds no
//! socket: the binary (and every integration test) hands it a listener.
#![forbid(unsafe_code)]

mod extract;
mod json;
mod middleware;
mod problem;
mod routes;
mod settings;
mod state;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use problem::{ApiError, Problem};
pub use settings::{CorsOrigins, HttpSettings};
pub use state::AppState;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "A self-hostable security kernel for multi-tenant SaaS. Errors are RFC 9457 problem details with a stable `code`."
    ),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Accounts and sign-in"),
    ),
    components(schemas(Problem))
)]
struct ApiDoc;

fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health::live))
        .routes(routes!(routes::health::ready))
        .routes(routes!(routes::signup::signup))
        .split_for_parts()
}

/// The OpenAPI document, as served at `/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().1;
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The whole application router, middleware included.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let (routes, _) = api();
    let doc = openapi();
    let routes = routes
        .route(
            "/openapi.json",
            axum::routing::get(move || routes::openapi::serve(doc.clone())),
        )
        .fallback(routes::fallback::not_found);
    middleware::apply(routes, settings).with_state(state)
}
