//! Enforced single sign-on: which sessions may be in an organisation that enforces it (see the
//! module's note in `sso/mod.rs` for the rules and break-glass).

use serde_json::json;

use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::RequestContext;
use crate::error::Error;
use crate::identity::sessions::actor_of;
use crate::ids::{OrgId, UserId};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{MembershipRecord, PlatformTx, Role, SessionRecord, SignedInWith};

/// Whether a session that began `signed_in_with` is kept out of `org`: one begun through another
/// organisation's sign-on stays in that organisation (its provider vouches for the person there
/// only), whatever `org` enforces; a password's or a platform provider's session is not.
pub(crate) fn confined_elsewhere(signed_in_with: SignedInWith, org: OrgId) -> bool {
    matches!(signed_in_with, SignedInWith::Sso(home) if home != org)
}

/// The refusal of a switch out of the organisation whose sign-on began the session.
pub(crate) const CONFINED: Error = Error::SsoRefused(
    "this session began through another organisation's single sign-on and stays in that \
     organisation: sign in to this one by its own means (a password, or its own sign-on)",
);

/// The refusal, to a session confined to an organisation (see [`confined_to`]), of ending the
/// account's other sessions: they are outside its confinement, whatever they are.
pub(crate) const CONFINED_REVOKE: Error = Error::SsoRefused(
    "this session began through an organisation's single sign-on and stays in that \
     organisation: it may end only itself and the sessions begun through the same sign-on; \
     sign in by a password (or a platform provider) to end the account's other sessions",
);

/// The refusal, to a session confined to an organisation, of ending a link another
/// organisation's sign-on (or a platform provider) made.
pub(crate) const CONFINED_UNLINK: Error = Error::SsoRefused(
    "this session began through an organisation's single sign-on and stays in that \
     organisation: it may end only the links that organisation's sign-on made",
);

/// The refusal, to a session confined to an organisation, of what acts on the whole account's
/// data, every organisation's: its erasure (`erase_self`). Its export is narrowed instead.
pub(crate) const CONFINED_ACCOUNT: Error = Error::SsoRefused(
    "this session began through an organisation's single sign-on and stays in that \
     organisation: erasing the account in every organisation is not that provider's to do; \
     sign in by your own means (a password, or a platform provider) to erase the account",
);

/// The organisation a session is confined to: the one whose single sign-on began it (#24). Such
/// a session acts for the account only within that organisation: it switches to no other
/// (`switch_organization`), ends no link another organisation's sign-on or a platform provider
/// made (`Sso::unlink`), and ends only sessions confined to the same organisation (its own
/// included); ending all the account's other sessions at once is refused (`revoke_others`). It
/// sees only that organisation's membership (`Members::me`), links and sessions, exports only
/// the person's data in that organisation, and does not erase the account ([`CONFINED_ACCOUNT`]).
pub(crate) async fn confined_to(
    tx: &mut dyn PlatformTx,
    session: uuid::Uuid,
) -> Result<Option<OrgId>, Error> {
    Ok(tx
        .session(session)
        .await?
        .and_then(|s| match s.signed_in_with {
            SignedInWith::Sso(org) => Some(org),
            SignedInWith::Password | SignedInWith::Social => None,
        }))
}

impl Kernel {
    /// Whether `org` enforces single sign-on: cached per organisation for at most
    /// `POLICY_CACHE_MAX_AGE` and forgotten on change, here and through the fan-out.
    pub(crate) async fn sso_enforced(&self, org: OrgId) -> Result<bool, Error> {
        let cache = &self.identity().factor_policies.sso_enforced;
        let now = self.clock().now();
        if let Some(v) = cache.get(org, now) {
            return Ok(v);
        }
        let read_at = cache.read_at();
        let mut tx = self
            .store()
            .begin_read_scoped(&TenantScope::granted(org))
            .await?;
        let v = tx.sso_config().await?.is_some_and(|c| c.enforced);
        drop(tx);
        cache.put(org, v, now, read_at);
        Ok(v)
    }

    /// The organisation's enforcement (or provider) changed: every instance asks again.
    pub(crate) fn enforcement_changed(&self, org: OrgId) {
        self.identity().factor_policies.forget(org);
        // Other instances forget the organisation's cached policies with its roles.
        self.roles_changed(org);
    }

    /// Whether a session that began `signed_in_with` may be in `membership`'s organisation: yes
    /// unless it enforces single sign-on and the session did not begin through that
    /// organisation's; an owner whose second factor is (or will be, for a sign-in) checked may
    /// still come in (break-glass).
    pub(crate) async fn sso_admits(
        &self,
        membership: &MembershipRecord,
        signed_in_with: SignedInWith,
        second_factor: bool,
    ) -> Result<bool, Error> {
        let owner = membership.role == Role::Owner;
        self.sso_admits_in(membership.org_id, owner, signed_in_with, second_factor)
            .await
    }

    /// [`Kernel::sso_admits`] for a session in `org` whose holder is (or is not) an owner there.
    pub(crate) async fn sso_admits_in(
        &self,
        org: OrgId,
        owner: bool,
        signed_in_with: SignedInWith,
        second_factor: bool,
    ) -> Result<bool, Error> {
        if confined_elsewhere(signed_in_with, org) {
            return Ok(false);
        }
        if signed_in_with == SignedInWith::Sso(org) || (owner && second_factor) {
            return Ok(true);
        }
        Ok(!self.sso_enforced(org).await?)
    }

    /// The membership a sign-in that began `via` (a password, a platform provider) opens its
    /// session in: the one asked for, refused with `sso_required` when the organisation enforces
    /// single sign-on (the caller records it once its transaction is gone); else the oldest one
    /// that admits it, or none.
    pub(crate) async fn pick_membership_for<'m>(
        &self,
        memberships: &'m [MembershipRecord],
        wanted: Option<OrgId>,
        via: SignedInWith,
        has_factor: bool,
    ) -> Result<Option<&'m MembershipRecord>, Error> {
        let Some(m) = crate::identity::session_policy::pick_membership(memberships, wanted)? else {
            return Ok(None);
        };
        if self.sso_admits(m, via, has_factor).await? {
            return Ok(Some(m));
        }
        if wanted.is_some() {
            return Err(Error::SsoRequired);
        }
        for other in memberships {
            if self.sso_admits(other, via, has_factor).await? {
                return Ok(Some(other));
            }
        }
        Ok(None)
    }

    /// Ends a session found, at its refresh, in an organisation that now enforces single sign-on
    /// it did not begin through; audited on its chain. Answers the refusal (or the error that
    /// kept the session from ending).
    pub(crate) async fn end_for_sso(
        &self,
        mut tx: Box<dyn PlatformTx>,
        session: &SessionRecord,
        request: &RequestContext,
    ) -> Error {
        let ended: Result<(), Error> = async {
            tx.revoke_session(session.id, self.clock().now()).await?;
            let mut event = AuditEvent::success(
                actor_of(session),
                "session.ended_sso_required",
                "session",
                session.id,
            )
            .with_request(request.request_id.clone());
            event.outcome = Outcome::Denied;
            self.audit_event_and_commit(tx, session, event).await
        }
        .await;
        match ended {
            Ok(()) => {
                self.revoked_locally(session.id, session.expires_at);
                Error::SsoRequired
            }
            Err(e) => e,
        }
    }

    /// Records, on the organisation's chain, that a session was kept out because it enforces
    /// single sign-on (`what`: the password sign-in, a switch, a refresh).
    pub(crate) async fn record_sso_required(
        &self,
        org: OrgId,
        user: UserId,
        what: &str,
        request: &RequestContext,
    ) {
        let result: Result<(), Error> = async {
            let mut tx = self
                .store()
                .begin_scoped(&TenantScope::granted(org))
                .await?;
            let mut event =
                AuditEvent::success(Actor::user(user), "session.sso_required", "user", user)
                    .with_details(json!({ "refused": what }).to_string())
                    .with_request(request.request_id.clone());
            event.outcome = Outcome::Denied;
            let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a refusal for enforced single sign-on");
        }
    }
}
