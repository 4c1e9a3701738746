//! Operators' own sign-in and sessions (A9): the password and, where a factor is enrolled or the
//! server requires one, a TOTP code in the same request; step-up before impersonation; refresh,
//! logout and revocation on the operators' surface only; factor enrolment from the CLI (whoever
//! runs it already holds the host, which is the operators' break-glass path too).

use std::sync::Arc;

use gatehouse_crypto::{SecretString, TotpCheck, TotpSecret};
use uuid::Uuid;

use super::lockouts::{Strict, lockout_subject};
use super::sessions::{IssuedSession, SessionView, actor_of, clean_device_name, to_secs};
use super::{Audience, Principal};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::{AccountCall, OperatorCall, RequestContext};
use crate::error::Error;
use crate::inputs::{Email, normalize_password};
use crate::store::{OperatorFactor, OperatorRecord, Tier};

use super::operators::Operators;

/// The sealing context's kind for an operator's TOTP seed (users' seeds use `totp`).
const SEAL_KIND: &str = "operator-totp";

/// A TOTP enrolment started from the CLI: what the authenticator app needs, and the seed, kept
/// in memory only until a first code confirms it.
#[derive(Debug)]
pub struct OperatorEnrolment {
    pub operator_id: Uuid,
    pub email: String,
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
    seed: TotpSecret,
}

/// The same check users' factors use: 6 digits, 30-second steps, one step of skew.
fn totp() -> TotpCheck {
    TotpCheck::default()
}

fn ensure_operator(principal: &Principal) -> Result<(), Error> {
    if principal.tier != Tier::Operator || principal.api_key_permissions.is_some() {
        return Err(Error::WrongAudience(
            "only an operator's own session does this",
        ));
    }
    Ok(())
}

fn as_account(call: &OperatorCall) -> Result<AccountCall, Error> {
    ensure_operator(&call.principal)?;
    Ok(AccountCall {
        principal: Arc::clone(&call.principal),
        request: call.request.clone(),
    })
}

impl Operators<'_> {
    /// Signs an operator in (operator tier, operator audience). An operator with a factor sends
    /// its current code as `code`; where the server requires a factor, one without cannot sign
    /// in at all. Every refusal after the lockouts is the same `InvalidCredentials` (a wrong
    /// password, a missing or wrong code, no factor where one is required), so no answer says
    /// that a password was right; the audit trail and the log say which it was.
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
        code: Option<&SecretString>,
        device_name: Option<String>,
        request: &RequestContext,
    ) -> Result<IssuedSession, Error> {
        let password = normalize_password(password);
        let now = self.clock().now();
        let account_subject = lockout_subject("operator", email);
        let ip_subject = request.ip.clone().unwrap_or_default();
        self.ensure_not_locked(&account_subject, &ip_subject, now)
            .await?;
        let operator = match Email::parse(email) {
            Ok(e) => {
                let mut tx = self.store().begin_read().await?;
                tx.operator_by_email(e.as_str()).await?
            }
            Err(_) => None,
        };
        let (ok, rehash) = self
            .check_password(
                &password,
                operator.as_ref().map(|o| o.password_hash.clone()),
            )
            .await?;
        let operator = match operator {
            Some(o) if ok => o,
            found => {
                self.record_security_event(
                    crate::audit::SecurityKind::OperatorSignInFailed,
                    None,
                    found.map(|o| o.id.to_string()),
                    request,
                );
                return Err(Error::InvalidCredentials);
            }
        };
        // The code is checked before anything is written, and its step spent in the same
        // transaction as the session it opens. Until then the attempt still counts against the
        // password lockout.
        let step = match (&operator.totp, code) {
            (Some(factor), Some(code)) => {
                // Counted against the factor's own strict count only: this sign-in's attempt
                // already counts against the address and the account (exactly as a wrong
                // password's does), and a locked factor answers as a wrong password would, so
                // neither the counts nor the answers tell a right password from a wrong one.
                if !self
                    .count_factor_attempt(&factor_subject(operator.id), now)
                    .await
                {
                    self.record_refusal_of(Some(operator.id), "operator.mfa_locked", None, request)
                        .await;
                    return Err(Error::InvalidCredentials);
                }
                match self.matching_step(&operator, factor, code)? {
                    Some(step) => Some(step),
                    None => return self.code_failed(&operator, request).await,
                }
            }
            (Some(_), None) => {
                self.record_refusal_of(Some(operator.id), "operator.mfa_missing", None, request)
                    .await;
                return Err(Error::InvalidCredentials);
            }
            (None, _) if self.identity().settings().operator_totp_required => {
                tracing::warn!(
                    operator = %operator.id,
                    "operator sign-in refused: no second factor is enrolled and \
                     identity.operator_totp_required is on; run `gatehouse admin enrol-totp`"
                );
                self.record_refusal_of(
                    Some(operator.id),
                    "operator.login_refused",
                    Some("{\"reason\":\"no_second_factor\"}"),
                    request,
                )
                .await;
                return Err(Error::InvalidCredentials);
            }
            (None, _) => None,
        };
        let new_hash = if rehash {
            Some(self.passwords().hash(password).await?)
        } else {
            None
        };
        let mut tx = self.store().begin().await?;
        if let Some(step) = step {
            if !tx.use_operator_totp_step(operator.id, step).await? {
                drop(tx);
                return self.code_failed(&operator, request).await;
            }
            self.factor_attempt_forgiven(&factor_subject(operator.id))
                .await;
        }
        self.attempt_succeeded(&account_subject, &ip_subject).await;
        if let Some(h) = &new_hash {
            tx.set_operator_password_hash(operator.id, h).await?;
        }
        let (mut session, refresh) = self.new_session(
            operator.id,
            Tier::Operator,
            None,
            None,
            None,
            clean_device_name(Some(
                device_name.unwrap_or_else(|| "operator console".to_owned()),
            )),
            request,
        )?;
        if step.is_some() {
            session.mfa_at = Some(now);
        }
        tx.insert_session(&session).await?;
        let event = AuditEvent::success(
            Actor::operator(operator.id),
            "operator.login",
            "session",
            session.id,
        )
        .with_details(format!(
            "{{\"second_factor\":{}}}",
            if step.is_some() { "\"totp\"" } else { "null" }
        ))
        .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        let flags = super::sessions::UserFlags {
            mfa_enrolled: operator.totp.is_some(),
            email_verified: true,
        };
        self.issue(&session, Vec::new(), Some(refresh), false, flags)
            .await
    }

    /// The step `code` proves for the operator's factor, if any (counting nothing: the caller
    /// has counted the attempt).
    fn matching_step(
        &self,
        operator: &OperatorRecord,
        factor: &OperatorFactor,
        code: &SecretString,
    ) -> Result<Option<u64>, Error> {
        let raw =
            self.keyring()
                .open_platform(SEAL_KIND, &operator.id.to_string(), &factor.envelope)?;
        let seed = TotpSecret::from_bytes(raw.expose().to_vec());
        Ok(totp().matching_step(
            &seed,
            code.expose(),
            to_secs(self.clock().now()),
            factor.last_step,
        ))
    }

    /// Refuses while the operator's factor is locked after wrong codes, else counts this attempt
    /// until a code proves right.
    async fn ensure_factor_open(
        &self,
        operator: Uuid,
        request: &RequestContext,
    ) -> Result<(), Error> {
        self.ensure_not_locked_as(
            &factor_subject(operator),
            request.ip.as_deref().unwrap_or_default(),
            Strict::PerAccount,
            self.clock().now(),
        )
        .await
    }

    async fn code_failed<T>(
        &self,
        operator: &OperatorRecord,
        request: &RequestContext,
    ) -> Result<T, Error> {
        self.record_refusal_of(Some(operator.id), "operator.mfa_failed", None, request)
            .await;
        Err(Error::InvalidCredentials)
    }

    /// Records a refused operator step on the operators' chain, in its own transaction.
    async fn record_refusal_of(
        &self,
        operator: Option<Uuid>,
        action: &str,
        details: Option<&str>,
        request: &RequestContext,
    ) {
        let mut event = AuditEvent::success(
            operator.map_or_else(Actor::anonymous, Actor::operator),
            action,
            "operator",
            operator.map_or_else(|| "unknown".to_owned(), |o| o.to_string()),
        )
        .with_request(request.request_id.clone());
        if let Some(d) = details {
            event = event.with_details(d.to_owned());
        }
        event.outcome = Outcome::Denied;
        if let Err(e) = audit::record_operator(self.store(), self.clock(), event).await {
            tracing::error!(error = %e, action, "could not record a refused operator step");
        }
    }

    /// Rotates an operator's refresh token. Only operator sessions are refreshed here, and the
    /// tenant API's refresh refuses them: an operator's credentials work on `/admin/v1` only.
    pub async fn refresh(
        &self,
        token: &SecretString,
        request: &RequestContext,
    ) -> Result<IssuedSession, Error> {
        self.sessions()
            .refresh_on(token, false, request, Audience::Operator, None)
            .await
    }

    /// What an operator must show before impersonating (or another action that needs a recent
    /// check): `None` when the session's last second factor, or (for an operator without one on
    /// a server that does not require it) its last password, is within the step-up window.
    pub(crate) fn step_up_missing(&self, principal: &Principal) -> Option<&'static str> {
        let now = to_secs(self.clock().now());
        let window =
            u64::try_from(self.identity().settings().step_up_window.whole_seconds()).unwrap_or(0);
        let recent = |t: Option<u64>| t.is_some_and(|t| t <= now && now - t <= window);
        if recent(principal.mfa_time) {
            None
        } else if principal.mfa_enrolled || self.identity().settings().operator_totp_required {
            Some("second factor (POST /admin/v1/auth/step-up with `code`)")
        } else {
            (!recent(principal.auth_time))
                .then_some("password (POST /admin/v1/auth/step-up with `password`)")
        }
    }

    /// Refreshes the session's step-up time with the operator's TOTP code (or, for an operator
    /// without a factor where none is required, the password) and returns a new access token.
    pub async fn step_up(
        &self,
        call: &OperatorCall,
        code: Option<SecretString>,
        password: Option<SecretString>,
    ) -> Result<IssuedSession, Error> {
        ensure_operator(&call.principal)?;
        let OperatorCall { principal, request } = call;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        let session = tx
            .session(principal.session_id)
            .await?
            .filter(|s| s.is_live(now) && s.subject_id == principal.subject)
            .ok_or(Error::Unauthenticated("the session has ended"))?;
        let operator = tx
            .operator_by_id(principal.subject)
            .await?
            .ok_or(Error::Unauthenticated("the operator no longer exists"))?;
        drop(tx);
        let (auth_at, mfa_at, step, method) = match &operator.totp {
            Some(factor) => {
                let code = code.ok_or(Error::invalid(
                    "code",
                    "is required: this operator has a second factor",
                ))?;
                // The caller is signed in already: a locked factor may say so (429).
                self.ensure_factor_open(operator.id, request).await?;
                let Some(step) = self.matching_step(&operator, factor, &code)? else {
                    return self.code_failed(&operator, request).await;
                };
                (session.auth_at, Some(now), Some(step), "totp")
            }
            None if self.identity().settings().operator_totp_required => {
                return Err(Error::SecondFactorNotEnrolled(
                    "enrol one with `gatehouse admin enrol-totp --email ...`",
                ));
            }
            None => {
                let password = password.ok_or(Error::invalid(
                    "password",
                    "is required: this operator has no second factor",
                ))?;
                self.recheck_operator_password(&operator, &password, request)
                    .await?;
                (now, session.mfa_at, None, "password")
            }
        };
        let mut tx = self.store().begin().await?;
        if let Some(step) = step {
            if !tx.use_operator_totp_step(operator.id, step).await? {
                drop(tx);
                return self.code_failed(&operator, request).await;
            }
            self.attempt_succeeded_as(
                &factor_subject(operator.id),
                request.ip.as_deref().unwrap_or_default(),
                Strict::PerAccount,
            )
            .await;
        }
        if !tx.set_session_auth(session.id, auth_at, mfa_at).await? {
            return Err(Error::Unauthenticated("the session has ended"));
        }
        let mut refreshed = session.clone();
        refreshed.auth_at = auth_at;
        refreshed.mfa_at = mfa_at;
        let event = AuditEvent::success(
            actor_of(&session),
            "session.stepped_up",
            "session",
            session.id,
        )
        .with_details(format!("{{\"method\":\"{method}\"}}"))
        .with_request(request.request_id.clone());
        self.audit_event_and_commit(tx, &session, event).await?;
        let flags = super::sessions::UserFlags {
            mfa_enrolled: operator.totp.is_some(),
            email_verified: true,
        };
        self.issue(&refreshed, Vec::new(), None, false, flags).await
    }

    async fn recheck_operator_password(
        &self,
        operator: &OperatorRecord,
        password: &SecretString,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let subject = lockout_subject("operator", &operator.email);
        let ip = request.ip.clone().unwrap_or_default();
        self.ensure_not_locked(&subject, &ip, self.clock().now())
            .await?;
        let (ok, _) = self
            .check_password(
                &normalize_password(password),
                Some(operator.password_hash.clone()),
            )
            .await?;
        if !ok {
            self.record_refusal_of(Some(operator.id), "session.step_up_failed", None, request)
                .await;
            return Err(Error::InvalidCredentials);
        }
        self.attempt_succeeded(&subject, &ip).await;
        Ok(())
    }

    /// Ends the calling operator's session, and every impersonation they started (an
    /// impersonation does not record which of the operator's sessions started it).
    pub async fn logout(&self, call: &OperatorCall) -> Result<(), Error> {
        self.revoke_session(call, call.principal.session_id).await
    }

    /// The calling operator's live sessions, newest first.
    pub async fn sessions_of_caller(&self, call: &OperatorCall) -> Result<Vec<SessionView>, Error> {
        self.sessions().list(&as_account(call)?).await
    }

    /// Ends one of the calling operator's sessions, and every impersonation they started.
    pub async fn revoke_session(&self, call: &OperatorCall, session: Uuid) -> Result<(), Error> {
        ensure_operator(&call.principal)?;
        let mut tx = self.store().begin().await?;
        let mine = tx
            .session(session)
            .await?
            .is_some_and(|s| s.subject_id == call.principal.subject && s.tier == Tier::Operator);
        if !mine {
            return Err(Error::NotFound("session"));
        }
        self.end_operator_sessions(
            tx,
            call.principal.subject,
            Ending::One(session),
            call.principal.actor(),
            "session.revoked",
            Some(&call.request),
        )
        .await
        .map(|_| ())
    }

    /// Ends every other session of the calling operator, and every impersonation they started;
    /// returns how many of their own sessions ended.
    pub async fn revoke_other_sessions(&self, call: &OperatorCall) -> Result<usize, Error> {
        ensure_operator(&call.principal)?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        // The calling session itself must still be live: a revoked session's cached token may
        // not end the operator's new ones.
        let live = tx
            .session(call.principal.session_id)
            .await?
            .is_some_and(|s| s.is_live(now));
        if !live {
            return Err(Error::Unauthenticated("the session has ended"));
        }
        self.end_operator_sessions(
            tx,
            call.principal.subject,
            Ending::AllBut(call.principal.session_id),
            call.principal.actor(),
            "session.revoked_others",
            Some(&call.request),
        )
        .await
    }

    async fn operator_named(&self, email: &str) -> Result<OperatorRecord, Error> {
        let email = Email::parse(email)?;
        let mut tx = self.store().begin_read().await?;
        tx.operator_by_email(email.as_str())
            .await?
            .ok_or(Error::NotFound("operator"))
    }

    /// An operator's live sessions, for the CLI (`gatehouse admin sessions`).
    pub async fn sessions_by_email(&self, email: &str) -> Result<Vec<SessionView>, Error> {
        let operator = self.operator_named(email).await?;
        let now = self.clock().now();
        let mut tx = self.store().begin_read().await?;
        Ok(tx
            .live_sessions_of(operator.id, now)
            .await?
            .into_iter()
            .filter(|s| s.tier == Tier::Operator)
            .map(|s| SessionView {
                current: false,
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

    /// Ends every session of an operator (the CLI's `gatehouse admin revoke-sessions`: a lost
    /// laptop, a departure); returns how many. Audited on the operators' chain as the CLI.
    pub async fn revoke_all_sessions(&self, email: &str) -> Result<usize, Error> {
        let operator = self.operator_named(email).await?;
        self.end_sessions_of(&operator, "operator.sessions_revoked", None)
            .await
    }

    async fn end_sessions_of(
        &self,
        operator: &OperatorRecord,
        action: &str,
        factor: Option<&OperatorFactor>,
    ) -> Result<usize, Error> {
        let mut tx = self.store().begin().await?;
        if let Some(f) = factor
            && !tx.set_operator_totp(operator.id, Some(f)).await?
        {
            return Err(Error::NotFound("operator"));
        }
        let ended = self
            .end_operator_sessions(
                tx,
                operator.id,
                Ending::All,
                Actor::system("cli"),
                action,
                None,
            )
            .await?;
        Ok(ended)
    }

    /// Ends the operator's sessions `ending` names and every impersonation they started, with
    /// one audit event on the operators' chain in the same transaction; then tells the session
    /// cache here and on every instance. Returns how many of the operator's own sessions ended.
    async fn end_operator_sessions(
        &self,
        mut tx: Box<dyn crate::store::PlatformTx>,
        operator: Uuid,
        ending: Ending,
        actor: Actor,
        action: &str,
        request: Option<&RequestContext>,
    ) -> Result<usize, Error> {
        let now = self.clock().now();
        let own = match ending {
            Ending::All => tx.revoke_sessions_of(operator, None, now).await?,
            Ending::AllBut(keep) => tx.revoke_sessions_of(operator, Some(keep), now).await?,
            Ending::One(id) => {
                if tx.revoke_session(id, now).await? {
                    vec![id]
                } else {
                    Vec::new()
                }
            }
        };
        // An impersonation outlives nothing it was started from: a stolen laptop's sessions
        // end with the customer sessions its operator opened.
        let impersonations = tx.revoke_impersonations_by(operator, now).await?;
        let mut event = AuditEvent::success(actor, action, "operator", operator).with_details(
            serde_json::json!({
                "sessions_revoked": own.len(),
                "impersonations_revoked": impersonations,
            })
            .to_string(),
        );
        if let Some(r) = request {
            event = event.with_request(r.request_id.clone());
        }
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        for id in own.iter().chain(&impersonations) {
            self.identity().cache().revoked_elsewhere(*id);
            self.publish_revocation(super::Revocation::Session(*id));
        }
        Ok(own.len())
    }

    /// Starts (or restarts: a lost device) an operator's TOTP enrolment from the CLI. Nothing is
    /// stored until [`Operators::confirm_totp_enrolment`] checks a first code.
    pub async fn start_totp_enrolment(&self, email: &str) -> Result<OperatorEnrolment, Error> {
        let operator = self.operator_named(email).await?;
        let seed = TotpSecret::generate().map_err(|e| Error::Internal(e.to_string()))?;
        let issuer = format!("{} operators", self.identity().settings().totp_issuer);
        Ok(OperatorEnrolment {
            operator_id: operator.id,
            email: operator.email.clone(),
            secret: seed.to_base32(),
            otpauth_uri: totp().uri(&seed, &issuer, &operator.email),
            seed,
        })
    }

    /// Stores the enrolment's factor once `code` proves the authenticator holds the seed, and
    /// ends every session the operator had (each was opened without this factor). Returns how
    /// many sessions ended.
    pub async fn confirm_totp_enrolment(
        &self,
        enrolment: &OperatorEnrolment,
        code: &SecretString,
    ) -> Result<usize, Error> {
        let now = self.clock().now();
        let step = totp()
            .matching_step(&enrolment.seed, code.expose(), to_secs(now), 0)
            .ok_or(Error::InvalidCredentials)?;
        let envelope = self.keyring().seal_platform(
            SEAL_KIND,
            &enrolment.operator_id.to_string(),
            enrolment.seed.expose(),
        )?;
        let operator = self.operator_named(&enrolment.email).await?;
        if operator.id != enrolment.operator_id {
            return Err(Error::NotFound("operator"));
        }
        let factor = OperatorFactor {
            envelope,
            confirmed_at: now,
            last_step: step,
        };
        self.end_sessions_of(&operator, "operator.totp_enrolled", Some(&factor))
            .await
    }
}

/// Which of an operator's sessions end.
#[derive(Debug, Clone, Copy)]
enum Ending {
    All,
    AllBut(Uuid),
    One(Uuid),
}

/// The strict per-account lockout key of an operator's second factor.
fn factor_subject(operator: Uuid) -> String {
    format!("mfa:operator:{operator}")
}
