//! The HTTP layer: the axum router, its middleware, extractors, the one mapping from domain errors
//! to RFC 9457 problem details, and the OpenAPI document generated from the handlers. It binds no
//! socket: the binary (and every integration test) hands it a listener.
#![forbid(unsafe_code)]

mod auth;
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

pub use middleware::request_id::{RequestInfo, current_request};
pub use problem::{ApiError, Problem};
pub use settings::{AccessLine, AccessLog, CorsOrigins, HttpSettings};
pub use state::{AppState, ServiceSecrets, Shared};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "A self-hostable security kernel for multi-tenant SaaS. Errors are RFC 9457 problem details with a stable `code`."
    ),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Accounts, sign-in, tokens and forward authentication"),
        (name = "me", description = "The signed-in user and their sessions"),
        (name = "organization", description = "Members, custom roles and invitations"),
        (name = "audit", description = "The organisation's tamper-evident audit log"),
        (name = "admin", description = "The operator API"),
        (name = "api-keys", description = "API keys for machine callers"),
        (name = "secrets", description = "The shared-secrets vault: metadata, reveal (gated) and versions"),
        (name = "transit", description = "Encryption for the organisation's own fields"),
        (name = "internal", description = "The service API (`X-Service-Auth`)"),
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem))
)]
struct ApiDoc;

/// Declares the bearer scheme the handlers' `security(("bearer" = []))` refers to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "service",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::new("X-Service-Auth"),
            )),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::health::live))
        .routes(routes!(routes::health::ready))
        .routes(routes!(routes::signup::signup))
        .routes(routes!(routes::auth::login))
        .routes(routes!(routes::auth::refresh))
        .routes(routes!(routes::auth::logout))
        .routes(routes!(routes::auth::switch_organization))
        .routes(routes!(routes::auth::verify))
        .routes(routes!(routes::auth::jwks))
        .routes(routes!(routes::security_txt::serve))
        .routes(routes!(routes::me::me))
        .routes(routes!(routes::me::sessions))
        .routes(routes!(routes::me::revoke))
        .routes(routes!(routes::me::revoke_others))
        .routes(routes!(routes::mfa::complete))
        .routes(routes!(routes::mfa::step_up))
        .routes(routes!(routes::mfa::enrol, routes::mfa::disable))
        .routes(routes!(routes::mfa::confirm))
        .routes(routes!(routes::recovery::request_reset))
        .routes(routes!(routes::recovery::confirm_reset))
        .routes(routes!(routes::recovery::change_password))
        .routes(routes!(routes::recovery::resend_verification))
        .routes(routes!(routes::recovery::verify_email))
        .routes(routes!(routes::organization::list_members))
        .routes(routes!(
            routes::organization::set_role,
            routes::organization::remove_member
        ))
        .routes(routes!(
            routes::organization::create_role,
            routes::organization::list_roles
        ))
        .routes(routes!(routes::organization::invite))
        .routes(routes!(routes::organization::accept))
        .routes(routes!(routes::audit::list))
        .routes(routes!(routes::audit::export))
        .routes(routes!(routes::audit::operator_list))
        .routes(routes!(routes::admin::login))
        .routes(routes!(routes::admin::import))
        .routes(routes!(routes::admin::impersonate))
        .routes(routes!(routes::api_keys::create, routes::api_keys::list))
        .routes(routes!(routes::api_keys::rotate))
        .routes(routes!(routes::api_keys::revoke))
        .routes(routes!(routes::api_keys::verify))
        .routes(routes!(routes::secrets::create, routes::secrets::list))
        .routes(routes!(
            routes::secrets::get,
            routes::secrets::update,
            routes::secrets::delete
        ))
        .routes(routes!(routes::secrets::reveal))
        .routes(routes!(routes::secrets::use_secret))
        .routes(routes!(routes::transit::encrypt))
        .routes(routes!(routes::transit::decrypt))
        .routes(routes!(routes::transit::rewrap))
        .routes(routes!(routes::transit::min_version))
        .routes(routes!(routes::metrics::internal))
        .split_for_parts()
}

/// The OpenAPI document, as served at `/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().1;
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// Which paths a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything (the default: one listener).
    All,
    /// Everything except `/admin/...` (the public listener when operators have their own).
    Tenant,
    /// Only `/admin/...` and the health probes (the operators' listener).
    Admin,
}

/// The router for one listener: `surface` decides which paths exist on it (the others get the
/// same 404 as a path that exists nowhere).
pub fn router_for(state: AppState, settings: &HttpSettings, surface: Surface) -> Router {
    let (api_routes, _) = api();
    let doc = openapi();
    let mut app = api_routes
        .route(
            "/openapi.json",
            axum::routing::get(move || routes::openapi::serve(doc.clone())),
        )
        .fallback(routes::fallback::not_found);
    // Only with limits configured: otherwise the layer would cost every request for nothing.
    if state.rate_limits.is_some() {
        app = app.route_layer(middleware::rate_limit::RateLimitLayer {
            state: state.clone(),
        });
    }
    if surface != Surface::All {
        app = app.layer(axum::middleware::from_fn_with_state(
            surface,
            routes::fallback::surface_filter,
        ));
    }
    middleware::apply(app, settings).with_state(state)
}

/// The metrics listener's router: `/metrics` (no authentication) and the health probes, with
/// the same edge middleware as the API (request ids, security headers, problem bodies).
pub fn metrics_router(state: AppState, settings: &HttpSettings) -> Router {
    let app = Router::new()
        .route("/metrics", axum::routing::get(routes::metrics::open))
        .route("/health/live", axum::routing::get(routes::health::live))
        .route("/health/ready", axum::routing::get(routes::health::ready))
        .fallback(routes::fallback::not_found);
    middleware::apply(app, settings).with_state(state)
}

/// The whole application router, middleware included.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    router_for(state, settings, Surface::All)
}
