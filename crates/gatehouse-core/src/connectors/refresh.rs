//! The refresh job (under the `connectors` lease: one instance refreshes each connector): every
//! pass takes the active connectors whose refresh is due and refreshes each at its provider,
//! outside any transaction, then records the outcome in one: new tokens sealed, or the failure
//! with the next attempt after a backoff, or, when the provider refuses the refresh token
//! (`invalid_grant`), the connector marked `needs_reauth`, its tokens erased, and the webhook
//! event `connector.needs_reauth` raised by the audit event of that change.
//!
//! A connector whose owner's account is disabled is not refreshed: at its next due refresh it is
//! marked `needs_reauth` with its tokens erased (`connector.suspended`, no provider call), so it
//! holds nothing usable and the job stops coming back to it; the owner connects again if they
//! return. An owner's connectors are deleted with their membership (`leaving.rs`); one found here
//! whose owner is no longer a member (left from before) is suspended the same way.

use time::Duration;
use uuid::Uuid;

use super::flow::{open_token, token_at};
use super::{ACCESS, Connectors, LEASE, REFRESH, refresh_due};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::keyring::SealedKind;
use crate::oauth::{ProviderError, TokenSet};
use crate::scope::TenantScope;
use crate::store::ConnectorStatus;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    pub refreshed: u32,
    /// Failed and left for a later attempt.
    pub failed: u32,
    /// Refused by the provider: marked `needs_reauth`.
    pub needs_reauth: u32,
    /// Owned by someone no longer a member, or disabled: marked `needs_reauth`, tokens erased,
    /// never sent to the provider.
    pub suspended: u32,
}

/// Refreshes in flight at once in one pass.
pub const CONCURRENT: usize = 8;

/// `due` (soonest first) reordered so organisations take turns: each organisation's first
/// connector, then each one's second, and so on, each round in order of first appearance.
fn in_turns(due: Vec<(OrgId, Uuid)>) -> Vec<(OrgId, Uuid)> {
    let mut orgs: Vec<(OrgId, std::collections::VecDeque<Uuid>)> = Vec::new();
    for (org, id) in due {
        match orgs.iter_mut().find(|(o, _)| *o == org) {
            Some((_, ids)) => ids.push_back(id),
            None => orgs.push((org, std::collections::VecDeque::from([id]))),
        }
    }
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for (org, ids) in &mut orgs {
            if let Some(id) = ids.pop_front() {
                out.push((*org, id));
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

enum Done {
    Refreshed,
    Failed,
    NeedsReauth,
    Suspended,
    Skipped,
}

impl Connectors<'_> {
    /// The refresh job's lease, ticking every `every`.
    #[must_use]
    pub fn leased_job(&self, every: std::time::Duration) -> crate::jobs::LeasedJob {
        crate::jobs::LeasedJob::new(LEASE, every)
    }

    /// One pass: refreshes the connectors due now (at most the configured batch), up to
    /// [`CONCURRENT`] at once and taking organisations in turn, so one organisation's slow or
    /// unanswering provider (up to `oauth.timeout_secs` a call) holds up at most its own share of
    /// the pass, not every organisation's refreshes. Call it while holding the lease.
    pub async fn refresh_due(&self) -> Result<RefreshReport, Error> {
        use futures_util::StreamExt as _;
        let now = self.clock().now();
        let due = self
            .store()
            .connectors_due(now, self.settings().batch)
            .await?;
        let mut outcomes = futures_util::stream::iter(in_turns(due))
            .map(|(org, id)| async move { (id, self.refresh_one(org, id).await) })
            .buffer_unordered(CONCURRENT);
        let mut report = RefreshReport::default();
        while let Some((id, outcome)) = outcomes.next().await {
            match outcome {
                Ok(Done::Refreshed) => report.refreshed += 1,
                Ok(Done::Failed) => report.failed += 1,
                Ok(Done::NeedsReauth) => report.needs_reauth += 1,
                Ok(Done::Suspended) => report.suspended += 1,
                Ok(Done::Skipped) => {}
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(error = %e, connector = %id, "a connector's refresh could not be recorded");
                }
            }
        }
        Ok(report)
    }

    async fn refresh_one(&self, org: OrgId, id: Uuid) -> Result<Done, Error> {
        // The server's own maintenance, for the organisation whose connector it refreshes.
        let scope = TenantScope::granted(org);
        let now = self.clock().now();
        let sid = id.to_string();
        let mut tx = self.store().begin_read_scoped(&scope).await?;
        let Some(c) = tx.connector(id).await? else {
            return Ok(Done::Skipped);
        };
        if c.status != ConnectorStatus::Active || c.refresh_due_at.is_none_or(|d| d > now) {
            return Ok(Done::Skipped);
        }
        let owner = UserId::from_uuid(c.user_id);
        if tx.membership(owner).await?.is_none() {
            drop(tx);
            return self
                .suspend(
                    scope,
                    id,
                    "the owner is no longer a member of the organisation",
                )
                .await;
        }
        let refresh = open_token(self, tx.as_mut(), &sid, REFRESH).await?;
        let provider = self.provider(tx.as_mut(), &c.provider).await;
        drop(tx);
        let mut users = self.store().begin_read().await?;
        let disabled = users
            .user_by_id(owner)
            .await?
            .is_none_or(|u| u.disabled_at.is_some());
        drop(users);
        if disabled {
            return self
                .suspend(scope, id, "the owner's account is disabled or gone")
                .await;
        }
        let answer: Result<TokenSet, ProviderError> = match (refresh, &provider) {
            // No refresh token is held: as if the provider had refused one.
            (None, _) => Err(ProviderError::Refused {
                error: "invalid_grant".into(),
            }),
            (_, Err(e)) => Err(ProviderError::Unavailable(e.to_string())),
            (Some(refresh), Ok(p)) => match self.oauth().endpoints(p).await {
                Ok(endpoints) => match self.oauth().client() {
                    Ok(client) => client.refresh(&endpoints.token, &p.client, &refresh).await,
                    Err(e) => Err(ProviderError::Unavailable(e.to_string())),
                },
                Err(e) => Err(ProviderError::Unavailable(e.to_string())),
            },
        };
        let provider_again = provider;
        let now = self.clock().now();
        let mut tx = self.store().begin_scoped(&scope).await?;
        // Read again: a disconnect (or removal) meanwhile wins, and what the provider has just
        // granted for a connector no longer kept is revoked there, best effort.
        let Some(mut c) = tx
            .lock_connector(id)
            .await?
            .filter(|c| c.status == ConnectorStatus::Active)
        else {
            drop(tx);
            if let (Ok(tokens), Ok(p)) = (answer, provider_again)
                && let Err(e) = self
                    .revoke_at_provider(&p, tokens.refresh_token, Some(tokens.access_token))
                    .await
            {
                tracing::warn!(connector = %id, error = %e, "tokens refreshed for a connector stopped meanwhile could not be revoked");
            }
            return Ok(Done::Skipped);
        };
        c.updated_at = now;
        let (event, done) = match answer {
            Ok(tokens) => {
                let lifetime = tokens
                    .expires_in
                    .map(|s| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 2)));
                self.keyring()
                    .seal(
                        tx.as_mut(),
                        token_at(&sid, ACCESS),
                        tokens.access_token.expose().as_bytes(),
                    )
                    .await?;
                // A provider that rotates refresh tokens sends a new one; one that does not
                // leaves the old one valid.
                if let Some(r) = &tokens.refresh_token {
                    self.keyring()
                        .seal(tx.as_mut(), token_at(&sid, REFRESH), r.expose().as_bytes())
                        .await?;
                }
                c.expires_at = lifetime.map(|l| now + l);
                c.refresh_due_at = lifetime.map(|l| refresh_due(self.settings(), now, l));
                c.failures = 0;
                c.last_error = None;
                if let Some(s) = &tokens.scope {
                    c.scopes.clone_from(s);
                }
                let event = AuditEvent::success(
                    Actor::system("connectors"),
                    "connector.refreshed",
                    "connector",
                    id,
                )
                .with_details(
                    serde_json::json!({
                        "provider": c.provider,
                        "expires_at": c.expires_at.map(time::OffsetDateTime::unix_timestamp),
                        "rotated": tokens.refresh_token.is_some(),
                    })
                    .to_string(),
                );
                (event, Done::Refreshed)
            }
            Err(e) if e.is_invalid_grant() => {
                c.status = ConnectorStatus::NeedsReauth;
                c.refresh_due_at = None;
                c.last_error = Some(e.to_string());
                tx.delete_sealed_of(
                    SealedKind::ConnectorToken.as_str(),
                    std::slice::from_ref(&sid),
                )
                .await?;
                let event = AuditEvent::success(
                    Actor::system("connectors"),
                    "connector.needs_reauth",
                    "connector",
                    id,
                )
                .with_details(
                    serde_json::json!({
                        "provider": c.provider,
                        "owner": c.user_id,
                        "reason": e.to_string(),
                    })
                    .to_string(),
                );
                (event, Done::NeedsReauth)
            }
            Err(e) => {
                c.failures = c.failures.saturating_add(1);
                let waits = &self.settings().retry_waits;
                let step = usize::try_from(c.failures)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(1);
                let wait = waits
                    .get(step)
                    .or_else(|| waits.last())
                    .copied()
                    .unwrap_or(Duration::minutes(5));
                c.refresh_due_at = Some(now + wait);
                c.last_error = Some(e.to_string());
                let mut event = AuditEvent::success(
                    Actor::system("connectors"),
                    "connector.refresh_failed",
                    "connector",
                    id,
                )
                .with_details(
                    serde_json::json!({
                        "provider": c.provider,
                        "reason": e.to_string(),
                        "failures": c.failures,
                        "retry_in_secs": wait.whole_seconds(),
                    })
                    .to_string(),
                );
                event.outcome = Outcome::Failure;
                (event, Done::Failed)
            }
        };
        tx.update_connector(&c).await?;
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        if !matches!(done, Done::Failed) {
            self.forget(org, id);
        }
        Ok(done)
    }

    /// Stops a connector whose owner cannot use it any more: `needs_reauth`, nothing due, its
    /// tokens erased, `connector.suspended` recorded; the provider is not called.
    async fn suspend(&self, scope: TenantScope, id: Uuid, why: &str) -> Result<Done, Error> {
        let sid = id.to_string();
        let mut tx = self.store().begin_scoped(&scope).await?;
        let Some(mut c) = tx
            .connector(id)
            .await?
            .filter(|c| c.status == ConnectorStatus::Active)
        else {
            return Ok(Done::Skipped);
        };
        c.status = ConnectorStatus::NeedsReauth;
        c.refresh_due_at = None;
        c.last_error = Some(why.to_owned());
        c.updated_at = self.clock().now();
        tx.delete_sealed_of(
            SealedKind::ConnectorToken.as_str(),
            std::slice::from_ref(&sid),
        )
        .await?;
        tx.update_connector(&c).await?;
        let event = AuditEvent::success(
            Actor::system("connectors"),
            "connector.suspended",
            "connector",
            id,
        )
        .with_details(
            serde_json::json!({
                "provider": c.provider,
                "owner": c.user_id,
                "reason": why,
            })
            .to_string(),
        );
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.forget(scope.org_id(), id);
        Ok(Done::Suspended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisations_take_turns_in_a_pass() {
        let (a, b, c) = (
            OrgId::from_uuid(Uuid::from_u128(1)),
            OrgId::from_uuid(Uuid::from_u128(2)),
            OrgId::from_uuid(Uuid::from_u128(3)),
        );
        let id = Uuid::from_u128;
        // Organisation a has five due first; b and c one each, due later.
        let due = vec![
            (a, id(10)),
            (a, id(11)),
            (a, id(12)),
            (b, id(20)),
            (a, id(13)),
            (c, id(30)),
            (a, id(14)),
        ];
        assert_eq!(
            in_turns(due),
            vec![
                (a, id(10)),
                (b, id(20)),
                (c, id(30)),
                (a, id(11)),
                (a, id(12)),
                (a, id(13)),
                (a, id(14)),
            ]
        );
        assert!(in_turns(Vec::new()).is_empty());
    }
}
