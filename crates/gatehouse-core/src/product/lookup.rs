//! What a check decides from, read through the caches when they hold it: the caller's role
//! (the membership cache), a custom role's permissions and the record asked about (the decision
//! cache). A transaction is opened only when one of them misses, so a check whose state is
//! cached makes no store round trip. Every write that changes this state forgets it (here and,
//! through the fan-out, on every instance) before the next check can read it.

use std::sync::Arc;

use super::decision_cache::{Seen, Through};
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{Role, TenantTx};

/// A read transaction in the asking organisation's scope, begun at first use. What it reads may
/// be a snapshot from its first statement (SQLite), so the caches' generations are taken once,
/// before it begins: a change forgotten after that moment, whatever later lookup reads, keeps
/// every answer of this transaction out of the caches.
pub(super) struct LazyTx<'k> {
    kernel: &'k Kernel,
    scope: TenantScope,
    tx: Option<Box<dyn TenantTx>>,
    /// (membership cache, decision cache) generations when the transaction began.
    read_at: (u64, u64),
}

impl<'k> LazyTx<'k> {
    pub(super) fn new(kernel: &'k Kernel, scope: TenantScope) -> Self {
        Self {
            kernel,
            scope,
            tx: None,
            read_at: (0, 0),
        }
    }

    async fn get(&mut self) -> Result<&mut dyn TenantTx, Error> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => {
                self.read_at = (
                    self.kernel.identity().memberships.generation(),
                    self.kernel.product_state().decisions.generation(),
                );
                self.kernel.store().begin_read_scoped(&self.scope).await?
            }
        };
        Ok(self.tx.insert(tx).as_mut())
    }
}

impl Kernel {
    /// `user`'s role in the scope's organisation now, `None` when not a member.
    pub(super) async fn member_role(
        &self,
        lazy: &mut LazyTx<'_>,
        user: UserId,
    ) -> Result<Option<Role>, Error> {
        let org = lazy.scope.org_id();
        let now = self.clock().now();
        let cache = &self.identity().memberships;
        if let Some(role) = cache.get(org, user, now) {
            return Ok(role);
        }
        let role = lazy.get().await?.membership(user).await?.map(|m| m.role);
        cache.put(org, user, role.clone(), now, lazy.read_at.0);
        Ok(role)
    }

    /// Whether the account of a member a service names by id (no credential shown, so no session
    /// or key refuses it) is disabled: kept in the membership cache beside the role, which
    /// disabling and re-enabling forget on every instance. A miss reads both, so the check that
    /// follows finds the role cached.
    pub(super) async fn named_account_disabled(
        &self,
        org: OrgId,
        user: UserId,
    ) -> Result<bool, Error> {
        let now = self.clock().now();
        let cache = &self.identity().memberships;
        if let Some(disabled) = cache.account_disabled(org, user, now) {
            return Ok(disabled);
        }
        let read_at = cache.generation();
        let disabled = self.account_disabled(user).await?;
        let role = {
            let mut tx = self
                .store()
                .begin_read_scoped(&TenantScope::granted(org))
                .await?;
            tx.membership(user).await?.map(|m| m.role)
        };
        cache.put(org, user, role, now, read_at);
        cache.note_account(org, user, disabled, read_at);
        Ok(disabled)
    }

    /// What `role` grants in the scope's organisation, from the cache when it holds it (a
    /// built-in role's set is computed without the store, a custom role's read from it).
    pub(super) async fn role_permissions(
        &self,
        lazy: &mut LazyTx<'_>,
        role: &Role,
    ) -> Result<std::sync::Arc<[String]>, Error> {
        let org = lazy.scope.org_id();
        let now = self.clock().now();
        let cache = &self.product_state().decisions;
        if let Some(p) = cache.role(org, role.as_str(), now) {
            return Ok(p);
        }
        let (permissions, read_at) = match self.builtin_role_grants(role) {
            Some(p) => (p, cache.generation()),
            None => {
                let p = self.role_grants(lazy.get().await?, role).await?;
                (p, lazy.read_at.1)
            }
        };
        let permissions: std::sync::Arc<[String]> = permissions.into();
        cache.put_role(org, role.as_str(), permissions.clone(), now, read_at);
        Ok(permissions)
    }

    /// What the scope's organisation sees of `owner`'s record `kind` / `external_id`: its own
    /// record, another organisation's through the best live grant, or nothing.
    pub(super) async fn seen_record(
        &self,
        lazy: &mut LazyTx<'_>,
        owner: OrgId,
        kind: &str,
        external_id: &str,
    ) -> Result<Seen, Error> {
        let asking = lazy.scope.org_id();
        let now = self.clock().now();
        let cache = &self.product_state().decisions;
        // An expired record is gone from its expiry instant, cached or not (G3).
        let live = |seen: Seen| seen.filter(|s| !s.0.expired_at(now));
        if let Some(seen) = cache.record(asking, owner, kind, external_id, now) {
            return Ok(live(seen));
        }
        let tx = lazy.get().await?;
        let seen = if owner == asking {
            tx.record_by_external(kind, external_id)
                .await?
                .map(|r| Arc::new((r, None)))
        } else {
            tx.granted_record_by_external(owner, kind, external_id, now)
                .await?
                .map(|g| {
                    Arc::new((
                        g.record,
                        Some(Through {
                            grant_id: g.grant_id,
                            access: g.access,
                            expires_at: g.expires_at,
                        }),
                    ))
                })
        };
        cache.put_record(
            asking,
            (owner, kind, external_id),
            seen.clone(),
            now,
            lazy.read_at.1,
        );
        Ok(live(seen))
    }
}
