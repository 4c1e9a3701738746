//! The HTTP layer: the axum router, its middleware, extractors, the one mapping from domain errors
//! to RFC 9457 problem details, and the OpenAPI document generated from the handlers. It binds no
//! socket: the binary (and every integration test) hands it a listener.
#![forbid(unsafe_code)]

mod auth;
mod documents;
mod extract;
mod json;
mod middleware;
mod problem;
mod route_facts;
mod routes;
#[cfg(test)]
mod schema_tests;
mod settings;
mod shared_responses;
mod state;
mod trust;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::routes;

use route_facts::{Limit, RouteFacts, Routes};

pub use documents::Document;
pub use middleware::request_id::{RequestInfo, current_request};
pub use problem::{ApiError, Problem};
pub use routes::unseal::{Submitted, UnsealProgress, UnsealRefusal, Unsealer};
pub use settings::{AccessLine, AccessLog, CorsOrigins, HttpSettings};
pub use state::{AppState, ServiceSecrets, Shared};
pub use trust::{DEFAULT_CACHE as TRUST_PAGE_DEFAULT_CACHE, TrustPage, TrustPageSettings};

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
        (name = "check", description = "Decisions about the product's own permissions and records"),
        (name = "records", description = "The product's records: typed, owned, private, organisation-wide or public"),
        (name = "share-links", description = "Links that open one record, read-only, without an account"),
        (name = "mail", description = "Signed unsubscribe links, the organisation's opt-out list, and the sender-domain check"),
        (name = "webhooks", description = "Standard Webhooks: endpoints, signing secrets, the delivery log and replays"),
        (name = "connectors", description = "Connectors: people's accounts at OAuth providers, tokens sealed and refreshed, handed to services only"),
        (name = "grants", description = "Grants between organisations: one lets another read (or change) its records, until a time"),
        (name = "sso", description = "Single sign-on per organisation: the OpenID provider, email domains proved by DNS, enforcement; sign-in through it"),
        (name = "internal", description = "The service API (`X-Service-Auth`)"),
        (name = "trust", description = "The public trust page: every control's status beside the operator's declarations (off unless `[trust_page]` enables it)"),
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

/// Every route of the API, each with its per-address rate-limit class on the same line (see
/// `route_facts`).
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi, RouteFacts) {
    use Limit::{Admin, Auth, ReadWrite, Unlimited};
    use routes::{
        admin, admin_accounts, admin_sessions, api_keys, apps, audit, audit_events, auth, check,
        connectors, erasures, exports, grants, health, invitations, mail_domains, me, messages,
        metrics, mfa, organization, posture, records, recovery, secrets, security_txt, share_links,
        signup, sso, sso_auth, transit, trust, unseal, unsubscribe, webhooks,
    };
    let mut api = Routes::new(ApiDoc::openapi());
    // Served by `router_for` outside the documents they serve.
    api.declare(Document::Public.served_at().0, Unlimited);
    api.declare(Document::Operator.served_at().0, Admin);
    api.declare(Document::Service.served_at().0, Unlimited);
    api.add(Unlimited, routes!(health::live))
        .add(Unlimited, routes!(health::ready))
        .add(Auth, routes!(signup::signup))
        .add(Auth, routes!(auth::login))
        .add(Auth, routes!(auth::refresh))
        .add(ReadWrite, routes!(auth::logout))
        .add(ReadWrite, routes!(auth::switch_organization))
        .add(ReadWrite, routes!(auth::verify))
        .add(Unlimited, routes!(auth::jwks))
        .add(Unlimited, routes!(security_txt::serve))
        // Public, and the checks behind it run at most once per cache period however often it
        // is asked for: limited as a read.
        .add(ReadWrite, routes!(trust::html))
        .add(ReadWrite, routes!(trust::markdown))
        .add(ReadWrite, routes!(me::me))
        .add(ReadWrite, routes!(me::sessions))
        .add(ReadWrite, routes!(exports::mine))
        .add(ReadWrite, routes!(exports::organization))
        .add(Auth, routes!(erasures::me))
        .add(ReadWrite, routes!(erasures::create))
        .add(ReadWrite, routes!(erasures::organization))
        .add(ReadWrite, routes!(me::revoke))
        .add(ReadWrite, routes!(me::revoke_others))
        .add(ReadWrite, routes!(me::sso_links))
        .add(ReadWrite, routes!(me::sso_unlink))
        .add(Auth, routes!(mfa::complete))
        .add(Auth, routes!(mfa::step_up))
        .add(ReadWrite, routes!(mfa::enrol, mfa::disable))
        .add(Auth, routes!(mfa::confirm))
        .add(Auth, routes!(mfa::regenerate_recovery_codes))
        .add(Auth, routes!(recovery::request_reset))
        .add(Auth, routes!(recovery::confirm_reset))
        .add(Auth, routes!(recovery::change_password))
        .add(Auth, routes!(recovery::resend_verification))
        .add(Auth, routes!(recovery::verify_email))
        .add(ReadWrite, routes!(organization::list_members))
        .add(ReadWrite, routes!(organization::end_member_sessions))
        .add(
            ReadWrite,
            routes!(
                organization::security_policy,
                organization::set_security_policy
            ),
        )
        .add(
            ReadWrite,
            routes!(organization::set_role, organization::remove_member),
        )
        .add(
            ReadWrite,
            routes!(organization::create_role, organization::list_roles),
        )
        .add(
            ReadWrite,
            routes!(organization::update_role, organization::delete_role),
        )
        .add(
            ReadWrite,
            routes!(invitations::invite, invitations::list_invitations),
        )
        .add(ReadWrite, routes!(invitations::revoke_invitation))
        .add(Auth, routes!(invitations::accept))
        .add(ReadWrite, routes!(audit::list))
        .add(ReadWrite, routes!(audit::export))
        .add(Admin, routes!(audit::operator_list))
        .add(Auth, routes!(admin_sessions::login))
        .add(Auth, routes!(admin_sessions::refresh))
        .add(Auth, routes!(admin_sessions::step_up))
        .add(Admin, routes!(admin_sessions::logout))
        .add(Admin, routes!(admin_sessions::sessions))
        .add(Admin, routes!(admin_sessions::revoke))
        .add(Admin, routes!(admin_sessions::revoke_others))
        .add(Admin, routes!(admin::import))
        .add(Admin, routes!(health::details))
        .add(Admin, routes!(posture::report))
        .add(
            Admin,
            routes!(unseal::unseal_submit, unseal::unseal_progress),
        )
        .add(Admin, routes!(admin::impersonate))
        .add(Admin, routes!(apps::register, apps::list))
        .add(Admin, routes!(apps::remove))
        .add(Admin, routes!(admin_accounts::end_sessions))
        .add(Admin, routes!(admin_accounts::disable))
        .add(Admin, routes!(admin_accounts::enable))
        .add(ReadWrite, routes!(api_keys::create, api_keys::list))
        .add(ReadWrite, routes!(api_keys::rotate))
        .add(ReadWrite, routes!(api_keys::revoke))
        .add(Unlimited, routes!(api_keys::verify))
        .add(ReadWrite, routes!(check::check))
        .add(ReadWrite, routes!(check::batch))
        .add(Unlimited, routes!(check::internal))
        .add(Unlimited, routes!(audit_events::ingest))
        .add(ReadWrite, routes!(records::create, records::list))
        .add(ReadWrite, routes!(share_links::create, share_links::list))
        .add(ReadWrite, routes!(share_links::revoke))
        .add(ReadWrite, routes!(share_links::set_password))
        .add(Auth, routes!(share_links::open))
        .add(ReadWrite, routes!(share_links::view))
        .add(Auth, routes!(unsubscribe::confirm, unsubscribe::one_click))
        .add(Unlimited, routes!(messages::send))
        .add(ReadWrite, routes!(webhooks::create, webhooks::list))
        .add(
            ReadWrite,
            routes!(webhooks::get, webhooks::update, webhooks::delete),
        )
        .add(ReadWrite, routes!(webhooks::rotate_secret))
        .add(ReadWrite, routes!(webhooks::attempts))
        .add(ReadWrite, routes!(webhooks::replay))
        .add(ReadWrite, routes!(webhooks::event_types))
        // DNS queries on the caller's behalf: the sign-in class's tight per-address quota.
        .add(Auth, routes!(mail_domains::check))
        .add(
            ReadWrite,
            routes!(sso::get_config, sso::put_config, sso::delete_config),
        )
        .add(ReadWrite, routes!(sso::list_domains, sso::claim_domain))
        .add(Auth, routes!(sso::verify_domain))
        .add(ReadWrite, routes!(sso::delete_domain))
        .add(Auth, routes!(sso_auth::start))
        .add(Auth, routes!(sso_auth::callback, sso_auth::complete))
        .add(Auth, routes!(sso_auth::link_start))
        .add(Auth, routes!(sso_auth::link_complete))
        .add(Unlimited, routes!(webhooks::publish))
        .add(ReadWrite, routes!(grants::create, grants::given))
        .add(ReadWrite, routes!(grants::received))
        .add(ReadWrite, routes!(grants::revoke))
        .add(
            ReadWrite,
            routes!(records::get, records::update, records::delete),
        )
        .add(ReadWrite, routes!(secrets::create, secrets::list))
        .add(
            ReadWrite,
            routes!(secrets::get, secrets::update, secrets::delete),
        )
        .add(ReadWrite, routes!(secrets::reveal))
        .add(Unlimited, routes!(secrets::use_secret))
        .add(
            ReadWrite,
            routes!(connectors::providers, connectors::create_provider),
        )
        .add(ReadWrite, routes!(connectors::delete_provider))
        .add(ReadWrite, routes!(connectors::start))
        // A browser coming back from a provider (or a product relaying it): the starting
        // person's credential is required by the route itself (401 without one).
        .add(Auth, routes!(connectors::callback))
        .add(ReadWrite, routes!(connectors::list))
        .add(ReadWrite, routes!(connectors::get, connectors::disconnect))
        .add(Unlimited, routes!(connectors::token))
        .add(ReadWrite, routes!(transit::encrypt))
        .add(ReadWrite, routes!(transit::decrypt))
        .add(ReadWrite, routes!(transit::rewrap))
        .add(ReadWrite, routes!(transit::min_version))
        .add(Unlimited, routes!(metrics::internal))
        .split()
}

/// The public OpenAPI document, as served at `/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_for(Document::Public)
}

/// One surface's OpenAPI document, as served (see [`Document`]).
#[must_use]
pub fn openapi_for(which: Document) -> utoipa::openapi::OpenApi {
    documents::cut(whole_openapi(), which)
}

/// Every route in one document: what the schema tests hold the handlers to, and what the three
/// served documents together must describe. Served nowhere.
#[must_use]
pub fn whole_openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc, _) = api();
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
    let (api_routes, _, facts) = api();
    let mut app = routes::openapi::documents(api_routes);
    // Only with limits configured: otherwise the layer would cost every request for nothing.
    let unmatched = if state.rate_limits.is_some() {
        let facts = std::sync::Arc::new(facts);
        app = app.route_layer(middleware::rate_limit::RateLimitLayer {
            state: state.clone(),
            facts: std::sync::Arc::clone(&facts),
            unmatched: false,
        });
        // A path no route matches is limited per address too: probing made-up paths costs the
        // prober its quota like any other request.
        axum::routing::any(routes::fallback::not_found)
            .layer(middleware::rate_limit::RateLimitLayer {
                state: state.clone(),
                facts,
                unmatched: true,
            })
            .with_state(state.clone())
    } else {
        axum::routing::any(routes::fallback::not_found).with_state(state.clone())
    };
    app = app.fallback_service(unmatched.clone());
    if state.revocation_fanout {
        app = app.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::revocations::published_before_answer,
        ));
    }
    if surface != Surface::All {
        // A path another listener owns is answered here exactly as an unmatched one, limit
        // included (so neither the answer nor its rate-limit headers tell that it exists).
        app = app.layer(axum::middleware::from_fn_with_state(
            routes::fallback::Hidden { surface, unmatched },
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

/// D2: a sealed server's router for one listener. Health probes (ready says `sealed`), and, when
/// `unseal` is set (the operators' listener, or the only one), `GET`/`POST /admin/v1/unseal`;
/// every other request is a 503 `sealed` problem with `Retry-After`.
pub fn sealed_router(
    unsealer: std::sync::Arc<dyn Unsealer>,
    settings: &HttpSettings,
    unseal: bool,
) -> Router {
    use axum::routing::get;
    let mut app = Router::new()
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::sealed_ready));
    if unseal {
        app = app.route(
            "/admin/v1/unseal",
            get(routes::unseal::sealed_progress).post(routes::unseal::sealed_submit),
        );
    }
    let app = app.fallback(routes::unseal::sealed);
    middleware::apply(app, settings).with_state(unsealer)
}

/// The whole application router, middleware included.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    router_for(state, settings, Surface::All)
}
