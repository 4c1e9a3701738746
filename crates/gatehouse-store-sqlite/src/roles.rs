//! Custom roles in SQLite, inside one organisation's scope: every statement names the scope's
//! `org_id`.

use async_trait::async_trait;
use gatehouse_core::store::{CustomRoleRecord, CustomRoleStore, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;

use crate::errors::map_err;
use crate::rows::{get, micros, time_col};
use crate::tx::SqliteTenantTx;

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

/// The organisation's custom roles by name; `Some(name)` for that one only. One statement for
/// `custom_role` and `custom_roles`.
async fn roles_named(
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

#[async_trait]
impl CustomRoleStore for SqliteTenantTx {
    async fn insert_custom_role(&mut self, r: &CustomRoleRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
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

    async fn custom_role(&mut self, name: &str) -> Result<Option<CustomRoleRecord>, StoreError> {
        Ok(roles_named(&mut self.tx, self.scope.org_id(), Some(name))
            .await?
            .into_iter()
            .next())
    }

    async fn custom_roles(&mut self) -> Result<Vec<CustomRoleRecord>, StoreError> {
        roles_named(&mut self.tx, self.scope.org_id(), None).await
    }
    async fn update_custom_role(
        &mut self,
        name: &str,
        permissions: &[String],
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("UPDATE roles SET permissions = ?1 WHERE org_id = ?2 AND name = ?3")
            .bind(permissions.join(","))
            .bind(org.as_uuid())
            .bind(name)
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_custom_role(&mut self, name: &str) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM roles WHERE org_id = ?1 AND name = ?2")
            .bind(org.as_uuid())
            .bind(name)
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn role_holders(
        &mut self,
        name: &str,
        now: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM memberships WHERE org_id = ?1 AND role = ?2) + \
             (SELECT count(*) FROM invitations WHERE org_id = ?1 AND role = ?2 \
              AND accepted_at IS NULL AND expires_at > ?3)",
        )
        .bind(org.as_uuid())
        .bind(name)
        .bind(micros(now))
        .fetch_one(c)
        .await
        .map_err(map_err)?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("role holders".into()))
    }
}
