//! Who is calling and what the edge knows about the request: one value per API surface, built
//! once by the HTTP layer's extractors and handed to a kernel service whole, so a service never
//! takes principal, scope and request as loose arguments that could be mismatched.

use std::sync::Arc;

use crate::identity::Principal;
use crate::scope::TenantScope;

/// The request behind a service call. IP and user agent are personal data: the audit log stores
/// them only sealed under the data subject's key (see `keyring::PersonalData`); a security event
/// keeps an address in clear only when it names no one, and beside any other id only its keyed
/// digest (`audit::security`). A session keeps
/// its device's IP and user agent readable for the owner's device list; erasing a subject (G2)
/// deletes their sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A call on an organisation's route of the tenant API (`/v1`): the caller, the organisation the
/// call acts in (already checked against the caller's token) and the request.
#[derive(Debug, Clone)]
pub struct TenantCall {
    pub principal: Arc<Principal>,
    pub scope: TenantScope,
    pub request: RequestContext,
}

/// A call on the tenant API about the caller's own account (sessions, second factor, password),
/// tied to no organisation route.
#[derive(Debug, Clone)]
pub struct AccountCall {
    pub principal: Arc<Principal>,
    pub request: RequestContext,
}

/// A call by an operator on `/admin/v1`.
#[derive(Debug, Clone)]
pub struct OperatorCall {
    pub principal: Arc<Principal>,
    pub request: RequestContext,
}

/// A call by one of the deployment's own services on `/internal/v1`.
#[derive(Debug, Clone)]
pub struct ServiceCall {
    /// The service as its secret proves it (the secret file's name).
    pub service: Arc<str>,
    /// What the service says it is (`x-gatehouse-service`), recorded beside the proven name.
    pub label: Option<String>,
    /// The registered app the service's secret is bound to (`service_auth.apps`): a person's
    /// token it presents must carry that app's audience. `None`: Gatehouse's own audience.
    pub app: Option<Arc<str>>,
    pub request: RequestContext,
}
