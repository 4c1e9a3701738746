//! Sign-in, refresh, sign-out and the user's own sessions.

use gatehouse_crypto::legacy_hash::{is_bcrypt, verify_bcrypt};
use gatehouse_crypto::{SecretString, ct_eq, random_token, sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Audience;
use super::claims::{AccessClaims, Act, csrf_digest};
use super::digest;
use super::lockouts::lockout_subject;
use super::mfa::LoginOutcome;
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::context::{AccountCall, RequestContext};
use crate::error::Error;
use crate::ids::{OrgId, UserId, new_uuid};
use crate::inputs::{Email, normalize_password};
use crate::kernel::Kernel;
use crate::keyring::PersonalData;
use crate::scope::TenantScope;
use crate::store::{MembershipRecord, PlatformTx, SessionRecord, SignedInWith, Tier, UserRecord};

#[derive(Debug)]
pub struct LoginInput {
    pub email: String,
    pub password: SecretString,
    pub device_name: Option<String>,
    pub organization_id: Option<OrgId>,
    /// Browser mode: the tokens travel in cookies and state changes need the CSRF token.
    pub browser: bool,
}

/// Tokens for a new or refreshed session.
#[derive(Debug)]
pub struct IssuedSession {
    pub access_token: SecretString,
    pub expires_in: u64,
    /// `None` for impersonation, which is never renewed.
    pub refresh_token: Option<SecretString>,
    pub session_id: Uuid,
    pub organization_id: Option<OrgId>,
    /// Browser mode only.
    pub csrf_token: Option<SecretString>,
}

/// What the token says about its subject beyond the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct UserFlags {
    pub mfa_enrolled: bool,
    pub email_verified: bool,
}

/// A session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: Uuid,
    pub device_name: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub current: bool,
}

const REFRESH_PREFIX: &str = "grt_";
const MAX_DEVICE_NAME: usize = 100;

/// `grt_{session id, 32 hex}_{secret}`: the id finds the session, the secret's digest must match.
fn refresh_token(session: Uuid) -> Result<(SecretString, Vec<u8>), Error> {
    let secret = random_token(32).map_err(|e| Error::Internal(e.to_string()))?;
    let token = SecretString::from(format_refresh(session, secret.expose()));
    Ok((token, digest(secret.expose())))
}

pub(crate) fn format_refresh(session: Uuid, secret: &str) -> String {
    format!("{REFRESH_PREFIX}{}_{secret}", session.simple())
}

pub(crate) fn parse_refresh(token: &str) -> Option<(Uuid, &str)> {
    let rest = token.strip_prefix(REFRESH_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() || secret.len() > 128 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

pub(crate) fn clean_device_name(name: Option<String>) -> String {
    name.map(|d| {
        d.chars()
            .filter(|c| !c.is_control())
            .take(MAX_DEVICE_NAME)
            .collect()
    })
    .unwrap_or_else(|| "unnamed device".to_owned())
}

pub(crate) fn to_secs(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

impl Kernel {
    /// Verifies a password against a stored hash (Argon2id, or bcrypt from an import) on the
    /// hashing pool; says whether the hash should be replaced.
    pub(crate) async fn check_password(
        &self,
        password: &SecretString,
        stored: Option<String>,
    ) -> Result<(bool, bool), Error> {
        // A hash dearer than the ceiling is never verified: it would hold a hashing thread for
        // as long as it asks. The account then signs in only after a reset; meanwhile it costs
        // what an unknown email costs.
        let configured = self.passwords().params();
        let stored = stored.filter(|h| super::operators::stored_hash_affordable(h, &configured));
        match stored {
            Some(hash) if is_bcrypt(&hash) => {
                let pw = password.clone();
                let ok = self
                    .passwords()
                    .run(move || verify_bcrypt(&pw, &hash))
                    .await?;
                Ok((ok, true))
            }
            Some(hash) => {
                let rehash = self.passwords().needs_rehash(&hash);
                let ok = self.passwords().verify(password.clone(), hash).await?;
                Ok((ok, rehash))
            }
            None => {
                // Same work as a wrong password: an unknown email is not distinguishable.
                let dummy = self.dummy_hash().await?;
                let _ = self.passwords().verify(password.clone(), dummy).await?;
                Ok((false, false))
            }
        }
    }

    /// What the access token says about the subject beyond the session: whether a second factor
    /// is enrolled and whether the email is verified.
    pub(crate) async fn user_flags(
        &self,
        tx: &mut dyn PlatformTx,
        session: &SessionRecord,
        request: &RequestContext,
    ) -> Result<UserFlags, Error> {
        if session.tier == Tier::Operator {
            let enrolled = tx
                .operator_by_id(session.subject_id)
                .await?
                .is_some_and(|o| o.totp.is_some());
            return Ok(UserFlags {
                mfa_enrolled: enrolled,
                email_verified: true,
            });
        }
        let user = UserId::from_uuid(session.subject_id);
        let account = tx.user_by_id(user).await?;
        super::session_policy::refuse_disabled_account(self, account.as_ref(), request)?;
        let verified = account.is_some_and(|u| u.email_verified_at.is_some());
        let enrolled = tx
            .totp_factor(user)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        Ok(UserFlags {
            mfa_enrolled: enrolled,
            email_verified: verified,
        })
    }

    /// Builds a new session record and its refresh token.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_session(
        &self,
        subject: Uuid,
        tier: Tier,
        org: Option<OrgId>,
        impersonator: Option<Uuid>,
        reason: Option<String>,
        device_name: String,
        request: &RequestContext,
    ) -> Result<(SessionRecord, SecretString), Error> {
        let now = self.clock().now();
        let settings = self.identity().settings();
        let ttl = match tier {
            Tier::Customer => settings.customer_session_ttl,
            Tier::Operator => settings.operator_session_ttl,
            Tier::Impersonation => settings.impersonation_ttl,
        };
        let id = new_uuid(self.clock());
        let (refresh, refresh_hash) = refresh_token(id)?;
        Ok((
            SessionRecord {
                id,
                subject_id: subject,
                tier,
                org_id: org,
                impersonator_id: impersonator,
                reason,
                device_name,
                user_agent: request.user_agent.clone(),
                ip: request.ip.clone(),
                refresh_hash,
                previous_refresh_hash: None,
                created_at: now,
                last_seen_at: now,
                expires_at: now + ttl,
                revoked_at: None,
                auth_at: now,
                mfa_at: None,
                signed_in_with: crate::store::SignedInWith::Password,
            },
            refresh,
        ))
    }

    /// Appends a session event on the session's organisation chain (with the request's personal
    /// data sealed for the subject), or on the operators' chain when it has none, and commits.
    pub(crate) async fn audit_session_event(
        &self,
        tx: Box<dyn PlatformTx>,
        session: &SessionRecord,
        actor: Actor,
        action: &str,
        details: String,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let event = AuditEvent::success(actor, action, "session", session.id)
            .with_details(details)
            .with_request(request.request_id.clone());
        match session.org_id {
            Some(org) => {
                let scope = TenantScope::granted(org);
                let mut tx = tx.enter(&scope).await?;
                let subject = session.subject_id.to_string();
                let sealed = self
                    .keyring()
                    .seal_personal(
                        tx.as_mut(),
                        &subject,
                        &PersonalData {
                            ip: request.ip.clone(),
                            user_agent: request.user_agent.clone(),
                        },
                    )
                    .await?;
                let proof = audit::append_tenant(
                    tx.as_mut(),
                    self.clock(),
                    event.with_personal(&subject, sealed),
                )
                .await?;
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

    /// Signs an access token for the session (and hands back the refresh token, if any).
    pub(crate) async fn issue(
        &self,
        session: &SessionRecord,
        roles: Vec<String>,
        refresh: Option<SecretString>,
        browser: bool,
        flags: UserFlags,
    ) -> Result<IssuedSession, Error> {
        self.issue_for(session, roles, refresh, browser, flags, None)
            .await
    }

    /// `issue`, with the token's `aud` the registered app `app` names when given (a refresh
    /// with `resource`), else the session's own API's.
    pub(crate) async fn issue_for(
        &self,
        session: &SessionRecord,
        roles: Vec<String>,
        refresh: Option<SecretString>,
        browser: bool,
        flags: UserFlags,
        app: Option<&str>,
    ) -> Result<IssuedSession, Error> {
        let settings = self.identity().settings();
        let now = self.clock().now();
        let keys = self
            .identity()
            .tokens
            .get(self.keyring(), settings, now)
            .await?;
        // An impersonation is never renewed, so its one token lasts the whole session.
        let exp = if session.tier == Tier::Impersonation {
            session.expires_at
        } else {
            (now + settings.access_token_ttl).min(session.expires_at)
        };
        let csrf = if browser {
            Some(random_token(32).map_err(|e| Error::Internal(e.to_string()))?)
        } else {
            None
        };
        let mfa_required = session.tier == Tier::Customer
            && self
                .second_factor_required_by(session.org_id)
                .await?
                .is_some();
        let claims = AccessClaims {
            iss: settings.issuer.clone(),
            aud: match app {
                Some(app) => super::apps::signable_app_audience(app, settings)?,
                None if session.tier == Tier::Operator => settings.operator_audience(),
                None => settings.audience.clone(),
            },
            sub: session.subject_id.to_string(),
            org: session.org_id.map(|o| o.to_string()),
            roles,
            sid: session.id.to_string(),
            tier: session.tier.as_str().to_owned(),
            iat: to_secs(now),
            exp: to_secs(exp),
            jti: new_uuid(self.clock()).to_string(),
            act: session.impersonator_id.map(|o| Act { sub: o.to_string() }),
            csrf: csrf.as_ref().map(|c| csrf_digest(c.expose())),
            amr: {
                // RFC 8176 names no value for a sign-in at another provider: `sso`.
                let first = match session.signed_in_with {
                    SignedInWith::Password => "pwd",
                    SignedInWith::Sso(_) | SignedInWith::Social => "sso",
                };
                let mut amr = vec![first.to_owned()];
                if session.mfa_at.is_some() {
                    amr.push("otp".to_owned());
                }
                amr
            },
            auth_time: Some(to_secs(session.auth_at)),
            mfa_time: session.mfa_at.map(to_secs),
            mfa: flags.mfa_enrolled,
            mfa_required,
            email_verified: flags.email_verified,
        };
        let token = keys
            .signer()?
            .sign(&claims)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let expires_in = to_secs(exp).saturating_sub(to_secs(now));
        self.identity().cache().put(
            session.id,
            super::CachedSession {
                revoked: false,
                expires_at: session.expires_at,
            },
            now,
        );
        Ok(IssuedSession {
            access_token: SecretString::from(token),
            expires_in,
            refresh_token: refresh,
            session_id: session.id,
            organization_id: session.org_id,
            csrf_token: csrf,
        })
    }

    pub(crate) async fn roles_for(
        &self,
        tx: &mut dyn PlatformTx,
        session: &SessionRecord,
    ) -> Result<Vec<String>, Error> {
        let Some(org) = session.org_id else {
            return Ok(Vec::new());
        };
        Ok(tx
            .memberships_of_user(UserId::from_uuid(session.subject_id))
            .await?
            .into_iter()
            .filter(|m| m.org_id == org)
            // A session that began before an admin ended the member's sessions here holds no
            // role here, however it got in (a switch racing the end): its refresh ends it.
            .filter(|m| super::session_policy::refuse_switch_after_end(m, session).is_ok())
            .map(|m| m.role.as_str().to_owned())
            .collect())
    }
}

/// Sign-in and per-device sessions: login, refresh rotation, revocation, switching organisation.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Sessions);

impl Sessions<'_> {
    /// Signs a user in: one session on one device, tokens for one organisation.
    pub async fn login(
        &self,
        input: LoginInput,
        request: &RequestContext,
    ) -> Result<LoginOutcome, Error> {
        let password = normalize_password(&input.password);
        let email = Email::parse(&input.email).ok();
        let now = self.clock().now();
        let account_subject = lockout_subject("user", &input.email);
        let ip_subject = request.ip.clone().unwrap_or_default();
        self.ensure_not_locked(&account_subject, &ip_subject, now)
            .await?;
        // Unknown and known emails do the same work up to the answer: one lookup, one hash.
        let user = match &email {
            Some(e) => {
                let mut tx = self.store().begin_read().await?;
                tx.user_by_email(e.as_str()).await?
            }
            None => None,
        };
        let (ok, rehash) = self
            .check_password(&password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let user = match user {
            Some(u) if ok => {
                self.attempt_succeeded(&account_subject, &ip_subject).await;
                u
            }
            found => {
                // Counted per source, account and minute, not written per attempt: a flood
                // of guesses costs the log a bounded number of events (`audit::security`).
                self.record_security_event(
                    crate::audit::SecurityKind::SignInFailed,
                    None,
                    found.map(|u| u.id.to_string()),
                    request,
                );
                return Err(Error::InvalidCredentials);
            }
        };
        self.refuse_if_disabled(&user, request)?;
        let new_hash = if rehash {
            Some(self.passwords().hash(password).await?)
        } else {
            None
        };
        let mut tx = self.store().begin().await?;
        let memberships = tx.memberships_of_user(user.id).await?;
        let enrolled = tx
            .totp_factor(user.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        let wanted = input.organization_id;
        let membership = match (
            self.pick_membership_for(&memberships, wanted, SignedInWith::Password, enrolled)
                .await,
            wanted,
        ) {
            (Err(Error::SsoRequired), Some(org)) => {
                drop(tx);
                self.record_sso_required(org, user.id, "password_sign_in", request)
                    .await;
                return Err(Error::SsoRequired);
            }
            (other, _) => other?,
        };
        if let Some(h) = &new_hash {
            tx.set_password_hash(user.id, h).await?;
        }
        let landing = SignIn {
            user: &user,
            membership,
            via: SignedInWith::Password,
            enrolled,
            device: clean_device_name(input.device_name),
            browser: input.browser,
            rehashed: new_hash.is_some(),
        };
        self.sign_in(tx, landing, request).await
    }
}

/// A person whose sign-in proved who they are (a password, or an external provider's ID token):
/// where their session lands and how it began.
#[derive(Debug)]
pub(crate) struct SignIn<'a> {
    pub user: &'a UserRecord,
    pub membership: Option<&'a MembershipRecord>,
    pub via: SignedInWith,
    /// The account has a confirmed second factor: it is asked for before any session.
    pub enrolled: bool,
    pub device: String,
    pub browser: bool,
    /// The password's hash was replaced (written in the caller's transaction).
    pub rehashed: bool,
}

/// What a second step of a sign-in carries: the organisation and how the first step was made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Landing {
    pub org: Option<OrgId>,
    pub via: SignedInWith,
}

impl Kernel {
    /// Ends every sign-in the same way, whatever proved the person: the second factor's
    /// challenge when they have one, else the session cap, a new session, its `user.login`
    /// event and its tokens.
    pub(crate) async fn sign_in(
        &self,
        tx: Box<dyn PlatformTx>,
        s: SignIn<'_>,
        request: &RequestContext,
    ) -> Result<LoginOutcome, Error> {
        let user = s.user;
        let org = s.membership.map(|m| m.org_id);
        if s.enrolled {
            // The first step was right; the second completes the sign-in.
            let landing = Landing { org, via: s.via };
            return self
                .challenge_second_factor(tx, user, landing, s.device, s.browser, request)
                .await;
        }
        let (mut tx, ended) = self.admit_session(tx, user.id, request).await?;
        let (mut session, refresh) = self.new_session(
            user.id.as_uuid(),
            Tier::Customer,
            org,
            None,
            None,
            s.device,
            request,
        )?;
        session.signed_in_with = s.via;
        tx.insert_session(&session).await?;
        let flags = UserFlags {
            mfa_enrolled: false,
            email_verified: user.email_verified_at.is_some(),
        };
        let details = serde_json::json!({
            "session_id": session.id.to_string(),
            "rehashed": s.rehashed,
            "sessions_ended": ended.len(),
            "method": s.via.as_str(),
        });
        self.audit_session_event(
            tx,
            &session,
            Actor::user(user.id),
            "user.login",
            details.to_string(),
            request,
        )
        .await?;
        self.publish_ended(&ended);
        let roles = s
            .membership
            .map(|m| vec![m.role.as_str().to_owned()])
            .unwrap_or_default();
        self.issue(&session, roles, Some(refresh), s.browser, flags)
            .await
            .map(LoginOutcome::Session)
    }
}

impl Sessions<'_> {
    /// Rotates a tenant session's refresh token (`POST /v1/auth/refresh`). Presenting a spent
    /// one means it was copied: the session ends.
    pub async fn refresh(
        &self,
        token: &SecretString,
        browser: bool,
        request: &RequestContext,
    ) -> Result<IssuedSession, Error> {
        self.refresh_on(token, browser, request, Audience::Tenant, None)
            .await
    }

    /// Rotates the refresh token of a session of `audience`'s tiers: the tenant API refreshes
    /// customer sessions and the operators' API operator sessions, never the other's (an operator
    /// credential works on the operators' surface only, even when it is a separate listener).
    pub(crate) async fn refresh_on(
        &self,
        token: &SecretString,
        browser: bool,
        request: &RequestContext,
        audience: Audience,
        resource: Option<&str>,
    ) -> Result<IssuedSession, Error> {
        let invalid = || Error::Unauthenticated("the refresh token is invalid");
        let (id, secret) = parse_refresh(token.expose()).ok_or_else(invalid)?;
        let now = self.clock().now();
        let mut tx = self.store().begin().await?;
        let session = tx.session(id).await?.ok_or_else(invalid)?;
        if !session.is_live(now) {
            return Err(Error::Unauthenticated("the session has ended"));
        }
        if session.tier == Tier::Impersonation {
            return Err(Error::Unauthenticated(
                "impersonation sessions cannot be renewed",
            ));
        }
        let presented = sha256(&[secret.as_bytes()]);
        let reused = session
            .previous_refresh_hash
            .as_ref()
            .is_some_and(|prev| ct_eq(&presented, prev));
        if !ct_eq(&presented, &session.refresh_hash) && !reused {
            // A secret this session never issued: refused, and the session is left alone (its id
            // is not a secret, so a guess must not be able to end someone's session).
            return Err(invalid());
        }
        if reused {
            tx.revoke_session(id, now).await?;
            let mut event = AuditEvent::success(
                actor_of(&session),
                "session.refresh_reused",
                "session",
                session.id,
            )
            .with_request(request.request_id.clone());
            event.outcome = Outcome::Denied;
            let revoked = session.clone();
            self.audit_event_and_commit(tx, &session, event).await?;
            self.revoked_locally(revoked.id, revoked.expires_at);
            return Err(Error::Unauthenticated(
                "the refresh token was already used; the session has been revoked",
            ));
        }
        // Checked once the token is known genuine, so the refusal says nothing about a guess.
        match (audience, session.tier) {
            (Audience::Tenant, Tier::Operator) => {
                return Err(Error::WrongAudience(
                    "operator sessions are refreshed at POST /admin/v1/auth/refresh",
                ));
            }
            (Audience::Operator, Tier::Customer | Tier::Impersonation) => {
                return Err(Error::WrongAudience(
                    "only operator sessions are refreshed on /admin/v1",
                ));
            }
            (Audience::Operator, Tier::Operator) => {
                // A server that now requires operators' second factor renews no session an
                // operator without one opened before.
                let enrolled = tx
                    .operator_by_id(session.subject_id)
                    .await?
                    .is_some_and(|o| o.totp.is_some());
                if !enrolled && self.identity().settings().operator_totp_required {
                    return Err(Error::SecondFactorNotEnrolled(
                        "enrol one with `gatehouse admin enrol-totp --email ...`",
                    ));
                }
            }
            (Audience::Tenant, _) => {}
        }
        if self.idle_too_long(&session, now) {
            return Err(self.end_idle(tx, &session, request).await);
        }
        // Asked once the token is known genuine, so the registry is not open to a guess.
        let app = self.registered_resource(tx.as_mut(), resource).await?;
        let (new_token, new_hash) = refresh_token(id)?;
        if !tx
            .rotate_refresh(id, &session.refresh_hash, &new_hash, now)
            .await?
        {
            return Err(invalid());
        }
        let roles = self.roles_for(tx.as_mut(), &session).await?;
        if session.org_id.is_some() && session.tier == Tier::Customer && roles.is_empty() {
            // No longer a member of the organisation the session's tokens are for: the session
            // ends rather than mint more of them.
            tx.revoke_session(id, now).await?;
            let mut event = AuditEvent::success(
                actor_of(&session),
                "session.ended_not_a_member",
                "session",
                session.id,
            )
            .with_request(request.request_id.clone());
            event.outcome = Outcome::Denied;
            self.audit_event_and_commit(tx, &session, event).await?;
            self.revoked_locally(session.id, session.expires_at);
            return Err(Error::Unauthenticated(
                "the account is no longer a member of the session's organisation",
            ));
        }
        if let (Some(org), Tier::Customer) = (session.org_id, session.tier) {
            let owner = roles.iter().any(|r| r == "owner");
            let (via, mfa) = (session.signed_in_with, session.mfa_at.is_some());
            if !self.sso_admits_in(org, owner, via, mfa).await? {
                return Err(self.end_for_sso(tx, &session, request).await);
            }
        }
        let flags = self.user_flags(tx.as_mut(), &session, request).await?;
        let event = AuditEvent::success(
            actor_of(&session),
            "session.refreshed",
            "session",
            session.id,
        )
        .with_details(super::apps::resource_details(app.as_deref()))
        .with_request(request.request_id.clone());
        self.audit_event_and_commit(tx, &session, event).await?;
        self.issue_for(
            &session,
            roles,
            Some(new_token),
            browser,
            flags,
            app.as_deref(),
        )
        .await
    }

    /// Issues a token for another organisation the user belongs to, on the same session.
    pub async fn switch_organization(
        &self,
        call: &AccountCall,
        org: OrgId,
        browser: bool,
    ) -> Result<IssuedSession, Error> {
        let AccountCall { principal, request } = call;
        if principal.tier != Tier::Customer {
            return Err(Error::WrongAudience(
                "only a customer session can switch organisation",
            ));
        }
        let mut tx = self.store().begin().await?;
        let memberships = tx
            .memberships_of_user(UserId::from_uuid(principal.subject))
            .await?;
        let Some(m) = memberships.iter().find(|m| m.org_id == org) else {
            return Err(Error::Forbidden {
                permission: "membership",
            });
        };
        let mut session = tx
            .session(principal.session_id)
            .await?
            .ok_or(Error::Unauthenticated("the session has ended"))?;
        super::session_policy::refuse_switch_after_end(m, &session)?;
        if crate::sso::enforcement::confined_elsewhere(session.signed_in_with, org) {
            drop(tx);
            // Recorded on the chain of the organisation it tried to enter.
            self.record_refusal(
                &crate::scope::TenantScope::granted(org),
                principal,
                "session.switch_refused",
                serde_json::json!({ "reason": "sso_confined" }).to_string(),
                request,
            )
            .await;
            return Err(crate::sso::enforcement::CONFINED);
        }
        if !self
            .sso_admits(m, session.signed_in_with, session.mfa_at.is_some())
            .await?
        {
            drop(tx);
            self.record_sso_required(org, m.user_id, "switch", request)
                .await;
            return Err(Error::SsoRequired);
        }
        tx.set_session_org(session.id, org).await?;
        session.org_id = Some(org);
        let event = AuditEvent::success(
            principal.actor(),
            "session.organization_switched",
            "session",
            session.id,
        )
        .with_request(request.request_id.clone());
        let roles = vec![m.role.as_str().to_owned()];
        let flags = self.user_flags(tx.as_mut(), &session, request).await?;
        self.audit_event_and_commit(tx, &session, event).await?;
        self.issue(&session, roles, None, browser, flags).await
    }
}

pub(crate) fn actor_of(session: &SessionRecord) -> Actor {
    let mut actor = if session.tier == Tier::Operator {
        Actor::operator(session.subject_id)
    } else {
        Actor::user(session.subject_id)
    };
    actor.impersonator_id = session.impersonator_id.map(|o| o.to_string());
    actor
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
