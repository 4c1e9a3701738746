//! Linking the signed-in person's own account to their identity at the organisation's provider
//! (`POST /v1/me/sso/link`): the way an account that is never linked by its address (an owner or
//! admin, a member of another organisation: `linking.rs`) comes to sign in through the provider.
//!
//! The person proves both ends: their Gatehouse session (a person's, stepped up as every change
//! to sign-on is) and the provider's sign-in. The state is bound to them (its `user`), and only
//! they complete it, with their session (`complete_link`); a sign-in's callback refuses a
//! link's state. An identity linked to another account is refused (`conflict`). Audited
//! (`sso.link_started`, `sso.identity_linked` with `"by": "signed_in"`).

use serde_json::json;

use super::signin::{Callback, StartedSignIn};
use super::{ORG_PROVIDER, Sso};
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::{Error, StoreError};
use crate::ids::UserId;
use crate::oauth::{Binding, Expected, FlowMode, StatePurpose};
use crate::store::ExternalIdentityRecord;

const LINK: &str = "sso.link";

impl Sso<'_> {
    /// Starts linking the caller's account: the provider's authorization URL, under a state
    /// bound to the caller and the organisation.
    pub async fn start_link(&self, call: &TenantCall) -> Result<StartedSignIn, Error> {
        let user = self.linking_person(call).await?;
        let org = call.scope.org_id();
        let resolved = self.org_provider(org).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "sso.link_started",
            "oauth_provider",
            ORG_PROVIDER,
        )
        .with_request(call.request.request_id.clone());
        let binding = Binding {
            purpose: StatePurpose::Sso,
            // Bound to the person, who completes it with their own session.
            mode: FlowMode::Unbound,
            org: Some(org),
            user: Some(user),
            provider: ORG_PROVIDER.to_owned(),
        };
        self.authorization(Some(&call.scope), binding, &resolved.provider, event)
            .await
    }

    /// Completes a link the caller started: the state must be theirs, then the provider's answer
    /// is checked as a sign-in's, and its issuer and subject are linked to the caller's account.
    pub async fn complete_link(&self, call: &TenantCall, callback: Callback) -> Result<(), Error> {
        let user = self.linking_person(call).await?;
        let org = call.scope.org_id();
        let expect = Expected {
            purpose: StatePurpose::Sso,
            mode: FlowMode::Unbound,
            org: Some(org),
            user: Some(user),
            provider: Some(ORG_PROVIDER),
        };
        let spent = self
            .oauth()
            .spend(&callback.state, &expect, &call.request)
            .await?;
        let error = callback.error.clone();
        let linked = async {
            let (_, issuer, claims) = self.verified_identity(&spent, callback).await?;
            let subject = claims
                .sub
                .as_deref()
                .ok_or(Error::SsoRefused("the ID token names no subject"))?;
            let mut tx = self.store().begin().await?;
            if let Some(link) = tx.external_identity(&issuer, subject).await? {
                return if link.user_id == user {
                    Ok(())
                } else {
                    Err(Error::Conflict(
                        "this identity at the provider is linked to another account",
                    ))
                };
            }
            tx.insert_external_identity(&ExternalIdentityRecord {
                issuer: issuer.clone(),
                subject: subject.to_owned(),
                user_id: user,
                linked_by: Some(org),
                created_at: self.clock().now(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Duplicate => Error::Conflict("the identity was linked meanwhile"),
                other => other.into(),
            })?;
            let mut tx = tx.enter(&call.scope).await?;
            let event =
                AuditEvent::success(call.principal.actor(), "sso.identity_linked", "user", user)
                    .with_details(
                        json!({ "issuer": issuer, "new_account": false, "by": "signed_in" })
                            .to_string(),
                    )
                    .with_request(call.request.request_id.clone());
            let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            Ok(())
        }
        .await;
        if let Err(e) = &linked {
            self.sign_in_refused(Some(org), ORG_PROVIDER, e, error.as_deref(), &call.request)
                .await;
        }
        linked
    }

    /// The caller, a person (not an API key or an impersonation) signed in recently enough.
    async fn linking_person(&self, call: &TenantCall) -> Result<UserId, Error> {
        let principal = &call.principal;
        if principal.api_key_permissions.is_some() || principal.impersonator.is_some() {
            return Err(Error::Forbidden {
                permission: "a person's own session",
            });
        }
        let user = UserId::from_uuid(principal.subject);
        let enrolled = self.has_second_factor(user).await?;
        self.require_reauthentication(principal, enrolled, LINK)?;
        Ok(user)
    }
}
