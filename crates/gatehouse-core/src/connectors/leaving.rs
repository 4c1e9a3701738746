//! A person's connectors end with their membership (#24, fifth review): removing a member, a
//! member leaving and an erasure delete, in the transaction that ends the membership, every
//! connector the person holds in the organisation and its sealed tokens, with one
//! `connector.removed` per connector; once that is committed the cache entries are forgotten
//! everywhere and the tokens revoked at their provider, best effort (a provider that does not
//! answer is logged, and the tokens are gone here either way). A connector without a refresh
//! token is never due at the refresh job, so nothing else would ever reach it.

use gatehouse_crypto::SecretString;
use uuid::Uuid;

use super::flow::open_token;
use super::{ACCESS, Connectors, REFRESH};
use crate::audit::{self, Actor, AuditEvent};
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::keyring::SealedKind;
use crate::page::PageRequest;
use crate::store::TenantTx;

/// A connector deleted in a transaction not yet committed: what revoking it needs.
pub(crate) struct Removed {
    org: OrgId,
    id: Uuid,
    provider: Result<crate::oauth::Provider, String>,
    refresh: Option<SecretString>,
    access: Option<SecretString>,
}

impl std::fmt::Debug for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Removed").field("id", &self.id).finish()
    }
}

impl Connectors<'_> {
    /// In `tx` (the organisation's, the one ending `user`'s membership): deletes every connector
    /// of `user` there and its tokens, one `connector.removed` by `actor` with `reason` each.
    /// Hand what it returns to [`Self::after_removal`] once `tx` is committed.
    pub(crate) async fn remove_of(
        &self,
        tx: &mut dyn TenantTx,
        user: UserId,
        actor: &Actor,
        reason: &str,
    ) -> Result<Vec<Removed>, Error> {
        let org = tx.scope().org_id();
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = tx
                .connectors(
                    Some(user.as_uuid()),
                    PageRequest::parse(cursor.as_deref(), Some(200))?,
                )
                .await?;
            rows.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut removed = Vec::with_capacity(rows.len());
        for c in rows {
            // Held first: a refresh recording meanwhile has committed (its tokens are read
            // below) or waits and then finds the connector gone.
            if tx.lock_connector(c.id).await?.is_none() {
                continue;
            }
            let sid = c.id.to_string();
            let refresh = open_token(self, tx, &sid, REFRESH).await?;
            let access = open_token(self, tx, &sid, ACCESS).await?;
            let provider = self
                .provider(tx, &c.provider)
                .await
                .map_err(|e| e.to_string());
            if !tx.delete_connector(c.id).await? {
                continue;
            }
            tx.delete_sealed_of(
                SealedKind::ConnectorToken.as_str(),
                std::slice::from_ref(&sid),
            )
            .await?;
            let event = AuditEvent::success(actor.clone(), "connector.removed", "connector", c.id)
                .with_details(
                    serde_json::json!({
                        "provider": c.provider,
                        "owner": c.user_id,
                        "reason": reason,
                        "held_tokens": refresh.is_some() || access.is_some(),
                    })
                    .to_string(),
                );
            // The transaction commits with the proof of the event that ends the membership.
            let _ = audit::append_tenant(tx, self.clock(), event).await?;
            removed.push(Removed {
                org,
                id: c.id,
                provider,
                refresh,
                access,
            });
        }
        Ok(removed)
    }

    /// After the transaction of [`Self::remove_of`] committed: the cache entries forgotten
    /// here and on every instance, then the tokens revoked at their provider, best effort.
    pub(crate) async fn after_removal(&self, removed: Vec<Removed>) {
        for r in &removed {
            self.forget(r.org, r.id);
        }
        for r in removed {
            if r.refresh.is_none() && r.access.is_none() {
                continue;
            }
            let revoked = match &r.provider {
                Ok(p) => self.revoke_at_provider(p, r.refresh, r.access).await,
                Err(e) => Err(e.clone()),
            };
            if let Err(e) = revoked {
                tracing::warn!(
                    connector = %r.id,
                    error = %e,
                    "a removed connector's tokens could not be revoked at the provider"
                );
            }
        }
    }
}
