//! "May this caller do X?" (C1, C2 at the API): the answer for a permission, Gatehouse's own or
//! the product's, with the role or key that allowed it, and the step-up it needs where the
//! product declared one.

use serde::Serialize;

use crate::context::TenantCall;
use crate::error::Error;
use crate::ids::UserId;
use crate::kernel::Kernel;

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// `granted`, `permission_missing`, `step_up_required`, `not_a_member`, `unknown_action`.
    pub reason: &'static str,
    /// What allowed it: `role:{name}` or `api_key`.
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
}

/// Decisions for the caller's own organisation.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Checks);

impl Checks<'_> {
    /// Whether the caller holds `action` (a permission) in the call's organisation now: its
    /// membership's current role (or the key's own permissions) and, where the permission needs
    /// one, a recent second factor.
    pub async fn permission(&self, call: &TenantCall, action: &str) -> Result<Decision, Error> {
        let TenantCall {
            principal, scope, ..
        } = call;
        if self.known_permission(action).is_none() {
            return Ok(Decision::denied("unknown_action"));
        }
        let mut tx = self.store().begin_read_scoped(scope).await?;
        let (held, via) = match &principal.api_key_permissions {
            Some(perms) => (perms.clone(), "api_key".to_owned()),
            None => {
                let Some(m) = tx.membership(UserId::from_uuid(principal.subject)).await? else {
                    return Ok(Decision::denied("not_a_member"));
                };
                let held = self.role_grants(tx.as_mut(), &m.role).await?;
                (held, format!("role:{}", m.role.as_str()))
            }
        };
        drop(tx);
        if !held.iter().any(|p| p == action) {
            return Ok(Decision::denied("permission_missing"));
        }
        if self.step_up_needed(principal, action).is_some() {
            return Ok(Decision::denied("step_up_required"));
        }
        Ok(Decision {
            allowed: true,
            reason: "granted",
            via: Some(via),
        })
    }
}

impl Kernel {
    /// Decisions about the product's permissions and records (`product::check`).
    #[must_use]
    pub fn checks(&self) -> Checks<'_> {
        Checks(self)
    }
}
