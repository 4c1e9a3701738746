//! The signed-in person's own links to external identities (`GET /v1/me/sso/links`,
//! `DELETE /v1/me/sso/links/{id}`): which providers sign their account in, and ending one. A
//! link also ends with the membership of the organisation whose sign-on made it, and when that
//! organisation's issuer changes (#24).

use serde_json::json;
use time::OffsetDateTime;

use super::Sso;
use crate::audit::{self, AuditEvent};
use crate::context::AccountCall;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::scope::TenantScope;
use crate::sso::enforcement::{CONFINED_UNLINK, confined_to};
use crate::store::{ExternalIdentityRecord, external_identity_digest};

/// A link as its person sees it.
#[derive(Debug, Clone)]
pub struct LinkView {
    /// The digest of issuer and subject, in lower-case hex: the link's id.
    pub id: String,
    pub issuer: String,
    /// The organisation whose sign-on made it; `None`: a platform provider.
    pub organization_id: Option<OrgId>,
    pub created_at: OffsetDateTime,
}

fn id_of(link: &ExternalIdentityRecord) -> String {
    external_identity_digest(&link.issuer, &link.subject)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The caller, a person acting for themselves (not an API key, nor an impersonation).
fn person(call: &AccountCall) -> Result<UserId, Error> {
    let p = &call.principal;
    if p.api_key_permissions.is_some() || p.impersonator.is_some() {
        return Err(Error::Forbidden {
            permission: "a person's own session",
        });
    }
    Ok(UserId::from_uuid(p.subject))
}

impl Sso<'_> {
    /// The caller's links, oldest first; to a session an organisation's sign-on began, only the
    /// links that sign-on made (what else signs the account in is not that organisation's to see).
    pub async fn links(&self, call: &AccountCall) -> Result<Vec<LinkView>, Error> {
        let user = person(call)?;
        let mut tx = self.store().begin_read().await?;
        let home = confined_to(tx.as_mut(), call.principal.session_id).await?;
        Ok(tx
            .external_identities_of(user)
            .await?
            .iter()
            .filter(|l| home.is_none() || l.linked_by == home)
            .map(|l| LinkView {
                id: id_of(l),
                issuer: l.issuer.clone(),
                organization_id: l.linked_by,
                created_at: l.created_at,
            })
            .collect())
    }

    /// Ends one of the caller's links: that identity signs the account in no more (until linked
    /// again). A session an organisation's sign-on began may end only the links that sign-on
    /// made (`sso_refused` for any other). Audited on the chain of the organisation whose sign-on made it (the operators'
    /// for a platform provider's).
    pub async fn unlink(&self, call: &AccountCall, id: &str) -> Result<(), Error> {
        let user = person(call)?;
        let mut tx = self.store().begin().await?;
        let link = tx
            .external_identities_of(user)
            .await?
            .into_iter()
            .find(|l| id_of(l).eq_ignore_ascii_case(id))
            .ok_or(Error::NotFound("link"))?;
        // A session an organisation's sign-on began ends only that organisation's links.
        if let Some(home) = confined_to(tx.as_mut(), call.principal.session_id).await?
            && link.linked_by != Some(home)
        {
            return Err(CONFINED_UNLINK);
        }
        let digest = external_identity_digest(&link.issuer, &link.subject);
        if !tx.delete_external_identity(user, &digest).await? {
            return Err(Error::NotFound("link"));
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "sso.identity_unlinked",
            "user",
            user,
        )
        .with_details(json!({ "issuer": link.issuer }).to_string())
        .with_request(call.request.request_id.clone());
        match link.linked_by {
            Some(org) => {
                let mut tx = tx.enter(&TenantScope::granted(org)).await?;
                let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
            None => {
                let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
        }
        Ok(())
    }
}
