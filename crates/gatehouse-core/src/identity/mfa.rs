//! The second factor (A4): TOTP enrolment with recovery codes, the second step of sign-in, and
//! step-up for permissions that need a recent second factor (C1).
//!
//! The seed is sealed with the platform key, bound to the user. Each accepted code records its
//! time step with a conditional update, so a code is accepted once even by racing requests.
//! Wrong codes count towards the same growing lockouts as wrong passwords, per account and per
//! address.

use gatehouse_crypto::{SecretString, TotpCheck, TotpSecret, random_token};

use super::recovery_codes;
use super::sessions::{IssuedSession, Landing, actor_of, clean_device_name, to_secs};
use super::{Principal, digest};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::{AccountCall, RequestContext};
use crate::error::{Error, StoreError};
use crate::ids::{OrgId, UserId};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{
    OneTimeTokenRecord, PlatformTx, SignedInWith, Tier, TokenPurpose, TotpFactorRecord, UserRecord,
};

/// The answer to a correct password.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    Session(IssuedSession),
    /// The account has a second factor: finish with `POST /v1/auth/mfa`.
    MfaRequired {
        mfa_token: SecretString,
        expires_in: u64,
    },
}

/// A second-factor proof as the caller typed it.
#[derive(Debug)]
pub enum SecondFactor {
    Code(SecretString),
    RecoveryCode(SecretString),
}

/// A started enrolment: what the authenticator app needs, shown once.
#[derive(Debug)]
pub struct EnrolmentStarted {
    pub secret: SecretString,
    pub otpauth_uri: SecretString,
}

const SEAL_KIND: &str = "totp";
const CHALLENGE_PREFIX: &str = "gmc_";
/// The user behind a person's own session (not an API key, operator or impersonation), or
/// `WrongAudience` with `why`.
pub(crate) fn customer_only(principal: &Principal, why: &'static str) -> Result<UserId, Error> {
    if principal.api_key_permissions.is_some() || principal.tier != Tier::Customer {
        return Err(Error::WrongAudience(why));
    }
    Ok(UserId::from_uuid(principal.subject))
}

/// A new set of recovery codes for `user`, replacing the old set in `tx`; the codes, shown once.
async fn new_recovery_set(
    tx: &mut dyn PlatformTx,
    user: UserId,
    now: time::OffsetDateTime,
) -> Result<Vec<SecretString>, Error> {
    let codes = recovery_codes::generate()?;
    let stored = codes
        .iter()
        .map(recovery_codes::stored_value)
        .collect::<Result<Vec<_>, _>>()?;
    tx.replace_recovery_codes(user, &stored, now).await?;
    Ok(codes)
}

const OWN_FACTOR: &str = "only a user's own session manages or uses their second factor";

impl Kernel {
    /// Records a wrong proof (its attempt was already counted by `ensure_factor_not_locked` or
    /// `ensure_not_locked`).
    async fn second_factor_failed(&self, user: UserId, request: &RequestContext, action: &str) {
        let mut event = AuditEvent::success(Actor::user(user), action, "user", user)
            .with_request(request.request_id.clone());
        event.outcome = Outcome::Denied;
        if let Err(e) = audit::record_operator(self.store(), self.clock(), event).await {
            tracing::error!(error = %e, "could not record a failed second factor");
        }
    }

    /// Issues the single-use token of a sign-in's second step, bound to the user, the password
    /// step's time, the organisation and the device asked for.
    pub(crate) async fn challenge_second_factor(
        &self,
        mut tx: Box<dyn PlatformTx>,
        user: &UserRecord,
        landing: Landing,
        device: String,
        browser: bool,
        request: &RequestContext,
    ) -> Result<LoginOutcome, Error> {
        let Landing { org, via } = landing;
        let now = self.clock().now();
        let ttl = self.identity().settings().mfa_challenge_ttl;
        let secret = random_token(32).map_err(|e| Error::Internal(e.to_string()))?;
        let token = SecretString::new(format!("{CHALLENGE_PREFIX}{}", secret.expose()));
        let detail = serde_json::json!({
            "org": org.map(|o| o.to_string()),
            "device": device,
            "browser": browser,
            "via": via.as_str(),
            "sso_org": via.sso_org().map(|o| o.to_string()),
        })
        .to_string();
        tx.insert_one_time_token(&OneTimeTokenRecord {
            digest: digest(token.expose()),
            purpose: TokenPurpose::SignInChallenge,
            subject_id: user.id.as_uuid(),
            detail,
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        })
        .await?;
        let event = AuditEvent::success(
            Actor::user(user.id),
            "user.login_challenged",
            "user",
            user.id,
        )
        .with_details("{\"factor\":\"totp\"}".to_owned())
        .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(LoginOutcome::MfaRequired {
            mfa_token: token,
            expires_in: u64::try_from(ttl.whole_seconds()).unwrap_or(0),
        })
    }

    /// Checks the user's own password again (enrolment, step-up without a factor), under the
    /// sign-in lockouts; a wrong one is recorded as `action`.
    pub(crate) async fn recheck_password(
        &self,
        user: &UserRecord,
        password: &SecretString,
        request: &RequestContext,
        action: &str,
    ) -> Result<(), Error> {
        let subject = super::lockouts::lockout_subject("user", &user.email);
        let ip = request.ip.clone().unwrap_or_default();
        self.ensure_not_locked(&subject, &ip, self.clock().now())
            .await?;
        let (ok, _) = self
            .check_password(
                &crate::inputs::normalize_password(password),
                Some(user.password_hash.clone()),
            )
            .await?;
        if !ok {
            self.second_factor_failed(user.id, request, action).await;
            return Err(Error::InvalidCredentials);
        }
        self.attempt_succeeded(&subject, &ip).await;
        Ok(())
    }

    /// Whether `permission` needs a step-up this principal has not done recently: the method it
    /// needs, or `None` when it may go ahead.
    pub(crate) fn step_up_needed(
        &self,
        principal: &Principal,
        permission: &str,
    ) -> Option<&'static str> {
        let settings = self.identity().settings();
        if !settings.step_up_permissions.iter().any(|p| p == permission)
            && !self.product().needs_step_up(permission)
        {
            return None;
        }
        if principal.api_key_permissions.is_some() {
            // A key cannot show a person's second factor.
            return Some("second factor (not available to API keys)");
        }
        let now = to_secs(self.clock().now());
        let window = u64::try_from(settings.step_up_window.whole_seconds()).unwrap_or(0);
        let recent = |t: Option<u64>| t.is_some_and(|t| t <= now && now - t <= window);
        if principal.tier == Tier::Impersonation {
            return Some("second factor (not available under impersonation)");
        }
        if principal.mfa_enrolled {
            (!recent(principal.mfa_time)).then_some("second factor")
        } else if settings.step_up_password_fallback {
            (!(recent(principal.auth_time) || recent(principal.mfa_time))).then_some("password")
        } else {
            Some("second factor")
        }
    }

    /// `Some(method)` unless `principal` is a person who checked a second factor within the
    /// step-up window: for actions that need one regardless of configuration (reveal).
    pub(crate) fn second_factor_missing(&self, principal: &Principal) -> Option<&'static str> {
        if customer_only(principal, OWN_FACTOR).is_err() {
            return Some("second factor (only a person's own session has one)");
        }
        let now = to_secs(self.clock().now());
        let window =
            u64::try_from(self.identity().settings().step_up_window.whole_seconds()).unwrap_or(0);
        let recent = principal
            .mfa_time
            .is_some_and(|t| t <= now && now - t <= window);
        if recent {
            None
        } else if principal.mfa_enrolled {
            Some("second factor")
        } else {
            Some("second factor (enrol one first: POST /v1/me/mfa/totp)")
        }
    }

    /// Appends a user's own event on their session's organisation chain (or the operators' chain
    /// when the session has none) and commits.
    pub(crate) async fn audit_user_event(
        &self,
        tx: Box<dyn PlatformTx>,
        principal: &Principal,
        event: AuditEvent,
    ) -> Result<(), Error> {
        match principal.org {
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
}

/// Second factors: TOTP enrolment, the sign-in challenge, step-up and recovery codes.
#[derive(Debug, Clone, Copy)]
pub struct Mfa<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Mfa);

impl Mfa<'_> {
    fn totp_check(&self) -> TotpCheck {
        TotpCheck::default()
    }

    fn open_seed(&self, factor: &TotpFactorRecord) -> Result<TotpSecret, Error> {
        let raw = self.keyring().open_platform(
            SEAL_KIND,
            &factor.user_id.to_string(),
            &factor.envelope,
        )?;
        Ok(TotpSecret::from_bytes(raw.expose().to_vec()))
    }

    /// Checks a second factor for `user` inside `tx` and spends it (the code's time step, or the
    /// recovery code). Returns what was used, for the audit trail.
    async fn spend_second_factor(
        &self,
        tx: &mut dyn PlatformTx,
        user: UserId,
        proof: &SecondFactor,
    ) -> Result<Option<&'static str>, Error> {
        let Some(factor) = tx.totp_factor(user).await? else {
            return Ok(None);
        };
        if factor.confirmed_at.is_none() {
            return Ok(None);
        }
        let now = self.clock().now();
        match proof {
            SecondFactor::Code(code) => {
                let seed = self.open_seed(&factor)?;
                let step = self.totp_check().matching_step(
                    &seed,
                    code.expose(),
                    to_secs(now),
                    factor.last_step,
                );
                match step {
                    Some(step) if tx.use_totp_step(user, step).await? => Ok(Some("totp")),
                    _ => Ok(None),
                }
            }
            SecondFactor::RecoveryCode(code) => {
                let Some(normalized) = recovery_codes::typed(code.expose()) else {
                    return Ok(None);
                };
                let normalized = zeroize::Zeroizing::new(normalized);
                // Each stored value has its own salt: the typed code is checked against each.
                let stored = tx.unused_recovery_codes(user).await?;
                let Some(found) = stored
                    .iter()
                    .find(|s| recovery_codes::matches(s, &normalized))
                else {
                    return Ok(None);
                };
                Ok(tx
                    .use_recovery_code(user, found, now)
                    .await?
                    .then_some("recovery_code"))
            }
        }
    }

    /// Refuses while locked, else counts this attempt until it proves right.
    async fn ensure_factor_not_locked(
        &self,
        user: UserId,
        request: &RequestContext,
    ) -> Result<(), Error> {
        // The strict count per account, whatever the address: whoever gets here holds the
        // password, and a code has a million values, so guesses spread over addresses must meet
        // the strict bound too.
        self.ensure_not_locked_as(
            &format!("mfa:{user}"),
            request.ip.as_deref().unwrap_or_default(),
            super::lockouts::Strict::PerAccount,
            self.clock().now(),
        )
        .await
    }

    async fn factor_attempt_succeeded(&self, user: UserId, request: &RequestContext) {
        self.attempt_succeeded_as(
            &format!("mfa:{user}"),
            request.ip.as_deref().unwrap_or_default(),
            super::lockouts::Strict::PerAccount,
        )
        .await;
    }

    /// The second step of a sign-in: the challenge token and a code or a recovery code.
    pub async fn complete(
        &self,
        mfa_token: &SecretString,
        proof: SecondFactor,
        request: &RequestContext,
    ) -> Result<IssuedSession, Error> {
        let invalid = || Error::InvalidToken("sign-in");
        let now = self.clock().now();
        let token_digest = digest(mfa_token.expose());
        let mut tx = self.store().begin().await?;
        let challenge = tx
            .one_time_token(&token_digest)
            .await?
            .filter(|t| t.purpose == TokenPurpose::SignInChallenge && t.is_usable(now))
            .ok_or_else(invalid)?;
        let user = UserId::from_uuid(challenge.subject_id);
        self.ensure_factor_not_locked(user, request).await?;
        let Some(method) = self.spend_second_factor(tx.as_mut(), user, &proof).await? else {
            drop(tx);
            self.second_factor_failed(user, request, "user.mfa_failed")
                .await;
            return Err(Error::InvalidCredentials);
        };
        if !tx.consume_one_time_token(&token_digest, now).await? {
            return Err(invalid());
        }
        self.factor_attempt_succeeded(user, request).await;
        let detail: serde_json::Value =
            serde_json::from_str(&challenge.detail).map_err(|e| Error::Internal(e.to_string()))?;
        let org = detail
            .get("org")
            .and_then(|o| o.as_str())
            .and_then(OrgId::parse);
        let device = detail
            .get("device")
            .and_then(|d| d.as_str())
            .map(str::to_owned);
        let browser = detail
            .get("browser")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        // How the first step was made (a challenge from before issue 24 names none: a password).
        let via = SignedInWith::parse(
            detail
                .get("via")
                .and_then(|v| v.as_str())
                .unwrap_or("password"),
            detail
                .get("sso_org")
                .and_then(|o| o.as_str())
                .and_then(OrgId::parse),
        )
        .ok_or_else(|| Error::Internal("a sign-in challenge's method".into()))?;
        // The membership may have ended between the two steps.
        let role = match org {
            Some(org) => Some(
                tx.memberships_of_user(user)
                    .await?
                    .into_iter()
                    .find(|m| m.org_id == org)
                    .ok_or(Error::Forbidden {
                        permission: "membership",
                    })?
                    .role,
            ),
            None => None,
        };
        let (mut tx, ended) = self.admit_session(tx, user, request).await?;
        let (mut session, refresh) = self.new_session(
            user.as_uuid(),
            Tier::Customer,
            org,
            None,
            None,
            clean_device_name(device),
            request,
        )?;
        session.auth_at = challenge.created_at;
        session.mfa_at = Some(now);
        session.signed_in_with = via;
        tx.insert_session(&session).await?;
        let flags = self.user_flags(tx.as_mut(), &session, request).await?;
        let details = format!(
            "{{\"session_id\":\"{}\",\"second_factor\":\"{method}\",\"sessions_ended\":{}}}",
            session.id,
            ended.len()
        );
        self.audit_session_event(
            tx,
            &session,
            Actor::user(user),
            "user.login",
            details,
            request,
        )
        .await?;
        self.publish_ended(&ended);
        let roles = role
            .map(|r| vec![r.as_str().to_owned()])
            .unwrap_or_default();
        self.issue(&session, roles, Some(refresh), browser, flags)
            .await
    }

    /// Starts TOTP enrolment: a new seed, unconfirmed until a code from it is confirmed. Needs
    /// the password again: a stolen session alone must not be able to put its own factor on the
    /// account.
    pub async fn start_totp_enrolment(
        &self,
        call: &AccountCall,
        password: &SecretString,
    ) -> Result<EnrolmentStarted, Error> {
        let AccountCall { principal, request } = call;
        let user = customer_only(principal, OWN_FACTOR)?;
        let record = {
            let mut tx = self.store().begin_read().await?;
            tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?
        };
        self.recheck_password(&record, password, request, "mfa.totp_enrolment_refused")
            .await?;
        let mut tx = self.store().begin().await?;
        let seed = TotpSecret::generate().map_err(|e| Error::Internal(e.to_string()))?;
        let envelope = self
            .keyring()
            .seal_platform(SEAL_KIND, &user.to_string(), seed.expose())?;
        match tx
            .put_pending_totp(&TotpFactorRecord {
                user_id: user,
                envelope,
                created_at: self.clock().now(),
                confirmed_at: None,
                last_step: 0,
            })
            .await
        {
            Err(StoreError::Duplicate) => {
                return Err(Error::Conflict(
                    "a TOTP factor is already active; disable it first",
                ));
            }
            other => other?,
        }
        let event = AuditEvent::success(
            principal.actor(),
            "mfa.totp_enrolment_started",
            "user",
            user,
        )
        .with_request(request.request_id.clone());
        self.audit_user_event(tx, principal, event).await?;
        let issuer = &self.identity().settings().totp_issuer;
        Ok(EnrolmentStarted {
            otpauth_uri: self.totp_check().uri(&seed, issuer, &record.email),
            secret: seed.to_base32(),
        })
    }

    /// Confirms enrolment with a first code; returns the recovery codes, shown once.
    pub async fn confirm_totp_enrolment(
        &self,
        call: &AccountCall,
        code: &SecretString,
    ) -> Result<Vec<SecretString>, Error> {
        let AccountCall { principal, request } = call;
        let user = customer_only(principal, OWN_FACTOR)?;
        self.ensure_factor_not_locked(user, request).await?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        let factor = tx
            .totp_factor(user)
            .await?
            .filter(|f| f.confirmed_at.is_none())
            .ok_or(Error::Conflict(
                "no TOTP enrolment is waiting for confirmation",
            ))?;
        let seed = self.open_seed(&factor)?;
        let step = self
            .totp_check()
            .matching_step(&seed, code.expose(), to_secs(now), 0);
        let confirmed = match step {
            Some(step) => tx.confirm_totp(user, &factor.envelope, step, now).await?,
            None => false,
        };
        if !confirmed {
            drop(tx);
            self.second_factor_failed(user, request, "mfa.totp_confirm_failed")
                .await;
            return Err(Error::InvalidCredentials);
        }
        let codes = new_recovery_set(tx.as_mut(), user, now).await?;
        // The confirming code is not a step-up: the session still needs a sign-in or step-up
        // with the factor before the permissions that require one.
        self.factor_attempt_succeeded(user, request).await;
        let event = AuditEvent::success(principal.actor(), "mfa.totp_enabled", "user", user)
            .with_request(request.request_id.clone());
        self.audit_user_event(tx, principal, event).await?;
        self.second_factor_changed(user);
        Ok(codes)
    }

    /// Removes the TOTP factor; needs a fresh code or recovery code now.
    pub async fn disable_totp(&self, call: &AccountCall, proof: SecondFactor) -> Result<(), Error> {
        let AccountCall { principal, request } = call;
        let user = customer_only(principal, OWN_FACTOR)?;
        self.ensure_factor_not_locked(user, request).await?;
        let mut tx = self.store().begin().await?;
        let Some(method) = self.spend_second_factor(tx.as_mut(), user, &proof).await? else {
            drop(tx);
            self.second_factor_failed(user, request, "mfa.totp_disable_failed")
                .await;
            return Err(Error::InvalidCredentials);
        };
        self.factor_attempt_succeeded(user, request).await;
        tx.delete_totp(user).await?;
        let event = AuditEvent::success(principal.actor(), "mfa.totp_disabled", "user", user)
            .with_details(format!("{{\"second_factor\":\"{method}\"}}"))
            .with_request(request.request_id.clone());
        self.audit_user_event(tx, principal, event).await?;
        self.second_factor_changed(user);
        Ok(())
    }

    /// Replaces the recovery codes with a new set; needs a fresh code or recovery code now
    /// (ASVS 7.5.2). The old codes stop working in the same transaction.
    pub async fn regenerate_recovery_codes(
        &self,
        call: &AccountCall,
        proof: SecondFactor,
    ) -> Result<Vec<SecretString>, Error> {
        let AccountCall { principal, request } = call;
        let user = customer_only(principal, OWN_FACTOR)?;
        self.ensure_factor_not_locked(user, request).await?;
        let mut tx = self.store().begin().await?;
        let Some(method) = self.spend_second_factor(tx.as_mut(), user, &proof).await? else {
            drop(tx);
            self.second_factor_failed(user, request, "mfa.recovery_codes_refused")
                .await;
            return Err(Error::InvalidCredentials);
        };
        self.factor_attempt_succeeded(user, request).await;
        let codes = new_recovery_set(tx.as_mut(), user, self.clock().now()).await?;
        let event = AuditEvent::success(
            principal.actor(),
            "mfa.recovery_codes_regenerated",
            "user",
            user,
        )
        .with_details(format!("{{\"second_factor\":\"{method}\"}}"))
        .with_request(request.request_id.clone());
        self.audit_user_event(tx, principal, event).await?;
        Ok(codes)
    }

    /// Refreshes the session's step-up time with a second factor (or, for an account without
    /// one where allowed, the password) and returns a new access token that carries it.
    pub async fn step_up(
        &self,
        call: &AccountCall,
        proof: Option<SecondFactor>,
        password: Option<SecretString>,
        browser: bool,
    ) -> Result<IssuedSession, Error> {
        let AccountCall { principal, request } = call;
        let user = customer_only(principal, OWN_FACTOR)?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        let session = tx
            .session(principal.session_id)
            .await?
            .filter(|s| s.is_live(now) && s.subject_id == principal.subject)
            .ok_or(Error::Unauthenticated("the session has ended"))?;
        let enrolled = tx
            .totp_factor(user)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        let (auth_at, mfa_at, method) = if enrolled {
            let proof = proof.ok_or(Error::invalid(
                "code",
                "is required: this account has a second factor",
            ))?;
            self.ensure_factor_not_locked(user, request).await?;
            match self.spend_second_factor(tx.as_mut(), user, &proof).await? {
                Some(m) => {
                    self.factor_attempt_succeeded(user, request).await;
                    (session.auth_at, Some(now), m)
                }
                None => {
                    drop(tx);
                    self.second_factor_failed(user, request, "session.step_up_failed")
                        .await;
                    return Err(Error::InvalidCredentials);
                }
            }
        } else {
            if !self.identity().settings().step_up_password_fallback {
                drop(tx);
                self.second_factor_failed(user, request, "session.step_up_refused")
                    .await;
                return Err(Error::Conflict(
                    "enrol a second factor first: step-up needs one on this server",
                ));
            }
            let password = password.ok_or(Error::invalid(
                "password",
                "is required: this account has no second factor",
            ))?;
            let record = tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
            drop(tx);
            self.recheck_password(&record, &password, request, "session.step_up_failed")
                .await?;
            tx = self.store().begin().await?;
            (now, session.mfa_at, "password")
        };
        if !tx.set_session_auth(session.id, auth_at, mfa_at).await? {
            return Err(Error::Unauthenticated("the session has ended"));
        }
        let mut refreshed = session.clone();
        refreshed.auth_at = auth_at;
        refreshed.mfa_at = mfa_at;
        let roles = self.roles_for(tx.as_mut(), &refreshed).await?;
        let flags = self.user_flags(tx.as_mut(), &refreshed, request).await?;
        let event = AuditEvent::success(
            actor_of(&session),
            "session.stepped_up",
            "session",
            session.id,
        )
        .with_details(format!("{{\"method\":\"{method}\"}}"))
        .with_request(request.request_id.clone());
        self.audit_event_and_commit(tx, &session, event).await?;
        self.issue(&refreshed, roles, None, browser, flags).await
    }
}
