//! Ending other people's sessions and disabling accounts (ASVS 7.4.2, 7.4.5): an organisation's
//! admin ends a member's sessions in that organisation; an operator ends all of a user's
//! sessions, and disables or re-enables the account. Each change is audited in its own
//! transaction and reaches every instance through the revocation fan-out: the ended sessions'
//! ids (their access and refresh tokens are refused on the next request) and, for a disabled or
//! re-enabled account, its memberships (so every instance works out again what the API keys it
//! made may do, and finds them refused while it is disabled).

use uuid::Uuid;

use super::{Members, Operators, Revocation};
use crate::audit::{self, AuditEvent, Outcome};
use crate::context::{OperatorCall, TenantCall};
use crate::error::Error;
use crate::ids::UserId;
use crate::store::Tier;

/// What an operator's change to an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountChange {
    /// Whether the account's state changed (disabling a disabled account does not).
    pub changed: bool,
    /// Sessions the change ended.
    pub sessions_ended: usize,
}

impl Members<'_> {
    /// Ends every session `user` has open in the caller's organisation (sessions whose tokens are
    /// for it; their sessions elsewhere stay, but cannot switch into it: only a sign-in after now
    /// enters it again). Needs `members.manage`, and, as for removing the
    /// member, everything the member's role grants (and, for an owner's, being an owner).
    /// Returns how many ended.
    pub async fn end_sessions(&self, call: &TenantCall, user: UserId) -> Result<usize, Error> {
        let TenantCall {
            principal, request, ..
        } = call;
        let now = self.clock().now();
        // As for removal (one statement ends the sessions, undone if refused).
        let super::members::OnMember { mut tx, ended, .. } =
            self.act_on_member(call, user, now).await?;
        // Their sessions elsewhere stay, but none that began before now may switch in here.
        tx.set_sessions_ended(user, now).await?;
        let event = AuditEvent::success(principal.actor(), "member.sessions_ended", "user", user)
            .with_details(format!("{{\"sessions_ended\":{}}}", ended.len()))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        for (id, expires_at) in &ended {
            self.revoked_locally(*id, *expires_at);
        }
        Ok(ended.len())
    }
}

impl Operators<'_> {
    /// Ends every session of `user`, in every organisation (impersonations of them included).
    pub async fn end_user_sessions(
        &self,
        call: &OperatorCall,
        user: UserId,
    ) -> Result<usize, Error> {
        let OperatorCall {
            principal: operator,
            request,
        } = call;
        only_operators(operator.tier)?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
        let ended = tx.revoke_sessions_of(user.as_uuid(), None, now).await?;
        let event = AuditEvent::success(operator.actor(), "user.sessions_ended", "user", user)
            .with_details(format!("{{\"sessions_ended\":{}}}", ended.len()))
            .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.sessions_ended_elsewhere(&ended);
        Ok(ended.len())
    }

    /// Disables `user`'s account (`disabled`) or re-enables it. Disabling ends every session and
    /// suspends the API keys the account made; while disabled it cannot sign in. Re-enabling
    /// restores sign-in and the keys, not the ended sessions. Needs a recent step-up, like an
    /// impersonation: a stolen operator token alone must not lock people out or let them back.
    pub async fn set_user_disabled(
        &self,
        call: &OperatorCall,
        user: UserId,
        disabled: bool,
        reason: &str,
    ) -> Result<AccountChange, Error> {
        let OperatorCall {
            principal: operator,
            request,
        } = call;
        only_operators(operator.tier)?;
        let action = if disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        if let Some(method) = self.step_up_missing(operator) {
            let mut event =
                AuditEvent::success(operator.actor(), "account.step_up_required", "user", user)
                    .with_details(format!("{{\"action\":\"{action}\"}}"))
                    .with_request(request.request_id.clone());
            event.outcome = Outcome::Denied;
            if let Err(e) = audit::record_operator(self.store(), self.clock(), event).await {
                tracing::error!(error = %e, "could not record a refused account change");
            }
            return Err(Error::StepUpRequired {
                permission: "account control",
                method,
            });
        }
        let reason = reason.trim();
        if reason.chars().count() < 3 || reason.chars().count() > 500 {
            return Err(Error::invalid("reason", "must be 3 to 500 characters"));
        }
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
        let changed = tx.set_user_disabled(user, disabled.then_some(now)).await?;
        let ended = if disabled {
            tx.revoke_sessions_of(user.as_uuid(), None, now).await?
        } else {
            Vec::new()
        };
        let memberships = tx.memberships_of_user(user).await?;
        let details = serde_json::json!({
            "changed": changed,
            "sessions_ended": ended.len(),
            "reason": reason,
        });
        let event = AuditEvent::success(operator.actor(), action, "user", user)
            .with_details(details.to_string())
            .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.sessions_ended_elsewhere(&ended);
        // What the account's keys may do is worked out again, here and on every instance.
        for m in &memberships {
            self.membership_changed(m.org_id, user);
        }
        Ok(AccountChange {
            changed,
            sessions_ended: ended.len(),
        })
    }

    fn sessions_ended_elsewhere(&self, ended: &[Uuid]) {
        for id in ended {
            self.identity().cache().revoked_elsewhere(*id);
            self.publish_revocation(Revocation::Session(*id));
        }
    }
}

fn only_operators(tier: Tier) -> Result<(), Error> {
    if tier == Tier::Operator {
        Ok(())
    } else {
        Err(Error::WrongAudience("only operators manage accounts"))
    }
}
