//! Identity: sign-in, sessions, access tokens, roles and permission checks, operators and
//! impersonation. Every state change commits with its audit event; every refusal is recorded in
//! its own transaction after the refused one has ended.

mod account_control;
mod apps;
mod cache;
mod claims;
mod custom_roles;
mod factor_policy;
mod lockouts;
mod members;
mod membership_cache;
mod mfa;
mod operator_auth;
pub(crate) mod operators;
mod own_sessions;
pub mod passwords;
pub mod permissions;
mod principal;
mod recovery;
mod recovery_codes;
pub(crate) mod session_policy;
pub(crate) mod sessions;
mod settings;
mod tokens;

use std::sync::Arc;

use gatehouse_crypto::{JwtError, sha256};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub use account_control::AccountChange;
pub use apps::{Apps, check_app_audience};
pub use cache::{
    CachedSession, LocalOnly, Revocation, RevocationFanout, SessionCache, note_published,
    noting_publishes,
};
pub use claims::{AccessClaims, Act, csrf_digest};
pub use factor_policy::{FactorPolicyCache, POLICY_CACHE_MAX_AGE};
pub use members::{InvitationIssued, MeView, MemberView, Members};
pub use membership_cache::{MEMBERSHIP_CACHE_MAX_AGE, MembershipCache};
pub(crate) use mfa::customer_only;
pub use mfa::{EnrolmentStarted, LoginOutcome, Mfa, SecondFactor};
pub use operator_auth::OperatorEnrolment;
pub use operators::{ImportOutcome, ImportedUser, Operators};
pub use passwords::{BreachCheck, BreachOnError, BreachRange, PasswordPolicy};
pub use permissions::{CATALOGUE, Permission};
pub use principal::Principal;
pub use recovery::Recovery;
pub use recovery_codes::code_bits as recovery_code_bits;
pub use session_policy::ACTIVITY_FLUSH_INTERVAL;
pub use sessions::{IssuedSession, LoginInput, SessionView, Sessions};
pub use settings::{IdentitySettings, SessionLimitAction, UnverifiedAccess};
pub use tokens::PublishedKey;

use crate::audit::{self, AuditEvent, Outcome};
use crate::context::RequestContext;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{Role, Tier};

/// The identity service's state, owned by the kernel.
#[derive(Debug)]
pub struct Identity {
    settings: IdentitySettings,
    tokens: tokens::TokenService,
    cache: SessionCache,
    /// Current roles by (organisation, user), for forward authentication.
    pub(crate) memberships: MembershipCache,
    /// Each organisation's second-factor requirement (see `factor_policy`).
    pub(crate) factor_policies: FactorPolicyCache,
    /// Which app audiences are registered, for tokens presented as an app's (see `apps`).
    pub(crate) apps: apps::AppCache,
    fanout: Arc<dyn RevocationFanout>,
    /// An Argon2id hash of a random password with the current parameters: verifying against it
    /// makes an unknown email cost what a wrong password costs.
    dummy_hash: OnceCell<String>,
    /// The sign-in, second-factor, step-up and share-link-password counts and the mail
    /// throttles: in this process, or shared by every instance through Redis.
    pub(crate) lockouts: Arc<dyn crate::limits::LockoutStore>,
    /// The three counts' policies (see [`SignInLockouts`]).
    pub(crate) lockout_policies: SignInLockouts,
}

/// Refuses, under impersonation, an action that hands out a credential or a stored value (an API
/// key, a rotated key, an invitation, a secret's value): what it made would outlive the
/// 30-minute impersonation that made it. The one rule for what an impersonation may leave
/// behind; each such service call asks it before anything else. (Refusals of what an
/// impersonation may not do at all, such as switching organisation, stay with their calls.)
pub(crate) fn refuse_under_impersonation(
    principal: &Principal,
    refusal: &'static str,
) -> Result<(), Error> {
    if principal.tier == crate::store::Tier::Impersonation {
        Err(Error::WrongAudience(refusal))
    } else {
        Ok(())
    }
}

/// The refusal of a genuine access token whose time has passed: ordinary client behaviour, not
/// counted as a security event (`token.refused` counts the tokens that did not verify).
pub const TOKEN_EXPIRED: &str = "the token has expired";

/// Failed sign-ins against one account (known or not) from one address before the default
/// lockout locks that address out of that account.
pub const ACCOUNT_LOCKOUT_THRESHOLD: u32 = 5;
/// Failed sign-ins against one account from every address together before the default lockout
/// locks the account for everyone: high enough that locking a victim out takes many addresses,
/// low enough that spreading guesses over addresses still meets a bound.
pub const ACCOUNT_WIDE_LOCKOUT_THRESHOLD: u32 = 50;
/// Failed sign-ins per client address before the default lockout locks it.
pub const IP_LOCKOUT_THRESHOLD: u32 = 20;

/// The three sign-in lockout policies (see [`ACCOUNT_LOCKOUT_THRESHOLD`] and its neighbours).
#[derive(Debug, Clone, Copy)]
pub struct SignInLockouts {
    /// One account from one address (IPv6: one /64).
    pub account_per_address: crate::limits::LockoutPolicy,
    /// One account from every address together.
    pub account: crate::limits::LockoutPolicy,
    /// One address, whatever the account.
    pub address: crate::limits::LockoutPolicy,
}

/// The default sign-in lockouts: `ACCOUNT_LOCKOUT_THRESHOLD` failures per account,
/// `IP_LOCKOUT_THRESHOLD` per address, then 2 s doubling to 15 minutes.
#[must_use]
pub fn lockout_policy(threshold: u32) -> crate::limits::LockoutPolicy {
    crate::limits::LockoutPolicy {
        threshold,
        first_lock: time::Duration::seconds(2),
        max_lock: time::Duration::minutes(15),
        forget_after: time::Duration::hours(1),
    }
}

impl Identity {
    #[must_use]
    pub fn new(settings: IdentitySettings, fanout: Arc<dyn RevocationFanout>) -> Self {
        Self {
            settings,
            tokens: tokens::TokenService::new(),
            cache: SessionCache::new(100_000),
            memberships: MembershipCache::new(100_000),
            factor_policies: FactorPolicyCache::new(100_000),
            apps: apps::AppCache::new(apps::APP_CACHE_CAPACITY),
            fanout,
            dummy_hash: OnceCell::new(),
            lockouts: Arc::new(crate::limits::MemoryLockouts::default()),
            lockout_policies: SignInLockouts {
                account_per_address: lockout_policy(ACCOUNT_LOCKOUT_THRESHOLD),
                account: lockout_policy(ACCOUNT_WIDE_LOCKOUT_THRESHOLD),
                address: lockout_policy(IP_LOCKOUT_THRESHOLD),
            },
        }
    }

    /// Replaces the sign-in lockout policies; `None` turns them all off.
    #[must_use]
    pub fn with_lockouts(mut self, policies: Option<SignInLockouts>) -> Self {
        let off = crate::limits::LockoutPolicy {
            threshold: u32::MAX,
            ..lockout_policy(u32::MAX)
        };
        let p = policies.unwrap_or(SignInLockouts {
            account_per_address: off,
            account: off,
            address: off,
        });
        self.lockout_policies = p;
        self
    }

    /// Keeps the counts in `store` (Redis, shared by every instance) instead of this process.
    #[must_use]
    pub fn with_lockout_store(mut self, store: Arc<dyn crate::limits::LockoutStore>) -> Self {
        self.lockouts = store;
        self
    }

    /// Where the counts live: `memory`, `redis` or `memory-fallback`.
    #[must_use]
    pub fn lockout_store_kind(&self) -> &'static str {
        self.lockouts.kind()
    }

    /// Forgets the in-process lockout entries that have run out (see `LockoutStore::prune`).
    pub(crate) fn prune_lockouts(&self, now: time::OffsetDateTime) -> usize {
        self.lockouts.prune(now)
    }

    #[must_use]
    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    #[must_use]
    pub fn cache(&self) -> &SessionCache {
        &self.cache
    }
}

/// Which API a token is presented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// `/v1`: customer and impersonation tokens.
    Tenant,
    /// `/admin/v1`: operator tokens.
    Operator,
}

/// The audience a presented person's token must carry.
#[derive(Debug, Clone, Copy)]
enum Expected<'a> {
    /// One of Gatehouse's own APIs.
    Api(Audience),
    /// A registered app's (`aud` = its audience URI).
    App(&'a str),
}

impl Kernel {
    /// Checks that a principal acting on `org` holds `permission` there, reading the membership
    /// inside `tx` (so a role change applies to the next request, not the next token). On refusal
    /// the transaction is rolled back and the refusal recorded on the organisation's chain.
    pub(crate) async fn authorize(
        &self,
        mut tx: Box<dyn crate::store::TenantTx>,
        principal: &Principal,
        permission: Permission,
        request: &RequestContext,
    ) -> Result<(Box<dyn crate::store::TenantTx>, Role), Error> {
        // An API key holds exactly its own permissions; a user what their membership's role
        // grants. Either way a refusal takes the same path.
        let role = match &principal.api_key_permissions {
            Some(_) => Some(Role::Custom("api-key".to_owned())),
            None => tx
                .membership(crate::ids::UserId::from_uuid(principal.subject))
                .await?
                .map(|m| m.role),
        };
        let granted = match (&principal.api_key_permissions, &role) {
            (Some(perms), _) => perms.iter().any(|p| p == permission.as_str()),
            (None, Some(role)) => self
                .role_grants(tx.as_mut(), role)
                .await?
                .iter()
                .any(|p| p == permission.as_str()),
            (None, None) => false,
        };
        let unverified_refused = !principal.email_verified
            && id_settings_read_only(self)
            && permission != Permission::ORG_READ
            && permission != Permission::AUDIT_READ;
        let step_up = if granted && !unverified_refused {
            self.step_up_needed(principal, permission.as_str())
        } else {
            None
        };
        if let (true, Some(method)) = (granted, step_up) {
            let scope = *tx.scope();
            drop(tx);
            self.record_refusal(
                &scope,
                principal,
                "permission.step_up_required",
                format!("{{\"permission\":\"{}\"}}", permission.as_str()),
                request,
            )
            .await;
            return Err(Error::StepUpRequired {
                permission: permission.as_str(),
                method,
            });
        }
        if granted && unverified_refused {
            let scope = *tx.scope();
            drop(tx);
            self.record_refusal(
                &scope,
                principal,
                "permission.email_unverified",
                format!("{{\"permission\":\"{}\"}}", permission.as_str()),
                request,
            )
            .await;
            return Err(Error::EmailUnverified);
        }
        match role {
            Some(role) if granted => Ok((tx, role)),
            _ => {
                let scope = *tx.scope();
                drop(tx);
                self.record_refusal(
                    &scope,
                    principal,
                    "permission.denied",
                    format!("{{\"permission\":\"{}\"}}", permission.as_str()),
                    request,
                )
                .await;
                Err(Error::Forbidden {
                    permission: permission.as_str(),
                })
            }
        }
    }

    /// `authorize` for an API key, whose permissions travel with it: the same decision (grant,
    /// step-up, refusal recorded) without opening a transaction. For a person it opens one and
    /// defers to `authorize`.
    pub(crate) async fn authorize_without_tx(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        permission: Permission,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let Some(perms) = &principal.api_key_permissions else {
            let tx = self.store().begin_scoped(scope).await?;
            return self
                .authorize(tx, principal, permission, request)
                .await
                .map(|_| ());
        };
        if !perms.iter().any(|p| p == permission.as_str()) {
            self.record_refusal(
                scope,
                principal,
                "permission.denied",
                format!("{{\"permission\":\"{}\"}}", permission.as_str()),
                request,
            )
            .await;
            return Err(Error::Forbidden {
                permission: permission.as_str(),
            });
        }
        if let Some(method) = self.step_up_needed(principal, permission.as_str()) {
            self.record_refusal(
                scope,
                principal,
                "permission.step_up_required",
                format!("{{\"permission\":\"{}\"}}", permission.as_str()),
                request,
            )
            .await;
            return Err(Error::StepUpRequired {
                permission: permission.as_str(),
                method,
            });
        }
        Ok(())
    }

    pub(crate) async fn record_refusal(
        &self,
        scope: &TenantScope,
        principal: &Principal,
        action: &str,
        details: String,
        request: &RequestContext,
    ) {
        if let Err(e) = self
            .record_refusal_with_source(scope, principal, action, details, request)
            .await
        {
            tracing::error!(error = %e, action, "could not record a refusal in the audit log");
        }
    }

    /// The refusal with where it came from (ASVS 16.2.1): a person's address and user agent
    /// sealed under their key like any personal data in the log, so erasing them shreds it; an
    /// API key's address in the details, as the key is a machine credential, not a person.
    async fn record_refusal_with_source(
        &self,
        scope: &TenantScope,
        principal: &Principal,
        action: &str,
        details: String,
        request: &RequestContext,
    ) -> Result<(), Error> {
        let is_key = principal.api_key_permissions.is_some();
        let details = match (&request.ip, is_key) {
            (Some(ip), true) => match serde_json::from_str::<serde_json::Value>(&details) {
                Ok(serde_json::Value::Object(mut m)) => {
                    m.insert("source".into(), serde_json::Value::String(ip.clone()));
                    serde_json::Value::Object(m).to_string()
                }
                _ => details,
            },
            _ => details,
        };
        let mut event =
            AuditEvent::success(principal.actor(), action, "organization", scope.org_id())
                .with_details(details)
                .with_request(request.request_id.clone());
        event.outcome = Outcome::Denied;
        let mut tx = self.store().begin_scoped(scope).await?;
        let person = !is_key && principal.tier != Tier::Operator;
        if person && (request.ip.is_some() || request.user_agent.is_some()) {
            let subject = principal.subject.to_string();
            let sealed = self
                .keyring()
                .seal_personal(
                    tx.as_mut(),
                    &subject,
                    &crate::keyring::PersonalData {
                        ip: request.ip.clone(),
                        user_agent: request.user_agent.clone(),
                    },
                )
                .await?;
            event = event.with_personal(&subject, sealed);
        }
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }

    pub(crate) fn revoked_locally(&self, session: Uuid, expires_at: OffsetDateTime) {
        let id = self.identity();
        id.cache.revoke(session, expires_at, self.clock().now());
        id.fanout.publish(Revocation::Session(session));
    }

    /// A membership was made, changed or ended: forget its cached role here and on every other
    /// instance.
    pub(crate) fn membership_changed(&self, org: OrgId, user: UserId) {
        self.identity().memberships.forget(org, user);
        // The keys this member (or a key of theirs) made act with at most what they hold now.
        self.api_key_cache().forget_org(org);
        self.identity()
            .fanout
            .publish(Revocation::Membership { org, user });
    }

    /// A custom role's permissions changed: what keys of its holders may do is recomputed here
    /// and on every instance.
    pub(crate) fn roles_changed(&self, org: OrgId) {
        self.api_key_cache().forget_org(org);
        self.product_state().decisions.forget_roles(org);
        self.identity().fanout.publish(Revocation::Roles(org));
    }

    /// Forgets the sign-in failures counted against `email`, from every address (a new
    /// password; an erased account, whose address must not linger even in the counts).
    pub(crate) async fn forget_lockouts_of(&self, email: &str) {
        let account = lockouts::lockout_subject("user", email);
        self.forget_account_counts(&account).await;
    }

    pub(crate) fn publish_revocation(&self, r: Revocation) {
        self.identity().fanout.publish(r);
    }

    /// Waits (at most two seconds) until the revocations published so far have reached the
    /// fan-out: for a process that exits right after revoking (the CLI).
    pub async fn flush_revocations(&self) {
        let flushed = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.identity().fanout.flush(),
        )
        .await;
        if flushed.is_err() {
            tracing::warn!(
                "revocations were not all published within 2 s; other instances rely on their cache age bound"
            );
        }
    }

    pub(crate) async fn dummy_hash(&self) -> Result<String, Error> {
        self.identity()
            .dummy_hash
            .get_or_try_init(|| async {
                let random = gatehouse_crypto::random_token(32)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                self.passwords().hash(random).await
            })
            .await
            .cloned()
    }
}

/// Authentication: verifying tokens and API keys on each request, the organisation header, and the token-signing keys.
#[derive(Debug, Clone, Copy)]
pub struct Auth<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Auth);

impl Auth<'_> {
    /// Loads (or reloads) the token-signing keys; creates the first one on a new store.
    pub async fn reload_token_keys(&self) -> Result<(), Error> {
        let id = self.identity();
        id.tokens
            .reload(self.keyring(), &id.settings, self.clock().now())
            .await
            .map(|_| ())
    }

    /// The keys published at `/.well-known/jwks.json`.
    pub async fn published_token_keys(&self) -> Result<Vec<PublishedKey>, Error> {
        let id = self.identity();
        Ok(id
            .tokens
            .get(self.keyring(), &id.settings, self.clock().now())
            .await?
            .published
            .clone())
    }

    /// Verifies an access token and checks its session is live. The session's state comes from
    /// the in-memory cache, which every revocation updates, so a revoked session's tokens are
    /// refused on the very next request. Only the surface's own audience passes: Gatehouse's
    /// for the tenant API (a token issued for a registered app is refused there), the
    /// operators' for `/admin/v1`.
    pub async fn authenticate(
        &self,
        token: &str,
        audience: Audience,
    ) -> Result<Arc<Principal>, Error> {
        if crate::api_keys::is_api_key(token) {
            if audience == Audience::Operator {
                return Err(Error::WrongAudience(
                    "API keys are not accepted on /admin/v1",
                ));
            }
            return self.api_keys().principal(token).await;
        }
        self.authenticate_person(token, Expected::Api(audience))
            .await
    }

    async fn authenticate_person(
        &self,
        token: &str,
        expected: Expected<'_>,
    ) -> Result<Arc<Principal>, Error> {
        let id = self.identity();
        let now = self.clock().now();
        let verified = id
            .tokens
            .verify(self.keyring(), &id.settings, token, now)
            .await
            .map_err(|e| match e {
                JwtError::Expired => Error::Unauthenticated(TOKEN_EXPIRED),
                _ => Error::Unauthenticated("the token is invalid or expired"),
            })?;
        let aud = &*verified.audience;
        let own = id.settings.audience.as_str();
        // `operator_audience()` spelled without allocating on every request.
        let operators = aud.strip_suffix("-operators") == Some(own);
        // A valid token for another surface is a clearer refusal than "invalid".
        let refusal = match expected {
            Expected::Api(Audience::Tenant) if aud == own => None,
            Expected::Api(Audience::Tenant) if operators => {
                Some("operator tokens are not accepted on the tenant API")
            }
            Expected::Api(Audience::Tenant) => Some(
                "this token was issued for an app (its aud is the app's); Gatehouse's own API accepts only tokens for its own audience",
            ),
            // Only an operator's session is issued this audience: anything else carrying it is
            // refused rather than trusted on the audience alone.
            Expected::Api(Audience::Operator)
                if operators && verified.principal.tier == Tier::Operator =>
            {
                None
            }
            Expected::Api(Audience::Operator) => {
                Some("only operator tokens are accepted on /admin/v1")
            }
            Expected::App(app) if aud == app => None,
            Expected::App(_) if aud == own => Some(
                "this token is for Gatehouse's own API; the app needs a token issued for its audience (refresh with resource)",
            ),
            Expected::App(_) => Some("this token was issued for another audience than this app's"),
        };
        if let Some(refusal) = refusal {
            return Err(Error::WrongAudience(refusal));
        }
        let principal = verified.principal;
        let state = match id.cache.get(principal.session_id, now) {
            Some(s) => s,
            None => {
                let mut tx = self.store().begin_read().await?;
                let found = tx.session(principal.session_id).await?;
                drop(tx);
                let state = found.map_or(
                    CachedSession {
                        revoked: true,
                        expires_at: now,
                    },
                    |s| CachedSession {
                        revoked: s.revoked_at.is_some(),
                        expires_at: s.expires_at,
                    },
                );
                id.cache.put(principal.session_id, state, now);
                state
            }
        };
        if state.revoked || now >= state.expires_at {
            return Err(Error::Unauthenticated("the session has ended"));
        }
        id.cache.saw(principal.session_id, now);
        Ok(principal)
    }

    /// The scope when `header` names the principal's own organisation: the common case, which
    /// needs no request context (only a refusal is audited; see [`Auth::check_org_header`]).
    #[must_use]
    pub fn org_header_matches(principal: &Principal, header: Option<&str>) -> Option<TenantScope> {
        let token_org = principal.org?;
        (OrgId::parse(header?) == Some(token_org)).then(|| TenantScope::granted(token_org))
    }

    /// Checks an organisation route's `x-organization-id` against the token. A mismatch is
    /// refused and recorded on the token's own organisation's chain: that is whose member tried.
    /// Nothing is written to (or looked up in) the named organisation, so a tenant can neither
    /// add events to another's log nor learn from the answer or its timing whether it exists.
    /// (The HTTP layer's extractor calls it while building a `TenantCall`, before one exists.)
    pub async fn check_org_header(
        &self,
        principal: &Principal,
        header: Option<&str>,
        request: &RequestContext,
    ) -> Result<TenantScope, Error> {
        if let Some(scope) = Self::org_header_matches(principal, header) {
            return Ok(scope);
        }
        let named = header.ok_or(Error::OrganizationRequired)?;
        let Some(token_org) = principal.org else {
            return Err(Error::OrganizationMismatch);
        };
        let details = format!(
            "{{\"token_org\":\"{token_org}\",\"requested_org\":{}}}",
            serde_json::Value::String(named.chars().take(64).collect())
        );
        let own = TenantScope::granted(token_org);
        self.record_refusal(&own, principal, "auth.org_mismatch", details, request)
            .await;
        Err(Error::OrganizationMismatch)
    }

    /// Writes the batched last-seen times of sessions (called by a background job).
    pub async fn flush_session_activity(&self) -> Result<usize, Error> {
        let seen = self.identity().cache.take_seen();
        if seen.is_empty() {
            return Ok(0);
        }
        // Last-seen times are bookkeeping, not a change anyone made: the store writes them in its
        // own transaction, without an audit event.
        self.store().touch_sessions(&seen).await?;
        Ok(seen.len())
    }

    /// Applies a revocation another instance published.
    pub fn apply_remote_revocation(&self, r: Revocation) {
        match r {
            Revocation::Session(id) => self.identity().cache.revoked_elsewhere(id),
            Revocation::ApiKey(_) => self.api_key_cache().forget_all(),
            Revocation::Membership { org, user } => {
                self.identity().memberships.forget(org, user);
                self.api_key_cache().forget_org(org);
            }
            Revocation::Roles(org) => {
                self.api_key_cache().forget_org(org);
                self.product_state().decisions.forget_roles(org);
                // Published as well when the organisation's second-factor policy changes.
                self.identity().factor_policies.forget(org);
            }
            Revocation::Record {
                org,
                kind,
                external_id,
            } => self
                .product_state()
                .decisions
                .forget_record(org, &kind, &external_id),
            Revocation::Grant { owner, grantee } => {
                self.product_state().decisions.forget_grant(owner, grantee);
            }
            Revocation::ShareLinks(org) => self.share_opens().forget_org(org, false),
            Revocation::SecondFactor(user) => self.second_factor_changed_elsewhere(user),
            Revocation::Apps => self.identity().apps.forget_all(),
            Revocation::Connector { org, id } => self.connectors().token_cache().forget(org, id),
        }
    }

    /// The roles `principal` holds now in its token's organisation, from the membership (cached,
    /// forgotten on every change): what forward authentication answers, rather than the roles
    /// the token was issued with. Refused when the account is no longer a member. API keys and
    /// tokens without an organisation answer what they carry.
    pub async fn current_roles(&self, principal: &Principal) -> Result<Vec<String>, Error> {
        let Some(org) = principal.org else {
            return Ok(principal.roles.clone());
        };
        if principal.api_key_permissions.is_some() {
            return Ok(principal.roles.clone());
        }
        let user = UserId::from_uuid(principal.subject);
        let now = self.clock().now();
        let cache = &self.identity().memberships;
        let role = match cache.get(org, user, now) {
            Some(role) => role,
            None => {
                let read_at = cache.generation();
                let mut tx = self
                    .store()
                    .begin_read_scoped(&TenantScope::granted(org))
                    .await?;
                let role = tx.membership(user).await?.map(|m| m.role);
                drop(tx);
                cache.put(org, user, role.clone(), now, read_at);
                role
            }
        };
        match role {
            Some(r) => Ok(vec![r.as_str().to_owned()]),
            None => Err(Error::Unauthenticated(
                "the account is no longer a member of the token's organisation",
            )),
        }
    }
}

pub(super) fn principal_from(c: &AccessClaims) -> Result<Principal, Error> {
    let bad = || Error::Unauthenticated("the token's claims are malformed");
    Ok(Principal {
        subject: Uuid::parse_str(&c.sub).map_err(|_| bad())?,
        tier: Tier::parse(&c.tier).ok_or_else(bad)?,
        org: match &c.org {
            Some(o) => Some(OrgId::parse(o).ok_or_else(bad)?),
            None => None,
        },
        roles: c.roles.clone(),
        session_id: Uuid::parse_str(&c.sid).map_err(|_| bad())?,
        impersonator: match &c.act {
            Some(a) => Some(Uuid::parse_str(&a.sub).map_err(|_| bad())?),
            None => None,
        },
        token_id: c.jti.clone(),
        expires_at: c.exp,
        csrf_digest: c.csrf.clone(),
        api_key_permissions: None,
        api_key_rate_limit: None,
        auth_time: c.auth_time,
        mfa_time: c.mfa_time,
        mfa_enrolled: c.mfa,
        email_verified: c.email_verified,
    })
}

fn id_settings_read_only(kernel: &Kernel) -> bool {
    kernel.identity().settings().unverified_access == UnverifiedAccess::ReadOnly
}

impl Kernel {
    /// What a role grants: a built-in's catalogue set and the product permissions configured for
    /// it, or a custom role's stored set (empty when the organisation has no such role).
    pub(crate) async fn role_grants(
        &self,
        tx: &mut dyn crate::store::TenantTx,
        role: &Role,
    ) -> Result<Vec<String>, Error> {
        Ok(match self.builtin_role_grants(role) {
            Some(perms) => perms,
            None => tx
                .custom_role(role.as_str())
                .await?
                .map(|r| r.permissions)
                .unwrap_or_default(),
        })
    }

    /// What a built-in role grants (its catalogue set and the product permissions configured
    /// for it); `None` for a custom role.
    pub(crate) fn builtin_role_grants(&self, role: &Role) -> Option<Vec<String>> {
        permissions::builtin_grants(role).map(|perms| {
            perms
                .iter()
                .map(|p| p.as_str().to_owned())
                .chain(self.product().held_by(role).map(str::to_owned))
                .collect()
        })
    }
}

/// SHA-256 of a secret token, as stored.
pub(crate) fn digest(secret: &str) -> Vec<u8> {
    sha256(&[secret.as_bytes()]).to_vec()
}
