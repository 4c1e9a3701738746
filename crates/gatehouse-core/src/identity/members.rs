//! Members, custom roles and invitations inside one organisation.

use gatehouse_crypto::{SecretString, random_token};
use time::OffsetDateTime;
use uuid::Uuid;

use super::permissions::Permission;
use super::{Principal, digest};
use crate::audit::{self, AuditEvent};
use crate::context::{AccountCall, RequestContext, TenantCall};
use crate::error::Error;
use crate::ids::{OrgId, UserId, new_uuid};
use crate::inputs::{DisplayName, Email};
use crate::kernel::Kernel;
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;
use crate::store::{CustomRoleRecord, InvitationRecord, MembershipRecord, Role, UserRecord};

/// A member as listed.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub user_id: UserId,
    pub role: String,
    pub created_at: OffsetDateTime,
}

/// A new invitation; the token is shown once.
#[derive(Debug)]
pub struct InvitationIssued {
    pub id: Uuid,
    pub expires_at: OffsetDateTime,
}

const INVITE_PREFIX: &str = "gin_";

/// An organisation's members, roles and invitations, and the caller's own view of their account.
#[derive(Debug, Clone, Copy)]
pub struct Members<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Members);

impl Members<'_> {
    /// Refuses giving (or touching a member who holds) a role that grants anything the actor
    /// does not hold themselves.
    pub(crate) async fn ensure_may_grant(
        &self,
        tx: &mut dyn crate::store::TenantTx,
        principal: &Principal,
        actor_role: &Role,
        role: &Role,
    ) -> Result<(), Error> {
        let held = self.held_permissions(tx, principal, actor_role).await?;
        let granted = self.role_grants(tx, role).await?;
        match granted.iter().find(|p| !held.contains(p)) {
            Some(p) => Err(Error::Forbidden {
                permission: crate::api_keys::permission_name(p),
            }),
            None => Ok(()),
        }
    }

    pub async fn list(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<MemberView>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::ORG_READ, request)
            .await?;
        let page = tx.list_memberships(page).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|m| MemberView {
                    user_id: m.user_id,
                    role: m.role.as_str().to_owned(),
                    created_at: m.created_at,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Resolves a role name: built-in, or a custom role defined in this organisation.
    async fn resolve_role(tx: &mut dyn crate::store::TenantTx, name: &str) -> Result<Role, Error> {
        let role = Role::parse(name).ok_or_else(|| Error::invalid("role", "unknown role"))?;
        if let Role::Custom(n) = &role
            && tx.custom_role(n).await?.is_none()
        {
            return Err(Error::invalid("role", "no such role in this organisation"));
        }
        Ok(role)
    }

    /// Changes a member's role. Only owners grant or take away ownership, and the last owner is
    /// never demoted.
    pub async fn set_role(
        &self,
        call: &TenantCall,
        user: UserId,
        role_name: &str,
    ) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        let role = Self::resolve_role(tx.as_mut(), role_name).await?;
        let current = tx
            .membership(user)
            .await?
            .ok_or(Error::NotFound("member"))?;
        if (role == Role::Owner || current.role == Role::Owner) && actor_role != Role::Owner {
            return Err(Error::Forbidden {
                permission: "owner",
            });
        }
        // Nobody changes a member who holds what the actor does not, nor gives what it lacks.
        self.ensure_may_grant(tx.as_mut(), principal, &actor_role, &current.role)
            .await?;
        self.ensure_may_grant(tx.as_mut(), principal, &actor_role, &role)
            .await?;
        if current.role == Role::Owner && role != Role::Owner {
            let owners = tx.lock_owners().await?;
            if owners.iter().all(|o| *o == user) {
                return Err(Error::LastOwner);
            }
        }
        tx.set_member_role(user, &role).await?;
        let event = AuditEvent::success(principal.actor(), "member.role_changed", "user", user)
            .with_details(format!(
                "{{\"from\":{},\"to\":{}}}",
                json_str(current.role.as_str()),
                json_str(role.as_str())
            ))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.membership_changed(scope.org_id(), user);
        Ok(())
    }

    /// Removes a member (or lets a member leave). The last owner cannot be removed. The removed
    /// account's sessions in this organisation end in the same transaction: its tokens name the
    /// organisation, and refreshing them would otherwise mint more.
    pub async fn remove(&self, call: &TenantCall, user: UserId) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let now = self.clock().now();
        let OnMember {
            mut tx,
            member: current,
            ended,
        } = self.act_on_member(call, user, now).await?;
        if current.role == Role::Owner {
            let owners = tx.lock_owners().await?;
            if owners.iter().all(|o| *o == user) {
                return Err(Error::LastOwner);
            }
        }
        tx.delete_membership(user).await?;
        // The organisation's sign-on links to the account end with the membership (#24): a stale
        // link never signs the person in again.
        let links = tx.delete_links_made_here(Some(user)).await?;
        // So do the person's connectors there, and their tokens (revoked once committed).
        let why = if principal.subject == user.as_uuid() {
            "the owner left the organisation"
        } else {
            "the owner was removed from the organisation"
        };
        let connectors = self
            .connectors()
            .remove_of(tx.as_mut(), user, &principal.actor(), why)
            .await?;
        let event = AuditEvent::success(principal.actor(), "member.removed", "user", user)
            .with_details(format!(
                "{{\"role\":{},\"sessions_ended\":{},\"sso_links_removed\":{links},\
                 \"connectors_removed\":{}}}",
                json_str(current.role.as_str()),
                ended.len(),
                connectors.len()
            ))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        for (id, expires_at) in ended {
            self.revoked_locally(id, expires_at);
        }
        self.membership_changed(scope.org_id(), user);
        self.connectors().after_removal(connectors).await;
        Ok(())
    }

    /// What removing a member and ending their sessions share: in one transaction, the
    /// member's sessions in the organisation end (undone with it if refused), the actor needs
    /// `members.manage` and everything the member's role grants (one's own role is never more
    /// than one holds), and only an owner acts on an owner.
    pub(crate) async fn act_on_member(
        &self,
        call: &TenantCall,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<OnMember, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let mut platform = self.store().begin().await?;
        let ended = platform
            .revoke_org_sessions_of(user.as_uuid(), scope.org_id(), now)
            .await?;
        let tx = platform.enter(scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        let member = tx
            .membership(user)
            .await?
            .ok_or(Error::NotFound("member"))?;
        self.ensure_may_grant(tx.as_mut(), principal, &actor_role, &member.role)
            .await?;
        if member.role == Role::Owner && actor_role != Role::Owner {
            return Err(Error::Forbidden {
                permission: "owner",
            });
        }
        Ok(OnMember { tx, member, ended })
    }

    pub async fn create_role(
        &self,
        call: &TenantCall,
        name: &str,
        permissions: &[String],
    ) -> Result<CustomRoleRecord, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let role = match Role::parse(name) {
            Some(Role::Custom(n)) => n,
            Some(_) => return Err(Error::invalid("name", "is a built-in role")),
            None => {
                return Err(Error::invalid(
                    "name",
                    "must be 1 to 40 of a-z, 0-9, _ and -, starting with a letter",
                ));
            }
        };
        let mut perms = Vec::with_capacity(permissions.len());
        for p in permissions {
            let known = self.known_permission(p).ok_or_else(|| {
                Error::invalid("permissions", format!("unknown permission {p:?}"))
            })?;
            if !perms.contains(&known) {
                perms.push(known);
            }
        }
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, principal, Permission::ROLES_MANAGE, request)
            .await?;
        // No one defines a role granting more than they hold themselves.
        let held = self
            .held_permissions(tx.as_mut(), principal, &actor_role)
            .await?;
        if let Some(p) = perms.iter().find(|p| !held.contains(p)) {
            return Err(Error::invalid(
                "permissions",
                format!("you do not hold {p} yourself"),
            ));
        }
        let record = CustomRoleRecord {
            org_id: scope.org_id(),
            name: role,
            permissions: perms,
            created_at: self.clock().now(),
        };
        tx.insert_custom_role(&record).await.map_err(|e| match e {
            crate::error::StoreError::Duplicate => Error::Conflict("a role with this name exists"),
            other => other.into(),
        })?;
        let event = AuditEvent::success(principal.actor(), "role.created", "role", &record.name)
            .with_details(format!(
                "{{\"permissions\":{}}}",
                serde_json::Value::from(record.permissions.clone())
            ))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(record)
    }

    pub async fn list_roles(&self, call: &TenantCall) -> Result<Vec<CustomRoleRecord>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::ORG_READ, request)
            .await?;
        Ok(tx.custom_roles().await?)
    }

    /// Invites an email address with a role. The token names the organisation so accepting it
    /// can open the right scope; only its digest is stored, and it goes to the invited address by
    /// mail, never to the inviter: accepting it proves the mailbox (the new account's address is
    /// verified by it), and the inviter cannot use it to learn whether the address has an
    /// account.
    pub async fn invite(
        &self,
        call: &TenantCall,
        email: &str,
        role_name: &str,
    ) -> Result<InvitationIssued, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        super::refuse_under_impersonation(principal, "an impersonation cannot invite anyone")?;
        let email = Email::parse(email)?;
        let secret = random_token(32).map_err(|e| Error::Internal(e.to_string()))?;
        let token = SecretString::from(format!(
            "{INVITE_PREFIX}{}_{}",
            scope.org_id().as_uuid().simple(),
            secret.expose()
        ));
        let ttl = self.identity().settings().invitation_ttl;
        // The mail is queued in the same transaction: refused below, it is never sent.
        let mut platform = self.store().begin().await?;
        let organization = platform
            .organization_by_id(scope.org_id())
            .await?
            .ok_or(Error::NotFound("organization"))?;
        self.enqueue_mail(
            platform.as_mut(),
            email.as_str(),
            crate::mail::Template::Invitation {
                token: token.expose(),
                organization: &organization.name,
                hours: ttl.whole_hours(),
            },
        )
        .await?;
        let tx = platform.enter(scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        let role = Self::resolve_role(tx.as_mut(), role_name).await?;
        if role == Role::Owner && actor_role != Role::Owner {
            return Err(Error::Forbidden {
                permission: "owner",
            });
        }
        self.ensure_may_grant(tx.as_mut(), principal, &actor_role, &role)
            .await?;
        let now = self.clock().now();
        let record = InvitationRecord {
            id: new_uuid(self.clock()),
            org_id: scope.org_id(),
            email: email.as_str().to_owned(),
            role: role.as_str().to_owned(),
            token_hash: digest(token.expose()),
            invited_by: UserId::from_uuid(principal.subject),
            created_at: now,
            expires_at: now + ttl,
            accepted_at: None,
        };
        tx.insert_invitation(&record).await?;
        let event = AuditEvent::success(
            principal.actor(),
            "invitation.created",
            "invitation",
            record.id,
        )
        .with_details(format!("{{\"role\":{}}}", json_str(role.as_str())))
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.mail_queued();
        Ok(InvitationIssued {
            id: record.id,
            expires_at: record.expires_at,
        })
    }

    /// Invitations not yet accepted or expired. Needs `members.manage`.
    pub async fn list_invitations(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<crate::store::InvitationRecord>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_read_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        Ok(tx.pending_invitations(self.clock().now(), page).await?)
    }

    /// Revokes a pending invitation: its token stops working. Needs `members.manage`.
    pub async fn revoke_invitation(&self, call: &TenantCall, id: Uuid) -> Result<(), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        if !tx.delete_invitation(id).await? {
            return Err(Error::NotFound("invitation"));
        }
        let event = AuditEvent::success(principal.actor(), "invitation.revoked", "invitation", id)
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }

    /// Whether the inviter may still grant `role` now: a member whose own role holds every
    /// permission `role` grants (and an owner, for ownership). An invitation from someone who
    /// has since left or been demoted (or whose account is disabled, checked by the caller) is
    /// refused as if unknown.
    async fn inviter_still_may_grant(
        &self,
        tx: &mut dyn crate::store::TenantTx,
        inviter: UserId,
        role: &Role,
    ) -> Result<bool, Error> {
        let Some(m) = tx.membership(inviter).await? else {
            return Ok(false);
        };
        if *role == Role::Owner && m.role != Role::Owner {
            return Ok(false);
        }
        let held = self.role_grants(tx, &m.role).await?;
        let granted = self.role_grants(tx, role).await?;
        Ok(granted.iter().all(|p| held.contains(p)))
    }

    /// Accepts an invitation. An existing account proves itself with its password; a new one is
    /// created with the name and password given. Returns the user and organisation.
    pub async fn accept_invitation(
        &self,
        token: &SecretString,
        name: Option<String>,
        password: SecretString,
        request: &RequestContext,
    ) -> Result<(UserId, OrgId), Error> {
        let invalid = || Error::NotFound("invitation");
        let rest = token
            .expose()
            .strip_prefix(INVITE_PREFIX)
            .ok_or_else(invalid)?;
        let (org, _) = rest.split_once('_').ok_or_else(invalid)?;
        let org = Uuid::try_parse(org)
            .ok()
            .map(OrgId::from_uuid)
            .ok_or_else(invalid)?;
        let scope = TenantScope::granted(org);
        let now = self.clock().now();
        let invitation = {
            let mut tx = self.store().begin_scoped(&scope).await?;
            tx.invitation_by_token(&digest(token.expose()))
                .await?
                .filter(|i| i.accepted_at.is_none() && now < i.expires_at)
                .ok_or_else(invalid)?
        };
        let existing = {
            let mut tx = self.store().begin_read().await?;
            tx.user_by_email(&invitation.email).await?
        };
        let (user_id, new_user) = match existing {
            Some(u) => {
                // Proving an existing account is a sign-in: same lockouts, same answer.
                let subject = super::lockouts::lockout_subject("user", &u.email);
                let ip = request.ip.clone().unwrap_or_default();
                self.ensure_not_locked(&subject, &ip, now).await?;
                let (ok, _) = self
                    .check_password(
                        &crate::inputs::normalize_password(&password),
                        Some(u.password_hash.clone()),
                    )
                    .await?;
                if !ok {
                    // A wrong password of an existing account, as at sign-in.
                    self.record_security_event(
                        crate::audit::SecurityKind::SignInFailed,
                        None,
                        Some(u.id.to_string()),
                        request,
                    );
                    return Err(Error::InvalidCredentials);
                }
                self.attempt_succeeded(&subject, &ip).await;
                // Joining with a disabled account is refused like its sign-in.
                self.refuse_if_disabled(&u, request)?;
                (u.id, None)
            }
            None => {
                let name = DisplayName::parse("name", name.as_deref().unwrap_or(""))?;
                let org_name = {
                    let mut tx = self.store().begin_read().await?;
                    tx.organization_by_id(org).await?.map(|o| o.name)
                };
                let password = self
                    .accept_new_password(
                        password,
                        &[invitation.email.as_str()],
                        &[name.as_str(), org_name.as_deref().unwrap_or_default()],
                    )
                    .await?;
                let hash = self.passwords().hash(password.secret().clone()).await?;
                let user = UserRecord {
                    id: UserId::new(self.clock()),
                    email: invitation.email.clone(),
                    name: name.as_str().to_owned(),
                    password_hash: hash,
                    created_at: now,
                    // The token was mailed to this address: accepting it proves the mailbox.
                    email_verified_at: Some(now),
                    disabled_at: None,
                };
                (user.id, Some(user))
            }
        };
        let mut tx = self.store().begin().await?;
        // A disabled inviter's invitations are refused while the account stays disabled, as if
        // unknown (their API keys are, too).
        if tx
            .user_by_id(invitation.invited_by)
            .await?
            .is_some_and(|u| u.disabled_at.is_some())
        {
            return Err(invalid());
        }
        match &new_user {
            Some(u) => tx.insert_user(u).await?,
            None => {
                // An existing account proves the mailbox the same way.
                tx.set_email_verified(user_id, now).await?;
            }
        }
        let mut tx = tx.enter(&scope).await?;
        let role =
            Role::parse(&invitation.role).ok_or_else(|| Error::Internal("stored role".into()))?;
        if !self
            .inviter_still_may_grant(tx.as_mut(), invitation.invited_by, &role)
            .await?
        {
            return Err(invalid());
        }
        if !tx.accept_invitation(invitation.id, now).await? {
            return Err(Error::Conflict("the invitation was already used"));
        }
        if tx.membership(user_id).await?.is_some() {
            return Err(Error::Conflict("already a member of this organisation"));
        }
        tx.insert_membership(&MembershipRecord {
            org_id: org,
            user_id,
            role,
            created_at: now,
            sessions_ended_at: None,
        })
        .await?;
        let event = AuditEvent::success(
            crate::audit::Actor::user(user_id),
            "member.added",
            "user",
            user_id,
        )
        .with_details(format!(
            "{{\"invitation_id\":\"{}\",\"role\":{},\"new_account\":{}}}",
            invitation.id,
            json_str(&invitation.role),
            new_user.is_some()
        ))
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.membership_changed(org, user_id);
        Ok((user_id, org))
    }
}

fn json_str(s: &str) -> serde_json::Value {
    serde_json::Value::String(s.to_owned())
}

/// The signed-in user as they see themselves.
#[derive(Debug, Clone)]
pub struct MeView {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    /// (organisation, role name), oldest membership first.
    pub memberships: Vec<(OrgId, String)>,
}

impl Members<'_> {
    /// The caller's account and memberships; to a session an organisation's sign-on began, only
    /// that organisation's membership (it is confined there: `sso::enforcement::confined_to`).
    pub async fn me(&self, call: &AccountCall) -> Result<MeView, Error> {
        let AccountCall { principal, .. } = call;
        let user = UserId::from_uuid(principal.subject);
        let mut tx = self.store().begin().await?;
        let record = tx
            .user_by_id(user)
            .await?
            .ok_or(Error::Unauthenticated("the account no longer exists"))?;
        let home = crate::sso::enforcement::confined_to(tx.as_mut(), principal.session_id).await?;
        let memberships = tx.memberships_of_user(user).await?;
        Ok(MeView {
            user_id: user,
            email: record.email,
            name: record.name,
            memberships: memberships
                .into_iter()
                .filter(|m| home.is_none_or(|h| h == m.org_id))
                .map(|m| (m.org_id, m.role.as_str().to_owned()))
                .collect(),
        })
    }
}

/// An organisation's transaction opened to act on one member (see `Members::act_on_member`).
pub(crate) struct OnMember {
    pub(crate) tx: Box<dyn crate::store::TenantTx>,
    pub(crate) member: MembershipRecord,
    /// The member's sessions in the organisation, ended in `tx`: revoke them locally once it
    /// commits.
    pub(crate) ended: Vec<(Uuid, OffsetDateTime)>,
}
