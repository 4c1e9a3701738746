//! Account recovery (A7) and email verification (A8): one-time tokens of 256 bits, stored as
//! their SHA-256, single use, expiring; delivered through the mail outbox in the same
//! transaction that creates them. The password never appears in mail or logs.

use gatehouse_crypto::{SecretString, random_token};

use super::{Principal, Revocation, digest};
use crate::audit::{self, Actor, AuditEvent};
use crate::context::{AccountCall, RequestContext};
use crate::error::Error;
use crate::ids::UserId;
use crate::inputs::Email;
use crate::kernel::Kernel;
use crate::mail::Template;
use crate::store::{OneTimeTokenRecord, PlatformTx, TokenPurpose, UserRecord};

impl Kernel {
    /// Creates a one-time token for `user` inside `tx` and returns it (to be mailed, never
    /// logged).
    async fn one_time_token_for(
        &self,
        tx: &mut dyn PlatformTx,
        user: &UserRecord,
        purpose: TokenPurpose,
        ttl: time::Duration,
    ) -> Result<SecretString, Error> {
        let token = random_token(32).map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.clock().now();
        tx.insert_one_time_token(&OneTimeTokenRecord {
            digest: digest(token.expose()),
            purpose,
            subject_id: user.id.as_uuid(),
            detail: serde_json::json!({ "email": user.email }).to_string(),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        })
        .await?;
        Ok(token)
    }

    /// Queues a verification mail for `user` inside `tx` (signup, and asking again).
    pub(crate) async fn queue_email_verification(
        &self,
        tx: &mut dyn PlatformTx,
        user: &UserRecord,
    ) -> Result<(), Error> {
        let ttl = self.identity().settings().email_verification_ttl;
        let token = self
            .one_time_token_for(tx, user, TokenPurpose::EmailVerification, ttl)
            .await?;
        self.enqueue_mail(
            tx,
            &user.email,
            Template::VerifyEmail {
                token: token.expose(),
                hours: ttl.whole_hours(),
            },
        )
        .await?;
        Ok(())
    }

    /// At most one unasked-for mail (a reset link, an account-exists notice) per account per
    /// minute, across every instance when the lockout store is shared. A store that cannot
    /// answer sends nothing (the owner can ask again; a mailbox flood cannot be restarted).
    pub(crate) async fn account_mail_allowed(&self, user: UserId, kind: &'static str) -> bool {
        let key = format!("mail:{kind}:{user}");
        match self
            .identity()
            .lockouts
            .first_within(&key, time::Duration::minutes(1), self.clock().now())
            .await
        {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::warn!(error = %e, "the mail throttle is unavailable; not sending");
                false
            }
        }
    }
}

/// Password reset and change, and email verification.
#[derive(Debug, Clone, Copy)]
pub struct Recovery<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Recovery);

impl Recovery<'_> {
    /// Starts a password reset for `email`. Known or not, the caller learns nothing: the HTTP
    /// layer answers 202 before this runs, and this returns `Ok` either way.
    pub async fn request_password_reset(
        &self,
        email: &str,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let mut tx = self.store().begin().await?;
        let Some(user) = tx.user_by_email(email.as_str()).await? else {
            return Ok(());
        };
        if !self.account_mail_allowed(user.id, "password_reset").await {
            tracing::info!(user_id = %user.id, "a reset link was sent to this account within the minute; not sending another");
            return Ok(());
        }
        let ttl = self.identity().settings().password_reset_ttl;
        let token = self
            .one_time_token_for(tx.as_mut(), &user, TokenPurpose::PasswordReset, ttl)
            .await?;
        self.enqueue_mail(
            tx.as_mut(),
            &user.email,
            Template::PasswordReset {
                token: token.expose(),
                minutes: ttl.whole_minutes(),
            },
        )
        .await?;
        let event = AuditEvent::success(
            Actor::anonymous(),
            "user.password_reset_requested",
            "user",
            user.id,
        )
        .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.mail_queued();
        Ok(())
    }

    /// Sets a new password with a reset token: checks the policy, spends the token (and any
    /// other reset token of the user), ends every session of the user and tells them by mail.
    pub async fn confirm_password_reset(
        &self,
        token: &SecretString,
        new_password: SecretString,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let invalid = || Error::InvalidToken("password reset");
        let now = self.clock().now();
        let token_digest = digest(token.expose());
        let record = {
            let mut tx = self.store().begin().await?;
            tx.one_time_token(&token_digest)
                .await?
                .filter(|t| t.purpose == TokenPurpose::PasswordReset && t.is_usable(now))
                .ok_or_else(invalid)?
        };
        let user_id = UserId::from_uuid(record.subject_id);
        let password = self.accept_account_password(user_id, new_password).await?;
        let hash = self.passwords().hash(password.secret().clone()).await?;
        let mut tx = self.store().begin().await?;
        if !tx.consume_one_time_token(&token_digest, now).await? {
            return Err(invalid());
        }
        let user = tx.user_by_id(user_id).await?.ok_or_else(invalid)?;
        tx.set_password_hash(user_id, &hash).await?;
        // Every other reset link, and every sign-in half done with the old password, ends too.
        for purpose in [TokenPurpose::PasswordReset, TokenPurpose::SignInChallenge] {
            tx.consume_tokens_of(user_id.as_uuid(), purpose, now)
                .await?;
        }
        let revoked = tx.revoke_sessions_of(user_id.as_uuid(), None, now).await?;
        self.enqueue_mail(tx.as_mut(), &user.email, Template::PasswordChanged)
            .await?;
        let event =
            AuditEvent::success(Actor::user(user_id), "user.password_reset", "user", user_id)
                .with_details(format!("{{\"sessions_revoked\":{}}}", revoked.len()))
                .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.after_password_change(&user, &revoked).await;
        Ok(())
    }

    /// Changes a signed-in user's password (the current one is required) and ends their other
    /// sessions.
    pub async fn change_password(
        &self,
        call: &AccountCall,
        current: SecretString,
        new_password: SecretString,
    ) -> Result<usize, Error> {
        let AccountCall { principal, request } = call;
        let user_id = super::mfa::customer_only(
            principal,
            "only the user's own session changes their password",
        )?;
        // With a second factor, the current password alone (which a phished session may hold
        // too) is not enough to change it: a factor checked within the step-up window is.
        if self.has_second_factor(user_id).await? {
            self.require_reauthentication(principal, true, "me.password")?;
        }
        let now = self.clock().now();
        let user = {
            let mut tx = self.store().begin_read().await?;
            tx.user_by_id(user_id)
                .await?
                .ok_or(Error::NotFound("user"))?
        };
        self.recheck_password(&user, &current, request, "user.password_change_failed")
            .await?;
        let password = self.accept_account_password(user_id, new_password).await?;
        let hash = self.passwords().hash(password.secret().clone()).await?;
        let mut tx = self.store().begin().await?;
        tx.set_password_hash(user_id, &hash).await?;
        // A reset link mailed before the change would otherwise undo it: it ends too, with
        // every sign-in half done with the old password.
        for purpose in [TokenPurpose::PasswordReset, TokenPurpose::SignInChallenge] {
            tx.consume_tokens_of(user_id.as_uuid(), purpose, now)
                .await?;
        }
        let revoked = tx
            .revoke_sessions_of(user_id.as_uuid(), Some(principal.session_id), now)
            .await?;
        tx.set_session_auth(principal.session_id, now, principal_mfa_at(principal))
            .await?;
        self.enqueue_mail(tx.as_mut(), &user.email, Template::PasswordChanged)
            .await?;
        let event =
            AuditEvent::success(principal.actor(), "user.password_changed", "user", user_id)
                .with_details(format!("{{\"sessions_revoked\":{}}}", revoked.len()))
                .with_request(request.request_id.clone());
        self.audit_user_event(tx, principal, event).await?;
        self.after_password_change(&user, &revoked).await;
        Ok(revoked.len())
    }

    async fn after_password_change(&self, user: &UserRecord, revoked: &[uuid::Uuid]) {
        for id in revoked {
            self.identity().cache().revoked_elsewhere(*id);
            self.publish_revocation(Revocation::Session(*id));
        }
        // A new password forgives the failures of the old one, from every address.
        self.forget_lockouts_of(&user.email).await;
        self.mail_queued();
    }

    /// Sends a new verification mail to a signed-in user whose email is not verified.
    pub async fn resend_email_verification(&self, call: &AccountCall) -> Result<(), Error> {
        let AccountCall { principal, request } = call;
        let user_id =
            super::mfa::customer_only(principal, "only the user's own session asks for this")?;
        let mut tx = self.store().begin().await?;
        let user = tx
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        if user.email_verified_at.is_some() {
            return Err(Error::Conflict("the email address is already verified"));
        }
        // One link a minute per account, on every instance together: asking again cannot flood
        // the mailbox or the outbox.
        if !self
            .account_mail_allowed(user_id, "email_verification")
            .await
        {
            return Err(Error::TooManyAttempts {
                retry_after_secs: 60,
            });
        }
        self.queue_email_verification(tx.as_mut(), &user).await?;
        let event = AuditEvent::success(
            principal.actor(),
            "user.email_verification_sent",
            "user",
            user_id,
        )
        .with_request(request.request_id.clone());
        self.audit_user_event(tx, principal, event).await?;
        self.mail_queued();
        Ok(())
    }

    /// Verifies the email a token was mailed to.
    pub async fn verify_email(
        &self,
        token: &SecretString,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let invalid = || Error::InvalidToken("email verification");
        let now = self.clock().now();
        let token_digest = digest(token.expose());
        let mut tx = self.store().begin().await?;
        let record = tx
            .one_time_token(&token_digest)
            .await?
            .filter(|t| t.purpose == TokenPurpose::EmailVerification && t.is_usable(now))
            .ok_or_else(invalid)?;
        let user_id = UserId::from_uuid(record.subject_id);
        let user = tx.user_by_id(user_id).await?.ok_or_else(invalid)?;
        // The token proves the address it was mailed to, and only that one.
        let mailed_to = serde_json::from_str::<serde_json::Value>(&record.detail)
            .ok()
            .and_then(|d| d.get("email").and_then(|e| e.as_str()).map(str::to_owned));
        if mailed_to.as_deref() != Some(user.email.as_str()) {
            return Err(invalid());
        }
        if !tx.consume_one_time_token(&token_digest, now).await? {
            return Err(invalid());
        }
        tx.consume_tokens_of(user_id.as_uuid(), TokenPurpose::EmailVerification, now)
            .await?;
        tx.set_email_verified(user_id, now).await?;
        let event =
            AuditEvent::success(Actor::user(user_id), "user.email_verified", "user", user_id)
                .with_request(request.request_id.clone());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }
}

fn principal_mfa_at(principal: &Principal) -> Option<time::OffsetDateTime> {
    principal
        .mfa_time
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
}
