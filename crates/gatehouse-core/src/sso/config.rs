//! An organisation's OpenID provider: set and read by its admins (some changes, and its
//! removal, only by its owner).

use gatehouse_crypto::SecretString;
use serde_json::json;
use time::OffsetDateTime;

use super::Sso;
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::ids::UserId;
use crate::keyring::{FieldRef, SealedKind};
use crate::page::PageRequest;
use crate::store::{Role, SsoConfigRecord, TenantTx};
use crate::webhooks::destination::check_url;

/// Where the client secret is sealed: one field per organisation.
pub(super) const SECRET_FIELD: &str = "client_secret";
/// Longest client id and client secret accepted.
const MAX_CLIENT_ID: usize = 255;
const MAX_CLIENT_SECRET: usize = 1024;
/// Scopes asked for when none are given.
const DEFAULT_SCOPES: &str = "openid email profile";

/// What an admin sends to set the provider. An absent secret keeps the stored one.
#[derive(Debug)]
pub struct SsoConfigInput {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    pub default_role: Option<String>,
    pub enforced: bool,
}

/// The provider as its admins see it: the secret never, only whether one is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConfigView {
    pub issuer: String,
    pub client_id: String,
    pub has_client_secret: bool,
    pub scopes: Vec<String>,
    pub default_role: String,
    pub enforced: bool,
    /// The redirect URI to register at the provider:
    /// `{oauth.public_url}/v1/auth/sso/{organisation id}/callback` (`None` while
    /// `oauth.public_url` is not configured).
    pub redirect_uri: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The scopes, `openid` first and each once; every scope token is RFC 6749's `scope-token`.
fn scopes(asked: Option<Vec<String>>) -> Result<String, Error> {
    let Some(asked) = asked else {
        return Ok(DEFAULT_SCOPES.to_owned());
    };
    let mut out = vec!["openid".to_owned()];
    for s in asked {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !ok {
            return Err(Error::invalid(
                "scopes",
                format!("{s:?} is not a scope (1 to 64 printable characters, no quote)"),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.len() > 16 {
        return Err(Error::invalid("scopes", "at most 16 scopes"));
    }
    Ok(out.join(" "))
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// Whether a change of the provider needs the organisation's owner (besides `sso.manage` and
/// the step-up every change needs): a first provider, another issuer or client id (whoever
/// chooses the provider chooses what it asserts, an owner's address included), or a default
/// role of admin (every person the provider vouches for would join as one). A default role
/// granting more than the caller holds, turning enforcement off and any client secret submitted
/// need the owner too (`Sso::owners_change`); scopes, turning enforcement on and the rest stay
/// with `sso.manage`. Removing the provider is the owner's (`Sso::remove_config`).
fn needs_owner(
    previous: Option<&SsoConfigRecord>,
    issuer: &str,
    client_id: &str,
    role: &Role,
) -> bool {
    let same_provider = previous.is_some_and(|p| p.issuer == issuer && p.client_id == client_id);
    !same_provider || *role == Role::Admin
}

impl Sso<'_> {
    /// The organisation's provider, if it has one.
    pub async fn config(&self, call: &TenantCall) -> Result<Option<SsoConfigView>, Error> {
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let mut tx = self.managing(call, tx, false).await?;
        match tx.sso_config().await? {
            Some(c) => Ok(Some(self.view(tx.as_mut(), c).await?)),
            None => Ok(None),
        }
    }

    async fn view(
        &self,
        tx: &mut dyn TenantTx,
        c: SsoConfigRecord,
    ) -> Result<SsoConfigView, Error> {
        let org = c.org_id.to_string();
        let redirect_uri = self
            .oauth()
            .redirect_uri(&super::signin::callback_path(
                Some(c.org_id),
                super::ORG_PROVIDER,
            ))
            .ok();
        let has_client_secret = tx
            .sealed(SealedKind::SsoClientSecret.as_str(), &org, SECRET_FIELD)
            .await?
            .is_some();
        Ok(SsoConfigView {
            issuer: c.issuer,
            client_id: c.client_id,
            has_client_secret,
            scopes: c.scopes.split(' ').map(str::to_owned).collect(),
            default_role: c.default_role,
            enforced: c.enforced,
            redirect_uri,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }

    /// Sets the organisation's provider (replacing any). Enforcement needs a verified domain:
    /// without one nobody could join or be linked through the provider.
    pub async fn configure(
        &self,
        call: &TenantCall,
        input: SsoConfigInput,
    ) -> Result<SsoConfigView, Error> {
        let issuer = check_url(&input.issuer, self.oauth().settings().destinations)
            .map_err(|r| Error::invalid("issuer", r))?;
        if issuer.query().is_some() {
            return Err(Error::invalid("issuer", "must not have a query"));
        }
        text("client_id", &input.client_id, MAX_CLIENT_ID)?;
        if let Some(s) = &input.client_secret {
            text("client_secret", s.expose(), MAX_CLIENT_SECRET)?;
        }
        let scopes = scopes(input.scopes)?;
        let role_name = input.default_role.unwrap_or_else(|| "member".to_owned());
        let role = Role::parse(&role_name)
            .ok_or_else(|| Error::invalid("default_role", "is not a role name"))?;
        if role == Role::Owner {
            return Err(Error::invalid(
                "default_role",
                "must not be owner: joining through a provider never makes an owner",
            ));
        }
        let tx = self.store().begin_scoped(&call.scope).await?;
        let mut tx = self.managing(call, tx, true).await?;
        if let Role::Custom(name) = &role
            && tx.custom_role(name).await?.is_none()
        {
            return Err(Error::invalid(
                "default_role",
                "names no role of the organisation",
            ));
        }
        // With no public URL no sign-on can start: enforcing it would leave the members no way in.
        if input.enforced && self.oauth().settings().public_url.is_empty() {
            return Err(Error::Conflict(
                "enforcing single sign-on needs oauth.public_url configured: without it no \
                 sign-in through the provider can start",
            ));
        }
        if input.enforced
            && !tx
                .sso_domains()
                .await?
                .iter()
                .any(|d| d.verified_at.is_some())
        {
            return Err(Error::Conflict(
                "enforcing single sign-on needs a verified domain: verify one first",
            ));
        }
        if input.enforced && !self.owner_with_factor(tx.as_mut()).await? {
            return Err(Error::Conflict(
                "enforcing single sign-on needs an owner with a second factor: only such an owner \
                 may still sign in with a password when the provider fails (break-glass)",
            ));
        }
        let previous = tx.sso_config().await?;
        let why = match needs_owner(previous.as_ref(), &input.issuer, &input.client_id, &role) {
            true => Some("sso.provider_or_admin_role"),
            false => {
                let off = previous
                    .as_ref()
                    .is_some_and(|p| p.enforced && !input.enforced);
                self.owners_change(tx.as_mut(), call, &role, off, input.client_secret.as_ref())
                    .await?
            }
        };
        let mut tx = match why {
            Some(why) => self.owner_only(tx, call, why).await?,
            None => tx,
        };
        let now = self.clock().now();
        let org = call.scope.org_id();
        // The issuer is kept as given (exactly what its ID tokens must name), not normalised.
        let record = SsoConfigRecord {
            org_id: org,
            issuer: input.issuer.clone(),
            client_id: input.client_id.clone(),
            scopes,
            default_role: role.as_str().to_owned(),
            enforced: input.enforced,
            created_at: previous.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
        };
        tx.put_sso_config(&record).await?;
        // Another issuer is another provider: the links the old one made end (#24), and so do
        // the sessions it began (the old provider vouches for nobody here any more).
        let (links_removed, ended) = match &previous {
            Some(p) if p.issuer != record.issuer => (
                self.drop_links(tx.as_mut()).await?,
                tx.revoke_sessions_begun_here(now).await?,
            ),
            _ => (0, Vec::new()),
        };
        if let Some(secret) = &input.client_secret {
            let id = org.to_string();
            self.keyring()
                .seal(
                    tx.as_mut(),
                    FieldRef {
                        kind: SealedKind::SsoClientSecret,
                        record_id: &id,
                        field: SECRET_FIELD,
                    },
                    secret.expose().as_bytes(),
                )
                .await?;
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            if previous.is_some() {
                "sso.config_changed"
            } else {
                "sso.configured"
            },
            "organization",
            org,
        )
        .with_details(
            json!({
                "issuer": record.issuer,
                "client_id": record.client_id,
                "scopes": record.scopes,
                "default_role": record.default_role,
                "enforced": record.enforced,
                "enforcement_changed": previous.as_ref().map_or(record.enforced, |p| p.enforced != record.enforced),
                "client_secret_set": input.client_secret.is_some(),
                "sso_links_removed": links_removed,
                "sso_sessions_revoked": ended.len(),
            })
            .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        let view = self.view(tx.as_mut(), record).await?;
        tx.commit(proof).await?;
        self.sessions_ended(&ended);
        self.enforcement_changed(org);
        Ok(view)
    }

    /// The transaction back if the caller is the organisation's owner (a person, not an API
    /// key); otherwise the refusal, recorded (`permission.denied`, with `why`).
    async fn owner_only(
        &self,
        mut tx: Box<dyn TenantTx>,
        call: &TenantCall,
        why: &str,
    ) -> Result<Box<dyn TenantTx>, Error> {
        let actor = UserId::from_uuid(call.principal.subject);
        let is_owner = call.principal.api_key_permissions.is_none()
            && tx
                .membership(actor)
                .await?
                .is_some_and(|m| m.role == Role::Owner);
        if is_owner {
            return Ok(tx);
        }
        drop(tx);
        self.record_refusal(
            &call.scope,
            &call.principal,
            "permission.denied",
            json!({ "permission": "owner", "why": why }).to_string(),
            &call.request,
        )
        .await;
        Err(Error::Forbidden {
            permission: "owner",
        })
    }

    /// Why a change of the same provider still needs the owner, if it does (#24): a default
    /// role granting what the caller does not hold (everyone the provider vouches for would join
    /// with it), turning enforcement off (password sign-in into the organisation again), or any
    /// client secret submitted. The secret is never compared with the stored one: an answer that
    /// differed for the stored value would let an admin test guesses of it.
    async fn owners_change(
        &self,
        tx: &mut dyn TenantTx,
        call: &TenantCall,
        role: &Role,
        enforcement_off: bool,
        secret: Option<&SecretString>,
    ) -> Result<Option<&'static str>, Error> {
        let actor = UserId::from_uuid(call.principal.subject);
        let actor_role = match &call.principal.api_key_permissions {
            Some(_) => Role::Viewer,
            None => match tx.membership(actor).await? {
                Some(m) => m.role,
                None => return Ok(Some("sso.not_a_member")),
            },
        };
        let held = self
            .held_permissions(tx, &call.principal, &actor_role)
            .await?;
        if self
            .role_grants(tx, role)
            .await?
            .iter()
            .any(|p| !held.contains(p))
        {
            return Ok(Some("sso.default_role_beyond_caller"));
        }
        if enforcement_off {
            return Ok(Some("sso.enforcement_off"));
        }
        if secret.is_some() {
            return Ok(Some("sso.client_secret_submitted"));
        }
        Ok(None)
    }

    /// Removes every link the organisation's sign-on made, whoever's account it links: one
    /// statement in the caller's transaction (audited there), however many members it has.
    async fn drop_links(&self, tx: &mut dyn TenantTx) -> Result<u64, Error> {
        Ok(tx.delete_links_made_here(None).await?)
    }

    /// The sessions a committed removal (or change of issuer) ended: forgotten here and, through
    /// the fan-out, on every other instance.
    fn sessions_ended(&self, ended: &[(uuid::Uuid, OffsetDateTime)]) {
        for (id, expires_at) in ended {
            self.revoked_locally(*id, *expires_at);
        }
    }

    /// Whether an owner of the scope's organisation has a confirmed second factor (the owners
    /// among its first 10,000 members).
    async fn owner_with_factor(&self, tx: &mut dyn TenantTx) -> Result<bool, Error> {
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let page = tx
                .list_memberships(PageRequest::parse(cursor.as_deref(), Some(200))?)
                .await?;
            for m in page.items.iter().filter(|m| m.role == Role::Owner) {
                if self.has_second_factor(m.user_id).await? {
                    return Ok(true);
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(false)
    }

    /// Removes the organisation's provider (and its sealed secret): sign-in through it ends,
    /// and so does enforcement (password sign-in into the organisation again), so it is the
    /// owner's, like turning enforcement off, besides `sso.manage` and the step-up.
    pub async fn remove_config(&self, call: &TenantCall) -> Result<(), Error> {
        let tx = self.store().begin_scoped(&call.scope).await?;
        let tx = self.managing(call, tx, true).await?;
        let mut tx = self.owner_only(tx, call, "sso.removed").await?;
        if !tx.delete_sso_config().await? {
            return Err(Error::NotFound("single sign-on configuration"));
        }
        let org = call.scope.org_id();
        tx.delete_sealed(
            SealedKind::SsoClientSecret.as_str(),
            &org.to_string(),
            SECRET_FIELD,
        )
        .await?;
        let links_removed = self.drop_links(tx.as_mut()).await?;
        // The sessions it began end with it: nothing vouches for them here any more.
        let ended = tx.revoke_sessions_begun_here(self.clock().now()).await?;
        let event = AuditEvent::success(call.principal.actor(), "sso.removed", "organization", org)
            .with_details(
                json!({
                    "sso_links_removed": links_removed,
                    "sso_sessions_revoked": ended.len(),
                })
                .to_string(),
            )
            .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.sessions_ended(&ended);
        self.enforcement_changed(org);
        Ok(())
    }
}
