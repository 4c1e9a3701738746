//! A person's own sessions: listing them, ending one, ending all the others (ASVS 7.4, 7.5.2).

use uuid::Uuid;

use super::Revocation;
use super::sessions::{SessionView, Sessions};
use crate::audit::AuditEvent;
use crate::context::AccountCall;
use crate::error::Error;
use crate::ids::UserId;
use crate::sso::enforcement::{CONFINED_REVOKE, confined_to};
use crate::store::{SignedInWith, Tier};

impl Sessions<'_> {
    /// Ends one of the principal's sessions. Its own is signing out and needs nothing more;
    /// another is a change to how the account is signed in and, like ending all the others,
    /// needs a second factor (or, for an account without one, the password) checked within the
    /// step-up window (ASVS 7.5.2): a stolen token must not be able to end its owner's sessions.
    /// A session an organisation's sign-on began ends only sessions begun through the same.
    pub async fn revoke(&self, call: &AccountCall, session_id: Uuid) -> Result<(), Error> {
        let AccountCall { principal, request } = call;
        let own = session_id == principal.session_id;
        let enrolled = !own
            && self
                .has_second_factor(UserId::from_uuid(principal.subject))
                .await?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        let session = tx
            .session(session_id)
            .await?
            .filter(|s| s.subject_id == principal.subject && s.tier == principal.tier)
            .ok_or(Error::NotFound("session"))?;
        if !own {
            self.require_reauthentication(principal, enrolled, "sessions.revoke")?;
            // A session an organisation's sign-on began ends only sessions confined to the
            // same organisation (`sso::enforcement::confined_to`).
            if let Some(home) = confined_to(tx.as_mut(), principal.session_id).await?
                && session.signed_in_with != SignedInWith::Sso(home)
            {
                return Err(CONFINED_REVOKE);
            }
        }
        if !tx.revoke_session(session_id, now).await? {
            return Ok(());
        }
        let event =
            AuditEvent::success(principal.actor(), "session.revoked", "session", session_id)
                .with_request(request.request_id.clone());
        self.audit_event_and_commit(tx, &session, event).await?;
        self.revoked_locally(session_id, session.expires_at);
        Ok(())
    }

    /// Ends every other session of the principal's subject; returns how many. Refused to a
    /// session an organisation's sign-on began (it is confined to that organisation).
    pub async fn revoke_others(&self, call: &AccountCall) -> Result<usize, Error> {
        let AccountCall { principal, request } = call;
        if principal.tier == Tier::Impersonation {
            return Err(Error::WrongAudience(
                "an impersonation cannot end the user's own sessions",
            ));
        }
        // Ending every other session is a change to how the account is signed in (ASVS 7.5.2).
        let enrolled = self
            .has_second_factor(UserId::from_uuid(principal.subject))
            .await?;
        self.require_reauthentication(principal, enrolled, "sessions.revoke_others")?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        let current = tx
            .session(principal.session_id)
            .await?
            .ok_or(Error::Unauthenticated("the session has ended"))?;
        // A session an organisation's sign-on began is confined to it: the account's other
        // sessions are outside that, so ending them all is refused (a 403 `sso_refused`); it may
        // still end one begun through the same sign-on (`revoke`).
        if let SignedInWith::Sso(_) = current.signed_in_with {
            return Err(CONFINED_REVOKE);
        }
        let revoked = tx
            .revoke_sessions_of(principal.subject, Some(principal.session_id), now)
            .await?;
        let event = AuditEvent::success(
            principal.actor(),
            "session.revoked_others",
            "session",
            principal.session_id,
        )
        .with_details(format!("{{\"revoked\":{}}}", revoked.len()))
        .with_request(request.request_id.clone());
        self.audit_event_and_commit(tx, &current, event).await?;
        // Exactly what the update revoked (a session created meanwhile included).
        for id in &revoked {
            self.identity().cache().revoked_elsewhere(*id);
            self.publish_revocation(Revocation::Session(*id));
        }
        Ok(revoked.len())
    }

    /// The principal's live sessions, newest first.
    pub async fn list(&self, call: &AccountCall) -> Result<Vec<SessionView>, Error> {
        let AccountCall { principal, .. } = call;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        // A session an organisation's sign-on began sees only the sessions it may end: those
        // begun by the same organisation's sign-on (`sso::enforcement::confined_to`).
        let home = confined_to(tx.as_mut(), principal.session_id).await?;
        let sessions = tx.live_sessions_of(principal.subject, now).await?;
        Ok(sessions
            .into_iter()
            .filter(|s| s.tier == principal.tier)
            .filter(|s| {
                home.is_none()
                    || matches!(s.signed_in_with, SignedInWith::Sso(o) if Some(o) == home)
            })
            .map(|s| SessionView {
                current: s.id == principal.session_id,
                id: s.id,
                device_name: s.device_name,
                user_agent: s.user_agent,
                ip: s.ip,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
            })
            .collect())
    }
}
