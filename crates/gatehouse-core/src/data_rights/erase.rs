//! Erasure (G2): hard deletion, never soft. Erasing a person deletes their account, sessions,
//! devices, tokens, factors, mail, invitations and lockout entries, the records they own and
//! their memberships, revokes the API keys they made, and destroys their subject key in every
//! organisation, so the audit events that name them keep verifying while their personal fields
//! can no longer be opened. Erasing an organisation destroys its keys (crypto-shredding) and
//! then every row of it, its audit chain included. The audit event of an erasure names ids
//! only, never the erased person's address or name.

use serde_json::json;
use uuid::Uuid;

use super::DataRights;
use crate::audit::{self, Actor, AuditEvent};
use crate::context::{AccountCall, TenantCall};
use crate::error::Error;
use crate::identity::Permission;
use crate::ids::{OrgId, UserId};
use crate::keyring::SealedKind;
use crate::page::PageRequest;
use crate::scope::TenantScope;
use crate::store::{RecordQuery, Role};

/// What erasing a person removed, or would remove (`dry_run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserErasure {
    pub user: Uuid,
    pub dry_run: bool,
    /// Whether the account itself went (not when an administrator erased one membership of a
    /// person who belongs to other organisations too).
    pub account: bool,
    pub organizations: Vec<OrgId>,
    /// Organisations they were the only member of, erased whole (an erasure everywhere).
    pub organizations_erased: Vec<OrgId>,
    pub records: u64,
    pub api_keys_revoked: u64,
    pub sessions: u64,
    pub mail: u64,
    pub invitations: u64,
    pub subject_keys: u64,
}

/// What erasing an organisation removed, or would remove.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrganizationErasure {
    pub organization: OrgId,
    pub dry_run: bool,
    pub members: u64,
    pub sessions: u64,
    pub key_versions_destroyed: u64,
}

/// Records deleted per transaction.
const BATCH: u32 = 200;

/// How far a person's erasure reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Everywhere (themself, an operator): every organisation is visited, organisations they
    /// are the only member of are erased whole, and the account goes.
    Everywhere,
    /// An administrator's organisation only: their data there, and the account too when it
    /// belongs to no other organisation (other organisations are never visited).
    Organization { org: OrgId, with_account: bool },
}

impl DataRights<'_> {
    /// A person erases themself: their password now, and a recent second factor when they have
    /// one (a recent password check when not). Refused under impersonation and to API keys,
    /// and while they are the only owner of an organisation with other members.
    pub async fn erase_self(
        &self,
        call: &AccountCall,
        password: &gatehouse_crypto::SecretString,
    ) -> Result<UserErasure, Error> {
        let principal = &call.principal;
        let user = crate::identity::customer_only(
            principal,
            "only the person themself, signed in, erases their account",
        )?;
        if let Some(method) = self.step_up_needed(principal, Permission::DATA_DELETE.as_str()) {
            return Err(Error::StepUpRequired {
                permission: Permission::DATA_DELETE.as_str(),
                method,
            });
        }
        let mut tx = self.store().begin_read().await?;
        // A session an organisation's sign-on began erases nothing of the other organisations'.
        if crate::sso::enforcement::confined_to(tx.as_mut(), principal.session_id)
            .await?
            .is_some()
        {
            return Err(crate::sso::enforcement::CONFINED_ACCOUNT);
        }
        let record = tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
        drop(tx);
        self.recheck_password(&record, password, &call.request, "user.erase_refused")
            .await?;
        self.ensure_not_sole_owner(user).await?;
        self.erase_user(principal.actor(), user, Reach::Everywhere, false)
            .await
    }

    /// An administrator (`data.delete`, with step-up) erases a member's data in this
    /// organisation, and their account when it belongs to no other. The rules of removing a
    /// member hold: nobody touches a member whose role grants what they lack, only an owner
    /// erases an owner, and never the last one.
    pub async fn erase_member(
        &self,
        call: &TenantCall,
        user: UserId,
        dry_run: bool,
    ) -> Result<UserErasure, Error> {
        let tx = self.store().begin_scoped(&call.scope).await?;
        let (mut tx, actor_role) = self
            .authorize(tx, &call.principal, Permission::DATA_DELETE, &call.request)
            .await?;
        let current = tx
            .membership(user)
            .await?
            .ok_or(Error::NotFound("member"))?;
        crate::identity::Members(self.0)
            .ensure_may_grant(tx.as_mut(), &call.principal, &actor_role, &current.role)
            .await?;
        if current.role == Role::Owner {
            if actor_role != Role::Owner {
                return Err(Error::Forbidden {
                    permission: "owner",
                });
            }
            let owners = tx.lock_owners().await?;
            if owners.iter().all(|o| *o == user) {
                return Err(Error::LastOwner);
            }
        }
        drop(tx);
        let mut ptx = self.store().begin_read().await?;
        let elsewhere = ptx
            .memberships_of_user(user)
            .await?
            .iter()
            .any(|m| m.org_id != call.scope.org_id());
        drop(ptx);
        let reach = Reach::Organization {
            org: call.scope.org_id(),
            with_account: !elsewhere,
        };
        self.erase_user(call.principal.actor(), user, reach, dry_run)
            .await
    }

    /// Refuses while `user` is the only owner of an organisation that has other members.
    async fn ensure_not_sole_owner(&self, user: UserId) -> Result<(), Error> {
        let mut tx = self.store().begin_read().await?;
        let memberships = tx.memberships_of_user(user).await?;
        drop(tx);
        for m in memberships.iter().filter(|m| m.role == Role::Owner) {
            if self.only_member(m.org_id, user).await? {
                continue;
            }
            let mut tx = self
                .store()
                .begin_read_scoped(&TenantScope::granted(m.org_id))
                .await?;
            if tx.lock_owners().await?.iter().all(|o| *o == user) {
                return Err(Error::LastOwner);
            }
        }
        Ok(())
    }

    /// Whether `user` is the only member of `org`.
    async fn only_member(&self, org: OrgId, user: UserId) -> Result<bool, Error> {
        let mut tx = self
            .store()
            .begin_read_scoped(&TenantScope::granted(org))
            .await?;
        let page = tx
            .list_memberships(PageRequest::parse(None, Some(2))?)
            .await?;
        Ok(page.items.iter().all(|m| m.user_id == user))
    }

    /// Erases `user` as far as `reach` goes. With `dry_run`, counts what would go and changes
    /// nothing.
    pub async fn erase_user(
        &self,
        actor: Actor,
        user: UserId,
        reach: Reach,
        dry_run: bool,
    ) -> Result<UserErasure, Error> {
        if reach == Reach::Everywhere {
            // Before anything goes: an operator's erasure follows the same rule as the person's.
            self.ensure_not_sole_owner(user).await?;
        }
        let mut tx = self.store().begin_read().await?;
        let account = tx.user_by_id(user).await?.ok_or(Error::NotFound("user"))?;
        let member_of: Vec<OrgId> = tx
            .memberships_of_user(user)
            .await?
            .into_iter()
            .map(|m| m.org_id)
            .collect();
        let digest = crate::mail::recipient_digest(&account.email);
        let with_account = match reach {
            Reach::Everywhere => true,
            Reach::Organization { with_account, .. } => with_account,
        };
        let mut report = UserErasure {
            user: user.as_uuid(),
            dry_run,
            account: with_account,
            ..UserErasure::default()
        };
        if with_account {
            report.sessions = tx.sessions_of(user.as_uuid()).await?.len() as u64;
            report.mail = tx.mail_to(&digest, 100_000).await?.len() as u64;
        }
        drop(tx);
        // With the account gone, nothing could reach the person's traces in organisations they
        // left (their subject key, invitations to them): an administrator's erasure that takes
        // the account destroys those too, and only those, everywhere else.
        let traces: Vec<OrgId> = match reach {
            Reach::Organization {
                org,
                with_account: true,
            } => self
                .keyring()
                .organization_ids()
                .await?
                .into_iter()
                .filter(|o| *o != org)
                .collect(),
            _ => Vec::new(),
        };
        let orgs = match reach {
            Reach::Organization { org, .. } => vec![org],
            Reach::Everywhere => {
                // Their own workspaces (they are the only member) go whole; a subject key or an
                // invitation may sit in an organisation they have left, so all are visited.
                let mut erased = Vec::new();
                for org in &member_of {
                    if self.only_member(*org, user).await? {
                        if !dry_run {
                            self.erase_organization(actor.clone(), *org, false).await?;
                        }
                        report.organizations_erased.push(*org);
                        erased.push(*org);
                    }
                }
                self.keyring()
                    .organization_ids()
                    .await?
                    .into_iter()
                    .filter(|o| !erased.contains(o))
                    .collect()
            }
        };
        for org in orgs {
            let member = member_of.contains(&org);
            let changed = self
                .erase_in_org(
                    &actor,
                    user,
                    &account.email,
                    org,
                    member,
                    dry_run,
                    &mut report,
                )
                .await?;
            if changed || member {
                report.organizations.push(org);
            }
        }
        if dry_run {
            return Ok(report);
        }
        for org in traces {
            if self
                .erase_traces_in_org(user, &account.email, org, &mut report)
                .await?
            {
                report.organizations.push(org);
            }
        }
        if with_account {
            let mut tx = self.store().begin().await?;
            let sessions = tx.delete_sessions_of(user.as_uuid()).await?;
            tx.delete_tokens_of(user.as_uuid()).await?;
            report.mail = tx.delete_mail_to(&digest).await?;
            tx.delete_user(user).await?;
            report.sessions = sessions.len() as u64;
            let event = AuditEvent::success(actor.clone(), "user.erased", "user", user.as_uuid())
                .with_details(
                    json!({"sessions": report.sessions, "mail": report.mail,
                           "organizations": report.organizations.len(),
                           "organizations_erased": report.organizations_erased.len()})
                    .to_string(),
                );
            let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            let remember = self.clock().now() + time::Duration::days(31);
            for id in sessions {
                self.revoked_locally(id, remember);
            }
            self.forget_lockouts_of(&account.email).await;
        }
        for org in &member_of {
            let reached = match reach {
                Reach::Everywhere => true,
                Reach::Organization { org: o, .. } => o == *org,
            };
            if reached {
                self.membership_changed(*org, user);
            }
        }
        if !self.store().settle_erasure().await? {
            tracing::warn!(
                "the write-ahead log could not be truncated after an erasure; it is at the next checkpoint"
            );
        }
        Ok(report)
    }

    /// One organisation's part of a person's erasure, in one transaction with its audit event;
    /// returns whether anything there was theirs.
    #[allow(clippy::too_many_arguments)]
    async fn erase_in_org(
        &self,
        actor: &Actor,
        user: UserId,
        email: &str,
        org: OrgId,
        member: bool,
        dry_run: bool,
        report: &mut UserErasure,
    ) -> Result<bool, Error> {
        let scope = TenantScope::granted(org);
        let mut tx = if dry_run {
            self.store().begin_read_scoped(&scope).await?
        } else {
            self.store().begin_scoped(&scope).await?
        };
        let owner = format!("user:{}", user.as_uuid());
        let query = RecordQuery {
            owner: Some(owner),
            everything: true,
            ..RecordQuery::default()
        };
        let mut records = 0u64;
        let mut gone = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            // Deleting, the first page is always the next one; counting, the cursor moves on.
            let at = if dry_run { cursor.as_deref() } else { None };
            let page = tx
                .list_records(&query, PageRequest::parse(at, Some(BATCH))?)
                .await?;
            if page.items.is_empty() {
                break;
            }
            records += page.items.len() as u64;
            if !dry_run {
                let mut ids = Vec::with_capacity(page.items.len());
                for r in &page.items {
                    tx.delete_record(r.id).await?;
                    ids.push(r.id.to_string());
                    gone.push((r.kind.clone(), r.external_id.clone()));
                }
                tx.delete_sealed_of(SealedKind::RecordContent.as_str(), &ids)
                    .await?;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None if dry_run => break,
                None => {}
            }
        }
        let mut keys = 0u64;
        let mut kcursor: Option<String> = None;
        let creator = user.as_uuid().to_string();
        let now = self.clock().now();
        loop {
            let page = tx
                .list_api_keys(PageRequest::parse(kcursor.as_deref(), Some(BATCH))?)
                .await?;
            for k in page.items.iter().filter(|k| k.created_by == creator) {
                if k.revoked_at.is_none() && (dry_run || tx.revoke_api_key(k.id, now).await?) {
                    keys += 1;
                    if !dry_run {
                        self.api_key_cache().forget(k.id);
                        self.publish_revocation(crate::identity::Revocation::ApiKey(k.id));
                    }
                }
            }
            match page.next_cursor {
                Some(c) => kcursor = Some(c),
                None => break,
            }
        }
        report.records += records;
        report.api_keys_revoked += keys;
        if dry_run {
            return Ok(member || records > 0 || keys > 0);
        }
        if member {
            // Checked again here, in the transaction that deletes the membership: a concurrent
            // erasure or removal of the other owner cannot leave members without one.
            let role = tx.membership(user).await?.map(|m| m.role);
            if role == Some(Role::Owner) {
                let owners = tx.lock_owners().await?;
                let others = tx
                    .list_memberships(PageRequest::parse(None, Some(2))?)
                    .await?
                    .items
                    .iter()
                    .any(|m| m.user_id != user);
                if others && owners.iter().all(|o| *o == user) {
                    return Err(Error::LastOwner);
                }
            }
        }
        let invitations = tx.delete_invitations_to(email).await?;
        let subject_key = self
            .keyring()
            .erase_subject(tx.as_mut(), &user.as_uuid().to_string())
            .await?;
        if member {
            tx.delete_membership(user).await?;
            tx.delete_links_made_here(Some(user)).await?;
        }
        // Their connectors here go with them, tokens and all (revoked once committed).
        let connectors = self
            .connectors()
            .remove_of(tx.as_mut(), user, actor, "the owner was erased")
            .await?;
        report.invitations += invitations;
        report.subject_keys += u64::from(subject_key);
        let changed = member
            || records > 0
            || keys > 0
            || invitations > 0
            || subject_key
            || !connectors.is_empty();
        if !changed {
            return Ok(false);
        }
        let event = AuditEvent::success(actor.clone(), "user.erased", "user", user.as_uuid())
            .with_details(
                json!({"records": records, "api_keys_revoked": keys,
                       "invitations": invitations, "subject_key": subject_key,
                       "membership": member, "connectors_removed": connectors.len()})
                .to_string(),
            );
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.connectors().after_removal(connectors).await;
        // Their records went, and the links to them.
        self.share_opens().forget_org(org, false);
        self.publish_revocation(crate::identity::Revocation::ShareLinks(org));
        for (kind, external_id) in gone {
            self.record_changed(org, &kind, &external_id);
        }
        Ok(true)
    }

    /// Destroys a person's subject key and the invitations to them in an organisation they have
    /// left, with one `user.erased` event (actor: the erasure itself) when there was either.
    async fn erase_traces_in_org(
        &self,
        user: UserId,
        email: &str,
        org: OrgId,
        report: &mut UserErasure,
    ) -> Result<bool, Error> {
        let mut tx = self
            .store()
            .begin_scoped(&TenantScope::granted(org))
            .await?;
        let invitations = tx.delete_invitations_to(email).await?;
        let subject_key = self
            .keyring()
            .erase_subject(tx.as_mut(), &user.as_uuid().to_string())
            .await?;
        // Connectors left from before their membership ended (none since #24's fifth review).
        let connectors = self
            .connectors()
            .remove_of(
                tx.as_mut(),
                user,
                &Actor::system("erasure"),
                "the owner was erased",
            )
            .await?;
        if invitations == 0 && !subject_key && connectors.is_empty() {
            return Ok(false);
        }
        let event = AuditEvent::success(
            Actor::system("erasure"),
            "user.erased",
            "user",
            user.as_uuid(),
        )
        .with_details(
            json!({"invitations": invitations, "subject_key": subject_key,
                       "membership": false, "connectors_removed": connectors.len()})
            .to_string(),
        );
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.connectors().after_removal(connectors).await;
        report.invitations += invitations;
        report.subject_keys += u64::from(subject_key);
        Ok(true)
    }

    /// The owner erases their organisation (`data.delete`, with step-up), naming it to confirm.
    pub async fn erase_own_organization(
        &self,
        call: &TenantCall,
        confirm_name: &str,
    ) -> Result<OrganizationErasure, Error> {
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let (mut tx, role) = self
            .authorize(tx, &call.principal, Permission::DATA_DELETE, &call.request)
            .await?;
        let org = tx
            .organization()
            .await?
            .ok_or(Error::NotFound("organization"))?;
        drop(tx);
        if role != Role::Owner {
            return Err(Error::Forbidden {
                permission: "owner",
            });
        }
        if org.name != confirm_name {
            return Err(Error::invalid(
                "confirm",
                "must be the organisation's name exactly",
            ));
        }
        self.erase_organization(call.principal.actor(), org.id, false)
            .await
    }

    /// Erases `org`: its keys destroyed first, then every row of it in every table, its audit
    /// chain included; the operators' chain records that it happened. With `dry_run`, counts.
    pub async fn erase_organization(
        &self,
        actor: Actor,
        org: OrgId,
        dry_run: bool,
    ) -> Result<OrganizationErasure, Error> {
        let mut tx = self.store().begin_read().await?;
        tx.organization_by_id(org)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        drop(tx);
        let scope = TenantScope::granted(org);
        let mut tx = self.store().begin_read_scoped(&scope).await?;
        let mut members = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = tx
                .list_memberships(PageRequest::parse(cursor.as_deref(), Some(BATCH))?)
                .await?;
            members.extend(page.items.iter().map(|m| m.user_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        drop(tx);
        let mut report = OrganizationErasure {
            organization: org,
            dry_run,
            members: members.len() as u64,
            sessions: 0,
            key_versions_destroyed: 0,
        };
        if dry_run {
            return Ok(report);
        }
        report.key_versions_destroyed = self.keyring().shred(org).await?;
        let mut tx = self.store().begin().await?;
        let event = AuditEvent::success(actor, "organization.erased", "organization", org)
            .with_details(json!({"members": report.members}).to_string());
        let proof = audit::append_operator(tx.as_mut(), self.clock(), event).await?;
        let mut tx = tx.enter(&scope).await?;
        let sessions = tx.erase_organization().await?;
        tx.commit(proof).await?;
        self.share_opens().forget_org(org, true);
        self.publish_revocation(crate::identity::Revocation::ShareLinks(org));
        report.sessions = sessions.len() as u64;
        let remember = self.clock().now() + time::Duration::days(31);
        for id in sessions {
            self.revoked_locally(id, remember);
        }
        for user in members {
            self.membership_changed(org, user);
        }
        self.roles_changed(org);
        if !self.store().settle_erasure().await? {
            tracing::warn!(
                "the write-ahead log could not be truncated after an erasure; it is at the next checkpoint"
            );
        }
        Ok(report)
    }
}

/// Which of the organisation's records to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSelection {
    /// These records, all of which must be the organisation's.
    Ids(Vec<Uuid>),
    /// Those created from `from` (inclusive) until `until` (exclusive); an open end needs
    /// `confirmed`.
    Created {
        from: Option<time::OffsetDateTime>,
        until: Option<time::OffsetDateTime>,
        confirmed: bool,
    },
}

/// Ids per erasure by ids.
pub const MAX_RECORD_IDS: usize = 1_000;

impl DataRights<'_> {
    /// Erases records (`data.delete`, with step-up), hard, with their content, in one
    /// transaction and one audit event. By ids, all or nothing: an id that is not one of this
    /// organisation's records refuses the call with nothing deleted.
    pub async fn erase_records(
        &self,
        call: &TenantCall,
        selection: RecordSelection,
    ) -> Result<u64, Error> {
        match &selection {
            RecordSelection::Ids(ids) if ids.is_empty() || ids.len() > MAX_RECORD_IDS => {
                return Err(Error::invalid(
                    "records",
                    format!("1 to {MAX_RECORD_IDS} ids"),
                ));
            }
            RecordSelection::Created {
                from: Some(f),
                until: Some(u),
                ..
            } if f >= u => {
                return Err(Error::invalid("until", "must be after from"));
            }
            RecordSelection::Created {
                from,
                until,
                confirmed: false,
            } if from.is_none() || until.is_none() => {
                return Err(Error::invalid(
                    "confirm",
                    "a range open at either end erases every record on that side: set \
                     confirm to true to mean it",
                ));
            }
            _ => {}
        }
        let tx = self.store().begin_scoped(&call.scope).await?;
        let (mut tx, _) = self
            .authorize(tx, &call.principal, Permission::DATA_DELETE, &call.request)
            .await?;
        let mut doomed = Vec::new();
        match &selection {
            RecordSelection::Ids(ids) => {
                for id in ids {
                    let r = tx
                        .lock_record(*id)
                        .await?
                        .ok_or(Error::NotFound("record"))?;
                    doomed.push(r);
                }
            }
            RecordSelection::Created { from, until, .. } => {
                let query = RecordQuery {
                    everything: true,
                    ..RecordQuery::default()
                };
                let mut cursor: Option<String> = None;
                loop {
                    let page = tx
                        .list_records(&query, PageRequest::parse(cursor.as_deref(), Some(BATCH))?)
                        .await?;
                    doomed.extend(page.items.into_iter().filter(|r| {
                        from.is_none_or(|f| r.created_at >= f)
                            && until.is_none_or(|u| r.created_at < u)
                    }));
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
            }
        }
        let mut ids = Vec::with_capacity(doomed.len());
        for r in &doomed {
            tx.delete_record(r.id).await?;
            ids.push(r.id.to_string());
        }
        for chunk in ids.chunks(BATCH as usize) {
            tx.delete_sealed_of(SealedKind::RecordContent.as_str(), chunk)
                .await?;
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "record.erased",
            "organization",
            call.scope.org_id(),
        )
        .with_request(call.request.request_id.clone())
        .with_details(serde_json::Value::Object(audit::id_list(&ids)).to_string());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        // One pass for all of them (up to an unbounded range).
        self.share_opens().forget_org(call.scope.org_id(), false);
        self.publish_revocation(crate::identity::Revocation::ShareLinks(call.scope.org_id()));
        for r in &doomed {
            self.record_changed(r.org_id, &r.kind, &r.external_id);
        }
        Ok(doomed.len() as u64)
    }
}
