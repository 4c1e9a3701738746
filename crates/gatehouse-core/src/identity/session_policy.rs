//! Session policy (ASVS 7.1.1, 7.1.2, 7.3.1): the inactivity limit, checked when a session is
//! refreshed, and the cap on an account's concurrent sessions, checked when one is opened.
//!
//! The idle decision reads the session's `last_seen_at`. A sign-in or a refresh writes it in its
//! own transaction; a request with an access token is only noted in the serving instance's
//! session cache, and written by that instance's activity flush every [`ACTIVITY_FLUSH_INTERVAL`].
//! The check takes the later of the stored time and this instance's unflushed one, and refuses
//! once more than `idle_timeout` has passed since it: a session idle for longer than the limit is
//! always refused (the limit is a ceiling, as NIST SP 800-63B's AAL2 wants it). The price of the
//! lag is on the other side: a session whose latest requests another instance served, and has not
//! yet written, may be refused up to one interval before the limit. No access token outlives an
//! idle session either: the configuration keeps the access-token lifetime plus the verification
//! leeway at most `idle_timeout`, and every token was issued by a sign-in or refresh that stored
//! its time.

use time::OffsetDateTime;
use uuid::Uuid;

use super::sessions::actor_of;
use super::settings::SessionLimitAction;
use crate::audit::{self, AuditEvent, Outcome, SecurityKind};
use crate::context::RequestContext;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{MembershipRecord, PlatformTx, SessionRecord, Tier, UserRecord};

/// How often every instance writes the last-seen times of the sessions it served (the activity
/// job): the most a stored `last_seen_at` trails a request, so the most a session is refused
/// before its limit.
pub const ACTIVITY_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Sessions a sign-in ended to make room for itself: made known (here and to every instance)
/// once the sign-in has committed.
pub(crate) type Ended = Vec<(Uuid, OffsetDateTime)>;

/// Refuses a token for an account an operator disabled (the refresh, the second step of a
/// sign-in, a step-up, an impersonation and a switch of organisation all read the account
/// through `user_flags`), counted as a security event.
pub(crate) fn refuse_disabled_account(
    kernel: &Kernel,
    account: Option<&UserRecord>,
    request: &RequestContext,
) -> Result<(), Error> {
    match account {
        Some(u) if u.disabled_at.is_some() => {
            kernel.record_security_event(
                SecurityKind::AccountDisabled,
                None,
                Some(u.id.to_string()),
                request,
            );
            Err(Error::AccountDisabled)
        }
        _ => Ok(()),
    }
}

/// Refuses switching a session into an organisation whose admin ended the member's sessions
/// there after the session began: the end would otherwise be undone by a session the member had
/// open in another organisation. A sign-in after the end enters it again.
pub(crate) fn refuse_switch_after_end(
    membership: &MembershipRecord,
    session: &SessionRecord,
) -> Result<(), Error> {
    match membership.sessions_ended_at {
        Some(ended) if session.created_at <= ended => Err(Error::Forbidden {
            permission: "membership",
        }),
        _ => Ok(()),
    }
}

impl Kernel {
    /// Appends `event` on the session's chain (organisation, else operators') and commits: how
    /// every session change and refusal here and in `sessions.rs` is recorded.
    pub(crate) async fn audit_event_and_commit(
        &self,
        tx: Box<dyn PlatformTx>,
        session: &SessionRecord,
        event: AuditEvent,
    ) -> Result<(), Error> {
        match session.org_id {
            Some(org) => {
                let mut tx = tx.enter(&TenantScope::granted(org)).await?;
                let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
            None => {
                let mut tx = tx;
                let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
            }
        }
        Ok(())
    }

    /// Whether `session` has had no request for longer than `identity.idle_timeout`, as far as
    /// the store and this instance know (see the module's note).
    pub(crate) fn idle_too_long(&self, session: &SessionRecord, now: OffsetDateTime) -> bool {
        let stored = session.last_seen_at;
        let last = self
            .identity()
            .cache()
            .last_seen(session.id)
            .map_or(stored, |here| here.max(stored));
        now - last > self.identity().settings().idle_timeout
    }

    /// Ends a session found idle when it was refreshed, audited on its chain, and answers the
    /// refusal (or the error that kept it from ending).
    pub(crate) async fn end_idle(
        &self,
        tx: Box<dyn PlatformTx>,
        session: &SessionRecord,
        request: &RequestContext,
    ) -> Error {
        match self.try_end_idle(tx, session, request).await {
            Ok(()) => {
                self.revoked_locally(session.id, session.expires_at);
                Error::Unauthenticated("the session was idle for too long; sign in again")
            }
            Err(e) => e,
        }
    }

    async fn try_end_idle(
        &self,
        mut tx: Box<dyn PlatformTx>,
        session: &SessionRecord,
        request: &RequestContext,
    ) -> Result<(), Error> {
        tx.revoke_session(session.id, self.clock().now()).await?;
        let limit = self.identity().settings().idle_timeout.whole_seconds();
        let mut event = AuditEvent::success(
            actor_of(session),
            "session.ended_idle",
            "session",
            session.id,
        )
        .with_details(format!("{{\"idle_timeout_secs\":{limit}}}"))
        .with_request(request.request_id.clone());
        event.outcome = Outcome::Denied;
        self.audit_event_and_commit(tx, session, event).await
    }

    /// Refuses a sign-in (or an invitation's acceptance) by an account an operator disabled,
    /// once its password has proved right (so the answer tells a guesser nothing). Counted like
    /// a failed sign-in, per source, account and minute (`audit::security`), not written per
    /// attempt.
    pub(crate) fn refuse_if_disabled(
        &self,
        user: &UserRecord,
        request: &RequestContext,
    ) -> Result<(), Error> {
        refuse_disabled_account(self, Some(user), request)
    }

    /// Makes room for a new customer session of `user` under
    /// `identity.max_sessions_per_account`: ends the oldest of its sessions, or refuses, as
    /// configured. Sessions idle past the limit do not count (they can never be refreshed
    /// again), nor do impersonations. Hands back the transaction and what it ended (for
    /// [`Kernel::publish_ended`] after the commit); a refusal is counted as a security event.
    pub(crate) async fn admit_session(
        &self,
        mut tx: Box<dyn PlatformTx>,
        user: UserId,
        request: &RequestContext,
    ) -> Result<(Box<dyn PlatformTx>, Ended), Error> {
        let settings = self.identity().settings();
        let Some(limit) = settings.max_sessions_per_account else {
            return Ok((tx, Vec::new()));
        };
        let now = self.clock().now();
        let mut counted: Vec<SessionRecord> = tx
            .live_sessions_of(user.as_uuid(), now)
            .await?
            .into_iter()
            .filter(|s| s.tier == Tier::Customer && !self.idle_too_long(s, now))
            .collect();
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        if counted.len() < cap {
            return Ok((tx, Vec::new()));
        }
        if settings.session_limit_action == SessionLimitAction::Refuse {
            drop(tx);
            self.record_security_event(
                SecurityKind::SessionLimit,
                None,
                Some(user.to_string()),
                request,
            );
            return Err(Error::SessionLimitReached { limit });
        }
        counted.sort_by_key(|s| (s.created_at, s.id));
        let mut ended = Vec::new();
        for s in counted.iter().take(counted.len() + 1 - cap) {
            if tx.revoke_session(s.id, now).await? {
                ended.push((s.id, s.expires_at));
            }
        }
        Ok((tx, ended))
    }

    /// Makes the sessions a sign-in ended known here and to every other instance.
    pub(crate) fn publish_ended(&self, ended: &Ended) {
        for (id, expires_at) in ended {
            self.revoked_locally(*id, *expires_at);
        }
    }
}

/// The membership a sign-in opens its session in: the one asked for, else the oldest.
pub(crate) fn pick_membership(
    memberships: &[MembershipRecord],
    wanted: Option<OrgId>,
) -> Result<Option<&MembershipRecord>, Error> {
    match wanted {
        Some(org) => memberships
            .iter()
            .find(|m| m.org_id == org)
            .map(Some)
            .ok_or(Error::Forbidden {
                permission: "membership",
            }),
        None => Ok(memberships.first()),
    }
}
