//! Transactions. The platform transaction reads and writes users and organisations; `enter` turns
//! it into a tenant transaction whose every statement names the scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::audit::{AuditRecord, Audited, ChainHead, CheckpointRecord, SigningKeyRecord};
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    ApiKeyRecord, CustomRoleRecord, InvitationRecord, KekVersionRecord, KeyState, MailRecord,
    MembershipRecord, OneTimeTokenRecord, OperatorRecord, OrgKeyRecord, OrganizationRecord,
    PlatformKeyRecord, PlatformTx, Role, SealedRecord, SecretRecord, SecretVersionRecord,
    SessionRecord, TenantTx, TokenPurpose, TotpFactorRecord, UserRecord, ensure_chain_in_scope,
    ensure_in_scope,
};
use gatehouse_core::{OrgId, StoreError, TenantScope, UserId};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::WriteTurn;
use crate::identity::OperatorKey;

use gatehouse_core::telemetry::StoreTimer;

use crate::errors::{map_err, map_user_insert_err};
use crate::rows::{self, micros};

pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// Adds the transaction's time, begin to end, to the request's store stage.
    timer: StoreTimer,
    /// A writer's turn, released after `tx` (fields drop in order); `None` for a reader.
    turn: Option<WriteTurn>,
}

impl SqliteTx {
    /// A reader (`BEGIN DEFERRED`).
    pub(crate) fn reading(tx: Transaction<'static, Sqlite>, timer: StoreTimer) -> Self {
        Self {
            tx,
            timer,
            turn: None,
        }
    }

    /// A writer (`BEGIN IMMEDIATE`) holding its turn.
    pub(crate) fn writing(
        tx: Transaction<'static, Sqlite>,
        timer: StoreTimer,
        turn: WriteTurn,
    ) -> Self {
        Self {
            tx,
            timer,
            turn: Some(turn),
        }
    }
}

pub(crate) struct SqliteTenantTx {
    tx: Transaction<'static, Sqlite>,
    scope: TenantScope,
    /// Held for its drop, which records the transaction's time.
    _timer: StoreTimer,
    /// Held for its drop, after `tx`'s.
    _turn: Option<WriteTurn>,
}

#[async_trait]
impl PlatformTx for SqliteTx {
    async fn insert_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at, email_verified_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(u.id.as_uuid())
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(micros(u.created_at))
        .bind(u.email_verified_at.map(micros))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_user_insert_err)
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn insert_organization(&mut self, o: &OrganizationRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
            .bind(o.id.as_uuid())
            .bind(&o.name)
            .bind(micros(o.created_at))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn organization_by_id(
        &mut self,
        id: OrgId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = ?")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn kek_versions(&mut self) -> Result<Vec<KekVersionRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM kek_versions ORDER BY version")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(rows::kek_version).collect()
    }

    async fn insert_kek_version(&mut self, k: &KekVersionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO kek_versions (version, check_value, state, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(i64::from(k.version))
        .bind(&k.check_value)
        .bind(k.state.as_str())
        .bind(micros(k.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn set_kek_state(&mut self, version: u32, state: KeyState) -> Result<(), StoreError> {
        sqlx::query("UPDATE kek_versions SET state = ? WHERE version = ?")
            .bind(state.as_str())
            .bind(i64::from(version))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn organization_ids(
        &mut self,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError> {
        let found: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "SELECT id FROM organizations WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
        )
        .bind(after.map(|o| o.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(found
            .into_iter()
            .map(|(id,)| OrgId::from_uuid(id))
            .collect())
    }

    async fn mark_keys_shredded(
        &mut self,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE organizations SET keys_shredded_at = ? WHERE id = ?")
            .bind(micros(at))
            .bind(org.as_uuid())
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn peek_operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        crate::audit::peek_head(&mut self.tx, None).await
    }

    async fn operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        crate::audit::head(&mut self.tx, None).await
    }

    async fn append_operator_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError> {
        crate::audit::append(&mut self.tx, event).await
    }

    async fn operator_audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        crate::audit::events(&mut self.tx, None, after_seq, limit).await
    }

    async fn signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        crate::audit::signing_keys(&mut self.tx).await
    }

    async fn insert_signing_key(&mut self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        crate::audit::insert_signing_key(&mut self.tx, key).await
    }

    async fn rewrap_signing_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError> {
        crate::audit::rewrap_signing_key(&mut self.tx, version, wrapped, kek_version).await
    }

    async fn operator_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError> {
        crate::audit::checkpoints(&mut self.tx, None).await
    }

    async fn insert_operator_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError> {
        if c.org_id.is_some() {
            return Err(StoreError::Backend(
                "refused: an organisation checkpoint on the operators' chain".into(),
            ));
        }
        crate::audit::insert_checkpoint(&mut self.tx, c).await
    }

    async fn query_operator_audit(
        &mut self,
        filter: &gatehouse_core::audit::AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        crate::audit::query(&mut self.tx, None, filter, before, limit).await
    }

    async fn api_key_owner(&mut self, digest: &[u8]) -> Result<Option<(OrgId, Uuid)>, StoreError> {
        crate::identity::api_key_owner(&mut self.tx, digest).await
    }

    async fn set_password_hash(&mut self, user: UserId, hash: &str) -> Result<(), StoreError> {
        crate::identity::set_password_hash(&mut self.tx, user, hash).await
    }

    async fn memberships_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        crate::identity::memberships_of_user(&mut self.tx, user).await
    }

    async fn insert_operator(&mut self, op: &OperatorRecord) -> Result<(), StoreError> {
        crate::identity::insert_operator(&mut self.tx, op).await
    }

    async fn operator_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        crate::identity::operator_by(&mut self.tx, "email", OperatorKey::Email(email)).await
    }

    async fn operator_by_id(&mut self, id: Uuid) -> Result<Option<OperatorRecord>, StoreError> {
        crate::identity::operator_by(&mut self.tx, "id", OperatorKey::Id(id)).await
    }

    async fn set_operator_password_hash(&mut self, id: Uuid, hash: &str) -> Result<(), StoreError> {
        crate::identity::set_operator_password_hash(&mut self.tx, id, hash).await
    }

    async fn insert_session(&mut self, s: &SessionRecord) -> Result<(), StoreError> {
        crate::identity::insert_session(&mut self.tx, s).await
    }

    async fn session(&mut self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        crate::identity::session_by_id(&mut self.tx, id).await
    }

    async fn rotate_refresh(
        &mut self,
        id: Uuid,
        old: &[u8],
        new: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::identity::rotate_refresh(&mut self.tx, id, old, new, at).await
    }

    async fn set_session_org(&mut self, id: Uuid, org: OrgId) -> Result<(), StoreError> {
        crate::identity::set_session_org(&mut self.tx, id, org).await
    }

    async fn revoke_session(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        crate::identity::revoke_session(&mut self.tx, id, at).await
    }

    async fn revoke_sessions_of(
        &mut self,
        subject: Uuid,
        keep: Option<Uuid>,
        at: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        crate::identity::revoke_sessions_of(&mut self.tx, subject, keep, at).await
    }

    async fn live_sessions_of(
        &mut self,
        subject: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        crate::identity::live_sessions_of(&mut self.tx, subject, now).await
    }

    async fn set_email_verified(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::second_factor::set_email_verified(&mut self.tx, user, at).await
    }

    async fn platform_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError> {
        crate::second_factor::platform_keys(&mut self.tx).await
    }

    async fn insert_platform_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError> {
        crate::second_factor::insert_platform_key(&mut self.tx, k).await
    }

    async fn rewrap_platform_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError> {
        crate::second_factor::rewrap_platform_key(&mut self.tx, version, wrapped, kek_version).await
    }

    async fn totp_factor(&mut self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError> {
        crate::second_factor::totp_factor_of(&mut self.tx, user).await
    }

    async fn put_pending_totp(&mut self, f: &TotpFactorRecord) -> Result<(), StoreError> {
        crate::second_factor::put_pending_totp(&mut self.tx, f).await
    }

    async fn confirm_totp(
        &mut self,
        user: UserId,
        seed: &[u8],
        step: u64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::second_factor::confirm_totp(&mut self.tx, user, seed, step, at).await
    }

    async fn use_totp_step(&mut self, user: UserId, step: u64) -> Result<bool, StoreError> {
        crate::second_factor::use_totp_step(&mut self.tx, user, step).await
    }

    async fn delete_totp(&mut self, user: UserId) -> Result<bool, StoreError> {
        crate::second_factor::delete_totp(&mut self.tx, user).await
    }

    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        digests: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        crate::second_factor::replace_recovery_codes(&mut self.tx, user, digests, at).await
    }

    async fn use_recovery_code(
        &mut self,
        user: UserId,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::second_factor::use_recovery_code(&mut self.tx, user, digest, at).await
    }

    async fn recovery_codes_left(&mut self, user: UserId) -> Result<u32, StoreError> {
        crate::second_factor::recovery_codes_left(&mut self.tx, user).await
    }

    async fn insert_one_time_token(&mut self, t: &OneTimeTokenRecord) -> Result<(), StoreError> {
        crate::second_factor::insert_one_time_token(&mut self.tx, t).await
    }

    async fn one_time_token(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        crate::second_factor::one_time_token_by_digest(&mut self.tx, digest).await
    }

    async fn consume_one_time_token(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::second_factor::consume_one_time_token(&mut self.tx, digest, at).await
    }

    async fn consume_tokens_of(
        &mut self,
        subject: Uuid,
        purpose: TokenPurpose,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        crate::second_factor::consume_tokens_of(&mut self.tx, subject, purpose, at).await
    }

    async fn set_session_auth(
        &mut self,
        id: Uuid,
        auth_at: OffsetDateTime,
        mfa_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        crate::second_factor::set_session_auth(&mut self.tx, id, auth_at, mfa_at).await
    }

    async fn enqueue_mail(&mut self, m: &MailRecord) -> Result<(), StoreError> {
        crate::second_factor::enqueue_mail(&mut self.tx, m).await
    }

    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        Ok(Box::new(SqliteTenantTx {
            tx: self.tx,
            scope: *scope,
            _timer: self.timer,
            _turn: self.turn,
        }))
    }

    async fn commit(self: Box<Self>, _proof: Audited) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl TenantTx for SqliteTenantTx {
    fn scope(&self) -> &TenantScope {
        &self.scope
    }

    async fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, m.org_id)?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(m.user_id.as_uuid())
        .bind(m.role.as_str())
        .bind(micros(m.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn membership(&mut self, user: UserId) -> Result<Option<MembershipRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM memberships WHERE org_id = ? AND user_id = ?")
            .bind(self.scope.org_id().as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::membership).transpose()
    }

    async fn list_memberships(
        &mut self,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError> {
        let (after_t, after_id) = match page.after {
            Some(c) => (c.created_at_micros, Some(c.id)),
            None => (i64::MIN, None),
        };
        let found = sqlx::query(
            "SELECT * FROM memberships WHERE org_id = ?1 \
             AND (created_at > ?2 OR (created_at = ?2 AND (?3 IS NULL OR user_id > ?3))) \
             ORDER BY created_at, user_id LIMIT ?4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(after_t)
        .bind(after_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let records = found
            .iter()
            .map(rows::membership)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |m| {
            Cursor::after(m.created_at, m.user_id.as_uuid())
        }))
    }

    async fn set_member_role(&mut self, user: UserId, role: &Role) -> Result<bool, StoreError> {
        crate::identity::set_member_role(&mut self.tx, self.scope.org_id(), user, role).await
    }

    async fn delete_membership(&mut self, user: UserId) -> Result<bool, StoreError> {
        crate::identity::delete_membership(&mut self.tx, self.scope.org_id(), user).await
    }

    async fn lock_owners(&mut self) -> Result<Vec<UserId>, StoreError> {
        crate::identity::owners(&mut self.tx, self.scope.org_id()).await
    }

    async fn insert_custom_role(&mut self, r: &CustomRoleRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        crate::identity::insert_custom_role(&mut self.tx, self.scope.org_id(), r).await
    }

    async fn custom_role(&mut self, name: &str) -> Result<Option<CustomRoleRecord>, StoreError> {
        Ok(
            crate::identity::custom_roles(&mut self.tx, self.scope.org_id(), Some(name))
                .await?
                .into_iter()
                .next(),
        )
    }

    async fn custom_roles(&mut self) -> Result<Vec<CustomRoleRecord>, StoreError> {
        crate::identity::custom_roles(&mut self.tx, self.scope.org_id(), None).await
    }

    async fn insert_invitation(&mut self, i: &InvitationRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, i.org_id)?;
        crate::identity::insert_invitation(&mut self.tx, self.scope.org_id(), i).await
    }

    async fn invitation_by_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<InvitationRecord>, StoreError> {
        crate::identity::invitation_by_token(&mut self.tx, self.scope.org_id(), token_hash).await
    }

    async fn accept_invitation(
        &mut self,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::identity::accept_invitation(&mut self.tx, self.scope.org_id(), id, at).await
    }

    async fn insert_api_key(&mut self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, k.org_id)?;
        crate::identity::insert_api_key(&mut self.tx, self.scope.org_id(), k).await
    }

    async fn api_key(&mut self, id: Uuid) -> Result<Option<ApiKeyRecord>, StoreError> {
        crate::identity::api_key(&mut self.tx, self.scope.org_id(), id).await
    }

    async fn list_api_keys(&mut self, page: PageRequest) -> Result<Page<ApiKeyRecord>, StoreError> {
        crate::identity::list_api_keys(&mut self.tx, self.scope.org_id(), page).await
    }

    async fn set_api_key_expiry(
        &mut self,
        id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        crate::identity::set_api_key_expiry(&mut self.tx, self.scope.org_id(), id, expires_at).await
    }

    async fn revoke_api_key(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        crate::identity::revoke_api_key(&mut self.tx, self.scope.org_id(), id, at).await
    }

    async fn insert_secret(&mut self, s: &SecretRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, s.org_id)?;
        crate::vault::insert_secret(&mut self.tx, self.scope.org_id(), s).await
    }

    async fn secret(&mut self, id: Uuid) -> Result<Option<SecretRecord>, StoreError> {
        crate::vault::secret(&mut self.tx, self.scope.org_id(), id).await
    }

    async fn list_secrets(&mut self, page: PageRequest) -> Result<Page<SecretRecord>, StoreError> {
        crate::vault::list_secrets(&mut self.tx, self.scope.org_id(), page).await
    }

    async fn add_secret_version(&mut self, v: &SecretVersionRecord) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, v.org_id)?;
        crate::vault::add_secret_version(&mut self.tx, self.scope.org_id(), v).await
    }

    async fn secret_versions(
        &mut self,
        secret: Uuid,
    ) -> Result<Vec<SecretVersionRecord>, StoreError> {
        crate::vault::secret_versions(&mut self.tx, self.scope.org_id(), secret).await
    }

    async fn delete_secret(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        crate::vault::delete_secret(&mut self.tx, self.scope.org_id(), id, at).await
    }

    async fn transit_floor(&mut self) -> Result<Option<u32>, StoreError> {
        crate::vault::transit_floor(&mut self.tx, self.scope.org_id()).await
    }

    async fn set_transit_floor(&mut self, version: u32) -> Result<(), StoreError> {
        crate::vault::set_transit_floor(&mut self.tx, self.scope.org_id(), version).await
    }

    async fn organization(&mut self) -> Result<Option<OrganizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = ?")
            .bind(self.scope.org_id().as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn org_keys(&mut self) -> Result<Vec<OrgKeyRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM org_keys WHERE org_id = ? ORDER BY version")
            .bind(self.scope.org_id().as_uuid())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(rows::org_key).collect()
    }

    async fn insert_org_key(&mut self, k: &OrgKeyRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, k.org_id)?;
        sqlx::query(
            "INSERT INTO org_keys (org_id, version, wrapped, kek_version, state, encryptions, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(k.version))
        .bind(&k.wrapped)
        .bind(i64::from(k.kek_version))
        .bind(k.state.as_str())
        .bind(i64::try_from(k.encryptions).unwrap_or(i64::MAX))
        .bind(micros(k.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn update_org_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
        state: KeyState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE org_keys SET wrapped = ?, kek_version = ?, state = ? WHERE org_id = ? AND version = ?",
        )
        .bind(wrapped)
        .bind(i64::from(kek_version))
        .bind(state.as_str())
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(version))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn lock_org_keys(&mut self) -> Result<Vec<OrgKeyRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM org_keys WHERE org_id = ? ORDER BY version")
            .bind(self.scope.org_id().as_uuid())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(rows::org_key).collect()
    }

    async fn count_encryption(&mut self, version: u32) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "UPDATE org_keys SET encryptions = encryptions + 1 \
             WHERE org_id = ? AND version = ? AND state = 'active' RETURNING encryptions",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(version))
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?
        .ok_or_else(|| {
            StoreError::Backend(format!("data key version {version} is no longer active"))
        })?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("encryptions".into()))
    }

    async fn delete_org_keys(&mut self) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM org_keys WHERE org_id = ?")
            .bind(self.scope.org_id().as_uuid())
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn insert_sealed_if_absent(&mut self, f: &SealedRecord) -> Result<bool, StoreError> {
        self.write_sealed(f, "DO NOTHING").await
    }

    async fn put_sealed(&mut self, f: &SealedRecord) -> Result<(), StoreError> {
        self.write_sealed(
            f,
            "DO UPDATE SET dek_version = excluded.dek_version, envelope = excluded.envelope, \
             updated_at = excluded.updated_at",
        )
        .await
        .map(|_| ())
    }

    async fn sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<Option<SealedRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM sealed_fields WHERE org_id = ? AND kind = ? AND record_id = ? AND field = ?",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(kind)
        .bind(record_id)
        .bind(field)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
        row.as_ref().map(rows::sealed).transpose()
    }

    async fn sealed_before_version(
        &mut self,
        version: u32,
        limit: u32,
    ) -> Result<Vec<SealedRecord>, StoreError> {
        let found = sqlx::query(
            "SELECT * FROM sealed_fields WHERE org_id = ? AND dek_version < ? \
             ORDER BY kind, record_id, field LIMIT ?",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(i64::from(version))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        found.iter().map(rows::sealed).collect()
    }

    async fn replace_sealed(
        &mut self,
        old: &SealedRecord,
        envelope: &[u8],
        dek_version: u32,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE sealed_fields SET envelope = ?, dek_version = ?, updated_at = ? \
             WHERE org_id = ? AND kind = ? AND record_id = ? AND field = ? AND envelope = ?",
        )
        .bind(envelope)
        .bind(i64::from(dek_version))
        .bind(micros(at))
        .bind(self.scope.org_id().as_uuid())
        .bind(&old.kind)
        .bind(&old.record_id)
        .bind(&old.field)
        .bind(&old.envelope)
        .execute(&mut *self.tx)
        .await
        .map(|r| r.rows_affected() == 1)
        .map_err(map_err)
    }

    async fn sealed_counts(&mut self) -> Result<Vec<(u32, u64)>, StoreError> {
        let found: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT dek_version, count(*) FROM sealed_fields WHERE org_id = ? \
             GROUP BY dek_version ORDER BY dek_version",
        )
        .bind(self.scope.org_id().as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        found
            .into_iter()
            .map(|(v, n)| {
                Ok((
                    u32::try_from(v).map_err(|_| StoreError::Corrupt("dek_version".into()))?,
                    u64::try_from(n).map_err(|_| StoreError::Corrupt("count".into()))?,
                ))
            })
            .collect()
    }

    async fn peek_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        crate::audit::peek_head(&mut self.tx, Some(self.scope.org_id())).await
    }

    async fn audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        crate::audit::head(&mut self.tx, Some(self.scope.org_id())).await
    }

    async fn append_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError> {
        ensure_chain_in_scope(&self.scope, event.org_id)?;
        crate::audit::append(&mut self.tx, event).await
    }

    async fn append_audit_batch(&mut self, events: &[AuditRecord]) -> Result<(), StoreError> {
        for e in events {
            ensure_chain_in_scope(&self.scope, e.org_id)?;
        }
        crate::audit::append_batch(&mut self.tx, self.scope.org_id(), events).await
    }

    async fn audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        crate::audit::events(&mut self.tx, Some(self.scope.org_id()), after_seq, limit).await
    }

    async fn query_audit(
        &mut self,
        filter: &gatehouse_core::audit::AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        crate::audit::query(
            &mut self.tx,
            Some(self.scope.org_id()),
            filter,
            before,
            limit,
        )
        .await
    }

    async fn delete_sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "DELETE FROM sealed_fields WHERE org_id = ? AND kind = ? AND record_id = ? AND field = ?",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(kind)
        .bind(record_id)
        .bind(field)
        .execute(&mut *self.tx)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(map_err)
    }

    async fn audit_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError> {
        crate::audit::checkpoints(&mut self.tx, Some(self.scope.org_id())).await
    }

    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError> {
        ensure_chain_in_scope(&self.scope, c.org_id)?;
        crate::audit::insert_checkpoint(&mut self.tx, c).await
    }

    async fn commit(self: Box<Self>, _proof: Audited) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

impl SqliteTenantTx {
    /// Inserts a sealed value; `on_conflict` says what an existing one at the same place gets.
    /// Returns whether a row was written.
    async fn write_sealed(
        &mut self,
        f: &SealedRecord,
        on_conflict: &'static str,
    ) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, f.org_id)?;
        let sql = format!(
            "INSERT INTO sealed_fields (org_id, kind, record_id, field, dek_version, envelope, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_id, kind, record_id, field) {on_conflict}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.scope.org_id().as_uuid())
            .bind(&f.kind)
            .bind(&f.record_id)
            .bind(&f.field)
            .bind(i64::from(f.dek_version))
            .bind(&f.envelope)
            .bind(micros(f.updated_at))
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(map_err)
    }
}
