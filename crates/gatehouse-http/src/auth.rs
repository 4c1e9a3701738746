//! Authentication extractors. A bearer token (or, in browser mode, the `__Host-` access cookie)
//! is verified by the kernel, whose session cache makes revocation immediate.
//!
//! - [`Caller`]: any live tenant-API token (customer or impersonation); no organisation needed.
//! - [`OrgCaller`]: a `Caller` on an organisation route: `x-organization-id` must equal the
//!   token's `org` (missing: 400; different: 403, audited).
//! - [`OperatorCaller`]: an operator token, on `/admin/v1` only.
//!
//! Cookie-authenticated requests that change state must carry `x-csrf-token`, whose digest the
//! access token binds.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use gatehouse_core::identity::{Audience, Principal};
use gatehouse_core::{Error, TenantScope, telemetry};
use gatehouse_crypto::ct_eq;

use crate::extract::RequestMeta;
use crate::problem::ApiError;
use crate::state::AppState;

pub(crate) const ACCESS_COOKIE: &str = "__Host-gatehouse_access";
pub(crate) const REFRESH_COOKIE: &str = "__Host-gatehouse_refresh";
pub(crate) const CSRF_COOKIE: &str = "__Host-gatehouse_csrf";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
pub(crate) const ORG_HEADER: &str = "x-organization-id";

/// How the token arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    Bearer,
    Cookie,
}

/// The value of cookie `name`, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn token(headers: &HeaderMap) -> Result<(&str, Carrier), Error> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| Error::Unauthenticated("the Authorization header is malformed"))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or(Error::Unauthenticated("use Authorization: Bearer <token>"))?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Error::Unauthenticated("use Authorization: Bearer <token>"));
        }
        return Ok((token.trim(), Carrier::Bearer));
    }
    cookie(headers, ACCESS_COOKIE)
        .map(|t| (t, Carrier::Cookie))
        .ok_or(Error::Unauthenticated("no credentials were presented"))
}

fn state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn authenticate(
    parts: &Parts,
    state: &AppState,
    audience: Audience,
) -> Result<(Arc<Principal>, Carrier), ApiError> {
    let (token, carrier) = token(&parts.headers)?;
    let started = std::time::Instant::now();
    let verified = state.kernel.authenticate(token, audience).await;
    telemetry::add(telemetry::Stage::Token, started.elapsed());
    let method = if token.starts_with("gk_") {
        "api_key"
    } else {
        "token"
    };
    telemetry::metrics::auth(method, verified.is_ok());
    let principal = verified?;
    telemetry::set_caller(principal.subject, principal.org.map(|o| o.as_uuid()));
    if carrier == Carrier::Cookie && state_changing(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(gatehouse_core::identity::csrf_digest);
        let ok = match (sent, &principal.csrf_digest) {
            (Some(sent), Some(bound)) => ct_eq(sent.as_bytes(), bound.as_bytes()),
            _ => false,
        };
        if !ok {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf_failed",
                "a cookie-authenticated request that changes state needs the x-csrf-token header from sign-in",
            ));
        }
    }
    Ok((principal, carrier))
}

/// A caller on the tenant API, not tied to an organisation route.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Arc<Principal>,
    pub carrier: Carrier,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, carrier) = authenticate(parts, state, Audience::Tenant).await?;
        crate::middleware::rate_limit::limit_principal(state, parts, &principal).await?;
        Ok(Self { principal, carrier })
    }
}

/// A caller on an organisation route, scoped to the token's organisation.
#[derive(Debug, Clone)]
pub(crate) struct OrgCaller {
    pub principal: Arc<Principal>,
    pub scope: TenantScope,
}

impl FromRequestParts<AppState> for OrgCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, _) = authenticate(parts, state, Audience::Tenant).await?;
        crate::middleware::rate_limit::limit_principal(state, parts, &principal).await?;
        let scope = org_scope(parts, state, &principal).await?;
        Ok(Self { principal, scope })
    }
}

fn org_header(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(ORG_HEADER)
        .map(|v| v.to_str().unwrap_or("?"))
}

/// The organisation `x-organization-id` names, checked against the token's. The token's own
/// organisation passes without building the request context; anything else goes to the kernel,
/// which audits the refusal with that context.
pub(crate) async fn org_scope(
    parts: &mut Parts,
    state: &AppState,
    principal: &Principal,
) -> Result<TenantScope, ApiError> {
    if let Some(scope) = gatehouse_core::Kernel::org_header_matches(principal, org_header(parts)) {
        return Ok(scope);
    }
    let RequestMeta(meta) = RequestMeta::from_request_parts(parts, state)
        .await
        .unwrap_or_else(|never| match never {});
    Ok(state
        .kernel
        .check_org_header(principal, org_header(parts), &meta)
        .await?)
}

/// An operator on `/admin/v1`.
#[derive(Debug, Clone)]
pub(crate) struct OperatorCaller {
    pub principal: Arc<Principal>,
}

impl FromRequestParts<AppState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, _) = authenticate(parts, state, Audience::Operator).await?;
        Ok(Self { principal })
    }
}

pub(crate) const SERVICE_HEADER: &str = "x-service-auth";

/// One of your own services on `/internal/v1`: `X-Service-Auth` equals a configured service
/// secret (compared in constant time). Bearer tokens and API keys are not looked at: they never
/// pass here, and the service secret is never looked at anywhere else.
#[derive(Debug, Clone)]
pub(crate) struct ServiceCaller {
    /// The matched secret's name: the service, as the audit trail records it.
    pub name: Arc<str>,
}

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.service.is_configured() {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "service authentication is not configured (service_auth.secret_files)",
            ));
        }
        let presented = parts
            .headers
            .get(SERVICE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match state.service.matching(presented) {
            Some(name) if !presented.is_empty() => {
                telemetry::metrics::auth("service", true);
                Ok(Self { name })
            }
            _ => {
                telemetry::metrics::auth("service", false);
                Err(Error::Unauthenticated("X-Service-Auth is missing or wrong").into())
            }
        }
    }
}
