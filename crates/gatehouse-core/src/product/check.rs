//! "May this caller do X (to Y)?" (C1, C3; C2 at the API): the answer for a permission,
//! Gatehouse's own or the product's, or for reading or writing one of the product's records, with
//! what allowed it. Denials are counted in metrics and recorded in the audit log without a write
//! per denial: the first of a run of identical denials is recorded at once, the repeats within
//! the next minute are counted and recorded as one summary event (`check.denied_repeated`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::access::{self, Caller};
use crate::context::TenantCall;
use crate::error::Error;
use crate::ids::OrgId;
use crate::kernel::Kernel;
use crate::scope::TenantScope;

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// `granted`, `permission_missing`, `step_up_required`, `not_a_member`, `unknown_action`,
    /// `resource_required`, `no_access`, `email_unverified`, `unauthenticated` and
    /// `second_factor_enrolment_required` (internal checks only).
    pub reason: &'static str,
    /// What allowed it: `role:{name}`, `api_key`, `owner`, `allowed_list`, `level:public`,
    /// `level:organization`, `permission`, `grant:{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl Decision {
    fn denied(reason: &'static str) -> Self {
        Self {
            allowed: false,
            reason,
            via: None,
        }
    }

    fn granted(via: impl Into<String>) -> Self {
        Self {
            allowed: true,
            reason: "granted",
            via: Some(via.into()),
        }
    }
}

/// One of the product's records, as the product names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub kind: String,
    pub id: String,
    /// The organisation that owns it, when another than the caller's: a grant must cover it.
    pub organization: Option<OrgId>,
}

/// A question: `read` or `write` (of `resource`), or a permission (on `resource`, if given:
/// then the caller must also be able to read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInput {
    pub action: String,
    pub resource: Option<ResourceRef>,
}

/// Whom one of the deployment's services asks about (`POST /internal/v1/check`).
#[derive(Debug, Clone)]
pub enum CheckSubject {
    /// An access token or an API key, verified as on the tenant API.
    Credential(gatehouse_crypto::SecretString),
    /// A member, by user id (no session: step-up permissions are refused).
    User(crate::ids::UserId),
    /// Nobody signed in: only public records can be read.
    Anonymous,
}

/// The reason every question about a person who must enrol a second factor is denied with.
const FACTOR_MISSING: &str = "second_factor_enrolment_required";

/// At most this many questions in one batch.
pub const MAX_BATCH: usize = 100;

/// How long identical denials are folded into one summary event.
const DENIAL_WINDOW: Duration = Duration::seconds(60);
/// Runs remembered at once, in all and per organisation; past either, a denial is counted in
/// metrics only (its run's first denial was recorded), so one organisation cannot fill the map
/// for the others and no request writes more than one event per run.
const MAX_DENIALS: usize = 10_000;
const MAX_DENIALS_PER_ORG: usize = 1_000;

/// A run of denials: one caller, one action, one reason in one organisation, whatever the
/// resource (so a batch asking about a hundred records folds into one run).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DenialKey {
    org: OrgId,
    who: String,
    action: String,
    reason: &'static str,
}

#[derive(Debug, Clone)]
struct Run {
    first: OffsetDateTime,
    repeats: u64,
    /// The first denial's resource, as a sample.
    resource: String,
    /// The service that asked, for internal checks.
    asked_by: Option<String>,
}

/// Runs of identical denials, per organisation, caller, action and reason.
#[derive(Debug, Default)]
pub struct DenialLog {
    runs: Mutex<Runs>,
}

#[derive(Debug, Default)]
struct Runs {
    map: HashMap<DenialKey, Run>,
    per_org: HashMap<OrgId, usize>,
}

impl Runs {
    fn insert(&mut self, key: DenialKey, run: Run) {
        *self.per_org.entry(key.org).or_default() += 1;
        self.map.insert(key, run);
    }

    fn remove(&mut self, key: &DenialKey) -> Option<Run> {
        let run = self.map.remove(key)?;
        if let Some(n) = self.per_org.get_mut(&key.org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_org.remove(&key.org);
            }
        }
        Some(run)
    }
}

/// Who asked, for the record of a denial.
#[derive(Clone, Copy)]
struct Asker<'a> {
    scope: &'a TenantScope,
    actor: &'a crate::audit::Actor,
    /// The caller as a record subject (`user:…`, `key:…`, `anonymous`).
    who: &'a str,
    /// The service, for internal checks.
    asked_by: Option<&'a str>,
    request: &'a crate::context::RequestContext,
}

/// Decisions for the caller's own organisation.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Checks);

impl Checks<'_> {
    /// One question about the caller, in the call's organisation.
    pub async fn check(&self, call: &TenantCall, input: &CheckInput) -> Result<Decision, Error> {
        Ok(self
            .check_batch(call, std::slice::from_ref(input))
            .await?
            .into_iter()
            .next()
            .unwrap_or_else(|| Decision::denied("unknown_action")))
    }

    /// Up to [`MAX_BATCH`] questions about the caller, answered from one look at its membership.
    pub async fn check_batch(
        &self,
        call: &TenantCall,
        inputs: &[CheckInput],
    ) -> Result<Vec<Decision>, Error> {
        self.answer(
            &call.scope,
            Some(&call.principal),
            None,
            &call.request,
            inputs,
        )
        .await
    }

    /// Up to [`MAX_BATCH`] questions a service asks about `subject` in `org`. A credential that
    /// does not verify, or is for another organisation, is answered `unauthenticated` or
    /// `not_a_member` for every question; a person (by credential or by id, or an API key acting
    /// for one) who must enrol a second factor and has none, `second_factor_enrolment_required`.
    pub async fn check_for(
        &self,
        call: &crate::context::ServiceCall,
        org: OrgId,
        subject: CheckSubject,
        inputs: &[CheckInput],
    ) -> Result<Vec<Decision>, Error> {
        let scope = TenantScope::granted(org);
        let principal = match subject {
            CheckSubject::Credential(c) => {
                match self.auth().authenticate_for_service(call, c.expose()).await {
                    Ok(p) if p.org == Some(org) => Some(p),
                    Ok(_) => return Ok(self.all_denied(inputs, "not_a_member")),
                    Err(Error::Store(e)) => return Err(Error::Store(e)),
                    // An API key acting for a member who must enrol a second factor.
                    Err(Error::SecondFactorEnrolmentRequired(_)) => {
                        return Ok(self.all_denied(inputs, FACTOR_MISSING));
                    }
                    Err(e) => {
                        self.record_refused_credential(&e, c.expose(), &call.request);
                        return Ok(self.all_denied(inputs, "unauthenticated"));
                    }
                }
            }
            CheckSubject::User(u) => {
                // Named by id, no session or key refuses a disabled account for it.
                if self.named_account_disabled(org, u).await? {
                    return Ok(self.all_denied(inputs, "account_disabled"));
                }
                Some(std::sync::Arc::new(
                    crate::identity::Principal::named_member(u, org),
                ))
            }
            CheckSubject::Anonymous => None,
        };
        // A person who must enrol a second factor and has none may do nothing else, whether the
        // service presents their token or names them: a named member is the same person, and
        // answering for them what their token is refused would undo the requirement.
        if let Some(p) = &principal {
            match self.auth().second_factor_gate(p).await {
                Ok(_) => {}
                Err(Error::SecondFactorEnrolmentRequired(_)) => {
                    return Ok(self.all_denied(inputs, FACTOR_MISSING));
                }
                Err(e) => return Err(e),
            }
        }
        self.answer(
            &scope,
            principal.as_ref(),
            Some(&call.service),
            &call.request,
            inputs,
        )
        .await
    }

    fn all_denied(&self, inputs: &[CheckInput], reason: &'static str) -> Vec<Decision> {
        inputs
            .iter()
            .map(|_| {
                crate::telemetry::metrics::check_decided(false, reason);
                Decision::denied(reason)
            })
            .collect()
    }

    async fn answer(
        &self,
        scope: &TenantScope,
        principal: Option<&std::sync::Arc<crate::identity::Principal>>,
        asked_by: Option<&str>,
        request: &crate::context::RequestContext,
        inputs: &[CheckInput],
    ) -> Result<Vec<Decision>, Error> {
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(Error::invalid(
                "checks",
                format!("1 to {MAX_BATCH} per request"),
            ));
        }
        for input in inputs {
            let long = |s: &str, max: usize| s.is_empty() || s.chars().count() > max;
            if long(&input.action, 64) {
                return Err(Error::invalid("action", "1 to 64 characters"));
            }
            if let Some(r) = &input.resource
                && (long(&r.kind, 40) || long(&r.id, 200))
            {
                return Err(Error::invalid(
                    "resource",
                    "type is 1 to 40 characters and id 1 to 200",
                ));
            }
        }
        let mut lazy = super::lookup::LazyTx::new(self, *scope);
        let (member, caller, via_role) = match principal {
            // One look at the membership gives both what the caller holds and what allowed it.
            Some(p) => match &p.api_key_permissions {
                Some(perms) => (
                    true,
                    Caller {
                        me: format!("key:{}", p.subject),
                        permissions: perms.clone().into(),
                    },
                    "api_key".to_owned(),
                ),
                None => {
                    let me = format!("user:{}", p.subject);
                    let user = crate::ids::UserId::from_uuid(p.subject);
                    match self.member_role(&mut lazy, user).await? {
                        Some(role) => (
                            true,
                            Caller {
                                me,
                                permissions: self.role_permissions(&mut lazy, &role).await?,
                            },
                            format!("role:{}", role.as_str()),
                        ),
                        None => (
                            false,
                            Caller {
                                me,
                                permissions: Vec::new().into(),
                            },
                            String::new(),
                        ),
                    }
                }
            },
            None => (
                true,
                Caller {
                    me: "anonymous".to_owned(),
                    permissions: Vec::new().into(),
                },
                String::new(),
            ),
        };
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            let d = if member {
                let seen = match &input.resource {
                    Some(r) if self.product().record_type(&r.kind).is_some() => {
                        let owner = r.organization.unwrap_or_else(|| scope.org_id());
                        self.seen_record(&mut lazy, owner, &r.kind, &r.id).await?
                    }
                    _ => None,
                };
                self.decide(
                    principal.map(|p| p.as_ref()),
                    &caller,
                    &via_role,
                    input,
                    seen,
                )
            } else {
                Decision::denied("not_a_member")
            };
            crate::telemetry::metrics::check_decided(d.allowed, d.reason);
            out.push(d);
        }
        drop(lazy);
        let actor = principal.map_or_else(crate::audit::Actor::anonymous, |p| p.actor());
        let asker = Asker {
            scope,
            actor: &actor,
            who: &caller.me,
            asked_by,
            request,
        };
        for (input, d) in inputs.iter().zip(&out) {
            if !d.allowed {
                self.denied(&asker, input, d.reason).await;
            }
        }
        Ok(out)
    }

    fn decide(
        &self,
        principal: Option<&crate::identity::Principal>,
        caller: &Caller,
        via_role: &str,
        input: &CheckInput,
        seen: super::decision_cache::Seen,
    ) -> Decision {
        // A record of the caller's organisation, or another's that a live grant covers (then
        // `grant` names it and says whether it also lets the grantee write).
        let (record, grant) = match seen.as_deref() {
            Some((r, through)) => (Some(r), through.as_ref().map(|t| (t.grant_id, t.access))),
            None => (None, None),
        };
        let product = self.product();
        // Mirrors `authorize`: an unverified account only reads where the server says so.
        let read_only = principal.is_some_and(|p| {
            !p.email_verified
                && self.identity().settings().unverified_access
                    == crate::identity::UnverifiedAccess::ReadOnly
        });
        if read_only && !matches!(input.action.as_str(), "read" | "org.read" | "audit.read") {
            return Decision::denied("email_unverified");
        }
        match input.action.as_str() {
            "read" | "write" => {
                if input.resource.is_none() {
                    return Decision::denied("resource_required");
                }
                // An unknown record and one the caller may not touch get the same answer.
                let Some(record) = record else {
                    return Decision::denied("no_access");
                };
                if let Some((grant_id, grant_access)) = grant {
                    return granted_decision(
                        caller,
                        product,
                        record,
                        &input.action,
                        grant_id,
                        grant_access,
                    );
                }
                let via = if input.action == "read" {
                    access::can_read(caller, product, record)
                } else {
                    access::can_write(caller, product, record)
                };
                via.map_or_else(|| Decision::denied("no_access"), Decision::granted)
            }
            permission => {
                if self.known_permission(permission).is_none() {
                    return Decision::denied("unknown_action");
                }
                if !caller.holds(permission) {
                    return Decision::denied("permission_missing");
                }
                if principal.is_none_or(|p| self.step_up_needed(p, permission).is_some()) {
                    return Decision::denied("step_up_required");
                }
                // Another organisation's record: a permission about it (an export, a re-run)
                // needs a read_write grant; a read grant answers `read` only.
                let readable = match (&record, grant) {
                    (Some(r), Some((id, a))) => {
                        a == crate::store::GrantAccess::ReadWrite
                            && granted_decision(caller, product, r, "read", id, a).allowed
                    }
                    (Some(r), None) => access::can_read(caller, product, r).is_some(),
                    (None, _) => false,
                };
                if input.resource.is_some() && !readable {
                    return Decision::denied("no_access");
                }
                Decision::granted(via_role)
            }
        }
    }

    /// Records a denial: the first of a run at once, the repeats as one summary later.
    async fn denied(&self, asker: &Asker<'_>, input: &CheckInput, reason: &'static str) {
        let Asker {
            scope,
            actor,
            who,
            asked_by,
            request,
        } = *asker;
        let mut key = DenialKey {
            org: scope.org_id(),
            who: who.to_owned(),
            action: input.action.chars().take(64).collect(),
            reason,
        };
        let resource: String = input
            .resource
            .as_ref()
            .map(|r| format!("{}:{}", r.kind, r.id).chars().take(250).collect())
            .unwrap_or_default();
        let now = self.clock().now();
        let first = {
            let Ok(mut runs) = self.product_state().denials.runs.lock() else {
                return;
            };
            let org_full = runs.per_org.get(&key.org).copied().unwrap_or(0) >= MAX_DENIALS_PER_ORG;
            if !runs.map.contains_key(&key) && (org_full || runs.map.len() >= MAX_DENIALS) {
                // Past the bounds, the organisation's further denials fold into one run of its
                // own, so nothing is lost and nothing grows.
                key = DenialKey {
                    org: key.org,
                    who: "*".to_owned(),
                    action: "*".to_owned(),
                    reason: "overflow",
                };
            }
            match runs.map.get_mut(&key) {
                // Counted into the run until the flush closes it (a run whose window has closed
                // but has not been flushed yet keeps counting, so no repeat goes unrecorded).
                Some(run) => {
                    run.repeats += 1;
                    false
                }
                None => {
                    runs.insert(
                        key.clone(),
                        Run {
                            first: now,
                            repeats: 0,
                            resource: resource.clone(),
                            asked_by: asked_by.map(str::to_owned),
                        },
                    );
                    true
                }
            }
        };
        if first {
            let mut event = crate::audit::AuditEvent::success(
                actor.clone(),
                "check.denied",
                "organization",
                scope.org_id(),
            )
            .with_details(
                serde_json::json!({
                    "action": key.action,
                    "resource": resource,
                    "reason": key.reason,
                    "asked_by": asked_by,
                })
                .to_string(),
            )
            .with_request(request.request_id.clone());
            event.outcome = crate::audit::Outcome::Denied;
            if let Err(e) =
                crate::audit::record_tenant(self.store(), scope, self.clock(), event).await
            {
                tracing::error!(error = %e, "could not record a check denial");
            }
        }
    }

    /// Records the repeats of every run of denials whose window has closed, as one
    /// `check.denied_repeated` event each, and forgets those runs. Called every 30 s by `serve`.
    pub async fn flush_denials(&self) -> Result<usize, Error> {
        let now = self.clock().now();
        let closed: Vec<(DenialKey, Run)> = {
            let Ok(mut runs) = self.product_state().denials.runs.lock() else {
                return Ok(0);
            };
            let keys: Vec<DenialKey> = runs
                .map
                .iter()
                .filter(|(_, r)| now - r.first >= DENIAL_WINDOW)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| runs.remove(&k).map(|r| (k, r)))
                .collect()
        };
        let mut written = 0;
        let mut failed = None;
        for (key, run) in closed.into_iter().filter(|(_, r)| r.repeats > 0) {
            let mut event = crate::audit::AuditEvent::success(
                crate::audit::Actor::system("check"),
                "check.denied_repeated",
                "organization",
                key.org,
            )
            .with_details(
                serde_json::json!({
                    "caller": key.who,
                    "action": key.action,
                    "reason": key.reason,
                    "repeats": run.repeats,
                    "since": run.first.unix_timestamp(),
                    "first_resource": run.resource,
                    "asked_by": run.asked_by,
                })
                .to_string(),
            );
            event.outcome = crate::audit::Outcome::Denied;
            match crate::audit::record_tenant(
                self.store(),
                &TenantScope::granted(key.org),
                self.clock(),
                event,
            )
            .await
            {
                Ok(()) => written += 1,
                Err(e) => {
                    // Kept for the next flush rather than lost; the others still go.
                    tracing::warn!(error = %e, "could not record repeated check denials; retrying later");
                    if let Ok(mut runs) = self.product_state().denials.runs.lock() {
                        runs.insert(key, run);
                    }
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }
}

/// `read` or `write` of another organisation's record through a live grant (see
/// [`access::can_via_grant`]).
fn granted_decision(
    caller: &Caller,
    product: &super::ProductCatalogue,
    record: &crate::store::RecordRow,
    action: &str,
    grant_id: uuid::Uuid,
    grant_access: crate::store::GrantAccess,
) -> Decision {
    if access::can_via_grant(caller, product, record, action != "read", grant_access) {
        Decision::granted(format!("grant:{grant_id}"))
    } else {
        Decision::denied("no_access")
    }
}

/// The product's in-process state, owned by the kernel.
#[derive(Debug, Default)]
pub struct ProductState {
    pub(crate) denials: DenialLog,
    pub(crate) decisions: super::decision_cache::DecisionCache,
}

impl Kernel {
    /// Decisions about the product's permissions and records (`product::check`).
    #[must_use]
    pub fn checks(&self) -> Checks<'_> {
        Checks(self)
    }
}
