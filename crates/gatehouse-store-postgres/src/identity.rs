//! Identity rows in PostgreSQL (under row-level security for the tenant tables): operators, sessions, custom roles, invitations, and the membership
//! changes identity makes. Tenant functions take the scope's org id and name it in every statement.

use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    ApiKeyRecord, CustomRoleRecord, InvitationRecord, MembershipRecord, OperatorRecord, Role,
    SessionRecord, Tier,
};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows;

fn time_col(row: &PgRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn opt_time_col(row: &PgRow, col: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn operator(row: &PgRow) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn session(row: &PgRow) -> Result<SessionRecord, StoreError> {
    let tier: String = get(row, "tier")?;
    let org: Option<Uuid> = get(row, "org_id")?;
    Ok(SessionRecord {
        id: get(row, "id")?,
        subject_id: get(row, "subject_id")?,
        tier: Tier::parse(&tier).ok_or_else(|| StoreError::Corrupt(format!("tier {tier:?}")))?,
        org_id: org.map(OrgId::from_uuid),
        impersonator_id: get(row, "impersonator_id")?,
        reason: get(row, "reason")?,
        device_name: get(row, "device_name")?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
        refresh_hash: get(row, "refresh_hash")?,
        previous_refresh_hash: get(row, "previous_refresh_hash")?,
        created_at: time_col(row, "created_at")?,
        last_seen_at: time_col(row, "last_seen_at")?,
        expires_at: time_col(row, "expires_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
        auth_at: time_col(row, "auth_at")?,
        mfa_at: opt_time_col(row, "mfa_at")?,
    })
}

fn custom_role(row: &PgRow) -> Result<CustomRoleRecord, StoreError> {
    let perms: String = get(row, "permissions")?;
    Ok(CustomRoleRecord {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        name: get(row, "name")?,
        permissions: perms
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        created_at: time_col(row, "created_at")?,
    })
}

fn invitation(row: &PgRow) -> Result<InvitationRecord, StoreError> {
    Ok(InvitationRecord {
        id: get(row, "id")?,
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        email: get(row, "email")?,
        role: get(row, "role")?,
        token_hash: get(row, "token_hash")?,
        invited_by: UserId::from_uuid(get(row, "invited_by")?),
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
        accepted_at: opt_time_col(row, "accepted_at")?,
    })
}

pub(crate) async fn set_password_hash(
    c: &mut PgConnection,
    user: UserId,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn memberships_of_user(
    c: &mut PgConnection,
    user: UserId,
) -> Result<Vec<MembershipRecord>, StoreError> {
    // The own_memberships policy admits rows naming the user this transaction declares.
    sqlx::query("SELECT set_config('gatehouse.user_id', $1, true)")
        .bind(user.as_uuid().to_string())
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    let found =
        sqlx::query("SELECT * FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id")
            .bind(user.as_uuid())
            .fetch_all(c)
            .await
            .map_err(map_err)?;
    found.iter().map(rows::membership).collect()
}

pub(crate) async fn insert_operator(
    c: &mut PgConnection,
    o: &OperatorRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO operators (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(o.id)
    .bind(&o.email)
    .bind(&o.name)
    .bind(&o.password_hash)
    .bind(o.created_at)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn operator_by(
    c: &mut PgConnection,
    column: &'static str,
    value: OperatorKey<'_>,
) -> Result<Option<OperatorRecord>, StoreError> {
    let sql = if column == "email" {
        "SELECT * FROM operators WHERE email = $1"
    } else {
        "SELECT * FROM operators WHERE id = $1"
    };
    let q = sqlx::query(sql);
    let q = match value {
        OperatorKey::Email(e) => q.bind(e.to_owned()),
        OperatorKey::Id(id) => q.bind(id),
    };
    let row = q.fetch_optional(c).await.map_err(map_err)?;
    row.as_ref().map(operator).transpose()
}

pub(crate) enum OperatorKey<'a> {
    Email(&'a str),
    Id(Uuid),
}

pub(crate) async fn set_operator_password_hash(
    c: &mut PgConnection,
    id: Uuid,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE operators SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn insert_session(
    c: &mut PgConnection,
    s: &SessionRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id, subject_id, tier, org_id, impersonator_id, reason, device_name, \
         user_agent, ip, refresh_hash, created_at, last_seen_at, expires_at, revoked_at, auth_at, \
         mfa_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(s.id)
    .bind(s.subject_id)
    .bind(s.tier.as_str())
    .bind(s.org_id.map(|o| o.as_uuid()))
    .bind(s.impersonator_id)
    .bind(&s.reason)
    .bind(&s.device_name)
    .bind(&s.user_agent)
    .bind(&s.ip)
    .bind(&s.refresh_hash)
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .bind(s.expires_at)
    .bind(s.revoked_at)
    .bind(s.auth_at)
    .bind(s.mfa_at)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn session_by_id(
    c: &mut PgConnection,
    id: Uuid,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(session).transpose()
}

pub(crate) async fn rotate_refresh(
    c: &mut PgConnection,
    id: Uuid,
    old: &[u8],
    new: &[u8],
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = $1, \
         last_seen_at = $2 WHERE id = $3 AND refresh_hash = $4 AND revoked_at IS NULL",
    )
    .bind(new)
    .bind(at)
    .bind(id)
    .bind(old)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_session_org(
    c: &mut PgConnection,
    id: Uuid,
    org: OrgId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET org_id = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn revoke_session(
    c: &mut PgConnection,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(c)
            .await
            .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn revoke_sessions_of(
    c: &mut PgConnection,
    subject: Uuid,
    keep: Option<Uuid>,
    at: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE subject_id = $2 AND revoked_at IS NULL \
         AND ($3::uuid IS NULL OR id <> $3) RETURNING id",
    )
    .bind(at)
    .bind(subject)
    .bind(keep)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(|r| get(r, "id")).collect()
}

pub(crate) async fn live_sessions_of(
    c: &mut PgConnection,
    subject: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<SessionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM sessions WHERE subject_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         ORDER BY created_at DESC LIMIT 500",
    )
    .bind(subject)
    .bind(now)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(session).collect()
}

pub(crate) async fn touch_sessions(
    c: &mut PgConnection,
    seen: &[(Uuid, OffsetDateTime)],
) -> Result<(), StoreError> {
    for (id, at) in seen {
        sqlx::query("UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE id = $2")
            .bind(*at)
            .bind(id)
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn set_member_role(
    c: &mut PgConnection,
    org: OrgId,
    user: UserId,
    role: &Role,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_membership(
    c: &mut PgConnection,
    org: OrgId,
    user: UserId,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn owners(c: &mut PgConnection, org: OrgId) -> Result<Vec<UserId>, StoreError> {
    let rows = sqlx::query(
        "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE",
    )
    .bind(org.as_uuid())
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| get::<Uuid>(r, "user_id").map(UserId::from_uuid))
        .collect()
}

pub(crate) async fn insert_custom_role(
    c: &mut PgConnection,
    org: OrgId,
    r: &CustomRoleRecord,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO roles (org_id, name, permissions, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.as_uuid())
        .bind(&r.name)
        .bind(r.permissions.join(","))
        .bind(r.created_at)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn custom_roles(
    c: &mut PgConnection,
    org: OrgId,
    name: Option<&str>,
) -> Result<Vec<CustomRoleRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM roles WHERE org_id = $1 AND ($2::text IS NULL OR name = $2) ORDER BY name",
    )
    .bind(org.as_uuid())
    .bind(name)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(custom_role).collect()
}

pub(crate) async fn insert_invitation(
    c: &mut PgConnection,
    org: OrgId,
    i: &InvitationRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
         expires_at, accepted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(i.id)
    .bind(org.as_uuid())
    .bind(&i.email)
    .bind(&i.role)
    .bind(&i.token_hash)
    .bind(i.invited_by.as_uuid())
    .bind(i.created_at)
    .bind(i.expires_at)
    .bind(i.accepted_at)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn invitation_by_token(
    c: &mut PgConnection,
    org: OrgId,
    hash: &[u8],
) -> Result<Option<InvitationRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM invitations WHERE org_id = $1 AND token_hash = $2")
        .bind(org.as_uuid())
        .bind(hash)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(invitation).transpose()
}

pub(crate) async fn accept_invitation(
    c: &mut PgConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invitations SET accepted_at = $1 WHERE org_id = $2 AND id = $3 AND accepted_at IS NULL",
    )
    .bind(at)
    .bind(org.as_uuid())
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

fn api_key_row(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    let perms: String = get(row, "permissions")?;
    let rate: Option<i32> = get(row, "rate_limit")?;
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        last4: get(row, "last4")?,
        digest: get(row, "digest")?,
        permissions: perms
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        namespace: get(row, "namespace")?,
        rate_limit: rate.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        created_by: get(row, "created_by")?,
        created_at: time_col(row, "created_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
        last_used_at: opt_time_col(row, "last_used_at")?,
    })
}

pub(crate) async fn api_key_owner(
    c: &mut PgConnection,
    digest: &[u8],
) -> Result<Option<(OrgId, Uuid)>, StoreError> {
    let row = sqlx::query("SELECT org_id, key_id FROM api_key_index WHERE digest = $1")
        .bind(digest)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.map(|r| Ok((OrgId::from_uuid(get(&r, "org_id")?), get(&r, "key_id")?)))
        .transpose()
}

pub(crate) async fn insert_api_key(
    c: &mut PgConnection,
    org: OrgId,
    k: &ApiKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, prefix, last4, digest, permissions, namespace, \
         rate_limit, created_by, created_at, expires_at, revoked_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(k.id)
    .bind(org.as_uuid())
    .bind(&k.name)
    .bind(&k.prefix)
    .bind(&k.last4)
    .bind(&k.digest)
    .bind(k.permissions.join(","))
    .bind(&k.namespace)
    .bind(k.rate_limit.map(|r| i32::try_from(r).unwrap_or(i32::MAX)))
    .bind(&k.created_by)
    .bind(k.created_at)
    .bind(k.expires_at)
    .bind(k.revoked_at)
    .bind(k.last_used_at)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    sqlx::query("INSERT INTO api_key_index (digest, org_id, key_id) VALUES ($1, $2, $3)")
        .bind(&k.digest)
        .bind(org.as_uuid())
        .bind(k.id)
        .execute(&mut *c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn api_key(
    c: &mut PgConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM api_keys WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(api_key_row).transpose()
}

pub(crate) async fn list_api_keys(
    c: &mut PgConnection,
    org: OrgId,
    page: PageRequest,
) -> Result<Page<ApiKeyRecord>, StoreError> {
    let (before_t, before_id) = match page.after {
        Some(cur) => (
            gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
            Some(cur.id),
        ),
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT * FROM api_keys WHERE org_id = $1 \
         AND ($2::timestamptz IS NULL OR created_at < $2 \
              OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
         ORDER BY created_at DESC, id DESC LIMIT $4",
    )
    .bind(org.as_uuid())
    .bind(before_t)
    .bind(before_id)
    .bind(i64::from(page.limit.get()) + 1)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    let records = rows
        .iter()
        .map(api_key_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(records, page.limit, |k| {
        Cursor::after(k.created_at, k.id)
    }))
}

pub(crate) async fn set_api_key_expiry(
    c: &mut PgConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE org_id = $2 AND id = $3")
        .bind(at)
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn revoke_api_key(
    c: &mut PgConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(org.as_uuid())
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn touch_api_keys(
    c: &mut PgConnection,
    used: &[(OrgId, Uuid, OffsetDateTime)],
) -> Result<(), StoreError> {
    for (org, id, at) in used {
        // Each update runs inside its key's organisation scope (row-level security).
        sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
            .bind(org.to_string())
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "UPDATE api_keys SET last_used_at = GREATEST(coalesce(last_used_at, $1), $1) \
             WHERE org_id = $2 AND id = $3",
        )
        .bind(*at)
        .bind(org.as_uuid())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}
