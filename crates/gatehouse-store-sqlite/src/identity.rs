//! Identity rows in SQLite: operators, sessions, custom roles, invitations, and the membership
//! changes identity makes. Tenant functions take the scope's org id and name it in every statement.

use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    ApiKeyRecord, CustomRoleRecord, InvitationRecord, MembershipRecord, OperatorRecord, Role,
    SessionRecord, Tier,
};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::{map_err, map_user_insert_err};
use crate::rows::{self, micros};

fn time_col(row: &SqliteRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    let m: i64 = row.try_get(col).map_err(map_err)?;
    gatehouse_core::clock::from_unix_micros(m)
        .ok_or_else(|| StoreError::Corrupt(format!("{col} out of range")))
}

fn opt_time_col(row: &SqliteRow, col: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    let m: Option<i64> = row.try_get(col).map_err(map_err)?;
    m.map(|m| {
        gatehouse_core::clock::from_unix_micros(m)
            .ok_or_else(|| StoreError::Corrupt(format!("{col} out of range")))
    })
    .transpose()
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn operator(row: &SqliteRow) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
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

fn custom_role(row: &SqliteRow) -> Result<CustomRoleRecord, StoreError> {
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

fn invitation(row: &SqliteRow) -> Result<InvitationRecord, StoreError> {
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
    c: &mut SqliteConnection,
    user: UserId,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn memberships_of_user(
    c: &mut SqliteConnection,
    user: UserId,
) -> Result<Vec<MembershipRecord>, StoreError> {
    let found =
        sqlx::query("SELECT * FROM memberships WHERE user_id = ? ORDER BY created_at, org_id")
            .bind(user.as_uuid())
            .fetch_all(c)
            .await
            .map_err(map_err)?;
    found.iter().map(rows::membership).collect()
}

pub(crate) async fn insert_operator(
    c: &mut SqliteConnection,
    o: &OperatorRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO operators (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(o.id)
    .bind(&o.email)
    .bind(&o.name)
    .bind(&o.password_hash)
    .bind(micros(o.created_at))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_user_insert_err)
}

pub(crate) async fn operator_by(
    c: &mut SqliteConnection,
    column: &'static str,
    value: OperatorKey<'_>,
) -> Result<Option<OperatorRecord>, StoreError> {
    let sql = if column == "email" {
        "SELECT * FROM operators WHERE email = ?"
    } else {
        "SELECT * FROM operators WHERE id = ?"
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
    c: &mut SqliteConnection,
    id: Uuid,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE operators SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn insert_session(
    c: &mut SqliteConnection,
    s: &SessionRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (id, subject_id, tier, org_id, impersonator_id, reason, device_name, \
         user_agent, ip, refresh_hash, created_at, last_seen_at, expires_at, revoked_at, auth_at, \
         mfa_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(micros(s.created_at))
    .bind(micros(s.last_seen_at))
    .bind(micros(s.expires_at))
    .bind(s.revoked_at.map(micros))
    .bind(micros(s.auth_at))
    .bind(s.mfa_at.map(micros))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn session_by_id(
    c: &mut SqliteConnection,
    id: Uuid,
) -> Result<Option<SessionRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(session).transpose()
}

pub(crate) async fn rotate_refresh(
    c: &mut SqliteConnection,
    id: Uuid,
    old: &[u8],
    new: &[u8],
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = ?, \
         last_seen_at = ? WHERE id = ? AND refresh_hash = ? AND revoked_at IS NULL",
    )
    .bind(new)
    .bind(micros(at))
    .bind(id)
    .bind(old)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_session_org(
    c: &mut SqliteConnection,
    id: Uuid,
    org: OrgId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET org_id = ? WHERE id = ? AND revoked_at IS NULL")
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn revoke_session(
    c: &mut SqliteConnection,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(micros(at))
            .bind(id)
            .execute(c)
            .await
            .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn revoke_sessions_of(
    c: &mut SqliteConnection,
    subject: Uuid,
    keep: Option<Uuid>,
    at: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = sqlx::query(
        "UPDATE sessions SET revoked_at = ?1 WHERE subject_id = ?2 AND revoked_at IS NULL \
         AND (?3 IS NULL OR id <> ?3) RETURNING id",
    )
    .bind(micros(at))
    .bind(subject)
    .bind(keep)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(|r| get(r, "id")).collect()
}

pub(crate) async fn live_sessions_of(
    c: &mut SqliteConnection,
    subject: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<SessionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM sessions WHERE subject_id = ? AND revoked_at IS NULL AND expires_at > ? \
         ORDER BY created_at DESC LIMIT 500",
    )
    .bind(subject)
    .bind(micros(now))
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(session).collect()
}

pub(crate) async fn touch_sessions(
    c: &mut SqliteConnection,
    seen: &[(Uuid, OffsetDateTime)],
) -> Result<(), StoreError> {
    for (id, at) in seen {
        sqlx::query("UPDATE sessions SET last_seen_at = max(last_seen_at, ?) WHERE id = ?")
            .bind(micros(*at))
            .bind(id)
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

pub(crate) async fn set_member_role(
    c: &mut SqliteConnection,
    org: OrgId,
    user: UserId,
    role: &Role,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?")
        .bind(role.as_str())
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn delete_membership(
    c: &mut SqliteConnection,
    org: OrgId,
    user: UserId,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM memberships WHERE org_id = ? AND user_id = ?")
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn owners(
    c: &mut SqliteConnection,
    org: OrgId,
) -> Result<Vec<UserId>, StoreError> {
    // SQLite's single writer (BEGIN IMMEDIATE) already excludes concurrent changes.
    let rows = sqlx::query("SELECT user_id FROM memberships WHERE org_id = ? AND role = 'owner'")
        .bind(org.as_uuid())
        .fetch_all(c)
        .await
        .map_err(map_err)?;
    rows.iter()
        .map(|r| get::<Uuid>(r, "user_id").map(UserId::from_uuid))
        .collect()
}

pub(crate) async fn insert_custom_role(
    c: &mut SqliteConnection,
    org: OrgId,
    r: &CustomRoleRecord,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO roles (org_id, name, permissions, created_at) VALUES (?, ?, ?, ?)")
        .bind(org.as_uuid())
        .bind(&r.name)
        .bind(r.permissions.join(","))
        .bind(micros(r.created_at))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn custom_roles(
    c: &mut SqliteConnection,
    org: OrgId,
    name: Option<&str>,
) -> Result<Vec<CustomRoleRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM roles WHERE org_id = ?1 AND (?2 IS NULL OR name = ?2) ORDER BY name",
    )
    .bind(org.as_uuid())
    .bind(name)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(custom_role).collect()
}

pub(crate) async fn insert_invitation(
    c: &mut SqliteConnection,
    org: OrgId,
    i: &InvitationRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
         expires_at, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(i.id)
    .bind(org.as_uuid())
    .bind(&i.email)
    .bind(&i.role)
    .bind(&i.token_hash)
    .bind(i.invited_by.as_uuid())
    .bind(micros(i.created_at))
    .bind(micros(i.expires_at))
    .bind(i.accepted_at.map(micros))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

pub(crate) async fn invitation_by_token(
    c: &mut SqliteConnection,
    org: OrgId,
    hash: &[u8],
) -> Result<Option<InvitationRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM invitations WHERE org_id = ? AND token_hash = ?")
        .bind(org.as_uuid())
        .bind(hash)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(invitation).transpose()
}

pub(crate) async fn accept_invitation(
    c: &mut SqliteConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE invitations SET accepted_at = ? WHERE org_id = ? AND id = ? AND accepted_at IS NULL",
    )
    .bind(micros(at))
    .bind(org.as_uuid())
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

fn api_key_row(row: &SqliteRow) -> Result<ApiKeyRecord, StoreError> {
    let perms: String = get(row, "permissions")?;
    let rate: Option<i64> = get(row, "rate_limit")?;
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
    c: &mut SqliteConnection,
    digest: &[u8],
) -> Result<Option<(OrgId, Uuid)>, StoreError> {
    let row = sqlx::query("SELECT org_id, key_id FROM api_key_index WHERE digest = ?")
        .bind(digest)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.map(|r| Ok((OrgId::from_uuid(get(&r, "org_id")?), get(&r, "key_id")?)))
        .transpose()
}

pub(crate) async fn insert_api_key(
    c: &mut SqliteConnection,
    org: OrgId,
    k: &ApiKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, prefix, last4, digest, permissions, namespace, \
         rate_limit, created_by, created_at, expires_at, revoked_at, last_used_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(k.id)
    .bind(org.as_uuid())
    .bind(&k.name)
    .bind(&k.prefix)
    .bind(&k.last4)
    .bind(&k.digest)
    .bind(k.permissions.join(","))
    .bind(&k.namespace)
    .bind(k.rate_limit.map(i64::from))
    .bind(&k.created_by)
    .bind(micros(k.created_at))
    .bind(k.expires_at.map(micros))
    .bind(k.revoked_at.map(micros))
    .bind(k.last_used_at.map(micros))
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    sqlx::query("INSERT INTO api_key_index (digest, org_id, key_id) VALUES (?, ?, ?)")
        .bind(&k.digest)
        .bind(org.as_uuid())
        .bind(k.id)
        .execute(&mut *c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

pub(crate) async fn api_key(
    c: &mut SqliteConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM api_keys WHERE org_id = ? AND id = ?")
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(api_key_row).transpose()
}

pub(crate) async fn list_api_keys(
    c: &mut SqliteConnection,
    org: OrgId,
    page: PageRequest,
) -> Result<Page<ApiKeyRecord>, StoreError> {
    let (before_t, before_id) = match page.after {
        Some(cur) => (cur.created_at_micros, Some(cur.id)),
        None => (i64::MAX, None),
    };
    let rows = sqlx::query(
        "SELECT * FROM api_keys WHERE org_id = ?1 \
         AND (created_at < ?2 OR (created_at = ?2 AND (?3 IS NULL OR id < ?3))) \
         ORDER BY created_at DESC, id DESC LIMIT ?4",
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
    c: &mut SqliteConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE api_keys SET expires_at = ? WHERE org_id = ? AND id = ?")
        .bind(micros(at))
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn revoke_api_key(
    c: &mut SqliteConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
    )
    .bind(micros(at))
    .bind(org.as_uuid())
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn touch_api_keys(
    c: &mut SqliteConnection,
    used: &[(OrgId, Uuid, OffsetDateTime)],
) -> Result<(), StoreError> {
    for (org, id, at) in used {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) \
             WHERE org_id = ? AND id = ?",
        )
        .bind(micros(*at))
        .bind(org.as_uuid())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}
