//! Editing and deleting custom roles (C1), under the rule that governs making them: nobody
//! changes a role to grant, or touches a role that grants, what they do not hold themselves.

use super::Members;
use super::permissions::Permission;
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::store::{CustomRoleRecord, Role};

/// `name` as a custom role's name, or why not.
fn custom_name(name: &str) -> Result<String, Error> {
    match Role::parse(name) {
        Some(Role::Custom(n)) => Ok(n),
        Some(_) => Err(Error::invalid("name", "is a built-in role")),
        None => Err(Error::NotFound("role")),
    }
}

impl Members<'_> {
    /// Replaces a custom role's permissions. Needs `roles.manage` and every permission the role
    /// grants before and after.
    pub async fn update_role(
        &self,
        call: &TenantCall,
        name: &str,
        permissions: &[String],
    ) -> Result<CustomRoleRecord, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let name = custom_name(name)?;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, principal, Permission::ROLES_MANAGE, request)
            .await?;
        // Checked once the caller may manage roles: nobody else learns which names are
        // permissions here.
        let mut perms: Vec<String> = Vec::with_capacity(permissions.len());
        for p in permissions {
            let known = self.known_permission(p).ok_or_else(|| {
                Error::invalid("permissions", format!("unknown permission {p:?}"))
            })?;
            if !perms.contains(&known) {
                perms.push(known);
            }
        }
        let existing = tx
            .custom_role(&name)
            .await?
            .ok_or(Error::NotFound("role"))?;
        let held = self
            .held_permissions(tx.as_mut(), principal, &actor_role)
            .await?;
        if let Some(p) = existing.permissions.iter().find(|p| !held.contains(p)) {
            drop(tx);
            self.record_refusal(
                scope,
                principal,
                "role.update_denied",
                serde_json::json!({"role": name, "permission": p}).to_string(),
                request,
            )
            .await;
            return Err(Error::Forbidden {
                permission: crate::api_keys::permission_name(p),
            });
        }
        if let Some(p) = perms.iter().find(|p| !held.contains(p)) {
            return Err(Error::invalid(
                "permissions",
                format!("you do not hold {p} yourself"),
            ));
        }
        if !tx.update_custom_role(&name, &perms).await? {
            return Err(Error::NotFound("role"));
        }
        let event = AuditEvent::success(principal.actor(), "role.updated", "role", &name)
            .with_details(
                serde_json::json!({"before": existing.permissions, "after": perms}).to_string(),
            )
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.roles_changed(scope.org_id());
        Ok(CustomRoleRecord {
            permissions: perms,
            ..existing
        })
    }

    /// Deletes a custom role nobody holds (no member, no pending invitation). Needs
    /// `roles.manage` and every permission the role grants.
    pub async fn delete_role(&self, call: &TenantCall, name: &str) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let name = custom_name(name)?;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, principal, Permission::ROLES_MANAGE, request)
            .await?;
        let existing = tx
            .custom_role(&name)
            .await?
            .ok_or(Error::NotFound("role"))?;
        let held = self
            .held_permissions(tx.as_mut(), principal, &actor_role)
            .await?;
        if let Some(p) = existing.permissions.iter().find(|p| !held.contains(p)) {
            drop(tx);
            self.record_refusal(
                scope,
                principal,
                "role.delete_denied",
                serde_json::json!({"role": name, "permission": p}).to_string(),
                request,
            )
            .await;
            return Err(Error::Forbidden {
                permission: crate::api_keys::permission_name(p),
            });
        }
        if tx.role_holders(&name, self.clock().now()).await? > 0 {
            return Err(Error::Conflict(
                "members or pending invitations hold this role; give them another role first",
            ));
        }
        if !tx.delete_custom_role(&name).await? {
            return Err(Error::NotFound("role"));
        }
        let event = AuditEvent::success(principal.actor(), "role.deleted", "role", &name)
            .with_details(serde_json::json!({"permissions": existing.permissions}).to_string())
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.roles_changed(scope.org_id());
        Ok(())
    }
}
