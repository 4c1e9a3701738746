//! Facts about each endpoint, declared where the route is declared (`api()` in `lib.rs`) rather
//! than matched from a list of paths elsewhere: today, which per-address rate-limit class it
//! counts against. Adding a route means choosing its class on the same line.

use std::collections::HashMap;

use axum::Router;
use axum::http::Method;
use gatehouse_core::limits::EndpointClass;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::state::AppState;

/// How a route is limited per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Not limited here: probes, published keys, and the service API (whose callers prove a
    /// shared secret and set their own quotas).
    Unlimited,
    /// Credential checks and account recovery: the tight `auth` class.
    Auth,
    /// The operator API: the `admin` class.
    Admin,
    /// The `read` class for GET and HEAD, `write` for anything else.
    ReadWrite,
}

/// The facts of every declared route, by path template (as axum's `MatchedPath` reports it).
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteFacts {
    limits: HashMap<String, Limit, foldhash::fast::RandomState>,
}

impl RouteFacts {
    /// The class a request to `route` (a matched route's template) counts against, if it is
    /// limited at all. A route added without a declared fact is limited as `ReadWrite`: a
    /// forgotten declaration costs a quota, never the limit.
    pub(crate) fn class(&self, method: &Method, route: &str) -> Option<EndpointClass> {
        match self.limits.get(route).unwrap_or(&Limit::ReadWrite) {
            Limit::Unlimited => None,
            Limit::Auth => Some(EndpointClass::Auth),
            Limit::Admin => Some(EndpointClass::Admin),
            Limit::ReadWrite => Some(Self::unmatched_class(method)),
        }
    }

    /// The class of a request that matched no route, and of a `ReadWrite` route: `read` for GET
    /// and HEAD, `write` for anything else (a made-up method included).
    pub(crate) fn unmatched_class(method: &Method) -> EndpointClass {
        if matches!(*method, Method::GET | Method::HEAD) {
            EndpointClass::Read
        } else {
            EndpointClass::Write
        }
    }
}

/// The API's routes, each added with its facts.
pub(crate) struct Routes {
    router: OpenApiRouter<AppState>,
    facts: RouteFacts,
}

impl Routes {
    pub(crate) fn new(doc: utoipa::openapi::OpenApi) -> Self {
        Self {
            router: OpenApiRouter::with_openapi(doc),
            facts: RouteFacts::default(),
        }
    }

    /// Adds the handlers of one path (`routes!(...)`), limited as `limit` says, with the
    /// refusals they share documented (see `shared_responses`).
    pub(crate) fn add(mut self, limit: Limit, mut route: UtoipaMethodRouter<AppState>) -> Self {
        for (path, item) in &mut route.1.paths {
            self.facts.limits.insert(path.clone(), limit);
            crate::shared_responses::document(item, limit);
        }
        self.router = self.router.routes(route);
        self
    }

    /// Declares the fact of a route added outside the OpenAPI document (`/openapi.json` itself).
    pub(crate) fn declare(&mut self, path: &str, limit: Limit) {
        self.facts.limits.insert(path.to_owned(), limit);
    }

    pub(crate) fn split(self) -> (Router<AppState>, utoipa::openapi::OpenApi, RouteFacts) {
        let (router, doc) = self.router.split_for_parts();
        (router, doc, self.facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limited_route_has_the_class_it_was_declared_with() {
        let (_, doc, facts) = crate::api();
        // Every documented path was declared with a fact.
        for path in doc.paths.paths.keys() {
            assert!(
                facts.limits.contains_key(path),
                "{path} has no declared limit"
            );
        }
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            facts.class(&post, "/v1/auth/login"),
            Some(EndpointClass::Auth)
        );
        assert_eq!(
            facts.class(&post, "/admin/v1/auth/login"),
            Some(EndpointClass::Auth)
        );
        assert_eq!(
            facts.class(&post, "/admin/v1/users/import"),
            Some(EndpointClass::Admin)
        );
        assert_eq!(facts.class(&get, "/v1/secrets"), Some(EndpointClass::Read));
        assert_eq!(
            facts.class(&post, "/v1/secrets"),
            Some(EndpointClass::Write)
        );
        assert_eq!(facts.class(&get, "/health/live"), None);
        assert_eq!(facts.class(&get, "/.well-known/jwks.json"), None);
        assert_eq!(facts.class(&post, "/internal/v1/api-keys/verify"), None);
        // A route added without a declaration is limited, not exempt.
        assert_eq!(facts.class(&get, "/undeclared"), Some(EndpointClass::Read));
        assert_eq!(
            facts.class(&post, "/undeclared"),
            Some(EndpointClass::Write)
        );
        assert_eq!(facts.class(&get, "/openapi.json"), None);
    }
}
