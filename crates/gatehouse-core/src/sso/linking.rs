//! Which account an external identity signs in, and whether it joins the organisation.
//!
//! 1. An identity already linked (issuer and subject) signs in its account.
//! 2. Otherwise it is linked only through an address the provider marks verified (the JSON value
//!    `true`, nothing else) whose domain the organisation verified (`sso::domains`): to the
//!    account with that address, or to a new account made for it (no password; the address is
//!    verified). A provider's word about any other address links nothing and makes nothing,
//!    whatever account holds that address: an unverified claim never merges accounts. An
//!    existing account is linked so only when its own address was verified, and it is neither an
//!    owner or admin of the organisation, nor a member of another organisation, nor an
//!    operator's address ([`linkable_by_address`]).
//! 3. A person who is not a member joins with the configured role (just in time) on the same
//!    condition: a verified address in a verified domain.
//!
//! A platform provider (social sign-in) vouches for the address it verified only to make a new
//! account: it never takes over an existing one (whose owner signs in as before), and it makes
//! no membership. It follows only the links a platform provider made: an identity an
//! organisation's sign-on linked (the same issuer configured as both) signs nobody in through
//! the platform provider, whose address rules then refuse it (its account exists, or the link
//! names another account).

use crate::sso::id_token::IdTokenClaims;
use serde_json::json;

use super::Sso;
use crate::audit::{self, Actor, AuditEvent};
use crate::context::RequestContext;
use crate::error::{Error, StoreError};
use crate::ids::{OrgId, UserId};
use crate::inputs::{DisplayName, Email};
use crate::scope::TenantScope;
use crate::store::{
    ExternalIdentityRecord, MembershipRecord, PlatformTx, Role, SsoConfigRecord, UserRecord,
};

/// An account made through a provider has no password: no stored hash matches any (sign-in
/// treats it as an unknown address), until its owner sets one through a reset.
pub(crate) const NO_PASSWORD: &str = "";

/// What a sign-in through a provider resolved to.
#[derive(Debug)]
pub(super) struct Resolved {
    pub user: UserRecord,
    /// The organisation's membership (its own sign-on only).
    pub membership: Option<MembershipRecord>,
}

/// What the linking changed, for its audit events.
#[derive(Debug, Default)]
struct Changes {
    created: bool,
    linked: bool,
    joined: Option<Role>,
}

/// What a linking decided, to be written.
#[derive(Debug)]
struct Decided<'a> {
    org: Option<OrgId>,
    user: &'a UserRecord,
    issuer: &'a str,
    subject: &'a str,
    changes: Changes,
    membership: Option<&'a MembershipRecord>,
}

/// Whether an existing account may be linked to an organisation's provider through its
/// address alone (step 2 of the module's rules); the refusals are recorded with the sign-in's
/// (`sso.sign_in_refused`, with the reason).
///
/// - **An address never verified** (a self-registration nobody confirmed): whoever registered it
///   first may not own it, and linking would leave their password, factors and sessions in the
///   account the provider's person then uses. Gatehouse refuses rather than strips those: a
///   strip would hand the provider's person an account whose data and memberships someone
///   unknown made. The address's owner proves it by mail (a password reset through the address,
///   or its confirmation link) and then signs in through the provider again.
/// - **A privileged or wider account**: an owner or admin of the organisation, a member of
///   another organisation, or an address that is also a platform operator's. Whoever manages the
///   organisation's sign-on chooses the provider, and a provider may assert any address in the
///   domain: such accounts are linked only by a link their holder makes while signed in
///   (`POST /v1/me/sso/link`), never by the address.
async fn linkable_by_address(
    tx: &mut dyn PlatformTx,
    existing: &UserRecord,
    org: OrgId,
) -> Result<(), Error> {
    if existing.email_verified_at.is_none() {
        return Err(Error::SsoRefused(
            "an account with this address exists but its address was never verified: it is not \
             linked through the provider; the address's owner verifies it (a password reset \
             through the address) and signs in through the provider again",
        ));
    }
    let privileged = tx
        .memberships_of_user(existing.id)
        .await?
        .iter()
        .any(|m| m.org_id != org || matches!(m.role, Role::Owner | Role::Admin));
    if privileged || tx.operator_by_email(&existing.email).await?.is_some() {
        return Err(Error::SsoRefused(
            "this account is an owner or admin here, a member elsewhere or an operator's: it is \
             linked to the provider only by its holder, signed in (POST /v1/me/sso/link), never \
             by its address",
        ));
    }
    Ok(())
}

impl Sso<'_> {
    /// The account `claims` (verified, from `issuer`) signs in, linked, made or admitted as the
    /// module's rules say; `org` is the organisation whose sign-on it is (`None`: a platform
    /// provider). Changes commit with their audit events before any session is made.
    pub(super) async fn account_for(
        &self,
        org: Option<&SsoConfigRecord>,
        issuer: &str,
        claims: &IdTokenClaims,
        request: &RequestContext,
    ) -> Result<Resolved, Error> {
        let subject = claims
            .sub
            .as_deref()
            .ok_or(Error::SsoRefused("the ID token names no subject"))?;
        let email = claims.email.as_deref().and_then(|e| Email::parse(e).ok());
        let mut tx = self.store().begin().await?;
        let vouched = self
            .vouched(tx.as_mut(), org, email.as_ref(), claims)
            .await?;
        let mut changes = Changes::default();
        // A sign-on uses only a link made for it: an organisation's, only the links its own
        // sign-on made; a platform provider's, only the links a platform provider made (never
        // one an organisation's sign-on made to the same issuer and subject). Any other link to
        // the same identity says nothing here, and the address rules decide as if it were not
        // there, with no second link made (issuer and subject are unique) (#24, a link made for
        // M never signs in at N, nor through a platform provider).
        let link = tx.external_identity(issuer, subject).await?;
        let (own_link, foreign_link) = match link {
            Some(l) if l.linked_by == org.map(|c| c.org_id) => (Some(l), None),
            other => (None, other),
        };
        let through_link = own_link.is_some();
        let user = match own_link {
            Some(link) => tx
                .user_by_id(link.user_id)
                .await?
                .ok_or(Error::SsoRefused("the linked account no longer exists"))?,
            None => {
                let Some(email) = email.as_ref().filter(|_| vouched) else {
                    return Err(Error::SsoRefused(
                        "the provider's address is not verified, or not in a domain the \
                         organisation verified: no account is linked or made through it",
                    ));
                };
                changes.linked = foreign_link.is_none();
                let found = match (tx.user_by_email(email.as_str()).await?, org) {
                    (Some(existing), Some(config)) => {
                        linkable_by_address(tx.as_mut(), &existing, config.org_id).await?;
                        existing
                    }
                    (Some(_), None) => {
                        return Err(Error::SsoRefused(
                            "an account with this address exists: sign in to it as before (a \
                             platform provider never takes over an account)",
                        ));
                    }
                    (None, _) => {
                        changes.created = true;
                        self.new_account(email, claims)?
                    }
                };
                if foreign_link.as_ref().is_some_and(|l| l.user_id != found.id) {
                    return Err(Error::SsoRefused(
                        "this identity is linked to another account (for another organisation's \
                         sign-on): it signs in no other account here",
                    ));
                }
                found
            }
        };
        self.refuse_if_disabled(&user, request)?;
        let membership = match org {
            None => None,
            Some(config) => {
                let current = tx
                    .memberships_of_user(user.id)
                    .await?
                    .into_iter()
                    .find(|m| m.org_id == config.org_id);
                match current {
                    Some(m) => Some(m),
                    // A link outlives no membership (links end with it), but one found for a
                    // person who is not a member re-admits them only as the address would.
                    None if through_link
                        && !self
                            .readmits(tx.as_mut(), &user, email.as_ref(), vouched, config.org_id)
                            .await? =>
                    {
                        return Err(Error::SsoRefused(
                            "not a member: a link to the provider does not make one; only a \
                             verified address in a domain the organisation verified, of an \
                             account linkable by its address, does",
                        ));
                    }
                    None if vouched => {
                        let role = Role::parse(&config.default_role)
                            .ok_or_else(|| Error::Internal("a stored default role".into()))?;
                        changes.joined = Some(role.clone());
                        Some(MembershipRecord {
                            org_id: config.org_id,
                            user_id: user.id,
                            role,
                            created_at: self.clock().now(),
                            sessions_ended_at: None,
                        })
                    }
                    None => {
                        return Err(Error::SsoRefused(
                            "not a member, and the provider's address is not a verified one in \
                             a domain the organisation verified: no membership is made",
                        ));
                    }
                }
            }
        };
        if changes.created || changes.linked || changes.joined.is_some() {
            let decided = Decided {
                org: org.map(|c| c.org_id),
                user: &user,
                issuer,
                subject,
                changes,
                membership: membership.as_ref(),
            };
            self.record_changes(tx, decided, request).await?;
        }
        Ok(Resolved { user, membership })
    }

    /// Whether a person found through a link, no longer a member, joins again: only as the
    /// just-in-time rules would admit them without the link (the provider vouches for the
    /// account's own address, and the account is linkable by its address).
    async fn readmits(
        &self,
        tx: &mut dyn PlatformTx,
        user: &UserRecord,
        email: Option<&Email>,
        vouched: bool,
        org: OrgId,
    ) -> Result<bool, Error> {
        let own_address = email.is_some_and(|e| e.as_str().eq_ignore_ascii_case(&user.email));
        if !(vouched && own_address) {
            return Ok(false);
        }
        match linkable_by_address(tx, user, org).await {
            Ok(()) => Ok(true),
            Err(Error::SsoRefused(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the provider vouches for `email`: it says the address is verified and, for an
    /// organisation's sign-on, the organisation verified its domain.
    async fn vouched(
        &self,
        tx: &mut dyn PlatformTx,
        org: Option<&SsoConfigRecord>,
        email: Option<&Email>,
        claims: &IdTokenClaims,
    ) -> Result<bool, Error> {
        let Some(email) = email.filter(|_| claims.email_verified) else {
            return Ok(false);
        };
        let Some(config) = org else {
            return Ok(true);
        };
        let domain = email.as_str().rsplit_once('@').map_or("", |(_, d)| d);
        Ok(tx.org_of_verified_domain(domain).await? == Some(config.org_id))
    }

    fn new_account(&self, email: &Email, claims: &IdTokenClaims) -> Result<UserRecord, Error> {
        let local = email.as_str().split('@').next().unwrap_or("member");
        let name = claims
            .name
            .as_deref()
            .and_then(|n| DisplayName::parse("name", n).ok())
            .map_or_else(|| local.to_owned(), |n| n.as_str().to_owned());
        let now = self.clock().now();
        Ok(UserRecord {
            id: UserId::new(self.clock()),
            email: email.as_str().to_owned(),
            name,
            password_hash: NO_PASSWORD.to_owned(),
            created_at: now,
            // The provider verified it, and (for an organisation) the domain is proven.
            email_verified_at: Some(now),
            disabled_at: None,
        })
    }

    /// Writes what the linking decided, with one audit event per change, in one transaction:
    /// on the organisation's chain for its own sign-on, else on the operators'.
    async fn record_changes(
        &self,
        mut tx: Box<dyn PlatformTx>,
        decided: Decided<'_>,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let Decided {
            org,
            user,
            issuer,
            subject,
            changes,
            membership,
        } = decided;
        let now = self.clock().now();
        if changes.created {
            tx.insert_user(user).await?;
        }
        if changes.linked {
            tx.insert_external_identity(&ExternalIdentityRecord {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
                user_id: user.id,
                linked_by: org,
                created_at: now,
            })
            .await
            .map_err(|e| match e {
                StoreError::Duplicate => Error::Conflict("the identity was linked meanwhile"),
                other => other.into(),
            })?;
        }
        let event = |action: &str, details: serde_json::Value| {
            AuditEvent::success(Actor::user(user.id), action, "user", user.id)
                .with_details(details.to_string())
                .with_request(request.request_id.clone())
        };
        let mut events = Vec::new();
        if changes.created {
            events.push(event("sso.account_created", json!({ "issuer": issuer })));
        }
        if changes.linked {
            events.push(event(
                "sso.identity_linked",
                json!({ "issuer": issuer, "new_account": changes.created }),
            ));
        }
        let Some(org) = org else {
            let mut proof = None;
            for e in events {
                proof = Some(audit::append_operator(tx.as_mut(), self.clock(), e).await?);
            }
            if let Some(proof) = proof {
                tx.commit(proof).await?;
            }
            return Ok(());
        };
        let mut tx = tx.enter(&TenantScope::granted(org)).await?;
        if let (Some(role), Some(m)) = (&changes.joined, membership) {
            if let Role::Custom(name) = role
                && tx.custom_role(name).await?.is_none()
            {
                return Err(Error::SsoRefused(
                    "the organisation's default role for single sign-on no longer exists",
                ));
            }
            tx.insert_membership(m).await?;
            events.push(event(
                "member.added",
                json!({ "via": "sso", "role": role.as_str(), "new_account": changes.created }),
            ));
        }
        let mut proof = None;
        for e in events {
            proof = Some(audit::append_tenant(tx.as_mut(), self.clock(), e).await?);
        }
        if let Some(proof) = proof {
            tx.commit(proof).await?;
        }
        if changes.joined.is_some() {
            self.membership_changed(org, user.id);
        }
        Ok(())
    }
}
