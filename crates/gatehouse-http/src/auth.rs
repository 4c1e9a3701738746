//! Authentication extractors. A bearer token (or, in browser mode, the `__Host-` access cookie)
//! is verified by the kernel, whose session cache makes revocation immediate.
//!
//! Each surface's extractor yields the kernel's call value for it, built once:
//! - [`Caller`]: any live tenant-API token (customer, impersonation, API key), as an
//!   `AccountCall`; no organisation needed.
//! - [`EnrolmentCaller`]: a `Caller` that a person who must enrol a second factor and has not
//!   yet may still be (their identity, sessions, sign-out and the enrolment itself); every other
//!   tenant extractor refuses them with `second_factor_enrolment_required`.
//! - [`OrgCaller`]: a `TenantCall` on an organisation route: `x-organization-id` must equal the
//!   token's `org` (missing: 400; different: 403, audited).
//! - [`OperatorCaller`]: an `OperatorCall`, on `/admin/v1` only.
//! - [`ServiceCaller`]: a `ServiceCall` on `/internal/v1` ([`ServiceProof`] when the call is not
//!   audited and needs only the proof); [`OnBehalfOf`]: a `ServiceCall` and the person the service
//!   acts for.
//! - [`Authenticated`]: the principal alone, for forward authentication's hot path.
//!
//! Cookie-authenticated requests that change state must carry `x-csrf-token`, whose digest the
//! access token binds.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use gatehouse_core::api_keys::is_api_key;
use gatehouse_core::audit::SecurityKind;
use gatehouse_core::identity::{Audience, Auth, Principal};
use gatehouse_core::{
    AccountCall, Error, OperatorCall, RequestContext, ServiceCall, TenantCall, TenantScope,
    telemetry,
};
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
    let verified = state.kernel.auth().authenticate(token, audience).await;
    telemetry::add(telemetry::Stage::Token, started.elapsed());
    let method = if is_api_key(token) {
        "api_key"
    } else {
        "token"
    };
    telemetry::metrics::auth(method, verified.is_ok());
    let principal = match verified {
        Ok(p) => p,
        Err(e) => {
            let subject = wrong_audience_subject(state, &e, token).await;
            refused_credential(parts, state, &e, is_api_key(token), subject);
            return Err(e.into());
        }
    };
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
            // The organisation is known here: the event goes on its chain.
            security_event(
                parts,
                state,
                SecurityKind::CsrfFailed,
                principal.org,
                Some(principal.subject.to_string()),
            );
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf_failed",
                "a cookie-authenticated request that changes state needs the x-csrf-token header from sign-in",
            ));
        }
    }
    Ok((principal, carrier))
}

/// Counts a security event of this request (`audit::security`: aggregated per source, subject
/// and minute before it reaches the audit log).
fn security_event(
    parts: &Parts,
    state: &AppState,
    kind: SecurityKind,
    org: Option<gatehouse_core::OrgId>,
    subject: Option<String>,
) {
    let request = crate::extract::security_context(parts, state);
    state
        .kernel
        .record_security_event(kind, org, subject, &request);
}

/// The subject of a token refused for its audience (it is genuine for the other API).
async fn wrong_audience_subject(state: &AppState, e: &Error, token: &str) -> Option<String> {
    match e {
        Error::WrongAudience(_) => state.kernel.auth().other_audience_subject(token).await,
        _ => None,
    }
}

/// A presented credential refused: a wrong audience (naming the token's subject), or one that
/// did not verify. A token that has merely expired is ordinary client behaviour, and a store
/// that could not answer is not the caller's doing: neither is counted.
fn refused_credential(
    parts: &Parts,
    state: &AppState,
    e: &Error,
    api_key: bool,
    subject: Option<String>,
) {
    if let Some(kind) = SecurityKind::of_refused_credential(e, api_key) {
        security_event(parts, state, kind, None, subject);
    }
}

/// A verified tenant-API token and how it arrived, and nothing else: forward authentication's
/// hot path, which needs no request context unless it has a refusal to audit.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub principal: Arc<Principal>,
    /// A second factor is required of this person (who has one, or the request was refused).
    pub second_factor_required: bool,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = match verify_audience(parts) {
            // A proxy in front of a registered app asks for that app's tokens only.
            Some(app) => {
                let (token, _) = token(&parts.headers)?;
                let verified = state.kernel.auth().authenticate_for_app(token, &app).await;
                let method = if is_api_key(token) {
                    "api_key"
                } else {
                    "token"
                };
                telemetry::metrics::auth(method, verified.is_ok());
                let principal = match verified {
                    Ok(p) => p,
                    Err(e) => {
                        let subject = wrong_audience_subject(state, &e, token).await;
                        refused_credential(parts, state, &e, is_api_key(token), subject);
                        return Err(e.into());
                    }
                };
                telemetry::set_caller(principal.subject, principal.org.map(|o| o.as_uuid()));
                principal
            }
            None => authenticate(parts, state, Audience::Tenant).await?.0,
        };
        crate::middleware::rate_limit::limit_principal(state, parts, &principal).await?;
        let second_factor_required = state.kernel.auth().second_factor_gate(&principal).await?;
        Ok(Self {
            principal,
            second_factor_required,
        })
    }
}

/// Forward authentication's `audience` query parameter: the app a proxy guards. Read here, before
/// the token is, because it decides which audience the token must carry; verify's own query
/// parsing then refuses anything malformed.
fn verify_audience(parts: &Parts) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct AudienceOnly {
        audience: Option<String>,
    }
    parts.uri.query()?;
    axum::extract::Query::<AudienceOnly>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|q| q.0.audience)
}

/// A caller on the tenant API, not tied to an organisation route: the kernel's `AccountCall`
/// and how the token arrived.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub call: AccountCall,
    pub carrier: Carrier,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let EnrolmentCaller { call, carrier } =
            EnrolmentCaller::from_request_parts(parts, state).await?;
        state
            .kernel
            .auth()
            .second_factor_gate(&call.principal)
            .await?;
        Ok(Self { call, carrier })
    }
}

/// A [`Caller`] on a route a person may use while a second factor is required of them and they
/// have none: what enrolling it needs, and nothing that reads or changes anyone's data.
#[derive(Debug, Clone)]
pub(crate) struct EnrolmentCaller {
    pub call: AccountCall,
    pub carrier: Carrier,
}

impl FromRequestParts<AppState> for EnrolmentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, carrier) = authenticate(parts, state, Audience::Tenant).await?;
        crate::middleware::rate_limit::limit_principal(state, parts, &principal).await?;
        let request = request_context(parts, state).await;
        Ok(Self {
            call: AccountCall { principal, request },
            carrier,
        })
    }
}

/// The header every organisation route ([`OrgCaller`]) requires, for its OpenAPI `params`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by `OrgCaller`, declared here for the document only
pub(crate) struct OrgScoped {
    /// The organisation the token is for. Missing: 400 `organization_required`; another
    /// organisation: 403 `organization_mismatch` (audited on the token's organisation).
    #[serde(rename = "x-organization-id")]
    x_organization_id: uuid::Uuid,
}

/// A caller on an organisation route: the kernel's `TenantCall`, scoped to the token's
/// organisation.
#[derive(Debug, Clone)]
pub(crate) struct OrgCaller(pub TenantCall);

impl FromRequestParts<AppState> for OrgCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let OrgCallerVia(call, _) = OrgCallerVia::from_request_parts(parts, state).await?;
        Ok(Self(call))
    }
}

/// An organisation route's caller and how their credential arrived (cookie session or bearer
/// token): for a flow that must be completed the way it was started (connectors).
#[derive(Debug, Clone)]
pub(crate) struct OrgCallerVia(pub TenantCall, pub Carrier);

impl FromRequestParts<AppState> for OrgCallerVia {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, carrier) = authenticate(parts, state, Audience::Tenant).await?;
        crate::middleware::rate_limit::limit_principal(state, parts, &principal).await?;
        let scope = org_scope(parts, state, &principal).await?;
        state.kernel.auth().second_factor_gate(&principal).await?;
        let request = request_context(parts, state).await;
        Ok(Self(
            TenantCall {
                principal,
                scope,
                request,
            },
            carrier,
        ))
    }
}

/// An organisation route's caller when a credential is presented (bearer or cookie), with how it
/// arrived; nothing when none is: for a route that refuses itself, after its own checks, when
/// none came (the connectors' callback answers 401, or sends the browser back with the error).
/// A browser sent back by a provider cannot add `x-organization-id`: without the header the
/// token's own organisation is the scope; with it, it must match as on every organisation route.
#[derive(Debug, Clone)]
pub(crate) struct MaybeOrgCaller(pub Option<(TenantCall, Carrier)>);

impl FromRequestParts<AppState> for MaybeOrgCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts.headers.contains_key(header::AUTHORIZATION)
            || cookie(&parts.headers, ACCESS_COOKIE).is_some();
        if !presented {
            return Ok(Self(None));
        }
        let (principal, carrier) = authenticate(parts, state, Audience::Tenant).await?;
        crate::middleware::rate_limit::limit_principal(state, parts, &principal).await?;
        let own = principal.org.map(|o| o.to_string());
        let scope = match org_header(parts)
            .is_none()
            .then(|| Auth::org_header_matches(&principal, own.as_deref()))
            .flatten()
        {
            Some(scope) => scope,
            None => org_scope(parts, state, &principal).await?,
        };
        state.kernel.auth().second_factor_gate(&principal).await?;
        let request = request_context(parts, state).await;
        Ok(Self(Some((
            TenantCall {
                principal,
                scope,
                request,
            },
            carrier,
        ))))
    }
}

pub(crate) async fn request_context(parts: &mut Parts, state: &AppState) -> RequestContext {
    let RequestMeta(request) = RequestMeta::from_request_parts(parts, state)
        .await
        .unwrap_or_else(|never| match never {});
    request
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
    if let Some(scope) = Auth::org_header_matches(principal, org_header(parts)) {
        return Ok(scope);
    }
    let request = request_context(parts, state).await;
    Ok(state
        .kernel
        .auth()
        .check_org_header(principal, org_header(parts), &request)
        .await?)
}

/// An operator on `/admin/v1`: the kernel's `OperatorCall`.
#[derive(Debug, Clone)]
pub(crate) struct OperatorCaller(pub OperatorCall);

impl FromRequestParts<AppState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (principal, _) = authenticate(parts, state, Audience::Operator).await?;
        // The audience is the kernel's check; the tier and kind of credential are checked here
        // too, so nothing but an operator's own session reaches an operator route.
        if !principal.is_operator_session() {
            let e = Error::WrongAudience("only operator tokens are accepted on /admin/v1");
            refused_credential(
                parts,
                state,
                &e,
                principal.api_key_permissions.is_some(),
                Some(principal.subject.to_string()),
            );
            return Err(e.into());
        }
        let request = request_context(parts, state).await;
        Ok(Self(OperatorCall { principal, request }))
    }
}

pub(crate) const SERVICE_HEADER: &str = "x-service-auth";
pub(crate) const SERVICE_NAME_HEADER: &str = "x-gatehouse-service";
pub(crate) const ON_BEHALF_HEADER: &str = "x-gatehouse-on-behalf-of";

/// Proof that the caller is one of your own services on `/internal/v1`: `X-Service-Auth` equals
/// a configured service secret (compared in constant time). Bearer tokens and API keys are not
/// looked at: they never pass here, and the service secret is never looked at anywhere else.
/// Nothing else of the request is read, so the service API's hot path (key verification)
/// builds no request context; [`ServiceCaller`] adds it for calls that are audited.
#[derive(Debug, Clone)]
pub(crate) struct ServiceProof {
    /// The matched secret's name: the service, as the audit trail records it.
    pub service: Arc<str>,
    /// The registered app the service is bound to (`service_auth.apps`).
    pub app: Option<Arc<str>>,
}

impl FromRequestParts<AppState> for ServiceProof {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.service.is_configured() {
            security_event(parts, state, SecurityKind::ServiceAuthFailed, None, None);
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
            Some(service) if !presented.is_empty() => {
                telemetry::metrics::auth("service", true);
                let app = state.service.app_of(&service);
                Ok(Self { service, app })
            }
            _ => {
                telemetry::metrics::auth("service", false);
                security_event(parts, state, SecurityKind::ServiceAuthFailed, None, None);
                Err(Error::Unauthenticated("X-Service-Auth is missing or wrong").into())
            }
        }
    }
}

/// An audited call by one of your own services: the kernel's `ServiceCall` (the service its
/// secret proves, what `x-gatehouse-service` says it is, and the request).
#[derive(Debug, Clone)]
pub(crate) struct ServiceCaller(pub ServiceCall);

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ServiceProof { service, app } = ServiceProof::from_request_parts(parts, state).await?;
        // What the service says it is, beside what its secret proves it is.
        let label = parts
            .headers
            .get(SERVICE_NAME_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty());
        let request = request_context(parts, state).await;
        Ok(Self(ServiceCall {
            service,
            label,
            app,
            request,
        }))
    }
}

/// A service acting for a person on `/internal/v1`: the service's `ServiceCall` (its secret is
/// checked first, so a person's token is never looked at for a caller that has not proved it is
/// one of the deployment's services) and the person whose access token is in
/// `x-gatehouse-on-behalf-of` (optionally with a `Bearer ` prefix). A service bound to an app
/// (`service_auth.apps`) must present a token issued for that app (`resource` on refresh); one
/// bound to none, a token for Gatehouse's own audience, as on the tenant API. Either way a token
/// for any other audience is `wrong_audience`. API keys are refused: a key is not a person.
#[derive(Debug, Clone)]
pub(crate) struct OnBehalfOf {
    pub call: ServiceCall,
    pub person: Arc<Principal>,
}

impl FromRequestParts<AppState> for OnBehalfOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ServiceCaller(call) = ServiceCaller::from_request_parts(parts, state).await?;
        let token = parts
            .headers
            .get(ON_BEHALF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
            .filter(|v| !v.is_empty())
            .ok_or(Error::Unauthenticated(
                "x-gatehouse-on-behalf-of must carry the person's access token",
            ))?;
        if is_api_key(token) {
            let e =
                Error::WrongAudience("on-behalf-of needs a person's access token, not an API key");
            refused_credential(parts, state, &e, true, None);
            return Err(e.into());
        }
        let principal = match state
            .kernel
            .auth()
            .authenticate_for_service(&call, token)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                let subject = wrong_audience_subject(state, &e, token).await;
                refused_credential(parts, state, &e, false, subject);
                return Err(e.into());
            }
        };
        state.kernel.auth().second_factor_gate(&principal).await?;
        Ok(Self {
            call,
            person: principal,
        })
    }
}
